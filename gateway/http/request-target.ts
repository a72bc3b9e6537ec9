import { BadRequestError } from './errors';
import { HttpStatus } from './protocol';

export interface RequestTarget {
  /** Normalised path: what policy matches and what is forwarded. */
  path: string;
  /** The query string as sent, without '?' ("" when none). */
  query: string;
}

/** RFC 3986 §2.3 unreserved characters: decoding them never changes what a URI means. */
const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * Reads an origin-form request target (RFC 9112 §3.2.1) and normalises its path so that one path has
 * one spelling: unreserved characters are percent-decoded (RFC 3986 §6.2.2.2), other escapes upper-cased,
 * empty segments collapsed and dot segments removed (§5.2.4). Upstreams resolve `/a/../admin`,
 * `/%61dmin` and `//admin` to `/admin`, so a rule on `/admin` must see that too — and the upstream is sent
 * the normalised form, so it cannot read the path differently from the policy. Escaped `/`, `\` and NUL
 * are refused: servers disagree on whether they separate segments.
 */
export function parseRequestTarget(target: string): RequestTarget {
  if (!target.startsWith('/')) {
    throw new BadRequestError(`the request target ${JSON.stringify(target.slice(0, 100))} is not a path (absolute-form and asterisk-form are not served)`);
  }
  if (target.length > 8192) throw new BadRequestError('the request target is longer than 8192 characters', HttpStatus.UriTooLong);
  if (target.includes('#')) throw new BadRequestError('the request target contains a fragment');
  const queryAt = target.indexOf('?');
  const rawPath = queryAt < 0 ? target : target.slice(0, queryAt);
  const query = queryAt < 0 ? '' : target.slice(queryAt + 1);
  if (/[\x00-\x20\x7f-\uffff\\]/.test(target)) throw new BadRequestError('the request target contains control, space, backslash or non-ASCII characters');
  // Most paths are already in their one spelling: no escapes, no empty or dot segments.
  if (!rawPath.includes('%') && !rawPath.includes('//') && !rawPath.includes('/.')) return { path: rawPath, query };

  let decoded = '';
  for (let i = 0; i < rawPath.length; i++) {
    const ch = rawPath[i]!;
    if (ch !== '%') {
      decoded += ch;
      continue;
    }
    const hex = rawPath.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new BadRequestError('the request path has a malformed percent-escape');
    const byte = Number.parseInt(hex, 16);
    const char = String.fromCharCode(byte);
    if (byte === 0x2f || byte === 0x5c || byte === 0x00) throw new BadRequestError('the request path contains an escaped "/", "\\" or NUL');
    decoded += UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
    i += 2;
  }

  const out: string[] = [];
  const segments = decoded.split('/').slice(1);
  for (const [index, segment] of segments.entries()) {
    const last = index === segments.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..') {
        if (out.length === 0) throw new BadRequestError('the request path climbs above the root with ".."');
        out.pop();
      }
      if (last) out.push('');
      continue;
    }
    if (segment === '' && !last) continue;
    out.push(segment);
  }
  return { path: `/${out.join('/')}`, query };
}

import type { HttpBody } from '../../proto/generated/gapwatch/v1/HttpBody';
import type { HttpHeader } from '../../proto/generated/gapwatch/v1/HttpHeader';
import { TEXTUAL_MEDIA_TYPES } from './protocol';

const REDACTED = '[redacted]';

/**
 * The headers journaled for a message: only the configured names, in the order sent, with
 * credential-bearing values redacted (an Authorization value keeps its scheme, which says how the
 * agent authenticated without saying with what).
 */
export function recordHeaders(rawHeaders: readonly string[], selected: ReadonlySet<string>, redacted: ReadonlySet<string>): HttpHeader[] {
  const out: HttpHeader[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (!selected.has(name)) continue;
    let value = rawHeaders[i + 1]!;
    if (redacted.has(name)) {
      const scheme = /^([A-Za-z][A-Za-z0-9._~+-]*) /.exec(value);
      value = name.endsWith('authorization') && scheme ? `${scheme[1]} ${REDACTED}` : REDACTED;
    }
    out.push({ name, value });
  }
  return out;
}

/** Whether a body of this type is recorded as text: text/*, JSON, XML, forms, and their +json/+xml kin. */
export function isTextual(contentType: string): boolean {
  const media = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return media.startsWith('text/') || media.endsWith('+json') || media.endsWith('+xml') || TEXTUAL_MEDIA_TYPES.has(media);
}

/**
 * Keeps the first `limit` bytes of a body as it streams past and counts the rest, so the journal
 * gets an excerpt and a truncated flag without the gateway buffering the body. Encoded bodies
 * (gzip …) and non-textual ones are recorded as bytes only when configured, else just sized.
 */
export class BodyRecorder {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  size = 0;
  private readonly mode: 'text' | 'data' | 'omit';

  /**
   * `secrets`: values the gateway itself injected (the resource credential). An upstream may echo its
   * request back (debug endpoints, error pages quoting headers); the excerpt never keeps them.
   */
  constructor(
    private readonly contentType: string,
    contentEncoding: string,
    private readonly limit: number,
    binaryBodies: boolean,
    private readonly secrets: readonly string[] = [],
  ) {
    const encoded = contentEncoding !== '' && contentEncoding.toLowerCase() !== 'identity';
    if (limit === 0) this.mode = 'omit';
    else if (!encoded && isTextual(contentType)) this.mode = 'text';
    else this.mode = binaryBodies ? 'data' : 'omit';
  }

  push(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.mode === 'omit' || this.kept >= this.limit) return;
    const take = Math.min(chunk.length, this.limit - this.kept);
    this.chunks.push(take === chunk.length ? chunk : chunk.subarray(0, take));
    this.kept += take;
  }

  snapshot(): HttpBody {
    const body: HttpBody = { contentType: this.contentType, size: String(this.size), truncated: this.size > this.kept && this.mode !== 'omit' };
    if (this.mode === 'omit') return { ...body, omitted: this.size > 0 };
    let content: Buffer = Buffer.concat(this.chunks, this.kept);
    for (const secret of this.secrets) content = replaceAll(content, Buffer.from(secret, 'utf8'), Buffer.from(REDACTED, 'utf8'));
    // A cut can fall inside a UTF-8 sequence; the decoder's replacement character marks it.
    return this.mode === 'text' ? { ...body, text: content.toString('utf8') } : { ...body, data: content };
  }
}

function replaceAll(content: Buffer, needle: Buffer, replacement: Buffer): Buffer {
  if (needle.length === 0 || content.indexOf(needle) < 0) return content;
  const parts: Buffer[] = [];
  let from = 0;
  for (let at = content.indexOf(needle); at >= 0; at = content.indexOf(needle, from)) {
    parts.push(content.subarray(from, at), replacement);
    from = at + needle.length;
  }
  parts.push(content.subarray(from));
  return Buffer.concat(parts);
}

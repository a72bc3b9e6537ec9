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
  const known = textualCache.get(contentType);
  if (known !== undefined) return known;
  const media = contentType.split(';', 1)[0]!.trim().toLowerCase();
  const textual = media.startsWith('text/') || media.endsWith('+json') || media.endsWith('+xml') || TEXTUAL_MEDIA_TYPES.has(media);
  // Content types come from agents and upstreams: the memo is bounded, and starts over when full.
  if (textualCache.size >= TEXTUAL_CACHE_ENTRIES) textualCache.clear();
  textualCache.set(contentType, textual);
  return textual;
}

/** isTextual's answers by Content-Type value: a busy gateway sees the same few types on every exchange. */
const textualCache = new Map<string, boolean>();
const TEXTUAL_CACHE_ENTRIES = 256;

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
  /** The last snapshot, until more of the body arrives (a request's excerpt goes into two records). */
  private last: HttpBody | null = null;

  /**
   * `secrets`: values the gateway itself injected (the resource credential). An upstream may echo its
   * request back (debug endpoints, error pages quoting headers); the excerpt never keeps them.
   */
  constructor(
    private readonly contentType: string,
    contentEncoding: string,
    private readonly limit: number,
    binaryBodies: boolean,
    private readonly secrets: readonly (string | Buffer)[] = [],
  ) {
    const encoded = contentEncoding !== '' && contentEncoding.toLowerCase() !== 'identity';
    if (limit === 0) this.mode = 'omit';
    else if (!encoded && isTextual(contentType)) this.mode = 'text';
    else this.mode = binaryBodies ? 'data' : 'omit';
  }

  push(chunk: Buffer): void {
    this.size += chunk.length;
    this.last = null;
    if (this.mode === 'omit' || this.kept >= this.limit) return;
    const take = Math.min(chunk.length, this.limit - this.kept);
    this.chunks.push(take === chunk.length ? chunk : chunk.subarray(0, take));
    this.kept += take;
  }

  /**
   * The body as journaled. Fields holding their proto3 default are left out: the journal's canonical
   * encoding omits them anyway (same bytes), and absent keys cost its encoder nothing.
   */
  snapshot(): HttpBody {
    if (this.last !== null) return this.last;
    // Keys in field-number order (content_type 1, size 2, …): the journal's encoder then sorts nothing.
    const body: HttpBody = this.contentType === '' ? { size: String(this.size) } : { contentType: this.contentType, size: String(this.size) };
    if (this.mode === 'omit') {
      if (this.size > 0) body.omitted = true;
    } else {
      if (this.size > this.kept) body.truncated = true;
      // Text is decoded (a copy) at once, so one chunk needs no concatenation; bytes are always copied.
      let content: Buffer = this.mode === 'text' && this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.kept);
      for (const secret of this.secrets) content = replaceAll(content, typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret, REDACTED_BYTES);
      // A cut can fall inside a UTF-8 sequence; the decoder's replacement character marks it.
      if (this.mode === 'text') body.text = content.toString('utf8');
      else body.data = content;
    }
    this.last = body;
    return body;
  }
}

const REDACTED_BYTES = Buffer.from(REDACTED, 'utf8');

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

import type { HttpBody } from '../../proto/generated/gapwatch/v1/HttpBody';
import type { HttpExchange } from '../../proto/generated/gapwatch/v1/HttpExchange';
import type { HttpHeader } from '../../proto/generated/gapwatch/v1/HttpHeader';
import type { HttpRequest } from '../../proto/generated/gapwatch/v1/HttpRequest';
import type { PolicyDecision } from '../../proto/generated/gapwatch/v1/PolicyDecision';
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

/** What requestRecord() reads of a request as Node's parser gave it (an IncomingMessage). */
export interface RequestLine {
  method?: string | undefined;
  httpVersion: string;
}

/** What requestRecord() reads of an admitted request: its normalised target and allowing rule. */
export interface AdmittedRequest {
  path: string;
  query: string;
  rule: string | null;
  heads: { host: string | undefined };
}

/**
 * The record of a request about to go upstream (written ahead of forwarding): what was asked, of
 * which resource, under which rule; `body` is the excerpt read so far, `upgrade` marks a WebSocket.
 * Empty values are left out: the journal's canonical encoding omits proto3 defaults anyway.
 * native/addon/http-records.cc writes the same record from wire bytes (parity-tested): keep them in step.
 */
export function requestRecord(req: RequestLine, admitted: AdmittedRequest, exchangeId: number, headers: HttpHeader[], body: HttpBody | null, upgrade: boolean): HttpRequest {
  // Keys in field-number order: the encoder then has nothing to sort.
  const record: HttpRequest = { exchangeId, method: req.method ?? '', path: admitted.path };
  if (admitted.query !== '') record.query = admitted.query;
  if (admitted.heads.host !== undefined) record.host = admitted.heads.host;
  record.httpVersion = req.httpVersion;
  record.headers = headers;
  if (body !== null) record.body = body;
  if (admitted.rule !== null) record.policyRule = admitted.rule;
  if (upgrade) record.upgrade = true;
  return record;
}

/** What exchangeRecord() reads of a proxied request (the listener's Exchange). */
export interface ExchangeState {
  readonly method: string;
  readonly exchangeId: number;
  readonly admitted: { readonly path: string; readonly query: string };
  readonly requestBody: BodyRecorder;
  /** The request record written ahead holds the whole body's excerpt: the outcome gives its type and size only. */
  readonly requestBodyInRecord: boolean;
  /** The request's headers and allowing rule, when no request record was written ahead. */
  readonly requestHeaders: HttpHeader[] | null;
  readonly policyRule: string | null;
  /** A review's decision. */
  readonly policy: PolicyDecision | null;
}

/** The upstream's answer, when one arrived. */
export interface ExchangeResponse {
  body: BodyRecorder;
  headers: HttpHeader[];
  firstByteNano: bigint;
}

/**
 * An exchange's outcome record. Empty values are left out (the canonical encoding omits them
 * anyway) and keys go in field-number order, so the encoder has nothing to skip or sort. Like
 * requestRecord(), mirrored in native/addon/http-records.cc.
 */
export function exchangeRecord(x: ExchangeState, status: number, error: string, durationNano: bigint, response: ExchangeResponse | null): HttpExchange {
  const { requestBody, admitted } = x;
  const outcome: HttpExchange = { method: x.method, path: admitted.path };
  if (status !== 0) outcome.status = status;
  outcome.requestBytes = String(requestBody.size);
  if (response !== null) outcome.responseBytes = String(response.body.size);
  if (admitted.query !== '') outcome.query = admitted.query;
  outcome.exchangeId = x.exchangeId;
  if (response !== null) outcome.responseHeaders = response.headers;
  outcome.requestBody = x.requestBodyInRecord ? requestBody.reference() : requestBody.snapshot();
  if (response !== null) outcome.responseBody = response.body.snapshot();
  outcome.durationNano = String(durationNano);
  if (response !== null) outcome.firstByteNano = String(response.firstByteNano);
  if (error !== '') outcome.error = error;
  if (x.policy !== null) outcome.policy = x.policy;
  if (x.requestHeaders !== null) outcome.requestHeaders = x.requestHeaders;
  if (x.policyRule !== null) outcome.policyRule = x.policyRule;
  return outcome;
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

  /** The body's type and size, its excerpt being in another record (HttpBody.in_request_record). */
  reference(): HttpBody {
    const body: HttpBody = this.contentType === '' ? { size: String(this.size) } : { contentType: this.contentType, size: String(this.size) };
    body.inRequestRecord = true;
    return body;
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

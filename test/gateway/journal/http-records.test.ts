import assert from 'node:assert/strict';
import { loadGatewayAddon } from '../../../native/binding';
import { decodeRecord, encodeRecord } from '../../../gateway/journal/canonical-encoding';
import { chainRecord, recordHash, recordSuffix, ZERO_HASH } from '../../../gateway/journal/record-chain';
import { BodyRecorder, exchangeRecord, recordHeaders, requestRecord, type ExchangeResponse } from '../../../gateway/http/audit-format';
import type { PolicyDecision } from '../../../proto/generated/gapwatch/v1/PolicyDecision';
import type { SessionEvent } from '../../../proto/generated/gapwatch/v1/SessionEvent';
import { seededRandom as random } from '../../support/seeded-random';

/**
 * The C++ encoder of the HTTP gateway's two records per exchange (native/addon/http-records.cc)
 * against the JavaScript: from the same wire bytes and recording options, the listener's record
 * (built with its own requestRecord, exchangeRecord, recordHeaders and BodyRecorder from the strings
 * Node's parser gives) and the native one (header selection and body excerpt done in C++ from the raw
 * bytes) must give the same suffix bytes, or the native data path's records would not hash and verify
 * like the JavaScript listener's.
 */

interface RecordingOptions {
  recordedHeaders: string[];
  redactedHeaders: string[];
  bodyBytes: number;
  binaryBodies: boolean;
}

interface HttpRecordsHook {
  encodeHttpRecordForTest(kind: 'request' | 'exchange', timeUnixNano: bigint, event: object, options: RecordingOptions): Buffer;
}

let hookProblem: string | null = null;

/** The addon's parity-test hook (native/addon/http-records-binding.cc). */
function loadHook(): HttpRecordsHook | null {
  const { exports, problem } = loadGatewayAddon();
  const hook = exports as Partial<HttpRecordsHook> | null;
  if (hook && typeof hook.encodeHttpRecordForTest === 'function') return hook as HttpRecordsHook;
  hookProblem = problem ?? 'gapwatch_gateway.node predates encodeHttpRecordForTest (rebuild it)';
  return null;
}

function requireNative(): HttpRecordsHook {
  const loaded = loadHook();
  if (loaded) return loaded;
  // The addon is part of every setup (npm test builds it): a missing one is a failure, never a skip.
  throw new Error(`the native HTTP record encoder is not available (npm run setup builds it): ${hookProblem}`);
}

// What arrived on the wire, from which both sides build their records.

interface WireBody {
  /** The Content-Type and Content-Encoding header values. */
  contentType: Buffer;
  contentEncoding: Buffer;
  chunks: Buffer[];
  /** The credential the gateway injected, kept out of the excerpt. */
  secrets: Buffer[];
}

interface WireRequest {
  exchangeId: number;
  method: Buffer | null;
  path: Buffer;
  query: Buffer;
  host: Buffer | null;
  httpVersion: Buffer;
  /** name, value, name, value … */
  rawHeaders: Buffer[];
  body: WireBody | null;
  policyRule: Buffer | null;
  upgrade: boolean;
}

type ActionName = NonNullable<PolicyDecision['action']>;
const ACTIONS: ActionName[] = [
  'POLICY_ACTION_UNSPECIFIED',
  'POLICY_ACTION_ALLOW',
  'POLICY_ACTION_DENY',
  'POLICY_ACTION_APPROVED',
  'POLICY_ACTION_REJECTED',
  'POLICY_ACTION_MASK',
  'POLICY_ACTION_REVIEW',
  'POLICY_ACTION_TIMED_OUT',
];

interface WirePolicy {
  action: number;
  rule: Buffer;
  reviewer: Buffer;
  reason: Buffer;
  reviewId: Buffer;
  statement: Buffer;
  classes: Buffer[];
}

interface WireExchange {
  method: Buffer;
  path: Buffer;
  status: number;
  query: Buffer;
  exchangeId: number;
  requestBody: WireBody;
  /** The request record written ahead holds the whole body: the outcome gives type and size only. */
  requestBodyInRecord: boolean;
  response: { rawHeaders: Buffer[]; body: WireBody; firstByteNano: bigint } | null;
  durationNano: bigint;
  error: Buffer;
  policy: WirePolicy | null;
  /** Without a write-ahead request record, the request's headers go into the outcome. */
  requestRawHeaders: Buffer[] | null;
  policyRule: Buffer | null;
}

interface WireEvent {
  recordTime: bigint;
  sessionId: Buffer;
  eventSeq: bigint;
  timeUnixNano: bigint;
}

const NONE = Buffer.alloc(0);
const text = (s: string): Buffer => Buffer.from(s, 'utf8');
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');
const utf8 = (b: Buffer): string => b.toString('utf8');
const latin1 = (b: Buffer): string => b.toString('latin1');
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const jsUint64 = (n: bigint): number | string => (n <= MAX_SAFE ? Number(n) : n.toString());

const OPTIONS: RecordingOptions = {
  recordedHeaders: ['content-type', 'user-agent', 'authorization', 'proxy-authorization', 'x-authorization', 'cookie', 'set-cookie', 'x-api-key', 'accept', 'x-caf\u00e9', '\u00e0-upper'],
  redactedHeaders: ['authorization', 'proxy-authorization', 'x-authorization', 'cookie', 'set-cookie', 'x-api-key', 'x-not-recorded'],
  bodyBytes: 64,
  binaryBodies: false,
};

const HEAD: WireEvent = { recordTime: 1_764_150_000_000_000_000n, sessionId: text('01JHTTPSESSION00000000001'), eventSeq: 9n, timeUnixNano: 1_764_150_000_000_000_321n };

function body(contentType: string, chunks: Buffer[], fields: Partial<WireBody> = {}): WireBody {
  return { contentType: bytes(contentType), contentEncoding: NONE, chunks, secrets: [], ...fields };
}

function wireRequest(fields: Partial<WireRequest> = {}): WireRequest {
  return {
    exchangeId: 1,
    method: text('GET'),
    path: text('/v1/items'),
    query: NONE,
    host: text('api.example.test'),
    httpVersion: text('1.1'),
    rawHeaders: [],
    body: null,
    policyRule: null,
    upgrade: false,
    ...fields,
  };
}

function wireExchange(fields: Partial<WireExchange> = {}): WireExchange {
  return {
    method: text('GET'),
    path: text('/v1/items'),
    status: 200,
    query: NONE,
    exchangeId: 1,
    requestBody: body('', []),
    requestBodyInRecord: false,
    response: null,
    durationNano: 1_500_000n,
    error: NONE,
    policy: null,
    requestRawHeaders: null,
    policyRule: null,
    ...fields,
  };
}

// The JavaScript side: the listener's own functions, fed what Node gives it (latin1 strings from its parser).

function recorder(b: WireBody, o: RecordingOptions, chunks: readonly Buffer[] = b.chunks): BodyRecorder {
  const r = new BodyRecorder(latin1(b.contentType), latin1(b.contentEncoding), o.bodyBytes, o.binaryBodies, b.secrets);
  for (const chunk of chunks) r.push(chunk);
  return r;
}

function jsHeaders(raw: Buffer[], o: RecordingOptions): ReturnType<typeof recordHeaders> {
  return recordHeaders(raw.map(latin1), new Set(o.recordedHeaders), new Set(o.redactedHeaders));
}

function jsHead(e: WireEvent): Pick<SessionEvent, 'sessionId' | 'eventSeq' | 'timeUnixNano'> {
  return { sessionId: utf8(e.sessionId), eventSeq: jsUint64(e.eventSeq), timeUnixNano: e.timeUnixNano.toString() };
}

function nativeHead(e: WireEvent): object {
  return { sessionId: e.sessionId, eventSeq: e.eventSeq, timeUnixNano: e.timeUnixNano.toString() };
}

function jsRequest(r: WireRequest, o: RecordingOptions, requestBody: BodyRecorder | null): SessionEvent['httpRequest'] {
  const req = { method: r.method === null ? undefined : latin1(r.method), httpVersion: latin1(r.httpVersion) };
  const admitted = { path: latin1(r.path), query: latin1(r.query), rule: r.policyRule === null ? null : utf8(r.policyRule), heads: { host: r.host === null ? undefined : latin1(r.host) } };
  return requestRecord(req, admitted, r.exchangeId, jsHeaders(r.rawHeaders, o), requestBody === null ? null : requestBody.snapshot(), r.upgrade);
}

function jsPolicy(p: WirePolicy): PolicyDecision {
  return { action: ACTIONS[p.action]!, rule: utf8(p.rule), reviewer: utf8(p.reviewer), reason: utf8(p.reason), reviewId: utf8(p.reviewId), statement: utf8(p.statement), classes: p.classes.map(utf8) };
}

function jsExchange(x: WireExchange, o: RecordingOptions, requestBody: BodyRecorder): SessionEvent['http'] {
  const state = {
    method: latin1(x.method),
    exchangeId: x.exchangeId,
    admitted: { path: latin1(x.path), query: latin1(x.query) },
    requestBody,
    requestBodyInRecord: x.requestBodyInRecord,
    requestHeaders: x.requestRawHeaders === null ? null : jsHeaders(x.requestRawHeaders, o),
    policyRule: x.policyRule === null ? null : utf8(x.policyRule),
    policy: x.policy === null ? null : jsPolicy(x.policy),
  };
  const response: ExchangeResponse | null = x.response === null ? null : { body: recorder(x.response.body, o), headers: jsHeaders(x.response.rawHeaders, o), firstByteNano: x.response.firstByteNano };
  return exchangeRecord(state, x.status, utf8(x.error), x.durationNano, response);
}

function nativeRequest(r: WireRequest): object {
  return { ...r, method: r.method ?? undefined };
}

function nativeExchange(x: WireExchange): object {
  return { ...x, response: x.response && { ...x.response, firstByteNano: x.response.firstByteNano.toString() }, durationNano: x.durationNano.toString() };
}

function requestSuffixes(native: HttpRecordsHook, e: WireEvent, r: WireRequest, o: RecordingOptions = OPTIONS): [Buffer, Buffer] {
  const js = recordSuffix(e.recordTime, { event: { ...jsHead(e), httpRequest: jsRequest(r, o, r.body === null ? null : recorder(r.body, o)) } });
  const cc = native.encodeHttpRecordForTest('request', e.recordTime, { ...nativeHead(e), httpRequest: nativeRequest(r) }, o);
  return [cc, js];
}

function exchangeSuffixes(native: HttpRecordsHook, e: WireEvent, x: WireExchange, o: RecordingOptions = OPTIONS): [Buffer, Buffer] {
  const js = recordSuffix(e.recordTime, { event: { ...jsHead(e), http: jsExchange(x, o, recorder(x.requestBody, o)) } });
  const cc = native.encodeHttpRecordForTest('exchange', e.recordTime, { ...nativeHead(e), http: nativeExchange(x) }, o);
  return [cc, js];
}

function assertSame([cc, js]: [Buffer, Buffer], what: string): void {
  if (cc.equals(js)) return;
  let at = 0;
  while (at < cc.length && at < js.length && cc[at] === js[at]) at++;
  const around = (b: Buffer): string => b.subarray(Math.max(0, at - 16), at + 16).toString('hex');
  assert.fail(`${what}: C++ ${cc.length} bytes, JavaScript ${js.length}; first difference at ${at}: C++ …${around(cc)}… JavaScript …${around(js)}…`);
}

/** Both records with a body of this shape, as request and response body alike. */
function assertBody(native: HttpRecordsHook, b: WireBody, what: string, o: RecordingOptions = OPTIONS): void {
  assertSame(requestSuffixes(native, HEAD, wireRequest({ method: text('POST'), body: b }), o), `${what}: request record`);
  assertSame(exchangeSuffixes(native, HEAD, wireExchange({ requestBody: b }), o), `${what}: request body of the outcome`);
  assertSame(exchangeSuffixes(native, HEAD, wireExchange({ response: { rawHeaders: [], body: b, firstByteNano: 1n } }), o), `${what}: response body`);
}

const decodedBody = (cc: Buffer): NonNullable<NonNullable<SessionEvent['httpRequest']>['body']> => decodeRecord(cc).event!.httpRequest!.body!;

describe('gateway/journal HTTP records in C++ (native/addon/http-records.cc) against the JavaScript listener', () => {
  it('a typical write-ahead request and its outcome, with headers, bodies, a review decision and a rule', () => {
    const native = requireNative();
    const rawHeaders = [text('Host'), text('api.example.test'), text('User-Agent'), text('agent/1.0'), text('Authorization'), text('Bearer sk-live-123'), text('Content-Type'), text('application/json'), text('Accept'), text('*/*')];
    const json = text('{"name":"widget","secret":"sk-live-123"}');
    const requestBody = body('application/json', [json]);
    const request = wireRequest({ method: text('POST'), query: text('dry_run=1&x=%20'), rawHeaders, body: requestBody, policyRule: text('writes-need-review') });
    assertSame(requestSuffixes(native, HEAD, request), 'request');
    const response = { rawHeaders: [text('Content-Type'), text('application/json; charset=utf-8'), text('Set-Cookie'), text('session=abc')], body: body('application/json; charset=utf-8', [text('{"id":7,"echo":"sk-live-123"}')], { secrets: [text('sk-live-123')] }), firstByteNano: 800_000n };
    const policy: WirePolicy = { action: 3, rule: text('writes-need-review'), reviewer: text('alice'), reason: NONE, reviewId: text('rv-01'), statement: text('POST /v1/items?dry_run=1'), classes: [text('write')] };
    const outcome = wireExchange({ method: text('POST'), status: 201, query: request.query, requestBody, response, policy, requestRawHeaders: rawHeaders, policyRule: text('writes-need-review') });
    // Written ahead with the whole body, the outcome refers to the request record for it.
    assertSame(exchangeSuffixes(native, HEAD, { ...outcome, requestBodyInRecord: true, requestRawHeaders: null, policyRule: null }), 'outcome whose body is in the request record');
    const [cc, js] = exchangeSuffixes(native, HEAD, outcome);
    assertSame([cc, js], 'outcome');
    const http = decodeRecord(cc).event!.http!;
    assert.equal(http.responseBody!.text, '{"id":7,"echo":"[redacted]"}');
    assert.deepEqual(http.requestHeaders.map((h) => [h.name, h.value]), [['user-agent', 'agent/1.0'], ['authorization', 'Bearer [redacted]'], ['content-type', 'application/json'], ['accept', '*/*']]);
  });

  it('empty and absent fields: defaults omitted, present bodies written as (zero-length) messages', () => {
    const native = requireNative();
    const zero: WireEvent = { recordTime: 0n, sessionId: NONE, eventSeq: 0n, timeUnixNano: 0n };
    const empty = body('', []);
    for (const head of [HEAD, zero]) {
      const bare = wireRequest({ exchangeId: 0, method: null, path: NONE, host: null, httpVersion: NONE });
      assertSame(requestSuffixes(native, head, bare), 'a request with every field at its default');
      assertSame(requestSuffixes(native, head, { ...bare, method: NONE, host: NONE, policyRule: NONE }), 'empty strings');
      assertSame(requestSuffixes(native, head, { ...bare, body: empty }), 'an empty body is present');
      assertSame(requestSuffixes(native, head, { ...bare, upgrade: true }), 'an upgrade');
      const none = wireExchange({ method: NONE, path: NONE, status: 0, exchangeId: 0, requestBody: empty, durationNano: 0n });
      assertSame(exchangeSuffixes(native, head, none), 'an outcome with every field at its default');
      assertSame(exchangeSuffixes(native, head, { ...none, response: { rawHeaders: [], body: empty, firstByteNano: 0n } }), 'an empty response');
      assertSame(exchangeSuffixes(native, head, { ...none, requestRawHeaders: [], policyRule: NONE }), 'no request headers, an empty rule');
      const emptyPolicy: WirePolicy = { action: 0, rule: NONE, reviewer: NONE, reason: NONE, reviewId: NONE, statement: NONE, classes: [NONE] };
      assertSame(exchangeSuffixes(native, head, { ...none, policy: emptyPolicy }), 'an empty policy decision is present');
    }
    const [cc] = requestSuffixes(native, HEAD, wireRequest({ body: empty }));
    assert.notEqual(decodedBody(cc), null, 'an empty body is written');
    assert.equal(decodeRecord(requestSuffixes(native, HEAD, wireRequest())[0]).event!.httpRequest!.body, null);
    const text0 = decodedBody(requestSuffixes(native, HEAD, wireRequest({ body: body('text/plain', []) }))[0]);
    assert.equal(text0.content, 'text', 'an empty text excerpt is a present oneof member');
    const data0 = decodedBody(requestSuffixes(native, HEAD, wireRequest({ body: body('image/png', []) }), { ...OPTIONS, binaryBodies: true })[0]);
    assert.equal(data0.content, 'data', 'empty data likewise');
  });

  it('header names and values with latin1 bytes 0x80-0xFF, lower-cased as toLowerCase() does', () => {
    const native = requireNative();
    const rawHeaders = [
      bytes('X-CAF\u00c9'), bytes('caf\u00e9 \u00ff\u0080\u00a0'), // É lower-cases to é: selected as x-café
      bytes('\u00c0-UPPER'), bytes('\u00d7\u00df\u00de'),
      bytes('\u00c0-upper'), hex('c3a9 e282ac f09f9880'), // UTF-8 bytes on the wire are latin1 characters too
      bytes('X-\u00d7'), bytes('not selected: × has no lower case'),
      bytes('Content-Type'), hex('80 81 fe ff'),
      bytes('Accept'), NONE,
      bytes('User-Agent'), bytes('\u00e9'.repeat(100)), // a value whose UTF-8 passes 127 bytes
    ];
    const options = { ...OPTIONS, recordedHeaders: [...OPTIONS.recordedHeaders, 'x-\u00f7', 'x-\u0100'] };
    const [cc, js] = requestSuffixes(native, HEAD, wireRequest({ rawHeaders }), options);
    assertSame([cc, js], 'latin1 headers');
    const headers = decodeRecord(cc).event!.httpRequest!.headers;
    assert.deepEqual(headers[0], { name: 'x-caf\u00e9', value: 'caf\u00e9 \u00ff\u0080\u00a0' });
    assert.equal(headers.length, 6);
    assertSame(exchangeSuffixes(native, HEAD, wireExchange({ requestRawHeaders: rawHeaders, response: { rawHeaders, body: body('', []), firstByteNano: 5n } }), options), 'latin1 headers in the outcome');
    // A configured name above U+00FF can match no header; an odd last entry is no header.
    assertSame(requestSuffixes(native, HEAD, wireRequest({ rawHeaders: [bytes('X-\u0100'), text('v'), text('Accept')] }), options), 'names beyond latin1');
  });

  it('redaction: an Authorization keeps its scheme, other credentials nothing', () => {
    const native = requireNative();
    const values = ['Bearer sk-1', 'Basic dXNlcjpwYXNz', 'bearer  two spaces', 'Bearer', 'Bearer\ttab', 'Bearer\tsk-1 x', 'token-only', '', ' Bearer leading-space', '1abc def', 'a._~+-b c', 'Sch\u00e9me x', 'Digest username="a", realm="b"', 'X y', 'Bearer é'];
    const names = ['Authorization', 'AUTHORIZATION', 'proxy-authorization', 'X-Authorization', 'Cookie', 'Set-Cookie', 'x-api-key', 'x-not-recorded'];
    const rawHeaders = names.flatMap((name) => values.flatMap((value) => [bytes(name), bytes(value)]));
    const [cc, js] = requestSuffixes(native, HEAD, wireRequest({ rawHeaders }));
    assertSame([cc, js], 'redacted headers');
    const headers = decodeRecord(cc).event!.httpRequest!.headers;
    assert.deepEqual(headers.slice(0, 4).map((h) => h.value), ['Bearer [redacted]', 'Basic [redacted]', 'bearer [redacted]', '[redacted]']);
    assert.ok(headers.filter((h) => h.name === 'cookie').every((h) => h.value === '[redacted]'));
    assert.ok(!headers.some((h) => h.name === 'x-not-recorded'), 'a redacted name is recorded only when selected');
    // Redacted but recorded as sent when the redaction list is empty.
    assertSame(requestSuffixes(native, HEAD, wireRequest({ rawHeaders }), { ...OPTIONS, redactedHeaders: [] }), 'nothing redacted');
    assertSame(requestSuffixes(native, HEAD, wireRequest({ rawHeaders }), { ...OPTIONS, recordedHeaders: [] }), 'nothing recorded');
  });

  it('content types: textual or not, as isTextual() reads them', () => {
    const native = requireNative();
    const types = [
      'text/plain', 'text/html; charset=utf-8', 'TEXT/CSV', ' \tApplication/JSON \r', 'application/json;', 'application/vnd.api+json', 'image/svg+xml',
      'application/x-www-form-urlencoded', 'application/javascript', 'application/graphql', 'application/x-ndjson', 'application/yaml', 'application/XML',
      'application/octet-stream', 'image/png', 'text', 'text/', 'texT/', '\u00a0text/plain\u00a0', '\u0085text/plain', '\u000btext/x\u000c', 'application/json x',
      'application/jsonp', '+json', 'a+JSON', 'x+xml ; q=1', ';text/plain', '', ' ', 'multipart/form-data; boundary=x', '\u00c0pplication/json', 'text/\u00e9',
    ];
    const chunk = text('{"k":"v","é":1}');
    for (const contentType of types) {
      for (const binaryBodies of [false, true]) assertBody(native, body(contentType, [chunk]), `${JSON.stringify(contentType)}, binaryBodies ${binaryBodies}`, { ...OPTIONS, binaryBodies });
    }
    const textual = (contentType: string): boolean => decodedBody(requestSuffixes(native, HEAD, wireRequest({ body: body(contentType, [chunk]) }))[0]).content === 'text';
    assert.equal(textual(' \tApplication/JSON \r'), true);
    assert.equal(textual('\u00a0text/plain\u00a0'), true, 'NBSP is trimmed');
    assert.equal(textual('\u0085text/plain'), false, 'NEL is not');
    assert.equal(textual('application/jsonp'), false);
  });

  it('bodies: cut mid-sequence, invalid UTF-8, binary on and off, encodings, limit 0, truncation, chunks', () => {
    const native = requireNative();
    const small = { ...OPTIONS, bodyBytes: 5 };
    assertBody(native, body('text/plain', [text('abcdé')]), 'a cut inside é', small);
    assertBody(native, body('text/plain', [text('ab😀')]), 'a cut inside a 4-byte sequence', small);
    assertBody(native, body('text/plain', [text('abcd'), text('😀'), text('xyz')]), 'a cut inside a sequence across chunks', small);
    assertBody(native, body('text/plain', [hex('ff fe c0 af ed a0 80 f4 90 80 80 e2 82 41')]), 'invalid UTF-8');
    assertBody(native, body('text/plain', [hex('e2'), hex('82'), hex('ac'), hex('f0 9f'), hex('98 80')]), 'sequences split across chunks');
    const png = hex('89 50 4e 47 0d 0a 1a 0a 00 00 00 0d 49 48 44 52 ff');
    for (const binaryBodies of [false, true]) {
      const o = { ...OPTIONS, binaryBodies };
      assertBody(native, body('image/png', [png]), `binary, binaryBodies ${binaryBodies}`, o);
      assertBody(native, body('application/octet-stream', [png, png, png, png, png]), `binary, truncated, binaryBodies ${binaryBodies}`, o);
      for (const encoding of ['gzip', 'GZIP', 'br', 'identity', 'IDENTITY', 'Identity', 'identity ', 'gzip, identity', '\u00efdentity', 'identit']) {
        assertBody(native, body('application/json', [text('{"a":1}')], { contentEncoding: bytes(encoding) }), `Content-Encoding ${JSON.stringify(encoding)}, binaryBodies ${binaryBodies}`, o);
      }
      for (const contentType of ['text/plain', 'image/png', '']) {
        const off = { ...o, bodyBytes: 0 };
        assertBody(native, body(contentType, [text('anything')]), `limit 0, ${contentType || 'no type'}, binaryBodies ${binaryBodies}`, off);
        assertBody(native, body(contentType, []), `limit 0, empty, ${contentType || 'no type'}`, off);
        assertBody(native, body(contentType, [NONE, NONE]), `limit 0, empty chunks, ${contentType || 'no type'}`, off);
      }
    }
    const omitted = decodedBody(requestSuffixes(native, HEAD, wireRequest({ body: body('image/png', [png]) }))[0]);
    assert.equal(omitted.omitted, true);
    // Exactly at the limit, one byte over, chunks after the limit was reached, empty chunks.
    for (const chunks of [[text('12345')], [text('123456')], [text('12'), text('345'), text('6')], [text('12345'), text('6'), text('789')], [NONE, text('123'), NONE, text('456')]]) {
      assertBody(native, body('text/plain', chunks), `chunks ${chunks.map(utf8).join('|')}`, small);
    }
    const cut = decodedBody(requestSuffixes(native, HEAD, wireRequest({ body: body('text/plain', [text('abcdé')]) }), small)[0]);
    assert.deepEqual([cut.text, cut.truncated, cut.size], ['abcd\ufffd', true, '6']);
    // Lengths across varint boundaries.
    for (const length of [127, 128, 16_383, 16_384, 70_000]) {
      const big = { ...OPTIONS, bodyBytes: length, binaryBodies: true };
      assertBody(native, body('text/plain', [Buffer.alloc(length + 3, 'x')]), `text of ${length} bytes`, big);
      assertBody(native, body('image/png', [Buffer.alloc(length, 0xab)]), `data of ${length} bytes`, big);
    }
  });

  it('secrets: replaced in the kept excerpt only, one after another, as replaceAll does', () => {
    const native = requireNative();
    const s = (...secrets: string[]): Buffer[] => secrets.map(text);
    const cases: Array<[string, Buffer[], string[]]> = [
      ['a secret in the excerpt', [text('token=sk-live-123&x=1')], ['sk-live-123']],
      ['twice, and at both ends', [text('sk-1 and sk-1 then sk-1')], ['sk-1']],
      ['overlapping occurrences', [text('aaaaa')], ['aa']],
      ['across chunks', [text('tok=sk-li'), text('ve-123')], ['sk-live-123']],
      ['spanning the cut: kept in part, not replaced', [text('0123456789'.repeat(6) + 'sk-live-123')], ['sk-live-123']],
      ['after the cut', [text('x'.repeat(70) + 'sk-live-123')], ['sk-live-123']],
      ['an empty secret', [text('abc')], ['']],
      ['several, in order; a later one matching the first replacement', [text('one two three')], ['two', 'dact', 'one']],
      ['a secret not in the excerpt', [text('é€😀')], ['\u00a9']],
      ['non-ASCII secrets', [text('é€😀 é€😀')], ['€', 'é']],
    ];
    for (const [name, chunks, secrets] of cases) {
      for (const contentType of ['text/plain', 'image/png']) {
        assertBody(native, body(contentType, chunks, { secrets: s(...secrets) }), `${name}, ${contentType}`, { ...OPTIONS, binaryBodies: true });
      }
    }
    // A secret of raw bytes that cuts a UTF-8 sequence in two: the replacement leaves invalid bytes.
    assertBody(native, body('text/plain', [text('é€😀')], { secrets: [hex('a9 e2'), hex('98')] }), 'secret bytes inside sequences');
    const replaced = decodedBody(requestSuffixes(native, HEAD, wireRequest({ body: body('text/plain', [text('one two three')], { secrets: s('two', 'dact', 'one') }) }))[0]);
    assert.equal(replaced.text, '[redacted] [re[redacted]ed] three');
  });

  it('a request body excerpt read in part for the write-ahead record, then whole for the outcome', () => {
    const native = requireNative();
    const chunks = [text('{"part":1,'), text('"more":"é'), text('"}'), text('x'.repeat(80))];
    const wire = body('application/json', chunks);
    for (let read = 0; read <= chunks.length; read++) {
      // One recorder, as the listener keeps it: snapshot() for the request, pushes, snapshot() again.
      const js = recorder(wire, OPTIONS, chunks.slice(0, read));
      const request = wireRequest({ method: text('POST'), body: { ...wire, chunks: chunks.slice(0, read) } });
      const jsRequestRecord = recordSuffix(HEAD.recordTime, { event: { ...jsHead(HEAD), httpRequest: jsRequest(request, OPTIONS, js) } });
      assertSame([native.encodeHttpRecordForTest('request', HEAD.recordTime, { ...nativeHead(HEAD), httpRequest: nativeRequest(request) }, OPTIONS), jsRequestRecord], `request after ${read} chunks`);
      for (const chunk of chunks.slice(read)) js.push(chunk);
      const outcome = wireExchange({ method: text('POST'), requestBody: wire });
      const jsOutcome = recordSuffix(HEAD.recordTime, { event: { ...jsHead(HEAD), http: jsExchange(outcome, OPTIONS, js) } });
      assertSame([native.encodeHttpRecordForTest('exchange', HEAD.recordTime, { ...nativeHead(HEAD), http: nativeExchange(outcome) }, OPTIONS), jsOutcome], `outcome after ${read} chunks first`);
    }
  });

  it('integers at their edges and UTF-8 strings (error, rules, policy) with invalid bytes', () => {
    const native = requireNative();
    for (const n of [0, 1, 127, 128, 16_384, 0x7fffffff, 0xffffffff]) {
      assertSame(requestSuffixes(native, HEAD, wireRequest({ exchangeId: n })), `exchangeId ${n}`);
      assertSame(exchangeSuffixes(native, HEAD, wireExchange({ exchangeId: n, status: n })), `status ${n}`);
    }
    for (const n of [0n, 1n, -1n, 128n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n)]) {
      const head = { ...HEAD, recordTime: n, timeUnixNano: n };
      assertSame(requestSuffixes(native, head, wireRequest()), `times ${n}`);
      assertSame(exchangeSuffixes(native, head, wireExchange({ durationNano: n, response: { rawHeaders: [], body: body('', []), firstByteNano: n } })), `durations ${n}`);
    }
    for (const seq of [0n, 2n ** 64n - 1n]) assertSame(requestSuffixes(native, { ...HEAD, eventSeq: seq }, wireRequest()), `eventSeq ${seq}`);
    const strange = hex('41 c3 28 e2 82 ed a0 80 f0 9f 98 80 ff 42');
    const policy: WirePolicy = { action: 4, rule: strange, reviewer: strange, reason: strange, reviewId: strange, statement: strange, classes: [strange, NONE] };
    assertSame(exchangeSuffixes(native, { ...HEAD, sessionId: strange }, wireExchange({ error: strange, policyRule: strange, policy })), 'invalid UTF-8 in UTF-8 strings');
    assertSame(requestSuffixes(native, HEAD, wireRequest({ policyRule: strange, method: strange, path: strange, query: strange, host: strange, httpVersion: strange })), 'latin1 and UTF-8 strings side by side');
    for (let action = 0; action < ACTIONS.length; action++) assertSame(exchangeSuffixes(native, HEAD, wireExchange({ policy: { ...policy, action } })), `action ${action}`);
  });

  it('seeded random requests and outcomes match byte for byte, and chain as the journal chains them', () => {
    const native = requireNative();
    const seed = 0x48545450;
    const next = random(seed);
    const int = (n: number): number => Math.floor(next() * n);
    const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
    const chance = (p: number): boolean => next() < p;
    const anyBytes = (max: number): Buffer => Buffer.from(Array.from({ length: int(max + 1) }, () => (chance(0.6) ? 0x20 + int(0x5f) : int(256))));
    const utf8Pieces = ['a', 'é', '€', '😀', 'sk-', 'live', '"', ' '];
    const utf8ish = (max: number): Buffer => {
      const parts: Buffer[] = [];
      for (let n = int(max + 1); n > 0; n--) parts.push(chance(0.85) ? text(pick(utf8Pieces)) : Buffer.from([int(256)]));
      return Buffer.concat(parts);
    };
    const names = ['Content-Type', 'content-type', 'User-Agent', 'Authorization', 'AUTHORIZATION', 'Proxy-Authorization', 'Cookie', 'Set-Cookie', 'X-Api-Key', 'Accept', 'X-Other', 'X-CAF\u00c9', '\u00c0-Upper', 'Host'];
    const headerValue = (): Buffer => (chance(0.3) ? bytes(`${pick(['Bearer', 'Basic', 'token', '1x', 'a.b~c'])}${pick([' ', '', '\t', '  '])}${pick(['sk-1', '', 'é'])}`) : anyBytes(30));
    const rawHeaders = (): Buffer[] => Array.from({ length: int(8) }, () => [bytes(pick(names)), headerValue()]).flat();
    const contentTypes = ['text/plain', 'application/json; charset=utf-8', 'image/png', 'application/octet-stream', 'APPLICATION/PROBLEM+JSON', '', ' text/x ', 'application/x-ndjson'];
    const secretPool = [text('sk-live'), text('é'), hex('a9'), text('live'), NONE];
    const wireBody = (): WireBody => {
      const chunks = Array.from({ length: int(5) }, () => (chance(0.5) ? utf8ish(30) : anyBytes(chance(0.05) ? 300 : 40)));
      const secrets = chance(0.5) ? [] : Array.from({ length: 1 + int(2) }, () => pick(secretPool));
      return { contentType: bytes(pick(contentTypes)), contentEncoding: bytes(pick(['', '', 'gzip', 'identity', 'IDENTITY'])), chunks, secrets };
    };
    const options = (): RecordingOptions => ({
      recordedHeaders: chance(0.1) ? [] : OPTIONS.recordedHeaders,
      redactedHeaders: chance(0.1) ? [] : OPTIONS.redactedHeaders,
      bodyBytes: pick([0, 1, 3, 8, 40, 64, 1000]),
      binaryBodies: chance(0.5),
    });
    const maybe = <T>(p: number, make: () => T): T | null => (chance(p) ? make() : null);
    const i64 = (): bigint => pick([0n, BigInt(int(2 ** 31)), -BigInt(int(2 ** 31)), 2n ** 63n - 1n, -(2n ** 63n)]);
    const head = (): WireEvent => ({ recordTime: i64(), sessionId: chance(0.9) ? text(`01JHTTP${int(1e9)}`) : utf8ish(10), eventSeq: BigInt(int(2 ** 31)), timeUnixNano: i64() });
    const policy = (): WirePolicy => ({ action: int(8), rule: utf8ish(8), reviewer: utf8ish(4), reason: utf8ish(12), reviewId: utf8ish(4), statement: utf8ish(12), classes: Array.from({ length: int(3) }, () => utf8ish(3)) });

    const rounds = 500;
    let prevHash = ZERO_HASH;
    for (let i = 0; i < rounds; i++) {
      const o = options();
      const request = wireRequest({
        exchangeId: pick([0, 1, int(1000), 0xffffffff]),
        method: chance(0.9) ? bytes(pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', ''])) : null,
        path: bytes(pick(['/', '/v1/items', '/a%2Fb', '/x'.repeat(int(80))])),
        query: chance(0.5) ? NONE : anyBytes(20),
        host: chance(0.8) ? bytes(pick(['api.example.test', 'h\u00e9st:8080', ''])) : null,
        httpVersion: bytes(pick(['1.1', '1.0', ''])),
        rawHeaders: rawHeaders(),
        body: maybe(0.8, wireBody),
        policyRule: maybe(0.5, () => utf8ish(10)),
        upgrade: chance(0.1),
      });
      const requestPair = requestSuffixes(native, head(), request, o);
      assertSame(requestPair, `seed ${seed}, request ${i}`);
      const exchange = wireExchange({
        method: request.method ?? NONE,
        path: request.path,
        status: pick([0, 200, 404, 502, int(1000)]),
        query: request.query,
        exchangeId: request.exchangeId,
        requestBody: request.body ?? wireBody(),
        requestBodyInRecord: chance(0.5),
        response: maybe(0.7, () => ({ rawHeaders: rawHeaders(), body: wireBody(), firstByteNano: i64() })),
        durationNano: i64(),
        error: chance(0.7) ? NONE : utf8ish(20),
        policy: maybe(0.2, policy),
        requestRawHeaders: maybe(0.3, rawHeaders),
        policyRule: maybe(0.3, () => utf8ish(10)),
      });
      const exchangePair = exchangeSuffixes(native, head(), exchange, o);
      assertSame(exchangePair, `seed ${seed}, exchange ${i}`);
      if (i % 50 === 0) {
        // Chained as the journal chains them, they pass verifyJournal's per-record checks.
        for (const [suffix, seq] of [[requestPair[0], 2n * BigInt(i) + 1n], [exchangePair[0], 2n * BigInt(i) + 2n]] as const) {
          const { hash, encoded } = chainRecord('gw-test', seq, prevHash, suffix);
          const record = decodeRecord(encoded);
          assert.equal(record.body, 'event');
          assert.ok(encodeRecord(record).equals(encoded), `record ${seq} is canonical`);
          assert.ok(recordHash(record).equals(hash), `record ${seq} hashes`);
          prevHash = hash;
        }
      }
    }
  });
});

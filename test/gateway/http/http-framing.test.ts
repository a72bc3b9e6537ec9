import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { httpGatewayConfigSchema } from '../../../gateway/http/config-schema';
import { parseRequestTarget } from '../../../gateway/http/request-target';
import { UpstreamTarget, forwardHeaders, responseHeaders } from '../../../gateway/http/upstream-request';
import { loadGatewayAddon } from '../../../native/binding';
import { seededRandom } from '../../support/seeded-random';
import { readHeads } from '../../../gateway/http/listener';

/**
 * The native HTTP data path's framing (native/addon/http-framing.cc) against what it stands in for:
 * Node's own server parser (a real node:http server reads the same bytes), parseRequestTarget(),
 * forwardHeaders() and responseHeaders(). What the native path takes it must read exactly as the
 * JavaScript path does; everything unusual it must hand back.
 */

interface RequestHeadResult {
  status: 'ok' | 'incomplete' | 'handBack';
  headBytes?: number;
  method?: string;
  target?: string;
  versionMinor?: number;
  fields?: string[];
  host?: string;
  hosts?: number;
  authorization?: string;
  contentLength?: string;
  contentLengths?: number;
  transferEncodings?: number;
  expects?: number;
  upgrades?: number;
  contentType?: string;
  connection?: string;
  contentEncoding?: string;
}

interface ResponseHeadResult {
  status: 'ok' | 'incomplete' | 'bad';
  error: string;
  headBytes?: number;
  statusCode?: number;
  reason?: string;
  versionMinor?: number;
  fields?: string[];
  framing?: 'none' | 'length' | 'chunked' | 'untilClose';
  contentLength?: bigint;
  close?: boolean;
}

interface ChunkedResult {
  consumed: number;
  done: boolean;
  bad: boolean;
  error: string;
  data: Buffer;
}

interface ForwardOptions {
  urlHost: string;
  credentialHeader: string;
  credentialValue: string;
  clientIp: string;
  secure: boolean;
  contentLength: number | null;
}

interface HttpFramingHook {
  httpFramingForTest(op: 'parseRequestHead', bytes: Buffer, maxHeaderBytes: number): RequestHeadResult;
  httpFramingForTest(op: 'fastPathRequest', bytes: Buffer, maxHeaderBytes: number, maxBodyBytes: number, bufferBodyBytes: number): { status: string; fast: boolean; contentLength: number | null };
  httpFramingForTest(op: 'normaliseTarget', bytes: Buffer): { path: string; query: string } | null;
  httpFramingForTest(op: 'forwardHeaders', bytes: Buffer, maxHeaderBytes: number, options: ForwardOptions): string[] | null;
  httpFramingForTest(op: 'forwardedContentLength', method: string, bodyLength: number): number | null;
  httpFramingForTest(op: 'parseResponseHead', bytes: Buffer, maxHeaderBytes: number, requestMethod: string): ResponseHeadResult;
  httpFramingForTest(op: 'responseHeaders', bytes: Buffer, maxHeaderBytes: number, requestMethod: string): string[] | null;
  httpFramingForTest(op: 'scanChunked', pieces: Buffer[]): ChunkedResult;
}

function requireNative(): HttpFramingHook {
  const { exports, problem } = loadGatewayAddon();
  const hook = exports as Partial<HttpFramingHook> | null;
  if (hook && typeof hook.httpFramingForTest === 'function') return hook as HttpFramingHook;
  // The addon is part of every setup (npm test builds it): a missing one is a failure, never a skip.
  throw new Error(`the native HTTP framing is not available (npm run setup builds it): ${problem ?? 'gapwatch_gateway.node predates httpFramingForTest (rebuild it)'}`);
}

const MAX_HEADER = 16384;
const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');
const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const int = (random: () => number, below: number): number => Math.floor(random() * below);
/** xorshift32's first outputs for small seeds are near 0: the seed is spread first (golden-ratio multiply). */
const randomFor = (seed: number): (() => number) => seededRandom(Math.imul(seed, 0x9e3779b1));

/** A head split the simple way (valid heads only): request or status line, then name/value pairs, values without OWS. */
function splitHead(head: string): { line: string; raw: string[] } {
  const lines = head.slice(0, head.indexOf('\r\n\r\n')).split('\r\n');
  const raw: string[] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    raw.push(line.slice(0, colon), line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ''));
  }
  return { line: lines[0]!, raw };
}

/**
 * What readHeads() of listener.ts keeps (first Host/Authorization/Content-Type/Content-Length, counts,
 * ", " joins), in the shape the hook reports: Expect and Upgrade, which readHeads() joins, counted.
 */
function expectedHeads(raw: readonly string[]): Partial<RequestHeadResult> {
  const heads = readHeads(raw);
  const count = (name: string): number => raw.filter((v, i) => i % 2 === 0 && v.toLowerCase() === name).length;
  const out: Partial<RequestHeadResult> = { hosts: heads.hosts, contentLengths: heads.contentLengths, transferEncodings: heads.transferEncodings, expects: count('expect'), upgrades: count('upgrade') };
  for (const key of ['host', 'authorization', 'contentLength', 'contentType', 'connection', 'contentEncoding'] as const) if (heads[key] !== undefined) out[key] = heads[key];
  return out;
}

const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function randomToken(random: () => number, max = 12): string {
  let out = '';
  for (let n = 1 + int(random, max); n > 0; n--) out += pick(random, [...TCHARS]);
  return out;
}

/** A field value's bytes: HTAB, SP, VCHAR and obs-text, with OWS around it now and then. */
function randomValue(random: () => number): string {
  let out = '';
  for (let n = int(random, 16); n > 0; n--) {
    const r = random();
    out += r < 0.1 ? pick(random, [' ', '\t']) : r < 0.2 ? String.fromCharCode(0x80 + int(random, 0x80)) : String.fromCharCode(0x21 + int(random, 0x5e));
  }
  const ows = (): string => pick(random, ['', '', ' ', '\t', ' \t ', '  ']);
  return `${ows()}${out}${ows()}`;
}

function caseVariant(random: () => number, name: string): string {
  return [...name].map((c) => (random() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join('');
}

/** A request Node's parser takes and the native one too: served method, origin-form target, Host, no TE/Expect/Upgrade. */
function randomRequest(random: () => number, extraNames: readonly string[] = []): string {
  const method = pick(random, ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
  let target = '/';
  for (let n = int(random, 20); n > 0; n--) target += String.fromCharCode(0x21 + int(random, 0x5e));
  const lines: string[] = [];
  const optional: Array<() => string> = [
    () => `${caseVariant(random, 'content-type')}:${randomValue(random)}`,
    () => `${caseVariant(random, 'authorization')}: Bearer ${randomToken(random)}`,
    () => `${caseVariant(random, 'content-encoding')}:${randomValue(random)}`,
    () => `${caseVariant(random, 'connection')}: ${pick(random, ['keep-alive', 'close', 'Keep-Alive', 'CLOSE', `x-a, ${randomToken(random)}`, 'te', `\xa0x-b`])}`,
    () => `${caseVariant(random, pick(random, ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'keep-alive', 'te', 'trailer', 'x-a', 'x-b', 'close', 'proxy-authorization']))}:${randomValue(random)}`,
    () => `${randomToken(random)}:${randomValue(random)}`,
    ...extraNames.map((name) => () => `${caseVariant(random, name)}:${randomValue(random)}`),
  ];
  for (let n = int(random, 8); n > 0; n--) lines.push(pick(random, optional)());
  const host = (): string => `${caseVariant(random, 'host')}:${pick(random, [' api.example', 'localhost:8080', randomValue(random)])}`;
  lines.splice(int(random, lines.length + 1), 0, host());
  // Node takes a second Host (checkRequest() refuses it): readHeads() keeps the first.
  if (random() < 0.1) lines.splice(int(random, lines.length + 1), 0, host());
  let body = '';
  if (random() < 0.4) {
    const length = int(random, 20);
    lines.splice(int(random, lines.length + 1), 0, `${caseVariant(random, 'content-length')}:${pick(random, ['', ' ', '\t'])}${random() < 0.2 ? '0' : ''}${length}${pick(random, ['', ' ', '  '])}`);
    body = 'b'.repeat(length);
  }
  return `${method} ${target} HTTP/1.1\r\n${lines.map((line) => `${line}\r\n`).join('')}\r\n${body}`;
}

interface NodeReading {
  status: number;
  method?: string;
  url?: string;
  httpVersion?: string;
  rawHeaders?: string[];
}

/** A node:http server with the listener's parser settings that answers with what it read. */
async function startEchoServer(maxHeaderSize: number): Promise<Server> {
  const server = createServer({ maxHeaderSize, insecureHTTPParser: false, requireHostHeader: true }, (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      // In a header, so a HEAD request's answer carries it too.
      const reading = JSON.stringify({ method: req.method, url: req.url, httpVersion: req.httpVersion, rawHeaders: req.rawHeaders });
      res.setHeader('x-reading', Buffer.from(reading, 'utf8').toString('base64'));
      res.setHeader('connection', 'close');
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function askNode(server: Server, bytes: Buffer): Promise<NodeReading> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(text.slice(9, 12));
      const reading = /\r\nx-reading: ([A-Za-z0-9+/=]+)\r\n/.exec(text)?.[1];
      resolve(status === 200 && reading !== undefined ? { status, ...(JSON.parse(Buffer.from(reading, 'base64').toString('utf8')) as Omit<NodeReading, 'status'>) } : { status });
    });
  });
}

describe('native HTTP framing (native/addon/http-framing.cc)', () => {
  let framing: HttpFramingHook['httpFramingForTest'];
  before(() => {
    framing = requireNative().httpFramingForTest;
  });

  describe('normalise_target', () => {
    const jsTarget = (target: string): { path: string; query: string } | null => {
      try {
        return parseRequestTarget(target);
      } catch {
        return null;
      }
    };

    it('reads every hand-picked target as parseRequestTarget() does, refusing where it throws', () => {
      const targets = [
        '/', '/a/b?x=1&y=%2F', '/%61dmin/%7euser', '//admin///users/', '/a/./b/../c', '/a/b/..', '/a/%2e%2E/admin', '/caf%c3%a9', '/a/b/',
        '/a.b/c..d/e.?q=/./..//', '/.well-known/x', '/a/.', '/..', '/.', '/./', '/a/..', '/a/../..', '/%2e', '/%2e%2e', '/a/%2E./b', '/a?', '/?',
        '/a?b?c', '/a//', '//', '///', '/%41%42%5a%7E%2D%2E%5F', '/%3a%3A%40', '/%25', '/%2525', '/%', '/%4', '/%4g', '/a%2Fb', '/a%2fb', '/a%5cb',
        '/a%00', '/a%2F', 'http://evil/x', '*', '', 'a', '/a#frag', '/a\\b', '/a b', '/a\x7f', '/caf\xe9', '/a\x00', '/a?b#c', '/a?%zz', '/.%2e/',
        '/a/b/../../..', `/${'a'.repeat(8191)}`, `/${'a'.repeat(8192)}`, `/${'a/..'.repeat(1000)}/b`,
      ];
      for (const target of targets) assert.deepEqual(framing('normaliseTarget', latin1(target)), jsTarget(target), JSON.stringify(target));
    });

    it('reads seeded random targets (escapes, dot segments, empty segments) as parseRequestTarget() does', () => {
      const pieces = ['/', '//', '.', '..', '/.', '/..', '/./', '/../', '%2e', '%2E', '%2e%2e', '%2f', '%2F', '%5c', '%00', '%41', '%7e', '%7E', '%2d', '%5f',
        '%20', '%25', '%3F', '%c3%a9', '%zz', '%4', '%', 'a', 'B', '~', '-', '_', '?', '#', '\\', ' ', '\xe9', '\x7f', ';', '=', '&', '@', ':', '+'];
      for (let seed = 1; seed <= 5000; seed++) {
        const random = randomFor(seed);
        let target = random() < 0.95 ? '/' : '';
        for (let n = int(random, 12); n > 0; n--) target += pick(random, pieces);
        assert.deepEqual(framing('normaliseTarget', latin1(target)), jsTarget(target), `seed ${seed}: ${JSON.stringify(target)}`);
      }
    });
  });

  describe('parse_request_head', () => {
    let server: Server;
    before(async () => {
      server = await startEchoServer(MAX_HEADER);
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("reads seeded random requests as Node's own server does: method, target, fields, and readHeads()'s values", async () => {
      for (let seed = 1; seed <= 300; seed++) {
        const request = randomRequest(randomFor(seed));
        const bytes = latin1(request);
        const node = await askNode(server, bytes);
        assert.equal(node.status, 200, `seed ${seed}: Node refused ${JSON.stringify(request)}`);
        const parsed = framing('parseRequestHead', bytes, MAX_HEADER);
        assert.equal(parsed.status, 'ok', `seed ${seed}: ${JSON.stringify(request)}`);
        assert.equal(parsed.headBytes, request.indexOf('\r\n\r\n') + 4, `seed ${seed}`);
        assert.equal(parsed.method, node.method, `seed ${seed}`);
        assert.equal(parsed.target, node.url, `seed ${seed}`);
        assert.equal(`1.${parsed.versionMinor}`, node.httpVersion, `seed ${seed}`);
        assert.deepEqual(parsed.fields, node.rawHeaders, `seed ${seed}`);
        const expected = expectedHeads(node.rawHeaders!);
        for (const key of Object.keys(expected) as Array<keyof RequestHeadResult>) assert.deepEqual(parsed[key], expected[key], `seed ${seed}: ${key}`);
        for (const key of ['host', 'authorization', 'contentLength', 'contentType', 'connection', 'contentEncoding'] as const) {
          if (!(key in expected)) assert.equal(parsed[key], undefined, `seed ${seed}: ${key}`);
        }
      }
    });

    it('says incomplete for every proper prefix of a head it takes, and reads the head alone the same', () => {
      for (let seed = 1; seed <= 40; seed++) {
        const request = randomRequest(randomFor(seed));
        const head = request.slice(0, request.indexOf('\r\n\r\n') + 4);
        const whole = framing('parseRequestHead', latin1(request), MAX_HEADER);
        for (let cut = 0; cut < head.length; cut++) {
          assert.equal(framing('parseRequestHead', latin1(head.slice(0, cut)), MAX_HEADER).status, 'incomplete', `seed ${seed} cut ${cut}`);
        }
        assert.deepEqual(framing('parseRequestHead', latin1(head), MAX_HEADER), whole, `seed ${seed}`);
      }
    });

    it('hands back every head Node refuses as too large, and one of max bytes or more', async () => {
      const max = 1024;
      const small = await startEchoServer(max);
      try {
        for (let n = 940; n <= 1060; n++) {
          for (const request of [
            `GET /${'a'.repeat(n)} HTTP/1.1\r\nHost: x\r\n\r\n`,
            `GET / HTTP/1.1\r\nHost: x\r\nX-${'a'.repeat(n - 20)}: y\r\n\r\n`,
            `GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(n - 20)}   \r\n\r\n`,
          ]) {
            const node = await askNode(small, latin1(request));
            const parsed = framing('parseRequestHead', latin1(request), max);
            if (node.status !== 200) assert.equal(parsed.status, 'handBack', `${request.length} bytes: Node answered ${node.status}`);
            const head = request.length;
            assert.equal(parsed.status, head >= max ? 'handBack' : 'ok', `${head} bytes`);
            // Cut short, a head that cannot end below the limit is handed back at once.
            assert.equal(framing('parseRequestHead', latin1(request.slice(0, -2)), max).status, head - 2 >= max ? 'handBack' : 'incomplete', `${head} bytes, cut`);
          }
        }
      } finally {
        await new Promise<void>((resolve) => small.close(() => resolve()));
      }
    });

    it('never takes a smuggling, malformed or unserved request (the JavaScript path answers those)', async () => {
      const corpus: Array<[string, string]> = [
        ['Content-Length and Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
        ['Transfer-Encoding and Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n'],
        ['two equal Content-Lengths', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx'],
        ['two different Content-Lengths', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy'],
        ['a Content-Length list', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nx'],
        ['a signed Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx'],
        ['a hex Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x1\r\n\r\nx'],
        ['an empty Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n'],
        ['HTAB after the Content-Length digits (llhttp refuses it)', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\t\r\n\r\nx'],
        ['SP HTAB after the Content-Length digits', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 \t\r\n\r\nx'],
        ['a 16-digit Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n'],
        ['Transfer-Encoding: chunked', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
        ['Transfer-Encoding: identity', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n'],
        ['Transfer-Encoding: gzip, chunked', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
        ['obs-fold', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n'],
        ['obs-fold with HTAB', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n'],
        ['whitespace before the first field', 'GET / HTTP/1.1\r\n Host: x\r\n\r\n'],
        ['a bare LF ending the request line', 'GET / HTTP/1.1\nHost: x\r\n\r\n'],
        ['a bare LF ending a field', 'GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n'],
        ['a bare LF ending the head', 'GET / HTTP/1.1\r\nHost: x\r\n\n'],
        ['LF LF', 'GET / HTTP/1.1\nHost: x\n\n'],
        ['a bare CR', 'GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n'],
        ['a space before the colon', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n'],
        ['an HTAB before the colon', 'GET / HTTP/1.1\r\nHost\t: x\r\n\r\n'],
        ['an empty field name', 'GET / HTTP/1.1\r\nHost: x\r\n: y\r\n\r\n'],
        ['a field name with a non-token byte', 'GET / HTTP/1.1\r\nHost: x\r\nX(y): z\r\n\r\n'],
        ['a line without a colon', 'GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n'],
        ['NUL in a value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n'],
        ['DEL in a value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n'],
        ['a VT in a value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x0bb\r\n\r\n'],
        ['NUL in the target', 'GET /a\x00 HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['obs-text in the target', 'GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['absolute-form', 'GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['asterisk-form', 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['authority-form', 'CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n'],
        ['HTTP/1.0', 'GET / HTTP/1.0\r\nHost: x\r\n\r\n'],
        ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n'],
        ['HTTP/1.1 in lower case', 'GET / http/1.1\r\nHost: x\r\n\r\n'],
        ['a space after the version', 'GET / HTTP/1.1 \r\nHost: x\r\n\r\n'],
        ['two spaces after the method', 'GET  / HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['an HTAB after the method', 'GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['two spaces before the version', 'GET /  HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['a leading CRLF', '\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['a method in lower case', 'get / HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['TRACE', 'TRACE / HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['an unknown method', 'PURGE / HTTP/1.1\r\nHost: x\r\n\r\n'],
        ['no Host', 'GET / HTTP/1.1\r\nX: y\r\n\r\n'],
        ['two Hosts', 'GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n'],
        ['two equal Hosts', 'GET / HTTP/1.1\r\nHost: x\r\nhost: x\r\n\r\n'],
        ['Expect: 100-continue', 'POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx'],
        ['Expect: something', 'GET / HTTP/1.1\r\nHost: x\r\nExpect: x\r\n\r\n'],
        ['Upgrade: websocket', 'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'],
        ['Upgrade alone', 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n'],
        ['Connection: upgrade', 'GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n'],
        ['Connection naming a field', 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close, x-a\r\nX-A: 1\r\n\r\n'],
        ['two Connection fields', 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n'],
        ['Proxy-Connection (llhttp reads it as Connection)', 'GET / HTTP/1.1\r\nHost: x\r\nProxy-Connection: close\r\n\r\n'],
        ['a body over the buffered limit', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n'],
        ['a body over the body limit', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2049\r\n\r\n'],
        ['a huge head', `GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(MAX_HEADER)}\r\n\r\n`],
        ['more fields than Node copies into req.headers', `GET / HTTP/1.1\r\n${'X: y\r\n'.repeat(1000)}Host: x\r\n\r\n`],
      ];
      const node = await startEchoServer(MAX_HEADER);
      try {
        for (const [what, request] of corpus) {
          const verdict = framing('fastPathRequest', latin1(request), MAX_HEADER, 2048, 1024);
          assert.ok(verdict.status === 'handBack' || (verdict.status === 'ok' && !verdict.fast), `${what}: ${JSON.stringify(verdict)}`);
        }
        // The corpus is not vacuous: the same checks let plain requests through.
        for (const [request, contentLength] of [
          ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', null],
          ['POST /a HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive\r\nContent-Length: 1024\r\n\r\n', 1024],
          ['PUT /a HTTP/1.1\r\nHost: x\r\nCONNECTION: close\r\ncontent-length: 007\r\n\r\n', 7],
          ['DELETE /a HTTP/1.1\r\nHost: x\r\nContent-Length:\t0 \r\n\r\n', 0],
          [`GET / HTTP/1.1\r\n${'X: y\r\n'.repeat(999)}Host: x\r\n\r\n`, null],
        ] as const) {
          assert.deepEqual(framing('fastPathRequest', latin1(request), MAX_HEADER, 2048, 1024), { status: 'ok', fast: true, contentLength }, request.slice(0, 80));
          assert.equal((await askNode(node, latin1(`${request}${'x'.repeat(contentLength ?? 0)}`))).status, 200, request.slice(0, 80));
        }
      } finally {
        await new Promise<void>((resolve) => node.close(() => resolve()));
      }
    });
  });

  describe('forwarded request headers', () => {
    const configs = [
      { name: 'bearer', pathPrefix: '/', upstream: { url: 'http://127.0.0.1:8080/base/' }, credential: { source: { value: 's3cret' } } },
      { name: 'key', hosts: ['api.example'], upstream: { url: 'https://api.example.com' }, credential: { header: 'X-Api-Key', scheme: '', source: { value: 'k' } } },
      { name: 'bare', pathPrefix: '/v6/', upstream: { url: 'http://[::1]:9000' } },
    ];
    const targets: UpstreamTarget[] = [];
    before(() => {
      const { resources } = httpGatewayConfigSchema.parse({ resources: configs });
      for (const resource of resources) targets.push(new UpstreamTarget(resource));
    });
    after(async () => {
      await Promise.all(targets.map((target) => target.close()));
    });

    it('forward_headers gives forwardHeaders() names, values and order for seeded random requests', () => {
      for (let seed = 1; seed <= 1500; seed++) {
        const random = randomFor(seed);
        const target = targets[seed % targets.length]!;
        const credential = target.resource.credential;
        const request = randomRequest(random, credential ? [credential.header, 'authorization'] : ['authorization']);
        const { raw } = splitHead(request);
        const heads = expectedHeads(raw);
        const secret = credential ? `secret-${seed}` : null;
        const header = target.credentialHeader(secret);
        const client = { ip: pick(random, ['127.0.0.1', '::1', '10.1.2.3']), host: heads.host ?? '', secure: random() < 0.5 };
        const contentLength = random() < 0.5 ? null : int(random, 100000);
        const expected = forwardHeaders(raw, heads.connection, target, client, { contentLength }, false, secret);
        const actual = framing('forwardHeaders', latin1(request), MAX_HEADER, {
          urlHost: target.url.host,
          credentialHeader: credential?.header ?? '',
          credentialValue: header?.[1] ?? '',
          clientIp: client.ip,
          secure: client.secure,
          contentLength,
        });
        assert.deepEqual(actual, expected, `seed ${seed}: ${JSON.stringify(request)}`);
      }
    });

    it('forwarded_content_length follows exchange(): none for an empty body of GET, HEAD, DELETE, OPTIONS and TRACE', () => {
      for (const method of ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE']) {
        assert.equal(framing('forwardedContentLength', method, 0), null, method);
        assert.equal(framing('forwardedContentLength', method, 3), 3, method);
      }
      for (const method of ['POST', 'PUT', 'PATCH']) {
        assert.equal(framing('forwardedContentLength', method, 0), 0, method);
        assert.equal(framing('forwardedContentLength', method, 3), 3, method);
      }
    });
  });

  describe('upstream responses', () => {
    function randomResponse(random: () => number): string {
      const lines: string[] = [];
      const fields: Array<() => string> = [
        () => `${caseVariant(random, 'connection')}: ${pick(random, ['keep-alive', 'close', 'Close', 'Keep-Alive', `x-a, ${randomToken(random)}`, 'x-b,\xa0x-a ', 'x-a ,, te'])}`,
        () => `${caseVariant(random, pick(random, ['keep-alive', 'proxy-authenticate', 'te', 'trailer', 'upgrade', 'x-a', 'x-b', 'close', 'content-type', 'set-cookie']))}:${randomValue(random)}`,
        () => `${randomToken(random)}:${randomValue(random)}`,
      ];
      for (let n = int(random, 10); n > 0; n--) lines.push(pick(random, fields)());
      return `HTTP/1.1 ${pick(random, ['200 OK', '404 Not Found', '302 Found', '200'])}\r\n${lines.map((line) => `${line}\r\n`).join('')}\r\n`;
    }

    it('response_headers gives responseHeaders() names, values and order for seeded random responses', () => {
      for (let seed = 1; seed <= 1500; seed++) {
        const response = randomResponse(randomFor(seed));
        const { raw } = splitHead(response);
        assert.deepEqual(framing('responseHeaders', latin1(response), MAX_HEADER, 'GET'), responseHeaders(raw), `seed ${seed}: ${JSON.stringify(response)}`);
      }
    });

    it('parse_response_head frames bodies per RFC 9112 §6.3', () => {
      type Expect = { framing: 'none' | 'length' | 'chunked' | 'untilClose'; contentLength?: bigint; close?: boolean; statusCode?: number };
      const cases: Array<[string, string, Expect]> = [
        ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', 'GET', { framing: 'length', contentLength: 5n }],
        ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n', 'GET', { framing: 'length', contentLength: 5n }],
        ['HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n', 'GET', { framing: 'length', contentLength: 5n }],
        ['HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n', 'GET', { framing: 'length', contentLength: 18446744073709551615n }],
        ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'GET', { framing: 'chunked' }],
        ['HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked \r\n\r\n', 'POST', { framing: 'chunked' }],
        ['HTTP/1.1 200 OK\r\n\r\n', 'GET', { framing: 'untilClose' }],
        ['HTTP/1.1 200\r\nX: y\r\n\r\n', 'GET', { framing: 'untilClose' }],
        ['HTTP/1.1 200 \r\n\r\n', 'GET', { framing: 'untilClose' }],
        ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', 'HEAD', { framing: 'none' }],
        ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'HEAD', { framing: 'none' }],
        ['HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', 'GET', { framing: 'none' }],
        ['HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', 'GET', { framing: 'none' }],
        ['HTTP/1.1 100 Continue\r\n\r\n', 'POST', { framing: 'none', statusCode: 100 }],
        ['HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n', 'GET', { framing: 'none', statusCode: 103 }],
        ['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', 'GET', { framing: 'length', contentLength: 0n, close: true }],
        ['HTTP/1.1 200 OK\r\nConnection: x, Close\r\nContent-Length: 0\r\n\r\n', 'GET', { framing: 'length', contentLength: 0n, close: true }],
        ['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n', 'GET', { framing: 'length', contentLength: 0n, close: true }],
        ['HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n', 'GET', { framing: 'length', contentLength: 0n, close: false }],
        ['HTTP/1.0 200 OK\r\n\r\n', 'GET', { framing: 'untilClose', close: true }],
      ];
      for (const [response, method, expected] of cases) {
        const parsed = framing('parseResponseHead', latin1(`${response}body`), MAX_HEADER, method);
        assert.equal(parsed.status, 'ok', `${JSON.stringify(response)}: ${parsed.error}`);
        assert.equal(parsed.headBytes, response.length, response);
        assert.equal(parsed.framing, expected.framing, response);
        assert.equal(parsed.contentLength, expected.contentLength ?? 0n, response);
        assert.equal(parsed.close, expected.close ?? false, response);
        if (expected.statusCode !== undefined) assert.equal(parsed.statusCode, expected.statusCode, response);
        assert.deepEqual(parsed.fields, splitHead(response).raw, response);
      }
    });

    it('parse_response_head refuses malformed and ambiguous heads, saying why', () => {
      const bad = [
        'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n',
        'HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n',
        'HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n',
        'HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n',
        'HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n',
        'HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n',
        'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n',
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n',
        'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n',
        'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n',
        'HTTP/1.1 200 OK\nX: a\r\n\r\n',
        'HTTP/1.1 200 OK\r\nX: a\n\r\n',
        'HTTP/1.1 200 OK\r\nX : a\r\n\r\n',
        'HTTP/1.1 200 OK\r\n: a\r\n\r\n',
        'HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n',
        'HTTP/1.1 200 O\x01K\r\n\r\n',
        'HTTP/1.1 20 OK\r\n\r\n',
        'HTTP/1.1 2000 OK\r\n\r\n',
        'HTTP/1.1 099 OK\r\n\r\n',
        'HTTP/1.1  200 OK\r\n\r\n',
        'HTTP/2 200 OK\r\n\r\n',
        'HTTP/1.2 200 OK\r\n\r\n',
        'http/1.1 200 OK\r\n\r\n',
        'ICY 200 OK\r\n\r\n',
        `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX_HEADER)}\r\n\r\n`,
      ];
      for (const response of bad) {
        const parsed = framing('parseResponseHead', latin1(response), MAX_HEADER, 'GET');
        assert.equal(parsed.status, 'bad', JSON.stringify(response.slice(0, 80)));
        assert.notEqual(parsed.error, '', JSON.stringify(response.slice(0, 80)));
      }
    });

    it('parse_response_head says incomplete for every proper prefix of a head and reads it the same whole', () => {
      for (let seed = 1; seed <= 60; seed++) {
        const response = `${randomResponse(randomFor(seed))}rest`;
        const whole = framing('parseResponseHead', latin1(response), MAX_HEADER, 'GET');
        assert.equal(whole.status, 'ok', `seed ${seed}: ${whole.error}`);
        for (let cut = 0; cut < whole.headBytes!; cut++) {
          assert.equal(framing('parseResponseHead', latin1(response.slice(0, cut)), MAX_HEADER, 'GET').status, 'incomplete', `seed ${seed} cut ${cut}`);
        }
        assert.deepEqual(framing('parseResponseHead', latin1(response.slice(0, whole.headBytes)), MAX_HEADER, 'GET'), whole, `seed ${seed}`);
      }
    });
  });

  describe('chunked body scanner', () => {
    function randomChunked(random: () => number): { body: string; data: string } {
      let body = '';
      let data = '';
      const extension = (): string => pick(random, ['', ';a', ';a=b', ' ;a="q\\"x"', ';a = b ;c', '\t; n=v', ';x="\xe9"']);
      for (let n = int(random, 5); n > 0; n--) {
        const size = 1 + int(random, 40);
        let chunk = '';
        for (let k = 0; k < size; k++) chunk += String.fromCharCode(int(random, 256));
        const hex = size.toString(16);
        body += `${random() < 0.2 ? '00' : ''}${random() < 0.5 ? hex.toUpperCase() : hex}${extension()}\r\n${chunk}\r\n`;
        data += chunk;
      }
      body += `${pick(random, ['0', '000'])}${extension()}\r\n`;
      for (let n = int(random, 3); n > 0; n--) body += `${randomToken(random)}:${randomValue(random)}\r\n`;
      return { body: `${body}\r\n`, data };
    }

    it('reads seeded random bodies the same whole, split at every byte, and byte by byte, stopping at their end', () => {
      for (let seed = 1; seed <= 60; seed++) {
        const { body, data } = randomChunked(randomFor(seed));
        const next = 'HTTP/1.1 200 OK\r\n';
        const bytes = latin1(body + next);
        const whole = framing('scanChunked', [bytes]);
        assert.deepEqual(whole, { consumed: body.length, done: true, bad: false, error: '', data: latin1(data) }, `seed ${seed}: ${JSON.stringify(body)}`);
        for (let cut = 0; cut <= bytes.length; cut++) {
          assert.deepEqual(framing('scanChunked', [bytes.subarray(0, cut), bytes.subarray(cut)]), whole, `seed ${seed} cut ${cut}`);
          if (cut < body.length) {
            const partial = framing('scanChunked', [bytes.subarray(0, cut)]);
            assert.equal(partial.done || partial.bad, false, `seed ${seed} cut ${cut}`);
          }
        }
        const single = [...bytes].map((byte) => Buffer.from([byte]));
        assert.deepEqual(framing('scanChunked', single), whole, `seed ${seed}, byte by byte`);
      }
    });

    it('refuses malformed chunk sizes, extensions, CRLFs and trailers', () => {
      const bad = [
        'x\r\n',
        '\r\n',
        ' 5\r\nhello\r\n0\r\n\r\n',
        '5 \r\nhello\r\n0\r\n\r\n',
        '-5\r\nhello\r\n0\r\n\r\n',
        '0x5\r\nhello\r\n0\r\n\r\n',
        '5\nhello\r\n0\r\n\r\n',
        '5\r\rhello\r\n0\r\n\r\n',
        '5\r\nhelloX\r\n0\r\n\r\n',
        '5\r\nhello\n0\r\n\r\n',
        '5\r\nhello\r\r0\r\n\r\n',
        '5;\r\nhello\r\n0\r\n\r\n',
        '5;a=\r\nhello\r\n0\r\n\r\n',
        '5;a b\r\nhello\r\n0\r\n\r\n',
        '5;a="x\r\nhello\r\n0\r\n\r\n',
        '5;a="x"y\r\nhello\r\n0\r\n\r\n',
        '5;a=b \r\nhello\r\n0\r\n\r\n',
        '5;a\x00\r\nhello\r\n0\r\n\r\n',
        '10000000000000000\r\n',
        'fffffffffffffffff\r\n',
        '0\r\nX: y\r\n y\r\n\r\n',
        '0\r\n X: y\r\n\r\n',
        '0\r\nX : y\r\n\r\n',
        '0\r\nX: y\x00\r\n\r\n',
        '0\r\nX: y\n\r\n',
        '0\r\n\n',
        '0\r\n\rX',
        `1;${'a'.repeat(5000)}\r\n`,
        `0\r\n${'X: y\r\n'.repeat(4000)}\r\n`,
      ];
      for (const body of bad) {
        const scanned = framing('scanChunked', [latin1(body)]);
        assert.equal(scanned.bad, true, JSON.stringify(body.slice(0, 60)));
        assert.equal(scanned.done, false, JSON.stringify(body.slice(0, 60)));
        assert.notEqual(scanned.error, '', JSON.stringify(body.slice(0, 60)));
      }
      // The largest size that fits in 64 bits is a size (the body is merely incomplete).
      const large = framing('scanChunked', [latin1('ffffffffffffffff\r\nabc')]);
      assert.deepEqual([large.bad, large.done, large.data.toString('latin1')], [false, false, 'abc']);
    });
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { journalOptionsFromConfig } from '../../../gateway/journal/journal';
import { verifyJournal } from '../../../gateway/journal/verify';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { startHttpGateway, type HttpGatewayUnderTest } from '../../support/http-gateway';
import { startHttpUpstream, type HttpUpstream } from '../../support/http-upstream';
import { until } from '../../support/until';

/**
 * The native HTTP data path (native/addon/http-datapath.cc) against the JavaScript one: the same
 * requests on one keep-alive connection through a gateway of each kind, to the same upstream, must give
 * the agent the same answers, the upstream the same requests and the journal the same records; a
 * connection the loop hands back mid-way keeps its sessions; a revocation, a token's expiry and a
 * credential rotation take effect on the very next request of a kept-alive connection.
 */

const SECRET = 'upstream-secret-parity-42';

interface Step {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

const STEPS: Step[] = [
  { method: 'GET', path: '/api/echo/a?x=1&y=%C3%A9', headers: { accept: 'application/json', 'user-agent': 'parity/1', cookie: 'agent-cookie=1', 'x-api-key': 'agent-own-key' } },
  { method: 'POST', path: '/api/echo/b', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deploy: 'v1', note: 'é ü' }) },
  { method: 'PUT', path: '/api/echo/c/../d//e', headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'x'.repeat(3000) },
  { method: 'HEAD', path: '/api/hello' },
  { method: 'GET', path: '/api/big?n=50000' },
  { method: 'GET', path: '/api/stream' },
  { method: 'DELETE', path: '/api/echo/f' },
  { method: 'OPTIONS', path: '/api/echo/g', headers: { 'content-type': 'application/octet-stream' }, body: '\u0000\u0001binary' },
  { method: 'GET', path: '/api/echo/a?x=1&y=%C3%A9', headers: { accept: 'application/json' } },
];

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Sends the steps one after another on one kept-alive connection (the agent's). */
async function run(gw: HttpGatewayUnderTest, steps: Step[]): Promise<Answer[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const answers: Answer[] = [];
  try {
    for (const step of steps) {
      answers.push(
        await new Promise<Answer>((resolve, reject) => {
          const req = request(
            { agent, host: '127.0.0.1', port: gw.port, method: step.method, path: step.path, headers: { host: 'parity.test', authorization: `Bearer ${gw.token}`, ...step.headers, ...(step.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(step.body)) }) } },
            (res) => {
              let body = '';
              res.setEncoding('latin1');
              res.on('data', (d: string) => (body += d));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
            },
          );
          req.on('error', reject);
          req.end(step.body === undefined ? undefined : Buffer.from(step.body, 'utf8'));
        }),
      );
    }
  } finally {
    agent.destroy();
  }
  return answers;
}

/** What differs between two runs by nature (times, ids, ports, the connection's framing) is left out. */
function comparable(answer: Answer): unknown {
  const headers = { ...answer.headers };
  for (const name of ['date', 'connection', 'keep-alive', 'transfer-encoding']) delete headers[name];
  let body = answer.body;
  if (answer.headers['content-type'] === 'application/json' && body !== '') {
    const echo = JSON.parse(body) as { rawHeaders: string[] };
    body = JSON.stringify({ ...echo, rawHeaders: upstreamHeaders(echo.rawHeaders) });
  }
  return { status: answer.status, headers, body };
}

/**
 * The headers the upstream received, but for its own port in Host and Connection's value: hop-by-hop,
 * it says how the gateway manages its upstream connections (undici closes one after a HEAD, say).
 */
function upstreamHeaders(raw: readonly string[]): string[] {
  return raw.map((v, i) => {
    const name = i % 2 === 1 ? raw[i - 1]!.toLowerCase() : '';
    return name === 'host' ? v.replace(/:\d+$/, ':<port>') : name === 'connection' ? '<connection>' : v;
  });
}

function events(records: JournalRecord__Output[]): unknown[] {
  return records.flatMap((r) => {
    const e = r.event;
    if (!e || (!e.http && !e.httpRequest)) return [];
    const detail = e.http ? { http: { ...e.http, durationNano: '<t>', firstByteNano: e.http.firstByteNano === '0' ? '0' : '<t>' } } : { httpRequest: e.httpRequest };
    return [{ eventSeq: e.eventSeq, ...detail }];
  });
}

function sessionsOf(records: JournalRecord__Output[]): Array<NonNullable<JournalRecord__Output['session']>> {
  return records.flatMap((r) => (r.session ? [r.session] : []));
}


/** Records once every session of the gateway has ended (its connections closed). */
function ended(gw: HttpGatewayUnderTest, count: number): Promise<JournalRecord__Output[]> {
  return until('the sessions to end', async () => {
    const all = await gw.records();
    return sessionsOf(all).filter((s) => s.outcome === 'SESSION_OUTCOME_CLOSED').length >= count ? all : null;
  });
}

function gatewayConfig(dataPath: 'node' | 'auto', upstream: HttpUpstream, extra: Record<string, unknown> = {}, credential: Record<string, unknown> = { value: SECRET }): Record<string, unknown> {
  return {
    dataPath,
    limits: { bufferBodyBytes: 65536 },
    record: { bodyBytes: 1024, binaryBodies: true },
    rules: [{ name: 'no-admin', paths: ['/admin/**'], action: 'deny', reason: 'off limits' }, { name: 'reads', methods: ['GET', 'HEAD'], action: 'allow' }],
    resources: [{ name: 'api', pathPrefix: '/api/', upstream: { url: upstream.url }, credential: { header: 'authorization', scheme: 'Bearer', source: credential } }],
    ...extra,
  };
}

describe('gateway/http native data path (parity with the JavaScript path)', function () {
  this.timeout(60_000);
  let upstream: HttpUpstream;

  before(async () => {
    upstream = await startHttpUpstream();
  });

  after(async () => {
    await upstream?.stop();
  });

  it('answers, forwards and journals a keep-alive connection of varied requests as the JavaScript path does', async () => {
    const runs: Array<{ answers: Answer[]; forwarded: unknown[]; records: JournalRecord__Output[]; stats: unknown }> = [];
    for (const dataPath of ['node', 'auto'] as const) {
      const gw = await startHttpGateway(gatewayConfig(dataPath, upstream));
      try {
        const from = upstream.received.length;
        const answers = await run(gw, STEPS);
        const forwarded = upstream.received.slice(from).map((r) => ({ method: r.method, url: r.url, body: r.body, rawHeaders: upstreamHeaders(r.rawHeaders) }));
        runs.push({ answers, forwarded, records: await ended(gw, 1), stats: gw.gateway.nativeStats });
        const report = await verifyJournal(journalOptionsFromConfig(gw.config).dir);
        assert.equal(report.ok, true);
      } finally {
        await gw.stop();
      }
    }
    const [node, native] = runs as [(typeof runs)[number], (typeof runs)[number]];
    // Every request was served natively: one question per distinct request (the repeated GET used the kept decision), none handed back.
    assert.deepEqual(native.stats, { adopted: 1, questions: STEPS.length - 1, handBacks: 0 });
    assert.equal(node.stats, null);
    assert.deepEqual(native.answers.map(comparable), node.answers.map(comparable));
    assert.deepEqual(native.forwarded, node.forwarded);
    assert.deepEqual(events(native.records), events(node.records));
    assert.ok(events(node.records).length === STEPS.length * 2);
    const [nodeSession, nativeSession] = [sessionsOf(node.records), sessionsOf(native.records)].map((all) => all.find((s) => s.outcome === 'SESSION_OUTCOME_CLOSED')!);
    for (const field of ['protocol', 'identity', 'resource', 'upstream', 'bytesFromClient'] as const) {
      assert.deepEqual(nativeSession![field], nodeSession![field], field);
    }
    // Node's server adds Date, Connection and Keep-Alive to each response; the loop passes the upstream's head on.
    const bodies = native.answers.reduce((n, a) => n + Buffer.byteLength(a.body, 'latin1'), 0);
    assert.ok(Number(nativeSession!.bytesToClient) > bodies && Number(nativeSession!.bytesToClient) <= Number(nodeSession!.bytesToClient));
    // The agent's token never reaches the upstream (the resource's credential does, once per request),
    // and neither is in the journal (the echoed credential is redacted from the recorded response).
    assert.ok(!JSON.stringify(native.forwarded).includes('gwt_'));
    const journaled = JSON.stringify(native.records);
    assert.ok(!journaled.includes('gwt_') && !journaled.includes(SECRET));
    for (const r of native.forwarded as Array<{ rawHeaders: string[] }>) assert.equal(r.rawHeaders.filter((v) => v === `Bearer ${SECRET}`).length, 1);
  });

  it('serves many concurrent keep-alive agents (GET and POST, chunked and sized responses): every answer right, every exchange journaled', async () => {
    const gw = await startHttpGateway(gatewayConfig('auto', upstream));
    try {
      const agents = 24;
      const perAgent = 40;
      const failures: string[] = [];
      await Promise.all(
        Array.from({ length: agents }, async (_, a) => {
          const steps: Step[] = Array.from({ length: perAgent }, (_, i) =>
            i % 3 === 0
              ? { method: 'POST', path: `/api/echo/load/${a}/${i}`, headers: { 'content-type': 'text/plain' }, body: `agent ${a} request ${i} `.repeat(1 + ((a * 7 + i) % 40)) }
              : i % 3 === 1
                ? { method: 'GET', path: `/api/big?n=${1000 + a * 37 + i}` }
                : { method: 'GET', path: `/api/echo/load/${a}/${i}?q=${i}` },
          );
          const answers = await run(gw, steps);
          answers.forEach((answer, i) => {
            const step = steps[i]!;
            const ok =
              answer.status === 200 &&
              (step.path.startsWith('/api/big')
                ? answer.body.length === Number(/n=(\d+)/.exec(step.path)![1])
                : (JSON.parse(answer.body) as { url: string; body: string }).url === step.path.slice(4) && (JSON.parse(answer.body) as { body: string }).body === (step.body ?? ''));
            if (!ok) failures.push(`${step.method} ${step.path}: ${answer.status} ${answer.body.slice(0, 120)}`);
          });
        }),
      );
      assert.deepEqual(failures, []);
      const records = await ended(gw, agents);
      const outcomes = records.flatMap((r) => (r.event?.http ? [r.event.http] : []));
      assert.equal(outcomes.length, agents * perAgent);
      assert.ok(outcomes.every((o) => o.status === 200 && o.error === ''));
      assert.equal(records.filter((r) => r.event?.httpRequest).length, agents * perAgent);
      assert.equal(gw.gateway.nativeStats!.handBacks, 0);
      assert.equal((await verifyJournal(journalOptionsFromConfig(gw.config).dir)).ok, true);
    } finally {
      await gw.stop();
    }
  });

  it('hands a connection back at a request it does not serve; JavaScript continues its session', async () => {
    const gw = await startHttpGateway(gatewayConfig('auto', upstream));
    try {
      const answers = await run(gw, [
        { method: 'GET', path: '/api/echo/one' },
        { method: 'GET', path: '/api/admin/users' },
        { method: 'GET', path: '/api/echo/three' },
      ]);
      assert.deepEqual(
        answers.map((a) => a.status),
        [200, 403, 200],
      );
      assert.deepEqual(gw.gateway.nativeStats, { adopted: 1, questions: 2, handBacks: 1 });
      const records = await ended(gw, 1);
      const sessions = sessionsOf(records);
      // One session for the connection's identity and resource, opened natively and ended by JavaScript.
      assert.equal(new Set(sessions.map((s) => s.sessionId)).size, 1);
      const exchanges = records.flatMap((r) => (r.event?.http ? [r.event.http] : []));
      assert.deepEqual(
        exchanges.map((e) => [e.exchangeId, e.path, e.status]),
        [
          [1, '/echo/one', 200],
          [2, '/admin/users', 403],
          [3, '/echo/three', 200],
        ],
      );
      const seqs = records.flatMap((r) => (r.event ? [Number(r.event.eventSeq)] : []));
      assert.deepEqual(
        seqs,
        seqs.map((_, i) => i + 1),
      );
      const closed = sessions.find((s) => s.outcome === 'SESSION_OUTCOME_CLOSED')!;
      assert.ok(Number(closed.bytesFromClient) > 0 && Number(closed.bytesToClient) > answers.map((a) => a.body.length).reduce((a, b) => a + b));
      assert.equal((await verifyJournal(journalOptionsFromConfig(gw.config).dir)).ok, true);
    } finally {
      await gw.stop();
    }
  });

  it('answers pipelined requests in order across a hand-back', async () => {
    const BIG = 6 << 20;
    const gw = await startHttpGateway(gatewayConfig('auto', upstream));
    try {
      const auth = `Authorization: Bearer ${gw.token}\r\n`;
      const pipelined = [
        `GET /api/big?n=${BIG} HTTP/1.1\r\nHost: p\r\n${auth}\r\n`,
        `GET /api/admin/x HTTP/1.1\r\nHost: p\r\n${auth}\r\n`,
        `GET /api/echo/last HTTP/1.1\r\nHost: p\r\n${auth}Connection: close\r\n\r\n`,
      ].join('');
      const answer = await new Promise<string>((resolve, reject) => {
        // The agent reads nothing for a while: the end of the first response is still the loop's to
        // send when it hands the connection back (JavaScript sends it before its own answers).
        const socket = connect({ host: '127.0.0.1', port: gw.port }, () => {
          socket.pause();
          socket.write(pipelined);
          setTimeout(() => socket.resume(), 500);
        });
        let out = '';
        socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
        socket.on('error', reject);
        socket.on('close', () => resolve(out));
      });
      const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      assert.deepEqual(statuses, [200, 403, 200]);
      const first = answer.indexOf('\r\n\r\n') + 4;
      assert.equal(answer.slice(first, first + BIG + 1), `${'x'.repeat(BIG)}H`);
      assert.ok(answer.includes('"url":"/echo/last"') && answer.endsWith('\r\n0\r\n\r\n'), answer.slice(-300));
      assert.equal(gw.gateway.nativeStats!.handBacks, 1);
    } finally {
      await gw.stop();
    }
  });

  it('takes a revocation, a token expiry and a credential rotation on the next request of a kept-alive connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gapwatch-credential-'));
    const rotated = join(dir, 'upstream-credential');
    writeFileSync(rotated, 'first-secret\n', { mode: 0o600 });
    const live = await startHttpGateway(gatewayConfig('auto', upstream, {}, { file: rotated }));
    try {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const get = (path: string): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          const req = request({ agent, host: '127.0.0.1', port: live.port, path, headers: { host: 'parity.test', authorization: `Bearer ${live.token}` } }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on('error', reject);
          req.end();
        });
      const seen = (path: string): string[] => {
        const r = upstream.received.filter((x) => x.url === path).at(-1)!;
        return r.rawHeaders.filter((_, i) => i % 2 === 1 && r.rawHeaders[i - 1]!.toLowerCase() === 'authorization');
      };
      assert.equal((await get('/api/echo/rot1')).status, 200);
      assert.deepEqual(seen('/echo/rot1'), ['Bearer first-secret']);
      writeFileSync(rotated, 'second-secret\n', { mode: 0o600 });
      assert.equal((await get('/api/echo/rot1')).status, 200);
      assert.deepEqual(seen('/echo/rot1'), ['Bearer second-secret']);
      await live.identities.revoke(live.login);
      const refused = await get('/api/echo/rot1');
      assert.equal(refused.status, 401, refused.body);
      agent.destroy();

      // A token that expires while its decision would still be kept (1 s): not one request after.
      const expiresAt = Date.now() + 800;
      const { token } = await live.identities.create('expiring-agent', { expiresAt: new Date(expiresAt) });
      const expiring = new Agent({ keepAlive: true, maxSockets: 1 });
      const getAs = (path: string): Promise<number> =>
        new Promise((resolve, reject) => {
          const req = request({ agent: expiring, host: '127.0.0.1', port: live.port, path, headers: { host: 'parity.test', authorization: `Bearer ${token}` } }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.end();
        });
      assert.equal(await getAs('/api/echo/exp1'), 200);
      assert.equal(await getAs('/api/echo/exp1'), 200);
      assert.ok(Date.now() < expiresAt, 'the requests before the expiry took too long to show anything');
      await new Promise((resolve) => setTimeout(resolve, expiresAt + 50 - Date.now()));
      assert.equal(await getAs('/api/echo/exp1'), 401);
      expiring.destroy();
    } finally {
      await live.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('relays a response whose upstream closes the connection to end it, and answers 502 for an unreachable upstream', async () => {
    // An upstream that ends its response by closing the connection (no Content-Length, not chunked).
    const closing = createServer((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the upstream closes'));
    });
    await new Promise<void>((resolve) => closing.listen(0, '127.0.0.1', resolve));
    const gw = await startHttpGateway({
      ...gatewayConfig('auto', upstream),
      resources: [
        { name: 'closing', pathPrefix: '/closing/', upstream: { url: `http://127.0.0.1:${(closing.address() as AddressInfo).port}` } },
        { name: 'down', pathPrefix: '/down/', upstream: { url: 'http://127.0.0.1:1' } },
      ],
    });
    try {
      const raw = (text: string): Promise<string> =>
        new Promise((resolve, reject) => {
          const socket = connect({ host: '127.0.0.1', port: gw.port }, () => socket.write(text));
          let out = '';
          socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
          socket.on('error', reject);
          socket.on('close', () => resolve(out));
        });
      const delimited = await raw(`GET /closing/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${gw.token}\r\n\r\n`);
      assert.match(delimited, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(delimited, /\r\nconnection: close\r\n/);
      assert.ok(delimited.endsWith('\r\n\r\nuntil the upstream closes'), delimited);
      const down = await raw(`GET /down/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${gw.token}\r\nConnection: close\r\n\r\n`);
      assert.match(down, /^HTTP\/1\.1 502 /);
      assert.match(down, /GW_ERR_HTTP_UPSTREAM/);
      assert.match(down, /ECONNREFUSED/);
      const records = await ended(gw, 2);
      const outcomes = records.flatMap((r) => (r.event?.http ? [r.event.http] : []));
      const relayed = outcomes.find((e) => e.status === 200)!;
      assert.equal(relayed.responseBody!.text, 'until the upstream closes');
      assert.equal(relayed.error, '');
      const failed = outcomes.find((e) => e.status === 502)!;
      assert.match(failed.error, /ECONNREFUSED/);
      assert.equal(gw.gateway.nativeStats!.handBacks, 0);
    } finally {
      await gw.stop();
      closing.close();
    }
  });
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { stringify } from 'yaml';
import { ReviewDirectory, type ReviewEntry } from '../../../gateway/policy/review-channel';
import type { HttpExchange__Output } from '../../../proto/generated/gapwatch/v1/HttpExchange';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import type { PolicyDecision__Output } from '../../../proto/generated/gapwatch/v1/PolicyDecision';
import { runCli } from '../../support/host';
import { startHttpGateway, type HttpGatewayUnderTest } from '../../support/http-gateway';
import { startHttpUpstream, type HttpUpstream } from '../../support/http-upstream';

/**
 * HTTP requests held for review: the agent's request waits at the gateway (the upstream sees
 * nothing) until a human runs `gapwatch approve|deny <id>` or the review times out, through the
 * same review channel (`<dataDir>/reviews`) as the PostgreSQL and SSH gateways.
 */

function curl(args: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '30', '-w', '\n%{http_code}', ...args], (err, stdout, stderr) => {
      if (err) return reject(new Error(`curl failed: ${stderr || err.message}`));
      const at = stdout.lastIndexOf('\n');
      resolve({ status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at) });
    });
  });
}

async function pendingReview(gw: HttpGatewayUnderTest, text: string): Promise<ReviewEntry> {
  const reviews = new ReviewDirectory(gw.dataDir);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = reviews.list().find((entry) => entry.status === 'pending' && entry.request.text.startsWith(text));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no pending review for ${text}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const policiesOf = (records: JournalRecord__Output[], reviewId: string): PolicyDecision__Output[] =>
  records.flatMap((r) => (r.event?.policy && r.event.policy.reviewId === reviewId ? [r.event.policy] : []));
const exchangeOf = (records: JournalRecord__Output[], path: string): HttpExchange__Output | undefined => records.find((r) => r.event?.http?.path === path)?.event?.http ?? undefined;

describe('gateway/http review (held requests)', function () {
  this.timeout(60_000);
  let upstream: HttpUpstream;
  let gw: HttpGatewayUnderTest;
  const rules = [
    { name: 'deploys-need-a-human', methods: ['POST'], paths: ['/deploy/**'], action: 'review', reason: 'deploys need a human' },
    { name: 'sockets-need-a-human', paths: ['/ws'], action: 'review', reason: 'live channels need a human' },
  ];

  before(async () => {
    upstream = await startHttpUpstream();
    gw = await startHttpGateway({ rules, resources: [{ name: 'api', pathPrefix: '/', upstream: { url: upstream.url }, credential: { source: { value: 'upstream-secret' } } }] });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.stop();
  });

  it('holds a POST until `gapwatch approve`, then forwards it; the requester cannot approve it; the approver is journaled', async () => {
    const response = curl(['-H', `Authorization: Bearer ${gw.token}`, '-H', 'Content-Type: application/json', '--data-binary', '{"version":"1.2.3"}', `${gw.url}/deploy/shop`]);
    const pending = await pendingReview(gw, 'POST /deploy/shop');
    assert.equal(pending.request.text, 'POST /deploy/shop\n\n{"version":"1.2.3"}');
    assert.equal(pending.request.login, gw.login);
    assert.equal(pending.request.rule, 'deploys-need-a-human');
    assert.deepEqual(upstream.received.filter((r) => r.url.startsWith('/deploy')), [], 'the upstream saw a held request');

    const config = join(gw.dataDir, 'cli.yaml');
    writeFileSync(config, stringify({ dataDir: gw.dataDir }));
    const self = await runCli(['approve', pending.request.reviewId, '--as', gw.login, '--config', config]);
    assert.notEqual(self.code, 0, 'the requester approved its own request');
    const approved = await runCli(['approve', pending.request.reviewId, '--as', 'alice', '--config', config]);
    assert.equal(approved.code, 0, approved.stderr);

    const result = await response;
    assert.equal(result.status, 200);
    const forwarded = upstream.received.find((r) => r.url === '/deploy/shop');
    assert.equal(forwarded?.body, '{"version":"1.2.3"}');

    const records = await until('the exchange record', async () => {
      const all = await gw.records();
      return exchangeOf(all, '/deploy/shop') ? all : undefined;
    });
    const decisions = policiesOf(records, pending.request.reviewId);
    assert.deepEqual(decisions.map((d) => d.action), ['POLICY_ACTION_REVIEW', 'POLICY_ACTION_APPROVED']);
    assert.equal(decisions[1]!.reviewer, 'alice');
    assert.deepEqual(decisions[1]!.classes, ['write']);
    const exchange = exchangeOf(records, '/deploy/shop')!;
    assert.equal(exchange.status, 200);
    assert.equal(exchange.policy?.action, 'POLICY_ACTION_APPROVED');
    assert.equal(exchange.policy?.reviewer, 'alice');
  });

  it('answers 403 with a JSON reason when a reviewer denies, and forwards nothing (fetch)', async () => {
    const response = fetch(`${gw.url}/deploy/payments?env=prod`, { method: 'POST', headers: { authorization: `Bearer ${gw.token}`, 'content-type': 'text/plain' }, body: 'now' });
    const pending = await pendingReview(gw, 'POST /deploy/payments?env=prod');
    new ReviewDirectory(gw.dataDir).decide(pending.request.reviewId, 'denied', 'bob', { reason: 'not during the freeze' });
    const answer = await response;
    assert.equal(answer.status, 403);
    const body = (await answer.json()) as { error: string; message: string; reviewId: string };
    assert.equal(body.error, 'GW_ERR_POLICY_REVIEW_DENIED');
    assert.equal(body.reviewId, pending.request.reviewId);
    assert.match(body.message, /denied by bob: not during the freeze/);
    assert.deepEqual(upstream.received.filter((r) => r.url.startsWith('/deploy/payments')), []);
    const records = await until('the refused exchange', async () => {
      const all = await gw.records();
      return exchangeOf(all, '/deploy/payments') ? all : undefined;
    });
    assert.deepEqual(policiesOf(records, pending.request.reviewId).map((d) => [d.action, d.reviewer]), [
      ['POLICY_ACTION_REVIEW', ''],
      ['POLICY_ACTION_REJECTED', 'bob'],
    ]);
    assert.equal(exchangeOf(records, '/deploy/payments')!.status, 403);
  });

  it('holds a WebSocket upgrade the same way, and passes the echo once approved', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/ws`, { headers: { authorization: `Bearer ${gw.token}` } });
    const opened = new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const pending = await pendingReview(gw, 'GET /ws');
    assert.deepEqual(upstream.received.filter((r) => r.url === '/ws'), [], 'the upstream saw a held upgrade');
    new ReviewDirectory(gw.dataDir).decide(pending.request.reviewId, 'approved', 'carol');
    await opened;
    const echoed = new Promise<string>((resolve) => ws.once('message', (data: Buffer) => resolve(data.toString())));
    ws.send('held then approved');
    assert.equal(await echoed, 'held then approved');
    ws.close();
    const records = await until('the upgrade exchange', async () => {
      const all = await gw.records();
      return all.some((r) => r.event?.http?.path === '/ws' && r.event.http.websocket) ? all : undefined;
    });
    assert.deepEqual(policiesOf(records, pending.request.reviewId).map((d) => [d.action, d.reviewer]), [
      ['POLICY_ACTION_REVIEW', ''],
      ['POLICY_ACTION_APPROVED', 'carol'],
    ]);
    assert.equal(exchangeOf(records, '/ws')!.policy?.reviewer, 'carol');
  });

  it('withdraws the review when the client goes away while held, so no one can approve what nothing waits for', async () => {
    const gone = curl(['--max-time', '1', '-H', `Authorization: Bearer ${gw.token}`, '-X', 'POST', '--data-binary', 'x', `${gw.url}/deploy/abandoned`]).catch((err: Error) => err);
    const pending = await pendingReview(gw, 'POST /deploy/abandoned');
    assert.ok((await gone) instanceof Error, 'curl should have given up');
    const settled = await until('the withdrawn review', async () => {
      const entry = new ReviewDirectory(gw.dataDir).list().find((e) => e.request.reviewId === pending.request.reviewId);
      return entry?.status === 'timed_out' ? entry : undefined;
    });
    assert.match(settled.decision?.reason ?? '', /client went away/);
    assert.throws(() => new ReviewDirectory(gw.dataDir).decide(pending.request.reviewId, 'approved', 'alice'), /already settled/);
    assert.deepEqual(upstream.received.filter((r) => r.url.startsWith('/deploy/abandoned')), []);
  });

  it('lets requests no review rule matches through at once', async () => {
    const result = await curl(['-H', `Authorization: Bearer ${gw.token}`, `${gw.url}/deploy/status`]);
    assert.equal(result.status, 200);
    assert.deepEqual(new ReviewDirectory(gw.dataDir).list().filter((e) => e.request.text.startsWith('GET /deploy')), []);
  });

  it('answers 504 when no one decides in time, forwarding nothing', async () => {
    const quick = await startHttpGateway(
      { rules, resources: [{ name: 'api', pathPrefix: '/', upstream: { url: upstream.url } }] },
      'fatal',
      { reviewTimeoutSeconds: 1 },
    );
    try {
      const result = await curl(['-H', `Authorization: Bearer ${quick.token}`, '-X', 'POST', '--data-binary', 'x', `${quick.url}/deploy/late`]);
      assert.equal(result.status, 504);
      assert.equal((JSON.parse(result.body) as { error: string }).error, 'GW_ERR_POLICY_REVIEW_TIMED_OUT');
      assert.deepEqual(upstream.received.filter((r) => r.url.startsWith('/deploy/late')), []);
      const entry = new ReviewDirectory(quick.dataDir).list().find((e) => e.request.text.startsWith('POST /deploy/late'));
      assert.equal(entry?.status, 'timed_out');
      const records = await until('the timed-out exchange', async () => {
        const all = await quick.records();
        return exchangeOf(all, '/deploy/late') ? all : undefined;
      });
      assert.equal(exchangeOf(records, '/deploy/late')!.policy?.action, 'POLICY_ACTION_TIMED_OUT');
    } finally {
      await quick.stop();
    }
  });
});

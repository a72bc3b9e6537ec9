import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CollectorAlert } from '../../../collector/alerts/alert';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook, WebhookSink } from '../../../collector/alerts/webhook-sink';
import { silentLog } from '../store/store-fixture';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
}

/** A real HTTP receiver on a random port; `statuses` are answered in order, then 200. */
async function receiver(statuses: number[] = []): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.statusCode = statuses.shift() ?? 200;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received, server };
}

function stopReceiver(server: Server): void {
  server.close();
  server.closeAllConnections();
}

function alert(overrides: Partial<CollectorAlert> = {}): CollectorAlert {
  return {
    alertId: 'a1',
    kind: 'bypass',
    rule: 'connect-bypass',
    severity: 'critical',
    host: 'build-7',
    timeUnixNano: '1790000000000000000',
    kernelBootNs: '123',
    summary: 'bypass: psql[42] connected straight to orders at 10.0.0.5:5432',
    process: { execId: 'e42', pid: 42, comm: 'psql', filename: '/usr/bin/psql' },
    lineage: [
      { execId: 'e42', pid: 42, comm: 'psql', filename: '/usr/bin/psql' },
      { execId: 'e7', pid: 7, comm: 'claude', filename: '/usr/local/bin/claude' },
    ],
    agentRun: { execId: 'e7', agent: 'claude' },
    resource: 'orders',
    destination: '10.0.0.5:5432',
    eventId: 'ev1',
    count: 1,
    lastTimeUnixNano: '1790000000000000000',
    ...overrides,
  };
}

describe('collector/alerts webhook sink (real HTTP receiver)', () => {
  it('posts the alert as JSON with an HMAC-SHA256 signature the receiver can verify', async () => {
    const hook = await receiver();
    const sink = new WebhookSink({ url: hook.url, format: 'generic', secret: 's3cret', attempts: 3, timeoutMs: 2000, maxQueue: 10 }, silentLog);
    sink.deliver(alert());
    await sink.close();
    stopReceiver(hook.server);
    assert.equal(hook.received.length, 1);
    const [got] = hook.received;
    const parsed = JSON.parse(got!.body) as { type: string; alert: CollectorAlert };
    assert.equal(parsed.type, 'gapwatch.alert');
    assert.equal(parsed.alert.agentRun?.agent, 'claude');
    assert.equal(parsed.alert.lineage.length, 2);
    const signature = String(got!.headers[SIGNATURE_HEADER]);
    const timestamp = String(got!.headers[TIMESTAMP_HEADER]);
    assert.ok(verifyWebhook('s3cret', timestamp, got!.body, signature));
    assert.ok(!verifyWebhook('other-key', timestamp, got!.body, signature), 'a different key does not verify');
    assert.ok(!verifyWebhook('s3cret', timestamp, got!.body.replace('orders', 'orderz'), signature), 'a changed body does not verify');
    assert.equal(sink.stats.delivered, 1);
  });

  it('retries on 5xx and 429 and, with concurrency 1, delivers in order; a 4xx is final', async () => {
    const hook = await receiver([503, 429]);
    const sink = new WebhookSink({ url: hook.url, format: 'generic', secret: null, attempts: 4, timeoutMs: 2000, maxQueue: 10, retryBaseMs: 10, concurrency: 1 }, silentLog);
    sink.deliver(alert({ alertId: 'first' }));
    sink.deliver(alert({ alertId: 'second' }));
    await sink.idle();
    await sink.close();
    const ids = hook.received.map((r) => (JSON.parse(r.body) as { alert: CollectorAlert }).alert.alertId);
    assert.deepEqual(ids, ['first', 'first', 'first', 'second']);
    assert.equal(sink.stats.delivered, 2);

    const refusing = await receiver([400]);
    const refused = new WebhookSink({ url: refusing.url, format: 'generic', secret: null, attempts: 4, timeoutMs: 2000, maxQueue: 10, retryBaseMs: 10 }, silentLog);
    refused.deliver(alert());
    await refused.idle();
    await refused.close();
    assert.equal(refusing.received.length, 1);
    assert.equal(refused.stats.failed, 1);
    stopReceiver(hook.server);
    stopReceiver(refusing.server);
  });

  it('does not hold alerts behind one being retried (concurrency), and reuses its connections', async () => {
    const hook = await receiver([503]);
    const sockets = new Set<unknown>();
    hook.server.on('connection', (socket) => sockets.add(socket));
    const sink = new WebhookSink({ url: hook.url, format: 'generic', secret: null, attempts: 3, timeoutMs: 2000, maxQueue: 100, retryBaseMs: 2000, concurrency: 2 }, silentLog);
    sink.deliver(alert({ alertId: 'retried' }));
    // Wait for the first answer (the 503) before sending the rest, so the retry is pending meanwhile.
    while (hook.received.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    for (let i = 0; i < 5; i++) sink.deliver(alert({ alertId: `next-${i}` }));
    await sink.idle();
    await sink.close();
    stopReceiver(hook.server);
    const ids = hook.received.map((r) => (JSON.parse(r.body) as { alert: CollectorAlert }).alert.alertId);
    assert.deepEqual(ids, ['retried', 'next-0', 'next-1', 'next-2', 'next-3', 'next-4', 'retried'], 'the others went out during the back-off');
    assert.equal(sink.stats.delivered, 6);
    assert.ok(sockets.size <= 2, `at most one connection per concurrent POST (${sockets.size})`);
  });

  it('sends a Slack-compatible body (text and mrkdwn blocks naming run, process and resource)', async () => {
    const hook = await receiver();
    const sink = new WebhookSink({ url: hook.url, format: 'slack', secret: 'k', attempts: 1, timeoutMs: 2000, maxQueue: 10 }, silentLog);
    sink.deliver(alert({ count: 5 }));
    await sink.close();
    stopReceiver(hook.server);
    const body = JSON.parse(hook.received[0]!.body) as { text: string; blocks: Array<{ type: string; text: { type: string; text: string } }> };
    assert.match(body.text, /critical: bypass: psql\[42\]/);
    assert.ok(body.blocks.every((b) => b.type === 'section' && b.text.type === 'mrkdwn'));
    const detail = body.blocks[1]!.text.text;
    assert.match(detail, /claude e7/);
    assert.match(detail, /\*resource\* orders/);
    assert.match(detail, /\*count\* 5/);
  });

  it('bounds its queue and counts what it dropped', async () => {
    // Nothing listens on port 9 of 127.0.0.1 (discard): every attempt fails fast.
    const sink = new WebhookSink({ url: 'http://127.0.0.1:9/', format: 'generic', secret: null, attempts: 1, timeoutMs: 500, maxQueue: 2, concurrency: 1 }, silentLog);
    for (let i = 0; i < 5; i++) sink.deliver(alert({ alertId: `a${i}` }));
    await sink.close();
    assert.equal(sink.stats.dropped, 2, 'one in flight, two queued, two dropped');
    assert.equal(sink.stats.failed, 3);
  });
});

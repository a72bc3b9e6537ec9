import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { gatewayFeedTuningSchema, type GatewayFeedEntry } from '../../../collector/gateway-feed/config-schema';
import { GatewaySubscriptions } from '../../../collector/gateway-feed/gateway-feed';
import { PositionFile } from '../../../collector/gateway-feed/position-file';
import { openStore, type Store } from '../../../collector/store/connection';
import { qualified } from '../../../collector/store/ddl';
import { storeSink } from '../../../collector/store/sink';
import { verifyStoredJournal } from '../../../collector/journal-verify/store-verify';
import { journalDirFor } from '../../../gateway/journal/segment-directory';
import { PUBLIC_KEY_FILE, readPublicKey } from '../../../gateway/journal/signing-key';
import { Spool } from '../../../collector/store/spool';
import { StoreWriter } from '../../../collector/store/writer';
import { parseConfig, type Config } from '../../../platform/config';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import type { ResourcesResponse__Output } from '../../../proto/generated/gapwatch/v1/ResourcesResponse';
import { startAuditGateway, type AuditGatewayUnderTest } from '../../support/audit-gateway';
import { requireRoot, repoRoot } from '../../support/host';
import { queryRows, silentLog } from '../store/store-fixture';

const TUNING = gatewayFeedTuningSchema.parse({ commitIntervalMs: 50, reconnectBaseMs: 50, reconnectMaxMs: 400, resourcesIntervalMs: 200 });

function waitFor(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

/** A collector-side data directory with an embedded store and a writer, closed by `close`. */
async function collectorStore(dataDir: string): Promise<{ config: Config; store: Store; writer: StoreWriter; close(): Promise<void> }> {
  const config = parseConfig(`dataDir: ${dataDir}\nstore:\n  ttlDays: 30\n  writer: { flushIntervalMs: 50 }\n`);
  const store = await openStore(config);
  const { spool, damage } = Spool.open({ dir: join(dataDir, 'spool'), maxBytes: 64 << 20 });
  const writer = new StoreWriter(storeSink(store), spool, config.store.writer, silentLog, 'collector-test');
  writer.start(damage);
  return {
    config,
    store,
    writer,
    async close() {
      await writer.close();
      await store.close();
    },
  };
}

/** Asserts the store holds each journaled session and session event exactly once. */
async function assertExactlyOnce(store: Store, journal: JournalRecord__Output[]): Promise<void> {
  const sessionIds = [...new Set(journal.filter((r) => r.body === 'session').map((r) => r.session!.sessionId))].sort();
  const events = journal.filter((r) => r.body === 'event').map((r) => `${r.event!.sessionId}/${r.event!.eventSeq}`).sort();
  const storedSessions = await queryRows<{ session_id: string }>(store, `SELECT session_id FROM ${qualified(store.dialect, 'gateway_sessions')} FINAL ORDER BY session_id`);
  assert.deepEqual(storedSessions.map((r) => r.session_id), sessionIds);
  const storedEvents = await queryRows<{ id: string }>(
    store,
    `SELECT concat(session_id, '/', toString(event_seq)) AS id FROM ${qualified(store.dialect, 'gateway_session_events')} FINAL ORDER BY id`,
  );
  assert.deepEqual(storedEvents.map((r) => r.id), events);
}

describe('collector/gateway-feed: subscriptions to the gateway Audit stream', function () {
  this.timeout(120_000);
  let env: AuditGatewayUnderTest;
  let parent: string;

  before(async () => {
    requireRoot();
    env = await startAuditGateway();
    parent = mkdtempSync(join(tmpdir(), 'gapwatch-feed-'));
    await env.traffic(2, 'first');
  });
  after(async () => {
    await env?.stop();
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  it('stores every session and event, tells listeners each record once in order, and resumes from its saved position', async () => {
    const dataDir = join(parent, 'resume');
    mkdirSync(dataDir);
    const collector = await collectorStore(dataDir);
    try {
      const seen: bigint[] = [];
      const resources: ResourcesResponse__Output[] = [];
      const run = async (): Promise<void> => {
        const feed = new GatewaySubscriptions({ gateways: [env.entry], dataDir, writer: collector.writer, tuning: TUNING, log: silentLog });
        feed.onRecord((record) => seen.push(BigInt(record.seq)));
        feed.onResources((answer) => resources.push(answer));
        feed.start();
        const head = await env.head();
        await waitFor(() => BigInt(feed.stats()[0]!.handedSeq) === head, `the feed to reach seq ${head}`);
        await feed.stop();
        assert.equal(feed.stats()[0]!.committedSeq, head.toString(), 'stop saves the position');
      };
      await run();
      const firstHead = await env.head();
      assert.deepEqual(seen, Array.from({ length: Number(firstHead) }, (_, i) => BigInt(i + 1)));
      assert.equal(resources[0]!.gatewayId, 'gw-test');
      assert.equal(resources[0]!.resources[0]!.name, 'orders');
      const position = JSON.parse(readFileSync(new PositionFile(dataDir, env.address).path, 'utf8')) as { gatewayId: string; lastSeq: string };
      assert.deepEqual([position.gatewayId, position.lastSeq], ['gw-test', firstHead.toString()]);

      await env.traffic(2, 'second');
      await run();
      const head = await env.head();
      assert.deepEqual(seen, Array.from({ length: Number(head) }, (_, i) => BigInt(i + 1)), 'the second run starts after the saved position');

      await collector.writer.flush();
      const journal = await env.gw.records();
      await assertExactlyOnce(collector.store, journal);
      // The records themselves, chain and checkpoints included, verify against the gateway's key (gapwatch verify --gateway).
      const journalDir = journalDirFor(env.gw.dataDir, 'gw-test');
      const verified = await verifyStoredJournal(collector.store, {
        gatewayId: 'gw-test',
        publicKey: readPublicKey(join(journalDir, PUBLIC_KEY_FILE)),
        keySource: 'argument',
        journalDir,
      });
      assert.equal(verified.records, journal.length);
      assert.equal(verified.altered.length, 0, JSON.stringify(verified.problems, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
      assert.deepEqual(verified.missing, []);
      assert.deepEqual(verified.problems, []);
      const sessions = await queryRows<{ database: string; bytes_from_client: string; outcome: string; client_parameters: Record<string, string> }>(
        collector.store,
        `SELECT database, bytes_from_client, outcome, client_parameters FROM ${qualified(collector.store.dialect, 'gateway_sessions')} FINAL`,
      );
      assert.equal(sessions.length, 2);
      for (const session of sessions) {
        assert.equal(session.database, 'orders');
        assert.equal(session.outcome, 'closed');
        assert.ok(Number(session.bytes_from_client) > 0);
      }
      const kinds = await queryRows<{ kind: string }>(collector.store, `SELECT DISTINCT toString(kind) AS kind FROM ${qualified(collector.store.dialect, 'gateway_session_events')} ORDER BY kind`);
      assert.deepEqual(kinds.map((k) => k.kind), ['pg_request', 'statement']);
    } finally {
      await collector.close();
    }
  });

  it('resumes after a cut connection without losing or repeating a record', async () => {
    const dataDir = join(parent, 'cut');
    mkdirSync(dataDir);
    // A TCP relay between collector and gateway whose connections the test cuts.
    const sockets = new Set<Socket>();
    const relay: Server = createServer((inbound) => {
      const outbound = connect(Number(env.address.split(':')[1]), '127.0.0.1');
      for (const s of [inbound, outbound]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
      }
      inbound.pipe(outbound).pipe(inbound);
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const entry: GatewayFeedEntry = { ...env.entry, address: `127.0.0.1:${(relay.address() as { port: number }).port}` };
    const collector = await collectorStore(dataDir);
    const feed = new GatewaySubscriptions({ gateways: [entry], dataDir, writer: collector.writer, tuning: TUNING, log: silentLog });
    const seen: bigint[] = [];
    feed.onRecord((record) => seen.push(BigInt(record.seq)));
    try {
      feed.start();
      await waitFor(() => seen.length > 0, 'the first records');
      for (let cut = 0; cut < 3; cut++) {
        const connectsBefore = feed.stats()[0]!.connects;
        for (const socket of sockets) socket.destroy();
        await env.traffic(2, `cut-${cut}`);
        await waitFor(() => feed.stats()[0]!.connects > connectsBefore, 'a reconnect');
      }
      const head = await env.head();
      await waitFor(() => BigInt(feed.stats()[0]!.handedSeq) === head, `the feed to reach seq ${head}`);
      assert.deepEqual(seen, Array.from({ length: Number(head) }, (_, i) => BigInt(i + 1)));
      await feed.stop();
      await collector.writer.flush();
      await assertExactlyOnce(collector.store, await env.gw.records());
    } finally {
      await feed.stop();
      await collector.close();
      relay.close();
      for (const socket of sockets) socket.destroy();
    }
  });

  it('reconnects to a restarted gateway and goes on from its position', async () => {
    const dataDir = join(parent, 'restart');
    mkdirSync(dataDir);
    const collector = await collectorStore(dataDir);
    const feed = new GatewaySubscriptions({ gateways: [env.entry], dataDir, writer: collector.writer, tuning: TUNING, log: silentLog });
    const seen: bigint[] = [];
    feed.onRecord((record) => seen.push(BigInt(record.seq)));
    try {
      feed.start();
      const before = await env.head();
      await waitFor(() => BigInt(feed.stats()[0]!.handedSeq) === before, 'the feed to catch up');
      await env.restartAudit();
      await env.traffic(1, 'after-restart');
      const head = await env.head();
      await waitFor(() => BigInt(feed.stats()[0]!.handedSeq) === head, `the feed to reach seq ${head}`);
      assert.ok(feed.stats()[0]!.connects >= 2, 'it connected again');
      assert.deepEqual(seen, Array.from({ length: Number(head) }, (_, i) => BigInt(i + 1)));
    } finally {
      await feed.stop();
      await collector.close();
    }
  });

  it('stops instead of resuming when the gateway at the address is not the one its position belongs to', async () => {
    const dataDir = join(parent, 'other-gateway');
    mkdirSync(dataDir);
    new PositionFile(dataDir, env.address).save({ address: env.address, gatewayId: 'gw-elsewhere', lastSeq: 3n });
    const collector = await collectorStore(dataDir);
    const feed = new GatewaySubscriptions({ gateways: [env.entry], dataDir, writer: collector.writer, tuning: TUNING, log: silentLog });
    const seen: string[] = [];
    feed.onRecord((record) => seen.push(record.seq));
    try {
      feed.start();
      await waitFor(() => feed.subscribers[0]!.failure !== null, 'the subscription to stop');
      assert.equal((feed.subscribers[0]!.failure as Error & { code: string }).code, 'COLLECTOR_ERR_GATEWAY_FEED_GATEWAY_CHANGED');
      assert.match(feed.subscribers[0]!.failure!.message, /saved position belongs to "gw-elsewhere"/);
      assert.deepEqual(seen, []);
    } finally {
      await feed.stop();
      await collector.close();
    }
  });

  it('stores every record exactly once when the collector is killed and restarted while the gateway keeps serving', async () => {
    const dataDir = join(parent, 'kill');
    mkdirSync(dataDir);
    const configFile = join(dataDir, 'gapwatch.yaml');
    writeFileSync(
      configFile,
      stringify({ dataDir, store: { ttlDays: 30, writer: { flushIntervalMs: 50 } }, collector: { gateways: [env.entry], gatewayFeed: { commitIntervalMs: 50, reconnectBaseMs: 50, reconnectMaxMs: 400 } } }),
    );
    let serving = true;
    const load = (async () => {
      for (let i = 0; serving; i++) await env.traffic(3, `load-${i}`);
    })();
    const children: ChildProcess[] = [];
    const startChild = (): { child: ChildProcess; last: () => Record<string, unknown> | null; exited: Promise<number | null> } => {
      const child = spawn(process.execPath, [join(repoRoot, 'dist', 'test', 'collector', 'gateway-feed', 'fixtures', 'feed-child.js'), configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      let last: Record<string, unknown> | null = null;
      let buffer = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop()!;
        for (const line of lines) if (line.trim()) last = JSON.parse(line) as Record<string, unknown>;
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { child, last: () => last, exited };
    };
    try {
      const first = startChild();
      await waitFor(() => Number(first.last()?.committedSeq ?? 0) > 0 && Number(first.last()?.handedSeq ?? 0) > 20, 'the first collector to store records');
      first.child.kill('SIGKILL');
      await first.exited;
      const second = startChild();
      await waitFor(() => Number(second.last()?.handedSeq ?? 0) > Number(first.last()!.handedSeq), 'the restarted collector to go on');
      serving = false;
      await load;
      const head = await env.head();
      await waitFor(() => BigInt(String(second.last()?.handedSeq ?? '0')) === head, `the restarted collector to reach seq ${head}`);
      second.child.kill('SIGTERM');
      assert.equal(await second.exited, 0);
      assert.equal(second.last()!.stopped, true);
      assert.equal(second.last()!.missed, 0);
    } finally {
      serving = false;
      await load.catch(() => undefined);
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    const collector = await collectorStore(dataDir);
    try {
      await assertExactlyOnce(collector.store, await env.gw.records());
    } finally {
      await collector.close();
    }
  });
});

describe('collector/gateway-feed: position file', () => {
  it('refuses a damaged position with what to do, and round-trips a good one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gapwatch-position-'));
    try {
      const file = new PositionFile(dir, 'gw.example:7443');
      assert.deepEqual(file.load(), { address: 'gw.example:7443', gatewayId: '', lastSeq: 0n });
      file.save({ address: 'gw.example:7443', gatewayId: 'gw-a', lastSeq: 12345678901234567890n });
      assert.deepEqual(file.load(), { address: 'gw.example:7443', gatewayId: 'gw-a', lastSeq: 12345678901234567890n });
      writeFileSync(file.path, '{"gatewayId": "gw-a", "lastSeq": 12');
      assert.throws(() => file.load(), (err: Error & { code?: string }) => err.code === 'COLLECTOR_ERR_GATEWAY_FEED_POSITION' && /delete it to resubscribe/.test(err.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

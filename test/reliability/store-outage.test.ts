import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayFeedTuningSchema } from '../../collector/gateway-feed/config-schema';
import { GatewaySubscriptions } from '../../collector/gateway-feed/gateway-feed';
import { openStore, type Store } from '../../collector/store/connection';
import { migrate } from '../../collector/store/migration';
import type { TableName } from '../../collector/store/rows';
import { storeSink, type InsertSink } from '../../collector/store/sink';
import { Spool } from '../../collector/store/spool';
import { StoreWriter } from '../../collector/store/writer';
import { parseConfig } from '../../platform/config';
import { connectRows, silentLog } from '../collector/store/store-fixture';
import { startAuditGateway, type AuditGatewayUnderTest } from '../support/audit-gateway';
import { assertStoredExactlyOnce, journalTruth, storedGatewayRecords, storeQuery, table, waitUntil } from '../support/gapwatch-processes';
import { requireRoot } from '../support/host';

/** How long the store is unreachable. */
const OUTAGE_MS = 60_000;

/**
 * A fault-injecting wrapper around the real sink: while `reachable` is false every insert fails the way
 * a server that cannot be reached fails (ECONNREFUSED), before anything reaches the store.
 */
class SwitchableSink implements InsertSink {
  reachable = true;
  refused = 0;

  constructor(private readonly real: InsertSink) {}

  async insert(table: TableName, columns: readonly string[], body: Buffer, rows: number): Promise<void> {
    if (!this.reachable) {
      this.refused++;
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' });
    }
    await this.real.insert(table, columns, body, rows);
  }
}

describe('reliability: store unreachable for a minute under load', function () {
  this.timeout(OUTAGE_MS + 240_000);
  let env: AuditGatewayUnderTest | null = null;
  let dir = '';
  let store: Store | null = null;

  after(async () => {
    await store?.close();
    await env?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('spools while the store is away, replays when it is back, and ends with exact counts', async () => {
    // "Nothing lost" here: every connect row the producer handed to the writer (before, during and
    // after the outage) is in the store once (rows after FINAL = distinct ids = rows produced), every
    // session and session event the gateway journaled meanwhile is in the store exactly once, nothing
    // was dropped (writer stats), and what was spooled is what was replayed.
    requireRoot();
    env = await startAuditGateway();
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-outage-'));
    const config = parseConfig(`dataDir: ${dir}\nstore:\n  writer: { batchRows: 2000, retryBaseMs: 50, retryMaxMs: 2000 }\n`);
    store = await openStore(config);
    await migrate(store.client, store.dialect);
    const sink = new SwitchableSink(storeSink(store));
    const { spool } = Spool.open({ dir: join(dir, 'spool'), maxBytes: config.store.spool.maxBytes });
    const writer = new StoreWriter(sink, spool, config.store.writer, silentLog, 'outage-test');
    writer.start();
    const feed = new GatewaySubscriptions({
      gateways: [env.entry],
      dataDir: dir,
      writer,
      tuning: gatewayFeedTuningSchema.parse({ commitIntervalMs: 100, reconnectBaseMs: 50, reconnectMaxMs: 500 }),
      log: silentLog,
    });
    feed.start();

    let producing = true;
    let produced = 0;
    let sessions = 0;
    const rowsLoad = (async () => {
      while (producing) {
        // About 500 connect rows a second besides the gateway's records: a busy build host, and a
        // minute's spool that a loaded 2-core CI machine replays in well under a minute.
        await writer.write('connect_events', connectRows(100, produced));
        produced += 100;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    const gatewayLoad = (async () => {
      while (producing) await env!.traffic(3, `outage-${sessions++}`);
    })();
    try {
      await waitUntil(() => produced >= 2000 && sessions >= 2, 'load before the outage', 120_000);
      sink.reachable = false;
      const spooledBefore = writer.stats().spooled;
      await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
      const during = writer.stats();
      assert.equal(during.degraded, true, 'the writer noticed');
      assert.ok(during.spooled > spooledBefore, 'batches went to the spool');
      assert.ok(readdirSync(join(dir, 'spool')).some((f) => f.endsWith('.spool')), 'the spool is on disk');
      const sessionsDuringOutage = sessions;
      sink.reachable = true;
      await waitUntil(() => !writer.stats().degraded, 'the writer to replay the spool', 150_000);
      await waitUntil(() => sessions >= sessionsDuringOutage + 2, 'load after the outage');
      producing = false;
      await Promise.all([rowsLoad, gatewayLoad]);
      const head = await env.head();
      await waitUntil(() => BigInt(feed.stats()[0]!.handedSeq) >= head, `the feed to reach seq ${head}`);
      await feed.stop();
      await writer.close();

      const stats = writer.stats();
      assert.equal(stats.dropped, 0, 'nothing dropped');
      assert.equal(stats.replayed, stats.spooled, 'everything spooled was replayed');
      assert.equal(stats.written, stats.accepted, 'every accepted row written');
      assert.ok(sink.refused > 0);

      const [connects] = await storeQuery<{ final: string; ids: string }>(store, `SELECT count() AS final, uniqExact(event_id) AS ids FROM ${table(store, 'connect_events')} FINAL`);
      assert.equal(Number(connects!.final), produced, 'every connect row, once');
      assert.equal(Number(connects!.ids), produced);
      const truth = journalTruth(await env.gw.records());
      const stored = await storedGatewayRecords(store);
      assert.equal(truth.sessions.size, sessions, 'one journaled session per agent session');
      assertStoredExactlyOnce(stored, truth);
    } finally {
      producing = false;
      await Promise.allSettled([rowsLoad, gatewayLoad]);
      await feed.stop();
      await writer.close();
    }
  });
});

import assert from 'node:assert/strict';
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../../../platform/config';
import { openStore, type Store } from '../../../collector/store/connection';
import { qualified } from '../../../collector/store/ddl';
import { migrate } from '../../../collector/store/migration';
import { storeSink } from '../../../collector/store/sink';
import { Spool } from '../../../collector/store/spool';
import { dateTime64, nowNanos } from '../../../collector/store/time';
import { StoreWriter, type WriterOptions } from '../../../collector/store/writer';
import type { InsertSink } from '../../../collector/store/sink';
import type { TableName } from '../../../collector/store/rows';
import { connectRows, countFinal, countRaw, FaultySink, queryRows, silentLog, tempConfig } from './store-fixture';

const FAST: WriterOptions = { batchRows: 500, flushIntervalMs: 20, maxBufferedRows: 5000, attempts: 3, retryBaseMs: 5, retryMaxMs: 40, inflightBatches: 2 };

/**
 * Holds each insert until another one starts (or `holdMs` passes), so inserts the writer lets overlap do
 * overlap; counts how many ran at once. The first insert to arrive fails (connection refused) when
 * `failFirst` is set, after the second has arrived.
 */
class OverlapSink implements InsertSink {
  active = 0;
  maxActive = 0;
  /** The event id of the first row of each batch the store took, in the order it took them. */
  readonly stored: string[] = [];
  private calls = 0;
  private waiting: (() => void) | null = null;

  constructor(
    private readonly real: InsertSink,
    private readonly failFirst: boolean,
    private readonly holdMs: number,
  ) {}

  async insert(table: TableName, columns: readonly string[], body: Buffer, rows: number): Promise<void> {
    const call = this.calls++;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      if (this.waiting !== null) {
        this.waiting();
        this.waiting = null;
      } else {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.holdMs);
          this.waiting = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.waiting = null;
      }
      if (call === 0 && this.failFirst) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' });
      await this.real.insert(table, columns, body, rows);
      this.stored.push((JSON.parse(body.subarray(0, body.indexOf(0x0a)).toString('utf8')) as string[])[0]!);
    } finally {
      this.active--;
    }
  }
}

async function until(condition: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('collector/store writer (embedded engine)', function () {
  this.timeout(60_000);
  let config: Config;
  let store: Store;

  beforeEach(async () => {
    config = tempConfig();
    store = await openStore(config);
    await migrate(store.client, store.dialect);
  });

  afterEach(async () => {
    await store.close();
  });

  function openSpool(maxBytes = 64 * 1024 * 1024) {
    return Spool.open({ dir: join(config.dataDir, 'spool'), maxBytes, segmentBytes: 64 * 1024 });
  }

  it('delivers every row exactly once through failed inserts, retries and a spool replay', async () => {
    const faulty = new FaultySink(storeSink(store), 2);
    const { spool, damage } = openSpool();
    const writer = new StoreWriter(faulty, spool, FAST, silentLog, 'host-a');
    writer.start(damage);

    // 2 failures < 3 attempts: the first batch gets through on its third try.
    await writer.write('connect_events', connectRows(500, 0));
    await writer.flush();
    assert.equal(faulty.failed, 2);
    assert.equal(await countFinal(store, 'connect_events'), 500);
    assert.equal(writer.stats().spooled, 0);

    // Now the store "goes away" for long enough that batches are spooled, then comes back.
    faulty.failures = 8;
    for (let i = 0; i < 6; i++) await writer.write('connect_events', connectRows(500, 500 + i * 500));
    await writer.flush();
    assert.ok(writer.stats().spooled > 0, 'batches went to the spool while the store was unreachable');
    await until(() => !writer.stats().degraded && spool.isEmpty, 'spool replay');

    // A replay of rows already stored (same ids) must not duplicate them either.
    await writer.write('connect_events', connectRows(1000, 0));
    await writer.close();

    const stats = writer.stats();
    assert.equal(stats.dropped, 0);
    assert.equal(stats.buffered, 0);
    assert.equal(await countFinal(store, 'connect_events'), 3500);
    const distinct = await queryRows<{ c: string }>(store, `SELECT uniqExact(event_id) AS c FROM ${qualified(store.dialect, 'connect_events')}`);
    assert.equal(Number(distinct[0]!.c), 3500);
    assert.equal(await countFinal(store, 'audit_gaps'), 0);
    assert.deepEqual(readdirSync(spool.dir).filter((f) => f.endsWith('.spool')), []);
  });

  it('keeps the order of batches: spooled rows are written before rows that arrived after them', async () => {
    const faulty = new FaultySink(storeSink(store), 3);
    const { spool } = openSpool();
    const writer = new StoreWriter(faulty, spool, { ...FAST, attempts: 1 }, silentLog, 'host-a');
    writer.start();
    await writer.write('connect_events', connectRows(500, 0));
    await writer.flush();
    assert.equal(writer.stats().spooled, 500);
    await writer.write('connect_events', connectRows(500, 500));
    await writer.flush();
    await until(() => !writer.stats().degraded, 'recovery');
    await writer.close();
    // The raw (unmerged) parts in insertion order: the first 500 ids precede the next 500.
    const rows = await queryRows<{ event_id: string }>(
      store,
      `SELECT event_id FROM ${qualified(store.dialect, 'connect_events')} ORDER BY _part, _part_offset`,
    );
    const order = rows.map((r) => Number(r.event_id.slice(3)));
    assert.equal(order.length, 1000);
    assert.ok(order.indexOf(0) < order.indexOf(500) && order.indexOf(499) < order.indexOf(999), 'spooled batch stored first');
  });

  it('records what it drops when the spool is full as an audit_gaps row', async () => {
    const faulty = new FaultySink(storeSink(store), 1_000_000);
    const { spool } = openSpool(8 * 1024);
    const writer = new StoreWriter(faulty, spool, { ...FAST, attempts: 1, batchRows: 100 }, silentLog, 'host-a');
    writer.start();
    await writer.write('connect_events', connectRows(1000, 0));
    await writer.flush();
    const stats = writer.stats();
    assert.ok(stats.dropped > 0, 'some batches did not fit');
    assert.equal(stats.spooled + stats.dropped, 1000);
    assert.ok(spool.bytes <= 8 * 1024);

    faulty.failures = 0;
    await until(() => !writer.stats().degraded, 'recovery');
    await writer.close();

    assert.equal(await countFinal(store, 'connect_events'), stats.spooled);
    const gaps = await queryRows<{ source: string; lost: string; reason: string; host: string }>(
      store,
      `SELECT source, lost, reason, host FROM ${qualified(store.dialect, 'audit_gaps')} FINAL`,
    );
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0]!.source, 'spool');
    assert.equal(gaps[0]!.host, 'host-a');
    assert.equal(Number(gaps[0]!.lost), stats.dropped);
    assert.match(gaps[0]!.reason, /spool full .* connect_events rows dropped/);
  });

  it('detects a torn spool tail, replays the whole records and records the damage', async () => {
    const faulty = new FaultySink(storeSink(store), 1_000_000);
    const first = openSpool();
    const writer = new StoreWriter(faulty, first.spool, { ...FAST, attempts: 1 }, silentLog, 'host-a');
    writer.start();
    await writer.write('connect_events', connectRows(1000, 0));
    await writer.close();
    assert.equal(writer.stats().spooled, 1000);
    // A crash in the middle of an append leaves half a record behind.
    const segment = readdirSync(first.spool.dir).filter((f) => f.endsWith('.spool')).sort().pop()!;
    appendFileSync(join(first.spool.dir, segment), Buffer.from([0x47, 0x57, 0x53, 0x31, 0xff, 0x00]));

    const reopened = openSpool();
    assert.equal(reopened.damage.length, 1);
    assert.equal(reopened.damage[0]!.discardedBytes, 6);
    const recovered = new StoreWriter(storeSink(store), reopened.spool, FAST, silentLog, 'host-a');
    recovered.start(reopened.damage);
    await until(() => !recovered.stats().degraded, 'replay');
    await recovered.close();
    assert.equal(await countFinal(store, 'connect_events'), 1000);
    const gaps = await queryRows<{ reason: string }>(store, `SELECT reason FROM ${qualified(store.dialect, 'audit_gaps')} FINAL`);
    assert.equal(gaps.length, 1);
    assert.match(gaps[0]!.reason, /damaged at byte \d+ \(record header cut short \(torn write\)\); 6 bytes/);
  });

  it('isolates rows the store refuses as malformed, stores the rest, and records each refused row as a gap', async () => {
    const { spool } = openSpool();
    const writer = new StoreWriter(storeSink(store), spool, FAST, silentLog, 'host-a');
    writer.start();
    const rows = connectRows(20, 0);
    for (const i of [3, 4, 17]) rows[i] = { ...rows[i]!, time: `not a time ${i}` };
    await writer.write('connect_events', rows);
    await writer.flush();
    await until(async () => (await countFinal(store, 'audit_gaps')) === 3, 'the gap rows');
    await writer.close();
    assert.equal(writer.stats().dropped, 3);
    assert.equal(writer.stats().written, 17);
    assert.equal(await countFinal(store, 'connect_events'), 17);
    const stored = await queryRows<{ event_id: string }>(store, `SELECT event_id FROM ${qualified(store.dialect, 'connect_events')} FINAL WHERE event_id IN ('ce-3', 'ce-4', 'ce-17')`);
    assert.deepEqual(stored, []);
    const gaps = await queryRows<{ source: string; lost: string; reason: string }>(store, `SELECT source, lost, reason FROM ${qualified(store.dialect, 'audit_gaps')} FINAL`);
    assert.deepEqual(gaps.map((g) => [g.source, Number(g.lost)]), [['store', 1], ['store', 1], ['store', 1]]);
    for (const gap of gaps) assert.match(gap.reason, /refused 1 connect_events row as malformed: Cannot/);
  });

  it('replays a spooled batch by the column list it was spooled with, so spools survive schema changes', async () => {
    const { spool } = openSpool();
    // As an older version with fewer connect_events columns would have spooled it.
    const body = Buffer.from(`${JSON.stringify(['old-1', 'host-a', dateTime64(nowNanos()), 'bypass'])}\n`);
    assert.ok(spool.append({ table: 'connect_events', columns: ['event_id', 'host', 'time', 'verdict'], rows: 1, minTime: '', maxTime: '', body }));
    const writer = new StoreWriter(storeSink(store), spool, FAST, silentLog, 'host-a');
    writer.start();
    await until(() => !writer.stats().degraded, 'replay');
    await writer.close();
    const rows = await queryRows<Record<string, unknown>>(
      store,
      `SELECT event_id, verdict, resource, session_id FROM ${qualified(store.dialect, 'connect_events')} FINAL`,
    );
    assert.deepEqual(rows, [{ event_id: 'old-1', verdict: 'bypass', resource: '', session_id: '' }]);
  });

  it('applies back-pressure: write() waits while the backlog is at its bound', async () => {
    const faulty = new FaultySink(storeSink(store), 0);
    const { spool } = openSpool();
    const writer = new StoreWriter(faulty, spool, { ...FAST, batchRows: 100, maxBufferedRows: 300, flushIntervalMs: 60_000 }, silentLog, 'host-a');
    writer.start();
    let settled = false;
    const pending = writer.write('connect_events', connectRows(250, 0)).then(() => (settled = true));
    await pending;
    assert.equal(settled, true, 'below the bound write() settles without waiting for the store');
    let blockedSettled = false;
    const blocked = writer.write('connect_events', connectRows(200, 250)).then(() => (blockedSettled = true));
    assert.equal(blockedSettled, false);
    assert.ok(writer.stats().buffered >= 300);
    await blocked;
    assert.ok(writer.stats().buffered < 300, 'it settled only once the backlog had drained below the bound');
    await writer.close();
    assert.equal(await countRaw(store, 'connect_events'), 450);
  });

  it('cuts a batch where it fills, across and inside producer calls, each batch with its own time range', async () => {
    const unreachable: InsertSink = {
      async insert() {
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' });
      },
    };
    const { spool } = openSpool();
    const writer = new StoreWriter(unreachable, spool, { ...FAST, attempts: 1, flushIntervalMs: 60_000 }, silentLog, 'host-a');
    writer.start();
    // 300 + 300 + 700 rows into batches of 500: the second and third calls each straddle a batch.
    await writer.write('connect_events', connectRows(300, 0));
    await writer.write('connect_events', connectRows(300, 300));
    await writer.write('connect_events', connectRows(700, 600));
    await writer.close();
    assert.equal(writer.stats().spooled, 1300);
    const batches: Array<{ rows: number; lines: number; first: string; last: string; minTime: string; maxTime: string }> = [];
    await Spool.open({ dir: join(config.dataDir, 'spool'), maxBytes: 64 * 1024 * 1024 }).spool.replay(async (batch) => {
      const lines = batch.body.toString('utf8').split('\n');
      assert.equal(lines.pop(), '', 'the body ends with a newline');
      const id = (line: string) => (JSON.parse(line) as string[])[0]!;
      batches.push({ rows: batch.rows, lines: lines.length, first: id(lines[0]!), last: id(lines[lines.length - 1]!), minTime: batch.minTime, maxTime: batch.maxTime });
    });
    const time = (i: number) => connectRows(1, i)[0]!.time;
    assert.deepEqual(batches, [
      { rows: 500, lines: 500, first: 'ce-0', last: 'ce-499', minTime: time(0), maxTime: time(499) },
      { rows: 500, lines: 500, first: 'ce-500', last: 'ce-999', minTime: time(500), maxTime: time(999) },
      { rows: 300, lines: 300, first: 'ce-1000', last: 'ce-1299', minTime: time(1000), maxTime: time(1299) },
    ]);
  });

  it('runs inflightBatches inserts at once, and one at a time when it is 1', async () => {
    for (const inflightBatches of [2, 1]) {
      const sink = new OverlapSink(storeSink(store), false, 150);
      const { spool } = openSpool();
      const writer = new StoreWriter(sink, spool, { ...FAST, inflightBatches }, silentLog, 'host-a');
      writer.start();
      await writer.write('connect_events', connectRows(2000, inflightBatches * 10_000));
      await writer.close();
      assert.equal(sink.maxActive, inflightBatches);
      assert.equal(writer.stats().written, 2000);
    }
    assert.equal(await countFinal(store, 'connect_events'), 4000);
  });

  it('with two inserts in flight, spools a failed batch and every later one in order, and replays them exactly once', async () => {
    const sink = new OverlapSink(storeSink(store), true, 100);
    const { spool } = openSpool();
    const writer = new StoreWriter(sink, spool, { ...FAST, attempts: 1, inflightBatches: 2 }, silentLog, 'host-a');
    writer.start();
    // Four batches of 500: the first fails while the second is in flight; the second lands; the third and
    // fourth start after the failure and go to the spool behind the first.
    await writer.write('connect_events', connectRows(2000, 0));
    await writer.flush();
    assert.equal(writer.stats().spooled, 1500);
    await until(() => !writer.stats().degraded && spool.isEmpty, 'spool replay');
    await writer.close();
    const stats = writer.stats();
    assert.deepEqual([stats.written, stats.replayed, stats.dropped], [2000, 1500, 0]);
    assert.equal(await countFinal(store, 'connect_events'), 2000);
    assert.equal(await countRaw(store, 'connect_events'), 2000);
    // The batch in flight at the failure landed first; the spool replayed its batches in order.
    assert.deepEqual(sink.stored, ['ce-500', 'ce-0', 'ce-1000', 'ce-1500']);
  });
});

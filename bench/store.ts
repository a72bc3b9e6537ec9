import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createChdbConnection } from 'chdb/connection';
import { embeddedStorePath, openStore, type Store } from '../collector/store/connection';
import { qualified } from '../collector/store/ddl';
import { migrate } from '../collector/store/migration';
import { connectEventRow, encodeRows, TABLE_COLUMNS, type Row } from '../collector/store/rows';
import { Readable } from 'node:stream';
import { storeSink, type InsertSink } from '../collector/store/sink';
import { Spool } from '../collector/store/spool';
import { StoreWriter, type WriterOptions } from '../collector/store/writer';
import { parseConfig } from '../platform/config';
import { round, summarize } from './stats';

/**
 * `npm run bench -- store [rows] [rounds] [maxMemoryMiB]`: connect events into the embedded engine.
 *
 * - writer: ready-made rows handed to StoreWriter one producer chunk at a time, encoded and batched at
 *   the default batch size, inserted through the store sink (for the embedded engine chDB's raw insert,
 *   `Store.insertRaw`), with the configured `inflightBatches` (default 2) inserts at once;
 * - writer_before: the writer as it was before it was tuned, for the before/after ratio in the same run:
 *   one insert at a time (`inflightBatches: 1`) through @clickhouse/client, each insert carrying the
 *   client's settings (which chDB sends as `SET …;` statements in front of the INSERT); the two alternate
 *   which goes first in each round;
 * - baseline: batches already encoded, inserted one at a time through @clickhouse/client's exec (the
 *   sink's path before it used the raw insert);
 * - chdb_raw: the same batches through chDB's own zero-copy insert (`connection.chdb.rawInsert`), which
 *   bypasses @clickhouse/client: the engine's ceiling on this machine, for reference;
 * - spool: the writer with the store unreachable, so every batch is appended (fsync'd) to the spool;
 * - replay: that spool replayed into the engine.
 *
 * Medians of several rounds; ratios against the baseline, and writer/writer_serial and writer/chdb_raw
 * as medians of the per-round ratios (the second is the writer's share of the engine's ceiling, which the
 * machine's speed of the moment does not move). CPU per row is the whole process (Node and the engine's threads, background merges
 * included), which the other load on a shared machine does not inflate the way it does wall time.
 * Peak RSS is the process maximum (the engine, and the bench's own pre-encoded batches);
 * `maxMemoryMiB` sets `store.embedded.maxMemoryMiB` to see what capping the engine costs.
 */
const BATCH_ROWS = 20_000;
const PRODUCER_CHUNK = 1_000;
const SPOOL_BYTES = 4 * 1024 ** 3;
const silent = pino({ level: 'silent' });

const unreachable: InsertSink = {
  async insert() {
    throw Object.assign(new Error('connect ECONNREFUSED (bench: store unreachable)'), { code: 'ECONNREFUSED' });
  },
};

function makeRows(count: number, first: number, baseNanos: bigint): Row[] {
  const rows: Row[] = [];
  for (let i = first; i < first + count; i++) {
    rows.push(
      connectEventRow({
        eventId: `bench-${i}`,
        host: 'bench-host',
        timeUnixNano: String(baseNanos + BigInt(i) * 1000n),
        process: { execId: `bench-host:b0:${1000 + (i % 64)}:42`, pid: 1000 + (i % 64), tgid: 1000 + (i % 64), agentRun: `bench-host:b0:${900 + (i % 8)}:1` },
        transport: 'TRANSPORT_TCP',
        destination: { inet: { ip: '10.1.2.3', port: 5432 }, address: 'inet' },
        local: { ip: '10.9.8.7', port: 30000 + (i % 30000) },
        result: 0,
        verdict: i % 10 === 0 ? 'VERDICT_BYPASS' : 'VERDICT_MEDIATED',
        resource: 'orders-db',
        sessionId: i % 10 === 0 ? '' : `gw-local-${i}`,
      }),
    );
  }
  return rows;
}

/** The sink as it was before tuning: the insert carries the client's default settings. */
function settingsCarryingSink(store: Store): InsertSink {
  return {
    async insert(table, columns, body) {
      const result = await store.client.exec({
        query: `INSERT INTO ${qualified(store.dialect, table)} (${columns.join(', ')}) FORMAT JSONCompactEachRow`,
        values: Readable.from([body], { objectMode: false }),
      });
      for await (const chunk of result.stream) void chunk;
    },
  };
}

/**
 * Hands `total` connect events to the writer in producer-sized chunks. The rows come ready-made from a
 * pool (as the correlator hands them over): building them is the producer's cost, not the store's. Each
 * gets its own event id, so none collapse with another.
 */
async function feed(writer: StoreWriter, pool: readonly Row[], total: number, first: number): Promise<void> {
  for (let done = 0; done < total; done += PRODUCER_CHUNK) {
    const chunk: Row[] = [];
    for (let i = done; i < Math.min(done + PRODUCER_CHUNK, total); i++) chunk.push({ ...pool[i % pool.length]!, event_id: `bench-${first + i}` });
    await writer.write('connect_events', chunk);
  }
  await writer.flush();
}

export async function run(args: string[]): Promise<Record<string, unknown> & { name: string }> {
  const total = Number(args[0] ?? 400_000);
  const rounds = Number(args[1] ?? 3);
  const maxMemoryMiB = args[2] === undefined ? undefined : Number(args[2]);
  const dir = mkdtempSync(join(tmpdir(), 'gapwatch-bench-store-'));
  const config = parseConfig(`dataDir: ${dir}\n${maxMemoryMiB === undefined ? '' : `store: { embedded: { maxMemoryMiB: ${maxMemoryMiB} } }\n`}`);
  const options: WriterOptions = { ...config.store.writer, batchRows: BATCH_ROWS, attempts: 1 };
  const beforeOptions: WriterOptions = { ...options, inflightBatches: 1 };
  const baseNanos = BigInt(Date.now()) * 1_000_000n;
  let store: Store | null = null;
  const writerRates: number[] = [];
  const serialRates: number[] = [];
  const pairedRatios: number[] = [];
  const ceilingRatios: number[] = [];
  const writerCpu: number[] = [];
  const serialCpu: number[] = [];
  const baselineRates: number[] = [];
  const rawRates: number[] = [];
  const spoolRates: number[] = [];
  const replayRates: number[] = [];
  let peakRss = 0;
  const sampleRss = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 20);
  try {
    store = await openStore(config);
    await migrate(store.client, store.dialect);
    const sink = storeSink(store);
    const clientSink = storeSink({ ...store, insertRaw: undefined });
    const beforeSink = settingsCarryingSink(store);
    const raw = createChdbConnection({ path: embeddedStorePath(config) });
    let next = 0;
    for (let round = 0; round < rounds; round++) {
      // Baseline: pre-encoded batches straight into the engine.
      const bodies: Buffer[] = [];
      for (let done = 0; done < total; done += BATCH_ROWS) {
        const rows = makeRows(Math.min(BATCH_ROWS, total - done), next + done, baseNanos);
        bodies.push(encodeRows('connect_events', rows));
      }
      next += total;
      let started = process.hrtime.bigint();
      for (const body of bodies) await clientSink.insert('connect_events', TABLE_COLUMNS.connect_events, body, BATCH_ROWS);
      baselineRates.push(total / (Number(process.hrtime.bigint() - started) / 1e9));
      bodies.length = 0;

      for (let done = 0; done < total; done += BATCH_ROWS) {
        const rows = makeRows(Math.min(BATCH_ROWS, total - done), next + done, baseNanos);
        bodies.push(encodeRows('connect_events', rows));
      }
      next += total;
      started = process.hrtime.bigint();
      for (const body of bodies) await raw.chdb.rawInsert({ table: `${store.dialect.database}.connect_events`, values: body, columns: TABLE_COLUMNS.connect_events, format: 'JSONCompactEachRow' });
      rawRates.push(total / (Number(process.hrtime.bigint() - started) / 1e9));
      bodies.length = 0;

      // The writer into the engine, as tuned and as before, alternating which goes first.
      const spoolDir = join(dir, `spool-${round}`);
      const pool = makeRows(BATCH_ROWS, 0, baseNanos);
      let pipelinedRate = 0;
      let serialRate = 0;
      for (const pipelined of round % 2 === 0 ? [true, false] : [false, true]) {
        const spoolForRun = Spool.open({ dir: spoolDir, maxBytes: SPOOL_BYTES }).spool;
        const direct = pipelined
          ? new StoreWriter(sink, spoolForRun, options, silent, 'bench-host')
          : new StoreWriter(beforeSink, spoolForRun, beforeOptions, silent, 'bench-host');
        direct.start();
        const cpu = process.cpuUsage();
        started = process.hrtime.bigint();
        await feed(direct, pool, total, next);
        const rate = total / (Number(process.hrtime.bigint() - started) / 1e9);
        const used = process.cpuUsage(cpu);
        (pipelined ? writerCpu : serialCpu).push((used.user + used.system) / total);
        if (pipelined) pipelinedRate = rate;
        else serialRate = rate;
        await direct.close();
        if (direct.stats().written !== total) throw new Error(`writer stored ${JSON.stringify(direct.stats())} of ${total}`);
        next += total;
      }
      writerRates.push(pipelinedRate);
      serialRates.push(serialRate);
      pairedRatios.push(pipelinedRate / serialRate);
      ceilingRatios.push(pipelinedRate / rawRates[rawRates.length - 1]!);

      // The spool path: the store unreachable, every batch appended to disk.
      const { spool } = Spool.open({ dir: spoolDir, maxBytes: SPOOL_BYTES });
      const spooling = new StoreWriter(unreachable, spool, options, silent, 'bench-host');
      spooling.start();
      started = process.hrtime.bigint();
      await feed(spooling, pool, total, next);
      spoolRates.push(total / (Number(process.hrtime.bigint() - started) / 1e9));
      await spooling.close();
      if (spooling.stats().spooled !== total) throw new Error(`spooled ${JSON.stringify(spooling.stats())} of ${total}`);
      next += total;

      // Recovery: the spool replayed into the engine.
      const reopened = Spool.open({ dir: spoolDir, maxBytes: SPOOL_BYTES });
      started = process.hrtime.bigint();
      const replayed = await reopened.spool.replay((batch) => sink.insert(batch.table, batch.columns, batch.body, batch.rows));
      replayRates.push(replayed.rows / (Number(process.hrtime.bigint() - started) / 1e9));
      rmSync(spoolDir, { recursive: true, force: true });
    }
    const stored = await (
      await store.client.query({ query: `SELECT count() AS c FROM ${qualified(store.dialect, 'connect_events')} FINAL`, format: 'JSONEachRow' })
    ).json<{ c: string }>();
    if (Number(stored[0]!.c) !== next) throw new Error(`stored ${stored[0]!.c} rows, expected ${next}`);
    await raw.close();
  } finally {
    clearInterval(sampleRss);
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  peakRss = Math.max(peakRss, process.resourceUsage().maxRSS * 1024);
  const writer = summarize(writerRates);
  const serial = summarize(serialRates);
  const paired = summarize(pairedRatios);
  const baseline = summarize(baselineRates);
  const chdbRaw = summarize(rawRates);
  const spool = summarize(spoolRates);
  const replay = summarize(replayRates);
  const result = {
    name: 'store',
    rows_per_round: total,
    batch_rows: BATCH_ROWS,
    inflight_batches: options.inflightBatches,
    engine_max_memory_mib: config.store.embedded.maxMemoryMiB,
    rows_per_sec: Math.round(writer.median),
    writer_before_rows_per_sec: Math.round(serial.median),
    writer_vs_before: round(paired.median),
    writer_cpu_us_per_row: round(summarize(writerCpu).median, 2),
    writer_before_cpu_us_per_row: round(summarize(serialCpu).median, 2),
    baseline_insert_rows_per_sec: Math.round(baseline.median),
    chdb_raw_insert_rows_per_sec: Math.round(chdbRaw.median),
    spool_rows_per_sec: Math.round(spool.median),
    spool_replay_rows_per_sec: Math.round(replay.median),
    writer_vs_baseline: round(writer.median / baseline.median),
    baseline_vs_chdb_raw: round(baseline.median / chdbRaw.median),
    // The writer against the engine's own ceiling in the same round: what the machine's speed of the
    // moment does not move (absolute rates on this VM drift by a fifth between runs).
    writer_vs_chdb_raw: round(summarize(ceilingRatios).median),
    spool_vs_writer: round(spool.median / writer.median),
    peak_rss_mib: Math.round(peakRss / (1024 * 1024)),
    rounds: { writer, writer_before: serial, writer_vs_before: paired, baseline, chdb_raw: chdbRaw, spool, replay },
  };
  process.stderr.write(`${JSON.stringify(result, null, 2)}\n`);
  return result;
}

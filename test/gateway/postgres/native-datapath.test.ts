import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { Journal, journalDirFor } from '../../../gateway/journal/journal';
import { verifyJournal } from '../../../gateway/journal/verify';
import { startGateway, type GatewayUnderTest } from '../../support/pg-gateway';
import { nodeClient, pgbench, type Target } from './clients';
import { until } from '../../support/until';

/**
 * The native session loop and the JavaScript journal share one chain: native request and outcome
 * records, JavaScript session records, checkpoints and segment rotations interleave. With segments
 * small enough to rotate every few hundred records, the journal must still verify end to end.
 */
describe('gateway/postgres native data path: one journal chain with JavaScript (real PostgreSQL 15)', function () {
  this.timeout(120_000);
  let gw: GatewayUnderTest;
  let target: Target;

  before(async () => {
    gw = await startGateway({
      postgres: { dataPath: 'auto' },
      policy: { builtinRules: false, default: 'allow' },
      journal: { segmentBytes: 65_536, checkpoint: { everyRecords: 100 } },
    });
    target = gw.agent;
    const init = await pgbench({ host: gw.pg.host, port: gw.pg.port, user: gw.pg.user, password: gw.pg.password, database: gw.pg.database }, ['-i', '-s', '1', '-q']);
    assert.equal(init.code, 0, init.stderr);
  });

  after(async () => {
    await gw?.stop();
  });

  it('rotates segments and signs checkpoints among native appends, and the journal verifies', async () => {
    const reads = await pgbench(target, ['-n', '-S', '-M', 'prepared', '-c', '4', '-j', '2', '-T', '2']);
    assert.equal(reads.code, 0, reads.stderr);
    const writes = await pgbench(target, ['-n', '-M', 'prepared', '-c', '2', '-j', '1', '-t', '30']);
    assert.equal(writes.code, 0, writes.stderr);
    assert.match(writes.stdout, /number of transactions actually processed: 60\/60/);
    assert.ok(gw.gateway.nativeSessionsServed >= 6, `sessions on the native loop: ${gw.gateway.nativeSessionsServed}`);
    // Read live (as the Audit stream does) across every rotation: each sealed segment's readable end
    // covers the frames the native loop wrote into it, whoever made them durable.
    let expected = 1n;
    for await (const record of gw.journal.read(1n)) {
      assert.equal(BigInt(record.seq), expected, 'seqs follow each other across segments');
      expected += 1n;
    }
    assert.ok(expected > 1000n, `read ${expected - 1n} records live`);
    // Stopped and closed, everything appended is on disk.
    await gw.gateway.stop();
    await gw.journal.close();
    const dir = journalDirFor(gw.dataDir, gw.config.gateway.id);
    const reopened = await Journal.open({ dir, gatewayId: gw.config.gateway.id });
    let updates = 0;
    for await (const record of reopened.read(1n)) if (record.event?.statement?.commandTag === 'UPDATE 1') updates += 1;
    await reopened.close();
    assert.equal(updates, 180, 'every UPDATE of the TPC-B-like run is journaled with its tag');
    const segments = readdirSync(dir).filter((name) => /^\d{20}/.test(name)).length;
    assert.ok(segments > 5, `rotated (${segments} segments)`);
    const report = await verifyJournal(dir);
    assert.equal(report.ok, true, JSON.stringify(report.problems.slice(0, 5), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  });
});

/**
 * The loop's sync thread makes what it writes durable (ChainSyncer: within 5 ms while sessions run);
 * the journal takes its word for it and runs no fdatasync of its own for those records — it ran one
 * after every 20 ms look at the loop before, doubling the fdatasyncs of a busy native path.
 */
describe('gateway/postgres native data path: its records made durable by its own sync thread (real PostgreSQL 15)', function () {
  this.timeout(60_000);
  let gw: GatewayUnderTest;

  before(async () => {
    gw = await startGateway({
      postgres: { dataPath: 'auto' },
      policy: { builtinRules: false, default: 'allow' },
      // No timed checkpoint (and its fdatasync) during the test.
      journal: { checkpoint: { everySeconds: 3600 } },
    });
  });

  after(async () => {
    await gw?.stop();
  });

  it("the journal's durable head follows native reads with no fdatasync of its own", async () => {
    const client = await nodeClient(gw.agent);
    try {
      await client.query('SELECT 1');
      await until('the session on the native loop', async () => gw.gateway.nativeSessionsServed >= 1);
      // The session's own records (JavaScript's, durable-awaited) are behind us: only native writes from here.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const before = gw.journal.stats();
      const written = gw.journal.writtenHead().seq;
      for (let i = 0; i < 300; i++) await client.query('SELECT $1::int AS n', [i]);
      const last = gw.journal.writtenHead().seq;
      assert.ok(last >= written + 600n, `300 requests and their outcomes written (${last - written} records)`);
      await until('the durable head to cover the native records', async () => gw.journal.head().seq >= last, 5_000);
      await new Promise((resolve) => setTimeout(resolve, 150));
      const after = gw.journal.stats();
      assert.equal(after.fsyncs - before.fsyncs, 0, "no fdatasync of the journal's own for records the loop's rounds made durable");
      assert.ok(after.nativeFsyncs > before.nativeFsyncs, `the loop's sync thread ran rounds (${before.nativeFsyncs} → ${after.nativeFsyncs})`);
    } finally {
      await client.end();
    }
  });
});

/**
 * Backpressure: an agent that stops reading a large result holds the server up, as it would without
 * the gateway; the gateway does not take the result into its memory meanwhile (the native loop did,
 * before 2026-11-26: its buffer toward the agent had no limit).
 */
for (const dataPath of ['auto', 'node'] as const) {
  describe(`gateway/postgres backpressure: an agent that stops reading — ${dataPath} data path (real PostgreSQL 15)`, function () {
    this.timeout(60_000);
    let gw: GatewayUnderTest;

    before(async () => {
      gw = await startGateway({ postgres: { dataPath }, policy: { builtinRules: false, default: 'allow' } });
    });

    after(async () => {
      await gw?.stop();
    });

    it('holds a 96 MiB result up at the server while the agent does not read, then delivers all of it', async () => {
      const client = await nodeClient(gw.agent);
      try {
        await client.query('SELECT 1');
        const stream = (client as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
        global.gc?.();
        const before = process.memoryUsage().rss;
        const result = client.query("SELECT repeat('x', 1048576) AS chunk FROM generate_series(1, 96)");
        stream.pause();
        await new Promise((resolve) => setTimeout(resolve, 3000));
        const grown = process.memoryUsage().rss - before;
        stream.resume();
        const { rows } = await result;
        assert.equal(rows.length, 96);
        assert.ok(rows.every((row: { chunk: string }) => row.chunk.length === 1048576));
        assert.ok(grown < 32 * 1024 * 1024, `the gateway's process grew ${Math.round(grown / 1048576)} MiB while the agent did not read`);
      } finally {
        await client.end();
      }
    });
  });
}

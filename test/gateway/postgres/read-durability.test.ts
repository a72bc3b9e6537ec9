import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Client } from 'pg';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { classifySql, loadStatementParser } from '../../../gateway/policy/statement-classifier';
import { requestAck, statementEffect, type StatementEffect } from '../../../gateway/postgres/statement-durability';
import { startGateway, type GatewayUnderTest } from '../../support/pg-gateway';
import { serialize } from 'pg-protocol';
import { nodeClient, rawSession, type Target } from './clients';

/**
 * gateway.postgres.audit.readDurability: which requests may go upstream once their journal record
 * is written, and which only once it is durable. First the rule itself on real parse trees, then
 * through the gateway against a real PostgreSQL 15, observed where it matters: a relay between the
 * gateway and the server notes the journal's written and durable heads when each statement's bytes
 * reach the server, and the journal's acknowledgement counters say which level each request waited for.
 */

function effectOf(text: string): StatementEffect {
  const classified = classifySql(text);
  assert.ok(classified.ok, `${text} did not parse`);
  assert.equal(classified.statements.length, 1);
  return statementEffect(classified.statements[0]!);
}

describe('gateway/postgres read durability: the rule', () => {
  before(() => loadStatementParser());

  it('lets plain reads with side-effect-free built-ins through at written, never a function with effects', () => {
    const cases: Array<[string, StatementEffect]> = [
      ['SELECT 1', 'none'],
      ['SELECT count(*), max(id), avg(price), coalesce(name, lower(upper(name))), now() FROM items WHERE id > 3', 'none'],
      ['select abalance from pgbench_accounts where aid = 4711', 'none'],
      ['SELECT * FROM items WHERE id = 1 FOR UPDATE', 'none'],
      ['SHOW search_path', 'none'],
      ['EXPLAIN SELECT * FROM items', 'none'],
      ['SELECT pg_terminate_backend(1)', 'immediate'],
      ["SELECT setval('items_seq', 10)", 'immediate'],
      ["SELECT nextval('items_seq')", 'immediate'],
      ["SELECT dblink_exec('host=x', 'DROP TABLE items')", 'immediate'],
      ["SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)", 'immediate'],
      ["SELECT lo_import('/etc/passwd')", 'immediate'],
      ["SELECT set_config('work_mem', '1GB', false)", 'immediate'],
      ['SELECT pg_advisory_lock(1)', 'immediate'],
      ['SELECT txid_current()', 'immediate'],
      ['SELECT my_function(1)', 'immediate'],
      ['SELECT public.lower(name) FROM items', 'immediate'],
      ['SELECT * INTO copy_of_items FROM items', 'immediate'],
      ['EXPLAIN ANALYZE DELETE FROM items', 'immediate'],
      ['DECLARE c CURSOR FOR SELECT 1', 'immediate'],
      ['FETCH c', 'immediate'],
      ['EXECUTE prepared_somewhere', 'immediate'],
    ];
    for (const [text, expected] of cases) assert.equal(effectOf(text), expected, text);
  });

  it('tells transaction control and transactional writes from everything with immediate effects', () => {
    const cases: Array<[string, StatementEffect]> = [
      ['BEGIN', 'begin'],
      ['START TRANSACTION ISOLATION LEVEL SERIALIZABLE', 'begin'],
      ['SAVEPOINT a', 'savepoint'],
      ['RELEASE SAVEPOINT a', 'savepoint'],
      ['ROLLBACK TO SAVEPOINT a', 'savepoint'],
      ['ROLLBACK', 'rollback'],
      ['ABORT AND CHAIN', 'rollback_chain'],
      ['COMMIT', 'commit'],
      ['END', 'commit'],
      ['COMMIT AND CHAIN', 'commit_chain'],
      ["PREPARE TRANSACTION 'x'", 'commit'],
      ["COMMIT PREPARED 'x'", 'commit'],
      ["ROLLBACK PREPARED 'x'", 'commit'],
      ["INSERT INTO items VALUES (1, 'a', 2)", 'transactional'],
      ['UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 7', 'transactional'],
      ['DELETE FROM items WHERE id = 1', 'transactional'],
      ['WITH gone AS (DELETE FROM items RETURNING *) SELECT count(*) FROM gone', 'transactional'],
      ['MERGE INTO items USING (SELECT 1 AS id) s ON items.id = s.id WHEN MATCHED THEN DELETE', 'transactional'],
      ["INSERT INTO items VALUES (nextval('items_seq'), 'a', 2)", 'immediate'],
      ["UPDATE items SET name = dblink_exec('host=x', 'SELECT 1')", 'immediate'],
      ['CREATE TABLE t (a int)', 'immediate'],
      ['TRUNCATE items', 'immediate'],
      ['GRANT SELECT ON items TO public', 'immediate'],
      ['COPY items FROM STDIN', 'immediate'],
      ['COPY items TO STDOUT', 'immediate'],
      ["COPY items TO PROGRAM 'cat'", 'immediate'],
      ['SET work_mem = 1024', 'immediate'],
      ['LOCK TABLE items', 'immediate'],
      ['VACUUM items', 'immediate'],
      ['CALL do_something()', 'immediate'],
      ["DO $$ BEGIN PERFORM 1; END $$", 'immediate'],
      ['NOTIFY items_changed', 'immediate'],
    ];
    for (const [text, expected] of cases) assert.equal(effectOf(text), expected, text);
  });

  it('asks for durable whenever a request can commit, and follows the transaction block through it', () => {
    assert.deepEqual(requestAck(['transactional'], false), { ack: 'durable', inBlock: false });
    assert.deepEqual(requestAck(['transactional'], true), { ack: 'written', inBlock: true });
    assert.deepEqual(requestAck(['begin', 'transactional', 'transactional'], false), { ack: 'written', inBlock: true });
    assert.deepEqual(requestAck(['begin', 'transactional', 'commit'], false), { ack: 'durable', inBlock: false });
    assert.deepEqual(requestAck(['commit', 'transactional'], true), { ack: 'durable', inBlock: false });
    assert.deepEqual(requestAck(['rollback', 'transactional'], true), { ack: 'durable', inBlock: false });
    assert.deepEqual(requestAck(['commit_chain', 'transactional'], true), { ack: 'durable', inBlock: true });
    assert.deepEqual(requestAck(['rollback_chain', 'transactional'], true), { ack: 'written', inBlock: true });
    assert.deepEqual(requestAck(['none', 'savepoint', 'none'], false), { ack: 'written', inBlock: false });
    assert.deepEqual(requestAck(['rollback'], true), { ack: 'written', inBlock: false });
    assert.deepEqual(requestAck(['immediate'], true), { ack: 'durable', inBlock: true });
    assert.deepEqual(requestAck([], false), { ack: 'written', inBlock: false });
  });
});

interface Arrival {
  bytes: string;
  written: bigint;
  durable: bigint;
}

/** A TCP relay between the gateway and the server that notes the journal's heads as each chunk arrives for the server. */
async function startRelay(to: () => { host: string; port: number }, heads: () => { written: bigint; durable: bigint }): Promise<{ port: number; arrivals: Arrival[]; close(): Promise<void> }> {
  const arrivals: Arrival[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const target = to();
    const outbound = connect({ host: target.host, port: target.port });
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    inbound.on('data', (chunk: Buffer) => {
      arrivals.push({ bytes: chunk.toString('latin1'), ...heads() });
      outbound.write(chunk);
    });
    outbound.pipe(inbound);
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// Every test runs on both data paths: the native session loop (auto, the default) and JavaScript (node).
for (const dataPath of ['auto', 'node'] as const)
describe(`gateway/postgres read durability through the gateway (real PostgreSQL 15) — ${dataPath} data path`, function () {
  this.timeout(120_000);
  let gw: GatewayUnderTest;
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let target: Target;
  let client: Client;

  before(async () => {
    gw = await startGateway({ postgres: { dataPath }, policy: { builtinRules: false, default: 'allow' } });
    relay = await startRelay(
      () => ({ host: gw.pg.host, port: gw.pg.port }),
      () => ({ written: gw.journal.writtenHead().seq, durable: gw.journal.head().seq }),
    );
    // The resource's upstream is looked up at each login: new sessions go through the relay.
    gw.config.gateway.postgres.resources[0]!.upstream.port = relay.port;
    gw.config.gateway.postgres.resources[0]!.upstream.host = '127.0.0.1';
    await gw.pg.admin(['SET ROLE gw_upstream', 'CREATE TABLE items (id int, name text)', 'CREATE SEQUENCE items_seq'].join(';\n'), gw.pg.database);
    target = gw.agent;
    client = await nodeClient(target);
  });

  after(async () => {
    await client?.end().catch(() => undefined);
    await relay?.close();
    await gw?.stop();
  });

  /** seq of the PgRequest record that carried `marker` (in a Query's or Parse's text, or a Bind parameter). */
  function requestSeq(records: JournalRecord__Output[], marker: string): bigint {
    const record = records.find((r) => r.event?.pgRequest?.messages.some((m) => m.text.includes(marker) || m.parameters.some((p) => p.text?.includes(marker))));
    assert.ok(record, `no PgRequest record holds ${marker}`);
    return BigInt(record.seq);
  }

  /**
   * Runs one statement (its text or a parameter carries `marker`) and checks the level its request
   * waited for: the acknowledgement counters move by exactly that request, and when the server got
   * the bytes, the record was already written — and durable, when that was the level.
   */
  async function expectLevel(level: 'written' | 'durable', marker: string, run: () => Promise<unknown>, fails = false): Promise<void> {
    const before = gw.journal.stats().acks.written;
    const arrivedBefore = relay.arrivals.length;
    if (fails) await assert.rejects(run());
    else await run();
    // The request is the only append of the round trip that can wait for 'written' (outcomes are deferred durable appends).
    assert.equal(gw.journal.stats().acks.written - before, level === 'written' ? 1 : 0, `${marker}: the request should have waited for '${level}'`);
    const arrival = relay.arrivals.slice(arrivedBefore).find((a) => a.bytes.includes(marker));
    assert.ok(arrival, `${marker} never reached the server`);
    // Readers see durable records only: wait for the fsync that follows every write.
    const written = gw.journal.writtenHead().seq;
    for (let i = 0; i < 1000 && gw.journal.head().seq < written; i++) await new Promise((r) => setTimeout(r, 5));
    const seq = requestSeq(await gw.records(), marker);
    assert.ok(seq <= arrival.written, `${marker}: request seq ${seq} was not even written (written head ${arrival.written}) when the server got it`);
    if (level === 'durable') assert.ok(seq <= arrival.durable, `${marker}: request seq ${seq} was not durable (durable head ${arrival.durable}) when the server got it`);
  }

  it('reads and BEGIN go at written; functions with effects, autocommit writes, DDL and COMMIT at durable', async () => {
    await expectLevel('written', 'm_sel', () => client.query('SELECT 1 AS m_sel'));
    await expectLevel('written', 'm_agg', () => client.query("SELECT count(*), max(id), lower('X'), now() AS m_agg FROM items"));
    await expectLevel('durable', 'm_term', () => client.query('SELECT pg_terminate_backend(0) AS m_term'));
    await expectLevel('durable', 'm_setval', () => client.query("SELECT setval('items_seq', 5) AS m_setval"));
    // Not installed on this server: the statement fails there, but it reached it only once durable.
    await expectLevel('durable', 'm_dblink', () => client.query("SELECT dblink_exec('dbname=app', 'DROP TABLE items') AS m_dblink"), true);
    await expectLevel('durable', 'm_lo', () => client.query("SELECT lo_import('/nonexistent/m_lo')"), true);
    await expectLevel('durable', 'm_ins_auto', () => client.query("INSERT INTO items VALUES (1, 'm_ins_auto')"));
    await expectLevel('written', 'm_begin', () => client.query('BEGIN /* m_begin */'));
    await expectLevel('written', 'm_ins_tx', () => client.query("INSERT INTO items VALUES (2, 'm_ins_tx')"));
    await expectLevel('written', 'm_upd_tx', () => client.query("UPDATE items SET name = 'm_upd_tx' WHERE id = 2"));
    await expectLevel('written', 'm_sel_tx', () => client.query('SELECT name AS m_sel_tx FROM items'));
    await expectLevel('durable', 'm_nextval_tx', () => client.query("SELECT nextval('items_seq') AS m_nextval_tx"));
    await expectLevel('durable', 'm_ddl_tx', () => client.query('CREATE TABLE m_ddl_tx (a int)'));
    await expectLevel('durable', 'm_commit', () => client.query('COMMIT /* m_commit */'));
    await expectLevel('durable', 'm_upd_after', () => client.query("UPDATE items SET name = 'm_upd_after' WHERE id = 1"));
    // One Query string: BEGIN opens the block the INSERT runs in; with COMMIT in it, it is durable.
    await expectLevel('written', 'm_multi_open', () => client.query("BEGIN; INSERT INTO items VALUES (3, 'm_multi_open')"));
    await expectLevel('written', 'm_rollback', () => client.query('ROLLBACK /* m_rollback */'));
    await expectLevel('durable', 'm_implicit', () => client.query("SELECT 1; INSERT INTO items VALUES (4, 'm_implicit')"));
    await expectLevel('durable', 'm_multi_commit', () => client.query("BEGIN; INSERT INTO items VALUES (5, 'm_multi_commit'); COMMIT"));
    const names = (await client.query('SELECT name FROM items ORDER BY id')).rows.map((r: { name: string }) => r.name);
    assert.deepEqual(names, ['m_upd_after', 'm_upd_tx', 'm_implicit', 'm_multi_commit'], 'the server ran exactly what was forwarded');
  });

  it('a prepared statement takes the level decided at Parse at each Execute, in or out of a transaction block', async () => {
    const insert = (value: string): Promise<unknown> => client.query({ name: 'ins', text: 'INSERT INTO items VALUES ($1::int, $2)', values: [10, value] });
    const read = (value: string): Promise<unknown> => client.query({ name: 'sel', text: 'SELECT $1::text AS v, count(*) FROM items', values: [value] });
    await expectLevel('durable', 'm_prep_auto', () => insert('m_prep_auto'));
    await expectLevel('written', 'm_prep_read', () => read('m_prep_read'));
    await expectLevel('written', 'm_prep_begin', () => client.query({ text: 'BEGIN /* m_prep_begin */', values: [] }));
    await expectLevel('written', 'm_prep_tx', () => insert('m_prep_tx'));
    await expectLevel('written', 'm_prep_read_tx', () => read('m_prep_read_tx'));
    await expectLevel('durable', 'm_prep_commit', () => client.query({ text: 'COMMIT /* m_prep_commit */', values: [] }));
    await expectLevel('durable', 'm_prep_after', () => insert('m_prep_after'));
    const rows = (await client.query("SELECT name FROM items WHERE id = 10 ORDER BY name")).rows.map((r: { name: string }) => r.name);
    assert.deepEqual(rows, ['m_prep_after', 'm_prep_auto', 'm_prep_tx']);
  });

  it('a pipelined statement after a BEGIN that may not have run is taken as autocommit (durable)', async () => {
    const raw = await rawSession(target);
    try {
      // The first Query fails at the server before its BEGIN, so the second runs in autocommit and
      // commits at once; the gateway forwards both together, before either is answered.
      await expectLevel('durable', 'm_pipe', async () => {
        await raw.exchange([serialize.query('SELECT * FROM no_such_table; BEGIN'), serialize.query("INSERT INTO items VALUES (30, 'm_pipe')")]);
        await raw.exchange([]);
      });
    } finally {
      raw.close();
    }
    const rows = (await client.query('SELECT name FROM items WHERE id = 30')).rows.map((r: { name: string }) => r.name);
    assert.deepEqual(rows, ['m_pipe'], 'the INSERT committed on its own');
  });

  it('with readDurability durable, every request waits for durable', async () => {
    // Read per session at login: a new session picks the strict setting up.
    gw.config.gateway.postgres.audit.readDurability = 'durable';
    const strict = await nodeClient(target);
    try {
      const saved = client;
      client = strict;
      try {
        await expectLevel('durable', 'm_strict_sel', () => strict.query('SELECT 1 AS m_strict_sel'));
        await expectLevel('durable', 'm_strict_begin', () => strict.query('BEGIN /* m_strict_begin */'));
        await expectLevel('durable', 'm_strict_tx', () => strict.query("INSERT INTO items VALUES (20, 'm_strict_tx')"));
        await expectLevel('durable', 'm_strict_commit', () => strict.query('COMMIT /* m_strict_commit */'));
      } finally {
        client = saved;
      }
    } finally {
      gw.config.gateway.postgres.audit.readDurability = 'written';
      await strict.end();
    }
  });
});

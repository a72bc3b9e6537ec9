import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, DatabaseError, QueryConfig } from 'pg';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import type { SessionEvent__Output } from '../../../proto/generated/gapwatch/v1/SessionEvent';
import type { Session__Output } from '../../../proto/generated/gapwatch/v1/Session';
import { runCli } from '../../support/host';
import { startGateway, type GatewayUnderTest } from '../../support/pg-gateway';
import { selfSignedCertificate } from '../../support/postgres';
import { serialize } from 'pg-protocol';
import type { BackendMessage } from 'pg-protocol/dist/messages';
import { nodeClient, pgbench, psql, rawConnection, rawSession, readUntilClose, spawnClient, type Target } from './clients';
import { until as waitFor } from '../../support/until';

/**
 * The PostgreSQL gateway end to end: real clients (psql, node pg, pgbench) through the real gateway
 * (journal, identity store, policy engine) to a real PostgreSQL 15, compared with the same clients
 * going direct; then the journal is read back and checked.
 */

const sessions = (records: JournalRecord__Output[]): Session__Output[] => records.flatMap((r) => (r.session ? [r.session] : []));
const events = (records: JournalRecord__Output[], sessionId?: string): SessionEvent__Output[] =>
  records.flatMap((r) => (r.event && (sessionId === undefined || r.event.sessionId === sessionId) ? [r.event] : []));
/** The last record of each session (its end, once it ended). */
const finalSessions = (records: JournalRecord__Output[]): Map<string, Session__Output> => new Map(sessions(records).map((s) => [s.sessionId, s]));


/** Journal records arrive in the background; PostgreSQL sessions take their time to end. */
const until = <T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> => waitFor(what, probe, timeoutMs, 100);

// Every test runs on both data paths: the native session loop (auto, the default) and JavaScript (node).
for (const dataPath of ['auto', 'node'] as const)
describe(`gateway/postgres end to end (real PostgreSQL 15, real clients) — ${dataPath} data path`, function () {
  this.timeout(120_000);
  let gw: GatewayUnderTest;
  let viaGateway: Target;
  let direct: Target;
  /** The identity whose results are masked (its sessions stay on the JavaScript path). */
  let viaGatewayMasked: Target;
  let certDir: string;

  before(async () => {
    certDir = mkdtempSync(join(tmpdir(), 'gapwatch-gw-tls-'));
    const tls = selfSignedCertificate(certDir);
    gw = await startGateway({
      postgres: { tls, dataPath },
      policy: {
        builtinRules: false,
        default: 'allow',
        reviewTimeoutSeconds: 3,
        rules: [
          { name: 'secrets-read-only', relations: ['secrets', '*.secrets'], classes: ['write', 'ddl', 'copy_from'], action: 'deny', reason: 'secrets are read-only for agents' },
          { name: 'no-copy-program', classes: ['copy_program'], action: 'deny', reason: 'COPY … PROGRAM runs commands on the server' },
          { name: 'held-needs-review', relations: ['held', '*.held'], classes: ['write'], action: 'review', reason: 'writes to held need a human' },
          { name: 'vault-read-only', relations: ['vault.*'], classes: ['write'], action: 'deny', reason: 'the vault schema is read-only for agents' },
          // For one identity only: its sessions stay on the JavaScript path (it rewrites rows), the others' go native (auto).
          { name: 'mask-customers', logins: ['masked-agent'], relations: ['customers', '*.customers'], action: 'mask', mask: { columns: ['email'], values: ['card_number'] } },
        ],
      },
    });
    viaGateway = gw.agent;
    viaGatewayMasked = { ...viaGateway, user: 'masked-agent', password: (await gw.identities.create('masked-agent')).token };
    direct = { host: gw.pg.host, port: gw.pg.port, user: gw.pg.user, password: gw.pg.password, database: gw.pg.database };
    await gw.pg.admin(
      [
        'CREATE SCHEMA vault AUTHORIZATION gw_upstream',
        'SET ROLE gw_upstream',
        'CREATE TABLE notes (id int)',
        'CREATE TABLE vault.notes (id int)',
        'CREATE TABLE items (id int PRIMARY KEY, name text, price numeric)',
        "INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 100) g",
        'CREATE TABLE copy_target (id int, name text)',
        "CREATE TABLE secrets (id int, value text); INSERT INTO secrets VALUES (1, 'launch code')",
        'CREATE TABLE held (id int)',
        'CREATE TABLE customers (id int, name text, email text, note text)',
        "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', 'card 4111 1111 1111 1111 on file'), (2, 'Bob', 'bob@example.org', 'none')",
      ].join(';\n'),
      gw.pg.database,
    );
  });

  after(async () => {
    await gw?.stop();
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  });

  describe('transparency and audit', () => {
    it('psql (simple protocol) gets the same results and errors through the gateway as direct', async () => {
      const script = ['-c', 'SELECT id, name, price FROM items ORDER BY id', '-c', 'SELECT count(*), sum(price) FROM items', '-c', "SELECT 'a;b' AS x; SELECT 2"];
      const [through, straight] = await Promise.all([psql(viaGateway, script), psql(direct, script)]);
      assert.equal(through.code, 0, through.stderr);
      assert.equal(through.stdout, straight.stdout);
      assert.match(through.stdout, /^1\|item 1\|1\.5$/m);
      const failing = ['-c', 'SELECT 1/0'];
      const [e1, e2] = await Promise.all([psql(viaGateway, failing), psql(direct, failing)]);
      assert.equal(e1.code, e2.code);
      assert.equal(e1.stderr, e2.stderr);
      assert.match(e1.stderr, /division by zero/);
    });

    it('a pipelining client whose batch fails before it sends the Sync gets what the server answers, and the session goes on', async () => {
      // The server skips everything after the error up to the Sync: what is sent meanwhile is owed no answer.
      const first = [serialize.parse({ text: 'SELECT 1/0' }), serialize.bind({}), serialize.execute({}), serialize.flush()];
      const rest = [serialize.parse({ text: 'SELECT 2' }), serialize.bind({}), serialize.execute({}), serialize.sync()];
      const answers = async (target: Target): Promise<string[][]> => {
        const conn = await rawSession(target);
        try {
          const a = await conn.exchangeUntil(first, (m) => m.name === 'error');
          const b = await conn.exchange(rest);
          const c = await conn.exchange([serialize.query('SELECT 3 AS n')]);
          const d = await conn.exchange([serialize.parse({ text: 'SELECT 4' }), serialize.bind({}), serialize.execute({}), serialize.sync()]);
          return [a, b, c, d].map((ms) => ms.map((m) => m.name));
        } finally {
          conn.close();
        }
      };
      const [through, straight] = [await answers(viaGateway), await answers(direct)];
      assert.deepEqual(through, straight);
      assert.deepEqual(through[1], ['readyForQuery'], 'the rest of the failed batch was skipped');
      const texts = await until('the statements after the failed batch in the journal', async () => {
        const found = events(await gw.records()).flatMap((e) => (e.statement ? [e.statement.text] : []));
        return found.includes('SELECT 4') ? found : null;
      });
      assert.ok(texts.includes('SELECT 3 AS n'), 'the simple query after it is journaled as itself');
    });

    it('psql \\copy in and out works and is journaled with direction, rows and bytes', async () => {
      const input = '1\tone\n2\ttwo\n3\tthree\n';
      const copyIn = await psql(viaGateway, ['-c', '\\copy copy_target FROM STDIN'], {}, input);
      assert.equal(copyIn.code, 0, copyIn.stderr);
      assert.equal(await gw.pg.admin('SELECT count(*) FROM copy_target', gw.pg.database), '3');
      const copyOut = await psql(viaGateway, ['-c', '\\copy (SELECT id, name FROM copy_target ORDER BY id) TO STDOUT']);
      assert.equal(copyOut.stdout, input);
      // Results are journaled right after they are forwarded, so the client may finish first.
      const [inbound, outbound] = await until('both COPY records', async () => {
        const copies = events(await gw.records()).flatMap((e) => (e.copy ? [e.copy] : []));
        const i = copies.find((c) => c.direction === 'in' && c.statement.includes('copy_target'));
        const o = copies.find((c) => c.direction === 'out' && c.statement.includes('copy_target'));
        return i && o ? [i, o] : null;
      });
      assert.equal(inbound.rows, '3');
      assert.equal(inbound.bytes, String(Buffer.byteLength(input)));
      assert.equal(outbound.rows, '3');
      assert.equal(outbound.bytes, String(Buffer.byteLength(input)));
    });

    it('node pg (extended protocol, parameters, named statements) matches direct, and the journal has parameters, tags and rows', async () => {
      const run = async (client: Client): Promise<unknown[]> => {
        const out: unknown[] = [];
        out.push((await client.query('SELECT id, name FROM items WHERE id = ANY($1::int[]) ORDER BY id', [[3, 1, 2]])).rows);
        for (let i = 0; i < 2; i++) out.push((await client.query({ name: 'by_price', text: 'SELECT count(*) AS n FROM items WHERE price > $1', values: [50 + i] })).rows);
        out.push((await client.query('SELECT $1::bytea AS b, $2::text AS t, $3::int AS n', [Buffer.from([0xde, 0xad]), 'héllo', null])).rows);
        const err = await client.query('SELECT * FROM no_such_table WHERE id = $1', [1]).catch((e: DatabaseError) => e);
        out.push([(err as DatabaseError).code, (err as DatabaseError).message]);
        out.push((await client.query('SELECT 42 AS after_error')).rows);
        return out;
      };
      const a = await nodeClient(viaGateway);
      const b = await nodeClient(direct);
      try {
        assert.deepEqual(await run(a), await run(b));
      } finally {
        await a.end();
        await b.end();
      }
      const statements = events(await gw.records()).flatMap((e) => (e.statement && e.statement.via === 'extended' ? [e.statement] : []));
      const byPrice = statements.filter((s) => s.text.includes('price > $1') && s.commandTag !== '');
      assert.deepEqual(byPrice.map((s) => s.parameters), [['50'], ['51']]);
      assert.ok(byPrice.every((s) => s.commandTag === 'SELECT 1' && s.rows === '1' && s.statementName === 'by_price'));
      const mixed = statements.find((s) => s.text.startsWith('SELECT $1::bytea'));
      assert.deepEqual(mixed?.parameters, ['\\xdead', 'héllo', 'NULL']);
      assert.deepEqual(mixed?.result?.columns, ['b', 't', 'n']);
      const failed = statements.find((s) => s.text.includes('no_such_table'));
      assert.equal(failed?.errorCode, '42P01');
      assert.match(failed?.errorMessage ?? '', /no_such_table/);
    });

    it('pgbench -M simple, extended and prepared complete through the gateway', async () => {
      const init = await pgbench(direct, ['-i', '-s', '1', '-q']);
      assert.equal(init.code, 0, init.stderr);
      for (const mode of ['simple', 'extended', 'prepared']) {
        const result = await pgbench(viaGateway, ['-n', '-M', mode, '-c', '2', '-j', '1', '-t', '25']);
        assert.equal(result.code, 0, `${mode}: ${result.stderr}`);
        assert.match(result.stdout, /number of transactions actually processed: 50\/50/, mode);
        assert.match(result.stdout, /number of failed transactions: 0/, mode);
      }
      if (dataPath === 'auto') assert.ok(gw.gateway.nativeSessionsServed >= 6, `pgbench ran on the native loop (${gw.gateway.nativeSessionsServed} sessions)`);
      // Every UPDATE of pgbench_accounts (one per transaction, 3 × 50) is journaled with its tag.
      await until('every pgbench UPDATE in the journal', async () =>
        events(await gw.records()).filter((e) => e.statement?.commandTag === 'UPDATE 1' && e.statement.text.includes('pgbench_accounts')).length === 150,
      );
    });

    it('a cancel from psql stops the statement upstream; a CancelRequest with another key cancels nothing', async () => {
      const sleeper = spawnClient('psql', ['-X', '-c', 'SELECT pg_sleep(60)'], viaGateway);
      await until('pg_sleep to run upstream', async () =>
        (await gw.pg.admin("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'")) === '1',
      );
      // A forged key: nothing may happen to anyone's statement.
      const forged = await rawConnection(gw.port);
      const cancel = Buffer.alloc(16);
      cancel.writeInt32BE(16, 0);
      cancel.writeInt32BE(80877102, 4);
      cancel.writeInt32BE(12345, 8);
      cancel.writeInt32BE(67890, 12);
      forged.end(cancel);
      await readUntilClose(forged);
      assert.equal(await gw.pg.admin("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'"), '1');
      sleeper.child.kill('SIGINT'); // psql sends a CancelRequest with the key the gateway gave it
      const result = await sleeper.done;
      assert.match(result.stderr, /canceling statement due to user request/);
      const canceled = await until('the canceled statement in the journal', async () =>
        events(await gw.records()).find((e) => e.statement?.text === 'SELECT pg_sleep(60)'),
      );
      assert.equal(canceled.statement?.errorCode, '57014');
    });

    it('journals the session: identity, client address and port, upstream local port, bytes, outcome; statements only after their write-ahead record', async () => {
      const client = await nodeClient(viaGateway);
      const clientPort = (client as unknown as { connection: { stream: { localPort: number } } }).connection.stream.localPort;
      const upstreamPort = Number((await client.query('SELECT client_port FROM pg_stat_activity WHERE pid = pg_backend_pid()')).rows[0].client_port);
      await client.query("SELECT 'audit me' AS marker");
      await client.end();
      const records = await until('the session end record', async () => {
        const all = await gw.records();
        const s = sessions(all).find((x) => x.client?.port === clientPort && x.outcome === 'SESSION_OUTCOME_CLOSED');
        return s ? all : null;
      });
      const end = sessions(records).find((x) => x.client?.port === clientPort && x.outcome === 'SESSION_OUTCOME_CLOSED')!;
      const open = sessions(records).find((x) => x.sessionId === end.sessionId && x.outcome === 'SESSION_OUTCOME_OPEN');
      assert.ok(open, 'the session is journaled when it opens');
      assert.equal(end.identity?.subject, `agent:${gw.login}`);
      assert.equal(end.identity?.claims.repository, 'acme/shop');
      assert.equal(end.resource, 'orders');
      assert.equal(end.database, 'orders');
      assert.equal(end.targetUser, gw.pg.user);
      assert.equal(end.client?.ip, '127.0.0.1');
      assert.equal(end.upstreamLocal?.port, upstreamPort);
      assert.equal(end.upstream?.port, gw.pg.port);
      assert.equal(end.listener?.port, gw.port);
      assert.ok(Number(end.bytesFromClient) > 0 && Number(end.bytesToClient) > 0);
      assert.ok(BigInt(end.endUnixNano) >= BigInt(end.startUnixNano));
      const seqOf = (pred: (r: JournalRecord__Output) => boolean): bigint => BigInt(records.find(pred)!.seq);
      const request = seqOf((r) => r.event?.sessionId === end.sessionId && (r.event.pgRequest?.messages ?? []).some((m) => m.text.includes('audit me')));
      const statement = seqOf((r) => r.event?.sessionId === end.sessionId && (r.event.statement?.text.includes('audit me') ?? false));
      assert.ok(request < statement, 'the request is journaled before its result');
      const result = events(records, end.sessionId).find((e) => e.statement?.text.includes('audit me'))!.statement!;
      assert.equal(result.commandTag, 'SELECT 1');
      assert.deepEqual(result.result?.columns, ['marker']);
      assert.equal(result.result?.rows, '1');
      assert.equal(result.policy?.action, 'POLICY_ACTION_ALLOW');
      const seqs = events(records, end.sessionId).map((e) => Number(e.eventSeq));
      assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'event_seq counts from 1 without gaps');
    });

    it('passes function calls (psql large objects use FunctionCall) and journals them', async () => {
      const file = join(certDir, 'blob.bin');
      const back = join(certDir, 'blob.out');
      const blob = randomBytes(3000);
      writeFileSync(file, blob);
      const imported = await psql(viaGateway, ['-c', `\\lo_import ${file}`]);
      assert.equal(imported.code, 0, imported.stderr);
      const oid = /lo_import (\d+)/.exec(imported.stdout)?.[1];
      assert.ok(oid, imported.stdout);
      const exported = await psql(viaGateway, ['-c', `\\lo_export ${oid} ${back}`]);
      assert.equal(exported.code, 0, exported.stderr);
      assert.deepEqual(readFileSync(back), blob);
      const calls = await until('function call records', async () => {
        const found = events(await gw.records()).filter((e) => e.statement?.via === 'function_call');
        return found.length >= 4 ? found : null;
      });
      assert.ok(calls.every((e) => e.statement!.text.startsWith('function ') && e.statement!.commandTag === 'FUNCTION CALL'));
    });

    it('declines GSSAPI encryption and carries on with the startup', async () => {
      const socket = await rawConnection(gw.port);
      const answers: Buffer[] = [];
      socket.on('data', (c: Buffer) => answers.push(c));
      const gssenc = Buffer.alloc(8);
      gssenc.writeInt32BE(8, 0);
      gssenc.writeInt32BE(80877104, 4);
      socket.write(gssenc);
      await until('the answer to GSSENCRequest', async () => answers.length > 0);
      assert.equal(Buffer.concat(answers).toString(), 'N');
      const params = Buffer.from(`user\0${gw.login}\0database\0orders\0\0`);
      const startup = Buffer.alloc(8);
      startup.writeInt32BE(8 + params.length, 0);
      startup.writeInt32BE(196608, 4);
      socket.write(Buffer.concat([startup, params]));
      await until('the SASL offer', async () => Buffer.concat(answers).length > 1);
      const reply = Buffer.concat(answers).subarray(1);
      assert.equal(String.fromCharCode(reply[0]!), 'R');
      assert.equal(reply.readInt32BE(5), 10, 'AuthenticationSASL');
      assert.match(reply.toString(), /SCRAM-SHA-256/);
      socket.destroy();
    });

    it('refuses a wrong token and journals the session as rejected', async () => {
      const result = await psql({ ...viaGateway, password: 'gwt_not-the-token' }, ['-c', 'SELECT 1']);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /password authentication failed for user "claude-ci"/);
      await until('the rejected session in the journal', async () =>
        [...finalSessions(await gw.records()).values()].some((s) => s.outcome === 'SESSION_OUTCOME_REJECTED' && /password authentication failed/.test(s.failure)),
      );
      const unknownDb = await psql({ ...viaGateway, database: 'nope' }, ['-c', 'SELECT 1']);
      assert.match(unknownDb.stderr, /no PostgreSQL resource for database "nope"/);
    });

    it('speaks TLS to agents that ask for it', async () => {
      const result = await psql(viaGateway, ['-c', '\\conninfo', '-c', 'SELECT 7'], { PGSSLMODE: 'require' });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /SSL connection \(protocol: TLSv1\.[23]/);
      assert.match(result.stdout, /^7$/m);
    });
  });

  describe('policy before execution', () => {
    const secretsCount = (): Promise<string> => gw.pg.admin('SELECT count(*) FROM secrets', gw.pg.database);

    it('denies a write with SQLSTATE 42501 and the reason, catches evasions, and nothing reaches the server', async () => {
      const attempts = [
        'DELETE FROM secrets',
        'WITH gone AS (DELETE FROM secrets RETURNING *) SELECT count(*) FROM gone',
        'SELECT 1; DELETE FROM secrets',
        '/* harmless */ dElEtE   FROM "secrets" -- really',
        'delete from public.secrets',
        'PREPARE wipe AS DELETE FROM secrets',
        "COPY (SELECT 1) TO PROGRAM 'id'",
      ];
      for (const sql of attempts) {
        const result = await psql(viaGateway, ['-v', 'VERBOSITY=verbose', '-c', sql]);
        assert.notEqual(result.code, 0, sql);
        assert.match(result.stderr, /42501/, sql);
        assert.match(result.stderr, /secrets are read-only for agents|COPY … PROGRAM runs commands/, sql);
      }
      const client = await nodeClient(viaGateway);
      try {
        const err = await client.query('DELETE FROM secrets WHERE id = $1', [1]).catch((e: DatabaseError) => e);
        assert.equal((err as DatabaseError).code, '42501');
        assert.deepEqual((await client.query('SELECT count(*)::int AS n FROM secrets')).rows, [{ n: 1 }], 'the session goes on after a refusal');
      } finally {
        await client.end();
      }
      assert.equal(await secretsCount(), '1');
      const denials = events(await gw.records()).filter((e) => e.policy?.action === 'POLICY_ACTION_DENY');
      assert.ok(denials.length >= attempts.length + 1);
      assert.ok(denials.every((e) => e.policy!.rule === 'secrets-read-only' || e.policy!.rule === 'no-copy-program'));
    });

    it('answers a refused Parse in a pipeline after the results of what came before it, and skips the rest until Sync', async () => {
      const conn = await rawSession(viaGateway);
      try {
        const replies = await conn.exchange([
          serialize.parse({ name: '', text: 'SELECT 41 + 1' }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.parse({ name: '', text: 'DELETE FROM secrets' }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.sync(),
        ]);
        assert.deepEqual(
          replies.map((m) => m.name),
          ['parseComplete', 'bindComplete', 'dataRow', 'commandComplete', 'error', 'readyForQuery'],
        );
        assert.equal((replies[4] as unknown as { code: string }).code, '42501');
        assert.deepEqual((replies[2] as unknown as { fields: string[] }).fields, ['42']);
        const after = await conn.exchange([serialize.query('SELECT count(*) FROM secrets')]);
        assert.deepEqual((after.find((m) => m.name === 'dataRow') as unknown as { fields: string[] }).fields, ['1']);
      } finally {
        conn.close();
      }
    });

    it('decides a statement again once the session changes search_path: the text allowed for public.notes is refused for vault.notes, alone or pipelined', async () => {
      // The native loop keeps decisions per text (and per literal shape); a change of the policy
      // state (search_path, prepared names) must not let a decision made before it stand after it.
      const conn = await rawSession(viaGateway);
      const errorCode = (replies: BackendMessage[]): string | undefined => (replies.find((m) => m.name === 'error') as unknown as { code?: string } | undefined)?.code;
      const insert = serialize.query('INSERT INTO notes VALUES (1)');
      try {
        assert.equal(errorCode(await conn.exchange([insert])), undefined);
        assert.equal(errorCode(await conn.exchange([serialize.query('SET search_path = vault')])), undefined);
        assert.equal(errorCode(await conn.exchange([insert])), '42501', 'the same text now names vault.notes');
        assert.equal(errorCode(await conn.exchange([serialize.query('SET search_path = public')])), undefined);
        // All in one write: each decided in the state it runs in.
        const answers = [await conn.exchange([insert, serialize.query('SET search_path = vault'), insert, serialize.query('SET search_path = public'), insert])];
        for (let i = 1; i < 5; i++) answers.push(await conn.exchange([]));
        assert.deepEqual(answers.map(errorCode), [undefined, undefined, '42501', undefined, undefined]);
        // A literal-blind decision kept by shape holds for other literals, journaled with each one's own text.
        for (const sql of ['SELECT count(*) FROM notes WHERE id = 1', 'SELECT count(*) FROM notes WHERE id = 22', 'SELECT 1; SELECT 2 + 3', 'SELECT 333; SELECT 4444 + 5']) {
          assert.equal(errorCode(await conn.exchange([serialize.query(sql)])), undefined, sql);
        }
        for (const value of [5, 66]) assert.equal(errorCode(await conn.exchange([serialize.query(`INSERT INTO vault.notes VALUES (${value})`)])), '42501');
      } finally {
        conn.close();
      }
      assert.equal(await gw.pg.admin('SELECT count(*) FROM vault.notes', gw.pg.database), '0');
      assert.equal(await gw.pg.admin('SELECT count(*) FROM public.notes', gw.pg.database), '3');
      const texts = await until('the statements of the session in the journal', async () => {
        const found = events(await gw.records()).flatMap((e) => (e.statement ? [e.statement.text] : []));
        return found.includes('SELECT 4444 + 5') ? found : null;
      });
      for (const text of ['SELECT count(*) FROM notes WHERE id = 1', 'SELECT count(*) FROM notes WHERE id = 22', 'SELECT 333', 'SELECT 4444 + 5', 'INSERT INTO vault.notes VALUES (66)']) {
        assert.ok(texts.includes(text), `journaled: ${text}`);
      }
    });

    it("resolves unqualified names by the search_path the server reports after login: a startup option's vault.notes is refused, RESET goes back to it", async () => {
      const client = await nodeClient({ ...viaGateway, options: '-c search_path=vault' });
      const code = (sql: string): Promise<string | undefined> =>
        client.query(sql).then(
          () => undefined,
          (err: DatabaseError) => err.code,
        );
      try {
        assert.equal((await client.query('SHOW search_path')).rows[0].search_path, 'vault', 'the server took the startup option');
        assert.equal(await code('INSERT INTO notes VALUES (8)'), '42501', 'notes is vault.notes in this session');
        assert.equal(await code('SET search_path = public'), undefined);
        assert.equal(await code('INSERT INTO notes VALUES (8)'), undefined, 'public.notes after the SET');
        assert.equal(await code('RESET search_path'), undefined);
        assert.equal(await code('INSERT INTO notes VALUES (9)'), '42501', "RESET returns to the session's start: vault");
      } finally {
        await client.end();
      }
      assert.equal(await gw.pg.admin('SELECT count(*) FROM vault.notes', gw.pg.database), '0');
      assert.equal(await gw.pg.admin('SELECT count(*) FROM public.notes WHERE id = 8', gw.pg.database), '1');
    });

    it('refuses a session the server would lex differently from the gateway (standard_conforming_strings off, an encoding that is not ASCII-safe): at login, or ends it when a statement turns it so', async () => {
      // With standard_conforming_strings off, 'a\\'' ends where the gateway's parser does not see it end:
      // the gateway would classify a SELECT while the server ran the DELETE after it.
      const attack = "SELECT 'a\\'' ; DELETE FROM secrets; --'";
      const { Client } = await import('pg');
      const atLogin = new Client({ ...viaGateway, options: '-c standard_conforming_strings=off' });
      const refused = await atLogin.connect().then(
        () => null,
        (err: DatabaseError) => err,
      );
      await atLogin.end().catch(() => undefined);
      assert.equal(refused?.code, '0A000', `refused at login (${refused?.message})`);
      assert.match(refused?.message ?? '', /standard_conforming_strings = off at login/);
      // (The upstream's client_encoding is always UTF8: the gateway's startup message sets it last.)
      for (const setting of ["set_config('standard_conforming_strings', 'off', false)", "set_config('client_encoding', 'SJIS', false)"]) {
        const client = await nodeClient(viaGateway);
        const ended = new Promise<Error>((resolve) => client.on('error', resolve));
        const outcome = await client
          .query(`DO $$ BEGIN PERFORM ${setting}; END $$`)
          .then(() => client.query(attack))
          .then(
            () => null,
            (err: Error) => err,
          );
        assert.ok(outcome instanceof Error, `${setting}: the session does not go on`);
        const reason = await Promise.race([ended, new Promise<Error>((resolve) => setTimeout(() => resolve(outcome), 2000))]);
        assert.match(`${reason.message} ${outcome.message}`, /during the session|Connection terminated/, setting);
        await client.end().catch(() => undefined);
      }
      assert.equal(await gw.pg.admin('SELECT count(*) FROM secrets', gw.pg.database), '1', 'the DELETE never ran');
      const failures = [...finalSessions(await gw.records()).values()].map((session) => session.failure);
      assert.ok(failures.some((f) => /standard_conforming_strings = off at login/.test(f)), 'the refused login is journaled with its reason');
      assert.ok(failures.some((f) => /standard_conforming_strings = off during the session/.test(f)), 'the ended session is journaled with its reason');
      assert.ok(failures.some((f) => /client_encoding = SJIS during the session/.test(f)));
    });

    it("refuses a session whose startup options switch the role (-c role=…, what SET ROLE would do)", async () => {
      const role = `gw_escalated_${dataPath}`;
      await gw.pg.admin(`CREATE ROLE ${role}; GRANT ${role} TO gw_upstream`, gw.pg.database);
      const { Client } = await import('pg');
      const client = new Client({ ...viaGateway, options: `-c role=${role}` });
      const refused = await client.connect().then(
        () => null,
        (err: DatabaseError) => err,
      );
      await client.end().catch(() => undefined);
      assert.equal(refused?.code, '42501', `refused at login (${refused?.message})`);
      assert.match(refused?.message ?? '', new RegExp(`runs as role "${role}", not as its configured user "gw_upstream"`));
      // Without the option the same identity logs in as before.
      const plain = await nodeClient(viaGateway);
      assert.deepEqual((await plain.query('SELECT current_user AS u')).rows, [{ u: 'gw_upstream' }]);
      await plain.end();
    });

    it('follows the transaction block through decisions it keeps: a SET in a block a kept BEGIN opened stays uncertain, one after a kept ROLLBACK is followed', async () => {
      const conn = await rawSession(viaGateway);
      const errorCode = (replies: BackendMessage[]): string | undefined => (replies.find((m) => m.name === 'error') as unknown as { code?: string } | undefined)?.code;
      const run = async (sql: string): Promise<string | undefined> => errorCode(await conn.exchange([serialize.query(sql)]));
      const insert = 'INSERT INTO notes VALUES (7)';
      try {
        assert.equal(await run('SET search_path = vault'), undefined);
        for (const sql of ['BEGIN', 'ROLLBACK']) assert.equal(await run(sql), undefined, sql);
        const asked = gw.gateway.nativePolicyQuestions;
        // This BEGIN runs on its kept decision: the policy engine hears of the block only from the loop.
        assert.equal(await run('BEGIN'), undefined);
        assert.equal(await run('SET search_path = public'), undefined);
        assert.equal(await run('ROLLBACK'), undefined);
        assert.equal(await run(insert), '42501', 'the SET may have been rolled back (it was): notes may be vault.notes');
        // The engine sees this BEGIN, not the kept ROLLBACK after it: no block is open, the SET surely takes effect.
        assert.equal(await run('BEGIN ISOLATION LEVEL READ COMMITTED'), undefined);
        assert.equal(await run('ROLLBACK'), undefined);
        assert.equal(await run('SET search_path = public'), undefined);
        assert.equal(await run(insert), undefined, 'only public.notes is left');
        if (dataPath === 'auto') {
          // Asked: the SETs (they change the policy state, and drop what was kept), the ROLLBACK and
          // INSERT after the first, the new BEGIN and the last INSERT; the other BEGIN and ROLLBACK were kept.
          assert.equal(gw.gateway.nativePolicyQuestions - asked, 6, 'transaction control decided from kept decisions');
        }
      } finally {
        conn.close();
      }
      assert.equal(await gw.pg.admin('SELECT count(*) FROM vault.notes', gw.pg.database), '0');
      assert.equal(await gw.pg.admin('SELECT count(*) FROM public.notes WHERE id = 7', gw.pg.database), '1');
    });

    const heldCount = (): Promise<string> => gw.pg.admin('SELECT count(*) FROM held', gw.pg.database);

    /** Runs a held statement; resolves with its review id once the client got the notice. */
    async function heldInsert(client: Client, value: number): Promise<{ reviewId: string; result: Promise<unknown> }> {
      const notice = new Promise<string>((resolve) =>
        client.on('notice', (n) => {
          const id = /held for review (\S+):/.exec(n.message ?? '')?.[1];
          if (id) resolve(id);
        }),
      );
      const result = client.query('INSERT INTO held VALUES ($1)', [value]).then(
        (r) => r,
        (e: unknown) => e,
      );
      return { reviewId: await notice, result };
    }

    it('holds a statement for review with a live session and runs it once a human approves', async () => {
      const client = await nodeClient(viaGateway);
      try {
        const { reviewId, result } = await heldInsert(client, 1);
        assert.equal(await heldCount(), '0', 'nothing ran while held');
        const approved = await runCli(['approve', reviewId, '--as', 'alice', '--config', gw.configFile]);
        assert.equal(approved.code, 0, approved.stderr);
        const outcome = await result;
        assert.equal((outcome as { command?: string }).command, 'INSERT');
        assert.equal(await heldCount(), '1');
        const decisions = events(await gw.records()).filter((e) => e.policy?.reviewId === reviewId).map((e) => [e.policy!.action, e.policy!.reviewer]);
        assert.deepEqual(decisions, [
          ['POLICY_ACTION_REVIEW', ''],
          ['POLICY_ACTION_APPROVED', 'alice'],
        ]);
      } finally {
        await client.end();
      }
    });

    it('holds a statement behind one the server fails in the same extended batch: approved, the server skips it as it would have, and the session goes on', async () => {
      const conn = await rawSession(viaGateway);
      try {
        const batch = [
          serialize.parse({ text: 'SELECT 1/0' }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.parse({ text: 'INSERT INTO held VALUES (40)' }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.sync(),
        ];
        const answered = conn.exchange(batch);
        const reviewId = await until('the review is pending', async () => {
          const listed = await runCli(['reviews', '--json', '--config', gw.configFile]);
          const pending = listed.stdout
            .split('\n')
            .filter((line) => line.trim() !== '')
            .map((line) => JSON.parse(line) as { reviewId: string; status: string; text: string })
            .find((r) => r.status === 'pending' && r.text.includes('VALUES (40)'));
          return pending?.reviewId ?? null;
        });
        const approved = await runCli(['approve', reviewId, '--as', 'alice', '--config', gw.configFile]);
        assert.equal(approved.code, 0, approved.stderr);
        const names = (await answered).map((m) => m.name).filter((name) => name !== 'notice');
        const straight = await rawSession(direct);
        const directNames = (await straight.exchange(batch)).map((m) => m.name);
        straight.close();
        assert.deepEqual(names, directNames, 'what the server answers without a hold');
        assert.ok(names.includes('error'));
        const after = (await conn.exchange([serialize.query('SELECT 41 AS n')])).map((m) => m.name);
        assert.deepEqual(after, ['rowDescription', 'dataRow', 'commandComplete', 'readyForQuery']);
      } finally {
        conn.close();
      }
      assert.equal(await gw.pg.admin('SELECT count(*) FROM held WHERE id = 40', gw.pg.database), '0', 'skipped by the server after the error');
    });

    it('refuses a held statement when the reviewer denies it or nobody answers in time', async () => {
      const client = await nodeClient(viaGateway);
      try {
        const denied = await heldInsert(client, 2);
        const cli = await runCli(['deny', denied.reviewId, '--as', 'bob', '--reason', 'not today', '--config', gw.configFile]);
        assert.equal(cli.code, 0, cli.stderr);
        const err = (await denied.result) as DatabaseError;
        assert.equal(err.code, '42501');
        assert.match(err.message, /denied by bob: not today/);
        const timedOut = await heldInsert(client, 3);
        const late = (await timedOut.result) as DatabaseError;
        assert.equal(late.code, '42501');
        assert.match(late.message, /timed out/);
        assert.equal(await heldCount(), '1');
        assert.deepEqual((await client.query('SELECT 5 AS n')).rows, [{ n: 5 }]);
      } finally {
        await client.end();
      }
    });

    it('releases a held statement when the agent cancels it (psql Ctrl-C), and it never runs', async () => {
      const held = spawnClient('psql', ['-X', '-c', 'INSERT INTO held VALUES (42)'], viaGateway);
      let stderr = '';
      held.child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      await until('the review notice', async () => /held for review/.test(stderr));
      held.child.kill('SIGINT');
      const result = await held.done;
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /canceling statement due to user request/);
      assert.equal(await gw.pg.admin('SELECT count(*) FROM held WHERE id = 42', gw.pg.database), '0');
    });

    it('masks configured columns and value patterns before rows leave the gateway', async () => {
      const nativeBefore = gw.gateway.nativeSessionsServed;
      const sql = 'SELECT id, name, email, note FROM customers ORDER BY id';
      const through = await psql(viaGatewayMasked, ['-c', sql]);
      const straight = await psql(direct, ['-c', sql]);
      assert.match(straight.stdout, /ada@example\.com/);
      assert.doesNotMatch(through.stdout, /ada@example\.com|bob@example\.org|4111 1111 1111 1111/);
      assert.match(through.stdout, /^1\|Ada\|/m);
      // The rule names the customers table: once the gateway has looked the result's table up,
      // the same column name in another table is left alone.
      await gw.pg.admin("SET ROLE gw_upstream; CREATE TABLE contacts (email text); INSERT INTO contacts VALUES ('carol@example.net')", gw.pg.database);
      const other = await psql(viaGatewayMasked, ['-c', 'SELECT email FROM contacts', '-c', 'SELECT email FROM customers WHERE id = 2']);
      assert.equal(other.code, 0, other.stderr);
      const [contactEmail, customerEmail] = other.stdout.trim().split('\n');
      assert.equal(contactEmail, 'carol@example.net');
      assert.notEqual(customerEmail, 'bob@example.org');
      const client = await nodeClient(viaGatewayMasked);
      try {
        const rows = (await client.query('SELECT email, note FROM customers WHERE id = $1', [1])).rows as Array<{ email: string; note: string }>;
        assert.notEqual(rows[0]!.email, 'ada@example.com');
        assert.doesNotMatch(rows[0]!.note, /4111/);
        // pg asks for binary results with `binary: true`, which its type definitions do not list.
        const binaryQuery = { text: 'SELECT email FROM customers WHERE id = 1', binary: true } as unknown as QueryConfig;
        const binary = (await client.query(binaryQuery)).rows as Array<{ email: Buffer | string }>;
        assert.doesNotMatch(String(binary[0]!.email), /ada@example\.com/, 'binary-format results are masked too');
        // A card number sent as a parameter stays out of the journal too.
        await client.query('SELECT count(*) FROM customers WHERE note LIKE $1 AND id = $2', ['%4111 1111 1111 1111%', 1]);
      } finally {
        await client.end();
      }
      const all = await until('the last statement record', async () => {
        const found = events(await gw.records());
        return found.some((e) => e.statement?.text.includes('note LIKE $1')) ? found : null;
      });
      const summary = all.find((e) => e.statement?.text === sql)?.statement?.result;
      assert.ok(summary?.maskedColumns.includes('email'), JSON.stringify(summary));
      const byNote = all.find((e) => e.statement?.text.includes('note LIKE $1'))?.statement;
      assert.deepEqual(byNote?.parameters, ['[redacted]', '1']);
      const bind = all.flatMap((e) => e.pgRequest?.messages ?? []).find((m) => m.type === 'Bind' && m.parameters.some((p) => p.redacted));
      assert.ok(bind, 'the write-ahead record withholds the value as well');
      assert.doesNotMatch(JSON.stringify(all), /4111 1111 1111 1111/);
      assert.equal(gw.gateway.nativeSessionsServed, nativeBefore, 'a session with mask rules stays on the JavaScript path');
    });
  });

  describe('bad input', () => {
    const stillServing = async (): Promise<void> => {
      const ok = await psql(viaGateway, ['-c', 'SELECT 99']);
      assert.equal(ok.stdout.trim(), '99', ok.stderr);
    };

    it('closes a connection that sends random bytes, an absurd length or a truncated startup, and keeps serving others', async () => {
      const before = (await gw.records()).length;
      for (const garbage of [randomBytes(64), Buffer.from([0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4]), Buffer.from([0, 0, 0, 40, 0, 3, 0, 0, 0x75])]) {
        const socket = await rawConnection(gw.port);
        const closed = readUntilClose(socket);
        socket.write(garbage);
        if (garbage.length === 9) socket.end(); // truncated startup, then the client vanishes
        await closed;
        await stillServing();
      }
      const failed = await until('three failed sessions', async () => {
        const s = sessions((await gw.records()).slice(before)).filter((x) => x.outcome === 'SESSION_OUTCOME_FAILED');
        return s.length >= 3 ? s : null;
      });
      assert.ok(failed.every((s) => s.failure !== '' && s.client?.port));
    });

    it('runs (and journals) whole statements a client sent right before closing its side', async () => {
      const client = await nodeClient(viaGateway);
      client.on('error', () => undefined);
      const stream = (client as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
      const sql = "INSERT INTO copy_target VALUES (99, 'sent before FIN')";
      const body = Buffer.from(`${sql}\0`);
      const query = Buffer.alloc(5);
      query[0] = 0x51;
      query.writeInt32BE(4 + body.length, 1);
      stream.end(Buffer.concat([query, body]));
      await until('the row', async () => (await gw.pg.admin('SELECT count(*) FROM copy_target WHERE id = 99', gw.pg.database)) === '1');
      await until('its statement record', async () => events(await gw.records()).some((e) => e.statement?.text === sql && e.statement.commandTag === 'INSERT 0 1'));
    });

    it('answers every Query sent together with Terminate before closing, and journals them (regression: the later answers were lost)', async () => {
      // An earlier session of this file may have had the same client port: only one started since counts.
      const since = BigInt(Date.now() - 1000) * 1_000_000n;
      const conn = await rawSession(viaGateway);
      const texts = ['SELECT 1 AS "before terminate a"', 'SELECT g FROM generate_series(1, 3) g WHERE g > 0 AND 17 = 17'];
      const replies = await conn.sendUntilClose([serialize.query(texts[0]!), serialize.query(texts[1]!), serialize.end()]);
      assert.deepEqual(
        replies.map((m) => m.name),
        ['rowDescription', 'dataRow', 'commandComplete', 'readyForQuery', 'rowDescription', 'dataRow', 'dataRow', 'dataRow', 'commandComplete', 'readyForQuery'],
      );
      const session = await until('the closed session', async () =>
        [...finalSessions(await gw.records()).values()].find(
          (s) => s.client?.port === conn.localPort && s.outcome === 'SESSION_OUTCOME_CLOSED' && BigInt(s.startUnixNano) >= since,
        ),
      );
      const statements = events(await gw.records()).filter((e) => e.sessionId === session.sessionId && e.statement);
      assert.deepEqual(
        statements.map((e) => [e.statement!.text, e.statement!.commandTag]),
        [
          [texts[0], 'SELECT 1'],
          [texts[1], 'SELECT 3'],
        ],
      );
    });

    it('ends an established session on an absurd message length or a client vanishing mid-message, journaled as failed', async () => {
      const client = await nodeClient(viaGateway);
      const stream = (client as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
      const port = stream.localPort;
      const ended = new Promise<void>((resolve) => stream.on('close', () => resolve()));
      client.on('error', () => undefined);
      stream.write(Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xf0]));
      await ended;
      await stillServing();

      const second = await nodeClient(viaGateway);
      second.on('error', () => undefined);
      const stream2 = (second as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
      const port2 = stream2.localPort;
      stream2.write(Buffer.from([0x51, 0, 0, 0, 100, 0x53, 0x45])); // a Query that never finishes
      await new Promise((r) => setTimeout(r, 100));
      stream2.destroy();
      await stillServing();

      const ends = await until('both failed sessions', async () => {
        const final = finalSessions(await gw.records());
        const a = [...final.values()].find((s) => s.client?.port === port && s.outcome === 'SESSION_OUTCOME_FAILED');
        const b = [...final.values()].find((s) => s.client?.port === port2 && s.outcome === 'SESSION_OUTCOME_FAILED');
        return a && b ? [a, b] : null;
      });
      assert.match(ends[0]!.failure, /exceeds the gateway's limit/);
      assert.match(ends[1]!.failure, /disconnected in the middle of a message/);
    });
  });
});

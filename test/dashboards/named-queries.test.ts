import assert from 'node:assert/strict';
import { openStore } from '../../collector/store/connection';
import { migrate } from '../../collector/store/migration';
import { runQuery } from '../../collector/store/query';
import { bindParams, loadNamedQueries, parseNamedQuery, parseTimeParam, STANDARD_PARAMS, type NamedQuery } from '../../dashboards/named-queries';
import { tempConfig } from '../collector/store/store-fixture';
import { at, CURL_B, NODE_A, PSQL_A, PSQL_B, RUN_A, RUN_B, seedStore } from './seed-store';

type Result = Record<string, unknown>;

/** Queries that name one entity (a session, an alert): they take its id instead of a time range. */
const SINGLE_ENTITY = new Set(['session-detail', 'alert-detail']);

describe('dashboards/sql: the named queries', function () {
  this.timeout(120_000);

  describe('catalogue', () => {
    const queries = loadNamedQueries();

    it('has a query for every question of the analyst surface', () => {
      assert.deepEqual(
        queries.map((q) => q.name),
        [
          'agent-run-timeline',
          'alert-detail',
          'audit-gaps',
          'bypass-by-agent-run',
          'bypass-by-binary',
          'bypass-by-host',
          'coverage',
          'coverage-trend',
          'overview',
          'recent-alerts',
          'secrets-in-argv',
          'session-detail',
          'session-drill-down',
          'sessions',
          'sessions-by-identity',
          'unattributed-sessions',
        ],
      );
    });

    it('gives every query a question and the standard time range (single-entity queries excepted)', () => {
      for (const query of queries) {
        assert.ok(query.question.length > 20, `${query.name} says what it answers`);
        const names = query.params.map((p) => p.name);
        if (!SINGLE_ENTITY.has(query.name)) assert.ok(names.includes('from') && names.includes('to'), `${query.name} takes from/to`);
        for (const param of query.params.filter((p) => p.standard)) {
          assert.equal(param.type, STANDARD_PARAMS.find((s) => s.name === param.name)!.type, `${query.name} ${param.name}`);
        }
      }
    });

    it('reads @param defaults and required parameters from the header', () => {
      const coverage = queries.find((q) => q.name === 'coverage')!;
      assert.deepEqual(
        coverage.params.filter((p) => !p.standard).map((p) => [p.name, p.type, p.defaultValue]),
        [
          ['group_by', 'String', 'resource'],
          ['limit', 'UInt32', '100'],
        ],
      );
      const alerts = queries.find((q) => q.name === 'recent-alerts')!;
      assert.equal(alerts.params.find((p) => p.name === 'kind')!.defaultValue, '');
      const timeline = queries.find((q) => q.name === 'agent-run-timeline')!;
      assert.equal(timeline.params.find((p) => p.name === 'agent_run')!.defaultValue, undefined);
    });

    it('refuses a header that does not match its SQL', () => {
      assert.throws(() => parseNamedQuery('x', '-- y: something\nSELECT 1'), /DASHBOARDS_ERR_QUERY_HEADER|first line must be "-- x: <question>"/);
      assert.throws(() => parseNamedQuery('x', '-- x: q\nSELECT {n:UInt32}'), /\{n:UInt32\} has no "-- @param n UInt32/);
      assert.throws(() => parseNamedQuery('x', '-- x: q\n-- @param n UInt8 = 1\nSELECT {n:UInt32}'), /says UInt8 but the SQL binds \{n:UInt32\}/);
      assert.throws(() => parseNamedQuery('x', '-- x: q\nSELECT {from:DateTime64(3)}'), /must be \{from:DateTime64\(9, 'UTC'\)\}/);
      assert.throws(() => parseNamedQuery('x', '-- x: q\n-- @param n UInt32 = 1\nSELECT 1'), /@param n is not used/);
    });

    it('binds defaults, time ranges and given values, and refuses unknown or malformed ones', () => {
      const coverage = queries.find((q) => q.name === 'coverage')!;
      const now = Date.UTC(2026, 10, 25, 12, 0, 0);
      assert.deepEqual(bindParams(coverage, {}, now), {
        from: '2026-11-24 12:00:00.000000000',
        to: '2026-11-25 12:00:00.000000000',
        host: '',
        resource: '',
        agent: '',
        group_by: 'resource',
        limit: '100',
      });
      const bound = bindParams(coverage, { from: '7d', to: '2026-11-25T11:00:00Z', host: 'h', group_by: 'day', limit: '5' }, now);
      assert.equal(bound.from, '2026-11-18 12:00:00.000000000');
      assert.equal(bound.to, '2026-11-25 11:00:00.000000000');
      assert.equal(bound.group_by, 'day');
      // A standard parameter a query does not use is accepted and dropped.
      const gaps = queries.find((q) => q.name === 'audit-gaps')!;
      assert.equal(bindParams(gaps, { agent: 'claude' }, now).agent, undefined);
      assert.throws(() => bindParams(coverage, { groupby: 'day' }, now), /DASHBOARDS_ERR_PARAM|parameter groupby is not one this query takes/);
      assert.throws(() => bindParams(coverage, { limit: 'ten' }, now), /parameter limit must be a whole number/);
      assert.throws(() => bindParams(coverage, { from: 'yesterday' }, now), /parameter from "yesterday" is neither a duration/);
      assert.throws(() => bindParams(coverage, { from: '1h', to: '2h' }, now), /parameter from .* is after to/);
      const timeline = queries.find((q) => q.name === 'agent-run-timeline')!;
      assert.throws(() => bindParams(timeline, {}, now), /parameter agent_run is required \(--param agent_run=<value>: the run's exec_id/);
    });

    it('reads times as durations, now, ISO 8601 and DateTime64 text (keeping nanoseconds)', () => {
      const now = Date.UTC(2026, 0, 2, 3, 4, 5);
      assert.equal(parseTimeParam('90s', now), '2026-01-02 03:02:35.000000000');
      assert.equal(parseTimeParam('now', now), '2026-01-02 03:04:05.000000000');
      assert.equal(parseTimeParam('2026-01-02T03:04:05.5Z'), '2026-01-02 03:04:05.500000000');
      assert.equal(parseTimeParam('2026-01-02 03:04:05.123456789'), '2026-01-02 03:04:05.123456789');
      assert.equal(parseTimeParam('2026-01-02'), '2026-01-02 00:00:00.000000000');
      assert.equal(parseTimeParam('tomorrow'), null);
    });
  });

  describe('against the embedded engine with seeded data', () => {
    const config = tempConfig();
    const queries = new Map<string, NamedQuery>(loadNamedQueries().map((q) => [q.name, q]));

    before(async () => {
      const store = await openStore(config);
      try {
        await migrate(store.client, store.dialect);
        await seedStore(store);
      } finally {
        await store.close();
      }
    });

    async function run(name: string, params: Record<string, string> = {}): Promise<Result[]> {
      assert.ok(queries.has(name), name);
      const text = await runQuery(config, { query: name, format: 'json', params });
      return text
        .trim()
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Result);
    }

    it('overview: coverage, bypasses, the previous period, alerts, sessions and gaps', async () => {
      const [row, ...rest] = await run('overview');
      assert.equal(rest.length, 0);
      assert.deepEqual(
        {
          connects: Number(row!.connects),
          mediated: Number(row!.mediated),
          bypass: Number(row!.bypass),
          coverage_pct: row!.coverage_pct,
          bypass_agent_runs: Number(row!.bypass_agent_runs),
          previous_bypass: Number(row!.previous_bypass),
          bypass_change: Number(row!.bypass_change),
          alerts: Number(row!.alerts),
          critical_alerts: Number(row!.critical_alerts),
          sessions: Number(row!.sessions),
          unattributed_sessions: Number(row!.unattributed_sessions),
          audit_gaps: Number(row!.audit_gaps),
          gap_overlap: row!.gap_overlap,
        },
        {
          connects: 6,
          mediated: 2,
          bypass: 4,
          coverage_pct: 33.33,
          bypass_agent_runs: 2,
          previous_bypass: 0,
          bypass_change: 4,
          alerts: 3,
          critical_alerts: 2,
          sessions: 3,
          unattributed_sessions: 1,
          audit_gaps: 1,
          gap_overlap: true,
        },
      );
      const hostB = (await run('overview', { host: 'host-b' }))[0]!;
      assert.deepEqual([Number(hostB.mediated), Number(hostB.bypass), hostB.gap_overlap], [1, 2, false]);
      // The range before the seed: its bypasses are the next range's "previous" ones.
      const later = (await run('overview', { from: at(1000), to: at(2000) }))[0]!;
      assert.equal(Number(later.connects), 0);
      const spanning = (await run('overview', { from: at(100), to: at(400) }))[0]!;
      assert.equal(Number(spanning.previous_bypass), 1, 'ce-1 at +20 s lies in [-200 s, +100 s)');
    });

    it('coverage: per resource, agent, agent run, host and day; filters; a bad group_by is refused', async () => {
      const byResource = await run('coverage');
      assert.deepEqual(
        byResource.map((r) => [r.group_key, Number(r.mediated), Number(r.bypass), r.coverage_pct, r.gap_overlap]),
        [
          ['orders-db', 1, 3, 25, true],
          ['billing-api', 1, 1, 50, false],
        ],
      );
      const byAgent = await run('coverage', { group_by: 'agent' });
      assert.deepEqual(
        byAgent.map((r) => [r.group_key, Number(r.mediated), Number(r.bypass)]),
        [
          ['claude', 1, 2],
          ['(no agent run)', 0, 1],
          ['codex', 1, 1],
        ],
      );
      const byRun = await run('coverage', { group_by: 'agent_run' });
      assert.deepEqual(new Set(byRun.map((r) => r.group_key)), new Set([RUN_A, RUN_B, '(no agent run)']));
      const byHost = await run('coverage', { group_by: 'host' });
      assert.deepEqual(byHost.map((r) => [r.group_key, Number(r.bypass), r.gap_overlap]), [
        ['host-a', 2, true],
        ['host-b', 2, false],
      ]);
      const byDay = await run('coverage', { group_by: 'day', from: at(-10), to: at(1000) });
      assert.equal(byDay.reduce((n, r) => n + Number(r.connects), 0), 6);
      const codex = await run('coverage', { agent: 'codex' });
      assert.deepEqual(codex.map((r) => [r.group_key, Number(r.mediated), Number(r.bypass)]), [['billing-api', 1, 1]]);
      const orders = await run('coverage', { resource: 'orders-db', host: 'host-b' });
      assert.deepEqual(orders.map((r) => [r.group_key, Number(r.bypass)]), [['orders-db', 1]]);
      await assert.rejects(run('coverage', { group_by: 'binary' }), /group_by must be one of resource, agent, agent_run, host, day/);
    });

    it('coverage-trend: buckets add up to the totals, oldest first', async () => {
      const rows = await run('coverage-trend', { bucket_s: '60' });
      assert.ok(rows.length >= 4);
      assert.equal(rows.reduce((n, r) => n + Number(r.mediated), 0), 2);
      assert.equal(rows.reduce((n, r) => n + Number(r.bypass), 0), 4);
      const times = rows.map((r) => String(r.time));
      assert.deepEqual(times, [...times].sort());
      assert.ok(rows.some((r) => r.gap_overlap === true) && rows.some((r) => r.gap_overlap === false));
    });

    it('bypass-by-agent-run: top bypassing runs with agent, resources, hosts and binaries', async () => {
      const rows = await run('bypass-by-agent-run');
      assert.deepEqual(
        rows.map((r) => [r.agent_run, r.agent, Number(r.connects), Number(r.processes), r.resources, r.hosts, r.gap_overlap]),
        [
          [RUN_A, 'claude', 2, 1, ['orders-db'], ['host-a'], true],
          ['', '', 1, 1, ['orders-db'], ['host-b'], false],
          [RUN_B, 'codex', 1, 1, ['billing-api'], ['host-b'], false],
        ],
      );
      assert.deepEqual(rows[0]!.binaries, ['/usr/bin/node', '/usr/bin/psql', '/usr/local/bin/claude']);
      assert.equal((await run('bypass-by-agent-run', { limit: '1' })).length, 1);
      assert.deepEqual((await run('bypass-by-agent-run', { agent: 'claude' })).map((r) => r.agent_run), [RUN_A]);
    });

    it('bypass-by-binary and bypass-by-host', async () => {
      const binaries = await run('bypass-by-binary');
      assert.deepEqual(
        binaries.map((r) => [r.binary, Number(r.connects), Number(r.processes), Number(r.agent_runs), r.hosts]),
        [
          ['/usr/bin/psql', 3, 2, 1, ['host-a', 'host-b']],
          ['/usr/bin/curl', 1, 1, 1, ['host-b']],
        ],
      );
      const hosts = await run('bypass-by-host');
      assert.deepEqual(
        hosts.map((r) => [r.host, Number(r.connects), Number(r.agent_runs), r.resources, r.gap_overlap]),
        [
          ['host-a', 2, 1, ['orders-db'], true],
          ['host-b', 2, 1, ['billing-api', 'orders-db'], false],
        ],
      );
    });

    it('agent-run-timeline: execs, connects and the gateway events of the run interleaved in time order', async () => {
      const rows = await run('agent-run-timeline', { agent_run: RUN_A });
      assert.deepEqual(
        rows.map((r) => `${r.what}:${r.what === 'gateway' ? `${r.session_id}#${r.event_seq}` : r.exec_id}:${r.verdict}`),
        [
          `process:${RUN_A}:`,
          `process:${PSQL_A}:`,
          `connect:${PSQL_A}:bypass`,
          `process:${NODE_A}:`,
          `connect:${NODE_A}:mediated`,
          'gateway:gw-s1#1:',
          'gateway:gw-s1#2:',
          'gateway:gw-s1#3:',
          'gateway:gw-s1#4:',
          'gateway:gw-s1#5:',
          `connect:${PSQL_A}:bypass`,
          `process:${PSQL_A}:`,
        ],
      );
      assert.match(String(rows[1]!.target), /^\/usr\/bin\/psql psql postgres:\/\/app:\*\*\*\*@/);
      assert.equal(rows[5]!.target, 'SELECT * FROM orders WHERE id = $1');
      assert.equal(rows[7]!.target, 'approved by rule writes-need-review, reviewer alice');
      assert.equal(rows[7]!.host, 'host-a');
      // The gap at +300 s marks the rows within 60 s of it only.
      assert.deepEqual(rows.map((r) => r.gap_overlap), [...Array(10).fill(false), true, true]);
      assert.equal((await run('agent-run-timeline', { agent_run: RUN_A, agent: 'codex' })).length, 0);
      assert.equal((await run('agent-run-timeline', { agent_run: RUN_A, agent: 'claude', limit: '3' })).length, 3);
      const b = await run('agent-run-timeline', { agent_run: RUN_B });
      assert.deepEqual(b.map((r) => r.what), ['process', 'process', 'connect', 'gateway', 'connect', 'connect']);
      assert.equal(b[3]!.target, 'GET /invoices → 200');
      assert.equal(b[3]!.exec_id, CURL_B);
    });

    it('session-drill-down: statements, parameters, outcomes, policy decisions and the reviewer', async () => {
      const rows = await run('session-drill-down', { session_id: 'gw-s1' });
      assert.deepEqual(
        rows.map((r) => [Number(r.event_seq), r.kind, r.statement_text, r.statement_parameters, r.command_tag, Number(r.rows), r.policy_action, r.reviewer]),
        [
          [1, 'statement', 'SELECT * FROM orders WHERE id = $1', ['42'], 'SELECT', 1, 'unspecified', ''],
          [2, 'policy', '', [], '', 0, 'review', ''],
          [3, 'policy', '', [], '', 0, 'approved', 'alice'],
          [4, 'statement', 'DELETE FROM orders WHERE id = $1', ['42'], 'DELETE', 1, 'unspecified', ''],
          [5, 'policy', '', [], '', 0, 'deny', ''],
        ],
      );
      assert.equal(rows[0]!.duration_ms, 1.5);
      assert.ok(rows.every((r) => r.gap_overlap === false));
    });

    it('session-detail: the session, who opened it from which host process, and what happened in it', async () => {
      const [row, ...rest] = await run('session-detail', { session_id: 'gw-s1' });
      assert.equal(rest.length, 0);
      assert.deepEqual(
        [row!.identity_subject, row!.resource, row!.outcome, row!.host, row!.agent_run, row!.exec_id, row!.binary, row!.attributed],
        ['agent:claude@host-a', 'orders-db', 'closed', 'host-a', RUN_A, NODE_A, '/usr/bin/node', true],
      );
      assert.deepEqual([Number(row!.statements), Number(row!.approved), Number(row!.denied), row!.reviewers], [2, 1, 1, ['alice']]);
      const [lone] = await run('session-detail', { session_id: 'gw-s3' });
      assert.deepEqual([lone!.attributed, lone!.host], [false, '']);
      assert.equal((await run('session-detail', { session_id: 'no-such-session' })).length, 0);
    });

    it('sessions and unattributed-sessions: attribution to host processes, and the sessions without one', async () => {
      const rows = await run('sessions');
      assert.deepEqual(
        rows.map((r) => [r.session_id, r.outcome, Number(r.statements), Number(r.refused), r.attributed, r.host, r.agent_run]),
        [
          ['gw-s3', 'closed', 1, 0, false, '', ''],
          ['gw-s2', 'closed', 0, 0, true, 'host-b', RUN_B],
          ['gw-s1', 'closed', 2, 1, true, 'host-a', RUN_A],
        ],
      );
      assert.deepEqual((await run('sessions', { host: 'host-a' })).map((r) => r.session_id), ['gw-s1']);
      assert.deepEqual((await run('sessions', { agent: 'codex' })).map((r) => r.session_id), ['gw-s2']);
      assert.deepEqual((await run('sessions', { resource: 'orders-db' })).map((r) => r.session_id), ['gw-s3', 'gw-s1']);
      const lone = await run('unattributed-sessions');
      assert.deepEqual(lone.map((r) => [r.session_id, r.identity_subject, r.client]), [['gw-s3', 'agent:claude@laptop', '10.0.0.9:51000']]);
      assert.equal((await run('unattributed-sessions', { resource: 'billing-api' })).length, 0);
    });

    it('sessions-by-identity: per identity, FINAL keeps the closed record', async () => {
      const rows = await run('sessions-by-identity');
      assert.deepEqual(
        rows.map((r) => [r.identity_subject, Number(r.sessions), r.resources, Number(r.still_open)]),
        [
          ['agent:claude@host-a', 1, ['orders-db'], 0],
          ['agent:claude@laptop', 1, ['orders-db'], 0],
          ['agent:codex@host-b', 1, ['billing-api'], 0],
        ],
      );
    });

    it('secrets-in-argv: redacted command lines with the alert raised for them', async () => {
      const rows = await run('secrets-in-argv');
      assert.deepEqual(
        rows.map((r) => [r.exec_id, r.binary, r.argv, r.alert_id, r.severity, r.agent_run]),
        [[PSQL_A, '/usr/bin/psql', ['psql', 'postgres://app:****@10.0.0.5/orders'], 'al-secret-a', 'warning', RUN_A]],
      );
      assert.equal((await run('secrets-in-argv', { host: 'host-b' })).length, 0);
    });

    it('audit-gaps: the losses overlapping the range', async () => {
      assert.deepEqual((await run('audit-gaps')).map((r) => [r.gap_id, r.source, Number(r.lost)]), [['gap-ring-a', 'sensor', 12]]);
      assert.deepEqual(
        (await run('audit-gaps', { from: '30d' })).map((r) => r.gap_id),
        ['gap-ring-a', 'gap-old'],
      );
      assert.equal((await run('audit-gaps', { host: 'host-b' })).length, 0);
    });

    it('recent-alerts: newest first, by kind, severity, host and agent', async () => {
      assert.deepEqual((await run('recent-alerts')).map((r) => [r.alert_id, r.gap_overlap]), [
        ['al-bypass-b', false],
        ['al-bypass-a', false],
        ['al-secret-a', false],
      ]);
      assert.deepEqual((await run('recent-alerts', { kind: 'secret_in_argv' })).map((r) => r.alert_id), ['al-secret-a']);
      assert.deepEqual((await run('recent-alerts', { severity: 'critical', host: 'host-b' })).map((r) => r.alert_id), ['al-bypass-b']);
      assert.deepEqual((await run('recent-alerts', { agent: 'claude' })).map((r) => r.alert_id), ['al-bypass-a', 'al-secret-a']);
    });

    it('alert-detail: the alert, the connect that raised it and the process lineage up to the agent run', async () => {
      const rows = await run('alert-detail', { alert_id: 'al-bypass-a' });
      assert.deepEqual(
        rows.map((r) => [Number(r.depth), r.exec_id, r.comm, r.binary, r.parent_exec_id]),
        [
          [0, PSQL_A, 'psql', '/usr/bin/psql', RUN_A],
          [1, RUN_A, 'claude', '/usr/local/bin/claude', 'host-a:boot-a:50:1'],
        ],
      );
      assert.deepEqual([rows[0]!.kind, rows[0]!.destination, rows[0]!.verdict, rows[0]!.summary], ['bypass', '10.0.0.5:5432', 'bypass', 'psql reached orders-db around the gateway']);
      const outside = await run('alert-detail', { alert_id: 'al-bypass-b' });
      assert.deepEqual(outside.map((r) => [Number(r.depth), r.exec_id, r.binary]), [[0, PSQL_B, '/usr/bin/psql']]);
      assert.equal((await run('alert-detail', { alert_id: 'nope' })).length, 0);
    });
  });
});

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../../collector/store/connection';
import { qualified } from '../../collector/store/ddl';
import { migrate } from '../../collector/store/migration';
import { namedQueries, parseSince } from '../../collector/store/query';
import { alertRow, sessionRow } from '../../collector/store/rows';
import { storeSink } from '../../collector/store/sink';
import { Spool } from '../../collector/store/spool';
import { StoreWriter } from '../../collector/store/writer';
import { connectRows, queryRows, silentLog, tempConfig } from '../collector/store/store-fixture';
import { runCli } from '../support/host';

describe('gapwatch query (embedded store)', function () {
  this.timeout(60_000);
  const config = tempConfig();
  const configFile = join(config.dataDir, 'gapwatch.yaml');
  const now = BigInt(Date.now()) * 1_000_000n;

  before(async () => {
    writeFileSync(configFile, `dataDir: ${config.dataDir}\nlog: { level: warn }\n`);
    const store = await openStore(config);
    try {
      await migrate(store.client, store.dialect);
      const { spool } = Spool.open({ dir: join(config.dataDir, 'spool'), maxBytes: 1 << 20 });
      const writer = new StoreWriter(storeSink(store), spool, config.store.writer, silentLog, 'host-a');
      writer.start();
      await writer.write('connect_events', connectRows(30, 0, 'host-a:boot:100:1'));
      await writer.write('connect_events', connectRows(9, 100, 'host-a:boot:777:1'));
      for (const [id, end, outcome] of [
        ['gw-1', '0', 'SESSION_OUTCOME_OPEN'],
        ['gw-1', String(now), 'SESSION_OUTCOME_CLOSED'],
        ['gw-2', String(now), 'SESSION_OUTCOME_REJECTED'],
      ] as const) {
        await writer.write(
          'gateway_sessions',
          sessionRow({
            sessionId: id,
            gatewayId: 'gw-local',
            identity: { subject: 'agent:claude@ci-7', method: 'token', claims: { run: 'r1' } },
            resource: 'orders-db',
            protocol: 'PROTOCOL_POSTGRES',
            client: { ip: '10.0.0.9', port: 40001 },
            listener: null,
            upstreamLocal: null,
            upstream: null,
            startUnixNano: String(now - 5_000_000_000n),
            endUnixNano: end,
            outcome,
            targetUser: 'app',
            bytesFromClient: '0',
            bytesToClient: '0',
            database: '',
            failure: '',
            clientParameters: {},
          }),
        );
      }
      await writer.write(
        'alerts',
        alertRow({
          alertId: '',
          host: 'host-a',
          timeUnixNano: String(now),
          kind: 'ALERT_KIND_BYPASS',
          severity: 'SEVERITY_CRITICAL',
          summary: 'psql reached orders-db around the gateway',
          execId: 'host-a:boot:200:1',
          agentRun: 'host-a:boot:100:1',
          resource: 'orders-db',
          eventId: 'ce-0',
        }),
      );
      await writer.close();
      assert.equal(writer.stats().dropped, 0, 'every fixture row was stored');
    } finally {
      await store.close();
    }
  });

  it('lists the named queries the ORDER BY keys were chosen for', () => {
    for (const name of ['bypass-by-agent-run', 'sessions-by-identity', 'agent-run-timeline', 'session-drill-down', 'recent-alerts', 'audit-gaps']) {
      assert.ok(namedQueries().includes(name), name);
    }
  });

  it('runs every named query against the real schema', async () => {
    // The id a single-entity query needs; every query accepts the standard time range.
    const ids: Record<string, string[]> = {
      'agent-run-timeline': ['--param', 'agent_run=host-a:boot:777:1'],
      'session-drill-down': ['--param', 'session_id=gw-1'],
      'session-detail': ['--param', 'session_id=gw-1'],
      'alert-detail': ['--param', 'alert_id=a-1'],
    };
    for (const name of namedQueries()) {
      const result = await runCli(['query', name, '--since', '30d', '--to', 'now', '--format', 'json', ...(ids[name] ?? []), '--config', configFile]);
      assert.equal(result.code, 0, `${name}: ${result.stderr}`);
    }
    const timeline = await runCli(['query', 'agent-run-timeline', '--format', 'json', '--param', 'agent_run=host-a:boot:777:1', '--config', configFile]);
    const rows = timeline.stdout.trim().split('\n').map((line) => JSON.parse(line) as { what: string; verdict: string; target: string });
    assert.equal(rows.length, 9);
    assert.deepEqual(new Set(rows.map((r) => `${r.what} ${r.target}`)), new Set(['connect 10.0.0.5:5432']));
    assert.equal(rows.filter((r) => r.verdict === 'bypass').length, 3);
  });

  it('runs a named query as JSON lines', async () => {
    const result = await runCli(['query', 'bypass-by-agent-run', '--since', '7d', '--format', 'json', '--config', configFile]);
    assert.equal(result.code, 0, result.stderr);
    const rows = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { agent_run: string; connects: string | number });
    // Every third connect of connectRows is a bypass: 10 of the first run's 30, 3 of the second's 9.
    assert.deepEqual(
      rows.map((r) => [r.agent_run, Number(r.connects)]),
      [
        ['host-a:boot:100:1', 10],
        ['host-a:boot:777:1', 3],
      ],
    );
  });

  it('reads sessions with FINAL, so a closed session replaces its open record', async () => {
    const result = await runCli(['query', 'sessions-by-identity', '--format', 'csv', '--config', configFile]);
    assert.equal(result.code, 0, result.stderr);
    const [header, row, ...rest] = result.stdout.trim().split('\n');
    assert.equal(rest.length, 0);
    assert.match(header!, /^"identity_subject","sessions","resources","rejected","still_open"/);
    assert.match(row!, /^"agent:claude@ci-7",2,"\['orders-db'\]",1,0,/);
  });

  it('prints an aligned table for ad-hoc SQL and binds --param values', async () => {
    const result = await runCli([
      'query',
      "SELECT kind, severity, agent_run FROM alerts WHERE agent_run = {run:String}",
      '--param',
      'run=host-a:boot:100:1',
      '--config',
      configFile,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /kind.*severity.*agent_run/);
    assert.match(result.stdout, /│ bypass │ critical │ host-a:boot:100:1 │/);
  });

  it('refuses writes through the engine, however they are spelt', async () => {
    for (const sql of [
      "INSERT INTO alerts (alert_id) VALUES ('x')",
      'DROP TABLE connect_events',
      'SELECT 1; TRUNCATE TABLE alerts',
      "SELECT * FROM alerts SETTINGS readonly = 0",
    ]) {
      const result = await runCli(['query', sql, '--config', configFile]);
      assert.equal(result.code, 1, sql);
      assert.match(result.stderr, /STORE_ERR_QUERY_REFUSED/, sql);
    }
    const store = await openStore(config);
    try {
      const rows = await queryRows<{ c: string }>(store, `SELECT count() AS c FROM ${qualified(store.dialect, 'connect_events')}`);
      assert.equal(Number(rows[0]!.c), 39);
      const alerts = await queryRows<{ c: string }>(store, `SELECT count() AS c FROM ${qualified(store.dialect, 'alerts')}`);
      assert.equal(Number(alerts[0]!.c), 1);
    } finally {
      await store.close();
    }
  });

  it('names the known queries when the name is unknown, and asks for missing parameters', async () => {
    const unknown = await runCli(['query', 'bypasses', '--config', configFile]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no named query "bypasses"; named queries: agent-run-timeline, .*bypass-by-agent-run/);
    assert.match(unknown.stderr, /STORE_ERR_QUERY_UNKNOWN/);
    const missing = await runCli(['query', 'session-drill-down', '--config', configFile]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /parameter session_id is required \(--param session_id=<value>: the gateway session id\)/);
    assert.match(missing.stderr, /DASHBOARDS_ERR_PARAM/);
    const misspelt = await runCli(['query', 'recent-alerts', '--param', 'knd=bypass', '--config', configFile]);
    assert.equal(misspelt.code, 1);
    assert.match(misspelt.stderr, /parameter knd is not one this query takes; it takes from, to, host, resource, agent, kind, severity, limit/);
  });

  it('says the embedded store is owned by another process instead of waiting or corrupting it', async () => {
    const store = await openStore(config);
    try {
      const result = await runCli(['query', 'recent-alerts', '--config', configFile]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /the embedded store .* is open in another process/);
      assert.match(result.stderr, /STORE_ERR_ENGINE_BUSY/);
    } finally {
      await store.close();
    }
  });

  it('says when a configured server does not answer', async () => {
    const file = join(config.dataDir, 'server.yaml');
    writeFileSync(file, `dataDir: ${config.dataDir}\nstore:\n  url: http://127.0.0.1:1\n  password: hunter2\n`);
    const result = await runCli(['query', 'recent-alerts', '--config', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /the ClickHouse store at http:\/\/127\.0\.0\.1:1\/ did not answer: .*ECONNREFUSED/);
    assert.match(result.stderr, /STORE_ERR_UNREACHABLE/);
    assert.doesNotMatch(result.stderr + result.stdout, /hunter2/);
  });

  it('parses --since durations and ISO times', () => {
    assert.equal(parseSince('90s', Date.UTC(2026, 0, 2, 3, 4, 5)), '2026-01-02 03:02:35.000000000');
    assert.equal(parseSince('2026-01-02T03:04:05.5Z'), '2026-01-02 03:04:05.500000000');
    assert.throws(() => parseSince('yesterday'), /neither a duration/);
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openStore, type Store } from '../../../collector/store/connection';
import { migrate } from '../../../collector/store/migration';
import { alertRow, auditGapRow, connectEventRow, encodeRow, processEventRow, sessionEventRow, sessionRow, TABLE_COLUMNS } from '../../../collector/store/rows';
import { storeSink } from '../../../collector/store/sink';
import { Spool } from '../../../collector/store/spool';
import { StoreWriter } from '../../../collector/store/writer';
import { queryRows, silentLog, tempConfig } from './store-fixture';

describe('collector/store rows from proto messages (embedded engine)', function () {
  this.timeout(60_000);
  let store: Store;
  const t = BigInt(Date.now()) * 1_000_000n + 123_456_789n;

  before(async () => {
    const config = tempConfig();
    store = await openStore(config);
    await migrate(store.client, store.dialect);
    const { spool } = Spool.open({ dir: join(config.dataDir, 'spool'), maxBytes: 1 << 20 });
    const writer = new StoreWriter(storeSink(store), spool, config.store.writer, silentLog, 'host-a');
    writer.start();
    const process = { execId: 'host-a:b1:4242:99', pid: 4242, tgid: 4242, agentRun: 'host-a:b1:4000:7' };
    await writer.write(
      'process_events',
      processEventRow({
        eventId: '',
        host: 'host-a',
        timeUnixNano: String(t),
        kind: 'PROCESS_EVENT_KIND_EXEC',
        process,
        parentExecId: 'host-a:b1:4000:7',
        uid: 1000,
        gid: 1000,
        cgroupId: '18446744073709551615',
        comm: 'psql',
        filename: '/usr/bin/psql',
        argv: ['psql', '-h', 'db', "it's \"quoted\"\n\ttabbed"],
        argvTruncated: false,
        exitCode: 0,
      }),
    );
    await writer.write(
      'connect_events',
      connectEventRow({
        eventId: 'ce-1',
        host: 'host-a',
        timeUnixNano: String(t),
        process,
        transport: 'TRANSPORT_UNIX',
        destination: { unixPath: '/run/postgresql/.s.PGSQL.5432', address: 'unixPath' },
        local: null,
        result: -115,
        verdict: 'VERDICT_BYPASS',
        resource: 'orders-db',
        sessionId: '',
      }),
    );
    await writer.write(
      'gateway_session_events',
      sessionEventRow({
        sessionId: 'gw-1',
        eventSeq: '3',
        timeUnixNano: String(t),
        statement: {
          text: 'DELETE FROM orders WHERE id = $1',
          parameters: ['42'],
          commandTag: 'DELETE 1',
          rows: '1',
          errorCode: '',
          durationNano: '1500000',
          errorMessage: '',
          via: 'extended',
          statementName: '',
          portal: '',
          policy: null,
          result: null,
          classes: [],
        },
        detail: 'statement',
      }),
    );
    await writer.write(
      'audit_gaps',
      auditGapRow({ gapId: '', host: 'host-a', source: 'ringbuf', startUnixNano: String(t), endUnixNano: String(t + 1_000_000n), lost: '17', reason: 'ring buffer full' }),
    );
    await writer.write(
      'alerts',
      alertRow({
        alertId: 'al-1',
        host: 'host-a',
        timeUnixNano: String(t),
        kind: 'ALERT_KIND_SECRET_IN_ARGV',
        severity: 'SEVERITY_WARNING',
        summary: 'password in argv',
        execId: process.execId,
        agentRun: process.agentRun,
        resource: '',
        eventId: 'pe-1',
      }),
    );
    await writer.write(
      'gateway_sessions',
      sessionRow({
        sessionId: 'gw-1',
        gatewayId: 'gw-local',
        identity: { subject: 'agent:codex@host-a', method: 'token', claims: { run: 'r-9', repo: 'shop' } },
        resource: 'orders-db',
        protocol: 'PROTOCOL_POSTGRES',
        client: { ip: '::1', port: 50000 },
        listener: { ip: '127.0.0.1', port: 6432 },
        upstreamLocal: { ip: '127.0.0.1', port: 40000 },
        upstream: { ip: '127.0.0.1', port: 5432 },
        startUnixNano: String(t),
        endUnixNano: '0',
        outcome: 'SESSION_OUTCOME_OPEN',
        targetUser: 'app',
        bytesFromClient: '0',
        bytesToClient: '0',
        database: '',
        failure: '',
        clientParameters: {},
      }),
    );
    await writer.close();
    assert.equal(writer.stats().dropped, 0);
    assert.equal(writer.stats().written, 6);
  });

  after(async () => {
    await store.close();
  });

  it('keeps nanoseconds, 64-bit ids and awkward strings exactly', async () => {
    const [row] = await queryRows<Record<string, unknown>>(
      store,
      "SELECT toUnixTimestamp64Nano(time) AS t, kind, cgroup_id, argv, length(event_id) AS id_length FROM gapwatch.process_events FINAL",
    );
    assert.deepEqual(row, {
      t: String(t),
      kind: 'exec',
      cgroup_id: '18446744073709551615',
      argv: ['psql', '-h', 'db', "it's \"quoted\"\n\ttabbed"],
      id_length: '32',
    });
  });

  it('flattens endpoints, enums and oneofs into columns', async () => {
    const [connect] = await queryRows<Record<string, unknown>>(
      store,
      'SELECT transport, destination_unix_path, destination_ip, result, verdict, resource FROM gapwatch.connect_events FINAL',
    );
    assert.deepEqual(connect, {
      transport: 'unix',
      destination_unix_path: '/run/postgresql/.s.PGSQL.5432',
      destination_ip: '',
      result: -115,
      verdict: 'bypass',
      resource: 'orders-db',
    });
    const [event] = await queryRows<Record<string, unknown>>(
      store,
      'SELECT kind, statement_text, statement_parameters, command_tag, rows, duration_nano, policy_action FROM gapwatch.gateway_session_events FINAL',
    );
    assert.deepEqual(event, {
      kind: 'statement',
      statement_text: 'DELETE FROM orders WHERE id = $1',
      statement_parameters: ['42'],
      command_tag: 'DELETE 1',
      rows: '1',
      duration_nano: '1500000',
      policy_action: 'unspecified',
    });
    const [session] = await queryRows<Record<string, unknown>>(
      store,
      "SELECT identity_claims, protocol, client_ip, client_port, outcome, end_time FROM gapwatch.gateway_sessions FINAL",
    );
    assert.deepEqual(session, {
      identity_claims: { run: 'r-9', repo: 'shop' },
      protocol: 'postgres',
      client_ip: '::1',
      client_port: 50000,
      outcome: 'open',
      end_time: '1970-01-01 00:00:00.000000000',
    });
    const [gap] = await queryRows<Record<string, unknown>>(store, 'SELECT source, lost, reason FROM gapwatch.audit_gaps FINAL');
    assert.deepEqual(gap, { source: 'ringbuf', lost: '17', reason: 'ring buffer full' });
    const [alert] = await queryRows<Record<string, unknown>>(store, 'SELECT kind, severity FROM gapwatch.alerts FINAL');
    assert.deepEqual(alert, { kind: 'secret_in_argv', severity: 'warning' });
  });

  it('caps the memory of one query, and the engine stays usable after', async () => {
    const config = tempConfig('embedded: { maxQueryMemoryMiB: 64 }');
    await store.close();
    store = await openStore(config);
    await assert.rejects(
      async () => (await store.client.query({ query: 'SELECT groupArray(number) FROM numbers(100000000)', format: 'JSONEachRow' })).text(),
      (err: Error & { type?: string }) => err.type === 'MEMORY_LIMIT_EXCEEDED',
    );
    const [row] = await queryRows<{ one: number }>(store, 'SELECT 1 AS one');
    assert.equal(row!.one, 1);
  });
});

describe('collector/store JSONCompactEachRow encoding', () => {
  it('writes each row exactly as JSON.stringify of its values in column order', () => {
    const awkward = ['', 'plain', 'quote " and \\ backslash', 'tab\tnew\nline\u0000nul\u001f', 'emoji \u{1F600}', 'lone \ud800 high', 'lone \udc00 low', 'sep \u2028\u2029', 'ümlaut €', '\u007f del'];
    const columns = TABLE_COLUMNS.process_events;
    for (const text of awkward) {
      const row = { event_id: text, host: text, pid: 42, argv: [text, 'x'], uid: Number.NaN, exec_id: undefined as unknown as string, kind: 'exec' };
      const expected = JSON.stringify(columns.map((column) => (row as Record<string, unknown>)[column] ?? null).map((v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
      assert.equal(encodeRow('process_events', row), expected, JSON.stringify(text));
      assert.deepEqual(JSON.parse(encodeRow('process_events', row))[0], text);
    }
  });
});

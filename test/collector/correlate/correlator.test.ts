import assert from 'node:assert/strict';
import type { CollectorAlert } from '../../../collector/alerts/alert';
import { Correlator, type VerdictNote } from '../../../collector/correlate/correlator';
import { Inventory } from '../../../collector/correlate/inventory';
import type { ConnectRecord, LossRecord } from '../../../collector/sensor/host-sensor';
import type { Row, TableName } from '../../../collector/store/rows';
import { parseConfig } from '../../../platform/config';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { silentLog } from '../store/store-fixture';

const T0 = Date.parse('2026-11-25T10:00:00.000Z');

function connect(pid: number, to: { ip?: string; port?: number; path?: string }, local: { ip: string; port: number } | null, overrides: Partial<ConnectRecord> = {}): ConnectRecord {
  return {
    kind: 'connect',
    time: new Date(T0).toISOString(),
    bootNs: String(1_000_000_000 + pid),
    execId: `exec-${pid}`,
    pid,
    ppid: 1,
    parentExecId: 'exec-1',
    comm: 'psql',
    uid: 0,
    gid: 0,
    cgroupId: null,
    agentRunId: 'exec-7',
    agent: 'claude',
    intent: true,
    outcome: true,
    result: 'started',
    errno: null,
    family: to.path ? 'unix' : 'inet',
    transport: to.path ? 'unix-stream' : 'tcp',
    remoteAddress: to.ip ?? null,
    remotePort: to.port ?? null,
    localAddress: local?.ip ?? null,
    localPort: local?.port ?? null,
    unixPath: to.path ?? null,
    socketCookie: String(pid),
    ...overrides,
  };
}

function sessionRecord(sessionId: string, client: { ip: string; port: number }): JournalRecord__Output {
  return {
    gatewayId: 'gw',
    seq: '1',
    prevHash: Buffer.alloc(32),
    hash: Buffer.alloc(32),
    timeUnixNano: String(BigInt(T0) * 1_000_000n),
    body: 'session',
    session: { sessionId, gatewayId: 'gw', resource: 'orders', client, startUnixNano: String(BigInt(T0 + 5) * 1_000_000n) } as JournalRecord__Output['session'],
  };
}

async function setup(yaml = '', confirmGateway?: (pid: number) => boolean | Promise<boolean>) {
  const config = parseConfig(`collector:\n  resources:\n    - name: orders\n      upstream: [{ host: 10.0.0.5, port: 5432 }, { unixPath: /run/pg/.s.PGSQL.5432 }]\n      listener: [{ host: 127.0.0.1, port: 6543 }]\n${yaml}`);
  const inventory = new Inventory(60_000, silentLog);
  await inventory.setConfigured(config.collector.resources);
  const rows: Array<{ table: TableName; row: Row }> = [];
  const alerts: CollectorAlert[] = [];
  const notes: VerdictNote[] = [];
  const correlator = new Correlator(
    inventory,
    { get: () => undefined, lineage: () => [] },
    { host: 'h', config: config.collector.correlate, criticalLabels: config.collector.alerts.criticalLabels, gatewayPids: new Set([99]), confirmGateway },
    { write: (table, row) => rows.push({ table, row }), alert: (_key, alert) => alerts.push(alert) },
    silentLog,
  );
  correlator.verdicts.push((note) => notes.push(note));
  return { correlator, rows, alerts, notes };
}

describe('collector/correlate correlator (verdicts and joins)', () => {
  it('joins a mediated connect with the session that arrives later, by client address and port', async () => {
    const { correlator, notes } = await setup();
    correlator.onSensorRecord(connect(10, { ip: '127.0.0.1', port: 6543 }, { ip: '127.0.0.1', port: 40001 }));
    assert.equal(notes.length, 0, 'waits for its session');
    correlator.onJournalRecord(sessionRecord('S-other', { ip: '127.0.0.1', port: 40002 }));
    assert.equal(notes.length, 0);
    correlator.onJournalRecord(sessionRecord('S-1', { ip: '127.0.0.1', port: 40001 }));
    assert.deepEqual(notes.map((n) => [n.verdict, n.sessionId, n.resource]), [['mediated', 'S-1', 'orders']]);
    // The session known first, the connect second: joined at once.
    correlator.onSensorRecord(connect(11, { ip: '::ffff:127.0.0.1', port: 6543 }, { ip: '::ffff:127.0.0.1', port: 40002 }));
    assert.equal(notes[1]!.sessionId, 'S-other');
  });

  it('flags a mediated connect with no session after the window (audit_gaps row and a mediated-unjoined alert), and writes it', async () => {
    const { correlator, notes, rows, alerts } = await setup('  correlate:\n    joinWindowMs: 1000\n');
    correlator.onSensorRecord(connect(12, { ip: '127.0.0.1', port: 6543 }, { ip: '127.0.0.1', port: 40003 }));
    correlator.expire(Date.now() + 2000);
    assert.deepEqual(notes.map((n) => [n.verdict, n.sessionId]), [['mediated', '']]);
    const gap = rows.find((r) => r.table === 'audit_gaps');
    assert.ok(gap);
    assert.equal(gap.row.source, 'correlation');
    assert.match(String(gap.row.reason), /has no gateway session: no session within 1000 ms/);
    assert.deepEqual(alerts.map((a) => [a.kind, a.rule, a.severity, a.resource, a.destination, a.process?.pid, a.agentRun?.execId]), [
      ['audit_gap', 'mediated-unjoined', 'warning', 'orders', '127.0.0.1:6543', 12, 'exec-7'],
    ]);
    assert.equal(alerts[0]!.eventId, notes[0]!.eventId, 'the alert names the connect event');
    // Stopping writes what still waits, saying why it has no session.
    correlator.onSensorRecord(connect(17, { ip: '127.0.0.1', port: 6543 }, { ip: '127.0.0.1', port: 40005 }));
    correlator.close();
    assert.match(alerts[1]!.summary, /no gateway session matches \(the collector stopped before one arrived\)/);
  });

  it('raises no alert for a mediated connect joined to its session', async () => {
    const { correlator, notes, alerts } = await setup('  correlate:\n    joinWindowMs: 1000\n');
    correlator.onSensorRecord(connect(16, { ip: '127.0.0.1', port: 6543 }, { ip: '127.0.0.1', port: 40004 }));
    correlator.onJournalRecord(sessionRecord('S-4', { ip: '127.0.0.1', port: 40004 }));
    correlator.expire(Date.now() + 2000);
    assert.deepEqual(notes.map((n) => [n.verdict, n.sessionId]), [['mediated', 'S-4']]);
    assert.deepEqual(alerts, []);
  });

  it('bypass for a direct or unix-socket connect to the upstream, never for the gateway itself; other otherwise', async () => {
    const { correlator, notes, alerts } = await setup('  correlate:\n    otherConnects: drop\n');
    correlator.onSensorRecord(connect(13, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 50000 }));
    correlator.onSensorRecord(connect(14, { path: '/run/pg/.s.PGSQL.5432' }, null));
    correlator.onSensorRecord(connect(99, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 50001 }));
    correlator.onSensorRecord(connect(15, { ip: '10.0.0.5', port: 22 }, { ip: '10.0.0.9', port: 50002 }));
    correlator.expire(Date.now() + 60_000); // the gateway's leg waits for a session naming its local port
    assert.deepEqual(notes.map((n) => [n.pid, n.verdict]), [[13, 'bypass'], [14, 'bypass'], [99, 'other']]);
    assert.deepEqual(alerts.map((a) => [a.process?.pid, a.rule, a.destination, a.agentRun?.agent]), [
      [13, 'connect-bypass', '10.0.0.5:5432', 'claude'],
      [14, 'connect-bypass', '/run/pg/.s.PGSQL.5432', 'claude'],
    ]);
    assert.equal(correlator.stats().otherDropped, 1);
  });

  it('a local gateway pid found later (setLocalGatewayPids) is the gateway until replaced; the fixed gateway pid stays', async () => {
    const { correlator, notes, alerts } = await setup();
    correlator.setLocalGatewayPids(new Set([42]));
    correlator.onSensorRecord(connect(42, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 51000 }));
    // The gateway restarted as pid 43: pid 42 is anyone now.
    correlator.setLocalGatewayPids(new Set([43]));
    correlator.onSensorRecord(connect(43, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 51001 }));
    correlator.onSensorRecord(connect(42, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 51002 }));
    correlator.onSensorRecord(connect(99, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 51003 }));
    correlator.expire(Date.now() + 60_000);
    assert.deepEqual(notes.map((n) => [n.pid, n.verdict]).sort(), [[42, 'bypass'], [42, 'other'], [43, 'other'], [99, 'other']]);
    assert.deepEqual(alerts.map((a) => [a.process?.pid, a.rule]), [[42, 'connect-bypass']]);
    assert.equal(correlator.stats().gatewayOwn, 3);
  });

  it('asks confirmGateway before judging a connect to an upstream bypass: a confirmed gateway raises no alert', async () => {
    const asked: number[] = [];
    const { correlator, notes, alerts } = await setup('', (pid) => {
      asked.push(pid);
      return pid === 14 ? false : Promise.resolve(pid === 50);
    });
    correlator.onSensorRecord(connect(50, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 52000 }));
    correlator.onSensorRecord(connect(51, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 52001 }));
    correlator.onSensorRecord(connect(14, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 52002 }));
    correlator.onSensorRecord(connect(99, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 52003 }));
    await new Promise((resolve) => setImmediate(resolve));
    correlator.expire(Date.now() + 60_000);
    assert.deepEqual(asked, [50, 51, 14]);
    assert.deepEqual(notes.map((n) => [n.pid, n.verdict]).sort(), [[14, 'bypass'], [50, 'other'], [51, 'bypass'], [99, 'other']]);
    assert.deepEqual(alerts.map((a) => [a.process?.pid, a.rule]).sort(), [[14, 'connect-bypass'], [51, 'connect-bypass']]);
  });

  it("joins the gateway's own leg to its session by the session's upstream local address and port; unjoined, it is no gap", async () => {
    const { correlator, notes, rows, alerts } = await setup('  correlate:\n    joinWindowMs: 1000\n');
    correlator.onSensorRecord(connect(99, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 50010 }));
    assert.equal(notes.length, 0, 'waits for its session');
    const record = sessionRecord('S-9', { ip: '127.0.0.1', port: 40009 });
    record.session!.upstreamLocal = { ip: '::ffff:10.0.0.9', port: 50010 };
    correlator.onJournalRecord(record);
    assert.deepEqual(notes.map((n) => [n.pid, n.verdict, n.resource, n.sessionId]), [[99, 'other', 'orders', 'S-9']]);
    // A leg no session names (a pooled HTTP upstream connection) is written unjoined, without a gap or alert.
    correlator.onSensorRecord(connect(99, { ip: '10.0.0.5', port: 5432 }, { ip: '10.0.0.9', port: 50011 }, { socketCookie: '991' }));
    correlator.expire(Date.now() + 2000);
    assert.deepEqual(notes.slice(1).map((n) => [n.pid, n.verdict, n.sessionId]), [[99, 'other', '']]);
    assert.equal(rows.filter((r) => r.table === 'audit_gaps').length, 0);
    assert.deepEqual(alerts, []);
    assert.equal(correlator.stats().gatewayJoined, 1);
  });

  it('turns sensor loss into an audit_gaps row and an alert', async () => {
    const { correlator, rows, alerts } = await setup();
    const loss: LossRecord = { kind: 'loss', time: new Date(T0).toISOString(), bootNs: '5', kernelDrops: { connect: 3 }, queueDrops: { exec: 2 } };
    correlator.onSensorRecord(loss);
    const gap = rows.find((r) => r.table === 'audit_gaps')!;
    assert.equal(gap.row.lost, '5');
    assert.equal(gap.row.source, 'sensor');
    assert.equal(alerts[0]!.kind, 'audit_gap');
  });
});

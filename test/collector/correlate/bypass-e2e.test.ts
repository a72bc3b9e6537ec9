import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectorComponent, type CollectorComponent } from '../../../collector/collector-component';
import { openStore, type Store } from '../../../collector/store/connection';
import { qualified } from '../../../collector/store/ddl';
import { LocalGatewayFeed, localGatewayResources } from '../../../collector/gateway-feed/local-feed';
import { migrate } from '../../../collector/store/migration';
import { storeSink } from '../../../collector/store/sink';
import { Spool } from '../../../collector/store/spool';
import { StoreWriter } from '../../../collector/store/writer';
import { parseConfig } from '../../../platform/config';
import type { VerdictNote } from '../../../collector/correlate/correlator';
import { repoRoot, requireRoot } from '../../support/host';
import { startGateway, type GatewayUnderTest } from '../../support/pg-gateway';
import { PG_BIN } from '../../support/postgres';
import { silentLog } from '../store/store-fixture';

interface ConnectRow {
  event_id: string;
  pid: number;
  exec_id: string;
  verdict: string;
  resource: string;
  session_id: string;
  destination_port: number;
  destination_unix_path: string;
}

/**
 * The product end to end, on the real kernel: a real PostgreSQL behind the real gateway (in this
 * process, as in `gapwatch up`), the host sensor, correlation, alerts and the embedded store. An agent
 * run (a process tree whose root is named `claude`) reaches the database four ways; the store must end
 * with the right verdict and agent run for each, the mediated one joined to its gateway session and
 * statements, an alert for each bypass, and the gateway's own upstream connections never a bypass.
 */
describe('correlation end to end (root: kernel eBPF, PostgreSQL, gateway, embedded store)', function () {
  this.timeout(180_000);
  let gw: GatewayUnderTest | null = null;
  let store: Store | null = null;
  let writer: StoreWriter | null = null;
  let collector: CollectorComponent | null = null;
  let feed: LocalGatewayFeed | null = null;
  let dir = '';

  after(async () => {
    await feed?.stop();
    await collector?.stop().catch(() => undefined);
    await writer?.close();
    await store?.close();
    await gw?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('mediated joined to its session, three kinds of bypass alerted, the gateway never a bypass', async () => {
    requireRoot();
    gw = await startGateway();
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-e2e-'));
    chmodSync(dir, 0o755);
    const config = parseConfig(
      `dataDir: ${join(dir, 'data')}\nstore:\n  writer:\n    flushIntervalMs: 100\ncollector:\n  resources:\n    - name: orders\n      labels: { production: "true" }\n  alerts:\n    log: false\n`,
    );
    store = await openStore(config);
    await migrate(store.client, store.dialect);
    const { spool } = Spool.open({ dir: join(config.dataDir, 'spool'), maxBytes: config.store.spool.maxBytes });
    writer = new StoreWriter(storeSink(store), spool, config.store.writer, silentLog);
    writer.start();
    const w = writer;
    feed = new LocalGatewayFeed(gw.journal, localGatewayResources({ gatewayId: gw.config.gateway.id, postgres: gw.config.gateway.postgres, postgresListener: { host: '127.0.0.1', port: gw.port }, auditListener: null }), silentLog);
    const feeds = [feed];
    collector = collectorComponent({ config, log: silentLog, writer: () => w, feeds: () => feeds, writeGatewayRecords: true, gatewayPids: new Set([process.pid]) });
    await collector.start();
    feed.start();
    const notes: VerdictNote[] = [];
    collector.correlator!.verdicts.push((note) => notes.push(note));

    // The agent run: `claude` (a symlink to sh) running a script that reaches the database four ways.
    const pg = gw.pg;
    const direct = join(dir, 'direct.js');
    writeFileSync(
      direct,
      `const { Client } = require(${JSON.stringify(join(repoRoot, 'node_modules', 'pg'))});\n` +
        `const c = new Client({ host: '127.0.0.1', port: ${pg.port}, user: process.env.UP_USER, password: process.env.UP_PASSWORD, database: '${pg.database}' });\n` +
        `c.connect().then(() => c.query("SELECT 'node-direct'")).then(() => c.end()).catch((e) => { console.error(e.message); process.exit(1); });\n`,
    );
    const script = join(dir, 'agent-task.sh');
    writeFileSync(
      script,
      [
        'set -e',
        `PGPASSWORD="$GW_TOKEN" ${PG_BIN}/psql -X -q "host=127.0.0.1 port=${gw.port} dbname=${gw.resource} user=${gw.login}" -c "SELECT 'through-the-gateway'"`,
        `PGPASSWORD="$UP_PASSWORD" ${PG_BIN}/psql -X -q "host=127.0.0.1 port=${pg.port} dbname=${pg.database} user=${pg.user}" -c "SELECT 'psql-direct'"`,
        `"${process.execPath}" ${direct}`,
        `${PG_BIN}/psql -X -q -h ${pg.socketDir} -p ${pg.port} -U postgres -d postgres -c "SELECT 'unix-socket'"`,
        '',
      ].join('\n'),
    );
    const agent = join(dir, 'claude');
    symlinkSync('/bin/sh', agent);
    const run = spawn(agent, [script], {
      env: { PATH: process.env.PATH, GW_TOKEN: gw.token, UP_USER: pg.user, UP_PASSWORD: pg.password },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    run.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => run.on('close', resolve));
    assert.equal(code, 0, `the agent task failed: ${stderr}`);

    // The agent run is the exec of the `claude` process; only records of this run (and this process, the gateway) count.
    const runId = (): string | undefined => notes.find((n) => n.agentRun !== '' && collector!.sensor!.table.get(n.agentRun)?.pid === run.pid)?.agentRun;
    const deadline = Date.now() + 20_000;
    for (;;) {
      const id = runId();
      const mine = notes.filter((n) => n.agentRun === id);
      if (id && mine.filter((n) => n.verdict === 'bypass').length >= 3 && mine.some((n) => n.verdict === 'mediated' && n.sessionId !== '')) break;
      if (Date.now() > deadline) assert.fail(`verdicts of the run did not arrive: ${JSON.stringify(mine)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const agentRun = runId()!;
    await collector.stop();
    collector = null;
    await w.flush();

    const query = async <T>(sql: string): Promise<T[]> => (await store!.client.query({ query: sql, format: 'JSONEachRow' })).json<T>();
    const t = (name: Parameters<typeof qualified>[1]): string => qualified(store!.dialect, name);
    const connects = await query<ConnectRow>(
      `SELECT event_id, pid, exec_id, toString(verdict) AS verdict, resource, session_id, destination_port, destination_unix_path FROM ${t('connect_events')} FINAL WHERE agent_run = '${agentRun}' AND resource = 'orders'`,
    );
    const comm = async (execId: string): Promise<string> =>
      (await query<{ comm: string }>(`SELECT comm FROM ${t('process_events')} FINAL WHERE exec_id = '${execId}' AND kind = 'exec' ORDER BY time DESC LIMIT 1`))[0]?.comm ?? '';

    const mediated = connects.filter((c) => c.verdict === 'mediated');
    assert.equal(mediated.length, 1, JSON.stringify(connects));
    assert.equal(mediated[0]!.destination_port, gw.port);
    assert.equal(await comm(mediated[0]!.exec_id), 'psql');
    const sessions = await query<{ identity_subject: string; resource: string }>(`SELECT identity_subject, resource FROM ${t('gateway_sessions')} FINAL WHERE session_id = '${mediated[0]!.session_id}'`);
    assert.deepEqual(sessions, [{ identity_subject: `agent:${gw.login}`, resource: 'orders' }]);
    const statements = await query<{ statement_text: string }>(`SELECT statement_text FROM ${t('gateway_session_events')} FINAL WHERE session_id = '${mediated[0]!.session_id}' AND kind = 'statement'`);
    assert.ok(statements.some((s) => s.statement_text.includes('through-the-gateway')), JSON.stringify(statements));

    const bypasses = connects.filter((c) => c.verdict === 'bypass');
    const tcp = bypasses.filter((c) => c.destination_port === pg.port);
    const byComm = await Promise.all(tcp.map((c) => comm(c.exec_id)));
    assert.ok(byComm.includes('psql'), `psql straight to the upstream: ${JSON.stringify(byComm)}`);
    assert.ok(byComm.includes('node'), `node pg straight to the upstream: ${JSON.stringify(byComm)}`);
    assert.ok(
      bypasses.some((c) => c.destination_unix_path === `${pg.socketDir}/.s.PGSQL.${pg.port}`),
      `the upstream's unix socket: ${JSON.stringify(bypasses)}`,
    );

    const alerts = await query<{ event_id: string; severity: string; kind: string }>(
      `SELECT event_id, toString(severity) AS severity, toString(kind) AS kind FROM ${t('alerts')} FINAL WHERE agent_run = '${agentRun}' AND kind = 'bypass'`,
    );
    for (const bypass of bypasses) {
      const alert = alerts.find((a) => a.event_id === bypass.event_id);
      assert.ok(alert, `an alert for bypass ${JSON.stringify(bypass)}`);
      assert.equal(alert.severity, 'critical', 'the resource is tagged production');
    }

    const gatewayOwn = await query<{ verdict: string; session_id: string }>(`SELECT toString(verdict) AS verdict, session_id FROM ${t('connect_events')} FINAL WHERE pid = ${process.pid} AND resource = 'orders'`);
    assert.ok(gatewayOwn.length >= 1, "the gateway's own upstream connection is recorded");
    assert.ok(gatewayOwn.every((c) => c.verdict !== 'bypass'), JSON.stringify(gatewayOwn));
    assert.ok(gatewayOwn.some((c) => c.session_id === mediated[0]!.session_id), `the gateway's leg of the mediated session is joined to it: ${JSON.stringify(gatewayOwn)}`);
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAlertWatchClient } from '../../../collector/alerts/watch-client';
import { collectorComponent, type CollectorComponent } from '../../../collector/collector-component';
import type { VerdictNote } from '../../../collector/correlate/correlator';
import { LocalGatewayFeed, localGatewayResources } from '../../../collector/gateway-feed/local-feed';
import { openStore, type Store } from '../../../collector/store/connection';
import { qualified } from '../../../collector/store/ddl';
import { migrate } from '../../../collector/store/migration';
import { storeSink } from '../../../collector/store/sink';
import { Spool } from '../../../collector/store/spool';
import { StoreWriter } from '../../../collector/store/writer';
import { createDevCertificates } from '../../../gateway/audit/dev-certificates';
import { parseConfig } from '../../../platform/config';
import type { AlertNotice__Output } from '../../../proto/generated/gapwatch/v1/AlertNotice';
import type { AlertWatchClient } from '../../../proto/generated/gapwatch/v1/AlertWatch';
import { requireRoot } from '../../support/host';
import { startHttpGateway, type HttpGatewayUnderTest } from '../../support/http-gateway';
import { startHttpUpstream, type HttpUpstream } from '../../support/http-upstream';
import { startSshGateway, type SshGatewayUnderTest } from '../../support/ssh-gateway';
import { silentLog } from '../store/store-fixture';

interface ConnectRow {
  event_id: string;
  exec_id: string;
  verdict: string;
  resource: string;
  session_id: string;
  destination_port: number;
}

/**
 * Issue 8's join, end to end on the real kernel: a real OpenSSH server behind the SSH gateway and a
 * real HTTP server behind the HTTP gateway (each gateway with its own journal, followed as the
 * collector follows any gateway), the host sensor, correlation, alerts (to the store and to a gRPC
 * WatchAlerts watcher) and the embedded store. An agent run (a process tree whose root is `claude`)
 * uses ssh and curl through the gateways (mediated, joined by client address and port to the SSH and
 * HTTP sessions) and ssh, curl and node's fetch straight to the upstreams (bypasses, alerted).
 */
describe('SSH and HTTP correlation end to end (root: kernel eBPF, sshd, HTTP upstream, gateways, embedded store)', function () {
  this.timeout(180_000);
  let ssh: SshGatewayUnderTest | null = null;
  let upstream: HttpUpstream | null = null;
  let http: HttpGatewayUnderTest | null = null;
  let store: Store | null = null;
  let writer: StoreWriter | null = null;
  let collector: CollectorComponent | null = null;
  let watcher: AlertWatchClient | null = null;
  const feeds: LocalGatewayFeed[] = [];
  let dir = '';

  after(async () => {
    watcher?.close();
    for (const feed of feeds) await feed.stop();
    await collector?.stop().catch(() => undefined);
    await writer?.close();
    await store?.close();
    await ssh?.stop();
    await http?.stop();
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ssh and curl through the gateways are mediated and joined; ssh, curl and fetch around them are bypasses with alerts', async () => {
    requireRoot();
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-e2e-sshhttp-'));
    chmodSync(dir, 0o755);
    ssh = await startSshGateway();
    upstream = await startHttpUpstream();
    http = await startHttpGateway({ resources: [{ name: 'api', pathPrefix: '/api/', tags: ['production'], upstream: { url: upstream.url } }] });
    const certs = createDevCertificates({ dir: join(dir, 'certs') });
    const config = parseConfig(
      `dataDir: ${join(dir, 'data')}\nstore:\n  writer:\n    flushIntervalMs: 100\ncollector:\n  alerts:\n    log: false\n    watch:\n      listen: { host: 127.0.0.1, port: 0 }\n` +
        `      tls: { caFile: ${certs.caCert}, certFile: ${certs.collectorCert}, keyFile: ${certs.collectorKey} }\n`,
    );
    store = await openStore(config);
    await migrate(store.client, store.dialect);
    const { spool } = Spool.open({ dir: join(config.dataDir, 'spool'), maxBytes: config.store.spool.maxBytes });
    writer = new StoreWriter(storeSink(store), spool, config.store.writer, silentLog);
    writer.start();
    const w = writer;
    const sshGw = ssh;
    const httpGw = http;
    feeds.push(
      new LocalGatewayFeed(sshGw.journal, localGatewayResources({ gatewayId: sshGw.config.gateway.id, postgres: sshGw.config.gateway.postgres, postgresListener: null, ssh: sshGw.config.gateway.ssh, sshListener: sshGw.gateway.address(), auditListener: null }), silentLog),
      new LocalGatewayFeed(httpGw.journal, localGatewayResources({ gatewayId: httpGw.config.gateway.id, postgres: httpGw.config.gateway.postgres, postgresListener: null, http: httpGw.config.gateway.http, httpListener: httpGw.gateway.address(), auditListener: null }), silentLog),
    );
    collector = collectorComponent({ config, log: silentLog, writer: () => w, feeds: () => feeds, writeGatewayRecords: true, gatewayPids: new Set([process.pid]) });
    await collector.start();
    for (const feed of feeds) feed.start();
    const notes: VerdictNote[] = [];
    collector.correlator!.verdicts.push((note) => notes.push(note));

    // A security console watching bypasses of these two resources over gRPC.
    const notices: AlertNotice__Output[] = [];
    watcher = createAlertWatchClient({ address: `127.0.0.1:${collector.watch!.port}`, caFile: certs.caCert, certFile: certs.watcherCert, keyFile: certs.watcherKey });
    const stream = watcher.watchAlerts({ resources: ['web1', 'api'], kinds: ['ALERT_KIND_BYPASS'] });
    stream.on('data', (notice: AlertNotice__Output) => notices.push(notice));
    stream.on('error', () => undefined);
    const watchDeadline = Date.now() + 10_000;
    while (collector.watch!.stats().watchers === 0) {
      if (Date.now() > watchDeadline) assert.fail('the watcher did not connect');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    const fetchScript = join(dir, 'fetch-direct.js');
    writeFileSync(fetchScript, `fetch(${JSON.stringify(`${upstream.url}/fetch-direct`)}).then((r) => r.text()).then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); });\n`);
    const quote = (args: string[]): string => args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    const script = join(dir, 'agent-task.sh');
    writeFileSync(
      script,
      [
        'set -e',
        `ssh ${quote(sshGw.gatewayOptions)} ${sshGw.gatewayTarget} 'echo through-the-gateway' >/dev/null`,
        `ssh ${quote(sshGw.directOptions)} ${sshGw.directTarget} 'echo ssh-direct' >/dev/null`,
        `curl -sf -o /dev/null -H "Authorization: Bearer $GW_TOKEN" ${httpGw.url}/api/through-the-gateway`,
        `curl -sf -o /dev/null ${upstream.url}/curl-direct`,
        `"${process.execPath}" ${fetchScript}`,
        '',
      ].join('\n'),
    );
    const agent = join(dir, 'claude');
    symlinkSync('/bin/sh', agent);
    const run = spawn(agent, [script], { env: { PATH: process.env.PATH, GW_TOKEN: httpGw.token }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    run.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => run.on('close', resolve));
    assert.equal(code, 0, `the agent task failed: ${stderr}`);

    const runId = (): string | undefined => notes.find((n) => n.agentRun !== '' && collector!.sensor!.table.get(n.agentRun)?.pid === run.pid)?.agentRun;
    const deadline = Date.now() + 20_000;
    for (;;) {
      const id = runId();
      const mine = notes.filter((n) => n.agentRun === id && (n.resource === 'web1' || n.resource === 'api'));
      const joined = mine.filter((n) => n.verdict === 'mediated' && n.sessionId !== '');
      if (id && mine.filter((n) => n.verdict === 'bypass').length >= 3 && joined.some((n) => n.resource === 'web1') && joined.some((n) => n.resource === 'api')) break;
      if (Date.now() > deadline) assert.fail(`verdicts of the run did not arrive: ${JSON.stringify(mine)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const agentRun = runId()!;
    const alertDeadline = Date.now() + 10_000;
    while (notices.filter((n) => n.alert!.agentRun === agentRun && n.alert!.rule === 'connect-bypass').length < 3) {
      if (Date.now() > alertDeadline) assert.fail(`the watcher did not get the bypass alerts: ${JSON.stringify(notices.map((n) => n.alert!.summary))}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await collector.stop();
    collector = null;
    await w.flush();

    const query = async <T>(sql: string): Promise<T[]> => (await store!.client.query({ query: sql, format: 'JSONEachRow' })).json<T>();
    const t = (name: Parameters<typeof qualified>[1]): string => qualified(store!.dialect, name);
    const connects = await query<ConnectRow>(
      `SELECT event_id, exec_id, toString(verdict) AS verdict, resource, session_id, destination_port FROM ${t('connect_events')} FINAL WHERE agent_run = '${agentRun}' AND resource IN ('web1', 'api')`,
    );
    const comm = async (execId: string): Promise<string> =>
      (await query<{ comm: string }>(`SELECT comm FROM ${t('process_events')} FINAL WHERE exec_id = '${execId}' AND kind = 'exec' ORDER BY time DESC LIMIT 1`))[0]?.comm ?? '';
    const session = async (id: string): Promise<{ protocol: string; resource: string; identity_subject: string } | undefined> =>
      (await query<{ protocol: string; resource: string; identity_subject: string }>(`SELECT toString(protocol) AS protocol, resource, identity_subject FROM ${t('gateway_sessions')} FINAL WHERE session_id = '${id}'`))[0];

    const mediated = connects.filter((c) => c.verdict === 'mediated');
    const sshMediated = mediated.filter((c) => c.resource === 'web1');
    assert.equal(sshMediated.length, 1, JSON.stringify(connects));
    assert.equal(sshMediated[0]!.destination_port, sshGw.port);
    assert.equal(await comm(sshMediated[0]!.exec_id), 'ssh');
    assert.deepEqual(await session(sshMediated[0]!.session_id), { protocol: 'ssh', resource: 'web1', identity_subject: `agent:${sshGw.login}` });
    const httpMediated = mediated.filter((c) => c.resource === 'api');
    assert.equal(httpMediated.length, 1, JSON.stringify(connects));
    assert.equal(httpMediated[0]!.destination_port, httpGw.port);
    assert.equal(await comm(httpMediated[0]!.exec_id), 'curl');
    assert.deepEqual(await session(httpMediated[0]!.session_id), { protocol: 'http', resource: 'api', identity_subject: `agent:${httpGw.login}` });

    const bypasses = connects.filter((c) => c.verdict === 'bypass');
    const sshBypass = bypasses.filter((c) => c.resource === 'web1' && c.destination_port === sshGw.sshd.port);
    assert.deepEqual(await Promise.all(sshBypass.map((c) => comm(c.exec_id))), ['ssh']);
    const httpBypass = bypasses.filter((c) => c.resource === 'api' && c.destination_port === upstream!.port);
    assert.deepEqual((await Promise.all(httpBypass.map((c) => comm(c.exec_id)))).sort(), ['curl', 'node']);

    const alerts = await query<{ event_id: string; severity: string; rule: string; comm: string; agent: string; destination: string }>(
      `SELECT event_id, toString(severity) AS severity, rule, comm, agent, destination FROM ${t('alerts')} FINAL WHERE agent_run = '${agentRun}' AND kind = 'bypass'`,
    );
    for (const bypass of bypasses) {
      const alert = alerts.find((a) => a.event_id === bypass.event_id);
      assert.ok(alert, `an alert for bypass ${JSON.stringify(bypass)}`);
      assert.equal(alert.rule, 'connect-bypass');
      assert.equal(alert.agent, 'claude');
      assert.equal(alert.severity, bypass.resource === 'api' ? 'critical' : 'warning', 'api is tagged production');
      assert.ok(notices.some((n) => n.alert!.eventId === bypass.event_id), 'the gRPC watcher got it too');
    }
    assert.ok(notices.every((n) => ['web1', 'api'].includes(n.alert!.resource) && n.alert!.kind === 'ALERT_KIND_BYPASS'), 'the watch filter held');

    // Exec detections: the clients whose argv aims at an upstream, and not those aimed at the gateways.
    const execAlerts = await query<{ resource: string; destination: string; comm: string }>(
      `SELECT resource, destination, comm FROM ${t('alerts')} FINAL WHERE agent_run = '${agentRun}' AND rule = 'exec-client-to-upstream' ORDER BY resource`,
    );
    assert.deepEqual(execAlerts, [
      { resource: 'api', destination: `127.0.0.1:${upstream.port}`, comm: 'curl' },
      { resource: 'web1', destination: `127.0.0.1:${sshGw.sshd.port}`, comm: 'ssh' },
    ]);

    const gatewayOwn = await query<{ verdict: string; resource: string; session_id: string }>(
      `SELECT toString(verdict) AS verdict, resource, session_id FROM ${t('connect_events')} FINAL WHERE pid = ${process.pid} AND resource IN ('web1', 'api')`,
    );
    assert.ok(gatewayOwn.length >= 2, "the gateways' own upstream connections are recorded");
    assert.ok(gatewayOwn.every((c) => c.verdict !== 'bypass'), JSON.stringify(gatewayOwn));
    // The SSH gateway holds one upstream connection per session and journals its local port: joined.
    assert.ok(gatewayOwn.some((c) => c.resource === 'web1' && c.session_id === sshMediated[0]!.session_id), `the SSH gateway's leg is joined to its session: ${JSON.stringify(gatewayOwn)}`);
  });
});

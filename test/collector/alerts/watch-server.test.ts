import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { CollectorAlert } from '../../../collector/alerts/alert';
import { createAlertWatchClient } from '../../../collector/alerts/watch-client';
import { alertWatchConfigSchema } from '../../../collector/alerts/watch-config-schema';
import { AlertWatchServer } from '../../../collector/alerts/watch-server';
import { createDevCertificates, type DevCertificateFiles } from '../../../gateway/audit/dev-certificates';
import { parseConfig } from '../../../platform/config';
import { loadGapwatchProto } from '../../../proto/load';
import type { AlertNotice__Output } from '../../../proto/generated/gapwatch/v1/AlertNotice';
import type { AlertWatchClient } from '../../../proto/generated/gapwatch/v1/AlertWatch';
import type { WatchAlertsRequest } from '../../../proto/generated/gapwatch/v1/WatchAlertsRequest';
import { silentLog } from '../store/store-fixture';

let serial = 0;

function alert(resource: string, severity: CollectorAlert['severity'], summary = `alert ${serial}`): CollectorAlert {
  serial++;
  return {
    alertId: `al-${serial}`,
    kind: 'bypass',
    rule: 'connect-bypass',
    severity,
    host: 'host-a',
    timeUnixNano: '1764064800000000000',
    kernelBootNs: '5',
    summary,
    process: { execId: 'host-a:b1:42:9', pid: 42, comm: 'psql', filename: '/usr/bin/psql' },
    lineage: [{ execId: 'host-a:b1:40:7', pid: 40, comm: 'claude', filename: '/usr/bin/claude' }],
    agentRun: { execId: 'host-a:b1:40:7', agent: 'claude' },
    resource,
    destination: '10.0.0.5:5432',
    eventId: `ce-${serial}`,
    count: 3,
    lastTimeUnixNano: '1764064801000000000',
  };
}

function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

describe('collector/alerts gRPC WatchAlerts (mutual TLS)', function () {
  this.timeout(60_000);
  let dir: string;
  let certs: DevCertificateFiles;
  let server: AlertWatchServer;
  let client: AlertWatchClient;
  let address: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-watch-'));
    certs = createDevCertificates({ dir });
    server = new AlertWatchServer(
      alertWatchConfigSchema.parse({ listen: { host: '127.0.0.1', port: 0 }, tls: { caFile: certs.caCert, certFile: certs.collectorCert, keyFile: certs.collectorKey }, maxQueue: 4 }),
      silentLog,
    );
    await server.start();
    address = `127.0.0.1:${server.port}`;
    client = createAlertWatchClient({ address, caFile: certs.caCert, certFile: certs.watcherCert, keyFile: certs.watcherKey });
  });

  after(async () => {
    client?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens a watch and waits until the server has it, so alerts delivered next reach it. */
  async function watch(request: WatchAlertsRequest, notices: AlertNotice__Output[]): Promise<grpc.ClientReadableStream<AlertNotice__Output>> {
    const before = server.stats().watchers;
    const stream = client.watchAlerts(request);
    stream.on('data', (notice: AlertNotice__Output) => notices.push(notice));
    stream.on('error', () => undefined);
    await waitFor(() => server.stats().watchers > before, 'the watcher to be connected');
    return stream;
  }

  it('streams the alerts that match the filter, with every field the sinks have', async () => {
    const all: AlertNotice__Output[] = [];
    const filtered: AlertNotice__Output[] = [];
    const a = await watch({}, all);
    const b = await watch({ minSeverity: 'SEVERITY_CRITICAL', resources: ['orders'] }, filtered);
    server.deliver(alert('orders', 'critical', 'wanted'));
    server.deliver(alert('orders', 'warning', 'too mild'));
    server.deliver(alert('billing', 'critical', 'other resource'));
    await waitFor(() => all.length === 3, 'three notices for the unfiltered watcher');
    assert.deepEqual(filtered.map((n) => n.alert!.summary), ['wanted']);
    const got = filtered[0]!;
    assert.equal(got.missed, '0');
    assert.equal(got.alert!.kind, 'ALERT_KIND_BYPASS');
    assert.equal(got.alert!.severity, 'SEVERITY_CRITICAL');
    assert.equal(got.alert!.rule, 'connect-bypass');
    assert.equal(got.alert!.count, '3');
    assert.equal(got.alert!.destination, '10.0.0.5:5432');
    assert.equal(got.alert!.agent, 'claude');
    assert.deepEqual(got.alert!.process, { execId: 'host-a:b1:42:9', pid: 42, comm: 'psql', filename: '/usr/bin/psql' });
    assert.deepEqual(got.alert!.lineage.map((p) => p.comm), ['claude']);
    a.cancel();
    b.cancel();
    await waitFor(() => server.stats().watchers === 0, 'cancelled watchers to be gone');
  });

  it('refuses a watcher without a client certificate of the configured CA', async () => {
    const Watch = loadGapwatchProto().gapwatch.v1.AlertWatch;
    const refusedBy = (credentials: grpc.ChannelCredentials): Promise<grpc.ServiceError> =>
      new Promise((resolve, reject) => {
        const c = new Watch(address, credentials) as AlertWatchClient;
        const stream = c.watchAlerts({}, { deadline: Date.now() + 10_000 });
        stream.on('data', () => reject(new Error('a refused watcher received an alert')));
        // A connection that got through would be registered and sent this; a refused one gets nothing.
        const probe = setInterval(() => server.deliver(alert('billing', 'info', 'probe')), 50);
        stream.on('error', (err: grpc.ServiceError) => {
          clearInterval(probe);
          c.close();
          resolve(err);
        });
      });
    const other = createDevCertificates({ dir: join(dir, 'other') });
    const ca = readFileSync(certs.caCert);
    assert.equal((await refusedBy(grpc.credentials.createSsl(ca))).code, grpc.status.UNAVAILABLE, 'TLS without a client certificate');
    assert.equal((await refusedBy(grpc.credentials.createInsecure())).code, grpc.status.UNAVAILABLE, 'no TLS');
    const foreign = grpc.credentials.createSsl(ca, readFileSync(other.watcherKey), readFileSync(other.watcherCert));
    assert.equal((await refusedBy(foreign)).code, grpc.status.UNAVAILABLE, 'a certificate of another CA');
    assert.equal(server.stats().watchers, 0);
  });

  it('bounds what it holds for a watcher that stops reading, and tells it how many it missed', async () => {
    const notices: AlertNotice__Output[] = [];
    const stream = await watch({}, notices);
    stream.pause();
    const count = 300;
    const big = 'x'.repeat(32 * 1024);
    const droppedBefore = server.stats().dropped;
    for (let i = 0; i < count; i++) server.deliver(alert('orders', 'critical', `${i} ${big}`));
    // 300 × 32 KiB cannot fit in the HTTP/2 windows: the server stops writing and drops from its bounded queue.
    await waitFor(() => server.stats().dropped > droppedBefore, 'the slow watcher to lose queued alerts');
    stream.resume();
    const received = (): number => notices.length + notices.reduce((sum, n) => sum + Number(n.missed), 0);
    await waitFor(() => received() === count, 'every alert delivered or counted as missed', 40_000).catch((err: Error) => assert.fail(`${err.message}: ${notices.length} notices, ${received()} accounted for of ${count}, stats ${JSON.stringify(server.stats())}`));
    const dropped = server.stats().dropped - droppedBefore;
    assert.equal(notices.reduce((sum, n) => sum + Number(n.missed), 0), dropped);
    assert.ok(notices.length < count, 'some were dropped');
    const order = notices.map((n) => Number(n.alert!.summary.split(' ')[0]));
    assert.deepEqual(order, [...order].sort((x, y) => x - y), 'in order');
    assert.equal(order[order.length - 1], count - 1, 'the newest alert is never the one dropped');
    stream.cancel();
  });

  it('on close, hands each watcher what is queued for it and ends its stream', async () => {
    const notices: AlertNotice__Output[] = [];
    const stream = await watch({}, notices);
    const ended = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('error', () => resolve());
    });
    for (let i = 0; i < 3; i++) server.deliver(alert('orders', 'warning', `last ${i}`));
    await server.close();
    await ended;
    assert.deepEqual(notices.map((n) => n.alert!.summary), ['last 0', 'last 1', 'last 2']);
  });

  it('is off without TLS files, and refuses half a TLS configuration', async () => {
    const off = new AlertWatchServer(alertWatchConfigSchema.parse({}), silentLog);
    assert.equal(AlertWatchServer.enabled(alertWatchConfigSchema.parse({})), false);
    assert.match(await off.start(), /off/);
    assert.equal(off.port, 0);
    await off.close();
    assert.throws(() => parseConfig('collector:\n  alerts:\n    watch:\n      tls: { caFile: /x/ca.crt }\n'), /go together/);
    assert.equal(parseConfig('').collector.alerts.watch.listen.port, 7444);
  });

  it('names the setting when a TLS file cannot be read', async () => {
    const broken = new AlertWatchServer(alertWatchConfigSchema.parse({ tls: { caFile: join(dir, 'missing.crt'), certFile: certs.collectorCert, keyFile: certs.collectorKey } }), silentLog);
    await assert.rejects(broken.start(), (err: Error & { code?: string }) => err.code === 'COLLECTOR_ERR_ALERT_WATCH_TLS_FILE' && /collector\.alerts\.watch\.tls\.caFile/.test(err.message));
  });
});

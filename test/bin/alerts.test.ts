import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CollectorAlert } from '../../collector/alerts/alert';
import { alertWatchConfigSchema } from '../../collector/alerts/watch-config-schema';
import { AlertWatchServer } from '../../collector/alerts/watch-server';
import { createDevCertificates } from '../../gateway/audit/dev-certificates';
import { silentLog } from '../collector/store/store-fixture';
import { cliPath, runCli } from '../support/host';

function alert(severity: CollectorAlert['severity'], summary: string): CollectorAlert {
  return {
    alertId: summary,
    kind: 'bypass',
    rule: 'connect-bypass',
    severity,
    host: 'host-a',
    timeUnixNano: '1764064800000000000',
    kernelBootNs: null,
    summary,
    process: { execId: 'e42', pid: 42, comm: 'psql', filename: '/usr/bin/psql' },
    lineage: [],
    agentRun: { execId: 'e7', agent: 'claude' },
    resource: 'orders',
    destination: '10.0.0.5:5432',
    eventId: `ev-${summary}`,
    count: 1,
    lastTimeUnixNano: '1764064800000000000',
  };
}

describe('gapwatch alerts (WatchAlerts client)', function () {
  this.timeout(60_000);
  let dir = '';
  let server: AlertWatchServer | null = null;

  after(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('prints the alerts that match as JSON lines, and is refused with a certificate of another CA', async () => {
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-alerts-cli-'));
    const certs = createDevCertificates({ dir: join(dir, 'certs') });
    server = new AlertWatchServer(alertWatchConfigSchema.parse({ listen: { port: 0 }, tls: { caFile: certs.caCert, certFile: certs.collectorCert, keyFile: certs.collectorKey } }), silentLog);
    await server.start();
    const address = `127.0.0.1:${server.port}`;
    const child = spawn(process.execPath, [cliPath, 'alerts', '--address', address, '--ca', certs.caCert, '--cert', certs.watcherCert, '--key', certs.watcherKey, '--min-severity', 'critical', '--count', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const deadline = Date.now() + 20_000;
    while (server.stats().watchers === 0) {
      if (Date.now() > deadline) assert.fail(`the CLI did not connect: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    server.deliver(alert('warning', 'too-mild'));
    server.deliver(alert('critical', 'wanted'));
    assert.equal(await exited, 0, stderr);
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as { alert: { summary: string; severity: string; rule: string; agent: string }; missed: number });
    assert.deepEqual(lines.map((l) => [l.alert.summary, l.alert.severity, l.alert.rule, l.alert.agent, l.missed]), [['wanted', 'SEVERITY_CRITICAL', 'connect-bypass', 'claude', 0]]);

    const other = createDevCertificates({ dir: join(dir, 'other') });
    const refused = await runCli(['alerts', '--address', address, '--ca', certs.caCert, '--cert', other.watcherCert, '--key', other.watcherKey]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot watch alerts at 127\.0\.0\.1:\d+: .*client certificate/s);
    assert.match(refused.stderr, /COLLECTOR_ERR_ALERT_WATCH_REFUSED/);

    const badKind = await runCli(['alerts', '--address', address, '--kind', 'nonsense']);
    assert.notEqual(badKind.code, 0);
    assert.match(badKind.stderr, /--kind .*'nonsense' is invalid\. one of bypass, secret_in_argv, audit_gap, journal_tampered/);
  });
});

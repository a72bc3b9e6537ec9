import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { openStore } from '../../../collector/store/connection';
import { migrate } from '../../../collector/store/migration';
import { encodeRows, TABLE_COLUMNS, type Row, type TableName } from '../../../collector/store/rows';
import { storeSink } from '../../../collector/store/sink';
import { dateTime64 } from '../../../collector/store/time';
import { webComponent, type WebComponent } from '../../../collector/web/web-component';
import { parseConfig, type Config } from '../../../platform/config';

/**
 * A real embedded store seeded with a small, known world, and the collector's web component serving it
 * from this process (which therefore holds the embedded engine, as `gapwatch up` does):
 *
 * - agent run RUN (claude on host-a): psql bypasses orders-db BYPASSES times, node goes through the
 *   gateway (postgres session PG_SESSION with statements and a denied DROP);
 * - agent run RUN_B (codex on host-b): curl reaches billing-api through the gateway (HTTP_SESSION);
 * - an SSH session SSH_SESSION with a shell recording (asciicast v2) in the gateway's recordings dir;
 * - ALERTS bypass alerts (more than one page of the alerts view), a critical one first;
 * - an audit gap on host-a next to the bypasses.
 */
export const RUN = 'host-a:boot-a:100:1000';
export const RUN_B = 'host-b:boot-b:200:2000';
export const PSQL = 'host-a:boot-a:101:1010';
export const NODE = 'host-a:boot-a:102:1030';
export const CURL = 'host-b:boot-b:201:2010';
export const PG_SESSION = '01JDWEBPG00000000000000001';
export const HTTP_SESSION = '01JDWEBHTTP000000000000001';
export const SSH_SESSION = '01JDWEBSSH0000000000000001';
export const BYPASSES = 30;
export const MEDIATED = 10;
export const ALERTS = 60;
export const FIRST_ALERT = 'alert-web-000';

const BASE_MS = Date.now() - 2 * 3600_000;

function at(seconds: number): string {
  return dateTime64(BigInt(Math.round(BASE_MS + seconds * 1000)) * 1_000_000n);
}

function exec(host: string, seconds: number, execId: string, agentRun: string, parent: string, comm: string, filename: string, argv: string[]): Row {
  const pid = Number(execId.split(':')[2]);
  return { event_id: `pe-${execId}`, host, time: at(seconds), kind: 'exec', exec_id: execId, pid, tgid: pid, agent_run: agentRun, parent_exec_id: parent, uid: 1000, gid: 1000, comm, filename, argv };
}

function connect(n: number, host: string, seconds: number, execId: string, agentRun: string, verdict: string, resource: string, sessionId = ''): Row {
  const pid = Number(execId.split(':')[2]);
  return {
    event_id: `ce-${n}`,
    host,
    time: at(seconds),
    exec_id: execId,
    pid,
    tgid: pid,
    agent_run: agentRun,
    transport: 'tcp',
    destination_ip: verdict === 'bypass' ? '10.0.0.5' : '127.0.0.1',
    destination_port: verdict === 'bypass' ? 5432 : 6432,
    local_ip: '10.0.0.9',
    local_port: 40000 + n,
    result: 0,
    verdict,
    resource,
    session_id: sessionId,
  };
}

function session(id: string, resource: string, protocol: string, seconds: number, clientPort: number): Row {
  return {
    session_id: id,
    gateway_id: 'gw-main',
    identity_subject: `agent-${protocol}`,
    identity_method: 'token',
    identity_claims: { agent: protocol },
    resource,
    protocol,
    client_ip: '127.0.0.1',
    client_port: clientPort,
    listener_ip: '127.0.0.1',
    listener_port: 6432,
    upstream_local_ip: '127.0.0.1',
    upstream_local_port: 50000 + clientPort,
    upstream_ip: '10.0.0.5',
    upstream_port: 5432,
    start_time: at(seconds),
    end_time: at(seconds + 60),
    outcome: 'closed',
    target_user: 'app',
  };
}

function sessionEvent(sessionId: string, seq: number, seconds: number, fields: Row): Row {
  return { session_id: sessionId, event_seq: seq, time: at(seconds), ...fields };
}

export function seedRows(): Record<TableName, Row[]> {
  const process_events = [
    exec('host-a', 0, RUN, RUN, '', 'claude', '/usr/bin/claude', ['claude', '--task', 'migrate orders']),
    exec('host-a', 10, PSQL, RUN, RUN, 'psql', '/usr/bin/psql', ['psql', '-h', '10.0.0.5', 'orders']),
    exec('host-a', 20, NODE, RUN, RUN, 'node', '/usr/bin/node', ['node', 'migrate.js']),
    exec('host-b', 0, RUN_B, RUN_B, '', 'codex', '/usr/bin/codex', ['codex', 'exec']),
    exec('host-b', 30, CURL, RUN_B, RUN_B, 'curl', '/usr/bin/curl', ['curl', 'http://127.0.0.1:8080/invoices']),
  ];
  const connect_events: Row[] = [];
  for (let i = 0; i < BYPASSES; i++) connect_events.push(connect(i, 'host-a', 60 + i * 120, PSQL, RUN, 'bypass', 'orders-db'));
  for (let i = 0; i < MEDIATED; i++) connect_events.push(connect(100 + i, 'host-a', 90 + i * 300, NODE, RUN, 'mediated', 'orders-db', i === 0 ? PG_SESSION : ''));
  connect_events.push(connect(200, 'host-b', 40, CURL, RUN_B, 'mediated', 'billing-api', HTTP_SESSION));
  const gateway_sessions = [session(PG_SESSION, 'orders-db', 'postgres', 90, 40100), session(HTTP_SESSION, 'billing-api', 'http', 40, 40200), session(SSH_SESSION, 'build-box', 'ssh', 300, 40300)];
  const gateway_session_events = [
    sessionEvent(PG_SESSION, 1, 91, { kind: 'statement', statement_text: 'SELECT * FROM orders WHERE id = $1', statement_parameters: ['42'], command_tag: 'SELECT 1', rows: 1 }),
    sessionEvent(PG_SESSION, 2, 92, { kind: 'policy', statement_text: 'DROP TABLE orders', policy_action: 'deny', policy_rule: 'no-drop', reason: 'DROP is not allowed' }),
    sessionEvent(HTTP_SESSION, 1, 41, { kind: 'http', http_method: 'GET', http_path: '/invoices', http_status: 200, request_bytes: 120, response_bytes: 2048 }),
    sessionEvent(SSH_SESSION, 1, 301, { kind: 'shell_output', shell_offset_seconds: 0.5, shell_stream: 'stdout', shell_data: 'uname -a' }),
  ];
  const alerts: Row[] = [];
  for (let i = 0; i < ALERTS; i++) {
    alerts.push({
      alert_id: `alert-web-${String(i).padStart(3, '0')}`,
      host: 'host-a',
      // The first alert is the newest, so it heads the list.
      time: at(7000 - i * 60),
      kind: 'bypass',
      severity: i === 0 ? 'critical' : 'warning',
      // Store text is data, never markup: #1 carries an HTML payload the UI must show as text.
      summary: i === 1 ? `<img src=x onerror="window.injected=1"> psql reached orders-db around the gateway (#1)` : `psql reached orders-db around the gateway (#${i})`,
      exec_id: PSQL,
      agent_run: RUN,
      resource: 'orders-db',
      event_id: `ce-${i % BYPASSES}`,
    });
  }
  const audit_gaps = [{ gap_id: 'gap-web-1', host: 'host-a', source: 'sensor', start_time: at(70), end_time: at(80), lost: 17, reason: 'ring buffer full: 17 records dropped' }];
  return { process_events, connect_events, gateway_sessions, gateway_session_events, alerts, audit_gaps, journal_records: [] };
}

/** An asciicast v2 recording as the SSH gateway writes it (`<session>-<channel>.cast`), and its input file. */
function writeRecording(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const header = JSON.stringify({ version: 2, width: 80, height: 24, timestamp: Math.floor(BASE_MS / 1000), env: { TERM: 'xterm-256color' }, title: 'build-box' });
  const output = [header, JSON.stringify([0.1, 'o', '$ uname -a\r\n']), JSON.stringify([0.4, 'o', 'Linux build-box 6.1.0 x86_64 GNU/Linux\r\n']), JSON.stringify([0.9, 'o', '$ exit\r\n'])];
  writeFileSync(join(dir, `${SSH_SESSION}-0.cast`), `${output.join('\n')}\n`, { mode: 0o600 });
  writeFileSync(join(dir, `${SSH_SESSION}-0.input.cast`), `${header}\n${JSON.stringify([0.2, 'i', 'secret-password\r'])}\n`, { mode: 0o600 });
}

export interface WebFixture {
  config: Config;
  /** The configuration as a file, for the CLI. */
  configFile: string;
  web: WebComponent;
  url: string;
  token: string;
  stop(): Promise<void>;
}

export async function seedStore(config: Config, rows = seedRows()): Promise<void> {
  const store = await openStore(config);
  try {
    await migrate(store.client, store.dialect);
    const sink = storeSink(store);
    for (const [table, tableRows] of Object.entries(rows) as Array<[TableName, Row[]]>) {
      if (tableRows.length > 0) await sink.insert(table, TABLE_COLUMNS[table], encodeRows(table, tableRows), tableRows.length);
    }
  } finally {
    await store.close();
  }
}

/** Seeds a fresh store in a temp data dir and starts the web component on a free loopback port. */
export async function startWebFixture(): Promise<WebFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gapwatch-web-'));
  const yaml = `dataDir: ${dataDir}\nstore:\n  ttlDays: 30\ncollector:\n  web:\n    listen:\n      port: 0\n`;
  const configFile = join(dataDir, 'gapwatch.yaml');
  writeFileSync(configFile, yaml);
  const config = parseConfig(yaml, configFile);
  try {
    await seedStore(config);
    writeRecording(join(dataDir, config.gateway.ssh.recordingsDir));
    const web = webComponent(config, pino({ level: 'silent' }));
    await web.start();
    const token = readFileSync(join(dataDir, 'web', 'token'), 'utf8').trim();
    return {
      config,
      configFile,
      web,
      url: web.url!,
      token,
      async stop() {
        await web.stop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

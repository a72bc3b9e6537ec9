import type { Store } from '../../collector/store/connection';
import { qualified } from '../../collector/store/ddl';
import { dateTime64 } from '../../collector/store/time';
import type { Row, TableName } from '../../collector/store/rows';

/**
 * A small store with one of everything the named queries look at, so each query's answer can be
 * stated exactly:
 *
 * - host-a, agent run RUN_A (claude): psql (secret in argv, redacted) connects straight to orders-db
 *   twice (bypass), node connects through the gateway (session gw-s1, with statements, a review that
 *   alice approved, and a denied DROP);
 * - host-b, agent run RUN_B (codex): curl reaches billing-api through the gateway (gw-s2, one HTTP
 *   exchange) and once around it; a psql outside any agent run bypasses to orders-db; one `other` connect;
 * - gw-s3: a gateway session no host connect explains;
 * - an audit gap on host-a 10 s after RUN_A's second bypass, and an old one outside the default range.
 */
export const BASE_MS = Date.now() - 2 * 3600_000;
export const RUN_A = 'host-a:boot-a:100:1000';
export const RUN_B = 'host-b:boot-b:200:2000';
export const PSQL_A = 'host-a:boot-a:101:1010';
export const NODE_A = 'host-a:boot-a:102:1030';
export const CURL_B = 'host-b:boot-b:201:2010';
export const PSQL_B = 'host-b:boot-b:300:3000';
export const GATEWAY_A = 'host-a:boot-a:50:500';

/** DateTime64 text `seconds` after BASE_MS. */
export function at(seconds: number): string {
  return dateTime64(BigInt(BASE_MS + seconds * 1000) * 1_000_000n);
}

function exec(host: string, seconds: number, execId: string, agentRun: string, parent: string, comm: string, filename: string, argv: string[]): Row {
  return {
    event_id: `pe-${execId}-exec`,
    host,
    time: at(seconds),
    kind: 'exec',
    exec_id: execId,
    pid: Number(execId.split(':')[2]),
    tgid: Number(execId.split(':')[2]),
    agent_run: agentRun,
    parent_exec_id: parent,
    uid: 1000,
    gid: 1000,
    comm,
    filename,
    argv,
  };
}

function connect(id: string, host: string, seconds: number, execId: string, agentRun: string, verdict: string, resource: string, ip: string, port: number, sessionId = ''): Row {
  return {
    event_id: id,
    host,
    time: at(seconds),
    exec_id: execId,
    pid: Number(execId.split(':')[2]),
    tgid: Number(execId.split(':')[2]),
    agent_run: agentRun,
    transport: 'tcp',
    destination_ip: ip,
    destination_port: port,
    local_ip: '10.0.0.9',
    local_port: 40000 + Number(id.replace(/\D/g, '')),
    result: 0,
    verdict,
    resource,
    session_id: sessionId,
  };
}

function session(id: string, subject: string, resource: string, protocol: string, startSeconds: number, endSeconds: number, outcome: string, clientPort: number): Row {
  return {
    session_id: id,
    gateway_id: 'gw-main',
    identity_subject: subject,
    identity_method: 'token',
    identity_claims: { run: subject },
    resource,
    protocol,
    client_ip: '10.0.0.9',
    client_port: clientPort,
    start_time: at(startSeconds),
    end_time: endSeconds < 0 ? dateTime64(0n) : at(endSeconds),
    outcome,
    target_user: 'app',
  };
}

function event(sessionId: string, seq: number, seconds: number, fields: Row): Row {
  return { session_id: sessionId, event_seq: seq, time: at(seconds), ...fields };
}

export const SEED: Record<TableName, Row[]> = {
  process_events: [
    exec('host-a', 0, RUN_A, RUN_A, 'host-a:boot-a:50:1', 'claude', '/usr/local/bin/claude', ['claude', '--print']),
    exec('host-a', 10, PSQL_A, RUN_A, RUN_A, 'psql', '/usr/bin/psql', ['psql', 'postgres://app:****@10.0.0.5/orders']),
    exec('host-a', 30, NODE_A, RUN_A, RUN_A, 'node', '/usr/bin/node', ['node', 'migrate.js']),
    { ...exec('host-a', 300, PSQL_A, RUN_A, RUN_A, 'psql', '/usr/bin/psql', []), event_id: `pe-${PSQL_A}-exit`, kind: 'exit', exit_code: 0 },
    exec('host-b', 100, RUN_B, RUN_B, 'host-b:boot-b:60:1', 'codex', '/usr/local/bin/codex', ['codex', 'exec']),
    exec('host-b', 110, CURL_B, RUN_B, RUN_B, 'curl', '/usr/bin/curl', ['curl', 'http://10.0.0.7/invoices']),
    exec('host-b', 200, PSQL_B, '', 'host-b:boot-b:61:1', 'psql', '/usr/bin/psql', ['psql', '-h', '10.0.0.5']),
  ],
  connect_events: [
    connect('ce-1', 'host-a', 20, PSQL_A, RUN_A, 'bypass', 'orders-db', '10.0.0.5', 5432),
    connect('ce-2', 'host-a', 40, NODE_A, RUN_A, 'mediated', 'orders-db', '127.0.0.1', 6432, 'gw-s1'),
    connect('ce-3', 'host-a', 290, PSQL_A, RUN_A, 'bypass', 'orders-db', '10.0.0.5', 5432),
    connect('ce-4', 'host-b', 120, CURL_B, RUN_B, 'mediated', 'billing-api', '127.0.0.1', 8080, 'gw-s2'),
    connect('ce-5', 'host-b', 130, CURL_B, RUN_B, 'bypass', 'billing-api', '10.0.0.7', 80),
    connect('ce-6', 'host-b', 140, CURL_B, RUN_B, 'other', '', '93.184.216.34', 443),
    connect('ce-7', 'host-b', 210, PSQL_B, '', 'bypass', 'orders-db', '10.0.0.5', 5432),
    // The gateway on host-a opening its own upstream leg for gw-s3 (an agent on a laptop without the
    // sensor): joined with the session, verdict other. It must not count as the session's attribution.
    connect('ce-8', 'host-a', 400, GATEWAY_A, '', 'other', 'orders-db', '10.0.0.5', 5432, 'gw-s3'),
  ],
  gateway_sessions: [
    // gw-s1's open record, replaced by its closed one (FINAL).
    session('gw-s1', 'agent:claude@host-a', 'orders-db', 'postgres', 40, -1, 'open', 40002),
    session('gw-s1', 'agent:claude@host-a', 'orders-db', 'postgres', 40, 50, 'closed', 40002),
    session('gw-s2', 'agent:codex@host-b', 'billing-api', 'http', 120, 121, 'closed', 40004),
    session('gw-s3', 'agent:claude@laptop', 'orders-db', 'postgres', 400, 410, 'closed', 51000),
  ],
  gateway_session_events: [
    event('gw-s1', 1, 41, { kind: 'statement', statement_text: 'SELECT * FROM orders WHERE id = $1', statement_parameters: ['42'], command_tag: 'SELECT', rows: 1, duration_nano: 1_500_000 }),
    event('gw-s1', 2, 42, { kind: 'policy', policy_action: 'review', policy_rule: 'writes-need-review', reason: 'DELETE on orders' }),
    event('gw-s1', 3, 43, { kind: 'policy', policy_action: 'approved', policy_rule: 'writes-need-review', reviewer: 'alice' }),
    event('gw-s1', 4, 44, { kind: 'statement', statement_text: 'DELETE FROM orders WHERE id = $1', statement_parameters: ['42'], command_tag: 'DELETE', rows: 1 }),
    event('gw-s1', 5, 45, { kind: 'policy', policy_action: 'deny', policy_rule: 'no-drop', reason: 'DROP TABLE orders' }),
    event('gw-s2', 1, 120.5, { kind: 'http', http_method: 'GET', http_path: '/invoices', http_status: 200, request_bytes: 0, response_bytes: 512 }),
    event('gw-s3', 1, 401, { kind: 'statement', statement_text: 'SELECT 1', command_tag: 'SELECT', rows: 1 }),
  ],
  alerts: [
    { alert_id: 'al-bypass-a', host: 'host-a', time: at(20), kind: 'bypass', severity: 'critical', summary: 'psql reached orders-db around the gateway', exec_id: PSQL_A, agent_run: RUN_A, resource: 'orders-db', event_id: 'ce-1' },
    { alert_id: 'al-secret-a', host: 'host-a', time: at(10), kind: 'secret_in_argv', severity: 'warning', summary: 'psql started with a password in argv', exec_id: PSQL_A, agent_run: RUN_A, resource: '', event_id: `pe-${PSQL_A}-exec` },
    { alert_id: 'al-bypass-b', host: 'host-b', time: at(210), kind: 'bypass', severity: 'critical', summary: 'psql reached orders-db around the gateway', exec_id: PSQL_B, agent_run: '', resource: 'orders-db', event_id: 'ce-7' },
  ],
  audit_gaps: [
    { gap_id: 'gap-ring-a', host: 'host-a', source: 'sensor', start_time: at(300), end_time: at(300), lost: 12, reason: 'host sensor lost records: kernel ring buffer 12 connect' },
    { gap_id: 'gap-old', host: 'host-b', source: 'spool', start_time: at(-3 * 86400), end_time: at(-3 * 86400 + 60), lost: 5, reason: 'spool full' },
  ],  // Gateway journal records only serve gapwatch verify, which no dashboard reads.
  journal_records: [],
};

/** Inserts SEED into a migrated store. */
export async function seedStore(store: Store): Promise<void> {
  for (const [table, rows] of Object.entries(SEED)) {
    await store.client.insert({ table: qualified(store.dialect, table), values: rows, format: 'JSONEachRow' });
  }
}

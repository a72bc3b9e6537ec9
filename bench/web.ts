import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataFormat } from '@clickhouse/client';
import pino from 'pino';
import { bindParams, loadNamedQuery } from '../dashboards/named-queries';
import { openStore, type Store } from '../collector/store/connection';
import { qualified, quoteIdent } from '../collector/store/ddl';
import { migrate } from '../collector/store/migration';
import { webComponent } from '../collector/web/web-component';
import { parseConfig } from '../platform/config';
import { round, summarize } from './stats';

/**
 * `npm run bench -- web [connects] [rounds] [from]`: how long each page of the web UI waits for its data on a
 * big embedded store, through the web API (HTTP, token check, parameter binding, the paging wrapper,
 * JSON), against the baseline of the same named queries run straight on a store connection (what
 * `gapwatch query` does), side by side in the same run.
 *
 * The store holds `connects` connect events (default 2 million) over 7 days on 8 hosts and 4000 agent
 * runs, a tenth as many process events, a hundredth as many alerts and gateway sessions, a tenth as
 * many session events. Each page asks for its queries at once, as the browser does; a page's time is
 * until its last answer. Queries run over `from` back from now: 7d (default) reads all of it, 24h (the
 * UI's default range) about a seventh. Reports per page the median over rounds for both paths, the ratio api/direct, and
 * max_page_median_ms over the pages through the API; then each query alone through the API
 * (query_alone_median_ms), since a page's queries compete for the same cores.
 */
interface PageCall {
  query: string;
  params: Record<string, string>;
  rows: number;
}

const HOSTS = 8;
const RUNS_PER_HOST = 500;

function pages(run: string, alertId: string, sessionId: string, from: string): Record<string, PageCall[]> {
  const range = { from };
  return {
    overview: [
      { query: 'overview', params: range, rows: 1 },
      { query: 'coverage-trend', params: { ...range, bucket_s: '12600' }, rows: 1000 },
      { query: 'bypass-by-agent-run', params: { ...range, limit: '11' }, rows: 10 },
      { query: 'bypass-by-binary', params: { ...range, limit: '11' }, rows: 10 },
      { query: 'bypass-by-host', params: { ...range, limit: '11' }, rows: 10 },
      { query: 'coverage', params: { ...range, group_by: 'resource', limit: '21' }, rows: 20 },
    ],
    alerts: [{ query: 'recent-alerts', params: { ...range, limit: '51' }, rows: 50 }],
    alert_detail: [{ query: 'alert-detail', params: { alert_id: alertId }, rows: 200 }],
    runs: [{ query: 'coverage', params: { ...range, group_by: 'agent_run', limit: '51' }, rows: 50 }],
    run_timeline: [{ query: 'agent-run-timeline', params: { ...range, agent_run: run, limit: '201' }, rows: 200 }],
    sessions: [
      { query: 'sessions', params: { ...range, limit: '51' }, rows: 50 },
      { query: 'unattributed-sessions', params: { ...range, limit: '21' }, rows: 20 },
    ],
    session: [
      { query: 'session-detail', params: { session_id: sessionId }, rows: 1 },
      { query: 'session-drill-down', params: { session_id: sessionId, limit: '501' }, rows: 500 },
    ],
    gaps: [{ query: 'audit-gaps', params: { ...range, limit: '101' }, rows: 100 }],
  };
}

async function seed(store: Store, connects: number): Promise<void> {
  const t = (table: string) => qualified(store.dialect, table);
  const spanMs = 7 * 86_400_000 - 60_000;
  const step = Math.max(1, Math.floor(spanMs / connects));
  const runOf = (n: string) => `concat('host-', toString(${n} % ${HOSTS}), ':boot:', toString(100 + intDiv(${n}, ${HOSTS}) % ${RUNS_PER_HOST}), ':1')`;
  const statements = [
    `INSERT INTO ${t('process_events')} (event_id, host, time, kind, exec_id, pid, tgid, agent_run, parent_exec_id, comm, filename, argv)
     SELECT concat('run-', toString(number)), concat('host-', toString(number % ${HOSTS})), now64(9) - toIntervalDay(7), 'exec', ${runOf('number')}, 100, 100, ${runOf('number')}, '',
            ['claude', 'codex', 'aider', 'goose'][number % 4 + 1], concat('/usr/bin/', ['claude', 'codex', 'aider', 'goose'][number % 4 + 1]), ['agent', '--task', toString(number)]
     FROM numbers(${HOSTS * RUNS_PER_HOST})`,
    `INSERT INTO ${t('process_events')} (event_id, host, time, kind, exec_id, pid, tgid, agent_run, parent_exec_id, comm, filename, argv)
     SELECT concat('pe-', toString(number)), concat('host-', toString(number % ${HOSTS})), now64(9) - toIntervalMillisecond(number * ${step * 10}), 'exec',
            concat('host-', toString(number % ${HOSTS}), ':boot:', toString(10000 + number), ':1'), 10000 + number, 10000 + number, ${runOf('number')}, ${runOf('number')},
            ['psql', 'node', 'curl', 'ssh'][number % 4 + 1], concat('/usr/bin/', ['psql', 'node', 'curl', 'ssh'][number % 4 + 1]), ['client', '-h', '10.0.0.5']
     FROM numbers(${Math.floor(connects / 10)})`,
    `INSERT INTO ${t('connect_events')} (event_id, host, time, exec_id, pid, tgid, agent_run, transport, destination_ip, destination_port, local_ip, local_port, result, verdict, resource, session_id)
     SELECT concat('ce-', toString(number)), concat('host-', toString(number % ${HOSTS})), now64(9) - toIntervalMillisecond(number * ${step}),
            concat('host-', toString(number % ${HOSTS}), ':boot:', toString(10000 + intDiv(number, 10)), ':1'), 10000 + intDiv(number, 10), 10000 + intDiv(number, 10), ${runOf('intDiv(number, 10)')},
            'tcp', '10.0.0.5', 5432, '10.0.0.9', 30000 + number % 30000, 0,
            multiIf(number % 10 = 0, 'bypass', number % 10 < 5, 'mediated', 'other'), ['orders-db', 'billing-api', 'build-box'][number % 3 + 1],
            if(number % 10 = 1, concat('S', toString(intDiv(number, 100))), '')
     FROM numbers(${connects})`,
    `INSERT INTO ${t('gateway_sessions')} (session_id, gateway_id, identity_subject, identity_method, resource, protocol, client_ip, client_port, start_time, end_time, outcome, target_user)
     SELECT concat('S', toString(number)), 'gw', concat('agent-', toString(number % 50)), 'token', ['orders-db', 'billing-api', 'build-box'][number % 3 + 1], 'postgres', '10.0.0.9', 30000 + number % 30000,
            now64(9) - toIntervalMillisecond(number * ${step * 100}), now64(9) - toIntervalMillisecond(number * ${step * 100}) + toIntervalSecond(5), 'closed', 'app'
     FROM numbers(${Math.floor(connects / 100)})`,
    `INSERT INTO ${t('gateway_session_events')} (session_id, event_seq, time, kind, statement_text, command_tag, rows)
     SELECT concat('S', toString(intDiv(number, 10))), number % 10, now64(9) - toIntervalMillisecond(intDiv(number, 10) * ${step * 100}), 'statement', 'SELECT * FROM orders WHERE id = $1', 'SELECT 1', 1
     FROM numbers(${Math.floor(connects / 10)})`,
    `INSERT INTO ${t('alerts')} (alert_id, host, time, kind, severity, summary, exec_id, agent_run, resource, event_id)
     SELECT concat('A', toString(number)), concat('host-', toString(number % ${HOSTS})), now64(9) - toIntervalMillisecond(number * ${step * 100}), 'bypass', if(number % 7 = 0, 'critical', 'warning'),
            'psql reached orders-db around the gateway', concat('host-', toString(number % ${HOSTS}), ':boot:', toString(10000 + number * 10), ':1'), ${runOf('number * 10')}, 'orders-db', concat('ce-', toString(number * 100))
     FROM numbers(${Math.floor(connects / 100)})`,
    `INSERT INTO ${t('audit_gaps')} (gap_id, host, source, start_time, end_time, lost, reason)
     SELECT concat('G', toString(number)), concat('host-', toString(number % ${HOSTS})), 'sensor', now64(9) - toIntervalHour(number), now64(9) - toIntervalHour(number) + toIntervalSecond(10), 100 + number, 'ring buffer full'
     FROM numbers(100)`,
  ];
  for (const query of statements) await store.client.command({ query });
  for (const table of ['process_events', 'connect_events', 'gateway_sessions', 'gateway_session_events', 'alerts', 'audit_gaps']) {
    await store.client.command({ query: `OPTIMIZE TABLE ${t(table)} FINAL` });
  }
}

export async function run(args: string[]): Promise<Record<string, unknown> & { name: string }> {
  const connects = Number(args[0] ?? 2_000_000);
  const rounds = Number(args[1] ?? 5);
  const from = args[2] ?? '7d';
  const dir = mkdtempSync(join(tmpdir(), 'gapwatch-bench-web-'));
  const config = parseConfig(`dataDir: ${dir}\ncollector:\n  web:\n    listen:\n      port: 0\n`);
  const web = webComponent(config, pino({ level: 'silent' }));
  let direct: Store | null = null;
  try {
    const writable = await openStore(config);
    const seedStarted = performance.now();
    try {
      await migrate(writable.client, writable.dialect);
      await seed(writable, connects);
    } finally {
      await writable.close();
    }
    const seedSeconds = round((performance.now() - seedStarted) / 1000, 1);
    await web.start();
    const token = readFileSync(join(dir, 'web', 'token'), 'utf8').trim();
    direct = await openStore(config, { readonly: true });
    if (direct.kind === 'embedded') await direct.client.command({ query: `USE ${quoteIdent(direct.dialect.database)}` });
    const baseline = direct;

    const set = pages(`host-0:boot:100:1`, 'A0', 'S1', from);
    const viaApi = (call: PageCall) => async () => {
      const search = new URLSearchParams({ ...call.params, _rows: String(call.rows) });
      const response = await fetch(`${web.url}/api/queries/${call.query}?${search.toString()}`, { headers: { Authorization: `Bearer ${token}` } });
      if (!response.ok) throw new Error(`${call.query}: HTTP ${response.status} ${await response.text()}`);
      return ((await response.json()) as { rows: unknown[] }).rows.length;
    };
    const viaStore = (call: PageCall) => async () => {
      const query = loadNamedQuery(call.query)!;
      const result = await baseline.client.query({ query: query.sql, format: 'JSON' as DataFormat, query_params: bindParams(query, call.params) });
      return ((await result.json()) as { data: unknown[] }).data.length;
    };
    const timePage = async (calls: Array<() => Promise<number>>): Promise<number> => {
      const started = performance.now();
      await Promise.all(calls.map((call) => call()));
      return performance.now() - started;
    };

    const samples: Record<string, { api: number[]; direct: number[] }> = {};
    for (const name of Object.keys(set)) samples[name] = { api: [], direct: [] };
    // One warm-up round (first reads load the parts' marks), then the measured rounds; the two paths
    // alternate which goes first.
    for (let r = -1; r < rounds; r++) {
      for (const [name, calls] of Object.entries(set)) {
        const order = r % 2 === 0 ? (['api', 'direct'] as const) : (['direct', 'api'] as const);
        for (const path of order) {
          const ms = await timePage(calls.map(path === 'api' ? viaApi : viaStore));
          if (r >= 0) samples[name]![path].push(ms);
        }
      }
    }
    const perPage: Record<string, unknown> = {};
    let maxPage = 0;
    const ratios: number[] = [];
    for (const [name, { api, direct: straight }] of Object.entries(samples)) {
      const apiSummary = summarize(api);
      const directSummary = summarize(straight);
      const ratio = round(apiSummary.median / directSummary.median, 2);
      ratios.push(ratio);
      maxPage = Math.max(maxPage, apiSummary.median);
      perPage[name] = { api_median_ms: round(apiSummary.median, 1), direct_median_ms: round(directSummary.median, 1), ratio_api_to_direct: ratio, queries: set[name]!.length };
    }
    // Each distinct query alone through the API (no other query competing for the two cores): which
    // query a slow page waits for.
    const alone: Record<string, number> = {};
    for (const calls of Object.values(set)) {
      for (const call of calls) {
        const key = `${call.query}${call.params.group_by ? `(${call.params.group_by})` : ''}`;
        if (key in alone) continue;
        const times: number[] = [];
        for (let r = 0; r < Math.max(3, Math.min(rounds, 5)); r++) times.push(await timePage([viaApi(call)]));
        alone[key] = round(summarize(times).median, 1);
      }
    }
    return {
      name: 'web',
      connects,
      rounds,
      from,
      seed_seconds: seedSeconds,
      pages: perPage,
      max_page_median_ms: round(maxPage, 1),
      query_alone_median_ms: alone,
      median_ratio_api_to_direct: summarize(ratios).median,
    };
  } finally {
    await direct?.close();
    await web.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openStore, type Store } from '../collector/store/connection';
import { migrate } from '../collector/store/migration';
import { PROCESS_EXECS_SELECT } from '../collector/store/migrations/0005-dashboard-lookups';
import { bindParams, loadNamedQueries, parseTimeParam, type NamedQuery } from '../dashboards/named-queries';
import { parseConfig } from '../platform/config';
import { round, summarize } from './stats';

/**
 * `npm run bench -- dashboards [connects] [gatewayEvents] [rounds] [layout]`: every named query of dashboards/sql
 * over an embedded store seeded with 10 million connect events and 1 million gateway session events
 * (plus 1 million process events, 200 000 gateway sessions, 50 000 alerts and 1 000 audit gaps), spread
 * over the last 7 days on 20 hosts, 2 000 agent runs and 10 resources.
 *
 * Seeding is INSERT … SELECT FROM numbers() inside the engine. `layout` says how the rows sit in the
 * tables when the queries run: `optimized` (default) merges each table to one part per partition
 * (OPTIMIZE FINAL), the best case; `as-written` inserts in blocks of the writer's default batch
 * (20 000 rows, each block its own part, as the store writer's inserts are) and waits for the engine's
 * background merges to finish, leaving the parts a store written by gapwatch has (`active_parts`).
 *
 * Each query runs with its defaults (the last 24 hours, all hosts/resources/agents; single-record
 * queries get an id that exists: the top bypassing run, a session with events, a bypass alert),
 * `rounds` times after one warm-up, in an order rotated per round. Reported: each query's median in ms, `max_median_ms`, and each median as a ratio of
 * the baseline measured in the same rounds: `count()` of the connects in the range (the cost of reading
 * the range's key columns at all). The same is done over all 7 days (`*_7d`) for the range-bound queries.
 *
 * Before/after for the lookup table (migration 0005): each query that reads process_execs with its
 * default parameters also runs, in the same rounds, with the lookup table replaced by the SELECT over
 * its source table that the materialized view keeps it from (`<name>_without_lookups_ms`, and
 * `<name>_lookup_speedup` = without / with).
 */

/**
 * Whether a query reads a lookup table with the default parameters. The agent filter's CTE
 * (matching_runs) reads process_execs only when an agent is given, so it does not count.
 */
function readsLookups(query: NamedQuery): boolean {
  const sql = query.sql.replace(/matching_runs AS \([\s\S]*?\n {4}\),/, '');
  return withoutLookups(sql) !== sql;
}

/** A query as it would read without the lookup table: replaced by its definition. */
function withoutLookups(sql: string): string {
  return sql.replace(/\bprocess_execs\b/g, `(${PROCESS_EXECS_SELECT.replace('{source}', 'process_events')})`);
}

const HOSTS = 20;
const RUNS = 2_000;
const RESOURCES = 10;
const DAYS = 7;

export function seedStatements(connects: number, gatewayEvents: number, startNs: bigint, spanNs: bigint): Array<{ table: string; sql: string }> {
  const processes = Math.max(RUNS, Math.floor(connects / 10));
  const sessions = Math.max(1, Math.floor(gatewayEvents / 5));
  // Process p runs on host p % HOSTS, in agent run p % RUNS (whose own process is p = run); every 50th
  // process is outside any run. Connect n is made by process intDiv(n, 10); its time grows with n.
  // index × span would overflow 64 bits; a float step is exact to well under a microsecond here.
  const at = (index: string, count: number): string => `fromUnixTimestamp64Nano(toInt64(${startNs}) + toInt64(${index} * ${Number(spanNs) / count}), 'UTC')`;
  const execId = (p: string): string => `concat('host-', toString(${p} % ${HOSTS}), ':boot:', toString(${p}), ':1')`;
  const runOf = (p: string): string => `if(${p} % 50 = 49, '', ${execId(`(${p} % ${RUNS})`)})`;
  return [
    {
      table: 'process_events',
      sql: `INSERT INTO process_events (event_id, host, time, kind, exec_id, pid, tgid, agent_run, parent_exec_id, uid, gid, comm, filename, argv)
        SELECT concat('pe-', toString(number)), concat('host-', toString(number % ${HOSTS})), ${at('number', processes)}, 'exec',
          ${execId('number')}, toUInt32(number % 4000000), toUInt32(number % 4000000), ${runOf('number')},
          if(number < ${RUNS}, concat('host-', toString(number % ${HOSTS}), ':boot:init:1'), ${execId(`(number % ${RUNS})`)}), 1000, 1000,
          if(number < ${RUNS}, ['claude', 'codex', 'aider', 'gemini'][number % 4 + 1], ['psql', 'node', 'curl', 'python3', 'git', 'ssh'][number % 6 + 1]) AS c,
          concat('/usr/bin/', c),
          if(number % 100 = 7, [c, 'postgres://app:****@db/orders'], [c, '--flag', toString(number)])
        FROM numbers(${processes})`,
    },
    {
      table: 'connect_events',
      sql: `INSERT INTO connect_events (event_id, host, time, exec_id, pid, tgid, agent_run, transport, destination_ip, destination_port, local_ip, local_port, result, verdict, resource, session_id)
        SELECT concat('ce-', toString(number)), concat('host-', toString(intDiv(number, 10) % ${HOSTS})), ${at('number', connects)},
          ${execId('intDiv(number, 10)')}, toUInt32(intDiv(number, 10) % 4000000), toUInt32(intDiv(number, 10) % 4000000), ${runOf('intDiv(number, 10)')},
          'tcp', '10.0.0.5', 5432, '10.0.0.9', toUInt16(number % 60000), 0,
          multiIf(number % 20 < 2, 'bypass', number % 20 < 14, 'mediated', 'other') AS v,
          if(v = 'other', '', concat('res-', toString(intHash32(number) % ${RESOURCES}))),
          if(v = 'mediated', concat('gw-', toString(number % ${sessions})), '')
        FROM numbers(${connects})`,
    },
    {
      table: 'gateway_sessions',
      sql: `INSERT INTO gateway_sessions (session_id, gateway_id, identity_subject, identity_method, resource, protocol, client_ip, client_port, start_time, end_time, outcome, target_user)
        SELECT concat('gw-', toString(number)), 'gw-main', concat('agent:', ['claude', 'codex', 'aider', 'gemini'][number % 4 + 1], '@host-', toString(number % ${HOSTS})), 'token',
          concat('res-', toString(number % ${RESOURCES})), 'postgres', '10.0.0.9', toUInt16(number % 60000),
          ${at('number', sessions)} AS s, s + toIntervalSecond(5), if(number % 97 = 0, 'rejected', 'closed'), 'app'
        FROM numbers(${sessions})`,
    },
    {
      table: 'gateway_session_events',
      sql: `INSERT INTO gateway_session_events (session_id, event_seq, time, kind, statement_text, statement_parameters, command_tag, rows, policy_action, policy_rule, reviewer)
        SELECT concat('gw-', toString(intDiv(number, 5))), number % 5 + 1, ${at('number', gatewayEvents)},
          ['statement', 'policy', 'policy', 'statement', 'statement'][number % 5 + 1] AS k,
          if(k = 'statement', concat('SELECT * FROM orders WHERE id = $1 -- ', toString(number)), ''), if(k = 'statement', [toString(number)], []),
          if(k = 'statement', 'SELECT', ''), if(k = 'statement', 1, 0),
          multiIf(k != 'policy', 'unspecified', number % 5 = 1, 'review', 'approved'), if(k = 'policy', 'writes-need-review', ''),
          if(k = 'policy' AND number % 5 = 2, 'alice', '')
        FROM numbers(${gatewayEvents})`,
    },
    {
      table: 'alerts',
      sql: `INSERT INTO alerts (alert_id, host, time, kind, severity, summary, exec_id, agent_run, resource, event_id)
        SELECT concat('al-', toString(number)), concat('host-', toString(p % ${HOSTS})), ${at('number', 50_000)},
          if(number % 10 = 0, 'secret_in_argv', 'bypass'), if(number % 10 = 0, 'warning', 'critical'), 'bench alert',
          ${execId('p')}, ${runOf('p')}, concat('res-', toString(number % ${RESOURCES})), concat('ce-', toString(number * 200))
        FROM (SELECT number, intDiv(number * 200, 10) AS p FROM numbers(50000))`,
    },
    {
      table: 'audit_gaps',
      sql: `INSERT INTO audit_gaps (gap_id, host, source, start_time, end_time, lost, reason)
        SELECT concat('gap-', toString(number)), concat('host-', toString(number % ${HOSTS})), ['sensor', 'spool', 'correlation'][number % 3 + 1],
          ${at('number', 1000)} AS s, s + toIntervalSecond(number % 30), number % 100, 'bench gap'
        FROM numbers(1000)`,
    },
  ];
}

async function scalar(store: Store, sql: string): Promise<string> {
  const rows = await (await store.client.query({ query: sql, format: 'JSONEachRow' })).json<Record<string, string>>();
  return String(Object.values(rows[0] ?? {})[0] ?? '');
}

async function timeQuery(store: Store, sql: string, params: Record<string, string>): Promise<{ ms: number; rows: number }> {
  const started = performance.now();
  const rows = await (await store.client.query({ query: sql, query_params: params, format: 'JSONEachRow' })).json();
  return { ms: performance.now() - started, rows: rows.length };
}

export async function run(args: string[]): Promise<Record<string, unknown> & { name: string }> {
  const connects = Number(args[0] ?? 10_000_000);
  const gatewayEvents = Number(args[1] ?? 1_000_000);
  const rounds = Number(args[2] ?? 5);
  const layout = args[3] ?? 'optimized';
  if (layout !== 'optimized' && layout !== 'as-written') throw new Error(`layout must be optimized or as-written (got ${layout})`);
  const dir = mkdtempSync(join(tmpdir(), 'gapwatch-bench-dashboards-'));
  const config = parseConfig(`dataDir: ${dir}\nstore:\n  ttlDays: 30\n  embedded:\n    maxMemoryMiB: 6144\n    maxQueryMemoryMiB: 3072\n`);
  const store = await openStore(config);
  try {
    await migrate(store.client, store.dialect);
    await store.client.command({ query: `USE ${store.dialect.database}` });
    const nowNs = BigInt(Date.now()) * 1_000_000n;
    const spanNs = BigInt(DAYS * 86_400) * 1_000_000_000n;
    const seedStarted = performance.now();
    const batch = config.store.writer.batchRows;
    for (const { table, sql } of seedStatements(connects, gatewayEvents, nowNs - spanNs, spanNs)) {
      const tableStarted = performance.now();
      await store.client.command({
        query: sql,
        // Blocks of one writer batch (store.writer.batchRows) each, every block its own part.
        clickhouse_settings: layout === 'as-written' ? { max_block_size: String(batch), min_insert_block_size_rows: String(batch), min_insert_block_size_bytes: '0' } : {},
      });
      process.stderr.write(`seeded ${table} in ${round((performance.now() - tableStarted) / 1000, 1)} s\n`);
    }
    // Let background merges settle so each round reads the same parts.
    if (layout === 'optimized') {
      for (const table of ['process_events', 'connect_events', 'gateway_sessions', 'gateway_session_events', 'alerts', 'audit_gaps']) {
        await store.client.command({ query: `OPTIMIZE TABLE ${table} FINAL` });
      }
    } else {
      for (let quiet = 0, waited = 0; quiet < 3 && waited < 600_000; waited += 1000) {
        quiet = Number(await scalar(store, `SELECT count() FROM system.merges WHERE database = '${store.dialect.database}'`)) === 0 ? quiet + 1 : 0;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    const activeParts = Object.fromEntries(
      (
        await (
          await store.client.query({
            query: `SELECT table, count() AS parts FROM system.parts WHERE database = '${store.dialect.database}' AND active GROUP BY table ORDER BY table`,
            format: 'JSONEachRow',
          })
        ).json<{ table: string; parts: string }>()
      ).map((row) => [row.table, Number(row.parts)]),
    );
    const seedSeconds = round((performance.now() - seedStarted) / 1000, 1);

    const queries = loadNamedQueries();
    const ids = {
      agent_run: await scalar(store, "SELECT agent_run FROM connect_events WHERE verdict = 'bypass' AND agent_run != '' AND time >= now64() - INTERVAL 1 DAY GROUP BY agent_run ORDER BY count() DESC LIMIT 1"),
      session_id: await scalar(store, 'SELECT session_id FROM gateway_session_events WHERE time >= now64() - INTERVAL 1 DAY LIMIT 1'),
      alert_id: await scalar(store, "SELECT alert_id FROM alerts WHERE kind = 'bypass' AND time >= now64() - INTERVAL 1 DAY LIMIT 1"),
    };
    const baseline: NamedQuery = {
      name: 'baseline',
      question: 'count() of the connects in the range',
      notes: '',
      params: [],
      sql: "SELECT count() FROM connect_events WHERE time >= {from:DateTime64(9, 'UTC')} AND time < {to:DateTime64(9, 'UTC')}",
    };

    const result: Record<string, unknown> = {};
    let maxMedian = 0;
    let maxMedian7d = 0;
    for (const range of ['24h', '7d'] as const) {
      const ranged = queries.filter((q) => range === '24h' || q.params.some((p) => p.name === 'from'));
      const before = range === '24h' ? ranged.filter(readsLookups).map((q) => ({ ...q, name: `${q.name}_without_lookups`, sql: withoutLookups(q.sql) })) : [];
      const timed = [baseline, ...ranged, ...before];
      const bound = new Map(
        timed.map((q) => {
          const given: Record<string, string> = { from: range };
          for (const p of q.params) if (p.name in ids) given[p.name] = ids[p.name as keyof typeof ids];
          const params = q === baseline ? { from: parseTimeParam(range)!, to: parseTimeParam('now')! } : bindParams(q, given);
          return [q.name, params];
        }),
      );
      const samples = new Map<string, number[]>(timed.map((q) => [q.name, []]));
      const rowCounts = new Map<string, number>();
      for (let r = -1; r < rounds; r++) {
        const shift = ((r % timed.length) + timed.length) % timed.length;
        for (const q of [...timed.slice(shift), ...timed.slice(0, shift)]) {
          const { ms, rows } = await timeQuery(store, q.sql, bound.get(q.name)!);
          if (r >= 0) samples.get(q.name)!.push(ms);
          rowCounts.set(q.name, rows);
        }
      }
      const baselineMedian = summarize(samples.get('baseline')!).median;
      const suffix = range === '24h' ? '' : '_7d';
      result[`baseline_ms${suffix}`] = round(baselineMedian, 1);
      for (const q of timed.slice(1)) {
        const median = summarize(samples.get(q.name)!).median;
        result[`${q.name}_ms${suffix}`] = round(median, 1);
        result[`${q.name}_ratio${suffix}`] = round(median / baselineMedian, 2);
        result[`${q.name}_rows${suffix}`] = rowCounts.get(q.name);
        if (q.name.endsWith('_without_lookups')) {
          result[`${q.name.replace(/_without_lookups$/, '')}_lookup_speedup`] = round(median / summarize(samples.get(q.name.replace(/_without_lookups$/, ''))!).median, 2);
        } else if (range === '24h') maxMedian = Math.max(maxMedian, median);
        else maxMedian7d = Math.max(maxMedian7d, median);
      }
    }
    return {
      name: 'dashboards',
      connects,
      gateway_events: gatewayEvents,
      rounds,
      seed_s: seedSeconds,
      layout,
      active_parts: activeParts,
      max_median_ms: round(maxMedian, 1),
      max_median_ms_7d: round(maxMedian7d, 1),
      goal_ms: 500,
      ...result,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

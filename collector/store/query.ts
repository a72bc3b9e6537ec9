import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DataFormat } from '@clickhouse/client';
import type { Config } from '../../platform/config';
import { packageRoot } from '../../platform/package-root';
import { openStore } from './connection';
import { quoteIdent } from './ddl';
import { StoreQueryFailedError, StoreQueryRefusedError, StoreQueryUnknownError, StoreUnreachableError } from './errors';
import { dateTime64 } from './time';

export type OutputFormat = 'table' | 'json' | 'csv';

/** ClickHouse output format per `--format`: an aligned table, JSON lines, CSV with a header row. */
export const CLICKHOUSE_FORMAT: Record<OutputFormat, string> = {
  table: 'PrettyCompactMonoBlock',
  json: 'JSONEachRow',
  csv: 'CSVWithNames',
};

/** ClickHouse's error code for "Cannot execute query in readonly mode" and friends. */
const READONLY_ERROR = '164';

export function namedQueriesDir(): string {
  return join(packageRoot(), 'dashboards', 'sql');
}

export function namedQueries(dir = namedQueriesDir()): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .map((f) => f.slice(0, -4))
    .sort();
}

/** A bare name (letters, digits, dashes) is a named query; anything else is SQL text. */
export function isQueryName(text: string): boolean {
  return /^[a-z0-9][a-z0-9-]*$/.test(text.trim());
}

export function loadNamedQuery(name: string, dir = namedQueriesDir()): string {
  const file = join(dir, `${name}.sql`);
  if (!namedQueries(dir).includes(name)) throw new StoreQueryUnknownError(name, namedQueries(dir));
  return readFileSync(file, 'utf8');
}

/**
 * `--since`: a duration back from now (`90s`, `30m`, `24h`, `7d`) or an ISO 8601 time. Returns
 * DateTime64 text (seconds.nanoseconds, UTC).
 */
export function parseSince(text: string, now = Date.now()): string {
  const duration = /^(\d+)(s|m|h|d)$/.exec(text.trim());
  if (duration) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[duration[2] as 's' | 'm' | 'h' | 'd'];
    return dateTime64(BigInt(now - Number(duration[1]) * unit) * 1_000_000n);
  }
  const time = Date.parse(text);
  if (!Number.isNaN(time) && /^\d{4}-\d{2}-\d{2}/.test(text.trim())) return dateTime64(BigInt(time) * 1_000_000n);
  throw new StoreQueryRefusedError(`--since ${JSON.stringify(text)} is neither a duration (90s, 30m, 24h, 7d) nor an ISO 8601 time`);
}

export interface QueryRequest {
  /** A named query from dashboards/sql, or SQL text. */
  query: string;
  format: OutputFormat;
  /** DateTime64 text bound to {since:…} when the SQL uses it. */
  since: string;
  /** Further {name:Type} parameters, as text. */
  params: Record<string, string>;
}

/** The parameters a SQL text declares: `{name:Type}`. */
export function declaredParams(sql: string): string[] {
  return [...new Set([...sql.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*):[^}]+\}/g)].map((m) => m[1]!))];
}

/**
 * Runs a named query or ad-hoc SQL against the configured store and returns the formatted output.
 * The connection is opened with ClickHouse's `readonly = 1`, so the engine refuses any write, DDL or
 * settings change, however the SQL is spelt.
 */
export async function runQuery(config: Config, request: QueryRequest): Promise<string> {
  const sql = isQueryName(request.query) ? loadNamedQuery(request.query) : request.query;
  const params: Record<string, string> = { ...request.params };
  const declared = declaredParams(sql);
  if (declared.includes('since')) params.since ??= request.since;
  const missing = declared.filter((name) => params[name] === undefined);
  if (missing.length > 0) {
    throw new StoreQueryRefusedError(`the query needs ${missing.map((m) => `--param ${m}=<value>`).join(' ')}`);
  }
  const store = await openStore(config, {
    readonly: true,
    settings: { output_format_pretty_color: 0, output_format_pretty_row_numbers: 0 },
  });
  try {
    if (store.kind === 'embedded') {
      // A server picks the database per request from the client's `database`; the embedded engine keeps
      // the session's, so select it once.
      await store.client.command({ query: `USE ${quoteIdent(store.dialect.database)}` });
    }
    const result = await store.client.query({
      query: sql,
      format: CLICKHOUSE_FORMAT[request.format] as DataFormat,
      query_params: declared.length > 0 ? Object.fromEntries(declared.map((name) => [name, params[name]])) : undefined,
    });
    return await result.text();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === READONLY_ERROR) throw new StoreQueryRefusedError('the store refused it as a write (ClickHouse readonly mode)', err);
    // Socket-level failures carry errno codes (ECONNREFUSED, ENOTFOUND, ETIMEDOUT …); ClickHouse errors numeric ones.
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) throw new StoreUnreachableError(store.where, err);
    throw new StoreQueryFailedError(err);
  } finally {
    await store.close();
  }
}

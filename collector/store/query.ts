import type { DataFormat } from '@clickhouse/client';
import type { Config } from '../../platform/config';
import { bindParams, loadNamedQuery, namedQueryNames, parseTimeParam } from '../../dashboards/named-queries';
import { openStore } from './connection';
import { quoteIdent } from './ddl';
import { StoreQueryFailedError, StoreQueryRefusedError, StoreQueryUnknownError, StoreUnreachableError } from './errors';

export type OutputFormat = 'table' | 'json' | 'csv';

/** ClickHouse output format per `--format`: an aligned table, JSON lines, CSV with a header row. */
export const CLICKHOUSE_FORMAT: Record<OutputFormat, string> = {
  table: 'PrettyCompactMonoBlock',
  json: 'JSONEachRow',
  csv: 'CSVWithNames',
};

/** ClickHouse's error code for "Cannot execute query in readonly mode" and friends. */
const READONLY_ERROR = '164';

/** The named queries (dashboards/sql), by name. */
export function namedQueries(): string[] {
  return namedQueryNames();
}

/** A bare name (letters, digits, dashes) is a named query; anything else is SQL text. */
export function isQueryName(text: string): boolean {
  return /^[a-z0-9][a-z0-9-]*$/.test(text.trim());
}

/**
 * `--since`: a duration back from now (`90s`, `30m`, `24h`, `7d`) or an ISO 8601 time. Returns
 * DateTime64 text (seconds.nanoseconds, UTC).
 */
export function parseSince(text: string, now = Date.now()): string {
  const parsed = parseTimeParam(text, now);
  if (parsed === null || text.trim() === 'now') {
    throw new StoreQueryRefusedError(`--since ${JSON.stringify(text)} is neither a duration (90s, 30m, 24h, 7d) nor an ISO 8601 time`);
  }
  return parsed;
}

export interface QueryRequest {
  /** A named query from dashboards/sql, or SQL text. */
  query: string;
  format: OutputFormat;
  /**
   * Start of the time range (any form parseTimeParam reads), bound to {from:…} and, for ad-hoc SQL, to
   * {since:…}; default 24 hours back.
   */
  from?: string;
  /** End of the time range, bound to {to:…}; default now. */
  to?: string;
  /** Further {name:Type} parameters, as text. */
  params: Record<string, string>;
}

/** The parameters a SQL text declares: `{name:Type}`. */
export function declaredParams(sql: string): string[] {
  return [...new Set([...sql.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*):[^}]+\}/g)].map((m) => m[1]!))];
}

/**
 * The SQL text and bound parameters of a request. A named query binds through its catalogue entry
 * (defaults, required parameters, time range); ad-hoc SQL gets the time range as {from}, {to} and
 * {since} when it declares them and must be given every other parameter it declares.
 */
export function prepareQuery(request: QueryRequest, now = Date.now()): { sql: string; params: Record<string, string> } {
  const given: Record<string, string> = { ...request.params };
  if (request.from !== undefined) given.from = request.from;
  if (request.to !== undefined) given.to = request.to;
  if (isQueryName(request.query)) {
    const named = loadNamedQuery(request.query.trim());
    if (named === undefined) throw new StoreQueryUnknownError(request.query.trim(), namedQueries());
    return { sql: named.sql, params: bindParams(named, given, now) };
  }
  const sql = request.query;
  const declared = declaredParams(sql);
  const params: Record<string, string> = {};
  const range = { from: given.from ?? '24h', to: given.to ?? 'now' };
  for (const name of declared) {
    if (name === 'from' || name === 'since' || name === 'to') {
      const text = name === 'to' ? range.to : (given[name] ?? range.from);
      const parsed = parseTimeParam(text, now);
      if (parsed === null) throw new StoreQueryRefusedError(`${name} ${JSON.stringify(text)} is neither a duration (90s, 30m, 24h, 7d), "now", nor an ISO 8601 time`);
      params[name] = parsed;
    } else if (given[name] !== undefined) {
      params[name] = given[name]!;
    }
  }
  const missing = declared.filter((name) => params[name] === undefined);
  if (missing.length > 0) {
    throw new StoreQueryRefusedError(`the query needs ${missing.map((m) => `--param ${m}=<value>`).join(' ')}`);
  }
  return { sql, params };
}

/**
 * Runs a named query or ad-hoc SQL against the configured store and returns the formatted output.
 * The connection is opened with ClickHouse's `readonly = 1`, so the engine refuses any write, DDL or
 * settings change, however the SQL is spelt.
 */
export async function runQuery(config: Config, request: QueryRequest): Promise<string> {
  const { sql, params } = prepareQuery(request);
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
      query_params: Object.keys(params).length > 0 ? params : undefined,
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

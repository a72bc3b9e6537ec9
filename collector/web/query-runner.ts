import type { DataFormat } from '@clickhouse/client';
import type { Store } from '../store/connection';
import { quoteIdent } from '../store/ddl';
import { describeCause } from '../../platform/errors';
import { CLICKHOUSE_FORMAT, type OutputFormat } from '../store/query';
import { WebRequestRefusedError } from './errors';
import type { NamedQuery } from '../../dashboards/named-queries';

export interface QueryColumn {
  name: string;
  type: string;
}

export interface QueryPage {
  query: string;
  columns: QueryColumn[];
  rows: Record<string, unknown>[];
  offset: number;
  limit: number;
  /** Another page follows: the store returned one row more than asked for. */
  hasMore: boolean;
  elapsedMs: number;
}

/**
 * ClickHouse error codes the API answers as the client's fault or as a timeout rather than a failure
 * (ErrorCodes.cpp). 395 is throwIf(), which the named queries use to refuse a bad parameter value.
 */
enum ClickHouseErrorCode {
  CannotParseText = '6',
  CannotParseQuotedString = '26',
  CannotParseInputAssertionFailed = '27',
  CannotParseDateTime = '41',
  TypeMismatch = '53',
  BadArguments = '36',
  TimeoutExceeded = '159',
  Readonly = '164',
  FunctionThrowIfValueIsNonZero = '395',
  BadQueryParameter = '456',
}

const CLIENT_FAULTS: ReadonlySet<string> = new Set([
  ClickHouseErrorCode.CannotParseText,
  ClickHouseErrorCode.CannotParseQuotedString,
  ClickHouseErrorCode.CannotParseInputAssertionFailed,
  ClickHouseErrorCode.CannotParseDateTime,
  ClickHouseErrorCode.TypeMismatch,
  ClickHouseErrorCode.BadArguments,
  ClickHouseErrorCode.FunctionThrowIfValueIsNonZero,
  ClickHouseErrorCode.BadQueryParameter,
]);

/**
 * Runs named queries on a read-only store connection (ClickHouse `readonly = 1`: the engine refuses any
 * write whatever the SQL says). Paging wraps the named query as a subquery and reads one row past the
 * page, so no page costs a count of the whole result; the query itself does the filtering and grouping.
 */
export class QueryRunner {
  private readonly store: Store;
  private selected: Promise<void> | null = null;

  constructor(store: Store) {
    this.store = store;
  }

  async page(query: NamedQuery, params: Record<string, string>, page: { limit: number; offset: number }): Promise<QueryPage> {
    const started = performance.now();
    const sql = `SELECT * FROM (\n${body(query.sql)}\n) LIMIT ${page.limit + 1} OFFSET ${page.offset}`;
    const result = await this.run(query.name, sql, 'JSON', params);
    const json = (await result.json()) as { meta: QueryColumn[]; data: Record<string, unknown>[] };
    const hasMore = json.data.length > page.limit;
    return {
      query: query.name,
      columns: json.meta.map((c) => ({ name: c.name, type: c.type })),
      rows: hasMore ? json.data.slice(0, page.limit) : json.data,
      offset: page.offset,
      limit: page.limit,
      hasMore,
      elapsedMs: Math.round(performance.now() - started),
    };
  }

  /** The whole result as `gapwatch query --format` prints it (the CLI's path while the store is busy). */
  async text(query: NamedQuery, params: Record<string, string>, format: OutputFormat): Promise<string> {
    const result = await this.run(query.name, body(query.sql), CLICKHOUSE_FORMAT[format], params);
    return result.text();
  }

  private async run(name: string, sql: string, format: string, params: Record<string, string>) {
    try {
      await this.selectDatabase();
      return await this.store.client.query({ query: sql, format: format as DataFormat, query_params: params });
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? '');
      if (code === ClickHouseErrorCode.Readonly) throw new WebRequestRefusedError(403, 'WEB_ERR_WRITE_REFUSED', `query ${name} was refused as a write: the web API only reads`);
      if (CLIENT_FAULTS.has(code)) throw new WebRequestRefusedError(400, 'WEB_ERR_BAD_PARAMETER', `query ${name} refused its parameters: ${describeCause(err)}`);
      if (code === ClickHouseErrorCode.TimeoutExceeded) throw new WebRequestRefusedError(504, 'WEB_ERR_QUERY_TIMEOUT', `query ${name} ran past collector.web.queryTimeoutSeconds: narrow the time range or filters`);
      throw new WebRequestRefusedError(500, 'STORE_ERR_QUERY_FAILED', `query ${name} failed: ${describeCause(err)}`);
    }
  }

  /** A server takes the database from the client's settings; the embedded engine from its session. */
  private selectDatabase(): Promise<void> {
    if (this.store.kind !== 'embedded') return Promise.resolve();
    this.selected ??= this.store.client
      .command({ query: `USE ${quoteIdent(this.store.dialect.database)}` })
      .then(() => undefined)
      .catch((err: unknown) => {
        this.selected = null;
        throw err;
      });
    return this.selected;
  }
}

/** The SQL of a named query without a final semicolon, so it can stand as a subquery. */
function body(sql: string): string {
  return sql.replace(/;\s*$/, '');
}

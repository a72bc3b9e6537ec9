import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dateTime64, DATETIME64_TEXT } from '../collector/store/time';
import { packageRoot } from '../platform/package-root';
import { DashboardQueryHeaderError, DashboardQueryParamError } from './errors';

/**
 * The named gap-analysis queries: one SQL file per question in dashboards/sql, run as they are by
 * `gapwatch query`, the collector's web API and (through dashboards/grafana-dashboard.ts) Grafana.
 *
 * A file starts with a header of `--` lines:
 *
 *     -- <name>: <the question it answers, possibly over several lines>
 *     -- @param <name> <Type> [= <default>] [| <what it is>]
 *     -- <notes for maintainers: which sorting key or index the query relies on>
 *
 * Parameters are ClickHouse query parameters (`{name:Type}`) bound by the engine, never spliced into
 * the text. Every query accepts the standard set (from, to, host, resource, agent); a file declares with
 * `@param` only the parameters of its own, and one declared without a default is required.
 */

export interface QueryParam {
  name: string;
  /** The ClickHouse type the SQL binds it as (`{name:Type}`). */
  type: string;
  /** The value used when none is given; undefined when the parameter is required. */
  defaultValue: string | undefined;
  doc: string;
  /** One of STANDARD_PARAMS (every query accepts these, whether its SQL uses them or not). */
  standard: boolean;
}

export interface NamedQuery {
  name: string;
  /** The question the query answers (the first paragraph of its header). */
  question: string;
  /** The rest of the header: how the query reads the tables. */
  notes: string;
  /** Every parameter the SQL declares, standard ones first, in the order of STANDARD_PARAMS, then the file's own. */
  params: QueryParam[];
  sql: string;
}

export interface StandardParam {
  name: string;
  type: string;
  doc: string;
}

/** The parameters every named query accepts; an empty host, resource or agent means all. */
export const STANDARD_PARAMS: readonly StandardParam[] = [
  { name: 'from', type: "DateTime64(9, 'UTC')", doc: 'start of the time range (inclusive); default 24 hours ago' },
  { name: 'to', type: "DateTime64(9, 'UTC')", doc: 'end of the time range (exclusive); default now' },
  { name: 'host', type: 'String', doc: 'one host, or empty for all' },
  { name: 'resource', type: 'String', doc: 'one protected resource, or empty for all' },
  {
    name: 'agent',
    type: 'String',
    doc: "one agent, or empty for all: runs whose own exec has this comm or binary name, or mention it in their command line",
  },
];

const STANDARD_NAMES = new Set(STANDARD_PARAMS.map((p) => p.name));

/** The default time range when none is given: the last 24 hours. */
export const DEFAULT_RANGE_MS = 24 * 3600_000;

export function namedQueriesDir(): string {
  return join(packageRoot(), 'dashboards', 'sql');
}

export function namedQueryNames(dir = namedQueriesDir()): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .map((f) => f.slice(0, -4))
    .sort();
}

/** `{name:Type}` occurrences of a SQL text, first occurrence of each name, with its type. */
export function declaredParamTypes(sql: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const match of sql.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*):([^}]+)\}/g)) {
    if (!types.has(match[1]!)) types.set(match[1]!, match[2]!.trim());
  }
  return types;
}

const PARAM_LINE = /^@param\s+([A-Za-z_][A-Za-z0-9_]*)\s+(\S+)(?:\s+=\s?([^|]*?))?\s*(?:\|\s*(.*))?$/;

export function parseNamedQuery(name: string, text: string, file = `${name}.sql`): NamedQuery {
  const header: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('--')) break;
    header.push(line.replace(/^--\s?/, ''));
  }
  const first = header[0] ?? '';
  const prefix = `${name}: `;
  if (!first.startsWith(prefix)) throw new DashboardQueryHeaderError(file, `the first line must be "-- ${name}: <question>"`);

  const question: string[] = [first.slice(prefix.length)];
  const notes: string[] = [];
  const own = new Map<string, { type: string; defaultValue: string | undefined; doc: string }>();
  let section: 'question' | 'params' | 'notes' = 'question';
  for (const line of header.slice(1)) {
    const param = PARAM_LINE.exec(line);
    if (line.startsWith('@param')) {
      if (!param) throw new DashboardQueryHeaderError(file, `cannot read "${line}"`);
      own.set(param[1]!, { type: param[2]!, defaultValue: param[3]?.trim(), doc: param[4]?.trim() ?? '' });
      section = 'params';
    } else if (section === 'question') {
      question.push(line);
    } else {
      notes.push(line);
      section = 'notes';
    }
  }

  const sql = text;
  const declared = declaredParamTypes(sql);
  const params: QueryParam[] = [];
  for (const standard of STANDARD_PARAMS) {
    const type = declared.get(standard.name);
    if (type === undefined) continue;
    if (type !== standard.type) throw new DashboardQueryHeaderError(file, `{${standard.name}:${type}} must be {${standard.name}:${standard.type}}`);
    params.push({ name: standard.name, type, defaultValue: undefined, doc: standard.doc, standard: true });
  }
  for (const [param, type] of declared) {
    if (STANDARD_NAMES.has(param)) continue;
    const declaration = own.get(param);
    if (declaration === undefined) throw new DashboardQueryHeaderError(file, `{${param}:${type}} has no "-- @param ${param} ${type} …" line`);
    if (declaration.type !== type) throw new DashboardQueryHeaderError(file, `@param ${param} says ${declaration.type} but the SQL binds {${param}:${type}}`);
    params.push({ name: param, type, defaultValue: declaration.defaultValue, doc: declaration.doc, standard: false });
  }
  for (const param of own.keys()) {
    if (!declared.has(param)) throw new DashboardQueryHeaderError(file, `@param ${param} is not used by the SQL`);
  }
  return { name, question: question.join(' ').trim(), notes: notes.join(' ').trim(), params, sql };
}

export function loadNamedQuery(name: string, dir = namedQueriesDir()): NamedQuery | undefined {
  if (!namedQueryNames(dir).includes(name)) return undefined;
  return parseNamedQuery(name, readFileSync(join(dir, `${name}.sql`), 'utf8'));
}

export function loadNamedQueries(dir = namedQueriesDir()): NamedQuery[] {
  return namedQueryNames(dir).map((name) => loadNamedQuery(name, dir)!);
}

/**
 * A point in time for `from`/`to`: `now`, a duration back from now (`90s`, `30m`, `24h`, `7d`), an ISO
 * 8601 time, or DateTime64 text. Returns DateTime64 text (UTC, nanoseconds), or null when unreadable.
 */
export function parseTimeParam(text: string, now = Date.now()): string | null {
  const value = text.trim();
  if (value === 'now') return dateTime64(BigInt(now) * 1_000_000n);
  const duration = /^(\d+)(s|m|h|d)$/.exec(value);
  if (duration) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[duration[2] as 's' | 'm' | 'h' | 'd'];
    return dateTime64(BigInt(now - Number(duration[1]) * unit) * 1_000_000n);
  }
  // DateTime64 text keeps its nanoseconds; a JavaScript Date would round them to milliseconds.
  if (DATETIME64_TEXT.test(value)) return value;
  if (/^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2})?$/.test(value)) return `${value.length === 10 ? `${value} 00:00:00` : value}.000000000`;
  const time = Date.parse(value);
  if (!Number.isNaN(time) && /^\d{4}-\d{2}-\d{2}T/.test(value)) return dateTime64(BigInt(time) * 1_000_000n);
  return null;
}

const UNSIGNED = /^(UInt8|UInt16|UInt32|UInt64)$/;

/**
 * The query parameters to send with a named query: the values given, defaults for the rest, checked
 * where a wrong value would otherwise surface as an engine error far from its cause. Standard
 * parameters the SQL does not use are dropped (every query accepts them); any other unknown name is
 * refused, since it is most likely a misspelling.
 */
export function bindParams(query: NamedQuery, given: Readonly<Record<string, string>>, now = Date.now()): Record<string, string> {
  const known = new Map(query.params.map((p) => [p.name, p]));
  for (const name of Object.keys(given)) {
    if (!known.has(name) && !STANDARD_NAMES.has(name)) {
      throw new DashboardQueryParamError(query.name, name, `is not one this query takes; it takes ${[...STANDARD_NAMES, ...query.params.filter((p) => !p.standard).map((p) => p.name)].join(', ')}`);
    }
  }
  const bound: Record<string, string> = {};
  for (const param of query.params) {
    const text = given[param.name];
    if (param.name === 'from' || param.name === 'to') {
      const fallback = param.name === 'from' ? dateTime64(BigInt(now - DEFAULT_RANGE_MS) * 1_000_000n) : dateTime64(BigInt(now) * 1_000_000n);
      const parsed = text === undefined || text === '' ? fallback : parseTimeParam(text, now);
      if (parsed === null) throw new DashboardQueryParamError(query.name, param.name, `${JSON.stringify(text)} is neither a duration back from now (90s, 30m, 24h, 7d), "now", nor an ISO 8601 time`);
      bound[param.name] = parsed;
      continue;
    }
    const value = text ?? (param.standard ? '' : param.defaultValue);
    if (value === undefined) {
      throw new DashboardQueryParamError(query.name, param.name, `is required (--param ${param.name}=<value>${param.doc ? `: ${param.doc}` : ''})`);
    }
    if (UNSIGNED.test(param.type) && !/^\d+$/.test(value)) throw new DashboardQueryParamError(query.name, param.name, `must be a whole number, not ${JSON.stringify(value)}`);
    bound[param.name] = value;
  }
  if (bound.from !== undefined && bound.to !== undefined && bound.from > bound.to) {
    throw new DashboardQueryParamError(query.name, 'from', `(${bound.from}) is after to (${bound.to})`);
  }
  return bound;
}

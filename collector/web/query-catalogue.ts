import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { namedQueries, namedQueriesDir, parseSince } from '../store/query';
import { dateTime64 } from '../store/time';
import { WebRequestRefusedError } from './errors';

/**
 * The named queries of dashboards/sql as the web API offers them: each file's header (what it answers,
 * its `-- @param name Type = default | doc` lines) and the `{name:Type}` placeholders its SQL binds.
 * The API runs these files and nothing else; parameters reach ClickHouse as bound query parameters,
 * never as SQL text.
 */

export interface QueryParam {
  name: string;
  /** The ClickHouse type of the placeholder, e.g. `DateTime64(9, 'UTC')`. */
  type: string;
  /** Used when the request does not give the parameter; null: the request must. */
  default: string | null;
  doc: string;
}

export interface NamedQuery {
  name: string;
  description: string;
  params: QueryParam[];
  sql: string;
}

/**
 * Parameters every query of the set may take (dashboards/sql/README.md): a time range and filters where
 * an empty value means "all". Their defaults apply when a query's header does not give its own.
 */
const COMMON_DEFAULTS: Readonly<Record<string, { default: string; doc: string }>> = {
  from: { default: '24h', doc: 'start of the time range: an ISO 8601 time, or a duration back from now (30m, 24h, 7d)' },
  to: { default: 'now', doc: 'end of the time range: an ISO 8601 time, a duration back from now, or now' },
  since: { default: '24h', doc: 'start of the time range: an ISO 8601 time, or a duration back from now (30m, 24h, 7d)' },
  host: { default: '', doc: 'only this host (empty: all)' },
  resource: { default: '', doc: 'only this protected resource (empty: all)' },
  agent: { default: '', doc: 'only runs of this agent (empty: all)' },
};

/** Longest parameter value accepted: filters are names and ids, not documents. */
const MAX_PARAM_CHARS = 4096;

export function parseNamedQuery(name: string, sql: string): NamedQuery {
  const header: string[] = [];
  for (const line of sql.split('\n')) {
    const comment = /^\s*--\s?(.*)$/.exec(line);
    if (!comment) break;
    header.push(comment[1]!);
  }
  const documented = new Map<string, { default: string | null; doc: string }>();
  const description: string[] = [];
  let inDescription = true;
  for (const line of header) {
    const param = /^@param\s+([A-Za-z_][A-Za-z0-9_]*)\s+\S+(?:\s*=\s*([^|]*?))?\s*(?:\|\s*(.*))?$/.exec(line.trim());
    if (param) {
      inDescription = false;
      documented.set(param[1]!, { default: param[2] === undefined ? null : param[2].trim(), doc: (param[3] ?? '').trim() });
    } else if (inDescription) {
      description.push(line.trim());
    }
  }
  const params = [...sql.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*):([^}]+)\}/g)].reduce<QueryParam[]>((list, match) => {
    const paramName = match[1]!;
    if (list.some((p) => p.name === paramName)) return list;
    const doc = documented.get(paramName) ?? COMMON_DEFAULTS[paramName] ?? { default: null, doc: '' };
    list.push({ name: paramName, type: match[2]!.trim(), default: doc.default, doc: doc.doc });
    return list;
  }, []);
  const text = description.join(' ').replace(/\s+/g, ' ').trim();
  return { name, description: text.startsWith(`${name}:`) ? text.slice(name.length + 1).trim() : text, params, sql };
}

export class QueryCatalogue {
  private readonly dir: string;

  constructor(dir = namedQueriesDir()) {
    this.dir = dir;
  }

  /** Read from disk on each call: a query edited while the collector runs is served as edited. */
  list(): NamedQuery[] {
    return namedQueries(this.dir).map((name) => this.get(name)!);
  }

  get(name: string): NamedQuery | null {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || !namedQueries(this.dir).includes(name)) return null;
    return parseNamedQuery(name, readFileSync(join(this.dir, `${name}.sql`), 'utf8'));
  }
}

/**
 * Checks the request's parameters against the query's placeholders and turns them into the text
 * ClickHouse binds: unknown names are refused (a typo must not silently widen a filter), missing ones
 * take their default, times accept ISO 8601 or a duration back from now.
 */
export function bindParams(query: NamedQuery, given: Readonly<Record<string, string>>, now = Date.now()): Record<string, string> {
  const known = new Set(query.params.map((p) => p.name));
  const unknown = Object.keys(given).filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw refused(`query ${query.name} has no parameter ${unknown.join(', ')}; its parameters: ${[...known].join(', ') || '(none)'}`);
  }
  const bound: Record<string, string> = {};
  for (const param of query.params) {
    const value = given[param.name] ?? param.default;
    if (value === null) throw refused(`query ${query.name} needs the parameter ${param.name} (${param.type})${param.doc ? `: ${param.doc}` : ''}`);
    bound[param.name] = bindValue(query.name, param, value, now);
  }
  return bound;
}

function bindValue(queryName: string, param: QueryParam, value: string, now: number): string {
  if (value.length > MAX_PARAM_CHARS || value.includes('\0')) throw refused(`parameter ${param.name} of ${queryName} is longer than ${MAX_PARAM_CHARS} characters or holds a NUL`);
  const type = param.type.replace(/^(Nullable|LowCardinality)\((.*)\)$/, '$2');
  if (/^DateTime/.test(type)) return bindTime(queryName, param.name, value, now);
  if (/^UInt\d+$/.test(type)) {
    if (!/^\d{1,20}$/.test(value)) throw refused(`parameter ${param.name} of ${queryName} must be a whole number ≥ 0, not ${JSON.stringify(value)}`);
    return value;
  }
  if (/^Int\d+$/.test(type)) {
    if (!/^-?\d{1,19}$/.test(value)) throw refused(`parameter ${param.name} of ${queryName} must be a whole number, not ${JSON.stringify(value)}`);
    return value;
  }
  if (/^Float\d+$/.test(type)) {
    if (!/^-?\d+(\.\d+)?$/.test(value)) throw refused(`parameter ${param.name} of ${queryName} must be a number, not ${JSON.stringify(value)}`);
    return value;
  }
  return value;
}

function bindTime(queryName: string, name: string, value: string, now: number): string {
  const text = value.trim();
  if (text === 'now') return dateTime64(BigInt(now) * 1_000_000n);
  if (/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?$/.test(text)) return text;
  try {
    return parseSince(text, now);
  } catch {
    throw refused(`parameter ${name} of ${queryName} must be an ISO 8601 time, a duration back from now (30m, 24h, 7d) or now, not ${JSON.stringify(value)}`);
  }
}

function refused(message: string): WebRequestRefusedError {
  return new WebRequestRefusedError(400, 'WEB_ERR_BAD_PARAMETER', message);
}

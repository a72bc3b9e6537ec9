import { DashboardQueryParamError } from './errors';
import type { NamedQuery } from './named-queries';

/**
 * The Grafana dashboard (dashboards/grafana/gapwatch-analyst.json), built from the named queries: each
 * panel's SQL is a named query file with its `{name:Type}` parameters replaced by what Grafana fills in
 * — time macros of the ClickHouse data source plugin, dashboard variables, or a literal the panel fixes
 * (such as coverage's group_by). No query text is written here.
 *
 * Target: the Grafana ClickHouse data source plugin (grafana-clickhouse-datasource) 4.3.2, Grafana 10+.
 * Its macros (pkg/macros/macros.go in the plugin): `$__fromTime_ms` / `$__toTime_ms` expand to
 * `fromUnixTimestamp64Milli(<ms>)` (a DateTime64(3), since 4.0.3), `$__interval_s` to the panel
 * interval in whole seconds (at least 1). Grafana formats `${var:sqlstring}` as a quoted SQL string
 * with ' doubled; a custom "All" value is inserted as it is, unformatted.
 */

export const PLUGIN_ID = 'grafana-clickhouse-datasource';
export const PLUGIN_VERSION = '4.3.2';
export const DASHBOARD_UID = 'gapwatch-analyst';

/** The "All" choice of the host/resource/agent variables: an empty SQL string, which the queries read as "all". */
export const ALL_VALUE = "''";

/** Query parameters the dashboard's own variables fill, by name. */
const VARIABLE_PARAMS = ['host', 'resource', 'agent', 'agent_run', 'session_id', 'alert_id'] as const;

type PanelKind = 'stat' | 'timeseries' | 'table';

export interface PanelSpec {
  title: string;
  query: string;
  kind: PanelKind;
  /** Literal values for the query's own parameters (others take their defaults, or a variable). */
  params?: Record<string, string>;
  width: number;
  height: number;
  /** For stat panels: the columns shown. */
  fields?: string[];
}

/** Panels in reading order; the layout fills rows of 24 grid units left to right. */
export const PANELS: readonly PanelSpec[] = [
  { title: 'Overview', query: 'overview', kind: 'stat', width: 24, height: 5, fields: ['coverage_pct', 'bypass', 'bypass_change', 'bypass_agent_runs', 'alerts', 'unattributed_sessions', 'audit_gaps'] },
  { title: 'Mediated and bypass connects', query: 'coverage-trend', kind: 'timeseries', width: 24, height: 8 },
  { title: 'Coverage by resource', query: 'coverage', kind: 'table', params: { group_by: 'resource' }, width: 12, height: 8 },
  { title: 'Coverage by agent', query: 'coverage', kind: 'table', params: { group_by: 'agent' }, width: 12, height: 8 },
  { title: 'Coverage by host', query: 'coverage', kind: 'table', params: { group_by: 'host' }, width: 12, height: 8 },
  { title: 'Coverage by day', query: 'coverage', kind: 'table', params: { group_by: 'day' }, width: 12, height: 8 },
  { title: 'Top bypassing agent runs', query: 'bypass-by-agent-run', kind: 'table', width: 24, height: 8 },
  { title: 'Bypass by binary', query: 'bypass-by-binary', kind: 'table', width: 12, height: 8 },
  { title: 'Bypass by host', query: 'bypass-by-host', kind: 'table', width: 12, height: 8 },
  { title: 'Alerts', query: 'recent-alerts', kind: 'table', width: 24, height: 8 },
  { title: 'Secrets seen in argv', query: 'secrets-in-argv', kind: 'table', width: 12, height: 8 },
  { title: 'Audit gaps', query: 'audit-gaps', kind: 'table', width: 12, height: 8 },
  { title: 'Gateway sessions', query: 'sessions', kind: 'table', width: 24, height: 8 },
  { title: 'Sessions without host attribution', query: 'unattributed-sessions', kind: 'table', width: 12, height: 8 },
  { title: 'Sessions by identity', query: 'sessions-by-identity', kind: 'table', width: 12, height: 8 },
  { title: 'Agent run timeline ($agent_run)', query: 'agent-run-timeline', kind: 'table', width: 24, height: 10 },
  { title: 'Session ($session_id)', query: 'session-detail', kind: 'table', width: 24, height: 5 },
  { title: 'Session events ($session_id)', query: 'session-drill-down', kind: 'table', width: 24, height: 10 },
  { title: 'Alert and lineage ($alert_id)', query: 'alert-detail', kind: 'table', width: 24, height: 8 },
];

function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** What Grafana fills in for one `{name:Type}` of a named query in a panel. */
function grafanaValue(query: NamedQuery, name: string, type: string, literals: Readonly<Record<string, string>>): string {
  if (name === 'from') return `toDateTime64($__fromTime_ms, 9, 'UTC')`;
  if (name === 'to') return `toDateTime64($__toTime_ms, 9, 'UTC')`;
  if (name === 'bucket_s') return '$__interval_s';
  if ((VARIABLE_PARAMS as readonly string[]).includes(name)) return `\${${name}:sqlstring}`;
  const value = literals[name] ?? query.params.find((p) => p.name === name)?.defaultValue;
  if (value === undefined) throw new DashboardQueryParamError(query.name, name, 'has no default and no dashboard variable or panel value for Grafana');
  return type === 'String' ? sqlString(value) : `CAST(${sqlString(value)} AS ${type})`;
}

/** A named query's SQL as a Grafana panel runs it. */
export function grafanaSql(query: NamedQuery, literals: Readonly<Record<string, string>> = {}): string {
  return query.sql.replace(/\{([A-Za-z_][A-Za-z0-9_]*):([^}]+)\}/g, (_, name: string, type: string) => grafanaValue(query, name, type.trim(), literals));
}

const DATASOURCE = { type: PLUGIN_ID, uid: '${datasource}' };

function target(query: NamedQuery, spec: PanelSpec): Record<string, unknown> {
  const timeSeries = spec.kind === 'timeseries';
  return {
    datasource: DATASOURCE,
    editorType: 'sql',
    // The plugin's Format: 0 time series, 1 table.
    format: timeSeries ? 0 : 1,
    queryType: timeSeries ? 'timeSeries' : 'table',
    pluginVersion: PLUGIN_VERSION,
    rawSql: grafanaSql(query, spec.params),
    refId: 'A',
  };
}

/** Clicking an agent run, session or alert id opens its detail panels (the variable the id fills). */
const LINKED_COLUMNS: Readonly<Record<string, string>> = { agent_run: 'agent_run', session_id: 'session_id', alert_id: 'alert_id' };

function overrides(): unknown[] {
  return Object.entries(LINKED_COLUMNS).map(([column, variable]) => ({
    matcher: { id: 'byName', options: column },
    properties: [
      {
        id: 'links',
        value: [{ title: `Show ${column}`, url: `/d/${DASHBOARD_UID}/gapwatch?\${__url_time_range}&\${datasource:queryparam}&var-${variable}=\${__value.raw}` }],
      },
    ],
  }));
}

function panel(query: NamedQuery, spec: PanelSpec, id: number, gridPos: { x: number; y: number; w: number; h: number }): Record<string, unknown> {
  const base = {
    id,
    type: spec.kind,
    title: spec.title,
    description: `${query.question} (dashboards/sql/${query.name}.sql)`,
    datasource: DATASOURCE,
    gridPos,
    targets: [target(query, spec)],
  };
  switch (spec.kind) {
    case 'stat':
      return {
        ...base,
        fieldConfig: { defaults: {}, overrides: [{ matcher: { id: 'byName', options: 'coverage_pct' }, properties: [{ id: 'unit', value: 'percent' }] }] },
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: `/^(${spec.fields!.join('|')})$/`, values: false },
          colorMode: 'value',
          graphMode: 'none',
          textMode: 'value_and_name',
        },
      };
    case 'timeseries':
      return {
        ...base,
        fieldConfig: { defaults: { custom: { drawStyle: 'bars', stacking: { mode: 'normal' } } }, overrides: [{ matcher: { id: 'byName', options: 'coverage_pct' }, properties: [{ id: 'custom.hideFrom', value: { viz: true, legend: true, tooltip: false } }] }] },
        options: { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
      };
    case 'table':
      return { ...base, fieldConfig: { defaults: {}, overrides: overrides() }, options: { showHeader: true } };
  }
}

function queryVariable(name: string, label: string, sql: string): Record<string, unknown> {
  return {
    type: 'query',
    name,
    label,
    datasource: DATASOURCE,
    query: sql,
    definition: sql,
    includeAll: true,
    allValue: ALL_VALUE,
    multi: false,
    current: { selected: true, text: 'All', value: '$__all' },
    refresh: 2,
    sort: 1,
  };
}

function textVariable(name: string, label: string): Record<string, unknown> {
  return { type: 'textbox', name, label, query: '', current: { text: '', value: '' } };
}

/** Sources of the host, resource and agent choices (run as they are; the test runs them too). */
export const VARIABLE_QUERIES: Readonly<Record<'host' | 'resource' | 'agent', string>> = {
  host: 'SELECT host FROM (SELECT DISTINCT host FROM process_events UNION DISTINCT SELECT DISTINCT host FROM connect_events) ORDER BY host',
  resource:
    "SELECT resource FROM (SELECT DISTINCT resource FROM connect_events WHERE resource != '' UNION DISTINCT SELECT DISTINCT toString(resource) FROM gateway_sessions) ORDER BY resource",
  agent: 'SELECT DISTINCT comm FROM process_execs WHERE exec_id = agent_run ORDER BY comm',
};

export function buildDashboard(queries: readonly NamedQuery[]): Record<string, unknown> {
  const byName = new Map(queries.map((q) => [q.name, q]));
  const panels: Record<string, unknown>[] = [];
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  PANELS.forEach((spec, index) => {
    const query = byName.get(spec.query);
    if (query === undefined) throw new DashboardQueryParamError(spec.query, '(panel)', `is used by the Grafana panel "${spec.title}" but there is no dashboards/sql/${spec.query}.sql`);
    if (x + spec.width > 24) {
      x = 0;
      y += rowHeight;
      rowHeight = 0;
    }
    panels.push(panel(query, spec, index + 1, { x, y, w: spec.width, h: spec.height }));
    x += spec.width;
    rowHeight = Math.max(rowHeight, spec.height);
  });
  return {
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: PLUGIN_ID, name: 'ClickHouse', version: PLUGIN_VERSION },
    ],
    uid: DASHBOARD_UID,
    title: 'gapwatch: gap analysis',
    description: `Generated from dashboards/sql by dashboards/grafana-dashboard.ts for ${PLUGIN_ID} ${PLUGIN_VERSION}; do not edit by hand. The data source's default database must be the gapwatch store database.`,
    tags: ['gapwatch'],
    editable: true,
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-24h', to: 'now' },
    timepicker: {},
    timezone: 'utc',
    refresh: '',
    links: [],
    annotations: { list: [] },
    templating: {
      list: [
        { type: 'datasource', name: 'datasource', label: 'ClickHouse', query: PLUGIN_ID, current: {}, hide: 0, refresh: 1, regex: '' },
        queryVariable('host', 'Host', VARIABLE_QUERIES.host),
        queryVariable('resource', 'Resource', VARIABLE_QUERIES.resource),
        queryVariable('agent', 'Agent', VARIABLE_QUERIES.agent),
        textVariable('agent_run', 'Agent run'),
        textVariable('session_id', 'Session'),
        textVariable('alert_id', 'Alert'),
      ],
    },
    panels,
  };
}

export function renderDashboard(queries: readonly NamedQuery[]): string {
  return `${JSON.stringify(buildDashboard(queries), null, 2)}\n`;
}

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore, type Store } from '../../collector/store/connection';
import { migrate } from '../../collector/store/migration';
import { columnsFromEmptyStore, GRAFANA_DASHBOARD_FILE, QUERY_REFERENCE_FILE } from '../../dashboards/generate';
import { ALL_VALUE, DASHBOARD_UID, grafanaSql, PANELS, PLUGIN_ID, PLUGIN_VERSION, renderDashboard, VARIABLE_QUERIES } from '../../dashboards/grafana-dashboard';
import { bindParams, loadNamedQueries, type NamedQuery } from '../../dashboards/named-queries';
import { renderQueryReference } from '../../dashboards/query-reference';
import { packageRoot } from '../../platform/package-root';
import { tempConfig } from '../collector/store/store-fixture';
import { BASE_MS, RUN_A, seedStore } from './seed-store';

interface Target {
  datasource: { type: string; uid: string };
  editorType: string;
  format: number;
  queryType: string;
  rawSql: string;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets: Target[];
}

interface Variable {
  type: string;
  name: string;
  query: string;
  allValue?: string;
  includeAll?: boolean;
  datasource?: { type: string; uid: string };
}

interface Dashboard {
  uid: string;
  __requires: Array<{ id: string; version: string }>;
  templating: { list: Variable[] };
  panels: Panel[];
}

/**
 * What Grafana and the plugin do to a panel's SQL before ClickHouse sees it: the plugin's time macros
 * (fromUnixTimestamp64Milli of the range in milliseconds, the interval in whole seconds) and Grafana's
 * `${var:sqlstring}` formatting ('-quoted, ' doubled; the custom All value inserted unformatted).
 */
function expandLikeGrafana(sql: string, range: { fromMs: number; toMs: number; intervalS: number }, variables: Record<string, string | 'All'>, allValues: Record<string, string>): string {
  return sql
    .replace(/\$__fromTime_ms/g, `fromUnixTimestamp64Milli(${range.fromMs})`)
    .replace(/\$__toTime_ms/g, `fromUnixTimestamp64Milli(${range.toMs})`)
    .replace(/\$__interval_s/g, String(Math.max(1, Math.floor(range.intervalS))))
    .replace(/\$\{([a-z_]+):sqlstring\}/g, (_, name: string) => {
      const value = variables[name];
      assert.ok(value !== undefined, `variable ${name} is set in the test`);
      if (value === 'All') return allValues[name]!;
      return `'${value.replace(/'/g, "''")}'`;
    });
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

async function rows(store: Store, sql: string, params?: Record<string, string>): Promise<unknown[]> {
  return (await store.client.query({ query: sql, query_params: params, format: 'JSONEachRow' })).json();
}

describe('dashboards/grafana: the dashboard generated from the named queries', function () {
  this.timeout(120_000);
  const queries = loadNamedQueries();
  const file = readFileSync(join(packageRoot(), GRAFANA_DASHBOARD_FILE), 'utf8');
  const dashboard = JSON.parse(file) as Dashboard;

  it('is the JSON the generator makes from dashboards/sql today (run `npm run dashboards:gen` after editing a query)', () => {
    assert.equal(file, renderDashboard(queries));
  });

  it('targets the ClickHouse data source plugin through a data-source variable, with host/resource/agent variables', () => {
    assert.equal(dashboard.uid, DASHBOARD_UID);
    assert.deepEqual(dashboard.__requires.find((r) => r.id === PLUGIN_ID)?.version, PLUGIN_VERSION);
    const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    assert.deepEqual([variables.get('datasource')?.type, variables.get('datasource')?.query], ['datasource', PLUGIN_ID]);
    for (const name of ['host', 'resource', 'agent']) {
      const variable = variables.get(name)!;
      assert.deepEqual([variable.type, variable.includeAll, variable.allValue, variable.datasource?.uid], ['query', true, ALL_VALUE, '${datasource}'], name);
    }
    for (const name of ['agent_run', 'session_id', 'alert_id']) assert.equal(variables.get(name)?.type, 'textbox', name);
    for (const panel of dashboard.panels) {
      assert.deepEqual(panel.datasource, { type: PLUGIN_ID, uid: '${datasource}' }, panel.title);
      assert.equal(panel.targets.length, 1);
      assert.equal(panel.targets[0]!.editorType, 'sql');
      assert.equal(panel.targets[0]!.datasource.uid, '${datasource}');
      assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, panel.title);
    }
  });

  it('has a panel for every named query, each panel SQL being its query file with the parameters replaced', () => {
    assert.deepEqual(new Set(PANELS.map((p) => p.query)), new Set(queries.map((q) => q.name)));
    for (const [index, spec] of PANELS.entries()) {
      const query = queries.find((q) => q.name === spec.query)!;
      const sql = dashboard.panels[index]!.targets[0]!.rawSql;
      assert.equal(sql, grafanaSql(query, spec.params));
      assert.doesNotMatch(sql, /(?<!\$)\{[a-z_]+:[^}]+\}/, `${spec.title}: no query parameter is left for Grafana to choke on`);
      // With the substitutions undone, the panel is the file's text: no second copy of the query.
      const skeleton = (text: string): string => text.replace(/(?<!\$)\{[a-z_]+:[^}]+\}/g, '?').replace(/toDateTime64\(\$__(from|to)Time_ms, 9, 'UTC'\)|\$\{[a-z_]+:sqlstring\}|\$__interval_s|CAST\('[^']*' AS \w+\)|'[a-z_]*'/g, '?');
      assert.equal(skeleton(sql), skeleton(query.sql), spec.title);
    }
  });

  describe('against the embedded engine with seeded data', () => {
    const config = tempConfig();
    let store: Store;

    before(async () => {
      store = await openStore(config);
      await migrate(store.client, store.dialect);
      await seedStore(store);
      await store.client.command({ query: `USE ${store.dialect.database}` });
    });

    after(async () => {
      await store?.close();
    });

    const range = { fromMs: BASE_MS - 3600_000, toMs: BASE_MS + 3600_000, intervalS: 60 };
    const allValues = { host: ALL_VALUE, resource: ALL_VALUE, agent: ALL_VALUE };

    /** The same query run as the named query with the dashboard's values, for comparison. */
    async function asNamed(query: NamedQuery, literals: Record<string, string>, variables: Record<string, string>): Promise<unknown[]> {
      const given: Record<string, string> = { from: iso(range.fromMs), to: iso(range.toMs), ...literals };
      for (const [name, value] of Object.entries(variables)) if (value !== 'All') given[name] = value;
      if (query.params.some((p) => p.name === 'bucket_s')) given.bucket_s = String(range.intervalS);
      const known = new Set(query.params.map((p) => p.name));
      return rows(store, query.sql, bindParams(query, Object.fromEntries(Object.entries(given).filter(([name]) => known.has(name)))));
    }

    for (const variables of [
      { host: 'All', resource: 'All', agent: 'All', agent_run: RUN_A, session_id: 'gw-s1', alert_id: 'al-bypass-a' },
      { host: 'host-a', resource: 'orders-db', agent: 'claude', agent_run: RUN_A, session_id: "gw-s1' OR '1'='1", alert_id: 'al-bypass-a' },
    ]) {
      it(`runs every panel with the macros expanded and gets what the named query returns (${variables.host === 'All' ? 'All' : 'host-a, orders-db, claude, a quote in session_id'})`, async () => {
        let nonEmpty = 0;
        for (const [index, spec] of PANELS.entries()) {
          const query = queries.find((q) => q.name === spec.query)!;
          const sql = expandLikeGrafana(dashboard.panels[index]!.targets[0]!.rawSql, range, variables, allValues);
          const panelRows = await rows(store, sql);
          assert.deepEqual(panelRows, await asNamed(query, spec.params ?? {}, variables), spec.title);
          if (panelRows.length > 0) nonEmpty++;
        }
        // A quote in a variable stays inside its string: the session panels then find nothing.
        assert.ok(nonEmpty >= (variables.host === 'All' ? PANELS.length : PANELS.length - 4), `${nonEmpty} panels returned rows`);
      });
    }

    it('runs the variable queries', async () => {
      assert.deepEqual((await rows(store, VARIABLE_QUERIES.host)).map((r) => (r as { host: string }).host), ['host-a', 'host-b']);
      assert.deepEqual((await rows(store, VARIABLE_QUERIES.resource)).map((r) => (r as { resource: string }).resource), ['billing-api', 'orders-db']);
      assert.deepEqual((await rows(store, VARIABLE_QUERIES.agent)).map((r) => (r as { comm: string }).comm), ['claude', 'codex']);
    });
  });

  it('dashboards/sql/README.md is the reference generated from the query files and the engine', async () => {
    const columns = await columnsFromEmptyStore(queries);
    assert.equal(readFileSync(join(packageRoot(), QUERY_REFERENCE_FILE), 'utf8'), renderQueryReference(queries, columns));
    assert.ok([...columns.values()].every((c) => c.length > 0));
    for (const [name, list] of columns) {
      if (name !== 'audit-gaps') assert.ok(list.some((c) => c.name === 'gap_overlap' && c.type === 'Bool'), `${name} marks rows overlapping audit gaps`);
    }
  });
});

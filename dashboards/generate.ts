import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../collector/store/connection';
import { migrate } from '../collector/store/migration';
import { parseConfig } from '../platform/config';
import { packageRoot } from '../platform/package-root';
import { renderDashboard } from './grafana-dashboard';
import { loadNamedQueries, type NamedQuery } from './named-queries';
import { renderQueryReference, resultColumns, type ResultColumn } from './query-reference';

/**
 * `npm run dashboards:gen`: writes what is generated from dashboards/sql — the query reference
 * (dashboards/sql/README.md) and the Grafana dashboard (dashboards/grafana/gapwatch-analyst.json).
 * The result columns come from an empty embedded store with the current schema.
 */

export const QUERY_REFERENCE_FILE = join('dashboards', 'sql', 'README.md');
export const GRAFANA_DASHBOARD_FILE = join('dashboards', 'grafana', 'gapwatch-analyst.json');

export async function columnsFromEmptyStore(queries: readonly NamedQuery[]): Promise<Map<string, ResultColumn[]>> {
  const dir = mkdtempSync(join(tmpdir(), 'gapwatch-dashboards-'));
  try {
    const store = await openStore(parseConfig(`dataDir: ${dir}\n`));
    try {
      await migrate(store.client, store.dialect);
      await store.client.command({ query: `USE ${store.dialect.database}` });
      const columns = new Map<string, ResultColumn[]>();
      for (const query of queries) columns.set(query.name, await resultColumns(store.client, query));
      return columns;
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const root = packageRoot();
  const queries = loadNamedQueries();
  const columns = await columnsFromEmptyStore(queries);
  writeFileSync(join(root, QUERY_REFERENCE_FILE), renderQueryReference(queries, columns));
  mkdirSync(join(root, 'dashboards', 'grafana'), { recursive: true });
  writeFileSync(join(root, GRAFANA_DASHBOARD_FILE), renderDashboard(queries));
  process.stdout.write(`wrote ${QUERY_REFERENCE_FILE} and ${GRAFANA_DASHBOARD_FILE} from ${queries.length} named queries\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}

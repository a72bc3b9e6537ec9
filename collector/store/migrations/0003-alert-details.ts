import { onCluster, qualified, storageTable, type Dialect } from '../ddl';
import type { Migration } from '../migration';

/**
 * What an alert carries beyond the first schema, so the store answers without a join what the sinks
 * already say: the detection rule, how many occurrences it stands for (de-duplication and the rate
 * limit fold them into one alert, never lose them) and the last one's time, the process (pid, name,
 * executable) with its lineage as parallel arrays (nearest ancestor first), the agent of the run, and
 * where the process went.
 *
 * Columns are appended (rows name their columns on insert, so older spooled batches stay valid). The
 * sort key stays (kind, time, alert_id): recent-alerts.sql still reads alerts of a kind over a time range.
 */
export const ALERT_DETAIL_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  alerts: [
    'rule LowCardinality(String)',
    'count UInt64 DEFAULT 1',
    "last_time DateTime64(9, 'UTC')",
    'pid UInt32',
    'comm String',
    'filename String',
    'lineage_exec_ids Array(String)',
    'lineage_pids Array(UInt32)',
    'lineage_comms Array(String)',
    'agent LowCardinality(String)',
    'destination String',
  ],
};

export const alertDetails: Migration = {
  version: 3,
  name: 'alert details',
  statements(dialect: Dialect): string[] {
    const statements: string[] = [];
    for (const [table, columns] of Object.entries(ALERT_DETAIL_COLUMNS)) {
      // On a cluster the per-shard tables and the Distributed table over them both carry the columns.
      const local = storageTable(dialect, table);
      for (const target of local === table ? [table] : [local, table]) {
        for (const column of columns) statements.push(`ALTER TABLE ${qualified(dialect, target)}${onCluster(dialect)} ADD COLUMN IF NOT EXISTS ${column}`);
      }
    }
    return statements;
  },
};

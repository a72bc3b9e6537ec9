import { createTable, onCluster, qualified, storageTable, type Dialect, type TableSpec } from '../ddl';
import type { Migration } from '../migration';

/**
 * Lookup tables for the dashboard queries (dashboards/sql), kept by materialized views:
 *
 * - process_execs: each process's exec record by exec_id. process_events is sorted by (agent_run, time),
 *   so "the binary of these processes" (bypass-by-binary, alert-detail, session-detail) otherwise reads
 *   and groups the whole table; here it is a key lookup.
 * - session_connects: the host connects joined with each gateway session, by session_id. connect_events
 *   is sorted by (verdict, agent_run, time), so "which process opened these sessions" (sessions,
 *   unattributed-sessions, session-detail, overview) otherwise scans every mediated connect in the range.
 *
 * Both are ReplacingMergeTree tables whose key is the row's identity, so the backfill of rows stored
 * before this migration and the view's own inserts may overlap (two processes migrating at once, rows
 * arriving during the backfill) without changing an answer: duplicates collapse, and the queries read
 * with argMax/any over the key. The backfill reads the whole source table once, when the migration runs.
 * On a cluster the views run on each shard's local table and write to the local lookup table; readers
 * use the Distributed table under the plain name.
 */

export const PROCESS_EXECS: TableSpec = {
  name: 'process_execs',
  columns: [
    'exec_id String',
    'host LowCardinality(String)',
    "time DateTime64(9, 'UTC')",
    'agent_run String',
    'parent_exec_id String',
    'pid UInt32',
    'uid UInt32',
    'comm LowCardinality(String)',
    'filename String',
    'argv Array(String)',
  ],
  // A process that execs again keeps its exec_id; the latest image wins.
  version: 'time',
  orderBy: 'exec_id',
  ttlColumn: 'time',
  shardingKey: 'cityHash64(exec_id)',
  comment: 'exec records by exec_id, kept from process_events by process_execs_mv; for dashboards/sql lookups',
};

export const SESSION_CONNECTS: TableSpec = {
  name: 'session_connects',
  columns: [
    'session_id String',
    'event_id String',
    'host LowCardinality(String)',
    "time DateTime64(9, 'UTC')",
    'exec_id String',
    'pid UInt32',
    'agent_run String',
    'resource LowCardinality(String)',
  ],
  orderBy: 'session_id, event_id',
  ttlColumn: 'time',
  shardingKey: 'cityHash64(session_id)',
  comment: 'host connects joined with a gateway session, by session_id, kept from connect_events by session_connects_mv',
};

/** What each lookup table holds, as a SELECT over its source table (`{source}`). */
export const PROCESS_EXECS_SELECT = "SELECT exec_id, host, time, agent_run, parent_exec_id, pid, uid, comm, filename, argv FROM {source} WHERE kind = 'exec'";
export const SESSION_CONNECTS_SELECT = "SELECT session_id, event_id, host, time, exec_id, pid, agent_run, resource FROM {source} WHERE session_id != ''";

function lookup(dialect: Dialect, spec: TableSpec, source: string, select: string): string[] {
  const view = `${spec.name}_mv`;
  const from = (table: string): string => select.replace('{source}', qualified(dialect, table));
  return [
    ...createTable(spec, dialect),
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${qualified(dialect, view)}${onCluster(dialect)} TO ${qualified(dialect, storageTable(dialect, spec.name))}\nAS ${from(storageTable(dialect, source))}`,
    `INSERT INTO ${qualified(dialect, spec.name)} ${from(source)}`,
  ];
}

export const dashboardLookups: Migration = {
  version: 5,
  name: 'dashboard lookups',
  statements(dialect: Dialect): string[] {
    return [...lookup(dialect, PROCESS_EXECS, 'process_events', PROCESS_EXECS_SELECT), ...lookup(dialect, SESSION_CONNECTS, 'connect_events', SESSION_CONNECTS_SELECT)];
  },
};

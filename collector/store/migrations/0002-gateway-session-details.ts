import { onCluster, qualified, storageTable, type Dialect } from '../ddl';
import type { Migration } from '../migration';

/**
 * What the PostgreSQL gateway records beyond the first schema: a session's byte counts, the database
 * the agent asked for, why it failed, and its startup parameters; the session event kinds it journals
 * (write-ahead `pg_request`, `copy`) and the review outcomes of policy decisions.
 *
 * Columns are appended (rows name their columns on insert, so older spooled batches stay valid) and
 * enums only gain values at the end, which ClickHouse applies as a metadata change.
 */
export const ADDED_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  gateway_sessions: [
    'bytes_from_client UInt64',
    'bytes_to_client UInt64',
    'database String',
    'failure String',
    'client_parameters Map(String, String)',
  ],
  gateway_session_events: ['copy_direction LowCardinality(String)', 'copy_bytes UInt64'],
};

const MODIFIED_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  gateway_session_events: [
    "kind Enum8('unspecified' = 0, 'statement' = 1, 'policy' = 2, 'shell_output' = 3, 'http' = 4, 'error' = 5, 'pg_request' = 6, 'copy' = 7)",
    "policy_action Enum8('unspecified' = 0, 'allow' = 1, 'deny' = 2, 'approved' = 3, 'rejected' = 4, 'mask' = 5, 'review' = 6, 'timed_out' = 7)",
  ],
};

/** On a cluster the per-shard tables and the Distributed table over them both carry the columns. */
function targets(dialect: Dialect, table: string): string[] {
  const local = storageTable(dialect, table);
  return local === table ? [table] : [local, table];
}

export const gatewaySessionDetails: Migration = {
  version: 2,
  name: 'gateway session details',
  statements(dialect: Dialect): string[] {
    const statements: string[] = [];
    for (const [table, columns] of Object.entries(ADDED_COLUMNS)) {
      for (const target of targets(dialect, table)) {
        for (const column of columns) statements.push(`ALTER TABLE ${qualified(dialect, target)}${onCluster(dialect)} ADD COLUMN IF NOT EXISTS ${column}`);
      }
    }
    for (const [table, columns] of Object.entries(MODIFIED_COLUMNS)) {
      for (const target of targets(dialect, table)) {
        for (const column of columns) statements.push(`ALTER TABLE ${qualified(dialect, target)}${onCluster(dialect)} MODIFY COLUMN IF EXISTS ${column}`);
      }
    }
    return statements;
  },
};

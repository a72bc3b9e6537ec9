import { onCluster, qualified, storageTable, type Dialect, type TableSpec } from '../ddl';
import type { Migration } from '../migration';
import { lookup } from './0005-dashboard-lookups';

/**
 * Replaces migration 0005's session_connects lookup with session_attribution, for two reasons:
 *
 * - Correctness. session_connects kept every connect carrying a session id, and the correlator also gives
 *   the gateway's own upstream leg its session's id (verdict 'other'). With the gateway on a sensored host,
 *   a session then had two "attributions", one of them the gateway process, and a session whose agent
 *   came from a host without the sensor counted as attributed by the gateway's leg alone — hiding it from
 *   unattributed-sessions, the view that exists to show exactly those. session_attribution keeps only
 *   the agent side: mediated connects joined with a session.
 * - Insert cost. Every connect insert feeds the view, so the lookup keeps only the columns the queries
 *   read (session_id → host, exec_id, pid, agent_run; event_id for the key, time for the TTL), and the
 *   bloom-filter index on connect_events.session_id, which no query uses since the lookup exists, is
 *   dropped: it hashed every connect's session id at every insert and merge.
 *
 * Safe to run twice and from two processes at once: the new table and view are created IF NOT EXISTS,
 * the backfill's duplicates collapse (ReplacingMergeTree on session_id, event_id; readers use any/DISTINCT),
 * and the drops are IF EXISTS.
 */
export const SESSION_ATTRIBUTION: TableSpec = {
  name: 'session_attribution',
  columns: [
    'session_id String',
    'event_id String',
    'host LowCardinality(String)',
    "time DateTime64(9, 'UTC')",
    'exec_id String',
    'pid UInt32',
    'agent_run String',
  ],
  orderBy: 'session_id, event_id',
  ttlColumn: 'time',
  shardingKey: 'cityHash64(session_id)',
  comment: 'the agent-side connect joined with each gateway session, by session_id, kept from connect_events by session_attribution_mv; for dashboards/sql lookups',
};

export const SESSION_ATTRIBUTION_SELECT =
  "SELECT session_id, event_id, host, time, exec_id, pid, agent_run FROM {source} WHERE session_id != '' AND verdict = 'mediated'";

export const sessionAttribution: Migration = {
  version: 7,
  name: 'session attribution',
  statements(dialect: Dialect): string[] {
    const cluster = onCluster(dialect);
    const oldTables = dialect.kind === 'cluster' ? ['session_connects', storageTable(dialect, 'session_connects')] : ['session_connects'];
    return [
      ...lookup(dialect, SESSION_ATTRIBUTION, 'connect_events', SESSION_ATTRIBUTION_SELECT),
      `DROP VIEW IF EXISTS ${qualified(dialect, 'session_connects_mv')}${cluster}`,
      ...oldTables.map((table) => `DROP TABLE IF EXISTS ${qualified(dialect, table)}${cluster}`),
      `ALTER TABLE ${qualified(dialect, storageTable(dialect, 'connect_events'))}${cluster} DROP INDEX IF EXISTS session_id_idx`,
    ];
  },
};

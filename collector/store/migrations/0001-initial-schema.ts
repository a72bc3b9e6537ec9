import { createTable, type Dialect, type TableSpec } from '../ddl';
import type { Migration } from '../migration';

/**
 * The first schema. Row shapes follow proto/gapwatch/v1 (ProcessEvent, ConnectEvent, Session,
 * SessionEvent, Alert, AuditGap) with nested messages flattened into columns. Times are
 * DateTime64(9, 'UTC'): the sensor's clock is nanoseconds and ordering within one process matters.
 *
 * The sorting key of each table is also its deduplication key (ReplacingMergeTree), so it always ends in
 * the row's deterministic id and holds only columns that never change for that id. Each key is chosen for
 * the dashboard queries in dashboards/sql/ named next to it.
 */

const PROTOCOL = "Enum8('unspecified' = 0, 'postgres' = 1, 'ssh' = 2, 'http' = 3)";

export const PROCESS_EVENTS: TableSpec = {
  name: 'process_events',
  columns: [
    'event_id String',
    'host LowCardinality(String)',
    "time DateTime64(9, 'UTC')",
    "kind Enum8('unspecified' = 0, 'exec' = 1, 'fork' = 2, 'exit' = 3)",
    'exec_id String',
    'pid UInt32',
    'tgid UInt32',
    'agent_run String',
    'parent_exec_id String',
    'uid UInt32',
    'gid UInt32',
    'cgroup_id UInt64',
    'comm LowCardinality(String)',
    'filename String',
    'argv Array(String)',
    'argv_truncated Bool',
    'exit_code Int32',
  ],
  indexes: ['exec_id_idx exec_id TYPE bloom_filter GRANULARITY 4'],
  partitionBy: 'toDate(time)',
  // agent-run-timeline.sql: everything one agent run executed, in time order (agent_run, time).
  orderBy: 'agent_run, time, event_id',
  ttlColumn: 'time',
  shardingKey: 'cityHash64(event_id)',
  comment: 'exec/fork/exit seen by the host sensor; proto gapwatch.v1.ProcessEvent',
};

export const CONNECT_EVENTS: TableSpec = {
  name: 'connect_events',
  columns: [
    'event_id String',
    'host LowCardinality(String)',
    "time DateTime64(9, 'UTC')",
    'exec_id String',
    'pid UInt32',
    'tgid UInt32',
    'agent_run String',
    "transport Enum8('unspecified' = 0, 'tcp' = 1, 'udp' = 2, 'unix' = 3)",
    'destination_ip String',
    'destination_port UInt16',
    'destination_unix_path String',
    'local_ip String',
    'local_port UInt16',
    'result Int32',
    "verdict Enum8('unspecified' = 0, 'mediated' = 1, 'bypass' = 2, 'other' = 3)",
    'resource LowCardinality(String)',
    'session_id String',
  ],
  indexes: ['session_id_idx session_id TYPE bloom_filter GRANULARITY 4', 'resource_idx resource TYPE set(256) GRANULARITY 4'],
  partitionBy: 'toDate(time)',
  // bypass-by-agent-run.sql: bypass connects grouped by agent run (verdict, agent_run);
  // agent-run-timeline.sql: one run's connects in time order (agent_run, time within a verdict).
  orderBy: 'verdict, agent_run, time, event_id',
  ttlColumn: 'time',
  shardingKey: 'cityHash64(event_id)',
  comment: 'connects seen by the host sensor with their verdict; proto gapwatch.v1.ConnectEvent',
};

export const GATEWAY_SESSIONS: TableSpec = {
  name: 'gateway_sessions',
  columns: [
    'session_id String',
    'gateway_id LowCardinality(String)',
    'identity_subject String',
    'identity_method LowCardinality(String)',
    'identity_claims Map(String, String)',
    'resource LowCardinality(String)',
    `protocol ${PROTOCOL}`,
    'client_ip String',
    'client_port UInt16',
    'listener_ip String',
    'listener_port UInt16',
    'upstream_local_ip String',
    'upstream_local_port UInt16',
    'upstream_ip String',
    'upstream_port UInt16',
    "start_time DateTime64(9, 'UTC')",
    // 1970-01-01 while the session is open; also the version, so the closed record replaces the open one.
    "end_time DateTime64(9, 'UTC')",
    "outcome Enum8('unspecified' = 0, 'open' = 1, 'closed' = 2, 'rejected' = 3, 'failed' = 4)",
    'target_user String',
  ],
  indexes: ['session_id_idx session_id TYPE bloom_filter GRANULARITY 4'],
  version: 'end_time',
  partitionBy: 'toDate(start_time)',
  // sessions-by-identity.sql: who did what through the gateway, newest first (identity_subject, start_time).
  orderBy: 'identity_subject, start_time, session_id',
  ttlColumn: 'start_time',
  shardingKey: 'cityHash64(session_id)',
  comment: 'gateway sessions; proto gapwatch.v1.Session',
};

export const GATEWAY_SESSION_EVENTS: TableSpec = {
  name: 'gateway_session_events',
  columns: [
    'session_id String',
    'event_seq UInt64',
    "time DateTime64(9, 'UTC')",
    "kind Enum8('unspecified' = 0, 'statement' = 1, 'policy' = 2, 'shell_output' = 3, 'http' = 4, 'error' = 5)",
    'statement_text String',
    'statement_parameters Array(String)',
    'command_tag LowCardinality(String)',
    'rows UInt64',
    'error_code LowCardinality(String)',
    'duration_nano Int64',
    "policy_action Enum8('unspecified' = 0, 'allow' = 1, 'deny' = 2, 'approved' = 3, 'rejected' = 4, 'mask' = 5)",
    'policy_rule LowCardinality(String)',
    'reviewer String',
    'reason String',
    'shell_offset_seconds Float64',
    'shell_stream LowCardinality(String)',
    'shell_data String',
    'http_method LowCardinality(String)',
    'http_path String',
    'http_status UInt16',
    'request_bytes UInt64',
    'response_bytes UInt64',
    'error_message String',
  ],
  partitionBy: 'toDate(time)',
  // session-drill-down.sql: one session's events in order (session_id, event_seq); the pair is the id.
  orderBy: 'session_id, event_seq',
  ttlColumn: 'time',
  shardingKey: 'cityHash64(session_id)',
  comment: 'what happened inside gateway sessions; proto gapwatch.v1.SessionEvent',
};

export const ALERTS: TableSpec = {
  name: 'alerts',
  columns: [
    'alert_id String',
    'host LowCardinality(String)',
    "time DateTime64(9, 'UTC')",
    "kind Enum8('unspecified' = 0, 'bypass' = 1, 'secret_in_argv' = 2, 'audit_gap' = 3, 'journal_tampered' = 4)",
    "severity Enum8('unspecified' = 0, 'info' = 1, 'warning' = 2, 'critical' = 3)",
    'summary String',
    'exec_id String',
    'agent_run String',
    'resource LowCardinality(String)',
    'event_id String',
  ],
  partitionBy: 'toDate(time)',
  // recent-alerts.sql: alerts of a kind over a time range (kind, time).
  orderBy: 'kind, time, alert_id',
  ttlColumn: 'time',
  shardingKey: 'cityHash64(alert_id)',
  comment: 'alerts raised by the collector; proto gapwatch.v1.Alert',
};

export const AUDIT_GAPS: TableSpec = {
  name: 'audit_gaps',
  columns: [
    'gap_id String',
    'host LowCardinality(String)',
    'source LowCardinality(String)',
    "start_time DateTime64(9, 'UTC')",
    "end_time DateTime64(9, 'UTC')",
    'lost UInt64',
    'reason String',
  ],
  partitionBy: 'toDate(start_time)',
  // audit-gaps.sql: what was lost, by source, over a time range (source, start_time).
  orderBy: 'source, start_time, gap_id',
  ttlColumn: 'start_time',
  shardingKey: 'cityHash64(gap_id)',
  comment: 'what the system knows it failed to capture or deliver; proto gapwatch.v1.AuditGap',
};

export const INITIAL_TABLES: readonly TableSpec[] = [
  PROCESS_EVENTS,
  CONNECT_EVENTS,
  GATEWAY_SESSIONS,
  GATEWAY_SESSION_EVENTS,
  ALERTS,
  AUDIT_GAPS,
];

export const initialSchema: Migration = {
  version: 1,
  name: 'initial schema',
  statements(dialect: Dialect): string[] {
    return INITIAL_TABLES.flatMap((spec) => createTable(spec, dialect));
  },
};

import { qualified, type Dialect } from '../ddl';
import type { Migration } from '../migration';

/**
 * The embedded engine merges its high-volume tables in wider steps (MergeTree `merge_selector_base`
 * 15 instead of ClickHouse's 5). ReplacingMergeTree writes one part per insert and merges them in the
 * background; with the default, each row is rewritten (read, sorted, compressed again) about once per
 * factor of 5 in part size. The embedded engine shares the host's cores with the sensor and the writer,
 * and on a 2-core build host those merges were about a quarter of the store's CPU per connect event
 * (bench/store: engine CPU per row 5.2 µs with the default, 4.1 µs with 15, 3.9 µs with merges stopped).
 * The price is more active parts per daily partition between merges (16 instead of 6 after 8M rows in
 * that run), which the dashboard queries absorb (bench/dashboards).
 *
 * Embedded only. A server or cluster is sized and tuned by its operator, and this setting is unknown to
 * ClickHouse releases before it was introduced, where the ALTER would fail the whole migration. So on a
 * server this migration is recorded and changes nothing. The embedded engine's version is the one
 * package-lock.json pins. MODIFY SETTING is idempotent: safe to run twice and from two processes.
 */
export const EMBEDDED_MERGE_SELECTOR_BASE = 15;

/** The tables every event lands in; the small ones (sessions, alerts, gaps, lookups) keep the default. */
export const HIGH_VOLUME_TABLES = ['process_events', 'connect_events', 'gateway_session_events', 'journal_records'] as const;

export const embeddedMergeWidth: Migration = {
  version: 8,
  name: 'embedded engine: wider merges on the event tables',
  statements(dialect: Dialect): string[] {
    if (dialect.kind !== 'embedded') return [];
    return HIGH_VOLUME_TABLES.map((table) => `ALTER TABLE ${qualified(dialect, table)} MODIFY SETTING merge_selector_base = ${EMBEDDED_MERGE_SELECTOR_BASE}`);
  },
};

import { onCluster, qualified, storageTable, type Dialect } from '../ddl';
import type { Migration } from '../migration';

/**
 * Removes migration 0005's session_connects lookup table and the materialized view that kept it. The
 * dashboards read a session's attribution from connect_events again (verdict = 'mediated', by the
 * session_id bloom-filter index, within an hour of the range), for two reasons:
 *
 * - Correctness. session_connects kept every connect carrying a session id, and the correlator also gives
 *   the gateway's own upstream leg its session's id (verdict 'other'). With the gateway on a sensored host,
 *   a session then had two "attributions", one of them the gateway process, and a session whose agent
 *   came from a host without the sensor counted as attributed by the gateway's leg alone — hiding it from
 *   unattributed-sessions, the view that exists to show exactly those.
 * - Insert cost. The view ran inside every connect insert and wrote a second, differently sorted part:
 *   about 15 % of the embedded engine's insert capacity where most connects are mediated, which took the
 *   store below its 200k rows/s goal. The queries it served stay well inside the dashboards' 500 ms
 *   goal without it (bench/dashboards).
 *
 * Safe to run twice and from two processes at once: the drops are IF EXISTS. process_execs (0005) stays:
 * it is kept from process_events, which is far smaller, and serves the binary look-ups.
 */
export const sessionAttribution: Migration = {
  version: 7,
  name: 'session attribution from connect_events',
  statements(dialect: Dialect): string[] {
    const cluster = onCluster(dialect);
    const tables = dialect.kind === 'cluster' ? ['session_connects', storageTable(dialect, 'session_connects')] : ['session_connects'];
    return [`DROP VIEW IF EXISTS ${qualified(dialect, 'session_connects_mv')}${cluster}`, ...tables.map((table) => `DROP TABLE IF EXISTS ${qualified(dialect, table)}${cluster}`)];
  },
};

import { onCluster, qualified, storageTable, type Dialect } from '../ddl';
import type { Migration } from '../migration';

/**
 * SessionOutcome gained ABORTED (proto gapwatch/v1/session.proto): a session the gateway never ended
 * because it died, closed by the gateway's next start. The outcome column's Enum8 takes the new value;
 * existing values keep their numbers, so this is a metadata-only change in ClickHouse.
 */
export const SESSION_OUTCOME_ENUM = "Enum8('unspecified' = 0, 'open' = 1, 'closed' = 2, 'rejected' = 3, 'failed' = 4, 'aborted' = 5)";

export const sessionAborted: Migration = {
  version: 6,
  name: 'session outcome aborted',
  statements(dialect: Dialect): string[] {
    const local = storageTable(dialect, 'gateway_sessions');
    // On a cluster the per-shard tables and the Distributed table over them both carry the column.
    return (local === 'gateway_sessions' ? [local] : [local, 'gateway_sessions']).map(
      (target) => `ALTER TABLE ${qualified(dialect, target)}${onCluster(dialect)} MODIFY COLUMN IF EXISTS outcome ${SESSION_OUTCOME_ENUM}`,
    );
  },
};

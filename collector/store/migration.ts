import { createHash } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { createDatabase, createTable, onCluster, qualified, storageTable, ttlClause, type Dialect, type TableSpec } from './ddl';
import { StoreMigrationError } from './errors';
import { MIGRATIONS } from './migrations';
import { dateTime64, nowNanos } from './time';
import { INITIAL_TABLES } from './migrations/0001-initial-schema';

export interface Migration {
  version: number;
  name: string;
  /**
   * The DDL for a deployment. Every statement must be idempotent (IF NOT EXISTS / IF EXISTS), because two
   * processes may run the same migration at once against one server: both succeed and the second changes
   * nothing. That, not a lock, is what makes concurrent starts safe (ClickHouse has no transactional DDL).
   */
  statements(dialect: Dialect): string[];
}

export const MIGRATIONS_TABLE: TableSpec = {
  name: 'schema_migrations',
  columns: ['version UInt32', 'name String', 'checksum String', "applied_at DateTime64(3, 'UTC')"],
  version: 'applied_at',
  orderBy: 'version',
  shardingKey: 'version',
  comment: 'store migrations applied, one row per version',
};

/** A reference rendering, so the checksum says "the migration text changed" and not "ttlDays changed". */
const CHECKSUM_DIALECT: Dialect = { kind: 'server', database: 'gapwatch', ttlDays: 1 };

export function migrationChecksum(migration: Migration): string {
  return createHash('sha256').update(migration.statements(CHECKSUM_DIALECT).join(';\n')).digest('hex');
}

export interface MigrationResult {
  applied: number[];
  alreadyApplied: number[];
  retentionChanged: string[];
}

/**
 * Brings the schema to the newest version: creates the database and the migrations table, applies each
 * migration not yet recorded, records it, then sets the configured TTL on tables whose TTL differs.
 * A recorded migration whose text has changed since is refused: the schema would silently differ from
 * the code.
 */
export async function migrate(client: ClickHouseClient, dialect: Dialect, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationResult> {
  await client.command({ query: createDatabase(dialect) });
  for (const statement of createTable(MIGRATIONS_TABLE, dialect)) await client.command({ query: statement });

  const recorded = await appliedMigrations(client, dialect);
  const result: MigrationResult = { applied: [], alreadyApplied: [], retentionChanged: [] };
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    const checksum = migrationChecksum(migration);
    const previous = recorded.get(migration.version);
    if (previous !== undefined) {
      if (previous !== checksum) {
        throw new StoreMigrationError(
          migration.version,
          migration.name,
          `it was applied with checksum ${previous.slice(0, 12)} but the code now has ${checksum.slice(0, 12)}; a released migration must not be edited, add a new one instead`,
        );
      }
      result.alreadyApplied.push(migration.version);
      continue;
    }
    for (const statement of migration.statements(dialect)) {
      try {
        await client.command({ query: statement });
      } catch (err) {
        throw new StoreMigrationError(migration.version, migration.name, `${(err as Error).message}\nstatement:\n${statement}`, err);
      }
    }
    await client.insert({
      table: qualified(dialect, MIGRATIONS_TABLE.name),
      values: [{ version: migration.version, name: migration.name, checksum, applied_at: dateTime64(nowNanos()) }],
      format: 'JSONEachRow',
    });
    result.applied.push(migration.version);
  }
  result.retentionChanged = await applyRetention(client, dialect, INITIAL_TABLES);
  return result;
}

export async function appliedMigrations(client: ClickHouseClient, dialect: Dialect): Promise<Map<number, string>> {
  const rows = await (
    await client.query({
      query: `SELECT version, checksum FROM ${qualified(dialect, MIGRATIONS_TABLE.name)} FINAL ORDER BY version`,
      format: 'JSONEachRow',
    })
  ).json<{ version: number; checksum: string }>();
  return new Map(rows.map((row) => [Number(row.version), row.checksum]));
}

/** Changes the TTL of tables created with another ttlDays; tables already right are left alone. */
async function applyRetention(client: ClickHouseClient, dialect: Dialect, tables: readonly TableSpec[]): Promise<string[]> {
  const changed: string[] = [];
  for (const spec of tables) {
    if (!spec.ttlColumn) continue;
    const local = storageTable(dialect, spec.name);
    const rows = await (
      await client.query({
        query: 'SELECT engine_full FROM system.tables WHERE database = {database:String} AND name = {table:String}',
        query_params: { database: dialect.database, table: local },
        format: 'JSONEachRow',
      })
    ).json<{ engine_full: string }>();
    const days = /TTL .*\+ toIntervalDay\((\d+)\)/.exec(rows[0]?.engine_full ?? '')?.[1];
    if (days !== undefined && Number(days) === dialect.ttlDays) continue;
    await client.command({
      query: `ALTER TABLE ${qualified(dialect, local)}${onCluster(dialect)} MODIFY TTL ${ttlClause(spec, dialect.ttlDays)}`,
    });
    changed.push(spec.name);
  }
  return changed;
}

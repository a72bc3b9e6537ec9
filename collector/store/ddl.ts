/**
 * Renders table definitions as DDL for the three deployments. One definition, three shapes:
 *
 * - embedded (chDB) and single server: `ReplacingMergeTree` tables;
 * - cluster: per-shard `ReplicatedReplacingMergeTree` tables named `<table>_local`, created ON CLUSTER,
 *   and a `Distributed` table under the plain name over them, sharded by the row id so every copy of a row
 *   lands on the same shard (ReplacingMergeTree only collapses duplicates within one shard).
 *
 * Readers always use the plain name, so dashboards and `gapwatch query` are the same SQL everywhere.
 * ReplacingMergeTree collapses rows with equal sorting keys at merge time; queries that must not see a
 * replayed row twice read with FINAL.
 */

export type StoreKind = 'embedded' | 'server' | 'cluster';

export interface Dialect {
  kind: StoreKind;
  database: string;
  /** Set for kind 'cluster'. */
  cluster?: string;
  ttlDays: number;
}

export interface TableSpec {
  name: string;
  /** Column definitions, one per line, without trailing commas. */
  columns: readonly string[];
  /** Data-skipping indexes (`INDEX name expr TYPE … GRANULARITY n`). */
  indexes?: readonly string[];
  /** ReplacingMergeTree version column: of rows with one key, the highest version survives. */
  version?: string;
  partitionBy?: string;
  orderBy: string;
  /** A DateTime64 column; rows expire ttlDays after it. */
  ttlColumn?: string;
  /** Distributed sharding expression: must keep all copies of a row on one shard. */
  shardingKey: string;
  comment: string;
}

/** Inserts of identical blocks within this window are dropped by the engine, so a retried batch is not stored twice. */
const DEDUPLICATION_WINDOW = 1000;

export function quoteIdent(name: string): string {
  return `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}

export function quoteString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function onCluster(dialect: Dialect): string {
  return dialect.kind === 'cluster' && dialect.cluster ? ` ON CLUSTER ${quoteIdent(dialect.cluster)}` : '';
}

/** The table that holds the data on each node: `<name>_local` on a cluster, the table itself otherwise. */
export function storageTable(dialect: Dialect, name: string): string {
  return dialect.kind === 'cluster' ? `${name}_local` : name;
}

export function qualified(dialect: Dialect, name: string): string {
  return `${quoteIdent(dialect.database)}.${quoteIdent(name)}`;
}

export function createDatabase(dialect: Dialect): string {
  return `CREATE DATABASE IF NOT EXISTS ${quoteIdent(dialect.database)}${onCluster(dialect)}`;
}

export function ttlClause(spec: TableSpec, ttlDays: number): string {
  return `toDateTime(${spec.ttlColumn}) + INTERVAL ${ttlDays} DAY`;
}

export function createTable(spec: TableSpec, dialect: Dialect): string[] {
  const local = storageTable(dialect, spec.name);
  const version = spec.version ?? '';
  const engine =
    dialect.kind === 'cluster'
      ? `ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}'${version ? `, ${version}` : ''})`
      : `ReplacingMergeTree(${version})`;
  const body = [...spec.columns, ...(spec.indexes ?? []).map((index) => `INDEX ${index}`)].map((line) => `    ${line}`).join(',\n');
  const clauses = [`ENGINE = ${engine}`];
  if (spec.partitionBy) clauses.push(`PARTITION BY ${spec.partitionBy}`);
  clauses.push(`ORDER BY (${spec.orderBy})`);
  if (spec.ttlColumn) clauses.push(`TTL ${ttlClause(spec, dialect.ttlDays)}`);
  if (dialect.kind !== 'cluster') clauses.push(`SETTINGS non_replicated_deduplication_window = ${DEDUPLICATION_WINDOW}`);
  clauses.push(`COMMENT ${quoteString(spec.comment)}`);
  const statements = [
    `CREATE TABLE IF NOT EXISTS ${qualified(dialect, local)}${onCluster(dialect)}\n(\n${body}\n)\n${clauses.join('\n')}`,
  ];
  if (dialect.kind === 'cluster') {
    statements.push(
      `CREATE TABLE IF NOT EXISTS ${qualified(dialect, spec.name)}${onCluster(dialect)} AS ${qualified(dialect, local)}\n` +
        `ENGINE = Distributed(${quoteString(dialect.cluster ?? '')}, ${quoteString(dialect.database)}, ${quoteString(local)}, ${spec.shardingKey})`,
    );
  }
  return statements;
}

import assert from 'node:assert/strict';
import { parseConfig } from '../../../platform/config';
import { createTable, type Dialect } from '../../../collector/store/ddl';
import { MIGRATIONS } from '../../../collector/store/migrations';
import { CONNECT_EVENTS, GATEWAY_SESSIONS } from '../../../collector/store/migrations/0001-initial-schema';
import { describeStore, storeDialect } from '../../../collector/store/connection';
import { dateTime64 } from '../../../collector/store/time';

// No modern ClickHouse server installs on these machines, so the server and cluster variants are checked
// as text; the embedded variant runs for real in migration.test.ts.
describe('collector/store DDL for server and cluster', () => {
  const server: Dialect = { kind: 'server', database: 'gapwatch', ttlDays: 90 };
  const cluster: Dialect = { kind: 'cluster', database: 'gapwatch', cluster: 'audit', ttlDays: 90 };

  it('creates plain ReplacingMergeTree tables on a single server', () => {
    const [statement, ...rest] = createTable(CONNECT_EVENTS, server);
    assert.equal(rest.length, 0);
    assert.match(statement!, /^CREATE TABLE IF NOT EXISTS `gapwatch`\.`connect_events`\n\(/);
    assert.doesNotMatch(statement!, /ON CLUSTER/);
    assert.match(statement!, /\n {4}time DateTime64\(9, 'UTC'\),\n/);
    assert.match(statement!, /ENGINE = ReplacingMergeTree\(\)\nPARTITION BY toDate\(time\)\nORDER BY \(verdict, agent_run, time, event_id\)\nTTL toDateTime\(time\) \+ INTERVAL 90 DAY\nSETTINGS non_replicated_deduplication_window = 1000\n/);
  });

  it('creates replicated shard tables and a distributed table ON CLUSTER, sharded by row id', () => {
    const [local, distributed] = createTable(GATEWAY_SESSIONS, cluster);
    assert.match(local!, /^CREATE TABLE IF NOT EXISTS `gapwatch`\.`gateway_sessions_local` ON CLUSTER `audit`\n\(/);
    assert.match(
      local!,
      /ENGINE = ReplicatedReplacingMergeTree\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/\{table\}', '\{replica\}', end_time\)\n/,
    );
    assert.doesNotMatch(local!, /non_replicated_deduplication_window/);
    assert.equal(
      distributed,
      "CREATE TABLE IF NOT EXISTS `gapwatch`.`gateway_sessions` ON CLUSTER `audit` AS `gapwatch`.`gateway_sessions_local`\n" +
        "ENGINE = Distributed('audit', 'gapwatch', 'gateway_sessions_local', cityHash64(session_id))",
    );
  });

  it('renders every migration statement idempotently for all three deployments', () => {
    for (const dialect of [server, cluster, { ...server, kind: 'embedded' } as Dialect]) {
      for (const migration of MIGRATIONS) {
        for (const statement of migration.statements(dialect)) {
          // A backfill INSERT … SELECT is idempotent because its target's sorting key is the row's identity
          // (ReplacingMergeTree): running it twice stores nothing new once merged. It goes through the
          // Distributed table on a cluster, so it carries no ON CLUSTER.
          assert.match(statement, /^(CREATE (TABLE|DATABASE|MATERIALIZED VIEW) IF NOT EXISTS|ALTER TABLE .* IF (NOT )?EXISTS|DROP (TABLE|VIEW) IF EXISTS |INSERT INTO \S+ SELECT )/, statement);
          if (dialect.kind === 'cluster' && !statement.startsWith('INSERT')) assert.match(statement, /ON CLUSTER `audit`/);
        }
      }
    }
  });

  it('chooses the deployment from the configuration and never shows credentials', () => {
    const embedded = parseConfig('dataDir: /var/lib/gapwatch\n');
    assert.equal(storeDialect(embedded).kind, 'embedded');
    assert.equal(describeStore(embedded), '/var/lib/gapwatch/store');
    const remote = parseConfig('store:\n  url: https://ops:hunter2@ch.example:8443\n  password: s3cret\n  cluster: audit\n');
    assert.deepEqual(storeDialect(remote), { kind: 'cluster', database: 'gapwatch', cluster: 'audit', ttlDays: 90 });
    assert.equal(describeStore(remote), 'https://ch.example:8443/ (cluster audit)');
    assert.throws(() => parseConfig('store:\n  cluster: audit\n'), /cluster needs url/);
    assert.throws(() => parseConfig('store:\n  url: https://ch.example\n  password: a\n  passwordEnv: CH_PASSWORD\n'), /at most one of password/);
    assert.throws(() => parseConfig('store:\n  url: https://ch.example\n  tls: { certFile: c.pem }\n'), /certFile and tls.keyFile go together/);
  });
});

describe('collector/store DateTime64 text', () => {
  it('is exact to the nanosecond, UTC, fixed width, for the epoch, negatives and far dates', () => {
    assert.equal(dateTime64(0), '1970-01-01 00:00:00.000000000');
    assert.equal(dateTime64('1764100000123456789'), '2025-11-25 19:46:40.123456789');
    assert.equal(dateTime64(1764100001000000001n), '2025-11-25 19:46:41.000000001');
    assert.equal(dateTime64(-1n), '1969-12-31 23:59:59.999999999');
    assert.equal(dateTime64('4102444800000000000'), '2100-01-01 00:00:00.000000000');
  });
});

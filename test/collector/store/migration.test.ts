import assert from 'node:assert/strict';
import { openStore, type Store } from '../../../collector/store/connection';
import { migrate, migrationChecksum, type Migration } from '../../../collector/store/migration';
import { MIGRATIONS } from '../../../collector/store/migrations';
import { INITIAL_TABLES } from '../../../collector/store/migrations/0001-initial-schema';
import { queryRows, tempConfig } from './store-fixture';

const TABLES = [
  'alerts',
  'audit_gaps',
  'connect_events',
  'gateway_session_events',
  'gateway_sessions',
  // migration 0004: every gateway journal record, for gapwatch verify --gateway
  'journal_records',
  'process_events',
  // migration 0005: the exec lookup table and the materialized view that keeps it (0005's
  // session_connects and its view are dropped by 0007)
  'process_execs',
  'process_execs_mv',
  'schema_migrations',
];

describe('collector/store migrations (embedded engine)', function () {
  this.timeout(60_000);
  let store: Store;

  afterEach(async () => {
    await store?.close();
  });

  it('creates the schema from empty, records it, and changes nothing when run again', async () => {
    store = await openStore(tempConfig());
    const first = await migrate(store.client, store.dialect);
    assert.deepEqual(first.applied, MIGRATIONS.map((m) => m.version));
    const second = await migrate(store.client, store.dialect);
    assert.deepEqual(second.applied, []);
    assert.deepEqual(second.alreadyApplied, MIGRATIONS.map((m) => m.version));
    assert.deepEqual(second.retentionChanged, []);

    const tables = await queryRows<{ name: string; engine: string; sorting_key: string; partition_key: string; engine_full: string }>(
      store,
      "SELECT name, engine, sorting_key, partition_key, engine_full FROM system.tables WHERE database = 'gapwatch' ORDER BY name",
    );
    assert.deepEqual(tables.map((t) => t.name), TABLES);
    for (const spec of INITIAL_TABLES) {
      const table = tables.find((t) => t.name === spec.name)!;
      assert.equal(table.engine, 'ReplacingMergeTree', spec.name);
      assert.equal(table.sorting_key, spec.orderBy, spec.name);
      assert.equal(table.partition_key, spec.partitionBy, spec.name);
      assert.match(table.engine_full, /TTL toDateTime\(\w+\) \+ toIntervalDay\(30\)/, spec.name);
    }
    const recorded = await queryRows<{ version: number; checksum: string }>(store, 'SELECT version, checksum FROM gapwatch.schema_migrations FINAL');
    assert.deepEqual(recorded, MIGRATIONS.map((m) => ({ version: m.version, checksum: migrationChecksum(m) })));

    const columns = await queryRows<{ name: string; type: string }>(
      store,
      "SELECT name, type FROM system.columns WHERE database = 'gapwatch' AND table = 'connect_events' ORDER BY position",
    );
    const types = Object.fromEntries(columns.map((c) => [c.name, c.type]));
    assert.equal(types.time, "DateTime64(9, 'UTC')");
    assert.equal(types.verdict, "Enum8('unspecified' = 0, 'mediated' = 1, 'bypass' = 2, 'other' = 3)");
    assert.equal(types.resource, 'LowCardinality(String)');
    for (const column of ['event_id', 'host', 'exec_id', 'agent_run', 'session_id', 'resource', 'verdict', 'local_port']) {
      assert.ok(column in types, `connect_events.${column}`);
    }
  });

  it('is safe when two migrators run at once', async () => {
    const config = tempConfig();
    store = await openStore(config);
    const other = await openStore(config);
    try {
      const [a, b] = await Promise.all([migrate(store.client, store.dialect), migrate(other.client, other.dialect)]);
      assert.deepEqual([...a.applied, ...a.alreadyApplied].sort(), MIGRATIONS.map((m) => m.version));
      assert.deepEqual([...b.applied, ...b.alreadyApplied].sort(), MIGRATIONS.map((m) => m.version));
      const recorded = await queryRows<{ c: string }>(store, 'SELECT count() AS c FROM gapwatch.schema_migrations FINAL');
      assert.equal(Number(recorded[0]!.c), MIGRATIONS.length);
    } finally {
      await other.close();
    }
  });

  it('refuses a recorded migration whose text has changed', async () => {
    store = await openStore(tempConfig());
    await migrate(store.client, store.dialect);
    const edited: Migration = { ...MIGRATIONS[0]!, statements: (d) => [...MIGRATIONS[0]!.statements(d), 'SELECT 1'] };
    await assert.rejects(migrate(store.client, store.dialect, [edited]), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'STORE_ERR_MIGRATION');
      assert.match(err.message, /must not be edited, add a new one/);
      return true;
    });
  });

  it('applies a changed ttlDays to existing tables', async () => {
    const config = tempConfig();
    store = await openStore(config);
    await migrate(store.client, store.dialect);
    const changed = await migrate(store.client, { ...store.dialect, ttlDays: 7 });
    assert.deepEqual(changed.retentionChanged.sort(), INITIAL_TABLES.map((t) => t.name).sort());
    const rows = await queryRows<{ engine_full: string }>(store, "SELECT engine_full FROM system.tables WHERE database = 'gapwatch' AND name = 'alerts'");
    assert.match(rows[0]!.engine_full, /toIntervalDay\(7\)/);
  });

});

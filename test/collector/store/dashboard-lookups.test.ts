import assert from 'node:assert/strict';
import { openStore, type Store } from '../../../collector/store/connection';
import { migrate } from '../../../collector/store/migration';
import { MIGRATIONS } from '../../../collector/store/migrations';
import { dashboardLookups } from '../../../collector/store/migrations/0005-dashboard-lookups';
import { sessionAttribution } from '../../../collector/store/migrations/0007-session-attribution';
import { qualified } from '../../../collector/store/ddl';
import { at, PSQL_B, RUN_A, SEED, seedStore } from '../../dashboards/seed-store';
import { queryRows, tempConfig } from './store-fixture';

describe('collector/store migrations 0005 and 0007: dashboard lookup tables', function () {
  this.timeout(60_000);
  let store: Store;

  afterEach(async () => {
    await store?.close();
  });

  async function execs(): Promise<string[]> {
    const rows = await queryRows<{ exec_id: string; filename: string }>(store, `SELECT exec_id, filename FROM ${qualified(store.dialect, 'process_execs')} FINAL ORDER BY exec_id`);
    return rows.map((r) => `${r.exec_id} ${r.filename}`);
  }

  async function tables(): Promise<string[]> {
    const rows = await queryRows<{ name: string }>(store, `SELECT name FROM system.tables WHERE database = '${store.dialect.database}' AND name LIKE 'session_connects%' ORDER BY name`);
    return rows.map((r) => r.name);
  }

  it('process_execs: backfills rows stored before it, keeps rows stored after it, and a second backfill changes nothing', async () => {
    store = await openStore(tempConfig());
    await migrate(
      store.client,
      store.dialect,
      MIGRATIONS.filter((m) => m.version < dashboardLookups.version),
    );
    await seedStore(store);
    await migrate(store.client, store.dialect);

    const expectedExecs = SEED.process_events.filter((r) => r.kind === 'exec').map((r) => `${r.exec_id} ${r.filename}`);
    const before = await execs();
    assert.deepEqual(before, [...new Set(expectedExecs)].sort());

    // Rows arriving later reach the lookup through the materialized view; exit records do not.
    await store.client.insert({
      table: qualified(store.dialect, 'process_events'),
      values: [
        { event_id: 'late-exec', host: 'host-a', time: at(1000), kind: 'exec', exec_id: 'host-a:boot-a:900:1', agent_run: RUN_A, filename: '/usr/bin/ssh' },
        { event_id: 'late-exit', host: 'host-a', time: at(1001), kind: 'exit', exec_id: 'host-a:boot-a:901:1', agent_run: RUN_A },
        // A process that execs again: its latest image wins.
        { event_id: 'late-reexec', host: 'host-b', time: at(1002), kind: 'exec', exec_id: PSQL_B, filename: '/usr/lib/postgresql/15/bin/psql' },
      ],
      format: 'JSONEachRow',
    });
    // Running the migrations' statements again (two collectors migrating at once) stores nothing new
    // once merged, and leaves session_connects dropped.
    for (const statement of [...dashboardLookups.statements(store.dialect), ...sessionAttribution.statements(store.dialect)]) {
      await store.client.command({ query: statement });
    }

    const after = await execs();
    assert.deepEqual(after.filter((e) => !before.includes(e)), ['host-a:boot-a:900:1 /usr/bin/ssh', `${PSQL_B} /usr/lib/postgresql/15/bin/psql`]);
    assert.ok(!after.includes(`${PSQL_B} /usr/bin/psql`), 'the older image of a re-exec is replaced');
    assert.deepEqual(await tables(), []);
  });

  it('0007 drops the session_connects table and view that 0005 created, and connect inserts no longer feed them', async () => {
    store = await openStore(tempConfig());
    await migrate(
      store.client,
      store.dialect,
      MIGRATIONS.filter((m) => m.version < sessionAttribution.version),
    );
    assert.deepEqual(await tables(), ['session_connects', 'session_connects_mv']);
    await migrate(store.client, store.dialect);
    assert.deepEqual(await tables(), []);
    await seedStore(store);
    const indexes = await queryRows<{ name: string }>(store, `SELECT name FROM system.data_skipping_indices WHERE database = '${store.dialect.database}' AND table = 'connect_events' ORDER BY name`);
    assert.deepEqual(indexes.map((i) => i.name), ['resource_idx', 'session_id_idx']);
  });
});

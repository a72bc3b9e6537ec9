import assert from 'node:assert/strict';
import { openStore, type Store } from '../../../collector/store/connection';
import { migrate } from '../../../collector/store/migration';
import { MIGRATIONS } from '../../../collector/store/migrations';
import { dashboardLookups } from '../../../collector/store/migrations/0005-dashboard-lookups';
import { sessionAttribution } from '../../../collector/store/migrations/0007-session-attribution';
import { qualified } from '../../../collector/store/ddl';
import { at, GATEWAY_A, NODE_A, PSQL_A, PSQL_B, RUN_A, SEED, seedStore } from '../../dashboards/seed-store';
import { queryRows, tempConfig } from './store-fixture';

describe('collector/store migrations 0005 and 0007: dashboard lookup tables', function () {
  this.timeout(60_000);
  let store: Store;

  afterEach(async () => {
    await store?.close();
  });

  async function lookups(): Promise<{ execs: string[]; sessions: string[] }> {
    const execs = await queryRows<{ exec_id: string; filename: string }>(store, `SELECT exec_id, filename FROM ${qualified(store.dialect, 'process_execs')} FINAL ORDER BY exec_id`);
    const sessions = await queryRows<{ session_id: string; exec_id: string }>(
      store,
      `SELECT session_id, exec_id FROM ${qualified(store.dialect, 'session_attribution')} FINAL ORDER BY session_id`,
    );
    return { execs: execs.map((r) => `${r.exec_id} ${r.filename}`), sessions: sessions.map((r) => `${r.session_id} ${r.exec_id}`) };
  }

  it('backfills rows stored before it, keeps rows stored after it, and a second backfill changes nothing', async () => {
    store = await openStore(tempConfig());
    await migrate(
      store.client,
      store.dialect,
      MIGRATIONS.filter((m) => m.version < dashboardLookups.version),
    );
    await seedStore(store);
    await migrate(store.client, store.dialect);

    const expectedExecs = SEED.process_events.filter((r) => r.kind === 'exec').map((r) => `${r.exec_id} ${r.filename}`);
    const before = await lookups();
    assert.deepEqual(before.execs, [...new Set(expectedExecs)].sort());
    assert.deepEqual(before.sessions, [`gw-s1 ${NODE_A}`, 'gw-s2 host-b:boot-b:201:2010']);

    // Rows arriving later reach the lookups through the materialized views; exit records, connects
    // without a session and the gateway's own leg (verdict other, joined with its session) do not.
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
    await store.client.insert({
      table: qualified(store.dialect, 'connect_events'),
      values: [
        { event_id: 'late-ce-1', host: 'host-a', time: at(1003), exec_id: 'host-a:boot-a:900:1', agent_run: RUN_A, verdict: 'mediated', resource: 'ssh-bastion', session_id: 'gw-s9' },
        { event_id: 'late-ce-2', host: 'host-a', time: at(1004), exec_id: PSQL_A, agent_run: RUN_A, verdict: 'bypass', resource: 'orders-db', session_id: '' },
        { event_id: 'late-ce-3', host: 'host-a', time: at(1005), exec_id: GATEWAY_A, agent_run: '', verdict: 'other', resource: 'orders-db', session_id: 'gw-s9' },
      ],
      format: 'JSONEachRow',
    });
    // Running the backfill again (two collectors migrating at once) stores nothing new once merged.
    for (const statement of [...dashboardLookups.statements(store.dialect), ...sessionAttribution.statements(store.dialect)]) {
      await store.client.command({ query: statement });
    }

    const after = await lookups();
    assert.deepEqual(after.execs.filter((e) => !before.execs.includes(e)), ['host-a:boot-a:900:1 /usr/bin/ssh', `${PSQL_B} /usr/lib/postgresql/15/bin/psql`]);
    assert.ok(!after.execs.includes(`${PSQL_B} /usr/bin/psql`), 'the older image of a re-exec is replaced');
    assert.deepEqual(after.sessions, [`gw-s1 ${NODE_A}`, 'gw-s2 host-b:boot-b:201:2010', 'gw-s9 host-a:boot-a:900:1']);
  });
});

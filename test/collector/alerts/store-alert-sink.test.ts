import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { CollectorAlert } from '../../../collector/alerts/alert';
import { AlertGate } from '../../../collector/alerts/alert-gate';
import { StoreAlertSink } from '../../../collector/alerts/store-alert-sink';
import { openStore, type Store } from '../../../collector/store/connection';
import { migrate } from '../../../collector/store/migration';
import { storeSink } from '../../../collector/store/sink';
import { Spool } from '../../../collector/store/spool';
import { StoreWriter } from '../../../collector/store/writer';
import { queryRows, silentLog, tempConfig } from '../store/store-fixture';

const T = BigInt(Date.now() - 60_000) * 1_000_000n;

function bypass(at: bigint): CollectorAlert {
  return {
    alertId: `al-${at}`,
    kind: 'bypass',
    rule: 'connect-bypass',
    severity: 'critical',
    host: 'host-a',
    timeUnixNano: String(at),
    kernelBootNs: '5',
    summary: 'bypass: psql[4242] connected straight to orders',
    process: { execId: 'host-a:b1:4242:9', pid: 4242, comm: 'psql', filename: '/usr/bin/psql' },
    lineage: [
      { execId: 'host-a:b1:4241:8', pid: 4241, comm: 'sh', filename: '/bin/sh' },
      { execId: 'host-a:b1:4000:7', pid: 4000, comm: 'claude', filename: '/usr/bin/claude' },
    ],
    agentRun: { execId: 'host-a:b1:4000:7', agent: 'claude' },
    resource: 'orders',
    destination: '10.0.0.5:5432',
    eventId: `ce-${at}`,
    count: 1,
    lastTimeUnixNano: String(at),
  };
}

describe('collector/alerts store sink (embedded engine, migration 0003)', function () {
  this.timeout(60_000);
  let store: Store;

  after(async () => {
    await store?.close();
  });

  it('stores rule, count kept through de-duplication, process, lineage, agent and destination', async () => {
    const config = tempConfig();
    store = await openStore(config);
    await migrate(store.client, store.dialect);
    const { spool } = Spool.open({ dir: join(config.dataDir, 'spool'), maxBytes: 1 << 20 });
    const writer = new StoreWriter(storeSink(store), spool, config.store.writer, silentLog, 'host-a');
    writer.start();
    const sink = new StoreAlertSink(writer);
    // The same alert three times within the window: one goes out at once, two are folded and go out
    // as one alert with count 2 when the gate closes.
    let now = 0;
    const gate = new AlertGate({ dedupWindowMs: 60_000, maxPerMinute: 100 }, (alert) => sink.deliver(alert), () => now);
    gate.raise('k', bypass(T));
    now = 10;
    gate.raise('k', bypass(T + 1000n));
    now = 20;
    gate.raise('k', bypass(T + 2000n));
    gate.close();
    await sink.close();
    await writer.close();

    const rows = await queryRows<Record<string, unknown>>(
      store,
      "SELECT alert_id, toString(kind) AS kind, rule, count, toUnixTimestamp64Nano(last_time) AS last, pid, comm, filename, lineage_exec_ids, lineage_pids, lineage_comms, agent, agent_run, destination FROM gapwatch.alerts FINAL ORDER BY count",
    );
    assert.equal(rows.length, 2, JSON.stringify(rows));
    assert.deepEqual(rows[0], {
      alert_id: `al-${T}`,
      kind: 'bypass',
      rule: 'connect-bypass',
      count: '1',
      last: String(T),
      pid: 4242,
      comm: 'psql',
      filename: '/usr/bin/psql',
      lineage_exec_ids: ['host-a:b1:4241:8', 'host-a:b1:4000:7'],
      lineage_pids: [4241, 4000],
      lineage_comms: ['sh', 'claude'],
      agent: 'claude',
      agent_run: 'host-a:b1:4000:7',
      destination: '10.0.0.5:5432',
    });
    assert.equal(rows[1]!.count, '2', 'the two folded occurrences, counted');
    assert.equal(rows[1]!.last, String(T + 2000n), 'the last occurrence');
  });
});

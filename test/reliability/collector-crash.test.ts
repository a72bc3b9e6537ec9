import assert from 'node:assert/strict';
import { requireRoot } from '../support/host';
import {
  agentSession,
  collectorPosition,
  GapwatchProcess,
  assertStoredExactlyOnce,
  journalTruth,
  openCollectorStore,
  settledJournal,
  reliabilitySetup,
  storedGatewayRecords,
  storeQuery,
  table,
  waitUntil,
  type ReliabilitySetup,
} from '../support/gapwatch-processes';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('reliability: collector killed with SIGKILL under load', function () {
  this.timeout(150_000);
  let setup: ReliabilitySetup;

  before(async () => {
    requireRoot();
    setup = await reliabilitySetup();
  });
  after(async () => {
    await setup?.stop();
  });

  it('resumes the gateway records from its stored position with no loss or duplicate, and records each unobserved window as an audit gap', async () => {
    // "Nothing lost" here: every session and session event the gateway journaled while the collector
    // was killed twice and restarted is in the store exactly once (the id sets equal the journal's; rows
    // after FINAL equal the distinct ids), and each of the two windows in which no sensor watched the
    // host is one audit_gaps row (source collector) covering the time from the kill to the restart, with
    // an audit_gap alert.
    const gateway = await GapwatchProcess.start('gateway', setup.gatewayConfig);
    let collector = await GapwatchProcess.start('collector', setup.collectorConfig);
    let serving = true;
    let sessions = 0;
    const load = (async () => {
      while (serving) await agentSession(setup, 5, `load-${sessions++}`);
    })();
    const windows: Array<{ killedAt: number; restartingAt: number }> = [];
    try {
      for (let kill = 0; kill < 2; kill++) {
        const before = sessions;
        // The second kill comes as soon as the restarted collector is up (regression: the first window's
        // gap row was still in the writer's buffer then, and the new heartbeat had replaced the old one).
        if (kill === 0) await waitUntil(() => sessions >= before + 3 && collectorPosition(setup.collectorDataDir) > 0n, 'traffic while the collector runs');
        await collector.kill9();
        const killedAt = Date.now();
        await sleep(1500);
        const restartingAt = Date.now();
        collector = await GapwatchProcess.start('collector', setup.collectorConfig);
        windows.push({ killedAt, restartingAt });
      }
      await waitUntil(() => sessions >= 20, 'more traffic after the last restart');
      serving = false;
      await load;
      const truth = journalTruth((await settledJournal(setup)).filter((r) => r.session || r.event));
      await waitUntil(() => collectorPosition(setup.collectorDataDir) >= truth.lastSeq, `the collector to store the journal up to seq ${truth.lastSeq}`);
      assert.equal(await collector.stop(), 0, collector.output());
      assert.equal(await gateway.stop(), 0, gateway.output());

      const store = await openCollectorStore(setup.collectorDataDir);
      try {
        const stored = await storedGatewayRecords(store);
        assert.equal(truth.sessions.size, sessions, 'one journaled session per agent session');
        assertStoredExactlyOnce(stored, truth);
        const open = await storeQuery<{ n: string }>(store, `SELECT count() AS n FROM ${table(store, 'gateway_sessions')} FINAL WHERE outcome != 'closed'`);
        assert.equal(Number(open[0]!.n), 0, 'every session stored with its end');

        const gaps = await storeQuery<{ start_ms: string; end_ms: string; lost: string; reason: string }>(
          store,
          `SELECT toUnixTimestamp64Milli(start_time) AS start_ms, toUnixTimestamp64Milli(end_time) AS end_ms, lost, reason FROM ${table(store, 'audit_gaps')} FINAL WHERE source = 'collector' ORDER BY start_time`,
        );
        assert.equal(gaps.length, windows.length, JSON.stringify(gaps));
        gaps.forEach((gap, i) => {
          assert.ok(Number(gap.start_ms) <= windows[i]!.killedAt, `gap ${i} starts at or before the kill`);
          assert.ok(Number(gap.start_ms) >= windows[i]!.killedAt - 3000, `gap ${i} starts at the last heartbeat before the kill`);
          assert.ok(Number(gap.end_ms) >= windows[i]!.restartingAt, `gap ${i} ends once the sensor is back`);
          assert.match(gap.reason, /ended without a clean stop/);
        });
        const alerts = await storeQuery<{ n: string }>(store, `SELECT count() AS n FROM ${table(store, 'alerts')} FINAL WHERE kind = 'audit_gap' AND summary LIKE '%ended without a clean stop%'`);
        assert.equal(Number(alerts[0]!.n), windows.length);
      } finally {
        await store.close();
      }
    } catch (err) {
      serving = false;
      (err as Error).message += `\n${gateway.output()}\n${collector.output()}`;
      throw err;
    } finally {
      serving = false;
      await load.catch(() => undefined);
    }
  });
});

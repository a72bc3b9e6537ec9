import assert from 'node:assert/strict';
import { nodeClient } from '../gateway/postgres/clients';
import { requireRoot } from '../support/host';
import {
  agentSession,
  collectorPosition,
  GapwatchProcess,
  assertStoredExactlyOnce,
  journalTruth,
  openCollectorStore,
  readJournalFiles,
  reliabilitySetup,
  settledJournal,
  storedGatewayRecords,
  storeQuery,
  table,
  waitUntil,
  type ReliabilitySetup,
} from '../support/gapwatch-processes';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';

/** Requests (pg_request events) of the journal whose SQL carries `label`. */
function requestsLabelled(records: readonly JournalRecord__Output[], label: string): JournalRecord__Output[] {
  return records.filter((r) => r.event?.pgRequest?.messages.some((m) => m.text.includes(`'${label}'`)));
}

describe('reliability: gateway killed with SIGKILL mid-session', function () {
  this.timeout(150_000);
  let setup: ReliabilitySetup;

  before(async () => {
    requireRoot();
    setup = await reliabilitySetup();
  });
  after(async () => {
    await setup?.stop();
  });

  it('keeps every committed record, closes the interrupted session as aborted on restart, and the collector resumes', async () => {
    // "Nothing lost" here: each of the ANSWERED statements the agent saw answered before the kill has its
    // write-ahead request record in the journal after the kill (before-forward: written or durable, and a
    // written record survives SIGKILL of the gateway); the session
    // the kill interrupted has an end record (aborted) after the restart; and the collector's store
    // holds every session and session event of the journal, each exactly once.
    const ANSWERED = 20;
    let gateway = await GapwatchProcess.start('gateway', setup.gatewayConfig);
    const gatewayPids = [gateway.pid];
    const collector = await GapwatchProcess.start('collector', setup.collectorConfig);
    try {
      await agentSession(setup, 3, 'before');
      const client = await nodeClient({ host: '127.0.0.1', port: setup.postgresPort, user: setup.login, password: setup.token, database: 'orders' });
      client.on('error', () => undefined);
      for (let i = 0; i < ANSWERED; i++) await client.query(`SELECT ${i} AS n, 'mid' AS label`);
      await gateway.kill9();
      await client.end().catch(() => undefined);

      const afterKill = readJournalFiles(setup.gatewayDataDir, setup.gatewayId);
      assert.equal(requestsLabelled(afterKill, 'mid').length, ANSWERED, 'every answered statement was journaled before it was forwarded');
      const interrupted = afterKill.filter((r) => r.session?.outcome === 'SESSION_OUTCOME_OPEN').map((r) => r.session!.sessionId);
      const ended = new Set(afterKill.filter((r) => r.session && r.session.outcome !== 'SESSION_OUTCOME_OPEN').map((r) => r.session!.sessionId));
      const open = interrupted.filter((id) => !ended.has(id));
      assert.equal(open.length, 1, 'the kill left exactly the interrupted session open');

      gateway = await GapwatchProcess.start('gateway', setup.gatewayConfig);
      gatewayPids.push(gateway.pid);
      assert.match(gateway.output(), /1 session left open by the last run closed as aborted/);
      await agentSession(setup, 3, 'after');

      const journal = await settledJournal(setup);
      const aborted = journal.filter((r) => r.session?.sessionId === open[0]).pop()!.session!;
      assert.equal(aborted.outcome, 'SESSION_OUTCOME_ABORTED');
      assert.match(aborted.failure, /^aborted: /);
      const truth = journalTruth(journal.filter((r) => r.session || r.event));
      await waitUntil(() => collectorPosition(setup.collectorDataDir) >= truth.lastSeq, `the collector to store the journal up to seq ${truth.lastSeq}`);
      assert.equal(await gateway.stop(), 0, gateway.output());
      assert.equal(await collector.stop(), 0, collector.output());

      const store = await openCollectorStore(setup.collectorDataDir);
      try {
        const stored = await storedGatewayRecords(store);
        assertStoredExactlyOnce(stored, truth);
        const [row] = await storeQuery<{ outcome: string; failure: string; ended: number }>(
          store,
          `SELECT toString(outcome) AS outcome, failure, toUnixTimestamp64Nano(end_time) > 0 AS ended FROM ${table(store, 'gateway_sessions')} FINAL WHERE session_id = '${open[0]}'`,
        );
        assert.equal(row!.outcome, 'aborted');
        assert.match(row!.failure, /^aborted: /);
        assert.equal(Number(row!.ended), 1);

        // The gateway runs as its own process on the collector's host: its legs to PostgreSQL, before
        // the kill and from the restarted process (a new pid), are its own, never a bypass (issue 6).
        const legs = await storeQuery<{ pid: number; verdict: string; n: number }>(
          store,
          `SELECT tgid AS pid, toString(verdict) AS verdict, count() AS n FROM ${table(store, 'connect_events')} FINAL WHERE tgid IN (${gatewayPids.join(', ')}) AND destination_port = ${setup.pg.port} GROUP BY tgid, verdict ORDER BY tgid, verdict`,
        );
        assert.deepEqual(legs.filter((l) => l.verdict === 'bypass'), [], `no gateway leg judged bypass: ${JSON.stringify(legs)} gateways ${gatewayPids}`);
        assert.deepEqual([...new Set(legs.map((l) => Number(l.pid)))].sort(), [...gatewayPids].sort(), 'both gateway processes were seen connecting to PostgreSQL');
        const [bypassAlerts] = await storeQuery<{ n: number }>(store, `SELECT count() AS n FROM ${table(store, 'alerts')} FINAL WHERE toString(kind) = 'bypass' AND resource = 'orders'`);
        assert.equal(Number(bypassAlerts!.n), 0, 'no bypass alert for the gateway');
      } finally {
        await store.close();
      }
    } catch (err) {
      (err as Error).message += `\n${gateway.output()}\n${collector.output()}`;
      throw err;
    }
  });
});

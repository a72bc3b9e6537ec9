import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import {
  agentSession,
  collectorPosition,
  GapwatchProcess,
  journalTruth,
  openCollectorStore,
  reliabilitySetup,
  settledJournal,
  storedGatewayRecords,
  storeQuery,
  table,
  waitUntil,
} from '../test/support/gapwatch-processes';
import { round, summarize } from './stats';

/**
 * `npm run bench -- soak [seconds=180] [restartEverySeconds=40]` (root): a long mixed run of the real
 * processes, `gapwatch gateway` and `gapwatch collector`, in front of a real PostgreSQL. Agent sessions
 * run through the gateway without pause; the bench process makes connect storms and exec storms on the
 * host; every `restartEverySeconds` the collector is stopped, alternately with SIGKILL and SIGTERM, and
 * started again a second later. Memory of both processes is sampled every 5 s.
 *
 * At the end the gateway's journal is the truth: `produced` is its sessions plus session events,
 * `stored` how many of them the collector's store holds, `lost` the difference, `duplicated` the rows a
 * query would see twice (rows after FINAL minus distinct ids). Host events carry no such guarantee
 * across a collector's absence; the windows it was away are reported (`unobserved_windows`, each an
 * audit_gaps row), with the host connects made and stored.
 *
 * Baselines in the same run: memory at the start of the run against its end (`rss_growth_ratio`), and
 * the store's share of the records against the journal's (`stored_vs_produced_ratio`, 1 when nothing
 * is lost).
 */
export async function run(args: string[]): Promise<{ name: string } & Record<string, unknown>> {
  const seconds = Number(args[0] ?? 180);
  const restartEvery = Number(args[1] ?? 40);
  if (process.geteuid?.() !== 0) throw new Error('bench/soak runs the host sensor and a PostgreSQL server: run it as root');
  const setup = await reliabilitySetup();
  const closedPort = await listenerThatCloses();
  let gateway: GapwatchProcess | null = null;
  let collector: GapwatchProcess | null = null;
  try {
    gateway = await GapwatchProcess.start('gateway', setup.gatewayConfig);
    collector = await GapwatchProcess.start('collector', setup.collectorConfig);
    const started = Date.now();
    const endAt = started + seconds * 1000;
    const running = (): boolean => Date.now() < endAt;
    const counters = { sessions: 0, sessionFailures: 0, connects: 0, execs: 0, restarts: 0, kills: 0 };
    const memory: Array<{ t: number; collector_rss_mib: number; gateway_rss_mib: number }> = [];
    let collectorPeak = 0;
    let gatewayPeak = 0;

    const sample = (): void => {
      const c = collector ? rssOf(collector.pid) : null;
      const g = gateway ? rssOf(gateway.pid) : null;
      if (c) collectorPeak = Math.max(collectorPeak, c.peakMib);
      if (g) gatewayPeak = Math.max(gatewayPeak, g.peakMib);
      memory.push({ t: Math.round((Date.now() - started) / 1000), collector_rss_mib: round(c?.rssMib ?? 0, 1), gateway_rss_mib: round(g?.rssMib ?? 0, 1) });
    };
    const sampler = setInterval(sample, 5000);
    sample();

    const traffic = (async () => {
      for (let i = 0; running(); i++) {
        await agentSession(setup, 1 + (i % 8), `soak-${i}`).then(
          () => counters.sessions++,
          () => counters.sessionFailures++,
        );
      }
    })();
    const connectStorms = (async () => {
      while (running()) {
        await Promise.all(Array.from({ length: 200 }, () => connectOnce(closedPort.port)));
        counters.connects += 200;
        await sleep(500);
      }
    })();
    const execStorms = (async () => {
      while (running()) {
        await execStorm(100);
        counters.execs += 100;
        await sleep(2000);
      }
    })();
    const restarts = (async () => {
      for (let round = 0; ; round++) {
        await sleep(restartEvery * 1000);
        if (!running()) return;
        sample();
        if (round % 2 === 0) {
          await collector!.kill9();
          counters.kills++;
        } else {
          await collector!.stop();
        }
        collector = null;
        await sleep(1000);
        collector = await GapwatchProcess.start('collector', setup.collectorConfig);
        counters.restarts++;
      }
    })();
    await Promise.all([traffic, connectStorms, execStorms, restarts]);

    const truth = journalTruth((await settledJournal(setup)).filter((r) => r.session || r.event));
    const caughtUpFrom = Date.now();
    await waitUntil(() => collectorPosition(setup.collectorDataDir) >= truth.lastSeq, `the collector to store the journal up to seq ${truth.lastSeq}`, 300_000);
    const catchUpMs = Date.now() - caughtUpFrom;
    sample();
    clearInterval(sampler);
    await collector!.stop();
    await gateway.stop();

    const store = await openCollectorStore(setup.collectorDataDir);
    try {
      const stored = await storedGatewayRecords(store);
      const storedOfTruth = count(truth.sessions, stored.sessions) + count(truth.events, stored.events);
      const produced = truth.sessions.size + truth.events.size;
      const unexpected = stored.sessions.size + stored.events.size - storedOfTruth;
      const duplicated = stored.sessionsFinal - stored.sessions.size + (stored.eventsFinal - stored.events.size);
      const [raw] = await storeQuery<{ sessions: string; events: string }>(
        store,
        `SELECT (SELECT count() FROM ${table(store, 'gateway_sessions')}) AS sessions, (SELECT count() FROM ${table(store, 'gateway_session_events')}) AS events`,
      );
      const [connects] = await storeQuery<{ n: string }>(store, `SELECT count() AS n FROM ${table(store, 'connect_events')} FINAL WHERE pid = ${process.pid} AND destination_port = ${closedPort.port}`);
      const gaps = await storeQuery<{ source: string; rows: string; seconds: string; lost: string }>(
        store,
        `SELECT source, count() AS rows, sum(dateDiff('millisecond', start_time, end_time)) / 1000 AS seconds, sum(lost) AS lost FROM ${table(store, 'audit_gaps')} FINAL GROUP BY source ORDER BY source`,
      );
      const collectorGaps = gaps.find((g) => g.source === 'collector');
      const firstQuarter = memory.slice(0, Math.max(1, Math.floor(memory.length / 4))).map((m) => m.collector_rss_mib).filter((v) => v > 0);
      const lastQuarter = memory.slice(-Math.max(1, Math.floor(memory.length / 4))).map((m) => m.collector_rss_mib).filter((v) => v > 0);
      return {
        name: 'soak',
        seconds,
        restart_every_seconds: restartEvery,
        produced,
        stored: storedOfTruth,
        lost: produced - storedOfTruth,
        duplicated,
        unexpected,
        stored_vs_produced_ratio: round(storedOfTruth / produced, 6),
        gateway_sessions: truth.sessions.size,
        gateway_session_events: truth.events.size,
        raw_rows_collapsed_by_final: Number(raw!.sessions) + Number(raw!.events) - stored.sessionsFinal - stored.eventsFinal,
        agent_sessions_completed: counters.sessions,
        agent_sessions_failed: counters.sessionFailures,
        collector_restarts: counters.restarts,
        collector_kills: counters.kills,
        unobserved_windows: Number(collectorGaps?.rows ?? 0),
        unobserved_seconds: round(Number(collectorGaps?.seconds ?? 0), 1),
        audit_gaps: gaps.map((g) => ({ source: g.source, rows: Number(g.rows), lost: Number(g.lost) })),
        host_connects_made: counters.connects,
        host_connects_stored: Number(connects!.n),
        host_execs_made: counters.execs,
        catch_up_ms: catchUpMs,
        peak_rss_mib: round(collectorPeak, 1),
        gateway_peak_rss_mib: round(gatewayPeak, 1),
        collector_rss_mib_first_quarter: firstQuarter.length ? summarize(firstQuarter) : null,
        collector_rss_mib_last_quarter: lastQuarter.length ? summarize(lastQuarter) : null,
        rss_growth_ratio: firstQuarter.length && lastQuarter.length ? round(summarize(lastQuarter).median / summarize(firstQuarter).median, 3) : null,
        memory,
      };
    } finally {
      await store.close();
    }
  } finally {
    await collector?.stop();
    await gateway?.stop();
    closedPort.server.close();
    await setup.stop();
  }
}

function count(truth: ReadonlySet<string>, stored: ReadonlySet<string>): number {
  let n = 0;
  for (const id of truth) if (stored.has(id)) n++;
  return n;
}

/** VmRSS and VmHWM (the process's peak) from /proc, in MiB; null once the process is gone. */
function rssOf(pid: number): { rssMib: number; peakMib: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return { rssMib: kib('VmRSS') / 1024, peakMib: kib('VmHWM') / 1024 };
  } catch {
    return null;
  }
}

/** A local listener that closes each connection at once: the target of the connect storms. */
async function listenerThatCloses(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

function connectOnce(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
}

function execStorm(count: number): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', `i=0; while [ $i -lt ${count} ]; do /bin/true; i=$((i+1)); done`], { stdio: 'ignore' });
    child.on('close', () => resolve());
    child.on('error', () => resolve());
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}


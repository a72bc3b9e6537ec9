import { execFile, execFileSync, fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pino from 'pino';
import type { CollectorAlert } from '../collector/alerts/alert';
import type { AlertSink } from '../collector/alerts/contract';
import { WebhookSink } from '../collector/alerts/webhook-sink';
import { collectorComponent } from '../collector/collector-component';
import { openStore } from '../collector/store/connection';
import { migrate } from '../collector/store/migration';
import { storeSink } from '../collector/store/sink';
import { Spool } from '../collector/store/spool';
import { StoreWriter } from '../collector/store/writer';
import { parseConfig } from '../platform/config';
import { packageRoot } from '../platform/package-root';
import { round } from './stats';

/**
 * Bypass alert latency: from the kernel timestamp of a connect(2) to a protected upstream (the
 * sensor's CLOCK_BOOTTIME) to the alert reaching a sink (an in-process sink, and a webhook at a real
 * HTTP receiver in another process), with the whole collector running (sensor, correlation, embedded
 * store). Each round runs quiet, then under a background TCP connect storm (bench/sensor-load.c), then
 * under the storm again with the baseline webhook sink (the serial fetch() design) in place of the
 * current one: side by side in one run, never both in one phase.
 * Bypasses come from a separate process, one connect every intervalMs; alerts are not de-duplicated
 * here, so each connect must produce one: `missed` counts those that did not.
 *
 * Usage: npm run bench -- alert-latency [rounds=3] [bypasses=100] [intervalMs=20] [stormWorkers=2]
 */
export async function run(args: string[]): Promise<{ name: string } & Record<string, unknown>> {
  if (process.geteuid?.() !== 0) throw new Error('bench/alert-latency loads BPF programs: run it as root');
  const rounds = Number(args[0] ?? 3);
  const bypasses = Number(args[1] ?? 100);
  const intervalMs = Number(args[2] ?? 20);
  const stormWorkers = Number(args[3] ?? 2);
  const dir = mkdtempSync(join(tmpdir(), 'gapwatch-bench-alerts-'));
  const load = join(dir, 'sensor-load');
  execFileSync('gcc', ['-O2', '-Wall', '-pthread', '-o', load, join(packageRoot(), 'bench', 'sensor-load.c')]);

  // The protected upstream: a listener that accepts and closes; what matters is the connect.
  const upstream = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as AddressInfo).port;
  // The webhook receiver runs in its own process, as a real one does: in the collector's process it
  // would share (and add to) the very event loop whose delays are being measured. CLOCK_MONOTONIC
  // (hrtime) is one clock for every process on the host.
  const receiverScript = join(dir, 'receiver.js');
  writeFileSync(
    receiverScript,
    `const http = require('node:http');\nlet received = {};\n` +
      `const server = http.createServer((req, res) => { let body = ''; req.on('data', (c) => (body += c)); req.on('end', () => { const at = process.hrtime.bigint(); const alert = JSON.parse(body).alert; (received[req.url] ??= {})[alert.eventId] = Number(at - BigInt(alert.kernelBootNs || '0')) / 1e6; res.end(); }); });\n` +
      `server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));\n` +
      `process.on('message', (m) => { if (m === 'report') { process.send({ received }); received = {}; } else if (m === 'stop') { server.close(); server.closeAllConnections(); process.disconnect(); } });\n`,
  );
  const receiver = fork(receiverScript, [], { stdio: 'ignore' });
  const receiverPort = await new Promise<number>((resolve, reject) => {
    receiver.once('message', (m) => resolve((m as { port: number }).port));
    receiver.once('error', reject);
  });
  /** Latencies the receiver saw since the last call, by path (one path per webhook sink). */
  const takeReceived = (): Promise<Record<string, number[]>> =>
    new Promise((resolve) => {
      receiver.once('message', (m) => {
        const byPath = (m as { received: Record<string, Record<string, number>> }).received;
        resolve(Object.fromEntries(Object.entries(byPath).map(([path, samples]) => [path, Object.values(samples)])));
      });
      receiver.send('report');
    });
  const hookUrl = `http://127.0.0.1:${receiverPort}/alerts`;

  // CLOCK_BOOTTIME (the sensor's clock) = CLOCK_MONOTONIC (hrtime) + time spent suspended; check it is 0 here.
  const clockSkewMs = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000 - Number(process.hrtime.bigint()) / 1e6;

  const config = parseConfig(
    `dataDir: ${join(dir, 'data')}\nstore:\n  writer:\n    flushIntervalMs: 200\ncollector:\n  resources:\n    - name: bench-db\n      labels: { production: "true" }\n      upstream: [{ host: 127.0.0.1, port: ${port} }]\n  correlate:\n    otherConnects: sample\n  alerts:\n    log: false\n    dedupWindowMs: 0\n    maxPerMinute: 1000000\n`,
  );
  const log = pino({ level: 'silent' });
  const store = await openStore(config);
  await migrate(store.client, store.dialect);
  const { spool } = Spool.open({ dir: join(config.dataDir, 'spool'), maxBytes: config.store.spool.maxBytes });
  const writer = new StoreWriter(storeSink(store), spool, config.store.writer, log);
  writer.start();
  const collector = collectorComponent({ config, log, writer: () => writer });
  await collector.start();
  const atSink = new Map<string, number>();
  const benchSink: AlertSink = {
    name: 'bench',
    deliver(alert) {
      if (alert.rule === 'connect-bypass') atSink.set(alert.eventId, Number(process.hrtime.bigint() - BigInt(alert.kernelBootNs ?? '0')) / 1e6);
    },
    async close() {},
  };
  const webhook = new WebhookSink({ url: hookUrl, format: 'generic', secret: 'bench', attempts: 3, timeoutMs: 5000, maxQueue: 100_000 }, log);
  // The baseline, side by side: the webhook sink as it was (fetch(), one POST at a time, in order).
  const serial = new SerialFetchWebhook(`http://127.0.0.1:${receiverPort}/serial`);
  // One webhook sink at a time: both in one phase would share (and load) the event loop they are measured on.
  let activeHook: 'new' | 'serial' = 'new';
  const gate = (which: 'new' | 'serial', sink: AlertSink): AlertSink => ({
    name: sink.name,
    deliver: (alert) => {
      if (activeHook === which) sink.deliver(alert);
    },
    close: () => sink.close(),
  });
  collector.alerts!.addSink(benchSink);
  collector.alerts!.addSink(gate('new', webhook));
  collector.alerts!.addSink(gate('serial', serial));

  const generator = join(dir, 'bypass.js');
  writeFileSync(
    generator,
    `const net = require('node:net');\nlet left = ${bypasses};\nconst next = () => { if (left-- <= 0) return; const s = net.connect(${port}, '127.0.0.1'); s.on('error', () => {}); s.on('close', () => setTimeout(next, ${intervalMs})); };\nnext();\n`,
  );
  const bypassRun = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [generator], { stdio: 'ignore' });
      child.on('error', reject);
      child.on('close', () => resolve());
    });

  // Event-loop stalls delay every sink alike; measured per phase to tell them from sink-side waits.
  const loopDelay = { quiet: [] as number[], storm: [] as number[] };
  const phase = async (storm: boolean, hook: 'new' | 'serial'): Promise<{ sink: number[]; webhook: number[]; serial: number[]; missed: number }> => {
    activeHook = hook;
    atSink.clear();
    await takeReceived();
    const histogram = monitorEventLoopDelay({ resolution: 10 });
    histogram.enable();
    const stormDone = storm
      ? new Promise<void>((resolve) => execFile(load, ['connect', String(Math.ceil((bypasses * (intervalMs + 2)) / 1000) + 2), String(stormWorkers)], () => resolve()))
      : Promise.resolve();
    if (storm) await new Promise((resolve) => setTimeout(resolve, 500));
    await bypassRun();
    await stormDone;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await webhook.idle();
    await serial.idle();
    histogram.disable();
    if (hook === 'new') (storm ? loopDelay.storm : loopDelay.quiet).push(histogram.percentile(99) / 1e6);
    const byPath = await takeReceived();
    return { sink: [...atSink.values()], webhook: byPath['/alerts'] ?? [], serial: byPath['/serial'] ?? [], missed: Math.max(0, bypasses - atSink.size) };
  };

  const quiet = { sink: [] as number[], webhook: [] as number[], serial: [] as number[], missed: 0 };
  const stormy = { sink: [] as number[], webhook: [] as number[], serial: [] as number[], missed: 0 };
  const baseline = { sink: [] as number[], webhook: [] as number[], serial: [] as number[], missed: 0 };
  try {
    for (let r = 0; r < rounds; r++) {
      for (const [target, storm, hook] of [[quiet, false, 'new'], [stormy, true, 'new'], [baseline, true, 'serial']] as const) {
        const result = await phase(storm, hook);
        target.sink.push(...result.sink);
        target.webhook.push(...result.webhook);
        target.serial.push(...result.serial);
        target.missed += result.missed;
      }
    }
  } finally {
    await collector.stop();
    await writer.close();
    await store.close();
    upstream.close();
    receiver.send('stop');
    rmSync(dir, { recursive: true, force: true });
  }
  const stats = correlatorStats(collector);
  const p = (samples: number[], q: number): number => {
    if (samples.length === 0) return NaN;
    const sorted = [...samples].sort((a, b) => a - b);
    return round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
  };
  return {
    name: 'alert-latency',
    rounds,
    bypasses_per_phase: bypasses,
    storm_workers: stormWorkers,
    quiet_p50_ms: p(quiet.sink, 0.5),
    quiet_p99_ms: p(quiet.sink, 0.99),
    webhook_p50_ms: p(stormy.webhook, 0.5),
    webhook_p99_ms: p(stormy.webhook, 0.99),
    webhook_serial_fetch_p50_ms: p(baseline.serial, 0.5),
    webhook_serial_fetch_p99_ms: p(baseline.serial, 0.99),
    webhook_p99_ratio_vs_serial_fetch: round(p(stormy.webhook, 0.99) / p(baseline.serial, 0.99)),
    webhook_p99_ratio_vs_sink: round(p(stormy.webhook, 0.99) / p(stormy.sink, 0.99)),
    webhook_alerts: stormy.webhook.length,
    quiet_missed: quiet.missed,
    p99_ratio_storm_vs_quiet: round(p(stormy.sink, 0.99) / p(quiet.sink, 0.99)),
    clock_skew_ms: round(clockSkewMs),
    event_loop_delay_p99_ms_quiet: round(Math.max(...loopDelay.quiet)),
    event_loop_delay_p99_ms_storm: round(Math.max(...loopDelay.storm)),
    connects_seen: stats,
    p50_ms: p(stormy.sink, 0.5),
    p99_ms: p(stormy.sink, 0.99),
    alerts: stormy.sink.length,
    missed: stormy.missed,
  };
}

function correlatorStats(collector: ReturnType<typeof collectorComponent>): Record<string, number> {
  const stats = collector.correlator?.stats();
  return stats ? { bypass: stats.bypass, other: stats.other, other_dropped: stats.otherDropped } : {};
}

/**
 * The baseline webhook sink: the design before this bench drove a change (one POST at a time with
 * fetch(), each alert waiting for every one before it). Same body; no signature or retries, which
 * only make it slower.
 */
class SerialFetchWebhook implements AlertSink {
  readonly name = 'webhook (serial fetch baseline)';
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly url: string) {}

  deliver(alert: CollectorAlert): void {
    const body = JSON.stringify({ type: 'gapwatch.alert', alert });
    this.chain = this.chain.then(async () => {
      try {
        const response = await fetch(this.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await response.arrayBuffer();
      } catch {
        // A lost baseline POST shows as a missing sample.
      }
    });
  }

  idle(): Promise<void> {
    return this.chain;
  }

  async close(): Promise<void> {
    await this.chain;
  }
}

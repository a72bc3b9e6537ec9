import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, type JournalSyncMode } from '../gateway/journal/journal';
import type { JournalBody } from '../gateway/journal/contract';
import { round, summarize, type Summary } from './stats';

/**
 * Journal append throughput: group commit (the product) against its baselines in the same run,
 * fsync per record (durable, no sharing) and no fsync (not durable: the ceiling), each with 1 and
 * 16 concurrent appenders awaiting their own appends, as the gateway's sessions do; and the
 * PostgreSQL gateway's round trip (await the request record, append the outcome unawaited) with
 * the outcome as a deferred append against an ordinary one, for 1 and 8 sessions; and the same
 * round trip with the request acknowledged at 'written' (in the file, fsync'd in the background:
 * what the gateway waits for before forwarding a read) against 'durable'.
 *
 * `npm run bench -- journal [rounds] [appendsPerRound]`
 */
export async function run(args: string[]): Promise<{ name: string } & Record<string, unknown>> {
  const rounds = Number(args[0] ?? 5);
  const appends = Number(args[1] ?? 2000);
  const modes: JournalSyncMode[] = ['group', 'per-record', 'none'];
  const concurrencies = [1, 16];
  const samples = new Map<string, number[]>();
  const fsyncsPerAppend = new Map<string, number[]>();
  const cpuPerAppend = new Map<string, number[]>();
  const body = (n: number): JournalBody => ({
    event: {
      sessionId: `bench-${n % 16}`,
      eventSeq: n + 1,
      timeUnixNano: String(Date.now() * 1e6),
      statement: { text: `SELECT id, email FROM customers WHERE id = $1 /* ${n} */`, parameters: [String(n)], commandTag: 'SELECT 1', rows: 1, durationNano: 120_000 },
    },
  });
  const root = mkdtempSync(join(tmpdir(), 'gapwatch-bench-journal-'));
  try {
    for (let r = 0; r < rounds; r++) {
      // Interleave the variants within each round so drift on a noisy machine hits all alike.
      for (const concurrency of concurrencies) {
        for (const mode of modes) {
          // fsync per record with one appender is slow; fewer appends keep the round short.
          const count = mode === 'per-record' || (mode === 'group' && concurrency === 1) ? Math.max(100, Math.floor(appends / 4)) : appends;
          const dir = join(root, `${mode}-${concurrency}-${r}`);
          const journal = await Journal.open({ dir, gatewayId: 'gw-bench', checkpoint: { everyRecords: 1000, everyMs: 10_000 } , sync: mode });
          let next = 0;
          const start = process.hrtime.bigint();
          await Promise.all(
            Array.from({ length: concurrency }, async () => {
              while (next < count) await journal.append(body(next++));
            }),
          );
          const seconds = Number(process.hrtime.bigint() - start) / 1e9;
          const key = `${mode}_c${concurrency}`;
          samples.set(key, [...(samples.get(key) ?? []), count / seconds]);
          fsyncsPerAppend.set(key, [...(fsyncsPerAppend.get(key) ?? []), journal.stats().fsyncs / count]);
          await journal.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }
      // The PostgreSQL gateway's pattern: 8 sessions, each awaiting its request record (write-ahead)
      // and then appending the statement's outcome without waiting — as a deferred append (riding
      // along with the next group) or, as before, as an ordinary one (starting a group of its own).
      for (const sessions of [1, 8]) {
        for (const outcome of ['deferred', 'immediate', 'written_request'] as const) {
          const dir = join(root, `round-trip-${outcome}-${sessions}-${r}`);
          const journal = await Journal.open({ dir, gatewayId: 'gw-bench', checkpoint: { everyRecords: 1000, everyMs: 10_000 }, sync: 'group' });
          const trips = sessions === 1 ? Math.max(100, Math.floor(appends / 10)) : Math.max(200, Math.floor(appends / 4));
          let next = 0;
          const cpu = process.cpuUsage();
          const start = process.hrtime.bigint();
          await Promise.all(
            Array.from({ length: sessions }, async () => {
              while (next < trips) {
                const n = next++;
                await journal.append(body(2 * n), { ack: outcome === 'written_request' ? 'written' : 'durable' });
                void journal.append(body(2 * n + 1), { defer: outcome !== 'immediate' });
                // The agent's next request follows the answer a moment later, as a socket read would.
                await new Promise<void>((resolve) => setImmediate(resolve));
              }
            }),
          );
          const seconds = Number(process.hrtime.bigint() - start) / 1e9;
          const used = process.cpuUsage(cpu);
          const key = outcome === 'written_request' ? `written_request_c${sessions}` : `${outcome}_outcome_c${sessions}`;
          samples.set(`round_trips_per_s_${key}`, [...(samples.get(`round_trips_per_s_${key}`) ?? []), trips / seconds]);
          fsyncsPerAppend.set(key, [...(fsyncsPerAppend.get(key) ?? []), journal.stats().fsyncs / (2 * trips)]);
          cpuPerAppend.set(key, [...(cpuPerAppend.get(key) ?? []), (used.user + used.system) / (2 * trips)]);
          await journal.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const result: Record<string, Summary | number> = {};
  for (const [key, values] of samples) result[key.startsWith('round_trips') ? key : `appends_per_s_${key}`] = summarize(values);
  for (const [key, values] of cpuPerAppend) result[`cpu_us_per_append_${key}`] = round(summarize(values).median, 1);
  for (const [key, values] of fsyncsPerAppend) result[`fsyncs_per_append_${key}`] = round(summarize(values).median, 4);
  const median = (key: string): number => summarize(samples.get(key)!).median;
  return {
    name: 'journal',
    rounds,
    appends,
    ...result,
    ratio_group_vs_per_record_c16: round(median('group_c16') / median('per-record_c16'), 2),
    ratio_group_vs_per_record_c1: round(median('group_c1') / median('per-record_c1'), 2),
    ratio_group_vs_no_fsync_c16: round(median('group_c16') / median('none_c16'), 2),
    ratio_deferred_vs_immediate_outcome_c1: round(median('round_trips_per_s_deferred_outcome_c1') / median('round_trips_per_s_immediate_outcome_c1'), 2),
    ratio_deferred_vs_immediate_outcome_c8: round(median('round_trips_per_s_deferred_outcome_c8') / median('round_trips_per_s_immediate_outcome_c8'), 2),
    // Both with the outcome deferred: what acknowledging the request at 'written' buys per round trip.
    ratio_written_vs_durable_request_c1: round(median('round_trips_per_s_written_request_c1') / median('round_trips_per_s_deferred_outcome_c1'), 2),
    ratio_written_vs_durable_request_c8: round(median('round_trips_per_s_written_request_c8') / median('round_trips_per_s_deferred_outcome_c8'), 2),
  };
}

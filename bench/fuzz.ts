import { runFuzz, type FuzzResult } from '../test/support/fuzz/fuzz-run';
import { startFuzzTarget, type FuzzTargetName } from '../test/support/fuzz/fuzz-targets';

const TARGETS: readonly FuzzTargetName[] = ['postgres', 'ssh', 'http'];

/**
 * `npm run bench -- fuzz [seconds] [target|all] [seed]`: a long fuzz run of the gateway entry points
 * (test/support/fuzz: generated seeds, mutations, V8 block-coverage feedback), reporting inputs tried,
 * crashes, hangs and peak memory per target. A finding carries its input in hex; the same seed replays
 * the same inputs. Throughput is reported next to a baseline run of the same target without coverage
 * feedback, so the cost of the feedback is a ratio measured on this machine at this time.
 */
export async function run(args: string[]): Promise<Record<string, unknown> & { name: string }> {
  const seconds = Number(args[0] ?? 60);
  const which = args[1] ?? 'all';
  const seed = Number(args[2] ?? Date.now() % 0x7fffffff);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`seconds must be a positive number, got ${args[0]}`);
  const targets = which === 'all' ? TARGETS : TARGETS.filter((t) => t === which);
  if (targets.length === 0) throw new Error(`target must be one of ${TARGETS.join(', ')} or all, got ${which}`);
  const results: Record<string, unknown> = {};
  let inputs = 0;
  let crashes = 0;
  let hangs = 0;
  let findings = 0;
  let peakRssMiB = 0;
  for (const name of targets) {
    const target = await startFuzzTarget(name);
    try {
      const guided = await runFuzz(target, { seconds: seconds * 0.8, seed, hangMs: 10_000, coverage: true, goodClientEvery: 500 });
      const baseline = await runFuzz(target, { seconds: seconds * 0.2, seed, hangMs: 10_000, coverage: false, goodClientEvery: 500 });
      const rate = (r: FuzzResult, s: number): number => Math.round((r.inputs / s) * 10) / 10;
      results[name] = {
        inputs: guided.inputs + baseline.inputs,
        per_lane: guided.perLane,
        crashes: guided.crashes + baseline.crashes,
        hangs: guided.hangs + baseline.hangs,
        good_client_checks: guided.goodClientChecks + baseline.goodClientChecks,
        corpus_added: guided.corpusAdded,
        blocks_covered: guided.blocksCovered,
        inputs_per_second_coverage: rate(guided, seconds * 0.8),
        inputs_per_second_plain: rate(baseline, seconds * 0.2),
        coverage_cost_ratio: Math.round((rate(baseline, seconds * 0.2) / Math.max(0.1, rate(guided, seconds * 0.8))) * 100) / 100,
        peak_rss_mib: Math.max(guided.peakRssMiB, baseline.peakRssMiB),
        heap_growth_mib: baseline.heapGrowthMiB,
        findings: [...guided.findings, ...baseline.findings].slice(0, 10),
      };
      inputs += guided.inputs + baseline.inputs;
      crashes += guided.crashes + baseline.crashes;
      hangs += guided.hangs + baseline.hangs;
      findings += guided.findings.length + baseline.findings.length;
      peakRssMiB = Math.max(peakRssMiB, guided.peakRssMiB, baseline.peakRssMiB);
    } finally {
      await target.stop();
    }
  }
  return { name: 'fuzz', seconds, seed, targets: results, inputs, crashes, hangs, findings, peak_rss_mib: peakRssMiB };
}

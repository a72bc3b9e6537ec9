import { Session } from 'node:inspector';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FuzzTarget } from './fuzz-targets';
import { Random, mutate } from './mutator';

export interface FuzzOptions {
  /** Wall-clock budget for generating and delivering inputs. */
  seconds: number;
  seed: number;
  /** A connection the gateway has not closed this long after the input ended is a hang. */
  hangMs: number;
  /** Keep inputs that reach code no earlier input reached (V8 block coverage through the inspector). */
  coverage: boolean;
  /**
   * Coverage is read after this many inputs (default 8), and when it grew, all of them are kept: reading
   * it walks every script in the process, which costs more than delivering a small input.
   */
  coverageBatch?: number;
  /** Ask the good client to do its job every this many inputs (and always at the end). */
  goodClientEvery: number;
}

export interface FuzzFinding {
  kind: 'crash' | 'hang' | 'good-client-failed' | 'setup-failed';
  lane: string;
  /** The input (hex), or the inputs delivered since the last good check for good-client-failed. */
  input: string;
  detail: string;
}

export interface FuzzResult {
  target: string;
  seed: number;
  inputs: number;
  perLane: Record<string, number>;
  crashes: number;
  hangs: number;
  goodClientChecks: number;
  findings: FuzzFinding[];
  /** Inputs kept for reaching new blocks (coverage mode), on top of the seeds. */
  corpusAdded: number;
  /** Distinct code blocks of the target's source reached (coverage mode). */
  blocksCovered: number;
  peakRssMiB: number;
  peakHeapMiB: number;
  /** Heap after the run less before it, in MiB (each measured after a full collection). */
  heapGrowthMiB: number;
}

/**
 * Block coverage of the target's own files, read after each input: `Profiler.takePreciseCoverage`
 * in call-count mode resets the counts it returns, so each read names the blocks that input ran.
 */
class CoverageFeedback {
  private readonly session = new Session();
  private readonly seen = new Set<string>();

  constructor(private readonly sourceDir: string) {}

  private post<T>(method: string, params: object = {}): Promise<T> {
    return new Promise((resolve, reject) => this.session.post(method, params, (err, result) => (err ? reject(err) : resolve(result as T))));
  }

  async start(): Promise<void> {
    this.session.connect();
    await this.post('Profiler.enable');
    await this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
    await this.take();
  }

  /** Blocks reached since the last call that no earlier call reported. */
  async take(): Promise<number> {
    type Coverage = { result: Array<{ url: string; functions: Array<{ ranges: Array<{ startOffset: number; endOffset: number; count: number }> }> }> };
    const coverage = await this.post<Coverage>('Profiler.takePreciseCoverage');
    let fresh = 0;
    for (const script of coverage.result) {
      if (!script.url.includes(this.sourceDir) || script.url.includes('/node_modules/')) continue;
      for (const fn of script.functions) {
        for (const range of fn.ranges) {
          if (range.count === 0) continue;
          const key = `${script.url}:${range.startOffset}:${range.endOffset}`;
          if (!this.seen.has(key)) {
            this.seen.add(key);
            fresh++;
          }
        }
      }
    }
    return fresh;
  }

  get blocks(): number {
    return this.seen.size;
  }

  async stop(): Promise<void> {
    await this.post('Profiler.stopPreciseCoverage');
    await this.post('Profiler.disable');
    this.session.disconnect();
  }
}

/**
 * Runs one target's lanes round-robin for `seconds`: each input is a seed (first) or a mutation of a
 * corpus entry, delivered on a fresh connection. An uncaught exception or unhandled rejection while an
 * input is in flight is a crash of the gateway (it runs in this process) and names that input. The
 * good client runs every `goodClientEvery` inputs and at the end; memory is sampled throughout.
 */
export async function runFuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzResult> {
  const rng = new Random(options.seed);
  const findings: FuzzFinding[] = [];
  const result: FuzzResult = {
    target: target.name,
    seed: options.seed,
    inputs: 0,
    perLane: Object.fromEntries(target.lanes.map((lane) => [lane.name, 0])),
    crashes: 0,
    hangs: 0,
    goodClientChecks: 0,
    findings,
    corpusAdded: 0,
    blocksCovered: 0,
    peakRssMiB: 0,
    peakHeapMiB: 0,
    heapGrowthMiB: 0,
  };
  const corpora = new Map(target.lanes.map((lane) => [lane.name, [...lane.seeds]]));
  const pendingSeeds = target.lanes.flatMap((lane) => lane.seeds.map((seed) => ({ lane, input: seed })));
  let inFlight: { lane: string; input: Buffer } | null = null;
  const onCrash = (err: unknown): void => {
    result.crashes++;
    findings.push({ kind: 'crash', lane: inFlight?.lane ?? '', input: inFlight?.input.toString('hex') ?? '', detail: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  };
  const sample = (): void => {
    const memory = process.memoryUsage();
    result.peakRssMiB = Math.max(result.peakRssMiB, memory.rss / 2 ** 20);
    result.peakHeapMiB = Math.max(result.peakHeapMiB, memory.heapUsed / 2 ** 20);
  };
  const collect = garbageCollector();
  collect();
  const heapBefore = process.memoryUsage().heapUsed;
  const sampler = setInterval(sample, 100);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  const coverage = options.coverage ? new CoverageFeedback(target.sourceDir) : null;
  await coverage?.start();
  const checkGoodClient = async (): Promise<void> => {
    result.goodClientChecks++;
    let timer: NodeJS.Timeout | undefined;
    const limit = options.hangMs * 3;
    try {
      await Promise.race([
        target.goodClient(),
        new Promise((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`the good client got no service within ${limit} ms`)), limit))),
      ]);
    } catch (err) {
      findings.push({ kind: 'good-client-failed', lane: '', input: '', detail: err instanceof Error ? err.message : String(err) });
    } finally {
      clearTimeout(timer);
    }
  };
  const batch: Array<{ lane: string; input: Buffer }> = [];
  const coverageBatch = options.coverageBatch ?? 8;
  try {
    const deadline = Date.now() + options.seconds * 1000;
    let laneIndex = 0;
    while (Date.now() < deadline) {
      let lane = target.lanes[laneIndex++ % target.lanes.length]!;
      let input: Buffer;
      const seed = pendingSeeds.shift();
      if (seed) {
        lane = seed.lane;
        input = seed.input;
      } else {
        const corpus = corpora.get(lane.name)!;
        input = mutate(rng.pick(corpus), rng, corpus, { maxBytes: lane.maxBytes, dictionary: lane.dictionary });
      }
      inFlight = { lane: lane.name, input };
      const outcome = await lane.deliver(input, rng, options.hangMs);
      result.inputs++;
      result.perLane[lane.name]!++;
      if (outcome === 'setup-failed') findings.push({ kind: 'setup-failed', lane: lane.name, input: input.toString('hex'), detail: 'the login before the input failed' });
      if (outcome === 'hang') {
        result.hangs++;
        findings.push({ kind: 'hang', lane: lane.name, input: input.toString('hex'), detail: `the gateway neither answered nor closed within ${options.hangMs} ms of the input's end` });
      }
      if (coverage && !seed) {
        batch.push({ lane: lane.name, input });
        if (batch.length >= coverageBatch) {
          if ((await coverage.take()) > 0) {
            for (const kept of batch) corpora.get(kept.lane)!.push(kept.input);
            result.corpusAdded += batch.length;
          }
          batch.length = 0;
        }
      } else if (coverage) {
        await coverage.take(); // a seed's blocks are known, not news
      }
      inFlight = null;
      if (result.inputs % options.goodClientEvery === 0) await checkGoodClient();
    }
    // Let connections the gateway is still tearing down finish, then the good client has the last word.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await checkGoodClient();
  } finally {
    clearInterval(sampler);
    sample();
    result.blocksCovered = coverage?.blocks ?? 0;
    await coverage?.stop();
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
  }
  collect();
  result.heapGrowthMiB = Math.round(((process.memoryUsage().heapUsed - heapBefore) / 2 ** 20) * 10) / 10;
  result.peakRssMiB = Math.round(result.peakRssMiB * 10) / 10;
  result.peakHeapMiB = Math.round(result.peakHeapMiB * 10) / 10;
  return result;
}

/**
 * The engine's collector, so heap growth is measured on live objects rather than on garbage that no
 * collection has reclaimed yet. The flag takes effect for contexts created after it is set.
 */
function garbageCollector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

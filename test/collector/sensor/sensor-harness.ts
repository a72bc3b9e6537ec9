import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../support/host';
import type { LossRecord, SensorRecord } from '../../../collector/sensor/host-sensor';

export type ProcessRecord = Exclude<SensorRecord, LossRecord>;

/** Builds test/collector/sensor/workload.c into a fresh temp dir. */
export function buildWorkload(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gapwatch-sensor-test-'));
  const out = join(dir, 'workload');
  execFileSync('gcc', ['-O2', '-Wall', '-o', out, join(repoRoot, 'test', 'collector', 'sensor', 'workload.c')]);
  return out;
}

export interface Ran {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** key=value lines the workload printed. */
  values: Record<string, string>;
}

export function run(file: string, args: string[] = []): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const values: Record<string, string> = {};
      for (const line of stdout.split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) values[line.slice(0, eq)] = line.slice(eq + 1);
      }
      resolve({ pid: child.pid!, code, signal, stdout, values });
    });
  });
}

/** Collects records; the tests only look at records of their own pids (the host is shared). */
export class RecordLog {
  readonly records: SensorRecord[] = [];

  push = (record: SensorRecord): void => {
    this.records.push(record);
  };

  of(pid: number, kind?: ProcessRecord['kind']): ProcessRecord[] {
    return this.records.filter((r): r is ProcessRecord => r.kind !== 'loss' && r.pid === pid && (kind === undefined || r.kind === kind));
  }

  /**
   * Waits until `done` holds, then a little longer (several reader flush intervals) so a duplicate
   * would have arrived too; fails after 10 s.
   */
  async settle(done: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

import { execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../platform/package-root';

export const repoRoot = packageRoot();
export const cliPath = join(repoRoot, 'dist', 'bin', 'gapwatch.js');

/**
 * Integration tests run against the real kernel and need root. They fail, never skip, when root is
 * missing: a green run must mean the BPF paths were exercised.
 */
export function requireRoot(): void {
  if (process.geteuid?.() !== 0) {
    throw new Error('this test loads real BPF programs and needs root; run `npm test` as root (CI runs it as root)');
  }
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the compiled CLI to completion. */
export function runCli(args: string[], options: SpawnOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A uid that is not root, for tests that check the unprivileged path. */
export function nobodyUid(): number {
  return Number(execFileSync('id', ['-u', 'nobody']).toString().trim());
}

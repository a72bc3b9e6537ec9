import { execFileSync, spawn, spawnSync, type SpawnOptions } from 'node:child_process';
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
  return runCommand(process.execPath, [cliPath, ...args], options);
}

/** Runs a command to completion, collecting its output. */
export function runCommand(file: string, args: string[], options: SpawnOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A uid that is not root, for tests of the unprivileged path. */
export function nobodyUid(): number {
  return Number(execFileSync('id', ['-u', 'nobody']).toString().trim());
}

/**
 * Runs the CLI without privileges: as the `nobody` user when it can read the checkout, else (a checkout
 * under a private directory) as uid 0 stripped of every capability, with SECBIT_NOROOT so exec
 * grants none back. Either way the process must be refused BPF.
 */
export function runUnprivileged(args: string[]): Promise<CliResult> {
  const uid = nobodyUid();
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const readable = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'test', '-r', cliPath]).status === 0;
  if (readable) return runCli(args, { cwd: '/tmp', uid, gid: uid, env });
  return runCommand(
    'setpriv',
    ['--securebits=+noroot,+noroot_locked', '--bounding-set=-all', '--inh-caps=-all', process.execPath, cliPath, ...args],
    { cwd: '/tmp', env },
  );
}

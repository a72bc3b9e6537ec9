import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../platform/package-root';
import { round, summarize } from './stats';

/**
 * How long `scripts/setup` takes when everything is already in place (what every `npm test` and
 * `npm start` pays), side by side with the floor: starting Node itself.
 */
export async function run(args: string[]): Promise<{ name: string } & Record<string, unknown>> {
  const rounds = Number(args[0] ?? 7);
  const root = packageRoot();
  const time = (file: string, argv: string[]): number => {
    const start = process.hrtime.bigint();
    execFileSync(file, argv, { cwd: root, stdio: 'ignore' });
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  time('bash', [join(root, 'scripts', 'setup')]); // the first run may do real work; measure the steady state
  const setup: number[] = [];
  const node: number[] = [];
  for (let i = 0; i < rounds; i++) {
    setup.push(time('bash', [join(root, 'scripts', 'setup')]));
    node.push(time(process.execPath, ['-e', '']));
  }
  const setupMs = summarize(setup);
  const nodeMs = summarize(node);
  return { name: 'setup', setup_noop_ms: setupMs, baseline_node_start_ms: nodeMs, ratio_setup_vs_node_start: round(setupMs.median / nodeMs.median, 2) };
}

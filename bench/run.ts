import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `npm run bench -- <subject> [args]`: runs bench/<subject>.ts (compiled) and prints its result as the
 * last line, in JSON, so scripts can read it with `tail -n1`.
 */
export interface BenchSubject {
  run(args: string[]): Promise<Record<string, unknown> & { name: string }>;
}

async function main(): Promise<void> {
  const [subject, ...args] = process.argv.slice(2);
  const available = readdirSync(__dirname)
    .filter((f) => f.endsWith('.js') && !['run.js', 'stats.js'].includes(f))
    .map((f) => f.slice(0, -3));
  if (!subject || !available.includes(subject)) {
    process.stderr.write(`usage: npm run bench -- <subject>\nsubjects: ${available.join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  const modulePath = join(__dirname, `${subject}.js`);
  if (!existsSync(modulePath)) throw new Error(`no bench subject ${subject}`);
  const { run } = require(modulePath) as BenchSubject;
  const result = await run(args);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});

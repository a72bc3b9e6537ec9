import type { Command } from 'commander';
import { journalDirFor } from '../../gateway/journal/segment-directory';
import { verifyJournal, type JournalVerifyReport } from '../../gateway/journal/verify';
import { defineCommand } from '../cli';

/** `gapwatch verify [journal-dir]`: checks a journal's hash chain and signatures; exit 1 on any problem. */
export function registerVerify(program: Command): void {
  defineCommand<{ publicKey?: string; json?: boolean }>(
    program,
    'verify',
    "verify a gateway journal's hash chain and signed checkpoints; exits 1 when it was tampered with or damaged",
    (command) =>
      command
        .argument('[journal-dir]', 'journal directory (default: <dataDir>/journal/<gateway.id>)')
        .option('--public-key <file>', 'PEM public key to check signatures with (default: the one in the journal directory, which an attacker could replace)')
        .option('--json', 'print the report as JSON'),
    async ({ config }, options, args) => {
      const dir = args[0] ?? journalDirFor(config.dataDir, config.gateway.id);
      const report = await verifyJournal(dir, options.publicKey);
      process.stdout.write(options.json ? `${JSON.stringify(report, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value), 2)}\n` : renderReport(report));
      return report.ok ? 0 : 1;
    },
  );
}

function renderReport(report: JournalVerifyReport): string {
  const range = report.firstSeq === null ? 'no records' : `seq ${report.firstSeq}..${report.lastSeq}`;
  const lines = [
    `journal ${report.dir}${report.gatewayId ? ` (gateway ${report.gatewayId})` : ''}: ${report.ok ? 'OK' : 'PROBLEMS FOUND'}`,
    `  records ${report.records} (${range}), loss records ${report.gapRecords}`,
    `  checkpoints verified ${report.checkpointsVerified} of ${report.checkpoints}, signed through seq ${report.signedThrough}, ${report.unsignedRecords} record(s) after the last checkpoint`,
    `  key ${report.keyId ?? 'none'}${report.keySource ? ` (from ${report.keySource})` : ''}`,
  ];
  for (const problem of report.problems) {
    const where = problem.file ? ` [${problem.file}${problem.offset !== undefined ? ` @${problem.offset}` : ''}]` : '';
    lines.push(`  ${problem.kind}${problem.seq !== null ? ` at seq ${problem.seq}` : ''}: ${problem.detail}${where}`);
  }
  return `${lines.join('\n')}\n`;
}

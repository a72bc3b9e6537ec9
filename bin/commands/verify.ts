import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { Command } from 'commander';
import { verifyStoredJournal, type KeySource, type StoreVerifyReport } from '../../collector/journal-verify/store-verify';
import { openStore } from '../../collector/store/connection';
import { journalDirFor } from '../../gateway/journal/segment-directory';
import { PUBLIC_KEY_FILE, readPublicKey } from '../../gateway/journal/signing-key';
import { verifyJournal, type JournalVerifyReport } from '../../gateway/journal/verify';
import { VerifyOptionError } from '../../collector/journal-verify/errors';
import { defineCommand } from '../cli';

interface VerifyOptions {
  publicKey?: string;
  json?: boolean;
  gateway?: string;
  from?: string;
  requireSigned?: boolean;
}

/**
 * `gapwatch verify [journal-dir]`: checks a journal's files. `gapwatch verify --gateway ID`: checks the
 * journal records the store holds for that gateway, and its journal files too when they are on this host.
 * Exit 1 on any finding; with --require-signed, records not yet covered by a signed checkpoint count as one.
 */
export function registerVerify(program: Command): void {
  defineCommand<VerifyOptions>(
    program,
    'verify',
    "verify a gateway journal's hash chain and signed checkpoints, in its files or (--gateway) in the store; exits 1 when it was tampered with or damaged",
    (command) =>
      command
        .argument('[journal-dir]', 'journal directory (default: <dataDir>/journal/<gateway id>, when it exists)')
        .option('--gateway <id>', "check the records the store holds for this gateway id (and its journal files, when on the gateway's host)")
        .option('--from <seq>', 'with --gateway: check records from this seq on (default 1)')
        .option(
          '--public-key <file>',
          "PEM public key of the gateway's journal (signing-key.pub.pem) to check signatures with; obtain it from the gateway host out of band. Default: the one in the journal directory, which an attacker with disk access could replace",
        )
        .option('--require-signed', 'count records after the last signed checkpoint as a finding (they cannot be vouched for yet)')
        .option('--json', 'print the report as JSON'),
    async ({ config }, options, args) => {
      const json = (value: unknown): string => `${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`;
      if (options.gateway === undefined) {
        if (options.from !== undefined) throw new VerifyOptionError('--from', 'applies to the records in the store: give --gateway <id> with it');
        const dir = args[0] ?? journalDirFor(config.dataDir, config.gateway.id);
        const report = await verifyJournal(dir, options.publicKey);
        const unsignedFinding = options.requireSigned === true && report.unsignedRecords > 0;
        process.stdout.write(options.json ? json(report) : renderFilesReport(report, unsignedFinding));
        return report.ok && !unsignedFinding ? 0 : 1;
      }
      const from = parseSeq(options.from);
      const localDir = args[0] ?? journalDirFor(config.dataDir, options.gateway);
      const journalDir = existsSync(localDir) ? localDir : undefined;
      const { key, source } = publicKeyFor(options.publicKey, journalDir);
      const store = await openStore(config, { readonly: true, settings: { output_format_json_quote_64bit_integers: 1 } });
      let report: StoreVerifyReport;
      try {
        report = await verifyStoredJournal(store, { gatewayId: options.gateway, fromSeq: from, publicKey: key, keySource: source, journalDir });
      } finally {
        await store.close();
      }
      const unsignedFinding = options.requireSigned === true && report.unsigned.count > 0;
      process.stdout.write(options.json ? json({ ...report, ok: report.ok && !unsignedFinding, store: store.where }) : renderStoreReport(report, store.where, unsignedFinding));
      return report.ok && !unsignedFinding ? 0 : 1;
    },
  );
}

function parseSeq(text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text.trim()) || BigInt(text.trim()) < 1n) throw new VerifyOptionError('--from', `${JSON.stringify(text)} is not a sequence number (1 or more)`);
  return BigInt(text.trim());
}

/**
 * The key signatures are checked with. The store is never asked for it: whoever can rewrite rows could
 * plant their own key next to them. A key given on the command line (copied from the gateway host out of
 * band) is the trustworthy source; on the gateway host, the journal directory's copy is as trustworthy as
 * that directory, and the report says which was used.
 */
function publicKeyFor(file: string | undefined, journalDir: string | undefined): { key: KeyObject | null; source: KeySource | null } {
  if (file !== undefined) return { key: readPublicKey(file), source: 'argument' };
  const local = journalDir === undefined ? null : join(journalDir, PUBLIC_KEY_FILE);
  if (local !== null && existsSync(local)) return { key: readPublicKey(local), source: 'journal-directory' };
  return { key: null, source: null };
}

function renderFilesReport(report: JournalVerifyReport, unsignedFinding: boolean): string {
  const range = report.firstSeq === null ? 'no records' : `seq ${report.firstSeq}..${report.lastSeq}`;
  const lines = [
    `journal ${report.dir}${report.gatewayId ? ` (gateway ${report.gatewayId})` : ''}: ${report.ok && !unsignedFinding ? 'OK' : 'PROBLEMS FOUND'}`,
    `  records ${report.records} (${range}), loss records ${report.gapRecords}`,
    `  checkpoints verified ${report.checkpointsVerified} of ${report.checkpoints}, signed through seq ${report.signedThrough}, ${report.unsignedRecords} record(s) after the last checkpoint`,
    `  key ${report.keyId ?? 'none'}${report.keySource ? ` (from ${report.keySource})` : ''}`,
  ];
  for (const problem of report.problems) {
    const where = problem.file ? ` [${problem.file}${problem.offset !== undefined ? ` @${problem.offset}` : ''}]` : '';
    lines.push(`  ${problem.kind}${problem.seq !== null ? ` at seq ${problem.seq}` : ''}: ${problem.detail}${where}`);
  }
  if (unsignedFinding) lines.push(`  unsigned: ${report.unsignedRecords} record(s) after seq ${report.signedThrough + 1n} are not covered by a signed checkpoint (--require-signed)`);
  return `${lines.join('\n')}\n`;
}

function renderStoreReport(report: StoreVerifyReport, where: string, unsignedFinding: boolean): string {
  const range = report.firstSeq === null ? 'no records' : `seq ${report.firstSeq}..${report.lastSeq}`;
  const unsigned = report.unsigned.count === 0 ? 'none' : `${report.unsigned.count} (seq ${report.unsigned.first}..${report.unsigned.last})`;
  const lines = [
    `store ${where}, gateway ${report.gatewayId} from seq ${report.fromSeq}: ${report.ok && !unsignedFinding ? 'OK' : 'PROBLEMS FOUND'}`,
    `  records ${report.records} (${range}) in ${report.rows} row(s)`,
    `  checkpoints verified ${report.checkpointsVerified} of ${report.checkpoints}, signed through seq ${report.signedThrough}; not yet signed: ${unsigned}`,
    `  key ${report.keyId ?? 'none'}${report.keySource ? ` (from ${report.keySource})` : ''}`,
  ];
  if (report.firstBrokenSeq !== null) lines.push(`  first broken seq: ${report.firstBrokenSeq}`);
  if (report.missing.length > 0) lines.push(`  missing: ${report.missing.map((r) => (r.first === r.last ? `${r.first}` : `${r.first}..${r.last}`)).join(', ')}`);
  if (report.altered.length > 0) lines.push(`  altered: ${report.altered.join(', ')}`);
  for (const problem of report.problems) lines.push(`  ${problem.kind}${problem.seq !== null ? ` at seq ${problem.seq}` : ''}: ${problem.detail}`);
  if (unsignedFinding) lines.push(`  unsigned: ${report.unsigned.count} record(s) are not covered by a signed checkpoint (--require-signed)`);
  if (report.files) lines.push(renderFilesReport(report.files, false).trimEnd().replace(/^/gm, '  '));
  return `${lines.join('\n')}\n`;
}

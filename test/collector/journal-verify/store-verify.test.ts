import assert from 'node:assert/strict';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { journalRecordRow } from '../../../collector/gateway-feed/journal-rows';
import { verifyStoredJournal, type StoreVerifyReport } from '../../../collector/journal-verify/store-verify';
import { openStore, type Store } from '../../../collector/store/connection';
import { qualified } from '../../../collector/store/ddl';
import { encodeRows, TABLE_COLUMNS, type Row } from '../../../collector/store/rows';
import { storeSink } from '../../../collector/store/sink';
import { decodeRecord, encodeRecord } from '../../../gateway/journal/canonical-encoding';
import { Journal } from '../../../gateway/journal/journal';
import { recordHash } from '../../../gateway/journal/record-chain';
import { listSegments } from '../../../gateway/journal/segment-directory';
import { PUBLIC_KEY_FILE } from '../../../gateway/journal/signing-key';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { readSegment, removeScratchDirs, scratchDir, statementEvent, writeSegment } from '../../gateway/journal/journal-files';
import { runCli } from '../../support/host';
import { queryRows, tempConfig } from '../store/store-fixture';

/**
 * A real journal (20 statements, a signed checkpoint every 8 records and at close) whose records are
 * stored as the collector stores them, then edited in the store the ways someone with write access to
 * ClickHouse could: ALTER TABLE UPDATE / DELETE, replacement rows beside the originals (what FINAL and
 * merges hide), moved rows, forged rows appended with a valid link. Each gateway id is one case.
 */
describe('collector/journal-verify: gapwatch verify against the store', function () {
  this.timeout(120_000);
  let store: Store;
  const table = (): string => qualified(store.dialect, 'journal_records');
  const journals = new Map<string, { dir: string; records: JournalRecord__Output[]; key: KeyObject }>();
  let config: ReturnType<typeof tempConfig>;

  async function makeJournal(gatewayId: string): Promise<{ dir: string; records: JournalRecord__Output[]; key: KeyObject }> {
    const dir = join(scratchDir('gapwatch-store-verify-'), 'journal', gatewayId);
    const journal = await Journal.open({ dir, gatewayId, checkpoint: { everyRecords: 8, everyMs: 3_600_000 } });
    for (let i = 0; i < 20; i++) await journal.append(statementEvent(i));
    await journal.close();
    const records = listSegments(dir).flatMap((segment) => readSegment(segment.path).map((stored) => stored.record));
    const made = { dir, records, key: createPublicKey(readFileSync(join(dir, PUBLIC_KEY_FILE))) };
    journals.set(gatewayId, made);
    await insertRecords(records);
    return made;
  }

  async function insertRecords(records: JournalRecord__Output[]): Promise<void> {
    const rows: Row[] = records.map((record) => journalRecordRow(record).row);
    await storeSink(store).insert('journal_records', TABLE_COLUMNS.journal_records, encodeRows('journal_records', rows), rows.length);
  }

  async function mutate(sql: string): Promise<void> {
    await store.client.command({ query: sql, clickhouse_settings: { mutations_sync: '2' } });
  }

  async function verify(gatewayId: string, extra: { journalDir?: string; fromSeq?: bigint } = {}): Promise<StoreVerifyReport> {
    return verifyStoredJournal(store, { gatewayId, publicKey: journals.get(gatewayId)!.key, keySource: 'argument', ...extra });
  }

  /** A record edited the way an attacker would, with its hash recomputed so it is self-consistent. */
  function rewritten(record: JournalRecord__Output, text: string): JournalRecord__Output {
    const edited = decodeRecord(encodeRecord(record));
    edited.event!.statement!.text = text;
    edited.hash = recordHash(edited);
    return edited;
  }

  before(async () => {
    config = tempConfig();
    store = await openStore(config, { settings: { output_format_json_quote_64bit_integers: 1 } });
  });
  after(async () => {
    await store?.close();
    removeScratchDirs();
  });

  it('finds nothing in an intact copy, and every record is signed once the gateway closed its journal', async () => {
    const { records, dir } = await makeJournal('gw-clean');
    const report = await verify('gw-clean', { journalDir: dir });
    assert.deepEqual(report.problems, []);
    assert.equal(report.ok, true);
    assert.equal(report.records, records.length);
    assert.equal(report.lastSeq, BigInt(records.length));
    assert.equal(report.signedThrough, BigInt(records.length - 1));
    assert.ok(report.checkpointsVerified >= 3, `checkpoints verified: ${report.checkpointsVerified}`);
    assert.equal(report.unsigned.count, 0);
    assert.equal(report.files?.ok, true);
    // A record delivered twice (a collector replay) is the same row twice: not a finding.
    await insertRecords(records.slice(3, 6));
    assert.deepEqual((await verify('gw-clean')).problems, []);
    // --from checks from there on, linking to the record before it.
    const from = await verify('gw-clean', { fromSeq: 10n });
    assert.equal(from.ok, true);
    assert.equal(from.firstSeq, 10n);
    assert.equal(from.records, records.length - 9);
  });

  it('finds a record edited with ALTER TABLE UPDATE, with and without its hash recomputed, and a column edited alone', async () => {
    const { records } = await makeJournal('gw-update');
    const seq5 = records[4]!;
    // The bytes changed, the hash left as it was.
    const edited = decodeRecord(encodeRecord(seq5));
    edited.event!.statement!.text = 'select 5 -- changed';
    await mutate(`ALTER TABLE ${table()} UPDATE record = '${encodeRecord(edited).toString('base64')}' WHERE gateway_id = 'gw-update' AND seq = 5`);
    let report = await verify('gw-update');
    assert.equal(report.ok, false);
    assert.equal(report.firstBrokenSeq, 5n);
    assert.deepEqual(report.altered, [5n]);
    assert.ok(report.problems.some((p) => p.seq === 5n && /does not match its hash/.test(p.detail)), JSON.stringify(report.problems, bigintText));

    // The hash recomputed (and its column updated): the next record's link gives it away.
    const seq12 = rewritten(records[11]!, 'select 11 -- changed');
    await mutate(
      `ALTER TABLE ${table()} UPDATE record = '${encodeRecord(seq12).toString('base64')}', hash = '${seq12.hash.toString('hex')}' WHERE gateway_id = 'gw-update' AND seq = 12`,
    );
    report = await verify('gw-update');
    assert.ok(report.problems.some((p) => p.seq === 12n && /prev_hash does not match seq 12's hash/.test(p.detail)), JSON.stringify(report.problems, bigintText));
    assert.ok(report.altered.includes(12n));

    // Only a column: the row disagrees with its own bytes.
    await mutate(`ALTER TABLE ${table()} UPDATE prev_hash = '${'0'.repeat(64)}' WHERE gateway_id = 'gw-update' AND seq = 17`);
    report = await verify('gw-update');
    assert.ok(report.problems.some((p) => p.seq === 17n && /column prev_hash disagrees/.test(p.detail)), JSON.stringify(report.problems, bigintText));
    await mutate(`ALTER TABLE ${table()} UPDATE time = time - INTERVAL 1 HOUR WHERE gateway_id = 'gw-update' AND seq = 18`);
    report = await verify('gw-update');
    assert.ok(report.problems.some((p) => p.seq === 18n && /column time disagrees/.test(p.detail)), JSON.stringify(report.problems, bigintText));
  });

  it('finds rows deleted in the middle (ALTER TABLE DELETE, lightweight DELETE) and at the end', async () => {
    const { records } = await makeJournal('gw-delete');
    await mutate(`ALTER TABLE ${table()} DELETE WHERE gateway_id = 'gw-delete' AND seq IN (4, 5, 6)`);
    await mutate(`DELETE FROM ${table()} WHERE gateway_id = 'gw-delete' AND seq = 10`);
    let report = await verify('gw-delete');
    assert.deepEqual(report.missing, [{ first: 4n, last: 6n }, { first: 10n, last: 10n }]);
    assert.equal(report.firstBrokenSeq, 4n);
    assert.ok(report.problems.some((p) => p.kind === 'deleted' && p.seq === 4n));

    // The tail cut after the last checkpoint's head but before the checkpoint: the signature says what is gone.
    const last = BigInt(records.length);
    await mutate(`ALTER TABLE ${table()} DELETE WHERE gateway_id = 'gw-delete' AND seq > ${last - 4n} AND seq < ${last}`);
    report = await verify('gw-delete');
    assert.ok(report.missing.some((r) => r.first === last - 3n && r.last === last - 1n), JSON.stringify(report.missing, bigintText));
  });

  it('finds a tail deleted with its checkpoints by the journal files on the gateway host', async () => {
    const { records, dir } = await makeJournal('gw-tail');
    await mutate(`ALTER TABLE ${table()} DELETE WHERE gateway_id = 'gw-tail' AND seq > 12`);
    const storeOnly = await verify('gw-tail');
    // Without the files the store looks like a journal that stopped at 12, its last records not yet signed.
    assert.ok(storeOnly.unsigned.count > 0);
    const withFiles = await verify('gw-tail', { journalDir: dir });
    assert.equal(withFiles.ok, false);
    assert.ok(withFiles.problems.some((p) => p.kind === 'truncated' && p.seq === 13n), JSON.stringify(withFiles.problems, bigintText));
    assert.deepEqual(withFiles.missing.at(-1), { first: 13n, last: BigInt(records.length - 1) });
  });

  it('finds a replacement row inserted beside the original (hidden by FINAL), and the replacement once merges removed the original', async () => {
    const { records } = await makeJournal('gw-replace');
    const forged = rewritten(records[6]!, 'select 6 -- forged');
    await insertRecords([forged]);
    const final = await queryRows<{ c: string }>(store, `SELECT count() AS c FROM ${table()} FINAL WHERE gateway_id = 'gw-replace' AND seq = 7`);
    assert.equal(final[0]!.c, '1', 'FINAL shows one row for seq 7');
    let report = await verify('gw-replace');
    assert.ok(report.problems.some((p) => p.seq === 7n && /2 different rows hold seq 7/.test(p.detail)), JSON.stringify(report.problems, bigintText));

    await store.client.command({ query: `OPTIMIZE TABLE ${table()} FINAL` });
    const raw = await queryRows<{ c: string }>(store, `SELECT count() AS c FROM ${table()} WHERE gateway_id = 'gw-replace' AND seq = 7`);
    assert.equal(raw[0]!.c, '1', 'the merge kept one row');
    report = await verify('gw-replace');
    assert.equal(report.ok, false);
    assert.ok(report.altered.includes(7n), JSON.stringify(report.problems, bigintText));
  });

  it('finds rows moved to another seq, and a forged chain rewritten through a signed checkpoint', async () => {
    const { records } = await makeJournal('gw-move');
    // Seq 3 and 4 swap contents (the sorting key cannot be updated, so the payloads move).
    const [r3, r4] = [records[2]!, records[3]!];
    for (const [seq, record] of [[3, r4], [4, r3]] as const) {
      await mutate(
        `ALTER TABLE ${table()} UPDATE record = '${encodeRecord(record).toString('base64')}', hash = '${record.hash.toString('hex')}', prev_hash = '${record.prevHash.toString('hex')}' WHERE gateway_id = 'gw-move' AND seq = ${seq}`,
      );
    }
    let report = await verify('gw-move');
    assert.ok(report.problems.some((p) => p.kind === 'reordered' && p.seq === 3n), JSON.stringify(report.problems, bigintText));
    assert.ok(report.problems.some((p) => p.kind === 'reordered' && p.seq === 4n));

    // Records 13.. rewritten and re-chained to the end: every link holds, the checkpoints' signed heads do not.
    const forged: JournalRecord__Output[] = [];
    let prev = records[11]!.hash;
    for (const original of records.slice(12)) {
      const copy = decodeRecord(encodeRecord(original));
      if (copy.body === 'event') copy.event!.statement!.text += ' -- forged';
      copy.prevHash = prev;
      copy.hash = recordHash(copy);
      prev = copy.hash;
      forged.push(copy);
    }
    await mutate(`ALTER TABLE ${table()} DELETE WHERE gateway_id = 'gw-move' AND seq > 12`);
    await insertRecords(forged);
    report = await verify('gw-move');
    assert.ok(report.problems.some((p) => /signed a different hash/.test(p.detail)), JSON.stringify(report.problems, bigintText));
  });

  it('reports a forged record appended after the last checkpoint as unsigned, and as inserted against the journal files', async () => {
    const { records, dir } = await makeJournal('gw-insert');
    const last = records[records.length - 1]!;
    const extra = decodeRecord(encodeRecord(records[0]!));
    extra.seq = String(BigInt(last.seq) + 1n);
    extra.prevHash = last.hash;
    extra.hash = recordHash(extra);
    await insertRecords([extra]);
    const storeOnly = await verify('gw-insert');
    assert.equal(storeOnly.ok, true, 'a valid link after the last checkpoint is indistinguishable in the store alone');
    assert.deepEqual(storeOnly.unsigned, { count: 1, first: BigInt(extra.seq), last: BigInt(extra.seq) });
    const withFiles = await verify('gw-insert', { journalDir: dir });
    assert.ok(withFiles.problems.some((p) => p.seq === BigInt(extra.seq) && /journal files end at/.test(p.detail)), JSON.stringify(withFiles.problems, bigintText));
  });

  it('finds journal file bytes edited on the gateway host when the store still holds the original', async () => {
    const { records, dir } = await makeJournal('gw-files');
    // The last records are re-chained in the segment with valid frames: only the chain, the signature and the store can tell.
    const segment = listSegments(dir)[0]!;
    const stored = readSegment(segment.path).map((s) => s.record);
    const forged = stored.map((record) => decodeRecord(encodeRecord(record)));
    const at = forged.findIndex((record, i) => i >= 8 && record.body === 'event');
    forged[at]!.event!.statement!.text += ' -- edited in the file';
    for (let i = at; i < forged.length; i++) {
      if (i > 0) forged[i]!.prevHash = forged[i - 1]!.hash;
      forged[i]!.hash = recordHash(forged[i]!);
    }
    writeSegment(segment.path, segment.firstSeq, forged);
    const report = await verify('gw-files', { journalDir: dir });
    assert.equal(report.ok, false);
    assert.equal(report.files?.ok, false);
    const seq = BigInt(forged[at]!.seq);
    assert.ok(report.problems.some((p) => p.seq === seq && new RegExp(`differs from seq ${seq} in the journal files`).test(p.detail)), JSON.stringify(report.problems, bigintText));
    assert.equal(records.length, stored.length);
  });

  it('gapwatch verify --gateway: exit 0 when intact, 1 with --json findings when not, and refuses --from without --gateway', async () => {
    await store.close();
    const configFile = join(scratchDir('gapwatch-verify-cli-'), 'gapwatch.yaml');
    writeFileSync(configFile, `dataDir: ${config.dataDir}\nstore:\n  ttlDays: 30\n`);
    const keyFile = join(journals.get('gw-clean')!.dir, PUBLIC_KEY_FILE);
    try {
      const good = await runCli(['verify', '--config', configFile, '--gateway', 'gw-clean', '--public-key', keyFile]);
      assert.equal(good.code, 0, good.stdout + good.stderr);
      assert.match(good.stdout, /gateway gw-clean from seq 1: OK/);
      assert.match(good.stdout, /key sha256:[0-9a-f]{64} \(from argument\)/);
      const bad = await runCli(['verify', '--config', configFile, '--gateway', 'gw-delete', '--public-key', join(journals.get('gw-delete')!.dir, PUBLIC_KEY_FILE), '--json']);
      assert.equal(bad.code, 1, bad.stderr);
      const report = JSON.parse(bad.stdout) as { ok: boolean; firstBrokenSeq: string; missing: Array<{ first: string; last: string }> };
      assert.equal(report.ok, false);
      assert.equal(report.firstBrokenSeq, '4');
      assert.deepEqual(report.missing[0], { first: '4', last: '6' });
      // Another gateway's key: every checkpoint is a bad signature.
      const wrongKey = await runCli(['verify', '--config', configFile, '--gateway', 'gw-clean', '--public-key', join(journals.get('gw-delete')!.dir, PUBLIC_KEY_FILE)]);
      assert.equal(wrongKey.code, 1);
      assert.match(wrongKey.stdout, /bad-signature at seq \d+: checkpoint seq \d+ over seq \d+ does not verify/);
      const noKey = await runCli(['verify', '--config', configFile, '--gateway', 'gw-clean']);
      assert.equal(noKey.code, 1);
      assert.match(noKey.stdout, /no-key: no public key/);
      const usage = await runCli(['verify', '--config', configFile, '--from', '3']);
      assert.equal(usage.code, 1);
      assert.match(usage.stderr, /VERIFY_ERR_OPTION/);
    } finally {
      store = await openStore(config);
    }
  });
});

function bigintText(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { cpSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Journal } from '../../../gateway/journal/journal';
import { listSegments } from '../../../gateway/journal/segment-directory';
import { SEGMENT_MAGIC, fileHeader, frame } from '../../../gateway/journal/segment-format';
import { verifyJournal, type JournalProblemKind } from '../../../gateway/journal/verify';
import { rechain, readSegment, removeScratchDirs, scratchDir, statementEvent, tempJournalDir, writeSegment } from './journal-files';

/**
 * Tampering as someone with write access to the files would do it: records are rewritten with
 * valid frames and checksums, so only the hash chain and the signatures can tell.
 */
describe('gateway/journal verifyJournal', () => {
  let pristine: string;
  after(removeScratchDirs);


  before(async () => {
    pristine = tempJournalDir();
    // Two segments, checkpoints every 10 records, a final checkpoint at close.
    const journal = await Journal.open({ dir: pristine, gatewayId: 'gw-test', segmentBytes: 4096, checkpoint: { everyRecords: 10 } });
    for (let i = 0; i < 60; i++) await journal.append(statementEvent(i));
    await journal.close();
    assert.ok(listSegments(pristine).length >= 2);
  });

  function copy(): { dir: string; segment: string; firstSeq: bigint } {
    const dir = join(scratchDir('gapwatch-tamper-'), 'gw-test');
    cpSync(pristine, dir, { recursive: true });
    const first = listSegments(dir)[0]!;
    return { dir, segment: first.path, firstSeq: first.firstSeq };
  }

  function kinds(problems: Array<{ kind: JournalProblemKind }>): JournalProblemKind[] {
    return [...new Set(problems.map((p) => p.kind))].sort();
  }

  it('passes the untouched journal with every checkpoint verified', async () => {
    const report = await verifyJournal(pristine);
    assert.equal(report.ok, true);
    assert.equal(report.firstSeq, 1n);
    assert.ok(report.checkpointsVerified >= 6);
    assert.equal(report.checkpoints, report.checkpointsVerified);
    assert.equal(report.signedThrough, report.lastSeq! - 1n);
    assert.equal(report.unsignedRecords, 0);
  });

  it('detects a modified record', async () => {
    const { dir, segment, firstSeq } = copy();
    const records = readSegment(segment).map((s) => s.record);
    records[4]!.event!.statement!.text = 'select * from salaries';
    writeSegment(segment, firstSeq, records);
    const report = await verifyJournal(dir);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report.problems), ['modified']);
    assert.equal(report.problems[0]!.seq, 5n);
  });

  it('detects a modified record whose hash and the chain after it were recomputed (signatures no longer match)', async () => {
    const { dir, segment, firstSeq } = copy();
    const records = readSegment(segment).map((s) => s.record);
    records[4]!.event!.statement!.text = 'select * from salaries';
    rechain(records, 4);
    writeSegment(segment, firstSeq, records);
    const report = await verifyJournal(dir);
    assert.equal(report.ok, false);
    assert.ok(report.problems.some((p) => p.kind === 'modified' && /checkpoint/.test(p.detail)), JSON.stringify(report.problems.map((p) => p.detail)));
  });

  it('detects a deleted record', async () => {
    const { dir, segment, firstSeq } = copy();
    const records = readSegment(segment).map((s) => s.record);
    records.splice(6, 1);
    writeSegment(segment, firstSeq, records);
    const report = await verifyJournal(dir);
    assert.equal(report.ok, false);
    const deleted = report.problems.find((p) => p.kind === 'deleted');
    assert.equal(deleted?.seq, 7n);
  });

  it('detects reordered records', async () => {
    const { dir, segment, firstSeq } = copy();
    const records = readSegment(segment).map((s) => s.record);
    [records[2], records[3]] = [records[3]!, records[2]!];
    writeSegment(segment, firstSeq, records);
    const report = await verifyJournal(dir);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report.problems), ['reordered']);
    assert.equal(report.problems[0]!.seq, 3n);
  });

  it('detects a truncated tail: records a signed checkpoint covered are missing', async () => {
    const { dir } = copy();
    const segments = listSegments(dir);
    const last = segments[segments.length - 1]!;
    const stored = readSegment(last.path);
    assert.ok(stored.length >= 4);
    // Cut after the segment's second record, checkpoints included; checkpoints.log still holds copies.
    truncateSync(last.path, stored[2]!.offset);
    const report = await verifyJournal(dir);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report.problems), ['truncated']);
    assert.match(report.problems[0]!.detail, /are missing/);
  });

  it('detects a whole segment deleted from the middle or the end', async () => {
    const middle = copy();
    const segments = listSegments(middle.dir);
    assert.ok(segments.length >= 3);
    rmSync(segments[1]!.path);
    const gap = await verifyJournal(middle.dir);
    assert.equal(gap.ok, false);
    assert.ok(gap.problems.some((p) => p.kind === 'deleted' && p.seq === segments[1]!.firstSeq));

    const end = copy();
    rmSync(listSegments(end.dir).at(-1)!.path);
    const cut = await verifyJournal(end.dir);
    assert.equal(cut.ok, false);
    assert.deepEqual(kinds(cut.problems), ['truncated']);
  });

  it('detects a forged checkpoint signature', async () => {
    const { dir, segment, firstSeq } = copy();
    const records = readSegment(segment).map((s) => s.record);
    const index = records.findIndex((r) => r.body === 'checkpoint');
    records[index]!.checkpoint!.signature = Buffer.alloc(64, 7);
    rechain(records, index);
    writeSegment(segment, firstSeq, records);
    const report = await verifyJournal(dir);
    assert.equal(report.ok, false);
    const bad = report.problems.find((p) => p.kind === 'bad-signature');
    assert.equal(bad?.seq, BigInt(records[index]!.seq));
  });

  it('reports every checkpoint as bad-signature under a different public key', async () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const report = await verifyJournal(pristine, publicKey);
    assert.equal(report.ok, false);
    assert.equal(report.keySource, 'argument');
    assert.deepEqual(kinds(report.problems), ['bad-signature']);
    assert.equal(report.checkpointsVerified, 0);
  });

  it('reports bytes added that a decoder would skip (non-canonical encoding)', async () => {
    const { dir, segment, firstSeq } = copy();
    const stored = readSegment(segment);
    // Field 99 (varint) appended to record 3: protobuf decoders skip unknown fields.
    const frames = stored.map((s, i) => frame(i === 2 ? Buffer.concat([s.payload, Buffer.from([0x98, 0x06, 0x01])]) : s.payload));
    writeFileSync(segment, Buffer.concat([fileHeader(SEGMENT_MAGIC, firstSeq), ...frames]));
    const report = await verifyJournal(dir);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report.problems), ['modified']);
    assert.equal(report.problems[0]!.seq, 3n);
  });
});

import assert from 'node:assert/strict';
import { cpSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Journal } from '../../../gateway/journal/journal';
import { listSegments } from '../../../gateway/journal/segment-directory';
import { CHECKPOINT_FILE_MAGIC, fileHeader, frame, onlyZeros } from '../../../gateway/journal/segment-format';
import { verifyJournal } from '../../../gateway/journal/verify';
import { readSegment, removeScratchDirs, scratchDir, statementEvent, tempJournalDir, type StoredRecord } from './journal-files';

/** A small deterministic generator, so a failure names a cut that can be replayed. */
function* offsets(seed: number, count: number, below: number, from: number): Generator<number> {
  let state = seed;
  for (let i = 0; i < count; i++) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    yield from + (state % (below - from));
  }
}

/** A closed journal of 40 records (checkpoints every 7), its one segment's records and checkpoint copies. */
async function closedJournal(): Promise<{ pristine: string; segment: { name: string; path: string }; stored: StoredRecord[]; copies: StoredRecord[]; size: number }> {
  const pristine = tempJournalDir();
  const journal = await Journal.open({ dir: pristine, gatewayId: 'gw-test', checkpoint: { everyRecords: 7 } });
  for (let i = 0; i < 40; i++) await journal.append(statementEvent(i, `insert into t values (${i}, '${'v'.repeat(i * 3)}')`));
  await journal.close();
  const segment = listSegments(pristine)[0]!;
  const stored = readSegment(segment.path);
  const copies = readSegment(join(pristine, 'checkpoints.log'));
  return { pristine, segment, stored, copies, size: stored.at(-1)!.offset + 8 + stored.at(-1)!.payload.length };
}

describe('gateway/journal recovery at any crash point', function () {
  this.timeout(60_000);
  after(removeScratchDirs);


  it('reopens after the last segment is cut at any byte, journals the torn part, and verifies', async () => {
    const { pristine, segment, stored, copies, size } = await closedJournal();

    for (const cut of offsets(42, 25, size, 17)) {
      const dir = join(scratchDir('gapwatch-cut-'), 'gw-test');
      cpSync(pristine, dir, { recursive: true });
      truncateSync(join(dir, segment.name), cut);
      // What survives a crash at this point: whole records before the cut, and only the checkpoint
      // copies of those (a copy is written after its record is durable).
      const survivors = stored.filter((s) => s.offset + 8 + s.payload.length <= cut);
      const lastSurvivor = survivors.length === 0 ? 0n : BigInt(survivors.at(-1)!.record.seq);
      const keptCopies = copies.filter((c) => BigInt(c.record.seq) <= lastSurvivor).map((c) => frame(c.payload));
      writeFileSync(join(dir, 'checkpoints.log'), Buffer.concat([fileHeader(CHECKPOINT_FILE_MAGIC, 0n), ...keptCopies]));
      const atBoundary = survivors.length === 0 ? cut === 16 : cut === survivors.at(-1)!.offset + 8 + survivors.at(-1)!.payload.length;

      const reopened = await Journal.open({ dir, gatewayId: 'gw-test' });
      assert.equal(reopened.recovery.lastSeq, lastSurvivor, `cut at ${cut}`);
      assert.equal(reopened.recovery.tornTail !== null, !atBoundary, `cut at ${cut}: torn tail reported iff the cut split a record`);
      const next = await reopened.append(statementEvent(1000));
      assert.equal(next.seq, lastSurvivor + (atBoundary ? 1n : 2n), `cut at ${cut}: the gap record takes one seq`);
      await reopened.close();
      const report = await verifyJournal(dir);
      assert.equal(report.ok, true, `cut at ${cut}: ${JSON.stringify(report.problems, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
      assert.equal(report.gapRecords, atBoundary ? 0 : 1);
    }
  });

  it('takes the zeros written ahead of the data for the end, at any cut: only the bytes of a record cut short are torn', async () => {
    const { pristine, segment, stored, copies, size } = await closedJournal();

    for (const cut of offsets(7, 25, size, 17)) {
      const dir = join(scratchDir('gapwatch-zero-tail-'), 'gw-test');
      cpSync(pristine, dir, { recursive: true });
      // A crash with zeros already written ahead: the bytes up to the cut made it, zeros follow.
      const path = join(dir, segment.name);
      truncateSync(path, cut);
      truncateSync(path, cut + (1 << 20));
      const survivors = stored.filter((s) => s.offset + 8 + s.payload.length <= cut);
      const lastSurvivor = survivors.length === 0 ? 0n : BigInt(survivors.at(-1)!.record.seq);
      const end = survivors.length === 0 ? 16 : survivors.at(-1)!.offset + 8 + survivors.at(-1)!.payload.length;
      const keptCopies = copies.filter((c) => BigInt(c.record.seq) <= lastSurvivor).map((c) => frame(c.payload));
      writeFileSync(join(dir, 'checkpoints.log'), Buffer.concat([fileHeader(CHECKPOINT_FILE_MAGIC, 0n), ...keptCopies]));
      // A part of a record that holds nothing but zeros is no different from the zeros after it.
      const torn = !onlyZeros(readFileSync(path).subarray(0, cut), end);

      const reopened = await Journal.open({ dir, gatewayId: 'gw-test' });
      assert.equal(reopened.recovery.lastSeq, lastSurvivor, `cut at ${cut}`);
      assert.equal(reopened.recovery.tornTail !== null, torn, `cut at ${cut}: torn tail reported iff bytes of a record were cut short`);
      if (reopened.recovery.tornTail) {
        assert.ok(reopened.recovery.tornTail.bytes > 0 && reopened.recovery.tornTail.bytes <= cut - end, `cut at ${cut}: the torn bytes, not the zeros (${reopened.recovery.tornTail.bytes})`);
        assert.ok(readFileSync(join(dir, reopened.recovery.tornTail.preservedAs)).length <= cut - end);
      }
      await reopened.append(statementEvent(1000));
      await reopened.close();
      const records = readSegment(path);
      assert.equal(statSync(path).size, records.at(-1)!.offset + 8 + records.at(-1)!.payload.length, `cut at ${cut}: the closed segment ends at its last record`);
      const report = await verifyJournal(dir);
      assert.equal(report.ok, true, `cut at ${cut}: ${JSON.stringify(report.problems, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
      assert.equal(report.gapRecords, torn ? 1 : 0);
    }
  });

  it('a journal left open (the process killed) keeps zeros after its data: reopened without loss, sealed segments end at their last record', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test', segmentBytes: 16 * 1024, checkpoint: { everyRecords: 50 } });
    // The addon is part of every setup (npm test builds it): a missing one is a failure, never a skip.
    assert.equal(journal.chainKind, 'native', 'the native journal chain writes the zeros ahead (npm run setup builds it)');
    for (let i = 0; i < 600; i++) await journal.append(statementEvent(i, `insert into t values (${i}, '${'w'.repeat(100)}')`));
    const segments = listSegments(dir);
    assert.ok(segments.length > 3, `rotated (${segments.length} segments)`);
    for (const sealed of segments.slice(0, -1)) {
      const records = readSegment(sealed.path);
      assert.equal(statSync(sealed.path).size, records.at(-1)!.offset + 8 + records.at(-1)!.payload.length, `${sealed.name} ends at its last record`);
    }
    const active = segments.at(-1)!;
    assert.ok(statSync(active.path).size >= 1 << 20, 'the active segment has zeros written ahead of its data');
    // What a kill leaves on disk: the journal's files as they are now.
    const copy = join(scratchDir('gapwatch-killed-'), 'gw-test');
    cpSync(dir, copy, { recursive: true });
    await journal.close();
    const lastRecord = readSegment(active.path).at(-1)!;
    assert.equal(statSync(active.path).size, lastRecord.offset + 8 + lastRecord.payload.length, 'closing cuts the zeros off');

    const reopened = await Journal.open({ dir: copy, gatewayId: 'gw-test' });
    assert.equal(reopened.recovery.tornTail, null, 'zeros after the data are not a torn tail');
    assert.equal(reopened.recovery.lastSeq >= 600n, true);
    let statements = 0;
    for await (const record of reopened.read(1n)) if (record.event?.statement) statements++;
    await reopened.close();
    assert.equal(statements, 600);
    const report = await verifyJournal(copy);
    assert.equal(report.ok, true, JSON.stringify(report.problems, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  });
});

import assert from 'node:assert/strict';
import { cpSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Journal } from '../../../gateway/journal/journal';
import { listSegments } from '../../../gateway/journal/segment-directory';
import { CHECKPOINT_FILE_MAGIC, fileHeader, frame } from '../../../gateway/journal/segment-format';
import { verifyJournal } from '../../../gateway/journal/verify';
import { readSegment, removeScratchDirs, scratchDir, statementEvent, tempJournalDir } from './journal-files';

/** A small deterministic generator, so a failure names a cut that can be replayed. */
function* offsets(seed: number, count: number, below: number, from: number): Generator<number> {
  let state = seed;
  for (let i = 0; i < count; i++) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    yield from + (state % (below - from));
  }
}

describe('gateway/journal recovery at any crash point', function () {
  this.timeout(60_000);
  after(removeScratchDirs);


  it('reopens after the last segment is cut at any byte, journals the torn part, and verifies', async () => {
    const pristine = tempJournalDir();
    const journal = await Journal.open({ dir: pristine, gatewayId: 'gw-test', checkpoint: { everyRecords: 7 } });
    for (let i = 0; i < 40; i++) await journal.append(statementEvent(i, `insert into t values (${i}, '${'v'.repeat(i * 3)}')`));
    await journal.close();
    const segment = listSegments(pristine)[0]!;
    const stored = readSegment(segment.path);
    const copies = readSegment(join(pristine, 'checkpoints.log'));
    const size = stored.at(-1)!.offset + 8 + stored.at(-1)!.payload.length;

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
});

import assert from 'node:assert/strict';
import pino from 'pino';
import { Journal } from '../../../gateway/journal/journal';
import { ABORTED_FAILURE_PREFIX, cleanStopFile, closeAbortedSessions, markCleanStop } from '../../../gateway/journal/session-recovery';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { removeScratchDirs, statementEvent, tempJournalDir } from './journal-files';

const silent = pino({ level: 'silent' });

async function sessions(journal: Journal): Promise<JournalRecord__Output[]> {
  const out: JournalRecord__Output[] = [];
  for await (const record of journal.read(1n)) if (record.session) out.push(record);
  return out;
}

describe('gateway/journal: sessions left open by a dead gateway', () => {
  after(removeScratchDirs);

  it('closes every session that has a start but no end as aborted, once, keeping its fields', async () => {
    const dir = tempJournalDir();
    const first = await Journal.open({ dir, gatewayId: 'gw-test' });
    const open = (sessionId: string) => first.append({ session: { sessionId, resource: 'orders', database: 'orders', bytesFromClient: 7, outcome: 'SESSION_OUTCOME_OPEN', startUnixNano: '1000' } });
    await open('s-left-open');
    await open('s-ended');
    await first.append(statementEvent(1));
    await first.append({ session: { sessionId: 's-ended', resource: 'orders', outcome: 'SESSION_OUTCOME_CLOSED', startUnixNano: '1000', endUnixNano: '2000' } });
    await open('s-also-open');
    // No session end for two of them: the process "died" (close only adds a checkpoint).
    await first.close();

    const second = await Journal.open({ dir, gatewayId: 'gw-test' });
    const before = BigInt(Date.now()) * 1_000_000n;
    const result = await closeAbortedSessions(second, silent);
    assert.deepEqual(result.sessionIds, ['s-left-open', 's-also-open']);
    assert.equal(result.recordsScanned, 6, '5 records and the close checkpoint');
    const records = await sessions(second);
    const finals = records.slice(-2).map((r) => r.session!);
    assert.deepEqual(finals.map((s) => [s.sessionId, s.outcome]), [
      ['s-left-open', 'SESSION_OUTCOME_ABORTED'],
      ['s-also-open', 'SESSION_OUTCOME_ABORTED'],
    ]);
    for (const session of finals) {
      assert.ok(session.failure.startsWith(ABORTED_FAILURE_PREFIX), session.failure);
      assert.ok(BigInt(session.endUnixNano) >= before, 'ended at the restart');
      assert.equal(session.startUnixNano, '1000');
      assert.equal(session.database, 'orders');
      assert.equal(session.bytesFromClient, '7');
    }
    assert.deepEqual((await closeAbortedSessions(second, silent)).sessionIds, [], 'a second start finds nothing open');
    await second.close();
  });

  it('reads nothing after a clean stop, and everything once the journal moved on after it', async () => {
    const dir = tempJournalDir();
    const marker = cleanStopFile(dir);
    const first = await Journal.open({ dir, gatewayId: 'gw-test' });
    await first.append({ session: { sessionId: 's-1', outcome: 'SESSION_OUTCOME_OPEN' } });
    await first.append({ session: { sessionId: 's-1', outcome: 'SESSION_OUTCOME_CLOSED', endUnixNano: '5' } });
    await first.close();
    markCleanStop(marker, first.head().seq);

    const second = await Journal.open({ dir, gatewayId: 'gw-test' });
    assert.deepEqual(await closeAbortedSessions(second, silent, marker), { sessionIds: [], recordsScanned: 0 });
    // This run opens a session and dies: the head is past the mark, so the next start reads and closes it.
    await second.append({ session: { sessionId: 's-2', outcome: 'SESSION_OUTCOME_OPEN' } });
    await second.close();
    const third = await Journal.open({ dir, gatewayId: 'gw-test' });
    const result = await closeAbortedSessions(third, silent, marker);
    assert.deepEqual(result.sessionIds, ['s-2']);
    assert.ok(result.recordsScanned > 0);
    await third.close();
  });
});

import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../../platform/atomic-file';
import type { Session } from '../../proto/generated/gapwatch/v1/Session';
import type { Logger } from '../../platform/log';
import type { JournalReader, JournalWriter } from './contract';

/** The `failure` text of a session closed at start-up; queries find aborted sessions by this prefix. */
export const ABORTED_FAILURE_PREFIX = 'aborted:';

export interface AbortedSessions {
  /** Session ids closed as aborted, in journal order of their opening. */
  sessionIds: string[];
  /** Records read to find them. */
  recordsScanned: number;
}

/** What the recovery needs of the journal: its records, a writer for the end records, its extent. */
export type RecoverableJournal = JournalReader & JournalWriter & { firstSeq(): bigint; head(): { seq: bigint } };

/**
 * Where a gateway that stopped cleanly notes the journal head it stopped at, next to (not inside) the
 * journal directory: `<dataDir>/journal/<gateway id>.clean-stop.json`.
 */
export function cleanStopFile(journalDir: string): string {
  return join(dirname(journalDir), `${basename(journalDir)}.clean-stop.json`);
}

/**
 * Notes that the gateway stopped cleanly with the journal at `seq`: every listener had journaled the end
 * of its sessions before the journal closed, so a start that finds the head still at `seq` has nothing
 * to close and need not read the journal.
 */
export function markCleanStop(file: string, seq: bigint): void {
  writeFileAtomic(file, `${JSON.stringify({ seq: seq.toString() })}\n`);
}

function cleanStopSeq(file: string): bigint | null {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { seq?: unknown };
    return typeof parsed.seq === 'string' && /^\d+$/.test(parsed.seq) ? BigInt(parsed.seq) : null;
  } catch {
    return null;
  }
}

/**
 * Closes the sessions an earlier run left open: a gateway that died (kill -9, power loss, OOM) never
 * journaled their end, so without this they would stay `open` in the journal and the store forever.
 * Runs once at start-up, before any listener accepts, so every session still open in the journal
 * belonged to a process that is gone. Each gets a final session record (the same session_id, outcome
 * ABORTED, end time now, `failure` starting with "aborted:"), which replaces the open record in the
 * store like any closing record.
 *
 * After a crash the whole journal is read (tens of thousands of records a second): a session may have
 * opened in any retained segment. Retention removing a session's opening record also removes the need
 * to close it (the store keeps what it received). After a clean stop (`cleanStop` names the file
 * markCleanStop wrote, and the head is where that stop left it) nothing is read.
 */
export async function closeAbortedSessions(journal: RecoverableJournal, log: Logger, cleanStop?: string): Promise<AbortedSessions> {
  if (cleanStop !== undefined && cleanStopSeq(cleanStop) === journal.head().seq) return { sessionIds: [], recordsScanned: 0 };
  const open = new Map<string, Session>();
  let recordsScanned = 0;
  for await (const record of journal.read(journal.firstSeq())) {
    recordsScanned++;
    const session = record.session;
    if (!session) continue;
    if (session.outcome === 'SESSION_OUTCOME_OPEN') open.set(session.sessionId, session as Session);
    else open.delete(session.sessionId);
  }
  const endUnixNano = (BigInt(Date.now()) * 1_000_000n).toString();
  for (const [sessionId, session] of open) {
    await journal.append({
      session: {
        ...session,
        outcome: 'SESSION_OUTCOME_ABORTED',
        endUnixNano,
        failure: `${ABORTED_FAILURE_PREFIX} the gateway stopped without ending this session (crash, kill or power loss); closed when the gateway started again`,
      },
    });
    log.warn({ sessionId }, 'session left open by an earlier gateway run closed as aborted');
  }
  return { sessionIds: [...open.keys()], recordsScanned };
}

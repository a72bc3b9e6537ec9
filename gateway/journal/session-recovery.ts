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

/**
 * Closes the sessions an earlier run left open: a gateway that died (kill -9, power loss, OOM) never
 * journaled their end, so without this they would stay `open` in the journal and the store forever.
 * Runs once at start-up, before any listener accepts, so every session still open in the journal
 * belonged to a process that is gone. Each gets a final session record (the same session_id, outcome
 * FAILED, end time now, `failure` starting with "aborted:"), which replaces the open record in the
 * store like any closing record.
 *
 * The whole journal is read: a session may have opened in any retained segment. Retention removing
 * a session's opening record also removes the need to close it (the store keeps what it received).
 */
export async function closeAbortedSessions(journal: JournalReader & JournalWriter & { firstSeq(): bigint }, log: Logger): Promise<AbortedSessions> {
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
        outcome: 'SESSION_OUTCOME_FAILED',
        endUnixNano,
        failure: `${ABORTED_FAILURE_PREFIX} the gateway stopped without ending this session (crash, kill or power loss); closed when the gateway started again`,
      },
    });
    log.warn({ sessionId }, 'session left open by an earlier gateway run closed as aborted');
  }
  return { sessionIds: [...open.keys()], recordsScanned };
}

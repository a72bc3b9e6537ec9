import type { Session } from '../../proto/generated/gapwatch/v1/Session';
import type { SessionEvent } from '../../proto/generated/gapwatch/v1/SessionEvent';
import type { AppendAck, JournalPosition, JournalWriter } from '../journal/contract';

export type EventDetail = Omit<SessionEvent, 'sessionId' | 'eventSeq' | 'timeUnixNano'>;

export function unixNanos(ms: number = Date.now()): string {
  return (BigInt(Math.round(ms * 1000)) * 1000n).toString();
}

/** Wall-clock nanoseconds with the precision of hrtime, anchored once per process. */
const anchorMs = Date.now();
const anchorHr = process.hrtime.bigint();
export function nowNanos(): bigint {
  return BigInt(anchorMs) * 1_000_000n + (process.hrtime.bigint() - anchorHr);
}

/**
 * Writes one session's records to the journal: the session when it opens and when it ends, and its
 * events in order (event_seq from 1). Appends are issued in call order; `durable()` resolves once
 * every record appended so far (outcomes aside: seqs are in order, so a durable later record implies
 * them) is on disk, which is what the proxy awaits before forwarding a
 * statement upstream (write-ahead audit). A failed append fails the session: the gateway does not
 * forward what it could not record.
 */
export class SessionRecorder {
  private eventSeq = 0;
  private pending: Array<Promise<JournalPosition>> = [];
  private failure: Error | null = null;

  constructor(
    private readonly journal: JournalWriter,
    readonly session: Session,
    private readonly onFailure: (err: Error) => void,
  ) {}

  /** The last event_seq used, and (continueAfter) where a native data path left it. */
  get lastEventSeq(): number {
    return this.eventSeq;
  }

  continueAfter(eventSeq: number): void {
    this.eventSeq = eventSeq;
  }

  get sessionId(): string {
    return this.session.sessionId!;
  }

  private track(promise: Promise<JournalPosition>): Promise<JournalPosition> {
    this.pending.push(promise);
    promise.catch((err: unknown) => this.failed(err));
    return promise;
  }

  private failed(err: unknown): void {
    if (this.failure) return;
    this.failure = err instanceof Error ? err : new Error(String(err));
    this.onFailure(this.failure);
  }

  /** Appends the session record as it stands (opened, or updated with its end). */
  writeSession(update: Partial<Session> = {}): Promise<JournalPosition> {
    Object.assign(this.session, update);
    return this.track(this.journal.append({ session: { ...this.session } }));
  }

  event(detail: EventDetail, ack: AppendAck = 'durable'): Promise<JournalPosition> {
    this.eventSeq += 1;
    return this.track(
      this.journal.append(
        {
          event: { sessionId: this.sessionId, eventSeq: this.eventSeq, timeUnixNano: nowNanos().toString(), ...detail },
        },
        { ack },
      ),
    );
  }

  /**
   * Appends the record a forward waits for (a request) and resolves once it has reached `ack`: then
   * so has everything appended before it (the journal writes and fsyncs seqs in order). Rejects if
   * any append failed.
   */
  async barrier(detail: EventDetail, ack: AppendAck): Promise<void> {
    const appended = this.event(detail, ack);
    if (ack === 'durable') return this.durable();
    // Earlier records are written once this one is; their durability is not waited for (their
    // failures still fail the session).
    this.pending = [];
    await appended;
    if (this.failure) throw this.failure;
  }

  /**
   * An event recorded after the fact (a statement's outcome, once its answer is on its way): it takes
   * its place in the journal now, but nothing waits for it, so `durable()` does not either and it
   * rides along with the next group commit (the journal's deferred append). A failure still fails
   * the session.
   */
  outcome(detail: EventDetail): void {
    this.eventSeq += 1;
    this.journal
      .append({ event: { sessionId: this.sessionId, eventSeq: this.eventSeq, timeUnixNano: nowNanos().toString(), ...detail } }, { defer: true })
      .catch((err: unknown) => this.failed(err));
  }

  /** Resolves when everything appended so far is durable; rejects if any append failed. */
  async durable(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.pending.length === 0) return;
    const pending = this.pending;
    this.pending = [];
    await Promise.all(pending);
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }
}

import type { Checkpoint } from '../../proto/generated/gapwatch/v1/Checkpoint';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { Session } from '../../proto/generated/gapwatch/v1/Session';
import type { SessionEvent } from '../../proto/generated/gapwatch/v1/SessionEvent';

/**
 * What the protocol gateways (postgres/, ssh/, http/) rely on from the journal, and what the gRPC
 * Audit service reads from it. The journal owns seq, prev_hash, hash and time; callers give the body.
 */
export type JournalBody = { session: Session } | { event: SessionEvent } | { checkpoint: Checkpoint };

export interface JournalPosition {
  gatewayId: string;
  seq: bigint;
}

export interface AppendOptions {
  /**
   * The caller does not wait on this record before acting (an outcome, written after the fact): it
   * takes its place in the chain at once but rides along with the next group commit instead of
   * starting one, written within a few milliseconds at most. The promise still resolves once durable.
   */
  defer?: boolean;
}

export interface JournalWriter {
  /**
   * Appends one record. Resolves once the record is durable on disk (fsync'd; concurrent appends
   * share one fsync), so a caller that awaits it before acting has write-ahead audit.
   */
  append(body: JournalBody, options?: AppendOptions): Promise<JournalPosition>;
  /** Flushes, writes a signed checkpoint of the head, and closes the files. */
  close(): Promise<void>;
}

export interface JournalReader {
  /**
   * Records from `fromSeq` (inclusive) in order; with `follow`, waits for new ones until the signal aborts.
   * Besides the bodies callers append, readers see the records the journal writes itself: `checkpoint`
   * (signed chain heads) and `gap` (JournalGap: a torn tail cut at recovery, segments removed by
   * retention), so loss reaches subscribers as data. Only durable records are yielded.
   */
  read(fromSeq: bigint, options?: { follow?: boolean; signal?: AbortSignal }): AsyncIterable<JournalRecord__Output>;
}

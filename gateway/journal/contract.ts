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

/**
 * When an append's promise resolves. `durable`: the record is fsync'd (fdatasync), so it survives a
 * host crash (power loss, kernel panic). `written`: the record's bytes are in the segment file (the
 * OS page cache), so they survive the gateway process being killed, but a host crash can still lose
 * (or tear) them; the journal fsyncs them within one group commit either way.
 */
export type AppendAck = 'written' | 'durable';

export interface AppendOptions {
  /** Default 'durable'. */
  ack?: AppendAck;
  /**
   * The caller does not wait on this record before acting (an outcome, written after the fact): it
   * takes its place in the chain at once but rides along with the next group commit instead of
   * starting one, written within a few milliseconds at most. The promise resolves at `ack` as usual.
   */
  defer?: boolean;
}

export interface JournalWriter {
  /**
   * Appends one record. By default resolves once the record is durable on disk (fsync'd; concurrent
   * appends share one fsync), so a caller that awaits it before acting has write-ahead audit; with
   * `ack: 'written'`, once its bytes are in the file (seqs are written and fsync'd in order, so a
   * record acknowledged at either level implies every earlier seq is at that level too).
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
   * retention), so loss reaches subscribers as data. Only durable records are yielded (fsync'd, not
   * merely written), so a subscriber never receives a seq a host crash could take back.
   */
  read(fromSeq: bigint, options?: { follow?: boolean; signal?: AbortSignal }): AsyncIterable<JournalRecord__Output>;
}

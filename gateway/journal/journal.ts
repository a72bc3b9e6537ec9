import { EventEmitter } from 'node:events';
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { constants as fsConstants, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Checkpoint } from '../../proto/generated/gapwatch/v1/Checkpoint';
import type { JournalGap } from '../../proto/generated/gapwatch/v1/JournalGap';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { Config } from '../../platform/config';
import { lockDataDir, type DataDirLock } from '../../platform/data-dir';
import type { Logger } from '../../platform/log';
import { decodeRecord } from './canonical-encoding';
import type { AppendAck, AppendOptions, JournalBody, JournalPosition, JournalReader, JournalWriter } from './contract';
import {
  JournalClosedError,
  JournalCorruptError,
  JournalInUseError,
  JournalRecordInvalidError,
  JournalRecordTooLargeError,
  JournalWriteFailedError,
} from './errors';
import { nativeChainProblem, openChainWriter, type ChainWriter } from './chain-writer';
import { peekSeq, recordSuffix, recordSuffixView } from './record-chain';
import { recoverJournal, syncDirectory, type RecoveredJournal, type TornTail } from './recovery';
import { CHECKPOINT_FILE, INDEX_INTERVAL, journalDirFor, lastAtOrBefore, noteOffset, segmentIndexFor, segmentName, type OffsetIndexEntry } from './segment-directory';
import { CHECKPOINT_FILE_MAGIC, FrameCursor, HEADER_BYTES, MAX_RECORD_BYTES, SEGMENT_MAGIC, fileHeader, parseFrame, parseHeader } from './segment-format';
import { loadOrCreateSigningKey, signCheckpoint, type SigningKey } from './signing-key';

export type { TornTail } from './recovery';
export { journalDirFor } from './segment-directory';

/**
 * How appends reach the disk. `group` is the product: the appends of one event-loop turn are one
 * write, and an fdatasync follows each round of writes (groups written while one fdatasync runs are
 * covered by the next), so an append waiting for 'durable' shares its fsync with everything written
 * meanwhile. `per-record` (one write and one fdatasync per record, nothing overlapped) and `none`
 * (no fsync at all: NOT durable; 'durable' means written) exist as benchmark baselines.
 */
export type JournalSyncMode = 'group' | 'per-record' | 'none';

export interface JournalOptions {
  /** The gateway's own journal directory (see journalDirFor); created with mode 0700. */
  dir: string;
  gatewayId: string;
  /** A segment is closed and a new one started once it reaches this size. */
  segmentBytes?: number;
  /** Whole closed segments older than maxAgeMs (by last write) or beyond maxBytes in total are removed; 0 = no limit. */
  retention?: { maxAgeMs?: number; maxBytes?: number };
  /** A signed checkpoint is written after everyRecords records or everyMs of activity, whichever first, and at close. */
  checkpoint?: { everyRecords?: number; everyMs?: number };
  sync?: JournalSyncMode;
  /** Which chain writer: the addon's by default, JavaScript's when the addon is not built (tests pick one). */
  chain?: 'native' | 'js';
  log?: Logger;
}

/** What the body of a record can be when the journal writes it itself. */
type InternalBody = JournalBody | { gap: JournalGap };

export interface RecoveryReport {
  /** The head found on disk before anything new was written. */
  lastSeq: bigint;
  tornTail: TornTail | null;
}

export interface JournalStats {
  /** Records written (including checkpoints and gap records). */
  records: number;
  /** Write rounds; with group commit, one per group of concurrent appends. */
  groups: number;
  /** The journal's own fdatasync rounds of the active segment; one covers every group written before it started. */
  fsyncs: number;
  /** fdatasync rounds of the native data paths' sync threads (their records; the journal runs none for them). */
  nativeFsyncs: number;
  checkpoints: number;
  /** Appends (session and event records, and the journal's own gap records) by the level their promise waits for. */
  acks: Record<AppendAck, number>;
}

export interface RetentionResult {
  removedSegments: string[];
  removedBytes: number;
  /** First seq still on disk afterwards. */
  firstSeq: bigint;
}

const RETENTION_CHECK_MS = 10 * 60_000;
/**
 * How long a deferred append (AppendOptions.defer) may wait for another append's group commit
 * before it is written on its own.
 */
const DEFER_MS = 5;
/**
 * How long records written with nobody waiting for them to be durable ('written' acks, deferred
 * appends) may stay unsynced before an fdatasync round starts on its own. A durable wait starts one
 * at once; this bounds what a host crash can take from a read-only stream of requests, while
 * sparing it an fdatasync (and its CPU) after every write.
 */
const SYNC_DELAY_MS = 5;
/**
 * A native data path's sync thread makes what the path writes durable within 5 ms while it serves
 * connections, and in a last round when its last one ends (native/addon/chain-syncer.h). The journal
 * runs an fdatasync of its own for those records only when no native round covered them this long
 * after it learned of them (a loop that stopped, or failed): one of its own per look otherwise doubled
 * the fdatasyncs of a busy native path (each costs 46-85 µs of CPU and a flush of the disk here).
 */
const NATIVE_SYNC_GRACE_MS = 50;
/**
 * How often the journal looks at a native data path's progress while it runs (noteNativeWrites: the
 * durable head readers see, rotation, stats). A look costs the JavaScript thread a wake-up and a few
 * calls into the addon (~0.1-0.3 ms of this machine's CPU under load); at 20 ms they were ~1-2 % of
 * the gateway's CPU. Readers waiting at the head see a native path's records up to this much later;
 * head() itself is always current.
 */
export const NATIVE_LOOK_MS = 100;

const DEFAULTS = {
  segmentBytes: 64 * 1024 * 1024,
  checkpointEveryRecords: 1000,
  checkpointEveryMs: 10_000,
};

interface SegmentState {
  firstSeq: bigint;
  name: string;
  path: string;
  /** Bytes of this file that readers may read: fsync'd (or, in `none` mode, written). */
  durableBytes: number;
  /** Last write time, for age-based retention. */
  mtimeMs: number;
  index: OffsetIndexEntry[];
}

interface PendingRecord {
  kind: 'record';
  seq: bigint;
  /** A checkpoint's frame, copied to checkpoints.log once durable (other frames stay in the chain writer). */
  frame: Buffer | null;
  checkpoint: boolean;
  ack: AppendAck;
  /** A deferred append: its promise waits for durable, but nothing acts on it, so it starts no fdatasync. */
  deferred: boolean;
  resolve?: (position: JournalPosition) => void;
  reject?: (err: Error) => void;
}

/**
 * What the flush loop does, in order: write records, start a new segment, or rewrite
 * checkpoints.log without the copies retention made obsolete (serialized with the writes to it).
 */
type PendingEntry = PendingRecord | { kind: 'rotate'; firstSeq: bigint } | { kind: 'prune-checkpoints'; keepCovering: bigint; done: () => void };

const openDirs = new Set<string>();

/**
 * The gateway's append-only, hash-chained journal: the writer the protocol gateways append to and
 * the reader the Audit stream serves from. One instance per directory per process.
 */
export class Journal implements JournalWriter, JournalReader {
  readonly dir: string;
  readonly gatewayId: string;
  readonly recovery: RecoveryReport;
  readonly keyId: string;

  private readonly options: Required<Pick<JournalOptions, 'segmentBytes' | 'sync'>> & {
    maxAgeMs: number;
    maxBytes: number;
    checkpointEveryRecords: number;
    checkpointEveryMs: number;
  };
  private readonly log: Logger | undefined;
  private readonly key: SigningKey;
  private readonly chain: ChainWriter;
  private readonly lock: DataDirLock;
  private readonly segments: SegmentState[];
  private active: { state: SegmentState; file: FileHandle; size: number };
  private checkpointFile: FileHandle;
  private checkpointFileSize: number;

  /** Seq of the last checkpoint record (-1 when the journal's last record is not one). */
  private lastCheckpointSeq = -1n;
  /** Bytes the newest segment (the active one, or the one a rotation has begun) will have once everything pending is written. */
  private assignedBytes: number;
  private framedSeen = 0;
  private durableSeq: bigint;
  private durableHash: Buffer;
  /** Last record whose bytes are in the active segment file (it may still await its fdatasync). */
  private writtenSeq: bigint;
  private writtenHash: Buffer;
  /** Written records whose promise waits for 'durable', in seq order. */
  private awaitingDurable: PendingRecord[] = [];
  /** The fdatasync loop, while it runs; `syncAgain` asks it for one more round. */
  private syncing: Promise<void> | null = null;
  private syncAgain = false;
  /** A written record's append is awaited at 'durable': the next fdatasync round must start now. */
  private durableAwaited = false;
  private syncTimer: NodeJS.Timeout | null = null;
  /** The written head native writes had reached when the journal last looked, and the check that they become durable. */
  private nativeWrittenSeq = 0n;
  private nativeSyncCheck: NodeJS.Timeout | null = null;
  /** Checkpoint records written to the segment whose copy in checkpoints.log waits for them to be durable. */
  private copiesPending: PendingRecord[] = [];
  private coveredSeq: bigint;
  private recordsSinceCheckpoint = 0;

  private pending: PendingEntry[] = [];
  /** Something pending must be written now (an append that is waited for, a checkpoint, a rotation). */
  private urgent = false;
  /** Deferred appends have waited DEFER_MS: write them even though nothing urgent is pending. */
  private deferDue = false;
  private deferTimer: NodeJS.Timeout | null = null;
  private flushScheduled = false;
  private flushing: Promise<void> | null = null;
  private failure: JournalWriteFailedError | null = null;
  private closing = false;
  private closePromise: Promise<void> | null = null;
  private retentionRun: Promise<RetentionResult> | null = null;
  private readonly retentionTimer: NodeJS.Timeout;
  private closed = false;
  private readonly durable = new EventEmitter();
  private readonly timer: NodeJS.Timeout;
  private lastTimeNs = 0n;
  private readonly counters: Omit<JournalStats, 'nativeFsyncs'> = { records: 0, groups: 0, fsyncs: 0, checkpoints: 0, acks: { written: 0, durable: 0 } };

  /** Opens (creating or recovering) the journal; a torn tail is cut and journaled as a gap record before this resolves. */
  static async open(given: JournalOptions): Promise<Journal> {
    const options = { ...given, dir: resolve(given.dir) };
    const dir = options.dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (openDirs.has(dir)) throw new JournalInUseError(dir);
    const lock = lockDataDir(dir);
    openDirs.add(dir);
    let journal: Journal;
    const opened: FileHandle[] = [];
    try {
      const fsyncEnabled = (options.sync ?? 'group') !== 'none';
      const key = loadOrCreateSigningKey(dir);
      const recovered = recoverJournal(dir, options.gatewayId, fsyncEnabled);
      const activePath = recovered.segments[recovered.segments.length - 1]!.path;
      const activeFile = await open(activePath, segmentOpenFlags(false));
      opened.push(activeFile);
      // A gateway process killed after a 'written' acknowledgement leaves records in the page cache
      // that were never fsync'd: they become durable now, before readers are told they are.
      if (fsyncEnabled) await activeFile.datasync();
      const checkpoints = await openCheckpointFile(dir, fsyncEnabled);
      opened.push(checkpoints.file);
      journal = new Journal(options, key, lock, recovered, activeFile, checkpoints);
    } catch (err) {
      for (const file of opened) await file.close().catch(() => undefined);
      openDirs.delete(dir);
      lock.release();
      throw err;
    }
    try {
      if (journal.active.state.durableBytes === HEADER_BYTES && journal.active.state.firstSeq > 1n) {
        // A crash between creating a segment and writing its anchoring checkpoint (or a torn tail that
        // held it): write it first, so every segment but the first still starts with its anchor.
        journal.enqueueCheckpoint();
        await journal.flushNow();
        await journal.syncNow();
        if (journal.failure) throw journal.failure;
      }
      const torn = journal.recovery.tornTail;
      if (torn) {
        await journal.appendInternal({
          gap: {
            kind: 'JOURNAL_GAP_KIND_TORN_TAIL',
            firstSeq: (torn.afterSeq + 1n).toString(),
            bytes: torn.bytes,
            segment: torn.segment,
            offset: torn.offset,
            preservedAs: torn.preservedAs,
            detail: `recovery at open cut an incomplete tail (${torn.reason}); those appends were never acknowledged as durable`,
          },
        });
      }
      if (journal.options.maxAgeMs > 0 || journal.options.maxBytes > 0) await journal.applyRetention();
    } catch (err) {
      await journal.close().catch(() => undefined);
      throw err;
    }
    return journal;
  }

  private constructor(
    options: JournalOptions,
    key: SigningKey,
    lock: DataDirLock,
    recovered: RecoveredJournal,
    activeFile: FileHandle,
    checkpoints: { file: FileHandle; size: number },
  ) {
    this.dir = options.dir;
    this.gatewayId = options.gatewayId;
    this.log = options.log;
    this.options = {
      segmentBytes: options.segmentBytes ?? DEFAULTS.segmentBytes,
      sync: options.sync ?? 'group',
      maxAgeMs: options.retention?.maxAgeMs ?? 0,
      maxBytes: options.retention?.maxBytes ?? 0,
      checkpointEveryRecords: options.checkpoint?.everyRecords ?? DEFAULTS.checkpointEveryRecords,
      checkpointEveryMs: options.checkpoint?.everyMs ?? DEFAULTS.checkpointEveryMs,
    };
    this.key = key;
    this.keyId = key.keyId;
    this.chain = openChainWriter(options.gatewayId, recovered.lastSeq, recovered.lastHash, options.chain);
    if (this.chain.kind === 'js' && options.chain !== 'js') {
      this.log?.warn({ journal: options.dir, reason: nativeChainProblem() }, 'native journal chain unavailable; chaining in JavaScript (same bytes, more CPU per record)');
    }
    this.lock = lock;
    this.segments = recovered.segments.map((s) => ({ firstSeq: s.firstSeq, name: s.name, path: s.path, durableBytes: s.bytes, mtimeMs: s.mtimeMs, index: s.index }));
    this.lastCheckpointSeq = recovered.lastWasCheckpoint ? recovered.lastSeq : -1n;
    this.coveredSeq = recovered.coveredSeq;
    this.recordsSinceCheckpoint = Number(recovered.lastSeq - recovered.coveredSeq);
    this.durableSeq = recovered.lastSeq;
    this.durableHash = recovered.lastHash;
    this.writtenSeq = recovered.lastSeq;
    this.writtenHash = recovered.lastHash;
    this.recovery = { lastSeq: recovered.lastSeq, tornTail: recovered.tornTail };
    const activeState = this.segments[this.segments.length - 1]!;
    this.active = { state: activeState, file: activeFile, size: activeState.durableBytes };
    this.assignedBytes = activeState.durableBytes;
    this.chain.setActive(activeFile.fd, activeState.durableBytes, activeState.firstSeq, Number(INDEX_INTERVAL));
    this.checkpointFile = checkpoints.file;
    this.checkpointFileSize = checkpoints.size;
    if (this.recovery.tornTail) {
      const torn = this.recovery.tornTail;
      this.log?.warn({ journal: this.dir, tornTail: { ...torn, afterSeq: torn.afterSeq.toString() } }, 'journal recovery cut a torn tail; journaling the loss');
    }
    // Every follower waiting at the head listens here; any number of subscribers is expected.
    this.durable.setMaxListeners(0);
    this.timer = setInterval(() => this.onTimer(), Math.max(10, this.options.checkpointEveryMs));
    this.timer.unref();
    // Age limits must apply to an idle journal too, not only when a rotation happens.
    this.retentionTimer = setInterval(() => this.retainInBackground(), RETENTION_CHECK_MS);
    this.retentionTimer.unref();
  }

  /** The durable head: the last record readers can see and that survives a crash. */
  head(): { seq: bigint; hash: Buffer } {
    this.catchUpNativeSync();
    return { seq: this.durableSeq, hash: this.durableHash };
  }

  /** First seq still on disk (after retention). */
  firstSeq(): bigint {
    return this.segments[0]!.firstSeq;
  }

  /** The last record whose bytes are in the file (acknowledged at 'written'); at or after head(). */
  writtenHead(): { seq: bigint; hash: Buffer } {
    // The chain knows what any writer (a native data path included) has put in the file.
    const { seq, hash } = this.chain.writtenHead();
    return seq > this.writtenSeq ? { seq, hash } : { seq: this.writtenSeq, hash: this.writtenHash };
  }

  /** The addon's chain object, for a native data path to append to; null with the JavaScript writer. */
  nativeChain(): object | null {
    return this.chain.native;
  }

  /** A native data path's own fdatasync made records durable: readers may see them now. */
  private catchUpNativeSync(): void {
    const synced = this.chain.syncedHead?.();
    if (!synced || synced.seq <= this.durableSeq || this.closed || this.failure) return;
    // The size counts only for the segment it was read from (a rotation may have moved on since).
    const sameSegment = synced.segmentFirstSeq === this.active.state.firstSeq;
    if (synced.seq > this.writtenSeq) {
      this.writtenSeq = synced.seq;
      this.writtenHash = synced.hash;
      if (sameSegment && synced.size > this.active.size) this.active.size = synced.size;
    }
    this.markDurable(synced.seq, synced.hash, this.active.state, sameSegment ? synced.size : 0);
  }

  /**
   * A native data path wrote records (write-ahead, to the chain's file): the written head moves; its
   * own sync thread makes them durable (checked after NATIVE_SYNC_GRACE_MS).
   */
  noteNativeWrites(): void {
    if (this.closed || this.closing || this.failure) return;
    this.catchUpNativeSync();
    // Native appends fill segments too: a rotation starts from here when no JavaScript append does.
    if (this.rotationDue()) {
      this.rotateIfFull();
      this.scheduleFlush();
    }
    if (!this.learnNativeWrites()) return;
    if (this.options.sync === 'none') this.markDurable(this.writtenSeq, this.writtenHash, this.active.state, this.active.size);
    else this.expectNativeSync();
  }

  /** The native path's own rounds should cover what it wrote; an fdatasync here only if none did in NATIVE_SYNC_GRACE_MS. */
  private expectNativeSync(): void {
    this.nativeWrittenSeq = this.writtenSeq;
    if (!this.nativeSyncCheck) this.checkNativeSync(this.nativeWrittenSeq);
  }

  private checkNativeSync(seq: bigint): void {
    this.nativeSyncCheck = setTimeout(() => {
      this.nativeSyncCheck = null;
      if (this.closing || this.closed || this.failure) return;
      this.catchUpNativeSync();
      // syncNow covers everything written so far, what the path wrote since the check began too.
      if (this.durableSeq < seq) void this.syncNow();
      else if (this.durableSeq < this.nativeWrittenSeq) this.checkNativeSync(this.nativeWrittenSeq);
    }, NATIVE_SYNC_GRACE_MS);
    this.nativeSyncCheck.unref();
  }

  /**
   * Takes the chain's written head (a native data path writes its own frames, and this journal's
   * writes may have had nothing of its own to write) as this journal's: true when it moved.
   */
  private learnNativeWrites(): boolean {
    const head = this.chain.writtenHead();
    if (head.seq <= this.writtenSeq) return false;
    this.active.size = head.size;
    this.writtenSeq = head.seq;
    this.writtenHash = head.hash;
    return true;
  }

  /** Which chain writer this journal uses ('js' only when the addon is not built, or when asked for). */
  get chainKind(): 'native' | 'js' {
    return this.chain.kind;
  }

  stats(): JournalStats {
    const native = this.chain.syncedHead?.();
    const acks = { written: this.counters.acks.written + (native?.acksWritten ?? 0), durable: this.counters.acks.durable + (native?.acksDurable ?? 0) };
    return { ...this.counters, nativeFsyncs: native?.syncRounds ?? 0, acks };
  }

  /**
   * Resolves at `ack` ('durable' by default: fsync'd; 'written': in the file, fsync'd with the next
   * round). With `defer`, the record gets its seq (its place in the chain) now but does not start a
   * write of its own: it goes to disk with the next group another append starts, or after DEFER_MS.
   * For records nothing waits on before acting (a statement's outcome, after its answer went out).
   */
  append(body: JournalBody, options: AppendOptions = {}): Promise<JournalPosition> {
    const given = body === null || typeof body !== 'object' ? [] : Object.keys(body).filter((k) => (body as Record<string, unknown>)[k] != null);
    if (given.length !== 1 || (given[0] !== 'session' && given[0] !== 'event')) {
      const what = given.includes('checkpoint') || given.includes('gap') ? 'checkpoints and gap records are written by the journal itself; ' : '';
      return Promise.reject(new JournalRecordInvalidError('body', `must hold exactly one of session or event (got ${given.join(', ') || 'none'}); ${what}nothing was written`));
    }
    const ack: AppendAck = options.ack ?? 'durable';
    if (ack !== 'durable' && ack !== 'written') return Promise.reject(new JournalRecordInvalidError('ack', `must be 'written' or 'durable' (got ${String(ack)}); nothing was written`));
    return this.appendInternal(body, options.defer === true, ack);
  }

  /** Writes a signed checkpoint of the current head now (also done periodically and at close). */
  async checkpoint(): Promise<JournalPosition> {
    this.assertWritable();
    const position = this.enqueueCheckpoint();
    await this.flushNow();
    await this.syncNow();
    if (this.failure) throw this.failure;
    return position;
  }

  close(): Promise<void> {
    this.closePromise ??= this.closeOnce();
    return this.closePromise;
  }

  private async closeOnce(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.retentionTimer);
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = null;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    if (this.nativeSyncCheck) clearTimeout(this.nativeSyncCheck);
    this.nativeSyncCheck = null;
    try {
      await this.retentionRun?.catch(() => undefined);
      if (!this.failure && this.uncheckpointed(0n)) this.enqueueCheckpoint();
      this.closing = true;
      await this.flushNow();
      await this.syncNow();
      if (!this.failure) await this.sealActive();
    } finally {
      this.closing = true;
      this.closed = true;
      this.durable.emit('change');
      this.chain.setActive(-1, 0, 0n, 0);
      await this.active.file.close().catch(() => undefined);
      await this.checkpointFile.close().catch(() => undefined);
      openDirs.delete(this.dir);
      this.lock.release();
    }
  }

  /**
   * Records from `fromSeq` on. A seq older than the first retained record starts at the first
   * retained one (the retention gap record in the journal says what was removed). Only durable
   * records are yielded, so a subscriber never sees a record a crash could take back.
   */
  async *read(fromSeq: bigint, options: { follow?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<JournalRecord__Output> {
    let nextSeq = fromSeq < 1n ? 1n : fromSeq;
    const signal = options.signal;
    let finished: SegmentState | null = null;
    for (;;) {
      if (signal?.aborted) return;
      let index = segmentIndexFor(this.segments, nextSeq);
      if (index < 0) {
        index = 0;
        nextSeq = this.segments[0]!.firstSeq;
      }
      const segment = this.segments[index]!;
      if (segment === finished) {
        const following = this.segments[index + 1];
        throw new JournalCorruptError(segment.path, segment.durableBytes, nextSeq - 1n, `the segment ends before seq ${nextSeq}${following ? `, but the next one starts at seq ${following.firstSeq}` : ''}`);
      }
      let file: FileHandle;
      try {
        file = await open(segment.path, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed by retention meanwhile: look again
        throw err;
      }
      try {
        const near = lastAtOrBefore(segment.index, nextSeq, (e) => e.seq);
        const cursor = new FrameCursor(file, near >= 0 ? segment.index[near]!.offset : HEADER_BYTES);
        for (;;) {
          if (signal?.aborted) return;
          const next = await cursor.next(segment.durableBytes);
          if (next && next.kind === 'frame') {
            const seq = peekSeq(next.payload);
            if (seq !== null) noteOffset(segment.index, segment.firstSeq, seq, next.offset);
            if (seq !== null && seq < nextSeq) continue;
            const record = decodeRecord(next.payload);
            if (BigInt(record.seq) !== nextSeq) {
              throw new JournalCorruptError(segment.path, next.offset, nextSeq - 1n, `expected seq ${nextSeq}, found ${record.seq}`);
            }
            nextSeq += 1n;
            yield record;
            continue;
          }
          if (next) throw new JournalCorruptError(segment.path, next.offset, nextSeq - 1n, next.reason);
          // At the durable end of this segment. A closed segment is complete: go on to the next one.
          if (segment !== this.active.state) {
            finished = segment;
            break;
          }
          // The active segment holds every durable record from its first seq on.
          if (nextSeq <= this.durableSeq) continue;
          if (this.failure && options.follow) throw this.failure; // a follower must not take a failed journal for its end
          if (!options.follow || this.closed) return;
          if (!(await this.waitForDurable(nextSeq, signal)) && this.failure) throw this.failure;
        }
      } finally {
        await file.close();
      }
    }
  }

  /** Removes whole closed segments beyond the retention limits, journaling the removal first. */
  applyRetention(nowMs: number = Date.now()): Promise<RetentionResult> {
    // One run at a time: two concurrent runs would both journal and remove the same segments.
    const run = (this.retentionRun ?? Promise.resolve()).catch(() => undefined).then(() => this.retainOnce(nowMs));
    this.retentionRun = run;
    return run;
  }

  private retainInBackground(): void {
    if (this.closePromise || this.closing || this.failure || (this.options.maxAgeMs <= 0 && this.options.maxBytes <= 0)) return;
    this.applyRetention().catch((err: unknown) => this.log?.error({ err, journal: this.dir }, 'journal retention failed'));
  }

  private async retainOnce(nowMs: number): Promise<RetentionResult> {
    const { maxAgeMs, maxBytes } = this.options;
    const sizes = this.segments.map((s) => (s === this.active.state ? this.active.size + this.chain.pendingBytes() : s.durableBytes));
    let total = sizes.reduce((a, b) => a + b, 0);
    let removeCount = 0;
    // Never the active segment; each kept segment starts with a checkpoint anchoring its prev_hash.
    while (removeCount < this.segments.length - 1) {
      const segment = this.segments[removeCount]!;
      const tooOld = maxAgeMs > 0 && nowMs - segment.mtimeMs > maxAgeMs;
      const tooBig = maxBytes > 0 && total > maxBytes;
      if (!tooOld && !tooBig) break;
      total -= sizes[removeCount]!;
      removeCount += 1;
    }
    if (removeCount === 0) return { removedSegments: [], removedBytes: 0, firstSeq: this.segments[0]!.firstSeq };
    const removed = this.segments.slice(0, removeCount);
    const removedBytes = sizes.slice(0, removeCount).reduce((a, b) => a + b, 0);
    const keptFirstSeq = this.segments[removeCount]!.firstSeq;
    await this.appendInternal({
      gap: {
        kind: 'JOURNAL_GAP_KIND_RETENTION',
        firstSeq: removed[0]!.firstSeq.toString(),
        lastSeq: (keptFirstSeq - 1n).toString(),
        bytes: removedBytes,
        segment: removed[0]!.name,
        offset: 0,
        detail: `retention (max age ${maxAgeMs} ms, max ${maxBytes} bytes) removed ${removeCount} segment(s); seq ${keptFirstSeq} is anchored by the signed checkpoint that starts its segment`,
      },
    });
    this.segments.splice(0, removeCount);
    for (const segment of removed) await unlink(segment.path).catch(() => undefined);
    this.syncDirectory();
    // The checkpoint anchoring the first kept segment covers keptFirstSeq - 1; older copies vouch for nothing left.
    if (this.failure) throw this.failure;
    await new Promise<void>((done) => {
      this.pending.push({ kind: 'prune-checkpoints', keepCovering: keptFirstSeq - 1n, done });
      this.urgent = true;
      this.scheduleFlush();
    });
    this.log?.info({ journal: this.dir, removed: removed.map((s) => s.name), firstSeq: keptFirstSeq.toString() }, 'journal retention removed segments');
    return { removedSegments: removed.map((s) => s.name), removedBytes, firstSeq: keptFirstSeq };
  }

  private appendInternal(body: InternalBody, defer = false, ack: AppendAck = 'durable'): Promise<JournalPosition> {
    try {
      this.assertWritable();
      let suffix = recordSuffixView(this.nextTime(), body as Parameters<typeof recordSuffix>[1]);
      if (suffix.length + 128 > MAX_RECORD_BYTES) throw new JournalRecordTooLargeError(suffix.length, MAX_RECORD_BYTES - 128);
      // A rotation encodes a checkpoint first, which would overwrite the view: keep a copy then.
      if (this.rotationDue()) suffix = Buffer.from(suffix);
      this.rotateIfFull();
      return new Promise<JournalPosition>((resolve, reject) => {
        const seq = this.enqueueRecord(suffix, false, resolve, reject, defer, ack);
        this.counters.acks[ack] += 1;
        this.recordsSinceCheckpoint += 1;
        if (this.recordsSinceCheckpoint >= this.options.checkpointEveryRecords && seq > 0n) this.enqueueCheckpoint();
        if (this.urgent) this.scheduleFlush();
        else this.deferFlush();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private assertWritable(): void {
    if (this.failure) throw this.failure;
    if (this.closing || this.closed) throw new JournalClosedError(this.dir);
  }

  private enqueueRecord(suffix: Buffer, isCheckpoint: boolean, resolve?: (p: JournalPosition) => void, reject?: (err: Error) => void, defer = false, ack: AppendAck = 'durable'): bigint {
    if (!defer) this.urgent = true;
    let seq: bigint;
    let frame: Buffer | null = null;
    if (isCheckpoint) {
      ({ seq, frame } = this.chain.appendKeepingFrame(suffix));
    } else {
      seq = this.chain.append(suffix);
    }
    this.pending.push({ kind: 'record', seq, frame, checkpoint: isCheckpoint, ack, deferred: defer, resolve, reject });
    return seq;
  }

  /**
   * Signs the head and appends the checkpoint right after it, with native writers kept out in
   * between (the chain's lock). `segmentStart`: the checkpoint opens the next segment.
   */
  private enqueueCheckpoint(segmentStart = false): JournalPosition {
    const { seq: covered, hash: headHash } = this.chain.lockHead();
    let appended: { seq: bigint; frame: Buffer };
    try {
      const body: Checkpoint = {
        seq: covered.toString(),
        headHash,
        signature: signCheckpoint(this.key, this.gatewayId, covered, headHash),
        keyId: this.key.keyId,
      };
      appended = this.chain.appendAndUnlock(recordSuffix(this.nextTime(), { checkpoint: body }), segmentStart);
    } catch (err) {
      this.chain.unlock();
      throw err;
    }
    const seq = appended.seq;
    this.pending.push({ kind: 'record', seq, frame: appended.frame, checkpoint: true, ack: 'durable', deferred: false });
    this.urgent = true;
    this.lastCheckpointSeq = seq;
    this.coveredSeq = covered;
    this.recordsSinceCheckpoint = 0;
    this.counters.checkpoints += 1;
    return { gatewayId: this.gatewayId, seq };
  }

  private rotationDue(): boolean {
    // Every frame appended since the last look, a native data path's included, is the newest segment's.
    const framed = this.chain.framedBytes();
    this.assignedBytes += framed - this.framedSeen;
    this.framedSeen = framed;
    return this.assignedBytes >= this.options.segmentBytes;
  }

  /** Records after `after` and after the last checkpoint (a native data path's included). */
  private uncheckpointed(after: bigint): boolean {
    const head = this.chain.head().seq;
    return head > after && head !== this.lastCheckpointSeq;
  }

  /** Starts a new segment when the active one is full; the new one opens with a checkpoint of the old head. */
  private rotateIfFull(): void {
    if (!this.rotationDue()) return;
    // The new segment starts with the checkpoint: its seq (native writers may have appended since
    // this journal's last record) is known once it is appended.
    const rotate: { kind: 'rotate'; firstSeq: bigint } = { kind: 'rotate', firstSeq: 0n };
    this.pending.push(rotate);
    this.urgent = true;
    this.assignedBytes = HEADER_BYTES;
    this.framedSeen = this.chain.framedBytes();
    rotate.firstSeq = this.enqueueCheckpoint(true).seq;
  }

  /** Deferred records only: write them after DEFER_MS unless an urgent write takes them first. */
  private deferFlush(): void {
    if (this.deferTimer) return;
    this.deferTimer = setTimeout(() => {
      this.deferTimer = null;
      if (this.pending.length === 0) return;
      this.deferDue = true;
      this.scheduleFlush();
    }, DEFER_MS);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing) return;
    this.flushScheduled = true;
    // Appends made in the same turn of the event loop join one group.
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flushNow();
    });
  }

  /**
   * Writes everything pending; resolves when it is written (or the journal has failed). Durability
   * follows in the fdatasync loop (syncNow).
   */
  private flushNow(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.pending.length > 0 && this.flushWanted() ? this.flushNow() : undefined));
    this.flushing = (async () => {
      try {
        while (this.pending.length > 0 && !this.failure && this.flushWanted()) {
          const perRecord = this.options.sync === 'per-record';
          const group = perRecord ? this.pending.splice(0, 1) : this.pending.splice(0);
          if (this.pending.length === 0) {
            // Deferred records ride along with this group: nothing is left waiting for the timer.
            this.urgent = false;
            this.deferDue = false;
            if (this.deferTimer) clearTimeout(this.deferTimer);
            this.deferTimer = null;
          }
          await this.writeGroup(group);
          // The baseline without overlap: each record waits for its own fdatasync before the next write.
          if (perRecord) await this.syncNow();
        }
      } finally {
        this.flushing = null;
      }
    })();
    return this.flushing;
  }

  private flushWanted(): boolean {
    return this.urgent || this.deferDue || this.closing;
  }

  /** Writes one group (no fsync), acknowledges its 'written' appends and starts an fdatasync round. */
  private async writeGroup(group: PendingEntry[]): Promise<void> {
    try {
      let chunk: PendingRecord[] = [];
      for (const entry of group) {
        if (entry.kind === 'rotate') {
          await this.writeActive(chunk, entry.firstSeq - 1n);
          chunk = [];
          // The old segment is complete and durable before the first record of the new one is written.
          await this.syncNow();
          if (this.failure) throw this.failure;
          await this.startSegment(entry.firstSeq);
          continue;
        }
        if (entry.kind === 'prune-checkpoints') {
          await this.writeActive(chunk);
          chunk = [];
          // Every copy is in checkpoints.log, and no write to it in flight, before the prune rewrites it.
          await this.syncNow();
          if (this.failure) throw this.failure;
          await this.writeCheckpointCopies();
          await this.pruneCheckpointFile(entry.keepCovering);
          entry.done();
          continue;
        }
        chunk.push(entry);
      }
      await this.writeActive(chunk);
      if (this.options.sync === 'none') await this.writeCheckpointCopies();
    } catch (err) {
      this.fail(err, group);
      return;
    }
    if (this.options.sync === 'none') return;
    if (this.durableAwaited) void this.syncNow();
    else this.syncSoon();
  }

  /** Nobody waits for durable: fdatasync within SYNC_DELAY_MS, sharing the round with whatever comes meanwhile. */
  private syncSoon(): void {
    // Closing runs its own last round (closeOnce), after which the file is gone.
    if (this.syncTimer || this.closing || this.closed) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      void this.syncNow();
    }, SYNC_DELAY_MS);
  }

  /**
   * Makes everything written so far durable: starts an fdatasync round, or asks the running loop for
   * one more, and resolves when the loop is done (or the journal has failed). Rounds never overlap,
   * so durable seqs advance in order.
   */
  private syncNow(): Promise<void> {
    if (this.options.sync === 'none' || this.failure) return Promise.resolve();
    // What a native data path's own fdatasync covered needs no second one; what it only wrote does.
    // (Before a rotation this round must cover every frame of the segment it seals, whoever wrote
    // them: its readers stop at the size this round makes durable.)
    this.catchUpNativeSync();
    this.learnNativeWrites();
    if (this.syncing) {
      this.syncAgain = true;
      return this.syncing;
    }
    if (this.writtenSeq <= this.durableSeq) return Promise.resolve();
    this.syncing = (async () => {
      try {
        do {
          this.syncAgain = false;
          this.durableAwaited = false;
          // What this round covers is fixed before it starts: records written later wait for the next.
          const seq = this.writtenSeq;
          const hash = this.writtenHash;
          const state = this.active.state;
          const bytes = this.active.size;
          try {
            await this.active.file.datasync();
            this.counters.fsyncs += 1;
            this.markDurable(seq, hash, state, bytes);
            await this.writeCheckpointCopies();
          } catch (err) {
            this.fail(err, []);
            return;
          }
        } while (this.syncAgain && !this.failure && this.writtenSeq > this.durableSeq);
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  /** Readers may now see `seq` and the first `bytes` of `state`; 'durable' appends up to `seq` resolve. */
  private markDurable(seq: bigint, hash: Buffer, state: SegmentState, bytes: number): void {
    if (bytes > state.durableBytes) state.durableBytes = bytes;
    if (seq > this.durableSeq) {
      this.durableSeq = seq;
      this.durableHash = hash;
    }
    let done = 0;
    while (done < this.awaitingDurable.length && this.awaitingDurable[done]!.seq <= seq) done += 1;
    const resolved = done === 0 ? [] : this.awaitingDurable.splice(0, done);
    this.durable.emit('change');
    for (const entry of resolved) entry.resolve?.({ gatewayId: this.gatewayId, seq: entry.seq });
  }

  /**
   * Copies durable checkpoint records to checkpoints.log (and fdatasyncs it). Only durable ones: a
   * copy of a checkpoint that a host crash then tore off the segment would name a seq that the
   * recovered journal gives to another record.
   */
  private async writeCheckpointCopies(): Promise<void> {
    let count = 0;
    while (count < this.copiesPending.length && this.copiesPending[count]!.seq <= this.durableSeq) count += 1;
    if (count === 0) return;
    const bytes = Buffer.concat(this.copiesPending.splice(0, count).map((e) => e.frame!));
    await writeFully(this.checkpointFile, bytes, this.checkpointFileSize);
    this.checkpointFileSize += bytes.length;
    if (this.options.sync !== 'none') await this.checkpointFile.datasync();
  }

  /** Rewrites checkpoints.log keeping copies that cover `keepCovering` or later (write, fsync, rename). */
  private async pruneCheckpointFile(keepCovering: bigint): Promise<void> {
    const path = join(this.dir, CHECKPOINT_FILE);
    const bytes = await readFile(path);
    const kept: Buffer[] = [fileHeader(CHECKPOINT_FILE_MAGIC, 0n)];
    let offset = HEADER_BYTES;
    for (;;) {
      const parsed = parseFrame(bytes, offset);
      if (!parsed) break;
      if (parsed.kind !== 'frame') {
        // Damage is evidence: keep the rest as it is for the verifier rather than drop it.
        kept.push(bytes.subarray(offset));
        break;
      }
      const covers = decodeRecord(parsed.payload).checkpoint?.seq;
      if (covers === undefined || BigInt(covers) >= keepCovering) kept.push(bytes.subarray(offset, parsed.end));
      offset = parsed.end;
    }
    const next = Buffer.concat(kept);
    const temporary = `${path}.tmp`;
    const file = await open(temporary, 'w', 0o600);
    try {
      await writeFully(file, next, 0);
      if (this.options.sync !== 'none') await file.datasync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
    this.syncDirectory();
    await this.checkpointFile.close();
    this.checkpointFile = await open(path, 'r+');
    this.checkpointFileSize = next.length;
  }

  /**
   * One write (no fsync) for a run of records bound for the active segment: the chain writer's
   * pwrite of their frames, synchronous on the event loop's thread. It copies a few kilobytes into
   * the page cache (microseconds), where a trip through libuv's thread pool costs more CPU than the
   * copy and delays the 'written' acknowledgement every forwarded request waits for by a thread
   * wake-up. The disk itself is only ever waited on by fdatasync, which stays in the thread pool.
   */
  private async writeActive(entries: PendingRecord[], upto?: bigint): Promise<void> {
    if (entries.length === 0 && upto === undefined) return;
    const last = entries[entries.length - 1];
    const state = this.active.state;
    const written = this.chain.write(upto ?? last!.seq);
    if (!last) {
      // Native records only, the rest of a segment a rotation is finishing.
      if (written) {
        this.active.size = written.size;
        this.writtenSeq = written.seq;
        this.writtenHash = written.hash;
      }
      return;
    }
    // A native data path may have written these frames already (it writes everything pending).
    const head = written ?? this.chain.writtenHead();
    if (head.seq < last.seq) {
      throw new Error(`journal chain writer out of step: asked to write up to seq ${last.seq}, written up to ${head.seq}`);
    }
    this.counters.groups += 1;
    if (written) for (const [seq, offset] of written.index) noteOffset(state.index, state.firstSeq, seq, offset);
    // An fdatasync round that failed meanwhile has rejected everything waiting: so must this write.
    if (this.failure) throw this.failure;
    // Size and written head move together, so an fdatasync round captures a consistent pair.
    this.active.size = head.size;
    this.writtenSeq = head.seq;
    this.writtenHash = head.hash;
    state.mtimeMs = Date.now();
    this.counters.records += entries.length;
    for (const entry of entries) {
      if (entry.checkpoint) this.copiesPending.push(entry);
      if (entry.ack === 'written') entry.resolve?.({ gatewayId: this.gatewayId, seq: entry.seq });
      else {
        this.awaitingDurable.push(entry);
        if (!entry.deferred && entry.resolve) this.durableAwaited = true;
      }
    }
    // Without fsync, written is as durable as it gets (the benchmark ceiling).
    if (this.options.sync === 'none') this.markDurable(head.seq, head.hash, state, this.active.size);
  }

  private async startSegment(firstSeq: bigint): Promise<void> {
    // The old segment is sealed at its last frame (the zeros written ahead of it cut off) before the
    // new one exists, so only the active segment can end in zeros.
    await this.sealActive();
    const name = segmentName(firstSeq);
    const path = join(this.dir, name);
    const file = await open(path, segmentOpenFlags(true), 0o600);
    await writeFully(file, fileHeader(SEGMENT_MAGIC, firstSeq), 0);
    this.syncDirectory();
    // The journal's view and the chain's move to the new segment together (a native data path writes
    // through the chain at any time); the old file is closed after.
    const previous = this.active.file;
    const state: SegmentState = { firstSeq, name, path, durableBytes: HEADER_BYTES, mtimeMs: Date.now(), index: [] };
    this.segments.push(state);
    this.active = { state, file, size: HEADER_BYTES };
    this.chain.setActive(file.fd, HEADER_BYTES, firstSeq, Number(INDEX_INTERVAL));
    await previous.close();
    this.durable.emit('change');
    setImmediate(() => this.retainInBackground());
  }

  /** Cuts the active segment at its last frame (the native chain writes zeros ahead of the data). */
  private async sealActive(): Promise<void> {
    const { size } = this.chain.writtenHead();
    if ((await this.active.file.stat()).size <= size) return;
    await this.active.file.truncate(size);
    if (this.options.sync !== 'none') await this.active.file.datasync();
  }

  private fail(cause: unknown, group: PendingEntry[]): void {
    if (!this.failure) {
      this.failure = new JournalWriteFailedError(this.dir, cause);
      this.log?.error({ err: cause, journal: this.dir }, 'journal write failed; no more appends until reopened');
    }
    // Records already acknowledged as written stay acknowledged; nothing else will ever be durable.
    this.chain.discard();
    for (const entry of [...group, ...this.awaitingDurable.splice(0), ...this.pending.splice(0)]) {
      if (entry.kind === 'record') entry.reject?.(this.failure);
      else if (entry.kind === 'prune-checkpoints') entry.done();
    }
    this.durable.emit('change');
  }

  private onTimer(): void {
    if (this.closing || this.failure) return;
    if (this.uncheckpointed(this.coveredSeq)) {
      this.enqueueCheckpoint();
      this.scheduleFlush();
    }
  }

  /** Resolves true once `seq` is durable, false when the wait ends otherwise (abort, close, failure). */
  private waitForDurable(seq: bigint, signal: AbortSignal | undefined): Promise<boolean> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (signal?.aborted) return done(false);
        if (this.durableSeq >= seq) return done(true);
        if (this.closed || this.failure) return done(false);
      };
      const done = (value: boolean): void => {
        this.durable.off('change', check);
        signal?.removeEventListener('abort', check);
        resolve(value);
      };
      this.durable.on('change', check);
      signal?.addEventListener('abort', check);
      check();
    });
  }

  /**
   * Wall-clock nanoseconds (the collector joins records to host events by time, so this follows the
   * system clock, not a monotonic one started at open), strictly increasing: should the wall clock
   * step back, times advance by 1 ns until it catches up. Sub-millisecond digits come from hrtime.
   */
  private nextTime(): bigint {
    const now = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    this.lastTimeNs = now > this.lastTimeNs ? now : this.lastTimeNs + 1n;
    return this.lastTimeNs;
  }

  private syncDirectory(): void {
    syncDirectory(this.dir, this.options.sync !== 'none');
  }
}

function segmentOpenFlags(create: boolean): number {
  const { O_RDWR, O_CREAT, O_EXCL } = fsConstants;
  return O_RDWR | (create ? O_CREAT | O_EXCL : 0);
}

async function writeFully(file: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await file.write(bytes, written, bytes.length - written, position + written);
    written += bytesWritten;
  }
}


/** Opens checkpoints.log for appending, creating it, or cutting an incomplete last frame left by a crash. */
async function openCheckpointFile(dir: string, fsyncEnabled: boolean): Promise<{ file: FileHandle; size: number }> {
  const path = join(dir, CHECKPOINT_FILE);
  const file = await open(path, 'a+', 0o600).then(async (f) => {
    await f.close();
    return open(path, 'r+');
  });
  try {
    const { size } = await file.stat();
    if (size < HEADER_BYTES) {
      await file.truncate(0);
      await writeFully(file, fileHeader(CHECKPOINT_FILE_MAGIC, 0n), 0);
      if (fsyncEnabled) await file.datasync();
      syncDirectory(dir, fsyncEnabled);
      return { file, size: HEADER_BYTES };
    }
    const bytes = await readFile(path);
    const header = parseHeader(CHECKPOINT_FILE_MAGIC, bytes);
    if ('problem' in header) throw new JournalCorruptError(path, 0, 0n, header.problem);
    let offset = HEADER_BYTES;
    for (;;) {
      const parsed = parseFrame(bytes, offset);
      if (!parsed) break;
      if (parsed.kind === 'incomplete') {
        await file.truncate(offset);
        if (fsyncEnabled) await file.datasync();
        break;
      }
      // A damaged copy stays for the verifier to report; new checkpoints go after it.
      if (parsed.kind === 'damaged' && parsed.end === null) {
        offset = bytes.length;
        break;
      }
      offset = parsed.end!;
    }
    return { file, size: offset };
  } catch (err) {
    await file.close();
    throw err;
  }
}

/** Journal options from the `gateway` configuration section: <dataDir>/journal/<gateway.id>/. */
export function journalOptionsFromConfig(config: Config, log?: Logger): JournalOptions {
  const journal = config.gateway.journal;
  return {
    dir: journalDirFor(config.dataDir, config.gateway.id),
    gatewayId: config.gateway.id,
    segmentBytes: journal.segmentBytes,
    retention: { maxAgeMs: journal.retention.maxAgeHours * 3_600_000, maxBytes: journal.retention.maxBytes },
    checkpoint: { everyRecords: journal.checkpoint.everyRecords, everyMs: journal.checkpoint.everySeconds * 1000 },
    sync: 'group',
    log,
  };
}

/** Opens the journal; the same as Journal.open. */
export function openJournal(options: JournalOptions): Promise<Journal> {
  return Journal.open(options);
}

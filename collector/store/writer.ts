import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '../../platform/config';
import type { Logger } from '../../platform/log';
import { WriterClosedError } from './errors';
import { deterministicId, encodeRows, TABLE_COLUMNS, TIME_COLUMN, type Row, type TableName } from './rows';
import type { InsertSink } from './sink';
import type { PendingGap, Spool, SpoolBatch, SpoolDamage } from './spool';
import { DATETIME64_TEXT, dateTime64, nowNanos } from './time';

export type WriterOptions = Config['store']['writer'];

export interface WriterStats {
  /** Rows accepted from producers. */
  accepted: number;
  /** Rows the store confirmed (first delivery or replay). */
  written: number;
  /** Rows put in the spool. */
  spooled: number;
  /** Rows replayed from the spool into the store. */
  replayed: number;
  /** Rows lost (spool full, or refused by the store as malformed); each loss is an audit_gaps row. */
  dropped: number;
  /** Rows accepted and not yet written or spooled. */
  buffered: number;
  /** True while the store is unreachable and batches go to the spool. */
  degraded: boolean;
}

interface TableBuffer {
  /** Encoded rows, one Buffer per producer call (or part of one), in arrival order. */
  chunks: Buffer[];
  /** Rows in chunks. */
  rows: number;
  minTime: string;
  maxTime: string;
  /** When the oldest buffered row arrived (ms), or 0 when empty. */
  since: number;
}

/** ClickHouse error types that say "this data can never be stored", as opposed to "not now". */
const REJECTED_DATA = /^(CANNOT_PARSE|CANNOT_READ|INCORRECT_DATA|TYPE_MISMATCH|ILLEGAL_|INCORRECT_NUMBER_OF_COLUMNS|NO_SUCH_COLUMN|UNKNOWN_ELEMENT|TOO_LARGE_STRING|DUPLICATE_COLUMN|VALUE_IS_OUT_OF_RANGE)/;

export function isRejectedData(err: unknown): boolean {
  const type = (err as { type?: unknown } | null)?.type;
  return typeof type === 'string' && REJECTED_DATA.test(type);
}

/** What became of one batch's insert: stored (rows kept), failed after every attempt, or not tried (degraded). */
type InsertOutcome = { stored: number } | { error: unknown } | null;

/** DateTime64 text is fixed-width, so it compares as the times do. */
function laterTime(a: string, b: string): boolean {
  return a > b;
}

/**
 * Batches rows per table and delivers them to the store: a batch leaves when it has `batchRows` rows or
 * its oldest row is `flushIntervalMs` old. A failed batch is retried with exponential back-off; after
 * `attempts` failures the store counts as unreachable: that batch and every later one go to the spool
 * (in order, behind what is already there), and the spool is replayed once the store answers again.
 * Rows in the spool are never overtaken by newer rows, with one exception: up to `inflightBatches`
 * inserts run at once (the engine parses a batch on its own thread, so a second insert uses the other
 * core while the first is parsed), and a batch already in flight when the one before it fails may land
 * first. Outcomes are still applied in order, so batches reach the spool in order, and nothing starts
 * while the spool is replayed. Rows carry deterministic ids, so the order of inserts never changes what
 * is stored.
 *
 * Memory is bounded: `write` returns a promise that settles at once while fewer than `maxBufferedRows`
 * rows are waiting, and only when the backlog has drained below that otherwise. Producers must await it.
 *
 * Nothing is dropped silently: a batch the spool has no room for, spool damage found at start, and each
 * row the store refuses as malformed become audit_gaps rows (kept durably in the spool directory
 * until the store has it).
 */
export class StoreWriter {
  private readonly buffers = new Map<TableName, TableBuffer>();
  private readonly waiters: Array<() => void> = [];
  private readonly statsCounters: WriterStats = {
    accepted: 0,
    written: 0,
    spooled: 0,
    replayed: 0,
    dropped: 0,
    buffered: 0,
    degraded: false,
  };
  private timer: NodeJS.Timeout | null = null;
  private recoveryTimer: NodeJS.Timeout | null = null;
  private recoveryAttempt = 0;
  /** The chain every outcome is applied on, so batches reach the spool (and are counted) in order. */
  private chain: Promise<void> = Promise.resolve();
  /** When the last `inflightBatches` batches queued were settled, oldest first: a new insert waits for the oldest. */
  private readonly settlements: Array<Promise<void>> = [];
  /** When the last recovery queued has finished: no insert starts before it, so none overtakes the replay. */
  private barrier: Promise<void> = Promise.resolve();
  private closed = false;
  /** Open spool-overflow gaps per table, extended while drops continue. */
  private readonly overflow = new Map<TableName, PendingGap>();

  constructor(
    private readonly sink: InsertSink,
    private readonly spool: Spool,
    private readonly options: WriterOptions,
    private readonly log: Logger,
    private readonly host: string = hostname(),
  ) {}

  /**
   * Starts delivery: damage the spool found on open becomes audit_gaps rows, and a spool left by an
   * earlier run (or losses not yet reported) is replayed before anything new is written.
   */
  start(damage: readonly SpoolDamage[] = []): void {
    for (const d of damage) {
      const now = nowNanos();
      this.spool.putGap({
        gap_id: deterministicId('spool-damage', this.host, d.file, d.offset, d.discardedBytes),
        host: this.host,
        source: 'spool',
        start_time: dateTime64(now),
        end_time: dateTime64(now),
        lost: 0,
        reason: `spool file ${d.file} damaged at byte ${d.offset} (${d.reason}); ${d.discardedBytes} bytes of unreplayable batches discarded, row count unknown`,
      });
      this.log.error({ file: d.file, offset: d.offset, discardedBytes: d.discardedBytes, reason: d.reason }, 'spool damage: the readable records will be replayed, the rest is recorded as an audit gap');
    }
    if (!this.spool.isEmpty || this.spool.pendingGaps().length > 0) {
      this.statsCounters.degraded = true;
      this.scheduleRecovery(0);
    }
  }

  stats(): WriterStats {
    return { ...this.statsCounters };
  }

  /** Accepts rows for a table; the promise settles when the writer has room again (back-pressure). */
  write(table: TableName, rows: Row | readonly Row[]): Promise<void> {
    if (this.closed) return Promise.reject(new WriterClosedError());
    const list = Array.isArray(rows) ? (rows as readonly Row[]) : [rows as Row];
    let buffer = this.buffers.get(table);
    if (buffer === undefined) {
      buffer = { chunks: [], rows: 0, minTime: '', maxTime: '', since: 0 };
      this.buffers.set(table, buffer);
    }
    const timeColumn = TIME_COLUMN[table];
    this.statsCounters.accepted += list.length;
    this.statsCounters.buffered += list.length;
    // Rows are encoded a producer call at a time into one off-heap Buffer, cut where a batch fills: the
    // lines die young instead of waiting on the heap (copied by every scavenge) until their batch is cut.
    for (let start = 0; start < list.length; ) {
      const segment = list.slice(start, start + this.options.batchRows - buffer.rows);
      buffer.chunks.push(encodeRows(table, segment));
      for (const row of segment) {
        const time = String(row[timeColumn] ?? '');
        if (buffer.minTime === '' || laterTime(buffer.minTime, time)) buffer.minTime = time;
        if (laterTime(time, buffer.maxTime)) buffer.maxTime = time;
      }
      buffer.rows += segment.length;
      if (buffer.since === 0) buffer.since = Date.now();
      if (buffer.rows >= this.options.batchRows) this.cut(table, buffer);
      start += segment.length;
    }
    if (buffer.rows > 0) this.armTimer();
    if (this.statsCounters.buffered < this.options.maxBufferedRows) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Delivers (or spools) everything accepted so far. */
  async flush(): Promise<void> {
    this.enqueue(true);
    await this.chain;
  }

  /** Flushes, then stops timers. Rows that could not reach the store are in the spool for the next run. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.recoveryTimer) clearTimeout(this.recoveryTimer);
    this.timer = null;
    this.recoveryTimer = null;
    await this.chain;
    for (const wake of this.waiters.splice(0)) wake();
  }

  private armTimer(): void {
    if (this.timer !== null || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.enqueue(false);
    }, this.options.flushIntervalMs);
    this.timer.unref();
  }

  /** Cuts the batches that are due (old ones, or all when `all`) and queues their delivery in order. */
  private enqueue(all: boolean): void {
    const now = Date.now();
    let waiting = false;
    for (const [table, buffer] of this.buffers) {
      if (buffer.rows > 0 && (all || now - buffer.since >= this.options.flushIntervalMs)) this.cut(table, buffer);
      if (buffer.rows > 0) waiting = true;
    }
    if (waiting) this.armTimer();
  }

  /** Makes a batch of everything a table has buffered (never more than batchRows: write cuts at that) and queues it. */
  private cut(table: TableName, buffer: TableBuffer): void {
    const batch: SpoolBatch = {
      table,
      columns: TABLE_COLUMNS[table],
      rows: buffer.rows,
      minTime: buffer.minTime,
      maxTime: buffer.maxTime,
      body: buffer.chunks.length === 1 ? buffer.chunks[0]! : Buffer.concat(buffer.chunks),
    };
    buffer.chunks = [];
    buffer.rows = 0;
    buffer.since = 0;
    buffer.minTime = '';
    buffer.maxTime = '';
    this.queueDelivery(batch);
  }

  /**
   * Starts the batch's insert once fewer than `inflightBatches` inserts are running and no recovery is
   * pending, and applies its outcome after the outcome of the batch before it.
   */
  private queueDelivery(batch: SpoolBatch): void {
    const inflight = this.options.inflightBatches;
    const oldest = this.settlements.length >= inflight ? this.settlements[this.settlements.length - inflight]! : Promise.resolve();
    const attempt = Promise.all([oldest, this.barrier]).then(() => (this.statsCounters.degraded ? null : this.attempt(batch)));
    const settled = this.chain.then(() => this.settle(batch, attempt));
    this.chain = settled;
    this.settlements.push(settled);
    if (this.settlements.length > inflight) this.settlements.shift();
  }

  /** Inserts a batch, retrying with back-off; never rejects (the outcome says what happened). */
  private async attempt(batch: SpoolBatch): Promise<InsertOutcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        return { stored: await this.insertIsolating(batch) };
      } catch (err) {
        if (attempt >= this.options.attempts) return { error: err };
        this.log.debug({ table: batch.table, attempt, err: (err as Error).message }, 'insert failed; retrying');
        await sleep(this.backoff(attempt - 1));
      }
    }
  }

  private async settle(batch: SpoolBatch, attempt: Promise<InsertOutcome>): Promise<void> {
    try {
      const outcome = await attempt;
      if (outcome !== null && 'stored' in outcome) {
        this.statsCounters.written += outcome.stored;
        return;
      }
      if (!this.statsCounters.degraded) {
        const err = outcome === null ? 'not tried' : (outcome.error as Error).message;
        this.log.warn({ table: batch.table, rows: batch.rows, attempts: this.options.attempts, err }, 'store unreachable; spooling to disk until it answers');
        this.statsCounters.degraded = true;
        this.scheduleRecovery(this.backoff(0));
      }
      this.toSpool(batch);
    } finally {
      this.release(batch.rows);
    }
  }

  /**
   * Inserts a batch; when the store refuses it as malformed, halves it until the refused rows are
   * isolated, so only they are lost (and recorded). Returns the rows stored. Any other failure
   * propagates: the store is unreachable, and the whole batch is retried or spooled (rows already stored
   * from it collapse with their replay).
   */
  private async insertIsolating(batch: SpoolBatch): Promise<number> {
    try {
      await this.sink.insert(batch.table, batch.columns, batch.body, batch.rows);
      return batch.rows;
    } catch (err) {
      if (!isRejectedData(err)) throw err;
      if (batch.rows <= 1) {
        this.rejected(batch, err);
        return 0;
      }
      const lines = batch.body.toString('utf8').split('\n').filter((line) => line.length > 0);
      const middle = Math.floor(lines.length / 2);
      let stored = 0;
      for (const half of [lines.slice(0, middle), lines.slice(middle)]) {
        stored += await this.insertIsolating({ ...batch, rows: half.length, body: Buffer.from(`${half.join('\n')}\n`) });
      }
      return stored;
    }
  }

  private release(rows: number): void {
    this.statsCounters.buffered -= rows;
    while (this.waiters.length > 0 && this.statsCounters.buffered < this.options.maxBufferedRows) this.waiters.shift()!();
  }

  private toSpool(batch: SpoolBatch): void {
    if (this.spool.append(batch)) {
      this.statsCounters.spooled += batch.rows;
      return;
    }
    this.statsCounters.dropped += batch.rows;
    const open = this.overflow.get(batch.table);
    const lost = Number(open?.lost ?? 0) + batch.rows;
    const gap: PendingGap = {
      gap_id: open?.gap_id ?? deterministicId('spool-overflow', this.host, batch.table, batch.minTime, batch.maxTime),
      host: this.host,
      source: 'spool',
      start_time: open?.start_time ?? (DATETIME64_TEXT.test(batch.minTime) ? batch.minTime : dateTime64(nowNanos())),
      end_time: DATETIME64_TEXT.test(batch.maxTime) ? batch.maxTime : dateTime64(nowNanos()),
      lost,
      reason: `spool full (${this.spool.maxBytes} bytes) while the store was unreachable: ${lost} ${batch.table} rows dropped`,
    };
    this.overflow.set(batch.table, gap);
    this.spool.putGap(gap);
    this.log.error({ table: batch.table, rows: batch.rows, spoolBytes: this.spool.bytes }, 'spool full: batch dropped and recorded in audit_gaps');
  }

  private rejected(batch: SpoolBatch, err: unknown): void {
    this.statsCounters.dropped += batch.rows;
    const gap: PendingGap = {
      gap_id: deterministicId('store-rejected', this.host, batch.table, createHash('sha256').update(batch.body).digest('hex')),
      host: this.host,
      source: 'store',
      // The batch's own times may be what made it malformed; the gap row must not be.
      start_time: DATETIME64_TEXT.test(batch.minTime) ? batch.minTime : dateTime64(nowNanos()),
      end_time: DATETIME64_TEXT.test(batch.maxTime) ? batch.maxTime : dateTime64(nowNanos()),
      lost: batch.rows,
      reason: `the store refused ${batch.rows} ${batch.table} row${batch.rows === 1 ? '' : 's'} as malformed: ${(err as Error).message.split('\n')[0]}`,
    };
    this.spool.putGap(gap);
    this.log.error({ table: batch.table, rows: batch.rows, err: (err as Error).message }, 'store refused a batch as malformed; recorded in audit_gaps');
    this.scheduleRecovery(0);
  }

  private backoff(attempt: number): number {
    return Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** attempt);
  }

  private scheduleRecovery(delayMs: number): void {
    if (this.recoveryTimer !== null || this.closed) return;
    this.recoveryTimer = setTimeout(() => {
      this.recoveryTimer = null;
      this.chain = this.chain.then(() => this.recover());
      this.barrier = this.chain;
    }, delayMs);
    this.recoveryTimer.unref();
  }

  /**
   * Reports pending losses, then replays the spool; on failure stays degraded and tries again later.
   * Runs on the delivery chain, so nothing new overtakes the replay.
   */
  private async recover(): Promise<void> {
    if (this.closed) return;
    try {
      const gaps = this.spool.pendingGaps();
      if (gaps.length > 0) {
        await this.sink.insert('audit_gaps', TABLE_COLUMNS.audit_gaps, encodeRows('audit_gaps', gaps), gaps.length);
        this.spool.removeGaps(gaps.map((g) => g.gap_id));
        this.overflow.clear();
      }
      const replayed = await this.spool.replay(async (batch) => {
        const stored = await this.insertIsolating(batch);
        this.statsCounters.replayed += stored;
        this.statsCounters.written += stored;
      }, { mergeRows: this.options.batchRows });
      this.statsCounters.degraded = false;
      this.recoveryAttempt = 0;
      if (gaps.length > 0) this.log.info({ gaps: gaps.length }, 'losses recorded in audit_gaps');
      if (replayed.rows > 0) {
        this.log.info({ rows: replayed.rows, batches: replayed.batches }, 'store reachable again; spool replayed');
      }
    } catch (err) {
      this.recoveryAttempt++;
      this.log.debug({ attempt: this.recoveryAttempt, err: (err as Error).message }, 'store still unreachable');
      this.scheduleRecovery(this.backoff(this.recoveryAttempt));
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

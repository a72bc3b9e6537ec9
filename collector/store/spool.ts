import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Row, TableName } from './rows';

/**
 * The on-disk spool: where batches go while the store is unreachable, replayed in order on recovery.
 *
 * Layout: numbered segment files `segment-<12 digits>.spool`, appended only, deleted once every record
 * in them has been delivered. Each record:
 *
 *   magic   u32 LE  0x31535747 ("GWS1")
 *   length  u32 LE  payload bytes
 *   crc32   u32 LE  of the payload
 *   payload         a JSON header line {"table","columns","rows","minTime","maxTime"}, then the batch's
 *                   JSONCompactEachRow lines
 *
 * Each append is fsync'd before it counts as spooled. On open every segment is checked; a record whose
 * header is cut short, whose magic is wrong or whose checksum fails ends the readable part of that segment
 * (a torn tail after a crash, or damage): the rest is cut off and reported as damage, so it becomes an
 * audit_gaps row instead of vanishing.
 *
 * Losses the writer must still report (dropped batches while full, damage) are kept in `gaps.json` next to
 * the segments until they are delivered, so a crash between a loss and its report does not erase it.
 */
export const SPOOL_MAGIC = 0x31535747;
const HEADER_BYTES = 12;
const SEGMENT_PATTERN = /^segment-(\d{12})\.spool$/;
const GAPS_FILE = 'gaps.json';

export interface SpoolBatch {
  table: TableName;
  /** The columns of each row in `body`, in order. */
  columns: readonly string[];
  rows: number;
  /** DateTime64 text of the earliest and latest row, for the time range of a loss. */
  minTime: string;
  maxTime: string;
  /** The rows as JSONCompactEachRow lines, exactly as they are inserted. */
  body: Buffer;
}

export interface SpoolDamage {
  file: string;
  offset: number;
  discardedBytes: number;
  reason: string;
}

/** A loss not yet written to audit_gaps, as the row that will record it. */
export type PendingGap = Row & { gap_id: string };

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  /** A segment is closed once it holds this many bytes; defaults to a sixteenth of maxBytes, at most 64 MiB. */
  segmentBytes?: number;
}

export class Spool {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly segmentBytes: number;
  /** Segment sequence numbers, ascending; the last one is appended to. */
  private segments: number[] = [];
  private sizes = new Map<number, number>();
  private totalBytes = 0;
  private gaps: PendingGap[] = [];

  private constructor(options: SpoolOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes;
    this.segmentBytes = options.segmentBytes ?? Math.max(4096, Math.min(64 * 1024 * 1024, Math.floor(options.maxBytes / 16)));
  }

  /** Opens (creating) a spool directory and checks every segment; damage found is returned. */
  static open(options: SpoolOptions): { spool: Spool; damage: SpoolDamage[] } {
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    const spool = new Spool(options);
    spool.gaps = spool.readGaps();
    const damage: SpoolDamage[] = [];
    const found = readdirSync(options.dir)
      .map((name) => SEGMENT_PATTERN.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    for (const seq of found) {
      const file = spool.segmentPath(seq);
      const data = readFileSync(file);
      const { validBytes, problem } = scanSegment(data);
      if (problem !== null) {
        damage.push({ file, offset: validBytes, discardedBytes: data.length - validBytes, reason: problem });
        truncateSync(file, validBytes);
      }
      if (validBytes === 0) {
        rmSync(file, { force: true });
        continue;
      }
      spool.segments.push(seq);
      spool.sizes.set(seq, validBytes);
      spool.totalBytes += validBytes;
    }
    return { spool, damage };
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get isEmpty(): boolean {
    return this.segments.length === 0;
  }

  /** Appends a batch durably. Returns false, writing nothing, when it would take the spool past maxBytes. */
  append(batch: SpoolBatch): boolean {
    const record = encodeRecord(batch);
    if (this.totalBytes + record.length > this.maxBytes) return false;
    let seq = this.segments[this.segments.length - 1];
    if (seq === undefined || (this.sizes.get(seq) ?? 0) + record.length > this.segmentBytes) {
      seq = (seq ?? 0) + 1;
      this.segments.push(seq);
      this.sizes.set(seq, 0);
    }
    const fd = openSync(this.segmentPath(seq), 'a', 0o600);
    try {
      writeSync(fd, record);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.sizes.set(seq, (this.sizes.get(seq) ?? 0) + record.length);
    this.totalBytes += record.length;
    return true;
  }

  /**
   * Hands every spooled batch to `deliver`, oldest first (with `mergeRows`, consecutive batches of a
   * table within a segment are merged first: see mergeBatches), deleting each segment once all its batches were
   * delivered. When `deliver` throws, replay stops there and the error propagates; the undelivered segment
   * stays and is replayed from its start next time (rows are idempotent, so a batch delivered twice is
   * stored once).
   */
  async replay(deliver: (batch: SpoolBatch) => Promise<void>, options: { mergeRows?: number } = {}): Promise<{ batches: number; rows: number }> {
    let batches = 0;
    let rows = 0;
    while (this.segments.length > 0) {
      const seq = this.segments[0]!;
      const file = this.segmentPath(seq);
      const decoded = decodeSegment(readFileSync(file));
      for (const batch of options.mergeRows ? mergeBatches(decoded, options.mergeRows) : decoded) {
        await deliver(batch);
        batches++;
        rows += batch.rows;
      }
      rmSync(file, { force: true });
      this.segments.shift();
      this.totalBytes -= this.sizes.get(seq) ?? 0;
      this.sizes.delete(seq);
    }
    return { batches, rows };
  }

  /** Losses waiting to be written to audit_gaps. */
  pendingGaps(): readonly PendingGap[] {
    return this.gaps;
  }

  /** Records or updates (same gap_id) a loss durably, before anything else happens. */
  putGap(gap: PendingGap): void {
    const index = this.gaps.findIndex((g) => g.gap_id === gap.gap_id);
    if (index >= 0) this.gaps[index] = gap;
    else this.gaps.push(gap);
    this.writeGaps();
  }

  /** Forgets gaps that are now stored in audit_gaps. */
  removeGaps(ids: readonly string[]): void {
    const done = new Set(ids);
    this.gaps = this.gaps.filter((g) => !done.has(g.gap_id));
    this.writeGaps();
  }

  private segmentPath(seq: number): string {
    return join(this.dir, `segment-${String(seq).padStart(12, '0')}.spool`);
  }

  private readGaps(): PendingGap[] {
    const file = join(this.dir, GAPS_FILE);
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as PendingGap[];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  private writeGaps(): void {
    const file = join(this.dir, GAPS_FILE);
    const temp = `${file}.tmp`;
    const fd = openSync(temp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(this.gaps));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  }
}

export function encodeRecord(batch: SpoolBatch): Buffer {
  const header = Buffer.from(`${JSON.stringify({ table: batch.table, columns: batch.columns, rows: batch.rows, minTime: batch.minTime, maxTime: batch.maxTime })}\n`);
  const payloadLength = header.length + batch.body.length;
  const record = Buffer.allocUnsafe(HEADER_BYTES + payloadLength);
  record.writeUInt32LE(SPOOL_MAGIC, 0);
  record.writeUInt32LE(payloadLength, 4);
  header.copy(record, HEADER_BYTES);
  batch.body.copy(record, HEADER_BYTES + header.length);
  record.writeUInt32LE(crc32(record.subarray(HEADER_BYTES)), 8);
  return record;
}

/** How much of a segment is whole, valid records, and what ended it early if anything did. */
export function scanSegment(data: Buffer): { validBytes: number; problem: string | null } {
  let offset = 0;
  while (offset < data.length) {
    if (data.length - offset < HEADER_BYTES) return { validBytes: offset, problem: 'record header cut short (torn write)' };
    if (data.readUInt32LE(offset) !== SPOOL_MAGIC) return { validBytes: offset, problem: 'bad record magic' };
    const length = data.readUInt32LE(offset + 4);
    const end = offset + HEADER_BYTES + length;
    if (end > data.length) return { validBytes: offset, problem: 'record payload cut short (torn write)' };
    if (crc32(data.subarray(offset + HEADER_BYTES, end)) !== data.readUInt32LE(offset + 8)) {
      return { validBytes: offset, problem: 'record checksum mismatch' };
    }
    offset = end;
  }
  return { validBytes: offset, problem: null };
}

/**
 * Merges the batches of each table (same columns) into batches of up to `maxRows` rows. A spool holds
 * the small batches cut while the store was away, often several a second; replaying them one insert
 * each makes recovery slower than the outage was, because the store's cost is per insert far more than
 * per row. Rows carry deterministic ids, so the order of tables relative to each other does not change
 * what is stored; within a table the order is kept.
 */
export function* mergeBatches(batches: Iterable<SpoolBatch>, maxRows: number): Generator<SpoolBatch> {
  const open = new Map<string, SpoolBatch[]>();
  const merged = (parts: SpoolBatch[]): SpoolBatch => {
    if (parts.length === 1) return parts[0]!;
    const times = parts.flatMap((p) => [p.minTime, p.maxTime]).filter((t) => t !== '');
    return {
      table: parts[0]!.table,
      columns: parts[0]!.columns,
      rows: parts.reduce((n, p) => n + p.rows, 0),
      minTime: times.reduce((a, b) => (b < a ? b : a), times[0] ?? ''),
      maxTime: times.reduce((a, b) => (b > a ? b : a), times[0] ?? ''),
      body: Buffer.concat(parts.map((p) => p.body)),
    };
  };
  for (const batch of batches) {
    const key = `${batch.table}\0${batch.columns.join(',')}`;
    const parts = open.get(key) ?? [];
    if (parts.length > 0 && parts.reduce((n, p) => n + p.rows, 0) + batch.rows > maxRows) {
      yield merged(parts);
      parts.length = 0;
    }
    parts.push(batch);
    open.set(key, parts);
  }
  for (const parts of open.values()) if (parts.length > 0) yield merged(parts);
}

function* decodeSegment(data: Buffer): Generator<SpoolBatch> {
  let offset = 0;
  while (offset + HEADER_BYTES <= data.length) {
    const length = data.readUInt32LE(offset + 4);
    const payload = data.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
    const newline = payload.indexOf(0x0a);
    const header = JSON.parse(payload.subarray(0, newline).toString('utf8')) as Omit<SpoolBatch, 'body'>;
    yield { ...header, body: payload.subarray(newline + 1) };
    offset += HEADER_BYTES + length;
  }
}

import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A gateway's journal directory: `<dataDir>/journal/<gatewayId>/` holding segment files named by
 * their first seq (20 zero-padded digits, the width of u64 max, so name order is seq order),
 * `checkpoints.log`, the signing key pair, and `torn-*.bin` files holding bytes cut by recovery.
 */
export const SEGMENT_NAME = /^(\d{20})\.seg$/;
export const CHECKPOINT_FILE = 'checkpoints.log';

export function journalDirFor(dataDir: string, gatewayId: string): string {
  return join(dataDir, 'journal', gatewayId);
}

export function segmentName(firstSeq: bigint): string {
  return `${firstSeq.toString().padStart(20, '0')}.seg`;
}

export interface SegmentFile {
  firstSeq: bigint;
  name: string;
  path: string;
}

export function listSegments(dir: string): SegmentFile[] {
  const segments: SegmentFile[] = [];
  for (const name of readdirSync(dir)) {
    const match = SEGMENT_NAME.exec(name);
    if (match) segments.push({ firstSeq: BigInt(match[1]!), name, path: join(dir, name) });
  }
  return segments.sort((a, b) => (a.firstSeq < b.firstSeq ? -1 : a.firstSeq > b.firstSeq ? 1 : 0));
}

/**
 * Index of the segment that holds `seq`: the last one whose first seq is <= seq (binary search).
 * -1 when seq precedes every segment.
 */
export function segmentIndexFor<T extends { firstSeq: bigint }>(segments: readonly T[], seq: bigint): number {
  return lastAtOrBefore(segments, seq, (s) => s.firstSeq);
}

/** Index of the last item (sorted by seqOf) whose seq is <= seq; -1 when none. */
export function lastAtOrBefore<T>(items: readonly T[], seq: bigint, seqOf: (item: T) => bigint): number {
  let low = 0;
  let high = items.length - 1;
  let found = -1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (seqOf(items[mid]!) <= seq) {
      found = mid;
      low = mid + 1;
    } else {
      high = mid - 1;
    }
  }
  return found;
}

/**
 * Every INDEX_INTERVAL-th record of a segment has its offset kept in memory, so a reader resuming
 * in the middle of a large segment starts near its seq instead of at the segment's first frame.
 */
export const INDEX_INTERVAL = 128n;

export interface OffsetIndexEntry {
  seq: bigint;
  offset: number;
}

/** Adds an entry when `seq` falls on the interval and extends the index (which stays sorted). */
export function noteOffset(index: OffsetIndexEntry[], firstSeq: bigint, seq: bigint, offset: number): void {
  if ((seq - firstSeq) % INDEX_INTERVAL !== 0n) return;
  const last = index[index.length - 1];
  if (!last || last.seq < seq) index.push({ seq, offset });
}

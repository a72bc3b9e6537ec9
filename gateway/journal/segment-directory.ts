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
  let low = 0;
  let high = segments.length - 1;
  let found = -1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (segments[mid]!.firstSeq <= seq) {
      found = mid;
      low = mid + 1;
    } else {
      high = mid - 1;
    }
  }
  return found;
}

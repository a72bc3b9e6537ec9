import { closeSync, fsyncSync, ftruncateSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { decodeRecord } from './canonical-encoding';
import { JournalCorruptError, JournalGatewayMismatchError } from './errors';
import { ZERO_HASH, recordHash } from './record-chain';
import { listSegments, noteOffset, segmentName, type OffsetIndexEntry } from './segment-directory';
import { HEADER_BYTES, SEGMENT_MAGIC, fileHeader, parseFrame, parseHeader, type FrameResult } from './segment-format';

/** A torn tail found and cut at open: the bytes of appends that were never acknowledged. */
export interface TornTail {
  segment: string;
  offset: number;
  bytes: number;
  /** The last intact record; the torn bytes held (parts of) the records after it. */
  afterSeq: bigint;
  /** The file in the journal directory the cut bytes were moved to, as evidence. */
  preservedAs: string;
  reason: string;
}

export interface RecoveredSegment {
  firstSeq: bigint;
  name: string;
  path: string;
  /** Bytes of valid data (header and whole frames). */
  bytes: number;
  mtimeMs: number;
  /** Offsets of every INDEX_INTERVAL-th record; filled for the active segment, which recovery scans. */
  index: OffsetIndexEntry[];
}

export interface RecoveredJournal {
  segments: RecoveredSegment[];
  lastSeq: bigint;
  lastHash: Buffer;
  lastWasCheckpoint: boolean;
  /** The seq the newest checkpoint in the active segment covers (0 when none there). */
  coveredSeq: bigint;
  tornTail: TornTail | null;
}

export interface SegmentScan {
  firstSeq: bigint;
  records: number;
  last: { seq: bigint; hash: Buffer; checkpoint: boolean; gatewayId: string } | null;
  lastCheckpointCovers: bigint | null;
  /** Offset just past the last good frame. */
  end: number;
  index: OffsetIndexEntry[];
  bad: Exclude<FrameResult, { kind: 'frame' }> | null;
}

/**
 * Scans a segment's frames, checking seq order and the hash chain inside it, and stops at the
 * first frame that is incomplete or fails its checksum. A frame that is whole and checksummed but
 * breaks the chain is corruption (or tampering), never a crash artefact, so it throws.
 */
export function scanSegmentSync(path: string, bytes: Buffer = readFileSync(path)): SegmentScan {
  const header = parseHeader(SEGMENT_MAGIC, bytes);
  if ('problem' in header) throw new JournalCorruptError(path, 0, 0n, header.problem);
  const result: SegmentScan = { firstSeq: header.firstSeq, records: 0, last: null, lastCheckpointCovers: null, end: HEADER_BYTES, bad: null, index: [] };
  let offset = HEADER_BYTES;
  let expectedSeq = header.firstSeq;
  let prevHash: Buffer | null = null;
  for (;;) {
    const parsed = parseFrame(bytes, offset);
    if (!parsed) break;
    if (parsed.kind !== 'frame') {
      result.bad = parsed;
      break;
    }
    const record = decodeRecord(parsed.payload);
    const seq = BigInt(record.seq);
    if (seq !== expectedSeq) throw new JournalCorruptError(path, offset, expectedSeq - 1n, `expected seq ${expectedSeq}, found seq ${seq}`);
    if (prevHash && !record.prevHash.equals(prevHash)) {
      throw new JournalCorruptError(path, offset, seq - 1n, `seq ${seq} does not chain to seq ${seq - 1n} (its prev_hash differs from that record's hash)`);
    }
    if (!recordHash(record).equals(record.hash)) throw new JournalCorruptError(path, offset, seq - 1n, `seq ${seq} does not match its own hash`);
    prevHash = record.hash;
    noteOffset(result.index, header.firstSeq, seq, offset);
    result.records += 1;
    result.last = { seq, hash: record.hash, checkpoint: record.body === 'checkpoint', gatewayId: record.gatewayId };
    if (record.body === 'checkpoint' && record.checkpoint) result.lastCheckpointCovers = BigInt(record.checkpoint.seq);
    expectedSeq = seq + 1n;
    offset = parsed.end;
    result.end = offset;
  }
  return result;
}

/**
 * Whether the bad frame at the end of the active segment is a torn tail (what a crash mid-append
 * leaves: a frame cut short, or whole-looking bytes the disk never completed) rather than damage
 * in the middle: it is torn unless an intact frame follows it.
 */
function isTornTail(bytes: Buffer, bad: Exclude<FrameResult, { kind: 'frame' }>): boolean {
  if (bad.kind === 'incomplete') return true;
  let offset = bad.end;
  while (offset !== null) {
    const next = parseFrame(bytes, offset);
    if (!next || next.kind === 'incomplete') return true;
    if (next.kind === 'frame') return false;
    offset = next.end;
  }
  // A damaged length field: the frames after it cannot be found by walking, so the cut bytes are
  // preserved in a file and the loss is journaled; nothing is discarded unseen.
  return true;
}

/**
 * Opens a journal directory's state for writing: finds the head, cuts a torn tail off the active
 * (last) segment into `torn-*.bin` and reports it, and creates segment 1 for a new journal. Only
 * the active segment is scanned; `verifyJournal` checks the whole chain.
 */
export function recoverJournal(dir: string, gatewayId: string, fsyncEnabled: boolean): RecoveredJournal {
  const files = listSegments(dir);
  if (files.length === 0) {
    const name = segmentName(1n);
    const path = join(dir, name);
    writeNewFile(path, fileHeader(SEGMENT_MAGIC, 1n), fsyncEnabled);
    syncDirectory(dir, fsyncEnabled);
    // A new journal directory's own entry must be durable too, or a crash could lose the whole journal.
    syncDirectory(dirname(dir), fsyncEnabled);
    syncDirectory(dirname(dirname(dir)), fsyncEnabled);
    return {
      segments: [{ firstSeq: 1n, name, path, bytes: HEADER_BYTES, mtimeMs: Date.now(), index: [] }],
      lastSeq: 0n,
      lastHash: ZERO_HASH,
      lastWasCheckpoint: false,
      coveredSeq: 0n,
      tornTail: null,
    };
  }
  const segments: RecoveredSegment[] = files.map((f) => {
    const stat = statSync(f.path);
    return { ...f, bytes: stat.size, mtimeMs: stat.mtimeMs, index: [] as OffsetIndexEntry[] };
  });
  const active = segments[segments.length - 1]!;
  let bytes: Buffer = readFileSync(active.path);
  if (bytes.length < HEADER_BYTES) {
    // A crash while the segment was being created, before anything was appended to it.
    bytes = fileHeader(SEGMENT_MAGIC, active.firstSeq);
    const fd = openSync(active.path, 'r+');
    try {
      writeSync(fd, bytes, 0, bytes.length, 0);
      if (fsyncEnabled) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  const scan = scanSegmentSync(active.path, bytes);
  if (scan.firstSeq !== active.firstSeq) {
    throw new JournalCorruptError(active.path, 8, 0n, `its header says first seq ${scan.firstSeq} but its name says ${active.firstSeq}`);
  }
  let tornTail: TornTail | null = null;
  if (scan.bad) {
    const afterSeq = scan.last?.seq ?? active.firstSeq - 1n;
    if (!isTornTail(bytes, scan.bad)) {
      throw new JournalCorruptError(active.path, scan.bad.offset, afterSeq, `${scan.bad.reason}, with intact records after it`);
    }
    // The zeros written ahead of the data are not part of what was torn.
    const cut = bytes.subarray(scan.end, dataEnd(bytes, scan.end));
    const preservedAs = `torn-${active.firstSeq}-${scan.end}-${Date.now()}.bin`;
    writeNewFile(join(dir, preservedAs), cut, fsyncEnabled);
    truncateSync(active.path, scan.end, fsyncEnabled);
    syncDirectory(dir, fsyncEnabled);
    tornTail = { segment: active.name, offset: scan.end, bytes: cut.length, afterSeq, preservedAs, reason: scan.bad.reason };
  } else if (bytes.length > scan.end) {
    // Zeros written ahead of the data by a writer that stopped without closing the journal.
    truncateSync(active.path, scan.end, fsyncEnabled);
  }
  active.bytes = scan.end;
  active.index = scan.index;
  let head = scan.last;
  if (!head) {
    if (segments.length === 1) {
      if (active.firstSeq !== 1n) {
        throw new JournalCorruptError(active.path, HEADER_BYTES, active.firstSeq - 1n, 'the only segment is empty but does not start at seq 1, so the chain head is unknown');
      }
    } else {
      const previous = segments[segments.length - 2]!;
      const previousScan = scanSegmentSync(previous.path);
      head = previousScan.last;
      if (!head || head.seq !== active.firstSeq - 1n) {
        throw new JournalCorruptError(previous.path, previousScan.end, head?.seq ?? 0n, `it should end at seq ${active.firstSeq - 1n}, where the next segment begins`);
      }
    }
  }
  if (head && head.gatewayId !== gatewayId) {
    throw new JournalGatewayMismatchError(dir, head.gatewayId, gatewayId);
  }
  return {
    segments,
    lastSeq: head?.seq ?? 0n,
    lastHash: head?.hash ?? ZERO_HASH,
    lastWasCheckpoint: head?.checkpoint ?? false,
    coveredSeq: scan.lastCheckpointCovers ?? 0n,
    tornTail,
  };
}

/** Where the bytes from `from` on stop being anything but zeros. */
function dataEnd(bytes: Buffer, from: number): number {
  let end = bytes.length;
  while (end > from && bytes[end - 1] === 0) end--;
  return end;
}

function truncateSync(path: string, size: number, fsyncEnabled: boolean): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, size);
    if (fsyncEnabled) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function syncDirectory(dir: string, fsyncEnabled: boolean): void {
  if (!fsyncEnabled) return;
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeNewFile(path: string, bytes: Buffer, fsyncEnabled: boolean): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, bytes);
    if (fsyncEnabled) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

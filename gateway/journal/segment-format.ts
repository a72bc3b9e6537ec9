import { crc32 } from 'node:zlib';
import type { FileHandle } from 'node:fs/promises';

/**
 * On-disk layout of journal files.
 *
 * Segment file `<first seq, 20 digits>.seg`:
 *   header  = "GWJSEG01" (8 bytes) || u64be first seq (8 bytes)
 *   frames  = frame*
 * Checkpoint file `checkpoints.log` (a copy of every checkpoint record, so a truncated segment tail
 * still leaves evidence of what was signed):
 *   header  = "GWJCKP01" (8 bytes) || 8 zero bytes
 *   frames  = frame*
 * frame     = u32le payload length || u32le CRC-32 (zlib polynomial) over (length bytes || payload) || payload
 * payload   = the canonical encoding of one JournalRecord (canonical-encoding.ts)
 *
 * The CRC covers the length so a damaged length field is caught rather than followed.
 *
 * The active segment may end in zero bytes after its last frame: the native journal chain writes zeros
 * ahead of the data (native/addon/journal-chain.cc), so appends overwrite blocks inside the file's size
 * and an fdatasync has no size or allocation to commit. A run of zeros to the end of the file is
 * not a frame but the end of the data (parseFrame() returns null there); the journal cuts it off when
 * it seals or closes a segment and when it recovers one.
 */
export const SEGMENT_MAGIC = Buffer.from('GWJSEG01', 'latin1');
export const CHECKPOINT_FILE_MAGIC = Buffer.from('GWJCKP01', 'latin1');
export const HEADER_BYTES = 16;
export const FRAME_HEADER_BYTES = 8;
/** Larger records are refused at append; a length field above this is damage, not data. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

export function fileHeader(magic: Buffer, firstSeq: bigint): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  magic.copy(header, 0);
  header.writeBigUInt64BE(firstSeq, 8);
  return header;
}

/** The first seq a header names, or a reason it is not a valid header of that kind. */
export function parseHeader(magic: Buffer, bytes: Buffer): { firstSeq: bigint } | { problem: string } {
  if (bytes.length < HEADER_BYTES) return { problem: `header is ${bytes.length} bytes, expected ${HEADER_BYTES}` };
  if (!bytes.subarray(0, 8).equals(magic)) return { problem: `header does not start with ${magic.toString('latin1')}` };
  return { firstSeq: bytes.readBigUInt64BE(8) };
}

export function frame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  payload.copy(out, FRAME_HEADER_BYTES);
  out.writeUInt32LE(frameChecksum(out), 4);
  return out;
}

/** The CRC-32 of a frame whose length and payload are in place (the checksum field is skipped). */
export function frameChecksum(framed: Buffer): number {
  return crc32(framed.subarray(FRAME_HEADER_BYTES), crc32(framed.subarray(0, 4)));
}

export type FrameResult =
  | { kind: 'frame'; offset: number; end: number; payload: Buffer }
  /** Bytes end before the frame does: what a write cut short by a crash leaves. */
  | { kind: 'incomplete'; offset: number; reason: string }
  /** A whole frame is there but its length or checksum is wrong. */
  | { kind: 'damaged'; offset: number; end: number | null; reason: string };

/**
 * Parses the frame at `offset` of `bytes` (which hold the file from `base`); null at the end: past
 * the last byte, or where nothing but zeros is left (the unused end of an active segment).
 */
export function parseFrame(bytes: Buffer, offset: number, base = 0): FrameResult | null {
  const at = offset - base;
  if (at >= bytes.length) return null;
  if (bytes[at] === 0 && onlyZeros(bytes, at)) return null;
  if (bytes.length - at < FRAME_HEADER_BYTES) {
    return { kind: 'incomplete', offset, reason: `${bytes.length - at} bytes of an 8-byte frame header` };
  }
  const length = bytes.readUInt32LE(at);
  const checksum = bytes.readUInt32LE(at + 4);
  if (length === 0 || length > MAX_RECORD_BYTES) {
    return { kind: 'damaged', offset, end: null, reason: `frame length ${length} is outside 1..${MAX_RECORD_BYTES}` };
  }
  const end = at + FRAME_HEADER_BYTES + length;
  if (end > bytes.length) {
    return { kind: 'incomplete', offset, reason: `frame of ${length} bytes has only ${bytes.length - at - FRAME_HEADER_BYTES}` };
  }
  const payload = bytes.subarray(at + FRAME_HEADER_BYTES, end);
  if (crc32(payload, crc32(bytes.subarray(at, at + 4))) !== checksum) {
    return { kind: 'damaged', offset, end: end + base, reason: 'frame checksum mismatch' };
  }
  return { kind: 'frame', offset, end: end + base, payload };
}

/** Whether every byte of `bytes` from `at` on is zero. */
export function onlyZeros(bytes: Buffer, at: number): boolean {
  const step = ZEROS.length;
  for (let from = at; from < bytes.length; from += step) {
    const to = Math.min(bytes.length, from + step);
    if (bytes.compare(ZEROS, 0, to - from, from, to) !== 0) return false;
  }
  return true;
}

const ZEROS = Buffer.alloc(64 * 1024);

/**
 * Reads frames from an open file sequentially in large chunks, so a reader neither loads whole
 * segments nor issues one read per record.
 */
export class FrameCursor {
  private buffer = Buffer.alloc(0);
  private base: number;
  private readonly chunkBytes: number;

  constructor(
    private readonly file: FileHandle,
    public position: number,
    chunkBytes = 1 << 20,
  ) {
    this.base = position;
    this.chunkBytes = chunkBytes;
  }

  /** The next frame before `limit` (a file offset), or null when none is complete below it. */
  async next(limit: number): Promise<FrameResult | null> {
    if (this.position >= limit) return null;
    for (;;) {
      const parsed = parseFrame(this.buffer, this.position, this.base);
      if (parsed && parsed.kind === 'frame' && parsed.end <= limit) {
        this.position = parsed.end;
        return parsed;
      }
      if (parsed && parsed.kind === 'damaged') return parsed;
      // Incomplete in the buffer (or nothing buffered): read more, unless the limit says it is not there yet.
      const buffered = this.base + this.buffer.length;
      if (buffered >= limit) return parsed && parsed.kind === 'frame' ? null : (parsed ?? null);
      if ((await this.fill(limit)) === 0) {
        return parsed && parsed.kind !== 'frame' ? parsed : { kind: 'incomplete', offset: this.position, reason: `the file ends at ${buffered}, before ${limit}` };
      }
    }
  }

  private async fill(limit: number): Promise<number> {
    const keepFrom = this.position - this.base;
    const kept = this.buffer.subarray(keepFrom);
    const wanted = Math.max(this.chunkBytes, this.pendingFrameBytes(kept));
    const readBytes = Math.min(wanted, limit - (this.position + kept.length));
    const next = Buffer.allocUnsafe(kept.length + readBytes);
    kept.copy(next, 0);
    const { bytesRead } = await this.file.read(next, kept.length, readBytes, this.position + kept.length);
    this.buffer = next.subarray(0, kept.length + bytesRead);
    this.base = this.position;
    return bytesRead;
  }

  private pendingFrameBytes(kept: Buffer): number {
    if (kept.length < FRAME_HEADER_BYTES) return FRAME_HEADER_BYTES;
    return Math.min(MAX_RECORD_BYTES, kept.readUInt32LE(0)) + FRAME_HEADER_BYTES - kept.length;
  }
}

import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import type { JournalRecord, JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import { encodeRecord, encodeRecordSuffix, encodeRecordSuffixView } from './canonical-encoding';
import { FRAME_HEADER_BYTES, frameChecksum } from './segment-format';

const ARENA_BYTES = 256 * 1024;

/** prev_hash of seq 1. */
export const ZERO_HASH: Buffer = Buffer.alloc(32);

/** hash = SHA-256(prev_hash || canonical encoding of the record with hash cleared). */
export function recordHash(record: JournalRecord | JournalRecord__Output): Buffer {
  const prevHash = record.prevHash ?? ZERO_HASH;
  const unhashed = encodeRecord({ ...record, hash: undefined } as JournalRecord);
  return createHash('sha256').update(prevHash as Uint8Array).update(unhashed).digest();
}

/**
 * Fields 1-3 (gateway_id, seq, prev_hash) precede hash (4) and fields 5+ (time, body) follow it in
 * the canonical encoding, so a record is encoded once as a prefix and a suffix: the hashed bytes
 * are prefix || suffix and the stored bytes are prefix || hash field || suffix, identical to
 * encodeRecord() of the whole record. The prefix is written here directly (its three fields are
 * always present: seq >= 1, prev_hash 32 bytes), without the general encoder.
 */
export class RecordChainer {
  /** Field 1 as encoded: tag, length, UTF-8 gateway id (nothing when the id is empty, a proto3 default). */
  private readonly gatewayIdField: Buffer;
  private scratch = Buffer.allocUnsafe(1024);
  /**
   * Frames are carved one after another out of a large buffer: no allocation per frame, and the
   * frames of one group usually sit back to back, so the journal writes them without concatenating.
   * An arena is dropped (and collected once its frames are written) when the next frame does not fit.
   */
  private arena = Buffer.alloc(0); // the first frame allocates it
  private arenaUsed = 0;

  constructor(gatewayId: string) {
    const id = Buffer.from(gatewayId, 'utf8');
    this.gatewayIdField = id.length === 0 ? Buffer.alloc(0) : Buffer.concat([fieldHead(0x0a, id.length), id]);
  }

  /**
   * The record's hash and its frame (segment-format.ts: length, CRC-32, payload) in one buffer:
   * hash = SHA-256(prev_hash || prefix || suffix).
   */
  chain(seq: bigint, prevHash: Buffer, suffix: Buffer): { hash: Buffer; framed: Buffer } {
    const idField = this.gatewayIdField;
    // What is hashed, contiguous for one-shot hashing: prev_hash || prefix || suffix (room for the
    // longest seq varint, 10 bytes; the prefix's length is where its writing ends).
    const hashedBound = prevHash.length + idField.length + 1 + 10 + 2 + prevHash.length + suffix.length;
    if (this.scratch.length < hashedBound) this.scratch = Buffer.allocUnsafe(Math.max(hashedBound, this.scratch.length * 2));
    // TypedArray set() rather than Buffer copy(): the same bytes without copy()'s argument handling.
    const hashed = this.scratch;
    hashed.set(prevHash, 0);
    let at = prevHash.length;
    const prefixAt = at;
    hashed.set(idField, at);
    at += idField.length;
    hashed[at++] = 0x10; // seq: field 2, varint
    at = writeVarint(hashed, at, seq);
    hashed[at++] = 0x1a; // prev_hash: field 3, length-delimited
    hashed[at++] = prevHash.length;
    hashed.set(prevHash, at);
    at += prevHash.length;
    const prefixLength = at - prefixAt;
    hashed.set(suffix, at);
    at += suffix.length;
    const hash = sha256(hashed.subarray(0, at));

    const payloadLength = prefixLength + 2 + hash.length + suffix.length;
    const framed = this.frameSpace(FRAME_HEADER_BYTES + payloadLength);
    framed.writeUInt32LE(payloadLength, 0);
    framed.set(hashed.subarray(prefixAt, prefixAt + prefixLength), FRAME_HEADER_BYTES);
    let out = FRAME_HEADER_BYTES + prefixLength;
    framed[out++] = 0x22; // hash: field 4, length-delimited
    framed[out++] = hash.length;
    framed.set(hash, out);
    framed.set(suffix, out + hash.length);
    framed.writeUInt32LE(frameChecksum(framed), 4);
    return { hash, framed };
  }

  private frameSpace(bytes: number): Buffer {
    if (bytes > ARENA_BYTES / 4) return Buffer.allocUnsafe(bytes);
    if (this.arenaUsed + bytes > this.arena.length) {
      this.arena = Buffer.allocUnsafeSlow(ARENA_BYTES);
      this.arenaUsed = 0;
    }
    const start = this.arenaUsed;
    this.arenaUsed += bytes;
    return this.arena.subarray(start, this.arenaUsed);
  }
}

/** Builds one chained record (encoded, without its frame); RecordChainer does the same for a journal. */
export function chainRecord(gatewayId: string, seq: bigint, prevHash: Buffer, suffix: Buffer): { hash: Buffer; encoded: Buffer } {
  const { hash, framed } = new RecordChainer(gatewayId).chain(seq, prevHash, suffix);
  return { hash, encoded: framed.subarray(FRAME_HEADER_BYTES) };
}

const oneShotHash = (crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer }).hash;

function sha256(bytes: Buffer): Buffer {
  // crypto.hash (Node >= 20.12) skips the Hash object; same digest.
  return oneShotHash ? oneShotHash('sha256', bytes, 'buffer') : createHash('sha256').update(bytes).digest();
}

function fieldHead(tag: number, length: number): Buffer {
  return Buffer.concat([Buffer.from([tag]), varintBytes(BigInt(length))]);
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Writes `value` as a varint at `at`; returns the position after it. Number arithmetic below 2^53. */
function writeVarint(bytes: Buffer, at: number, value: bigint): number {
  if (value > MAX_SAFE) {
    const encoded = varintBytes(value);
    bytes.set(encoded, at);
    return at + encoded.length;
  }
  let rest = Number(value);
  while (rest >= 0x80) {
    bytes[at++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  bytes[at++] = rest;
  return at;
}

function varintBytes(value: bigint): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80n) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return Buffer.from(bytes);
}

/** recordSuffix without the copy: valid only until the next record is encoded (RecordChainer.chain copies it). */
export function recordSuffixView(timeUnixNano: bigint, body: Omit<JournalRecord, 'gatewayId' | 'seq' | 'prevHash' | 'hash' | 'timeUnixNano'>): Buffer {
  return encodeRecordSuffixView(timeUnixNano, body);
}

/** The part of a record after its hash: time and body. */
export function recordSuffix(timeUnixNano: bigint, body: Omit<JournalRecord, 'gatewayId' | 'seq' | 'prevHash' | 'hash' | 'timeUnixNano'>): Buffer {
  return encodeRecordSuffix(timeUnixNano, body);
}

/**
 * The seq of a stored record without decoding it: in the canonical encoding field 1 (gateway_id,
 * tag 0x0a) may come first, then field 2 (seq, tag 0x10, varint). Null when the bytes do not start so.
 */
export function peekSeq(payload: Buffer): bigint | null {
  let at = 0;
  if (payload[at] === 0x0a) {
    const [length, next] = readVarint(payload, at + 1);
    if (length === null) return null;
    at = next + Number(length);
  }
  if (payload[at] !== 0x10) return null;
  return readVarint(payload, at + 1)[0];
}

function readVarint(bytes: Buffer, start: number): [bigint | null, number] {
  let value = 0n;
  let shift = 0n;
  for (let at = start; at < bytes.length && at < start + 10; at++) {
    const byte = bytes[at]!;
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [value, at + 1];
    shift += 7n;
  }
  return [null, bytes.length];
}

import { createHash } from 'node:crypto';
import type { JournalRecord, JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import { encodeRecord } from './canonical-encoding';

/** prev_hash of seq 1. */
export const ZERO_HASH: Buffer = Buffer.alloc(32);

/** hash = SHA-256(prev_hash || canonical encoding of the record with hash cleared). */
export function recordHash(record: JournalRecord | JournalRecord__Output): Buffer {
  const prevHash = record.prevHash ?? ZERO_HASH;
  const unhashed = encodeRecord({ ...record, hash: undefined } as JournalRecord);
  return createHash('sha256').update(prevHash as Uint8Array).update(unhashed).digest();
}

/**
 * Builds a chained record cheaply. Fields 1-3 (gateway_id, seq, prev_hash) precede hash (4) and
 * fields 5+ (time, body) follow it in the canonical encoding, so the record is encoded once as a
 * prefix and a suffix: the hashed bytes are prefix || suffix and the stored bytes are
 * prefix || hash field || suffix, identical to encodeRecord() of the whole record.
 */
export function chainRecord(gatewayId: string, seq: bigint, prevHash: Buffer, suffix: Buffer): { hash: Buffer; encoded: Buffer } {
  const prefix = encodeRecord({ gatewayId, seq: seq.toString(), prevHash });
  const hash = createHash('sha256').update(prevHash).update(prefix).update(suffix).digest();
  const hashField = encodeRecord({ hash });
  return { hash, encoded: Buffer.concat([prefix, hashField, suffix]) };
}

/** The part of a record after its hash: time and body. */
export function recordSuffix(timeUnixNano: bigint, body: Omit<JournalRecord, 'gatewayId' | 'seq' | 'prevHash' | 'hash' | 'timeUnixNano'>): Buffer {
  return encodeRecord({ ...body, timeUnixNano: timeUnixNano.toString() });
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

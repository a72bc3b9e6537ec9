import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import { LOAD_OPTIONS, PROTO_FILES, protoRoot } from '../../proto/options';
import type { JournalRecord, JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import { JournalRecordInvalidError } from './errors';

/**
 * The canonical protobuf encoding the hash chain is computed over. Generic protobuf encoders may
 * legally vary (field order, explicitly set default values, map entry order, unknown fields kept),
 * so two equal records could hash differently; this encoder has exactly one output per logical
 * record:
 *
 * - fields are written in ascending field-number order, each at most once;
 * - proto3 implicit-presence fields holding their default (0, false, "", empty bytes, enum 0, empty
 *   repeated, empty map) are omitted; message fields and oneof members are written when present
 *   (null/undefined means absent), an empty message as a zero-length field;
 * - repeated numeric scalars are packed (the proto3 default), other repeated fields one entry each;
 * - map entries are sorted by key (string keys by their UTF-8 bytes, integer keys numerically,
 *   false before true), and each entry writes both key (1) and value (2), defaults included;
 * - varints are minimal; negative int32/int64/enum values are 10-byte two's complement varints,
 *   sint32/sint64 are zigzag; float/double are IEEE 754 little-endian (NaN as the one quiet NaN
 *   that Buffer writes);
 * - strings are UTF-8; unknown fields are never written: an object key that is not a field (nor the
 *   name of a oneof, which proto-loader's output adds) is refused, as is a oneof with two members set.
 *
 * Records are stored on disk in this same encoding, so `verifyJournal` also checks that each
 * stored record is canonical, which catches bytes added that a decoder would silently skip.
 */

enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  Fixed32 = 5,
}

const VARINT_TYPES = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'bool']);
const FIXED64_TYPES = new Set(['fixed64', 'sfixed64', 'double']);
const FIXED32_TYPES = new Set(['fixed32', 'sfixed32', 'float']);

let cachedRoot: protobuf.Root | undefined;

/** The gapwatch.v1 schema as protobufjs reflection, loaded from the .proto files once. */
export function gapwatchSchema(): protobuf.Root {
  if (!cachedRoot) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin: string, target: string) => join(protoRoot(), target);
    root.loadSync([...PROTO_FILES], { keepCase: LOAD_OPTIONS.keepCase });
    root.resolveAll();
    cachedRoot = root;
  }
  return cachedRoot;
}

let cachedRecordType: protobuf.Type | undefined;

export function journalRecordType(): protobuf.Type {
  cachedRecordType ??= gapwatchSchema().lookupType('gapwatch.v1.JournalRecord');
  return cachedRecordType;
}

/** Canonical encoding of a JournalRecord (input or output form; longs as number, string, bigint or Long). */
export function encodeRecord(record: JournalRecord | JournalRecord__Output): Buffer {
  const out = new ByteSink();
  encodeMessage(journalRecordType(), record as unknown as Record<string, unknown>, out, 'JournalRecord');
  return out.finish();
}

/**
 * Decodes a stored record into the same shape gRPC subscribers receive (proto-loader's output with
 * the project's LOAD_OPTIONS: longs and enums as strings, defaults filled, oneof names set).
 */
export function decodeRecord(bytes: Uint8Array): JournalRecord__Output {
  const type = journalRecordType();
  const message = type.decode(bytes);
  return type.toObject(message, { ...LOAD_OPTIONS, bytes: Buffer }) as unknown as JournalRecord__Output;
}

function encodeMessage(type: protobuf.Type, value: Record<string, unknown>, out: ByteSink, path: string): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) {
    throw new JournalRecordInvalidError(path, `expected a ${type.name} message object`);
  }
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(type.fields, key) && !(type.oneofs && Object.hasOwn(type.oneofs, key))) {
      throw new JournalRecordInvalidError(`${path}.${key}`, `is not a field of ${type.fullName.slice(1)}`);
    }
  }
  if (type.oneofsArray.length > 0) {
    for (const oneof of type.oneofsArray) {
      const set = oneof.fieldsArray.filter((f) => value[f.name] !== undefined && value[f.name] !== null);
      if (set.length > 1) {
        throw new JournalRecordInvalidError(`${path}.${oneof.name}`, `has ${set.map((f) => f.name).join(' and ')} set; a oneof holds one`);
      }
    }
  }
  for (const field of fieldsById(type)) {
    const fieldValue = value[field.name];
    if (fieldValue === undefined || fieldValue === null) continue;
    const fieldPath = `${path}.${field.name}`;
    if (field instanceof protobuf.MapField) {
      encodeMap(field, fieldValue, out, fieldPath);
    } else if (field.repeated) {
      encodeRepeated(field, fieldValue, out, fieldPath);
    } else {
      const explicitPresence = field.partOf !== null || field.resolvedType instanceof protobuf.Type;
      if (!explicitPresence && isDefault(field, fieldValue, fieldPath)) continue;
      encodeField(field, field.id, fieldValue, out, fieldPath);
    }
  }
}

const sortedFields = new WeakMap<protobuf.Type, protobuf.Field[]>();

function fieldsById(type: protobuf.Type): protobuf.Field[] {
  let fields = sortedFields.get(type);
  if (!fields) {
    fields = [...type.fieldsArray].sort((a, b) => a.id - b.id);
    sortedFields.set(type, fields);
  }
  return fields;
}

function isDefault(field: protobuf.Field, value: unknown, path: string): boolean {
  if (field.resolvedType instanceof protobuf.Enum) return enumNumber(field.resolvedType, value, path) === 0;
  switch (field.type) {
    case 'string':
      return value === '';
    case 'bytes':
      return toBytes(value, path).length === 0;
    case 'bool':
      return value === false;
    case 'double':
    case 'float':
      return typeof value === 'number' && value === 0 && !Object.is(value, -0);
    default:
      return toBigInt(value, path) === 0n;
  }
}

function encodeField(field: protobuf.Field, id: number, value: unknown, out: ByteSink, path: string): void {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    const nested = new ByteSink();
    encodeMessage(resolved, value as Record<string, unknown>, nested, path);
    out.tag(id, WireType.LengthDelimited);
    out.lengthDelimited(nested.finish());
    return;
  }
  if (resolved instanceof protobuf.Enum) {
    out.tag(id, WireType.Varint);
    out.varint(BigInt.asUintN(64, BigInt(enumNumber(resolved, value, path))));
    return;
  }
  const wire = scalarWireType(field.type);
  out.tag(id, wire);
  if (wire === WireType.LengthDelimited) out.lengthDelimited(field.type === 'string' ? toUtf8(value, path) : toBytes(value, path));
  else writeScalar(field.type, value, out, path);
}

function scalarWireType(type: string): WireType {
  if (VARINT_TYPES.has(type)) return WireType.Varint;
  if (FIXED64_TYPES.has(type)) return WireType.Fixed64;
  if (FIXED32_TYPES.has(type)) return WireType.Fixed32;
  return WireType.LengthDelimited;
}

/** Writes the value of a varint, fixed32 or fixed64 scalar (no tag). */
function writeScalar(type: string, value: unknown, out: ByteSink, path: string): void {
  switch (type) {
    case 'bool':
      if (typeof value !== 'boolean') throw new JournalRecordInvalidError(path, 'expected a boolean');
      out.varint(value ? 1n : 0n);
      return;
    case 'int32':
      out.varint(BigInt.asUintN(64, BigInt.asIntN(32, checkRange(toBigInt(value, path), -(2n ** 31n), 2n ** 31n - 1n, path))));
      return;
    case 'int64':
      out.varint(BigInt.asUintN(64, checkRange(toBigInt(value, path), -(2n ** 63n), 2n ** 63n - 1n, path)));
      return;
    case 'uint32':
      out.varint(checkRange(toBigInt(value, path), 0n, 2n ** 32n - 1n, path));
      return;
    case 'uint64':
      out.varint(checkRange(toBigInt(value, path), 0n, 2n ** 64n - 1n, path));
      return;
    case 'sint32':
    case 'sint64': {
      const bits = type === 'sint32' ? 32n : 64n;
      const n = checkRange(toBigInt(value, path), -(2n ** (bits - 1n)), 2n ** (bits - 1n) - 1n, path);
      out.varint(n >= 0n ? n << 1n : ((-n) << 1n) - 1n);
      return;
    }
    case 'fixed32':
      out.fixed32(Number(checkRange(toBigInt(value, path), 0n, 2n ** 32n - 1n, path)));
      return;
    case 'sfixed32':
      out.fixed32(Number(BigInt.asUintN(32, checkRange(toBigInt(value, path), -(2n ** 31n), 2n ** 31n - 1n, path))));
      return;
    case 'fixed64':
      out.fixed64(checkRange(toBigInt(value, path), 0n, 2n ** 64n - 1n, path));
      return;
    case 'sfixed64':
      out.fixed64(BigInt.asUintN(64, checkRange(toBigInt(value, path), -(2n ** 63n), 2n ** 63n - 1n, path)));
      return;
    case 'double':
      out.double(toNumber(value, path));
      return;
    case 'float':
      out.float(toNumber(value, path));
      return;
    default:
      throw new JournalRecordInvalidError(path, `has unsupported type ${type}`);
  }
}

function encodeRepeated(field: protobuf.Field, value: unknown, out: ByteSink, path: string): void {
  if (!Array.isArray(value)) throw new JournalRecordInvalidError(path, 'expected an array');
  if (value.length === 0) return;
  const packable = field.resolvedType instanceof protobuf.Enum || (field.resolvedType === null && scalarWireType(field.type) !== WireType.LengthDelimited);
  if (packable) {
    const packed = new ByteSink();
    value.forEach((item, i) => {
      if (field.resolvedType instanceof protobuf.Enum) packed.varint(BigInt.asUintN(64, BigInt(enumNumber(field.resolvedType, item, `${path}[${i}]`))));
      else writeScalar(field.type, item, packed, `${path}[${i}]`);
    });
    out.tag(field.id, WireType.LengthDelimited);
    out.lengthDelimited(packed.finish());
    return;
  }
  value.forEach((item, i) => {
    if (item === null || item === undefined) throw new JournalRecordInvalidError(`${path}[${i}]`, 'is empty; repeated fields hold values');
    encodeField(field, field.id, item, out, `${path}[${i}]`);
  });
}

function encodeMap(field: protobuf.MapField, value: unknown, out: ByteSink, path: string): void {
  const entries: Array<[string, unknown]> =
    value instanceof Map ? [...(value as Map<unknown, unknown>).entries()].map(([k, v]) => [String(k), v]) : Object.entries(value as object);
  if (entries.length === 0) return;
  const keyType = field.keyType;
  const keyed = entries.map(([key, entryValue]) => ({ key, entryValue, order: mapKeyOrder(keyType, key, `${path}[${key}]`) }));
  keyed.sort((a, b) => compareKeys(a.order, b.order));
  // The value side is encoded as if it were field 2 of a synthetic entry message.
  const valueField = new protobuf.Field('value', 2, field.type);
  valueField.resolvedType = field.resolvedType;
  const keyField = new protobuf.Field('key', 1, keyType);
  for (const { key, entryValue, order } of keyed) {
    if (entryValue === null || entryValue === undefined) throw new JournalRecordInvalidError(`${path}[${key}]`, 'has no value');
    const entry = new ByteSink();
    entry.tag(1, scalarWireType(keyType));
    if (keyType === 'string') entry.lengthDelimited(order as Buffer);
    else if (keyType === 'bool') entry.varint(key === 'true' ? 1n : 0n);
    else writeScalar(keyField.type, order as bigint, entry, `${path}[${key}]`);
    encodeField(valueField, 2, entryValue, entry, `${path}[${key}]`);
    out.tag(field.id, WireType.LengthDelimited);
    out.lengthDelimited(entry.finish());
  }
}

function mapKeyOrder(keyType: string, key: string, path: string): Buffer | bigint {
  if (keyType === 'string') return toUtf8(key, path);
  if (keyType === 'bool') {
    if (key !== 'true' && key !== 'false') throw new JournalRecordInvalidError(path, 'expected a boolean map key');
    return key === 'true' ? 1n : 0n;
  }
  return toBigInt(key, path);
}

function compareKeys(a: Buffer | bigint, b: Buffer | bigint): number {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(a as Buffer, b as Buffer);
}

function enumNumber(type: protobuf.Enum, value: unknown, path: string): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && value in type.values) return type.values[value]!;
  throw new JournalRecordInvalidError(path, `expected one of ${Object.keys(type.values).join(', ')}, got ${JSON.stringify(value)}`);
}

function toBigInt(value: unknown, path: string): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new JournalRecordInvalidError(path, `expected an integer (use a string or bigint beyond 2^53), got ${value}`);
    return BigInt(value);
  }
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  if (value !== null && typeof value === 'object' && 'low' in value && 'high' in value) {
    const long = value as { low: number; high: number; unsigned?: boolean };
    const bits = (BigInt(long.high >>> 0) << 32n) | BigInt(long.low >>> 0);
    return long.unsigned ? bits : BigInt.asIntN(64, bits);
  }
  throw new JournalRecordInvalidError(path, `expected an integer, got ${JSON.stringify(value)}`);
}

function checkRange(n: bigint, min: bigint, max: bigint, path: string): bigint {
  if (n < min || n > max) throw new JournalRecordInvalidError(path, `${n} is out of range [${min}, ${max}]`);
  return n;
}

function toNumber(value: unknown, path: string): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value);
  throw new JournalRecordInvalidError(path, `expected a number, got ${JSON.stringify(value)}`);
}

function toUtf8(value: unknown, path: string): Buffer {
  if (typeof value !== 'string') throw new JournalRecordInvalidError(path, `expected a string, got ${typeof value}`);
  return Buffer.from(value, 'utf8');
}

function toBytes(value: unknown, path: string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  // proto-loader accepts base64 text for bytes fields in its input form.
  if (typeof value === 'string') return Buffer.from(value, 'base64');
  throw new JournalRecordInvalidError(path, 'expected bytes (Buffer or Uint8Array)');
}

/** An append-only byte buffer with the protobuf primitives. */
class ByteSink {
  private chunks: Buffer[] = [];
  private scratch = Buffer.allocUnsafe(256);
  private used = 0;

  tag(id: number, wire: WireType): void {
    this.varint(BigInt(id) * 8n + BigInt(wire));
  }

  varint(n: bigint): void {
    this.ensure(10);
    if (n < 0x80n) {
      this.scratch[this.used++] = Number(n);
      return;
    }
    let rest = n;
    while (rest >= 0x80n) {
      this.scratch[this.used++] = Number(rest & 0x7fn) | 0x80;
      rest >>= 7n;
    }
    this.scratch[this.used++] = Number(rest);
  }

  fixed32(n: number): void {
    this.ensure(4);
    this.scratch.writeUInt32LE(n >>> 0, this.used);
    this.used += 4;
  }

  fixed64(n: bigint): void {
    this.ensure(8);
    this.scratch.writeBigUInt64LE(n, this.used);
    this.used += 8;
  }

  double(n: number): void {
    this.ensure(8);
    this.scratch.writeDoubleLE(n, this.used);
    this.used += 8;
  }

  float(n: number): void {
    this.ensure(4);
    this.scratch.writeFloatLE(n, this.used);
    this.used += 4;
  }

  lengthDelimited(bytes: Buffer): void {
    this.varint(BigInt(bytes.length));
    this.bytes(bytes);
  }

  bytes(bytes: Buffer): void {
    if (bytes.length <= this.scratch.length - this.used) {
      bytes.copy(this.scratch, this.used);
      this.used += bytes.length;
      return;
    }
    this.spill();
    this.chunks.push(bytes);
  }

  finish(): Buffer {
    this.spill();
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
  }

  private ensure(n: number): void {
    if (this.scratch.length - this.used < n) this.spill();
  }

  private spill(): void {
    if (this.used > 0) {
      this.chunks.push(Buffer.from(this.scratch.subarray(0, this.used)));
      this.scratch = Buffer.allocUnsafe(256);
      this.used = 0;
    }
  }
}

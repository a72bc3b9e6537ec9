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
const TWO_63 = 2n ** 63n;
const TWO_64 = 2n ** 64n;
const TWO_31 = 2n ** 31n;
const TWO_32 = 2n ** 32n;
/** [min, max] of each integer type, for range checks. */
const INTEGER_RANGES: Record<string, [bigint, bigint]> = {
  int32: [-TWO_31, TWO_31 - 1n],
  sint32: [-TWO_31, TWO_31 - 1n],
  sfixed32: [-TWO_31, TWO_31 - 1n],
  uint32: [0n, TWO_32 - 1n],
  fixed32: [0n, TWO_32 - 1n],
  int64: [-TWO_63, TWO_63 - 1n],
  sint64: [-TWO_63, TWO_63 - 1n],
  sfixed64: [-TWO_63, TWO_63 - 1n],
  uint64: [0n, TWO_64 - 1n],
  fixed64: [0n, TWO_64 - 1n],
};

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
  // Encoding is synchronous and never re-entered, so one growable buffer serves every call.
  sink.reset();
  encodeMessage(journalRecordType(), record as unknown as Record<string, unknown>, sink, 'JournalRecord');
  return sink.copyOut();
}

/** encodeRecord through the generic encoder only: the reference the compiled encoders are tested against. */
export function encodeRecordGeneric(record: JournalRecord | JournalRecord__Output): Buffer {
  sink.reset();
  genericOnly = true;
  try {
    encodeMessage(journalRecordType(), record as unknown as Record<string, unknown>, sink, 'JournalRecord');
  } finally {
    genericOnly = false;
  }
  return sink.copyOut();
}

/**
 * The canonical encoding of the fields of a record from time_unix_nano (5) on: the time, then the
 * body, whose fields (10-13) all come after it. `body` must hold body fields only.
 */
export function encodeRecordSuffix(timeUnixNano: bigint, body: JournalRecord): Buffer {
  return Buffer.from(encodeRecordSuffixView(timeUnixNano, body));
}

/** encodeRecordSuffix without the copy: the bytes stay valid only until the next encoding of any record. */
export function encodeRecordSuffixView(timeUnixNano: bigint, body: JournalRecord): Buffer {
  sink.reset();
  if (timeUnixNano !== 0n) {
    sink.smallVarint(0x28); // time_unix_nano: field 5, varint
    sink.varint(BigInt.asUintN(64, timeUnixNano));
  }
  encodeMessage(journalRecordType(), body as unknown as Record<string, unknown>, sink, 'JournalRecord');
  return sink.view();
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

type FieldKind = 'message' | 'enum' | 'string' | 'bytes' | 'bool' | 'integer' | 'float' | 'double' | 'map' | 'repeated';

/** What the encoder needs to know about one field, worked out once per message type. */
interface FieldPlan {
  field: protobuf.Field;
  name: string;
  id: number;
  kind: FieldKind;
  /** The tag byte(s) value: field number << 3 | wire type. */
  tag: number;
  /** Oneof members and message fields are written whenever present, even when empty. */
  explicitPresence: boolean;
  messageType: protobuf.Type | null;
  enumType: protobuf.Enum | null;
}

interface MessagePlan {
  fields: FieldPlan[];
  /** Fields by name, with the index of the oneof each belongs to (-1 for none). */
  byName: Map<string, { field: FieldPlan; oneof: number }>;
  /** The names proto-loader gives oneofs, which objects may carry besides fields. */
  oneofNames: Set<string>;
  oneofs: Array<{ name: string; members: string[] }>;
}

const plans = new WeakMap<protobuf.Type, MessagePlan>();

function planFor(type: protobuf.Type): MessagePlan {
  let plan = plans.get(type);
  if (plan) return plan;
  const fields = [...type.fieldsArray].sort((a, b) => a.id - b.id).map((field) => fieldPlan(field, field.id));
  const oneofs = type.oneofsArray.map((o) => ({ name: o.name, members: o.fieldsArray.map((f) => f.name) }));
  const byName = new Map(fields.map((field) => [field.name, { field, oneof: oneofs.findIndex((o) => o.members.includes(field.name)) }]));
  plan = { fields, byName, oneofNames: new Set(oneofs.map((o) => o.name)), oneofs };
  plans.set(type, plan);
  return plan;
}

function fieldPlan(field: protobuf.Field, id: number, asSingle = false): FieldPlan {
  const resolved = field.resolvedType;
  const messageType = resolved instanceof protobuf.Type ? resolved : null;
  const enumType = resolved instanceof protobuf.Enum ? resolved : null;
  let kind: FieldKind;
  if (!asSingle && field instanceof protobuf.MapField) kind = 'map';
  else if (!asSingle && field.repeated) kind = 'repeated';
  else if (messageType) kind = 'message';
  else if (enumType) kind = 'enum';
  else if (field.type === 'string' || field.type === 'bytes' || field.type === 'bool' || field.type === 'float' || field.type === 'double') kind = field.type;
  else if (field.type in INTEGER_RANGES) kind = 'integer';
  else throw new Error(`canonical encoding: field ${field.fullName} has unsupported type ${field.type}`);
  const wire = messageType || kind === 'map' || kind === 'repeated' ? WireType.LengthDelimited : enumType ? WireType.Varint : scalarWireType(field.type);
  return { field, name: field.name, id, kind, tag: id * 8 + wire, explicitPresence: field.partOf !== null || messageType !== null, messageType, enumType };
}

/** Set while encodeRecordGeneric runs (encoding is synchronous): every message through the generic encoder. */
let genericOnly = false;

function encodeMessage(type: protobuf.Type, value: Record<string, unknown>, out: ByteSink, path: string): void {
  if (genericOnly) encodeMessageGeneric(type, value, out, path);
  else compiledEncoder(type)(value, out, path);
}

/**
 * The reference encoder: walks the object's keys against the type's plan, checking each. The compiled
 * encoders hand every message they cannot take at speed to it, before writing any of its bytes, so it
 * decides every error (and its message) and every unusual form.
 */
function encodeMessageGeneric(type: protobuf.Type, value: Record<string, unknown>, out: ByteSink, path: string): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) {
    throw new JournalRecordInvalidError(path, `expected a ${type.name} message object`);
  }
  const plan = planFor(type);
  // Driven by the keys the object has rather than by every field of the type: records set few of
  // their fields (a SessionEvent one of its thirteen details), and absent properties are the slow lookups.
  const present: FieldPlan[] = [];
  let sorted = true;
  let lastId = 0;
  let oneofsSeen = 0;
  for (const key of Object.keys(value)) {
    const entry = plan.byName.get(key);
    if (entry === undefined) {
      if (!plan.oneofNames.has(key)) throw new JournalRecordInvalidError(`${path}.${key}`, `is not a field of ${type.fullName.slice(1)}`);
      continue;
    }
    const fieldValue = value[key];
    if (fieldValue === undefined || fieldValue === null) continue;
    if (entry.oneof >= 0) {
      const bit = 2 ** entry.oneof;
      if (Math.floor(oneofsSeen / bit) % 2 === 1) {
        const oneof = plan.oneofs[entry.oneof]!;
        const names = oneof.members.filter((name) => value[name] !== undefined && value[name] !== null);
        throw new JournalRecordInvalidError(`${path}.${oneof.name}`, `has ${names.join(' and ')} set; a oneof holds one`);
      }
      oneofsSeen += bit;
    }
    if (entry.field.id < lastId) sorted = false;
    lastId = entry.field.id;
    present.push(entry.field);
  }
  if (!sorted) present.sort((a, b) => a.id - b.id);
  for (const field of present) {
    const fieldValue = value[field.name];
    if (field.kind === 'map') encodeMap(field, fieldValue, out, path);
    else if (field.kind === 'repeated') encodeRepeated(field, fieldValue, out, path);
    else encodeSingle(field, fieldValue, out, path, !field.explicitPresence);
  }
}

type CompiledEncoder = (value: Record<string, unknown>, out: ByteSink, path: string) => void;

const compiled = new WeakMap<protobuf.Type, CompiledEncoder>();

function compiledEncoder(type: protobuf.Type): CompiledEncoder {
  let encoder = compiled.get(type);
  if (!encoder) {
    encoder = compileEncoder(type);
    compiled.set(type, encoder);
  }
  return encoder;
}

/** Own enumerable keys, counted without building the array Object.keys would. */
function keyCount(value: object): number {
  let count = 0;
  for (const _ in value) count += 1;
  return count;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A straight-line encoder for one message type, generated from its plan (as protobufjs generates its
 * own encoders), with the same output as encodeMessageGeneric. The generic encoder reads every
 * record's fields through one property-access site, which V8 sees with every record shape and so
 * looks up the slow way; here each field of each type has its own site, and no per-key plan lookups
 * are made. A message is first read and checked: when it holds a key that is not one of the type's
 * fields (or a field set to null or undefined), two members of one oneof, or is not an object, the
 * whole message goes to the generic encoder, which writes it or throws the error it always threw.
 * Within a message, values of a form the fast paths do not take (a 64-bit decimal string, bytes, a
 * float, a map, a packed repeated field, an enum given by number) are written by the generic code
 * for that one field, so rare forms cost nothing extra and stay exactly as before.
 */
function compileEncoder(type: protobuf.Type): CompiledEncoder {
  const plan = planFor(type);
  const names = [...plan.fields.map((f) => f.name), ...plan.oneofNames];
  // Names become property accesses in generated code: only plain identifiers, and none that every
  // object inherits (a field named like an Object.prototype member could hide an unknown key).
  if (names.some((name) => !IDENTIFIER.test(name) || name in Object.prototype)) {
    return (value, out, path) => encodeMessageGeneric(type, value, out, path);
  }
  const fields = plan.fields;
  const read: string[] = [];
  const write: string[] = [];
  fields.forEach((field, i) => {
    const v = `v${i}`;
    const key = JSON.stringify(field.name);
    const childPath = `path + ${JSON.stringify(`.${field.name}`)}`;
    read.push(`const ${v} = value[${key}];`, `if (${v} !== undefined && ${v} !== null) known += 1;`);
    const skip = !field.explicitPresence;
    const single = `h.encodeSingle(h.fields[${i}], ${v}, out, path, ${skip});`;
    let body: string;
    switch (field.kind) {
      case 'message':
        body = `out.smallVarint(${field.tag}); const at = out.beginLength(); h.encode(h.types[${i}], ${v}, out, ${childPath}); out.endLength(at);`;
        break;
      case 'string':
        body = `if (typeof ${v} !== 'string') ${single} else if (${skip ? `${v} !== ''` : 'true'}) { out.smallVarint(${field.tag}); out.string(${v}); }`;
        break;
      case 'bool':
        body = `if (${v} === true) { out.smallVarint(${field.tag}); out.smallVarint(1); } else if (${v} !== false) ${single} else if (${!skip}) { out.smallVarint(${field.tag}); out.smallVarint(0); }`;
        break;
      case 'enum':
        body =
          `const n = typeof ${v} === 'string' ? h.enums[${i}].get(${v}) : undefined; ` +
          `if (n === undefined) ${single} else if (${skip ? 'n !== 0' : 'true'}) { out.smallVarint(${field.tag}); out.smallVarint(n); }`;
        break;
      case 'integer':
        body = isPlainVarint(field.field.type)
          ? `if (typeof ${v} === 'number' && ${v} >= 0 && ${v} <= 0x7fffffff && Number.isInteger(${v})) { if (${skip ? `${v} !== 0` : 'true'}) { out.smallVarint(${field.tag}); out.smallVarint(${v}); } } else ${single}`
          : single;
        break;
      case 'repeated': {
        const element = singlePlan(field);
        if (element.kind === 'string' || element.kind === 'message') {
          const item = element.kind === 'string'
            ? `if (typeof item === 'string') { out.smallVarint(${field.tag}); out.string(item); } else h.repeatedItem(h.fields[${i}], item, j, out, path);`
            : `if (item === undefined || item === null) h.repeatedItem(h.fields[${i}], item, j, out, path); ` +
              `out.smallVarint(${field.tag}); const at = out.beginLength(); h.encode(h.types[${i}], item, out, ${childPath}); out.endLength(at);`;
          body = `if (!Array.isArray(${v})) h.encodeRepeated(h.fields[${i}], ${v}, out, path); else for (let j = 0; j < ${v}.length; j++) { const item = ${v}[j]; ${item} }`;
        } else {
          body = `h.encodeRepeated(h.fields[${i}], ${v}, out, path);`;
        }
        break;
      }
      case 'map':
        body = `h.encodeMap(h.fields[${i}], ${v}, out, path);`;
        break;
      default:
        body = single;
    }
    write.push(`if (${v} !== undefined && ${v} !== null) { ${body} }`);
  });
  const oneofChecks = plan.oneofs.map((oneof) => {
    const members = oneof.members.map((name) => fields.findIndex((f) => f.name === name)).map((i) => `(v${i} !== undefined && v${i} !== null ? 1 : 0)`);
    return `|| ${members.join(' + ')} > 1`;
  });
  const oneofNames = [...plan.oneofNames].map((name) => `if (value[${JSON.stringify(name)}] !== undefined) known += 1;`);
  const source = [
    'return function encode(value, out, path) {',
    "  if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) return h.generic(h.type, value, out, path);",
    '  let known = 0;',
    ...read.map((line) => `  ${line}`),
    ...oneofNames.map((line) => `  ${line}`),
    `  if (known !== h.keyCount(value) ${oneofChecks.join(' ')}) return h.generic(h.type, value, out, path);`,
    ...write.map((line) => `  ${line}`),
    '};',
  ].join('\n');
  const helpers = {
    type,
    fields,
    types: fields.map((f) => f.messageType),
    enums: fields.map((f) => (f.enumType ? new Map(Object.entries(f.enumType.values).filter(([, n]) => n >= 0 && n <= 0x7fffffff)) : null)),
    encode: encodeMessage,
    generic: encodeMessageGeneric,
    encodeSingle,
    encodeRepeated,
    encodeMap,
    repeatedItem,
    keyCount,
  };
  // The source is built from the schema's own field names and numbers, never from record content.
  return new Function('h', source)(helpers) as CompiledEncoder;
}

/** One element of a repeated string or message field that the fast path does not take: as encodeRepeated treats it. */
function repeatedItem(field: FieldPlan, item: unknown, index: number, out: ByteSink, path: string): void {
  if (item === null || item === undefined) throw new JournalRecordInvalidError(`${path}.${field.name}[${index}]`, 'is empty; repeated fields hold values');
  encodeSingle(singlePlan(field), item, out, path, false);
}

/**
 * Writes one value of a singular field with its tag; with `skipDefault`, writes nothing when the
 * value is the proto3 default. Paths for errors are only built when there is an error.
 */
function encodeSingle(field: FieldPlan, value: unknown, out: ByteSink, path: string, skipDefault: boolean): void {
  const where = (): string => `${path}.${field.name}`;
  switch (field.kind) {
    case 'message': {
      out.smallVarint(field.tag);
      const at = out.beginLength();
      encodeMessage(field.messageType!, value as Record<string, unknown>, out, where());
      out.endLength(at);
      return;
    }
    case 'enum': {
      const n = enumNumber(field.enumType!, value, where);
      if (skipDefault && n === 0) return;
      out.smallVarint(field.tag);
      if (n >= 0 && n <= 0x7fffffff) out.smallVarint(n);
      else out.varint(BigInt.asUintN(64, BigInt(n)));
      return;
    }
    case 'string': {
      if (typeof value !== 'string') throw new JournalRecordInvalidError(where(), `expected a string, got ${typeof value}`);
      if (skipDefault && value === '') return;
      out.smallVarint(field.tag);
      out.string(value);
      return;
    }
    case 'bytes': {
      const bytes = toBytes(value, where);
      if (skipDefault && bytes.length === 0) return;
      out.smallVarint(field.tag);
      out.smallVarint(bytes.length);
      out.bytes(bytes);
      return;
    }
    case 'bool':
      if (typeof value !== 'boolean') throw new JournalRecordInvalidError(where(), 'expected a boolean');
      if (skipDefault && !value) return;
      out.smallVarint(field.tag);
      out.smallVarint(value ? 1 : 0);
      return;
    case 'double':
    case 'float': {
      const n = toNumber(value, where);
      if (skipDefault && n === 0 && !Object.is(n, -0)) return;
      out.smallVarint(field.tag);
      if (field.kind === 'double') out.double(n);
      else out.float(n);
      return;
    }
    case 'integer': {
      // The common case, a small non-negative number, needs no BigInt.
      if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= 0x7fffffff && isPlainVarint(field.field.type)) {
        if (skipDefault && value === 0) return;
        out.smallVarint(field.tag);
        out.smallVarint(value);
        return;
      }
      // Decimal strings (how proto-loader carries 64-bit values) short enough to be exact as numbers.
      if (typeof value === 'string' && value.length <= 15 && DIGITS.test(value) && isPlainVarint(field.field.type)) {
        const n = Number(value);
        if (field.field.type.endsWith('32') && n > 0xffffffff) throw new JournalRecordInvalidError(where(), `${value} is out of range`);
        if (field.field.type === 'int32' && n > 0x7fffffff) throw new JournalRecordInvalidError(where(), `${value} is out of range`);
        if (skipDefault && n === 0) return;
        out.smallVarint(field.tag);
        out.safeVarint(n);
        return;
      }
      const n = toBigInt(value, where);
      if (skipDefault && n === 0n) return;
      out.smallVarint(field.tag);
      writeInteger(field.field.type, n, out, where);
      return;
    }
    default:
      throw new JournalRecordInvalidError(where(), `cannot be written as a single value (${field.kind})`);
  }
}

const DIGITS = /^\d+$/;

/** Integer types whose non-negative values are written as a plain varint. */
function isPlainVarint(type: string): boolean {
  return type === 'int32' || type === 'int64' || type === 'uint32' || type === 'uint64';
}

function scalarWireType(type: string): WireType {
  if (VARINT_TYPES.has(type)) return WireType.Varint;
  if (FIXED64_TYPES.has(type)) return WireType.Fixed64;
  if (FIXED32_TYPES.has(type)) return WireType.Fixed32;
  return WireType.LengthDelimited;
}

/** Writes an integer of the given protobuf type (no tag), after checking its range. */
function writeInteger(type: string, value: bigint, out: ByteSink, where: () => string): void {
  const [min, max] = INTEGER_RANGES[type]!;
  if (value < min || value > max) throw new JournalRecordInvalidError(where(), `${value} is out of range [${min}, ${max}]`);
  switch (type) {
    case 'int32':
    case 'int64':
    case 'uint32':
    case 'uint64':
      // Negative int32 is sign-extended to 64 bits, as protobuf requires.
      out.varint(BigInt.asUintN(64, value));
      return;
    case 'sint32':
    case 'sint64':
      out.varint(value >= 0n ? value << 1n : (-value << 1n) - 1n);
      return;
    case 'fixed32':
    case 'sfixed32':
      out.fixed32(Number(BigInt.asUintN(32, value)));
      return;
    default:
      out.fixed64(BigInt.asUintN(64, value));
  }
}

function encodeRepeated(field: FieldPlan, value: unknown, out: ByteSink, path: string): void {
  if (!Array.isArray(value)) throw new JournalRecordInvalidError(`${path}.${field.name}`, 'expected an array');
  if (value.length === 0) return;
  const single = singlePlan(field);
  const packable = single.kind === 'enum' || single.kind === 'bool' || single.kind === 'integer' || single.kind === 'float' || single.kind === 'double';
  if (packable) {
    // Packed: one length-delimited field holding the values without tags.
    out.smallVarint(field.tag);
    const at = out.beginLength();
    const scratch = new ByteSink();
    value.forEach((item, i) => {
      scratch.reset();
      encodeSingle(single, item, scratch, `${path}[${i}]`, false);
      const bytes = scratch.view();
      out.bytes(bytes.subarray(tagLength(single.tag)));
    });
    out.endLength(at);
    return;
  }
  value.forEach((item, i) => {
    if (item === null || item === undefined) throw new JournalRecordInvalidError(`${path}.${field.name}[${i}]`, 'is empty; repeated fields hold values');
    encodeSingle(single, item, out, path, false);
  });
}

const singlePlans = new WeakMap<FieldPlan, FieldPlan>();

/** The plan for one element of a repeated field (or one map value), with the same tag. */
function singlePlan(field: FieldPlan): FieldPlan {
  let plan = singlePlans.get(field);
  if (!plan) {
    plan = { ...fieldPlan(field.field, field.id, true), explicitPresence: true };
    singlePlans.set(field, plan);
  }
  return plan;
}

function tagLength(tag: number): number {
  let length = 1;
  for (let rest = tag; rest >= 0x80; rest >>>= 7) length += 1;
  return length;
}

const mapEntryPlans = new WeakMap<FieldPlan, { key: FieldPlan; value: FieldPlan }>();

function encodeMap(field: FieldPlan, value: unknown, out: ByteSink, path: string): void {
  const mapField = field.field as unknown as protobuf.MapField;
  const entries: Array<[string, unknown]> =
    value instanceof Map ? [...(value as Map<unknown, unknown>).entries()].map(([k, v]) => [String(k), v]) : Object.entries(value as object);
  if (entries.length === 0) return;
  let plans = mapEntryPlans.get(field);
  if (!plans) {
    // A map entry is a message { key = 1; value = 2; }.
    const keyField = new protobuf.Field('key', 1, mapField.keyType);
    const valueField = new protobuf.Field('value', 2, mapField.type);
    valueField.resolvedType = mapField.resolvedType;
    plans = { key: { ...fieldPlan(keyField, 1, true), explicitPresence: true }, value: { ...fieldPlan(valueField, 2, true), explicitPresence: true } };
    mapEntryPlans.set(field, plans);
  }
  const keyType = mapField.keyType;
  const keyed = entries.map(([key, entryValue]) => ({ key, entryValue, order: mapKeyOrder(keyType, key, () => `${path}.${field.name}[${key}]`) }));
  keyed.sort((a, b) => compareKeys(a.order, b.order));
  for (const { key, entryValue } of keyed) {
    const where = `${path}.${field.name}[${key}]`;
    if (entryValue === null || entryValue === undefined) throw new JournalRecordInvalidError(where, 'has no value');
    out.smallVarint(field.tag);
    const at = out.beginLength();
    const keyValue = keyType === 'string' ? key : keyType === 'bool' ? key === 'true' : key;
    encodeSingle(plans.key, keyValue, out, where, false);
    encodeSingle(plans.value, entryValue, out, where, false);
    out.endLength(at);
  }
}

function mapKeyOrder(keyType: string, key: string, where: () => string): Buffer | bigint {
  if (keyType === 'string') return Buffer.from(key, 'utf8');
  if (keyType === 'bool') {
    if (key !== 'true' && key !== 'false') throw new JournalRecordInvalidError(where(), 'expected a boolean map key');
    return key === 'true' ? 1n : 0n;
  }
  return toBigInt(key, where);
}

function compareKeys(a: Buffer | bigint, b: Buffer | bigint): number {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(a as Buffer, b as Buffer);
}

function enumNumber(type: protobuf.Enum, value: unknown, where: () => string): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string' && Object.hasOwn(type.values, value)) return type.values[value]!;
  throw new JournalRecordInvalidError(where(), `expected one of ${Object.keys(type.values).join(', ')}, got ${JSON.stringify(value)}`);
}

function toBigInt(value: unknown, where: () => string): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new JournalRecordInvalidError(where(), `expected an integer (use a string or bigint beyond 2^53), got ${value}`);
    return BigInt(value);
  }
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  if (value !== null && typeof value === 'object' && 'low' in value && 'high' in value) {
    const long = value as { low: number; high: number; unsigned?: boolean };
    const bits = (BigInt(long.high >>> 0) << 32n) | BigInt(long.low >>> 0);
    return long.unsigned ? bits : BigInt.asIntN(64, bits);
  }
  throw new JournalRecordInvalidError(where(), `expected an integer, got ${JSON.stringify(value)}`);
}

function toNumber(value: unknown, where: () => string): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value);
  throw new JournalRecordInvalidError(where(), `expected a number, got ${JSON.stringify(value)}`);
}

function toBytes(value: unknown, where: () => string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  // proto-loader accepts base64 text for bytes fields in its input form.
  if (typeof value === 'string') return Buffer.from(value, 'base64');
  throw new JournalRecordInvalidError(where(), 'expected bytes (Buffer or Uint8Array)');
}

/**
 * One growable buffer with the protobuf primitives. A length-delimited field reserves one byte for
 * its length and moves its content when the length turns out to need more (content of 128 bytes or
 * more), so nested messages are written in place instead of into buffers of their own.
 */
class ByteSink {
  private buffer = Buffer.allocUnsafe(4096);
  private used = 0;

  reset(): void {
    this.used = 0;
    if (this.buffer.length > 1 << 20) this.buffer = Buffer.allocUnsafe(4096); // do not pin a huge record's buffer
  }

  /** A copy of what was written, owned by the caller. */
  copyOut(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.used));
  }

  /** What was written, valid until the next write. */
  view(): Buffer {
    return this.buffer.subarray(0, this.used);
  }

  smallVarint(n: number): void {
    this.ensure(5);
    let rest = n;
    while (rest >= 0x80) {
      this.buffer[this.used++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    this.buffer[this.used++] = rest;
  }

  /** A varint of a non-negative safe integer (up to 2^53), without BigInt. */
  safeVarint(n: number): void {
    this.ensure(8);
    let rest = n;
    while (rest >= 0x80) {
      this.buffer[this.used++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.buffer[this.used++] = rest;
  }

  /** A varint of an unsigned 64-bit value. */
  varint(n: bigint): void {
    if (n <= 0x7fffffffn) {
      this.smallVarint(Number(n));
      return;
    }
    // Two 32-bit halves as numbers: cheaper than shifting a BigInt seven bits at a time.
    this.ensure(10);
    let low = Number(n & 0xffffffffn);
    let high = Number(n >> 32n);
    while (high > 0 || low >= 0x80) {
      this.buffer[this.used++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | ((high & 0x7f) << 25)) >>> 0;
      high >>>= 7;
    }
    this.buffer[this.used++] = low;
  }

  fixed32(n: number): void {
    this.ensure(4);
    this.buffer.writeUInt32LE(n >>> 0, this.used);
    this.used += 4;
  }

  fixed64(n: bigint): void {
    this.ensure(8);
    this.buffer.writeBigUInt64LE(n, this.used);
    this.used += 8;
  }

  double(n: number): void {
    this.ensure(8);
    this.buffer.writeDoubleLE(n, this.used);
    this.used += 8;
  }

  float(n: number): void {
    this.ensure(4);
    this.buffer.writeFloatLE(n, this.used);
    this.used += 4;
  }

  /** A length-prefixed UTF-8 string. */
  string(value: string): void {
    const length = value.length;
    this.ensure(5 + length * 3);
    const at = this.beginLength();
    // Short ASCII strings (ids, tags, most statement texts' pieces) are copied here: a call into
    // Buffer's UTF-8 writer costs more than the copy. Anything else goes to the writer.
    if (length <= 64) {
      const buffer = this.buffer;
      const start = this.used;
      let i = 0;
      for (; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) break;
        buffer[start + i] = code;
      }
      if (i === length) {
        this.used = start + length;
        this.endLength(at);
        return;
      }
    }
    this.used += this.buffer.write(value, this.used, 'utf8');
    this.endLength(at);
  }

  bytes(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buffer.set(bytes, this.used);
    this.used += bytes.length;
  }

  /** Reserves the length byte of a length-delimited field; returns its position for endLength. */
  beginLength(): number {
    this.ensure(1);
    return this.used++;
  }

  endLength(at: number): void {
    const length = this.used - at - 1;
    if (length < 0x80) {
      this.buffer[at] = length;
      return;
    }
    const size = tagLength(length);
    this.ensure(size - 1);
    this.buffer.copyWithin(at + size, at + 1, this.used);
    this.used += size - 1;
    let rest = length;
    let pos = at;
    while (rest >= 0x80) {
      this.buffer[pos++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    this.buffer[pos] = rest;
  }

  private ensure(n: number): void {
    if (this.buffer.length - this.used >= n) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.used + n));
    this.buffer.copy(grown, 0, 0, this.used);
    this.buffer = grown;
  }
}

const sink = new ByteSink();

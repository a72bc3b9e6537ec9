import assert from 'node:assert/strict';
import * as protobuf from 'protobufjs';
import { decodeRecord, encodeRecord, encodeRecordGeneric, journalRecordType } from '../../../gateway/journal/canonical-encoding';
import { RecordChainer, chainRecord, recordHash, recordSuffix } from '../../../gateway/journal/record-chain';
import { frame } from '../../../gateway/journal/segment-format';
import type { JournalRecord } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { seededRandom as random } from '../../support/seeded-random';

function sessionRecord(claims: Record<string, string>): JournalRecord {
  return {
    gatewayId: 'gw-test',
    seq: '7',
    prevHash: Buffer.alloc(32, 9),
    timeUnixNano: '1764000000000000000',
    session: { sessionId: 's-1', identity: { subject: 'agent:claude', method: 'token', claims }, resource: 'orders', outcome: 'SESSION_OUTCOME_OPEN', client: { ip: '10.0.0.7', port: 51234 } },
  };
}

/**
 * A record of random shape drawn from the schema itself: every message type the journal can hold,
 * values in every form the encoder accepts (numbers, decimal strings and bigints for integers, enum
 * names and numbers, defaults, empty and non-ASCII strings), and now and then a form it refuses
 * (an unknown key, a value of the wrong type, two oneof members, a null inside a repeated field).
 */
function randomRecord(next: () => number): Record<string, unknown> {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const chance = (p: number): boolean => next() < p;
  const strings = ['', 'a', 'SELECT 1', 'gw-local-1', 'é€😀', 'x'.repeat(70), `${'y'.repeat(40)}é`, 'tab\there', '"quoted"'];
  const scalar = (type: string): unknown => {
    switch (type) {
      case 'string':
        return pick(strings);
      case 'bool':
        return pick([true, false]);
      case 'bytes':
        return pick([Buffer.alloc(0), Buffer.alloc(32, 7), Buffer.from('abc')]);
      case 'double':
      case 'float':
        return pick([0, 1.5, -2.25, 1e10]);
      default: {
        const signed = type.startsWith('int') || type.startsWith('sint') || type.startsWith('sfixed');
        const wide = type.endsWith('64');
        const values: unknown[] = [0, 1, 127, 128, 300, 2 ** 31 - 1, '0', '42', '123456789012'];
        if (wide) values.push('18446744073709551615', 2n ** 40n, 9007199254740991);
        if (signed) values.push(-1, '-5', -(2 ** 31));
        if (wide && signed) values.push('-9223372036854775808');
        if (wide && !signed) values.push('18446744073709551615');
        return pick(values);
      }
    }
  };
  const value = (field: protobuf.Field, depth: number): unknown => {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Type) return message(resolved, depth + 1);
    if (resolved instanceof protobuf.Enum) return pick([...Object.keys(resolved.values), ...Object.values(resolved.values)]);
    return scalar(field.type);
  };
  const message = (type: protobuf.Type, depth: number): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const field of type.fieldsArray) {
      if (field.partOf || !chance(depth > 3 ? 0.2 : 0.6)) continue;
      if (field instanceof protobuf.MapField) {
        const map: Record<string, unknown> = {};
        for (let i = Math.floor(next() * 3); i > 0; i--) map[pick(strings)] = field.resolvedType ? message(field.resolvedType as protobuf.Type, depth + 1) : scalar(field.type);
        out[field.name] = map;
      } else if (field.repeated) {
        out[field.name] = Array.from({ length: Math.floor(next() * 4) }, () => value(field, depth));
      } else {
        out[field.name] = value(field, depth);
      }
    }
    for (const oneof of type.oneofsArray) {
      if (!chance(0.8)) continue;
      const member = pick(oneof.fieldsArray);
      out[member.name] = value(member, depth);
      if (chance(0.3)) out[oneof.name] = member.name; // proto-loader's output names the member set
    }
    if (chance(0.03)) out.bogus = 1;
    if (chance(0.03) && type.fieldsArray.length > 0) out[pick(type.fieldsArray).name] = pick([null, undefined]);
    if (chance(0.02) && type.fieldsArray.length > 0) out[pick(type.fieldsArray).name] = { wrong: true };
    if (chance(0.02) && type.oneofsArray.length > 0 && type.oneofsArray[0]!.fieldsArray.length > 1) {
      for (const member of type.oneofsArray[0]!.fieldsArray.slice(0, 2)) out[member.name] = value(member, depth);
    }
    if (chance(0.02)) {
      const repeated = type.fieldsArray.find((f) => f.repeated && !(f instanceof protobuf.MapField));
      if (repeated) out[repeated.name] = [value(repeated, depth), null];
    }
    return out;
  };
  return message(journalRecordType(), 0);
}

function outcome(encode: () => Buffer): { bytes: string } | { error: string } {
  try {
    return { bytes: encode().toString('hex') };
  } catch (err) {
    return { error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

describe('gateway/journal canonical encoding', () => {
  it('compiled encoders give the generic encoder\'s bytes, or its error, for records of every shape', () => {
    const next = random(20261126);
    let encoded = 0;
    let refused = 0;
    for (let i = 0; i < 4000; i++) {
      const record = randomRecord(next);
      const compiled = outcome(() => encodeRecord(record as JournalRecord));
      const generic = outcome(() => encodeRecordGeneric(record as JournalRecord));
      assert.deepEqual(compiled, generic, `case ${i}: ${JSON.stringify(record, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`);
      if ('bytes' in compiled) encoded += 1;
      else refused += 1;
    }
    // Both kinds were exercised, not just one.
    assert.ok(encoded > 1000 && refused > 100, `${encoded} encoded, ${refused} refused`);
  });

  it('hashes two records with the same map in different insertion order identically', () => {
    const a = sessionRecord({ run: 'r-1', repository: 'acme/api', reviewer: 'ana', 'é': 'x', Z: 'y' });
    const b = sessionRecord({ Z: 'y', reviewer: 'ana', 'é': 'x', repository: 'acme/api', run: 'r-1' });
    assert.deepEqual(encodeRecord(a), encodeRecord(b));
    assert.deepEqual(recordHash(a), recordHash(b));
    const c = sessionRecord({ run: 'r-2', repository: 'acme/api', reviewer: 'ana', 'é': 'x', Z: 'y' });
    assert.notDeepEqual(recordHash(a), recordHash(c));
  });

  it('gives the same bytes for a value set to its default and a value left out, and for every long form', () => {
    const base = sessionRecord({});
    const explicit: JournalRecord = { ...base, hash: Buffer.alloc(0), session: { ...base.session, endUnixNano: 0, targetUser: '', upstream: null } };
    assert.deepEqual(encodeRecord(explicit), encodeRecord(base));
    for (const seq of [7, '7', 7n, { low: 7, high: 0, unsigned: true }]) {
      assert.deepEqual(encodeRecord({ ...base, seq: seq as never }), encodeRecord(base));
    }
  });

  it('chains records (hand-written prefix, one-shot hash, frame) to the bytes and hash of the general encoder', () => {
    const event = { event: { sessionId: 's-1', eventSeq: 3, timeUnixNano: '1764000000000000123', statement: { text: 'SELECT 1', durationNano: '120000', rows: 1, via: 'query', classes: ['read'] } } };
    for (const gatewayId of ['', 'gw-test', 'g'.repeat(200)]) {
      for (const seq of [1n, 127n, 128n, 300n, 2n ** 40n + 5n]) {
        for (const time of [0n, 1764000000000000000n, 2n ** 63n - 1n]) {
          const prevHash = Buffer.alloc(32, Number(seq % 251n));
          const suffix = recordSuffix(time, event);
          const { hash, encoded } = chainRecord(gatewayId, seq, prevHash, suffix);
          const whole: JournalRecord = { gatewayId, seq: seq.toString(), prevHash, timeUnixNano: time.toString(), ...event };
          assert.deepEqual(hash, recordHash(whole));
          assert.deepEqual(encoded, encodeRecord({ ...whole, hash }));
          assert.deepEqual(new RecordChainer(gatewayId).chain(seq, prevHash, suffix).framed, frame(encoded));
        }
      }
    }
  });

  it('writes fields in field-number order and decodes back to what gRPC subscribers receive', () => {
    const record = sessionRecord({ b: '2', a: '1' });
    const bytes = encodeRecord(record);
    const tags: number[] = [];
    // Top-level tags: walk the encoding (all top-level fields here are varint or length-delimited).
    for (let at = 0; at < bytes.length; ) {
      const tag = bytes[at]!;
      tags.push(tag >> 3);
      at += 1;
      if ((tag & 7) === 0) {
        while (bytes[at]! & 0x80) at += 1;
        at += 1;
      } else {
        let length = 0;
        let shift = 0;
        for (;;) {
          const byte = bytes[at++]!;
          length |= (byte & 0x7f) << shift;
          shift += 7;
          if ((byte & 0x80) === 0) break;
        }
        at += length;
      }
    }
    assert.deepEqual(tags, [...tags].sort((x, y) => x - y));
    const decoded = decodeRecord(bytes);
    assert.equal(decoded.seq, '7');
    assert.equal(decoded.body, 'session');
    assert.deepEqual(decoded.session?.identity?.claims, { a: '1', b: '2' });
    // Re-encoding the decoded form is byte-identical: the verifier relies on this.
    assert.deepEqual(encodeRecord(decoded), bytes);
    // And protobufjs reads our bytes as the same message it would encode itself.
    const type = journalRecordType();
    assert.equal(type.verify(type.decode(bytes)), null);
  });

  it('refuses unknown fields, two oneof members, and out-of-range numbers with the field path', () => {
    assert.throws(() => encodeRecord({ ...sessionRecord({}), session: { sessionId: 's', bogus: 1 } as never }), /field JournalRecord\.session\.bogus is not a field/);
    assert.throws(() => encodeRecord({ ...sessionRecord({}), event: { sessionId: 's' } }), /body has session and event set/);
    assert.throws(() => encodeRecord({ ...sessionRecord({}), seq: -1 }), /JournalRecord\.seq -1 is out of range/);
    assert.throws(() => encodeRecord({ ...sessionRecord({}), seq: 2 ** 60 }), /use a string or bigint/);
  });
});

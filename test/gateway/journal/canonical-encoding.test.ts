import assert from 'node:assert/strict';
import { decodeRecord, encodeRecord, journalRecordType } from '../../../gateway/journal/canonical-encoding';
import { RecordChainer, chainRecord, recordHash, recordSuffix } from '../../../gateway/journal/record-chain';
import { frame } from '../../../gateway/journal/segment-format';
import type { JournalRecord } from '../../../proto/generated/gapwatch/v1/JournalRecord';

function sessionRecord(claims: Record<string, string>): JournalRecord {
  return {
    gatewayId: 'gw-test',
    seq: '7',
    prevHash: Buffer.alloc(32, 9),
    timeUnixNano: '1764000000000000000',
    session: { sessionId: 's-1', identity: { subject: 'agent:claude', method: 'token', claims }, resource: 'orders', outcome: 'SESSION_OUTCOME_OPEN', client: { ip: '10.0.0.7', port: 51234 } },
  };
}

describe('gateway/journal canonical encoding', () => {
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

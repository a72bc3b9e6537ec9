import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { nativeChainProblem, openChainWriter, type ChainWriter, type WrittenFrames } from '../../../gateway/journal/chain-writer';
import { Journal } from '../../../gateway/journal/journal';
import { chainRecord } from '../../../gateway/journal/record-chain';
import { HEADER_BYTES, onlyZeros, parseFrame } from '../../../gateway/journal/segment-format';
import { verifyJournal } from '../../../gateway/journal/verify';
import { removeScratchDirs, scratchDir, statementEvent, tempJournalDir } from './journal-files';
import { seededRandom as random } from '../../support/seeded-random';

function requireNative(this: Mocha.Context): void {
  const problem = nativeChainProblem();
  if (problem === null) return;
  // The addon is part of every setup (npm test builds it): a missing one is a failure, never a skip.
  throw new Error(`the native journal chain is not available (npm run setup builds it): ${problem}`);
}

describe('gateway/journal chain writers (native addon and JavaScript reference)', () => {
  after(removeScratchDirs);

  it('the native chain writer is built and loads', function () {
    requireNative.call(this);
    assert.equal(openChainWriter('gw-test', 0n, Buffer.alloc(32)).kind, 'native');
  });

  for (const [name, gatewayId, lastSeq] of [
    ['a fresh journal', 'gw-test', 0n],
    ['an empty gateway id', '', 41n],
    ['a 200-byte gateway id (two-byte length)', 'g'.repeat(200), 7n],
    ['seqs past 2^53', 'gw-test', 2n ** 53n - 3n],
    ['seqs at the top of 64 bits (ten-byte varints)', 'gw-test', 2n ** 64n - 40n],
  ] as const) {
    it(`native and JavaScript give the same frames, hashes, sizes and offsets: ${name}`, function () {
      requireNative.call(this);
      const next = random(0x5eed + Number(lastSeq % 1000n) + gatewayId.length);
      const startHash = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff));
      const dir = scratchDir();
      const writers: Array<{ chain: ChainWriter; fd: number; path: string; results: Array<WrittenFrames | null> }> = [];
      for (const kind of ['native', 'js'] as const) {
        const path = join(dir, `${kind}.seg`);
        const fd = openSync(path, 'w+');
        const chain = openChainWriter(gatewayId, lastSeq, startHash, kind);
        assert.equal(chain.kind, kind);
        chain.setActive(fd, HEADER_BYTES, lastSeq + 1n, 16);
        writers.push({ chain, fd, path, results: [] });
      }
      let seq = lastSeq;
      const kept: Buffer[][] = [[], []];
      for (let i = 0; i < 38; i++) {
        // Empty, short, and over the JavaScript arena's 64 KiB single-frame limit.
        const length = i % 13 === 5 ? 70_000 + Math.floor(next() * 5000) : i % 11 === 0 ? 0 : Math.floor(next() * 600);
        const suffix = Buffer.from(Array.from({ length }, () => Math.floor(next() * 256)));
        seq += 1n;
        const keep = i % 7 === 3;
        writers.forEach((w, k) => {
          if (keep) kept[k]!.push(w.chain.appendKeepingFrame(suffix).frame);
          else w.chain.append(suffix);
        });
        if (next() < 0.35) {
          const upto = seq - BigInt(Math.floor(next() * 3));
          for (const w of writers) w.results.push(w.chain.write(upto));
        }
      }
      for (const w of writers) w.results.push(w.chain.write(seq));
      assert.deepEqual(writers[0]!.results, writers[1]!.results);
      assert.deepEqual(kept[0], kept[1]);
      assert.deepEqual(writers[0]!.chain.head(), writers[1]!.chain.head());
      assert.equal(writers[0]!.chain.pendingBytes(), 0);
      const files = writers.map((w) => {
        closeSync(w.fd);
        return readFileSync(w.path);
      });
      // The native writer keeps zeros written ahead of its data (at least 1 MiB once it wrote): the same
      // bytes up to the data's end, nothing but zeros after it.
      const size = writers[1]!.chain.writtenHead().size;
      assert.equal(writers[0]!.chain.writtenHead().size, size);
      assert.equal(files[1]!.length, size, 'the JavaScript writer writes the data alone');
      assert.ok(files[0]!.length >= size + (1 << 20), `zeros ahead of the data (${files[0]!.length} bytes for ${size})`);
      assert.ok(onlyZeros(files[0]!, size), 'nothing but zeros past the data');
      assert.ok(files[0]!.subarray(0, size).equals(files[1]!), 'segment bytes differ');

      // And both are what the general encoder makes of each record, chained.
      let offset = HEADER_BYTES;
      let prevHash: Buffer = startHash;
      let expectSeq = lastSeq + 1n;
      for (;;) {
        const parsed = parseFrame(files[0]!, offset);
        if (!parsed) break;
        assert.equal(parsed.kind, 'frame');
        if (parsed.kind !== 'frame') break;
        const { hash, encoded } = chainRecord(gatewayId, expectSeq, prevHash, suffixOf(parsed.payload, gatewayId, expectSeq));
        assert.ok(encoded.equals(parsed.payload), `record ${expectSeq}`);
        prevHash = hash;
        expectSeq += 1n;
        offset = parsed.end;
      }
      assert.equal(expectSeq, seq + 1n, 'every record is in the file');
      assert.equal(offset, size);
    });
  }

  for (const kind of ['native', 'js'] as const) {
    it(`${kind}: a failed write throws with the errno's code and keeps the frames for a later write`, function () {
      if (kind === 'native') requireNative.call(this);
      const dir = scratchDir();
      const chain = openChainWriter('gw-test', 0n, Buffer.alloc(32), kind);
      chain.append(Buffer.from('first'));
      chain.append(Buffer.from('second'));
      assert.throws(() => chain.write(2n), /before setActive/);
      const path = join(dir, 'seg');
      closeSync(openSync(path, 'w'));
      const readOnly = openSync(path, 'r');
      chain.setActive(readOnly, HEADER_BYTES, 1n, 128);
      assert.throws(() => chain.write(2n), (err: Error & { code?: string }) => err.code === 'EBADF');
      closeSync(readOnly);
      const pending = chain.pendingBytes();
      assert.ok(pending > 0);
      const fd = openSync(path, 'r+');
      chain.setActive(fd, HEADER_BYTES, 1n, 128);
      const written = chain.write(2n);
      closeSync(fd);
      assert.equal(written?.seq, 2n);
      assert.equal(written?.bytes, pending);
      assert.deepEqual(written?.index, [[1n, HEADER_BYTES]]);
      assert.equal(written?.size, HEADER_BYTES + pending);
      const file = readFileSync(path);
      assert.equal(onlyZeros(file, HEADER_BYTES + pending), true, 'past the data: zeros written ahead of it (native), or nothing');
    });
  }

  it('a journal written by one chain writer is continued by the other, and verifies', async function () {
    requireNative.call(this);
    const dir = tempJournalDir();
    for (const [round, chain] of [[0, 'js'], [1, 'native'], [2, 'js'], [3, 'native']] as const) {
      const journal = await Journal.open({ dir, gatewayId: 'gw-test', chain, segmentBytes: 4096, checkpoint: { everyRecords: 7 } });
      assert.equal(journal.chainKind, chain);
      await Promise.all(Array.from({ length: 40 }, (_, i) => journal.append(statementEvent(round * 100 + i))));
      await journal.close();
    }
    const report = await verifyJournal(dir);
    assert.equal(report.ok, true, JSON.stringify(report.problems, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
    const segments = readdirSync(dir).filter((name) => /^\d{20}/.test(name)).length;
    assert.ok(segments > 4, `rotated (${segments} segments)`);
    const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    const texts: string[] = [];
    for await (const record of journal.read(1n)) if (record.event?.statement) texts.push(record.event.statement.text);
    await journal.close();
    assert.equal(texts.length, 160);
    assert.equal(texts[159], 'select 339');
  });
});

/** The suffix (time and body) of a stored record: what follows its prefix (fields 1-3) and hash field. */
function suffixOf(payload: Buffer, gatewayId: string, seq: bigint): Buffer {
  const id = Buffer.byteLength(gatewayId);
  const idField = id === 0 ? 0 : 1 + varintLength(BigInt(id)) + id;
  const prefix = idField + 1 + varintLength(seq) + 2 + 32;
  return payload.subarray(prefix + 2 + 32);
}

function varintLength(value: bigint): number {
  let n = 1;
  for (let rest = value; rest >= 0x80n; rest >>= 7n) n += 1;
  return n;
}

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { Journal } from '../../../gateway/journal/journal';
import { listSegments } from '../../../gateway/journal/segment-directory';
import { PRIVATE_KEY_FILE, PUBLIC_KEY_FILE } from '../../../gateway/journal/signing-key';
import { verifyJournal } from '../../../gateway/journal/verify';
import { readSegment, removeScratchDirs, statementEvent, tempJournalDir } from './journal-files';

async function collect(iterable: AsyncIterable<JournalRecord__Output>): Promise<JournalRecord__Output[]> {
  const out: JournalRecord__Output[] = [];
  for await (const record of iterable) out.push(record);
  return out;
}

async function appendMany(journal: Journal, from: number, count: number): Promise<bigint[]> {
  const positions = await Promise.all(Array.from({ length: count }, (_, i) => journal.append(statementEvent(from + i))));
  return positions.map((p) => p.seq);
}

describe('gateway/journal', () => {
  after(removeScratchDirs);

  it('appends and reads back records in order with seq, chain and body', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    const before = BigInt(Date.now()) * 1_000_000n;
    const first = await journal.append({ session: { sessionId: 'sess-1', resource: 'orders-db', identity: { subject: 'agent:claude', method: 'token', claims: { run: 'r1' } }, outcome: 'SESSION_OUTCOME_OPEN' } });
    assert.deepEqual(first, { gatewayId: 'gw-test', seq: 1n });
    const seqs = [];
    for (let i = 0; i < 5; i++) seqs.push((await journal.append(statementEvent(i))).seq);
    assert.deepEqual(seqs, [2n, 3n, 4n, 5n, 6n]);
    const records = await collect(journal.read(1n));
    assert.deepEqual(records.map((r) => r.seq), ['1', '2', '3', '4', '5', '6']);
    assert.equal(records[0]!.body, 'session');
    assert.equal(records[0]!.session?.identity?.claims.run, 'r1');
    assert.equal(records[0]!.session?.outcome, 'SESSION_OUTCOME_OPEN');
    assert.equal(records[3]!.event?.statement?.text, 'select 2');
    assert.deepEqual(records[0]!.prevHash, Buffer.alloc(32));
    for (let i = 1; i < records.length; i++) assert.deepEqual(records[i]!.prevHash, records[i - 1]!.hash);
    const after = BigInt(Date.now() + 1) * 1_000_000n;
    const times = records.map((r) => BigInt(r.timeUnixNano));
    assert.ok(times.every((t, i) => t >= before && t <= after && (i === 0 || t > times[i - 1]!)), 'wall-clock times, strictly increasing');
    await journal.close();
    const report = await verifyJournal(dir);
    assert.equal(report.ok, true, JSON.stringify(report.problems, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
    assert.equal(report.lastSeq, 7n, 'close wrote a checkpoint');
    assert.equal(report.checkpointsVerified, 1);
    assert.equal(report.signedThrough, 6n);
  });

  it('refuses a bad body without using a seq', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    await assert.rejects(journal.append({ event: { sessionId: 's', bogus: 1 } as never }), { code: 'GW_ERR_JOURNAL_RECORD_INVALID' });
    await assert.rejects(journal.append({ checkpoint: { seq: 1 } }), { code: 'GW_ERR_JOURNAL_RECORD_INVALID' });
    await assert.rejects(journal.append({ event: { sessionId: 's', statement: { text: 'x'.repeat(17 * 1024 * 1024) } } }), { code: 'GW_ERR_JOURNAL_RECORD_TOO_LARGE' });
    assert.equal((await journal.append(statementEvent(1))).seq, 1n);
    await journal.close();
    await assert.rejects(journal.append(statementEvent(2)), { code: 'GW_ERR_JOURNAL_CLOSED' });
    await assert.rejects(Journal.open({ dir, gatewayId: 'gw-other' }), { code: 'GW_ERR_JOURNAL_GATEWAY_MISMATCH' });
    const reopened = await Journal.open({ dir, gatewayId: 'gw-test' });
    await assert.rejects(Journal.open({ dir, gatewayId: 'gw-test' }), { code: 'GW_ERR_JOURNAL_IN_USE' });
    await reopened.close();
  });

  it('resumes reading from any seq across segments and reopens where it left off', async () => {
    const dir = tempJournalDir();
    let journal = await Journal.open({ dir, gatewayId: 'gw-test', segmentBytes: 4096, checkpoint: { everyRecords: 25 } });
    await appendMany(journal, 0, 400);
    await journal.close();
    assert.ok(listSegments(dir).length > 5, 'several segments');
    journal = await Journal.open({ dir, gatewayId: 'gw-test', segmentBytes: 4096, checkpoint: { everyRecords: 25 } });
    const head = journal.head().seq;
    const more = await appendMany(journal, 400, 3);
    assert.ok(more[0]! > head && more[0]! < more[1]! && more[1]! < more[2]!, 'continues after the recovered head');
    const last = journal.head().seq;
    for (const from of [1n, 2n, 37n, 150n, head, last]) {
      const records = await collect(journal.read(from));
      assert.deepEqual(records.map((r) => BigInt(r.seq)), Array.from({ length: Number(last - from + 1n) }, (_, i) => from + BigInt(i)), `from ${from}`);
    }
    assert.deepEqual(await collect(journal.read(last + 1n)), []);
    await journal.close();
    assert.equal((await verifyJournal(dir)).ok, true);
  });

  it('resumes inside a large segment at the exact seq, whether it was written now or found at open', async () => {
    const dir = tempJournalDir();
    let journal = await Journal.open({ dir, gatewayId: 'gw-test', checkpoint: { everyRecords: 100_000 } });
    await appendMany(journal, 0, 1000);
    const check = async (): Promise<void> => {
      for (const from of [1n, 127n, 128n, 129n, 130n, 257n, 700n, 999n, 1000n]) {
        const records: JournalRecord__Output[] = [];
        for await (const record of journal.read(from)) {
          records.push(record);
          if (records.length === 3) break;
        }
        assert.deepEqual(records.map((r) => BigInt(r.seq)), [from, from + 1n, from + 2n].filter((s) => s <= journal.head().seq), `from ${from}`);
      }
    };
    await check();
    await journal.close();
    journal = await Journal.open({ dir, gatewayId: 'gw-test', checkpoint: { everyRecords: 100_000 } });
    await check();
    await journal.close();
  });

  it('writes a signed checkpoint on its timer once records are waiting', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test', checkpoint: { everyRecords: 100_000, everyMs: 20 } });
    await appendMany(journal, 0, 3);
    let checkpoint: JournalRecord__Output | undefined;
    for await (const record of journal.read(1n, { follow: true })) {
      if (record.body === 'checkpoint') {
        checkpoint = record;
        break;
      }
    }
    assert.equal(checkpoint?.seq, '4');
    assert.equal(checkpoint?.checkpoint?.seq, '3');
    assert.equal(checkpoint?.checkpoint?.keyId, journal.keyId);
    await journal.close();
    const report = await verifyJournal(dir);
    assert.equal(report.ok, true);
    assert.equal(report.signedThrough, 3n, 'nothing after the timer checkpoint, so close adds none');
  });

  it('follow mode wakes on appends and stops when aborted', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test', segmentBytes: 2048 });
    await appendMany(journal, 0, 3);
    const controller = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const record of journal.read(2n, { follow: true, signal: controller.signal })) {
        seen.push(record.seq);
        if (seen.length === 42) controller.abort();
      }
    })();
    // Appended after the reader caught up, across segment rotations.
    for (let i = 3; i < 60; i++) await journal.append(statementEvent(i));
    await reading;
    assert.equal(seen.length, 42);
    assert.deepEqual(seen, Array.from({ length: 42 }, (_, i) => String(i + 2)));
    await journal.close();
  });

  it('several followers of an empty journal all see every record, and close ends them', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    const follow = async (): Promise<string[]> => (await collect(journal.read(1n, { follow: true }))).map((r) => r.body ?? '');
    // More than EventEmitter's default of 10 listeners, which would print a leak warning.
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    const followers = Array.from({ length: 16 }, follow);
    await appendMany(journal, 0, 20);
    await journal.close();
    for (const bodies of await Promise.all(followers)) {
      assert.equal(bodies.length, 21);
      assert.deepEqual(bodies.slice(0, 20), Array(20).fill('event'));
      assert.equal(bodies[20], 'checkpoint', 'the checkpoint close writes is delivered before the end');
    }
    process.off('warning', onWarning);
    assert.deepEqual(warnings.map((w) => w.name), []);
  });

  it('gives concurrent appends gap-free seqs and shares one fsync per group', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test', checkpoint: { everyRecords: 100_000 } });
    const before = journal.stats();
    const seqs = await appendMany(journal, 0, 200);
    const after = journal.stats();
    assert.deepEqual([...seqs].sort((a, b) => Number(a - b)), Array.from({ length: 200 }, (_, i) => BigInt(i + 1)));
    assert.equal(after.fsyncs - before.fsyncs, 1, 'appends made together are one group: one write and one fdatasync');
    assert.equal(after.records - before.records, 200);
    // Appends that arrive while a group is being written form the next group, not one each.
    const waves = await Promise.all([appendMany(journal, 200, 50), new Promise<bigint[]>((resolve) => setImmediate(() => resolve(appendMany(journal, 250, 50))))]);
    assert.equal(new Set([...waves[0], ...waves[1]]).size, 100);
    assert.ok(journal.stats().fsyncs - after.fsyncs <= 2);
    await journal.close();
  });

  it('writes deferred appends with the next group commit, in seq order, or on their own when none comes', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test', checkpoint: { everyRecords: 100_000 } });
    const before = journal.stats();
    const deferred = journal.append(statementEvent(0), { defer: true });
    const urgent = await journal.append(statementEvent(1));
    const outcome = await deferred;
    assert.deepEqual([outcome.seq, urgent.seq], [1n, 2n]);
    assert.equal(journal.stats().fsyncs - before.fsyncs, 1, 'the deferred record rode along with the urgent one');
    // Alone, a deferred append still becomes durable (and readable) without another append.
    const alone = await journal.append(statementEvent(2), { defer: true });
    assert.equal(journal.head().seq, alone.seq);
    assert.deepEqual((await collect(journal.read(1n))).map((r) => r.event?.statement?.text), ['select 0', 'select 1', 'select 2']);
    await journal.close();
    assert.equal((await verifyJournal(dir)).ok, true);
  });

  it("acknowledges 'written' before the record is durable, and readers see it only once it is", async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test', checkpoint: { everyRecords: 100_000 } });
    await appendMany(journal, 0, 3);
    const controller = new AbortController();
    const followed: bigint[] = [];
    const following = (async () => {
      for await (const record of journal.read(1n, { follow: true, signal: controller.signal })) {
        const seq = BigInt(record.seq);
        // Whenever a reader gets a record, the journal has already reported it durable.
        assert.ok(seq <= journal.head().seq, `reader got seq ${seq} while the durable head was ${journal.head().seq}`);
        followed.push(seq);
        if (seq === 13n) controller.abort();
      }
    })();
    const before = journal.stats();
    for (let i = 3; i < 8; i++) {
      const written = await journal.append(statementEvent(i), { ack: 'written' });
      // The fdatasync that follows the write completes in a later turn of the event loop than the
      // write's acknowledgement, so at this point the record is in the file but not yet durable.
      assert.equal(journal.writtenHead().seq, written.seq);
      assert.ok(journal.head().seq < written.seq, `durable head ${journal.head().seq} already covered written seq ${written.seq}`);
      assert.ok(!followed.includes(written.seq), 'a follower saw a record that was only written');
    }
    // A durable append covers every earlier seq, written ones included (in order).
    const durable = await Promise.all([journal.append(statementEvent(8), { ack: 'written' }), journal.append(statementEvent(9)), journal.append(statementEvent(10), { defer: true, ack: 'written' })]);
    assert.ok(journal.head().seq >= durable[1]!.seq);
    for (let i = 11; i < 13; i++) await journal.append(statementEvent(i));
    await following;
    assert.deepEqual(followed, Array.from({ length: 13 }, (_, i) => BigInt(i + 1)));
    const after = journal.stats();
    assert.equal(after.acks.written - before.acks.written, 7);
    assert.equal(after.acks.durable - before.acks.durable, 3);
    await assert.rejects(journal.append(statementEvent(99), { ack: 'sometime' as 'written' }), (err: Error & { code?: string }) => err.code === 'GW_ERR_JOURNAL_RECORD_INVALID');
    await journal.close();
    assert.equal((await verifyJournal(dir)).ok, true);
  });

  it("keeps a 'written' record when the writer is SIGKILLed before its fdatasync, and makes it durable at reopen", async function () {
    this.timeout(30_000);
    const dir = tempJournalDir();
    const marker = 'select written_then_killed';
    const child = spawn(process.execPath, [join(__dirname, 'written-then-killed.js'), dir, marker], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    assert.equal(signal, 'SIGKILL');
    const reported = JSON.parse(output.trim()) as { acked: string; durableAtAck: string };
    assert.ok(BigInt(reported.durableAtAck) < BigInt(reported.acked), 'the record was acknowledged as written, not yet durable, when the process died');
    const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    assert.equal(journal.recovery.tornTail, null);
    assert.ok(journal.head().seq >= BigInt(reported.acked));
    const records = await collect(journal.read(1n));
    const found = records.find((r) => r.event?.statement?.text === marker);
    assert.ok(found, 'the written record survived the kill');
    assert.equal(found.seq, reported.acked);
    await journal.close();
    assert.equal((await verifyJournal(dir)).ok, true);
  });

  it('cuts a torn tail at open, reports it and journals the loss', async () => {
    const dir = tempJournalDir();
    let journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    await appendMany(journal, 0, 10);
    await journal.close();
    const segment = listSegments(dir)[0]!.path;
    const sizeBefore = statSync(segment).size;
    // Half a frame: what a crash in the middle of a write leaves.
    appendFileSync(segment, Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7]));
    assert.equal((await verifyJournal(dir)).problems[0]?.kind, 'truncated');
    journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    const torn = journal.recovery.tornTail;
    assert.ok(torn);
    assert.equal(torn.bytes, 11);
    assert.equal(torn.offset, sizeBefore);
    assert.equal(torn.afterSeq, 11n);
    assert.deepEqual(readFileSync(join(dir, torn.preservedAs)), Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7]));
    const records = await collect(journal.read(12n));
    assert.equal(records[0]!.body, 'gap');
    assert.equal(records[0]!.gap?.kind, 'JOURNAL_GAP_KIND_TORN_TAIL');
    assert.equal(records[0]!.gap?.bytes, '11');
    assert.equal((await journal.append(statementEvent(99))).seq, 13n);
    await journal.close();
    const report = await verifyJournal(dir);
    assert.equal(report.ok, true);
    assert.equal(report.gapRecords, 1);
  });

  it('treats a last record whose bytes never reached the disk (zeros, checksum wrong) as a torn tail', async () => {
    const dir = tempJournalDir();
    let journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    await appendMany(journal, 0, 10);
    await journal.close();
    const segment = listSegments(dir)[0]!.path;
    const bytes = readFileSync(segment);
    const last = readSegment(segment).at(-1)!;
    bytes.fill(0, last.offset + 8);
    writeFileSync(segment, bytes);
    // That last record is close's checkpoint; its copy in checkpoints.log is written only after the
    // segment's fdatasync, so a crash that loses the one loses the other too.
    const copies = join(dir, 'checkpoints.log');
    truncateSync(copies, readSegment(copies).at(-1)!.offset);
    journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    assert.equal(journal.recovery.tornTail?.offset, last.offset);
    assert.equal(journal.recovery.tornTail?.afterSeq, BigInt(last.record.seq) - 1n);
    await journal.close();
    assert.equal((await verifyJournal(dir)).ok, true);
  });

  it('refuses to open over a damaged record in the middle and says where', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    await appendMany(journal, 0, 10);
    await journal.close();
    const segment = listSegments(dir)[0]!.path;
    const bytes = readFileSync(segment);
    bytes[200] = bytes[200]! ^ 0xff;
    require('node:fs').writeFileSync(segment, bytes);
    await assert.rejects(Journal.open({ dir, gatewayId: 'gw-test' }), (err: Error & { code?: string; file?: string; offset?: number }) => {
      assert.equal(err.code, 'GW_ERR_JOURNAL_CORRUPT');
      assert.equal(err.file, segment);
      assert.ok(typeof err.offset === 'number' && err.offset <= 200);
      assert.match(err.message, /damaged at byte \d+ \(after seq \d+\)/);
      return true;
    });
    const report = await verifyJournal(dir);
    assert.equal(report.ok, false);
    assert.ok(report.problems.some((p) => p.kind === 'corrupt'));
  });

  it('survives a writer killed mid-append: every acknowledged record is there and the chain verifies', async function () {
    this.timeout(30_000);
    const dir = tempJournalDir();
    const child = spawn(process.execPath, [join(__dirname, 'crash-writer.js'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let acked = 0n;
    const lines = createInterface({ input: child.stdout! });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    try {
      for await (const line of lines) {
        const seq = BigInt(line);
        if (seq > acked) acked = seq;
        if (acked >= 300n) {
          child.kill('SIGKILL');
          break;
        }
      }
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    assert.ok(journal.head().seq >= acked, `head ${journal.head().seq} keeps acknowledged seq ${acked}`);
    const records = await collect(journal.read(1n));
    assert.equal(records.length, Number(journal.head().seq));
    if (journal.recovery.tornTail) assert.equal(records[Number(journal.recovery.lastSeq)]!.body, 'gap');
    await journal.close();
    const report = await verifyJournal(dir);
    assert.equal(report.ok, true, JSON.stringify(report.problems, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  });

  it('creates the signing key with mode 0600 and exports the public key', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    await journal.close();
    assert.equal(statSync(join(dir, PRIVATE_KEY_FILE)).mode & 0o777, 0o600);
    assert.match(readFileSync(join(dir, PUBLIC_KEY_FILE), 'utf8'), /BEGIN PUBLIC KEY/);
    assert.ok(journal.keyId.startsWith('sha256:'));
    require('node:fs').chmodSync(join(dir, PRIVATE_KEY_FILE), 0o644);
    await assert.rejects(Journal.open({ dir, gatewayId: 'gw-test' }), { code: 'GW_ERR_JOURNAL_KEY' });
  });

  it('retention removes old segments, journals the removal, and the rest still verifies', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test', segmentBytes: 4096, retention: { maxAgeMs: 3_600_000 } });
    await appendMany(journal, 0, 200);
    const segments = listSegments(dir);
    assert.ok(segments.length >= 4);
    const old = new Date(Date.now() - 2 * 3_600_000);
    for (const s of segments.slice(0, 3)) utimesSync(s.path, old, old);
    // mtimes on disk are what a reopened journal sees; the open journal tracks its own writes.
    await journal.close();
    const reopened = await Journal.open({ dir, gatewayId: 'gw-test', segmentBytes: 4096, retention: { maxAgeMs: 3_600_000 } });
    const firstKept = segments[3]!.firstSeq;
    assert.equal(reopened.firstSeq(), firstKept);
    assert.ok(!existsSync(segments[0]!.path));
    const fromStart = await collect(reopened.read(1n));
    assert.equal(fromStart[0]!.seq, firstKept.toString(), 'a reader asking for removed seqs starts at the first kept one');
    assert.equal(fromStart[0]!.body, 'checkpoint', 'the first kept segment starts with its anchoring checkpoint');
    const gap = fromStart.find((r) => r.body === 'gap');
    assert.equal(gap?.gap?.kind, 'JOURNAL_GAP_KIND_RETENTION');
    assert.equal(gap?.gap?.firstSeq, '1');
    assert.equal(gap?.gap?.lastSeq, (firstKept - 1n).toString());
    await reopened.close();
    const report = await verifyJournal(dir);
    assert.equal(report.ok, true, JSON.stringify(report.problems, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
    assert.equal(report.firstSeq, firstKept);
    const copies = readSegment(join(dir, 'checkpoints.log')).map((s) => BigInt(s.record.checkpoint!.seq));
    assert.ok(copies.length > 0 && copies.every((covers) => covers >= firstKept - 1n), 'checkpoints.log keeps only copies that still vouch for kept records');
  });

  it('a torn-off segment start is reported unanchored when no signed checkpoint vouches for it', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test', segmentBytes: 4096 });
    await appendMany(journal, 0, 100);
    await journal.close();
    const segments = listSegments(dir);
    // Deleting the first segment is what retention does, and the next segment's checkpoint anchors it.
    require('node:fs').rmSync(segments[0]!.path);
    assert.equal((await verifyJournal(dir)).ok, true);
    // Deleting a segment's anchoring checkpoint record as well leaves the start unvouched.
    const second = segments[1]!.path;
    const bytes = readFileSync(second);
    const firstFrameLength = bytes.readUInt32LE(16);
    truncateSync(second, 0);
    appendFileSync(second, Buffer.concat([bytes.subarray(0, 16), bytes.subarray(16 + 8 + firstFrameLength)]));
    const report = await verifyJournal(dir);
    assert.equal(report.ok, false);
    assert.ok(report.problems.some((p) => p.kind === 'unanchored' || p.kind === 'reordered'));
  });
});

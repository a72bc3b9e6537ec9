import type { KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { decodeRecord, encodeRecord } from '../../gateway/journal/canonical-encoding';
import { ZERO_HASH, recordHash } from '../../gateway/journal/record-chain';
import { listSegments } from '../../gateway/journal/segment-directory';
import { HEADER_BYTES, SEGMENT_MAGIC, parseFrame, parseHeader } from '../../gateway/journal/segment-format';
import { keyIdOf, verifyCheckpointSignature } from '../../gateway/journal/signing-key';
import { verifyJournal, type JournalProblem, type JournalVerifyReport } from '../../gateway/journal/verify';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { Store } from '../store/connection';
import { qualified } from '../store/ddl';
import { JOURNAL_RECORDS } from '../store/migrations/0004-journal-records';
import { dateTime64 } from '../store/time';

/** Where the verifier's public key came from; the store itself is never a source (whoever edits rows could replace it). */
export type KeySource = 'argument' | 'journal-directory';

export interface StoreVerifyOptions {
  gatewayId: string;
  /** Check records from this seq on (the record before it is read too, for the link). Default 1. */
  fromSeq?: bigint;
  publicKey: KeyObject | null;
  keySource: KeySource | null;
  /** The gateway's journal directory, when run on the gateway host: its files are verified and compared with the store. */
  journalDir?: string;
  /** Seqs read per query, so memory stays bounded by the page and the per-seq hashes. */
  pageSize?: number;
}

export interface SeqRange {
  first: bigint;
  last: bigint;
}

export interface StoreVerifyReport {
  ok: boolean;
  gatewayId: string;
  fromSeq: bigint;
  /** Distinct seqs in the store at or after fromSeq. */
  records: number;
  /** Physical rows read (without FINAL): more than `records` when a seq has copies. */
  rows: number;
  firstSeq: bigint | null;
  lastSeq: bigint | null;
  /** The lowest seq any finding names; null when nothing was found. */
  firstBrokenSeq: bigint | null;
  /** Seqs absent from the store between fromSeq and the last seq (or the last seq a checkpoint signed). */
  missing: SeqRange[];
  /** Seqs whose stored record (bytes, columns or a copy) is not the one the chain and signatures vouch for. */
  altered: bigint[];
  checkpoints: number;
  checkpointsVerified: number;
  /** The highest seq a verified checkpoint vouches for (0 when none). */
  signedThrough: bigint;
  /** Records after the last verified checkpoint: chained, not yet signed. A live gateway always has some. */
  unsigned: { count: number; first: bigint | null; last: bigint | null };
  keyId: string | null;
  keySource: KeySource | null;
  problems: JournalProblem[];
  /** The journal files' own report, when a journal directory was checked too. */
  files: JournalVerifyReport | null;
}

/** One physical row of journal_records, as read (64-bit integers as text). */
interface StoredRow {
  gateway_id: string;
  seq: string;
  time: string;
  body: string;
  prev_hash: string;
  hash: string;
  record: string;
  checkpoint_seq: string;
  checkpoint_head_hash: string;
  checkpoint_signature: string;
  checkpoint_key_id: string;
}

interface ChainEntry {
  hash: Buffer;
  prevHash: Buffer;
}

interface Checkpoint {
  recordSeq: bigint;
  covers: bigint;
  headHash: Buffer;
  signatureOk: boolean;
  keyId: string;
}

/**
 * Verifies the journal records the collector stored for one gateway (migrations/0004-journal-records.ts)
 * with the primitives the journal files are verified with (record-chain.ts, canonical-encoding.ts,
 * signing-key.ts): each row's bytes are canonical and decode to a record whose fields agree with the
 * row's columns, every hash recomputes, consecutive seqs link, checkpoints verify with the given key
 * and sign the hashes the chain holds, and no seq is missing.
 *
 * The table is read without FINAL and without relying on merges: a replacement row inserted beside the
 * original (same sorting key) is found as two different rows for one seq. Once merged away, only the
 * replacement is left, and it is found by its hash, its link to the next record, or the checkpoint
 * signatures over it; a rewrite of the records after the last signed checkpoint can only be told from
 * the journal files (pass journalDir on the gateway host), which is why the report counts them.
 */
export async function verifyStoredJournal(store: Store, options: StoreVerifyOptions): Promise<StoreVerifyReport> {
  const fromSeq = options.fromSeq && options.fromSeq > 1n ? options.fromSeq : 1n;
  const key = options.publicKey;
  const problems: JournalProblem[] = [];
  const report: StoreVerifyReport = {
    ok: false,
    gatewayId: options.gatewayId,
    fromSeq,
    records: 0,
    rows: 0,
    firstSeq: null,
    lastSeq: null,
    firstBrokenSeq: null,
    missing: [],
    altered: [],
    checkpoints: 0,
    checkpointsVerified: 0,
    signedThrough: 0n,
    unsigned: { count: 0, first: null, last: null },
    keyId: key ? keyIdOf(key) : null,
    keySource: key ? options.keySource : null,
    problems,
    files: null,
  };
  if (!key) {
    problems.push({ seq: null, kind: 'no-key', detail: "no public key: give the gateway's journal key with --public-key (signing-key.pub.pem from the gateway's journal directory); signatures were not checked" });
  }
  const altered = new Set<bigint>();
  const alter = (seq: bigint, kind: JournalProblem['kind'], detail: string): void => {
    altered.add(seq);
    problems.push({ seq, kind, detail });
  };

  // The record before fromSeq is read too, so the first checked record's link is checked against it.
  const readFrom = fromSeq > 1n ? fromSeq - 1n : 1n;
  const chain = new Map<bigint, ChainEntry>();
  const checkpoints: Checkpoint[] = [];
  const table = qualified(store.dialect, JOURNAL_RECORDS.name);
  const bounds = await queryJson<{ last: string; n: string }>(
    store,
    `SELECT max(seq) AS last, count() AS n FROM ${table} WHERE gateway_id = {gateway:String} AND seq >= {from:UInt64}`,
    { gateway: options.gatewayId, from: readFrom.toString() },
  );
  const maxSeq = Number(bounds[0]?.n ?? 0) > 0 ? BigInt(bounds[0]!.last) : null;
  const pageSize = BigInt(options.pageSize ?? 5000);

  for (let low = readFrom; maxSeq !== null && low <= maxSeq; low += pageSize) {
    const rows = await queryJson<StoredRow>(
      store,
      `SELECT gateway_id, seq, time, body, prev_hash, hash, record, checkpoint_seq, checkpoint_head_hash, checkpoint_signature, checkpoint_key_id
       FROM ${table} WHERE gateway_id = {gateway:String} AND seq >= {low:UInt64} AND seq < {high:UInt64} ORDER BY seq`,
      { gateway: options.gatewayId, low: low.toString(), high: (low + pageSize).toString() },
    );
    report.rows += rows.length;
    // 64-bit integers arrive as text or as numbers, depending on the connection's output settings.
    for (const row of rows) {
      row.seq = String(row.seq);
      row.checkpoint_seq = String(row.checkpoint_seq);
    }
    for (let i = 0; i < rows.length; ) {
      let j = i + 1;
      while (j < rows.length && rows[j]!.seq === rows[i]!.seq) j++;
      checkSeq(BigInt(rows[i]!.seq), rows.slice(i, j));
      i = j;
    }
  }

  function checkSeq(seq: bigint, copies: StoredRow[]): void {
    const distinct = [...new Map(copies.map((row) => [JSON.stringify(row), row])).values()];
    if (distinct.length > 1) {
      alter(seq, 'modified', `${distinct.length} different rows hold seq ${seq}: a row was inserted beside the original (a FINAL query shows only one of them)`);
    }
    // Of several copies, a valid record linking to its predecessor continues the chain.
    const entries = distinct.map((row) => checkRow(seq, row, distinct.length === 1)).filter((entry): entry is ChainEntry & { ok: boolean } => entry !== null);
    const previous = chain.get(seq - 1n);
    const chosen = entries.find((entry) => entry.ok && previous !== undefined && entry.prevHash.equals(previous.hash)) ?? entries.find((entry) => entry.ok) ?? entries[0];
    if (chosen) chain.set(seq, chosen);
  }

  /** Checks one row against itself; returns its chain fields (from the bytes) or null when it has none. */
  function checkRow(seq: bigint, row: StoredRow, report: boolean): (ChainEntry & { ok: boolean }) | null {
    const note = (kind: JournalProblem['kind'], detail: string): void => {
      if (report) alter(seq, kind, detail);
      else altered.add(seq);
    };
    const bytes = Buffer.from(row.record, 'base64');
    let record: JournalRecord__Output;
    try {
      record = decodeRecord(bytes);
    } catch (err) {
      note('corrupt', `seq ${seq}'s stored record is not a JournalRecord (${err instanceof Error ? err.message : String(err)})`);
      return null;
    }
    let ok = true;
    if (bytes.toString('base64') !== row.record || !encodeRecord(record).equals(bytes)) {
      ok = false;
      note('modified', `seq ${seq}'s stored bytes are not the canonical encoding of a record (bytes were added or altered)`);
    }
    const recordSeq = BigInt(record.seq);
    if (recordSeq !== seq) {
      ok = false;
      note('reordered', `the row at seq ${seq} holds the record of seq ${recordSeq}: rows were moved`);
    }
    if (record.gatewayId !== options.gatewayId || row.gateway_id !== options.gatewayId) {
      ok = false;
      note('modified', `seq ${seq}'s record names gateway "${record.gatewayId}", not "${options.gatewayId}"`);
    }
    const computed = recordHash(record);
    if (!computed.equals(record.hash)) {
      ok = false;
      note('modified', `seq ${seq}'s content does not match its hash`);
    }
    const columns = columnsOf(record);
    const differing = (Object.keys(columns) as Array<keyof typeof columns>).filter((name) => columns[name] !== row[name]);
    if (differing.length > 0) {
      ok = false;
      note('modified', `seq ${seq}'s column${differing.length > 1 ? 's' : ''} ${differing.join(', ')} disagree${differing.length > 1 ? '' : 's'} with its stored record`);
    }
    if (record.body === 'checkpoint' && record.checkpoint && recordSeq === seq) {
      const cp = record.checkpoint;
      const covers = BigInt(cp.seq);
      const signatureOk = key !== null && cp.keyId === keyIdOf(key) && verifyCheckpointSignature(key, record.gatewayId, covers, cp.headHash, cp.signature);
      checkpoints.push({ recordSeq: seq, covers, headHash: cp.headHash, signatureOk, keyId: cp.keyId });
    }
    return { hash: record.hash, prevHash: record.prevHash, ok };
  }

  const seqs = [...chain.keys()].filter((seq) => seq >= readFrom).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const inRange = seqs.filter((seq) => seq >= fromSeq);
  report.records = inRange.length;
  report.firstSeq = inRange[0] ?? null;
  report.lastSeq = inRange[inRange.length - 1] ?? null;

  // Links between consecutive seqs: a broken link means the earlier record was replaced.
  for (const seq of seqs) {
    const previous = chain.get(seq - 1n);
    const current = chain.get(seq)!;
    if (previous && !current.prevHash.equals(previous.hash)) {
      alter(seq - 1n, 'modified', `seq ${seq}'s prev_hash does not match seq ${seq - 1n}'s hash: seq ${seq - 1n} was rewritten or replaced`);
    }
  }
  if (chain.has(1n) && !chain.get(1n)!.prevHash.equals(ZERO_HASH)) alter(1n, 'modified', 'seq 1 must have a zero prev_hash');

  // Signed heads against the chain.
  let signedThrough = 0n;
  let verified = 0;
  for (const cp of checkpoints) {
    if (key && !cp.signatureOk) {
      problems.push({
        seq: cp.recordSeq,
        kind: 'bad-signature',
        detail: `checkpoint seq ${cp.recordSeq} over seq ${cp.covers} does not verify with key ${report.keyId}${cp.keyId !== report.keyId ? ` (it names key ${cp.keyId})` : ''}`,
      });
      continue;
    }
    const covered = chain.get(cp.covers);
    if (covered) {
      if (!covered.hash.equals(cp.headHash)) {
        alter(cp.covers, 'modified', `checkpoint seq ${cp.recordSeq} signed a different hash for seq ${cp.covers}: the chain up to it was rewritten`);
        continue;
      }
    } else if (cp.covers >= readFrom) {
      // The signed record is absent: reported below as missing, and vouches for nothing here.
      if (key && cp.covers > signedThrough) signedThrough = cp.covers;
      continue;
    } else if (cp.covers !== 0n) {
      continue; // before the checked range
    }
    if (key) {
      verified++;
      if (cp.covers > signedThrough) signedThrough = cp.covers;
    }
  }
  report.checkpoints = checkpoints.length;
  report.checkpointsVerified = verified;
  report.signedThrough = signedThrough;

  // Missing seqs from fromSeq through the last stored record or the last signed one, whichever is later.
  const end = [report.lastSeq ?? 0n, signedThrough].reduce((a, b) => (a > b ? a : b));
  let expected = fromSeq;
  for (const seq of [...inRange, end + 1n]) {
    if (seq > end + 1n) break;
    if (seq > expected) {
      const range = { first: expected, last: seq - 1n };
      report.missing.push(range);
      const beyond = report.lastSeq === null || range.first > report.lastSeq;
      problems.push({
        seq: range.first,
        kind: beyond ? 'truncated' : 'deleted',
        detail: beyond
          ? `a signed checkpoint covers records through seq ${signedThrough}, but the store ends ${report.lastSeq === null ? 'before them' : `at seq ${report.lastSeq}`}: seq ${range.first}..${range.last} are missing`
          : `${range.last - range.first + 1n} record(s) missing from the store: seq ${range.first}${range.last > range.first ? `..${range.last}` : ''}`,
      });
    }
    if (seq >= expected) expected = seq + 1n;
  }
  if (maxSeq === null) problems.push({ seq: null, kind: 'truncated', detail: `the store holds no journal records of gateway ${options.gatewayId} from seq ${fromSeq}` });

  // The checkpoint record right after the signed head is itself the signature, so it is not counted.
  const unsigned = inRange.filter((seq) => seq > signedThrough + 1n);
  report.unsigned = { count: unsigned.length, first: unsigned[0] ?? null, last: unsigned[unsigned.length - 1] ?? null };

  if (options.journalDir !== undefined) {
    report.files = await verifyJournal(options.journalDir, key ?? undefined);
    if (report.files.signedThrough > end && report.files.signedThrough >= fromSeq) {
      const first = end >= fromSeq ? end + 1n : fromSeq;
      report.missing.push({ first, last: report.files.signedThrough });
      problems.push({ seq: first, kind: 'truncated', detail: `the journal files hold records signed through seq ${report.files.signedThrough}, but the store ends ${report.lastSeq === null ? 'before them' : `at seq ${report.lastSeq}`}: seq ${first}..${report.files.signedThrough} are missing from the store` });
    }
    for (const problem of await compareWithFiles(options.journalDir, chain, fromSeq)) {
      if (problem.seq !== null) altered.add(problem.seq);
      problems.push(problem);
    }
    if (!report.files.ok) problems.push({ seq: report.files.problems[0]?.seq ?? null, kind: report.files.problems[0]?.kind ?? 'corrupt', detail: `the journal files in ${options.journalDir} have ${report.files.problems.length} problem(s) of their own (see files)` });
  }

  report.altered = [...altered].filter((seq) => seq >= fromSeq).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  problems.sort((a, b) => ((a.seq ?? -1n) < (b.seq ?? -1n) ? -1 : (a.seq ?? -1n) > (b.seq ?? -1n) ? 1 : 0));
  const broken = problems.map((p) => p.seq).filter((seq): seq is bigint => seq !== null);
  report.firstBrokenSeq = broken.length > 0 ? broken.reduce((a, b) => (a < b ? a : b)) : null;
  report.ok = problems.length === 0;
  return report;
}

/** The columns journalRecordRow() derives from a record, as the store returns them. */
function columnsOf(record: JournalRecord__Output): Omit<StoredRow, 'record'> {
  const checkpoint = record.body === 'checkpoint' ? record.checkpoint : null;
  return {
    gateway_id: record.gatewayId,
    seq: String(record.seq),
    time: dateTime64(record.timeUnixNano),
    body: record.body ?? '',
    prev_hash: Buffer.from(record.prevHash).toString('hex'),
    hash: Buffer.from(record.hash).toString('hex'),
    checkpoint_seq: String(checkpoint?.seq ?? '0'),
    checkpoint_head_hash: checkpoint ? Buffer.from(checkpoint.headHash).toString('hex') : '',
    checkpoint_signature: checkpoint ? Buffer.from(checkpoint.signature).toString('hex') : '',
    checkpoint_key_id: checkpoint?.keyId ?? '',
  };
}

/**
 * The store against the journal files on the gateway host, record by record: the same seq must have
 * the same hash in both. This covers what signatures cannot, the records after the last checkpoint.
 * A seq only the files hold is missing from the store; one only the store holds is reported only
 * while the files still hold records after it (retention removes old segments, not new ones).
 */
async function compareWithFiles(dir: string, chain: ReadonlyMap<bigint, ChainEntry>, fromSeq: bigint): Promise<JournalProblem[]> {
  const problems: JournalProblem[] = [];
  if (!existsSync(dir)) return [{ seq: null, kind: 'truncated', detail: `journal directory ${dir} does not exist` }];
  const fileHashes = new Map<bigint, Buffer>();
  for (const segment of listSegments(dir)) {
    const bytes = await readFile(segment.path);
    if ('problem' in parseHeader(SEGMENT_MAGIC, bytes)) continue; // the files' own report names it
    for (let offset = HEADER_BYTES; ; ) {
      const parsed = parseFrame(bytes, offset);
      if (!parsed || parsed.kind !== 'frame') break;
      offset = parsed.end;
      try {
        const record = decodeRecord(parsed.payload);
        if (!fileHashes.has(BigInt(record.seq))) fileHashes.set(BigInt(record.seq), record.hash);
      } catch {
        // Not a record: the files' own report names it.
      }
    }
  }
  const fileSeqs = [...fileHashes.keys()];
  const lastInFiles = fileSeqs.reduce((a, b) => (a > b ? a : b), 0n);
  const firstInFiles = fileSeqs.reduce((a, b) => (a < b ? a : b), lastInFiles);
  for (const [seq, hash] of fileHashes) {
    if (seq < fromSeq) continue;
    const stored = chain.get(seq);
    if (stored && !stored.hash.equals(hash)) {
      problems.push({ seq, kind: 'modified', detail: `seq ${seq} in the store differs from seq ${seq} in the journal files (hash ${stored.hash.toString('hex').slice(0, 16)}… against ${hash.toString('hex').slice(0, 16)}…)` });
    }
  }
  for (const seq of chain.keys()) {
    if (seq < fromSeq || seq < firstInFiles || seq > lastInFiles || fileHashes.has(seq)) continue;
    problems.push({ seq, kind: 'modified', detail: `seq ${seq} is in the store but not in the journal files, which hold seq ${firstInFiles}..${lastInFiles}` });
  }
  for (const seq of [...chain.keys()].filter((s) => s > lastInFiles && s >= fromSeq)) {
    problems.push({ seq, kind: 'modified', detail: `seq ${seq} is in the store but the journal files end at seq ${lastInFiles}: a record was inserted in the store` });
  }
  return problems;
}

async function queryJson<T>(store: Store, query: string, params: Record<string, string>): Promise<T[]> {
  const result = await store.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

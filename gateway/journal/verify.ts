import type { KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import { decodeRecord, encodeRecord } from './canonical-encoding';
import { ZERO_HASH, recordHash } from './record-chain';
import { CHECKPOINT_FILE, listSegments } from './segment-directory';
import { CHECKPOINT_FILE_MAGIC, HEADER_BYTES, SEGMENT_MAGIC, parseFrame, parseHeader } from './segment-format';
import { PUBLIC_KEY_FILE, keyIdOf, readPublicKey, verifyCheckpointSignature } from './signing-key';

export type JournalProblemKind =
  /** A record's content no longer matches its hash, or a later hash/signature vouches for different content. */
  | 'modified'
  /** Seqs missing between the first and last record. */
  | 'deleted'
  /** A record stored after one with a higher seq, or the same seq twice. */
  | 'reordered'
  /** Records a signed checkpoint covers are missing at the end, or the last record is cut short. */
  | 'truncated'
  /** A checkpoint whose signature does not verify, or that was signed by another key. */
  | 'bad-signature'
  /** The first retained record's prev_hash is not vouched for by a signed checkpoint. */
  | 'unanchored'
  /** Bytes that are not a journal frame or record at all (bad header, checksum or encoding). */
  | 'corrupt'
  /** No public key was given or found, so no signature could be checked. */
  | 'no-key';

export interface JournalProblem {
  /** The record concerned (for `deleted`, the first missing seq); null when no seq applies. */
  seq: bigint | null;
  kind: JournalProblemKind;
  detail: string;
  file?: string;
  offset?: number;
}

export interface JournalVerifyReport {
  ok: boolean;
  dir: string;
  gatewayId: string | null;
  records: number;
  firstSeq: bigint | null;
  lastSeq: bigint | null;
  /** Checkpoint records found (in segments and checkpoints.log, one per covered seq). */
  checkpoints: number;
  /** Checkpoints whose signature verified and whose signed head matches the chain. */
  checkpointsVerified: number;
  /** The highest seq a verified checkpoint vouches for (0 when none). */
  signedThrough: bigint;
  /** Records after the last verified checkpoint: chained but not yet signed (normal for a live journal). */
  unsignedRecords: number;
  /** Gap records the journal wrote itself (torn tails cut at recovery, retention): loss recorded as data. */
  gapRecords: number;
  keyId: string | null;
  /** Where the public key came from; a key read from the journal directory is only as trustworthy as that directory. */
  keySource: 'argument' | 'journal-directory' | null;
  problems: JournalProblem[];
}

interface SeenRecord {
  seq: bigint;
  hash: Buffer;
  prevHash: Buffer;
  file: string;
  offset: number;
}

interface SeenCheckpoint {
  recordSeq: bigint;
  covers: bigint;
  headHash: Buffer;
  signatureOk: boolean;
  keyId: string;
  where: string;
}

/**
 * Verifies a gateway's journal directory end to end: frames and checksums, canonical encoding,
 * every record's hash, the chain links, seq order and gaps, checkpoint signatures (ed25519, with
 * `publicKey` or else the public key file in the directory), that signed heads match the chain,
 * that checkpoints.log copies match it (so a truncated tail shows as records a checkpoint covers
 * but the journal lacks), and that the first retained record is anchored by a checkpoint.
 */
export async function verifyJournal(dir: string, publicKey?: KeyObject | string | Buffer): Promise<JournalVerifyReport> {
  const problems: JournalProblem[] = [];
  const report: JournalVerifyReport = {
    ok: false,
    dir,
    gatewayId: null,
    records: 0,
    firstSeq: null,
    lastSeq: null,
    checkpoints: 0,
    checkpointsVerified: 0,
    signedThrough: 0n,
    unsignedRecords: 0,
    gapRecords: 0,
    keyId: null,
    keySource: null,
    problems,
  };
  let key: KeyObject | null = null;
  const keyFile = join(dir, PUBLIC_KEY_FILE);
  try {
    if (publicKey !== undefined) {
      key = readPublicKey(publicKey);
      report.keySource = 'argument';
    } else if (existsSync(keyFile)) {
      key = readPublicKey(keyFile);
      report.keySource = 'journal-directory';
    }
  } catch (err) {
    problems.push({ seq: null, kind: 'no-key', detail: `the public key cannot be read: ${err instanceof Error ? err.message : String(err)}` });
  }
  if (key) report.keyId = keyIdOf(key);
  else if (problems.length === 0) problems.push({ seq: null, kind: 'no-key', detail: `no public key given and no ${PUBLIC_KEY_FILE} in ${dir}; signatures were not checked` });

  const segments = existsSync(dir) ? listSegments(dir) : [];
  if (segments.length === 0) {
    problems.push({ seq: null, kind: 'truncated', detail: `no journal segments in ${dir}` });
    return finish(report);
  }

  const seen: SeenRecord[] = [];
  const bySeq = new Map<bigint, SeenRecord>();
  const checkpoints: SeenCheckpoint[] = [];
  let lastStoredSeq: bigint | null = null;

  const checkRecord = (record: JournalRecord__Output, payload: Buffer, where: { file: string; offset: number }): void => {
    const seq = BigInt(record.seq);
    if (report.gatewayId === null) report.gatewayId = record.gatewayId;
    else if (record.gatewayId !== report.gatewayId) {
      problems.push({ seq, kind: 'modified', detail: `gateway id "${record.gatewayId}" differs from the journal's "${report.gatewayId}"`, ...where });
    }
    if (!encodeRecord(record).equals(payload)) {
      problems.push({ seq, kind: 'modified', detail: 'stored bytes are not the canonical encoding of the record (bytes were added or altered)', ...where });
    }
    if (!recordHash(record).equals(record.hash)) {
      problems.push({ seq, kind: 'modified', detail: `seq ${seq}'s content does not match its hash`, ...where });
    }
    if (lastStoredSeq !== null && seq <= lastStoredSeq) {
      problems.push({ seq, kind: 'reordered', detail: `seq ${seq} is stored after seq ${lastStoredSeq}`, ...where });
    }
    lastStoredSeq = lastStoredSeq === null || seq > lastStoredSeq ? seq : lastStoredSeq;
    const entry: SeenRecord = { seq, hash: record.hash, prevHash: record.prevHash, ...where };
    seen.push(entry);
    if (!bySeq.has(seq)) bySeq.set(seq, entry);
    if (record.body === 'gap') report.gapRecords += 1;
    if (record.body === 'checkpoint' && record.checkpoint) checkpoints.push(readCheckpoint(record, key, `seq ${seq}`));
  };

  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const bytes = await readFile(segment.path);
    const header = parseHeader(SEGMENT_MAGIC, bytes);
    if ('problem' in header) {
      problems.push({ seq: null, kind: 'corrupt', detail: `segment ${segment.name}: ${header.problem}`, file: segment.name, offset: 0 });
      continue;
    }
    if (header.firstSeq !== segment.firstSeq) {
      problems.push({ seq: segment.firstSeq, kind: 'corrupt', detail: `segment ${segment.name} says in its header it starts at seq ${header.firstSeq}`, file: segment.name, offset: 8 });
    }
    let offset = HEADER_BYTES;
    let first = true;
    for (;;) {
      const parsed = parseFrame(bytes, offset);
      if (!parsed) break;
      const where = { file: segment.name, offset };
      if (parsed.kind === 'incomplete') {
        const last = i === segments.length - 1;
        problems.push({
          seq: lastStoredSeq === null ? null : lastStoredSeq + 1n,
          kind: last ? 'truncated' : 'corrupt',
          detail: `${segment.name} ends inside a record at byte ${offset} (${parsed.reason})${last ? '; a crash mid-append leaves this, and reopening the journal cuts and journals it' : ''}`,
          ...where,
        });
        break;
      }
      if (parsed.kind === 'damaged') {
        problems.push({ seq: lastStoredSeq === null ? null : lastStoredSeq + 1n, kind: 'corrupt', detail: `${segment.name} byte ${offset}: ${parsed.reason}`, ...where });
        if (parsed.end === null) break;
        offset = parsed.end;
        continue;
      }
      let record: JournalRecord__Output;
      try {
        record = decodeRecord(parsed.payload);
      } catch (err) {
        problems.push({ seq: null, kind: 'corrupt', detail: `${segment.name} byte ${offset}: not a JournalRecord (${err instanceof Error ? err.message : String(err)})`, ...where });
        offset = parsed.end;
        continue;
      }
      if (first && BigInt(record.seq) !== segment.firstSeq) {
        problems.push({ seq: BigInt(record.seq), kind: 'reordered', detail: `segment ${segment.name} should start with seq ${segment.firstSeq}`, ...where });
      }
      first = false;
      checkRecord(record, parsed.payload, where);
      offset = parsed.end;
    }
  }

  // checkpoints.log holds a copy of every checkpoint record; it outlives a cut segment tail.
  const checkpointPath = join(dir, CHECKPOINT_FILE);
  const copies: Array<{ record: JournalRecord__Output; payload: Buffer; offset: number }> = [];
  if (existsSync(checkpointPath)) {
    const bytes = await readFile(checkpointPath);
    const header = parseHeader(CHECKPOINT_FILE_MAGIC, bytes);
    if ('problem' in header) problems.push({ seq: null, kind: 'corrupt', detail: `${CHECKPOINT_FILE}: ${header.problem}`, file: CHECKPOINT_FILE, offset: 0 });
    else {
      let offset = HEADER_BYTES;
      for (;;) {
        const parsed = parseFrame(bytes, offset);
        if (!parsed) break;
        if (parsed.kind !== 'frame') {
          problems.push({ seq: null, kind: 'corrupt', detail: `${CHECKPOINT_FILE} byte ${offset}: ${parsed.reason}`, file: CHECKPOINT_FILE, offset });
          if (parsed.kind === 'incomplete' || parsed.end === null) break;
          offset = parsed.end;
          continue;
        }
        try {
          copies.push({ record: decodeRecord(parsed.payload), payload: parsed.payload, offset });
        } catch (err) {
          problems.push({ seq: null, kind: 'corrupt', detail: `${CHECKPOINT_FILE} byte ${offset}: not a JournalRecord (${String(err)})`, file: CHECKPOINT_FILE, offset });
        }
        offset = parsed.end;
      }
    }
  }

  if (seen.length === 0) {
    problems.push({ seq: null, kind: 'truncated', detail: 'the journal holds no records' });
  }
  const seqs = [...bySeq.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const firstSeq = seqs[0] ?? null;
  const lastSeq = seqs[seqs.length - 1] ?? null;
  report.firstSeq = firstSeq;
  report.lastSeq = lastSeq;
  report.records = seen.length;

  // Missing seqs, as ranges.
  for (let i = 1; i < seqs.length; i++) {
    const before = seqs[i - 1]!;
    const after = seqs[i]!;
    if (after !== before + 1n) {
      const count = after - before - 1n;
      problems.push({ seq: before + 1n, kind: 'deleted', detail: `${count} record(s) missing: seq ${before + 1n}${count > 1n ? `..${after - 1n}` : ''}` });
    }
  }
  // Chain links between consecutive seqs: a broken link means the earlier record was replaced.
  for (let i = 1; i < seqs.length; i++) {
    const previous = bySeq.get(seqs[i - 1]!)!;
    const current = bySeq.get(seqs[i]!)!;
    if (current.seq === previous.seq + 1n && !current.prevHash.equals(previous.hash)) {
      problems.push({
        seq: previous.seq,
        kind: 'modified',
        detail: `seq ${current.seq}'s prev_hash does not match seq ${previous.seq}'s hash: seq ${previous.seq} was rewritten or replaced`,
        file: previous.file,
        offset: previous.offset,
      });
    }
  }

  // Checkpoint copies from checkpoints.log: each must be the chain's own record when that is present.
  for (const copy of copies) {
    const seq = BigInt(copy.record.seq);
    if (copy.record.body !== 'checkpoint' || !copy.record.checkpoint) {
      problems.push({ seq, kind: 'corrupt', detail: `${CHECKPOINT_FILE} byte ${copy.offset} holds a ${copy.record.body ?? 'empty'} record, not a checkpoint`, file: CHECKPOINT_FILE, offset: copy.offset });
      continue;
    }
    const inChain = bySeq.get(seq);
    if (inChain) {
      if (!inChain.hash.equals(copy.record.hash) || !recordHash(copy.record).equals(copy.record.hash)) {
        problems.push({ seq, kind: 'modified', detail: `checkpoint seq ${seq} differs from its copy in ${CHECKPOINT_FILE}`, file: inChain.file, offset: inChain.offset });
      }
      continue;
    }
    checkpoints.push(readCheckpoint(copy.record, key, `${CHECKPOINT_FILE} byte ${copy.offset}`));
  }

  // Signed heads against the chain.
  const verifiedCovers = new Set<bigint>();
  for (const cp of checkpoints) {
    if (key && !cp.signatureOk) {
      problems.push({
        seq: cp.recordSeq,
        kind: 'bad-signature',
        detail: `checkpoint (${cp.where}) over seq ${cp.covers} does not verify with key ${report.keyId}${cp.keyId !== report.keyId ? ` (it names key ${cp.keyId})` : ''}`,
      });
      continue;
    }
    if (lastSeq !== null && cp.covers > lastSeq) {
      problems.push({
        seq: lastSeq + 1n,
        kind: 'truncated',
        detail: `a signed checkpoint (${cp.where}) covers records through seq ${cp.covers}, but the journal ends at seq ${lastSeq}: seq ${lastSeq + 1n}..${cp.covers} are missing`,
      });
      continue;
    }
    const covered = bySeq.get(cp.covers);
    if (covered) {
      if (!covered.hash.equals(cp.headHash)) {
        problems.push({ seq: cp.covers, kind: 'modified', detail: `checkpoint (${cp.where}) signed a different hash for seq ${cp.covers}: the chain up to it was rewritten`, file: covered.file, offset: covered.offset });
        continue;
      }
    } else if (firstSeq !== null && cp.covers === firstSeq - 1n) {
      const first = bySeq.get(firstSeq)!;
      if (!first.prevHash.equals(cp.headHash)) {
        problems.push({ seq: firstSeq, kind: 'modified', detail: `seq ${firstSeq}'s prev_hash differs from the head the checkpoint (${cp.where}) signed for seq ${cp.covers}`, file: first.file, offset: first.offset });
        continue;
      }
    } else if (cp.covers !== 0n) {
      continue; // covers records removed by retention: nothing left to compare
    }
    if (key) verifiedCovers.add(cp.recordSeq);
    if (key && cp.covers > report.signedThrough) report.signedThrough = cp.covers;
  }
  report.checkpoints = new Set(checkpoints.map((c) => c.recordSeq)).size;
  report.checkpointsVerified = verifiedCovers.size;

  // The start of the chain: seq 1 links to the zero hash; a later first seq (after retention) must be
  // anchored by a verified checkpoint covering the seq before it.
  if (firstSeq !== null) {
    const first = bySeq.get(firstSeq)!;
    if (firstSeq === 1n) {
      if (!first.prevHash.equals(ZERO_HASH)) problems.push({ seq: 1n, kind: 'modified', detail: 'seq 1 must have a zero prev_hash', file: first.file, offset: first.offset });
    } else if (!checkpoints.some((cp) => cp.covers === firstSeq - 1n && cp.signatureOk && cp.headHash.equals(first.prevHash))) {
      problems.push({
        seq: firstSeq,
        kind: 'unanchored',
        detail: `the journal starts at seq ${firstSeq} but no signed checkpoint vouches for seq ${firstSeq - 1n}, the record its prev_hash names: earlier records were removed without the anchor retention keeps`,
        file: first.file,
        offset: first.offset,
      });
    }
  }
  if (lastSeq !== null) {
    const signedThrough = report.signedThrough;
    // The checkpoint record right after the signed head is itself the signature, so it is not counted.
    report.unsignedRecords = seqs.filter((s) => s > signedThrough + 1n).length;
  }
  return finish(report);
}

function readCheckpoint(record: JournalRecord__Output, key: KeyObject | null, where: string): SeenCheckpoint {
  const cp = record.checkpoint!;
  const covers = BigInt(cp.seq);
  const signatureOk = key !== null && cp.keyId === keyIdOf(key) && verifyCheckpointSignature(key, record.gatewayId, covers, cp.headHash, cp.signature);
  return { recordSeq: BigInt(record.seq), covers, headHash: cp.headHash, signatureOk, keyId: cp.keyId, where };
}

function finish(report: JournalVerifyReport): JournalVerifyReport {
  report.problems.sort((a, b) => (a.seq ?? -1n) < (b.seq ?? -1n) ? -1 : (a.seq ?? -1n) > (b.seq ?? -1n) ? 1 : 0);
  report.ok = report.problems.length === 0;
  return report;
}

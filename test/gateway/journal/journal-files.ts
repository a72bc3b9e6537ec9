import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionEvent } from '../../../proto/generated/gapwatch/v1/SessionEvent';
import type { JournalRecord__Output } from '../../../proto/generated/gapwatch/v1/JournalRecord';
import { decodeRecord, encodeRecord } from '../../../gateway/journal/canonical-encoding';
import { recordHash } from '../../../gateway/journal/record-chain';
import { HEADER_BYTES, SEGMENT_MAGIC, fileHeader, frame, parseFrame } from '../../../gateway/journal/segment-format';

/** Test helpers that read and rewrite journal files the way an attacker with disk access could. */

const scratchRoots: string[] = [];

/** A fresh scratch directory, removed by removeScratchDirs(). */
export function scratchDir(prefix = 'gapwatch-journal-'): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  scratchRoots.push(root);
  return root;
}

/** A fresh journal directory laid out as in a data directory: <scratch>/journal/gw-test. */
export function tempJournalDir(): string {
  return join(scratchDir(), 'journal', 'gw-test');
}

/** Other helpers run tests on this machine at the same time: leave /tmp as it was found. */
export function removeScratchDirs(): void {
  for (const root of scratchRoots.splice(0)) rmSync(root, { recursive: true, force: true });
}

export function statementEvent(n: number, text = `select ${n}`): { event: SessionEvent } {
  return { event: { sessionId: `s-${Math.floor(n / 10)}`, eventSeq: n + 1, timeUnixNano: 1_764_000_000_000_000_000n.toString(), statement: { text, parameters: [String(n)], commandTag: 'SELECT 1', rows: 1 } } };
}

export interface StoredRecord {
  record: JournalRecord__Output;
  payload: Buffer;
  offset: number;
}

export function readSegment(path: string): StoredRecord[] {
  const bytes = readFileSync(path);
  const out: StoredRecord[] = [];
  let offset = HEADER_BYTES;
  for (;;) {
    const parsed = parseFrame(bytes, offset);
    if (!parsed) break;
    if (parsed.kind !== 'frame') throw new Error(`bad frame at ${offset}: ${parsed.reason}`);
    out.push({ record: decodeRecord(parsed.payload), payload: parsed.payload, offset });
    offset = parsed.end;
  }
  return out;
}

/** Rewrites a segment from records (valid frames and checksums: only the chain can tell). */
export function writeSegment(path: string, firstSeq: bigint, records: JournalRecord__Output[]): void {
  const frames = records.map((r) => frame(encodeRecord(r)));
  writeFileSync(path, Buffer.concat([fileHeader(SEGMENT_MAGIC, firstSeq), ...frames]));
}

/** Recomputes hash and prev_hash links from index `from` on, as an attacker rewriting the chain would. */
export function rechain(records: JournalRecord__Output[], from: number): void {
  for (let i = from; i < records.length; i++) {
    if (i > 0) records[i]!.prevHash = records[i - 1]!.hash;
    records[i]!.hash = recordHash(records[i]!);
  }
}

import { writeSync } from 'node:fs';
import { loadGatewayAddon } from '../../native/binding';
import { RecordChainer } from './record-chain';

/**
 * The journal's hash chain and its segment writes: each appended record (its suffix: time and body,
 * canonically encoded) gets the next seq, its hash and its frame in a pending buffer; write() puts
 * the oldest pending frames at the end of the active segment with one pwrite. The journal around it
 * decides when (group commit), fdatasyncs, rotates and signs checkpoints.
 *
 * Two implementations with the same bytes: the addon's (native/addon/journal-chain.cc, where the
 * native data paths append too) and RecordChainer's in JavaScript, the reference, used when the
 * addon is not built (the journal says so in its stats and log).
 */
export interface ChainWriter {
  readonly kind: 'native' | 'js';
  /** Chains one record; returns its seq (native data paths append to the same chain). */
  append(suffix: Uint8Array): bigint;
  /** The same, returning a copy of the frame (a checkpoint is copied to checkpoints.log too). */
  appendKeepingFrame(suffix: Uint8Array): { seq: bigint; frame: Buffer };
  /** The last assigned record, written or not. */
  head(): { seq: bigint; hash: Buffer };
  /**
   * A record that must follow the head it reads (a checkpoint signs it): lockHead() returns the head
   * and keeps other writers out until appendAndUnlock() (or unlock()). `segmentStartsHere`: the record
   * opens the next segment; later frames are written only once setActive() installs it.
   */
  lockHead(): { seq: bigint; hash: Buffer };
  appendAndUnlock(suffix: Uint8Array, segmentStartsHere: boolean): { seq: bigint; frame: Buffer };
  unlock(): void;
  /** The last record any writer has put in the file, and the active segment's size. */
  writtenHead(): { seq: bigint; hash: Buffer; size: number };
  /** What a native data path's own fdatasync covered (absent for the JavaScript writer). */
  syncedHead?(): NativeSynced;
  /** The addon's chain object, for a native data path to append to; null for the JavaScript writer. */
  readonly native: object | null;
  /** Where write() goes: an open segment, its size, and the offset index's anchor and interval. */
  setActive(fd: number, size: number, indexFirstSeq: bigint, indexInterval: number): void;
  /**
   * Writes the pending frames up to `uptoSeq`, oldest first, in one write at the end of the active
   * segment; null when none is pending. Throws (with the errno's `code`) when the write fails.
   */
  write(uptoSeq: bigint): WrittenFrames | null;
  pendingBytes(): number;
  /** Bytes of every frame appended so far, by any writer (segment-size accounting). */
  framedBytes(): number;
  /** Drops everything pending (the journal failed; none of it will be written). */
  discard(): void;
}

/** A native data path's own fdatasync (what it covered) and its requests' acknowledgements. */
export interface NativeSynced {
  seq: bigint;
  hash: Buffer;
  /** The size of the segment whose first seq is segmentFirstSeq, as far as that fdatasync covered it. */
  size: number;
  segmentFirstSeq: bigint;
  acksWritten: number;
  acksDurable: number;
  /** fdatasync rounds the native data paths' sync threads ran. */
  syncRounds: number;
}

export interface WrittenFrames {
  bytes: number;
  /** The last record written, and its hash. */
  seq: bigint;
  hash: Buffer;
  /** The active segment's size after the write. */
  size: number;
  /** [seq, offset] of the written records on the offset index's interval. */
  index: Array<[bigint, number]>;
}

interface NativeJournalAddon {
  JournalChain: new (gatewayId: string, lastSeq: bigint, lastHash: Buffer) => {
    append(suffix: Uint8Array): bigint;
    appendKeepingFrame(suffix: Uint8Array): { seq: bigint; frame: Buffer };
    head(): { seq: bigint; hash: Buffer };
    writtenHead(): { seq: bigint; hash: Buffer; size: number };
    syncedHead(): NativeSynced;
    lockHead(): { seq: bigint; hash: Buffer };
    appendAndUnlock(suffix: Uint8Array, segmentStartsHere: boolean): { seq: bigint; frame: Buffer };
    unlock(): void;
    setActive(fd: number, size: number, indexFirstSeq: bigint, indexInterval: number): void;
    write(uptoSeq: bigint): WrittenFrames | null;
    pendingBytes(): number;
    framedBytes(): number;
    discard(): void;
  };
}

/** The addon, or null (with the reason in nativeChainProblem()) when it is not built or does not load. */
function loadAddon(): NativeJournalAddon | null {
  return loadGatewayAddon().exports as NativeJournalAddon | null;
}

/** Why the native chain is not in use, or null when it is available. */
export function nativeChainProblem(): string | null {
  return loadGatewayAddon().problem;
}

/** The native chain when the addon loads (or when `kind` asks for one explicitly), else the JavaScript one. */
export function openChainWriter(gatewayId: string, lastSeq: bigint, lastHash: Buffer, kind?: 'native' | 'js'): ChainWriter {
  const native = kind === 'js' ? null : loadAddon();
  if (native) return new NativeChainWriter(new native.JournalChain(gatewayId, lastSeq, lastHash));
  if (kind === 'native') throw new Error(`the native journal chain is unavailable: ${nativeChainProblem()}`);
  return new JsChainWriter(gatewayId, lastSeq, lastHash);
}

class NativeChainWriter implements ChainWriter {
  readonly kind = 'native';
  constructor(private readonly chain: InstanceType<NativeJournalAddon['JournalChain']>) {}

  get native(): object {
    return this.chain;
  }

  append(suffix: Uint8Array): bigint {
    return this.chain.append(suffix);
  }

  appendKeepingFrame(suffix: Uint8Array): { seq: bigint; frame: Buffer } {
    return this.chain.appendKeepingFrame(suffix);
  }

  writtenHead(): { seq: bigint; hash: Buffer; size: number } {
    return this.chain.writtenHead();
  }

  syncedHead(): NativeSynced {
    return this.chain.syncedHead();
  }

  lockHead(): { seq: bigint; hash: Buffer } {
    return this.chain.lockHead();
  }

  appendAndUnlock(suffix: Uint8Array, segmentStartsHere: boolean): { seq: bigint; frame: Buffer } {
    return this.chain.appendAndUnlock(suffix, segmentStartsHere);
  }

  unlock(): void {
    this.chain.unlock();
  }

  head(): { seq: bigint; hash: Buffer } {
    return this.chain.head();
  }

  setActive(fd: number, size: number, indexFirstSeq: bigint, indexInterval: number): void {
    this.chain.setActive(fd, size, indexFirstSeq, indexInterval);
  }

  write(uptoSeq: bigint): WrittenFrames | null {
    return this.chain.write(uptoSeq);
  }

  pendingBytes(): number {
    return this.chain.pendingBytes();
  }

  framedBytes(): number {
    return this.chain.framedBytes();
  }

  discard(): void {
    this.chain.discard();
  }
}

interface JsPending {
  seq: bigint;
  hash: Buffer;
  frame: Buffer;
}

/** The reference: RecordChainer's frames (carved from its arena, so a group is usually one view) and writeSync. */
class JsChainWriter implements ChainWriter {
  readonly kind = 'js';
  private readonly chainer: RecordChainer;
  private seq: bigint;
  private hash: Buffer;
  private pending: JsPending[] = [];
  private pendingTotal = 0;
  private framedTotal = 0;
  private fd = -1;
  private size = 0;
  private indexFirstSeq = 1n;
  private indexInterval = 0n;

  constructor(gatewayId: string, lastSeq: bigint, lastHash: Buffer) {
    this.chainer = new RecordChainer(gatewayId);
    this.seq = lastSeq;
    this.hash = lastHash;
    this.written = { seq: lastSeq, hash: lastHash };
  }

  readonly native = null;
  private written: { seq: bigint; hash: Buffer } = { seq: 0n, hash: Buffer.alloc(32) };

  append(suffix: Uint8Array): bigint {
    this.chainOne(suffix);
    return this.seq;
  }

  appendKeepingFrame(suffix: Uint8Array): { seq: bigint; frame: Buffer } {
    return { seq: this.seq + 1n, frame: Buffer.from(this.chainOne(suffix)) };
  }

  writtenHead(): { seq: bigint; hash: Buffer; size: number } {
    return { ...this.written, size: this.size };
  }

  // One writer (the event loop): nothing to lock out.
  lockHead(): { seq: bigint; hash: Buffer } {
    return this.head();
  }

  appendAndUnlock(suffix: Uint8Array): { seq: bigint; frame: Buffer } {
    return this.appendKeepingFrame(suffix);
  }

  unlock(): void {}

  private chainOne(suffix: Uint8Array): Buffer {
    const seq = this.seq + 1n;
    const { hash, framed } = this.chainer.chain(seq, this.hash, suffix as Buffer);
    this.pending.push({ seq, hash, frame: framed });
    this.pendingTotal += framed.length;
    this.framedTotal += framed.length;
    this.seq = seq;
    this.hash = hash;
    return framed;
  }

  head(): { seq: bigint; hash: Buffer } {
    return { seq: this.seq, hash: this.hash };
  }

  setActive(fd: number, size: number, indexFirstSeq: bigint, indexInterval: number): void {
    this.fd = fd;
    this.size = size;
    this.indexFirstSeq = indexFirstSeq;
    this.indexInterval = BigInt(indexInterval);
  }

  write(uptoSeq: bigint): WrittenFrames | null {
    let count = 0;
    while (count < this.pending.length && this.pending[count]!.seq <= uptoSeq) count += 1;
    if (count === 0) return null;
    if (this.fd < 0) throw new Error('journal chain: write() before setActive()');
    const entries = this.pending.slice(0, count);
    const bytes = count === 1 ? entries[0]!.frame : (contiguous(entries) ?? Buffer.concat(entries.map((e) => e.frame)));
    for (let done = 0; done < bytes.length; ) done += writeSync(this.fd, bytes, done, bytes.length - done, this.size + done);
    this.pending.splice(0, count);
    this.pendingTotal -= bytes.length;
    const index: Array<[bigint, number]> = [];
    let offset = this.size;
    for (const entry of entries) {
      if (this.indexInterval > 0n && entry.seq >= this.indexFirstSeq && (entry.seq - this.indexFirstSeq) % this.indexInterval === 0n) index.push([entry.seq, offset]);
      offset += entry.frame.length;
    }
    this.size += bytes.length;
    const last = entries[count - 1]!;
    this.written = { seq: last.seq, hash: last.hash };
    return { bytes: bytes.length, seq: last.seq, hash: last.hash, size: this.size, index };
  }

  pendingBytes(): number {
    return this.pendingTotal;
  }

  framedBytes(): number {
    return this.framedTotal;
  }

  discard(): void {
    this.pending = [];
    this.pendingTotal = 0;
  }
}

/** The frames of `entries` as one view when they lie back to back in one buffer (RecordChainer's arena), else null. */
function contiguous(entries: readonly JsPending[]): Buffer | null {
  const first = entries[0]!.frame;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < entries.length; i++) {
    const frame = entries[i]!.frame;
    if (frame.buffer !== first.buffer || frame.byteOffset !== end) return null;
    end += frame.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset);
}

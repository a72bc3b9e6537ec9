/**
 * A small seeded mutation engine for protocol fuzzing: the same seed gives the same inputs, so a crash
 * found in CI or by bench/fuzz is reproduced by running again with the seed it reports.
 */

/** mulberry32: a tiny, fast PRNG with a 32-bit state; good enough to pick mutations, not for secrets. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** Values that sit on the edges parsers get wrong: zero, one, sign bits, all ones, lengths off by one. */
const INTERESTING_8 = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x0d, 0x20, 0x3a, 0x40];
const INTERESTING_32 = [0, 1, 2, 4, 5, 8, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

export interface MutatorOptions {
  /** Inputs never grow beyond this many bytes. */
  maxBytes: number;
  /** Tokens of the protocol (keywords, header names, magic strings) spliced in by the dictionary mutation. */
  dictionary?: readonly Buffer[];
}

type Mutation = (input: Buffer, rng: Random, corpus: readonly Buffer[], options: MutatorOptions) => Buffer;

const MUTATIONS: readonly Mutation[] = [
  // Flip one bit.
  (input, rng) => {
    if (input.length === 0) return input;
    const out = Buffer.from(input);
    out[rng.int(out.length)] ^= 1 << rng.int(8);
    return out;
  },
  // Set one byte to an interesting value.
  (input, rng) => {
    if (input.length === 0) return input;
    const out = Buffer.from(input);
    out[rng.int(out.length)] = rng.pick(INTERESTING_8);
    return out;
  },
  // Overwrite a 16- or 32-bit field (big or little endian) with an edge value, or nudge it by ±1..16: length fields.
  (input, rng) => {
    const width = rng.chance(0.7) ? 4 : 2;
    if (input.length < width) return input;
    const out = Buffer.from(input);
    const at = rng.int(out.length - width + 1);
    const bigEndian = rng.chance(0.7);
    const current = width === 4 ? (bigEndian ? out.readUInt32BE(at) : out.readUInt32LE(at)) : bigEndian ? out.readUInt16BE(at) : out.readUInt16LE(at);
    const max = width === 4 ? 0xffffffff : 0xffff;
    const value = rng.chance(0.5) ? rng.pick(INTERESTING_32) & max : (current + (rng.int(33) - 16)) & max;
    if (width === 4) bigEndian ? out.writeUInt32BE(value >>> 0, at) : out.writeUInt32LE(value >>> 0, at);
    else bigEndian ? out.writeUInt16BE(value, at) : out.writeUInt16LE(value, at);
    return out;
  },
  // Insert random bytes.
  (input, rng) => {
    const at = rng.int(input.length + 1);
    return Buffer.concat([input.subarray(0, at), rng.bytes(1 + rng.int(16)), input.subarray(at)]);
  },
  // Delete a range.
  (input, rng) => {
    if (input.length < 2) return input;
    const at = rng.int(input.length);
    const length = 1 + rng.int(Math.min(64, input.length - at));
    return Buffer.concat([input.subarray(0, at), input.subarray(at + length)]);
  },
  // Repeat a range: many copies of one message or field.
  (input, rng, _corpus, options) => {
    if (input.length === 0) return input;
    const at = rng.int(input.length);
    const chunk = input.subarray(at, at + 1 + rng.int(Math.min(256, input.length - at)));
    const copies = 1 + rng.int(rng.chance(0.1) ? 1024 : 16);
    const repeated = Buffer.concat(Array.from({ length: Math.min(copies, Math.floor(options.maxBytes / Math.max(1, chunk.length))) }, () => chunk));
    return Buffer.concat([input.subarray(0, at), repeated, input.subarray(at)]);
  },
  // Splice with another corpus entry: this one's head, that one's tail.
  (input, rng, corpus) => {
    if (corpus.length === 0) return input;
    const other = rng.pick(corpus);
    return Buffer.concat([input.subarray(0, rng.int(input.length + 1)), other.subarray(rng.int(other.length + 1))]);
  },
  // Cut the tail.
  (input, rng) => input.subarray(0, rng.int(input.length + 1)),
  // Put in a protocol token.
  (input, rng, _corpus, options) => {
    if (!options.dictionary || options.dictionary.length === 0) return input;
    const at = rng.int(input.length + 1);
    const token = rng.pick(options.dictionary);
    const replace = rng.chance(0.5) ? Math.min(token.length, input.length - at) : 0;
    return Buffer.concat([input.subarray(0, at), token, input.subarray(at + replace)]);
  },
];

/** One to four stacked mutations of `input`, never longer than options.maxBytes. */
export function mutate(input: Buffer, rng: Random, corpus: readonly Buffer[], options: MutatorOptions): Buffer {
  let out = input;
  const rounds = 1 + rng.int(4);
  for (let i = 0; i < rounds; i++) out = rng.pick(MUTATIONS)(out, rng, corpus, options);
  return out.length > options.maxBytes ? out.subarray(0, options.maxBytes) : out;
}

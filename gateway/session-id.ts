import { randomBytes } from 'node:crypto';

/** Crockford's base32: no I, L, O, U, so ids read aloud and sort as strings in time order. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

let lastMs = -1;
let lastRandom: Buffer = Buffer.alloc(10);

/**
 * A gateway session id: 48 bits of milliseconds since the epoch, then 80 random bits (the ULID
 * layout), 26 characters. Ids sort by start time; within one millisecond the random part is
 * incremented, so ids from this process are strictly increasing.
 */
export function newSessionId(now: number = Date.now()): string {
  let random: Buffer;
  if (now === lastMs) {
    random = Buffer.from(lastRandom);
    for (let i = random.length - 1; i >= 0; i--) {
      random[i] = (random[i]! + 1) & 0xff;
      if (random[i] !== 0) break;
    }
  } else {
    random = randomBytes(10);
    lastMs = now;
  }
  lastRandom = random;
  let out = '';
  let time = now;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[time % 32]! + out;
    time = Math.floor(time / 32);
  }
  // 80 random bits as 16 base32 digits, most significant first.
  let bits = 0n;
  for (const byte of random) bits = (bits << 8n) | BigInt(byte);
  let tail = '';
  for (let i = 0; i < 16; i++) {
    tail = ALPHABET[Number(bits & 31n)]! + tail;
    bits >>= 5n;
  }
  return out + tail;
}

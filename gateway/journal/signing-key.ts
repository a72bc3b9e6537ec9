import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { JournalKeyError } from './errors';

/** File names inside a gateway's journal directory. The public key sits next to the records it verifies. */
export const PRIVATE_KEY_FILE = 'signing-key.pem';
export const PUBLIC_KEY_FILE = 'signing-key.pub.pem';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** "sha256:" + hex SHA-256 of the public key's DER SubjectPublicKeyInfo. */
  keyId: string;
}

/**
 * The ed25519 key that signs checkpoints, generated on first use. The private key file is created
 * with mode 0600 and refused when group or others can read it (as ssh does): a key others can read
 * lets them forge checkpoints over a rewritten chain.
 */
export function loadOrCreateSigningKey(dir: string): SigningKey {
  const privatePath = join(dir, PRIVATE_KEY_FILE);
  const publicPath = join(dir, PUBLIC_KEY_FILE);
  if (!existsSync(privatePath)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    writeNewFile(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  }
  const mode = statSync(privatePath).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new JournalKeyError(privatePath, `has mode ${mode.toString(8)}, readable by others; run \`chmod 600 ${privatePath}\` (and consider the key compromised)`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readFileSync(privatePath));
  } catch (err) {
    throw new JournalKeyError(privatePath, 'is not a readable PEM private key; restore it from backup, or move it aside to start a new key', err);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new JournalKeyError(privatePath, `holds a ${String(privateKey.asymmetricKeyType)} key, not ed25519`);
  }
  const publicKey = createPublicKey(privateKey);
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  if (!existsSync(publicPath) || readFileSync(publicPath, 'utf8') !== publicPem) {
    writeReplacing(publicPath, publicPem, 0o644);
  }
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

export function keyIdOf(publicKey: KeyObject): string {
  return `sha256:${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

/** Reads a public key given as a KeyObject, PEM text/Buffer, or a path to a PEM file. */
export function readPublicKey(source: KeyObject | string | Buffer): KeyObject {
  if (typeof source === 'object' && !Buffer.isBuffer(source)) return source;
  const pem = typeof source === 'string' && !source.includes('-----BEGIN') ? readFileSync(source) : source;
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new JournalKeyError(String(typeof source === 'string' ? source : 'public key'), 'is not an ed25519 public key');
  return key;
}

const SIGNATURE_DOMAIN = Buffer.from('gapwatch.journal.checkpoint.v1\0', 'utf8');

/**
 * The bytes a checkpoint signature covers, (gateway_id, seq, head_hash), unambiguously framed:
 * "gapwatch.journal.checkpoint.v1\0" || u32be(len(gateway_id)) || gateway_id (UTF-8) || u64be(seq)
 * || head_hash. The domain prefix keeps the key's signatures from meaning anything elsewhere.
 */
export function checkpointSignedBytes(gatewayId: string, seq: bigint, headHash: Buffer): Buffer {
  const id = Buffer.from(gatewayId, 'utf8');
  const fixed = Buffer.alloc(12);
  fixed.writeUInt32BE(id.length, 0);
  fixed.writeBigUInt64BE(seq, 4);
  return Buffer.concat([SIGNATURE_DOMAIN, fixed.subarray(0, 4), id, fixed.subarray(4), headHash]);
}

export function signCheckpoint(key: SigningKey, gatewayId: string, seq: bigint, headHash: Buffer): Buffer {
  return sign(null, checkpointSignedBytes(gatewayId, seq, headHash), key.privateKey);
}

export function verifyCheckpointSignature(publicKey: KeyObject, gatewayId: string, seq: bigint, headHash: Buffer, signature: Buffer): boolean {
  try {
    return verify(null, checkpointSignedBytes(gatewayId, seq, headHash), publicKey, signature);
  } catch {
    return false;
  }
}

function writeNewFile(path: string, text: string, mode: number): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', mode);
  } catch (err) {
    throw new JournalKeyError(path, 'cannot be created; check that the journal directory is writable', err);
  }
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeReplacing(path: string, text: string, mode: number): void {
  const fd = openSync(path, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

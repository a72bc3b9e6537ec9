import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { utils, type ParsedKey } from 'ssh2';
import { SshHostKeyFileError, SshKeyInputError } from './errors';

/** An OpenSSH public key as stored and compared: its algorithm and wire blob (RFC 4253 §6.6). */
export interface SshPublicKey {
  type: string;
  blob: Buffer;
}

/** "ssh-ed25519 AAAA… comment" → the key; the comment is dropped (it is not part of the key). */
export function parseSshPublicKey(line: string): SshPublicKey {
  const text = line.trim();
  if (text === '' || text.includes('PRIVATE KEY')) throw new SshKeyInputError(text === '' ? 'the file is empty' : 'this is a private key; give the .pub file');
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error) throw new SshKeyInputError(parsed.message);
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey | undefined) : parsed;
  if (!key) throw new SshKeyInputError('no key found');
  if (key.isPrivateKey()) throw new SshKeyInputError('this is a private key; give the .pub file');
  return { type: key.type, blob: key.getPublicSSH() };
}

/** The stored form: "type base64", without comment. */
export function formatSshPublicKey(key: SshPublicKey): string {
  return `${key.type} ${key.blob.toString('base64')}`;
}

/** SHA256:… as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * The gateway's own host key: read from `file`, or created there (ed25519, OpenSSH format, mode
 * 0600, directory 0700) when it does not exist. A key readable by others is refused, as sshd does.
 */
export function loadOrCreateHostKey(file: string): { privateKey: Buffer; fingerprint: string; created: boolean } {
  let created = false;
  try {
    statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SshHostKeyFileError(file, (err as Error).message, err);
    const key = newEd25519PrivateKey('gapwatch ssh gateway');
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      // 'wx': two gateways starting at once must not overwrite each other's key.
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, key);
      closeSync(fd);
      chmodSync(file, 0o600);
      created = true;
    } catch (createErr) {
      if ((createErr as NodeJS.ErrnoException).code !== 'EEXIST') throw new SshHostKeyFileError(file, (createErr as Error).message, createErr);
    }
  }
  const stat = statSync(file);
  if ((stat.mode & 0o077) !== 0) throw new SshHostKeyFileError(file, `it is accessible by other users (mode ${(stat.mode & 0o777).toString(8)})`);
  const uid = process.geteuid?.() ?? 0;
  if (stat.uid !== uid && stat.uid !== 0) throw new SshHostKeyFileError(file, `it is owned by uid ${stat.uid}`);
  const privateKey = readFileSync(file);
  const parsed = utils.parseKey(privateKey);
  if (parsed instanceof Error) throw new SshHostKeyFileError(file, parsed.message, parsed);
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed;
  return { privateKey, fingerprint: fingerprint(key.getPublicSSH()), created };
}

function sshString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/**
 * A new ed25519 key in OpenSSH's private key format (PROTOCOL.key in OpenSSH), unencrypted:
 *
 *   "openssh-key-v1\0" ‖ string cipher "none" ‖ string kdf "none" ‖ string kdfoptions "" ‖ uint32 1
 *   ‖ string public-key-blob ‖ string private-section
 *   private-section = uint32 check ‖ uint32 check ‖ string "ssh-ed25519" ‖ string pub(32)
 *                     ‖ string seed(32) ‖ pub(32) ‖ string comment ‖ padding 1, 2, 3 … to 8 bytes
 *
 * Written here rather than by ssh2's generator, which drops a leading zero byte of the public key
 * (about 1 key in 250) and then cannot read its own output.
 */
export function newEd25519PrivateKey(comment: string): string {
  const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d!, 'base64url');
  const pub = Buffer.from(jwk.x!, 'base64url');
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4);
  let section = Buffer.concat([check, check, sshString('ssh-ed25519'), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(comment)]);
  const padding = (8 - (section.length % 8)) % 8;
  section = Buffer.concat([section, Buffer.from(Array.from({ length: padding }, (_, i) => i + 1))]);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), sshString('none'), sshString('none'), sshString(''), Buffer.from([0, 0, 0, 1]), sshString(publicBlob), sshString(section)]);
  const lines = body.toString('base64').match(/.{1,70}/g)!;
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

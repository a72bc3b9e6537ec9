import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprint, formatSshPublicKey, loadOrCreateHostKey, parseSshPublicKey } from '../../../gateway/ssh/ssh-keys';
import { runCommand } from '../../support/host';
import { generateKey } from '../../support/sshd';

describe('gateway/ssh keys', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-ssh-keys-'));
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the gateway host key on first use (0600) and reuses it after', async () => {
    const file = join(dir, 'ssh', 'host_ed25519_key');
    const first = loadOrCreateHostKey(file);
    assert.equal(first.created, true);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'ssh')).mode & 0o777, 0o700);
    const again = loadOrCreateHostKey(file);
    assert.equal(again.created, false);
    assert.equal(again.fingerprint, first.fingerprint);
    // The same fingerprint ssh-keygen computes from the file.
    const keygen = await runCommand('ssh-keygen', ['-l', '-f', file]);
    assert.match(keygen.stdout, new RegExp(first.fingerprint.replace(/[+/]/g, '\\$&')));
  });

  it('refuses a host key file others can read', () => {
    const file = join(dir, 'loose_key');
    loadOrCreateHostKey(file);
    chmodSync(file, 0o644);
    assert.throws(() => loadOrCreateHostKey(file), (err: Error & { code?: string }) => err.code === 'GW_ERR_SSH_HOST_KEY_FILE' && /mode 644/.test(err.message));
  });

  it('parses an OpenSSH public key line, drops the comment, and refuses private keys and junk', () => {
    const key = generateKey(dir, 'id_test');
    const line = readFileSync(`${key}.pub`, 'utf8');
    const parsed = parseSshPublicKey(line);
    assert.equal(parsed.type, 'ssh-ed25519');
    assert.equal(formatSshPublicKey(parsed), line.split(' ').slice(0, 2).join(' '));
    assert.match(fingerprint(parsed.blob), /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.throws(() => parseSshPublicKey(readFileSync(key, 'utf8')), /private key/);
    assert.throws(() => parseSshPublicKey('not a key'), (err: Error & { code?: string }) => err.code === 'GW_ERR_SSH_KEY_INPUT');
  });
});

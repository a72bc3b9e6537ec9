import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileIdentityStore } from '../../../gateway/identity/identity-store';
import { checkPublicKey, checkToken } from '../../../gateway/ssh/agent-auth';
import { parseSshPublicKey } from '../../../gateway/ssh/ssh-keys';
import { runCli } from '../../support/host';
import { generateKey } from '../../support/sshd';

describe('gateway/ssh identities: SSH keys and tokens', function () {
  this.timeout(30_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-ssh-identity-'));
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gapwatch token create --ssh-key and add-ssh-key register keys the gateway accepts; the file keeps no comment', async () => {
    const dataDir = join(dir, 'data');
    const config = join(dir, 'gapwatch.yaml');
    writeFileSync(config, `dataDir: ${dataDir}\n`);
    const first = generateKey(dir, 'first');
    const second = generateKey(dir, 'second');
    const created = await runCli(['token', 'create', 'claude-ci', '--ssh-key', `${first}.pub`, '--config', config]);
    assert.equal(created.code, 0, created.stderr);
    const added = await runCli(['token', 'add-ssh-key', 'claude-ci', `${second}.pub`, '--config', config]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /registered ssh-ed25519 key for claude-ci/);
    const refused = await runCli(['token', 'add-ssh-key', 'claude-ci', first, '--config', config]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /private key/);

    const store = new FileIdentityStore({ dataDir });
    const found = await store.lookupSshKeys('claude-ci');
    assert.equal(found?.sshKeys.length, 2);
    assert.doesNotMatch(readFileSync(join(dataDir, 'identities.json'), 'utf8'), / first| second/);
    for (const key of [first, second]) {
      const parsed = parseSshPublicKey(readFileSync(`${key}.pub`, 'utf8'));
      const check = await checkPublicKey(store, 'claude-ci', { key: { algo: parsed.type, data: parsed.blob } });
      assert.equal(check.result, 'acceptable');
    }
    const stranger = parseSshPublicKey(readFileSync(`${generateKey(dir, 'stranger')}.pub`, 'utf8'));
    assert.equal((await checkPublicKey(store, 'claude-ci', { key: { algo: stranger.type, data: stranger.blob } })).result, 'refused');

    const accepted = await checkToken(store, 'claude-ci', created.stdout.trim());
    assert.ok(accepted.ok);
    assert.deepEqual(accepted.identity, { login: 'claude-ci', subject: 'agent:claude-ci', claims: {}, expiresAtMs: null });
    assert.ok(accepted.verifier.storedKey.equals((await store.lookup('claude-ci'))!.verifier.storedKey), 'the verifier the token was checked against');
    assert.deepEqual(await checkToken(store, 'claude-ci', 'gwt_wrong'), { ok: false, reason: 'wrong token' });
    assert.equal((await checkToken(store, 'nobody', 'gwt_x')).ok, false);
    await store.revoke('claude-ci');
    assert.equal(await store.lookupSshKeys('claude-ci'), null);
  });
});

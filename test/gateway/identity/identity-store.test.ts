import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileIdentityStore, parseClaims, parseExpiry, TOKEN_PREFIX } from '../../../gateway/identity/identity-store';
import { computeClientProof, ScramServerExchange } from '../../../gateway/identity/scram';
import { nobodyUid, requireRoot, runCli } from '../../support/host';

function tempDataDir(): string {
  return join(mkdtempSync(join(tmpdir(), 'gapwatch-identity-')), 'data');
}

/** Logs in with a token the way a PostgreSQL client would, against the stored verifier. */
async function logsIn(store: FileIdentityStore, login: string, token: string): Promise<boolean> {
  const found = await store.lookup(login);
  if (!found) return false;
  const exchange = new ScramServerExchange(found.verifier);
  const serverFirst = exchange.start('n,,n=,r=abcdefghijklmnop');
  const nonce = /r=([^,]+)/.exec(serverFirst)![1]!;
  const withoutProof = `c=biws,r=${nonce}`;
  const proof = computeClientProof(token, found.verifier.salt, found.verifier.iterations, `n=,r=abcdefghijklmnop,${serverFirst},${withoutProof}`);
  return exchange.finish(`${withoutProof},p=${proof.toString('base64')}`).ok;
}

describe('gateway/identity/identity-store', () => {
  it('creates an identity whose token logs in, stores no token, and keeps the file 0600', async () => {
    const dataDir = tempDataDir();
    const store = new FileIdentityStore({ dataDir });
    const { token, summary } = await store.create('claude-ci', { claims: { owner: 'alice' } });
    assert.ok(token.startsWith(TOKEN_PREFIX));
    assert.ok(token.length >= TOKEN_PREFIX.length + 43, 'at least 256 bits of entropy');
    assert.deepEqual(
      { login: summary.login, subject: summary.subject, claims: summary.claims, status: summary.status },
      { login: 'claude-ci', subject: 'agent:claude-ci', claims: { owner: 'alice' }, status: 'active' },
    );
    assert.equal(await logsIn(store, 'claude-ci', token), true);
    assert.equal(await logsIn(store, 'claude-ci', `${token}x`), false);
    const file = join(dataDir, 'identities.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    const raw = readFileSync(file, 'utf8');
    assert.ok(!raw.includes(token) && !raw.includes(token.slice(TOKEN_PREFIX.length)), 'the token itself is never stored');
    assert.match(raw, /SCRAM-SHA-256\$4096:/);
  });

  it('uses the configured iteration count', async () => {
    const store = new FileIdentityStore({ dataDir: tempDataDir(), iterations: 8192 });
    const { token } = await store.create('bot');
    assert.equal((await store.lookup('bot'))!.verifier.iterations, 8192);
    assert.equal(await logsIn(store, 'bot', token), true);
  });

  it('refuses a second active token unless replaced; the replaced token stops working', async () => {
    const store = new FileIdentityStore({ dataDir: tempDataDir() });
    const first = await store.create('bot');
    await assert.rejects(store.create('bot'), { code: 'IDENTITY_ERR_EXISTS' });
    const second = await store.create('bot', { replace: true });
    assert.equal(await logsIn(store, 'bot', first.token), false);
    assert.equal(await logsIn(store, 'bot', second.token), true);
  });

  it('revoked and expired identities do not log in; a second store instance sees changes', async () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const dataDir = tempDataDir();
    const store = new FileIdentityStore({ dataDir, now: () => now });
    const gatewaySide = new FileIdentityStore({ dataDir, now: () => now });
    const a = await store.create('a');
    await store.create('b', { expiresAt: new Date('2026-01-02T00:00:00Z') });
    assert.equal(await logsIn(gatewaySide, 'a', a.token), true);
    await store.revoke('a');
    assert.equal(await gatewaySide.lookup('a'), null);
    assert.notEqual(await gatewaySide.lookup('b'), null);
    now = new Date('2026-01-03T00:00:00Z');
    assert.equal(await gatewaySide.lookup('b'), null);
    assert.deepEqual(
      (await store.list()).map((s) => [s.login, s.status]),
      [
        ['a', 'revoked'],
        ['b', 'expired'],
      ],
    );
    await assert.rejects(store.revoke('nobody'), { code: 'IDENTITY_ERR_NOT_FOUND' });
    assert.equal(await gatewaySide.lookup('nobody'), null);
  });

  it('refuses bad input and a corrupt file, changing nothing', async () => {
    const dataDir = tempDataDir();
    const store = new FileIdentityStore({ dataDir });
    await assert.rejects(store.create('../etc'), { code: 'IDENTITY_ERR_INVALID_INPUT' });
    await assert.rejects(store.create('x', { expiresAt: new Date(Date.now() - 1000) }), { code: 'IDENTITY_ERR_INVALID_INPUT' });
    assert.throws(() => parseClaims(['novalue']), { code: 'IDENTITY_ERR_INVALID_INPUT' });
    assert.throws(() => parseClaims(['a=1', 'a=2']), /given twice/);
    assert.deepEqual(parseClaims(['repo=org/app', 'note=a=b']), { repo: 'org/app', note: 'a=b' });
    assert.throws(() => parseExpiry('soon'), /not understood/);
    const now = new Date('2026-01-01T00:00:00Z');
    assert.equal(parseExpiry('12h', now).toISOString(), '2026-01-01T12:00:00.000Z');
    assert.equal(parseExpiry('2027-03-01T00:00:00Z', now).toISOString(), '2027-03-01T00:00:00.000Z');
    writeFileSync(join(dataDir, 'identities.json'), '{"version": 1, "identities": ');
    await assert.rejects(store.lookup('x'), { code: 'IDENTITY_ERR_STORE_CORRUPT' });
    await assert.rejects(store.create('y'), { code: 'IDENTITY_ERR_STORE_CORRUPT' });
    assert.equal(readFileSync(join(dataDir, 'identities.json'), 'utf8'), '{"version": 1, "identities": ');
  });

  it('refuses an identity file that other users could have written', async () => {
    const dataDir = tempDataDir();
    const store = new FileIdentityStore({ dataDir });
    await store.create('bot');
    chmodSync(join(dataDir, 'identities.json'), 0o666);
    await assert.rejects(store.lookup('bot'), { code: 'IDENTITY_ERR_INSECURE' });
    await assert.rejects(store.create('other'), /is writable by other users \(mode 666\)/);
    chmodSync(join(dataDir, 'identities.json'), 0o600);
    assert.notEqual(await store.lookup('bot'), null);
  });

  it('tells a user without access to the data directory what to do', async function () {
    this.timeout(30_000);
    requireRoot();
    const dataDir = tempDataDir();
    await new FileIdentityStore({ dataDir }).create('bot');
    const config = join(dataDir, '..', 'gapwatch.yaml');
    writeFileSync(config, `dataDir: ${dataDir}\n`, { mode: 0o644 });
    chmodSync(join(dataDir, '..'), 0o755);
    const result = await runCli(['token', 'list', '--config', config], { uid: nobodyUid() });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /cannot access identity file .*permission denied.*run gapwatch as the user that owns the data directory/s);
    assert.match(result.stderr, /IDENTITY_ERR_ACCESS/);
  });

  it('gapwatch token create prints the token once; list shows no secret; revoke ends it', async function () {
    this.timeout(30_000);
    const dataDir = tempDataDir();
    const config = join(dataDir, '..', 'gapwatch.yaml');
    writeFileSync(config, `dataDir: ${dataDir}\ngateway:\n  identity:\n    scramIterations: 5000\n`);
    const created = await runCli(['token', 'create', 'claude-ci', '--claim', 'owner=alice', '--claim', 'repo=org/app', '--expires', '30d', '--config', config]);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^gwt_[A-Za-z0-9_-]{43}$/);
    assert.match(created.stderr, /shown only this once/);
    const store = new FileIdentityStore({ dataDir });
    assert.equal((await store.lookup('claude-ci'))!.verifier.iterations, 5000);
    assert.equal(await logsIn(store, 'claude-ci', token), true);

    const listed = await runCli(['token', 'list', '--json', '--config', config]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(!listed.stdout.includes(token.slice(4)) && !listed.stdout.includes('SCRAM'));
    const row = JSON.parse(listed.stdout.trim()) as Record<string, unknown>;
    assert.deepEqual([row.login, row.subject, row.status, row.claims], ['claude-ci', 'agent:claude-ci', 'active', { owner: 'alice', repo: 'org/app' }]);

    const again = await runCli(['token', 'create', 'claude-ci', '--config', config]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /IDENTITY_ERR_EXISTS/);
    assert.equal(again.stdout, '');

    const revoked = await runCli(['token', 'revoke', 'claude-ci', '--config', config]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(await store.lookup('claude-ci'), null);
    const table = await runCli(['token', 'list', '--config', config]);
    assert.match(table.stdout, /^claude-ci\s+agent:claude-ci\s+revoked\s/m);
    assert.equal(statSync(join(dataDir, 'identities.json')).mode & 0o777, 0o600);
  });
});

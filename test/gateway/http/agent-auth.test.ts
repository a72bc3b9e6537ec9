import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentAuthenticator } from '../../../gateway/http/agent-auth';
import { FileIdentityStore } from '../../../gateway/identity/identity-store';

describe('gateway/http agent authentication', () => {
  let dir: string;
  let store: FileIdentityStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-http-auth-'));
    store = new FileIdentityStore({ dataDir: dir });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the identity of a bearer token among several, and of Basic login:token', async () => {
    await store.create('first');
    const { token } = await store.create('second', { claims: { repo: 'acme/x' } });
    await store.create('third');
    const auth = new AgentAuthenticator(store);
    const identity = await auth.authenticate(`Bearer ${token}`);
    assert.equal(identity.login, 'second');
    assert.deepEqual(identity.claims, { repo: 'acme/x' });
    assert.equal((await auth.authenticate(`Basic ${Buffer.from(`second:${token}`).toString('base64')}`)).login, 'second');
    await assert.rejects(auth.authenticate(`Basic ${Buffer.from(`first:${token}`).toString('base64')}`), { code: 'GW_ERR_HTTP_AUTH' });
  });

  it('refuses missing, malformed and unknown credentials', async () => {
    await store.create('only');
    const auth = new AgentAuthenticator(store);
    for (const header of [undefined, '', 'Bearer', 'Bearer ', 'Digest abc', 'Basic bm9jb2xvbg==', 'Bearer gwt_wrong']) {
      await assert.rejects(auth.authenticate(header), { code: 'GW_ERR_HTTP_AUTH' }, String(header));
    }
  });

  it('a cached token stops working when it is revoked or re-issued', async () => {
    const { token } = await store.create('agent');
    const auth = new AgentAuthenticator(store);
    await auth.authenticate(`Bearer ${token}`);
    await auth.authenticate(`Bearer ${token}`);
    const { token: replacement } = await store.create('agent', { replace: true });
    await assert.rejects(auth.authenticate(`Bearer ${token}`), { code: 'GW_ERR_HTTP_AUTH' });
    assert.equal((await auth.authenticate(`Bearer ${replacement}`)).login, 'agent');
    await store.revoke('agent');
    await assert.rejects(auth.authenticate(`Bearer ${replacement}`), { code: 'GW_ERR_HTTP_AUTH' });
  });
});

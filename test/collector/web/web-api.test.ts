import { strict as assert } from 'node:assert';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../support/host';
import { ALERTS, SSH_SESSION, startWebFixture, type WebFixture } from './web-fixture';

describe('collector/web API (real embedded store)', function () {
  this.timeout(120_000);
  let fixture: WebFixture;

  before(async () => {
    fixture = await startWebFixture();
  });

  after(async () => {
    await fixture?.stop();
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${fixture.url}${path}`, { headers, redirect: 'manual' });
  const authed = (path: string) => get(path, { Authorization: `Bearer ${fixture.token}` });

  it('keeps the token in a 0600 file in the data dir', () => {
    const mode = statSync(join(fixture.config.dataDir, 'web', 'token')).mode & 0o777;
    assert.equal(mode, 0o600);
    assert.ok(fixture.token.length >= 40);
  });

  it('refuses the API without the token or with a wrong one (401), and sends the security headers', async () => {
    for (const headers of [{}, { Authorization: 'Bearer wrong-token' }, { Authorization: `Basic ${Buffer.from(`x:${fixture.token}`).toString('base64')}` }] as Array<Record<string, string>>) {
      const response = await get('/api/queries', headers);
      assert.equal(response.status, 401);
      assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'WEB_ERR_UNAUTHORIZED');
    }
    const response = await authed('/api/queries');
    assert.equal(response.status, 200);
    const csp = response.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /script-src[^;]*'unsafe-inline'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(response.headers.get('x-frame-options'), 'DENY');
  });

  it('redirects a page without a session to the login page, and the login sets an HttpOnly SameSite=Strict cookie', async () => {
    const page = await get('/alerts?kind=bypass');
    assert.equal(page.status, 303);
    assert.equal(page.headers.get('location'), `/login?next=${encodeURIComponent('/alerts?kind=bypass')}`);

    const wrong = await fetch(`${fixture.url}/login`, { method: 'POST', body: new URLSearchParams({ token: 'nope', next: '/alerts' }), redirect: 'manual' });
    assert.equal(wrong.status, 303);
    assert.match(wrong.headers.get('location') ?? '', /failed=1/);
    assert.equal(wrong.headers.get('set-cookie'), null);

    const login = await fetch(`${fixture.url}/login`, { method: 'POST', body: new URLSearchParams({ token: fixture.token, next: '//evil.example/' }), redirect: 'manual' });
    assert.equal(login.status, 303);
    assert.equal(login.headers.get('location'), '/', 'an off-site next is not followed');
    const cookie = login.headers.get('set-cookie') ?? '';
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const session = cookie.split(';')[0]!;
    assert.equal((await get('/api/queries', { Cookie: session })).status, 200);
    assert.equal((await get('/alerts', { Cookie: session })).status, 200);

    const logout = await fetch(`${fixture.url}/logout`, { method: 'POST', headers: { Cookie: session }, redirect: 'manual' });
    assert.equal(logout.status, 303);
    assert.equal((await get('/api/queries', { Cookie: session })).status, 401, 'the session ends at logout');
  });

  it('refuses a login form posted from another origin', async () => {
    const response = await fetch(`${fixture.url}/login`, { method: 'POST', headers: { Origin: 'http://evil.example' }, body: new URLSearchParams({ token: fixture.token }), redirect: 'manual' });
    assert.equal(response.status, 403);
    assert.equal(response.headers.get('set-cookie'), null);
  });

  it('lists the named queries of dashboards/sql with their parameters', async () => {
    const body = (await (await authed('/api/queries')).json()) as { queries: Array<{ name: string; params: Array<{ name: string }> }> };
    const names = body.queries.map((q) => q.name);
    for (const name of ['recent-alerts', 'audit-gaps', 'session-drill-down', 'agent-run-timeline']) assert.ok(names.includes(name), name);
    assert.ok(body.queries.find((q) => q.name === 'session-drill-down')!.params.some((p) => p.name === 'session_id'));
  });

  it('runs a named query a page at a time', async () => {
    const first = (await (await authed('/api/queries/recent-alerts?_rows=25&from=7d')).json()) as { rows: Array<{ alert_id?: string; summary: string }>; hasMore: boolean; columns: unknown[] };
    assert.equal(first.rows.length, 25);
    assert.equal(first.hasMore, true);
    const last = (await (await authed(`/api/queries/recent-alerts?_rows=25&_offset=50&from=7d`)).json()) as { rows: unknown[]; hasMore: boolean };
    assert.equal(last.rows.length, ALERTS - 50);
    assert.equal(last.hasMore, false);
    assert.match(first.rows[0]!.summary, /#0\)$/, 'newest first');
  });

  it('refuses unknown queries (404), unknown or malformed parameters (400) and any write method (405)', async () => {
    const unknown = await authed('/api/queries/drop-everything');
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'WEB_ERR_NOT_FOUND');
    assert.equal((await authed('/api/queries/..%2F..%2Fetc%2Fpasswd')).status, 404);
    assert.equal((await authed('/api/queries/%E0%A4%A')).status, 400);
    const bogus = await authed('/api/queries/audit-gaps?bogus=1');
    assert.equal(bogus.status, 400);
    assert.match(((await bogus.json()) as { error: { message: string } }).error.message, /parameter bogus is not one this query takes/);
    assert.equal((await authed('/api/queries/session-drill-down')).status, 400, 'a required parameter is missing');
    assert.equal((await authed('/api/queries/audit-gaps?_rows=abc')).status, 400);
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const response = await fetch(`${fixture.url}/api/queries/audit-gaps`, { method, headers: { Authorization: `Bearer ${fixture.token}` }, body: method === 'DELETE' ? undefined : 'INSERT INTO alerts VALUES ()' });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get('allow'), 'GET, HEAD');
    }
  });

  it('answers the CLI formats for `gapwatch query`', async () => {
    const csv = await authed('/api/queries/audit-gaps?_format=csv&from=7d');
    assert.equal(csv.status, 200);
    const text = await csv.text();
    assert.match(text.split('\n')[0]!, /"?source"?,/);
    assert.match(text, /ring buffer full/);
  });

  it('serves the output recording of an SSH session, never the input file', async () => {
    const list = (await (await authed(`/api/recordings/${SSH_SESSION}`)).json()) as { recordings: Array<{ name: string; url: string }> };
    assert.deepEqual(list.recordings.map((r) => r.name), [`${SSH_SESSION}-0.cast`]);
    const cast = await authed(list.recordings[0]!.url);
    assert.equal(cast.status, 200);
    assert.match(await cast.text(), /Linux build-box/);
    assert.equal((await authed(`/api/recordings/${SSH_SESSION}/${SSH_SESSION}-0.input.cast`)).status, 404);
    assert.equal((await authed(`/api/recordings/${SSH_SESSION}/..%2F..%2Fweb%2Ftoken`)).status, 404);
  });

  it('gapwatch query reaches the store through the running web API while this process holds the engine', async () => {
    const result = await runCli(['query', 'audit-gaps', '--from', '7d', '--format', 'csv', '--config', fixture.configFile]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /ring buffer full: 17 records dropped/);
    const sql = await runCli(['query', 'SELECT 1', '--config', fixture.configFile]);
    assert.notEqual(sql.code, 0, 'ad-hoc SQL is not offered by the web API');
    assert.match(sql.stderr, /STORE_ERR_ENGINE_BUSY/);
  });
});

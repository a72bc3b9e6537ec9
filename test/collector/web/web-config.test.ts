import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateToken, secretsEqual, tokenFile } from '../../../collector/web/access-token';
import { parseConfig } from '../../../platform/config';

describe('collector/web configuration and access token', () => {
  it('listens on loopback by default, with a port, a session length and query limits', () => {
    const web = parseConfig('').collector.web;
    assert.equal(web.enabled, true);
    assert.equal(web.listen.host, '127.0.0.1');
    assert.equal(web.listen.port, 7480);
    assert.equal(web.sessionHours, 12);
    assert.equal(web.queryTimeoutSeconds, 30);
  });

  it('refuses unknown keys and impossible ports', () => {
    assert.throws(() => parseConfig('collector:\n  web:\n    listne: {}\n'), /collector\.web\.listne/);
    assert.throws(() => parseConfig('collector:\n  web:\n    listen:\n      port: 70000\n'), /collector\.web\.listen\.port/);
  });

  it('makes the token once, 0600, and keeps it across starts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gapwatch-web-token-'));
    try {
      const token = loadOrCreateToken(dir);
      assert.match(token, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(statSync(tokenFile(dir)).mode & 0o777, 0o600);
      assert.equal(loadOrCreateToken(dir), token);
      assert.equal(readFileSync(tokenFile(dir), 'utf8').trim(), token);
      writeFileSync(tokenFile(dir), 'short\n');
      assert.throws(() => loadOrCreateToken(dir), /WEB_ERR_TOKEN_UNREADABLE|fewer than 32 characters/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('compares secrets whatever their lengths', () => {
    assert.equal(secretsEqual('abc', 'abc'), true);
    assert.equal(secretsEqual('abc', 'abd'), false);
    assert.equal(secretsEqual('', 'abc'), false);
    assert.equal(secretsEqual('abc'.repeat(100), 'abc'), false);
  });
});

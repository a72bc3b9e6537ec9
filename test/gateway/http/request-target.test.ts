import assert from 'node:assert/strict';
import { parseRequestTarget } from '../../../gateway/http/request-target';

describe('gateway/http request target', () => {
  it('gives one spelling per path: decoded unreserved escapes, no empty or dot segments', () => {
    const cases: Array<[string, string, string]> = [
      ['/', '/', ''],
      ['/a/b?x=1&y=%2F', '/a/b', 'x=1&y=%2F'],
      ['/%61dmin/%7euser', '/admin/~user', ''],
      ['//admin///users/', '/admin/users/', ''],
      ['/a/./b/../c', '/a/c', ''],
      ['/a/b/..', '/a/', ''],
      ['/a/%2e%2E/admin', '/admin', ''],
      ['/caf%c3%a9', '/caf%C3%A9', ''],
      // Already in their one spelling (no escape, no empty or dot segment): returned as sent.
      ['/a/b/', '/a/b/', ''],
      ['/a.b/c..d/e.?q=/./..//', '/a.b/c..d/e.', 'q=/./..//'],
      ['/.well-known/x', '/.well-known/x', ''],
      ['/a/.', '/a/', ''],
    ];
    for (const [target, path, query] of cases) assert.deepEqual(parseRequestTarget(target), { path, query }, target);
  });

  it('refuses targets servers could read differently', () => {
    for (const target of ['http://evil/x', '*', '/a%2Fb', '/a%5cb', '/a%00', '/../etc/passwd', '/a/%2e%2e/%2e%2e/x', '/a%zz', '/a#frag', '/a\\b']) {
      assert.throws(() => parseRequestTarget(target), { code: 'GW_ERR_HTTP_BAD_REQUEST' }, target);
    }
  });
});

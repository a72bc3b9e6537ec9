import assert from 'node:assert/strict';
import { parseConfig } from '../../../platform/config';
import { ConfigInvalidError } from '../../../platform/errors';

describe('collector correlation and alert configuration', () => {
  it('defaults: keep other connects, a 10 s join window, log and store sinks, production is critical', () => {
    const { collector } = parseConfig('');
    assert.equal(collector.correlate.otherConnects, 'keep');
    assert.equal(collector.correlate.joinWindowMs, 10_000);
    assert.ok(collector.correlate.knownClients.includes('psql'));
    assert.deepEqual([collector.alerts.log, collector.alerts.store, collector.alerts.webhooks.length], [true, true, 0]);
    assert.ok(collector.alerts.criticalLabels.includes('production'));
    assert.deepEqual(collector.resources, []);
  });

  it('accepts resources with host/port and unix socket upstreams, labels and webhooks with a secret source', () => {
    const { collector } = parseConfig(
      [
        'collector:',
        '  resources:',
        '    - name: orders',
        '      upstream: [{ host: db.internal, port: 5432 }, { unixPath: /run/postgresql/.s.PGSQL.5432 }]',
        '      labels: { production: "true" }',
        '  alerts:',
        '    webhooks:',
        '      - { url: "https://hooks.example/alerts", format: slack, secret: { env: HOOK_SECRET } }',
      ].join('\n'),
    );
    assert.deepEqual(collector.resources[0]!.upstream, [{ host: 'db.internal', port: 5432 }, { unixPath: '/run/postgresql/.s.PGSQL.5432' }]);
    assert.deepEqual(collector.alerts.webhooks[0]!.secret, { env: 'HOOK_SECRET' });
    assert.equal(collector.alerts.webhooks[0]!.attempts, 5);
  });

  it('refuses a webhook that is not http(s) and an unknown other-connects mode', () => {
    assert.throws(() => parseConfig('collector:\n  alerts:\n    webhooks: [{ url: "ftp://x/y" }]\n'), ConfigInvalidError);
    assert.throws(() => parseConfig('collector:\n  correlate:\n    otherConnects: sometimes\n'), /collector\.correlate\.otherConnects.*expected one of "keep", "sample", "drop"/s);
  });
});

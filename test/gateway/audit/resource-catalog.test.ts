import { strict as assert } from 'node:assert';
import { resourceCatalog } from '../../../gateway/audit/resource-catalog';
import { parseConfig } from '../../../platform/config';

describe('gateway/audit: the ListResources catalogue', () => {
  it('reports IP, named, unix-socket and HTTP upstreams with their tags, and every listener', () => {
    const config = parseConfig(`
gateway:
  id: gw-1
  postgres:
    resources:
      - { name: orders, tags: [production], upstream: { host: "::ffff:10.0.0.5", port: 5433, database: orders, user: gw } }
      - { name: billing, upstream: { host: db.internal, database: billing, user: gw } }
      - { name: local, upstream: { socket: /var/run/postgresql, port: 5432, database: local, user: gw } }
  http:
    resources:
      - { name: github, tags: [production, external], hosts: [github.local], upstream: { url: "https://api.github.example/v3" } }
      - { name: svc, pathPrefix: /svc/, upstream: { url: "http://[fd00::7]:8080" } }
`);
    const answer = resourceCatalog({
      gatewayId: 'gw-1',
      postgres: config.gateway.postgres,
      postgresListener: { host: '0.0.0.0', port: 6543 },
      http: config.gateway.http,
      httpListener: { host: '::', port: 8080 },
      auditListener: { host: '127.0.0.1', port: 7443 },
    });
    assert.deepEqual(
      answer.resources!.map((r) => [r.name, r.protocol, r.upstream, r.tags]),
      [
        ['orders', 'PROTOCOL_POSTGRES', [{ inet: { ip: '10.0.0.5', port: 5433 } }], ['production']],
        ['billing', 'PROTOCOL_POSTGRES', [{ named: { hostName: 'db.internal', port: 5432 } }], []],
        ['local', 'PROTOCOL_POSTGRES', [{ unixPath: '/var/run/postgresql/.s.PGSQL.5432' }], []],
        ['github', 'PROTOCOL_HTTP', [{ named: { hostName: 'api.github.example', port: 443 } }], ['production', 'external']],
        ['svc', 'PROTOCOL_HTTP', [{ inet: { ip: 'fd00::7', port: 8080 } }], []],
      ],
    );
    assert.deepEqual(answer.resources![0]!.listener, [{ inet: { ip: '0.0.0.0', port: 6543 } }]);
    assert.deepEqual(answer.resources![3]!.listener, [{ inet: { ip: '::', port: 8080 } }]);
    assert.deepEqual(
      answer.listeners!.map((l) => [l.role, l.protocol, l.endpoint]),
      [
        ['postgres', 'PROTOCOL_POSTGRES', { inet: { ip: '0.0.0.0', port: 6543 } }],
        ['http', 'PROTOCOL_HTTP', { inet: { ip: '::', port: 8080 } }],
        ['audit', 'PROTOCOL_UNSPECIFIED', { inet: { ip: '127.0.0.1', port: 7443 } }],
      ],
    );
  });
});

describe('gateway/audit: SSH resources in the ListResources catalogue', () => {
  it('reports SSH upstreams (host and port, named or IP) with their tags and the SSH listener', () => {
    const config = parseConfig(`
gateway:
  id: gw-1
  ssh:
    resources:
      - { name: web1, tags: [production], upstream: { host: 10.0.0.8, user: deploy, hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMOfAHuvL7UjqzXAk1b3NX4nEEjOcxdS02DXyzxuq6eO"], password: { value: pw } } }
      - { name: bastion, upstream: { host: bastion.internal, port: 2200, user: ops, hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMOfAHuvL7UjqzXAk1b3NX4nEEjOcxdS02DXyzxuq6eO"], password: { value: pw } } }
`);
    const answer = resourceCatalog({
      gatewayId: 'gw-1',
      postgres: config.gateway.postgres,
      postgresListener: null,
      ssh: config.gateway.ssh,
      sshListener: { host: '127.0.0.1', port: 2222 },
      auditListener: null,
    });
    assert.deepEqual(
      answer.resources!.map((r) => [r.name, r.protocol, r.upstream, r.listener, r.labels, r.tags]),
      [
        ['web1', 'PROTOCOL_SSH', [{ inet: { ip: '10.0.0.8', port: 22 } }], [{ inet: { ip: '127.0.0.1', port: 2222 } }], { user: 'deploy' }, ['production']],
        ['bastion', 'PROTOCOL_SSH', [{ named: { hostName: 'bastion.internal', port: 2200 } }], [{ inet: { ip: '127.0.0.1', port: 2222 } }], { user: 'ops' }, []],
      ],
    );
    assert.deepEqual(answer.listeners!.map((l) => [l.role, l.protocol, l.endpoint]), [['ssh', 'PROTOCOL_SSH', { inet: { ip: '127.0.0.1', port: 2222 } }]]);
  });
});

import assert from 'node:assert/strict';
import { Inventory, normaliseIp } from '../../../collector/correlate/inventory';
import { parseConfig } from '../../../platform/config';
import { silentLog } from '../store/store-fixture';

describe('collector/correlate inventory', () => {
  it('normalises v4-mapped IPv6 to IPv4', () => {
    assert.equal(normaliseIp('::ffff:10.0.0.5'), '10.0.0.5');
    assert.equal(normaliseIp('2001:DB8::1'), '2001:db8::1');
  });

  it('merges gateway resources with local ones by name, resolves host names, and tells listeners from upstreams', async () => {
    const inventory = new Inventory(60_000, silentLog);
    const config = parseConfig(
      'collector:\n  resources:\n    - name: orders\n      labels: { production: "true" }\n      upstream:\n        - { host: localhost, port: 5999 }\n        - { unixPath: /run/orders/.s.PGSQL.5999 }\n',
    );
    await inventory.setConfigured(config.collector.resources);
    await inventory.setFromGateway({
      gatewayId: 'gw-1',
      resources: [
        {
          name: 'orders',
          protocol: 'PROTOCOL_POSTGRES',
          upstream: [
            { inet: { ip: '2001:db8::5', port: 5432 }, address: 'inet' },
            { named: { hostName: 'localhost', port: 5998 }, address: 'named' },
          ],
          listener: [{ inet: { ip: '0.0.0.0', port: 6543 }, address: 'inet' }],
          labels: { team: 'shop' },
          tags: ['pci'],
        },
      ],
      listeners: [],
    });
    const [orders] = inventory.resources();
    assert.deepEqual(orders!.labels, { production: 'true', team: 'shop', pci: 'true' }, 'gateway tags count as labels');
    assert.equal(inventory.matchInet('127.0.0.1', 5998)?.role, 'upstream', 'a named gateway endpoint is resolved');
    assert.equal(inventory.matchInet('127.0.0.1', 5999)?.role, 'upstream', 'localhost resolved');
    assert.equal(inventory.matchInet('::ffff:127.0.0.1', 5999)?.resource.name, 'orders', 'v4-mapped');
    assert.equal(inventory.matchInet('2001:db8::5', 5432)?.role, 'upstream');
    assert.equal(inventory.matchInet('127.0.0.1', 6543)?.role, 'listener', 'a wildcard listener on a local address');
    assert.equal(inventory.matchInet('10.9.9.9', 6543), undefined, 'a wildcard listener is local only');
    assert.equal(inventory.matchUnix('/run/orders/.s.PGSQL.5999')?.role, 'upstream');
    assert.equal(inventory.matchInet('127.0.0.1', 5432), undefined);
    assert.equal(inventory.upstreamHost('LOCALHOST')?.name, 'orders');
  });
});

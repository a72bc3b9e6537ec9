import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { gatewayComponent } from '../../../gateway/gateway-component';
import { FileIdentityStore } from '../../../gateway/identity/identity-store';
import { parseConfig } from '../../../platform/config';
import { createLogger } from '../../../platform/log';
import { startHttpUpstream } from '../../support/http-upstream';

describe('gateway component with gateway.http resources', function () {
  this.timeout(60_000);

  it('starts the HTTP listener beside the PostgreSQL one and proxies through it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gapwatch-http-component-'));
    const upstream = await startHttpUpstream();
    const config = parseConfig(
      stringify({
        dataDir,
        gateway: {
          postgres: { listen: { host: '127.0.0.1', port: 0 } },
          http: {
            listen: { host: '127.0.0.1', port: 0 },
            resources: [{ name: 'svc', pathPrefix: '/svc/', upstream: { url: upstream.url }, credential: { source: { value: 'component-secret' } } }],
          },
        },
      }),
    );
    const { token } = await new FileIdentityStore({ dataDir }).create('agent-one');
    const component = gatewayComponent(config, createLogger({ level: 'fatal', format: 'json' }));
    try {
      const lines = await component.start();
      const line = lines.find((l) => l.startsWith('http on '));
      assert.ok(line, lines.join('\n'));
      const port = Number(/:(\d+),/.exec(line)![1]);
      const response = await fetch(`http://127.0.0.1:${port}/svc/echo/component`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(response.status, 200);
      const seen = upstream.received.find((r) => r.url === '/echo/component')!;
      assert.ok(seen.rawHeaders.includes('Bearer component-secret'));
    } finally {
      await component.stop();
      await upstream.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

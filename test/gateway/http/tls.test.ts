import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevCertificates, type DevCertificateFiles } from '../../../gateway/audit/dev-certificates';
import { startHttpGateway, type HttpGatewayUnderTest } from '../../support/http-gateway';

/**
 * TLS on both legs: agents reach the gateway over HTTPS (gateway.http.tls), and the gateway reaches
 * an HTTPS upstream whose certificate a private CA signed (upstream.ca), verified — an upstream the
 * CA does not vouch for is refused with 502 before anything is sent to it.
 */

function curl(args: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '20', '-w', '\n%{http_code}', ...args], (err, stdout, stderr) => {
      if (err) return reject(new Error(`curl failed: ${stderr || err.message}`));
      const at = stdout.lastIndexOf('\n');
      resolve({ status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at) });
    });
  });
}

describe('gateway/http over TLS (agent leg and upstream leg)', function () {
  this.timeout(60_000);
  let dir: string;
  let certs: DevCertificateFiles;
  let upstream: Server;
  let upstreamPort: number;
  let gw: HttpGatewayUnderTest;
  const seen: Array<{ url: string; authorization: string }> = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-http-tls-'));
    certs = createDevCertificates({ dir: join(dir, 'certs') });
    upstream = createServer({ cert: readFileSync(certs.gatewayCert), key: readFileSync(certs.gatewayKey) }, (req, res) => {
      seen.push({ url: req.url ?? '', authorization: req.headers.authorization ?? '' });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`secure hello ${req.url}\n`);
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', () => resolve()));
    upstreamPort = (upstream.address() as AddressInfo).port;
    gw = await startHttpGateway({
      tls: { cert: certs.gatewayCert, key: certs.gatewayKey },
      resources: [
        { name: 'secure', pathPrefix: '/secure/', upstream: { url: `https://127.0.0.1:${upstreamPort}`, ca: certs.caCert }, credential: { source: { value: 'tls-upstream-secret' } } },
        { name: 'unvouched', pathPrefix: '/unvouched/', upstream: { url: `https://127.0.0.1:${upstreamPort}` } },
      ],
    });
  });

  after(async () => {
    await gw?.stop();
    await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves agents over HTTPS and forwards to an HTTPS upstream signed by the configured CA, credential swapped', async () => {
    const result = await curl(['--cacert', certs.caCert, '-H', `Authorization: Bearer ${gw.token}`, `https://127.0.0.1:${gw.port}/secure/ping?x=1`]);
    assert.equal(result.status, 200, result.body);
    assert.equal(result.body, 'secure hello /ping?x=1\n');
    assert.deepEqual(seen.find((s) => s.url === '/ping?x=1'), { url: '/ping?x=1', authorization: 'Bearer tls-upstream-secret' });
  });

  it('refuses (502) an HTTPS upstream whose certificate no trusted CA signed, and sends it nothing', async () => {
    const before = seen.length;
    const result = await curl(['--cacert', certs.caCert, '-H', `Authorization: Bearer ${gw.token}`, `https://127.0.0.1:${gw.port}/unvouched/ping`]);
    assert.equal(result.status, 502, result.body);
    assert.equal((JSON.parse(result.body) as { error: string }).error, 'GW_ERR_HTTP_UPSTREAM');
    assert.equal(seen.length, before);
  });
});

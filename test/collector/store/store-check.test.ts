import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { openStore } from '../../../collector/store/connection';
import { storeCheck } from '../../../collector/store/store-check';
import { tempConfig } from './store-fixture';

describe('collector/store doctor check', function () {
  this.timeout(30_000);

  it('tries the embedded engine without creating the store directory', async () => {
    const config = tempConfig();
    const result = await storeCheck(config)();
    assert.equal(result.status, 'ok');
    assert.match(result.detail, /^embedded ClickHouse \d+\.\d+.*\/store \(created at first start\)$/);
    assert.ok(!existsSync(`${config.dataDir}/store`));
  });

  it('opens an existing embedded store', async () => {
    const config = tempConfig();
    await (await openStore(config)).close();
    const result = await storeCheck(config)();
    assert.equal(result.status, 'ok');
    assert.doesNotMatch(result.detail, /created at first start/);
  });

  it('warns, with a fix, when a server does not answer', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const result = await storeCheck(tempConfig(`url: http://127.0.0.1:${port}\npassword: hunter2`))();
    assert.equal(result.status, 'warn');
    assert.match(result.detail, new RegExp(`http://127\\.0\\.0\\.1:${port}/ does not answer: .*ECONNREFUSED`));
    assert.doesNotMatch(JSON.stringify(result), /hunter2/);
    assert.match(result.fix ?? '', /spools batches to disk/);
  });

  it('fails when a TLS file cannot be read', async () => {
    const result = await storeCheck(tempConfig('url: https://ch.example:8443\ntls: { caFile: /nonexistent/ca.pem }'))();
    assert.equal(result.status, 'fail');
    assert.match(result.detail, /cannot read store\.tls\.caFile \/nonexistent\/ca\.pem: ENOENT/);
  });

  it('fails when the password file cannot be read', async () => {
    const result = await storeCheck(tempConfig('url: https://ch.example:8443\npasswordFile: /nonexistent/ch-password'))();
    assert.equal(result.status, 'fail');
    assert.match(result.detail, /cannot read the store password from store\.passwordFile \/nonexistent\/ch-password/);
  });
});

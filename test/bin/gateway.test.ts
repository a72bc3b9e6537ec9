import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { psql } from '../gateway/postgres/clients';
import { cliPath, runCli } from '../support/host';
import { freePort, startPostgres, type PostgresServer } from '../support/postgres';

describe('gapwatch gateway', function () {
  this.timeout(60_000);
  let pg: PostgresServer;
  let dir: string;

  before(async () => {
    pg = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-gateway-cli-'));
  });
  after(async () => {
    await pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the configured resource to an agent with a token, journals it, and stops cleanly on SIGINT', async () => {
    const port = await freePort();
    const configFile = join(dir, 'gapwatch.yaml');
    process.env.GAPWATCH_TEST_UPSTREAM_PASSWORD = pg.password;
    writeFileSync(
      configFile,
      stringify({
        dataDir: join(dir, 'data'),
        gateway: {
          postgres: {
            listen: { host: '127.0.0.1', port },
            resources: [{ name: 'shop', upstream: { port: pg.port, database: pg.database, user: pg.user, password: { env: 'GAPWATCH_TEST_UPSTREAM_PASSWORD' } } }],
          },
        },
      }),
    );
    const created = await runCli(['token', 'create', 'ci-agent', '--config', configFile]);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim().split('\n').pop()!.trim();

    const child = spawn(process.execPath, [cliPath, 'gateway', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      for (let i = 0; !stdout.includes('Press Ctrl-C') && i < 200; i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(stdout, new RegExp(`postgres on 127\\.0\\.0\\.1:${port}.*resources: shop`), stderr);
      const result = await psql({ host: '127.0.0.1', port, user: 'ci-agent', password: token, database: 'shop' }, ['-c', 'SELECT current_user']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), pg.user, 'the agent runs as the resource account without knowing its password');
      assert.doesNotMatch(stdout + stderr, new RegExp(pg.password), 'the upstream password never appears in output or logs');
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0, stderr);
    assert.match(stdout, /gapwatch gateway stopped/);
    delete process.env.GAPWATCH_TEST_UPSTREAM_PASSWORD;
    const verified = await runCli(['verify', '--config', configFile]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  });
});

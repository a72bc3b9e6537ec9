import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageVersion } from '../../platform/package-root';
import { cliPath, requireRoot, runCli } from '../support/host';

/** Every command the CLI lists in its help, so a new command cannot ship without --help and --version. */
function listedCommands(): string[] {
  const help = execFileSync(process.execPath, [cliPath, '--help']).toString();
  const section = help.slice(help.indexOf('Commands:'));
  return [...section.matchAll(/^  ([a-z][a-z-]*)\b/gm)].map((m) => m[1]!).filter((name) => name !== 'help');
}

const COMMANDS = listedCommands();

describe('bin/gapwatch', function () {
  this.timeout(60_000);

  it('prints help listing every command', async () => {
    const result = await runCli(['--help']);
    assert.equal(result.code, 0);
    for (const command of ['up', 'doctor']) assert.ok(COMMANDS.includes(command), `${command} missing from --help`);
  });

  for (const command of COMMANDS) {
    it(`${command} has --help and --version`, async () => {
      const help = await runCli([command, '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, new RegExp(`^Usage: gapwatch ${command}`));
      // Command groups (token) carry --config on their subcommands, checked with the identity tests.
      if (!/^Commands:/m.test(help.stdout)) assert.match(help.stdout, /--config <file>/);
      const version = await runCli([command, '--version']);
      assert.equal(version.code, 0);
      assert.equal(version.stdout.trim(), packageVersion());
    });
  }

  it('refuses an unknown command', async () => {
    const result = await runCli(['frobnicate']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /unknown command 'frobnicate'/);
  });

  it('refuses an invalid configuration with exit 2, key path, value and expectation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gapwatch-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'log:\n  level: chatty\n');
    const result = await runCli(['doctor', '--config', file]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /bad\.yaml is invalid:\n  - log\.level \(line 2\): got "chatty", expected one of/);
    assert.match(result.stderr, /CONFIG_ERR_INVALID/);
  });

  describe('up', () => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      it(`says what it started, keeps running, and stops cleanly on ${signal}`, async () => {
        requireRoot();
        const dir = mkdtempSync(join(tmpdir(), 'gapwatch-up-'));
        const dataDir = join(dir, 'data');
        writeFileSync(join(dir, 'gapwatch.yaml'), `dataDir: ${dataDir}\nlog:\n  format: json\n`);
        const child = spawn(process.execPath, [cliPath, 'up'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
        await new Promise<void>((resolve, reject) => {
          child.stdout.on('data', (chunk: Buffer) => {
            stdout += chunk.toString();
            if (stdout.includes('Press Ctrl-C to stop.')) resolve();
          });
          child.on('close', () => reject(new Error(`up exited early:\n${stdout}\n${stderr}`)));
        });
        assert.match(stdout, new RegExp(`gapwatch \\(config ${join(dir, 'gapwatch.yaml').replace(/[.]/g, '\\.')}\\) is up:`));
        assert.match(stdout, new RegExp(`data directory: ${dataDir} \\(locked by pid ${child.pid}\\)`));
        assert.ok(existsSync(join(dataDir, 'gapwatch.pid')));
        assert.match(stdout, new RegExp(`store: embedded ClickHouse, data in ${join(dataDir, 'store')} \\(schema version \\d+\\)`));
        // No resource configured: a demo database, reachable through the gateway and around it, guarded by the collector.
        assert.match(stdout, /demo postgres: a real PostgreSQL for the demo resource "demo" on 127\.0\.0\.1:\d+/);
        assert.match(stdout, /collector: protecting 1 resource: demo \(1 gateway feed\)/);
        assert.match(stdout, /try it: +PGPASSWORD=gwt_\S+ psql "host=127\.0\.0\.1 port=\d+ dbname=demo user=demo-agent"/);
        assert.match(stdout, /try it: +psql -w "host=127\.0\.0\.1 port=\d+ dbname=demo user=gapwatch_demo"/);

        // The web UI: its address and access token, and `gapwatch query` reaching the store through it
        // (the embedded engine is bound to this process).
        const web = /web UI: (http:\/\/127\.0\.0\.1:\d+)\/ \(log in with the access token (\S+);/.exec(stdout);
        assert.ok(web, stdout);
        assert.equal((await fetch(`${web[1]}/api/queries`)).status, 401);
        assert.equal((await fetch(`${web[1]}/api/queries`, { headers: { Authorization: `Bearer ${web[2]}` } })).status, 200);
        const query = await runCli(['query', 'overview', '--format', 'json'], { cwd: dir });
        assert.equal(query.code, 0, query.stderr);
        assert.match(query.stdout, /"coverage_pct":/);

        // A second instance on the same data directory is refused while the first runs.
        const second = await runCli(['up'], { cwd: dir });
        assert.equal(second.code, 1);
        assert.match(second.stderr, /data directory .* is in use by gapwatch process \d+/);

        child.kill(signal);
        assert.equal(await exited, 0, stderr);
        assert.match(stdout, /gapwatch stopped\./);
        assert.ok(!existsSync(join(dataDir, 'gapwatch.pid')), 'lock released');
      });
    }
  });
});

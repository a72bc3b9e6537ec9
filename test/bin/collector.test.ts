import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, requireRoot } from '../support/host';

describe('gapwatch collector', () => {
  it('runs sensor, correlation and store with the configured resources, and stops cleanly on SIGTERM', async () => {
    requireRoot();
    const dir = mkdtempSync(join(tmpdir(), 'gapwatch-collector-'));
    try {
      const config = join(dir, 'gapwatch.yaml');
      writeFileSync(
        config,
        `dataDir: ${join(dir, 'data')}\nlog:\n  format: json\ncollector:\n  resources:\n    - name: billing\n      upstream: [{ host: 127.0.0.1, port: 1 }]\n`,
      );
      const child = spawn(process.execPath, [cliPath, 'collector', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | string | null>((resolve) => child.on('close', (code, signal) => resolve(code ?? signal)));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          if (stdout.includes('Press Ctrl-C to stop.')) resolve();
        });
        child.on('close', () => reject(new Error(`collector exited early:\n${stdout}\n${stderr}`)));
      });
      assert.match(stdout, /gapwatch collector is up:/);
      assert.match(stdout, /collector: protecting 1 resource: billing \(1 gateway feed\)/);
      assert.match(stdout, /gateway feed: no gateways configured \(collector\.gateways\)/);
      assert.match(stdout, /collector: alerts to log, store/);
      assert.match(stdout, /collector: protected resources reload when .*gapwatch\.yaml changes \(or on SIGHUP\)/);

      // Resources reload from the changed file; an invalid file keeps them; SIGHUP reads the file again.
      const logged = async (pattern: RegExp): Promise<void> => {
        const deadline = Date.now() + 15_000;
        while (!pattern.test(stderr)) {
          if (Date.now() > deadline) assert.fail(`the collector did not log ${pattern}:\n${stderr}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      };
      const yaml = (names: string[], extra = ''): string =>
        `dataDir: ${join(dir, 'data')}\nlog:\n  format: json\ncollector:\n  resources:\n${names.map((n, i) => `    - name: ${n}\n      upstream: [{ host: 127.0.0.1, port: ${i + 1} }]\n`).join('')}${extra}`;
      writeFileSync(config, yaml(['billing', 'orders']));
      await logged(/protected resources reloaded from .*: billing, orders/);
      writeFileSync(config, yaml(['billing'], '  nonsense: 1\n'));
      await logged(/configuration reload refused, the previous protected resources stay in force \(billing, orders\).*collector\.nonsense/);
      const reloads = (stderr.match(/protected resources reloaded/g) ?? []).length;
      child.kill('SIGHUP');
      await logged(/"why":"SIGHUP".*configuration reload refused/);
      assert.equal((stderr.match(/protected resources reloaded/g) ?? []).length, reloads);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, `${stdout}\n${stderr}`);
      assert.match(stdout, /gapwatch collector stopped\./);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

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
      child.kill('SIGTERM');
      assert.equal(await exited, 0, `${stdout}\n${stderr}`);
      assert.match(stdout, /gapwatch collector stopped\./);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

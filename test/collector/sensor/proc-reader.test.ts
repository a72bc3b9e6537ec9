import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { markerProbe, readProcess } from '../../../collector/sensor/proc-reader';

describe('collector/sensor/proc-reader', () => {
  it('reads a live process from /proc and finds an environment marker naming its agent', async () => {
    const child = spawn('/bin/sleep', ['30'], { stdio: 'ignore', env: { ...process.env, GAPWATCH_AGENT_RUN: 'codex', CLAUDECODE: '1' } });
    try {
      await new Promise((r) => setTimeout(r, 100));
      const snapshot = readProcess(child.pid!);
      assert.ok(snapshot);
      assert.deepEqual(snapshot.argv, ['/bin/sleep', '30']);
      assert.equal(snapshot.ppid, process.pid);
      assert.equal(markerProbe({ envMarkers: ['GAPWATCH_AGENT_RUN'], cgroupMarkers: [] })!(child.pid!, null), 'codex');
      // A flag-like value is named by its variable.
      assert.equal(markerProbe({ envMarkers: ['CLAUDECODE'], cgroupMarkers: [] })!(child.pid!, null), 'CLAUDECODE');
      assert.equal(markerProbe({ envMarkers: ['NOT_SET_ANYWHERE'], cgroupMarkers: [] })!(child.pid!, null), null);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('finds a cgroup marker and remembers the verdict per cgroup', () => {
    const root = mkdtempSync(join(tmpdir(), 'gapwatch-proc-'));
    try {
      mkdirSync(join(root, '100'));
      writeFileSync(join(root, '100', 'cgroup'), '1:name=systemd:/\n0::/agents.slice/claude-run-7.scope\n');
      const probe = markerProbe({ envMarkers: [], cgroupMarkers: [{ agent: 'claude', pattern: '/claude-run-\\d+\\.scope$' }] }, root)!;
      assert.equal(probe(100, 42n), 'claude');
      // pid 101 has no /proc entry here: the cgroup id alone answers.
      assert.equal(probe(101, 42n), 'claude');
      assert.equal(probe(101, 43n), null);
      assert.equal(markerProbe({ envMarkers: [], cgroupMarkers: [] }), null, 'no markers configured: no probe, no cost');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ObservationHeartbeat } from '../../../collector/sensor/observation-heartbeat';

describe('collector/sensor: observation heartbeat', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'gapwatch-heartbeat-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const fail = (err: unknown): never => {
    throw err;
  };

  it('reports no window on a first run, and the stopped-to-started window after a clean stop', () => {
    const first = new ObservationHeartbeat(dir, 'host-a', fail);
    assert.equal(first.unobservedUntil(1_000n), null);
    first.start(1_000n);
    first.stop();
    const stoppedAt = first.previous()!;
    assert.equal(stoppedAt.clean, true);
    const later = BigInt(stoppedAt.lastUnixNano) + 5_000_000_000n;
    const second = new ObservationHeartbeat(dir, 'host-a', fail);
    assert.deepEqual(second.unobservedUntil(later), { startUnixNano: stoppedAt.lastUnixNano, endUnixNano: later.toString(), clean: true });
    second.start(later);
    assert.equal(second.unobservedUntil(later), null, 'the first beat replaced the previous run\'s last one');
    second.stop();
  });

  it('after a run that never stopped (killed), the window starts at its last beat and says so', () => {
    const killed = new ObservationHeartbeat(dir, 'host-a', fail, 10);
    killed.start(BigInt(Date.now()) * 1_000_000n);
    const lastBeat = killed.previous()!;
    assert.equal(lastBeat.clean, false);
    const restarted = new ObservationHeartbeat(dir, 'host-a', fail);
    const now = BigInt(lastBeat.lastUnixNano) + 1_000_000_000n;
    const window = restarted.unobservedUntil(now)!;
    restarted.start(now);
    assert.equal(window.clean, false);
    assert.ok(BigInt(window.startUnixNano) >= BigInt(lastBeat.lastUnixNano) && BigInt(window.startUnixNano) < now);
    assert.equal(window.endUnixNano, now.toString());
    restarted.stop();
    killed.stop();
  });

  it('ignores a heartbeat of another host and a damaged file', () => {
    const other = new ObservationHeartbeat(dir, 'host-b', fail);
    other.start(1_000n);
    other.stop();
    assert.equal(new ObservationHeartbeat(dir, 'host-a', fail).previous(), null);
    writeFileSync(join(dir, 'collector', 'heartbeat.json'), '{"host":"host-a","lastUnix');
    assert.equal(new ObservationHeartbeat(dir, 'host-a', fail).previous(), null);
  });
});

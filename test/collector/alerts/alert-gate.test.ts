import assert from 'node:assert/strict';
import type { CollectorAlert } from '../../../collector/alerts/alert';
import { AlertGate } from '../../../collector/alerts/alert-gate';

function alert(id: string, time = 1): CollectorAlert {
  return {
    alertId: id,
    kind: 'bypass',
    rule: 'connect-bypass',
    severity: 'warning',
    host: 'h',
    timeUnixNano: String(time),
    kernelBootNs: null,
    summary: id,
    process: null,
    lineage: [],
    agentRun: null,
    resource: 'orders',
    destination: '10.0.0.5:5432',
    eventId: id,
    count: 1,
    lastTimeUnixNano: String(time),
  };
}

describe('collector/alerts gate (de-duplication and rate limit)', () => {
  it('sends the first alert of a key at once and folds repeats within the window into one with the count', () => {
    let now = 0;
    const out: CollectorAlert[] = [];
    const gate = new AlertGate({ dedupWindowMs: 1000, maxPerMinute: 100 }, (a) => out.push({ ...a }), () => now);
    gate.raise('k', alert('first', 1));
    for (let i = 2; i <= 4; i++) gate.raise('k', alert(`repeat-${i}`, i));
    gate.raise('other', alert('other', 5));
    assert.deepEqual(out.map((a) => [a.alertId, a.count]), [['first', 1], ['other', 1]]);
    now = 1500;
    gate.tick();
    assert.deepEqual(out.map((a) => [a.alertId, a.count]), [['first', 1], ['other', 1], ['repeat-2', 3]]);
    assert.equal(out[2]!.lastTimeUnixNano, '4');
    now = 3000;
    gate.tick();
    gate.raise('k', alert('later', 9));
    assert.equal(out.at(-1)!.alertId, 'later', 'after a quiet window the key alerts at once again');
  });

  it('holds alerts above the rate and reports them as the budget returns; close loses no count', () => {
    let now = 0;
    const out: CollectorAlert[] = [];
    const gate = new AlertGate({ dedupWindowMs: 0, maxPerMinute: 2 }, (a) => out.push({ ...a }), () => now);
    for (let i = 0; i < 5; i++) gate.raise(`k${i}`, alert(`a${i}`));
    assert.equal(out.length, 2);
    now = 30_000; // one token back
    gate.tick();
    assert.equal(out.length, 3);
    gate.close();
    assert.equal(out.length, 5);
    assert.equal(out.reduce((n, a) => n + a.count, 0), 5, 'every occurrence is counted once');
  });
});

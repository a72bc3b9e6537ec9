import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseConfig } from '../../../platform/config';
import { journalOptionsFromConfig } from '../../../gateway/journal/journal';

describe('gateway/journal configuration', () => {
  it('defaults to 64 MiB segments, 90 days, a checkpoint per 1000 records or 10 s, under <dataDir>/journal/<id>', () => {
    const config = parseConfig('dataDir: /var/lib/gapwatch\ngateway:\n  id: gw-7\n');
    const options = journalOptionsFromConfig(config);
    assert.equal(options.dir, join('/var/lib/gapwatch', 'journal', 'gw-7'));
    assert.equal(options.gatewayId, 'gw-7');
    assert.equal(options.segmentBytes, 64 * 1024 * 1024);
    assert.deepEqual(options.retention, { maxAgeMs: 90 * 24 * 3_600_000, maxBytes: 0 });
    assert.deepEqual(options.checkpoint, { everyRecords: 1000, everyMs: 10_000 });
    assert.equal(options.sync, 'group');
  });

  it('takes the gateway.journal section and refuses what would break it', () => {
    const config = parseConfig('gateway:\n  journal:\n    segmentBytes: 1048576\n    retention:\n      maxAgeHours: 0\n      maxBytes: 1073741824\n    checkpoint:\n      everyRecords: 50\n      everySeconds: 2\n');
    const options = journalOptionsFromConfig(config);
    assert.equal(options.segmentBytes, 1048576);
    assert.deepEqual(options.retention, { maxAgeMs: 0, maxBytes: 1073741824 });
    assert.deepEqual(options.checkpoint, { everyRecords: 50, everyMs: 2000 });
    assert.throws(() => parseConfig('gateway:\n  journal:\n    segmentBytes: 100\n'), /gateway\.journal\.segmentBytes/);
    assert.throws(() => parseConfig('gateway:\n  journal:\n    checkpoint:\n      everyRecords: 0\n'), /gateway\.journal\.checkpoint\.everyRecords/);
    assert.throws(() => parseConfig('gateway:\n  journal:\n    fsync: false\n'), /gateway\.journal\.fsync/);
  });
});

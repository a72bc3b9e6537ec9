import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { Journal } from '../../gateway/journal/journal';
import { listSegments } from '../../gateway/journal/segment-directory';
import { removeScratchDirs, statementEvent, tempJournalDir } from '../gateway/journal/journal-files';
import { runCli } from '../support/host';

describe('gapwatch verify', function () {
  this.timeout(60_000);
  after(removeScratchDirs);

  it('exits 0 for an intact journal and 1 with the problem named once a record is changed', async () => {
    const dir = tempJournalDir();
    const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    for (let i = 0; i < 5; i++) await journal.append(statementEvent(i));
    await journal.close();
    const good = await runCli(['verify', dir]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /: OK\n/);
    assert.match(good.stdout, /checkpoints verified 1 of 1/);
    const json = await runCli(['verify', dir, '--json']);
    assert.equal(JSON.parse(json.stdout).lastSeq, '6');

    const segment = listSegments(dir)[0]!.path;
    const bytes = readFileSync(segment);
    const at = bytes.indexOf('select 3');
    bytes.write('select 9', at);
    writeFileSync(segment, bytes);
    const bad = await runCli(['verify', dir]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /PROBLEMS FOUND/);
    assert.match(bad.stdout, /corrupt at seq 4: .*checksum/);
  });

  it('has --help and --version', async () => {
    const help = await runCli(['verify', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: gapwatch verify/);
    assert.match(help.stdout, /--public-key <file>/);
  });
});

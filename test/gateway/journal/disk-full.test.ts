import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal } from '../../../gateway/journal/journal';
import { verifyJournal } from '../../../gateway/journal/verify';
import { requireRoot } from '../../support/host';
import { statementEvent } from './journal-files';

describe('gateway/journal on a full disk (real tmpfs mount)', function () {
  this.timeout(60_000);
  let mountPoint: string;

  before(() => {
    requireRoot();
    mountPoint = mkdtempSync(join(tmpdir(), 'gapwatch-journal-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', mountPoint]);
  });

  after(() => {
    if (mountPoint) {
      execFileSync('umount', [mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    }
  });

  it('fails stop on ENOSPC, rejects the unwritten appends, and reopens with every acknowledged record', async () => {
    const dir = join(mountPoint, 'journal', 'gw-test');
    mkdirSync(dir, { recursive: true });
    const journal = await Journal.open({ dir, gatewayId: 'gw-test' });
    const following = (async () => {
      let seen = 0;
      for await (const record of journal.read(1n, { follow: true })) seen += record.seq.length > 0 ? 1 : 0;
      return seen;
    })();
    const text = 'y'.repeat(8 * 1024);
    const acked: bigint[] = [];
    let failure: (Error & { code?: string }) | undefined;
    for (let i = 0; i < 200 && !failure; i++) {
      const wave = await Promise.allSettled(Array.from({ length: 4 }, (_, j) => journal.append(statementEvent(i * 4 + j, text))));
      for (const result of wave) {
        if (result.status === 'fulfilled') acked.push(result.value.seq);
        else failure = result.reason as Error & { code?: string };
      }
    }
    assert.equal(failure?.code, 'GW_ERR_JOURNAL_WRITE_FAILED');
    assert.match(failure!.message, /ENOSPC|no space/i);
    await assert.rejects(journal.append(statementEvent(9999)), { code: 'GW_ERR_JOURNAL_WRITE_FAILED' });
    // A follower is told, rather than left to take the failure for the end of the journal.
    await assert.rejects(following, { code: 'GW_ERR_JOURNAL_WRITE_FAILED' });
    await journal.close();
    assert.ok(acked.length > 0);

    execFileSync('mount', ['-o', 'remount,size=2m', mountPoint]);
    const reopened = await Journal.open({ dir, gatewayId: 'gw-test' });
    const head = reopened.head().seq;
    assert.ok(head >= acked[acked.length - 1]!, `head ${head} keeps every acknowledged record`);
    await reopened.close();
    const report = await verifyJournal(dir);
    assert.equal(report.ok, true, JSON.stringify(report.problems, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  });
});

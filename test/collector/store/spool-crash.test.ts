import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { openStore } from '../../../collector/store/connection';
import { storeSink } from '../../../collector/store/sink';
import { Spool } from '../../../collector/store/spool';
import { StoreWriter, type WriterStats } from '../../../collector/store/writer';
import { countFinal, silentLog, tempConfig } from './store-fixture';

/** A local port with nothing listening on it: connects to it are refused, like a server that is down. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('collector/store spool across a crash', function () {
  this.timeout(60_000);

  it('replays rows a killed process left in the spool, exactly once', async () => {
    const config = tempConfig();
    const port = await closedPort();
    const child = spawn(
      process.execPath,
      [join(__dirname, 'fixtures', 'spool-writer-child.js'), config.dataDir, `http://127.0.0.1:${port}`, '2500'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let stats: WriterStats;
    try {
      stats = await new Promise<WriterStats>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!) as WriterStats);
        });
        child.on('exit', (code) => reject(new Error(`child exited (${code}) before spooling`)));
      });
    } finally {
      child.kill('SIGKILL');
    }
    assert.equal(stats.spooled, 2500);
    assert.equal(stats.written, 0);
    const spoolDir = join(config.dataDir, config.store.spool.dir);
    assert.ok(readdirSync(spoolDir).some((f) => f.endsWith('.spool')));

    // The next run uses the embedded engine; the spool it finds is replayed before anything new.
    const store = await openStore(config);
    try {
      const { spool, damage } = Spool.open({ dir: spoolDir, maxBytes: config.store.spool.maxBytes });
      assert.deepEqual(damage, []);
      const writer = new StoreWriter(storeSink(store), spool, config.store.writer, silentLog, 'host-a');
      writer.start(damage);
      for (let i = 0; i < 1000 && writer.stats().degraded; i++) await new Promise((r) => setTimeout(r, 10));
      await writer.close();
      assert.equal(writer.stats().replayed, 2500);
      assert.equal(await countFinal(store, 'connect_events'), 2500);
      assert.ok(spool.isEmpty);
    } finally {
      await store.close();
    }
  });
});

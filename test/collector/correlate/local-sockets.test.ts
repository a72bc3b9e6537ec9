import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localSocketsOf } from '../../../collector/correlate/local-sockets';

function listen(server: Server, target: { port: number; host: string } | string): Promise<void> {
  return new Promise((resolve) => (typeof target === 'string' ? server.listen(target, resolve) : server.listen(target.port, target.host, resolve)));
}

describe('collector/correlate local sockets of a TCP server (real /proc)', () => {
  it("finds the unix sockets of the process listening on a port, and nothing for a port nobody listens on", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gapwatch-sockets-'));
    // This process stands for a local database: a TCP listener and a unix socket listener.
    const tcp = createServer();
    const unix = createServer();
    try {
      await listen(tcp, { port: 0, host: '127.0.0.1' });
      const socketPath = join(dir, '.s.PGSQL.test');
      await listen(unix, socketPath);
      const port = (tcp.address() as AddressInfo).port;
      assert.ok((await localSocketsOf(port)).includes(socketPath));
      tcp.close();
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual((await localSocketsOf(port)).filter((p) => p === socketPath), []);
    } finally {
      tcp.close();
      unix.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

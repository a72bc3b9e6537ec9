import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { holdersOf, listeningSockets, localSocketsOf } from '../../../collector/correlate/local-sockets';

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

/** The pids holding the LISTEN socket(s) of this port, as the gateway finder sees them. */
async function ownersOf(port: number): Promise<number[]> {
  const sockets = await listeningSockets(new Set([port]));
  const holders = await holdersOf(new Set(sockets.map((s) => s.inode)));
  return [...new Set(sockets.flatMap((s) => holders.get(s.inode) ?? []))];
}

/** A port no one listens on: bound and released by this process, so it was free a moment ago. */
async function unusedPort(): Promise<number> {
  const probe = createServer();
  await listen(probe, { port: 0, host: '127.0.0.1' });
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('collector/correlate listener owners (real /proc/net/tcp{,6} and /proc/<pid>/fd)', () => {
  it('returns this process for the port of its own listening net.Server, with the bound address, and nothing for a port no one listens on', async () => {
    const v4 = createServer();
    const v6 = createServer();
    try {
      await listen(v4, { port: 0, host: '127.0.0.1' });
      await listen(v6, { port: 0, host: '::1' });
      const port4 = (v4.address() as AddressInfo).port;
      const port6 = (v6.address() as AddressInfo).port;
      assert.deepEqual(await ownersOf(port4), [process.pid]);
      assert.deepEqual(await ownersOf(port6), [process.pid]);
      const sockets = await listeningSockets(new Set([port4, port6]));
      assert.deepEqual(sockets.map((s) => `${s.address}|${s.port}`).sort(), [`127.0.0.1|${port4}`, `::1|${port6}`].sort());
      assert.deepEqual(await ownersOf(await unusedPort()), []);
    } finally {
      v4.close();
      v6.close();
    }
  });

  it('returns another process for the port it listens on, never this one', async () => {
    const child = spawn(process.execPath, ['-e', "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>console.log(s.address().port))"], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [line] = (await once(child.stdout, 'data')) as [Buffer];
      const port = Number(line.toString().trim());
      assert.deepEqual(await ownersOf(port), [child.pid]);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

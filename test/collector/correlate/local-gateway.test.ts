import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { LocalGatewayProcesses } from '../../../collector/correlate/local-gateway';
import type { Listener__Output } from '../../../proto/generated/gapwatch/v1/Listener';
import { silentLog } from '../store/store-fixture';

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve) => server.listen(port, host, resolve));
}

function postgresListener(ip: string, port: number): Listener__Output {
  return { protocol: 'PROTOCOL_POSTGRES', endpoint: { inet: { ip, port }, address: 'inet' }, role: 'postgres' } as Listener__Output;
}

describe('collector/correlate local gateway processes (real /proc)', () => {
  it('recognises the owner of an advertised listener (wildcard, loopback) and nobody for a listener no one holds or another process listening on an unadvertised port', async () => {
    // This process stands for the gateway; the child is some other server on this host.
    const gateway = createServer();
    const other = spawn(process.execPath, ['-e', "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>console.log(s.address().port))"], { stdio: ['ignore', 'pipe', 'inherit'] });
    const found = new LocalGatewayProcesses(60_000, silentLog);
    const changes: number[][] = [];
    found.onChange((pids) => changes.push([...pids]));
    try {
      const [line] = (await once(other.stdout, 'data')) as [Buffer];
      const otherPort = Number(line.toString().trim());
      await listen(gateway, 0, '0.0.0.0');
      const port = (gateway.address() as AddressInfo).port;

      // Advertised at a port nobody listens on: the other process's port is not it.
      await found.setListeners('gw-1', [postgresListener('127.0.0.1', otherPort + 1 === port ? otherPort + 2 : otherPort + 1)]);
      assert.deepEqual([...found.pids()], []);

      await found.setListeners('gw-1', [postgresListener('0.0.0.0', port)]);
      assert.deepEqual([...found.pids()], [process.pid]);
      assert.deepEqual(changes, [[process.pid]]);

      // The gateway stops listening: at the next look-up its pid no longer counts.
      await new Promise((resolve) => gateway.close(resolve));
      await found.refresh();
      assert.deepEqual([...found.pids()], []);
      assert.deepEqual(changes, [[process.pid], []]);
      assert.ok(!changes.flat().includes(other.pid!));
    } finally {
      found.stop();
      gateway.close();
      other.kill('SIGKILL');
    }
  });

  it('confirms a gateway that started listening after the last look-up (a restart under a new pid), and no other process', async () => {
    const probe = createServer();
    await listen(probe, 0, '127.0.0.1');
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const other = spawn(process.execPath, ['-e', "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>console.log(s.address().port))"], { stdio: ['ignore', 'pipe', 'inherit'] });
    const found = new LocalGatewayProcesses(60_000, silentLog);
    const gateway = createServer();
    try {
      await once(other.stdout, 'data');
      // No gateway listening on this host: nothing to look at, no delay for a bypass.
      assert.equal(found.confirm(process.pid), false);
      await found.setListeners('gw-1', [postgresListener('127.0.0.1', port)]);
      assert.deepEqual([...found.pids()], []);
      await listen(gateway, port, '127.0.0.1');
      assert.equal(await found.confirm(other.pid!), false);
      assert.equal(await found.confirm(process.pid), true);
      assert.deepEqual([...found.pids()], [process.pid]);
      assert.equal(found.confirm(process.pid), true);
    } finally {
      found.stop();
      gateway.close();
      other.kill('SIGKILL');
    }
  });
});

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { configSchema } from '../../../platform/config';
import { HostSensor, type ConnectRecord, type ExecRecord, type ExitRecord, type ForkRecord } from '../../../collector/sensor/host-sensor';
import { execIdOf, startTicksOfNs } from '../../../collector/sensor/exec-id';
import { parseStat } from '../../../collector/sensor/proc-reader';
import { requireRoot } from '../../support/host';
import { buildWorkload, RecordLog, run } from './sensor-harness';

const sensorConfig = () => configSchema.parse({}).collector.sensor;

function listen(server: Server, address: string | { path: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const onListen = (): void => {
      const bound = server.address();
      resolve(typeof bound === 'object' && bound !== null ? bound.port : 0);
    };
    if (typeof address === 'string') server.listen(0, address, onListen);
    else server.listen(address.path, onListen);
  });
}

describe('collector/sensor/host-sensor (real kernel)', function () {
  this.timeout(60_000);
  const log = new RecordLog();
  let sensor: HostSensor;
  let workload: string;
  let dir: string;
  let early: ChildProcess;
  const servers: Server[] = [];

  before(async () => {
    requireRoot();
    workload = buildWorkload();
    dir = mkdtempSync(join(tmpdir(), 'gapwatch-sensor-'));
    // Started before the sensor: it must come from the /proc seed.
    early = spawn('/bin/sleep', ['300'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 100));
    sensor = new HostSensor(sensorConfig(), log.push);
    sensor.start();
  });

  after(async () => {
    early?.kill('SIGKILL');
    for (const server of servers) server.close();
    await sensor?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (workload) rmSync(dirname(workload), { recursive: true, force: true });
  });

  it('captures a long, many-argument exec up to the cap and flags the truncation', async () => {
    const args = Array.from({ length: 1500 }, (_, i) => `argument-${String(i).padStart(5, '0')}`);
    const ran = await run('/bin/true', args);
    await log.settle(() => log.of(ran.pid, 'exit').length > 0, 'exit of /bin/true');
    const execs = log.of(ran.pid, 'exec') as ExecRecord[];
    assert.equal(execs.length, 1);
    const exec = execs[0]!;
    assert.equal(exec.filename, '/bin/true');
    assert.equal(exec.argvTruncated, true);
    assert.equal(exec.argvCapturedBytes, 4096);
    const total = ['/bin/true', ...args].reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
    assert.equal(exec.argvTotalBytes, total);
    assert.deepEqual(exec.argv.slice(0, 3), ['/bin/true', args[0], args[1]]);
    assert.ok(exec.argv.length > 200 && exec.argv.length < 1501);
  });

  it('captures a short argv whole', async () => {
    const ran = await run('/bin/true', ['alpha', 'beta gamma', '']);
    await log.settle(() => log.of(ran.pid, 'exit').length > 0, 'exit');
    const exec = log.of(ran.pid, 'exec')[0] as ExecRecord;
    assert.deepEqual(exec.argv, ['/bin/true', 'alpha', 'beta gamma', '']);
    assert.equal(exec.argvTruncated, false);
    assert.equal(exec.argvRedacted, false);
  });

  it('sees every short-lived process exactly once, exec before exit, under one exec_id', async () => {
    const ran = await Promise.all(Array.from({ length: 12 }, () => run('/bin/true')));
    await log.settle(() => ran.every((r) => log.of(r.pid, 'exit').length > 0), 'all exits');
    for (const r of ran) {
      const events = log.of(r.pid);
      const kinds = events.map((e) => e.kind).filter((k) => k !== 'fork');
      assert.deepEqual(kinds, ['exec', 'exit'], `pid ${r.pid}: ${JSON.stringify(events)}`);
      assert.equal(new Set(events.map((e) => (e as ExecRecord).execId)).size, 1);
      assert.equal((events.find((e) => e.kind === 'exit') as ExitRecord).exitCode, 0);
    }
  });

  it('reports a fork without exec and the exit code of the child', async () => {
    const ran = await run(workload, ['fork-exit', '3']);
    const child = Number(ran.values.child);
    await log.settle(() => log.of(child, 'exit').length > 0, 'child exit');
    const forks = log.of(child, 'fork') as ForkRecord[];
    assert.equal(forks.length, 1);
    assert.equal(forks[0]!.ppid, ran.pid);
    const parentExec = log.of(ran.pid, 'exec')[0] as ExecRecord;
    assert.equal(forks[0]!.parentExecId, parentExec.execId);
    assert.equal(log.of(child, 'exec').length, 0);
    const exits = log.of(child, 'exit') as ExitRecord[];
    assert.equal(exits.length, 1);
    assert.equal(exits[0]!.exitCode, 3);
    assert.equal(exits[0]!.execId, forks[0]!.execId);
  });

  it('reports exit codes and terminating signals', async () => {
    const coded = await run('/bin/sh', ['-c', 'exit 42']);
    const killed = spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
    await log.settle(() => log.of(killed.pid!, 'exec').length > 0, 'sleep exec');
    killed.kill('SIGKILL');
    await log.settle(() => log.of(coded.pid, 'exit').length > 0 && log.of(killed.pid!, 'exit').length > 0, 'exits');
    const codedExit = log.of(coded.pid, 'exit') as ExitRecord[];
    assert.equal(codedExit.length, 1);
    assert.equal(codedExit[0]!.exitCode, 42);
    const killedExit = log.of(killed.pid!, 'exit') as ExitRecord[];
    assert.equal(killedExit.length, 1);
    assert.equal(killedExit[0]!.signal, 9);
    assert.equal(killedExit[0]!.exitCode, null);
  });

  async function connectRecord(args: string[]): Promise<{ record: ConnectRecord; values: Record<string, string> }> {
    const ran = await run(workload, ['connect', ...args]);
    await log.settle(() => log.of(ran.pid, 'exit').length > 0 && log.of(ran.pid, 'connect').length > 0, `connect ${args.join(' ')}`);
    const connects = log.of(ran.pid, 'connect') as ConnectRecord[];
    assert.equal(connects.length, 1, JSON.stringify(connects));
    const record = connects[0]!;
    assert.equal(record.intent, true, 'the cgroup hook saw it');
    assert.equal(record.outcome, true, 'the syscall exit saw it');
    assert.equal(record.execId, (log.of(ran.pid, 'exec')[0] as ExecRecord).execId);
    return { record, values: ran.values };
  }

  it('TCP connect refused: failed with ECONNREFUSED, local port kept', async () => {
    const probe = createServer();
    const port = await listen(probe, '127.0.0.1');
    await new Promise<void>((r) => probe.close(() => r()));
    const { record } = await connectRecord(['tcp', '127.0.0.1', String(port)]);
    assert.equal(record.result, 'failed');
    assert.equal(record.errno, 111);
    assert.equal(record.transport, 'tcp');
    assert.equal(record.remoteAddress, '127.0.0.1');
    assert.equal(record.remotePort, port);
    assert.ok(record.localPort !== null && record.localPort > 0);
  });

  it('TCP connect accepted, blocking and non-blocking: started, with the local address and port', async () => {
    const server = createServer((s) => s.destroy());
    servers.push(server);
    const port = await listen(server, '127.0.0.1');
    for (const mode of [[], ['nonblock']]) {
      const { record, values } = await connectRecord(['tcp', '127.0.0.1', String(port), ...mode]);
      assert.equal(record.result, 'started');
      assert.equal(record.errno, null);
      assert.equal(record.family, 'inet');
      assert.equal(record.remotePort, port);
      assert.equal(record.localAddress, '127.0.0.1');
      assert.equal(record.localPort, Number(values.local_port));
    }
  });

  it('IPv6 loopback', async () => {
    const server = createServer((s) => s.destroy());
    servers.push(server);
    const port = await listen(server, '::1');
    const { record, values } = await connectRecord(['tcp6', '::1', String(port)]);
    assert.equal(record.family, 'inet6');
    assert.equal(record.remoteAddress, '::1');
    assert.equal(record.localAddress, '::1');
    assert.equal(record.localPort, Number(values.local_port));
    assert.equal(record.result, 'started');
  });

  it('IPv4-mapped IPv6 destinations are normalised to IPv4', async () => {
    const server = createServer((s) => s.destroy());
    servers.push(server);
    const port = await listen(server, '127.0.0.1');
    const { record } = await connectRecord(['tcp6', '::ffff:127.0.0.1', String(port)]);
    assert.equal(record.family, 'inet');
    assert.equal(record.remoteAddress, '127.0.0.1');
    assert.equal(record.localAddress, '127.0.0.1');
  });

  it('UDP connect', async () => {
    const { record, values } = await connectRecord(['udp', '127.0.0.1', '9']);
    assert.equal(record.transport, 'udp');
    assert.equal(record.remotePort, 9);
    assert.equal(record.result, 'started');
    assert.equal(record.localPort, Number(values.local_port));
  });

  it('unix sockets by path and by abstract name', async () => {
    const path = join(dir, 'app.sock');
    const server = createServer((s) => s.destroy());
    servers.push(server);
    await listen(server, { path });
    const named = await connectRecord(['unix', path, '0']);
    assert.equal(named.record.family, 'unix');
    assert.equal(named.record.transport, 'unix-stream');
    assert.equal(named.record.unixPath, path);
    assert.equal(named.record.result, 'started');

    const name = `gapwatch-test-${process.pid}`;
    const anon = await connectRecord(['unix', `@${name}`, '0']);
    assert.equal(anon.record.unixPath, `@${name}`);
    assert.equal(anon.record.result, 'started');
  });

  it('sees a connect made through io_uring, which never calls connect(2), as an intent', async () => {
    const server = createServer((s) => s.destroy());
    servers.push(server);
    const port = await listen(server, '127.0.0.1');
    const ran = await run(workload, ['uring-connect', String(port)]);
    assert.equal(ran.values.res, '0', `io_uring connect result ${ran.values.res}`);
    // io_uring may run the connect in the submitting task or in one of its io-wq workers (same tgid).
    await log.settle(() => log.of(ran.pid, 'exit').length > 0 && log.of(ran.pid, 'connect').length > 0, 'io_uring connect');
    const connects = log.of(ran.pid, 'connect') as ConnectRecord[];
    assert.equal(connects.length, 1, JSON.stringify(connects));
    const record = connects[0]!;
    assert.equal(record.intent, true);
    assert.equal(record.outcome, false);
    assert.equal(record.result, null);
    assert.equal(record.remoteAddress, '127.0.0.1');
    assert.equal(record.remotePort, port);
    assert.equal(record.transport, 'tcp');
    assert.equal(record.execId, (log.of(ran.pid, 'exec')[0] as ExecRecord).execId);
  });

  it('knows a process that started before the sensor, by the same exec_id the kernel events use', async () => {
    const pid = early.pid!;
    const stat = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))!;
    const entry = sensor.table.byPidNow(pid);
    assert.ok(entry, 'seeded from /proc');
    assert.equal(entry.source, 'proc');
    assert.equal(startTicksOfNs(entry.startNs), stat.startTicks);
    assert.equal(entry.execId, execIdOf(sensor.identity, pid, entry.startNs));
    assert.deepEqual(entry.argv, ['/bin/sleep', '300']);
    early.kill('SIGKILL');
    await log.settle(() => log.of(pid, 'exit').length > 0, 'exit of the early process');
    const exits = log.of(pid, 'exit') as ExitRecord[];
    assert.equal(exits.length, 1);
    assert.equal(exits[0]!.execId, entry.execId);
    assert.equal(exits[0]!.signal, 9);
  });

  it('attributes descendants to the nearest process named like an agent, with lineage', async () => {
    const agentPath = join(dir, 'claude');
    symlinkSync('/bin/sh', agentPath);
    const ran = await run(agentPath, ['-c', `/bin/true lineage-${process.pid}; /bin/true done`]);
    const isMarker = (r: ExecRecord) => r.kind === 'exec' && r.argv[1] === `lineage-${process.pid}`;
    await log.settle(() => log.records.some((r) => r.kind === 'exec' && isMarker(r)) && log.of(ran.pid, 'exit').length > 0, 'lineage exec');
    const agentExec = log.of(ran.pid, 'exec')[0] as ExecRecord;
    assert.equal(agentExec.agent, 'claude');
    assert.equal(agentExec.agentRunId, agentExec.execId);
    const tool = log.records.find((r) => r.kind === 'exec' && isMarker(r)) as ExecRecord;
    assert.equal(tool.ppid, ran.pid);
    assert.equal(tool.agent, 'claude');
    assert.equal(tool.agentRunId, agentExec.execId);
    const lineage = sensor.table.lineage(tool.execId).map((e) => e.execId);
    assert.deepEqual(lineage.slice(0, 2), [tool.execId, agentExec.execId]);
    assert.equal(sensor.table.get(lineage[2]!)!.pid, process.pid, 'the agent was started by this test process');
  });

  it('does not confuse exec_ids when a pid is reused', async () => {
    const ran = await run(workload, ['pid-reuse']);
    assert.equal(ran.code, 0, 'the kernel handed out the same pid twice');
    const pid = Number(ran.values.reused);
    await log.settle(() => log.of(pid, 'exit').filter((r) => r.ppid === ran.pid).length >= 2, 'two exits of the reused pid');
    const forks = log.of(pid, 'fork').filter((r) => r.ppid === ran.pid) as ForkRecord[];
    const exits = log.of(pid, 'exit').filter((r) => r.ppid === ran.pid) as ExitRecord[];
    assert.equal(forks.length, 2);
    assert.equal(exits.length, 2);
    assert.notEqual(forks[0]!.execId, forks[1]!.execId);
    assert.deepEqual(exits.map((e) => e.execId), forks.map((f) => f.execId));
  });

  it('redacts secrets in argv before the record leaves the sensor, and flags it', async () => {
    const secrets = ['hunter2-pw', 's3cretpw', 'ghp_0123456789abcdefghijABCDEFGHIJ012345', 'AKIAIOSFODNN7EXAMPLE', 'pgpw-9876'];
    const ran = await run('/bin/true', [`--password=${secrets[0]}`, `postgres://app:${secrets[1]}@db/x`, secrets[2]!, secrets[3]!, `PGPASSWORD=${secrets[4]}`]);
    await log.settle(() => log.of(ran.pid, 'exit').length > 0, 'exit');
    const exec = log.of(ran.pid, 'exec')[0] as ExecRecord;
    assert.equal(exec.argvRedacted, true);
    const text = JSON.stringify(exec) + JSON.stringify(sensor.table.get(exec.execId)!.argv);
    for (const secret of secrets) assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    assert.equal(exec.argv[2], 'postgres://app:****@db/x');
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { bpfObjectPath, loadNative } from '../../../native/binding';
import { cgroup2Root } from '../../../collector/doctor/host-facts';
import { decodeBatch, type LossEvent, type SensorEvent } from '../../../collector/sensor/event-decoder';
import { EventType } from '../../../collector/sensor/event-layout';
import { HostSensor, type ConnectRecord, type SensorRecord } from '../../../collector/sensor/host-sensor';
import { configSchema } from '../../../platform/config';
import { cliPath, nobodyUid, requireRoot, runCli } from '../../support/host';
import { buildWorkload, RecordLog, run } from './sensor-harness';

describe('collector/sensor lifecycle, loss and CLI (real kernel)', function () {
  this.timeout(60_000);
  let workload: string;

  before(() => {
    requireRoot();
    workload = buildWorkload();
  });

  after(() => {
    if (workload) rmSync(dirname(workload), { recursive: true, force: true });
  });

  it('starts and stops twice in one process, seeing events each time and leaving nothing attached', async () => {
    // Every BPF object (program, map, link, ring buffer mapping) is a file descriptor of this process.
    const fds = () => readdirSync('/proc/self/fd').length;
    const baseline = fds();
    for (let round = 0; round < 2; round++) {
      const log = new RecordLog();
      const sensor = new HostSensor(configSchema.parse({}).collector.sensor, log.push);
      const started = sensor.start();
      let stats;
      try {
        assert.ok(started.programs.includes('sensor_exec'));
        const ran = await run('/bin/true', [`round-${round}`]);
        await log.settle(() => log.of(ran.pid, 'exit').length > 0, `round ${round}`);
        assert.equal(log.of(ran.pid, 'exec').length, 1);
      } finally {
        stats = await sensor.stop();
      }
      assert.ok(stats && stats.records > 0);
      assert.equal(sensor.running, false);
      // Stopped means detached: a new process is no longer reported.
      const after = await run('/bin/true', [`after-${round}`]);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(log.of(after.pid).length, 0);
      assert.equal(fds(), baseline, 'no program, map or link left open');
    }
  });

  it('reports kernel drops as loss records when the ring buffer overflows', async () => {
    const addon = loadNative();
    const events: SensorEvent[] = [];
    let drained!: () => void;
    const allDelivered = new Promise<void>((resolve) => (drained = resolve));
    // A one-page ring the kernel never wakes the reader for, drained every 300 ms: a storm overflows it.
    const native = new addon.Sensor(
      { objectPath: bpfObjectPath('sensor.bpf.o'), cgroupPath: cgroup2Root()!, ringBytes: 4096, wakeupBytes: 1 << 30, flushMs: 300 },
      (batch) => decodeBatch(batch, (e) => events.push(e)),
      drained,
    );
    native.start();
    let stats;
    try {
      await run(workload, ['udp-storm', '9', '2000']);
      await new Promise((r) => setTimeout(r, 400));
      stats = native.stats();
    } finally {
      native.stop();
    }
    await allDelivered;
    const losses = events.filter((e): e is LossEvent => e.type === EventType.Loss);
    assert.ok(losses.length > 0, 'a loss record arrived');
    const reported = losses.reduce((n, l) => n + (l.kernelDrops.connect ?? 0), 0);
    assert.ok(stats.kernelDrops[EventType.Connect]! > 0);
    assert.ok(reported >= stats.kernelDrops[EventType.Connect]!, `loss records carry ${reported}, stats say ${stats.kernelDrops[EventType.Connect]}`);
  });

  it('`gapwatch sensor --json --filter` streams NDJSON of the matching events', async () => {
    const cli = spawn(process.execPath, [cliPath, 'sensor', '--json', '--duration', '4', '--filter', 'kind=connect', '--filter', 'port=9'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    cli.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    cli.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const closed = new Promise<number | null>((resolve) => cli.on('close', resolve));
    const deadline = Date.now() + 15_000;
    while (!stderr.includes('sensor started')) {
      if (Date.now() > deadline) throw new Error(`the CLI did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const ran = await run(workload, ['connect', 'udp', '127.0.0.1', '9']);
    assert.equal(await closed, 0, stderr);
    const records = stdout.trim().split('\n').map((line) => JSON.parse(line) as SensorRecord);
    assert.ok(records.every((r) => r.kind === 'connect' || r.kind === 'loss'));
    const mine = records.filter((r): r is ConnectRecord => r.kind === 'connect' && r.pid === ran.pid);
    assert.equal(mine.length, 1);
    assert.equal(mine[0]!.remotePort, 9);
    assert.equal(mine[0]!.transport, 'udp');
  });

  it('names a missing or foreign BPF object as BPF unavailable, and stays usable', () => {
    const addon = loadNative();
    const sensor = new addon.Sensor({ objectPath: '/nonexistent/sensor.bpf.o', cgroupPath: cgroup2Root()! }, () => undefined);
    assert.throws(() => sensor.start(), (err: Error & { code?: string }) => err.code === 'SENSOR_ERR_BPF_UNAVAILABLE' && /npm run setup/.test(err.message));
    const foreign = new addon.Sensor({ objectPath: bpfObjectPath('probe.bpf.o'), cgroupPath: cgroup2Root()! }, () => undefined);
    assert.throws(() => foreign.start(), /not the sensor object/);
    assert.equal(sensor.stop(), null);
  });

  it('refuses to start without root, with a pointed error', async () => {
    const uid = nobodyUid();
    const result = await runCli(['sensor', '--duration', '1'], { uid, gid: uid, cwd: tmpdir() });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /SENSOR_ERR_NOT_ROOT/);
    assert.match(result.stderr, /needs root/);

    // The addon itself, asked directly: the kernel's refusal is named as a privilege problem.
    const script = `const a = require(${JSON.stringify(join(__dirname, '..', '..', '..', '..', 'build', 'Release', 'gapwatch_native.node'))});
      try { new a.Sensor({ objectPath: ${JSON.stringify(bpfObjectPath('sensor.bpf.o'))}, cgroupPath: ${JSON.stringify(cgroup2Root())} }, () => {}).start(); console.log('started'); }
      catch (e) { console.log(e.code); console.log(e.message.split('\\n')[0]); }`;
    const direct = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', script], { uid, gid: uid, cwd: tmpdir(), stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.on('error', reject);
      child.on('close', () => resolve(out));
    });
    assert.match(direct, /^SENSOR_ERR_NOT_ROOT\n.*not running as root/);
  });
});

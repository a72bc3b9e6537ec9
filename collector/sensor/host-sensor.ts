import { readFileSync } from 'node:fs';
import type { Config } from '../../platform/config';
import { bpfObjectPath, loadNative, type NativeSensor, type NativeSensorStart, type NativeSensorStats } from '../../native/binding';
import { cgroup2Root } from '../doctor/host-facts';
import { SensorAttachError, SensorNotRootError, sensorStartError } from '../errors';
import { AgentMatcher } from './agent-signatures';
import { redactArgv } from './argv-redaction';
import { decodeBatch, decodeTaskStarts, EINPROGRESS, type ConnectEvent, type SensorEvent, type TaskFields } from './event-decoder';
import { EventType } from './event-layout';
import { readHostIdentity, startTicksOfNs, type HostIdentity } from './exec-id';
import { markerProbe, readAllProcesses } from './proc-reader';
import { ProcessTable, type ProcessEntry, type ProcessIdentity } from './process-table';
import { ensureTracefs } from './tracefs';

export type SensorConfig = Config['collector']['sensor'];

/** The process an event belongs to, as every record carries it. */
export interface ProcessFields {
  execId: string;
  pid: number;
  ppid: number;
  parentExecId: string | null;
  comm: string;
  uid: number | null;
  gid: number | null;
  /** cgroup v2 id (decimal), as the kernel reported it for this event. */
  cgroupId: string | null;
  /** exec_id of the agent run (nearest agent ancestor-or-self), and which agent it is. */
  agentRunId: string | null;
  agent: string | null;
}

interface RecordBase {
  /** Wall-clock time, ISO 8601. */
  time: string;
  /** CLOCK_BOOTTIME ns, exact, as a decimal string. */
  bootNs: string;
}

export interface ExecRecord extends RecordBase, ProcessFields {
  kind: 'exec';
  filename: string;
  argv: string[];
  argvRedacted: boolean;
  argvTruncated: boolean;
  argvTotalBytes: number;
  argvCapturedBytes: number;
  argvReadFailed: boolean;
}

export interface ForkRecord extends RecordBase, ProcessFields {
  kind: 'fork';
}

export interface ExitRecord extends RecordBase, ProcessFields {
  kind: 'exit';
  exitCode: number | null;
  signal: number | null;
  coreDumped: boolean;
}

export interface ConnectRecord extends RecordBase, ProcessFields {
  kind: 'connect';
  intent: boolean;
  outcome: boolean;
  /** started: 0 or EINPROGRESS; failed: another errno; null: no syscall outcome (io_uring). */
  result: 'started' | 'failed' | null;
  /** Positive errno of a failed connect(2); null when it started. */
  errno: number | null;
  family: ConnectEvent['family'];
  transport: ConnectEvent['transport'];
  remoteAddress: string | null;
  remotePort: number | null;
  localAddress: string | null;
  localPort: number | null;
  unixPath: string | null;
  socketCookie: string;
}

/** Records the sensor knows it lost; never dropped silently. */
export interface LossRecord extends RecordBase {
  kind: 'loss';
  kernelDrops: Record<string, number>;
  queueDrops: Record<string, number>;
}

export type SensorRecord = ExecRecord | ForkRecord | ExitRecord | ConnectRecord | LossRecord;

export interface HostSensorStart extends NativeSensorStart {
  seededProcesses: number;
  tracefsMountedNow: boolean;
  cgroupRoot: string;
}

/**
 * The host sensor: the addon's BPF programs, decoded, joined with the process table (exec_ids,
 * lineage, agent runs) and handed to `onRecord` one enriched record at a time.
 */
export class HostSensor {
  readonly identity: HostIdentity;
  readonly table: ProcessTable;
  private native: NativeSensor | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private drained: (() => void) | null = null;
  /** CLOCK_REALTIME minus CLOCK_BOOTTIME, in ms, to give records a wall-clock time. */
  private bootEpochMs = 0;
  decodeErrors = 0;

  constructor(
    private readonly config: SensorConfig,
    private readonly onRecord: (record: SensorRecord) => void,
  ) {
    this.identity = readHostIdentity();
    this.table = new ProcessTable(
      this.identity,
      new AgentMatcher(config.agentSignatures),
      { graceMs: config.processGraceMs, maxProcesses: config.maxProcesses },
      markerProbe({ envMarkers: config.agentEnvMarkers, cgroupMarkers: config.agentCgroupMarkers }),
    );
  }

  get running(): boolean {
    return this.native !== null;
  }

  start(): HostSensorStart {
    if (this.native) throw new Error('the host sensor is already running');
    if (process.geteuid?.() !== 0) {
      throw new SensorNotRootError('not running as root; the sensor needs root (or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN): run it with sudo, and `gapwatch doctor` for details');
    }
    const tracefs = ensureTracefs();
    if (!tracefs) throw new SensorAttachError('tracefs is not mounted and could not be mounted at /sys/kernel/tracing (classic tracepoints need it)');
    const cgroupRoot = cgroup2Root();
    if (!cgroupRoot) throw new SensorAttachError('no cgroup v2 hierarchy is mounted (the connect hooks attach to its root); mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified`');
    this.bootEpochMs = Date.now() - Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;

    const addon = loadNative();
    const native = new addon.Sensor(
      {
        objectPath: bpfObjectPath('sensor.bpf.o'),
        cgroupPath: cgroupRoot,
        argvMaxBytes: this.config.argvMaxBytes,
        ringBytes: this.config.ringBytes,
        flushMs: this.config.flushMs,
      },
      (batch) => this.onBatch(batch),
      () => {
        const drained = this.drained;
        this.drained = null;
        drained?.();
      },
    );
    let started: NativeSensorStart;
    try {
      started = native.start();
    } catch (err) {
      throw sensorStartError(err);
    }
    this.native = native;
    // Seed after attaching: a process born in between is then in both, and exec_ids de-duplicate it.
    const seeded = this.seed(native);
    this.sweepTimer = setInterval(() => this.table.sweep(Date.now()), Math.max(1000, this.config.processGraceMs / 2));
    this.sweepTimer.unref();
    return { ...started, seededProcesses: seeded, tracefsMountedNow: tracefs.mountedNow, cgroupRoot };
  }

  stats(): NativeSensorStats | null {
    return this.native ? this.native.stats() : null;
  }

  /** Detaches everything; resolves once every batch the reader produced has been delivered. */
  async stop(): Promise<NativeSensorStats | null> {
    const native = this.native;
    if (!native) return null;
    this.native = null;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    // The reader's last batches go through the thread-safe function queue: wait until it is drained.
    const drained = new Promise<void>((resolve) => (this.drained = resolve));
    const stats = native.stop();
    await drained;
    return stats;
  }

  /**
   * Exact start times come from the kernel's task iterator, the rest from /proc. A pid in /proc the
   * iterator did not report was born after it ran, so after attaching: the live stream has it.
   */
  private seed(native: NativeSensor): number {
    const starts = decodeTaskStarts(native.taskStarts());
    let seeded = 0;
    for (const s of readAllProcesses()) {
      const startNs = starts.get(s.pid);
      if (startNs === undefined || startTicksOfNs(startNs) !== s.startTicks) continue;
      const redacted = this.redact(s.argv);
      seeded++;
      this.table.seed(
        { pid: s.pid, startNs, ppid: s.ppid, parentStartNs: starts.get(s.ppid) ?? null, uid: s.uid, gid: s.gid, comm: s.comm },
        { filename: s.filename, comm: s.comm, argv: s.argv, argvRedacted: redacted.redacted },
      );
      // Signatures matched on the real argv; only the redacted one is kept.
      const entry = this.table.byPidNow(s.pid);
      if (entry) entry.argv = redacted.argv;
    }
    return seeded;
  }

  private redact(argv: string[]): { argv: string[]; redacted: boolean } {
    if (!this.config.redactArgv) return { argv, redacted: false };
    return redactArgv(argv);
  }

  private onBatch(batch: Buffer): void {
    try {
      decodeBatch(batch, (event) => this.onEvent(event));
    } catch (err) {
      // A malformed batch is a bug in the addon or a stale object; it is loss, and said so.
      this.decodeErrors++;
      this.onRecord({
        kind: 'loss',
        ...this.times(process.hrtime.bigint()),
        kernelDrops: {},
        queueDrops: { undecodable: 1, bytes: batch.length },
      });
      process.emitWarning(`gapwatch sensor: undecodable batch: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private lastMs = -1;
  private lastIso = '';

  /** Records of one batch mostly share a millisecond; formatting the date once per ms is a large saving in storms. */
  private isoTime(bootNs: bigint): string {
    const ms = Math.floor(this.bootEpochMs + Number(bootNs) / 1e6);
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastIso = new Date(ms).toISOString();
    }
    return this.lastIso;
  }

  private times(bootNs: bigint): RecordBase {
    return { time: this.isoTime(bootNs), bootNs: bootNs.toString() };
  }

  private identityOf(task: TaskFields): ProcessIdentity {
    return {
      pid: task.tgid,
      startNs: task.startNs,
      ppid: task.ppid,
      parentStartNs: task.ppid === 0 ? null : task.parentStartNs,
      uid: task.uid,
      gid: task.gid,
      comm: task.comm,
      cgroupId: task.cgroupId,
    };
  }

  private processFields(entry: ProcessEntry, task: TaskFields): ProcessFields {
    return {
      execId: entry.execId,
      pid: entry.pid,
      ppid: entry.ppid,
      parentExecId: entry.parentExecId,
      comm: entry.comm,
      uid: entry.uid,
      gid: entry.gid,
      cgroupId: task.cgroupId === 0n ? null : task.cgroupId.toString(),
      agentRunId: entry.agentRunId,
      agent: entry.agentRunAgent,
    };
  }

  private onEvent(event: SensorEvent): void {
    switch (event.type) {
      case EventType.Exec: {
        const redacted = this.redact(event.argv);
        const entry = this.table.exec(this.identityOf(event.task), {
          filename: event.filename,
          comm: event.task.comm,
          argv: event.argv,
          argvRedacted: redacted.redacted,
          argvTruncated: event.argvTruncated,
        });
        entry.argv = redacted.argv;
        this.onRecord({
          kind: 'exec',
          ...this.times(event.timeNs),
          ...this.processFields(entry, event.task),
          filename: event.filename,
          argv: redacted.argv,
          argvRedacted: redacted.redacted,
          argvTruncated: event.argvTruncated,
          argvTotalBytes: event.argvTotalBytes,
          argvCapturedBytes: event.argvCapturedBytes,
          argvReadFailed: event.argvReadFailed,
        });
        return;
      }
      case EventType.Fork: {
        const entry = this.table.fork(this.identityOf(event.task));
        this.onRecord({ kind: 'fork', ...this.times(event.timeNs), ...this.processFields(entry, event.task) });
        return;
      }
      case EventType.Exit: {
        const entry = this.table.exit(this.identityOf(event.task), event.exitStatus, Date.now());
        this.onRecord({
          kind: 'exit',
          ...this.times(event.timeNs),
          ...this.processFields(entry, event.task),
          exitCode: event.exitCode,
          signal: event.signal,
          coreDumped: event.coreDumped,
        });
        return;
      }
      case EventType.Connect: {
        // The hot path in connect storms: no identity object, one literal (spreads cost measurably here).
        const task = event.task;
        const entry = this.table.get(this.table.execIdOf(task.tgid, task.startNs)) ?? this.table.fork(this.identityOf(task));
        const ret = event.ret;
        this.onRecord({
          kind: 'connect',
          time: this.isoTime(event.timeNs),
          bootNs: event.timeNs.toString(),
          ...this.processFields(entry, task),
          intent: event.intent,
          outcome: event.outcome,
          result: ret === null ? null : ret === 0 || ret === -EINPROGRESS ? 'started' : 'failed',
          errno: ret === null || ret >= 0 || ret === -EINPROGRESS ? null : -ret,
          family: event.family,
          transport: event.transport,
          remoteAddress: event.remoteAddress,
          remotePort: event.remotePort,
          localAddress: event.localAddress,
          localPort: event.localPort,
          unixPath: event.unixPath,
          socketCookie: event.socketCookie.toString(),
        });
        return;
      }
      case EventType.Loss:
        this.onRecord({ kind: 'loss', ...this.times(event.timeNs), kernelDrops: event.kernelDrops, queueDrops: event.queueDrops });
        return;
    }
  }
}

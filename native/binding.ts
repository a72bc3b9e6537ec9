import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../platform/package-root';
import { GapwatchError } from '../platform/errors';

/** What the addon (native/addon/) exports. The shapes are the addon's contract; keep them in step. */
export interface KernelInfo {
  release: string;
  machine: string;
  btfVmlinux: boolean;
  libbpfVersion: string;
}

export type ProgType = 'tracepoint' | 'raw_tracepoint' | 'tracing' | 'lsm' | 'cgroup_sock_addr' | 'kprobe';

export interface ProbeResult {
  program: string;
  section: string;
  stage: 'open' | 'load' | 'attach' | 'trigger' | 'done';
  loaded: boolean;
  attached: boolean;
  fired: boolean;
  hits: number;
  /** Positive errno of the failure; 0 on success. */
  errno: number;
  error: string | null;
}

/** Options of the addon's `Sensor` (native/addon/sensor-binding.cc). */
export interface NativeSensorOptions {
  /** build/Release/sensor.bpf.o */
  objectPath: string;
  /** cgroup v2 root; the connect hooks see every process below it. */
  cgroupPath: string;
  argvMaxBytes?: number;
  /** Ring buffer size, a power of two >= 4096. */
  ringBytes?: number;
  /** The kernel wakes the reader once this much is queued; otherwise the reader drains on its timer. */
  wakeupBytes?: number;
  /** A batch is delivered once it holds this many bytes ... */
  batchBytes?: number;
  /** ... or once its first record is this old (ms). */
  flushMs?: number;
}

export interface NativeSensorStart {
  programs: string[];
  unixConnectHook: boolean;
  ringBytes: number;
}

/** Counters indexed by event type (events.h enum gw_event_type). */
export interface NativeSensorStats {
  kernelDrops: number[];
  kernelDropsPerCpu: number[][];
  queueDrops: number[];
  queueDroppedBatches: number;
  records: number;
  batches: number;
  bytes: number;
  ringBytes: number;
}

export interface NativeSensor {
  /** Loads and attaches; throws an Error whose `code` is a SENSOR_ERR_* code. */
  start(): NativeSensorStart;
  /** Detaches everything and returns the last stats (null when not started). Batches still queued arrive after, then onDrained. */
  stop(): NativeSensorStats | null;
  stats(): NativeSensorStats;
  /** Packed events.h gw_task_start records of every process alive now (the task iterator). */
  taskStarts(): Buffer;
}

export interface FieldLayout {
  offset: number;
  size: number;
}

export interface RecordLayout {
  size: number;
  fields: Record<string, FieldLayout>;
}

/** sizeof/offsetof of every events.h struct, as the addon was compiled. */
export type EventLayouts = Record<'header' | 'task' | 'exec' | 'fork' | 'exit' | 'connect' | 'loss' | 'taskStart', RecordLayout> & {
  constants: Record<string, number>;
};

export interface NativeAddon {
  kernelInfo(): KernelInfo;
  progTypeSupported(type: ProgType): boolean;
  probeProgram(objectPath: string, programName: string, options?: { cgroupPath?: string }): ProbeResult;
  /** onDrained runs after each stop(), once the last batch has been delivered to onBatch. */
  Sensor: new (options: NativeSensorOptions, onBatch: (batch: Buffer) => void, onDrained?: () => void) => NativeSensor;
  eventLayouts(): EventLayouts;
}

export class NativeUnavailableError extends GapwatchError {
  constructor(path: string, cause?: unknown) {
    super(
      'NATIVE_ERR_UNAVAILABLE',
      `the native addon ${path} is missing or cannot load; build it with \`npm run setup\` (as root)` +
        (cause instanceof Error ? `: ${cause.message}` : ''),
      { cause },
    );
  }
}

export function nativeBuildDir(): string {
  return join(packageRoot(), 'build', 'Release');
}

/** Path of a compiled BPF object, e.g. `probe.bpf.o`. */
export function bpfObjectPath(name: string): string {
  return join(nativeBuildDir(), name);
}

let addon: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (addon) return addon;
  const path = join(nativeBuildDir(), 'gapwatch_native.node');
  if (!existsSync(path)) throw new NativeUnavailableError(path);
  try {
    addon = require(path) as NativeAddon;
  } catch (err) {
    throw new NativeUnavailableError(path, err);
  }
  return addon;
}

let gatewayAddon: { exports: object | null; problem: string | null } | undefined;

/**
 * gapwatch_gateway.node, the gateway's native core (the journal's chain; native/addon/gateway-addon.cc):
 * its exports, or null and why (not built, does not load). Loaded once.
 */
export function loadGatewayAddon(): { exports: object | null; problem: string | null } {
  if (gatewayAddon) return gatewayAddon;
  const path = join(nativeBuildDir(), 'gapwatch_gateway.node');
  if (!existsSync(path)) gatewayAddon = { exports: null, problem: `${path} is not built (npm run setup builds it)` };
  else {
    try {
      gatewayAddon = { exports: require(path) as object, problem: null };
    } catch (err) {
      gatewayAddon = { exports: null, problem: `${path} does not load: ${(err as Error).message}` };
    }
  }
  return gatewayAddon;
}

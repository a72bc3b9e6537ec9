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

export interface NativeAddon {
  kernelInfo(): KernelInfo;
  progTypeSupported(type: ProgType): boolean;
  probeProgram(objectPath: string, programName: string, options?: { cgroupPath?: string }): ProbeResult;
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

import { accessSync, constants, readFileSync } from 'node:fs';

/**
 * Facts about this host read from /proc and /sys. Separate from the checks so tests can feed the
 * parsers the text of other machines.
 */

export const CAP_NET_ADMIN = 12;
export const CAP_SYS_ADMIN = 21;
export const CAP_PERFMON = 38;
export const CAP_BPF = 39;

/** Parses the CapEff line of /proc/<pid>/status into a bit set. */
export function parseEffectiveCaps(status: string): bigint {
  const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!match) throw new Error('no CapEff line in /proc/self/status');
  return BigInt(`0x${match[1]}`);
}

export function hasCap(caps: bigint, cap: number): boolean {
  return (caps & (1n << BigInt(cap))) !== 0n;
}

export function effectiveCaps(): bigint {
  return parseEffectiveCaps(readFileSync('/proc/self/status', 'utf8'));
}

export interface Mount {
  /** The directory of the filesystem that is mounted ("/" when the whole filesystem is). */
  root: string;
  mountPoint: string;
  fsType: string;
}

/**
 * Mounts from /proc/self/mountinfo. Fields 4 and 5 are the root within the filesystem and the
 * mount point; the filesystem type follows the " - " separator (optional fields before it vary in number).
 */
export function parseMounts(mountinfo: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fields = line.slice(0, sep).split(' ');
    const fsType = line.slice(sep + 3).split(' ')[0];
    if (fields[3] === undefined || fields[4] === undefined || !fsType) continue;
    mounts.push({ root: unescapeMountPath(fields[3]), mountPoint: unescapeMountPath(fields[4]), fsType });
  }
  return mounts;
}

export function mountsOfType(mountinfo: string, fsType: string): string[] {
  return parseMounts(mountinfo)
    .filter((m) => m.fsType === fsType)
    .map((m) => m.mountPoint);
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

function readMountinfo(): string {
  return readFileSync('/proc/self/mountinfo', 'utf8');
}

/** The cgroup v2 root: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones, or elsewhere. */
export function cgroup2Root(mountinfo: string = readMountinfo()): string | null {
  // A bind mount of a sub-cgroup is not the root: attach at the mount of the hierarchy's own root.
  const roots = parseMounts(mountinfo).filter((m) => m.fsType === 'cgroup2' && m.root === '/');
  roots.sort((a, b) => a.mountPoint.length - b.mountPoint.length);
  return roots[0]?.mountPoint ?? null;
}

/** tracefs, where tracepoint ids live: /sys/kernel/tracing or the older debugfs location. */
export function tracefsRoot(mountinfo: string = readMountinfo()): string | null {
  const points = mountsOfType(mountinfo, 'tracefs');
  const preferred = points.find((p) => p === '/sys/kernel/tracing');
  return preferred ?? points[0] ?? null;
}

/** Parses "6.18.44-fc-v595" into [6, 18, 44]. */
export function parseKernelRelease(release: string): [number, number, number] {
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  if (!match) throw new Error(`unrecognised kernel release ${JSON.stringify(release)}`);
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

export function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

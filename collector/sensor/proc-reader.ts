import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * Reading /proc: the snapshot the process table is seeded with at start, and the per-process
 * markers (environment, cgroup) used to attribute processes whose agent signature cannot be seen.
 * Every read tolerates the process having exited meanwhile.
 */
export interface ProcSnapshot {
  pid: number;
  ppid: number;
  /** /proc/<pid>/stat field 22: start time in USER_HZ ticks since boot. */
  startTicks: bigint;
  uid: number | null;
  gid: number | null;
  comm: string;
  filename: string;
  argv: string[];
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** comm may contain spaces and parentheses, so fields are counted after the last ')'. */
export function parseStat(stat: string): { comm: string; ppid: number; startTicks: bigint } | null {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open === -1 || close < open) return null;
  const fields = stat.slice(close + 2).split(' ');
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  const ppid = Number(fields[4 - 3]);
  const start = fields[22 - 3];
  if (!Number.isInteger(ppid) || start === undefined || !/^\d+$/.test(start)) return null;
  return { comm: stat.slice(open + 1, close), ppid, startTicks: BigInt(start) };
}

export function readProcess(pid: number, root = '/proc'): ProcSnapshot | null {
  const stat = readText(`${root}/${pid}/stat`);
  const parsed = stat === null ? null : parseStat(stat);
  if (!parsed) return null;
  const status = readText(`${root}/${pid}/status`) ?? '';
  const uid = /^Uid:\s+(\d+)/m.exec(status);
  const gid = /^Gid:\s+(\d+)/m.exec(status);
  const cmdline = readText(`${root}/${pid}/cmdline`) ?? '';
  let filename = '';
  try {
    filename = readlinkSync(`${root}/${pid}/exe`);
  } catch {
    // Kernel threads have no executable; a process may have exited.
  }
  return {
    pid,
    ppid: parsed.ppid,
    startTicks: parsed.startTicks,
    uid: uid ? Number(uid[1]) : null,
    gid: gid ? Number(gid[1]) : null,
    comm: parsed.comm,
    filename,
    argv: cmdline === '' ? [] : cmdline.replace(/\0$/, '').split('\0'),
  };
}

/** Every process on the host, oldest first, so parents come before their children. */
export function readAllProcesses(root = '/proc'): ProcSnapshot[] {
  const out: ProcSnapshot[] = [];
  for (const name of readdirSync(root)) {
    if (!/^\d+$/.test(name)) continue;
    const snapshot = readProcess(Number(name), root);
    if (snapshot) out.push(snapshot);
  }
  return out.sort((a, b) => (a.startTicks < b.startTicks ? -1 : a.startTicks > b.startTicks ? 1 : a.pid - b.pid));
}

export interface MarkerOptions {
  /** Environment variables that mark an agent run; the value names the agent (or the variable does). */
  envMarkers: readonly string[];
  /** cgroup v2 paths (regular expressions) that mark an agent run. */
  cgroupMarkers: readonly { agent: string; pattern: string }[];
}

/** A probe for the process table: the agent a marker names for this pid, or null. */
export function markerProbe(options: MarkerOptions, root = '/proc'): ((pid: number, cgroupId: bigint | null) => string | null) | null {
  if (options.envMarkers.length === 0 && options.cgroupMarkers.length === 0) return null;
  const cgroupPatterns = options.cgroupMarkers.map((m) => ({ agent: m.agent, pattern: new RegExp(m.pattern) }));
  // Processes of one cgroup share its verdict; reading /proc once per cgroup keeps exec storms cheap.
  const byCgroup = new Map<bigint, string | null>();
  return (pid, cgroupId) => {
    if (options.envMarkers.length > 0) {
      const environ = readText(`${root}/${pid}/environ`);
      if (environ) {
        for (const entry of environ.split('\0')) {
          const eq = entry.indexOf('=');
          if (eq > 0 && options.envMarkers.includes(entry.slice(0, eq))) {
            // GAPWATCH_AGENT_RUN=claude names the agent; a flag such as CLAUDECODE=1 is named by the variable.
            const value = entry.slice(eq + 1);
            return /^[A-Za-z][\w.-]*$/.test(value) ? value : entry.slice(0, eq);
          }
        }
      }
    }
    if (cgroupPatterns.length > 0) {
      const known = cgroupId === null ? undefined : byCgroup.get(cgroupId);
      if (known !== undefined) return known;
      const cgroup = readText(`${root}/${pid}/cgroup`);
      const unified = cgroup === null ? null : /^0::(.*)$/m.exec(cgroup);
      if (!unified) return null;
      const agent = cgroupPatterns.find(({ pattern }) => pattern.test(unified[1]!))?.agent ?? null;
      if (cgroupId !== null) byCgroup.set(cgroupId, agent);
      return agent;
    }
    return null;
  };
}

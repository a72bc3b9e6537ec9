import { existsSync } from 'node:fs';
import { release as kernelRelease } from 'node:os';
import { join } from 'node:path';
import { bpfObjectPath, loadNative, type NativeAddon, type ProbeResult } from '../../native/binding';
import { CONNECT_UNIX_KERNEL, MIN_KERNEL, SENSOR_TRACEPOINTS } from '../sensor/tracepoints';
import {
  CAP_BPF,
  CAP_NET_ADMIN,
  CAP_PERFMON,
  CAP_SYS_ADMIN,
  cgroup2Root,
  effectiveCaps,
  hasCap,
  parseKernelRelease,
  readable,
} from './host-facts';
import { ensureTracefs } from '../sensor/tracefs';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  detail: string;
  /** For warn and fail: what to do about it. */
  fix?: string;
}

export interface DoctorReport {
  checks: CheckResult[];
  /** True when nothing failed: the collector can run on this host. */
  ok: boolean;
}

/**
 * Checks, for real, that this host can run the collector: every BPF check loads and attaches an
 * actual program from native/bpf/probe.bpf.c and confirms it fired for this process.
 * Later components add their own checks (store reachability) through `extraChecks`.
 */
export async function runDoctor(extraChecks: Array<() => Promise<CheckResult>> = []): Promise<DoctorReport> {
  const checks: CheckResult[] = [];
  checks.push(checkPrivileges());
  checks.push(checkKernel());
  checks.push(checkBtf());
  checks.push(...checkTracepoints());

  let addon: NativeAddon | null = null;
  try {
    addon = loadNative();
    checks.push({ id: 'native-addon', title: 'native addon', status: 'ok', detail: `libbpf ${addon.kernelInfo().libbpfVersion}` });
  } catch (err) {
    checks.push({
      id: 'native-addon',
      title: 'native addon',
      status: 'fail',
      detail: (err as Error).message,
      fix: 'run `npm run setup` as root to build the addon and BPF objects',
    });
  }

  const cgroupRoot = cgroup2Root();
  if (addon) checks.push(...checkPrograms(addon, cgroupRoot));

  for (const extra of extraChecks) checks.push(await extra());
  return { checks, ok: checks.every((c) => c.status !== 'fail') };
}

function checkPrivileges(): CheckResult {
  const uid = process.geteuid?.() ?? -1;
  const caps = effectiveCaps();
  const names: string[] = [];
  if (hasCap(caps, CAP_SYS_ADMIN)) names.push('CAP_SYS_ADMIN');
  if (hasCap(caps, CAP_BPF)) names.push('CAP_BPF');
  if (hasCap(caps, CAP_PERFMON)) names.push('CAP_PERFMON');
  if (hasCap(caps, CAP_NET_ADMIN)) names.push('CAP_NET_ADMIN');
  const bpf = hasCap(caps, CAP_SYS_ADMIN) || hasCap(caps, CAP_BPF);
  const perfmon = hasCap(caps, CAP_SYS_ADMIN) || hasCap(caps, CAP_PERFMON);
  const netAdmin = hasCap(caps, CAP_NET_ADMIN);
  const who = uid === 0 ? 'root' : `uid ${uid}`;
  const held = names.length > 0 ? names.join(', ') : 'no relevant capabilities';
  if (bpf && perfmon && netAdmin) {
    return { id: 'privileges', title: 'privileges', status: 'ok', detail: `${who} with ${held}` };
  }
  const missing = [!bpf && 'CAP_BPF', !perfmon && 'CAP_PERFMON', !netAdmin && 'CAP_NET_ADMIN'].filter(Boolean).join(', ');
  return {
    id: 'privileges',
    title: 'privileges',
    status: 'fail',
    detail: `running as ${who} with ${held}; loading BPF programs needs ${missing}`,
    fix: 'run as root (`sudo gapwatch doctor`), or grant the collector CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN',
  };
}

function checkKernel(): CheckResult {
  // uname(2), the same source the addon uses; read here so the check works before the addon is built.
  const release = kernelRelease();
  let version: [number, number, number];
  try {
    version = parseKernelRelease(release);
  } catch (err) {
    return { id: 'kernel', title: 'kernel version', status: 'fail', detail: (err as Error).message };
  }
  if (atLeast(version, MIN_KERNEL)) {
    const unixNote = atLeast(version, CONNECT_UNIX_KERNEL) ? '' : '; unix-socket connects need 6.7 and are not seen';
    return { id: 'kernel', title: 'kernel version', status: unixNote ? 'warn' : 'ok', detail: `${release}${unixNote}` };
  }
  return {
    id: 'kernel',
    title: 'kernel version',
    status: 'fail',
    detail: `${release} is older than ${MIN_KERNEL.join('.')}, which the BPF ring buffer needs`,
    fix: `upgrade the kernel to ${MIN_KERNEL.join('.')} or newer`,
  };
}

function atLeast(version: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    const v = version[i] ?? 0;
    const m = min[i] ?? 0;
    if (v !== m) return v > m;
  }
  return true;
}

function checkBtf(): CheckResult {
  const path = '/sys/kernel/btf/vmlinux';
  if (readable(path)) return { id: 'btf', title: 'kernel BTF', status: 'ok', detail: path };
  return {
    id: 'btf',
    title: 'kernel BTF',
    status: 'fail',
    detail: existsSync(path) ? `${path} exists but is not readable by this user` : `${path} is missing`,
    fix: existsSync(path) ? 'run as root' : 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every mainstream distribution kernel since 2020 is)',
  };
}

function checkTracepoints(): CheckResult[] {
  const tracefs = ensureTracefs();
  if (!tracefs) {
    return [
      {
        id: 'tracefs',
        title: 'tracefs',
        status: 'fail',
        detail: 'tracefs is not mounted and could not be mounted; tracepoint ids cannot be resolved',
        fix: 'run as root, or mount it: mount -t tracefs nodev /sys/kernel/tracing',
      },
    ];
  }
  const root = tracefs.root;
  const mountNote = tracefs.mountedNow ? `; tracefs was not mounted, mounted it at ${root}` : '';
  if (!readable(join(root, 'events'))) {
    return [
      {
        id: 'tracefs',
        title: 'tracefs',
        status: 'fail',
        detail: `${root}/events is not readable by this user`,
        fix: 'run as root',
      },
    ];
  }
  const missing = SENSOR_TRACEPOINTS.filter((tp) => !existsSync(join(root, 'events', tp.category, tp.name, 'id')));
  if (missing.length === 0) {
    return [
      {
        id: 'tracepoints',
        title: 'tracepoints',
        status: 'ok',
        detail: `all ${SENSOR_TRACEPOINTS.length} present (${SENSOR_TRACEPOINTS.map((tp) => tp.name).join(', ')})${mountNote}`,
      },
    ];
  }
  return [
    {
      id: 'tracepoints',
      title: 'tracepoints',
      status: 'fail',
      detail: `missing: ${missing.map((tp) => `${tp.category}:${tp.name} (${tp.why})`).join(', ')}`,
      fix: 'use a kernel with CONFIG_FTRACE_SYSCALLS and the sched/sock tracepoints (any distribution kernel)',
    },
  ];
}

function checkPrograms(addon: NativeAddon, cgroupRoot: string | null): CheckResult[] {
  const object = bpfObjectPath('probe.bpf.o');
  const probe = (program: string, cgroupPath?: string): ProbeResult =>
    addon.probeProgram(object, program, cgroupPath ? { cgroupPath } : {});

  const results: CheckResult[] = [];
  results.push(required('bpf-tracepoint', 'tracepoint program', probe('probe_tracepoint'), 'attached to syscalls:sys_enter_connect and fired'));
  results.push(required('bpf-raw-tp', 'raw tracepoint program', probe('probe_raw_tp'), 'attached to raw_tp sys_enter and fired'));
  results.push(required('bpf-tp-btf', 'BTF tracepoint program', probe('probe_tp_btf'), 'attached to tp_btf sched_process_fork and fired'));

  if (!cgroupRoot) {
    results.push({
      id: 'bpf-cgroup',
      title: 'cgroup sock_addr program',
      status: 'fail',
      detail: 'no cgroup v2 hierarchy is mounted',
      fix: 'mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with systemd.unified_cgroup_hierarchy=1)',
    });
  } else {
    results.push(
      required('bpf-cgroup', 'cgroup sock_addr program', probe('probe_cgroup_connect4', cgroupRoot), `cgroup/connect4 attached at ${cgroupRoot} and fired`),
    );
  }

  // Trampolines are an optional extra: the sensor is built on tracepoints and cgroup hooks.
  results.push(optional('bpf-fentry', 'trampoline (fentry) program', probe('probe_fentry')));
  results.push(optional('bpf-lsm', 'BPF-LSM program', probe('probe_lsm')));
  results.push({
    id: 'kprobes',
    title: 'kprobes',
    status: 'ok',
    detail: 'not needed (gapwatch attaches no kprobes)',
  });
  return results;
}

function describeFailure(result: ProbeResult): string {
  const reason = result.error ?? `errno ${result.errno}`;
  return `${result.section} failed at ${result.stage}: ${firstLine(reason)}`;
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim().length > 0) ?? text;
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

function required(id: string, title: string, result: ProbeResult, okDetail: string): CheckResult {
  if (result.stage === 'done' && result.fired) return { id, title, status: 'ok', detail: okDetail };
  return {
    id,
    title,
    status: 'fail',
    detail: describeFailure(result),
    fix:
      result.errno === 1 || result.errno === 13
        ? 'run as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN'
        : 'see the libbpf message; set GAPWATCH_LIBBPF_DEBUG=1 for the full verifier log',
  };
}

function optional(id: string, title: string, result: ProbeResult): CheckResult {
  if (result.stage === 'done' && result.fired) return { id, title, status: 'ok', detail: `${result.section} loads and fires (optional extra)` };
  // The addon's first line reads "<stage> '<prog>' (<section>) failed: <strerror> (<hint>)"; the strerror is enough here.
  const reason = /failed: ([^(\n]+)/.exec(result.error ?? '')?.[1]?.trim() ?? `errno ${result.errno}`;
  return {
    id,
    title,
    status: 'warn',
    detail: `${result.section} refused at ${result.stage} (${reason}); not needed, the sensor uses tracepoints and cgroup hooks`,
  };
}

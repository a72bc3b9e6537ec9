import { execFileSync } from 'node:child_process';
import { tracefsRoot } from '../doctor/host-facts';

export const TRACEFS_MOUNT_POINT = '/sys/kernel/tracing';

/**
 * Classic tracepoints are attached by id, which libbpf reads from tracefs; some hosts (minimal VMs,
 * containers) boot without it mounted. Mounting it is what perf and bpftool do too. Returns the
 * mount point and whether this call mounted it; null when it is absent and cannot be mounted (not root).
 */
export function ensureTracefs(): { root: string; mountedNow: boolean } | null {
  const existing = tracefsRoot();
  if (existing) return { root: existing, mountedNow: false };
  if (process.geteuid?.() !== 0) return null;
  try {
    execFileSync('mount', ['-t', 'tracefs', 'nodev', TRACEFS_MOUNT_POINT], { stdio: 'ignore' });
  } catch {
    return null;
  }
  const root = tracefsRoot();
  return root ? { root, mountedNow: true } : null;
}

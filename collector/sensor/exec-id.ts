import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Linux reports process start times in /proc/<pid>/stat (field 22) in USER_HZ clock ticks, which is
 * 100 on every architecture gapwatch supports; the kernel computes it as start_boottime / (1e9 / USER_HZ).
 * Ticks are too coarse for exec_ids (a pid can come back within one tick), so exec_ids use the
 * kernel's start_boottime in ns: the BPF records carry it, and for processes that predate the sensor
 * the task iterator (sensor.bpf.c sensor_task_starts) reports it.
 */
export const USER_HZ = 100;
const NS_PER_TICK = BigInt(1_000_000_000 / USER_HZ);

export function startTicksOfNs(startNs: bigint): bigint {
  return startNs / NS_PER_TICK;
}

/** This boot of this host: exec_ids from another boot or host never collide with ours. */
export interface HostIdentity {
  host: string;
  bootId: string;
}

export function readHostIdentity(): HostIdentity {
  return { host: hostname(), bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() };
}

/**
 * exec_id: a process, unique across pid reuse (host, boot, pid, start time). 128 bits of SHA-256 in
 * hex, so it is a fixed-width key for the store and reveals nothing about the host by itself.
 */
export function execIdOf(identity: HostIdentity, pid: number, startNs: bigint): string {
  return createHash('sha256')
    .update(`${identity.host}\0${identity.bootId}\0${pid}\0${startNs}`)
    .digest('hex')
    .slice(0, 32);
}

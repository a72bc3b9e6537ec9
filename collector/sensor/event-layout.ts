/**
 * The record layouts of native/bpf/events.h, as byte offsets. events.h is the single definition; the
 * test in test/collector/sensor/event-layout.test.ts compares every number here with what the addon
 * reports from sizeof/offsetof, so a change there that is not made here fails the build's tests.
 */

/** enum gw_event_type: the header's `type`. */
export enum EventType {
  Exec = 1,
  Fork = 2,
  Exit = 3,
  Connect = 4,
  /** Written by the addon: counts of records lost in the kernel or in its queue. */
  Loss = 5,
}

export const EVENT_TYPE_COUNT = 6;

export const EventTypeName: Record<EventType, string> = {
  [EventType.Exec]: 'exec',
  [EventType.Fork]: 'fork',
  [EventType.Exit]: 'exit',
  [EventType.Connect]: 'connect',
  [EventType.Loss]: 'loss',
};

export enum ExecFlag {
  ArgvTruncated = 0x1,
  ArgvReadFailed = 0x2,
  FilenameTruncated = 0x4,
}

export enum ConnectFlag {
  Intent = 0x1,
  Outcome = 0x2,
  Local = 0x4,
  PathTruncated = 0x8,
}

/** Address families and socket types as the kernel numbers them (uapi socket.h). */
export enum AddressFamily {
  Unix = 1,
  Inet = 2,
  Inet6 = 10,
}

export enum SocketType {
  Stream = 1,
  Dgram = 2,
  SeqPacket = 5,
}

export enum IpProtocol {
  Tcp = 6,
  Udp = 17,
}

export const COMM_LEN = 16;
export const FILENAME_LEN = 256;
export const UNIX_PATH_LEN = 108;
export const ARGV_AREA = 65536;

/** struct gw_header */
export const Header = { size: 16, type: 0, flags: 2, recordSize: 4, timeNs: 8 } as const;

/** struct gw_task, relative to its own start */
export const Task = {
  size: 64,
  pid: 0,
  tgid: 4,
  ppid: 8,
  uid: 12,
  gid: 16,
  startNs: 24,
  parentStartNs: 32,
  cgroupId: 40,
  comm: 48,
} as const;

/** struct gw_exec; argv_captured bytes of argv follow at `size`. */
export const Exec = {
  size: 352,
  task: 16,
  argvTotal: 80,
  argvCaptured: 84,
  filenameLen: 88,
  oldPid: 92,
  filename: 96,
} as const;

export const Fork = { size: 80, task: 16 } as const;

export const Exit = { size: 88, task: 16, exitStatus: 80 } as const;

export const Connect = {
  size: 256,
  task: 16,
  socketCookie: 80,
  fd: 88,
  ret: 92,
  family: 96,
  sockType: 98,
  protocol: 100,
  remotePort: 102,
  localPort: 104,
  pathLen: 106,
  remoteAddr: 112,
  localAddr: 128,
  unixPath: 144,
} as const;

/** struct gw_task_start (task iterator output, not a ring buffer record) */
export const TaskStart = { size: 16, tgid: 0, startNs: 8 } as const;

export const Loss = { size: 112, kernelDrops: 16, queueDrops: 64 } as const;

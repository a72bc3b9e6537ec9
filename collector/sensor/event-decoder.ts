import {
  AddressFamily,
  ARGV_AREA,
  COMM_LEN,
  Connect,
  ConnectFlag,
  EVENT_TYPE_COUNT,
  EventType,
  EventTypeName,
  FILENAME_LEN,
  UNIX_PATH_LEN,
  Exec,
  ExecFlag,
  Exit,
  Fork,
  Header,
  IpProtocol,
  Loss,
  SocketType,
  Task,
  TaskStart,
} from './event-layout';

/** The process an event happened in (struct gw_task). Times are CLOCK_BOOTTIME nanoseconds. */
export interface TaskFields {
  pid: number;
  tgid: number;
  ppid: number;
  uid: number;
  gid: number;
  startNs: bigint;
  parentStartNs: bigint;
  cgroupId: bigint;
  comm: string;
}

export interface ExecEvent {
  type: EventType.Exec;
  timeNs: bigint;
  task: TaskFields;
  filename: string;
  filenameTruncated: boolean;
  /** argv as the new image received it. */
  argv: string[];
  argvTotalBytes: number;
  argvCapturedBytes: number;
  argvTruncated: boolean;
  argvReadFailed: boolean;
  oldPid: number;
}

export interface ForkEvent {
  type: EventType.Fork;
  timeNs: bigint;
  task: TaskFields;
}

export interface ExitEvent {
  type: EventType.Exit;
  timeNs: bigint;
  task: TaskFields;
  /** Raw wait(2) status. */
  exitStatus: number;
  /** Set when the process exited normally. */
  exitCode: number | null;
  /** Set when a signal ended it. */
  signal: number | null;
  coreDumped: boolean;
}

export type Transport = 'tcp' | 'udp' | 'unix-stream' | 'unix-dgram' | 'unix-seqpacket' | 'other';

export interface ConnectEvent {
  type: EventType.Connect;
  timeNs: bigint;
  task: TaskFields;
  /** A cgroup connect hook saw it (every path, io_uring included). */
  intent: boolean;
  /** connect(2) returned; `ret` is valid. */
  outcome: boolean;
  /** 0 or -errno; 0 and -EINPROGRESS both mean the connect started. */
  ret: number | null;
  fd: number | null;
  family: 'inet' | 'inet6' | 'unix';
  transport: Transport;
  remoteAddress: string | null;
  remotePort: number | null;
  localAddress: string | null;
  localPort: number | null;
  /** Unix socket path; abstract names are shown with a leading '@'. */
  unixPath: string | null;
  socketCookie: bigint;
}

export interface LossEvent {
  type: EventType.Loss;
  timeNs: bigint;
  /** Records the kernel could not reserve, by event name. */
  kernelDrops: Record<string, number>;
  /** Records the addon dropped because JavaScript fell behind, by event name. */
  queueDrops: Record<string, number>;
}

export type SensorEvent = ExecEvent | ForkEvent | ExitEvent | ConnectEvent | LossEvent;

export class BatchFormatError extends Error {}

/** Linux errno values the decoder names. */
export const EINPROGRESS = 115;

/**
 * Decodes one batch from the addon: records packed back to back, each starting with gw_header whose
 * size covers the whole record. A malformed record ends the batch with an error naming the offset;
 * the records before it are returned through `onEvent` first.
 */
export function decodeBatch(batch: Buffer, onEvent: (event: SensorEvent) => void): void {
  let offset = 0;
  while (offset < batch.length) {
    if (offset + Header.size > batch.length) throw new BatchFormatError(`truncated record header at offset ${offset} of ${batch.length}`);
    const type = batch.readUInt16LE(offset + Header.type);
    const size = batch.readUInt32LE(offset + Header.recordSize);
    if (size < Header.size || size % 8 !== 0 || offset + size > batch.length) {
      throw new BatchFormatError(`bad record size ${size} (type ${type}) at offset ${offset} of ${batch.length}`);
    }
    const event = decodeRecord(batch, offset, size, type);
    if (event) onEvent(event);
    offset += size;
  }
}

const MINIMUM_SIZE: Record<number, number> = {
  [EventType.Exec]: Exec.size,
  [EventType.Fork]: Fork.size,
  [EventType.Exit]: Exit.size,
  [EventType.Connect]: Connect.size,
  [EventType.Loss]: Loss.size,
};

/** Reads in place (absolute offsets into the batch): no per-record Buffer views on the hot path. */
function decodeRecord(batch: Buffer, at: number, size: number, type: number): SensorEvent | null {
  const needed = MINIMUM_SIZE[type];
  // An unknown type from a newer kernel object is skipped whole; its size still frames the stream.
  if (needed === undefined) return null;
  if (size < needed) throw new BatchFormatError(`${EventTypeName[type as EventType]} record of ${size} bytes, need ${needed}`);
  const flags = batch.readUInt16LE(at + Header.flags);
  const timeNs = batch.readBigUInt64LE(at + Header.timeNs);
  switch (type as EventType) {
    case EventType.Exec:
      return decodeExec(batch, at, size, flags, timeNs);
    case EventType.Fork:
      return { type: EventType.Fork, timeNs, task: decodeTask(batch, at + Fork.task) };
    case EventType.Exit:
      return decodeExit(batch, at, timeNs);
    case EventType.Connect:
      return decodeConnect(batch, at, flags, timeNs);
    case EventType.Loss:
      return decodeLoss(batch, at, timeNs);
  }
}

/** A NUL-terminated string in a fixed field of `length` bytes. */
function cString(batch: Buffer, start: number, length: number): string {
  let end = start;
  const limit = start + length;
  while (end < limit && batch[end] !== 0) end++;
  return batch.toString('utf8', start, end);
}

function decodeTask(batch: Buffer, at: number): TaskFields {
  return {
    pid: batch.readUInt32LE(at + Task.pid),
    tgid: batch.readUInt32LE(at + Task.tgid),
    ppid: batch.readUInt32LE(at + Task.ppid),
    uid: batch.readUInt32LE(at + Task.uid),
    gid: batch.readUInt32LE(at + Task.gid),
    startNs: batch.readBigUInt64LE(at + Task.startNs),
    parentStartNs: batch.readBigUInt64LE(at + Task.parentStartNs),
    cgroupId: batch.readBigUInt64LE(at + Task.cgroupId),
    comm: cString(batch, at + Task.comm, COMM_LEN),
  };
}

/** argv bytes are NUL-separated; a truncated capture may end mid-argument, which is kept as is. */
export function splitArgv(bytes: Buffer): string[] {
  if (bytes.length === 0) return [];
  const end = bytes[bytes.length - 1] === 0 ? bytes.length - 1 : bytes.length;
  return bytes.subarray(0, end).toString('utf8').split('\0');
}

function decodeExec(batch: Buffer, at: number, size: number, flags: number, timeNs: bigint): ExecEvent {
  const captured = batch.readUInt32LE(at + Exec.argvCaptured);
  if (captured > ARGV_AREA || Exec.size + captured > size) {
    throw new BatchFormatError(`exec record claims ${captured} argv bytes in ${size - Exec.size}`);
  }
  const filenameLen = Math.min(batch.readUInt32LE(at + Exec.filenameLen), FILENAME_LEN);
  return {
    type: EventType.Exec,
    timeNs,
    task: decodeTask(batch, at + Exec.task),
    filename: cString(batch, at + Exec.filename, filenameLen),
    filenameTruncated: (flags & ExecFlag.FilenameTruncated) !== 0,
    argv: splitArgv(batch.subarray(at + Exec.size, at + Exec.size + captured)),
    argvTotalBytes: batch.readUInt32LE(at + Exec.argvTotal),
    argvCapturedBytes: captured,
    argvTruncated: (flags & ExecFlag.ArgvTruncated) !== 0,
    argvReadFailed: (flags & ExecFlag.ArgvReadFailed) !== 0,
    oldPid: batch.readUInt32LE(at + Exec.oldPid),
  };
}

function decodeExit(batch: Buffer, at: number, timeNs: bigint): ExitEvent {
  const status = batch.readUInt32LE(at + Exit.exitStatus);
  const signal = status & 0x7f;
  return {
    type: EventType.Exit,
    timeNs,
    task: decodeTask(batch, at + Exit.task),
    exitStatus: status,
    exitCode: signal === 0 ? (status >> 8) & 0xff : null,
    signal: signal === 0 ? null : signal,
    coreDumped: (status & 0x80) !== 0,
  };
}

function decodeConnect(batch: Buffer, at: number, flags: number, timeNs: bigint): ConnectEvent {
  const outcome = (flags & ConnectFlag.Outcome) !== 0;
  const rawFamily = batch.readUInt16LE(at + Connect.family);
  const sockType = batch.readUInt16LE(at + Connect.sockType);
  const protocol = batch.readUInt16LE(at + Connect.protocol);
  let family: ConnectEvent['family'] = rawFamily === AddressFamily.Unix ? 'unix' : rawFamily === AddressFamily.Inet6 ? 'inet6' : 'inet';
  let remoteAddress: string | null = null;
  let localAddress: string | null = null;
  let unixPath: string | null = null;
  const hasLocal = (flags & ConnectFlag.Local) !== 0;
  const remote = at + Connect.remoteAddr;
  const local = at + Connect.localAddr;
  if (family === 'unix') {
    const pathLen = Math.min(batch.readUInt16LE(at + Connect.pathLen), UNIX_PATH_LEN);
    unixPath = formatUnixPath(batch.subarray(at + Connect.unixPath, at + Connect.unixPath + pathLen));
  } else if (family === 'inet') {
    remoteAddress = ipv4At(batch, remote);
    if (hasLocal) localAddress = ipv4At(batch, local);
  } else if (isV4MappedAt(batch, remote)) {
    // A v4-mapped destination (::ffff:a.b.c.d) is an IPv4 connection made through an IPv6 socket.
    family = 'inet';
    remoteAddress = ipv4At(batch, remote + 12);
    if (hasLocal) localAddress = isV4MappedAt(batch, local) ? ipv4At(batch, local + 12) : formatIpv6(batch.subarray(local, local + 16));
  } else {
    remoteAddress = formatIpv6(batch.subarray(remote, remote + 16));
    if (hasLocal) localAddress = formatIpv6(batch.subarray(local, local + 16));
  }
  return {
    type: EventType.Connect,
    timeNs,
    task: decodeTask(batch, at + Connect.task),
    intent: (flags & ConnectFlag.Intent) !== 0,
    outcome,
    ret: outcome ? batch.readInt32LE(at + Connect.ret) : null,
    fd: outcome ? batch.readInt32LE(at + Connect.fd) : null,
    family,
    transport: transportOf(rawFamily, sockType, protocol),
    remoteAddress,
    remotePort: family === 'unix' ? null : batch.readUInt16LE(at + Connect.remotePort),
    localAddress,
    localPort: hasLocal ? batch.readUInt16LE(at + Connect.localPort) : null,
    unixPath,
    socketCookie: batch.readBigUInt64LE(at + Connect.socketCookie),
  };
}

function transportOf(family: number, sockType: number, protocol: number): Transport {
  if (family === AddressFamily.Unix) {
    if (sockType === SocketType.Stream) return 'unix-stream';
    if (sockType === SocketType.Dgram) return 'unix-dgram';
    if (sockType === SocketType.SeqPacket) return 'unix-seqpacket';
    return 'other';
  }
  if (protocol === IpProtocol.Tcp) return 'tcp';
  if (protocol === IpProtocol.Udp) return 'udp';
  return 'other';
}

function decodeLoss(batch: Buffer, at: number, timeNs: bigint): LossEvent {
  const kernelDrops: Record<string, number> = {};
  const queueDrops: Record<string, number> = {};
  for (let type = 1; type < EVENT_TYPE_COUNT; type++) {
    const name = EventTypeName[type as EventType];
    const kernel = Number(batch.readBigUInt64LE(at + Loss.kernelDrops + type * 8));
    const queue = Number(batch.readBigUInt64LE(at + Loss.queueDrops + type * 8));
    if (kernel > 0) kernelDrops[name] = kernel;
    if (queue > 0) queueDrops[name] = queue;
  }
  return { type: EventType.Loss, timeNs, kernelDrops, queueDrops };
}

/** The task iterator's packed gw_task_start records: tgid -> start_boottime ns. */
export function decodeTaskStarts(buffer: Buffer): Map<number, bigint> {
  const starts = new Map<number, bigint>();
  for (let offset = 0; offset + TaskStart.size <= buffer.length; offset += TaskStart.size) {
    starts.set(buffer.readUInt32LE(offset + TaskStart.tgid), buffer.readBigUInt64LE(offset + TaskStart.startNs));
  }
  return starts;
}

function ipv4At(batch: Buffer, at: number): string {
  return `${batch[at]}.${batch[at + 1]}.${batch[at + 2]}.${batch[at + 3]}`;
}

function isV4MappedAt(batch: Buffer, at: number): boolean {
  for (let i = 0; i < 10; i++) if (batch[at + i] !== 0) return false;
  return batch[at + 10] === 0xff && batch[at + 11] === 0xff;
}

/** RFC 5952 text form: lowercase, the longest run of two or more zero groups as "::". */
export function formatIpv6(bytes: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** Pathname sockets end at the first NUL; abstract ones (leading NUL) use every byte, shown as '@name'. */
export function formatUnixPath(bytes: Buffer): string {
  if (bytes.length === 0) return '';
  if (bytes[0] === 0) return `@${bytes.subarray(1).toString('utf8').replace(/\0/g, '@')}`;
  return cString(bytes, 0, bytes.length);
}

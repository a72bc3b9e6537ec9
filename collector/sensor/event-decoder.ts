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
    const record = batch.subarray(offset, offset + size);
    const event = decodeRecord(record, type);
    if (event) onEvent(event);
    offset += size;
  }
}

function decodeRecord(record: Buffer, type: number): SensorEvent | null {
  const minimum: Record<number, number> = {
    [EventType.Exec]: Exec.size,
    [EventType.Fork]: Fork.size,
    [EventType.Exit]: Exit.size,
    [EventType.Connect]: Connect.size,
    [EventType.Loss]: Loss.size,
  };
  const needed = minimum[type];
  // An unknown type from a newer kernel object is skipped whole; its size still frames the stream.
  if (needed === undefined) return null;
  if (record.length < needed) throw new BatchFormatError(`${EventTypeName[type as EventType]} record of ${record.length} bytes, need ${needed}`);
  const flags = record.readUInt16LE(Header.flags);
  const timeNs = record.readBigUInt64LE(Header.timeNs);
  switch (type as EventType) {
    case EventType.Exec:
      return decodeExec(record, flags, timeNs);
    case EventType.Fork:
      return { type: EventType.Fork, timeNs, task: decodeTask(record, Fork.task) };
    case EventType.Exit:
      return decodeExit(record, timeNs);
    case EventType.Connect:
      return decodeConnect(record, flags, timeNs);
    case EventType.Loss:
      return decodeLoss(record, timeNs);
  }
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end === -1 ? bytes.length : end).toString('utf8');
}

function decodeTask(record: Buffer, at: number): TaskFields {
  return {
    pid: record.readUInt32LE(at + Task.pid),
    tgid: record.readUInt32LE(at + Task.tgid),
    ppid: record.readUInt32LE(at + Task.ppid),
    uid: record.readUInt32LE(at + Task.uid),
    gid: record.readUInt32LE(at + Task.gid),
    startNs: record.readBigUInt64LE(at + Task.startNs),
    parentStartNs: record.readBigUInt64LE(at + Task.parentStartNs),
    cgroupId: record.readBigUInt64LE(at + Task.cgroupId),
    comm: cString(record.subarray(at + Task.comm, at + Task.comm + COMM_LEN)),
  };
}

/** argv bytes are NUL-separated; a truncated capture may end mid-argument, which is kept as is. */
export function splitArgv(bytes: Buffer): string[] {
  if (bytes.length === 0) return [];
  const end = bytes[bytes.length - 1] === 0 ? bytes.length - 1 : bytes.length;
  return bytes.subarray(0, end).toString('utf8').split('\0');
}

function decodeExec(record: Buffer, flags: number, timeNs: bigint): ExecEvent {
  const captured = record.readUInt32LE(Exec.argvCaptured);
  if (captured > ARGV_AREA || Exec.size + captured > record.length) {
    throw new BatchFormatError(`exec record claims ${captured} argv bytes in ${record.length - Exec.size}`);
  }
  const filenameLen = Math.min(record.readUInt32LE(Exec.filenameLen), FILENAME_LEN);
  return {
    type: EventType.Exec,
    timeNs,
    task: decodeTask(record, Exec.task),
    filename: cString(record.subarray(Exec.filename, Exec.filename + filenameLen)),
    filenameTruncated: (flags & ExecFlag.FilenameTruncated) !== 0,
    argv: splitArgv(record.subarray(Exec.size, Exec.size + captured)),
    argvTotalBytes: record.readUInt32LE(Exec.argvTotal),
    argvCapturedBytes: captured,
    argvTruncated: (flags & ExecFlag.ArgvTruncated) !== 0,
    argvReadFailed: (flags & ExecFlag.ArgvReadFailed) !== 0,
    oldPid: record.readUInt32LE(Exec.oldPid),
  };
}

function decodeExit(record: Buffer, timeNs: bigint): ExitEvent {
  const status = record.readUInt32LE(Exit.exitStatus);
  const signal = status & 0x7f;
  return {
    type: EventType.Exit,
    timeNs,
    task: decodeTask(record, Exit.task),
    exitStatus: status,
    exitCode: signal === 0 ? (status >> 8) & 0xff : null,
    signal: signal === 0 ? null : signal,
    coreDumped: (status & 0x80) !== 0,
  };
}

function decodeConnect(record: Buffer, flags: number, timeNs: bigint): ConnectEvent {
  const outcome = (flags & ConnectFlag.Outcome) !== 0;
  const rawFamily = record.readUInt16LE(Connect.family);
  const sockType = record.readUInt16LE(Connect.sockType);
  const protocol = record.readUInt16LE(Connect.protocol);
  let family: ConnectEvent['family'] = rawFamily === AddressFamily.Unix ? 'unix' : rawFamily === AddressFamily.Inet6 ? 'inet6' : 'inet';
  let remoteAddress: string | null = null;
  let localAddress: string | null = null;
  let unixPath: string | null = null;
  const hasLocal = (flags & ConnectFlag.Local) !== 0;
  if (family === 'unix') {
    const pathLen = Math.min(record.readUInt16LE(Connect.pathLen), 108);
    unixPath = formatUnixPath(record.subarray(Connect.unixPath, Connect.unixPath + pathLen));
  } else if (family === 'inet') {
    remoteAddress = formatIpv4(record.subarray(Connect.remoteAddr, Connect.remoteAddr + 4));
    if (hasLocal) localAddress = formatIpv4(record.subarray(Connect.localAddr, Connect.localAddr + 4));
  } else {
    const remote = record.subarray(Connect.remoteAddr, Connect.remoteAddr + 16);
    const local = record.subarray(Connect.localAddr, Connect.localAddr + 16);
    // A v4-mapped destination (::ffff:a.b.c.d) is an IPv4 connection made through an IPv6 socket.
    if (isV4Mapped(remote)) {
      family = 'inet';
      remoteAddress = formatIpv4(remote.subarray(12));
      if (hasLocal) localAddress = isV4Mapped(local) ? formatIpv4(local.subarray(12)) : formatIpv6(local);
    } else {
      remoteAddress = formatIpv6(remote);
      if (hasLocal) localAddress = formatIpv6(local);
    }
  }
  return {
    type: EventType.Connect,
    timeNs,
    task: decodeTask(record, Connect.task),
    intent: (flags & ConnectFlag.Intent) !== 0,
    outcome,
    ret: outcome ? record.readInt32LE(Connect.ret) : null,
    fd: outcome ? record.readInt32LE(Connect.fd) : null,
    family,
    transport: transportOf(rawFamily, sockType, protocol),
    remoteAddress,
    remotePort: family === 'unix' ? null : record.readUInt16LE(Connect.remotePort),
    localAddress,
    localPort: hasLocal ? record.readUInt16LE(Connect.localPort) : null,
    unixPath,
    socketCookie: record.readBigUInt64LE(Connect.socketCookie),
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

function decodeLoss(record: Buffer, timeNs: bigint): LossEvent {
  const kernelDrops: Record<string, number> = {};
  const queueDrops: Record<string, number> = {};
  for (let type = 1; type < EVENT_TYPE_COUNT; type++) {
    const name = EventTypeName[type as EventType];
    const kernel = Number(record.readBigUInt64LE(Loss.kernelDrops + type * 8));
    const queue = Number(record.readBigUInt64LE(Loss.queueDrops + type * 8));
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

export function formatIpv4(bytes: Buffer): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

function isV4Mapped(bytes: Buffer): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
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
  return cString(bytes);
}

import type { SshFileOperation } from '../../proto/generated/gapwatch/v1/SshFileOperation';

/**
 * Watches an SFTP subsystem pass through without changing a byte, and reports each file operation.
 * SFTP version 3 (draft-ietf-secsh-filexfer-02, what OpenSSH speaks): every packet is
 * `uint32 length ‖ byte type ‖ uint32 request-id ‖ …`, the length not counting itself. Requests go
 * agent → server, each answered by one reply carrying the same id. Only the head of each packet is
 * kept (file data is counted, never buffered), so a transfer costs the gateway no copies.
 */
export enum SftpPacket {
  Init = 1,
  Version = 2,
  Open = 3,
  Close = 4,
  Read = 5,
  Write = 6,
  Lstat = 7,
  Fstat = 8,
  Setstat = 9,
  Fsetstat = 10,
  Opendir = 11,
  Readdir = 12,
  Remove = 13,
  Mkdir = 14,
  Rmdir = 15,
  Realpath = 16,
  Stat = 17,
  Rename = 18,
  Readlink = 19,
  Symlink = 20,
  Status = 101,
  Handle = 102,
  Data = 103,
  Name = 104,
  Attrs = 105,
  Extended = 200,
  ExtendedReply = 201,
}

/** SSH_FXP_STATUS codes (§7). */
export enum SftpStatus {
  Ok = 0,
  Eof = 1,
  NoSuchFile = 2,
  PermissionDenied = 3,
  Failure = 4,
  BadMessage = 5,
  NoConnection = 6,
  ConnectionLost = 7,
  OpUnsupported = 8,
}

/** SSH_FXF_* open flags (§6.3). */
enum OpenFlag {
  Read = 0x01,
  Write = 0x02,
  Append = 0x04,
  Create = 0x08,
  Truncate = 0x10,
}

/** Enough of every request and reply to read its fixed fields and names; longer packets are skipped. */
const HEAD_BYTES = 8192;

export type FileOperation = Omit<SshFileOperation, 'channel' | 'via'>;

interface OpenFile {
  path: string;
  directory: boolean;
  flags: number;
  read: number;
  written: number;
  extent: number;
}

type PendingRequest =
  | { kind: 'open'; path: string; flags: number; directory: boolean }
  | { kind: 'read'; handle: string; offset: number }
  | { kind: 'close'; handle: string }
  | { kind: 'simple'; operation: string; path: string; target: string };

/** Splits a byte stream into SFTP packets, handing over each packet's head and total length. */
class PacketFramer {
  private head = Buffer.alloc(0);
  private remaining = 0;
  private length = -1;

  constructor(private readonly onPacket: (head: Buffer, length: number) => void) {}

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, chunk.length - offset);
        this.remaining -= skip;
        offset += skip;
        continue;
      }
      if (this.length < 0) {
        const need = 4 - this.head.length;
        const take = chunk.subarray(offset, offset + need);
        this.head = this.head.length === 0 ? Buffer.from(take) : Buffer.concat([this.head, take]);
        offset += take.length;
        if (this.head.length < 4) return;
        this.length = this.head.readUInt32BE(0);
        this.head = Buffer.alloc(0);
        if (this.length === 0) {
          this.length = -1;
          continue;
        }
      }
      const wanted = Math.min(this.length, HEAD_BYTES) - this.head.length;
      const take = chunk.subarray(offset, offset + wanted);
      this.head = this.head.length === 0 ? Buffer.from(take) : Buffer.concat([this.head, take]);
      offset += take.length;
      if (this.head.length < Math.min(this.length, HEAD_BYTES)) return;
      const length = this.length;
      const head = this.head;
      this.remaining = length - head.length;
      this.length = -1;
      this.head = Buffer.alloc(0);
      this.onPacket(head, length);
    }
  }
}

/** Reads SFTP fields from a packet head; a field cut off by the head limit reads as null. */
class FieldReader {
  offset = 0;

  constructor(private readonly buffer: Buffer) {}

  byte(): number | null {
    if (this.offset + 1 > this.buffer.length) return null;
    return this.buffer[this.offset++]!;
  }

  uint32(): number | null {
    if (this.offset + 4 > this.buffer.length) return null;
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  uint64(): number | null {
    if (this.offset + 8 > this.buffer.length) return null;
    const value = Number(this.buffer.readBigUInt64BE(this.offset));
    this.offset += 8;
    return value;
  }

  /** A string's declared length, without reading its bytes (file data). */
  length(): number | null {
    return this.uint32();
  }

  bytes(): Buffer | null {
    const length = this.uint32();
    if (length === null || this.offset + length > this.buffer.length) return null;
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  string(): string | null {
    return this.bytes()?.toString('utf8') ?? null;
  }
}

const STATUS_NAMES: Record<number, string> = {
  [SftpStatus.Ok]: 'ok',
  [SftpStatus.Eof]: 'eof',
  [SftpStatus.NoSuchFile]: 'no such file',
  [SftpStatus.PermissionDenied]: 'permission denied',
  [SftpStatus.Failure]: 'failure',
  [SftpStatus.BadMessage]: 'bad message',
  [SftpStatus.NoConnection]: 'no connection',
  [SftpStatus.ConnectionLost]: 'connection lost',
  [SftpStatus.OpUnsupported]: 'operation unsupported',
};

/** Requests that change the file system, journaled with the server's status. */
const SIMPLE_OPERATIONS: Partial<Record<SftpPacket, { operation: string; fields: 1 | 2 }>> = {
  [SftpPacket.Remove]: { operation: 'remove', fields: 1 },
  [SftpPacket.Mkdir]: { operation: 'mkdir', fields: 1 },
  [SftpPacket.Rmdir]: { operation: 'rmdir', fields: 1 },
  [SftpPacket.Setstat]: { operation: 'setstat', fields: 1 },
  [SftpPacket.Rename]: { operation: 'rename', fields: 2 },
  [SftpPacket.Symlink]: { operation: 'symlink', fields: 2 },
};

/** OpenSSH extensions (PROTOCOL file in OpenSSH) that change the file system. */
const EXTENDED_OPERATIONS: Record<string, { operation: string; fields: 1 | 2 }> = {
  'posix-rename@openssh.com': { operation: 'rename', fields: 2 },
  'hardlink@openssh.com': { operation: 'link', fields: 2 },
  'lsetstat@openssh.com': { operation: 'setstat', fields: 1 },
  'copy-data': { operation: 'copy', fields: 1 },
};

export class SftpObserver {
  private readonly requests = new Map<number, PendingRequest>();
  private readonly files = new Map<string, OpenFile>();
  private readonly fromAgent: PacketFramer;
  private readonly fromServer: PacketFramer;

  constructor(private readonly report: (operation: FileOperation) => void) {
    this.fromAgent = new PacketFramer((head) => this.request(head));
    this.fromServer = new PacketFramer((head) => this.reply(head));
  }

  agentData(chunk: Buffer): void {
    this.fromAgent.push(chunk);
  }

  serverData(chunk: Buffer): void {
    this.fromServer.push(chunk);
  }

  /** The channel closed: files still open are reported as such. */
  finish(): void {
    for (const file of this.files.values()) this.reportFile(file, 'not closed');
    this.files.clear();
    this.requests.clear();
  }

  private request(head: Buffer): void {
    const reader = new FieldReader(head);
    const type = reader.byte();
    if (type === null || type === SftpPacket.Init) return;
    const id = reader.uint32();
    if (id === null) return;
    switch (type) {
      case SftpPacket.Open: {
        const path = reader.string();
        const flags = reader.uint32();
        if (path !== null) this.requests.set(id, { kind: 'open', path, flags: flags ?? 0, directory: false });
        return;
      }
      case SftpPacket.Opendir: {
        const path = reader.string();
        if (path !== null) this.requests.set(id, { kind: 'open', path, flags: 0, directory: true });
        return;
      }
      case SftpPacket.Read: {
        const handle = reader.bytes();
        const offset = reader.uint64();
        if (handle !== null && offset !== null) this.requests.set(id, { kind: 'read', handle: handle.toString('hex'), offset });
        return;
      }
      case SftpPacket.Write: {
        const handle = reader.bytes();
        const offset = reader.uint64();
        const length = reader.length();
        const file = handle === null ? undefined : this.files.get(handle.toString('hex'));
        if (file && offset !== null && length !== null) {
          file.written += length;
          file.extent = Math.max(file.extent, offset + length);
        }
        return;
      }
      case SftpPacket.Close: {
        const handle = reader.bytes();
        if (handle !== null) this.requests.set(id, { kind: 'close', handle: handle.toString('hex') });
        return;
      }
      case SftpPacket.Extended: {
        const name = reader.string();
        const known = name === null ? undefined : EXTENDED_OPERATIONS[name];
        if (!known) return;
        const path = reader.string() ?? '';
        const target = known.fields === 2 ? (reader.string() ?? '') : '';
        this.requests.set(id, { kind: 'simple', operation: known.operation, path, target });
        return;
      }
      default: {
        const known = SIMPLE_OPERATIONS[type as SftpPacket];
        if (!known) return;
        const path = reader.string() ?? '';
        const target = known.fields === 2 ? (reader.string() ?? '') : '';
        this.requests.set(id, { kind: 'simple', operation: known.operation, path, target });
      }
    }
  }

  private reply(head: Buffer): void {
    const reader = new FieldReader(head);
    const type = reader.byte();
    if (type === null || type === SftpPacket.Version) return;
    const id = reader.uint32();
    if (id === null) return;
    const request = this.requests.get(id);
    if (!request) return;
    this.requests.delete(id);
    let status = 'ok';
    if (type === SftpPacket.Status) {
      const code = reader.uint32() ?? SftpStatus.Failure;
      const message = reader.string();
      status = code === SftpStatus.Ok ? 'ok' : `${STATUS_NAMES[code] ?? `status ${code}`}${message ? `: ${message}` : ''}`;
    }
    switch (request.kind) {
      case 'open':
        if (type === SftpPacket.Handle) {
          const handle = reader.bytes();
          if (handle !== null) this.files.set(handle.toString('hex'), { path: request.path, directory: request.directory, flags: request.flags, read: 0, written: 0, extent: 0 });
        } else {
          this.reportFile({ path: request.path, directory: request.directory, flags: request.flags, read: 0, written: 0, extent: 0 }, status);
        }
        return;
      case 'read': {
        const file = this.files.get(request.handle);
        if (file && type === SftpPacket.Data) {
          const length = reader.length() ?? 0;
          file.read += length;
          file.extent = Math.max(file.extent, request.offset + length);
        }
        return;
      }
      case 'close': {
        const file = this.files.get(request.handle);
        if (!file) return;
        this.files.delete(request.handle);
        this.reportFile(file, status);
        return;
      }
      case 'simple':
        this.report({ operation: request.operation, path: request.path, targetPath: request.target, direction: '', bytes: '0', size: '0', status });
    }
  }

  private reportFile(file: OpenFile, status: string): void {
    if (file.directory) {
      this.report({ operation: 'list', path: file.path, direction: '', bytes: '0', size: '0', status });
      return;
    }
    const writing = file.written > 0 || (file.flags & (OpenFlag.Write | OpenFlag.Append | OpenFlag.Create | OpenFlag.Truncate)) !== 0;
    const moved = writing ? file.written : file.read;
    this.report({
      operation: writing ? 'write' : 'read',
      path: file.path,
      direction: writing ? 'upload' : 'download',
      bytes: String(moved),
      size: String(file.extent),
      status,
    });
  }
}

import assert from 'node:assert/strict';
import { SftpObserver, SftpPacket, SftpStatus, type FileOperation } from '../../../gateway/ssh/sftp-observer';

function str(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}

function u64(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}

function packet(type: SftpPacket, id: number, ...fields: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([type]), u32(id), ...fields]);
  return Buffer.concat([u32(body.length), body]);
}

const status = (id: number, code: SftpStatus, message = ''): Buffer => packet(SftpPacket.Status, id, u32(code), str(message), str(''));
const ATTRS_NONE = u32(0);

describe('gateway/ssh SftpObserver', () => {
  it('reports an upload with its path, bytes and size, however the stream is split', () => {
    const operations: FileOperation[] = [];
    const observer = new SftpObserver((op) => operations.push(op));
    const handle = Buffer.from('h1');
    const data = Buffer.alloc(40_000, 1);
    // A client writes only once the server handed it the handle.
    const open = packet(SftpPacket.Open, 1, str('/srv/up.bin'), u32(0x02 | 0x08 | 0x10), ATTRS_NONE);
    const agent = Buffer.concat([
      packet(SftpPacket.Write, 2, str(handle), u64(0), str(data)),
      packet(SftpPacket.Write, 3, str(handle), u64(40_000), str(data.subarray(0, 100))),
      packet(SftpPacket.Close, 4, str(handle)),
    ]);
    const server = Buffer.concat([status(2, SftpStatus.Ok), status(3, SftpStatus.Ok), status(4, SftpStatus.Ok)]);
    // Heads split across chunks, file data in odd-sized pieces: framing must not depend on chunking.
    for (let i = 0; i < open.length; i += 5) observer.agentData(open.subarray(i, i + 5));
    observer.serverData(packet(SftpPacket.Handle, 1, str(handle)));
    for (let i = 0; i < agent.length; i += 7) observer.agentData(agent.subarray(i, i + 7));
    observer.serverData(server.subarray(0, 20));
    observer.serverData(server.subarray(20));
    assert.deepEqual(operations, [{ operation: 'write', path: '/srv/up.bin', direction: 'upload', bytes: '40100', size: '40100', status: 'ok' }]);
  });

  it('reports a download, a refused open, renames (also the OpenSSH extension) and removals with the server status', () => {
    const operations: FileOperation[] = [];
    const observer = new SftpObserver((op) => operations.push(op));
    const handle = Buffer.from('hh');
    observer.agentData(
      Buffer.concat([
        packet(SftpPacket.Open, 1, str('/etc/hostname'), u32(0x01), ATTRS_NONE),
        packet(SftpPacket.Read, 2, str(handle), u64(0), u32(32768)),
        packet(SftpPacket.Read, 3, str(handle), u64(5), u32(32768)),
        packet(SftpPacket.Close, 4, str(handle)),
        packet(SftpPacket.Open, 5, str('/root/secret'), u32(0x01), ATTRS_NONE),
        packet(SftpPacket.Rename, 6, str('/a'), str('/b')),
        packet(SftpPacket.Extended, 7, str('posix-rename@openssh.com'), str('/b'), str('/c')),
        packet(SftpPacket.Remove, 8, str('/c')),
        packet(SftpPacket.Stat, 9, str('/c')),
      ]),
    );
    observer.serverData(
      Buffer.concat([
        packet(SftpPacket.Handle, 1, str(handle)),
        packet(SftpPacket.Data, 2, str('host\n')),
        status(3, SftpStatus.Eof),
        status(4, SftpStatus.Ok),
        status(5, SftpStatus.PermissionDenied, 'Permission denied'),
        status(6, SftpStatus.Ok),
        status(7, SftpStatus.Ok),
        status(8, SftpStatus.NoSuchFile, 'No such file'),
        status(9, SftpStatus.NoSuchFile),
      ]),
    );
    assert.deepEqual(
      operations.map((op) => [op.operation, op.path, op.targetPath ?? '', op.direction, op.bytes, op.status]),
      [
        ['read', '/etc/hostname', '', 'download', '5', 'ok'],
        ['read', '/root/secret', '', 'download', '0', 'permission denied: Permission denied'],
        ['rename', '/a', '/b', '', '0', 'ok'],
        ['rename', '/b', '/c', '', '0', 'ok'],
        ['remove', '/c', '', '', '0', 'no such file: No such file'],
      ],
    );
  });

  it('reports files still open when the channel ends', () => {
    const operations: FileOperation[] = [];
    const observer = new SftpObserver((op) => operations.push(op));
    observer.agentData(packet(SftpPacket.Open, 1, str('/tmp/partial'), u32(0x02 | 0x08), ATTRS_NONE));
    observer.serverData(packet(SftpPacket.Handle, 1, str('x')));
    observer.agentData(packet(SftpPacket.Write, 2, str('x'), u64(0), str('abc')));
    observer.finish();
    assert.deepEqual(operations, [{ operation: 'write', path: '/tmp/partial', direction: 'upload', bytes: '3', size: '3', status: 'not closed' }]);
  });
});

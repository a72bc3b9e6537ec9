import assert from 'node:assert/strict';
import { ScpObserver, scpDirection } from '../../../gateway/ssh/scp-observer';
import type { FileOperation } from '../../../gateway/ssh/sftp-observer';

describe('gateway/ssh ScpObserver', () => {
  it('recognises scp sink and source commands', () => {
    assert.deepEqual(scpDirection('scp -t /srv/in'), { direction: 'upload', target: '/srv/in' });
    assert.deepEqual(scpDirection('scp -r -d -t -- /srv/dir'), { direction: 'upload', target: '/srv/dir' });
    assert.deepEqual(scpDirection('scp -f /etc/hosts'), { direction: 'download', target: '/etc/hosts' });
    assert.equal(scpDirection('scpx -t /a'), null);
    assert.equal(scpDirection('ls -t /a'), null);
  });

  it('reports each file of a recursive upload with its directory, bytes and mode, however split', () => {
    const operations: FileOperation[] = [];
    const observer = new ScpObserver('upload', '/srv/in', (op) => operations.push(op));
    const stream = Buffer.concat([
      Buffer.from('D0755 0 tree\n'),
      Buffer.from('T1700000000 0 1700000000 0\n'),
      Buffer.from('C0644 5 a.txt\n'),
      Buffer.from('hello'),
      Buffer.from([0]),
      Buffer.from('C0600 0 empty\n'),
      Buffer.from([0]),
      Buffer.from('E\n'),
    ]);
    for (let i = 0; i < stream.length; i += 3) observer.senderData(stream.subarray(i, i + 3));
    observer.finish();
    assert.deepEqual(
      operations.map((op) => [op.operation, op.path, op.bytes, op.size, op.mode, op.status]),
      [
        ['mkdir', '/srv/in/tree', '0', '0', 0o755, 'ok'],
        ['write', '/srv/in/tree/a.txt', '5', '5', 0o644, 'ok'],
        ['write', '/srv/in/tree/empty', '0', '0', 0o600, 'ok'],
      ],
    );
  });

  it('reports a transfer cut off mid-file as incomplete', () => {
    const operations: FileOperation[] = [];
    const observer = new ScpObserver('download', '/var/log/big.log', (op) => operations.push(op));
    observer.senderData(Buffer.from('C0640 1000 big.log\nabc'));
    observer.finish();
    assert.deepEqual(operations, [{ operation: 'read', path: '/var/log/big.log', direction: 'download', bytes: '3', size: '1000', status: 'incomplete', mode: 0o640 }]);
  });
});

import assert from 'node:assert/strict';
import type { CommandCompleteMessage, RowDescriptionMessage } from 'pg-protocol/dist/messages';
import { UpstreamProtocolError } from '../../../gateway/postgres/errors';
import { decodeBackend, decodeCommandTag, decodeRowDescription } from '../../../gateway/postgres/backend-reader';

/** A backend message: type byte, Int32 length (itself included), body. */
function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function rowDescription(fields: Array<{ name: string; table: number; column: number; type: number; size: number; modifier: number; format: number }>): Buffer {
  const parts: Buffer[] = [Buffer.from([0, 0])];
  parts[0]!.writeInt16BE(fields.length, 0);
  for (const f of fields) {
    const fixed = Buffer.alloc(18);
    fixed.writeUInt32BE(f.table, 0);
    fixed.writeInt16BE(f.column, 4);
    fixed.writeUInt32BE(f.type, 6);
    fixed.writeInt16BE(f.size, 10);
    fixed.writeInt32BE(f.modifier, 12);
    fixed.writeInt16BE(f.format, 16);
    parts.push(Buffer.from(`${f.name}\0`, 'utf8'), fixed);
  }
  return message('T', Buffer.concat(parts));
}

describe('gateway/postgres backend reader', () => {
  it('reads RowDescription and CommandComplete in place as pg-protocol decodes them', () => {
    const described = rowDescription([
      { name: 'abalance', table: 16398, column: 3, type: 23, size: 4, modifier: -1, format: 0 },
      { name: 'é-mail', table: 0, column: 0, type: 25, size: -1, modifier: -1, format: 1 },
    ]);
    const reference = decodeBackend(described) as RowDescriptionMessage;
    assert.deepEqual(
      decodeRowDescription(described),
      reference.fields.map((f) => ({ name: f.name, tableOid: f.tableID, typeOid: f.dataTypeID, format: f.format })),
    );
    assert.deepEqual(decodeRowDescription(rowDescription([])), []);
    const complete = message('C', Buffer.from('INSERT 0 12\0'));
    assert.equal(decodeCommandTag(complete), (decodeBackend(complete) as CommandCompleteMessage).text);
  });

  it('refuses a RowDescription or CommandComplete cut short', () => {
    const described = rowDescription([{ name: 'id', table: 1, column: 1, type: 23, size: 4, modifier: -1, format: 0 }]);
    assert.throws(() => decodeRowDescription(described.subarray(0, described.length - 3)), UpstreamProtocolError);
    assert.throws(() => decodeRowDescription(message('T', Buffer.from([0, 1, 0x61]))), UpstreamProtocolError);
    assert.throws(() => decodeCommandTag(message('C', Buffer.from('SELECT 1'))), UpstreamProtocolError);
  });
});

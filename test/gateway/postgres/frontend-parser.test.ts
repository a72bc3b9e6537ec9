import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { serialize } from 'pg-protocol';
import { decodeRecord } from '../../../gateway/journal/canonical-encoding';
import { chainRecord, recordSuffix } from '../../../gateway/journal/record-chain';
import { messageRecord } from '../../../gateway/postgres/audit-format';
import { FrontendProtocolError } from '../../../gateway/postgres/errors';
import { FrontendParser, type FrontendMessage } from '../../../gateway/postgres/frontend-parser';
import { FormatCode, FrontendType, TargetKind } from '../../../gateway/postgres/protocol';

function parseAll(bytes: Buffer, chunkSize = bytes.length): FrontendMessage[] {
  const parser = new FrontendParser(1 << 20);
  parser.endStartup();
  const out: FrontendMessage[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) {
    parser.push(bytes.subarray(i, i + chunkSize));
    for (let m = parser.next(); m; m = parser.next()) out.push(m);
  }
  assert.equal(parser.pendingBytes, 0);
  return out;
}

describe('gateway/postgres frontend parser', () => {
  it('parses startup, SSLRequest, GSSENCRequest and CancelRequest packets', () => {
    const parser = new FrontendParser(1 << 20);
    const gssenc = Buffer.alloc(8);
    gssenc.writeInt32BE(8, 0);
    gssenc.writeInt32BE(80877104, 4);
    parser.push(Buffer.concat([serialize.requestSsl(), gssenc, serialize.cancel(42, -7), serialize.startup({ user: 'claude-ci', database: 'orders', application_name: 'psql' })]));
    assert.deepEqual(parser.nextStartup(), { kind: 'ssl' });
    assert.deepEqual(parser.nextStartup(), { kind: 'gssenc' });
    assert.deepEqual(parser.nextStartup(), { kind: 'cancel', processId: 42, secretKey: -7 });
    const startup = parser.nextStartup();
    assert.equal(startup?.kind, 'startup');
    assert.deepEqual(startup.kind === 'startup' && [...startup.parameters], [
      ['user', 'claude-ci'],
      ['database', 'orders'],
      ['application_name', 'psql'],
      ['client_encoding', 'UTF8'],
    ]);
    assert.equal(parser.nextStartup(), null);
  });

  it('parses every extended-protocol message as pg sends it, whole or one byte at a time', () => {
    const bytes = Buffer.concat([
      serialize.parse({ name: 's1', text: 'SELECT $1::int, $2::bytea', types: [23, 17] }),
      serialize.bind({ portal: 'p1', statement: 's1', values: ['7', Buffer.from([0xde, 0xad]), null], binary: true }),
      serialize.describe({ type: 'P', name: 'p1' }),
      serialize.execute({ portal: 'p1', rows: 10 }),
      serialize.close({ type: 'S', name: 's1' }),
      serialize.flush(),
      serialize.sync(),
      serialize.query('SELECT 1; SELECT 2'),
      serialize.copyData(Buffer.from('1\tone\n')),
      serialize.copyDone(),
      serialize.copyFail('client gave up'),
      serialize.end(),
    ]);
    for (const chunk of [bytes.length, 1, 7]) {
      const messages = parseAll(bytes, chunk);
      assert.deepEqual(messages.map((m) => String.fromCharCode(m.type)).join(''), 'PBDECHSQdcfX');
      const [parse, bind, describe, execute, close] = messages;
      assert.ok(parse?.type === FrontendType.Parse);
      assert.equal(parse.name, 's1');
      assert.equal(parse.text, 'SELECT $1::int, $2::bytea');
      assert.deepEqual(parse.parameterTypes, [23, 17]);
      assert.ok(bind?.type === FrontendType.Bind);
      assert.equal(bind.portal, 'p1');
      assert.equal(bind.statement, 's1');
      assert.deepEqual(bind.parameters, [Buffer.from('7'), Buffer.from([0xde, 0xad]), null]);
      assert.deepEqual(bind.parameterFormats, [FormatCode.Text, FormatCode.Binary, FormatCode.Text]);
      assert.deepEqual(bind.resultFormats, [FormatCode.Binary]);
      assert.ok(describe?.type === FrontendType.Describe && describe.target === TargetKind.Portal && describe.name === 'p1');
      assert.ok(execute?.type === FrontendType.Execute && execute.portal === 'p1' && execute.maxRows === 10);
      assert.ok(close?.type === FrontendType.Close && close.target === TargetKind.Statement && close.name === 's1');
      assert.deepEqual(Buffer.concat(messages.map((m) => m.raw)), bytes, 'raw bytes are forwarded unchanged');
    }
  });

  it('keeps an Execute row limit of -1 ("no limit" to PostgreSQL) as its 32 bits, and the journal takes the record', () => {
    const [execute] = parseAll(serialize.execute({ portal: 'p1', rows: 0xffff_ffff })) // the bytes of Int32 -1;
    assert.ok(execute?.type === FrontendType.Execute);
    assert.equal(execute.maxRows, 0xffff_ffff);
    const suffix = recordSuffix(1n, { event: { sessionId: 's', eventSeq: 1, pgRequest: { messages: [messageRecord(execute, false)] } } });
    assert.equal(decodeRecord(chainRecord('gw', 1n, Buffer.alloc(32), suffix).encoded).event?.pgRequest?.messages[0]?.maxRows, 0xffff_ffff);
  });

  const refuses = (bytes: Buffer, pattern: RegExp): void => {
    const parser = new FrontendParser(1 << 20);
    parser.endStartup();
    parser.push(bytes);
    assert.throws(() => parser.next(), (err: unknown) => err instanceof FrontendProtocolError && pattern.test(err.message) && err.sqlState === '08P01');
  };

  it('refuses unknown types, absurd lengths and bodies that lie about their contents', () => {
    refuses(Buffer.from([0x7a, 0, 0, 0, 4]), /invalid frontend message type/);
    refuses(Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]), /exceeds the gateway's limit/);
    refuses(Buffer.from([0x51, 0, 0, 0, 2]), /invalid length 2/);
    refuses(Buffer.from([0x51, 0, 0, 0, 7, 0x41, 0x42, 0x43]), /not NUL-terminated/);
    const bind = serialize.bind({ values: ['x'] });
    bind.writeInt16BE(30000, 7); // format-code count far beyond the body
    refuses(bind, /does not fit/);
    refuses(Buffer.from([0x53, 0, 0, 0, 5, 0]), /unexpected bytes/);
    const startup = new FrontendParser(1 << 20);
    startup.push(Buffer.from([0x7f, 0, 0, 0, 0, 0, 0, 0]));
    assert.throws(() => startup.nextStartup(), FrontendProtocolError);
  });

  it('answers random bytes with a protocol error or a wait for more, never anything else', () => {
    for (let i = 0; i < 2000; i++) {
      const parser = new FrontendParser(1 << 20);
      const startupPhase = i % 2 === 0;
      if (!startupPhase) parser.endStartup();
      parser.push(randomBytes(1 + (i % 64)));
      try {
        for (let n = 0; n < 100; n++) {
          const m = startupPhase ? parser.nextStartup() : parser.next();
          if (!m) break;
        }
      } catch (err) {
        assert.ok(err instanceof FrontendProtocolError, `unexpected ${String(err)}`);
      }
    }
  });
});

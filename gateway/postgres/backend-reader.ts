import type { BackendMessage, DatabaseError } from 'pg-protocol/dist/messages';
import { Parser } from 'pg-protocol/dist/parser';
import { UpstreamProtocolError } from './errors';

/**
 * Reads the upstream server's stream. The proxy's hot path only needs message boundaries (most
 * messages are forwarded as received), so framing is done here without decoding; the few messages
 * the audit needs are decoded: RowDescription and CommandComplete in place (one of each per result set),
 * ErrorResponse by pg-protocol's parser.
 * DataRows are never decoded into strings, so binary results pass through byte for byte.
 */

/** PostgreSQL never sends a message over 1 GiB (MaxAllocSize); anything larger is a broken stream. */
const MAX_BACKEND_MESSAGE = 0x40000000 + 64;

export class BackendFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole message (type byte and length included), or null until one has arrived. */
  next(): Buffer | null {
    if (this.buffered < 5) return null;
    let first = this.chunks[0]!;
    if (first.length < 5) first = this.coalesce();
    const length = first.readInt32BE(1);
    if (length < 4 || length > MAX_BACKEND_MESSAGE) {
      throw new UpstreamProtocolError(`upstream message of type 0x${first[0]!.toString(16)} claims length ${length}`);
    }
    const total = length + 1;
    if (this.buffered < total) return null;
    if (first.length < total) first = this.coalesce();
    const out = first.subarray(0, total);
    if (first.length === total) this.chunks.shift();
    else this.chunks[0] = first.subarray(total);
    this.buffered -= total;
    return out;
  }

  private coalesce(): Buffer {
    const joined = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [joined];
    return joined;
  }
}

const decoder = new Parser();

/** Decodes one whole backend message with pg-protocol. */
export function decodeBackend(message: Buffer): BackendMessage {
  let decoded: BackendMessage | null = null;
  decoder.parse(message, (m) => {
    decoded = m;
  });
  if (decoded === null) throw new UpstreamProtocolError('incomplete upstream message');
  return decoded;
}

/** One column of a RowDescription, as the audit and masking need it. */
export interface ColumnDescription {
  name: string;
  tableOid: number;
  typeOid: number;
  format: 'text' | 'binary';
}

/**
 * A RowDescription ('T'), read in place (every result set of the simple protocol has one, so this is
 * on the hot path): Int16 count, then per field a NUL-terminated name, Int32 table OID, Int16 column
 * number, Int32 type OID, Int16 type size, Int32 type modifier, Int16 format code.
 */
export function decodeRowDescription(message: Buffer): ColumnDescription[] {
  const broken = (): UpstreamProtocolError => new UpstreamProtocolError(`RowDescription of ${message.length} bytes is malformed`);
  if (message.length < 7) throw broken();
  const count = message.readInt16BE(5);
  const columns = new Array<ColumnDescription>(Math.max(0, count));
  let at = 7;
  for (let i = 0; i < count; i++) {
    const end = message.indexOf(0, at);
    if (end < 0 || end + 19 > message.length) throw broken();
    const name = message.toString('utf8', at, end);
    at = end + 1;
    const tableOid = message.readUInt32BE(at);
    const typeOid = message.readUInt32BE(at + 6);
    const format = message.readInt16BE(at + 16);
    at += 18;
    columns[i] = { name, tableOid, typeOid, format: format === 1 ? 'binary' : 'text' };
  }
  return columns;
}

/** The tag of a CommandComplete ('C'): one NUL-terminated string ("SELECT 3", "INSERT 0 1" …). */
export function decodeCommandTag(message: Buffer): string {
  const end = message.indexOf(0, 5);
  if (end < 0) throw new UpstreamProtocolError('CommandComplete without its NUL-terminated tag');
  return message.toString('utf8', 5, end);
}

/** A ParameterStatus ('S'): the setting's name and its new value. */
export function decodeParameterStatus(message: Buffer): [string, string] {
  const nameEnd = message.indexOf(0, 5);
  const valueEnd = nameEnd < 0 ? -1 : message.indexOf(0, nameEnd + 1);
  if (valueEnd < 0) throw new UpstreamProtocolError('ParameterStatus without its NUL-terminated name and value');
  return [message.toString('utf8', 5, nameEnd), message.toString('utf8', nameEnd + 1, valueEnd)];
}

export function decodeError(message: Buffer): DatabaseError {
  return decodeBackend(message) as DatabaseError;
}

/** The fields of a DataRow as raw bytes (null for SQL NULL). */
export function dataRowFields(message: Buffer): Array<Buffer | null> {
  const count = message.readInt16BE(5);
  const out = new Array<Buffer | null>(count);
  let offset = 7;
  for (let i = 0; i < count; i++) {
    const length = message.readInt32BE(offset);
    offset += 4;
    if (length < 0) {
      out[i] = null;
    } else {
      out[i] = message.subarray(offset, offset + length);
      offset += length;
    }
  }
  return out;
}

/** Rows counted in a command tag: "SELECT 3", "INSERT 0 3", "COPY 3", "UPDATE 3" … */
export function rowsFromTag(tag: string): number | null {
  const last = tag.lastIndexOf(' ');
  if (last < 0) return null;
  const n = Number(tag.slice(last + 1));
  return Number.isSafeInteger(n) ? n : null;
}

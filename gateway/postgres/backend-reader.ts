import type { BackendMessage, CommandCompleteMessage, DatabaseError, RowDescriptionMessage } from 'pg-protocol/dist/messages';
import { Parser } from 'pg-protocol/dist/parser';
import { UpstreamProtocolError } from './errors';

/**
 * Reads the upstream server's stream. The proxy's hot path only needs message boundaries (most
 * messages are forwarded as received), so framing is done here without decoding; the few messages
 * the audit needs (RowDescription, CommandComplete, ErrorResponse) are decoded by pg-protocol's parser.
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

export function decodeRowDescription(message: Buffer): RowDescriptionMessage {
  return decodeBackend(message) as RowDescriptionMessage;
}

export function decodeCommandTag(message: Buffer): string {
  return (decodeBackend(message) as CommandCompleteMessage).text;
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

import { FrontendProtocolError } from './errors';
import { FormatCode, FrontendType, StartupCode, TargetKind } from './protocol';

/**
 * Parses what a PostgreSQL client sends. pg-protocol parses only the server side, so the gateway
 * reads frontend messages itself: one decoder per message type in a table, each working on a body
 * whose length the frame already checked. Every message keeps `raw` (its exact bytes, type byte and
 * length included) so the proxy forwards what the client sent, not a re-encoding of it.
 *
 * Anything malformed throws FrontendProtocolError: the session answers with SQLSTATE 08P01 and
 * closes, as PostgreSQL does; other sessions are unaffected.
 */

/** PostgreSQL's own limit for a startup packet (MAX_STARTUP_PACKET_LENGTH in libpq-be). */
export const MAX_STARTUP_PACKET_BYTES = 10000;

export type StartupPacket =
  | { kind: 'startup'; protocol: number; parameters: Map<string, string> }
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secretKey: number };

export interface QueryMessage { type: FrontendType.Query; raw: Buffer; text: string }
export interface ParseMessage { type: FrontendType.Parse; raw: Buffer; name: string; text: string; parameterTypes: number[] }
export interface BindMessage {
  type: FrontendType.Bind;
  raw: Buffer;
  portal: string;
  statement: string;
  /** One format per parameter after expansion (0 or 1 codes given apply to all). */
  parameterFormats: FormatCode[];
  parameters: Array<Buffer | null>;
  resultFormats: FormatCode[];
}
export interface DescribeMessage { type: FrontendType.Describe; raw: Buffer; target: TargetKind; name: string }
export interface CloseMessage { type: FrontendType.Close; raw: Buffer; target: TargetKind; name: string }
export interface ExecuteMessage { type: FrontendType.Execute; raw: Buffer; portal: string; maxRows: number }
export interface CopyDataMessage { type: FrontendType.CopyData; raw: Buffer; data: Buffer }
export interface CopyFailMessage { type: FrontendType.CopyFail; raw: Buffer; message: string }
export interface FunctionCallMessage {
  type: FrontendType.FunctionCall;
  raw: Buffer;
  functionOid: number;
  argumentFormats: FormatCode[];
  arguments: Array<Buffer | null>;
  resultFormat: FormatCode;
}
export interface PasswordMessage { type: FrontendType.Password; raw: Buffer; body: Buffer }
export interface BareMessage {
  type: FrontendType.Sync | FrontendType.Flush | FrontendType.Terminate | FrontendType.CopyDone;
  raw: Buffer;
}

export type FrontendMessage =
  | QueryMessage
  | ParseMessage
  | BindMessage
  | DescribeMessage
  | CloseMessage
  | ExecuteMessage
  | CopyDataMessage
  | CopyFailMessage
  | FunctionCallMessage
  | PasswordMessage
  | BareMessage;

/** Bounds-checked reading of one message body; running past the end is a truncated message. */
export class BodyReader {
  private offset = 0;

  constructor(
    private readonly body: Buffer,
    private readonly what: string,
  ) {}

  int16(): number {
    this.need(2);
    const value = this.body.readInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  int32(): number {
    this.need(4);
    const value = this.body.readInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  byte(): number {
    this.need(1);
    return this.body[this.offset++]!;
  }

  /** A NUL-terminated string (UTF-8 on the wire, as the client_encoding the gateway requires). */
  cstring(): string {
    const end = this.body.indexOf(0, this.offset);
    if (end < 0) throw new FrontendProtocolError(`${this.what}: string is not NUL-terminated`);
    const value = this.body.toString('utf8', this.offset, end);
    this.offset = end + 1;
    return value;
  }

  bytes(length: number): Buffer {
    this.need(length);
    const value = this.body.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  rest(): Buffer {
    const value = this.body.subarray(this.offset);
    this.offset = this.body.length;
    return value;
  }

  /** A count that prefixes an array; negative or larger than the bytes left is a lie about the length. */
  count(elementMinBytes: number): number {
    const n = this.int16();
    if (n < 0 || n * elementMinBytes > this.body.length - this.offset) {
      throw new FrontendProtocolError(`${this.what}: count ${n} does not fit in the message`);
    }
    return n;
  }

  /** An Int32 length then that many bytes; -1 means NULL. */
  value(): Buffer | null {
    const length = this.int32();
    if (length === -1) return null;
    if (length < 0) throw new FrontendProtocolError(`${this.what}: negative value length ${length}`);
    return this.bytes(length);
  }

  end(): void {
    if (this.offset !== this.body.length) {
      throw new FrontendProtocolError(`${this.what}: ${this.body.length - this.offset} unexpected bytes at the end`);
    }
  }

  private need(n: number): void {
    if (this.offset + n > this.body.length) throw new FrontendProtocolError(`${this.what}: message is truncated`);
  }
}

function formats(reader: BodyReader, what: string): FormatCode[] {
  const n = reader.count(2);
  const out: FormatCode[] = new Array<FormatCode>(n);
  for (let i = 0; i < n; i++) {
    const code = reader.int16();
    if (code !== FormatCode.Text && code !== FormatCode.Binary) throw new FrontendProtocolError(`${what}: unknown format code ${code}`);
    out[i] = code;
  }
  return out;
}

/** Format codes as sent (none = all text, one = applies to all, else one each) expanded to one per value. */
function expandFormats(codes: FormatCode[], count: number, what: string): FormatCode[] {
  if (codes.length === count) return codes;
  if (codes.length === 0) return new Array<FormatCode>(count).fill(FormatCode.Text);
  if (codes.length === 1) return new Array<FormatCode>(count).fill(codes[0]!);
  throw new FrontendProtocolError(`${what}: ${codes.length} format codes for ${count} values`);
}

function target(reader: BodyReader, what: string): TargetKind {
  const kind = reader.byte();
  if (kind !== TargetKind.Statement && kind !== TargetKind.Portal) {
    throw new FrontendProtocolError(`${what}: target must be 'S' or 'P', got 0x${kind.toString(16)}`);
  }
  return kind;
}

type Decoder = (raw: Buffer, body: BodyReader) => FrontendMessage;

/** One decoder per frontend message type; a type not in the table is a protocol violation. */
const DECODERS: ReadonlyMap<number, Decoder> = new Map<number, Decoder>([
  [FrontendType.Query, (raw, r) => {
    const text = r.cstring();
    r.end();
    return { type: FrontendType.Query, raw, text };
  }],
  [FrontendType.Parse, (raw, r) => {
    const name = r.cstring();
    const text = r.cstring();
    const n = r.count(4);
    const parameterTypes = new Array<number>(n);
    for (let i = 0; i < n; i++) parameterTypes[i] = r.int32() >>> 0;
    r.end();
    return { type: FrontendType.Parse, raw, name, text, parameterTypes };
  }],
  [FrontendType.Bind, (raw, r) => {
    const portal = r.cstring();
    const statement = r.cstring();
    const codes = formats(r, 'Bind');
    const n = r.count(4);
    const parameters = new Array<Buffer | null>(n);
    for (let i = 0; i < n; i++) parameters[i] = r.value();
    const parameterFormats = expandFormats(codes, n, 'Bind');
    const resultFormats = formats(r, 'Bind');
    r.end();
    return { type: FrontendType.Bind, raw, portal, statement, parameterFormats, parameters, resultFormats };
  }],
  [FrontendType.Describe, (raw, r) => {
    const kind = target(r, 'Describe');
    const name = r.cstring();
    r.end();
    return { type: FrontendType.Describe, raw, target: kind, name };
  }],
  [FrontendType.Close, (raw, r) => {
    const kind = target(r, 'Close');
    const name = r.cstring();
    r.end();
    return { type: FrontendType.Close, raw, target: kind, name };
  }],
  [FrontendType.Execute, (raw, r) => {
    const portal = r.cstring();
    // An Int32 on the wire, and PostgreSQL reads any value <= 0 as "no limit" (libpq and JDBC send 0,
    // others -1); the journal's PgMessage.max_rows is uint32, so it keeps the 32 bits as unsigned
    // (-1 is 4294967295) rather than refusing the record, which would fail the session.
    const maxRows = r.int32() >>> 0;
    r.end();
    return { type: FrontendType.Execute, raw, portal, maxRows };
  }],
  [FrontendType.CopyData, (raw, r) => ({ type: FrontendType.CopyData, raw, data: r.rest() })],
  [FrontendType.CopyFail, (raw, r) => {
    const message = r.cstring();
    r.end();
    return { type: FrontendType.CopyFail, raw, message };
  }],
  [FrontendType.FunctionCall, (raw, r) => {
    const functionOid = r.int32() >>> 0;
    const codes = formats(r, 'FunctionCall');
    const n = r.count(4);
    const args = new Array<Buffer | null>(n);
    for (let i = 0; i < n; i++) args[i] = r.value();
    const resultFormat = r.int16();
    if (resultFormat !== FormatCode.Text && resultFormat !== FormatCode.Binary) {
      throw new FrontendProtocolError(`FunctionCall: unknown result format ${resultFormat}`);
    }
    r.end();
    return {
      type: FrontendType.FunctionCall,
      raw,
      functionOid,
      argumentFormats: expandFormats(codes, n, 'FunctionCall'),
      arguments: args,
      resultFormat,
    };
  }],
  [FrontendType.Password, (raw, r) => ({ type: FrontendType.Password, raw, body: r.rest() })],
  ...[FrontendType.Sync, FrontendType.Flush, FrontendType.Terminate, FrontendType.CopyDone].map(
    (type): [number, Decoder] => [type, (raw, r) => {
      r.end();
      return { type, raw } as BareMessage;
    }],
  ),
]);

const FRONTEND_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(FrontendType)
    .filter((entry): entry is [string, number] => typeof entry[1] === 'number')
    .map(([name, code]) => [code, name]),
);

export function frontendTypeName(type: number): string {
  return FRONTEND_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

/**
 * Frames a client's byte stream into messages. Chunks are kept as received and joined once a whole
 * frame is present, so a large COPY or Bind arriving in many pieces costs one copy, not one per piece.
 */
export class FrontendParser {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private startup = true;

  constructor(private readonly maxMessageBytes: number) {}

  /** After the startup packet, frames carry a type byte. */
  endStartup(): void {
    this.startup = false;
  }

  /** Bytes received and not yet part of a whole message. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next startup-phase packet, or null until one has fully arrived. */
  nextStartup(): StartupPacket | null {
    if (!this.startup) throw new Error('nextStartup called after startup ended');
    const head = this.peek(4);
    if (!head) return null;
    const length = head.readInt32BE(0);
    if (length < 8 || length > MAX_STARTUP_PACKET_BYTES) {
      throw new FrontendProtocolError(`invalid startup packet length ${length} (must be 8..${MAX_STARTUP_PACKET_BYTES})`);
    }
    const packet = this.take(length);
    if (!packet) return null;
    const body = new BodyReader(packet.subarray(4), 'startup packet');
    const code = body.int32();
    switch (code) {
      case StartupCode.SslRequest:
        body.end();
        return { kind: 'ssl' };
      case StartupCode.GssEncRequest:
        body.end();
        return { kind: 'gssenc' };
      case StartupCode.CancelRequest: {
        const processId = body.int32();
        const secretKey = body.int32();
        body.end();
        return { kind: 'cancel', processId, secretKey };
      }
      default: {
        if (code >>> 16 !== 3) {
          throw new FrontendProtocolError(`unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: the gateway speaks 3.0`);
        }
        const parameters = new Map<string, string>();
        for (;;) {
          const name = body.cstring();
          if (name === '') break;
          parameters.set(name, body.cstring());
        }
        body.end();
        return { kind: 'startup', protocol: code, parameters };
      }
    }
  }

  /** The next regular message, or null until one has fully arrived. */
  next(): FrontendMessage | null {
    if (this.startup) throw new Error('next called during startup');
    const head = this.peek(5);
    if (!head) return null;
    const type = head[0]!;
    const decode = DECODERS.get(type);
    if (!decode) throw new FrontendProtocolError(`invalid frontend message type ${frontendTypeName(type)}`);
    const length = head.readInt32BE(1);
    if (length < 4) throw new FrontendProtocolError(`invalid length ${length} for ${frontendTypeName(type)} message`);
    if (length > this.maxMessageBytes) {
      throw new FrontendProtocolError(
        `${frontendTypeName(type)} message of ${length} bytes exceeds the gateway's limit of ${this.maxMessageBytes} bytes`,
      );
    }
    const raw = this.take(length + 1);
    if (!raw) return null;
    return decode(raw, new BodyReader(raw.subarray(5), frontendTypeName(type)));
  }

  /** The first n buffered bytes without consuming them, or null when fewer are buffered. */
  private peek(n: number): Buffer | null {
    if (this.buffered < n) return null;
    if (this.chunks[0]!.length < n) this.coalesce();
    return this.chunks[0]!;
  }

  /** Consumes and returns the first n bytes, or null when fewer are buffered. */
  private take(n: number): Buffer | null {
    if (this.buffered < n) return null;
    if (this.chunks[0]!.length < n) this.coalesce();
    const first = this.chunks[0]!;
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }

  private coalesce(): void {
    this.chunks = [Buffer.concat(this.chunks, this.buffered)];
  }
}

import { AuthCode, BackendType, ErrorField, TransactionStatus } from './protocol';

/**
 * Encodes the server-side messages the gateway itself sends to agents (authentication, its own
 * BackendKeyData, ErrorResponse/NoticeResponse for policy, rewritten DataRows for masking).
 * pg-protocol serializes only the client side, so these few are written here.
 */

function message(type: BackendType, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function int32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(value, 0);
  return b;
}

function cstring(value: string): Buffer {
  return Buffer.concat([Buffer.from(value, 'utf8'), Buffer.from([0])]);
}

export function authentication(code: AuthCode, data: Buffer = Buffer.alloc(0)): Buffer {
  return message(BackendType.Authentication, Buffer.concat([int32(code), data]));
}

/** AuthenticationSASL: the mechanisms offered, each NUL-terminated, then an empty name. */
export function authenticationSasl(mechanisms: readonly string[]): Buffer {
  return authentication(AuthCode.Sasl, Buffer.concat([...mechanisms.map(cstring), Buffer.from([0])]));
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  return message(BackendType.BackendKeyData, Buffer.concat([int32(processId), int32(secretKey)]));
}

export function readyForQuery(status: TransactionStatus): Buffer {
  return message(BackendType.ReadyForQuery, Buffer.from([status]));
}

export interface Notice {
  severity: 'ERROR' | 'FATAL' | 'NOTICE' | 'WARNING' | 'INFO';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function fields(notice: Notice): Buffer {
  const parts: Buffer[] = [];
  const add = (field: ErrorField, value: string | undefined): void => {
    if (value === undefined) return;
    parts.push(Buffer.from([field]), cstring(value));
  };
  add(ErrorField.Severity, notice.severity);
  add(ErrorField.SeverityNonLocalized, notice.severity);
  add(ErrorField.Code, notice.code);
  add(ErrorField.Message, notice.message);
  add(ErrorField.Detail, notice.detail);
  add(ErrorField.Hint, notice.hint);
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export function errorResponse(notice: Notice): Buffer {
  return message(BackendType.ErrorResponse, fields(notice));
}

export function noticeResponse(notice: Notice): Buffer {
  return message(BackendType.NoticeResponse, fields(notice));
}

/** A DataRow: Int16 column count, then per column an Int32 length (-1 for NULL) and the bytes. */
export function dataRow(values: ReadonlyArray<Buffer | null>): Buffer {
  let size = 2;
  for (const v of values) size += 4 + (v ? v.length : 0);
  const out = Buffer.allocUnsafe(5 + size);
  out[0] = BackendType.DataRow;
  out.writeInt32BE(4 + size, 1);
  out.writeInt16BE(values.length, 5);
  let offset = 7;
  for (const v of values) {
    if (v === null) {
      out.writeInt32BE(-1, offset);
      offset += 4;
    } else {
      out.writeInt32BE(v.length, offset);
      v.copy(out, offset + 4);
      offset += 4 + v.length;
    }
  }
  return out;
}

export function parameterStatus(name: string, value: string): Buffer {
  return message(BackendType.ParameterStatus, Buffer.concat([cstring(name), cstring(value)]));
}

/** Tells a client asking for protocol 3.x (x > 0) or `_pq_.` options what the gateway speaks: 3.0, none. */
export function negotiateProtocolVersion(newestMinor: number, unsupportedOptions: readonly string[]): Buffer {
  return message(BackendType.NegotiateProtocolVersion, Buffer.concat([int32(newestMinor), int32(unsupportedOptions.length), ...unsupportedOptions.map(cstring)]));
}

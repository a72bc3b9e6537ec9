import type { PgMessage } from '../../proto/generated/gapwatch/v1/PgMessage';
import type { PgParameter } from '../../proto/generated/gapwatch/v1/PgParameter';
import { frontendTypeName, type FrontendMessage } from './frontend-parser';
import { FormatCode, FrontendType, TargetKind } from './protocol';

/**
 * How protocol values appear in the journal: text-format parameters decoded as UTF-8, binary ones as
 * hex (their meaning depends on the type, which the gateway does not interpret), NULL as NULL, and
 * values the policy's masking patterns match withheld.
 */

/** Says whether text parameter `index` holds a value policy wants kept out of the journal. */
export type ParameterRedactor = (index: number, value: Buffer) => boolean;

export const REDACTED = '[redacted]';

export function parameterRecord(value: Buffer | null, format: FormatCode, index = 0, redact: ParameterRedactor | null = null): PgParameter {
  if (value === null) return { null: true };
  if (format === FormatCode.Binary) return { hex: value.toString('hex') };
  if (redact?.(index, value)) return { redacted: true };
  return { text: value.toString('utf8') };
}

/** The same as one display string, for the Statement summary: NULL unquoted, binary as \x… (bytea style). */
export function parameterDisplay(value: Buffer | null, format: FormatCode, index = 0, redact: ParameterRedactor | null = null): string {
  if (value === null) return 'NULL';
  if (format === FormatCode.Binary) return `\\x${value.toString('hex')}`;
  return redact?.(index, value) ? REDACTED : value.toString('utf8');
}

function targetName(target: TargetKind): 'statement_name' | 'portal' {
  return target === TargetKind.Statement ? 'statement_name' : 'portal';
}

/**
 * A frontend message as the write-ahead record shows it. Each case is one object literal: spreading a
 * fresh object and adding properties (`{ ...base, text }`) takes a slow path in V8, about a microsecond
 * per message on this hardware, three times per extended-protocol round trip.
 */
export function messageRecord(msg: FrontendMessage, withheld: boolean, redact: ParameterRedactor | null = null): PgMessage {
  const type = frontendTypeName(msg.type);
  switch (msg.type) {
    case FrontendType.Query:
      return { type, withheld, text: msg.text };
    case FrontendType.Parse:
      return { type, withheld, text: msg.text, statementName: msg.name, parameterTypes: msg.parameterTypes };
    case FrontendType.Bind:
      return {
        type,
        withheld,
        statementName: msg.statement,
        portal: msg.portal,
        parameters: msg.parameters.map((value, i) => parameterRecord(value, msg.parameterFormats[i]!, i, redact)),
      };
    case FrontendType.Describe:
    case FrontendType.Close:
      return targetName(msg.target) === 'portal' ? { type, withheld, portal: msg.name } : { type, withheld, statementName: msg.name };
    case FrontendType.Execute:
      return { type, withheld, portal: msg.portal, maxRows: msg.maxRows };
    case FrontendType.FunctionCall:
      return {
        type,
        withheld,
        functionOid: msg.functionOid,
        parameters: msg.arguments.map((value, i) => parameterRecord(value, msg.argumentFormats[i]!, i, redact)),
      };
    case FrontendType.CopyFail:
      return { type, withheld, text: msg.message };
    default:
      return { type, withheld };
  }
}

/** What the policy layer and the journal see for a FunctionCall: the function's OID and its arguments. */
export function functionCallText(oid: number, args: ReadonlyArray<Buffer | null>, formats: readonly FormatCode[], redact: ParameterRedactor | null = null): string {
  return `function ${oid}(${args.map((a, i) => parameterDisplay(a, formats[i]!, i, redact)).join(', ')})`;
}

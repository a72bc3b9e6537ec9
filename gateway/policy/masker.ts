import type { MaskConfig, ValuePatternConfig } from './config-schema';
import type { Masker, MaskColumn } from './contract';
import { compileGlob, RelationPattern, splitQualifiedName, type SchemaResolution } from './name-patterns';

/** The gateway resolves table OIDs to schema-qualified names, so the schema is always known here. */
const ANY_SCHEMA: SchemaResolution = { searchPath: 'unknown', require: 'some' };

/**
 * Masking of result sets. Values arrive as the text format of each column (the DataRow field bytes);
 * a masked column's value becomes the rule's replacement, and value patterns (e-mail addresses,
 * card numbers, custom expressions) are replaced wherever they occur in any text field.
 */

const EMAIL = /[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})/g;
/** 13 to 19 digits, optionally grouped by single spaces or dashes (how card numbers are written). */
const CARD_CANDIDATE = /(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])/g;

/** The Luhn checksum (ISO/IEC 7812-1): card numbers pass it, most other digit runs do not. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let digit = digits.charCodeAt(i) - 48;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

type ValueRewriter = (text: string) => string;

/**
 * PostgreSQL type OIDs (pg_type.dat) whose binary send format is the UTF-8 text itself, and jsonb,
 * whose binary form is a version byte (1) followed by the text.
 */
enum TextTypeOid {
  Char = 18,
  Name = 19,
  Text = 25,
  Json = 114,
  Xml = 142,
  Unknown = 705,
  Bpchar = 1042,
  Varchar = 1043,
}
const JSONB_OID = 3802;
const TEXT_TYPE_OIDS = new Set<number>(Object.values(TextTypeOid).filter((value): value is number => typeof value === 'number'));
/** Scalar types whose binary form can hold no text a value pattern looks for: passed through. */
const NON_TEXT_SCALAR_OIDS = new Set([16, 17, 20, 21, 23, 26, 650, 700, 701, 790, 869, 1082, 1083, 1114, 1184, 1186, 1266, 1700, 2950]);

function rewriterFor(pattern: ValuePatternConfig, replacement: string): ValueRewriter {
  if (pattern === 'email') return (text) => text.replace(EMAIL, (_match, domain: string) => `${replacement}@${domain}`);
  if (pattern === 'card_number') {
    // Keeps the last four digits, as receipts do; separators stay where they were.
    return (text) =>
      text.replace(CARD_CANDIDATE, (match) => {
        const digits = match.replace(/[ -]/g, '');
        if (!luhnValid(digits)) return match;
        let keep = 4;
        let out = '';
        for (let i = match.length - 1; i >= 0; i--) {
          const ch = match[i]!;
          if (ch >= '0' && ch <= '9') {
            out = (keep > 0 ? ch : '*') + out;
            keep--;
          } else {
            out = ch + out;
          }
        }
        return out;
      });
  }
  const regex = new RegExp(pattern.regex, 'g');
  return (text) => text.replace(regex, replacement);
}

/** A column pattern: `column`, `table.column` or `schema.table.column`, each part a glob. */
class ColumnPattern {
  private readonly column: RegExp;
  private readonly table: RelationPattern | null;

  constructor(pattern: string) {
    const parts = splitQualifiedName(pattern);
    this.column = compileGlob(parts[parts.length - 1]!);
    this.table = parts.length > 1 ? new RelationPattern(parts.slice(0, -1).map((part) => `"${part.replaceAll('"', '""')}"`).join('.')) : null;
  }

  /**
   * A table-qualified pattern needs the column's table: when the gateway could not resolve it (or
   * the column is computed, table OID 0, e.g. an alias), the name alone decides — failing closed.
   */
  matches(column: MaskColumn, tableFilter: RelationPattern[]): boolean {
    if (!this.column.test(column.name)) return false;
    const relation = column.relation;
    if (relation === undefined) return true;
    if (this.table && !this.table.matches(relation, ANY_SCHEMA)) return false;
    if (!this.table && tableFilter.length > 0 && !tableFilter.some((pattern) => pattern.matches(relation, ANY_SCHEMA))) return false;
    return true;
  }
}

export interface MaskRuleInput {
  mask: MaskConfig;
  /** The rule's `relations`: limits unqualified column names to these tables. */
  relations: readonly string[];
}

/**
 * A redactor for values written to the audit journal (bind parameters, COPY data samples): the value
 * patterns of the mask rules that apply, plus the always-on audit patterns; null when there are none.
 */
export function buildAuditRedactor(
  rules: readonly MaskRuleInput[],
  auditPatterns: readonly ValuePatternConfig[],
  replacement: string,
): ((value: string) => string) | null {
  const rewriters = [
    ...auditPatterns.map((pattern) => rewriterFor(pattern, replacement)),
    ...rules.flatMap((rule) => rule.mask.values.map((pattern) => rewriterFor(pattern, rule.mask.replacement))),
  ];
  if (rewriters.length === 0) return null;
  return (value) => rewriters.reduce((text, rewrite) => rewrite(text), value);
}

/** Builds a masker from the mask rules that apply, or null when none changes anything. */
export function buildMasker(rules: readonly MaskRuleInput[], columns: ReadonlyArray<MaskColumn>): Masker | null {
  if (rules.length === 0) return null;
  const replacements = new Map<number, Buffer>();
  const rewriters: ValueRewriter[] = [];
  for (const rule of rules) {
    const tableFilter = rule.relations.map((pattern) => new RelationPattern(pattern));
    const patterns = rule.mask.columns.map((pattern) => new ColumnPattern(pattern));
    columns.forEach((column, index) => {
      if (!replacements.has(index) && patterns.some((pattern) => pattern.matches(column, tableFilter))) {
        replacements.set(index, Buffer.from(rule.mask.replacement, 'utf8'));
      }
    });
    for (const value of rule.mask.values) rewriters.push(rewriterFor(value, rule.mask.replacement));
  }
  if (replacements.size === 0 && rewriters.length === 0) return null;
  const maskedColumns = [...replacements.keys()].sort((a, b) => a - b);
  const rewrite = (value: Buffer): Buffer => {
    if (rewriters.length === 0) return value;
    const text = value.toString('utf8');
    let rewritten = text;
    for (const rewriter of rewriters) rewritten = rewriter(rewritten);
    return rewritten === text ? value : Buffer.from(rewritten, 'utf8');
  };
  return {
    maskedColumns,
    mask(index: number, value: Buffer | null): Buffer | null {
      if (value === null) return null;
      return replacements.get(index) ?? rewrite(value);
    },
    maskBinary(index: number, value: Buffer | null): Buffer | null {
      if (value === null) return null;
      const typeOid = columns[index]?.typeOid;
      const textLike = typeOid !== undefined && TEXT_TYPE_OIDS.has(typeOid);
      const replacement = replacements.get(index);
      if (replacement) {
        if (textLike) return replacement;
        return null;
      }
      if (rewriters.length === 0) return value;
      if (textLike) return rewrite(value);
      if (typeOid === JSONB_OID && value.length > 0) {
        const body = value.subarray(1);
        const rewritten = rewrite(body);
        return rewritten === body ? value : Buffer.concat([value.subarray(0, 1), rewritten]);
      }
      if (typeOid !== undefined && NON_TEXT_SCALAR_OIDS.has(typeOid)) return value;
      return null;
    },
  };
}


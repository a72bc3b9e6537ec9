/**
 * Names and the glob patterns rules match them with. Relation names come from the parser already
 * normalised the way PostgreSQL resolves them (unquoted identifiers folded to lower case, quoted ones
 * kept); patterns are matched case-insensitively, and a part that contains a dot or a quote is
 * written quoted ("odd.name") so splitting on dots stays unambiguous.
 */

/** Joins identifier parts, quoting a part only when it would not split back unchanged. */
export function formatQualifiedName(parts: readonly string[]): string {
  return parts.map((part) => (/[."]/.test(part) ? `"${part.replaceAll('"', '""')}"` : part)).join('.');
}

/** Splits `schema.table`, `"Odd.Schema"."T"` … on the dots outside double quotes, unquoting parts. */
export function splitQualifiedName(text: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        current += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        current += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === '.') {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/** A glob: `*` any run of characters, `?` one character; everything else literal; case-insensitive. */
export function compileGlob(pattern: string): RegExp {
  let source = '';
  for (const ch of pattern) {
    if (ch === '*') source += '.*';
    else if (ch === '?') source += '.';
    else source += ch.replace(/[\\^$.+()[\]{}|/]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'is');
}

export class GlobSet {
  private readonly globs: RegExp[];

  constructor(readonly patterns: readonly string[]) {
    this.globs = patterns.map(compileGlob);
  }

  get empty(): boolean {
    return this.globs.length === 0;
  }

  matches(value: string): boolean {
    return this.globs.some((glob) => glob.test(value));
  }
}

/** The schema an unqualified name resolves to under PostgreSQL's default search_path. */
export const DEFAULT_SCHEMA = 'public';

/**
 * A relation pattern: `table`, `schema.table` or `database.schema.table`, each part a glob.
 * `orders` matches a table of that name in any schema.
 */
export class RelationPattern {
  private readonly parts: RegExp[];

  constructor(readonly pattern: string) {
    this.parts = splitQualifiedName(pattern).map(compileGlob);
  }

  /**
   * Whether `relation` (as the classifier reports it) matches. An unqualified relation resolves at
   * run time through search_path: `unqualifiedSchema` 'any' treats it as possibly any schema (the
   * cautious reading for deny, review and mask), a name treats it as that schema (for allow).
   */
  matches(relation: string, unqualifiedSchema: 'any' | string): boolean {
    const names = splitQualifiedName(relation);
    const patternParts = this.parts;
    // Align from the right: the last part is the table, the one before it the schema.
    for (let offset = 1; offset <= patternParts.length; offset++) {
      const glob = patternParts[patternParts.length - offset]!;
      const name = names[names.length - offset];
      if (name !== undefined) {
        if (!glob.test(name)) return false;
      } else if (offset === 2) {
        if (unqualifiedSchema !== 'any' && !glob.test(unqualifiedSchema)) return false;
      }
      // A missing database part is the current database.
    }
    return true;
  }
}

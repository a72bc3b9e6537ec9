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

/**
 * Where an unqualified name may resolve: the session's search_path as the gateway follows it, or
 * 'unknown' when it was changed in a way the gateway cannot follow. `some` is the cautious reading
 * for deny, review and mask (a match in any schema the name could resolve to); `every` the one for
 * allow (the rule must cover every schema it could resolve to).
 */
export interface SchemaResolution {
  searchPath: readonly string[] | 'unknown';
  require: 'some' | 'every';
}

/** pg_catalog and pg_temp are searched even when search_path does not name them. */
const IMPLICIT_SCHEMAS = ['pg_catalog', 'pg_temp'];

/**
 * A relation pattern: `table`, `schema.table` or `database.schema.table`, each part a glob.
 * `orders` matches a table of that name in any schema.
 */
export class RelationPattern {
  private readonly parts: RegExp[];
  private readonly rawParts: string[];

  constructor(readonly pattern: string) {
    this.rawParts = splitQualifiedName(pattern);
    this.parts = this.rawParts.map(compileGlob);
  }

  /** Whether `relation` (as the classifier reports it, qualified or not) matches. */
  matches(relation: string, resolution: SchemaResolution): boolean {
    const names = splitQualifiedName(relation);
    const count = this.parts.length;
    // Align from the right: the last part is the table, the one before it the schema.
    for (let offset = 1; offset <= count; offset++) {
      const glob = this.parts[count - offset]!;
      const name = names[names.length - offset];
      if (name !== undefined) {
        if (!glob.test(name)) return false;
      } else if (offset === 2 && !this.schemaMatches(glob, this.rawParts[count - 2]!, resolution)) {
        return false;
      }
      // A missing database part is the current database.
    }
    return true;
  }

  private schemaMatches(glob: RegExp, raw: string, resolution: SchemaResolution): boolean {
    if (resolution.require === 'some') {
      if (resolution.searchPath === 'unknown') return true;
      return [...resolution.searchPath, ...IMPLICIT_SCHEMAS].some((schema) => glob.test(schema));
    }
    // Allow: every schema the name could resolve to must be covered; unknown only by "*".
    if (resolution.searchPath === 'unknown') return /^\**$/.test(raw);
    return resolution.searchPath.length > 0 && resolution.searchPath.every((schema) => glob.test(schema));
  }
}

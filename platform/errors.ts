/**
 * The base of every component's error catalogue (gateway/errors.ts, collector/errors.ts, …).
 * Callers branch on `code`, which is stable across releases; the message is for people and says
 * what happened, why, and what to do.
 */
export class GapwatchError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Errors raised by the shared platform layer (configuration, CLI framework). */
export class ConfigInvalidError extends GapwatchError {
  readonly file: string | null;
  readonly issues: readonly ConfigIssue[];

  constructor(file: string | null, issues: readonly ConfigIssue[]) {
    const where = file ?? 'configuration';
    const lines = issues.map((issue) => `  - ${formatIssue(issue)}`);
    super('CONFIG_ERR_INVALID', `${where} is invalid:\n${lines.join('\n')}`);
    this.file = file;
    this.issues = issues;
  }
}

export class ConfigUnreadableError extends GapwatchError {
  readonly file: string;

  constructor(file: string, cause: unknown) {
    super('CONFIG_ERR_UNREADABLE', `cannot read configuration file ${file}: ${describeCause(cause)}`, { cause });
    this.file = file;
  }
}

export interface ConfigIssue {
  /** Dotted key path, e.g. `gateway.postgres.listen`. */
  path: string;
  /** The offending value as written in the file (undefined when the key is missing). */
  value: unknown;
  /** What the schema expects there. */
  expected: string;
  /** 1-based line in the file, when known. */
  line?: number;
}

export function formatIssue(issue: ConfigIssue): string {
  const at = issue.line !== undefined ? ` (line ${issue.line})` : '';
  const got = issue.value === undefined ? 'missing' : `got ${JSON.stringify(issue.value)}`;
  return `${issue.path || '(root)'}${at}: ${got}, expected ${issue.expected}`;
}

export function describeCause(cause: unknown): string {
  if (cause instanceof Error) return cause.message;
  return String(cause);
}

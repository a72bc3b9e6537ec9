/**
 * Secrets in argv are redacted before an event leaves the sensor (stdout, store, alerts). The patterns
 * cover what shows up on build hosts: credentials in URLs, password/token flags, VAR=secret
 * assignments (`env PGPASSWORD=… psql`), and token formats with a recognisable prefix.
 */
export const REDACTED = '****';

/** Flags whose value is a secret, as `--flag=value` or `--flag value`. */
const SECRET_FLAGS = new Set([
  'password',
  'passwd',
  'pass',
  'token',
  'secret',
  'api-key',
  'apikey',
  'access-token',
  'auth-token',
  'client-secret',
  'private-key',
  'secret-key',
  'access-key',
  'aws-secret-access-key',
]);

/** Environment-style assignments whose name says it holds a secret. */
const SECRET_ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*(?:PASSWORD|PASSWD|PASS|TOKEN|SECRET|API_KEY|APIKEY|PRIVATE_KEY|ACCESS_KEY)[A-Za-z0-9_]*)=(\S+)$/i;

/** user:password@ in any scheme://… URL. */
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*):([^\s/@]+)@/gi;

/** Key=value pairs inside connection strings (`password=…` in a libpq conninfo, `Password=…;`). */
const INLINE_PASSWORD = /\b(password|passwd|pwd)=([^\s;&]+)/gi;

/** HTTP credentials passed to curl/wget: `-H 'Authorization: Bearer …'`, `-u user:pass`. */
const AUTH_HEADER = /^(\s*(?:proxy-)?authorization\s*:\s*(?:bearer|basic|token)?\s*)(\S.*)$/i;

/** Token formats with a fixed prefix. */
const TOKENS: RegExp[] = [
  /\bgh[pousr]_[A-Za-z0-9]{20,}/g, // GitHub classic tokens
  /\bgithub_pat_[A-Za-z0-9_]{20,}/g, // GitHub fine-grained tokens
  /\bglpat-[A-Za-z0-9_-]{20,}/g, // GitLab personal access tokens
  /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, // AWS access key ids
  /\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}/g, // Anthropic / OpenAI API keys
  /\bxox[abprs]-[A-Za-z0-9-]{10,}/g, // Slack tokens
  /\bAIza[0-9A-Za-z_-]{35}\b/g, // Google API keys
  /\bnpm_[A-Za-z0-9]{36}\b/g, // npm tokens
  /\bgwt_[A-Za-z0-9_-]{20,}/g, // gapwatch agent tokens
];

export interface RedactedArgv {
  argv: string[];
  /** True when anything was replaced. */
  redacted: boolean;
}

export function redactArgv(argv: readonly string[]): RedactedArgv {
  let redacted = false;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const flag = /^--?([A-Za-z][A-Za-z0-9-]*)(=(.*))?$/s.exec(arg);
    if (flag && SECRET_FLAGS.has(flag[1]!.toLowerCase())) {
      if (flag[2] !== undefined) {
        out.push(`${arg.slice(0, arg.indexOf('=') + 1)}${REDACTED}`);
        redacted = true;
        continue;
      }
      // `--password secret`: the next argument is the value (unless it is another flag).
      const next = argv[i + 1];
      if (arg.startsWith('--') && next !== undefined && !next.startsWith('-')) {
        out.push(arg, REDACTED);
        redacted = true;
        i++;
        continue;
      }
    }
    const value = redactValue(arg);
    if (value !== arg) redacted = true;
    out.push(value);
  }
  return { argv: out, redacted };
}

/** Redacts secrets inside one argument (also used for shell `-c` scripts, which carry whole command lines). */
/** Every pattern below needs one of these; most arguments (paths, plain words) have none and skip the rest. */
const MAY_HOLD_SECRET = /[=@:]|gh[pousr]_|github_pat_|glpat-|AKIA|ASIA|sk-|xox|AIza|npm_|gwt_/i;

export function redactValue(arg: string): string {
  if (!MAY_HOLD_SECRET.test(arg)) return arg;
  const assignment = SECRET_ASSIGNMENT.exec(arg);
  if (assignment) return `${assignment[1]}=${REDACTED}`;
  const header = AUTH_HEADER.exec(arg);
  if (header) return `${header[1]}${REDACTED}`;
  let value = arg.replace(URL_USERINFO, `$1:${REDACTED}@`).replace(INLINE_PASSWORD, `$1=${REDACTED}`);
  // Inside a longer text (e.g. `sh -c "PGPASSWORD=x psql"`), assignments are words.
  value = value.replace(/\b([A-Za-z_][A-Za-z0-9_]*(?:PASSWORD|PASSWD|TOKEN|SECRET|API_KEY|PRIVATE_KEY|ACCESS_KEY)[A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S+)/gi, `$1=${REDACTED}`);
  value = value.replace(/(--(?:password|passwd|token|secret|api-key|apikey|access-token|client-secret)[= ])("[^"]*"|'[^']*'|\S+)/gi, `$1${REDACTED}`);
  for (const token of TOKENS) value = value.replace(token, REDACTED);
  return value;
}

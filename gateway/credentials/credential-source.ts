import { readFileSync } from 'node:fs';
import type { CredentialSource } from '../../platform/config';
import { CredentialUnavailableError } from '../postgres/errors';

export interface ReadCredentialOptions {
  /** Keep a file's whole text (a PEM or OpenSSH private key) instead of its first line. */
  whole?: boolean;
  /** The configuration key named in errors (the PostgreSQL password by default). */
  setting?: string;
}

/**
 * The gateways' credential injection reads target secrets here (the PostgreSQL and SSH upstream
 * logins, the HTTP gateway's injected header, the collector's webhook secrets). Errors are the
 * PostgreSQL gateway's CredentialUnavailableError, whose message names the setting to fix
 * (`options.setting`); other gateways wrap it in their own catalogue's error.
 *
 * Reads a resource's upstream password at login time, so a rotated file or environment takes effect
 * on the next session. The value goes straight into the authentication exchange: it is never
 * returned to callers that log, never sent to the agent and never journaled.
 */
export function readCredential(resource: string, source: CredentialSource | null, options: ReadCredentialOptions = {}): string | null {
  if (source === null) return null;
  const { setting } = options;
  if ('value' in source) return source.value;
  if ('env' in source) {
    const value = process.env[source.env];
    if (value === undefined || value === '') throw new CredentialUnavailableError(resource, `environment variable ${source.env} is not set`, undefined, setting);
    return value;
  }
  let text: string;
  try {
    text = readFileSync(source.file, 'utf8');
  } catch (err) {
    throw new CredentialUnavailableError(resource, `cannot read ${source.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err, setting);
  }
  const value = options.whole ? text : (text.split(/\r?\n/, 1)[0] ?? '');
  if (value === '' || (options.whole && value.trim() === '')) throw new CredentialUnavailableError(resource, `${source.file} is empty`, undefined, setting);
  return value;
}

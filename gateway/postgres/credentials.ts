import { readFileSync } from 'node:fs';
import type { CredentialSource } from '../../platform/config';
import { CredentialUnavailableError } from './errors';

/**
 * Reads a resource's upstream password at login time, so a rotated file or environment takes effect
 * on the next session. The value goes straight into the authentication exchange: it is never
 * returned to callers that log, never sent to the agent and never journaled.
 */
export function readCredential(resource: string, source: CredentialSource | null): string | null {
  if (source === null) return null;
  if ('value' in source) return source.value;
  if ('env' in source) {
    const value = process.env[source.env];
    if (value === undefined || value === '') throw new CredentialUnavailableError(resource, `environment variable ${source.env} is not set`);
    return value;
  }
  let text: string;
  try {
    text = readFileSync(source.file, 'utf8');
  } catch (err) {
    throw new CredentialUnavailableError(resource, `cannot read ${source.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
  }
  const value = text.split(/\r?\n/, 1)[0] ?? '';
  if (value === '') throw new CredentialUnavailableError(resource, `${source.file} is empty`);
  return value;
}

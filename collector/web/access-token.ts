import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFileExclusive } from '../../platform/atomic-file';
import { WebTokenUnreadableError } from './errors';

/** Files the web component keeps in the data directory, read by `gapwatch query` when the store is busy. */
export function webStateDir(dataDir: string): string {
  return join(dataDir, 'web');
}

export function tokenFile(dataDir: string): string {
  return join(webStateDir(dataDir), 'token');
}

/**
 * The web access token: 32 random bytes (base64url), created on first start and kept in a 0600 file,
 * so the same token works across restarts and for `gapwatch query` run by the same user.
 */
export function loadOrCreateToken(dataDir: string): string {
  const file = tokenFile(dataDir);
  try {
    mkdirSync(webStateDir(dataDir), { recursive: true, mode: 0o700 });
    try {
      const token = readFileSync(file, 'utf8').trim();
      if (token.length < 32) throw new Error('it holds fewer than 32 characters; delete it and a new token is made at the next start');
      // A copy restored with looser permissions is tightened.
      chmodSync(file, 0o600);
      return token;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const token = randomBytes(32).toString('base64url');
    // Two processes starting at once agree on one token: the first to create the file wins.
    if (!createFileExclusive(file, `${token}\n`, 0o600)) return readFileSync(file, 'utf8').trim();
    return token;
  } catch (err) {
    throw new WebTokenUnreadableError(file, err);
  }
}

/**
 * Compares a presented secret with the expected one in constant time. Both are hashed first, so the
 * comparison neither leaks the length nor needs equal-length inputs.
 */
export function secretsEqual(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

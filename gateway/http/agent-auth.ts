import { createHash, createHmac, hash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { AgentIdentity, IdentityStore, ScramVerifier } from '../identity/contract';
import type { FileIdentityStore } from '../identity/identity-store';
import { AgentAuthError, AuthBusyError } from './errors';

const pbkdf2Async = promisify(pbkdf2);

/** The store the HTTP gateway needs: lookups, and the logins to try for a bare bearer token. */
export type TokenIdentityStore = IdentityStore & Pick<FileIdentityStore, 'list'>;

export interface AgentAuthOptions {
  /** How long a verified token is trusted without a new derivation (revocation is re-checked on every request). */
  cacheTtlMs?: number;
  cacheEntries?: number;
  /** Derivations running at once; more wait, and beyond `maxQueued` requests are refused with 503. */
  maxConcurrent?: number;
  maxQueued?: number;
}

interface CacheEntry {
  login: string;
  storedKey: Buffer;
  expiresAt: number;
}

/**
 * Authenticates agents by the gapwatch token in their Authorization header. The store holds SCRAM
 * verifiers, not tokens, so checking a token means deriving its keys with the stored salt and
 * iteration count (PBKDF2) and comparing StoredKey — costly by design. Successful checks are cached
 * under a SHA-256 of the token salted with a per-process secret (the cache never holds a token), bounded and
 * expiring; a cached entry still looks the login up on every request, so revocation and expiry take
 * effect at once. Derivations run on libuv's thread pool, a few at a time.
 *
 * Accepted forms: `Bearer <token>` (the login is found by trying each active identity) and
 * `Basic base64(<login>:<token>)` (curl -u), which names the login.
 */
export class AgentAuthenticator {
  /** Per-process salt of the cache keys, so a memory dump's keys cannot be checked against guessed tokens offline. */
  private readonly secret = randomBytes(32).toString('base64');
  private readonly cache = new Map<string, CacheEntry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(private readonly store: TokenIdentityStore, options: AgentAuthOptions = {}) {
    this.ttlMs = options.cacheTtlMs ?? 300_000;
    this.maxEntries = options.cacheEntries ?? 10_000;
    this.maxConcurrent = options.maxConcurrent ?? 2;
    this.maxQueued = options.maxQueued ?? 256;
  }

  /** The identity behind an Authorization header value; throws AgentAuthError when there is none. */
  async authenticate(authorization: string | undefined): Promise<AgentIdentity> {
    return (await this.prove(authorization)).identity;
  }

  /** The same, with the StoredKey the token matched (to watch a long-lived exchange: IdentityWatch, tokenCheck). */
  async prove(authorization: string | undefined): Promise<{ identity: AgentIdentity; storedKey: Buffer }> {
    if (authorization === undefined || authorization === '') throw new AgentAuthError('the request carries no Authorization header');
    const space = authorization.indexOf(' ');
    const scheme = (space < 0 ? authorization : authorization.slice(0, space)).toLowerCase();
    const credentials = space < 0 ? '' : authorization.slice(space + 1).trim();
    let login: string | null = null;
    let token: string;
    if (scheme === 'bearer') {
      token = credentials;
    } else if (scheme === 'basic') {
      const decoded = Buffer.from(credentials, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) throw new AgentAuthError('the Basic credentials are not login:token');
      login = decoded.slice(0, colon);
      token = decoded.slice(colon + 1);
    } else {
      throw new AgentAuthError(`the Authorization scheme "${scheme}" is not accepted`);
    }
    if (token === '') throw new AgentAuthError('the Authorization header carries an empty token');

    // A salted one-shot SHA-256 (not an HMAC): the key only has to be unguessable without the salt,
    // and one call costs a fraction of building an HMAC key object on every request.
    const key = hash('sha256', `${this.secret}\0${token}`, 'base64');
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt > Date.now() && (login === null || login === cached.login)) {
      const found = await this.store.lookup(cached.login);
      // Revoked, expired or re-issued since it was cached: the token no longer proves anything.
      if (found && found.verifier.storedKey.equals(cached.storedKey)) return { identity: found.identity, storedKey: cached.storedKey };
      this.cache.delete(key);
      throw new AgentAuthError('the token is not valid (unknown, revoked or expired)');
    }
    if (cached) this.cache.delete(key);

    const logins = login !== null ? [login] : (await this.store.list()).filter((s) => s.status === 'active').map((s) => s.login);
    for (const candidate of logins) {
      const found = await this.store.lookup(candidate);
      if (!found) continue;
      if (await this.verify(token, found.verifier)) {
        this.remember(key, { login: candidate, storedKey: found.verifier.storedKey, expiresAt: Date.now() + this.ttlMs });
        return { identity: found.identity, storedKey: found.verifier.storedKey };
      }
    }
    throw new AgentAuthError('the token is not valid (unknown, revoked or expired)');
  }

  /** StoredKey = SHA-256(HMAC(PBKDF2(token, salt, i), "Client Key")), compared in constant time. */
  private async verify(token: string, verifier: ScramVerifier): Promise<boolean> {
    await this.acquire();
    let salted: Buffer;
    try {
      salted = await pbkdf2Async(Buffer.from(token, 'utf8'), verifier.salt, verifier.iterations, 32, 'sha256');
    } finally {
      this.release();
    }
    const clientKey = createHmac('sha256', salted).update('Client Key').digest();
    const storedKey = createHash('sha256').update(clientKey).digest();
    return storedKey.length === verifier.storedKey.length && timingSafeEqual(storedKey, verifier.storedKey);
  }

  private remember(key: string, entry: CacheEntry): void {
    if (this.cache.size >= this.maxEntries) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, entry);
  }

  private acquire(): Promise<void> {
    if (this.running < this.maxConcurrent) {
      this.running += 1;
      return Promise.resolve();
    }
    if (this.queue.length >= this.maxQueued) return Promise.reject(new AuthBusyError());
    return new Promise((resolve) => this.queue.push(resolve));
  }

  private release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.running -= 1;
  }
}

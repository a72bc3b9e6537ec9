import type { Logger } from '../../platform/log';
import type { IdentityStore, ScramVerifier } from './contract';

/** How often the identities of open sessions are looked up again (revocation, re-issue). */
export const IDENTITY_RECHECK_MS = 1000;

/** setTimeout's longest delay; a later expiry is caught by the lookups instead. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Watched {
  sessionId: string;
  login: string;
  storedKey: Buffer;
  end(reason: string): void;
  expiry: NodeJS.Timeout | null;
}

/**
 * Ends open sessions whose agent identity stops being valid after they logged in: at its expiry time,
 * and within IDENTITY_RECHECK_MS of `gapwatch token revoke` (or of a new token issued for the login,
 * which makes the one the session logged in with worthless). Logging in checks the identity once; a
 * session can last for hours, and revoking an agent's token is how an operator cuts it off.
 */
export class IdentityWatch {
  private readonly watched = new Map<symbol, Watched>();
  private timer: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(
    private readonly store: IdentityStore,
    private readonly log: Logger,
  ) {}

  /**
   * Watches one session of `login`, which logged in against `verifier`; `end` is called once, with the
   * reason, if the identity stops being valid. Returns the function that stops watching (when the
   * session ends on its own).
   */
  watch(sessionId: string, login: string, verifier: ScramVerifier, expiresAtMs: number | null | undefined, end: (reason: string) => void): () => void {
    const key = Symbol(sessionId);
    let expiry: NodeJS.Timeout | null = null;
    if (expiresAtMs !== null && expiresAtMs !== undefined && expiresAtMs - Date.now() <= MAX_TIMER_MS) {
      expiry = setTimeout(() => this.end(key, `the gapwatch identity "${login}" expired`), Math.max(0, expiresAtMs - Date.now()));
      expiry.unref();
    }
    this.watched.set(key, { sessionId, login, storedKey: verifier.storedKey, end, expiry });
    if (!this.timer) {
      this.timer = setInterval(() => void this.check(), IDENTITY_RECHECK_MS);
      this.timer.unref();
    }
    return () => this.unwatch(key);
  }

  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      for (const [key, w] of [...this.watched]) {
        let found: Awaited<ReturnType<IdentityStore['lookup']>>;
        try {
          found = await this.store.lookup(w.login);
        } catch (err) {
          // The store cannot be read (new logins fail the same way): the session is left as it is.
          this.log.error({ err, sessionId: w.sessionId, login: w.login }, 'could not look up the identity of an open session');
          continue;
        }
        if (!this.watched.has(key)) continue;
        if (!found) this.end(key, `the gapwatch identity "${w.login}" was revoked or has expired`);
        else if (!found.verifier.storedKey.equals(w.storedKey)) this.end(key, `the gapwatch identity "${w.login}" was issued a new token`);
      }
    } finally {
      this.checking = false;
    }
  }

  private end(key: symbol, reason: string): void {
    const w = this.watched.get(key);
    if (!w) return;
    this.unwatch(key);
    this.log.warn({ sessionId: w.sessionId, login: w.login }, `ending the session: ${reason}`);
    w.end(reason);
  }

  private unwatch(key: symbol): void {
    const w = this.watched.get(key);
    if (!w) return;
    if (w.expiry) clearTimeout(w.expiry);
    this.watched.delete(key);
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

import type { Logger } from '../../platform/log';
import type { IdentityStore } from './contract';

/** How often the identities of open sessions are looked up again (revocation, re-issue). */
export const IDENTITY_RECHECK_MS = 1000;

/** setTimeout's longest delay; a later expiry is caught by the lookups instead. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Whether an open session's credential still proves its identity: null if so, else why not. */
export type CredentialCheck = () => Promise<string | null>;

/** A session that logged in with the identity's token (matching `storedKey` then): gone when the identity is, or when it has another token. */
export function tokenCheck(store: Pick<IdentityStore, 'lookup'>, login: string, storedKey: Buffer): CredentialCheck {
  return async () => {
    const found = await store.lookup(login);
    if (!found) return `the gapwatch identity "${login}" was revoked or has expired`;
    if (!found.verifier.storedKey.equals(storedKey)) return `the gapwatch identity "${login}" was issued a new token`;
    return null;
  };
}

interface Watched {
  sessionId: string;
  login: string;
  check: CredentialCheck;
  end(reason: string): void;
  expiry: NodeJS.Timeout | null;
}

/**
 * Ends open sessions whose agent identity stops being valid after they logged in: at its expiry time,
 * and within IDENTITY_RECHECK_MS of `gapwatch token revoke` (or of whatever else makes the credential
 * the session logged in with worthless: a new token for the login, an SSH key taken off it). Logging
 * in checks the identity once; a session can last for hours, and revoking an agent's token is how an
 * operator cuts it off.
 */
export class IdentityWatch {
  private readonly watched = new Map<symbol, Watched>();
  private timer: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(private readonly log: Logger) {}

  /**
   * Watches one session of `login`; `end` is called once, with the reason, when the identity expires
   * (`expiresAtMs`) or `check` finds the session's credential no longer valid. Returns the function
   * that stops watching (when the session ends on its own).
   */
  watch(sessionId: string, login: string, expiresAtMs: number | null | undefined, check: CredentialCheck, end: (reason: string) => void): () => void {
    const key = Symbol(sessionId);
    let expiry: NodeJS.Timeout | null = null;
    if (expiresAtMs !== null && expiresAtMs !== undefined && expiresAtMs - Date.now() <= MAX_TIMER_MS) {
      expiry = setTimeout(() => this.end(key, `the gapwatch identity "${login}" expired`), Math.max(0, expiresAtMs - Date.now()));
      expiry.unref();
    }
    this.watched.set(key, { sessionId, login, check, end, expiry });
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
        let invalid: string | null;
        try {
          invalid = await w.check();
        } catch (err) {
          // The store cannot be read (new logins fail the same way): the session is left as it is.
          this.log.error({ err, sessionId: w.sessionId, login: w.login }, 'could not look up the identity of an open session');
          continue;
        }
        if (invalid !== null && this.watched.has(key)) this.end(key, invalid);
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

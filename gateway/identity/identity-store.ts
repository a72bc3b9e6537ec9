import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../platform/atomic-file';
import type { AgentIdentity, IdentityStore, ScramVerifier } from './contract';
import { IdentityExistsError, IdentityInputError, IdentityNotFoundError, IdentityStoreAccessError, IdentityStoreBusyError, IdentityStoreCorruptError, IdentityStoreInsecureError } from './errors';
import { createScramVerifier, formatScramVerifier, parseScramVerifier, SCRAM_DEFAULT_ITERATIONS } from './scram';

export const IDENTITY_FILE = 'identities.json';
/** Tokens carry a recognisable prefix so secret scanners (and people) can tell what leaked. */
export const TOKEN_PREFIX = 'gwt_';
const TOKEN_BYTES = 32;

const LOGIN_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/;
const CLAIM_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,62}$/;

const recordSchema = z.strictObject({
  login: z.string(),
  subject: z.string(),
  claims: z.record(z.string(), z.string()),
  verifier: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  /** OpenSSH public keys ("ssh-ed25519 AAAA…") the identity may authenticate with to the SSH gateway. */
  sshKeys: z.array(z.string()).optional(),
});

const fileSchema = z.strictObject({
  version: z.literal(1),
  identities: z.record(z.string(), recordSchema),
});

type IdentityRecord = z.infer<typeof recordSchema>;
type IdentityFile = z.infer<typeof fileSchema>;

export type IdentityStatus = 'active' | 'expired' | 'revoked';

/** What `gapwatch token list` shows: everything but the verifier. */
export interface IdentitySummary extends AgentIdentity {
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  status: IdentityStatus;
}

export interface CreateIdentityOptions {
  /** Defaults to `agent:<login>`. */
  subject?: string;
  claims?: Record<string, string>;
  expiresAt?: Date | null;
  /** Issue a new token even when the login has an active one (the old token stops working). */
  replace?: boolean;
  /** OpenSSH public keys for the SSH gateway, already validated ("type base64"). */
  sshKeys?: string[];
}

export interface FileIdentityStoreOptions {
  dataDir: string;
  /** PBKDF2 iteration count for new verifiers (RFC 7677 asks for at least 4096). */
  iterations?: number;
  now?: () => Date;
}

/**
 * Agent identities in `<dataDir>/identities.json` (mode 0600, replaced atomically). Holds SCRAM
 * verifiers only: the token is printed once by `create` and never stored. The CLI changes the file
 * while a gateway reads it, so changes take a lock file for their read-modify-write and readers
 * reload when the file was replaced.
 */
export class FileIdentityStore implements IdentityStore {
  readonly file: string;
  private readonly lockFile: string;
  private readonly iterations: number;
  private readonly now: () => Date;
  private cache: { key: string; content: IdentityFile } | null = null;
  /**
   * Parsed verifiers of the cached file's records: an HTTP gateway looks its agent up on every request
   * (the revocation check), and the record objects are replaced whenever the file is, so an entry
   * never outlives the text it was parsed from.
   */
  private readonly verifiers = new WeakMap<IdentityRecord, ScramVerifier>();

  constructor(options: FileIdentityStoreOptions) {
    this.file = join(options.dataDir, IDENTITY_FILE);
    this.lockFile = `${this.file}.lock`;
    this.iterations = options.iterations ?? SCRAM_DEFAULT_ITERATIONS;
    this.now = options.now ?? (() => new Date());
    try {
      mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new IdentityStoreAccessError(options.dataDir, err);
    }
  }

  async lookup(login: string): Promise<{ identity: AgentIdentity; verifier: ScramVerifier } | null> {
    const record = this.read().identities[login];
    if (!record || statusOf(record, this.now()) !== 'active') return null;
    let verifier = this.verifiers.get(record);
    if (verifier === undefined) {
      try {
        verifier = parseScramVerifier(record.verifier);
      } catch (err) {
        throw new IdentityStoreCorruptError(this.file, `verifier of ${login}: ${(err as Error).message}`, err);
      }
      this.verifiers.set(record, verifier);
    }
    return { identity: identityOf(record), verifier };
  }

  async create(login: string, options: CreateIdentityOptions = {}): Promise<{ summary: IdentitySummary; token: string }> {
    validateLogin(login);
    const claims = options.claims ?? {};
    for (const key of Object.keys(claims)) {
      if (!CLAIM_KEY_PATTERN.test(key)) throw new IdentityInputError('claims', `claim name ${JSON.stringify(key)} is invalid: use letters, digits, _ . - (starting with a letter)`);
    }
    const subject = options.subject ?? `agent:${login}`;
    if (subject.length === 0 || subject.length > 200) throw new IdentityInputError('subject', 'subject must be 1 to 200 characters');
    const now = this.now();
    if (options.expiresAt && options.expiresAt.getTime() <= now.getTime()) {
      throw new IdentityInputError('expires', `expiry ${options.expiresAt.toISOString()} is in the past`);
    }
    const token = TOKEN_PREFIX + randomBytes(TOKEN_BYTES).toString('base64url');
    const record: IdentityRecord = {
      login,
      subject,
      claims: { ...claims },
      verifier: formatScramVerifier(createScramVerifier(token, { iterations: this.iterations })),
      createdAt: now.toISOString(),
      expiresAt: options.expiresAt ? options.expiresAt.toISOString() : null,
      revokedAt: null,
      ...(options.sshKeys && options.sshKeys.length > 0 ? { sshKeys: [...new Set(options.sshKeys)] } : {}),
    };
    this.change((content) => {
      const existing = content.identities[login];
      if (existing && statusOf(existing, now) === 'active' && !options.replace) throw new IdentityExistsError(login);
      content.identities[login] = record;
    });
    return { summary: summaryOf(record, now), token };
  }

  /** The identity and its SSH public keys, or null when the login is unknown, revoked or expired. */
  async lookupSshKeys(login: string): Promise<{ identity: AgentIdentity; sshKeys: string[] } | null> {
    const record = this.read().identities[login];
    if (!record || statusOf(record, this.now()) !== 'active') return null;
    return { identity: identityOf(record), sshKeys: [...(record.sshKeys ?? [])] };
  }

  /** Registers an SSH public key ("type base64", validated by the caller) for an active identity. */
  async addSshKey(login: string, publicKey: string): Promise<IdentitySummary> {
    const now = this.now();
    let changed: IdentityRecord | undefined;
    this.change((content) => {
      const record = content.identities[login];
      if (!record || statusOf(record, now) !== 'active') throw new IdentityNotFoundError(login);
      record.sshKeys = [...new Set([...(record.sshKeys ?? []), publicKey])];
      changed = record;
    });
    return summaryOf(changed!, now);
  }

  async list(): Promise<IdentitySummary[]> {
    const now = this.now();
    return Object.values(this.read().identities)
      .map((record) => summaryOf(record, now))
      .sort((a, b) => a.login.localeCompare(b.login));
  }

  async revoke(login: string): Promise<IdentitySummary> {
    const now = this.now();
    let revoked: IdentityRecord | undefined;
    this.change((content) => {
      const record = content.identities[login];
      if (!record) throw new IdentityNotFoundError(login);
      if (record.revokedAt === null) record.revokedAt = now.toISOString();
      revoked = record;
    });
    return summaryOf(revoked!, now);
  }

  /** The parsed file, reloaded only when it was replaced (rename gives it a new inode). */
  private read(): IdentityFile {
    let key: string;
    let stat;
    try {
      stat = statSync(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, identities: {} };
      throw new IdentityStoreAccessError(this.file, err);
    }
    // The file decides who may log in: refuse it when someone else could have written it.
    const uid = process.geteuid?.() ?? 0;
    if ((stat.mode & 0o022) !== 0) throw new IdentityStoreInsecureError(this.file, `is writable by other users (mode ${(stat.mode & 0o777).toString(8)})`);
    if (stat.uid !== uid && stat.uid !== 0) throw new IdentityStoreInsecureError(this.file, `is owned by uid ${stat.uid}, not by this user or root`);
    key = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    if (this.cache?.key === key) return this.cache.content;
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      throw new IdentityStoreAccessError(this.file, err);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new IdentityStoreCorruptError(this.file, `not valid JSON: ${(err as Error).message}`, err);
    }
    const result = fileSchema.safeParse(parsed);
    if (!result.success) {
      const issue = result.error.issues[0]!;
      throw new IdentityStoreCorruptError(this.file, `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    }
    this.cache = { key, content: result.data };
    return result.data;
  }

  private change(mutate: (content: IdentityFile) => void): void {
    this.withLock(() => {
      this.cache = null;
      const content = structuredClone(this.read());
      mutate(content);
      try {
        writeFileAtomic(this.file, `${JSON.stringify(content, null, 2)}\n`, 0o600);
      } catch (err) {
        throw new IdentityStoreAccessError(this.file, err);
      }
      this.cache = null;
    });
  }

  /** Serialises changes between processes: an exclusively created lock file holding the owner's pid. */
  private withLock<T>(work: () => T): T {
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        const fd = openSync(this.lockFile, 'wx', 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new IdentityStoreAccessError(this.lockFile, err);
        let holder = 0;
        try {
          holder = Number.parseInt(readFileSync(this.lockFile, 'utf8'), 10);
        } catch {
          continue;
        }
        if (Number.isInteger(holder) && holder > 0 && !processAlive(holder)) {
          rmSync(this.lockFile, { force: true });
          continue;
        }
        if (Date.now() > deadline) throw new IdentityStoreBusyError(this.lockFile, holder);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
    try {
      return work();
    } finally {
      rmSync(this.lockFile, { force: true });
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function validateLogin(login: string): void {
  if (!LOGIN_PATTERN.test(login)) {
    throw new IdentityInputError('login', `login ${JSON.stringify(login)} is invalid: 1 to 63 characters, letters, digits and . _ @ -, starting with a letter or digit`);
  }
}

function statusOf(record: IdentityRecord, now: Date): IdentityStatus {
  if (record.revokedAt !== null) return 'revoked';
  if (record.expiresAt !== null && Date.parse(record.expiresAt) <= now.getTime()) return 'expired';
  return 'active';
}

function identityOf(record: IdentityRecord): AgentIdentity {
  return { login: record.login, subject: record.subject, claims: { ...record.claims }, expiresAtMs: record.expiresAt === null ? null : Date.parse(record.expiresAt) };
}

function summaryOf(record: IdentityRecord, now: Date): IdentitySummary {
  return {
    login: record.login,
    subject: record.subject,
    claims: { ...record.claims },
    createdAt: new Date(record.createdAt),
    expiresAt: record.expiresAt === null ? null : new Date(record.expiresAt),
    revokedAt: record.revokedAt === null ? null : new Date(record.revokedAt),
    status: statusOf(record, now),
  };
}

const DURATION_UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** `--expires`: a duration from now (90m, 12h, 30d, 2w) or an ISO 8601 date-time. */
export function parseExpiry(text: string, now: Date = new Date()): Date {
  const duration = /^(\d+)([mhdw])$/.exec(text.trim());
  if (duration) {
    const amount = Number(duration[1]);
    if (amount <= 0) throw new IdentityInputError('expires', `expiry ${text} must be longer than zero`);
    return new Date(now.getTime() + amount * DURATION_UNITS[duration[2]!]!);
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(text.trim())) {
    const at = new Date(text.trim());
    if (!Number.isNaN(at.getTime())) return at;
  }
  throw new IdentityInputError('expires', `expiry ${JSON.stringify(text)} is not understood: give a duration (90m, 12h, 30d, 2w) or an ISO date such as 2026-12-31T00:00:00Z`);
}

/** `--claim k=v`, repeatable. */
export function parseClaims(pairs: readonly string[]): Record<string, string> {
  const claims: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new IdentityInputError('claims', `claim ${JSON.stringify(pair)} is not of the form key=value`);
    const key = pair.slice(0, at);
    if (!CLAIM_KEY_PATTERN.test(key)) throw new IdentityInputError('claims', `claim name ${JSON.stringify(key)} is invalid: use letters, digits, _ . - (starting with a letter)`);
    if (key in claims) throw new IdentityInputError('claims', `claim ${key} is given twice`);
    claims[key] = pair.slice(at + 1);
  }
  return claims;
}

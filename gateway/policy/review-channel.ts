import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, watch, type FSWatcher } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { createFileExclusive } from '../../platform/atomic-file';
import type { ClassifiedStatement, ReviewOutcome } from './contract';
import { ReviewAlreadyDecidedError, ReviewChannelError, ReviewerNotAllowedError, ReviewInputError, ReviewNotFoundError, SelfApprovalError } from './errors';

/**
 * The channel between a gateway holding a statement for review and the people deciding it from
 * other processes (`gapwatch reviews|approve|deny`): files in `<dataDir>/reviews/`.
 *
 *   <id>.json           the request, written once by the gateway
 *   <id>.decision.json  the decision, created once — by a reviewer (approved/denied) or by the
 *                       gateway when the review times out — with link(2), which fails with EEXIST,
 *                       so the first decision wins and a late approval cannot override a timeout.
 *
 * Authentication is the operating system's: the directory is 0700 and its files 0600, so only the
 * gateway's own user (and root) can read requests or write decisions, and the gateway accepts a
 * decision only from a regular file owned by its user or root that nobody else may write. The
 * reviewer's name (`--as`) is recorded with the deciding process's uid and user name. Files survive
 * restarts of either side; a gateway watches the directory (inotify) and re-checks every second.
 */
export const REVIEW_DIR = 'reviews';
const REVIEW_ID = /^rv-[0-9a-f]{12}$/;
const REVIEWER_NAME = /^[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]{0,99}$/;
const POLL_MS = 1000;

const statementSchema = z.object({
  text: z.string(),
  classes: z.array(z.string()),
  relations: z.array(z.string()),
  functions: z.array(z.string()).optional(),
  command: z.string().optional(),
});

const requestSchema = z.strictObject({
  version: z.literal(1),
  reviewId: z.string().regex(REVIEW_ID),
  createdAt: z.string(),
  expiresAt: z.string(),
  gatewayPid: z.number().int(),
  sessionId: z.string(),
  resource: z.string(),
  login: z.string(),
  subject: z.string(),
  claims: z.record(z.string(), z.string()),
  via: z.string(),
  text: z.string(),
  statements: z.array(statementSchema),
  rule: z.string(),
  reason: z.string(),
});

const decisionSchema = z.strictObject({
  outcome: z.enum(['approved', 'denied', 'timed_out']),
  reviewer: z.string().nullable(),
  reason: z.string().nullable(),
  at: z.string(),
  decidedBy: z.strictObject({ uid: z.number().int(), user: z.string(), pid: z.number().int() }),
});

export type ReviewRequestRecord = z.infer<typeof requestSchema>;
export type ReviewDecisionRecord = z.infer<typeof decisionSchema>;
/** `expired`: no decision was recorded and the deadline passed (the gateway that asked is gone). */
export type ReviewStatus = 'pending' | 'approved' | 'denied' | 'timed_out' | 'expired';

export interface ReviewEntry {
  request: ReviewRequestRecord;
  decision: ReviewDecisionRecord | null;
  status: ReviewStatus;
  /** Whether the gateway process that holds the statement runs on this host (false: nothing waits for a decision). */
  gatewayRunning: boolean;
}

function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function newReviewId(): string {
  return `rv-${randomBytes(6).toString('hex')}`;
}

function sameName(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}

/** The requester may not decide their own statement: neither by login nor by subject. */
export function isSelfReview(request: Pick<ReviewRequestRecord, 'login' | 'subject'>, reviewer: string): boolean {
  return sameName(reviewer, request.login) || sameName(reviewer, request.subject);
}

function decider(): ReviewDecisionRecord['decidedBy'] {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = `uid ${process.getuid?.() ?? -1}`;
  }
  return { uid: process.getuid?.() ?? -1, user, pid: process.pid };
}

export class ReviewDirectory {
  readonly dir: string;
  private readonly uid = process.geteuid?.() ?? -1;

  constructor(dataDir: string) {
    this.dir = join(dataDir, REVIEW_DIR);
  }

  /** Creates the directory 0700, and refuses one that another user owns or others may enter. */
  ensure(): void {
    let stat;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      stat = statSync(this.dir);
    } catch (err) {
      throw new ReviewChannelError(this.dir, `${(err as Error).message}; run gapwatch as the user that owns the data directory, or as root`, err);
    }
    if (this.uid !== 0 && stat.uid !== this.uid) {
      throw new ReviewChannelError(this.dir, `owned by uid ${stat.uid}, not by this user (uid ${this.uid}); run gapwatch as the user that owns the data directory`);
    }
    if ((stat.mode & 0o077) !== 0 && stat.uid === this.uid) chmodSync(this.dir, 0o700);
  }

  requestPath(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  decisionPath(id: string): string {
    return join(this.dir, `${id}.decision.json`);
  }

  create(request: ReviewRequestRecord): void {
    this.ensure();
    if (!createFileExclusive(this.requestPath(request.reviewId), `${JSON.stringify(request, null, 2)}\n`, 0o600)) {
      throw new ReviewChannelError(this.dir, `review id ${request.reviewId} is already taken`);
    }
  }

  readRequest(id: string): ReviewRequestRecord {
    if (!REVIEW_ID.test(id)) throw new ReviewInputError(`${JSON.stringify(id)} is not a review id (they look like rv-0123456789ab)`);
    let text: string;
    try {
      text = readFileSync(this.requestPath(id), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ReviewNotFoundError(id);
      throw new ReviewChannelError(this.dir, `cannot read review ${id}: ${(err as Error).message}`, err);
    }
    const parsed = requestSchema.safeParse(safeJson(text));
    if (!parsed.success) throw new ReviewChannelError(this.dir, `review ${id} is malformed; remove ${this.requestPath(id)}`);
    return parsed.data;
  }

  /**
   * The decision, when there is one. A decision file the gateway cannot trust (not a regular file,
   * owned by another user, writable by others, malformed) reads as a denial, never as an approval.
   */
  readDecision(id: string): ReviewDecisionRecord | null {
    const path = this.decisionPath(id);
    let stat;
    try {
      stat = lstatSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const untrusted = (detail: string): ReviewDecisionRecord => ({
      outcome: 'denied',
      reviewer: 'gapwatch',
      reason: `the decision file was rejected: ${detail}`,
      at: new Date().toISOString(),
      decidedBy: { uid: this.uid, user: 'gapwatch', pid: process.pid },
    });
    if (!stat.isFile()) return untrusted('not a regular file');
    if (stat.uid !== this.uid && stat.uid !== 0) return untrusted(`owned by uid ${stat.uid}`);
    if ((stat.mode & 0o022) !== 0) return untrusted('writable by other users');
    const parsed = decisionSchema.safeParse(safeJson(readFileSync(path, 'utf8')));
    if (!parsed.success) return untrusted('malformed');
    return parsed.data;
  }

  /** Records a decision unless one exists; returns the decision that holds. */
  settle(id: string, decision: Omit<ReviewDecisionRecord, 'decidedBy' | 'at'>, now = new Date()): { decision: ReviewDecisionRecord; created: boolean } {
    const record: ReviewDecisionRecord = { ...decision, at: now.toISOString(), decidedBy: decider() };
    let created: boolean;
    try {
      created = createFileExclusive(this.decisionPath(id), `${JSON.stringify(record, null, 2)}\n`, 0o600);
    } catch (err) {
      throw new ReviewChannelError(this.dir, `cannot record the decision on ${id}: ${(err as Error).message}`, err);
    }
    if (created) return { decision: record, created: true };
    return { decision: this.readDecision(id) ?? record, created: false };
  }

  /** A human's decision, from `gapwatch approve|deny`. */
  decide(
    id: string,
    outcome: 'approved' | 'denied',
    reviewer: string,
    options: { reason?: string; reviewers?: readonly string[]; now?: Date } = {},
  ): ReviewDecisionRecord {
    const name = reviewer.trim();
    if (!REVIEWER_NAME.test(name)) throw new ReviewInputError(`reviewer name ${JSON.stringify(reviewer)} is invalid: 1 to 100 printable characters`);
    const request = this.readRequest(id);
    const now = options.now ?? new Date();
    const existing = this.readDecision(id);
    if (existing) throw new ReviewAlreadyDecidedError(id, existing.outcome, existing.reviewer);
    if (Date.parse(request.expiresAt) <= now.getTime()) throw new ReviewAlreadyDecidedError(id, 'expired', null);
    if (isSelfReview(request, name)) throw new SelfApprovalError(id, name);
    const reviewers = options.reviewers ?? [];
    if (reviewers.length > 0 && !reviewers.some((allowed) => sameName(allowed, name))) throw new ReviewerNotAllowedError(name);
    const { decision, created } = this.settle(id, { outcome, reviewer: name, reason: outcome === 'denied' ? (options.reason ?? 'denied by reviewer') : null }, now);
    if (!created) throw new ReviewAlreadyDecidedError(id, decision.outcome, decision.reviewer);
    return decision;
  }

  list(now = new Date()): ReviewEntry[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new ReviewChannelError(this.dir, `${(err as Error).message}; run gapwatch as the user that owns the data directory, or as root`, err);
    }
    const entries: ReviewEntry[] = [];
    for (const name of names) {
      const match = /^(rv-[0-9a-f]{12})\.json$/.exec(name);
      if (!match) continue;
      let request: ReviewRequestRecord;
      try {
        request = this.readRequest(match[1]!);
      } catch {
        continue;
      }
      const decision = this.readDecision(request.reviewId);
      const status: ReviewStatus = decision ? decision.outcome : Date.parse(request.expiresAt) <= now.getTime() ? 'expired' : 'pending';
      entries.push({ request, decision, status, gatewayRunning: processRunning(request.gatewayPid) });
    }
    return entries.sort((a, b) => a.request.createdAt.localeCompare(b.request.createdAt));
  }

  /** Removes settled and expired reviews whose deadline passed before `before` (the journal keeps their record). */
  prune(before: Date): number {
    let removed = 0;
    for (const entry of this.list()) {
      if (entry.status === 'pending' || Date.parse(entry.request.expiresAt) >= before.getTime()) continue;
      rmSync(this.decisionPath(entry.request.reviewId), { force: true });
      rmSync(this.requestPath(entry.request.reviewId), { force: true });
      removed++;
    }
    return removed;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface ReviewRequestInput {
  sessionId: string;
  resource: string;
  login: string;
  subject: string;
  claims: Record<string, string>;
  via: string;
  text: string;
  statements: ClassifiedStatement[];
  rule: string;
  reason: string;
}

/** The gateway side: writes requests and waits for their decisions. */
export class ReviewWaiter {
  private readonly waiting = new Map<string, () => void>();
  private readonly expirers = new Map<string, (reason: string | null) => void>();
  private watcher: FSWatcher | null = null;
  private poller: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly directory: ReviewDirectory,
    private readonly timeoutMs: number,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  request(input: ReviewRequestInput, now = new Date()): { reviewId: string; outcome: Promise<ReviewOutcome>; withdraw(reason: string): void } {
    if (this.closed) throw new ReviewChannelError(this.directory.dir, 'the policy engine is closed');
    const reviewId = newReviewId();
    const expiresAt = new Date(now.getTime() + this.timeoutMs);
    this.directory.create({
      version: 1,
      reviewId,
      createdAt: now.toISOString(),
      expiresAt: expiresAt.toISOString(),
      gatewayPid: process.pid,
      ...input,
      claims: { ...input.claims },
    });
    this.startWatching();
    const outcome = new Promise<ReviewOutcome>((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      const finish = (decision: ReviewDecisionRecord): void => {
        if (timer) clearTimeout(timer);
        this.waiting.delete(reviewId);
        this.stopWatchingIfIdle();
        resolve(toOutcome(decision, input));
      };
      const check = (): void => {
        try {
          const decision = this.directory.readDecision(reviewId);
          if (decision) finish(decision);
        } catch (err) {
          this.onError(err);
        }
      };
      /** Records that no human decided in time (or that the request was withdrawn), unless one just did. */
      const expire = (reason: string | null): void => {
        try {
          finish(this.directory.settle(reviewId, { outcome: 'timed_out', reviewer: null, reason }).decision);
        } catch (err) {
          this.onError(err);
          finish({ outcome: 'timed_out', reviewer: null, reason, at: new Date().toISOString(), decidedBy: { uid: -1, user: 'gapwatch', pid: process.pid } });
        }
      };
      this.waiting.set(reviewId, check);
      timer = setTimeout(() => expire(null), Math.max(0, expiresAt.getTime() - Date.now()));
      this.expirers.set(reviewId, expire);
      check();
    });
    void outcome.finally(() => this.expirers.delete(reviewId));
    return { reviewId, outcome, withdraw: (reason) => this.expirers.get(reviewId)?.(reason) };
  }

  /** Settles every waiting review as timed out (the statements are refused) and stops watching. */
  close(): void {
    this.closed = true;
    for (const expire of [...this.expirers.values()]) expire('the gateway stopped');
    this.stopWatching();
  }

  private startWatching(): void {
    if (this.poller) return;
    try {
      this.watcher = watch(this.directory.dir, (_event, filename) => {
        const match = typeof filename === 'string' ? /^(rv-[0-9a-f]{12})\.decision\.json$/.exec(filename) : null;
        if (match) this.waiting.get(match[1]!)?.();
      });
      this.watcher.on('error', (err) => this.onError(err));
    } catch (err) {
      this.onError(err);
    }
    // inotify can miss events (overflow, some file systems): a slow poll backs it up.
    this.poller = setInterval(() => {
      for (const check of [...this.waiting.values()]) check();
    }, POLL_MS);
  }

  private stopWatchingIfIdle(): void {
    if (this.waiting.size === 0) this.stopWatching();
  }

  private stopWatching(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
  }
}

function toOutcome(decision: ReviewDecisionRecord, request: Pick<ReviewRequestInput, 'login' | 'subject'>): ReviewOutcome {
  const at = new Date(decision.at);
  if (decision.outcome === 'timed_out' || decision.reviewer === null) return { outcome: 'timed_out', at };
  // Checked again on this side: a decision written around the CLI cannot approve one's own statement.
  if (decision.outcome === 'approved' && isSelfReview(request, decision.reviewer)) {
    return { outcome: 'denied', reviewer: decision.reviewer, at, reason: 'self-approval is not allowed' };
  }
  if (decision.outcome === 'approved') return { outcome: 'approved', reviewer: decision.reviewer, at };
  return { outcome: 'denied', reviewer: decision.reviewer, at, reason: decision.reason ?? 'denied by reviewer' };
}

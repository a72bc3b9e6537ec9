import type { Socket } from 'node:net';
import { loadGatewayAddon } from '../../native/binding';
import { NATIVE_LOOK_MS } from '../journal/journal';
import type { Logger } from '../../platform/log';
import type { AgentIdentity } from '../identity/contract';
import type { PolicyEngine, PolicyRequest } from '../policy/contract';
import { blockTransition } from '../policy/policy-engine';
import { reusableShape } from '../policy/statement-classifier';
import { statementEffects } from './statement-durability';

/**
 * Hands an established session's two sockets to the native session loop (native/addon/pg-datapath.cc),
 * answers its policy questions (decisions per statement text, reviews) and learns how the session
 * ended. See gateway/postgres/README.md, "The native data path".
 */

interface NativeEvent {
  kind: 'decide' | 'review' | 'forget' | 'ended';
  handle: number;
  via: 'q' | 'p' | 'f';
  text: Buffer;
  /** A Parse's or a Close's statement name (the policy engine follows named statements for SQL EXECUTE). */
  name: Buffer;
  /** Whether a transaction block may be open before the statement, as the loop follows it ('n', 'm'); '' when the engine's own view holds. */
  block: string;
  failed: boolean;
  failure: string;
  bytesIn: number;
  bytesOut: number;
  eventSeq: number;
}

interface PgDataPathAddon {
  PgDataPath: new (chain: object, onEvents: (events: NativeEvent[]) => void, experiment?: string) => {
    adopt(clientFd: number, upstreamFd: number, handle: number, sessionId: string, eventSeq: number, maxMessageBytes: number, readDurable: boolean, beforeReply: boolean): void;
    decided(handle: number, via: string, text: Buffer, decision: NativeDecision): void;
    reviewing(handle: number, reviewId: string): void;
    reviewed(handle: number, outcome: 'approved' | 'denied' | 'timed_out' | 'canceled', reviewer: string, reason: string): void;
    terminate(handle: number, reason: string): void;
    stop(): void;
  };
}

/** A policy decision as the native loop keeps it (see decide()). */
interface NativeDecision {
  allow: boolean;
  review: boolean;
  rule: string;
  reason: string;
  classes: string[];
  statements: string[];
  effects: string[] | null;
  /** The evaluation changed the session's policy state: used for this statement only, and every decision kept before is dropped. */
  stateful: boolean;
  /** Holds for every text of the literal shape: the statements' spans in the shape (start, end, …); else null. */
  shape: number[] | null;
  /** How the statement, once allowed, moves the transaction block the loop follows ('k' keep, 'n' none, 'm' maybe): blockTransition(). */
  block: 'k' | 'n' | 'm';
}

export interface NativeSessionEnd {
  failed: boolean;
  failure: string;
  bytesIn: number;
  bytesOut: number;
  eventSeq: number;
}

interface Adopted {
  sessionId: string;
  resource: string;
  identity: AgentIdentity;
  done: (end: NativeSessionEnd) => void;
  /** While a statement is held for review: the agent's CancelRequest releases it. */
  cancelHold?: () => void;
}

export class NativePgDataPath {
  private readonly loop: InstanceType<PgDataPathAddon['PgDataPath']>;
  private readonly sessions = new Map<number, Adopted>();
  private nextHandle = 1;
  /** Policy questions the loop asked (decide events): each statement it did not decide from a kept decision. */
  questions = 0;
  /** While sessions run natively: the journal's look at their writes (NATIVE_LOOK_MS). */
  private poll: NodeJS.Timeout | null = null;

  constructor(
    chain: object,
    private readonly policy: PolicyEngine,
    private readonly onWritten: () => void,
    private readonly log: Logger,
  ) {
    const addon = loadGatewayAddon().exports as PgDataPathAddon;
    this.loop = new addon.PgDataPath(chain, (events) => this.onEvents(events));
  }

  static available(): boolean {
    return typeof (loadGatewayAddon().exports as Partial<PgDataPathAddon> | null)?.PgDataPath === 'function';
  }

  /** Takes over both sockets (their descriptors are dup'd; the Node sockets are destroyed here). */
  adopt(client: Socket, upstream: Socket, session: { sessionId: string; resource: string; identity: AgentIdentity; eventSeq: number; maxMessageBytes: number; readDurable: boolean; beforeReply: boolean }): Promise<NativeSessionEnd> {
    const handle = this.nextHandle++;
    const fd = (socket: Socket): number => (socket as unknown as { _handle: { fd: number } })._handle.fd;
    if (!this.poll) this.poll = setInterval(() => this.onWritten(), NATIVE_LOOK_MS);
    return new Promise((resolve) => {
      this.sessions.set(handle, { sessionId: session.sessionId, resource: session.resource, identity: session.identity, done: resolve });
      this.loop.adopt(fd(client), fd(upstream), handle, session.sessionId, session.eventSeq, session.maxMessageBytes, session.readDurable, session.beforeReply);
      client.destroy();
      upstream.destroy();
    });
  }

  stop(): void {
    this.loop.stop();
    if (this.poll) clearInterval(this.poll);
    this.poll = null;
  }

  private onEvents(events: NativeEvent[]): void {
    for (const e of events) {
      if (e.kind === 'decide') {
        this.questions++;
        this.decide(e);
      }
      else if (e.kind === 'review') void this.review(e);
      else if (e.kind === 'forget') {
        // The agent closed a prepared statement: a later SQL EXECUTE of the name runs nothing known.
        const adopted = this.sessions.get(e.handle);
        if (adopted) this.policy.forgetStatement(adopted.sessionId, e.name.toString('utf8'));
      }
      else if (e.kind === 'ended') {
        const adopted = this.sessions.get(e.handle);
        this.sessions.delete(e.handle);
        // A review still open for it is withdrawn: nobody waits for that statement any more.
        adopted?.cancelHold?.();
        this.onWritten();
        if (this.sessions.size === 0 && this.poll) {
          clearInterval(this.poll);
          this.poll = null;
        }
        adopted?.done({ failed: e.failed, failure: e.failure, bytesIn: e.bytesIn, bytesOut: e.bytesOut, eventSeq: e.eventSeq });
      }
    }
  }

  private decide(e: NativeEvent): void {
    const adopted = this.sessions.get(e.handle);
    if (!adopted) return;
    const request = this.requestOf(adopted, e);
    const text = request.text;
    let allow = false;
    let review = false;
    let rule = 'gateway';
    let reason = '';
    let classes: string[] = [];
    let statements: string[] = [text];
    let effects: string[] | null = null;
    let stateful = false;
    let shape: number[] | null = null;
    let block: NativeDecision['block'] = 'k';
    try {
      const version = this.policy.stateVersion(adopted.sessionId);
      const decision = this.policy.evaluateNow(request);
      stateful = this.policy.stateVersion(adopted.sessionId) !== version;
      allow = decision.action === 'allow';
      review = decision.action === 'review';
      rule = decision.rule ?? '';
      reason = decision.action === 'allow' ? '' : decision.reason;
      classes = [...new Set(decision.statements.flatMap((s) => s.classes))];
      if (decision.statements.length > 0) statements = decision.statements.map((s) => s.text);
      // Unclassified (no statements, not empty): null, so the request is durable before forwarding.
      if (decision.statements.length > 0 || text.trim() === '') effects = statementEffects(decision.statements);
      const transition = blockTransition(request.via, decision.statements);
      block = transition === 'keep' ? 'k' : transition === 'no' ? 'n' : 'm';
      // Literal-blind (the classification read no literal value or session state): the same decision
      // for every text of this shape, as long as the session's policy state stays as it is.
      if (!stateful && request.via !== 'function_call') {
        const reusable = reusableShape(text);
        if (reusable && reusable.spans.length === decision.statements.length) shape = reusable.spans.flat();
      }
    } catch (err) {
      this.log.error({ err, sessionId: adopted.sessionId }, 'policy evaluation failed; refusing the statement');
      reason = `policy evaluation failed (${(err as Error).message})`;
    }
    this.loop.decided(e.handle, e.via, e.text, { allow, review, rule, reason, classes, statements, effects, stateful, shape, block });
  }

  /** A statement held for review: JavaScript runs the review, the native loop journals and answers. */
  private async review(e: NativeEvent): Promise<void> {
    const adopted = this.sessions.get(e.handle);
    if (!adopted) return;
    const request = this.requestOf(adopted, e);
    const decision = this.policy.evaluateNow(request);
    if (decision.action !== 'review') {
      this.loop.reviewed(e.handle, 'denied', 'gateway', 'the decision changed while the review was opened');
      return;
    }
    const pending = await this.policy.requestReview(request, decision);
    if (!this.sessions.has(e.handle)) {
      // The session ended while the review was being opened: nobody waits for the statement.
      pending.withdraw('the agent left while the statement was held');
      return;
    }
    this.loop.reviewing(e.handle, pending.reviewId);
    const canceled = new Promise<'canceled'>((resolve) => (adopted.cancelHold = () => resolve('canceled')));
    const outcome = await Promise.race([pending.outcome, canceled]);
    adopted.cancelHold = undefined;
    if (outcome === 'canceled') {
      pending.withdraw('canceled by the agent while held');
      this.loop.reviewed(e.handle, 'canceled', '', '');
    } else if (outcome.outcome === 'approved') this.loop.reviewed(e.handle, 'approved', outcome.reviewer, '');
    else if (outcome.outcome === 'denied') this.loop.reviewed(e.handle, 'denied', outcome.reviewer, outcome.reason);
    else this.loop.reviewed(e.handle, 'timed_out', '', '');
  }

  /** An agent's CancelRequest for a native session: true when it released a held review. */
  /** Ends a session now: the agent gets FATAL 57P01 "terminating connection: <reason>"; the session ends failed with the reason. */
  terminate(sessionId: string, reason: string): void {
    for (const [handle, adopted] of this.sessions) {
      if (adopted.sessionId === sessionId) this.loop.terminate(handle, reason);
    }
  }

  cancelHeld(sessionId: string): boolean {
    for (const adopted of this.sessions.values()) {
      if (adopted.sessionId === sessionId && adopted.cancelHold) {
        adopted.cancelHold();
        return true;
      }
    }
    return false;
  }

  private requestOf(adopted: Adopted, e: NativeEvent): PolicyRequest {
    const via = e.via === 'q' ? 'query' : e.via === 'p' ? 'parse' : 'function_call';
    return {
      sessionId: adopted.sessionId,
      resource: adopted.resource,
      identity: adopted.identity,
      via,
      text: e.text.toString('utf8'),
      ...(via === 'parse' ? { statementName: e.name.toString('utf8') } : {}),
      ...(e.block === 'n' ? { block: 'no' as const } : e.block === 'm' ? { block: 'maybe' as const } : {}),
    };
  }
}

import type { Socket } from 'node:net';
import { serialize } from 'pg-protocol';
import type { AppendAck } from '../journal/contract';
import type { Logger } from '../../platform/log';
import type { PgMessage } from '../../proto/generated/gapwatch/v1/PgMessage';
import type { PolicyDecision as PolicyDecisionRecord } from '../../proto/generated/gapwatch/v1/PolicyDecision';
import type { AgentIdentity } from '../identity/contract';
import type { Masker, PolicyDecision, PolicyEngine, PolicyRequest, ReviewOutcome } from '../policy/contract';
import { functionCallText, messageRecord, parameterDisplay, type ParameterRedactor } from './audit-format';
import { dataRowFields, decodeCommandTag, decodeError, decodeParameterStatus, decodeRowDescription, rowsFromTag, BackendFramer } from './backend-reader';
import { parserHazard } from '../policy/parser-safety';
import { dataRow, errorResponse, noticeResponse, readyForQuery } from './backend-writer';
import { AuditUnavailableError, FrontendProtocolError, ParserHazardError, PostgresGatewayError, UpstreamProtocolError } from './errors';
import type { FrontendMessage, FrontendParser } from './frontend-parser';
import { BackendType, FormatCode, FrontendType, SqlState, TargetKind, TransactionStatus } from './protocol';
import type { RelationNames } from './relation-names';
import { nowNanos, type SessionRecorder } from './session-recorder';
import { requestAck, statementEffects, type StatementEffect } from './statement-durability';

/**
 * One established agent session: the agent's messages are checked by policy, journaled (durably,
 * before anything is forwarded) and passed to the upstream server; the server's answers are
 * followed message by message to audit each statement's outcome and, where policy says so, to mask
 * DataRows before they leave the gateway.
 *
 * The server answers the frontend messages it receives in order, so the proxy keeps a queue of
 * "units" (what each forwarded message still owes an answer for) and matches every backend message
 * to the unit at its head. Spec of the message flow:
 * https://www.postgresql.org/docs/15/protocol-flow.html
 */

interface Column {
  name: string;
  tableOid: number;
  typeOid: number;
  format: FormatCode;
  /** "schema.table" once looked up. */
  relation?: string;
}

interface PreparedStatement {
  text: string;
  decision: PolicyDecision | null;
  columns: Column[] | null;
  /** What each Execute of it may do (decided at Parse); null when unknown: durable before forwarding. */
  effects: StatementEffect[] | null;
}

interface Portal {
  statementName: string;
  statement: PreparedStatement;
  parameters: string[];
  resultFormats: FormatCode[];
  columns: Column[] | null;
}

/** One statement as it runs: what was asked, under which decision, and what came back. */
interface StatementRun {
  text: string;
  via: 'query' | 'extended' | 'function_call';
  statementName: string;
  portal: string;
  parameters: string[];
  decision: PolicyDecision | null;
  startNs: bigint;
  rows: number;
  columns: Column[] | null;
  /** undefined until the first DataRow asks for it; null when nothing is masked. */
  masker: Masker | null | undefined;
  copy: { direction: 'in' | 'out'; bytes: number } | null;
}

type Unit =
  | { kind: 'query'; statements: string[]; decision: PolicyDecision; index: number; run: StatementRun | null; nextStartNs: bigint }
  | { kind: 'parse'; name: string; text: string; decision: PolicyDecision }
  | { kind: 'bind' }
  | { kind: 'close' }
  | { kind: 'describe'; target: TargetKind; name: string; internal: boolean }
  | { kind: 'execute'; run: StatementRun; portal: Portal | null }
  | { kind: 'function_call'; run: StatementRun }
  | { kind: 'sync'; refusal: Buffer | null; sawError: boolean };

export interface ProxyContext {
  sessionId: string;
  /** Table names for result columns' table OIDs, for table-qualified mask rules. */
  relations: RelationNames;
  resource: string;
  identity: AgentIdentity;
  policy: PolicyEngine;
  recorder: SessionRecorder;
  /**
   * `before-forward`: a request is forwarded only once its record is durable (write-ahead).
   * `before-reply`: forwarded at once, and nothing more reaches the agent until the record is durable.
   */
  durability: AuditDurability;
  /**
   * `written`: a request that cannot change state outside its open transaction block waits only
   * for its record to be written; `durable`: every request waits for its record to be fsync'd.
   */
  readDurability: ReadDurability;
  log: Logger;
}

export type ReadDurability = 'written' | 'durable';

export type AuditDurability = 'before-forward' | 'before-reply';

export type SessionEnd = { outcome: 'closed' } | { outcome: 'failed'; failure: string };

/** Gathers what goes to the agent; consecutive pass-through messages of one chunk become one write. */
class Outbox {
  private parts: Buffer[] = [];
  private run: Buffer | null = null;
  private runEnd = 0;

  pass(message: Buffer): void {
    if (this.run && message.buffer === this.run.buffer && message.byteOffset === this.runEnd) {
      this.runEnd += message.length;
      return;
    }
    this.close();
    this.run = message;
    this.runEnd = message.byteOffset + message.length;
  }

  add(data: Buffer): void {
    this.close();
    this.parts.push(data);
  }

  private close(): void {
    if (!this.run) return;
    this.parts.push(Buffer.from(this.run.buffer, this.run.byteOffset, this.runEnd - this.run.byteOffset));
    this.run = null;
  }

  take(): Buffer[] {
    this.close();
    const parts = this.parts;
    this.parts = [];
    return parts;
  }
}

const PAUSE_CLIENT_AT_BYTES = 8 << 20;
/** Answers up to this size are copied into one buffer for one write; larger ones go out corked. */
const COALESCE_WRITE_BYTES = 64 << 10;

/** Returned by the backend message handler to stop the stream until an asynchronous step is done. */
const BLOCKED = Symbol('blocked');

/** A Flush of the gateway's own (see flushPending). */
const FLUSH = serialize.flush();

export class ProxySession {
  private readonly framer = new BackendFramer();
  private readonly outbox = new Outbox();
  private readonly units: Unit[] = [];
  private readonly statements = new Map<string, PreparedStatement>();
  private readonly portals = new Map<string, Portal>();
  private readonly parameterMaskers = new Map<number, Masker | null>();
  /** Frontend messages received since the last forward, for the write-ahead record. */
  private request: PgMessage[] = [];
  /** What the request's record must reach before it is forwarded; raised as its messages are handled. */
  private requestAck: AppendAck = 'written';
  /**
   * Whether the server will be inside a transaction block when it runs the next forwarded statement.
   * Known from ReadyForQuery's status once nothing forwarded is unanswered; followed through the
   * statements of one simple Query, or of one extended batch up to Sync (an error skips the rest of
   * either, so a later statement runs only if the BEGIN before it did); false ("not known to be in a
   * block", the strict assumption) after that until the server's status confirms it. So it is never
   * true when the session may be outside a block, whatever a client pipelines.
   */
  private inBlock = false;
  private upstreamOut: Buffer[] = [];
  private transactionStatus = TransactionStatus.Idle;
  /** Query, Sync and FunctionCall messages forwarded and not yet answered by ReadyForQuery. */
  private awaitingReady = 0;
  private idleWaiters: Array<() => void> = [];
  /** Waiting for the server to have answered every message forwarded (the units empty). */
  private answeredWaiters: Array<() => void> = [];
  private skipUntilSync = false;
  /**
   * The server failed a message of an extended batch whose Sync it has not been sent yet: it skips
   * everything up to that Sync, so what is forwarded meanwhile is owed no answer (a pipelining client
   * that sends the rest of its batch later, or a statement held for review behind the failed one).
   */
  private upstreamSkipping = false;
  private batchRefusal: Buffer | null = null;
  private forwardedInBatch = false;
  private copyIn: StatementRun | null = null;
  private upstreamBlocked = false;
  private heldBackend: Buffer | null = null;
  private draining = false;
  private dataWhileDraining = false;
  private cancelHold: (() => void) | null = null;
  /**
   * before-reply: barriers are numbered as requests are forwarded; what goes to the agent while a
   * barrier is open waits, in order, until every barrier issued before it is durable.
   */
  private barriersIssued = 0;
  private barriersDurable = 0;
  private heldReplies: Array<{ barrier: number; parts: Buffer[] }> = [];
  private heldReplyBytes = 0;
  private repliesReleased: Array<() => void> = [];
  private ended = false;
  private clientGone = false;
  bytesFromClient = 0;
  bytesToClient = 0;
  readonly done: Promise<SessionEnd>;
  private finish!: (end: SessionEnd) => void;

  constructor(
    private readonly client: Socket,
    private readonly parser: FrontendParser,
    private readonly upstream: Socket,
    private readonly context: ProxyContext,
  ) {
    this.done = new Promise((resolve) => (this.finish = resolve));
  }

  start(): void {
    this.client.on('data', (chunk: Buffer) => {
      this.bytesFromClient += chunk.length;
      this.parser.push(chunk);
      if (this.parser.pendingBytes > PAUSE_CLIENT_AT_BYTES) this.client.pause();
      this.pump();
    });
    // Messages that arrived whole before the client's FIN still run, as they would on the server;
    // the session ends once they are forwarded.
    const clientGone = (): void => {
      this.clientGone = true;
      // A statement held for review has nobody left to answer; end at once.
      if (!this.draining || this.cancelHold) this.endAfterClient();
    };
    this.client.on('end', clientGone);
    this.client.on('close', clientGone);
    this.client.on('error', (err) => this.end({ outcome: 'failed', failure: `client connection error: ${err.message}` }));
    this.upstream.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
    this.upstream.on('end', () => this.end({ outcome: 'failed', failure: 'the upstream server closed the connection' }));
    this.upstream.on('close', () => this.end({ outcome: 'failed', failure: 'the upstream server closed the connection' }));
    this.upstream.on('error', (err) => this.end({ outcome: 'failed', failure: `upstream connection error: ${err.message}` }));
    this.client.on('drain', () => this.upstream.resume());
    this.upstream.on('drain', () => this.client.resume());
    // Bytes that arrived with the end of the handshake are already in the parser.
    if (this.parser.pendingBytes > 0) this.pump();
  }

  /** An agent's CancelRequest with this session's key: release a held review, else cancel upstream. */
  cancel(upstreamCancel: () => Promise<void>): void {
    if (this.cancelHold) {
      this.cancelHold();
      return;
    }
    upstreamCancel().catch((err: unknown) => this.context.log.warn({ err, sessionId: this.context.sessionId }, 'forwarding a cancel request failed'));
  }

  /** Ends the session from outside (gateway shutdown): tells the agent, as PostgreSQL does. */
  shutdown(): void {
    if (this.ended) return;
    this.writeClientNow([errorResponse({ severity: 'FATAL', code: SqlState.AdminShutdown, message: 'terminating connection: the gateway is shutting down' })]);
    this.end({ outcome: 'closed' });
  }

  /** Ends the session from outside for a reason of the agent's (its identity revoked): it ends failed. */
  terminate(reason: string): void {
    if (this.ended) return;
    this.writeClientNow([errorResponse({ severity: 'FATAL', code: SqlState.AdminShutdown, message: `terminating connection: ${reason}` })]);
    this.end({ outcome: 'failed', failure: reason });
  }

  // ---------------------------------------------------------------- agent → upstream

  private pump(): void {
    if (this.draining) {
      this.dataWhileDraining = true;
      return;
    }
    this.draining = true;
    void this.drain();
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.dataWhileDraining = false;
        for (;;) {
          if (this.ended) return;
          const msg = this.parser.next();
          if (!msg) break;
          const pending = this.onClientMessage(msg);
          if (pending) await pending;
        }
        const flushed = this.flushUpstreamNow();
        if (flushed) await flushed;
        if (this.client.isPaused() && this.parser.pendingBytes < PAUSE_CLIENT_AT_BYTES && this.upstream.writableLength < PAUSE_CLIENT_AT_BYTES) {
          this.client.resume();
        }
      } while (this.dataWhileDraining && !this.ended);
    } catch (err) {
      this.fail(err);
    } finally {
      this.draining = false;
      if (this.clientGone) this.endAfterClient();
    }
  }

  private endAfterClient(): void {
    const partial = this.parser.pendingBytes;
    if (partial === 0 && this.awaitingReady > 0 && !this.ended && !this.cancelHold) {
      // The server still owes answers to what was forwarded: wait for them, so they are journaled.
      this.idleWaiters.push(() => this.endAfterClient());
      return;
    }
    this.end(
      partial > 0
        ? { outcome: 'failed', failure: `the client disconnected in the middle of a message (${partial} bytes of it received)` }
        : { outcome: 'closed' },
    );
  }

  /** The request being gathered needs at least `ack`. */
  private needs(ack: AppendAck): void {
    if (ack === 'durable') this.requestAck = 'durable';
  }

  /** A statement is forwarded: what its record needs, following the transaction block it runs in. */
  private forwarding(effects: readonly StatementEffect[] | null): void {
    if (effects === null) {
      this.needs('durable');
      return;
    }
    const next = requestAck(effects, this.inBlock);
    this.inBlock = next.inBlock;
    this.needs(next.ack);
  }

  private record(msg: FrontendMessage, withheld = false, redact: ParameterRedactor | null = null): PgMessage {
    const record = messageRecord(msg, withheld, redact);
    this.request.push(record);
    return record;
  }

  /**
   * Parameters are values, so the policy's value patterns (emails, card numbers …) and column rules
   * that match "$1", "$2" … keep them out of the journal. One masker per parameter count and session.
   */
  private redactorFor(count: number): ParameterRedactor | null {
    if (count === 0) return null;
    let masker = this.parameterMaskers.get(count);
    if (masker === undefined) {
      const columns = Array.from({ length: count }, (_, i) => ({ name: `$${i + 1}`, tableOid: 0 }));
      masker = this.context.policy.maskerFor(this.context.resource, this.context.identity, columns);
      this.parameterMaskers.set(count, masker);
    }
    const found = masker;
    if (!found) return null;
    return (index, value) => {
      const masked = found.mask(index, value);
      return masked === null || !masked.equals(value);
    };
  }

  private forward(raw: Buffer): void {
    this.upstreamOut.push(raw);
  }

  /**
   * Journals what was received and forwards it: after the record is durable (before-forward), or at
   * once with the agent's next answers held until it is (before-reply). Either way the record is
   * appended first, so its seq precedes anything the server does with the request.
   */
  private flushUpstream(): Promise<void> {
    const waiting = this.flushUpstreamNow();
    return waiting ?? Promise.resolve();
  }

  /** flushUpstream without a promise when nothing has to be waited for (before-reply, or nothing new). */
  private flushUpstreamNow(): Promise<void> | void {
    const recorder = this.context.recorder;
    let barrier: Promise<void> | null = null;
    if (this.request.length > 0) {
      const messages = this.request;
      const ack = this.context.readDurability === 'durable' ? 'durable' : this.requestAck;
      this.request = [];
      this.requestAck = 'written';
      barrier = recorder.barrier({ pgRequest: { messages } }, ack);
    } else if (recorder.hasPending) barrier = recorder.durable();
    if (barrier) {
      if (this.context.durability === 'before-forward') return barrier.then(() => this.writeUpstream());
      this.holdRepliesUntil(barrier);
    }
    this.writeUpstream();
  }

  private writeUpstream(): void {
    if (this.upstreamOut.length === 0 || this.ended) return;
    const out = this.upstreamOut;
    this.upstreamOut = [];
    // One buffer, one write: most batches are a few small messages (Bind/Execute/Sync).
    const ok = this.upstream.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    if (!ok) this.client.pause();
  }

  /** before-reply: answers written from now on wait until `durable` settles. */
  private holdRepliesUntil(durable: Promise<void>): void {
    const barrier = ++this.barriersIssued;
    durable.then(
      () => {
        this.barriersDurable = Math.max(this.barriersDurable, barrier);
        this.releaseReplies();
      },
      // A failed append fails the session (SessionRecorder's onFailure): held answers never go out.
      () => undefined,
    );
  }

  private releaseReplies(): void {
    const released: Buffer[] = [];
    while (this.heldReplies.length > 0 && this.heldReplies[0]!.barrier <= this.barriersDurable) {
      const held = this.heldReplies.shift()!;
      for (const p of held.parts) {
        this.heldReplyBytes -= p.length;
        released.push(p);
      }
    }
    this.writeClientNow(released);
    if (this.heldReplies.length === 0) {
      if (this.upstream.isPaused() && !this.upstreamBlocked && this.client.writableLength < PAUSE_CLIENT_AT_BYTES) this.upstream.resume();
      const waiters = this.repliesReleased;
      this.repliesReleased = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves once the server has answered everything forwarded (its last ReadyForQuery is in). */
  private untilIdle(): Promise<void> {
    if (this.awaitingReady === 0 || this.ended) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Resolves once no answer is held back for durability (at once in before-forward mode). */
  private repliesDelivered(): Promise<void> {
    if (this.heldReplies.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.repliesReleased.push(resolve));
  }

  private onClientMessage(msg: FrontendMessage): Promise<void> | void {
    if (this.skipUntilSync && msg.type !== FrontendType.Sync && msg.type !== FrontendType.Terminate) {
      // After a refused Parse the server would skip everything until Sync; so does the gateway.
      this.record(msg, true);
      return;
    }
    switch (msg.type) {
      case FrontendType.Query:
        return this.onQuery(msg.raw, msg.text, this.record(msg));
      case FrontendType.Parse:
        return this.onParse(msg.raw, msg.name, msg.text, this.record(msg));
      case FrontendType.Bind: {
        const redact = this.redactorFor(msg.parameters.length);
        this.record(msg, false, redact);
        // A statement this session did not Parse (none by that name) still gets a portal, so its
        // Execute is audited and its results can be masked; the server will refuse the Bind anyway.
        const statement = this.statements.get(msg.statement) ?? { text: '', decision: null, columns: null, effects: null };
        const resultFormats = msg.resultFormats;
        this.portals.set(msg.portal, {
          statementName: msg.statement,
          statement,
          parameters: msg.parameters.map((v, i) => parameterDisplay(v, msg.parameterFormats[i]!, i, redact)),
          resultFormats,
          columns: statement.columns ? withFormats(statement.columns, resultFormats) : null,
        });
        this.forwardExtended(msg.raw, { kind: 'bind' });
        return;
      }
      case FrontendType.Describe:
        this.record(msg);
        this.forwardExtended(msg.raw, { kind: 'describe', target: msg.target, name: msg.name, internal: false });
        return;
      case FrontendType.Execute:
        this.record(msg);
        this.onExecute(msg.raw, msg.portal);
        return;
      case FrontendType.Close:
        this.record(msg);
        if (msg.target === TargetKind.Statement) {
          this.statements.delete(msg.name);
          this.context.policy.forgetStatement(this.context.sessionId, msg.name);
        } else this.portals.delete(msg.name);
        this.forwardExtended(msg.raw, { kind: 'close' });
        return;
      case FrontendType.Flush:
        this.record(msg);
        this.forward(msg.raw);
        return;
      case FrontendType.Sync:
        this.record(msg);
        return this.onSync(msg.raw);
      case FrontendType.FunctionCall: {
        const redact = this.redactorFor(msg.arguments.length);
        const record = this.record(msg, false, redact);
        return this.onFunctionCall(msg.raw, functionCallText(msg.functionOid, msg.arguments, msg.argumentFormats, redact), record);
      }
      case FrontendType.CopyData:
        // Copy payload is counted, not journaled: the COPY statement itself was journaled before it ran.
        if (this.copyIn?.copy) this.copyIn.copy.bytes += msg.data.length;
        this.forward(msg.raw);
        return;
      case FrontendType.CopyDone:
      case FrontendType.CopyFail:
        this.record(msg);
        this.needs('durable');
        this.forward(msg.raw);
        this.copyIn = null;
        return;
      case FrontendType.Terminate:
        // The server answers what came before Terminate first (a client may send Query, Query,
        // Terminate in one packet). Closing the upstream right after forwarding Terminate would lose
        // those answers and their audit, so Terminate goes upstream only once they are all back.
        this.record(msg);
        return this.flushUpstream()
          .then(() => this.untilIdle())
          .then(() => {
            if (this.ended) return;
            this.forward(msg.raw);
            return this.flushUpstream();
          })
          .then(() => this.repliesDelivered())
          .then(() => this.end({ outcome: 'closed' }));
      case FrontendType.Password:
        throw new FrontendProtocolError('unexpected password message after authentication');
    }
  }

  private forwardExtended(raw: Buffer, unit: Unit): void {
    this.forward(raw);
    if (!this.upstreamSkipping) this.units.push(unit);
    this.forwardedInBatch = true;
  }

  /** One literal, not `{ ...request, statementName }`: spreading a fresh object and adding a property takes a slow path in V8. */
  private policyRequest(via: PolicyRequest['via'], text: string, statementName?: string): PolicyRequest {
    const request: PolicyRequest = { sessionId: this.context.sessionId, resource: this.context.resource, identity: this.context.identity, via, text };
    if (statementName !== undefined) request.statementName = statementName;
    return request;
  }

  /** Asks policy; a policy engine that fails is a refusal, never a pass. */
  private decide(request: PolicyRequest): PolicyDecision {
    try {
      return this.context.policy.evaluateNow(request);
    } catch (err) {
      this.context.log.error({ err, sessionId: this.context.sessionId }, 'policy evaluation failed; refusing the statement');
      return { action: 'deny', rule: 'gateway', reason: `policy evaluation failed (${(err as Error).message})`, statements: [] };
    }
  }

  /**
   * Settles a non-allow decision. Returns null when the statement may go upstream (review approved),
   * else the ErrorResponse the agent gets.
   */
  private async settle(request: PolicyRequest, decision: PolicyDecision): Promise<Buffer | null> {
    // Whatever the outcome, the request that carried it (journaled before a review's notice, or with the
    // refusal) is durable first: a held or refused statement is evidence of an attempt.
    this.needs('durable');
    const classes = [...new Set(decision.statements.flatMap((s) => s.classes))];
    const base: PolicyDecisionRecord = { rule: decision.rule ?? '', statement: request.text, classes };
    if (decision.action === 'deny') {
      void this.context.recorder.event({ policy: { ...base, action: 'POLICY_ACTION_DENY', reason: decision.reason } });
      this.recordRefused(request, decision, SqlState.InsufficientPrivilege, `denied by policy: ${decision.reason}`);
      return denial(`gapwatch policy denied this statement: ${decision.reason}`, `rule: ${decision.rule}`);
    }
    if (decision.action !== 'review') return null;

    const review = await this.context.policy.requestReview(request, decision);
    void this.context.recorder.event({ policy: { ...base, action: 'POLICY_ACTION_REVIEW', reason: decision.reason, reviewId: review.reviewId } });
    // The notice goes out at once, after whatever the server already owes the agent.
    this.flushPending();
    await this.flushUpstream();
    this.writeClient([
      noticeResponse({
        severity: 'NOTICE',
        code: '00000',
        message: `gapwatch: statement held for review ${review.reviewId}: ${decision.reason}`,
        hint: `a reviewer can run: gapwatch approve ${review.reviewId}  (or: gapwatch deny ${review.reviewId})`,
      }),
    ]);
    const canceled = new Promise<'canceled'>((resolve) => (this.cancelHold = () => resolve('canceled')));
    // The agent left before the statement was held (its FIN came with the batch): nobody waits for it.
    if (this.clientGone) this.endAfterClient();
    const outcome: ReviewOutcome | 'canceled' = await Promise.race([review.outcome, canceled]);
    this.cancelHold = null;
    // Released by the agent's cancel, or by the session's end: either way nobody decides it any more.
    if (outcome === 'canceled') review.withdraw(this.ended ? 'the agent left while the statement was held' : 'canceled by the agent while held');
    if (this.ended) return null;
    if (outcome === 'canceled') {
      void this.context.recorder.event({ policy: { ...base, action: 'POLICY_ACTION_REJECTED', reviewId: review.reviewId, reason: 'canceled by the agent while held' } });
      this.recordRefused(request, decision, SqlState.QueryCanceled, 'canceled while held for review');
      return errorResponse({ severity: 'ERROR', code: SqlState.QueryCanceled, message: 'canceling statement due to user request (it was held for review)' });
    }
    switch (outcome.outcome) {
      case 'approved':
        void this.context.recorder.event({
          policy: { ...base, action: 'POLICY_ACTION_APPROVED', reviewId: review.reviewId, reviewer: outcome.reviewer, reason: decision.reason },
        });
        return null;
      case 'denied':
        void this.context.recorder.event({
          policy: { ...base, action: 'POLICY_ACTION_REJECTED', reviewId: review.reviewId, reviewer: outcome.reviewer, reason: outcome.reason },
        });
        this.recordRefused(request, decision, SqlState.InsufficientPrivilege, `review ${review.reviewId} denied by ${outcome.reviewer}`);
        return denial(`gapwatch review ${review.reviewId} was denied by ${outcome.reviewer}: ${outcome.reason}`, `rule: ${decision.rule}`);
      case 'timed_out':
        void this.context.recorder.event({ policy: { ...base, action: 'POLICY_ACTION_TIMED_OUT', reviewId: review.reviewId, reason: 'no decision in time' } });
        this.recordRefused(request, decision, SqlState.InsufficientPrivilege, `review ${review.reviewId} timed out`);
        return denial(`gapwatch review ${review.reviewId} timed out without a decision; the statement did not run`, `rule: ${decision.rule}`);
    }
  }

  private recordRefused(request: PolicyRequest, decision: PolicyDecision, code: string, message: string): void {
    void this.context.recorder.event({
      statement: {
        text: request.text,
        via: request.via === 'parse' ? 'extended' : request.via,
        errorCode: code,
        errorMessage: message,
        policy: decisionRecord(decision),
        classes: decisionClasses(decision),
      },
    });
  }

  /**
   * Answers a refused simple Query or FunctionCall in order: after everything the server still owes,
   * extended messages of a batch not synced yet included (their answers first, or a client matching
   * answers in order would take the refusal for theirs).
   */
  private async refuseNow(error: Buffer): Promise<void> {
    this.flushPending();
    await this.flushUpstream();
    if (this.units.length > 0 && !this.ended) await new Promise<void>((resolve) => this.answeredWaiters.push(resolve));
    this.writeClient([error, readyForQuery(this.transactionStatus)]);
  }

  /**
   * The server keeps the answers to extended messages until a Sync, a Flush or a simple Query makes
   * it send them. When a local answer has to wait for them and none follows, the gateway sends a
   * Flush of its own (it answers nothing), or the agent — waiting for that local answer before its
   * next message — would wait for ever.
   */
  private flushPending(): void {
    const last = this.units.at(-1);
    if (last && last.kind !== 'sync' && last.kind !== 'query' && last.kind !== 'function_call') this.forward(FLUSH);
  }

  /** An allowed Query is forwarded in the same turn (no promise); anything else is settled first. */
  private onQuery(raw: Buffer, text: string, record: PgMessage): Promise<void> | void {
    const request = this.policyRequest('query', text);
    const decision = this.decide(request);
    if (decision.action === 'allow') return this.forwardQuery(raw, text, decision);
    return this.settle(request, decision).then((refusal) => {
      if (this.ended) return;
      if (refusal) {
        // Marks the write-ahead record when it is still to be written (a review has written it already).
        record.withheld = true;
        // A refusal is evidence of an attempt: durable before the agent hears of it.
        this.needs('durable');
        return this.refuseNow(refusal);
      }
      this.forwardQuery(raw, text, decision);
    });
  }

  private forwardQuery(raw: Buffer, text: string, decision: PolicyDecision): void {
    const statements = decision.statements.length > 0 ? decision.statements.map((s) => s.text) : [text];
    this.forwarding(decision.statements.length > 0 || text.trim() === '' ? statementEffects(decision.statements) : null);
    // The next message runs even if this one fails: its block is known only from the server's status.
    this.inBlock = false;
    this.forward(raw);
    if (this.upstreamSkipping) return;
    this.units.push({ kind: 'query', statements, decision, index: 0, run: null, nextStartNs: nowNanos() });
    this.awaitingReady += 1;
  }

  private onParse(raw: Buffer, name: string, text: string, record: PgMessage): Promise<void> | void {
    const request = this.policyRequest('parse', text, name);
    const decision = this.decide(request);
    if (decision.action === 'allow') return this.forwardParse(raw, name, text, decision);
    return this.settle(request, decision).then((refusal) => {
      if (this.ended) return;
      if (refusal) {
        record.withheld = true;
        this.needs('durable');
        this.skipUntilSync = true;
        this.batchRefusal = refusal;
        return;
      }
      this.forwardParse(raw, name, text, decision);
    });
  }

  private forwardParse(raw: Buffer, name: string, text: string, decision: PolicyDecision): void {
    // A Parse runs nothing; its statement's effects apply at each Execute.
    this.statements.set(name, { text, decision, columns: null, effects: decision.statements.length > 0 || text.trim() === '' ? statementEffects(decision.statements) : null });
    this.forwardExtended(raw, { kind: 'parse', name, text, decision });
  }

  private onExecute(raw: Buffer, portalName: string): void {
    const portal = this.portals.get(portalName) ?? null;
    const run: StatementRun = {
      text: portal?.statement.text ?? '',
      via: 'extended',
      statementName: portal?.statementName ?? '',
      portal: portalName,
      parameters: portal?.parameters ?? [],
      decision: portal?.statement.decision ?? null,
      startNs: nowNanos(),
      rows: 0,
      columns: portal?.columns ?? null,
      masker: undefined,
      copy: null,
    };
    if (portal && portal.columns === null) {
      // Masking and the result summary need the columns; a client that did not Describe gets one
      // Describe from the gateway, whose answer the gateway keeps to itself.
      this.forwardExtended(serialize.describe({ type: 'P', name: portalName }), { kind: 'describe', target: TargetKind.Portal, name: portalName, internal: true });
    }
    this.forwarding(portal?.statement.effects ?? null);
    this.forwardExtended(raw, { kind: 'execute', run, portal });
  }

  private onSync(raw: Buffer): Promise<void> | void {
    if (this.skipUntilSync) {
      this.skipUntilSync = false;
      const refusal = this.batchRefusal;
      this.batchRefusal = null;
      if (!this.forwardedInBatch) {
        this.forwardedInBatch = false;
        return this.refuseNow(refusal!);
      }
      this.forward(raw);
      this.units.push({ kind: 'sync', refusal, sawError: this.upstreamSkipping });
    } else {
      this.forward(raw);
      this.units.push({ kind: 'sync', refusal: null, sawError: this.upstreamSkipping });
    }
    this.upstreamSkipping = false;
    this.awaitingReady += 1;
    this.forwardedInBatch = false;
    // The batch ends here: what follows runs whether or not it succeeded.
    this.inBlock = false;
  }

  private async onFunctionCall(raw: Buffer, text: string, record: PgMessage): Promise<void> {
    const request = this.policyRequest('function_call', text);
    const decision = this.decide(request);
    if (decision.action !== 'allow') {
      const refusal = await this.settle(request, decision);
      if (this.ended) return;
      if (refusal) {
        record.withheld = true;
        this.needs('durable');
        return this.refuseNow(refusal);
      }
    }
    // A function called by OID: nothing is known of what it does.
    this.forwarding(null);
    this.inBlock = false;
    this.forward(raw);
    if (this.upstreamSkipping) return;
    this.units.push({
      kind: 'function_call',
      run: { ...emptyRun('function_call', text, decision), startNs: nowNanos() },
    });
    this.awaitingReady += 1;
  }

  // ---------------------------------------------------------------- upstream → agent

  private onUpstreamData(chunk: Buffer): void {
    if (this.ended) return;
    this.framer.push(chunk);
    if (!this.upstreamBlocked) this.processUpstream();
  }

  private processUpstream(): void {
    try {
      while (!this.upstreamBlocked && !this.ended) {
        const msg = this.heldBackend ?? this.framer.next();
        this.heldBackend = null;
        if (!msg) break;
        if (this.onBackendMessage(msg) === BLOCKED) this.heldBackend = msg;
        else if (this.units.length === 0 && this.answeredWaiters.length > 0) {
          // Whatever is queued for the agent goes out before the locally answered refusal.
          this.writeClient(this.outbox.take());
          const waiters = this.answeredWaiters;
          this.answeredWaiters = [];
          for (const w of waiters) w();
        }
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    this.writeClient(this.outbox.take());
  }

  /**
   * Decides the masker of a result set at its first row. When masking applies and the columns'
   * tables are not named yet, the stream stops (this row held back) until they are looked up.
   */
  private prepareMasker(run: StatementRun): typeof BLOCKED | void {
    const columns = run.columns;
    const masker = this.maskerFor(run);
    if (!masker || !columns || columns.every((c) => c.tableOid === 0 || c.relation !== undefined)) {
      run.masker = masker;
      return;
    }
    const relations = this.context.relations;
    const named = (): void => {
      for (const c of columns) c.relation = relations.known(c.tableOid);
    };
    named();
    if (columns.every((c) => c.tableOid === 0 || c.relation !== undefined)) {
      run.masker = this.maskerFor(run);
      return;
    }
    this.upstreamBlocked = true;
    this.upstream.pause();
    void relations.resolve(columns.map((c) => c.tableOid)).then(() => {
      named();
      // Still unnamed (dropped table, failed lookup): the policy masks as if it were any table.
      run.masker = this.maskerFor(run);
      this.upstreamBlocked = false;
      if (this.ended) return;
      this.upstream.resume();
      this.processUpstream();
    });
    return BLOCKED;
  }

  private writeClient(parts: Buffer[]): void {
    if (parts.length === 0) return;
    if (this.barriersDurable < this.barriersIssued || this.heldReplies.length > 0) {
      this.heldReplies.push({ barrier: this.barriersIssued, parts });
      for (const p of parts) this.heldReplyBytes += p.length;
      // A large result held behind a slow fsync: stop reading the server rather than buffer it all.
      if (this.heldReplyBytes > PAUSE_CLIENT_AT_BYTES) this.upstream.pause();
      return;
    }
    this.writeClientNow(parts);
  }

  private writeClientNow(parts: Buffer[]): void {
    // After the client's FIN the socket is no longer writable (no half-open sockets): answers still
    // owed are journaled but cannot be delivered.
    if (parts.length === 0 || this.client.destroyed || !this.client.writable) return;
    let ok = true;
    let total = 0;
    for (const p of parts) total += p.length;
    if (parts.length === 1 || total <= COALESCE_WRITE_BYTES) {
      // A round trip's answer is usually a few small runs: copying them into one buffer is cheaper
      // than a corked writev.
      this.bytesToClient += total;
      ok = this.client.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts, total));
    } else {
      this.client.cork();
      for (const p of parts) {
        this.bytesToClient += p.length;
        ok = this.client.write(p);
      }
      this.client.uncork();
    }
    if (!ok) this.upstream.pause();
  }

  private head(): Unit | undefined {
    return this.units[0];
  }

  /** The statement the server is answering for now (a simple Query's current statement, or an Execute). */
  private currentRun(): StatementRun | null {
    const unit = this.head();
    if (!unit) return null;
    if (unit.kind === 'query') {
      if (!unit.run) {
        const text = unit.statements[Math.min(unit.index, unit.statements.length - 1)] ?? '';
        unit.run = { ...emptyRun('query', text, unit.decision), startNs: unit.nextStartNs };
      }
      return unit.run;
    }
    if (unit.kind === 'execute' || unit.kind === 'function_call') return unit.run;
    return null;
  }

  private onBackendMessage(msg: Buffer): typeof BLOCKED | void {
    const type = msg[0]!;
    switch (type) {
      case BackendType.DataRow: {
        const run = this.currentRun();
        if (run) {
          if (run.masker === undefined && this.prepareMasker(run) === BLOCKED) return BLOCKED;
          run.rows += 1;
          if (run.masker) {
            this.outbox.add(maskRow(msg, run.masker, run.columns));
            return;
          }
        }
        this.outbox.pass(msg);
        return;
      }
      case BackendType.CommandComplete:
        this.completeRun(decodeCommandTag(msg), null);
        this.outbox.pass(msg);
        return;
      case BackendType.EmptyQueryResponse:
        this.completeRun('', null);
        this.outbox.pass(msg);
        return;
      case BackendType.PortalSuspended:
        this.completeRun('(portal suspended)', null);
        this.outbox.pass(msg);
        return;
      case BackendType.ErrorResponse:
        this.onUpstreamError(msg);
        this.outbox.pass(msg);
        return;
      case BackendType.ReadyForQuery:
        this.onReady(msg);
        return;
      case BackendType.RowDescription:
        this.onRowDescription(msg);
        return;
      case BackendType.NoData: {
        const unit = this.head();
        if (unit?.kind === 'describe') {
          this.units.shift();
          if (unit.internal) {
            const portal = this.portals.get(unit.name);
            if (portal) portal.columns = [];
            return;
          }
        }
        this.outbox.pass(msg);
        return;
      }
      case BackendType.ParseComplete: {
        const unit = this.units.shift();
        if (unit?.kind !== 'parse') throw new UpstreamProtocolError(`ParseComplete answered a ${unit?.kind ?? 'missing'} request`);
        this.outbox.pass(msg);
        return;
      }
      case BackendType.BindComplete:
      case BackendType.CloseComplete: {
        const unit = this.units.shift();
        const expected = type === BackendType.BindComplete ? 'bind' : 'close';
        if (unit?.kind !== expected) throw new UpstreamProtocolError(`${expected === 'bind' ? 'BindComplete' : 'CloseComplete'} answered a ${unit?.kind ?? 'missing'} request`);
        this.outbox.pass(msg);
        return;
      }
      case BackendType.CopyInResponse:
      case BackendType.CopyOutResponse: {
        const run = this.currentRun();
        if (run) run.copy = { direction: type === BackendType.CopyInResponse ? 'in' : 'out', bytes: 0 };
        if (type === BackendType.CopyInResponse) this.copyIn = run;
        this.outbox.pass(msg);
        return;
      }
      case BackendType.CopyData: {
        const run = this.currentRun();
        if (run?.copy) run.copy.bytes += msg.length - 5;
        this.outbox.pass(msg);
        return;
      }
      case BackendType.FunctionCallResponse: {
        const unit = this.head();
        if (unit?.kind === 'function_call') this.finishRun(unit.run, 'FUNCTION CALL', null);
        this.outbox.pass(msg);
        return;
      }
      case BackendType.ParameterStatus: {
        // A statement the server ran changed how it lexes what follows: the session ends before it does.
        const [name, value] = decodeParameterStatus(msg);
        if (parserHazard(name, value) !== null) throw new ParserHazardError(name, value, 'during the session');
        this.outbox.pass(msg);
        return;
      }
      case BackendType.BackendKeyData:
      case BackendType.Authentication:
        // Never after login; passing an upstream key on would let the agent address the upstream directly.
        throw new UpstreamProtocolError(`unexpected ${type === BackendType.Authentication ? 'Authentication' : 'BackendKeyData'} after login`);
      default:
        this.outbox.pass(msg);
    }
  }

  private maskerFor(run: StatementRun): Masker | null {
    if (!run.columns || run.columns.length === 0) return null;
    return this.context.policy.maskerFor(this.context.resource, this.context.identity, run.columns);
  }

  private onRowDescription(msg: Buffer): void {
    const columns: Column[] = decodeRowDescription(msg).map((f) => ({
      name: f.name,
      tableOid: f.tableOid,
      typeOid: f.typeOid,
      format: f.format === 'binary' ? FormatCode.Binary : FormatCode.Text,
    }));
    const unit = this.head();
    if (unit?.kind === 'describe') {
      this.units.shift();
      if (unit.target === TargetKind.Statement) {
        const statement = this.statements.get(unit.name);
        if (statement) statement.columns = columns;
      } else {
        const portal = this.portals.get(unit.name);
        if (portal) portal.columns = columns;
        const next = this.head();
        if (next?.kind === 'execute' && next.portal === portal) next.run.columns = columns;
      }
      if (unit.internal) return;
    } else {
      const run = this.currentRun();
      if (run) {
        run.columns = columns;
        run.masker = undefined;
      }
    }
    this.outbox.pass(msg);
  }

  private completeRun(tag: string, error: { code: string; message: string } | null): void {
    const unit = this.head();
    if (!unit) return;
    if (unit.kind === 'query') {
      const run = this.currentRun()!;
      this.finishRun(run, tag, error);
      unit.index += 1;
      unit.run = null;
      unit.nextStartNs = nowNanos();
    } else if (unit.kind === 'execute') {
      this.units.shift();
      this.finishRun(unit.run, tag, error);
    }
  }

  private finishRun(run: StatementRun, tag: string | null, error: { code: string; message: string } | null): void {
    const duration = nowNanos() - run.startNs;
    const tagRows = tag ? rowsFromTag(tag) : null;
    const masked = run.masker ? run.masker.maskedColumns.map((i) => run.columns?.[i]?.name ?? String(i)) : [];
    this.context.recorder.outcome({
      statement: {
        text: run.text,
        parameters: run.parameters,
        commandTag: tag ?? '',
        rows: tagRows ?? run.rows,
        errorCode: error?.code ?? '',
        errorMessage: error?.message ?? '',
        durationNano: duration.toString(),
        via: run.via,
        statementName: run.statementName,
        portal: run.portal,
        policy: run.decision ? decisionRecord(run.decision) : null,
        result: { columns: columnNames(run.columns), rows: run.rows, maskedColumns: masked },
        classes: run.decision ? decisionClasses(run.decision) : [],
      },
    });
    if (run.copy) {
      this.context.recorder.outcome({
        copy: {
          direction: run.copy.direction,
          rows: tagRows ?? 0,
          bytes: run.copy.bytes,
          statement: run.text,
          errorCode: error?.code ?? '',
          errorMessage: error?.message ?? '',
        },
      });
      if (this.copyIn === run) this.copyIn = null;
    }
  }

  private onUpstreamError(msg: Buffer): void {
    const decoded = decodeError(msg);
    const error = { code: decoded.code ?? '', message: decoded.message };
    const unit = this.head();
    if (!unit || unit.kind === 'sync') {
      if (unit?.kind === 'sync') unit.sawError = true;
      void this.context.recorder.event({ error: { code: error.code, message: error.message } });
      return;
    }
    if (unit.kind === 'query') {
      this.completeRun('', error);
      return;
    }
    if (unit.kind === 'function_call') {
      this.finishRun(unit.run, null, error);
      return;
    }
    // Extended protocol: the server skips everything until Sync (a simple Query or FunctionCall too),
    // so those units are owed nothing.
    if (unit.kind === 'execute') this.finishRun(unit.run, null, error);
    else if (unit.kind === 'parse') {
      this.statements.delete(unit.name);
      this.finishRun({ ...emptyRun('extended', unit.text, unit.decision), statementName: unit.name, startNs: nowNanos() }, null, error);
    } else void this.context.recorder.event({ error: { code: error.code, message: error.message } });
    let skipped = 0;
    while (this.units.length > 0 && this.head()!.kind !== 'sync') {
      const kind = this.units.shift()!.kind;
      if (kind === 'query' || kind === 'function_call') skipped += 1;
    }
    const sync = this.head();
    if (sync?.kind === 'sync') sync.sawError = true;
    // Its Sync is still to come: until then nothing forwarded is answered.
    else this.upstreamSkipping = true;
    if (skipped > 0) this.readyCame(skipped);
  }

  private onReady(msg: Buffer): void {
    const unit = this.units.shift();
    if (!unit || (unit.kind !== 'query' && unit.kind !== 'sync' && unit.kind !== 'function_call')) {
      throw new UpstreamProtocolError(`ReadyForQuery answered a ${unit?.kind ?? 'missing'} request`);
    }
    this.transactionStatus = msg[5]! as TransactionStatus;
    // The server has answered everything forwarded: its status is the session's, ahead of any guess.
    if (this.units.length === 0) this.inBlock = this.transactionStatus !== TransactionStatus.Idle;
    if (unit.kind === 'sync' && unit.refusal && !unit.sawError) this.outbox.add(unit.refusal);
    this.outbox.pass(msg);
    this.readyCame(1);
  }

  /** `count` ReadyForQuery owed came (or never will: the server skipped their Queries); at none left, the session is idle. */
  private readyCame(count: number): void {
    this.awaitingReady -= count;
    if (this.awaitingReady === 0 && this.idleWaiters.length > 0) {
      // Whatever is queued for the agent must go out before the locally answered refusal.
      this.writeClient(this.outbox.take());
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  // ---------------------------------------------------------------- ending

  private fail(err: unknown): void {
    if (this.ended) return;
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof PostgresGatewayError) {
      // The agent gets the reason in the protocol's own form before the connection closes.
      // Straight out: answers still held for durability are dropped with the session.
      this.writeClientNow([errorResponse({ severity: 'FATAL', code: err.sqlState, message })]);
      this.context.log.warn({ sessionId: this.context.sessionId, code: err.code }, message);
    } else {
      this.context.log.error({ err, sessionId: this.context.sessionId }, 'session failed');
    }
    this.end({ outcome: 'failed', failure: message });
  }

  /** The journal refused a record: stop forwarding anything and end the session. */
  auditFailed(err: Error): void {
    this.fail(new AuditUnavailableError(err));
  }

  private end(end: SessionEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.cancelHold?.();
    for (const w of [...this.idleWaiters, ...this.answeredWaiters]) w();
    this.idleWaiters = [];
    this.answeredWaiters = [];
    for (const w of this.repliesReleased) w();
    this.repliesReleased = [];
    this.client.end();
    if (end.outcome === 'closed' && this.upstream.writable) {
      // A Terminate may still be on its way out: close after it rather than discard it.
      this.upstream.end();
      setTimeout(() => this.upstream.destroy(), 1000).unref();
    } else this.upstream.destroy();
    this.context.policy.endSession(this.context.sessionId);
    // A client that is gone cannot take a FIN politely; do not wait for it forever.
    setTimeout(() => this.client.destroy(), 1000).unref();
    this.finish(end);
  }
}

function emptyRun(via: StatementRun['via'], text: string, decision: PolicyDecision | null): StatementRun {
  return {
    text,
    via,
    statementName: '',
    portal: '',
    parameters: [],
    decision,
    startNs: 0n,
    rows: 0,
    columns: null,
    masker: undefined,
    copy: null,
  };
}

function withFormats(columns: Column[], resultFormats: readonly FormatCode[]): Column[] {
  if (resultFormats.length === 0) return columns.map((c) => ({ ...c, format: FormatCode.Text }));
  return columns.map((c, i) => ({ ...c, format: resultFormats.length === 1 ? resultFormats[0]! : (resultFormats[i] ?? FormatCode.Text) }));
}

/**
 * A statement's outcome record repeats its decision, classes and column names, which a prepared
 * statement keeps for every execution (and the policy's shape cache for repeated texts): they are
 * derived once per decision and column list. The records only read them (the journal encodes each
 * record as it is appended), so one copy serves them all.
 */
const decisionRecords = new WeakMap<PolicyDecision, { record: PolicyDecisionRecord; classes: string[] }>();
const columnNameLists = new WeakMap<Column[], string[]>();

function derivedOf(decision: PolicyDecision): { record: PolicyDecisionRecord; classes: string[] } {
  let derived = decisionRecords.get(decision);
  if (!derived) {
    const action = decision.action === 'allow' ? 'POLICY_ACTION_ALLOW' : decision.action === 'deny' ? 'POLICY_ACTION_DENY' : 'POLICY_ACTION_REVIEW';
    derived = {
      record: { action, rule: decision.rule ?? '', reason: decision.action === 'allow' ? '' : decision.reason },
      classes: [...new Set(decision.statements.flatMap((s) => s.classes))],
    };
    decisionRecords.set(decision, derived);
  }
  return derived;
}

function decisionRecord(decision: PolicyDecision): PolicyDecisionRecord {
  return derivedOf(decision).record;
}

function decisionClasses(decision: PolicyDecision): string[] {
  return derivedOf(decision).classes;
}

function columnNames(columns: Column[] | null): string[] {
  if (!columns) return [];
  let names = columnNameLists.get(columns);
  if (!names) {
    names = columns.map((c) => c.name);
    columnNameLists.set(columns, names);
  }
  return names;
}

function denial(message: string, detail: string): Buffer {
  return errorResponse({ severity: 'ERROR', code: SqlState.InsufficientPrivilege, message, detail });
}

/** Rewrites a DataRow with masked values, each field by the format the client asked for. */
function maskRow(msg: Buffer, masker: Masker, columns: Column[] | null): Buffer {
  const fields = dataRowFields(msg);
  return dataRow(fields.map((value, i) => (columns?.[i]?.format === FormatCode.Binary ? masker.maskBinary(i, value) : masker.mask(i, value))));
}

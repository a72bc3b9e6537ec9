import type { Socket } from 'node:net';
import type { Session } from '../../proto/generated/gapwatch/v1/Session';
import type { AgentIdentity } from '../identity/contract';
import type { JournalWriter } from '../journal/contract';
import { SessionRecorder, unixNanos } from '../postgres/session-recorder';
import { newSessionId } from '../session-id';
import type { NativeSessionCounters } from './native-datapath';

export function inet(address: string | undefined, port: number | undefined): { ip: string; port: number } {
  const ip = (address ?? '').startsWith('::ffff:') ? address!.slice(7) : (address ?? '');
  return { ip, port: port ?? 0 };
}

/** One journaled session: the requests of one identity to one resource over one agent connection. */
export class HttpSession {
  exchanges = 0;
  /** Set when an append of this session failed: nothing more is forwarded for it. */
  failed: Error | null = null;
  bytesFromClient = 0;
  bytesToClient = 0;
  /** Exchanges (and other appends) still to record something; the session's end waits for them. */
  private inFlight = 0;
  private idle: Array<() => void> = [];

  constructor(readonly recorder: SessionRecorder) {}

  nextExchangeId(): number {
    this.exchanges += 1;
    return this.exchanges;
  }

  /** An exchange begins: the session stays open until the matching release(). */
  hold(): void {
    this.inFlight += 1;
  }

  /** An exchange's last record has been appended. */
  release(): void {
    this.inFlight -= 1;
    if (this.inFlight > 0) return;
    const waiting = this.idle;
    this.idle = [];
    for (const wake of waiting) wake();
  }

  /** Keeps the session open until `work` settles. */
  track(work: Promise<unknown>): void {
    this.hold();
    const release = (): void => this.release();
    void work.then(release, release);
  }

  async settled(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }
}

/**
 * Sessions of one agent connection. HTTP authenticates each request, so one keep-alive connection
 * may carry several identities or resources: each (identity, resource) pair gets its own session,
 * all with the connection's client address and port (the key the collector correlates on). The
 * sessions end when the connection closes.
 */
export class ConnectionSessions {
  private readonly sessions = new Map<string, HttpSession>();
  readonly client: { ip: string; port: number };
  readonly listener: { ip: string; port: number };
  /** Set by the clientError handler when the parser refused bytes of a request being handled. */
  parseError: string | null = null;
  /** The response of the exchange in progress, so a parse error knows whether it may still answer. */
  activeResponse: { headersSent: boolean } | null = null;
  /**
   * Exchanges not yet recorded. The connection's close ends them: Node gives a pipelined response
   * that is queued behind an earlier one no 'close' of its own when the socket goes, and an exchange
   * nobody ends would keep its session (and the gateway's stop) waiting forever.
   */
  readonly openExchanges = new Set<{ responseClosed(): void }>();
  /** Bytes the native data path moved on this connection (gateway/http/native-datapath.ts) before JavaScript took it over, or instead. */
  private nativeBytes = { read: 0, written: 0 };
  /** Set when the connection has ended and its sessions are being closed: no session opens after it. */
  closing = false;

  constructor(
    public socket: Socket,
    private readonly journal: JournalWriter,
    private readonly gatewayId: string,
    private readonly onAuditFailure: (err: Error) => void,
  ) {
    this.client = inet(socket.remoteAddress, socket.remotePort);
    this.listener = inet(socket.localAddress, socket.localPort);
  }

  /** The session for this identity and resource, opened (and its record appended) on first use. */
  sessionFor(identity: AgentIdentity, resource: string, upstream: { ip: string; port: number }): HttpSession {
    const key = `${identity.login}\0${resource}`;
    let session = this.sessions.get(key);
    if (!session) {
      const record: Session = {
        sessionId: newSessionId(),
        gatewayId: this.gatewayId,
        protocol: 'PROTOCOL_HTTP',
        identity: { subject: identity.subject, method: 'token', claims: identity.claims },
        resource,
        client: this.client,
        listener: this.listener,
        upstream,
        startUnixNano: unixNanos(),
        outcome: 'SESSION_OUTCOME_OPEN',
      };
      const created: HttpSession = new HttpSession(
        new SessionRecorder(this.journal, record, (err) => {
          created.failed = err;
          this.onAuditFailure(err);
        }),
      );
      session = created;
      void session.recorder.writeSession().catch(() => undefined);
      this.sessions.set(key, session);
    }
    return session;
  }

  /** A request refused before it had a session (authentication, routing, framing): journaled on its own. */
  rejected(failure: string, identity: AgentIdentity | null = null, resource = ''): Promise<unknown> {
    const now = unixNanos();
    const record: Session = {
      sessionId: newSessionId(),
      gatewayId: this.gatewayId,
      protocol: 'PROTOCOL_HTTP',
      client: this.client,
      listener: this.listener,
      resource,
      startUnixNano: now,
      endUnixNano: now,
      outcome: 'SESSION_OUTCOME_REJECTED',
      failure,
    };
    if (identity) record.identity = { subject: identity.subject, method: 'token', claims: identity.claims };
    return this.journal.append({ session: record });
  }

  /**
   * Where the native data path left this connection's sessions (event seqs, exchange ids, bytes) and
   * the bytes it moved: JavaScript continues from there (a hand-back) or ends them (close()).
   */
  continueNative(counters: readonly NativeSessionCounters[], bytesIn: number, bytesOut: number): void {
    this.nativeBytes = { read: bytesIn, written: bytesOut };
    for (const c of counters) {
      for (const session of this.sessions.values()) {
        if (session.recorder.sessionId !== c.sessionId) continue;
        session.recorder.continueAfter(c.eventSeq);
        session.exchanges = c.exchanges;
        session.bytesFromClient = c.bytesFromClient;
        session.bytesToClient = c.bytesToClient;
      }
    }
  }

  /** The connection closed: every session's last exchange is recorded, then the session's end. */
  async close(failure: string | null): Promise<void> {
    this.closing = true;
    for (const exchange of [...this.openExchanges]) exchange.responseClosed();
    const only = this.sessions.size === 1;
    await Promise.all(
      [...this.sessions.values()].map(async (session) => {
        await session.settled();
        await session.recorder.durable().catch(() => undefined);
        await session.recorder.writeSession({
          outcome: failure === null ? 'SESSION_OUTCOME_CLOSED' : 'SESSION_OUTCOME_FAILED',
          failure: failure ?? '',
          endUnixNano: unixNanos(),
          // With one session the socket's counters are exact (heads included); otherwise body bytes per session.
          bytesFromClient: String(only ? this.nativeBytes.read + this.socket.bytesRead : session.bytesFromClient),
          bytesToClient: String(only ? this.nativeBytes.written + this.socket.bytesWritten : session.bytesToClient),
        });
      }),
    );
    this.sessions.clear();
  }
}

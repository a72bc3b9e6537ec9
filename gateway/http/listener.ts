import { readFileSync } from 'node:fs';
import { STATUS_CODES, createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { lookup } from 'node:dns/promises';
import { type AddressInfo, Socket, createServer as createNetServer, isIP, type Server as NetServer } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Logger } from '../../platform/log';
import type { Component } from '../../platform/supervisor';
import type { HttpExchange } from '../../proto/generated/gapwatch/v1/HttpExchange';
import type { HttpHeader } from '../../proto/generated/gapwatch/v1/HttpHeader';
import type { PolicyDecision } from '../../proto/generated/gapwatch/v1/PolicyDecision';
import type { AgentIdentity } from '../identity/contract';
import { IdentityWatch, tokenCheck } from '../identity/identity-watch';
import type { JournalWriter } from '../journal/contract';
import type { StatementClass } from '../policy/contract';
import { ReviewDirectory, ReviewWaiter } from '../policy/review-channel';
import { nowNanos } from '../postgres/session-recorder';
import { AgentAuthenticator, type TokenIdentityStore } from './agent-auth';
import { BodyRecorder, exchangeRecord, recordHeaders, requestRecord } from './audit-format';
import type { HttpGatewayConfig } from './config-schema';
import { ConnectionSessions, type HttpSession } from './connection-sessions';
import {
  AuditUnavailableError,
  BadRequestError,
  HttpGatewayError,
  ListenerTlsError,
  PolicyDeniedError,
  ReviewChannelMissingError,
  ReviewRefusedError,
  ReviewUnavailableError,
  UpstreamError,
} from './errors';
import { HttpStatus } from './protocol';
import { parseRequestTarget } from './request-target';
import { ResourceRouter } from './resource-router';
import { RoutePolicy, needsReview } from './route-policy';
import { UpstreamTarget, forwardHeaders, headerValue, responseHeaders } from './upstream-request';
import { NativeHttpDataPath, type NativeAnswer, type NativeEnded, type NativeHandBack, type NativeQuestion, type NativeTargetSpec } from './native-datapath';
import { WebSocketFrameCounter } from './websocket-frame-counter';

export interface HttpGatewayOptions {
  gatewayId: string;
  config: HttpGatewayConfig;
  journal: JournalWriter;
  identities: TokenIdentityStore;
  log: Logger;
  /**
   * The review channel shared with the other gateways (`<dataDir>/reviews`, `gapwatch approve|deny`);
   * needed only when a rule (or the default) holds requests for review.
   */
  review?: { dataDir: string; timeoutSeconds: number };
}

/**
 * How long the native loop keeps an allow decision (token, route, policy, credential) for requests
 * that look the same; a change of the identity or credential file drops it at once.
 */
const NATIVE_DECISION_MS = 1000;

/** Methods whose requests have no body unless they say so; others get an explicit Content-Length. */
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE']);

/** What a checked, authenticated, routed and allowed request carries into the exchange. */
interface Admitted {
  identity: AgentIdentity;
  /** The StoredKey the agent's token matched (a long-lived exchange is watched with it). */
  storedKey?: Buffer;
  target: UpstreamTarget;
  path: string;
  query: string;
  rule: string | null;
  /** Set when policy holds the request for a human decision before it may go upstream. */
  review: { rule: string; reason: string } | null;
  heads: RequestHeads;
}

/**
 * The request header values the gateway acts on, from one pass over rawHeaders: Node builds
 * `req.headers` lazily, and the hot path never needs the rest. Where the gateway refuses duplicates
 * they are counted; otherwise values combine as in Node's `req.headers`: the first Host,
 * Authorization, Content-Type and Content-Length count, other fields' values are joined with ", ".
 */
export interface RequestHeads {
  host: string | undefined;
  hosts: number;
  authorization: string | undefined;
  contentLength: string | undefined;
  contentLengths: number;
  transferEncoding: string | undefined;
  transferEncodings: number;
  expect: string | undefined;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  connection: string | undefined;
  upgrade: string | undefined;
}

const joined = (previous: string | undefined, value: string): string => (previous === undefined ? value : `${previous}, ${value}`);

export function readHeads(raw: readonly string[]): RequestHeads {
  const heads: RequestHeads = {
    host: undefined,
    hosts: 0,
    authorization: undefined,
    contentLength: undefined,
    contentLengths: 0,
    transferEncoding: undefined,
    transferEncodings: 0,
    expect: undefined,
    contentType: undefined,
    contentEncoding: undefined,
    connection: undefined,
    upgrade: undefined,
  };
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const value = raw[i + 1]!;
    switch (raw[i]!.toLowerCase()) {
      case 'host':
        heads.hosts += 1;
        heads.host ??= value;
        break;
      case 'authorization':
        heads.authorization ??= value;
        break;
      case 'content-length':
        heads.contentLengths += 1;
        heads.contentLength ??= value;
        break;
      case 'transfer-encoding':
        heads.transferEncodings += 1;
        heads.transferEncoding = joined(heads.transferEncoding, value);
        break;
      case 'expect':
        heads.expect = joined(heads.expect, value);
        break;
      case 'content-type':
        heads.contentType ??= value;
        break;
      case 'content-encoding':
        heads.contentEncoding = joined(heads.contentEncoding, value);
        break;
      case 'connection':
        heads.connection = joined(heads.connection, value);
        break;
      case 'upgrade':
        heads.upgrade = joined(heads.upgrade, value);
        break;
      default:
        break;
    }
  }
  return heads;
}

/** A request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3): nothing to read. */
const NO_BODY: { readonly chunks: Buffer[]; readonly complete: true } = Object.freeze({ chunks: [], complete: true });

/** What a review hold ends with: the decision to journal, and the refusal to answer when it was not approved. */
interface ReviewResult {
  policy: PolicyDecision;
  refusal: HttpGatewayError | null;
}

const ignore = (): void => undefined;

/**
 * RFC 9110 §9.2.1 safe methods: the client asks for no state change on the origin. Policy classes them
 * as reads, and with record.readDurability 'written' their request records are forwarded once written.
 */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

function jsonBody(err: HttpGatewayError, extra: Record<string, unknown> = {}): string {
  return `${JSON.stringify({ error: err.code, message: err.message, ...extra })}\n`;
}

/** A complete error response written straight to a socket (upgrade requests and parse errors have no ServerResponse). */
function rawErrorResponse(status: number, body: string, extraHeaders: string[] = []): string {
  const reason = STATUS_CODES[status] ?? 'Error';
  const length = Buffer.byteLength(body);
  return [`HTTP/1.1 ${status} ${reason}`, 'content-type: application/json', `content-length: ${length}`, 'connection: close', ...extraHeaders, '', body].join('\r\n');
}

/** Parser error codes (llhttp) answered with something more precise than 400. */
function statusForParseError(code: string | undefined): number {
  if (code === 'HPE_HEADER_OVERFLOW') return HttpStatus.RequestHeaderFieldsTooLarge;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') return HttpStatus.RequestTimeout;
  return HttpStatus.BadRequest;
}

/** What an exchange needs of its gateway (built once, shared by every exchange). */
interface ExchangeEnv {
  config: HttpGatewayConfig;
  log: Logger;
  recordedHeaders: ReadonlySet<string>;
  redactedHeaders: ReadonlySet<string>;
  refuse(req: IncomingMessage, res: ServerResponse, err: HttpGatewayError): void;
}

/**
 * One proxied request, from admission to its outcome record: the state the forwarding steps share,
 * and undici's handler for the upstream's answer (methods, not closures made per request: this runs
 * for every request). The outcome is recorded once, as a deferred append: nothing waits for it, so it
 * rides along with the next group commit, and its seq is taken at once, so the session's end,
 * appended later, still follows it.
 */
class Exchange implements Dispatcher.DispatchHandlers {
  readonly exchangeId: number;
  readonly method: string;
  readonly requestBody: BodyRecorder;
  /** For the outcome record: the request's headers (when no request record is written ahead), its rule, a review's decision. */
  requestHeaders: HttpHeader[] | null = null;
  policyRule: string | null = null;
  /** The request record written ahead holds the whole body's excerpt (exchangeRecord()). */
  requestBodyInRecord = false;
  policy: PolicyDecision | null = null;
  /** The resource credential read for this request: forwarded, and kept out of the recorded response body. */
  secret: string | null = null;
  /**
   * The client side failed (gone, or its body refused): set before the upstream is aborted, so the
   * upstream's resulting error is not taken for the upstream's fault.
   */
  clientFailure: string | null = null;
  private abortUpstream: ((err: Error) => void) | null = null;
  private status = 0;
  private firstByte = 0n;
  private upstreamHeaders: string[] = [];
  private responseBody: BodyRecorder | null = null;
  /** undici's resume of the upstream response, after backpressure. */
  private resume: (() => void) | null = null;
  private recorded = false;
  private released = false;

  constructor(
    private readonly env: ExchangeEnv,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly connection: ConnectionSessions,
    readonly session: HttpSession,
    readonly admitted: Admitted & { contentLength: number | null },
    private readonly started: bigint,
  ) {
    const { record } = env.config;
    this.method = req.method ?? '';
    this.exchangeId = session.nextExchangeId();
    // The session's end waits until this exchange is recorded (or has failed: settle()).
    session.hold();
    connection.openExchanges.add(this);
    const { heads } = admitted;
    this.requestBody = new BodyRecorder(heads.contentType ?? '', heads.contentEncoding ?? '', record.bodyBytes, record.binaryBodies);
  }

  /** Journals the outcome (once): exchangeRecord() in audit-format.ts. */
  record(status: number, error: string): void {
    if (this.recorded) return;
    this.recorded = true;
    const { session, requestBody, admitted } = this;
    const response = this.responseBody;
    session.bytesFromClient += requestBody.size;
    if (response !== null) session.bytesToClient += response.size;
    const answer = response === null ? null : { body: response, headers: recordHeaders(this.upstreamHeaders, this.env.recordedHeaders, this.env.redactedHeaders), firstByteNano: this.firstByte };
    session.recorder.outcome({ http: exchangeRecord(this, status, error, nowNanos() - this.started, answer) });
    const { log } = this.env;
    if (log.isLevelEnabled('debug')) log.debug({ sessionId: session.recorder.sessionId, exchangeId: this.exchangeId, resource: admitted.target.resource.name, method: this.method, path: admitted.path, status, error }, 'http exchange done');
    this.settle();
  }

  /** Lets the session end without waiting for this exchange any longer (after its record, or a failure). */
  settle(): void {
    if (this.released) return;
    this.released = true;
    this.connection.openExchanges.delete(this);
    this.session.release();
  }

  private abort(reason: string): void {
    this.clientFailure ??= reason;
    if (this.abortUpstream) this.abortUpstream(new Error(reason));
  }

  /**
   * The agent's response closed: after it went out completely (Node emits 'close' once 'finish' is
   * through), or because the client went away first.
   */
  responseClosed(): void {
    if (this.recorded) return;
    const { res } = this;
    if (!res.headersSent) {
      this.abort('the client went away before the response began');
      this.record(0, this.connection.parseError ?? 'the client went away before the response began');
    } else if (!res.writableFinished) {
      this.abort('the client went away before the response was complete');
      this.record(this.status, 'the client went away before the response was complete');
    } else {
      this.record(this.status, '');
    }
  }

  onConnect(abortRequest: (err: Error) => void): void {
    this.abortUpstream = abortRequest;
    if (this.clientFailure !== null) abortRequest(new Error(this.clientFailure));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx interim responses (100 Continue, 103 Early Hints) are the upstream's business.
    if (statusCode < 200) return true;
    this.status = statusCode;
    this.firstByte = nowNanos() - this.started;
    const headers = new Array<string>(rawHeaders.length);
    for (let i = 0; i < rawHeaders.length; i++) headers[i] = rawHeaders[i]!.toString('latin1');
    this.upstreamHeaders = headers;
    const { record } = this.env.config;
    const secrets = this.secret === null ? [] : [this.admitted.target.secretBytes(this.secret)];
    this.responseBody = new BodyRecorder(headerValue(headers, 'content-type') ?? '', headerValue(headers, 'content-encoding') ?? '', record.bodyBytes, record.binaryBodies, secrets);
    const { res } = this;
    if (res.destroyed) return false;
    res.writeHead(statusCode, statusText, responseHeaders(headers) as unknown as Record<string, string>);
    this.resume = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.responseBody!.push(chunk);
    if (this.res.write(chunk)) return true;
    // Backpressure: undici stops reading the upstream until the agent's side drains.
    this.res.once('drain', this.resume!);
    return false;
  }

  onComplete(): void {
    // Recorded once the response has gone out (responseClosed).
    this.res.end();
  }

  onError(err: Error): void {
    const { req, res, status } = this;
    if (this.clientFailure !== null) {
      if (!res.headersSent) res.destroy();
      if (!req.complete) req.socket.destroy();
      this.record(status, this.connection.parseError ?? this.clientFailure);
      return;
    }
    const resource = this.admitted.target.resource.name;
    const code = (err as NodeJS.ErrnoException).code;
    const failure =
      err instanceof HttpGatewayError
        ? err
        : code === 'UND_ERR_HEADERS_TIMEOUT'
          ? new UpstreamError(resource, `no response within ${this.env.config.limits.upstreamTimeoutMs} ms`, HttpStatus.GatewayTimeout, err)
          : new UpstreamError(resource, err.message, HttpStatus.BadGateway, err);
    if (!res.headersSent) {
      this.env.refuse(req, res, failure);
      this.record(failure.status, failure.message);
    } else {
      res.destroy();
      this.record(status, status !== 0 ? `the upstream broke off the response: ${failure.message}` : failure.message);
    }
    if (!req.complete) req.socket.destroy();
  }
}

/**
 * The HTTP listener: a reverse proxy per resource. Every request is checked for framing that two
 * parsers could read differently, authenticated by the agent's gapwatch token, routed by Host or
 * path prefix, decided by method/path policy and journaled (write-ahead, fsync'd) before the
 * upstream sees it; the upstream gets the resource's credential instead of the agent's. Responses
 * stream back while the journal keeps the status, selected headers, timing and a body excerpt.
 * WebSocket upgrades pass through with their frames counted.
 */
export class HttpGateway implements Component {
  readonly name = 'http gateway';
  private server: Server | null = null;
  private readonly connections = new Map<Socket, ConnectionSessions>();
  /** Resolves when a connection closed and its sessions' ends are journaled. */
  private readonly connectionEnds = new Map<Socket, Promise<void>>();
  private readonly auth: AgentAuthenticator;
  /** Ends a WebSocket whose agent identity is revoked, re-issued or expires while it is open. */
  private readonly identityWatch: IdentityWatch;
  private readonly router: ResourceRouter;
  private readonly policy: RoutePolicy;
  private readonly targets = new Map<string, UpstreamTarget>();
  private readonly recordedHeaders: ReadonlySet<string>;
  private readonly redactedHeaders: Set<string>;
  private readonly tls: { cert: Buffer; key: Buffer } | null;
  private readonly reviews: ReviewWaiter | null = null;
  private readonly env: ExchangeEnv;
  /** The native data path (gateway.http.dataPath 'auto', a plain-HTTP listener, the journal's native chain). */
  private native: NativeHttpDataPath | null = null;
  /** With the native data path, the listening socket: connections go to the loop at accept. */
  private acceptor: NetServer | null = null;
  /** Connections the loop serves, by handle. */
  private readonly nativeConnections = new Map<number, { connection: ConnectionSessions; done: () => void }>();
  /** A connection the loop handed back, until the http server reports it (accept()). */
  private readonly handedBack = new Map<Socket, ConnectionSessions>();
  /** Upstream targets the loop knows (their index in the loop), resolved once. */
  private readonly nativeTargets = new Map<string, { index: number; spec: Promise<NativeTargetSpec>; told: boolean }>();
  private nextNativeTarget = 0;

  constructor(private readonly options: HttpGatewayOptions) {
    const { config } = options;
    this.auth = new AgentAuthenticator(options.identities);
    this.identityWatch = new IdentityWatch(options.log);
    this.router = new ResourceRouter(config.resources);
    this.policy = new RoutePolicy(config);
    for (const resource of config.resources) this.targets.set(resource.name, new UpstreamTarget(resource));
    this.recordedHeaders = new Set(config.record.headers);
    this.redactedHeaders = new Set(config.record.redactHeaders);
    for (const resource of config.resources) if (resource.credential) this.redactedHeaders.add(resource.credential.header);
    this.env = { config, log: options.log, recordedHeaders: this.recordedHeaders, redactedHeaders: this.redactedHeaders, refuse: (req, res, err) => this.refuse(req, res, err) };
    if (needsReview(config)) {
      if (!options.review) throw new ReviewChannelMissingError();
      const directory = new ReviewDirectory(options.review.dataDir);
      directory.ensure();
      this.reviews = new ReviewWaiter(directory, options.review.timeoutSeconds * 1000, (err) => options.log.warn({ err }, 'review channel: could not read a decision; retrying'));
    }
    const { cert, key } = config.tls;
    if ((cert === null) !== (key === null)) throw new ListenerTlsError('give both tls.cert and tls.key, or neither');
    try {
      this.tls = cert && key ? { cert: readFileSync(cert), key: readFileSync(key) } : null;
    } catch (err) {
      throw new ListenerTlsError((err as Error).message, err);
    }
  }

  async start(): Promise<string[]> {
    const { config } = this.options;
    const limits = config.limits;
    const serverOptions = {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Timeouts are enforced by a periodic sweep; it must run often enough to honour them.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
      noDelay: true,
      insecureHTTPParser: false,
      requireHostHeader: true,
    };
    const server: Server = this.tls ? createHttpsServer({ ...serverOptions, ...this.tls }) : createHttpServer(serverOptions);
    server.on('connection', (socket: Socket) => this.accept(socket));
    if (this.tls) server.on('secureConnection', (socket: Socket) => this.accept(socket));
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void this.handleRequest(req, res).catch((err: unknown) => {
        this.options.log.error({ err }, 'http request handler failed');
        req.socket.destroy();
      });
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.handleUpgrade(req, socket as Socket, head).catch((err: unknown) => {
        this.options.log.error({ err }, 'http upgrade handler failed');
        socket.destroy();
      });
    });
    server.on('connect', (req: IncomingMessage, socket: Duplex) => {
      const err = new BadRequestError('CONNECT is not served: this gateway is a reverse proxy', HttpStatus.MethodNotAllowed);
      this.refuseRaw(req.socket, err, `CONNECT ${req.url ?? ''}`);
      socket.destroy();
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.handleClientError(err, socket as Socket));
    this.native = this.nativeDataPath();
    // With the native data path the loop takes every connection at accept; the http server serves
    // those it hands back.
    const listening: Server | NetServer = this.native
      ? createNetServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.acceptNative(socket))
      : server;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(config.listen.port, config.listen.host, () => {
        listening.removeListener('error', reject);
        resolve();
      });
    });
    listening.on('error', (err) => this.options.log.error({ err }, 'http listener error'));
    this.server = server;
    if (this.native) {
      this.acceptor = listening as NetServer;
      // The http server itself never listens; its header and request deadlines (the periodic check
      // node:http starts on 'listening') must still hold for the connections handed back to it.
      server.emit('listening');
    }
    const address = this.address();
    const names = config.resources.map((r) => r.name).join(', ');
    return [`http on ${address.host}:${address.port}${this.tls ? ' (TLS)' : ''}, resources: ${names}${this.native ? ' (native data path)' : ''}`];
  }

  address(): { host: string; port: number } {
    const address = (this.acceptor ?? this.server)?.address() as AddressInfo | null;
    if (!address) throw new Error('the http gateway is not listening');
    return { host: address.address, port: address.port };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    // Held requests are settled as timed out (and answered so) before their connections close.
    this.reviews?.close();
    if (!server) return;
    const acceptor = this.acceptor;
    this.acceptor = null;
    const accepting = acceptor ? new Promise<void>((resolve) => acceptor.close(() => resolve())) : Promise.resolve();
    // The loop ends the connections it serves (their ends, in connectionEnds, resolve as it reports them).
    this.native?.stop();
    await accepting;
    // (Not listening with the native data path: close() then only stops its deadline checks.)
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Each connection's close handler journals the end of its sessions; wait for those before returning.
    const ended = [...this.connectionEnds.values()];
    for (const socket of this.connectionEnds.keys()) socket.destroy();
    await Promise.allSettled(ended);
    await closed;
    await Promise.all([...this.targets.values()].map((target) => target.close()));
  }

  /** The native data path's counters (null when JavaScript serves every connection): connections it took, requests it asked JavaScript about, connections it handed back. */
  get nativeStats(): { adopted: number; questions: number; handBacks: number } | null {
    return this.native ? { adopted: this.native.adopted, questions: this.native.questions, handBacks: this.native.handBacks } : null;
  }

  private accept(socket: Socket): void {
    // A TLS server reports the raw socket first, then the TLS one; sessions hang off the latter.
    if (this.tls && !('encrypted' in socket)) return;
    const handedBack = this.handedBack.get(socket);
    this.handedBack.delete(socket);
    const connection = handedBack ?? this.newConnection(socket);
    this.connections.set(socket, connection);
    const ended = new Promise<void>((resolve) => {
      socket.once('close', () => {
        this.connections.delete(socket);
        void connection
          .close(null)
          .catch((err: unknown) => this.options.log.error({ err }, 'could not journal the end of an http session'))
          .finally(() => {
            this.connectionEnds.delete(socket);
            resolve();
          });
      });
    });
    this.connectionEnds.set(socket, ended);
  }

  private newConnection(socket: Socket): ConnectionSessions {
    return new ConnectionSessions(socket, this.options.journal, this.options.gatewayId, (err) => this.options.log.error({ err }, 'journal append failed; closing the connection'));
  }

  private nativeDataPath(): NativeHttpDataPath | null {
    const journal = this.options.journal as unknown as { nativeChain?: () => object | null; noteNativeWrites?: () => void };
    const chain = journal.nativeChain?.() ?? null;
    if (this.options.config.dataPath !== 'auto' || this.tls !== null || chain === null || !NativeHttpDataPath.available()) return null;
    return new NativeHttpDataPath(
      chain,
      this.options.config,
      { decide: (q) => this.nativeDecide(q), handBack: (e) => this.nativeHandBack(e), ended: (e) => this.nativeEnded(e) },
      () => journal.noteNativeWrites?.(),
    );
  }

  /** An agent connection goes to the native loop at once; its sessions stay here. */
  private acceptNative(socket: Socket): void {
    const connection = this.newConnection(socket);
    let handle: number;
    try {
      handle = this.native!.adopt(socket, connection.client.ip);
    } catch (err) {
      this.options.log.error({ err }, 'the native http data path refused a connection');
      socket.destroy();
      return;
    }
    let done!: () => void;
    const ended = new Promise<void>((resolve) => (done = resolve));
    this.nativeConnections.set(handle, { connection, done });
    this.connectionEnds.set(socket, ended);
  }

  /**
   * A request the loop has no kept decision for: authenticated, routed and decided as admit() does.
   * Only a plain allow to an http upstream is answered; anything else (null) hands the connection back,
   * and the http server serves that request from its first byte, refusals and reviews included.
   */
  private async nativeDecide(q: NativeQuestion): Promise<NativeAnswer | null> {
    const served = this.nativeConnections.get(q.handle);
    if (!served || served.connection.closing) return null;
    const { connection } = served;
    let identity: AgentIdentity;
    try {
      identity = await this.auth.authenticate(q.authorization?.toString('latin1'));
    } catch {
      return null;
    }
    if (connection.closing) return null;
    let route: ReturnType<ResourceRouter['route']>;
    try {
      route = this.router.route(q.host.toString('latin1'), q.path);
    } catch {
      return null;
    }
    const target = this.targets.get(route.resource.name)!;
    if (target.secure) return null;
    const decision = this.policy.decide({ resource: route.resource.name, identity, method: q.method, path: route.path });
    if (decision.action !== 'allow') return null;
    let secret: string | null;
    try {
      secret = target.credentialSecret();
    } catch {
      return null;
    }
    const known = this.nativeTarget(target);
    let spec: NativeTargetSpec;
    try {
      spec = await known.spec;
    } catch {
      return null;
    }
    if (connection.closing) return null;
    const session = this.sessionOf(connection, { identity, target } as Admitted);
    if (session.failed) return null;
    const credential = target.credentialHeader(secret);
    const files: string[] = [];
    const identityFile = (this.options.identities as { file?: unknown }).file;
    if (typeof identityFile === 'string') files.push(identityFile);
    const source = target.resource.credential?.source;
    if (source && 'file' in source) files.push(source.file);
    const answer: NativeAnswer = {
      login: identity.login,
      resource: target.resource.name,
      target: known.index,
      routePath: route.path,
      upstreamPath: target.target(route.path, ''),
      rule: decision.rule ?? '',
      credentialName: credential?.[0] ?? '',
      credentialValue: credential?.[1] ?? '',
      secret: secret ?? '',
      // Without an identity file to watch for revocations, every request is asked about; none is
      // kept past the token's expiry.
      validMs: typeof identityFile === 'string' ? Math.max(0, Math.min(NATIVE_DECISION_MS, (identity.expiresAtMs ?? Infinity) - Date.now())) : 0,
      files,
      session: { sessionId: session.recorder.sessionId, eventSeq: session.recorder.lastEventSeq, exchanges: session.exchanges },
    };
    if (!known.told) {
      known.told = true;
      answer.targetSpec = spec;
    }
    return answer;
  }

  /** The loop's view of an upstream: its address resolved once (the loop does no name lookups). */
  private nativeTarget(target: UpstreamTarget): { index: number; spec: Promise<NativeTargetSpec>; told: boolean } {
    let known = this.nativeTargets.get(target.resource.name);
    if (!known) {
      const host = target.host;
      const spec = (isIP(host) !== 0 ? Promise.resolve(host) : lookup(host).then((r) => r.address)).then((address) => ({
        address,
        port: target.port,
        hostHeader: target.url.host,
        credentialHeader: target.resource.credential?.header ?? '',
        resource: target.resource.name,
      }));
      spec.catch(() => this.nativeTargets.delete(target.resource.name));
      // Never an index the loop may know another target by (a failed lookup's entry is dropped and retried).
      known = { index: this.nextNativeTarget++, spec, told: false };
      this.nativeTargets.set(target.resource.name, known);
    }
    return known;
  }

  /** The loop gives a connection back at a request it does not serve: the http server serves the rest. */
  private nativeHandBack(e: NativeHandBack): void {
    const served = this.nativeConnections.get(e.handle);
    this.nativeConnections.delete(e.handle);
    if (!served) return;
    const { connection, done } = served;
    connection.continueNative(e.sessions, e.bytesIn, e.bytesOut);
    let socket: Socket;
    try {
      socket = new Socket({ fd: e.fd, readable: true, writable: true });
    } catch (err) {
      this.options.log.error({ err }, 'could not take a connection back from the native http data path');
      void connection.close('the native data path could not hand the connection back').finally(done);
      return;
    }
    socket.pause();
    if (e.pending.length > 0) socket.write(e.pending);
    if (e.rest.length > 0) socket.unshift(e.rest);
    connection.socket = socket;
    this.handedBack.set(socket, connection);
    const server = this.server;
    if (!server) {
      socket.destroy();
      void connection.close(null).finally(done);
      return;
    }
    // accept() (the server's 'connection' listener) keeps the connection's sessions; its close ends them.
    server.emit('connection', socket);
    socket.resume();
    const ended = this.connectionEnds.get(socket);
    if (ended) void ended.finally(done);
    else done();
  }

  private nativeEnded(e: NativeEnded): void {
    const served = this.nativeConnections.get(e.handle);
    this.nativeConnections.delete(e.handle);
    if (!served) return;
    const { connection, done } = served;
    connection.continueNative(e.sessions, e.bytesIn, e.bytesOut);
    if (e.failure !== '') this.options.log.error({ client: connection.client, failure: e.failure }, 'the native http data path ended a connection');
    void connection
      .close(e.failure === '' ? null : e.failure)
      .catch((err: unknown) => this.options.log.error({ err }, 'could not journal the end of an http session'))
      .finally(done);
  }

  private connectionOf(socket: Socket): ConnectionSessions {
    let connection = this.connections.get(socket);
    if (!connection) {
      this.accept(socket);
      connection = this.connections.get(socket)!;
    }
    return connection;
  }

  private handleClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const connection = this.connections.get(socket);
    const code = err.code ?? 'ERR';
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const failure = `bad request (${code}): ${err.message}`;
    if (connection) connection.parseError = failure;
    const answered = connection?.activeResponse?.headersSent ?? false;
    if (!answered) {
      const status = statusForParseError(err.code);
      const refusal = new BadRequestError(`${err.message} (${code})`, status);
      socket.end(rawErrorResponse(status, jsonBody(refusal)));
    }
    socket.destroy();
    // A request already being handled records its own failure; otherwise the refusal is journaled here.
    if (connection && connection.activeResponse === null) {
      void connection.rejected(failure).catch((e: unknown) => this.options.log.error({ err: e }, 'could not journal a refused request'));
    }
    this.options.log.warn({ code, client: connection?.client }, 'refused a malformed http request');
  }

  /**
   * Framing and target checks: what Node's parser lets through but a proxy must not forward
   * ambiguously. Returns the normalised target.
   */
  private checkRequest(req: IncomingMessage): { path: string; query: string; contentLength: number | null; heads: RequestHeads } {
    const heads = readHeads(req.rawHeaders);
    if (heads.hosts !== 1) throw new BadRequestError(`a request needs exactly one Host header, this one has ${heads.hosts}`);
    if (heads.transferEncodings > 0 && heads.contentLengths > 0) throw new BadRequestError('Content-Length and Transfer-Encoding are both present');
    if (heads.contentLengths > 1) throw new BadRequestError('Content-Length is given more than once');
    if (heads.transferEncodings > 1) throw new BadRequestError('Transfer-Encoding is given more than once');
    const te = heads.transferEncoding;
    if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
      throw new BadRequestError(`Transfer-Encoding "${te}" is not supported (only chunked)`, HttpStatus.NotImplemented);
    }
    const expect = heads.expect;
    if (expect !== undefined && expect.toLowerCase() !== '100-continue') throw new BadRequestError(`Expect "${expect}" cannot be met`, HttpStatus.ExpectationFailed);
    let contentLength: number | null = null;
    const cl = heads.contentLength;
    if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) throw new BadRequestError('Content-Length is not a decimal number');
      contentLength = Number(cl);
      if (contentLength > this.options.config.limits.maxBodyBytes) {
        throw new BadRequestError(`the body of ${contentLength} bytes exceeds the limit of ${this.options.config.limits.maxBodyBytes}`, HttpStatus.PayloadTooLarge);
      }
    }
    const target = parseRequestTarget(req.url ?? '');
    return { path: target.path, query: target.query, contentLength, heads };
  }

  /** Everything that happens before an exchange may touch the upstream. */
  private async admit(req: IncomingMessage): Promise<Admitted & { contentLength: number | null }> {
    const { path, query, contentLength, heads } = this.checkRequest(req);
    const { identity, storedKey } = await this.auth.prove(heads.authorization);
    const route = this.router.route(heads.host ?? '', path);
    const target = this.targets.get(route.resource.name)!;
    const decision = this.policy.decide({ resource: route.resource.name, identity, method: req.method ?? '', path: route.path });
    const review = decision.action === 'review' ? { rule: decision.rule, reason: decision.reason } : null;
    const admitted = { identity, storedKey, target, path: route.path, query, contentLength, rule: decision.rule, review, heads };
    if (decision.action === 'deny') throw Object.assign(new PolicyDeniedError(decision.rule, decision.reason), { admitted });
    return admitted;
  }

  private async handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = nowNanos();
    const connection = this.connectionOf(req.socket);
    connection.activeResponse = res;
    res.once('finish', () => {
      if (connection.activeResponse === res) connection.activeResponse = null;
    });
    const method = req.method ?? '';
    let admitted: (Admitted & { contentLength: number | null }) | null = null;
    try {
      admitted = await this.admit(req);
    } catch (err) {
      const partial = (err as { admitted?: Admitted }).admitted;
      if (err instanceof PolicyDeniedError && partial) {
        this.refuse(req, res, err, { rule: err.rule });
        this.journalDenial(connection, partial, method, err, started);
        return;
      }
      if (!(err instanceof HttpGatewayError)) throw err;
      this.refuse(req, res, err);
      void connection.rejected(`${err.status} ${method} ${(req.url ?? '').slice(0, 200)}: ${err.message}`).catch((e: unknown) => this.options.log.error({ err: e }, 'could not journal a refused request'));
      this.options.log.warn({ code: err.code, client: connection.client, method }, err.message);
      return;
    }
    const session = this.sessionOf(connection, admitted);
    const x = new Exchange(this.env, req, res, connection, session, admitted, started);
    const { contentLength, heads } = admitted;
    const bodyless = contentLength === 0 || (contentLength === null && heads.transferEncoding === undefined);
    try {
      await this.exchange(x, bodyless ? NO_BODY : null);
    } catch (err) {
      // Whatever went wrong, the session's end must not wait for this exchange's record.
      x.settle();
      throw err;
    }
  }

  /** The session of an admitted request's identity and resource on this connection. */
  private sessionOf(connection: ConnectionSessions, admitted: Admitted): HttpSession {
    return connection.sessionFor(admitted.identity, admitted.target.resource.name, { ip: admitted.target.host, port: admitted.target.port });
  }

  /**
   * Journals a request policy refused (plain or upgrade): an exchange that never went upstream,
   * carrying the decision, in the session of the identity and resource it was meant for.
   */
  private journalDenial(connection: ConnectionSessions, partial: Admitted, method: string, err: PolicyDeniedError, started: bigint): void {
    const session = this.sessionOf(connection, partial);
    const exchange: HttpExchange = {
      exchangeId: session.nextExchangeId(),
      method,
      path: partial.path,
      query: partial.query,
      status: err.status,
      durationNano: String(nowNanos() - started),
      policy: { action: 'POLICY_ACTION_DENY', rule: err.rule, reason: err.message, statement: `${method} ${partial.path}` },
    };
    session.recorder.outcome({ http: exchange });
    this.options.log.info({ rule: err.rule, resource: partial.target.resource.name, identity: partial.identity.subject, method, path: partial.path }, 'http request denied by policy');
  }

  /** Sends an error as JSON; a request whose body was not read closes the connection, so no unread bytes are parsed as a request. */
  private refuse(req: IncomingMessage, res: ServerResponse, err: HttpGatewayError, extra: Record<string, unknown> = {}): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = jsonBody(err, extra);
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    if (err.status === HttpStatus.Unauthorized) headers['www-authenticate'] = 'Bearer realm="gapwatch"';
    // Unread body bytes must not be parsed as a next request, and after a framing refusal nothing
    // more on this connection can be trusted: both close it.
    if (!req.complete || err instanceof BadRequestError) headers.connection = 'close';
    res.writeHead(err.status, headers);
    res.end(body);
  }

  /** Reads up to bufferBodyBytes of the request body (all of it when it is shorter). */
  private async readBody(req: IncomingMessage, recorder: BodyRecorder): Promise<{ chunks: Buffer[]; complete: boolean }> {
    const limit = this.options.config.limits.bufferBodyBytes;
    const maxBody = this.options.config.limits.maxBodyBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('aborted', onError);
      };
      const onData = (chunk: Buffer): void => {
        chunks.push(chunk);
        size += chunk.length;
        recorder.push(chunk);
        if (size > maxBody) {
          cleanup();
          req.pause();
          reject(new BadRequestError(`the body exceeds the limit of ${maxBody} bytes`, HttpStatus.PayloadTooLarge));
        } else if (size >= limit && limit > 0) {
          cleanup();
          req.pause();
          resolve({ chunks, complete: false });
        }
      };
      const onEnd = (): void => {
        cleanup();
        resolve({ chunks, complete: true });
      };
      const onError = (): void => {
        cleanup();
        reject(new BadRequestError('the client stopped sending the body, or sent a malformed one'));
      };
      req.on('data', onData);
      req.once('end', onEnd);
      req.once('error', onError);
      req.once('aborted', onError);
      // `complete` only says the parser has seen the whole message; its data may still be unread.
      if (req.readableEnded) onEnd();
    });
  }

  private async exchange(x: Exchange, body: { chunks: Buffer[]; complete: boolean } | null): Promise<void> {
    const { config } = this.options;
    const { req, res, connection, session, admitted, method } = x;
    const { target } = admitted;
    if (body === null) {
      try {
        body = await this.readBody(req, x.requestBody);
      } catch (err) {
        const failure = connection.parseError ?? (err as Error).message;
        if (err instanceof HttpGatewayError) this.refuse(req, res, err);
        x.record(err instanceof HttpGatewayError && !res.destroyed ? err.status : 0, failure);
        return;
      }
    }

    const requestHeaders = recordHeaders(req.rawHeaders, this.recordedHeaders, this.redactedHeaders);
    try {
      if (session.failed) throw session.failed;
      if (config.record.writeAhead) {
        // Write-ahead: the request is in the journal before the upstream sees a byte of it — durable
        // (fsync'd), or for a safe method with readDurability 'written' in the journal file (a killed
        // gateway loses nothing; the fsync follows within milliseconds).
        const ack = config.record.readDurability === 'written' && SAFE_METHODS.has(method) ? 'written' : 'durable';
        await session.recorder.barrier({ httpRequest: requestRecord(req, admitted, x.exchangeId, requestHeaders, x.requestBody.snapshot(), false) }, ack);
        // A body read whole is in the request record: the outcome gives its type and size only.
        x.requestBodyInRecord = body.complete;
      } else {
        // One record per exchange, written when it completes (and group-committed in the background).
        x.requestHeaders = requestHeaders;
        x.policyRule = admitted.rule;
        if (session.recorder.hasPending) void session.recorder.durable().catch(ignore);
      }
    } catch (err) {
      const refusal = new AuditUnavailableError(err);
      this.refuse(req, res, refusal);
      x.record(refusal.status, refusal.message);
      return;
    }

    if (admitted.review) {
      const held = await this.holdForReview(session, admitted, method, x.requestBody.snapshot().text ?? '', (withdraw) => res.once('close', withdraw));
      x.policy = held.policy;
      if (held.refusal) {
        if (!res.destroyed) this.refuse(req, res, held.refusal, { reviewId: held.policy.reviewId });
        x.record(held.refusal.status, held.refusal.message);
        return;
      }
    }

    let contentLength: number | null;
    if (body.complete) {
      let length = 0;
      for (const chunk of body.chunks) length += chunk.length;
      contentLength = length > 0 || !BODYLESS_METHODS.has(method) ? length : null;
    } else {
      contentLength = admitted.contentLength;
    }
    let headers: string[];
    try {
      x.secret = target.credentialSecret();
      headers = forwardHeaders(req.rawHeaders, admitted.heads.connection, target, { ip: connection.client.ip, host: admitted.heads.host ?? '', secure: this.tls !== null }, { contentLength }, false, x.secret);
    } catch (err) {
      if (!(err instanceof HttpGatewayError)) throw err;
      this.refuse(req, res, err);
      x.record(err.status, err.message);
      return;
    }

    if (res.destroyed || req.socket.destroyed) {
      x.record(0, 'the client went away before the request was forwarded');
      return;
    }
    res.on('close', () => x.responseClosed());
    target.pool.dispatch(
      {
        path: target.target(admitted.path, admitted.query),
        method: method as Dispatcher.HttpMethod,
        headers,
        body: body.complete
          ? contentLength
            ? body.chunks.length === 1
              ? body.chunks[0]!
              : Buffer.concat(body.chunks, contentLength)
            : null
          : Readable.from(this.bodyRest(req, body.chunks, x.requestBody, (reason) => (x.clientFailure ??= reason)), { objectMode: false }),
        headersTimeout: config.limits.upstreamTimeoutMs,
        // A response may stream for as long as the upstream likes (server-sent events, long polls).
        bodyTimeout: 0,
      },
      x,
    );
  }

  /**
   * The rest of a long request body, after the part read before forwarding: streamed to the upstream
   * as the client sends it. A framing error or the body limit ends it with an error, which aborts the
   * upstream request mid-body, so the upstream never receives a complete request built from bytes
   * the gateway refused.
   */
  private async *bodyRest(req: IncomingMessage, first: Buffer[], recorder: BodyRecorder, onClientFailure: (reason: string) => void): AsyncGenerator<Buffer> {
    const maxBody = this.options.config.limits.maxBodyBytes;
    for (const chunk of first) yield chunk;
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        recorder.push(chunk);
        if (recorder.size > maxBody) throw new BadRequestError(`the body exceeds the limit of ${maxBody} bytes`, HttpStatus.PayloadTooLarge);
        yield chunk;
      }
    } catch (err) {
      onClientFailure(err instanceof HttpGatewayError ? err.message : 'the client stopped sending the body, or sent a malformed one');
      req.socket.destroy();
      throw err;
    }
  }

  /**
   * Holds an admitted request for a human decision (`gapwatch approve|deny <id>`) through the review
   * channel the PostgreSQL and SSH gateways use, journaling the hold and its outcome with the
   * reviewer. The upstream sees nothing meanwhile; a client that goes away withdraws the review.
   */
  private async holdForReview(session: HttpSession, admitted: Admitted, method: string, bodyText: string, onClientGone: (withdraw: () => void) => void): Promise<ReviewResult> {
    const { rule, reason } = admitted.review!;
    const statement = `${method} ${admitted.path}${admitted.query === '' ? '' : `?${admitted.query}`}`;
    // Safe methods (RFC 9110 §9.2.1) read; the rest may change the upstream's state.
    const classes: StatementClass[] = SAFE_METHODS.has(method) ? ['read'] : ['write'];
    let held: ReturnType<ReviewWaiter['request']>;
    try {
      held = this.reviews!.request({
        sessionId: session.recorder.sessionId,
        resource: admitted.target.resource.name,
        login: admitted.identity.login,
        subject: admitted.identity.subject,
        claims: admitted.identity.claims,
        via: 'http',
        // The reviewer decides on what will be sent: the request line and the body excerpt.
        text: bodyText === '' ? statement : `${statement}\n\n${bodyText.slice(0, 4096)}`,
        statements: [{ text: statement, classes, relations: [] }],
        rule,
        reason,
      });
    } catch (err) {
      this.options.log.error({ err }, 'could not file an http request for review');
      return { policy: { action: 'POLICY_ACTION_REJECTED', rule, statement, classes, reason: 'the review could not be filed' }, refusal: new ReviewUnavailableError(err) };
    }
    const base: PolicyDecision = { rule, statement, classes, reviewId: held.reviewId };
    session.track(session.recorder.event({ policy: { ...base, action: 'POLICY_ACTION_REVIEW', reason } }).then(ignore, ignore));
    this.options.log.info({ reviewId: held.reviewId, rule, resource: admitted.target.resource.name, identity: admitted.identity.subject, statement }, 'http request held for review');
    onClientGone(() => held.withdraw('the client went away before a decision'));
    const outcome = await held.outcome;
    let policy: PolicyDecision;
    let refusal: HttpGatewayError | null = null;
    if (outcome.outcome === 'approved') {
      policy = { ...base, action: 'POLICY_ACTION_APPROVED', reviewer: outcome.reviewer };
    } else if (outcome.outcome === 'denied') {
      policy = { ...base, action: 'POLICY_ACTION_REJECTED', reviewer: outcome.reviewer, reason: outcome.reason };
      refusal = new ReviewRefusedError(held.reviewId, rule, outcome);
    } else {
      policy = { ...base, action: 'POLICY_ACTION_TIMED_OUT', reason: 'no decision in time' };
      refusal = new ReviewRefusedError(held.reviewId, rule, outcome);
    }
    if (refusal) {
      session.recorder.outcome({ policy });
      return { policy, refusal };
    }
    // An approval is what lets the request go upstream: with write-ahead it is on disk first.
    try {
      session.recorder.event({ policy });
      if (this.options.config.record.writeAhead) await session.recorder.durable();
      else void session.recorder.durable().catch(ignore);
    } catch (err) {
      return { policy, refusal: new AuditUnavailableError(err) };
    }
    return { policy, refusal: null };
  }

  /** Answers a refused request on a bare socket (upgrade, CONNECT) and journals it. */
  private refuseRaw(socket: Socket, err: HttpGatewayError, what: string, extra: Record<string, unknown> = {}): void {
    const headers = err.status === HttpStatus.Unauthorized ? ['www-authenticate: Bearer realm="gapwatch"'] : [];
    if (socket.writable) socket.end(rawErrorResponse(err.status, jsonBody(err, extra), headers));
    setTimeout(() => socket.destroy(), 1000).unref();
    const connection = this.connections.get(socket);
    if (connection && !(err instanceof PolicyDeniedError)) {
      void connection.rejected(`${err.status} ${what.slice(0, 200)}: ${err.message}`).catch((e: unknown) => this.options.log.error({ err: e }, 'could not journal a refused request'));
    }
  }

  private async handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const started = nowNanos();
    const connection = this.connectionOf(req.socket);
    const method = req.method ?? '';
    socket.on('error', () => undefined);
    let admitted: (Admitted & { contentLength: number | null }) | null = null;
    try {
      if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
        throw new BadRequestError(`upgrading to "${req.headers.upgrade ?? ''}" is not supported (only websocket)`, HttpStatus.NotImplemented);
      }
      admitted = await this.admit(req);
    } catch (err) {
      if (!(err instanceof HttpGatewayError)) throw err;
      const partial = (err as { admitted?: Admitted }).admitted;
      if (err instanceof PolicyDeniedError && partial) {
        this.journalDenial(connection, partial, method, err, started);
        this.refuseRaw(socket, err, `${method} ${partial.path}`, { rule: err.rule });
        return;
      }
      this.refuseRaw(socket, err, `${method} ${req.url ?? ''}`);
      return;
    }
    const { target } = admitted;
    const resource = target.resource.name;
    const session = this.sessionOf(connection, admitted);
    const exchangeId = session.nextExchangeId();
    let finished!: () => void;
    session.track(new Promise<void>((resolve) => (finished = resolve)));
    const base: HttpExchange = { exchangeId, method, path: admitted.path, query: admitted.query };
    let recorded = false;
    const record = (status: number, error: string, extra: Partial<HttpExchange> = {}): void => {
      if (recorded) return;
      recorded = true;
      session.recorder.outcome({ http: { ...base, status, error, durationNano: String(nowNanos() - started), ...extra } });
      finished();
    };
    const requestHeaders = recordHeaders(req.rawHeaders, this.recordedHeaders, this.redactedHeaders);
    session.recorder.event({ httpRequest: requestRecord(req, admitted, exchangeId, requestHeaders, null, true) });
    try {
      if (session.failed) throw session.failed;
      if (this.options.config.record.writeAhead) await session.recorder.durable();
      else void session.recorder.durable().catch(() => undefined);
    } catch (err) {
      const refusal = new AuditUnavailableError(err);
      this.refuseRaw(socket, refusal, `${method} ${admitted.path}`);
      record(refusal.status, refusal.message);
      return;
    }
    if (admitted.review) {
      const held = await this.holdForReview(session, admitted, method, '', (withdraw) => socket.once('close', withdraw));
      base.policy = held.policy;
      if (held.refusal) {
        this.refuseRaw(socket, held.refusal, `${method} ${admitted.path}`, { reviewId: held.policy.reviewId });
        record(held.refusal.status, held.refusal.message);
        return;
      }
      if (socket.destroyed) {
        record(0, 'the client went away before the request was forwarded');
        return;
      }
    }
    let headers: string[];
    try {
      headers = forwardHeaders(req.rawHeaders, admitted.heads.connection, target, { ip: connection.client.ip, host: admitted.heads.host ?? '', secure: this.tls !== null }, { contentLength: null }, true, target.credentialSecret());
    } catch (err) {
      if (!(err instanceof HttpGatewayError)) throw err;
      this.refuseRaw(socket, err, `${method} ${admitted.path}`);
      record(err.status, err.message);
      return;
    }
    const send = target.secure ? httpsRequest : httpRequest;
    const upstream = send({
      // An upgraded connection leaves the pool for good, so it gets its own.
      agent: false,
      host: target.host,
      port: target.port,
      method,
      path: target.target(admitted.path, admitted.query),
      headers: headers as unknown as Record<string, string>,
      servername: target.secure ? target.servername : undefined,
      ca: target.resource.upstream.ca ? readFileSync(target.resource.upstream.ca) : undefined,
    });
    const timer = setTimeout(() => upstream.destroy(new UpstreamError(resource, `no response within ${this.options.config.limits.upstreamTimeoutMs} ms`, HttpStatus.GatewayTimeout)), this.options.config.limits.upstreamTimeoutMs);
    let upgraded = false;
    socket.once('close', () => {
      if (!upstream.destroyed && !upgraded) {
        upstream.destroy();
        record(0, 'the client went away before the upstream answered');
      }
    });
    upstream.on('error', (err) => {
      clearTimeout(timer);
      if (upgraded) return;
      const failure = err instanceof UpstreamError ? err : new UpstreamError(resource, err.message, HttpStatus.BadGateway, err);
      this.refuseRaw(socket, failure, `${method} ${admitted!.path}`);
      record(failure.status, failure.message);
    });
    upstream.on('response', (upRes) => {
      // The upstream refused the upgrade: pass its answer on (bounded) and close.
      clearTimeout(timer);
      const chunks: Buffer[] = [];
      let size = 0;
      upRes.on('data', (chunk: Buffer) => {
        if (size < 65536) chunks.push(chunk);
        size += chunk.length;
      });
      upRes.on('end', () => {
        const bodyBytes = Buffer.concat(chunks).subarray(0, 65536);
        const lines = [`HTTP/1.1 ${upRes.statusCode ?? 502} ${upRes.statusMessage ?? ''}`];
        const pairs = responseHeaders(upRes.rawHeaders);
        for (let i = 0; i + 1 < pairs.length; i += 2) if (pairs[i]!.toLowerCase() !== 'content-length') lines.push(`${pairs[i]}: ${pairs[i + 1]}`);
        lines.push(`content-length: ${bodyBytes.length}`, 'connection: close', '', '');
        socket.end(Buffer.concat([Buffer.from(lines.join('\r\n')), bodyBytes]));
        record(upRes.statusCode ?? 0, 'the upstream did not switch protocols', {
          responseHeaders: recordHeaders(upRes.rawHeaders, this.recordedHeaders, this.redactedHeaders),
          responseBytes: String(size),
        });
      });
    });
    upstream.on('upgrade', (upRes, upSocket, upHead) => {
      clearTimeout(timer);
      upgraded = true;
      const firstByte = nowNanos() - started;
      const lines = [`HTTP/1.1 101 ${upRes.statusMessage ?? 'Switching Protocols'}`];
      const pairs = responseHeaders(upRes.rawHeaders, true);
      for (let i = 0; i + 1 < pairs.length; i += 2) lines.push(`${pairs[i]}: ${pairs[i + 1]}`);
      lines.push('', '');
      const fromClient = new WebSocketFrameCounter();
      const toClient = new WebSocketFrameCounter();
      socket.write(lines.join('\r\n'));
      if (upHead.length > 0) {
        toClient.push(upHead);
        socket.write(upHead);
      }
      if (head.length > 0) {
        fromClient.push(head);
        upSocket.write(head);
      }
      socket.setTimeout(0);
      socket.on('data', (chunk: Buffer) => fromClient.push(chunk));
      upSocket.on('data', (chunk: Buffer) => toClient.push(chunk));
      socket.pipe(upSocket);
      upSocket.pipe(socket);
      upSocket.on('error', () => socket.destroy());
      let ended = false;
      // Set when the agent's identity stopped being valid while the WebSocket was open (it is cut off).
      let cutOff = '';
      let unwatch = (): void => undefined;
      const end = (): void => {
        if (ended) return;
        ended = true;
        unwatch();
        socket.destroy();
        upSocket.destroy();
        session.bytesFromClient += fromClient.bytes;
        session.bytesToClient += toClient.bytes;
        record(HttpStatus.SwitchingProtocols, cutOff, {
          firstByteNano: String(firstByte),
          requestBytes: String(fromClient.bytes),
          responseBytes: String(toClient.bytes),
          responseHeaders: recordHeaders(upRes.rawHeaders, this.recordedHeaders, this.redactedHeaders),
          websocket: {
            framesFromClient: String(fromClient.frames),
            framesToClient: String(toClient.frames),
            bytesFromClient: String(fromClient.bytes),
            bytesToClient: String(toClient.bytes),
            closeCode: fromClient.closeCode || toClient.closeCode,
            subprotocol: typeof upRes.headers['sec-websocket-protocol'] === 'string' ? upRes.headers['sec-websocket-protocol'] : '',
          },
        });
      };
      socket.once('close', end);
      upSocket.once('close', end);
      const login = admitted.identity.login;
      unwatch = this.identityWatch.watch(session.recorder.sessionId, login, admitted.identity.expiresAtMs, tokenCheck(this.options.identities, login, admitted.storedKey!), (reason) => {
        cutOff = reason;
        end();
      });
    });
    upstream.end();
  }
}

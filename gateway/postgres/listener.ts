import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls';
import type { Config, PostgresResourceConfig } from '../../platform/config';
import type { Logger } from '../../platform/log';
import type { Component } from '../../platform/supervisor';
import type { Session } from '../../proto/generated/gapwatch/v1/Session';
import type { IdentityStore } from '../identity/contract';
import { IdentityWatch, tokenCheck } from '../identity/identity-watch';
import type { JournalWriter } from '../journal/contract';
import type { PolicyEngine } from '../policy/contract';
import { newSessionId } from '../session-id';
import { authenticateAgent } from './agent-auth';
import { backendKeyData, errorResponse, negotiateProtocolVersion, parameterStatus, readyForQuery } from './backend-writer';
import { CancelRegistry } from './cancel-registry';
import { ClientChannel } from './client-channel';
import { AgentAuthError, FrontendProtocolError, GatewayShuttingDownError, ListenerTlsError, ParserHazardError, PostgresGatewayError, SessionRoleError, UnknownResourceError } from './errors';
import { parserHazard } from '../policy/parser-safety';
import { FrontendParser } from './frontend-parser';
import { SqlState, TransactionStatus } from './protocol';
import { NativePgDataPath } from './native-datapath';
import { ProxySession } from './proxy-session';
import { RelationNames } from './relation-names';
import { SessionRecorder, unixNanos } from './session-recorder';
import { cancelUpstream, connectUpstream, type UpstreamSession } from './upstream-connect';

export type PostgresGatewayConfig = Config['gateway']['postgres'];

export interface PostgresGatewayOptions {
  gatewayId: string;
  config: PostgresGatewayConfig;
  journal: JournalWriter;
  identities: IdentityStore;
  policy: PolicyEngine;
  log: Logger;
}

/** Agents that do not finish TLS, startup and authentication in this time are disconnected. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/** Startup parameters the gateway sets itself or refuses; everything else is passed upstream. */
const RESERVED_PARAMETERS = new Set(['user', 'database', 'replication']);

function inet(address: string | undefined, port: number | undefined): { ip: string; port: number } {
  const ip = (address ?? '').startsWith('::ffff:') ? address!.slice(7) : (address ?? '');
  return { ip, port: port ?? 0 };
}

/**
 * The PostgreSQL listener: accepts agents, negotiates TLS, authenticates them with their gapwatch
 * identity, selects the resource from the database name, logs into the upstream with the resource's
 * credentials and hands the connection to a ProxySession. Every connection is journaled as a
 * session, including the ones that fail before they are established.
 */
export class PostgresGateway implements Component {
  readonly name = 'postgres gateway';
  private server: Server | null = null;
  private readonly cancels = new CancelRegistry();
  private readonly sessions = new Set<ProxySession>();
  /** Ends open sessions whose agent identity is revoked, re-issued or expires. */
  private readonly identityWatch: IdentityWatch;
  private readonly handlers = new Set<Promise<void>>();
  private readonly relationNames = new Map<string, RelationNames>();
  private readonly tls: SecureContext | null;
  /** The native session loop (`dataPath: auto`, the journal's chain native, the addon loaded); created at the first session it serves. */
  private native: NativePgDataPath | null | undefined;
  private nativeSessions = 0;

  constructor(private readonly options: PostgresGatewayOptions) {
    this.identityWatch = new IdentityWatch(options.log);
    const { cert, key } = options.config.tls;
    if ((cert === null) !== (key === null)) throw new ListenerTlsError('give both tls.cert and tls.key, or neither');
    try {
      this.tls = cert && key ? createSecureContext({ cert: readFileSync(cert), key: readFileSync(key) }) : null;
    } catch (err) {
      throw new ListenerTlsError((err as Error).message, err);
    }
  }

  async start(): Promise<string[]> {
    const { host, port } = this.options.config.listen;
    const server = createServer({ noDelay: true }, (socket) => {
      const handler = this.handle(socket).catch((err: unknown) => this.options.log.error({ err }, 'postgres connection handler failed'));
      this.handlers.add(handler);
      void handler.finally(() => this.handlers.delete(handler));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.options.log.error({ err }, 'postgres listener error'));
    this.server = server;
    const address = this.address();
    const names = this.options.config.resources.map((r) => r.name).join(', ') || '(none configured)';
    return [`postgres on ${address.host}:${address.port}${this.tls ? ' (TLS available)' : ''}, resources: ${names}`];
  }

  address(): { host: string; port: number } {
    const address = this.server?.address() as AddressInfo | null;
    if (!address) throw new Error('the postgres gateway is not listening');
    return { host: address.address, port: address.port };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const session of this.sessions) session.shutdown();
    this.native?.stop();
    await Promise.allSettled([...this.handlers]);
    for (const names of this.relationNames.values()) names.close();
    await closed;
  }

  /** Sessions the native loop has served since start. */
  get nativeSessionsServed(): number {
    return this.nativeSessions;
  }

  /** Policy questions the native loop has asked JavaScript since start (each other statement it decided itself). */
  get nativePolicyQuestions(): number {
    return this.native?.questions ?? 0;
  }

  private nativeDataPath(): NativePgDataPath | null {
    if (this.native !== undefined) return this.native;
    this.native = null;
    const journal = this.options.journal as unknown as { nativeChain?: () => object | null; noteNativeWrites?: () => void };
    const chain = journal.nativeChain?.() ?? null;
    if (this.options.config.dataPath === 'auto' && chain && NativePgDataPath.available()) {
      this.native = new NativePgDataPath(chain, this.options.policy, () => journal.noteNativeWrites?.(), this.options.log);
    }
    return this.native;
  }

  private resolveResource(database: string): PostgresResourceConfig {
    const resource = this.options.config.resources.find((r) => r.name === database || r.databases.includes(database));
    if (!resource) throw new UnknownResourceError(database);
    return resource;
  }

  private async handle(raw: Socket): Promise<void> {
    const { log, gatewayId } = this.options;
    const session: Session = {
      sessionId: newSessionId(),
      gatewayId,
      protocol: 'PROTOCOL_POSTGRES',
      client: inet(raw.remoteAddress, raw.remotePort),
      listener: inet(raw.localAddress, raw.localPort),
      startUnixNano: unixNanos(),
      outcome: 'SESSION_OUTCOME_OPEN',
    };
    let proxy: ProxySession | null = null;
    let nativeBytes = { bytesIn: 0, bytesOut: 0 };
    let nativeSession = false;
    const recorder = new SessionRecorder(this.options.journal, session, (err) => {
      log.error({ err, sessionId: session.sessionId }, 'journal append failed');
      proxy?.auditFailed(err);
    });
    const parser = new FrontendParser(this.options.config.maxMessageBytes);
    const channel = new ClientChannel(raw, parser, HANDSHAKE_TIMEOUT_MS);
    raw.on('error', () => undefined); // reported through the channel or the proxy
    let upstream: UpstreamSession | null = null;
    let cancelKey: number | null = null;
    let policySession = false;

    const close = async (outcome: Session['outcome'], failure: string): Promise<void> => {
      await recorder
        .writeSession({
          outcome,
          failure,
          endUnixNano: unixNanos(),
          bytesFromClient: channel.bytesIn + (proxy?.bytesFromClient ?? 0) + nativeBytes.bytesIn,
          bytesToClient: channel.bytesOut + (proxy?.bytesToClient ?? 0) + nativeBytes.bytesOut,
        })
        .catch((err: unknown) => log.error({ err, sessionId: session.sessionId }, 'could not journal the end of a session'));
    };

    try {
      const startup = await this.negotiate(channel);
      if (startup === null) return; // a CancelRequest: not a session
      parser.endStartup();
      const parameters = startup.parameters;
      const login = parameters.get('user');
      if (!login) throw new AgentAuthError('', 'no PostgreSQL user name specified in startup packet', SqlState.InvalidAuthorizationSpecification);
      const database = parameters.get('database') || login;
      session.database = database;
      const replication = parameters.get('replication');
      if (replication !== undefined && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
        throw new FrontendProtocolError('replication connections are not allowed through the gateway');
      }
      const clientParameters = new Map<string, string>();
      const unsupported: string[] = [];
      for (const [key, value] of parameters) {
        if (key.startsWith('_pq_.')) unsupported.push(key);
        else if (!RESERVED_PARAMETERS.has(key)) clientParameters.set(key, value);
      }
      session.clientParameters = Object.fromEntries(clientParameters);
      if ((startup.protocol & 0xffff) !== 0 || unsupported.length > 0) channel.write(negotiateProtocolVersion(0, unsupported));

      const { identity, verifier } = await authenticateAgent(channel, login, this.options.identities);
      /** Runs the session's data path while its agent's identity is watched: `terminate` ends it if the identity stops being valid. */
      const whileIdentityHolds = async <T>(terminate: (reason: string) => void, run: () => Promise<T>): Promise<T> => {
        const unwatch = this.identityWatch.watch(session.sessionId!, identity.login, identity.expiresAtMs, tokenCheck(this.options.identities, identity.login, verifier.storedKey), terminate);
        try {
          return await run();
        } finally {
          unwatch();
        }
      };
      session.identity = { subject: identity.subject, method: 'token', claims: identity.claims };
      const resource = this.resolveResource(database);
      session.resource = resource.name;
      session.targetUser = resource.upstream.user;
      upstream = await connectUpstream(resource, clientParameters);
      // The server lexes this session as the gateway's parser does, or it does not start.
      for (const [name, value] of upstream.parameters) {
        if (parserHazard(name, value) !== null) throw new ParserHazardError(name, value, 'at login');
      }
      // And with the resource's own privileges: a startup `-c role=…` is the SET ROLE policy refuses.
      if (upstream.currentUser !== resource.upstream.user) throw new SessionRoleError(resource.name, resource.upstream.user, upstream.currentUser || '(unknown)');
      // Unqualified names resolve as the server said they do after this login (the role's default,
      // the agent's startup options), not as a configured guess.
      this.options.policy.startSession(session.sessionId!, { searchPath: upstream.searchPath });
      policySession = true;
      const endpoint = upstream.endpoint;
      // A unix-socket upstream has no inet endpoint; the resource's configuration names its path.
      if (!endpoint.path) {
        session.upstream = inet(endpoint.host, endpoint.port);
        session.upstreamLocal = inet(upstream.localAddress, upstream.localPort);
      }

      const up = upstream;
      const key = this.cancels.register({
        cancel: () => {
          const forward = (): Promise<void> => cancelUpstream(resource.name, resource.upstream, up.processId, up.secretKey);
          if (proxy) proxy.cancel(forward);
          else if (nativeSession && !this.native?.cancelHeld(session.sessionId!)) {
            forward().catch((err: unknown) => log.warn({ err, sessionId: session.sessionId }, 'forwarding a cancel request failed'));
          }
        },
      });
      cancelKey = key.processId;
      // The session is on disk before the agent can send its first statement.
      await recorder.writeSession();
      await recorder.durable();
      // stop() ends the sessions it finds; one still logging in then must not start on a data path
      // that is stopping (the native loop no longer takes sessions): from here to the hand-off nothing awaits.
      if (this.server === null) throw new GatewayShuttingDownError();
      channel.write(
        Buffer.concat([
          ...upstream.parameters.map(([name, value]) => parameterStatus(name, value)),
          backendKeyData(key.processId, key.secretKey),
          readyForQuery(TransactionStatus.Idle),
        ]),
      );
      channel.detach();
      const native = this.nativeDataPath();
      // The native loop serves what it does in full: plain TCP, no mask rules (the JavaScript proxy
      // rewrites rows and parameters), nothing already read past startup.
      if (
        native &&
        !this.options.policy.masks(resource.name, identity) &&
        !(channel.socket instanceof TLSSocket) && parser.pendingBytes === 0 && upstream.socket.readableLength === 0) {
        // The session's data path runs natively from here on.
        nativeSession = true;
        this.nativeSessions += 1;
        log.info({ sessionId: session.sessionId, identity: identity.subject, resource: resource.name, client: session.client }, 'postgres session opened (native data path)');
        const end = await whileIdentityHolds(
          (reason) => native.terminate(session.sessionId!, reason),
          () => native.adopt(channel.socket, up.socket, { sessionId: session.sessionId!, resource: resource.name, identity, eventSeq: recorder.lastEventSeq, maxMessageBytes: this.options.config.maxMessageBytes, readDurable: this.options.config.audit.readDurability === 'durable', beforeReply: this.options.config.audit.durability === 'before-reply' }),
        );
        recorder.continueAfter(end.eventSeq);
        nativeBytes = { bytesIn: end.bytesIn, bytesOut: end.bytesOut };
        await close(end.failed ? 'SESSION_OUTCOME_FAILED' : 'SESSION_OUTCOME_CLOSED', end.failure);
        log.info({ sessionId: session.sessionId, outcome: end.failed ? 'failed' : 'closed', failure: end.failure || undefined }, 'postgres session closed');
        return;
      }
      let relations = this.relationNames.get(resource.name);
      if (!relations) {
        relations = new RelationNames(resource, log);
        this.relationNames.set(resource.name, relations);
      }
      proxy = new ProxySession(channel.socket, parser, upstream.socket, {
        sessionId: session.sessionId!,
        relations,
        resource: resource.name,
        identity,
        policy: this.options.policy,
        recorder,
        durability: this.options.config.audit.durability,
        readDurability: this.options.config.audit.readDurability,
        log,
      });
      this.sessions.add(proxy);
      log.info({ sessionId: session.sessionId, identity: identity.subject, resource: resource.name, client: session.client }, 'postgres session opened');
      const running = proxy;
      const end = await whileIdentityHolds(
        (reason) => running.terminate(reason),
        () => {
          running.start();
          return running.done;
        },
      );
      this.sessions.delete(proxy);
      // Records appended during the session (results, errors) are flushed before the session's end.
      await recorder.durable().catch(() => undefined);
      await close(end.outcome === 'closed' ? 'SESSION_OUTCOME_CLOSED' : 'SESSION_OUTCOME_FAILED', end.outcome === 'failed' ? end.failure : '');
      log.info({ sessionId: session.sessionId, outcome: end.outcome }, 'postgres session closed');
    } catch (err) {
      upstream?.socket.destroy();
      const rejected = err instanceof AgentAuthError || err instanceof UnknownResourceError || err instanceof ParserHazardError || err instanceof SessionRoleError;
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof PostgresGatewayError) {
        if (!channel.socket.destroyed) {
          channel.write(errorResponse({ severity: 'FATAL', code: err.sqlState, message }));
        }
        log.warn({ sessionId: session.sessionId, code: err.code, client: session.client }, message);
      } else {
        log.error({ err, sessionId: session.sessionId }, 'postgres session failed');
      }
      channel.detach();
      channel.socket.end();
      setTimeout(() => channel.socket.destroy(), 1000).unref();
      await close(rejected ? 'SESSION_OUTCOME_REJECTED' : 'SESSION_OUTCOME_FAILED', message);
    } finally {
      if (cancelKey !== null) this.cancels.unregister(cancelKey);
      if (policySession) this.options.policy.endSession(session.sessionId!);
    }
  }

  /**
   * The startup phase: SSLRequest (TLS when configured, else 'N'), GSSENCRequest ('N', the client
   * carries on), CancelRequest (answered by closing), then the StartupMessage.
   */
  private async negotiate(channel: ClientChannel): Promise<Extract<ReturnType<FrontendParser['nextStartup']>, { kind: 'startup' }> | null> {
    let tlsDone = false;
    for (;;) {
      const packet = await channel.nextStartup();
      switch (packet.kind) {
        case 'startup':
          return packet;
        case 'gssenc':
          channel.write(Buffer.from('N'));
          continue;
        case 'cancel':
          this.cancels.cancel(packet.processId, packet.secretKey);
          channel.detach();
          channel.socket.destroy();
          return null;
        case 'ssl': {
          if (!this.tls || tlsDone) {
            channel.write(Buffer.from('N'));
            continue;
          }
          // Bytes sent after SSLRequest but before the handshake would be read as if they came over
          // TLS (CVE-2021-23214); PostgreSQL refuses them, and so does the gateway.
          if (channel.parser.pendingBytes > 0) throw new FrontendProtocolError('unencrypted data after SSLRequest');
          channel.write(Buffer.from('S'));
          channel.detach();
          const secure = new TLSSocket(channel.socket, { isServer: true, secureContext: this.tls });
          await new Promise<void>((resolve, reject) => {
            secure.once('secure', () => resolve());
            secure.once('error', (err) => reject(new FrontendProtocolError(`TLS handshake failed (${err.message})`)));
          });
          secure.on('error', () => undefined);
          channel.replaceSocket(secure);
          tlsDone = true;
          continue;
        }
      }
    }
  }
}

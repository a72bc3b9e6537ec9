import type { AuthContext, ClientChannel, Connection, PseudoTtyInfo, ServerChannel, Session as SshSessionChannel } from 'ssh2';
import type { Logger } from '../../platform/log';
import type { Session } from '../../proto/generated/gapwatch/v1/Session';
import type { SshChannelRequest } from '../../proto/generated/gapwatch/v1/SshChannelRequest';
import type { SshForwarding } from '../../proto/generated/gapwatch/v1/SshForwarding';
import type { AgentIdentity } from '../identity/contract';
import type { JournalWriter } from '../journal/contract';
import { GlobSet } from '../policy/name-patterns';
import { SessionRecorder, unixNanos, nowNanos } from '../postgres/session-recorder';
import { checkPublicKey, checkToken, sshKeyCheck, type SshIdentitySource } from './agent-auth';
import { tokenCheck, type CredentialCheck, type IdentityWatch } from '../identity/identity-watch';
import { AsciicastRecorder } from './asciicast-recorder';
import { bridgeChannels, type BridgeResult, type BridgeTaps } from './channel-bridge';
import type { SshCommandPolicy } from './command-policy';
import type { SshGatewayConfig, SshResourceConfig } from './config-schema';
import { SshGatewayError, SshLoginFormatError, SshUnknownResourceError } from './errors';
import { ScpObserver, scpDirection } from './scp-observer';
import { SftpObserver, type FileOperation } from './sftp-observer';
import { connectUpstream, type UpstreamConnection } from './upstream-connect';

export interface AgentConnectionOptions {
  config: SshGatewayConfig;
  recordingsDir: string;
  journal: JournalWriter;
  identities: SshIdentitySource;
  /** Ends the session when the agent's identity stops being valid (revoked, expired, credential replaced). */
  identityWatch: IdentityWatch;
  policy: SshCommandPolicy;
  log: Logger;
}

/** How long the end of a session waits for its channels' end records. */
const CHANNEL_DRAIN_MS = 5000;

/** RFC 4252 §5.1: the methods the agent may continue with after a failure. */
const AUTH_METHODS: Array<'publickey' | 'password'> = ['publickey', 'password'];

interface PendingChannel {
  number: number;
  env: Record<string, string>;
  pty: PseudoTtyInfo | null;
  /** The upstream channel, once a shell, exec or subsystem started. */
  upstream: ClientChannel | null;
  recording: AsciicastRecorder | null;
}

/**
 * One agent's SSH connection through the gateway: authentication with the gapwatch identity
 * (`identity@resource`), the upstream login with the resource's credential, and every channel and
 * request, each journaled. Nothing the agent asks for reaches the upstream before its record is
 * durable; exec commands pass the command policy first; forwarding is refused unless allowed.
 */
export class AgentConnection {
  private identity: AgentIdentity | null = null;
  private resource: SshResourceConfig | null = null;
  private authFailure = 'the agent disconnected before authenticating';
  private upstream: Promise<UpstreamConnection> | null = null;
  private upstreamConnection: UpstreamConnection | null = null;
  /** Set once the agent's connection has closed: an upstream login still under way is then dropped. */
  private ending = false;
  private channelCount = 0;
  private readonly recorder: SessionRecorder;
  private readonly redactEnv: GlobSet;
  private failure: string | null = null;
  private unwatchIdentity: (() => void) | null = null;
  /** Channels still being bridged: their end records go to the journal before the session's end. */
  private readonly channels = new Set<Promise<void>>();
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly conn: Connection,
    private readonly session: Session,
    private readonly socket: { bytesRead: number; bytesWritten: number },
    private readonly options: AgentConnectionOptions,
  ) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.redactEnv = new GlobSet(options.config.redactEnv);
    this.recorder = new SessionRecorder(options.journal, session, (err) => {
      options.log.error({ err, sessionId: session.sessionId }, 'journal append failed; ending the SSH session');
      this.fail('the audit journal failed');
    });
    const authTimer = setTimeout(() => {
      if (!this.identity) {
        this.authFailure = 'authentication timed out';
        conn.end();
      }
    }, options.config.authTimeoutSeconds * 1000);
    authTimer.unref();
    conn.on('authentication', (ctx) => void this.authenticate(ctx));
    conn.on('ready', () => {
      clearTimeout(authTimer);
      this.ready();
    });
    conn.on('session', (accept) => this.sessionChannel(accept()));
    conn.on('tcpip', (accept, reject, info) => this.track(this.localForward(accept, reject, info)));
    conn.on('openssh.streamlocal', (_accept, reject, info) => {
      this.forwardingRefused({ kind: 'direct-streamlocal', host: info.socketPath }, 'unix');
      reject();
    });
    conn.on('request', (accept, reject, name, info) => void this.globalRequest(accept, reject, name, info as unknown as Record<string, unknown>));
    conn.on('error', (err) => {
      options.log.debug({ err, sessionId: session.sessionId }, 'agent connection error');
      this.failure ??= err.message;
    });
    conn.on('close', () => void this.finish());
  }

  private track(task: Promise<void>): void {
    const settled = task.catch((err: unknown) => this.options.log.error({ err, sessionId: this.sessionId }, 'ssh channel failed'));
    this.channels.add(settled);
    void settled.finally(() => this.channels.delete(settled));
  }

  private get sessionId(): string {
    return this.session.sessionId!;
  }

  private fail(reason: string): void {
    this.failure ??= reason;
    this.conn.end();
  }

  /** `identity@resource` (split at the last "@": logins may contain one), or a configured mapping. */
  private selectResource(username: string): { login: string; resource: SshResourceConfig } {
    const mapped = this.options.config.logins[username];
    let login: string;
    let name: string;
    if (mapped) {
      login = mapped.identity;
      name = mapped.resource;
    } else {
      const at = username.lastIndexOf('@');
      if (at <= 0 || at === username.length - 1) throw new SshLoginFormatError(username);
      login = username.slice(0, at);
      name = username.slice(at + 1);
    }
    const resource = this.options.config.resources.find((candidate) => candidate.name === name);
    if (!resource) throw new SshUnknownResourceError(name);
    return { login, resource };
  }

  private async authenticate(ctx: AuthContext): Promise<void> {
    let selected: { login: string; resource: SshResourceConfig };
    try {
      selected = this.selectResource(ctx.username);
    } catch (err) {
      this.authFailure = (err as Error).message;
      ctx.reject(AUTH_METHODS);
      return;
    }
    this.session.database = ctx.username;
    try {
      if (ctx.method === 'publickey') {
        const check = await checkPublicKey(this.options.identities, selected.login, ctx);
        if (check.result === 'acceptable') return ctx.accept();
        if (check.result === 'refused') {
          this.authFailure = `publickey for ${selected.login}: ${check.reason}`;
          return ctx.reject(AUTH_METHODS);
        }
        this.authenticated(check.identity, 'publickey', selected.resource, sshKeyCheck(this.options.identities, selected.login, ctx.key.data));
        return ctx.accept();
      }
      if (ctx.method === 'password') {
        const check = await checkToken(this.options.identities, selected.login, ctx.password);
        if (!check.ok) {
          this.authFailure = `token for ${selected.login}: ${check.reason}`;
          return ctx.reject(AUTH_METHODS);
        }
        this.authenticated(check.identity, 'token', selected.resource, tokenCheck(this.options.identities, selected.login, check.verifier.storedKey));
        return ctx.accept();
      }
      ctx.reject(AUTH_METHODS);
    } catch (err) {
      this.options.log.error({ err, sessionId: this.sessionId }, 'SSH agent authentication failed unexpectedly');
      this.authFailure = `authentication error: ${(err as Error).message}`;
      ctx.reject(AUTH_METHODS);
    }
  }

  private authenticated(identity: AgentIdentity, method: string, resource: SshResourceConfig, credential: CredentialCheck): void {
    this.identity = identity;
    this.unwatchIdentity = this.options.identityWatch.watch(this.sessionId, identity.login, identity.expiresAtMs, credential, (reason) => this.fail(reason));
    this.resource = resource;
    this.session.identity = { subject: identity.subject, method, claims: identity.claims };
    this.session.resource = resource.name;
    this.session.targetUser = resource.upstream.user;
  }

  private ready(): void {
    const resource = this.resource!;
    this.upstream = connectUpstream(resource).then(async (upstream) => {
      if (this.ending) {
        // The agent left while the upstream login was under way: nothing will use this connection.
        upstream.client.on('error', () => undefined);
        upstream.client.end();
        throw new Error('the agent left before the upstream login finished');
      }
      this.upstreamConnection = upstream;
      this.session.upstream = upstream.remote;
      this.session.upstreamLocal = upstream.local;
      upstream.client.on('error', (err) => this.fail(`upstream: ${err.message}`));
      upstream.client.on('close', () => this.fail('the upstream closed the connection'));
      // The session is on disk before anything the agent asked for reaches the upstream.
      await this.recorder.writeSession();
      await this.recorder.durable();
      this.options.log.info({ sessionId: this.sessionId, identity: this.identity!.subject, resource: resource.name, client: this.session.client }, 'ssh session opened');
      return upstream;
    });
    this.upstream.catch((err: unknown) => {
      if (this.ending) return;
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof SshGatewayError) this.options.log.warn({ sessionId: this.sessionId, code: err.code }, message);
      else this.options.log.error({ err, sessionId: this.sessionId }, 'ssh upstream connection failed');
      this.failure ??= message;
      // Give channel handlers a moment to tell the agent why (stderr) before the connection goes.
      setTimeout(() => this.conn.end(), 500).unref();
    });
  }

  private async finish(): Promise<void> {
    this.ending = true;
    this.unwatchIdentity?.();
    const upstream = this.upstreamConnection;
    this.upstreamConnection = null;
    upstream?.client.removeAllListeners('close');
    upstream?.client.end();
    // Closing the upstream closes its channels; their end records come first (bounded wait).
    await Promise.race([Promise.allSettled([...this.channels]), new Promise((resolve) => setTimeout(resolve, CHANNEL_DRAIN_MS).unref())]);
    const rejected = this.identity === null;
    // A connection that ends for any reason but the agent's own disconnect (upstream lost or refused,
    // journal failure, gateway stopping, the agent's socket breaking) is a failed session.
    const outcome: Session['outcome'] = rejected ? 'SESSION_OUTCOME_REJECTED' : this.failure ? 'SESSION_OUTCOME_FAILED' : 'SESSION_OUTCOME_CLOSED';
    const failure = rejected ? this.authFailure : outcome === 'SESSION_OUTCOME_FAILED' ? (this.failure ?? '') : '';
    await this.recorder.durable().catch(() => undefined);
    await this.recorder
      .writeSession({
        outcome,
        failure,
        endUnixNano: unixNanos(),
        bytesFromClient: String(this.socket.bytesRead),
        bytesToClient: String(this.socket.bytesWritten),
      })
      .catch((err: unknown) => this.options.log.error({ err, sessionId: this.sessionId }, 'could not journal the end of an SSH session'));
    if (rejected) this.options.log.warn({ sessionId: this.sessionId, client: this.session.client }, `ssh session rejected: ${failure}`);
    else this.options.log.info({ sessionId: this.sessionId, outcome }, 'ssh session closed');
    this.resolveDone();
  }

  shutdown(): void {
    this.fail('the gateway stopped');
  }

  private request(detail: Omit<SshChannelRequest, 'accepted'> & { accepted?: boolean }): Promise<unknown> {
    return this.recorder.event({ sshRequest: { accepted: true, ...detail } });
  }

  private fileOperation(channel: number, via: string, operation: FileOperation): void {
    void this.recorder.event({ sshFile: { channel, via, ...operation } });
  }

  private sessionChannel(session: SshSessionChannel): void {
    const channel: PendingChannel = { number: ++this.channelCount, env: {}, pty: null, upstream: null, recording: null };
    const number = channel.number;
    session.on('env', (accept, _reject, info) => {
      channel.env[info.key] = info.val;
      const value = this.redactEnv.matches(info.key) ? '****' : info.val;
      void this.request({ channel: number, type: 'env', envName: info.key, envValue: value });
      accept?.();
    });
    session.on('pty', (accept, _reject, info) => {
      channel.pty = info;
      void this.request({ channel: number, type: 'pty-req', term: info.term, cols: info.cols, rows: info.rows });
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (channel.pty) Object.assign(channel.pty, { cols: info.cols, rows: info.rows, width: info.width, height: info.height });
      void this.request({ channel: number, type: 'window-change', cols: info.cols, rows: info.rows });
      channel.upstream?.setWindow(info.rows, info.cols, info.height, info.width);
      channel.recording?.recordResize(info.cols, info.rows);
      accept?.();
    });
    session.on('signal', (accept, _reject, info) => {
      void this.request({ channel: number, type: 'signal', signal: info.name });
      channel.upstream?.signal(info.name);
      accept?.();
    });
    session.on('auth-agent', (_accept, reject) => {
      this.forwardingRefused({ channel: number, kind: 'auth-agent' }, 'agent');
      reject?.();
    });
    session.on('x11', (_accept, reject) => {
      this.forwardingRefused({ channel: number, kind: 'x11' }, 'x11');
      reject?.();
    });
    session.on('exec', (accept, _reject, info) => this.track(this.exec(channel, accept, info.command)));
    session.on('shell', (accept) => this.track(this.shell(channel, accept)));
    session.on('subsystem', (accept, _reject, info) => this.track(this.subsystem(channel, accept, info.name)));
  }

  /** Tells the agent why its channel ends (a line on stderr, exit status 1) and journals it. */
  private refuseChannel(agent: ServerChannel, channel: number, kind: string, command: string, message: string): void {
    void this.recorder.event({ sshChannelEnd: { channel, kind, command, hasExitStatus: true, exitStatus: 1, error: message } });
    agent.stderr.write(`${message}\n`);
    agent.exit(1);
    agent.end();
  }

  private async exec(channel: PendingChannel, accept: () => ServerChannel, command: string): Promise<void> {
    const agent = accept();
    const number = channel.number;
    let agentGone = false;
    agent.on('close', () => (agentGone = true));
    await this.request({ channel: number, type: 'exec', command }).catch(() => undefined);
    const subject = { resource: this.resource!.name, identity: this.identity!, sessionId: this.sessionId };
    const decision = this.options.policy.decideCommand(subject, command);
    const policyRecord = { statement: command, rule: decision.rule, classes: ['ssh_exec'] };
    if (decision.action === 'deny') {
      void this.recorder.event({ policy: { ...policyRecord, action: 'POLICY_ACTION_DENY', reason: decision.reason } });
      this.refuseChannel(agent, number, 'exec', command, `gapwatch: refused by policy rule ${decision.rule}: ${decision.reason}`);
      return;
    }
    if (decision.action === 'review') {
      const review = this.options.policy.requestReview(subject, command, decision);
      void this.recorder.event({ policy: { ...policyRecord, action: 'POLICY_ACTION_REVIEW', reason: decision.reason, reviewId: review.reviewId } });
      agent.stderr.write(`gapwatch: the command is held for review ${review.reviewId} (${decision.reason}); waiting for \`gapwatch approve ${review.reviewId}\`\n`);
      agent.once('close', () => review.withdraw('the agent closed the channel'));
      const outcome = await review.outcome;
      if (outcome.outcome !== 'approved') {
        const action = outcome.outcome === 'denied' ? 'POLICY_ACTION_REJECTED' : 'POLICY_ACTION_TIMED_OUT';
        const reason = outcome.outcome === 'denied' ? outcome.reason : 'no decision in time';
        void this.recorder.event({ policy: { ...policyRecord, action, reviewId: review.reviewId, reason, reviewer: outcome.outcome === 'denied' ? outcome.reviewer : '' } });
        if (!agentGone) this.refuseChannel(agent, number, 'exec', command, `gapwatch: review ${review.reviewId} ${outcome.outcome === 'denied' ? `denied by ${outcome.reviewer}: ${reason}` : 'timed out'}`);
        return;
      }
      void this.recorder.event({ policy: { ...policyRecord, action: 'POLICY_ACTION_APPROVED', reviewId: review.reviewId, reviewer: outcome.reviewer } });
      if (agentGone) return;
    } else {
      void this.recorder.event({ policy: { ...policyRecord, action: 'POLICY_ACTION_ALLOW' } });
    }
    const scp = scpDirection(command);
    let taps: BridgeTaps = {};
    let scpObserver: ScpObserver | null = null;
    if (scp) {
      scpObserver = new ScpObserver(scp.direction, scp.target, (operation) => this.fileOperation(number, 'scp', operation));
      taps = scp.direction === 'upload' ? { fromAgent: (chunk) => scpObserver!.senderData(chunk) } : { fromUpstream: (chunk) => scpObserver!.senderData(chunk) };
    }
    await this.run(channel, agent, 'exec', command, (client, done) => client.exec(command, { env: channel.env, ...(channel.pty ? { pty: channel.pty } : {}) }, done), taps, () => scpObserver?.finish());
  }

  private async shell(channel: PendingChannel, accept: () => ServerChannel): Promise<void> {
    const agent = accept();
    const number = channel.number;
    await this.request({ channel: number, type: 'shell' }).catch(() => undefined);
    const pty = channel.pty;
    const recording = new AsciicastRecorder(this.options.recordingsDir, `${this.sessionId}-${number}`, {
      width: pty?.cols ?? 80,
      height: pty?.rows ?? 24,
      term: pty?.term ?? 'dumb',
      title: `gapwatch ${this.sessionId} ${this.identity!.subject}@${this.resource!.name}`,
    });
    channel.recording = recording;
    void this.recorder.event({
      sshRecording: { channel: number, path: recording.path, inputPath: recording.inputPath, inputSensitive: true, width: pty?.cols ?? 80, height: pty?.rows ?? 24, finished: false },
    });
    const taps: BridgeTaps = { fromAgent: (chunk) => recording.recordInput(chunk), fromUpstream: (chunk) => recording.recordOutput(chunk) };
    await this.run(channel, agent, 'shell', '', (client, done) => client.shell(pty ? { ...pty } : false, { env: channel.env }, done), taps, () => {
      const { outputSha256, inputSha256 } = recording.finish();
      channel.recording = null;
      void this.recorder.event({
        sshRecording: {
          channel: number,
          path: recording.path,
          inputPath: recording.inputPath,
          inputSensitive: true,
          width: pty?.cols ?? 80,
          height: pty?.rows ?? 24,
          outputBytes: String(recording.outputBytes),
          inputBytes: String(recording.inputBytes),
          outputSha256,
          inputSha256,
          finished: true,
        },
      });
    });
  }

  private async subsystem(channel: PendingChannel, accept: () => ServerChannel, name: string): Promise<void> {
    const agent = accept();
    const number = channel.number;
    await this.request({ channel: number, type: 'subsystem', command: name }).catch(() => undefined);
    let taps: BridgeTaps = {};
    let sftp: SftpObserver | null = null;
    if (name === 'sftp') {
      sftp = new SftpObserver((operation) => this.fileOperation(number, 'sftp', operation));
      taps = { fromAgent: (chunk) => sftp!.agentData(chunk), fromUpstream: (chunk) => sftp!.serverData(chunk) };
    }
    await this.run(channel, agent, 'subsystem', name, (client, done) => client.subsys(name, done), taps, () => sftp?.finish());
  }

  /**
   * Opens the upstream side of a session channel once the records so far are durable, joins the
   * two, and journals how it ended. An upstream that is unavailable becomes a stderr line.
   */
  private async run(
    channel: PendingChannel,
    agent: ServerChannel,
    kind: string,
    command: string,
    open: (client: UpstreamConnection['client'], done: (err: Error | undefined, stream: ClientChannel) => void) => void,
    taps: BridgeTaps,
    onEnd: () => void,
  ): Promise<void> {
    const number = channel.number;
    const started = nowNanos();
    let upstream: ClientChannel;
    try {
      const connection = await this.upstream!;
      await this.recorder.durable();
      upstream = await new Promise<ClientChannel>((resolve, reject) => open(connection.client, (err, stream) => (err ? reject(err) : resolve(stream))));
    } catch (err) {
      onEnd();
      if (agent.writable) this.refuseChannel(agent, number, kind, command, `gapwatch: ${(err as Error).message}`);
      return;
    }
    channel.upstream = upstream;
    let result: BridgeResult;
    try {
      result = await bridgeChannels(agent, upstream, taps);
    } finally {
      channel.upstream = null;
      onEnd();
    }
    void this.recorder.event({
      sshChannelEnd: {
        channel: number,
        kind,
        command,
        hasExitStatus: result.exitStatus !== null,
        exitStatus: result.exitStatus ?? 0,
        exitSignal: result.exitSignal ?? '',
        stdinBytes: String(result.stdinBytes),
        stdoutBytes: String(result.stdoutBytes),
        stderrBytes: String(result.stderrBytes),
        durationNano: String(nowNanos() - started),
      },
    });
  }

  private forwardingRefused(detail: Omit<SshForwarding, 'allowed'>, kind: 'agent' | 'x11' | 'unix'): void {
    void this.recorder.event({
      sshForwarding: { ...detail, allowed: false, rule: '', reason: `${kind} forwarding is not available through the gateway` },
    });
  }

  /** direct-tcpip (`ssh -L`, `ssh -W`): refused unless a forwarding rule allows the destination. */
  private async localForward(
    accept: () => ServerChannel,
    reject: () => void,
    info: { srcIP: string; srcPort: number; destIP: string; destPort: number },
  ): Promise<void> {
    const number = ++this.channelCount;
    const subject = { resource: this.resource!.name, identity: this.identity! };
    const decision = this.options.policy.decideForwarding(subject, 'local', `${info.destIP}:${info.destPort}`);
    const record: SshForwarding = { channel: number, kind: 'direct-tcpip', host: info.destIP, port: info.destPort, originatorHost: info.srcIP, originatorPort: info.srcPort, allowed: decision.allowed, rule: decision.rule, reason: decision.allowed ? '' : decision.reason };
    await this.recorder.event({ sshForwarding: record }).catch(() => undefined);
    if (!decision.allowed) return reject();
    try {
      const connection = await this.upstream!;
      const upstream = await new Promise<ClientChannel>((resolve, fail) =>
        connection.client.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, stream) => (err ? fail(err) : resolve(stream))),
      );
      const agent = accept();
      let toTarget = 0;
      let fromTarget = 0;
      agent.on('data', (chunk: Buffer) => (toTarget += chunk.length));
      upstream.on('data', (chunk: Buffer) => (fromTarget += chunk.length));
      agent.pipe(upstream).pipe(agent);
      agent.on('error', () => upstream.close());
      upstream.on('error', () => agent.close());
      upstream.once('close', () => {
        agent.end();
        void this.recorder.event({ sshForwarding: { ...record, bytesToTarget: String(toTarget), bytesFromTarget: String(fromTarget) } });
      });
    } catch (err) {
      void this.recorder.event({ error: { code: 'GW_ERR_SSH_FORWARD', message: (err as Error).message } });
      reject();
    }
  }

  /** tcpip-forward (`ssh -R`) and the other global requests: refused unless a rule allows them. */
  private async globalRequest(
    accept: ((port?: number) => void) | undefined,
    reject: (() => void) | undefined,
    name: string,
    info: Record<string, unknown>,
  ): Promise<void> {
    if (name === 'tcpip-forward' || name === 'cancel-tcpip-forward') {
      const host = String(info.bindAddr ?? '');
      const port = Number(info.bindPort ?? 0);
      if (name === 'cancel-tcpip-forward') {
        this.upstreamConnection?.client.unforwardIn(host, port);
        accept?.();
        return;
      }
      const subject = { resource: this.resource!.name, identity: this.identity! };
      const decision = this.options.policy.decideForwarding(subject, 'remote', `${host}:${port}`);
      await this.recorder
        .event({ sshForwarding: { kind: name, host, port, allowed: decision.allowed, rule: decision.rule, reason: decision.allowed ? '' : decision.reason } })
        .catch(() => undefined);
      if (!decision.allowed) return reject?.();
      try {
        const connection = await this.upstream!;
        const bound = await new Promise<number>((resolve, fail) => connection.client.forwardIn(host, port, (err, chosen) => (err ? fail(err) : resolve(chosen))));
        this.relayRemoteConnections(connection);
        accept?.(bound);
      } catch (err) {
        void this.recorder.event({ error: { code: 'GW_ERR_SSH_FORWARD', message: (err as Error).message } });
        reject?.();
      }
      return;
    }
    this.forwardingRefused({ kind: name, host: String(info.socketPath ?? '') }, 'unix');
    reject?.();
  }

  private relaying = false;

  /** Connections the upstream accepts on a remote forward are opened back to the agent. */
  private relayRemoteConnections(connection: UpstreamConnection): void {
    if (this.relaying) return;
    this.relaying = true;
    connection.client.on('tcp connection', (details, acceptUpstream, rejectUpstream) => {
      this.conn.forwardOut(details.destIP, details.destPort, details.srcIP, details.srcPort, (err, agent) => {
        if (err) return rejectUpstream();
        const upstream = acceptUpstream();
        agent.pipe(upstream).pipe(agent);
        agent.on('error', () => upstream.close());
        upstream.on('error', () => agent.close());
      });
    });
  }
}

import type { Socket } from 'node:net';
import { loadGatewayAddon } from '../../native/binding';
import { NATIVE_LOOK_MS } from '../journal/journal';
import type { HttpGatewayConfig } from './config-schema';

/**
 * The HTTP gateway's native data path (native/addon/http-datapath.cc): agent connections are handed
 * to one epoll thread at accept; it serves the requests JavaScript allowed and hands the connection
 * back for anything else. See gateway/http/README.md, "The native data path".
 */

/** What one agent connection's sessions did natively, to be continued (hand-back) or ended. */
export interface NativeSessionCounters {
  sessionId: string;
  eventSeq: number;
  exchanges: number;
  bytesFromClient: number;
  bytesToClient: number;
}

/** A request the loop has no kept decision for. */
export interface NativeQuestion {
  kind: 'decide';
  handle: number;
  question: number;
  method: string;
  /** Normalised (request-target.ts's one spelling), before routing. */
  path: string;
  query: string;
  /** Raw header bytes (Node reads them as latin1). */
  host: Buffer;
  authorization?: Buffer;
}

export interface NativeHandBack {
  kind: 'handback';
  handle: number;
  fd: number;
  /** Bytes the loop read and did not consume: the request being handed back, and any after it. */
  rest: Buffer;
  /** The end of a response the agent had not taken yet: written before anything else. */
  pending: Buffer;
  bytesIn: number;
  bytesOut: number;
  sessions: NativeSessionCounters[];
}

export interface NativeEnded {
  kind: 'ended';
  handle: number;
  failure: string;
  bytesIn: number;
  bytesOut: number;
  sessions: NativeSessionCounters[];
}

/** Where an allowed request goes: given with the first decision naming the target. */
export interface NativeTargetSpec {
  address: string;
  port: number;
  /** The Host header sent upstream (the upstream URL's host). */
  hostHeader: string;
  /** The resource credential's header name ('' without one): never forwarded from the agent. */
  credentialHeader: string;
  resource: string;
}

/** An allow decision, kept by the loop for requests with the same Authorization, Host, method and path. */
export interface NativeAnswer {
  login: string;
  resource: string;
  target: number;
  targetSpec?: NativeTargetSpec;
  routePath: string;
  upstreamPath: string;
  rule: string;
  credentialName: string;
  credentialValue: string;
  secret: string;
  validMs: number;
  /** Files whose change drops every kept decision (identity file, credential file). */
  files: string[];
  session: { sessionId: string; eventSeq: number; exchanges: number };
}

type NativeEvent = NativeQuestion | NativeHandBack | NativeEnded;

interface HttpDataPathAddon {
  HttpDataPath: new (
    chain: object,
    onEvents: (events: NativeEvent[]) => void,
    settings: object,
  ) => {
    adopt(fd: number, handle: number, clientIp: string): void;
    decided(handle: number, question: number, answer: NativeAnswer | null): void;
    stop(): void;
  };
}

export interface NativeHttpHandlers {
  decide(question: NativeQuestion): Promise<NativeAnswer | null>;
  handBack(event: NativeHandBack): void;
  ended(event: NativeEnded): void;
}

export class NativeHttpDataPath {
  private readonly loop: InstanceType<HttpDataPathAddon['HttpDataPath']>;
  private nextHandle = 1;
  private live = 0;
  private poll: NodeJS.Timeout | null = null;
  /** Questions asked (requests the loop had no kept decision for), and connections handed back. */
  adopted = 0;
  questions = 0;
  handBacks = 0;

  constructor(
    chain: object,
    config: HttpGatewayConfig,
    private readonly handlers: NativeHttpHandlers,
    private readonly onWritten: () => void,
  ) {
    const addon = loadGatewayAddon().exports as HttpDataPathAddon;
    const { limits, record } = config;
    const redact = new Set(record.redactHeaders);
    for (const resource of config.resources) if (resource.credential) redact.add(resource.credential.header);
    this.loop = new addon.HttpDataPath(chain, (events) => this.onEvents(events), {
      maxHeaderBytes: limits.maxHeaderBytes,
      maxBodyBytes: limits.maxBodyBytes,
      bufferBodyBytes: limits.bufferBodyBytes,
      headersTimeoutMs: limits.headersTimeoutMs,
      requestTimeoutMs: limits.requestTimeoutMs,
      keepAliveTimeoutMs: limits.keepAliveTimeoutMs,
      upstreamTimeoutMs: limits.upstreamTimeoutMs,
      writeAhead: record.writeAhead,
      readDurable: record.readDurability === 'durable',
      bodyBytes: record.bodyBytes,
      binaryBodies: record.binaryBodies,
      recordHeaders: record.headers,
      redactHeaders: [...redact],
    });
  }

  static available(): boolean {
    return typeof (loadGatewayAddon().exports as Partial<HttpDataPathAddon> | null)?.HttpDataPath === 'function';
  }

  /** Takes over an accepted agent connection (its descriptor is dup'd; the Node socket is destroyed here). Returns its handle. */
  adopt(socket: Socket, clientIp: string): number {
    const handle = this.nextHandle++;
    const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
    this.loop.adopt(fd, handle, clientIp);
    socket.destroy();
    this.live += 1;
    this.adopted += 1;
    this.poll ??= setInterval(() => this.onWritten(), NATIVE_LOOK_MS);
    return handle;
  }

  stop(): void {
    this.loop.stop();
    if (this.poll) clearInterval(this.poll);
    this.poll = null;
  }

  private onEvents(events: NativeEvent[]): void {
    for (const e of events) {
      if (e.kind === 'decide') {
        this.questions += 1;
        this.handlers.decide(e).then(
          (answer) => this.loop.decided(e.handle, e.question, answer),
          () => this.loop.decided(e.handle, e.question, null),
        );
        continue;
      }
      this.live -= 1;
      if (e.kind === 'handback') {
        this.handBacks += 1;
        this.handlers.handBack(e);
      } else {
        this.handlers.ended(e);
      }
      if (this.live === 0 && this.poll) {
        clearInterval(this.poll);
        this.poll = null;
      }
    }
    // The loop's outcomes are in the chain: the journal learns of them (and of the sync thread's rounds).
    this.onWritten();
  }
}

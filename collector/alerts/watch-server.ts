import * as grpc from '@grpc/grpc-js';
import { readPem } from '../../gateway/audit/tls-files';
import { shutdownGrpcServer } from '../../platform/grpc-shutdown';
import type { Logger } from '../../platform/log';
import { loadGapwatchProto } from '../../proto/load';
import type { Alert__Output } from '../../proto/generated/gapwatch/v1/Alert';
import type { AlertNotice } from '../../proto/generated/gapwatch/v1/AlertNotice';
import type { AlertWatchHandlers } from '../../proto/generated/gapwatch/v1/AlertWatch';
import type { WatchAlertsRequest__Output } from '../../proto/generated/gapwatch/v1/WatchAlertsRequest';
import { AlertWatchListenError, AlertWatchTlsFileError } from '../errors';
import { alertMessage, type CollectorAlert } from './alert';
import type { AlertSink } from './contract';
import type { AlertWatchConfig } from './watch-config-schema';

type WatchCall = grpc.ServerWritableStream<WatchAlertsRequest__Output, AlertNotice>;

const SEVERITY_RANK: Record<string, number> = { SEVERITY_UNSPECIFIED: 0, SEVERITY_INFO: 1, SEVERITY_WARNING: 2, SEVERITY_CRITICAL: 3 };

export interface AlertWatchStats {
  watchers: number;
  /** Notices handed to gRPC for watchers. */
  sent: number;
  /** Alerts dropped from the queue of a watcher that read too slowly (each one reported to it as `missed`). */
  dropped: number;
}

/** One WatchAlerts call: its filter, and the alerts waiting while HTTP/2 will not take more. */
class Watcher {
  private readonly queue: Alert__Output[] = [];
  private missed = 0;
  private blocked = false;
  private ended = false;

  constructor(
    readonly call: WatchCall,
    private readonly request: WatchAlertsRequest__Output,
    private readonly maxQueue: number,
    private readonly stats: AlertWatchStats,
    private readonly onDrop: (watcher: Watcher, missed: number) => void,
  ) {}

  wants(alert: Alert__Output): boolean {
    const min = SEVERITY_RANK[String(this.request.minSeverity)] ?? 0;
    if ((SEVERITY_RANK[alert.severity] ?? 0) < min) return false;
    if (this.request.resources.length > 0 && !this.request.resources.includes(alert.resource)) return false;
    if (this.request.kinds.length > 0 && !this.request.kinds.includes(alert.kind)) return false;
    return true;
  }

  push(alert: Alert__Output): void {
    if (this.ended) return;
    if (this.queue.length >= this.maxQueue) {
      this.queue.shift();
      this.missed++;
      this.stats.dropped++;
      this.onDrop(this, this.missed);
    }
    this.queue.push(alert);
    this.pump();
  }

  /** Hands gRPC everything still queued (at most maxQueue, so bounded even past the high-water mark), then ends the call. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const alert of this.queue.splice(0)) {
      this.call.write({ alert, missed: String(this.missed) });
      this.missed = 0;
      this.stats.sent++;
    }
    this.call.end();
  }

  gone(): void {
    this.ended = true;
    this.queue.length = 0;
  }

  /**
   * write() returning false means the call's buffer is over its high-water mark: gRPC has the message
   * but HTTP/2 has not taken it, because the watcher's receive window is closed. Nothing more is
   * written until 'drain'; meanwhile alerts wait in this watcher's bounded queue.
   */
  private pump(): void {
    while (!this.blocked && !this.ended && this.queue.length > 0) {
      const alert = this.queue.shift()!;
      const room = this.call.write({ alert, missed: String(this.missed) });
      this.missed = 0;
      this.stats.sent++;
      if (!room) {
        this.blocked = true;
        this.call.once('drain', () => {
          this.blocked = false;
          this.pump();
        });
      }
    }
  }
}

/**
 * The collector's gRPC AlertWatch service, and an alert sink: every alert the pipeline delivers goes
 * to each connected watcher whose filter (minimum severity, resources, kinds) it matches. Mutual TLS
 * only: the handshake requires a client certificate of the configured CA, so a watcher without one
 * never reaches the handler. Watchers get alerts raised while they are connected (the store keeps the
 * history); a slow watcher has a bounded queue, and the next notice it gets says how many it missed.
 */
export class AlertWatchServer implements AlertSink {
  readonly name = 'grpc WatchAlerts';
  private server: grpc.Server | null = null;
  private boundPort = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly counters: AlertWatchStats = { watchers: 0, sent: 0, dropped: 0 };

  constructor(
    private readonly config: AlertWatchConfig,
    private readonly log: Logger,
  ) {}

  /** True when collector.alerts.watch has its TLS files; without them the service stays off. */
  static enabled(config: AlertWatchConfig): boolean {
    return config.tls.caFile !== null && config.tls.certFile !== null && config.tls.keyFile !== null;
  }

  async start(): Promise<string> {
    const { config, log } = this;
    const tls = config.tls;
    if (tls.caFile === null || tls.certFile === null || tls.keyFile === null) {
      return 'alert watch (gRPC WatchAlerts) off: collector.alerts.watch.tls has no certificates (see `gapwatch certs init`)';
    }
    const failure = (role: string, file: string, cause: unknown): Error => new AlertWatchTlsFileError(role, file, cause);
    const credentials = grpc.ServerCredentials.createSsl(
      readPem('client CA (collector.alerts.watch.tls.caFile)', tls.caFile, failure),
      [
        {
          cert_chain: readPem('certificate (collector.alerts.watch.tls.certFile)', tls.certFile, failure),
          private_key: readPem('private key (collector.alerts.watch.tls.keyFile)', tls.keyFile, failure),
        },
      ],
      true, // checkClientCertificate: no anonymous watcher
    );
    const server = new grpc.Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000 });
    const handlers: AlertWatchHandlers = { WatchAlerts: (call) => this.watch(call) };
    server.addService(loadGapwatchProto().gapwatch.v1.AlertWatch.service, handlers);
    const host = config.listen.host;
    const target = `${host.includes(':') ? `[${host}]` : host}:${config.listen.port}`;
    this.boundPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(target, credentials, (err, port) => (err ? reject(new AlertWatchListenError(target, err)) : resolve(port))),
    );
    this.server = server;
    log.info({ host, port: this.boundPort }, 'alert watch listening (mutual TLS)');
    return `alert watch (gRPC WatchAlerts, mutual TLS) on ${host}:${this.boundPort}`;
  }

  /** The bound port (the real one when the configuration said 0); 0 while off. */
  get port(): number {
    return this.boundPort;
  }

  stats(): AlertWatchStats {
    return { ...this.counters, watchers: this.watchers.size };
  }

  deliver(alert: CollectorAlert): void {
    if (this.watchers.size === 0) return;
    const message = alertMessage(alert);
    for (const watcher of this.watchers) if (watcher.wants(message)) watcher.push(message);
  }

  /** Sends every watcher what is queued for it, ends the calls and stops listening. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const watcher of this.watchers) watcher.end();
    this.watchers.clear();
    if (!server) return;
    await shutdownGrpcServer(server);
  }

  private watch(call: WatchCall): void {
    if (this.watchers.size >= this.config.maxWatchers) {
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `the collector serves at most ${this.config.maxWatchers} alert watchers (collector.alerts.watch.maxWatchers)` });
      return;
    }
    const peer = call.getPeer();
    const subject = call.getAuthContext().sslPeerCertificate?.subject?.CN ?? '';
    let warned = false;
    const watcher = new Watcher(call, call.request, this.config.maxQueue, this.counters, (_w, missed) => {
      if (warned) return;
      warned = true;
      this.log.warn({ peer, subject, missed }, 'an alert watcher reads too slowly; its oldest queued alerts are dropped and the next notice says how many');
    });
    this.watchers.add(watcher);
    const leave = (): void => {
      if (!this.watchers.delete(watcher)) return;
      watcher.gone();
      this.log.info({ peer, subject }, 'alert watcher gone');
    };
    call.on('cancelled', leave);
    call.on('close', leave);
    call.on('error', leave);
    this.log.info({ peer, subject, filter: call.request }, 'alert watcher connected');
  }
}

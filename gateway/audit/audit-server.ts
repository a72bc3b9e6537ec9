import * as grpc from '@grpc/grpc-js';
import { shutdownGrpcServer } from '../../platform/grpc-shutdown';
import type { Logger } from '../../platform/log';
import { loadGapwatchProto } from '../../proto/load';
import type { AuditHandlers } from '../../proto/generated/gapwatch/v1/Audit';
import type { JournalRecord, JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { ResourcesResponse } from '../../proto/generated/gapwatch/v1/ResourcesResponse';
import type { SubscribeFilter__Output } from '../../proto/generated/gapwatch/v1/SubscribeFilter';
import type { SubscribeRequest__Output } from '../../proto/generated/gapwatch/v1/SubscribeRequest';
import type { JournalReader } from '../journal/contract';
import type { AuditConfig } from './config-schema';
import { AuditListenError } from './errors';
import type { ListenAddress } from './resource-catalog';
import { readPem } from './tls-files';

export interface AuditServerOptions {
  config: AuditConfig;
  journal: JournalReader;
  /** Asked at each ListResources call, so the answer follows the listeners' actual addresses. */
  resources: (audit: ListenAddress) => ResourcesResponse;
  log: Logger;
}

export interface AuditServerStats {
  /** Subscribe streams open now. */
  subscribers: number;
  /** Records taken from the journal for subscribers (sent, or being sent). */
  recordsRead: number;
  /** Records whose write the transport has completed. */
  recordsSent: number;
}

type SubscribeCall = grpc.ServerWritableStream<SubscribeRequest__Output, JournalRecord>;

const BODIES = new Set(['session', 'event', 'checkpoint', 'gap']);

/**
 * The gateway's gRPC Audit service: `Subscribe` streams the journal from any seq and then follows it;
 * `ListResources` answers what the gateway protects and where it listens.
 *
 * Only mutual TLS is served: the server presents its certificate and requires a client certificate
 * signed by the configured CA during the TLS handshake, so a client without one never reaches a handler.
 *
 * Flow control: records are pulled from the journal one at a time and written only while the call's
 * write buffer has room; when `write()` returns false the stream waits for 'drain', which gRPC emits once
 * the HTTP/2 stream has taken the bytes, and HTTP/2 only takes them while the subscriber's receive window
 * is open. A subscriber that stops reading therefore stops the journal reader; nothing piles up here.
 */
export class AuditServer {
  private server: grpc.Server | null = null;
  private boundPort = 0;
  private readonly calls = new Set<AbortController>();
  private readonly counters: AuditServerStats = { subscribers: 0, recordsRead: 0, recordsSent: 0 };

  constructor(private readonly options: AuditServerOptions) {}

  async start(): Promise<string[]> {
    const { config, log } = this.options;
    const tls = config.tls;
    if (tls.caFile === null || tls.certFile === null || tls.keyFile === null) {
      return ['audit stream off: gateway.audit.tls has no certificates (collectors cannot subscribe; see `gapwatch certs init`)'];
    }
    const credentials = grpc.ServerCredentials.createSsl(
      readPem('client CA (gateway.audit.tls.caFile)', tls.caFile),
      [{ cert_chain: readPem('certificate (gateway.audit.tls.certFile)', tls.certFile), private_key: readPem('private key (gateway.audit.tls.keyFile)', tls.keyFile) }],
      true, // checkClientCertificate: no anonymous subscriber
    );
    const server = new grpc.Server({ 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 10_000 });
    const handlers: AuditHandlers = {
      Subscribe: (call) => void this.subscribe(call),
      ListResources: (_call, callback) => callback(null, this.options.resources(this.address())),
    };
    server.addService(loadGapwatchProto().gapwatch.v1.Audit.service, handlers);
    const target = `${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${config.listen.port}`;
    this.boundPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(target, credentials, (err, port) => (err ? reject(new AuditListenError(target, err)) : resolve(port))),
    );
    this.server = server;
    log.info({ address: this.address() }, 'audit stream listening (mutual TLS)');
    return [`audit stream (gRPC, mutual TLS) on ${config.listen.host}:${this.boundPort}`];
  }

  /** The bound address; the port is the real one when the configuration said 0. */
  address(): ListenAddress {
    return { host: this.options.config.listen.host, port: this.boundPort };
  }

  get listening(): boolean {
    return this.server !== null;
  }

  stats(): AuditServerStats {
    return { ...this.counters };
  }

  /** Ends every stream (subscribers resume from their position elsewhere or later) and stops listening. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    for (const call of this.calls) call.abort();
    await shutdownGrpcServer(server);
  }

  private async subscribe(call: SubscribeCall): Promise<void> {
    const { config, journal, log } = this.options;
    if (this.counters.subscribers >= config.maxSubscribers) {
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `the gateway serves at most ${config.maxSubscribers} subscribers (gateway.audit.maxSubscribers)` });
      return;
    }
    const filter = call.request.filter;
    const invalid = (filter?.bodies ?? []).filter((body) => !BODIES.has(body));
    if (invalid.length > 0) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `unknown record bodies in filter: ${invalid.join(', ')} (known: ${[...BODIES].join(', ')})` });
      return;
    }
    const abort = new AbortController();
    this.calls.add(abort);
    this.counters.subscribers++;
    const peer = call.getPeer();
    const subject = call.getAuthContext().sslPeerCertificate?.subject?.CN ?? '';
    // The subscriber went away (cancelled, reset): nothing more can be sent. A stop() of the server
    // aborts too, but then the call is still open and is ended, so the subscriber reconnects.
    let gone = false;
    const leave = (): void => {
      gone = true;
      abort.abort();
    };
    call.on('cancelled', leave);
    call.on('close', leave);
    call.on('error', leave);
    const fromSeq = BigInt(call.request.fromSeq || '0');
    log.info({ peer, subject, fromSeq: fromSeq.toString() }, 'audit subscriber connected');
    let sent = 0;
    try {
      for await (const record of journal.read(fromSeq < 1n ? 1n : fromSeq, { follow: true, signal: abort.signal })) {
        if (abort.signal.aborted) break;
        if (!matches(filter, record)) continue;
        this.counters.recordsRead++;
        const room = call.write(record, () => this.counters.recordsSent++);
        sent++;
        if (!room && !(await drained(call, abort.signal))) break;
      }
      if (!gone) call.end();
    } catch (err) {
      log.error({ err, peer }, 'audit stream failed');
      if (!gone) call.emit('error', { code: grpc.status.UNAVAILABLE, details: `the gateway journal cannot be read: ${(err as Error).message}` });
    } finally {
      this.counters.subscribers--;
      this.calls.delete(abort);
      log.info({ peer, subject, sent }, 'audit subscriber gone');
    }
  }
}

function matches(filter: SubscribeFilter__Output | null | undefined, record: JournalRecord__Output): boolean {
  if (!filter) return true;
  if (filter.bodies.length > 0 && !filter.bodies.includes(record.body ?? '')) return false;
  if (filter.resources.length > 0 && record.session && !filter.resources.includes(record.session.resource)) return false;
  return true;
}

/** Resolves true on 'drain', false when the call ends or is aborted first. */
function drained(call: SubscribeCall, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const done = (value: boolean) => () => {
      call.off('drain', onDrain);
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onDrain = done(true);
    const onAbort = done(false);
    call.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

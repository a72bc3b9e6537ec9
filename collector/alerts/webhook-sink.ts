import { createHmac, timingSafeEqual } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Logger } from '../../platform/log';
import type { CollectorAlert } from './alert';
import type { AlertSink } from './contract';

/**
 * Signature headers: X-Gapwatch-Timestamp is the send time in Unix seconds; X-Gapwatch-Signature is
 * "sha256=" + hex HMAC-SHA256 over `${timestamp}.${body}` with the shared secret. Binding the timestamp
 * lets a receiver refuse replays older than it tolerates.
 */
export const SIGNATURE_HEADER = 'x-gapwatch-signature';
export const TIMESTAMP_HEADER = 'x-gapwatch-timestamp';

export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** For receivers: true when the signature is the sender's for this timestamp and body. */
export function verifyWebhook(secret: string, timestamp: string, body: string, signature: string): boolean {
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface WebhookOptions {
  url: string;
  format: 'generic' | 'slack';
  secret: string | null;
  attempts: number;
  timeoutMs: number;
  maxQueue: number;
  /** First retry delay; doubles per attempt. */
  retryBaseMs?: number;
  /** POSTs in flight at once (1: strictly in order). */
  concurrency?: number;
}

export interface WebhookStats {
  delivered: number;
  failed: number;
  dropped: number;
}

const SEVERITY_MARK: Record<CollectorAlert['severity'], string> = { critical: ':rotating_light:', warning: ':warning:', info: ':information_source:' };

export function webhookBody(alert: CollectorAlert, format: WebhookOptions['format']): string {
  if (format === 'generic') return JSON.stringify({ type: 'gapwatch.alert', alert });
  const lineage = alert.lineage.map((p) => `${p.comm}[${p.pid}]`).join(' ← ');
  const fields = [
    `*resource* ${alert.resource || '-'}  *destination* ${alert.destination || '-'}`,
    `*process* ${alert.process ? `${alert.process.comm}[${alert.process.pid}] ${alert.process.filename}` : '-'}`,
    `*agent run* ${alert.agentRun ? `${alert.agentRun.agent} ${alert.agentRun.execId}` : 'none'}  *host* ${alert.host}`,
    `*lineage* ${lineage || '-'}`,
    `*rule* ${alert.rule}  *count* ${alert.count}`,
  ];
  const text = `${SEVERITY_MARK[alert.severity]} gapwatch ${alert.severity}: ${alert.summary}`;
  return JSON.stringify({
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text } },
      { type: 'section', text: { type: 'mrkdwn', text: fields.join('\n') } },
    ],
  });
}

/**
 * POSTs each alert to a URL, up to `concurrency` at once over kept-alive connections, retrying with
 * exponential backoff on network errors, timeouts, 429 and 5xx (other 4xx are final: the receiver
 * refused the body). With concurrency 1 alerts arrive strictly in order; above it an alert being
 * retried does not hold the ones behind it (each carries its time; receivers order by that). The queue
 * is bounded; an alert dropped from it is counted and logged, never silently.
 *
 * Why not fetch(): under load, Node 20's fetch costs several times the CPU of node:http per request
 * (WHATWG streams on both sides), and with one POST at a time each alert waited for every one before
 * it: bench/alert-latency measured a webhook p99 of seconds under a connect storm.
 */
export class WebhookSink implements AlertSink {
  readonly name: string;
  private readonly queue: CollectorAlert[] = [];
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private inFlight = 0;
  private readonly idleWaiters: Array<() => void> = [];
  private closing = false;
  readonly stats: WebhookStats = { delivered: 0, failed: 0, dropped: 0 };

  constructor(
    private readonly options: WebhookOptions,
    private readonly log: Logger,
  ) {
    this.url = new URL(options.url);
    this.name = `webhook ${this.url.origin}`;
    // Idle connections are closed after 4 s, before a receiver with Node's default 5 s keep-alive
    // timeout closes them: reusing a connection the receiver is closing fails the POST (and costs a retry).
    const agentOptions = { keepAlive: true, maxSockets: this.concurrency, maxFreeSockets: this.concurrency, scheduling: 'lifo' as const, timeout: 4000 };
    this.agent = this.url.protocol === 'https:' ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  }

  private get concurrency(): number {
    return Math.max(1, this.options.concurrency ?? 4);
  }

  deliver(alert: CollectorAlert): void {
    if (this.queue.length >= this.options.maxQueue) {
      const dropped = this.queue.shift()!;
      this.stats.dropped++;
      this.log.error({ sink: this.name, alertId: dropped.alertId, dropped: this.stats.dropped }, 'webhook queue full; oldest alert dropped (it is still in the log and the store)');
    }
    this.queue.push(alert);
    this.pump();
  }

  /** Resolves when everything queued so far has been delivered or given up on. */
  async idle(): Promise<void> {
    if (this.inFlight === 0 && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.idle();
    this.agent.destroy();
  }

  private pump(): void {
    while (this.inFlight < this.concurrency && this.queue.length > 0) {
      const alert = this.queue.shift()!;
      this.inFlight++;
      void this.send(alert).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.inFlight === 0 && this.queue.length === 0) for (const wake of this.idleWaiters.splice(0)) wake();
      });
    }
  }

  private async send(alert: CollectorAlert): Promise<void> {
    const body = webhookBody(alert, this.options.format);
    const base = this.options.retryBaseMs ?? 200;
    for (let attempt = 1; ; attempt++) {
      let problem: string;
      let retryable = true;
      try {
        const status = await this.post(body);
        if (status >= 200 && status < 300) {
          this.stats.delivered++;
          return;
        }
        problem = `HTTP ${status}`;
        retryable = status === 429 || status >= 500;
      } catch (err) {
        problem = (err as Error).message;
      }
      // While closing, one attempt more is all an alert gets: shutdown must end.
      if (!retryable || attempt >= this.options.attempts || (this.closing && attempt >= 2)) {
        this.stats.failed++;
        this.log.error({ sink: this.name, alertId: alert.alertId, attempts: attempt, problem }, 'webhook did not accept the alert; it is still in the log and the store');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, base * 2 ** (attempt - 1)));
    }
  }

  /** One POST; resolves with the status once the response body has been read (so the connection is reused). */
  private post(body: string): Promise<number> {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'user-agent': 'gapwatch-collector',
      [TIMESTAMP_HEADER]: timestamp,
    };
    if (this.options.secret) headers[SIGNATURE_HEADER] = signWebhook(this.options.secret, timestamp, body);
    const send = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<number>((resolve, reject) => {
      const req = send(this.url, { method: 'POST', headers, agent: this.agent, timeout: this.options.timeoutMs }, (res: IncomingMessage) => {
        res.on('error', reject);
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.resume();
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.options.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}

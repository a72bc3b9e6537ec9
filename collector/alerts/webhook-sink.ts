import { createHmac, timingSafeEqual } from 'node:crypto';
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
 * POSTs each alert to a URL, one at a time in order, retrying with exponential backoff on network
 * errors, timeouts, 429 and 5xx (other 4xx are final: the receiver refused the body). The queue is
 * bounded; an alert dropped from it is counted and logged, never silently.
 */
export class WebhookSink implements AlertSink {
  readonly name: string;
  private readonly queue: CollectorAlert[] = [];
  private running: Promise<void> | null = null;
  private closing = false;
  readonly stats: WebhookStats = { delivered: 0, failed: 0, dropped: 0 };

  constructor(
    private readonly options: WebhookOptions,
    private readonly log: Logger,
  ) {
    this.name = `webhook ${new URL(options.url).origin}`;
  }

  deliver(alert: CollectorAlert): void {
    if (this.queue.length >= this.options.maxQueue) {
      const dropped = this.queue.shift()!;
      this.stats.dropped++;
      this.log.error({ sink: this.name, alertId: dropped.alertId, dropped: this.stats.dropped }, 'webhook queue full; oldest alert dropped (it is still in the log and the store)');
    }
    this.queue.push(alert);
    this.running ??= this.drain().finally(() => (this.running = null));
  }

  /** Resolves when everything queued so far has been delivered or given up on. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.closing = true;
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    for (let alert = this.queue.shift(); alert; alert = this.queue.shift()) await this.send(alert);
  }

  private async send(alert: CollectorAlert): Promise<void> {
    const body = webhookBody(alert, this.options.format);
    const base = this.options.retryBaseMs ?? 200;
    for (let attempt = 1; ; attempt++) {
      const timestamp = String(Math.floor(Date.now() / 1000));
      const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'gapwatch-collector', [TIMESTAMP_HEADER]: timestamp };
      if (this.options.secret) headers[SIGNATURE_HEADER] = signWebhook(this.options.secret, timestamp, body);
      let problem: string;
      let retryable = true;
      try {
        const response = await fetch(this.options.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.options.timeoutMs) });
        await response.arrayBuffer();
        if (response.ok) {
          this.stats.delivered++;
          return;
        }
        problem = `HTTP ${response.status}`;
        retryable = response.status === 429 || response.status >= 500;
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
}

import type { Config } from '../../platform/config';
import type { Logger } from '../../platform/log';
import { readCredential } from '../../gateway/credentials/credential-source';
import type { StoreWriter } from '../store/writer';
import type { CollectorAlert } from './alert';
import { AlertGate } from './alert-gate';
import type { AlertSink } from './contract';
import { LogAlertSink } from './log-sink';
import { StoreAlertSink } from './store-alert-sink';
import { WebhookSink } from './webhook-sink';

export type AlertsConfig = Config['collector']['alerts'];

/**
 * Alerts from correlation to every sink: through the gate (de-duplication, rate limit, counts kept),
 * then to each sink in turn. Sinks can be added later (the gRPC WatchAlerts stream).
 */
export class AlertPipeline {
  private readonly gate: AlertGate;
  readonly sinks: AlertSink[];
  raised = 0;
  delivered = 0;

  constructor(config: AlertsConfig, sinks: AlertSink[], private readonly log: Logger) {
    this.sinks = [...sinks];
    this.gate = new AlertGate({ dedupWindowMs: config.dedupWindowMs, maxPerMinute: config.maxPerMinute }, (alert) => this.fanOut(alert));
    this.gate.start();
  }

  addSink(sink: AlertSink): void {
    this.sinks.push(sink);
  }

  /** `key` names what counts as "the same alert" for de-duplication. */
  raise(key: string, alert: CollectorAlert): void {
    this.raised++;
    this.gate.raise(key, alert);
  }

  async close(): Promise<void> {
    this.gate.close();
    await Promise.all(this.sinks.map((sink) => sink.close().catch((err: unknown) => this.log.error({ sink: sink.name, err }, 'alert sink did not close cleanly'))));
  }

  private fanOut(alert: CollectorAlert): void {
    this.delivered++;
    for (const sink of this.sinks) {
      try {
        sink.deliver(alert);
      } catch (err) {
        this.log.error({ sink: sink.name, alertId: alert.alertId, err }, 'alert sink refused an alert');
      }
    }
  }
}

/** The sinks `collector.alerts` configures; the store sink only when a writer is given. */
export function configuredSinks(config: AlertsConfig, log: Logger, writer: StoreWriter | null): AlertSink[] {
  const sinks: AlertSink[] = [];
  if (config.log) sinks.push(new LogAlertSink(log));
  if (config.store && writer) sinks.push(new StoreAlertSink(writer));
  for (const hook of config.webhooks) {
    sinks.push(
      new WebhookSink(
        { url: hook.url, format: hook.format, secret: readCredential(`webhook ${hook.url}`, hook.secret), attempts: hook.attempts, timeoutMs: hook.timeoutMs, maxQueue: hook.maxQueue },
        log,
      ),
    );
  }
  return sinks;
}

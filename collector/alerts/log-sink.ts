import type { Logger } from '../../platform/log';
import type { CollectorAlert } from './alert';
import type { AlertSink } from './contract';

/** Alerts as structured log records (error for critical, warn otherwise), every field a key. */
export class LogAlertSink implements AlertSink {
  readonly name = 'log';

  constructor(private readonly log: Logger) {}

  deliver(alert: CollectorAlert): void {
    const record = { alert };
    if (alert.severity === 'critical') this.log.error(record, `ALERT ${alert.summary}`);
    else this.log.warn(record, `ALERT ${alert.summary}`);
  }

  async close(): Promise<void> {}
}

import { alertRow } from '../store/rows';
import type { StoreWriter } from '../store/writer';
import { alertMessage, type CollectorAlert } from './alert';
import type { AlertSink } from './contract';

/** Alerts as rows of the alerts table, through the store writer (batched, spooled when the store is away). */
export class StoreAlertSink implements AlertSink {
  readonly name = 'store';
  private pending: Promise<void> = Promise.resolve();

  constructor(private readonly writer: StoreWriter) {}

  deliver(alert: CollectorAlert): void {
    const row = alertRow(alertMessage(alert));
    this.pending = this.writer.write('alerts', row);
  }

  async close(): Promise<void> {
    await this.pending;
  }
}

import type { CollectorAlert } from './alert';

/**
 * Where alerts go: the structured log, webhooks, the store, and (implemented by the gRPC service) a
 * WatchAlerts stream. `deliver` must not block the correlator: a sink queues and reports its own failures.
 */
export interface AlertSink {
  readonly name: string;
  deliver(alert: CollectorAlert): void;
  /** Delivers or gives up on everything queued, then stops. */
  close(): Promise<void>;
}

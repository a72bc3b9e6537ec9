import { z } from 'zod';
import { mutualTlsServiceShape, tlsFilesTogether } from '../../platform/mutual-tls-schema';

/**
 * `collector.alerts.watch`: the collector's gRPC AlertWatch service (WatchAlerts). Like the gateway's
 * Audit service it is served only over mutual TLS: with no certificate files it stays off, never
 * anonymous. `gapwatch certs init` makes a collector (server) and a watcher (client) certificate; the CA
 * (`tls.caFile`) is the one that signs watcher certificates.
 */
export const alertWatchConfigSchema = z
  .strictObject({
    ...mutualTlsServiceShape(7444),
    /** Watchers served at once; more are refused with RESOURCE_EXHAUSTED. */
    maxWatchers: z.number().int().min(1).max(10_000).default(64),
    /** Alerts queued per watcher that reads slower than they come; beyond it the oldest are dropped and counted. */
    maxQueue: z.number().int().min(1).max(1_000_000).default(10_000),
  })
  .refine(...tlsFilesTogether('alert watch service'));

export type AlertWatchConfig = z.infer<typeof alertWatchConfigSchema>;

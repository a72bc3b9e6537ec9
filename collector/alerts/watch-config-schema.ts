import { z } from 'zod';

/**
 * `collector.alerts.watch`: the collector's gRPC AlertWatch service (WatchAlerts). Like the gateway's
 * Audit service it is served only over mutual TLS: with no certificate files it stays off, never
 * anonymous. `gapwatch certs init` makes a collector (server) and a watcher (client) certificate.
 */
export const alertWatchConfigSchema = z
  .strictObject({
    listen: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(7444),
      })
      .prefault({}),
    tls: z
      .strictObject({
        /** The CA that signs watcher (client) certificates; a watcher must present one. */
        caFile: z.string().min(1).nullable().default(null),
        /** The collector's own certificate and key (PEM). */
        certFile: z.string().min(1).nullable().default(null),
        keyFile: z.string().min(1).nullable().default(null),
      })
      .prefault({}),
    /** Watchers served at once; more are refused with RESOURCE_EXHAUSTED. */
    maxWatchers: z.number().int().min(1).max(10_000).default(64),
    /** Alerts queued per watcher that reads slower than they come; beyond it the oldest are dropped and counted. */
    maxQueue: z.number().int().min(1).max(1_000_000).default(10_000),
  })
  .refine((s) => [s.tls.caFile, s.tls.certFile, s.tls.keyFile].every((v) => v === null) || [s.tls.caFile, s.tls.certFile, s.tls.keyFile].every((v) => v !== null), {
    message: 'tls.caFile, tls.certFile and tls.keyFile go together (all three, or none to keep the alert watch service off)',
    path: ['tls'],
  });

export type AlertWatchConfig = z.infer<typeof alertWatchConfigSchema>;

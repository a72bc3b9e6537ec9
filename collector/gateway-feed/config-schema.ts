import { z } from 'zod';

/**
 * `collector.gateways`: the gateways whose Audit stream this collector subscribes to. Each is reached
 * over mutual TLS: the CA that signed the gateway's certificate, and this collector's own certificate
 * and key (signed by the CA the gateway trusts).
 */
export const gatewayFeedEntrySchema = z.strictObject({
  /** host:port of the gateway's `gateway.audit.listen`. */
  address: z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:/]+):\d{1,5}$/, 'host:port (IPv6 in brackets)'),
  caFile: z.string().min(1),
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  /** The name in the gateway's certificate, when it differs from the host in `address`. */
  serverName: z.string().min(1).nullable().default(null),
});

export const gatewayFeedConfigSchema = z.array(gatewayFeedEntrySchema).default([]);

/** How the subscriptions behave; tuned for tests, sane by default. */
export const gatewayFeedTuningSchema = z
  .strictObject({
    /** The position is made durable at most this often (after the store writer has the rows). */
    commitIntervalMs: z.number().int().min(10).max(60_000).default(1000),
    /** Reconnect waits grow from this … */
    reconnectBaseMs: z.number().int().min(10).default(250),
    /** … to this. */
    reconnectMaxMs: z.number().int().min(10).default(15_000),
    /** ListResources is asked again this often while connected; listeners hear of changes. */
    resourcesIntervalMs: z.number().int().min(100).default(30_000),
  })
  .prefault({});

export type GatewayFeedEntry = z.infer<typeof gatewayFeedEntrySchema>;
export type GatewayFeedTuning = z.infer<typeof gatewayFeedTuningSchema>;

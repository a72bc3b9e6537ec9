import { z } from 'zod';

/**
 * `gateway.audit`: the gRPC Audit service collectors subscribe to. It is served only over mutual TLS:
 * with no certificate files it stays off (no anonymous subscriber, ever). `gapwatch certs init` makes a
 * development CA and the three files; README "Audit stream certificates" says how to make real ones.
 */
export const auditConfigSchema = z
  .strictObject({
    listen: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(7443),
      })
      .prefault({}),
    tls: z
      .strictObject({
        /** The CA that signs collector (client) certificates; a subscriber must present one. */
        caFile: z.string().min(1).nullable().default(null),
        /** The gateway's own certificate and key (PEM). */
        certFile: z.string().min(1).nullable().default(null),
        keyFile: z.string().min(1).nullable().default(null),
      })
      .prefault({}),
    /** Subscribers served at once; more are refused with RESOURCE_EXHAUSTED. */
    maxSubscribers: z.number().int().min(1).max(10_000).default(64),
  })
  .refine((s) => [s.tls.caFile, s.tls.certFile, s.tls.keyFile].every((v) => v === null) || [s.tls.caFile, s.tls.certFile, s.tls.keyFile].every((v) => v !== null), {
    message: 'tls.caFile, tls.certFile and tls.keyFile go together (all three, or none to keep the audit service off)',
    path: ['tls'],
  });

export type AuditConfig = z.infer<typeof auditConfigSchema>;

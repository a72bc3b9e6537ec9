import { z } from 'zod';
import { mutualTlsServiceShape, tlsFilesTogether } from '../../platform/mutual-tls-schema';

/**
 * `gateway.audit`: the gRPC Audit service collectors subscribe to. It is served only over mutual TLS:
 * with no certificate files it stays off (no anonymous subscriber, ever). `gapwatch certs init` makes a
 * development CA and the three files; README "Audit stream certificates" says how to make real ones. The
 * CA (`tls.caFile`) is the one that signs collector (client) certificates.
 */
export const auditConfigSchema = z
  .strictObject({
    ...mutualTlsServiceShape(7443),
    /** Subscribers served at once; more are refused with RESOURCE_EXHAUSTED. */
    maxSubscribers: z.number().int().min(1).max(10_000).default(64),
  })
  .refine(...tlsFilesTogether('audit service'));

export type AuditConfig = z.infer<typeof auditConfigSchema>;

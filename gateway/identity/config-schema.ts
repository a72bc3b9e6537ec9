import { z } from 'zod';

/** `gateway.identity`: how agent identities are kept. */
export const identityConfigSchema = z.strictObject({
  /** PBKDF2 iterations of new SCRAM-SHA-256 verifiers; RFC 7677 §4 asks for at least 4096. */
  scramIterations: z.number().int().min(4096).max(10_000_000).default(4096),
});

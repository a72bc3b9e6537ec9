import { z } from 'zod';

/**
 * The configuration every gRPC service of gapwatch shares: where it listens and the three PEM files of
 * mutual TLS. A service is served only over mutual TLS; with no files it stays off, never anonymous.
 */
export function mutualTlsServiceShape(defaultPort: number) {
  return {
    listen: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(defaultPort),
      })
      .prefault({}),
    tls: z
      .strictObject({
        /** The CA that signs client certificates; a client must present one. */
        caFile: z.string().min(1).nullable().default(null),
        /** The service's own certificate and key (PEM). */
        certFile: z.string().min(1).nullable().default(null),
        keyFile: z.string().min(1).nullable().default(null),
      })
      .prefault({}),
  };
}

interface TlsFiles {
  tls: { caFile: string | null; certFile: string | null; keyFile: string | null };
}

/** Arguments for `.refine()`: the three TLS files go together, all or none (none keeps `service` off). */
export function tlsFilesTogether(service: string): [(s: TlsFiles) => boolean, { message: string; path: string[] }] {
  return [
    (s) => {
      const files = [s.tls.caFile, s.tls.certFile, s.tls.keyFile];
      return files.every((v) => v === null) || files.every((v) => v !== null);
    },
    { message: `tls.caFile, tls.certFile and tls.keyFile go together (all three, or none to keep the ${service} off)`, path: ['tls'] },
  ];
}

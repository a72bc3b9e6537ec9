import { z } from 'zod';

/**
 * Where a secret comes from: inline (tests, demos), an environment variable, or a file (first line).
 * The same shape as `CredentialSource` in platform/config.ts, which cannot be imported here (that
 * module imports this one), so `readCredential` from gateway/credentials/credential-source.ts reads it.
 */
const credentialSourceSchema = z.union([
  z.strictObject({ value: z.string().min(1) }),
  z.strictObject({ env: z.string().min(1) }),
  z.strictObject({ file: z.string().min(1) }),
]);

/** An HTTP header name (RFC 9110 §5.1 token), kept in lower case. */
const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'an HTTP header name')
  .transform((name) => name.toLowerCase());

const resourceName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'letters, digits, "_", "." and "-"');

/** An HTTP service agents reach through the gateway, and the credential the gateway adds for it. */
const httpResourceSchema = z
  .strictObject({
    name: resourceName,
    /** Host header values (without port, case-insensitive) that select this resource. */
    hosts: z.array(z.string().min(1).transform((host) => host.toLowerCase())).default([]),
    /** A path prefix that selects this resource, e.g. "/github/" (checked after Host routing). */
    pathPrefix: z
      .string()
      .regex(/^\/[^?#]*$/, 'a path starting with "/"')
      .nullable()
      .default(null),
    /** Remove the prefix before forwarding, so "/github/repos" reaches the upstream as "/repos". */
    stripPrefix: z.boolean().default(true),
    upstream: z.strictObject({
      /** http:// or https://, with an optional base path that forwarded paths are appended to. */
      url: z.url({ protocol: /^https?$/ }),
      /** CA bundle (PEM file) for an https upstream with a private CA; the system store when null. */
      ca: z.string().min(1).nullable().default(null),
      /** Keep-alive connections the gateway opens to the upstream at most; further requests wait for a free one. */
      maxConnections: z.number().int().min(1).max(4096).default(256),
    }),
    /** The upstream's credential, sent as `<header>: <scheme> <secret>`; never shown to agents, logged or journaled. */
    credential: z
      .strictObject({
        header: headerName.default('authorization'),
        /** e.g. "Bearer", "token", "Basic" (then the secret is the base64 user:password); "" sends the secret alone. */
        scheme: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]*$/, 'an authentication scheme token').default('Bearer'),
        source: credentialSourceSchema,
      })
      .nullable()
      .default(null),
    /** Reported to collectors by ListResources, e.g. "production" (bypass alerts become critical). */
    tags: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$/, 'letters, digits, "_", ".", ":" and "-"')).default([]),
  })
  .refine((r) => r.hosts.length > 0 || r.pathPrefix !== null, { message: 'give hosts, a pathPrefix, or both, so requests can reach the resource' });

/**
 * A method/path rule. First match wins; `default` decides the rest. Paths are globs on the path as
 * forwarded (normalised, after the prefix is stripped): `*` matches within one segment, `**` any
 * number of segments; matching ignores case, so a case-insensitive upstream cannot be reached around a rule.
 */
const httpRuleSchema = z.strictObject({
  name: z.string().min(1).max(100),
  resources: z.array(z.string().min(1)).default([]),
  logins: z.array(z.string().min(1)).default([]),
  subjects: z.array(z.string().min(1)).default([]),
  /** Upper-case method names; empty means every method. */
  methods: z.array(z.string().regex(/^[A-Za-z]+$/, 'a method name').transform((m) => m.toUpperCase())).default([]),
  /** Empty means every path. */
  paths: z.array(z.string().regex(/^\//, 'a path glob starting with "/"')).default([]),
  /** review: the request is held (the agent waits, the upstream sees nothing) until `gapwatch approve|deny` or gateway.policy.reviewTimeoutSeconds. */
  action: z.enum(['allow', 'deny', 'review']),
  /** Shown to the agent in the 403 JSON body, and to the reviewer of a held request. */
  reason: z.string().min(1).max(500).nullable().default(null),
});

/** `gateway.http`: the HTTP reverse-proxy listener. It listens only when resources are configured. */
export const httpGatewayConfigSchema = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8480),
    })
    .prefault({}),
  /** Certificate and key (PEM files) to serve HTTPS to agents; plain HTTP when both are null. */
  tls: z
    .strictObject({
      cert: z.string().min(1).nullable().default(null),
      key: z.string().min(1).nullable().default(null),
    })
    .prefault({}),
  limits: z
    .strictObject({
      /** Request line plus headers; larger is refused with 431 before anything is forwarded. */
      maxHeaderBytes: z.number().int().min(1024).max(1 << 20).default(16384),
      /** Request bodies larger than this are refused (413) or cut off. */
      maxBodyBytes: z.number().int().min(0).default(100 << 20),
      /**
       * Request bodies up to this size are read completely (and their framing checked) before the
       * request goes upstream; longer ones are streamed after this much was read.
       */
      bufferBodyBytes: z.number().int().min(0).max(64 << 20).default(1 << 20),
      /** A client must send its complete request head within this time (slow-header clients). */
      headersTimeoutMs: z.number().int().min(100).default(10_000),
      /** … and its complete request, body included (slow-body clients). */
      requestTimeoutMs: z.number().int().min(100).default(60_000),
      /** Idle keep-alive connections from agents are closed after this. */
      keepAliveTimeoutMs: z.number().int().min(100).default(5_000),
      /** The upstream must answer (response head) within this time, else 504. */
      upstreamTimeoutMs: z.number().int().min(100).default(60_000),
    })
    // The head is part of the request: Node's server refuses to start with a longer head deadline.
    .refine((limits) => limits.headersTimeoutMs <= limits.requestTimeoutMs, {
      message: 'headersTimeoutMs must not exceed requestTimeoutMs (the head is part of the request)',
      path: ['headersTimeoutMs'],
    })
    .prefault({}),
  record: z
    .strictObject({
      /**
       * The request record is on disk (fsync'd) before the request is forwarded, as the PostgreSQL
       * gateway does. Off: records go to the journal in the background (still group-committed and
       * hash-chained), trading the guarantee that a crash loses nothing forwarded for throughput.
       */
      writeAhead: z.boolean().default(true),
      /**
       * With writeAhead, how far a safe method's request record (GET, HEAD, OPTIONS, TRACE: RFC 9110
       * §9.2.1) must be before the request is forwarded: 'written' — in the journal file, which a killed
       * gateway cannot lose, fsync'd within milliseconds (a host crash can lose the last few ms of such
       * records); 'durable' — fsync'd first, as every other method always is. WebSocket upgrades and
       * review approvals always wait for durable. An API that changes state on GET wants 'durable'.
       */
      readDurability: z.enum(['written', 'durable']).default('written'),
      /** Bytes of each body kept in the journal (the rest is counted, and the record says truncated). */
      bodyBytes: z.number().int().min(0).max(16 << 20).default(16384),
      /** Record bodies of non-textual media types too (as bytes); off: only their size and type. */
      binaryBodies: z.boolean().default(false),
      /** Headers journaled (request and response), lower case. */
      headers: z
        .array(headerName)
        .default([
          'host', 'user-agent', 'content-type', 'content-length', 'content-encoding', 'transfer-encoding', 'accept',
          'authorization', 'cookie', 'set-cookie', 'location', 'x-request-id', 'upgrade', 'sec-websocket-protocol',
        ]),
      /** Headers whose values are credentials: journaled as "[redacted]" (an Authorization keeps its scheme). */
      redactHeaders: z.array(headerName).default(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'api-key', 'x-auth-token']),
    })
    .prefault({}),
  /**
   * `auto` — agent connections on a plain-HTTP listener are served by the native data path when the
   * gateway addon is built and the journal's chain is native (gateway/http/README.md, "The native
   * data path"): requests it does not serve itself go back to JavaScript; `node` — JavaScript serves
   * every connection.
   */
  dataPath: z.enum(['auto', 'node']).default('auto'),
  /** What happens to a request no rule matches. */
  default: z.enum(['allow', 'deny', 'review']).default('allow'),
  rules: z.array(httpRuleSchema).default([]),
  resources: z.array(httpResourceSchema).default([]),
});

export type HttpGatewayConfig = z.infer<typeof httpGatewayConfigSchema>;
export type HttpResourceConfig = HttpGatewayConfig['resources'][number];
export type HttpRuleConfig = HttpGatewayConfig['rules'][number];

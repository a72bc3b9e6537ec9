import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LineCounter, parseDocument, isNode } from 'yaml';
import { z } from 'zod';
import { auditConfigSchema } from '../gateway/audit/config-schema';
import { gatewayFeedConfigSchema, gatewayFeedTuningSchema } from '../collector/gateway-feed/config-schema';
import { webConfigSchema } from '../collector/web/config-schema';
import { alertWatchConfigSchema } from '../collector/alerts/watch-config-schema';
import { httpGatewayConfigSchema } from '../gateway/http/config-schema';
import { identityConfigSchema } from '../gateway/identity/config-schema';
import { policyConfigSchema } from '../gateway/policy/config-schema';
import { sshGatewaySchema } from '../gateway/ssh/config-schema';
import { DEFAULT_AGENT_SIGNATURES } from '../collector/sensor/agent-signatures';
import { ConfigInvalidError, ConfigUnreadableError, type ConfigIssue } from './errors';

/**
 * One YAML format for gateway and collector. Every section is strict: an unknown key is an error,
 * because a misspelt security setting that is silently ignored is worse than a refusal to start.
 * Each key has a default, so `gapwatch up` needs no file at all.
 */
const logSchema = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** auto: human-readable on a TTY, JSON lines otherwise. */
  format: z.enum(['auto', 'json', 'pretty']).default('auto'),
});

const collectorSchema = z.strictObject({
  sensor: z
    .strictObject({
      /** Bytes of argv captured per exec; Falco's default is 4096, so never less. */
      argvMaxBytes: z.number().int().min(4096).max(65536).default(4096),
      /** Kernel ring buffer bytes (power of two); room for bursts while user space catches up. */
      ringBytes: z
        .number()
        .int()
        .min(65536)
        .max(1 << 30)
        .refine((n) => (n & (n - 1)) === 0, 'a power of two')
        .default(8 * 1024 * 1024),
      /** Longest a record waits in the reader before it is handed to JavaScript (ms). */
      flushMs: z.number().int().min(1).max(1000).default(20),
      /** Replace secrets in argv (passwords, tokens) before events leave the sensor; flagged on the event. */
      redactArgv: z.boolean().default(true),
      /** How long an exited process stays in the process table (late events still resolve to it). */
      processGraceMs: z.number().int().min(0).default(30_000),
      /** Process table bound; beyond it the oldest exited processes are evicted first. */
      maxProcesses: z.number().int().min(1024).default(131_072),
      /** What marks the root process of an agent run (binary names, argv regular expressions). */
      agentSignatures: z
        .array(
          z.strictObject({
            agent: z.string().min(1),
            binaries: z.array(z.string().min(1)).default([]),
            argv: z.array(z.string().min(1)).default([]),
          }),
        )
        .default(DEFAULT_AGENT_SIGNATURES),
      /**
       * Environment variables that mark an agent run where no signature can be seen (value = agent
       * name), e.g. GAPWATCH_AGENT_RUN. Off by default: it costs a read of /proc/<pid>/environ per
       * exec that no signature attributes.
       */
      agentEnvMarkers: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).default([]),
      /** cgroup v2 paths (regular expressions) that mark an agent run. */
      agentCgroupMarkers: z.array(z.strictObject({ agent: z.string().min(1), pattern: z.string().min(1) })).default([]),
    })
    .prefault({}),
  /** Gateways whose Audit stream this collector subscribes to (collector/gateway-feed/). */
  gateways: gatewayFeedConfigSchema,
  gatewayFeed: gatewayFeedTuningSchema,
  /** Protected resources the collector knows besides what the gateways report (merged by name). */
  resources: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        protocol: z.enum(['postgres', 'ssh', 'http']).default('postgres'),
        /** Where the real target listens: host names are resolved, and re-resolved every resolveIntervalMs. */
        upstream: z.array(z.union([z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535) }), z.strictObject({ unixPath: z.string().min(1) })])).default([]),
        /** Gateway listeners that front it (connects there are mediated). */
        listener: z.array(z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535) })).default([]),
        /** Tags such as production: "true" (a bypass of a production resource is critical). */
        labels: z.record(z.string(), z.string()).default({}),
      }),
    )
    .default([]),
  correlate: z
    .strictObject({
      /** How long a mediated connect waits for the gateway session with its client address and port. */
      joinWindowMs: z.number().int().min(100).max(600_000).default(10_000),
      /** Connects neither mediated nor bypass: keep all, keep one in otherSampleEvery, or drop. */
      otherConnects: z.enum(['keep', 'sample', 'drop']).default('keep'),
      otherSampleEvery: z.number().int().min(1).default(100),
      /** Re-resolution period of resource host names (DNS answers change). */
      resolveIntervalMs: z.number().int().min(1000).default(60_000),
      /** Executables of the gateway (its own upstream connections are never a bypass), besides its pid in `up`. */
      gatewayExecutables: z.array(z.string().min(1)).default([]),
      /** Period of the look-up of local gateway processes by their advertised listeners (a restarted gateway has a new pid). */
      gatewayProcessRefreshMs: z.number().int().min(500).default(5_000),
      /** Bounds for long runs: mediated connects waiting for their session, and sessions kept for joining. */
      maxPendingConnects: z.number().int().min(100).default(50_000),
      maxSessions: z.number().int().min(100).default(100_000),
      /** Client programs that, exec'd with a protected upstream in their arguments, raise an alert. */
      knownClients: z.array(z.string().min(1)).default(['psql', 'pg_dump', 'pg_dumpall', 'pg_restore', 'pgcli', 'ssh', 'scp', 'sftp', 'rsync', 'curl', 'wget', 'mysql', 'redis-cli', 'mongosh', 'nc', 'ncat', 'socat', 'telnet']),
    })
    .prefault({}),
  alerts: z
    .strictObject({
      /** The same alert (rule, process, resource, destination) again within this window only adds to its count. */
      dedupWindowMs: z.number().int().min(0).default(60_000),
      /** At most this many alerts per minute leave for the sinks; the rest are counted and reported in a summary. */
      maxPerMinute: z.number().int().min(1).default(600),
      /** Resources whose labels carry one of these (key=value or key) make their bypasses critical. */
      criticalLabels: z.array(z.string().min(1)).default(['production', 'env=production', 'environment=production', 'tier=production']),
      log: z.boolean().default(true),
      store: z.boolean().default(true),
      webhooks: z
        .array(
          z.strictObject({
            url: z.url({ protocol: /^https?$/ }),
            /** generic: the alert as JSON; slack: a Slack-compatible {text, blocks} body. */
            format: z.enum(['generic', 'slack']).default('generic'),
            /** HMAC-SHA256 key for the X-Gapwatch-Signature header; the receiver verifies with the same key. */
            secret: z
              .union([z.strictObject({ value: z.string().min(1) }), z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })])
              .nullable()
              .default(null),
            attempts: z.number().int().min(1).max(20).default(5),
            timeoutMs: z.number().int().min(100).default(5000),
            /** Alerts waiting for delivery; beyond it the oldest are dropped and counted. */
            maxQueue: z.number().int().min(1).default(10_000),
            /** POSTs in flight at once; 1 delivers strictly in order, more keeps a slow or retried one from holding the rest. */
            concurrency: z.number().int().min(1).max(64).default(4),
          }),
        )
        .default([]),
      /** The gRPC WatchAlerts stream (mutual TLS; off without certificate files). */
      watch: alertWatchConfigSchema.prefault({}),
    })
    .prefault({}),
  /** The dashboard UI and its read-only API (collector/web/). */
  web: webConfigSchema,
});

/** Where a secret comes from: inline (tests, demos), an environment variable, or a file (first line). */
const credentialSourceSchema = z.union([
  z.strictObject({ value: z.string().min(1) }),
  z.strictObject({ env: z.string().min(1) }),
  z.strictObject({ file: z.string().min(1) }),
]);

/** A PostgreSQL server agents reach through the gateway, and the account the gateway logs in with. */
const postgresResourceSchema = z.strictObject({
  /** The resource name; agents connect with it as the database name. */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'letters, digits, "_", "." and "-"'),
  /** Other database names that select this resource (for clients that cannot choose the name). */
  databases: z.array(z.string().min(1)).default([]),
  upstream: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(1).max(65535).default(5432),
    /** A unix socket directory (as libpq's host=/dir); when set, host is not used. */
    socket: z.string().min(1).nullable().default(null),
    database: z.string().min(1),
    user: z.string().min(1),
    /** Never shown to agents, never logged, never written to the journal. */
    password: credentialSourceSchema.nullable().default(null),
    tls: z.enum(['disable', 'require', 'verify-full']).default('disable'),
    /** CA bundle for tls: verify-full; the system store when null. */
    ca: z.string().min(1).nullable().default(null),
  }),
  /** Reported to collectors by ListResources, e.g. "production" (bypass alerts become critical). */
  tags: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$/, 'letters, digits, "_", ".", ":" and "-"')).default([]),
});

const postgresGatewaySchema = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(6543),
    })
    .prefault({}),
  /** Certificate and key (PEM files) for agents that ask for TLS; without them SSLRequest gets 'N'. */
  tls: z
    .strictObject({
      cert: z.string().min(1).nullable().default(null),
      key: z.string().min(1).nullable().default(null),
    })
    .prefault({}),
  /** Larger frontend messages end the session with 08P01 instead of being buffered. */
  maxMessageBytes: z.number().int().min(1 << 16).max(1 << 30).default(64 << 20),
  /**
   * Which data path carries an established session: `auto` (the default) — the native session loop
   * (gapwatch_gateway.node) for every session it serves in full (plain TCP, before-forward audit, no
   * mask rules for the resource and identity, the journal's chain native), JavaScript for the rest;
   * `node` — JavaScript for every session. See gateway/postgres/README.md, "The native data path".
   */
  dataPath: z.enum(['auto', 'node']).default('auto'),
  resources: z.array(postgresResourceSchema).default([]),
  audit: z
    .strictObject({
      /**
       * When a request's journal record must be durable: `before-forward` (nothing reaches the server
       * before its record is fsync'd) or `before-reply` (forwarded at once; the agent sees no answer
       * before the record is fsync'd). See gateway/postgres/README.md for the trade-off.
       */
      durability: z.enum(['before-forward', 'before-reply']).default('before-forward'),
      /**
       * How durable that record must be for a request that cannot change state outside its open
       * transaction (plain reads, BEGIN, statements inside a block until COMMIT): `written` (in the
       * journal file: survives a gateway kill, not a host crash) or `durable` (fsync'd, like every
       * other request). State-changing requests are always durable first.
       */
      readDurability: z.enum(['written', 'durable']).default('written'),
    })
    .prefault({}),
});

const gatewaySchema = z.strictObject({
  /** Identifies this gateway in journal records and session ids; unique per fleet. */
  id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a lowercase name of letters, digits and dashes')
    .default('gw-local'),
  postgres: postgresGatewaySchema.prefault({}),
  http: httpGatewayConfigSchema.prefault({}),
  /** The hash-chained audit journal (gateway/journal/), under <dataDir>/journal/<id>/. */
  journal: z
    .strictObject({
      /** A segment file is closed and a new one begun at this size. */
      segmentBytes: z.number().int().min(65536).max(1073741824).default(67108864),
      retention: z
        .strictObject({
          /** Closed segments whose last write is older than this are removed; 0 keeps them forever. */
          maxAgeHours: z.number().min(0).default(2160),
          /** Oldest closed segments are removed while the journal is larger than this; 0 means no limit. */
          maxBytes: z.number().int().min(0).default(0),
        })
        .prefault({}),
      checkpoint: z
        .strictObject({
          /** A signed checkpoint after this many records … */
          everyRecords: z.number().int().min(1).default(1000),
          /** … or this many seconds after the last one when records were added since, and at close. */
          everySeconds: z.number().min(0.1).max(3600).default(10),
        })
        .prefault({}),
    })
    .prefault({}),
  identity: identityConfigSchema.prefault({}),
  policy: policyConfigSchema.prefault({}),
  /** The gRPC Audit service (gateway/audit/). */
  audit: auditConfigSchema.prefault({}),
  /** The SSH gateway (gateway/ssh/README.md). */
  ssh: sshGatewaySchema.prefault({}),
});

/**
 * The ClickHouse store. No url → the embedded engine (chDB) with its data under `<dataDir>/<embedded.dir>`;
 * a url → a ClickHouse server; a cluster name as well → DDL runs ON CLUSTER with replicated tables and
 * distributed tables over them. The password comes from `password`, `passwordFile` or `passwordEnv`
 * (at most one); it is never logged.
 */
const storeSchema = z
  .strictObject({
    url: z.url({ protocol: /^https?$/ }).optional(),
    user: z.string().min(1).default('default'),
    password: z.string().optional(),
    passwordFile: z.string().min(1).optional(),
    passwordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name').optional(),
    /** A CA bundle for https:// servers with a private CA; client cert and key for mutual TLS. */
    tls: z
      .strictObject({
        caFile: z.string().min(1).optional(),
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
      })
      .prefault({}),
    database: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'a ClickHouse identifier of letters, digits and underscores')
      .default('gapwatch'),
    cluster: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,62}$/, 'a cluster name as in remote_servers')
      .optional(),
    /** Rows older than this many days are deleted by ClickHouse's TTL. */
    ttlDays: z.number().int().min(1).max(36500).default(90),
    embedded: z
      .strictObject({
        /** Relative to dataDir. */
        dir: z.string().min(1).default('store'),
        /** Caps the whole embedded engine, so a runaway query fails instead of taking the process down. */
        maxMemoryMiB: z.number().int().min(256).default(2048),
        /** Caps one query. */
        maxQueryMemoryMiB: z.number().int().min(64).default(1024),
      })
      .prefault({}),
    writer: z
      .strictObject({
        /** A batch is sent when it holds this many rows … */
        batchRows: z.number().int().min(1).max(1_000_000).default(20_000),
        /** … or when its oldest row has waited this long. */
        flushIntervalMs: z.number().int().min(10).max(60_000).default(1000),
        /** Producers wait (back-pressure) while this many rows are buffered and not yet written or spooled. */
        maxBufferedRows: z.number().int().min(1).max(10_000_000).default(200_000),
        /** Attempts per batch before it goes to the spool; waits grow from retryBaseMs to retryMaxMs. */
        attempts: z.number().int().min(1).max(20).default(4),
        retryBaseMs: z.number().int().min(1).default(100),
        retryMaxMs: z.number().int().min(1).default(10_000),
        /**
         * Inserts running at once. Batches still reach the spool in order and nothing overtakes a spool
         * replay; only a batch already in flight when the store fails may land before the one it followed.
         */
        inflightBatches: z.number().int().min(1).max(8).default(2),
      })
      .prefault({}),
    spool: z
      .strictObject({
        /** Relative to dataDir. */
        dir: z.string().min(1).default('spool'),
        /** Beyond this, batches are dropped and each drop becomes an audit_gaps row. */
        maxBytes: z.number().int().min(4096).default(512 * 1024 * 1024),
      })
      .prefault({}),
  })
  .refine((s) => [s.password, s.passwordFile, s.passwordEnv].filter((v) => v !== undefined).length <= 1, {
    message: 'at most one of password, passwordFile, passwordEnv',
  })
  .refine((s) => (s.tls.certFile === undefined) === (s.tls.keyFile === undefined) && (s.tls.certFile === undefined || s.tls.caFile !== undefined), {
    message: 'tls.certFile and tls.keyFile go together, and need tls.caFile',
    path: ['tls'],
  })
  .refine((s) => s.cluster === undefined || s.url !== undefined, {
    message: 'cluster needs url: the embedded engine has no cluster',
    path: ['cluster'],
  });

export const configSchema = z.strictObject({
  /** Where the embedded store, spool and journals live. Relative paths resolve against the working directory. */
  dataDir: z.string().min(1).default('.gapwatch'),
  log: logSchema.prefault({}),
  collector: collectorSchema.prefault({}),
  gateway: gatewaySchema.prefault({}),
  store: storeSchema.prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type PostgresResourceConfig = z.infer<typeof postgresResourceSchema>;
export type CredentialSource = z.infer<typeof credentialSourceSchema>;

export const DEFAULT_CONFIG_FILE = 'gapwatch.yaml';

/**
 * Loads the configuration: the file given, else ./gapwatch.yaml when it exists, else the defaults.
 * Invalid input is refused with every problem at once: key path, line, bad value, what is expected.
 */
export function loadConfig(file?: string): { config: Config; source: string | null } {
  const explicit = file !== undefined;
  const path = resolve(file ?? DEFAULT_CONFIG_FILE);
  if (!explicit && !existsSync(path)) {
    return { config: finish(configSchema.parse({})), source: null };
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigUnreadableError(path, err);
  }
  return { config: parseConfig(text, path), source: path };
}

export function parseConfig(text: string, file: string | null = null): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map<ConfigIssue>((e) => ({
      path: '',
      value: undefined,
      expected: `valid YAML (${e.message.split('\n')[0]})`,
      line: lineCounter.linePos(e.pos[0]).line,
    }));
    throw new ConfigInvalidError(file, issues);
  }
  const raw: unknown = doc.toJS() ?? {};
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    const issues = result.error.issues.flatMap((issue) => describeIssue(issue, doc, lineCounter));
    throw new ConfigInvalidError(file, issues);
  }
  return finish(result.data);
}

function finish(config: Config): Config {
  return { ...config, dataDir: resolve(config.dataDir) };
}

type ZodIssue = z.core.$ZodIssue;

function describeIssue(issue: ZodIssue, doc: ReturnType<typeof parseDocument>, lines: LineCounter): ConfigIssue[] {
  const path = issue.path.map(String);
  const lineOf = (keys: string[]): number | undefined => {
    const node = doc.getIn(keys, true);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
    return undefined;
  };
  if (issue.code === 'unrecognized_keys') {
    const input = (issue.input ?? {}) as Record<string, unknown>;
    return issue.keys.map((key) => ({
      path: [...path, key].join('.'),
      value: input[key],
      expected: `no such key (known keys here: ${knownKeys(path).join(', ')})`,
      line: lineOf([...path, key]),
    }));
  }
  return [{ path: path.join('.'), value: issue.input, expected: expectedOf(issue), line: lineOf(path) }];
}

function expectedOf(issue: ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return `a value of type ${issue.expected}`;
    case 'invalid_value':
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      return `at least ${String(issue.minimum)}${issue.origin === 'string' ? ' characters' : ''}`;
    case 'too_big':
      return `at most ${String(issue.maximum)}${issue.origin === 'string' ? ' characters' : ''}`;
    case 'invalid_format':
      return issue.message;
    default:
      return issue.message;
  }
}

/** The keys a strict object accepts at a path, so the error can suggest the intended spelling. */
function knownKeys(path: string[]): string[] {
  let schema: z.ZodType = configSchema;
  for (const key of path) {
    const inner = unwrap(schema);
    if (!(inner instanceof z.ZodObject)) return [];
    const next = (inner.shape as Record<string, z.ZodType>)[key];
    if (!next) return [];
    schema = next;
  }
  const inner = unwrap(schema);
  return inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current: z.ZodType = schema;
  while (current instanceof z.ZodDefault || current instanceof z.ZodPrefault || current instanceof z.ZodOptional) {
    current = current.unwrap() as z.ZodType;
  }
  return current;
}

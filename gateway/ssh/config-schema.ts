import { z } from 'zod';

/** Where a secret comes from: inline (tests, demos), an environment variable, or a file. */
const secretSourceSchema = z.union([
  z.strictObject({ value: z.string().min(1) }),
  z.strictObject({ env: z.string().min(1) }),
  z.strictObject({ file: z.string().min(1) }),
]);

const compiles = (source: string): boolean => {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
};

/**
 * The upstream host key, pinned: an OpenSSH public key line ("ssh-ed25519 AAAA… [comment]", as in
 * the server's /etc/ssh/ssh_host_*_key.pub or a known_hosts entry without its host field). The
 * gateway refuses an upstream that presents any other key.
 */
const hostKeySchema = z.string().regex(/^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( .*)?$/, 'an OpenSSH public key line such as "ssh-ed25519 AAAA…"');

/** An SSH server agents reach through the gateway, and the account the gateway logs in with. */
const sshResourceSchema = z
  .strictObject({
    /** The resource name; agents log in as `<identity>@<name>`. */
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'letters, digits, "_", "." and "-"'),
    upstream: z.strictObject({
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535).default(22),
      user: z.string().min(1),
      /** Pinned host keys of the upstream (several while it rotates keys); anything else is refused. */
      hostKeys: z.array(hostKeySchema).min(1),
      /** The resource's private key (OpenSSH or PEM); never shown, logged or journaled. */
      privateKey: secretSourceSchema.nullable().default(null),
      passphrase: secretSourceSchema.nullable().default(null),
      /** A password, when the upstream takes one instead of (or after) the key. */
      password: secretSourceSchema.nullable().default(null),
      /** Upstream connect and handshake limit. */
      readyTimeoutSeconds: z.number().min(1).max(300).default(20),
    }),
    /** Reported to collectors by ListResources, e.g. "production" (bypass alerts become critical). */
    tags: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$/, 'letters, digits, "_", ".", ":" and "-"')).default([]),
  })
  .refine((resource) => resource.upstream.privateKey !== null || resource.upstream.password !== null, {
    message: 'give upstream.privateKey or upstream.password: the gateway logs into the resource with its own credential',
    path: ['upstream'],
  });

const identityConditions = {
  /** Resource names (globs); empty: every resource. */
  resources: z.array(z.string().min(1)).default([]),
  /** Identity logins and subjects (globs); empty: everyone. */
  logins: z.array(z.string().min(1)).default([]),
  subjects: z.array(z.string().min(1)).default([]),
};

/** Exec commands: first matching rule decides; no match → `commandDefault`. */
const commandRuleSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,80}$/, 'a rule name of letters, digits and _ . : -'),
  ...identityConditions,
  /**
   * JavaScript regular expressions tested against the whole command line as the agent sent it; the
   * rule matches when any matches. Anchor them (^…$) where it matters.
   */
  patterns: z.array(z.string().min(1).refine(compiles, 'a valid JavaScript regular expression')).min(1),
  action: z.enum(['allow', 'deny', 'review']),
  /** Told to the agent on deny, to the reviewer on review. */
  reason: z.string().min(1).optional(),
});

export const FORWARDING_KINDS = ['local', 'remote', 'agent', 'x11', 'unix'] as const;

/** Forwarding is refused unless a rule allows it. */
const forwardingRuleSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,80}$/, 'a rule name of letters, digits and _ . : -'),
  ...identityConditions,
  kinds: z.array(z.enum(FORWARDING_KINDS)).min(1),
  /** For local/remote: `host:port` globs ("db.internal:5432", "127.0.0.1:*"); empty: any. */
  destinations: z.array(z.string().min(1)).default([]),
});

/** `gateway.ssh`: the SSH listener, its resources and the SSH-specific policy. It listens when resources are configured. */
export const sshGatewaySchema = z
  .strictObject({
    listen: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(2222),
      })
      .prefault({}),
    /** The gateway's own host key; created (ed25519, 0600) on first use when missing. Relative to dataDir. */
    hostKeyFile: z.string().min(1).default('ssh/host_ed25519_key'),
    /**
     * Ciphers offered to agents. AES-GCM by default: Node's crypto runs it on the CPU's AES
     * instructions, so the gateway's two cipher legs keep up with OpenSSH (OpenSSH clients would
     * otherwise pick chacha20-poly1305 first). Add chacha20-poly1305@openssh.com or aes128-ctr for
     * clients without AES-GCM.
     */
    ciphers: z.array(z.enum(['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'])).min(1).default(['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com']),
    /** Where shell recordings (asciicast v2) are written. Relative to dataDir. */
    recordingsDir: z.string().min(1).default('ssh/recordings'),
    /** Login names `identity@resource`; a mapping for clients that cannot choose the login name. */
    logins: z.record(z.string().min(1), z.strictObject({ identity: z.string().min(1), resource: z.string().min(1) })).default({}),
    /** Decision for an exec command no rule matches. */
    commandDefault: z.enum(['allow', 'deny', 'review']).default('allow'),
    commands: z.array(commandRuleSchema).default([]),
    forwarding: z.array(forwardingRuleSchema).default([]),
    /** Environment variable names (globs) whose values are journaled as "****". */
    redactEnv: z.array(z.string().min(1)).default(['*PASS*', '*SECRET*', '*TOKEN*', '*KEY*', '*CREDENTIAL*']),
    /** Agents that do not authenticate in this time are disconnected. */
    authTimeoutSeconds: z.number().min(1).max(600).default(30),
    resources: z.array(sshResourceSchema).default([]),
  })
  .superRefine((ssh, ctx) => {
    const seen = new Set<string>();
    ssh.resources.forEach((resource, index) => {
      if (seen.has(resource.name)) ctx.addIssue({ code: 'custom', message: `resource names must be unique (${resource.name} repeats)`, path: ['resources', index, 'name'], input: resource.name });
      seen.add(resource.name);
    });
    const rules = new Set<string>();
    [...ssh.commands, ...ssh.forwarding].forEach((rule) => {
      if (rules.has(rule.name)) ctx.addIssue({ code: 'custom', message: `rule names must be unique (${rule.name} repeats)`, path: ['commands'], input: rule.name });
      rules.add(rule.name);
    });
  });

export type SshGatewayConfig = z.infer<typeof sshGatewaySchema>;
export type SshResourceConfig = SshGatewayConfig['resources'][number];
export type SshCommandRuleConfig = SshGatewayConfig['commands'][number];
export type SshForwardingRuleConfig = SshGatewayConfig['forwarding'][number];
export type SshForwardingKind = (typeof FORWARDING_KINDS)[number];

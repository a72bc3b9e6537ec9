/**
 * Agent identities: who an agent is, as the gateway authenticates it. Tokens are issued by
 * `gapwatch token create`; the gateway stores only SCRAM-SHA-256 verifiers derived from them
 * (RFC 5802 / RFC 7677), never the tokens, so a stolen identity file lets no one log in.
 */
export interface AgentIdentity {
  /** The login name the agent presents, e.g. "claude-ci". */
  login: string;
  /** Stable subject for audit records, e.g. "agent:claude-ci". */
  subject: string;
  /** Facts asserted when the token was issued: owner, repository, agent kind … */
  claims: Record<string, string>;
  /** When the token stops being valid (ms since the epoch); null or absent: no expiry. */
  expiresAtMs?: number | null;
}

export interface ScramVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export interface IdentityStore {
  /** The identity and verifier for a login, or null when the login is unknown, revoked or expired. */
  lookup(login: string): Promise<{ identity: AgentIdentity; verifier: ScramVerifier } | null>;
}

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { utils, type ParsedKey, type PublicKeyAuthContext } from 'ssh2';
import type { AgentIdentity, IdentityStore, ScramVerifier } from '../identity/contract';
import type { CredentialCheck } from '../identity/identity-watch';
import { createScramVerifier, decoyScramVerifier } from '../identity/scram';
import { parseSshPublicKey } from './ssh-keys';

/** What the SSH gateway needs of the identity store: token verifiers and registered SSH keys. */
export interface SshIdentitySource extends IdentityStore {
  lookupSshKeys(login: string): Promise<{ identity: AgentIdentity; sshKeys: string[] } | null>;
}

/** Per-process secret for decoy verifiers: an unknown login costs the same PBKDF2 as a known one. */
const DECOY_SECRET = randomBytes(32);

export type PublicKeyCheck =
  | { result: 'accepted'; identity: AgentIdentity }
  /** The key is registered; the client only asked (RFC 4252 §7 query without a signature). */
  | { result: 'acceptable' }
  | { result: 'refused'; reason: string };

/**
 * Public key authentication (RFC 4252 §7): the offered key must be one registered for the identity
 * (`gapwatch token create … --ssh-key`), and the signature over the session-bound blob must verify.
 */
export async function checkPublicKey(identities: SshIdentitySource, login: string, ctx: Pick<PublicKeyAuthContext, 'key' | 'signature' | 'blob' | 'hashAlgo'>): Promise<PublicKeyCheck> {
  const found = await identities.lookupSshKeys(login);
  if (!found) return { result: 'refused', reason: 'unknown, revoked or expired identity' };
  const registered = found.sshKeys.map((line) => parseSshPublicKey(line)).find((key) => key.blob.equals(ctx.key.data));
  if (!registered) return { result: 'refused', reason: 'the key is not registered for this identity' };
  if (!ctx.signature || !ctx.blob) return { result: 'acceptable' };
  const parsed = utils.parseKey(ctx.key.data);
  if (parsed instanceof Error) return { result: 'refused', reason: `unreadable key (${parsed.message})` };
  const key = (Array.isArray(parsed) ? parsed[0] : parsed) as ParsedKey;
  if (key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return { result: 'refused', reason: 'the signature does not verify' };
  return { result: 'accepted', identity: found.identity };
}

/**
 * The identity's gateway token as the SSH password (RFC 4252 §8). The store keeps only a SCRAM
 * verifier, so the token is checked by deriving StoredKey from it with the verifier's salt and
 * iteration count. An unknown login runs the same derivation against a decoy.
 */
export async function checkToken(identities: SshIdentitySource, login: string, token: string): Promise<{ ok: true; identity: AgentIdentity; verifier: ScramVerifier } | { ok: false; reason: string }> {
  const found = await identities.lookup(login);
  const verifier = found?.verifier ?? decoyScramVerifier(login, DECOY_SECRET);
  const derived = createScramVerifier(token, { salt: verifier.salt, iterations: verifier.iterations });
  const matches = timingSafeEqual(derived.storedKey, verifier.storedKey);
  if (!found) return { ok: false, reason: 'unknown, revoked or expired identity' };
  if (!matches) return { ok: false, reason: 'wrong token' };
  return { ok: true, identity: found.identity, verifier: found.verifier };
}

/** A session that logged in with an SSH key: gone when the identity is, or when the key is no longer registered for it. */
export function sshKeyCheck(identities: SshIdentitySource, login: string, keyBlob: Buffer): CredentialCheck {
  return async () => {
    const found = await identities.lookupSshKeys(login);
    if (!found) return `the gapwatch identity "${login}" was revoked or has expired`;
    if (!found.sshKeys.some((line) => parseSshPublicKey(line).blob.equals(keyBlob))) return `the SSH key the session logged in with is no longer registered for the gapwatch identity "${login}"`;
    return null;
  };
}

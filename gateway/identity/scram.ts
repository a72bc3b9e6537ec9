import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ScramVerifier } from './contract';

/**
 * Server side of SCRAM-SHA-256 (RFC 5802 §3 and §5, RFC 7677), as PostgreSQL runs it inside
 * AuthenticationSASL / SASLInitialResponse / AuthenticationSASLContinue / SASLResponse /
 * AuthenticationSASLFinal (https://www.postgresql.org/docs/15/sasl-authentication.html).
 *
 *   SaltedPassword  = Hi(password, salt, i)            (PBKDF2-HMAC-SHA-256, 32 bytes)
 *   ClientKey       = HMAC(SaltedPassword, "Client Key")
 *   StoredKey       = SHA-256(ClientKey)
 *   ServerKey       = HMAC(SaltedPassword, "Server Key")
 *   AuthMessage     = client-first-message-bare "," server-first-message "," client-final-message-without-proof
 *   ClientSignature = HMAC(StoredKey, AuthMessage)
 *   ClientProof     = ClientKey XOR ClientSignature
 *   ServerSignature = HMAC(ServerKey, AuthMessage)
 *
 * The server keeps only salt, i, StoredKey and ServerKey: it can check a proof and prove itself, but
 * cannot log in as the client. Gateway tokens are printable ASCII, so SASLprep leaves them unchanged.
 */
export const SCRAM_MECHANISM = 'SCRAM-SHA-256';
export const SCRAM_DEFAULT_ITERATIONS = 4096;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;
const NONCE_LENGTH = 18;

function hmac(key: Buffer, message: string | Buffer): Buffer {
  return createHmac('sha256', key).update(message).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

export function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, KEY_LENGTH, 'sha256');
}

/** Derives the verifier the gateway stores for a token; a fresh random salt unless one is given. */
export function createScramVerifier(password: string, options: { iterations?: number; salt?: Buffer } = {}): ScramVerifier {
  const iterations = options.iterations ?? SCRAM_DEFAULT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError(`SCRAM iteration count must be a positive integer, got ${iterations}`);
  const salt = options.salt ?? randomBytes(SALT_LENGTH);
  const salted = saltedPassword(password, salt, iterations);
  const clientKey = hmac(salted, 'Client Key');
  return { iterations, salt, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

/**
 * True when `clientProof` proves knowledge of the password behind `verifier` for this AuthMessage:
 * ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), and SHA-256(ClientKey) must equal StoredKey.
 */
export function verifyClientProof(verifier: ScramVerifier, authMessage: string, clientProof: Buffer): boolean {
  if (clientProof.length !== KEY_LENGTH || verifier.storedKey.length !== KEY_LENGTH) return false;
  const clientSignature = hmac(verifier.storedKey, authMessage);
  const clientKey = xor(clientProof, clientSignature);
  return timingSafeEqual(sha256(clientKey), verifier.storedKey);
}

/** ServerSignature = HMAC(ServerKey, AuthMessage): the `v=` the server sends in server-final-message. */
export function computeServerSignature(verifier: ScramVerifier, authMessage: string): Buffer {
  return hmac(verifier.serverKey, authMessage);
}

/** The client's side of the proof, for clients and tests: ClientKey XOR HMAC(StoredKey, AuthMessage). */
export function computeClientProof(password: string, salt: Buffer, iterations: number, authMessage: string): Buffer {
  const clientKey = hmac(saltedPassword(password, salt, iterations), 'Client Key');
  return xor(clientKey, hmac(sha256(clientKey), authMessage));
}

/**
 * A verifier for a login that does not exist, derived from a per-process secret, so that an unknown
 * login runs the same exchange (same salt each time, same iteration count) and fails only at the
 * proof, as PostgreSQL does: a client cannot tell unknown logins from wrong tokens.
 */
export function decoyScramVerifier(login: string, secret: Buffer, iterations = SCRAM_DEFAULT_ITERATIONS): ScramVerifier {
  const derive = (label: string): Buffer => hmac(secret, `${label}\0${login}`);
  return { iterations, salt: derive('salt').subarray(0, SALT_LENGTH), storedKey: derive('stored'), serverKey: derive('server') };
}

/** PostgreSQL's rolpassword text form: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>. */
export function formatScramVerifier(verifier: ScramVerifier): string {
  const b64 = (b: Buffer): string => b.toString('base64');
  return `${SCRAM_MECHANISM}$${verifier.iterations}:${b64(verifier.salt)}$${b64(verifier.storedKey)}:${b64(verifier.serverKey)}`;
}

export function parseScramVerifier(text: string): ScramVerifier {
  const match = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (!match) throw new SyntaxError('not a SCRAM-SHA-256 verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)');
  const storedKey = Buffer.from(match[3]!, 'base64');
  const serverKey = Buffer.from(match[4]!, 'base64');
  if (storedKey.length !== KEY_LENGTH || serverKey.length !== KEY_LENGTH) throw new SyntaxError('SCRAM-SHA-256 keys must be 32 bytes');
  return { iterations: Number(match[1]), salt: Buffer.from(match[2]!, 'base64'), storedKey, serverKey };
}

/** Why an exchange failed; `message` is safe to show the client (it names no secret). */
export class ScramExchangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramExchangeError';
  }
}

interface ClientFirst {
  gs2Header: string;
  bare: string;
  nonce: string;
}

/**
 * client-first-message = gs2-header client-first-message-bare, gs2-header = cbind-flag "," [authzid] ",".
 * PostgreSQL ignores the user name here (the StartupMessage names the user), and so does the gateway.
 */
export function parseClientFirstMessage(message: string): ClientFirst {
  const first = message.indexOf(',');
  const second = first < 0 ? -1 : message.indexOf(',', first + 1);
  if (second < 0) throw new ScramExchangeError('malformed SCRAM client-first-message: no GS2 header');
  const cbindFlag = message.slice(0, first);
  // 'p=…' asks for channel binding, which needs SCRAM-SHA-256-PLUS; the gateway does not offer it.
  // 'y' means the client could bind but believes the server cannot: true here, so it is accepted.
  if (cbindFlag !== 'n' && cbindFlag !== 'y') throw new ScramExchangeError('channel binding is not supported: use SCRAM-SHA-256 without channel binding');
  if (message.slice(first + 1, second) !== '') throw new ScramExchangeError('a SCRAM authorization identity is not supported');
  const gs2Header = message.slice(0, second + 1);
  const bare = message.slice(second + 1);
  if (bare.startsWith('m=')) throw new ScramExchangeError('SCRAM extensions (m=) are not supported');
  const nonce = attribute(bare, 'r');
  if (nonce === null || nonce.length === 0 || !/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce)) {
    throw new ScramExchangeError('malformed SCRAM client-first-message: missing or invalid nonce');
  }
  return { gs2Header, bare, nonce };
}

/** Finds `name=value` in a comma-separated attribute list. */
function attribute(list: string, name: string): string | null {
  for (const part of list.split(',')) {
    if (part.startsWith(`${name}=`)) return part.slice(name.length + 1);
  }
  return null;
}

export type ScramFinishResult = { ok: true; serverFinalMessage: string } | { ok: false; reason: string };

/**
 * One SCRAM-SHA-256 exchange, server side:
 *   const exchange = new ScramServerExchange(verifier);
 *   const serverFirst = exchange.start(clientFirst);      // → AuthenticationSASLContinue
 *   const result = exchange.finish(clientFinal);          // ok → AuthenticationSASLFinal(serverFinalMessage)
 * `start` throws ScramExchangeError on malformed input; `finish` reports a wrong proof as {ok:false}.
 */
export class ScramServerExchange {
  private readonly verifier: ScramVerifier;
  private clientFirst: ClientFirst | null = null;
  private serverFirst = '';
  private combinedNonce = '';
  private done = false;

  constructor(verifier: ScramVerifier, private readonly serverNonce = randomBytes(NONCE_LENGTH).toString('base64')) {
    this.verifier = verifier;
  }

  start(clientFirstMessage: string): string {
    if (this.clientFirst) throw new ScramExchangeError('SCRAM exchange already started');
    this.clientFirst = parseClientFirstMessage(clientFirstMessage);
    this.combinedNonce = this.clientFirst.nonce + this.serverNonce;
    this.serverFirst = `r=${this.combinedNonce},s=${this.verifier.salt.toString('base64')},i=${this.verifier.iterations}`;
    return this.serverFirst;
  }

  finish(clientFinalMessage: string): ScramFinishResult {
    if (!this.clientFirst || this.done) throw new ScramExchangeError('SCRAM client-final-message out of order');
    this.done = true;
    const proofAt = clientFinalMessage.lastIndexOf(',p=');
    if (proofAt < 0) throw new ScramExchangeError('malformed SCRAM client-final-message: no proof');
    const withoutProof = clientFinalMessage.slice(0, proofAt);
    const proof = Buffer.from(clientFinalMessage.slice(proofAt + 3), 'base64');
    const channelBinding = attribute(withoutProof, 'c');
    // c= carries the base64 of the GS2 header when there is no channel binding ("biws" for "n,,").
    if (channelBinding !== Buffer.from(this.clientFirst.gs2Header, 'utf8').toString('base64')) {
      throw new ScramExchangeError('SCRAM channel binding data does not match the client-first-message');
    }
    if (attribute(withoutProof, 'r') !== this.combinedNonce) throw new ScramExchangeError('SCRAM nonce does not match');
    const authMessage = `${this.clientFirst.bare},${this.serverFirst},${withoutProof}`;
    if (!verifyClientProof(this.verifier, authMessage, proof)) return { ok: false, reason: 'password authentication failed' };
    return { ok: true, serverFinalMessage: `v=${computeServerSignature(this.verifier, authMessage).toString('base64')}` };
  }
}

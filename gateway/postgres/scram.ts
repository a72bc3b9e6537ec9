import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677), client side, as PostgreSQL uses it: the gateway proves to an
 * upstream server that it knows the resource's password, and checks the server's signature in
 * return, so a spoofed upstream cannot collect statements. (The server side, towards agents, is
 * gateway/identity/scram.ts.)
 *
 * Messages are comma-separated `k=v` attributes. PostgreSQL ignores the SCRAM user name (the
 * startup packet's user counts) and sends an empty one; channel binding is not offered.
 */

export interface ScramKeys {
  storedKey: Buffer;
  serverKey: Buffer;
}

export function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** SaltedPassword := Hi(Normalize(password), salt, i), Hi being PBKDF2 with HMAC-SHA-256. */
export function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  // SASLprep maps to NFKC; PostgreSQL uses the raw bytes when SASLprep fails, which NFKC of
  // ordinary passwords never does.
  return pbkdf2Sync(Buffer.from(password.normalize('NFKC'), 'utf8'), salt, iterations, 32, 'sha256');
}

export function keysFromSaltedPassword(salted: Buffer): ScramKeys & { clientKey: Buffer } {
  const clientKey = hmac(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

export function parseAttributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq !== 1) throw new Error(`malformed SCRAM attribute "${part.slice(0, 20)}"`);
    out.set(part[0]!, part.slice(2));
  }
  return out;
}

export function newNonce(): string {
  return randomBytes(18).toString('base64');
}

/** The client side, used when the gateway logs into an upstream server. */
export class ScramClient {
  private readonly clientNonce = newNonce();
  private readonly clientFirstBare = `n=,r=${this.clientNonce}`;
  private expectedServerSignature: Buffer | null = null;

  constructor(private readonly password: string) {}

  /** The SASLInitialResponse payload: GS2 header "n,," (no channel binding) and the bare message. */
  firstMessage(): string {
    return `n,,${this.clientFirstBare}`;
  }

  /** Answers server-first with client-final (with proof). */
  finalMessage(serverFirst: string): string {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce || !nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw new Error('server nonce does not extend the client nonce');
    }
    if (!salt || !Number.isInteger(iterations) || iterations < 1) throw new Error('server-first lacks salt or iteration count');
    const keys = keysFromSaltedPassword(saltedPassword(this.password, Buffer.from(salt, 'base64'), iterations));
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = xor(keys.clientKey, hmac(keys.storedKey, authMessage));
    this.expectedServerSignature = hmac(keys.serverKey, authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks server-final's signature; a server that cannot produce it does not know the verifier. */
  verifyServerFinal(serverFinal: string): void {
    const attrs = parseAttributes(serverFinal);
    const error = attrs.get('e');
    if (error !== undefined) throw new Error(`server refused the SCRAM exchange: ${error}`);
    const signature = Buffer.from(attrs.get('v') ?? '', 'base64');
    if (!this.expectedServerSignature || signature.length !== 32 || !timingSafeEqual(signature, this.expectedServerSignature)) {
      throw new Error('server signature does not match: the upstream server does not hold this password');
    }
  }
}

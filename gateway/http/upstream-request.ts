import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Pool } from 'undici';
import { readCredential } from '../credentials/credential-source';
import { CredentialUnavailableError as PostgresCredentialError } from '../postgres/errors';
import type { HttpResourceConfig } from './config-schema';
import { CredentialUnavailableError } from './errors';
import { HOP_BY_HOP } from './protocol';

/** Request headers that carry the agent's own credentials or claims about the path: never forwarded. */
const AGENT_ONLY = new Set(['authorization', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'expect', 'host', 'content-length']);

/**
 * Where one resource's requests go, with a keep-alive connection pool of its own. The pool is
 * undici's (llhttp, one request per connection at a time, no pipelining): per request it costs
 * about half of what node:http's ClientRequest does, which is most of a proxy's client side.
 */
export class UpstreamTarget {
  readonly url: URL;
  readonly pool: Pool;
  readonly secure: boolean;
  /** The base path of the upstream URL, without a trailing slash ("" for "/"). */
  readonly basePath: string;
  /** Request headers never forwarded to this resource: hop-by-hop, the agent's own, the credential's name. */
  readonly dropped: ReadonlySet<string>;

  constructor(readonly resource: HttpResourceConfig) {
    this.url = new URL(resource.upstream.url);
    this.secure = this.url.protocol === 'https:';
    this.basePath = this.url.pathname.replace(/\/+$/, '');
    const dropped = new Set([...HOP_BY_HOP, ...AGENT_ONLY]);
    if (resource.credential) dropped.add(resource.credential.header);
    this.dropped = dropped;
    const ca = this.secure && resource.upstream.ca ? readFileSync(resource.upstream.ca) : undefined;
    this.pool = new Pool(this.url.origin, {
      connections: resource.upstream.maxConnections,
      pipelining: 1,
      connect: this.secure ? { ca, servername: this.servername } : undefined,
    });
  }

  get host(): string {
    return this.url.hostname.replace(/^\[|\]$/g, '');
  }

  /** The TLS server name (SNI) for an https upstream: its host name, none for an address (RFC 6066 §3). */
  get servername(): string | undefined {
    return isIP(this.host) === 0 ? this.host : undefined;
  }

  get port(): number {
    return this.url.port ? Number(this.url.port) : this.secure ? 443 : 80;
  }

  /** The target sent upstream: the base path, the resource-relative path, the query. */
  target(path: string, query: string): string {
    return `${this.basePath}${path}${query === '' ? '' : `?${query}`}`;
  }

  /**
   * The resource's credential, read at request time so a rotated file or environment takes effect at
   * once; null when the resource needs none. Read once per request: the same value goes into the
   * forwarded header and is kept out of what the gateway records.
   */
  credentialSecret(): string | null {
    const credential = this.resource.credential;
    if (credential === null) return null;
    try {
      return readCredential(this.resource.name, credential.source);
    } catch (err) {
      // readCredential names the PostgreSQL settings in its message; say where the HTTP one lives.
      if (err instanceof PostgresCredentialError) {
        const detail = 'env' in credential.source ? `environment variable ${credential.source.env} is not set` : 'file' in credential.source ? `cannot read ${credential.source.file}, or it is empty` : 'no value';
        throw new CredentialUnavailableError(this.resource.name, detail, err);
      }
      throw err;
    }
  }

  /** The `<header>: <scheme> <secret>` the gateway adds for `secret`, or null without one. */
  credentialHeader(secret: string | null): [string, string] | null {
    const credential = this.resource.credential;
    if (credential === null || secret === null) return null;
    if (this.lastCredential?.secret !== secret) this.remember(secret);
    return this.lastCredential!.header;
  }

  /** `secret` as bytes, for keeping it out of recorded bodies. */
  secretBytes(secret: string): Buffer {
    if (this.lastCredential?.secret !== secret) this.remember(secret);
    return this.lastCredential!.bytes;
  }

  /**
   * What is derived from the credential, for as long as it stays the same (it is read per request,
   * so a rotation takes effect at once; this only saves rebuilding the same header and bytes).
   */
  private lastCredential: { secret: string; header: [string, string] | null; bytes: Buffer } | null = null;

  private remember(secret: string): void {
    const credential = this.resource.credential;
    const header: [string, string] | null = credential === null ? null : [credential.header, credential.scheme === '' ? secret : `${credential.scheme} ${secret}`];
    this.lastCredential = { secret, header, bytes: Buffer.from(secret, 'utf8') };
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/**
 * The headers forwarded upstream, as a flat [name, value, …] list in the agent's order: hop-by-hop
 * fields (and any the agent's Connection names) dropped, the agent's Authorization and any header of
 * the resource's credential's name stripped, the credential added, X-Forwarded-* set by the gateway
 * (never trusted from the agent), Host set to the upstream's. `secret`: the resource credential read for
 * this request (UpstreamTarget.credentialSecret); `connection`: the agent's Connection header (values joined by ", ").
 */
export function forwardHeaders(
  rawHeaders: readonly string[],
  connection: string | undefined,
  target: UpstreamTarget,
  client: { ip: string; host: string; secure: boolean },
  body: { contentLength: number | null },
  keepUpgrade: boolean,
  secret: string | null,
): string[] {
  let dropped = target.dropped;
  const credential = target.credentialHeader(secret);
  if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close') {
    const extended = new Set(dropped);
    for (const token of connection.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '' && !(keepUpgrade && name === 'upgrade')) extended.add(name);
    }
    dropped = extended;
  }
  const out: string[] = ['host', target.url.host];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (dropped.has(name)) continue;
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  if (keepUpgrade) out.push('connection', 'Upgrade', 'upgrade', 'websocket');
  if (body.contentLength !== null) out.push('content-length', String(body.contentLength));
  out.push('x-forwarded-for', client.ip, 'x-forwarded-host', client.host, 'x-forwarded-proto', client.secure ? 'https' : 'http');
  if (credential) out.push(credential[0], credential[1]);
  return out;
}

/** The first value of a header in a flat [name, value, …] list (names compared case-insensitively). */
export function headerValue(rawHeaders: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const candidate = rawHeaders[i]!;
    if (candidate.length === name.length && candidate.toLowerCase() === name) return rawHeaders[i + 1];
  }
  return undefined;
}

/** Response headers passed to the agent: hop-by-hop fields and those the upstream's Connection names dropped. */
export function responseHeaders(rawHeaders: readonly string[], keepUpgrade = false): string[] {
  let dropped: ReadonlySet<string> = HOP_BY_HOP;
  if (keepUpgrade) {
    const kept = new Set(HOP_BY_HOP);
    kept.delete('upgrade');
    kept.delete('connection');
    dropped = kept;
  } else {
    const connection = headerValue(rawHeaders, 'connection');
    // "keep-alive" and "close" name no field; anything else the upstream lists is hop-by-hop too.
    if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close') {
      const extended = new Set(HOP_BY_HOP);
      for (const token of connection.split(',')) extended.add(token.trim().toLowerCase());
      dropped = extended;
    }
  }
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (dropped.has(rawHeaders[i]!.toLowerCase())) continue;
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  return out;
}

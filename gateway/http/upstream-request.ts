import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { readCredential } from '../credentials/credential-source';
import { CredentialUnavailableError as PostgresCredentialError } from '../postgres/errors';
import type { HttpResourceConfig } from './config-schema';
import { CredentialUnavailableError } from './errors';
import { HOP_BY_HOP } from './protocol';

/** Request headers that carry the agent's own credentials or claims about the path: never forwarded. */
const AGENT_ONLY = new Set(['authorization', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'expect', 'host', 'content-length']);

/** Where one resource's requests go, with a keep-alive connection pool of its own. */
export class UpstreamTarget {
  readonly url: URL;
  readonly agent: HttpAgent;
  readonly secure: boolean;
  /** The base path of the upstream URL, without a trailing slash ("" for "/"). */
  readonly basePath: string;

  constructor(readonly resource: HttpResourceConfig) {
    this.url = new URL(resource.upstream.url);
    this.secure = this.url.protocol === 'https:';
    this.basePath = this.url.pathname.replace(/\/+$/, '');
    const options = { keepAlive: true, maxFreeSockets: resource.upstream.maxIdleSockets, scheduling: 'lifo' as const };
    this.agent = this.secure
      ? new HttpsAgent({ ...options, ca: resource.upstream.ca ? readFileSync(resource.upstream.ca) : undefined })
      : new HttpAgent(options);
  }

  get host(): string {
    return this.url.hostname.replace(/^\[|\]$/g, '');
  }

  get port(): number {
    return this.url.port ? Number(this.url.port) : this.secure ? 443 : 80;
  }

  /** The target sent upstream: the base path, the resource-relative path, the query. */
  target(path: string, query: string): string {
    return `${this.basePath}${path}${query === '' ? '' : `?${query}`}`;
  }

  /**
   * The `<header>: <scheme> <secret>` the gateway adds, read at request time so a rotated file or
   * environment takes effect at once; null when the resource needs none.
   */
  credentialHeader(): [string, string] | null {
    const credential = this.resource.credential;
    if (credential === null) return null;
    let secret: string | null;
    try {
      secret = readCredential(this.resource.name, credential.source);
    } catch (err) {
      // readCredential names the PostgreSQL settings in its message; say where the HTTP one lives.
      if (err instanceof PostgresCredentialError) {
        const detail = 'env' in credential.source ? `environment variable ${credential.source.env} is not set` : 'file' in credential.source ? `cannot read ${credential.source.file}, or it is empty` : 'no value';
        throw new CredentialUnavailableError(this.resource.name, detail, err);
      }
      throw err;
    }
    if (secret === null) return null;
    return [credential.header, credential.scheme === '' ? secret : `${credential.scheme} ${secret}`];
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * The headers forwarded upstream, as a flat [name, value, …] list in the agent's order: hop-by-hop
 * fields (and any the agent's Connection names) dropped, the agent's Authorization and any header of
 * the resource's credential's name stripped, the credential added, X-Forwarded-* set by the gateway
 * (never trusted from the agent), Host set to the upstream's.
 */
export function forwardHeaders(
  rawHeaders: readonly string[],
  headers: IncomingHttpHeaders,
  target: UpstreamTarget,
  client: { ip: string; host: string; secure: boolean },
  body: { contentLength: number | null },
  keepUpgrade: boolean,
): string[] {
  const dropped = new Set(HOP_BY_HOP);
  for (const name of AGENT_ONLY) dropped.add(name);
  const credential = target.credentialHeader();
  if (target.resource.credential) dropped.add(target.resource.credential.header);
  const connection = headers.connection;
  if (typeof connection === 'string') {
    for (const token of connection.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '' && !(keepUpgrade && name === 'upgrade')) dropped.add(name);
    }
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

/** Response headers passed to the agent: hop-by-hop fields and those the upstream's Connection names dropped. */
export function responseHeaders(rawHeaders: readonly string[], headers: IncomingHttpHeaders, keepUpgrade = false): string[] {
  const dropped = new Set(HOP_BY_HOP);
  if (keepUpgrade) {
    dropped.delete('upgrade');
    dropped.delete('connection');
  }
  const connection = headers.connection;
  if (typeof connection === 'string' && !keepUpgrade) {
    for (const token of connection.split(',')) dropped.add(token.trim().toLowerCase());
  }
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (dropped.has(rawHeaders[i]!.toLowerCase())) continue;
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  return out;
}

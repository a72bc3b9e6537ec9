import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Config } from '../../platform/config';
import type { Endpoint } from '../../proto/generated/gapwatch/v1/Endpoint';
import type { Listener } from '../../proto/generated/gapwatch/v1/Listener';
import type { Resource } from '../../proto/generated/gapwatch/v1/Resource';
import type { ResourcesResponse } from '../../proto/generated/gapwatch/v1/ResourcesResponse';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface CatalogInput {
  gatewayId: string;
  postgres: Config['gateway']['postgres'];
  /** Where the PostgreSQL listener actually listens (port 0 in config resolves at bind). */
  postgresListener: ListenAddress | null;
  http?: Config['gateway']['http'];
  /** Where the HTTP listener listens; null when it does not (no HTTP resources). */
  httpListener?: ListenAddress | null;
  ssh?: Config['gateway']['ssh'];
  /** Where the SSH listener listens; null when it does not (no SSH resources). */
  sshListener?: ListenAddress | null;
  auditListener: ListenAddress | null;
}

/** `::ffff:10.0.0.5` → `10.0.0.5`: the sensor reports v4-mapped destinations as IPv4, so the catalogue does too. */
export function normaliseIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return mapped ? mapped[1]! : ip;
}

/** An address as configured: a literal IP stays inet, anything else is a name the reader resolves. */
export function endpointOf(host: string, port: number): Endpoint {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(bare) !== 0) return { inet: { ip: normaliseIp(bare), port } };
  return { named: { hostName: bare, port } };
}

/**
 * libpq's rule: with host=<directory>, the server's socket is `<directory>/.s.PGSQL.<port>`.
 * (PostgreSQL docs, 34.1.2 "Parameter Key Words", host.)
 */
export function postgresSocketPath(directory: string, port: number): string {
  return join(directory, `.s.PGSQL.${port}`);
}

/**
 * What ListResources answers: every protected resource with its upstream endpoints (how a direct,
 * bypassing connect would look) and the gateway listener that fronts it (how a mediated one looks),
 * and every endpoint the gateway itself listens on.
 */
export function resourceCatalog(input: CatalogInput): ResourcesResponse {
  const pgListener = input.postgresListener ? endpointOf(input.postgresListener.host, input.postgresListener.port) : null;
  const listeners: Listener[] = [];
  const httpListener = input.httpListener ? endpointOf(input.httpListener.host, input.httpListener.port) : null;
  if (pgListener) listeners.push({ protocol: 'PROTOCOL_POSTGRES', endpoint: pgListener, role: 'postgres' });
  if (httpListener) listeners.push({ protocol: 'PROTOCOL_HTTP', endpoint: httpListener, role: 'http' });
  const sshListener = input.sshListener ? endpointOf(input.sshListener.host, input.sshListener.port) : null;
  if (sshListener) listeners.push({ protocol: 'PROTOCOL_SSH', endpoint: sshListener, role: 'ssh' });
  if (input.auditListener) listeners.push({ protocol: 'PROTOCOL_UNSPECIFIED', endpoint: endpointOf(input.auditListener.host, input.auditListener.port), role: 'audit' });
  return {
    gatewayId: input.gatewayId,
    resources: input.postgres.resources.map((resource): Resource => {
      const upstream = resource.upstream;
      return {
        name: resource.name,
        protocol: 'PROTOCOL_POSTGRES',
        upstream: [upstream.socket ? { unixPath: postgresSocketPath(upstream.socket, upstream.port) } : endpointOf(upstream.host, upstream.port)],
        listener: pgListener ? [pgListener] : [],
        labels: { database: upstream.database },
        tags: [...resource.tags],
      };
    }).concat(
      (input.http?.resources ?? []).map((resource): Resource => {
        const url = new URL(resource.upstream.url);
        const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
        return {
          name: resource.name,
          protocol: 'PROTOCOL_HTTP',
          upstream: [endpointOf(url.hostname, port)],
          listener: httpListener ? [httpListener] : [],
          labels: { url: `${url.protocol}//${url.host}` },
          tags: [...resource.tags],
        };
      }),
      (input.ssh?.resources ?? []).map(
        (resource): Resource => ({
          name: resource.name,
          protocol: 'PROTOCOL_SSH',
          upstream: [endpointOf(resource.upstream.host, resource.upstream.port)],
          listener: sshListener ? [sshListener] : [],
          labels: { user: resource.upstream.user },
          tags: [...resource.tags],
        }),
      ),
    ),
    listeners,
  };
}

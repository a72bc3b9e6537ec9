import type { HttpResourceConfig } from './config-schema';
import { UnknownResourceError } from './errors';

export interface Route {
  resource: HttpResourceConfig;
  /** The path relative to the resource: the prefix removed when the resource strips it. */
  path: string;
}

/** "example.com:8080" → "example.com"; "[::1]:80" → "::1". */
export function hostWithoutPort(host: string): string {
  const value = host.trim().toLowerCase();
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    return end < 0 ? value : value.slice(1, end);
  }
  const colon = value.lastIndexOf(':');
  return colon < 0 ? value : value.slice(0, colon);
}

function underPrefix(path: string, prefix: string): boolean {
  if (prefix === '/') return true;
  const bare = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return path === bare || path.startsWith(`${bare}/`);
}

/**
 * Chooses the resource for a request: resources whose hosts include the Host come first (with a
 * prefix, it must match too), then resources selected by path prefix alone; among prefixes the
 * longest wins. A prefix matches whole segments only: "/api" covers "/api" and "/api/x", not "/apix".
 */
export class ResourceRouter {
  constructor(private readonly resources: readonly HttpResourceConfig[]) {}

  route(host: string, path: string): Route {
    const name = hostWithoutPort(host);
    const byHost = this.resources.filter((r) => r.hosts.includes(name));
    const candidates = byHost.length > 0 ? byHost : this.resources.filter((r) => r.hosts.length === 0);
    let best: HttpResourceConfig | null = null;
    for (const resource of candidates) {
      if (resource.pathPrefix === null) {
        if (best === null) best = resource;
        continue;
      }
      if (!underPrefix(path, resource.pathPrefix)) continue;
      if (best === null || best.pathPrefix === null || resource.pathPrefix.length > best.pathPrefix.length) best = resource;
    }
    if (!best) throw new UnknownResourceError(name, path);
    return { resource: best, path: best.pathPrefix !== null && best.stripPrefix ? stripPrefix(path, best.pathPrefix) : path };
  }
}

function stripPrefix(path: string, prefix: string): string {
  const bare = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const rest = path.slice(bare.length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

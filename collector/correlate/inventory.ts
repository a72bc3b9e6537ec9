import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Config } from '../../platform/config';
import type { Logger } from '../../platform/log';
import type { ResourcesResponse__Output } from '../../proto/generated/gapwatch/v1/ResourcesResponse';
import type { Endpoint__Output } from '../../proto/generated/gapwatch/v1/Endpoint';
import { localSocketsOf } from './local-sockets';

/** One protected resource as correlation sees it, whichever source declared it. */
export interface ProtectedResource {
  name: string;
  protocol: string;
  labels: Record<string, string>;
  /** Host names (or literal addresses) and ports of the real target. */
  upstream: Array<{ host: string; port: number }>;
  upstreamUnixPaths: string[];
  listener: Array<{ host: string; port: number }>;
}

/** What a destination is to correlation. */
export interface EndpointMatch {
  role: 'listener' | 'upstream';
  resource: ProtectedResource;
}

/** The address as the sensor and the gateway print it: v4-mapped IPv6 is the IPv4 address. */
export function normaliseIp(ip: string): string {
  const lower = ip.toLowerCase();
  if (lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4) return lower.slice(7);
  return lower;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/**
 * The protected resources and gateway listeners, indexed by address:port and unix socket path. Sources
 * are the gateways' Resources answers (one per gateway id, replaced whenever it changes) and the local
 * `collector.resources`; entries of the same name are merged. Host names are resolved when a source
 * changes and again every resolveIntervalMs; a PostgreSQL upstream on this host also protects its unix
 * sockets (found from the listening process), since psql -h /socket/dir reaches the same server.
 */
export class Inventory {
  private readonly sources = new Map<string, ProtectedResource[]>();
  private byEndpoint = new Map<string, EndpointMatch>();
  /** Listeners on a wildcard address: any local address at that port. */
  private wildcardListeners = new Map<number, EndpointMatch>();
  private byUnixPath = new Map<string, EndpointMatch>();
  private localAddresses = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private rebuilding: Promise<void> = Promise.resolve();
  /** Host names of upstreams and their addresses, for exec detections (argv names hosts, not IPs). */
  private upstreamHosts = new Map<string, ProtectedResource[]>();
  private readonly changeListeners: Array<() => void> = [];

  constructor(
    private readonly resolveIntervalMs: number,
    private readonly log: Logger,
  ) {}

  /** The local `collector.resources`. */
  setConfigured(resources: Config['collector']['resources']): Promise<void> {
    this.sources.set(
      'config',
      resources.map((r) => ({
        name: r.name,
        protocol: r.protocol,
        labels: { ...r.labels },
        upstream: r.upstream.flatMap((u) => ('host' in u ? [{ host: u.host, port: u.port }] : [])),
        upstreamUnixPaths: r.upstream.flatMap((u) => ('unixPath' in u ? [u.unixPath] : [])),
        listener: r.listener.map((l) => ({ host: l.host, port: l.port })),
      })),
    );
    return this.rebuild();
  }

  /** A gateway's Resources answer; replaces what that gateway said before. */
  setFromGateway(response: ResourcesResponse__Output): Promise<void> {
    this.sources.set(
      `gateway:${response.gatewayId}`,
      response.resources.map((r) => ({
        name: r.name,
        protocol: String(r.protocol).replace(/^PROTOCOL_/, '').toLowerCase(),
        // A gateway tag ("production") counts as a label of that name, which is what alert severity reads.
        labels: { ...Object.fromEntries(r.tags.map((tag) => [tag, 'true'])), ...r.labels },
        upstream: r.upstream.flatMap(hostPortOf),
        upstreamUnixPaths: r.upstream.flatMap((e) => (e.unixPath ? [e.unixPath] : [])),
        listener: r.listener.flatMap(hostPortOf),
      })),
    );
    return this.rebuild();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.rebuild(), this.resolveIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  /** Resolves once the latest rebuild has finished. */
  settled(): Promise<void> {
    return this.rebuilding;
  }

  resources(): ProtectedResource[] {
    return mergeByName([...this.sources.values()].flat());
  }

  matchInet(ip: string, port: number): EndpointMatch | undefined {
    const address = normaliseIp(ip);
    const exact = this.byEndpoint.get(`${address}|${port}`);
    if (exact) return exact;
    const wildcard = this.wildcardListeners.get(port);
    if (wildcard && (this.localAddresses.has(address) || address.startsWith('127.'))) return wildcard;
    return undefined;
  }

  matchUnix(path: string): EndpointMatch | undefined {
    return this.byUnixPath.get(path);
  }

  /** The resource whose upstream has this host name or address (as a client's argv would name it). */
  upstreamHost(host: string, port: number | null = null): ProtectedResource | undefined {
    const resources = this.upstreamHosts.get(host.toLowerCase()) ?? this.upstreamHosts.get(normaliseIp(host));
    if (!resources) return undefined;
    // Several resources may live on one host (a database and an SSH server): the port tells them apart.
    return (port === null ? undefined : resources.find((r) => r.upstream.some((u) => u.port === port))) ?? resources[0];
  }

  private rebuild(): Promise<void> {
    this.rebuilding = this.rebuilding.then(() => this.build()).catch((err: unknown) => this.log.error({ err }, 'inventory rebuild failed'));
    return this.rebuilding;
  }

  private async build(): Promise<void> {
    const resources = this.resources();
    const byEndpoint = new Map<string, EndpointMatch>();
    const wildcardListeners = new Map<number, EndpointMatch>();
    const byUnixPath = new Map<string, EndpointMatch>();
    const upstreamHosts = new Map<string, ProtectedResource[]>();
    const addHost = (key: string, resource: ProtectedResource): void => {
      const list = upstreamHosts.get(key) ?? [];
      if (!list.includes(resource)) list.push(resource);
      upstreamHosts.set(key, list);
    };
    const local = localAddressSet();
    for (const resource of resources) {
      // Upstreams first: when the gateway fronts a target on the same address:port (it never should), the listener wins.
      for (const { host, port } of resource.upstream) {
        addHost(host.toLowerCase(), resource);
        for (const ip of await this.resolve(host)) {
          byEndpoint.set(`${ip}|${port}`, { role: 'upstream', resource });
          addHost(ip, resource);
          if (resource.protocol === 'postgres' && (local.has(ip) || ip.startsWith('127.') || ip === '::1')) {
            for (const path of await localSocketsOf(port)) byUnixPath.set(path, { role: 'upstream', resource });
          }
        }
        // Listening on a wildcard address, a local server is reached through any local address.
        if (WILDCARDS.has(host)) for (const ip of local) byEndpoint.set(`${ip}|${port}`, { role: 'upstream', resource });
      }
      for (const path of resource.upstreamUnixPaths) byUnixPath.set(path, { role: 'upstream', resource });
      for (const { host, port } of resource.listener) {
        if (WILDCARDS.has(host)) {
          wildcardListeners.set(port, { role: 'listener', resource });
          continue;
        }
        for (const ip of await this.resolve(host)) byEndpoint.set(`${ip}|${port}`, { role: 'listener', resource });
      }
    }
    this.byEndpoint = byEndpoint;
    this.wildcardListeners = wildcardListeners;
    this.byUnixPath = byUnixPath;
    this.upstreamHosts = upstreamHosts;
    this.localAddresses = local;
    for (const listener of this.changeListeners) listener();
  }

  private async resolve(host: string): Promise<string[]> {
    if (isIP(host) !== 0) return [normaliseIp(host)];
    try {
      const answers = await lookup(host, { all: true, verbatim: true });
      return [...new Set(answers.map((a) => normaliseIp(a.address)))];
    } catch (err) {
      this.log.warn({ host, err: (err as Error).message }, 'a protected resource host name does not resolve; connects to it cannot be recognised until it does');
      return [];
    }
  }
}

function mergeByName(resources: ProtectedResource[]): ProtectedResource[] {
  const merged = new Map<string, ProtectedResource>();
  for (const r of resources) {
    const known = merged.get(r.name);
    if (!known) {
      merged.set(r.name, { ...r, labels: { ...r.labels }, upstream: [...r.upstream], upstreamUnixPaths: [...r.upstreamUnixPaths], listener: [...r.listener] });
      continue;
    }
    Object.assign(known.labels, r.labels);
    known.upstream.push(...r.upstream);
    known.upstreamUnixPaths.push(...r.upstreamUnixPaths);
    known.listener.push(...r.listener);
  }
  return [...merged.values()];
}

function localAddressSet(): Set<string> {
  const out = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(normaliseIp(a.address));
  return out;
}

/** Inet endpoints as they are; named ones keep their host name, which the inventory resolves. */
function hostPortOf(endpoint: Endpoint__Output): Array<{ host: string; port: number }> {
  if (endpoint.inet) return [{ host: endpoint.inet.ip, port: endpoint.inet.port }];
  if (endpoint.named) return [{ host: endpoint.named.hostName, port: endpoint.named.port }];
  return [];
}

import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../../platform/log';
import type { Listener__Output } from '../../proto/generated/gapwatch/v1/Listener';
import { normaliseIp } from './inventory';
import { holdersOf, listeningSockets, socketInodesOf, type ListeningSocket } from './local-sockets';

/** One advertised gateway listener: which gateway said it, its role ("postgres", "audit", …) and where. */
interface AdvertisedListener {
  gatewayId: string;
  role: string;
  host: string;
  port: number;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

type LocalListener = AdvertisedListener & { addresses: string[] };

/**
 * Finds the processes of the gateways that run on this host as their own process (`gapwatch gateway`
 * beside `gapwatch collector`): the owner of a LISTEN socket that a gateway advertises in its
 * ListResources answer is that gateway, and its connects to upstreams are its own legs, not a bypass.
 * Only an advertised listener counts: a process listening on some other port is never taken for the
 * gateway. Looked up again whenever a gateway's listener list changes and every refreshMs (a restarted
 * gateway has a new pid, and a pid no longer holding the listener may be reused by anything).
 */
export class LocalGatewayProcesses {
  private readonly listeners = new Map<string, AdvertisedListener[]>();
  private readonly listenerText = new Map<string, string>();
  /** pid → the listeners it was recognised by, as "role host:port" texts. */
  private recognised = new Map<number, string[]>();
  /** The advertised listeners on this host's addresses, as of the last look-up. */
  private local: LocalListener[] = [];
  /** Pids confirm() found owning none of them since the last look-up, and checks under way. */
  private notGateway = new Set<number>();
  private readonly checking = new Map<number, Promise<boolean>>();
  private lookingUp = 0;
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> = Promise.resolve();
  private readonly changeListeners: Array<(pids: ReadonlySet<number>) => void> = [];

  constructor(
    private readonly refreshMs: number,
    private readonly log: Logger,
    private readonly proc = '/proc',
  ) {}

  /** A gateway's advertised listeners (ResourcesResponse.listeners); looks again when they changed. */
  setListeners(gatewayId: string, listeners: readonly Listener__Output[]): Promise<void> {
    const advertised = listeners.flatMap((l): AdvertisedListener[] => {
      const endpoint = l.endpoint;
      if (endpoint?.inet?.port) return [{ gatewayId, role: l.role, host: normaliseIp(endpoint.inet.ip), port: endpoint.inet.port }];
      if (endpoint?.named?.port) return [{ gatewayId, role: l.role, host: endpoint.named.hostName, port: endpoint.named.port }];
      return [];
    });
    const text = JSON.stringify(advertised);
    if (this.listenerText.get(gatewayId) === text) return this.refreshing;
    this.listenerText.set(gatewayId, text);
    this.listeners.set(gatewayId, advertised);
    return this.refresh();
  }

  onChange(listener: (pids: ReadonlySet<number>) => void): void {
    this.changeListeners.push(listener);
  }

  pids(): ReadonlySet<number> {
    return new Set(this.recognised.keys());
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Resolves once the latest lookup has finished. */
  settled(): Promise<void> {
    return this.refreshing;
  }

  refresh(): Promise<void> {
    this.lookingUp++;
    this.refreshing = this.refreshing
      .then(() => this.lookUp())
      .finally(() => this.lookingUp--)
      .catch((err: unknown) => this.log.error({ err }, 'looking up the local gateway processes failed; their upstream connects may be judged bypass until the next look-up'));
    return this.refreshing;
  }

  /**
   * Whether this pid owns an advertised local listener, for a connect about to be judged bypass: a
   * restarted gateway connects to its upstream before the next look-up. false right away when no gateway
   * listens on this host or the pid was found to own none since the last look-up; else a look at the
   * listening sockets and this one pid's fds.
   */
  confirm(pid: number): boolean | Promise<boolean> {
    if (this.recognised.has(pid)) return true;
    // Listeners just advertised (a gateway feed's first answer) are being looked up: wait for that.
    if (this.lookingUp > 0) return this.refreshing.then(() => this.confirm(pid));
    if (this.local.length === 0 || this.notGateway.has(pid)) return false;
    const known = this.checking.get(pid);
    if (known) return known;
    const check = this.owns(pid)
      .catch(() => false)
      .finally(() => this.checking.delete(pid));
    this.checking.set(pid, check);
    return check;
  }

  private async owns(pid: number): Promise<boolean> {
    const candidates = this.local;
    const sockets = await listeningSockets(new Set(candidates.map((c) => c.port)), this.proc);
    const held = await socketInodesOf(String(pid), this.proc);
    const by = matches(candidates, sockets.filter((s) => held.has(s.inode)));
    if (by.length === 0) {
      this.notGateway.add(pid);
      return false;
    }
    this.recognised.set(pid, by);
    this.log.info({ pid, listeners: by }, `pid ${pid} recognised as the local gateway: it owns the listener ${by.join(', ')}`);
    const pids = this.pids();
    for (const listener of this.changeListeners) listener(pids);
    return true;
  }

  private async lookUp(): Promise<void> {
    const local = localAddresses();
    const candidates: LocalListener[] = [];
    for (const listener of [...this.listeners.values()].flat()) {
      const addresses = WILDCARDS.has(listener.host) ? [listener.host] : await this.resolve(listener.host);
      const here = addresses.filter((a) => WILDCARDS.has(a) || local.has(a) || a.startsWith('127.'));
      if (here.length > 0) candidates.push({ ...listener, addresses: here });
    }
    const sockets = await listeningSockets(new Set(candidates.map((c) => c.port)), this.proc);
    const holders = await holdersOf(new Set(sockets.map((s) => s.inode)), this.proc);
    const recognised = new Map<number, string[]>();
    for (const socket of sockets) {
      for (const pid of holders.get(socket.inode) ?? []) {
        const by = matches(candidates, [socket]);
        if (by.length > 0) recognised.set(pid, [...(recognised.get(pid) ?? []), ...by]);
      }
    }
    const before = this.recognised;
    this.recognised = recognised;
    this.local = candidates;
    this.notGateway = new Set();
    let changed = before.size !== recognised.size;
    for (const [pid, by] of recognised) {
      if (before.has(pid)) continue;
      changed = true;
      this.log.info({ pid, listeners: by }, `pid ${pid} recognised as the local gateway: it owns the listener ${by.join(', ')}`);
    }
    for (const [pid, by] of before) {
      if (recognised.has(pid)) continue;
      changed = true;
      this.log.info({ pid, listeners: by }, `pid ${pid} no longer owns a gateway listener (${by.join(', ')}); its connects are judged like any other process's`);
    }
    if (!changed) return;
    const pids = this.pids();
    for (const listener of this.changeListeners) listener(pids);
  }

  private async resolve(host: string): Promise<string[]> {
    if (isIP(host) !== 0) return [normaliseIp(host)];
    try {
      return [...new Set((await lookup(host, { all: true, verbatim: true })).map((a) => normaliseIp(a.address)))];
    } catch (err) {
      this.log.warn({ host, err: (err as Error).message }, 'a gateway listener host name does not resolve; its process cannot be recognised until it does');
      return [];
    }
  }
}

/** The advertised listeners these LISTEN sockets are, as "role host:port (gateway id)" texts. */
function matches(candidates: readonly LocalListener[], sockets: readonly ListeningSocket[]): string[] {
  const out: string[] = [];
  for (const candidate of candidates) {
    if (sockets.some((socket) => socket.port === candidate.port && candidate.addresses.some((a) => sameListenAddress(a, socket.address)))) {
      out.push(`${candidate.role} ${candidate.host}:${candidate.port} (gateway ${candidate.gatewayId})`);
    }
  }
  return out;
}

/**
 * Whether a LISTEN socket bound to socketAddress is the listener advertised at advertised. The kernel
 * refuses two listeners whose addresses overlap on one port (a wildcard overlaps everything, a dual-stack
 * `::` socket covers IPv4 too), so on one port a matching socket is the advertised one.
 */
function sameListenAddress(advertised: string, socketAddress: string): boolean {
  const socket = normaliseIp(socketAddress);
  if (socket === advertised) return true;
  if (WILDCARDS.has(socket) || WILDCARDS.has(advertised)) return isIP(socket) === isIP(advertised) || (socket === '::' && isIP(advertised) === 4);
  return false;
}

function localAddresses(): Set<string> {
  const out = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(normaliseIp(a.address));
  return out;
}

import type { PostgresResourceConfig } from '../../platform/config';
import type { Logger } from '../../platform/log';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { ResourcesResponse__Output } from '../../proto/generated/gapwatch/v1/ResourcesResponse';
import type { JournalReader } from '../../gateway/journal/contract';
import type { GatewayFeed } from '../correlate/contract';

/**
 * A gateway in the same process (`gapwatch up` on one host): its journal is read directly, from a
 * sequence number and then followed, and its resources come from its configuration. Same contract as
 * the gRPC subscriber, without the network.
 */
export class LocalGatewayFeed implements GatewayFeed {
  private readonly recordListeners: Array<(record: JournalRecord__Output) => void> = [];
  private readonly resourceListeners: Array<(resources: ResourcesResponse__Output) => void> = [];
  private abort: AbortController | null = null;
  private reading: Promise<void> | null = null;
  /** The last seq delivered; a restart of the feed continues after it. */
  lastSeq = 0n;

  constructor(
    private readonly journal: JournalReader,
    private resources: ResourcesResponse__Output,
    private readonly log: Logger,
    fromSeq = 1n,
  ) {
    this.lastSeq = fromSeq - 1n;
  }

  onRecord(listener: (record: JournalRecord__Output) => void): void {
    this.recordListeners.push(listener);
  }

  onResources(listener: (resources: ResourcesResponse__Output) => void): void {
    this.resourceListeners.push(listener);
    listener(this.resources);
  }

  /** New resources (configuration reloaded, listener moved) reach every listener. */
  setResources(resources: ResourcesResponse__Output): void {
    this.resources = resources;
    for (const listener of this.resourceListeners) listener(resources);
  }

  start(): void {
    if (this.abort) return;
    const abort = new AbortController();
    this.abort = abort;
    this.reading = this.follow(abort.signal);
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    this.abort = null;
    await this.reading;
    this.reading = null;
  }

  private async follow(signal: AbortSignal): Promise<void> {
    try {
      for await (const record of this.journal.read(this.lastSeq + 1n, { follow: true, signal })) {
        this.lastSeq = BigInt(record.seq);
        for (const listener of this.recordListeners) listener(record);
      }
    } catch (err) {
      if (signal.aborted) return;
      this.log.error({ err, lastSeq: this.lastSeq.toString() }, 'reading the local gateway journal failed; gateway records after this seq are not correlated until restart');
    }
  }
}

/** PostgreSQL's socket file in a socket directory (libpq: <dir>/.s.PGSQL.<port>). */
export function postgresSocketPath(dir: string, port: number): string {
  return `${dir.replace(/\/$/, '')}/.s.PGSQL.${port}`;
}

/** The Resources answer of a gateway, from its configured PostgreSQL resources and its listener address. */
export function postgresResources(gatewayId: string, resources: readonly PostgresResourceConfig[], listener: { host: string; port: number }): ResourcesResponse__Output {
  return {
    gatewayId,
    resources: resources.map((r) => ({
      name: r.name,
      protocol: 'PROTOCOL_POSTGRES',
      upstream: [
        r.upstream.socket !== null
          ? { unixPath: postgresSocketPath(r.upstream.socket, r.upstream.port), address: 'unixPath' as const }
          : { inet: { ip: r.upstream.host, port: r.upstream.port }, address: 'inet' as const },
      ],
      listener: [{ inet: { ip: listener.host, port: listener.port }, address: 'inet' as const }],
      labels: {},
    })),
  };
}

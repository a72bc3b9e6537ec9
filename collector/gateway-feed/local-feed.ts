import { resourceCatalog, type CatalogInput } from '../../gateway/audit/resource-catalog';
import type { Logger } from '../../platform/log';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { ResourcesResponse__Output } from '../../proto/generated/gapwatch/v1/ResourcesResponse';
import type { JournalReader } from '../../gateway/journal/contract';
import { loadGapwatchProto } from '../../proto/load';
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

/**
 * The Resources answer of a gateway in this process, built by the same catalogue its gRPC
 * ListResources serves and passed through the wire encoding, so correlation sees exactly what a
 * remote subscriber would (defaults filled, v4-mapped addresses normalised).
 */
export function localGatewayResources(input: CatalogInput): ResourcesResponse__Output {
  const rpc = loadGapwatchProto().gapwatch.v1.Audit.service.ListResources;
  return rpc.responseDeserialize(rpc.responseSerialize(resourceCatalog(input)));
}

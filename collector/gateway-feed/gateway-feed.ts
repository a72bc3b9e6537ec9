import type { Config } from '../../platform/config';
import type { Logger } from '../../platform/log';
import type { Component } from '../../platform/supervisor';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { ResourcesResponse__Output } from '../../proto/generated/gapwatch/v1/ResourcesResponse';
import type { GatewayFeed } from '../correlate/contract';
import type { StoreWriter } from '../store/writer';
import type { GatewayFeedEntry, GatewayFeedTuning } from './config-schema';
import { GatewaySubscriber, type FeedWriter, type GatewaySubscriberStats } from './gateway-subscriber';

export interface GatewaySubscriptionsOptions {
  gateways: readonly GatewayFeedEntry[];
  dataDir: string;
  writer: FeedWriter;
  tuning: GatewayFeedTuning;
  log: Logger;
}

/**
 * The collector's subscriptions to every configured gateway, as the GatewayFeed correlation consumes:
 * each gateway's records in seq order, and each gateway's resources at start and on change. Listeners
 * added before `start()` hear everything; a listener that throws is logged and the feed goes on.
 */
export class GatewaySubscriptions implements GatewayFeed {
  private readonly recordListeners: Array<(record: JournalRecord__Output) => void> = [];
  private readonly resourceListeners: Array<(resources: ResourcesResponse__Output) => void> = [];
  private readonly latest = new Map<string, ResourcesResponse__Output>();
  readonly subscribers: readonly GatewaySubscriber[];

  constructor(options: GatewaySubscriptionsOptions) {
    this.subscribers = options.gateways.map(
      (entry) =>
        new GatewaySubscriber({
          entry,
          dataDir: options.dataDir,
          writer: options.writer,
          tuning: options.tuning,
          log: options.log,
          onRecord: (record) => {
            for (const listener of this.recordListeners) listener(record);
          },
          onResources: (resources) => {
            this.latest.set(entry.address, resources);
            for (const listener of this.resourceListeners) listener(resources);
          },
        }),
    );
  }

  onRecord(listener: (record: JournalRecord__Output) => void): void {
    this.recordListeners.push(listener);
  }

  /** A listener added late first hears the resources already known. */
  onResources(listener: (resources: ResourcesResponse__Output) => void): void {
    this.resourceListeners.push(listener);
    for (const resources of this.latest.values()) listener(resources);
  }

  /** The last ListResources answer of each gateway (by address). */
  resources(): ReadonlyMap<string, ResourcesResponse__Output> {
    return this.latest;
  }

  start(): void {
    for (const subscriber of this.subscribers) subscriber.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.subscribers.map((subscriber) => subscriber.stop()));
  }

  stats(): GatewaySubscriberStats[] {
    return this.subscribers.map((subscriber) => subscriber.stats());
  }
}

export interface GatewayFeedComponent extends Component {
  /** The feed correlation listens to; exists before start, so listeners can be added first. */
  readonly feed: GatewaySubscriptions;
}

/**
 * The subscriptions as a supervised component of the collector daemon. `writer` is asked at start
 * (the store component starts first and owns the writer).
 */
export function gatewayFeedComponent(config: Config, log: Logger, writer: () => StoreWriter | null): GatewayFeedComponent {
  
  const lazyWriter: FeedWriter = {
    write: (table, rows) => {
      const current = writer();
      if (!current) throw new Error('the gateway feed started before the store writer');
      return current.write(table, rows);
    },
    flush: async () => {
      await writer()?.flush();
    },
  };
  const feed = new GatewaySubscriptions({ gateways: config.collector.gateways, dataDir: config.dataDir, writer: lazyWriter, tuning: config.collector.gatewayFeed, log });
  return {
    name: 'gateway feed',
    get feed() {
      return feed;
    },
    async start() {
      feed.start();
      return config.collector.gateways.length === 0
        ? ['no gateways configured (collector.gateways)']
        : config.collector.gateways.map((gateway) => `subscribed to ${gateway.address} (mutual TLS), position in ${config.dataDir}/gateway-feed/`);
    },
    async stop() {
      await feed.stop();
    },
  };
}

import { join } from 'node:path';
import type { Config } from '../../platform/config';
import type { Logger } from '../../platform/log';
import type { Component } from '../../platform/supervisor';
import { openStore, type Store } from './connection';
import { migrate } from './migration';
import { storeSink } from './sink';
import { Spool } from './spool';
import { StoreWriter } from './writer';

export interface StoreComponent extends Component {
  /** The writer other components hand rows to; set once started. */
  readonly writer: StoreWriter | null;
}

/**
 * The store as `gapwatch up` runs it: opens the configured store, brings the schema up to date, and
 * starts the writer, which first replays whatever an earlier run left in the spool. A server that does
 * not answer yet does not stop the host: batches are spooled until it does.
 */
export function storeComponent(config: Config, log: Logger): StoreComponent {
  let store: Store | null = null;
  let writer: StoreWriter | null = null;
  return {
    name: 'store',
    get writer() {
      return writer;
    },
    async start() {
      store = await openStore(config);
      const lines: string[] = [];
      try {
        const result = await migrate(store.client, store.dialect);
        lines.push(`${store.kind} ClickHouse, data in ${store.where} (schema version ${Math.max(...result.applied, ...result.alreadyApplied)})`);
      } catch (err) {
        if (store.kind === 'embedded') {
          await store.close();
          throw err;
        }
        log.warn({ err: (err as Error).message }, 'store unreachable at start; batches are spooled until it answers');
        lines.push(`${store.kind} ClickHouse at ${store.where}: NOT REACHABLE yet, spooling until it answers`);
      }
      const spoolDir = join(config.dataDir, config.store.spool.dir);
      const { spool, damage } = Spool.open({ dir: spoolDir, maxBytes: config.store.spool.maxBytes });
      writer = new StoreWriter(storeSink(store), spool, config.store.writer, log);
      writer.start(damage);
      lines.push(`spool ${spoolDir} (${spool.bytes} bytes waiting, bound ${config.store.spool.maxBytes})`);
      return lines;
    },
    async stop() {
      await writer?.close();
      await store?.close();
    },
  };
}

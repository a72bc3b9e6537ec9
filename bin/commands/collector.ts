import type { Command } from 'commander';
import { collectorComponent } from '../../collector/collector-component';
import { gatewayFeedComponent } from '../../collector/gateway-feed/gateway-feed';
import { storeComponent } from '../../collector/store/store-component';
import { webComponent } from '../../collector/web/web-component';
import { lockDataDir, type DataDirLock } from '../../platform/data-dir';
import { runUntilSignal } from '../../platform/supervisor';
import { defineCommand } from '../cli';

/**
 * `gapwatch collector`: the per-host daemon of a fleet: host sensor → correlation → store, with the
 * protected resources of `collector.resources` (and of the gateways it subscribes to), alert sinks
 * from `collector.alerts`, until SIGINT/SIGTERM, then a shutdown that flushes. A change of
 * `collector.resources` in the configuration file (or SIGHUP) reloads the protected resources.
 */
export function registerCollector(program: Command): void {
  defineCommand(
    program,
    'collector',
    'run the host collector (sensor, bypass detection, alerts, store writer) until Ctrl-C; needs root',
    () => undefined,
    async (context) => {
      const { config, log } = context;
      const store = storeComponent(config, log);
      // The subscriptions write gateway records to the store themselves (their position commits after
      // the store has them); correlation only listens. They start after the collector, so its
      // listeners are in place before the first record arrives, and stop before it.
      const gateways = gatewayFeedComponent(config, log, () => store.writer);
      let lock: DataDirLock | null = null;
      await runUntilSignal(
        [
          {
            name: 'data directory',
            async start() {
              lock = lockDataDir(config.dataDir);
              return [`${config.dataDir} (locked by pid ${process.pid})`];
            },
            async stop() {
              lock?.release();
            },
          },
          store,
          collectorComponent({ config, log, writer: () => store.writer, feeds: () => [gateways.feed], configFile: context.configSource }),
          gateways,
          webComponent(config, log),
        ],
        log,
        (lines) => process.stdout.write(`gapwatch collector is up:\n${lines.map((line) => `  ${line}\n`).join('')}Press Ctrl-C to stop.\n`),
      );
      process.stdout.write('gapwatch collector stopped.\n');
      return 0;
    },
  );
}

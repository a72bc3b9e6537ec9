import { join } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { createAlertWatchClient } from '../../collector/alerts/watch-client';
import { AlertWatchRefusedError } from '../../collector/errors';
import type { AlertNotice__Output } from '../../proto/generated/gapwatch/v1/AlertNotice';
import type { WatchAlertsRequest } from '../../proto/generated/gapwatch/v1/WatchAlertsRequest';
import { defineCommand } from '../cli';

interface AlertsOptions {
  address?: string;
  ca?: string;
  cert?: string;
  key?: string;
  serverName?: string;
  minSeverity?: 'info' | 'warning' | 'critical';
  resource?: string[];
  kind?: string[];
  count?: string;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const KINDS = ['bypass', 'secret_in_argv', 'audit_gap', 'journal_tampered'];

function collectKind(value: string, previous: string[] = []): string[] {
  if (!KINDS.includes(value)) throw new InvalidArgumentError(`one of ${KINDS.join(', ')}`);
  return [...previous, value];
}

/**
 * `gapwatch alerts`: watches a collector's alerts over gRPC WatchAlerts (mutual TLS) and prints each
 * as one JSON line ({alert, missed}), until Ctrl-C or --count alerts.
 */
export function registerAlerts(program: Command): void {
  defineCommand<AlertsOptions>(
    program,
    'alerts',
    "watch a collector's alerts as they are raised (gRPC WatchAlerts, mutual TLS); one JSON line each",
    (command) =>
      command
        .option('--address <host:port>', 'the collector (default: collector.alerts.watch.listen)')
        .option('--ca <file>', "the CA of the collector's certificate (default: <dataDir>/certs/ca.crt)")
        .option('--cert <file>', "this watcher's certificate (default: <dataDir>/certs/watcher.crt)")
        .option('--key <file>', "this watcher's key (default: <dataDir>/certs/watcher.key)")
        .option('--server-name <name>', "the name in the collector's certificate, when it differs from the address")
        .addOption(new Option('--min-severity <severity>', 'only alerts at least this severe').choices(['info', 'warning', 'critical']))
        .option('--resource <name>', 'only alerts of this resource (repeatable)', collect)
        .option('--kind <kind>', `only alerts of this kind (repeatable): ${KINDS.join(', ')}`, collectKind)
        .option('--count <n>', 'exit after this many alerts'),
    async ({ config }, options) => {
      const listen = config.collector.alerts.watch.listen;
      const address = options.address ?? `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
      const certs = join(config.dataDir, 'certs');
      const client = createAlertWatchClient({
        address,
        caFile: options.ca ?? join(certs, 'ca.crt'),
        certFile: options.cert ?? join(certs, 'watcher.crt'),
        keyFile: options.key ?? join(certs, 'watcher.key'),
        serverName: options.serverName ?? null,
      });
      const limit = options.count === undefined ? Infinity : Number(options.count);
      const request: WatchAlertsRequest = {
        minSeverity: options.minSeverity ? (`SEVERITY_${options.minSeverity.toUpperCase()}` as WatchAlertsRequest['minSeverity']) : 'SEVERITY_UNSPECIFIED',
        resources: options.resource ?? [],
        kinds: (options.kind ?? []).map((k) => `ALERT_KIND_${k.toUpperCase()}` as NonNullable<WatchAlertsRequest['kinds']>[number]),
      };
      const stream = client.watchAlerts(request);
      let seen = 0;
      try {
        await new Promise<void>((resolve, reject) => {
          const stop = (): void => {
            stream.cancel();
            resolve();
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
          stream.on('data', (notice: AlertNotice__Output) => {
            process.stdout.write(`${JSON.stringify({ alert: notice.alert, missed: Number(notice.missed) })}\n`);
            if (++seen >= limit) stop();
          });
          stream.on('error', (err: Error & { code?: number; details?: string }) => {
            // CANCELLED is our own stop; anything else is the collector refusing or going away.
            if (err.code === 1) resolve();
            else reject(new AlertWatchRefusedError(address, err.details || err.message, err));
          });
          stream.on('end', () => resolve());
        });
      } finally {
        client.close();
      }
      return 0;
    },
  );
}

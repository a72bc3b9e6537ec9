import { hostname } from 'node:os';
import type { Config } from '../platform/config';
import type { Logger } from '../platform/log';
import type { Component } from '../platform/supervisor';
import { hostGapAlert } from './alerts/alert';
import { AlertPipeline, configuredSinks } from './alerts/alert-pipeline';
import { AlertWatchServer } from './alerts/watch-server';
import type { GatewayFeed } from './correlate/contract';
import { Correlator } from './correlate/correlator';
import { Inventory } from './correlate/inventory';
import { LocalGatewayProcesses } from './correlate/local-gateway';
import { ResourceReloader } from './correlate/resource-reload';
import { journalRecordRow } from './gateway-feed/journal-rows';
import { gatewayRecordRows } from './gateway-feed/record-writer';
import { HostSensor } from './sensor/host-sensor';
import { ObservationHeartbeat, type UnobservedWindow } from './sensor/observation-heartbeat';
import type { NativeSensorStats } from '../native/binding';
import { auditGapRow, deterministicId, type Row, type TableName } from './store/rows';
import type { StoreWriter } from './store/writer';

export interface CollectorOptions {
  config: Config;
  log: Logger;
  /** The store writer, once the store component has started. */
  writer(): StoreWriter | null;
  /** Gateway feeds, asked for at start (a gateway started before the collector provides its own). */
  feeds?(): GatewayFeed[];
  /** Write the feeds' gateway records (sessions, events, journal gaps) to the store as well. */
  writeGatewayRecords?: boolean;
  /** Pids of gateway processes on this host: `gapwatch up` runs the gateway in the collector's own process. */
  gatewayPids?: ReadonlySet<number>;
  /** The configuration file: watched (and re-read on SIGHUP) so a change of collector.resources reloads them. */
  configFile?: string | null;
}

export interface CollectorComponent extends Component {
  readonly inventory: Inventory;
  /** Gateway processes on this host, found by the owner of each feed's advertised listeners. */
  readonly localGateways: LocalGatewayProcesses;
  readonly correlator: Correlator | null;
  readonly alerts: AlertPipeline | null;
  /** The gRPC WatchAlerts service, when collector.alerts.watch has its TLS files. */
  readonly watch: AlertWatchServer | null;
  readonly sensor: HostSensor | null;
  /** Reloads collector.resources when the configuration file changes; null without a file. */
  readonly reloader: ResourceReloader | null;
  /** The sensor's counters as it stopped (kernel and queue drops included), once stopped. */
  readonly finalSensorStats: NativeSensorStats | null;
}

/**
 * The collector: host sensor → correlation (verdicts, joins with gateway sessions) → store, with the
 * gateway feeds and alert sinks. Memory stays bounded: the process table, the joins and the alert keys
 * have limits, and when the store writer is far behind, rows are counted as lost (an audit_gaps row)
 * instead of queued without end. Stopping drains the sensor, writes every waiting join, delivers the
 * folded alerts and flushes the writer.
 */
export function collectorComponent(options: CollectorOptions): CollectorComponent {
  const { config, log } = options;
  const host = hostname();
  const inventory = new Inventory(config.collector.correlate.resolveIntervalMs, log);
  const localGateways = new LocalGatewayProcesses(config.collector.correlate.gatewayProcessRefreshMs, log);
  let correlator: Correlator | null = null;
  let alerts: AlertPipeline | null = null;
  let watch: AlertWatchServer | null = null;
  let reloader: ResourceReloader | null = null;
  let sensor: HostSensor | null = null;
  let writes = 0;
  let lost = 0;
  let lostSince = '';
  let overloaded = false;
  let gapTimer: NodeJS.Timeout | null = null;
  let finalSensorStats: NativeSensorStats | null = null;
  const heartbeat = new ObservationHeartbeat(config.dataDir, host, (err) => log.warn({ err }, 'could not save the sensor heartbeat; the next start may record a wider unobserved window'));

  /** The host went unobserved between the last run's last heartbeat and this start: an audit gap and an alert. */
  const reportUnobserved = (window: UnobservedWindow): void => {
    const gapId = deterministicId('collector-down', host, window.startUnixNano);
    const reason = `the host sensor was not running from ${new Date(Number(BigInt(window.startUnixNano) / 1_000_000n)).toISOString()} to ${new Date(Number(BigInt(window.endUnixNano) / 1_000_000n)).toISOString()} (${window.clean ? 'the collector was stopped' : 'the collector ended without a clean stop: crash, kill or power loss'}): execs and connects on ${host} in this window were not observed`;
    log.warn({ start: window.startUnixNano, end: window.endUnixNano, clean: window.clean }, 'host events between the last run and this one were not observed; recorded in audit_gaps');
    write('audit_gaps', auditGapRow({ gapId, host, source: 'collector', startUnixNano: window.startUnixNano, endUnixNano: window.endUnixNano, lost: '0', reason }));
    alerts?.raise(
      `gap|collector-down|${window.startUnixNano}`,
      hostGapAlert({ gapId, rule: 'collector-down', severity: window.clean ? 'info' : 'warning', host, timeUnixNano: window.endUnixNano, kernelBootNs: null, summary: reason }),
    );
  };

  const write = (table: TableName, row: Row): void => {
    const writer = options.writer();
    if (!writer) return;
    // Checking the writer's buffer on every row costs more than the row; every 256 is enough to bound it.
    if ((++writes & 255) === 0) overloaded = writer.stats().buffered >= config.store.writer.maxBufferedRows * 2;
    if (overloaded && table !== 'alerts' && table !== 'audit_gaps') {
      if (lost++ === 0) lostSince = new Date().toISOString();
      return;
    }
    void writer.write(table, row).catch((err: unknown) => log.error({ err, table }, 'store writer refused a row'));
  };

  const reportLoss = (): void => {
    if (lost === 0) return;
    const now = BigInt(Date.now()) * 1_000_000n;
    const start = BigInt(Date.parse(lostSince)) * 1_000_000n;
    const count = lost;
    lost = 0;
    log.error({ lost: count }, 'the store writer fell behind; rows were dropped and recorded in audit_gaps');
    options.writer()?.write(
      'audit_gaps',
      auditGapRow({
        gapId: deterministicId('collector-overload', host, start),
        host,
        source: 'collector',
        startUnixNano: start.toString(),
        endUnixNano: now.toString(),
        lost: String(count),
        reason: `the store writer was more than ${config.store.writer.maxBufferedRows * 2} rows behind: ${count} host event rows dropped`,
      }),
    );
  };

  return {
    name: 'collector',
    inventory,
    localGateways,
    get correlator() {
      return correlator;
    },
    get alerts() {
      return alerts;
    },
    get watch() {
      return watch;
    },
    get reloader() {
      return reloader;
    },
    get sensor() {
      return sensor;
    },
    get finalSensorStats() {
      return finalSensorStats;
    },
    async start() {
      const feeds = options.feeds?.() ?? [];
      alerts = new AlertPipeline(config.collector.alerts, configuredSinks(config.collector.alerts, log, options.writer()), log);
      const running = alerts;
      const watchConfig = config.collector.alerts.watch;
      let watchLine = 'alert watch (gRPC WatchAlerts) off: collector.alerts.watch.tls has no certificates';
      if (AlertWatchServer.enabled(watchConfig)) {
        const server = new AlertWatchServer(watchConfig, log);
        try {
          watchLine = await server.start();
        } catch (err) {
          await running.close();
          alerts = null;
          throw err;
        }
        watch = server;
        running.addSink(server);
      }
      // The sensor is built after the correlator (its callback needs it); the table is looked up through this.
      let processes: HostSensor['table'] | null = null;
      const table = { get: (id: string) => processes?.get(id), lineage: (id: string) => processes?.lineage(id) ?? [] };
      correlator = new Correlator(
        inventory,
        table,
        { host, config: config.collector.correlate, criticalLabels: config.collector.alerts.criticalLabels, gatewayPids: options.gatewayPids ?? new Set(), confirmGateway: (pid) => localGateways.confirm(pid) },
        { write, alert: (key, alert) => running.raise(key, alert) },
        log,
      );
      const joined = correlator;
      localGateways.onChange((pids) => joined.setLocalGatewayPids(pids));
      await inventory.setConfigured(config.collector.resources);
      for (const feed of feeds) {
        feed.onResources((resources) => {
          void inventory.setFromGateway(resources);
          void localGateways.setListeners(resources.gatewayId, resources.listeners);
        });
        feed.onRecord((record) => {
          joined.onJournalRecord(record);
          if (options.writeGatewayRecords) for (const { table: t, row } of [...gatewayRecordRows(record), journalRecordRow(record)]) write(t, row);
        });
      }
      await inventory.settled();
      await localGateways.settled();
      inventory.start();
      localGateways.start();
      correlator.start();
      sensor = new HostSensor(config.collector.sensor, (record) => joined.onSensorRecord(record));
      processes = sensor.table;
      try {
        sensor.start();
      } catch (err) {
        sensor = null;
        inventory.stop();
        localGateways.stop();
        joined.close();
        await running.close();
        throw err;
      }
      if (options.configFile) {
        reloader = new ResourceReloader(options.configFile, inventory, config.collector.resources, log);
        reloader.start();
      }
      const attachedAt = BigInt(Date.now()) * 1_000_000n;
      const unobserved = heartbeat.unobservedUntil(attachedAt);
      if (unobserved) {
        reportUnobserved(unobserved);
        // The gap row must be in the store or the durable spool before the first beat replaces the
        // previous run's last one: a crash in between would otherwise forget the window.
        await options.writer()?.flush();
      }
      heartbeat.start(attachedAt);
      gapTimer = setInterval(reportLoss, 1000);
      gapTimer.unref();
      const resources = inventory.resources();
      const lines = [
        `host sensor on ${host}: ${sensor.table.size} processes known`,
        `protecting ${resources.length} resource${resources.length === 1 ? '' : 's'}${resources.length ? `: ${resources.map((r) => r.name).join(', ')}` : ''} (${feeds.length} gateway feed${feeds.length === 1 ? '' : 's'})`,
        `alerts to ${running.sinks.map((s) => s.name).join(', ') || 'no sink'}`,
        watchLine,
      ];
      if (reloader) lines.push(`protected resources reload when ${options.configFile} changes (or on SIGHUP)`);
      return lines;
    },
    async stop() {
      reloader?.stop();
      reloader = null;
      if (gapTimer) clearInterval(gapTimer);
      gapTimer = null;
      const stopping = sensor;
      sensor = null;
      if (stopping) {
        finalSensorStats = await stopping.stop();
        heartbeat.stop();
      }
      inventory.stop();
      localGateways.stop();
      correlator?.close();
      reportLoss();
      await alerts?.close();
      await options.writer()?.flush();
    },
  };
}

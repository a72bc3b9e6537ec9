import type { Command } from 'commander';
import { runDoctor } from '../../collector/doctor/checks';
import { renderDoctorReport } from '../../collector/doctor/report';
import { DoctorFailedError } from '../../collector/errors';
import { storeCheck } from '../../collector/store/store-check';
import { storeComponent } from '../../collector/store/store-component';
import { webComponent } from '../../collector/web/web-component';
import { readFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { collectorComponent } from '../../collector/collector-component';
import { LocalGatewayFeed, localGatewayResources } from '../../collector/gateway-feed/local-feed';
import { gatewayComponent, type GatewayComponent } from '../../gateway/gateway-component';
import { FileIdentityStore } from '../../gateway/identity/identity-store';
import { writeFileAtomic } from '../../platform/atomic-file';
import { configSchema, type Config } from '../../platform/config';
import type { Logger } from '../../platform/log';
import { startDemoPostgres, type DemoPostgres } from '../demo/demo-postgres';
import { lockDataDir, type DataDirLock } from '../../platform/data-dir';
import { runUntilSignal, type Component } from '../../platform/supervisor';
import { defineCommand, type CommandContext } from '../cli';

/**
 * `gapwatch up`: the one-host mode `npm start` runs. It checks the host, then starts every component
 * on this host and keeps them running until SIGINT/SIGTERM. Components are added here as they exist.
 */
export function registerUp(program: Command): void {
  defineCommand(
    program,
    'up',
    'run gapwatch on this host: check it, start every component, keep running until Ctrl-C',
    () => undefined,
    async (context) => {
      const report = await runDoctor([storeCheck(context.config)]);
      process.stdout.write(renderDoctorReport(report));
      if (!report.ok) {
        throw new DoctorFailedError(report.checks.filter((c) => c.status === 'fail').map((c) => c.title));
      }
      await runUntilSignal(oneHostComponents(context), context.log, (lines) => {
        process.stdout.write(
          `\ngapwatch ${context.configSource ? `(config ${context.configSource})` : '(default configuration)'} is up:\n` +
            lines.map((line) => `  ${line}\n`).join('') +
            'Press Ctrl-C to stop.\n',
        );
      });
      process.stdout.write('gapwatch stopped.\n');
      return 0;
    },
  );
}

function oneHostComponents(context: CommandContext): Component[] {
  const { config, log } = context;
  const store = storeComponent(config, log);
  const components: Component[] = [dataDirComponent(config.dataDir), store];
  // With nothing to guard, a demo database shows the product: reachable through the gateway and around it.
  const demo = config.gateway.postgres.resources.length === 0 ? demoComponent(config, log) : null;
  if (demo) components.push(demo.component);
  let feed: LocalGatewayFeed | null = null;
  let gateway: GatewayComponent | null = null;
  if (demo || config.gateway.postgres.resources.length > 0) {
    const started = gatewayComponent(config, log);
    gateway = started;
    components.push(started, {
      name: 'gateway feed',
      async start() {
        const address = started.postgresAddress();
        if (!started.journal || !address) throw new Error('the gateway started without its journal or listener');
        feed = new LocalGatewayFeed(started.journal, localGatewayResources({ gatewayId: config.gateway.id, postgres: config.gateway.postgres, postgresListener: address, http: config.gateway.http, httpListener: started.httpAddress(), ssh: config.gateway.ssh, sshListener: started.sshAddress(), auditListener: null }), log, readFeedPosition(config) + 1n);
        return [`journal of ${config.gateway.id} followed in-process from seq ${feed.lastSeq + 1n}`];
      },
      async stop() {},
    });
  }
  components.push(
    collectorComponent({
      config,
      log,
      writer: () => store.writer,
      feeds: () => (feed ? [feed] : []),
      writeGatewayRecords: true,
      // The gateway runs in this process: its upstream connections are its own, never a bypass.
      gatewayPids: new Set([process.pid]),
      configFile: context.configSource,
    }),
  );
  if (gateway) {
    components.push({
      name: 'correlation',
      async start() {
        feed?.start();
        return ['gateway sessions joined with host connects as they happen'];
      },
      async stop() {
        await feed?.stop();
        if (feed) writeFeedPosition(config, feed.lastSeq);
      },
    });
  }
  if (demo && gateway) components.push(demo.tryIt(gateway));
  // The dashboard UI and its read-only API; `gapwatch query` reaches the store through it while this runs.
  components.push(webComponent(config, log));
  return components;
}

function feedPositionFile(config: Config): string {
  return join(config.dataDir, 'collector', `local-feed-${config.gateway.id}.seq`);
}

/** The last journal seq the collector took from the in-process gateway (0: none yet). */
function readFeedPosition(config: Config): bigint {
  try {
    return BigInt(readFileSync(feedPositionFile(config), 'utf8').trim());
  } catch {
    return 0n;
  }
}

function writeFeedPosition(config: Config, seq: bigint): void {
  mkdirSync(join(config.dataDir, 'collector'), { recursive: true });
  writeFileAtomic(feedPositionFile(config), `${seq}\n`);
}

/**
 * The demo resource: a private PostgreSQL started for this run, added to the gateway's resources
 * before the gateway starts, and an agent identity whose token the last component prints.
 */
function demoComponent(config: Config, log: Logger): { component: Component; tryIt(gateway: GatewayComponent): Component } {
  let server: DemoPostgres | null = null;
  const login = 'demo-agent';
  return {
    component: {
      name: 'demo postgres',
      async start() {
        server = await startDemoPostgres(config.dataDir, log);
        config.gateway.postgres.resources.push(
          configSchema.shape.gateway.parse({ postgres: { resources: [{ name: 'demo', upstream: { host: server.host, port: server.port, database: server.database, user: server.user, password: { value: server.password } } }] } })
            .postgres.resources[0]!,
        );
        // Another gapwatch (or anything) on the default gateway port: the demo takes a free one instead.
        if (!(await portFree(config.gateway.postgres.listen.host, config.gateway.postgres.listen.port))) config.gateway.postgres.listen.port = 0;
        return [`a real PostgreSQL for the demo resource "demo" on ${server.host}:${server.port} and ${server.socketDir}/.s.PGSQL.${server.port} (cluster ${server.clusterDir})`];
      },
      async stop() {
        await server?.stop();
        config.gateway.postgres.resources = config.gateway.postgres.resources.filter((r) => r.name !== 'demo');
      },
    },
    tryIt(gateway) {
      return {
        name: 'try it',
        async start() {
          const identities = new FileIdentityStore({ dataDir: config.dataDir, iterations: config.gateway.identity.scramIterations });
          const { token } = await identities.create(login, { claims: { agent: 'demo' }, replace: true });
          const address = gateway.postgresAddress()!;
          const pg = server!;
          return [
            `through the gateway (mediated, every statement journaled), with the agent token of "${login}":`,
            `    PGPASSWORD=${token} psql "host=${address.host} port=${address.port} dbname=demo user=${login}" -c 'SELECT * FROM orders'`,
            `straight to the database, around the gateway (a bypass: an alert appears in this log and the store):`,
            `    psql -w "host=${pg.host} port=${pg.port} dbname=${pg.database} user=${pg.user}" -c 'SELECT 1'`,
            `    psql -w "host=${pg.socketDir} port=${pg.port} dbname=${pg.database} user=${pg.user}" -c 'SELECT 1'   (its unix socket)`,
          ];
        },
        async stop() {},
      };
    },
  };
}

function portFree(host: string, port: number): Promise<boolean> {
  if (port === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

function dataDirComponent(dataDir: string): Component {
  let lock: DataDirLock | null = null;
  return {
    name: 'data directory',
    async start() {
      lock = lockDataDir(dataDir);
      return [`${dataDir} (locked by pid ${process.pid})`];
    },
    async stop() {
      lock?.release();
    },
  };
}

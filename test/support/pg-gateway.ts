import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { FileIdentityStore } from '../../gateway/identity/identity-store';
import { openJournal, journalOptionsFromConfig, type Journal } from '../../gateway/journal/journal';
import { createPolicyEngine, type GatewayPolicyEngine } from '../../gateway/policy/policy-engine';
import { PostgresGateway } from '../../gateway/postgres/listener';
import { parseConfig, type Config } from '../../platform/config';
import { createLogger } from '../../platform/log';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import { startPostgres, type PostgresOptions, type PostgresServer } from './postgres';
import { allRecords } from './journal-records';

/**
 * The whole PostgreSQL gateway as `gapwatch gateway` runs it (real journal, identity store, policy
 * engine), in front of a real PostgreSQL server, in a fresh data directory.
 */
export interface GatewayUnderTest {
  pg: PostgresServer;
  gateway: PostgresGateway;
  port: number;
  /** The resource name agents use as the database name. */
  resource: string;
  login: string;
  token: string;
  /** The test agent's way in: the gateway's address, its login and token, the resource as database. */
  agent: { host: string; port: number; user: string; password: string; database: string };
  dataDir: string;
  configFile: string;
  config: Config;
  journal: Journal;
  identities: FileIdentityStore;
  policy: GatewayPolicyEngine;
  /** Every journal record so far. */
  records(): Promise<JournalRecord__Output[]>;
  stop(): Promise<void>;
}

export interface GatewayOptions {
  /** `gateway.policy` section. */
  policy?: Record<string, unknown>;
  /** Extra `gateway.postgres` keys (tls, dataPath …). */
  postgres?: Record<string, unknown>;
  /** `gateway.journal` section (segment size, checkpoints …). */
  journal?: Record<string, unknown>;
  pgOptions?: PostgresOptions;
  /** Extra keys of the `orders` resource (tags …). */
  resource?: Record<string, unknown>;
  /** Log level for the gateway under test; silent by default to keep test output readable. */
  logLevel?: 'info' | 'warn' | 'error' | 'fatal';
}

export async function startGateway(options: GatewayOptions = {}): Promise<GatewayUnderTest> {
  const pg = await startPostgres(options.pgOptions);
  const dataDir = mkdtempSync(join(tmpdir(), 'gapwatch-gw-'));
  const resource = 'orders';
  const document = {
    dataDir,
    gateway: {
      id: 'gw-test',
      policy: options.policy ?? {},
      ...(options.journal ? { journal: options.journal } : {}),
      postgres: {
        listen: { host: '127.0.0.1', port: 0 },
        resources: [
          {
            name: resource,
            upstream: { host: pg.host, port: pg.port, database: pg.database, user: pg.user, password: { value: pg.password } },
            ...options.resource,
          },
        ],
        ...options.postgres,
      },
    },
  };
  const configFile = join(dataDir, 'gapwatch.yaml');
  writeFileSync(configFile, stringify(document));
  let journal: Journal | null = null;
  let policy: GatewayPolicyEngine | null = null;
  try {
    const config = parseConfig(stringify(document), configFile);
    const log = createLogger({ level: options.logLevel ?? 'fatal', format: 'json' });
    journal = await openJournal(journalOptionsFromConfig(config, log));
    const identities = new FileIdentityStore({ dataDir });
    const login = 'claude-ci';
    const { token } = await identities.create(login, { claims: { repository: 'acme/shop', agent: 'claude' } });
    policy = await createPolicyEngine({ config: config.gateway.policy, dataDir, log });
    const gateway = new PostgresGateway({ gatewayId: config.gateway.id, config: config.gateway.postgres, journal, identities, policy, log });
    await gateway.start();
    const j = journal;
    const p = policy;
    const port = gateway.address().port;
    return {
      pg,
      gateway,
      port,
      resource,
      login,
      token,
      agent: { host: '127.0.0.1', port, user: login, password: token, database: resource },
      dataDir,
      configFile,
      config,
      journal,
      identities,
      policy,
      records() {
        return allRecords(j);
      },
      async stop() {
        await gateway.stop();
        p.close();
        await j.close();
        await pg.stop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    policy?.close();
    await journal?.close();
    await pg.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ClickHouseLogLevel, createClient, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client';
import { drainPending, Session } from 'chdb';
import { createChdbConnection } from 'chdb/connection';
import type { Config } from '../../platform/config';
import type { Dialect, StoreKind } from './ddl';
import { StoreEngineBusyError, StorePasswordUnreadableError, StoreTlsFileUnreadableError } from './errors';

const MIB = 1024 * 1024;

/**
 * Settings of the embedded client that shape query output only. An insert unsets them (see storeSink):
 * chDB sends each client setting as a `SET …;` statement in front of the query, and an INSERT with its
 * rows inline behind such statements costs the engine about a quarter more CPU per row.
 */
export const OUTPUT_SETTINGS: ClickHouseSettings = { output_format_json_quote_64bit_integers: 1 };

export interface Store {
  readonly kind: StoreKind;
  readonly client: ClickHouseClient;
  readonly dialect: Dialect;
  /** Where the data lives, for people: a directory, or the server URL without credentials. */
  readonly where: string;
  /**
   * Embedded engine only: inserts JSONCompactEachRow bytes straight into the engine (chDB's raw
   * insert: the buffer is handed over without a copy and parsed on the engine's thread), skipping the
   * client's stream framing, which costs the embedded writer about a tenth of its throughput. A refusal
   * carries the ClickHouse error `type` and message as `@clickhouse/client` reports them.
   */
  insertRaw?(table: string, columns: readonly string[], body: Buffer): Promise<void>;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /**
   * Every query on this connection runs with ClickHouse's `readonly = 1`: the engine itself refuses
   * writes, DDL and setting changes, whatever the SQL text says.
   */
  readonly?: boolean;
  /** Settings for every query on this connection (applied before readonly, which forbids changing them). */
  settings?: ClickHouseSettings;
}

export function storeDialect(config: Config): Dialect {
  const store = config.store;
  const kind: StoreKind = store.url === undefined ? 'embedded' : store.cluster === undefined ? 'server' : 'cluster';
  return { kind, database: store.database, cluster: store.cluster, ttlDays: store.ttlDays };
}

export function embeddedStorePath(config: Config): string {
  return resolve(config.dataDir, config.store.embedded.dir);
}

/** Where the store is, without credentials. */
export function describeStore(config: Config): string {
  if (config.store.url === undefined) return embeddedStorePath(config);
  const url = new URL(config.store.url);
  url.username = '';
  url.password = '';
  return `${url.toString()}${config.store.cluster ? ` (cluster ${config.store.cluster})` : ''}`;
}

/**
 * Opens the configured store through `@clickhouse/client`: the embedded engine when no url is set,
 * else the server. Opening a server connects lazily (the first query); the embedded engine opens its
 * data directory now and fails at once when another process holds it.
 */
export async function openStore(config: Config, options: OpenStoreOptions = {}): Promise<Store> {
  const dialect = storeDialect(config);
  const readonlySettings: ClickHouseSettings = { ...options.settings, ...(options.readonly ? { readonly: '1' } : {}) };
  if (dialect.kind === 'embedded') return openEmbedded(config, dialect, readonlySettings);

  const store = config.store;
  const client = createClient({
    url: store.url,
    username: store.user,
    password: storePassword(config),
    database: store.database,
    application: 'gapwatch',
    tls: tlsOptions(config),
    // Failures reach the caller as errors and are logged there, once, through gapwatch's logger.
    log: { level: ClickHouseLogLevel.OFF },
    // readonly goes last: once it is set, ClickHouse refuses to change any other setting in that query.
    clickhouse_settings: { ...readonlySettings },
  });
  return { kind: dialect.kind, client, dialect, where: describeStore(config), close: () => client.close() };
}

function storePassword(config: Config): string | undefined {
  const store = config.store;
  if (store.password !== undefined) return store.password;
  if (store.passwordFile !== undefined) {
    try {
      return readFileSync(resolve(store.passwordFile), 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new StorePasswordUnreadableError(`store.passwordFile ${store.passwordFile}`, err);
    }
  }
  if (store.passwordEnv !== undefined) {
    const value = process.env[store.passwordEnv];
    if (value === undefined) throw new StorePasswordUnreadableError(`environment variable ${store.passwordEnv} (it is not set)`);
    return value;
  }
  return undefined;
}

function tlsOptions(config: Config): { ca_cert: Buffer; cert?: Buffer; key?: Buffer } | undefined {
  const tls = config.store.tls;
  if (tls.caFile === undefined) return undefined;
  const ca_cert = readTlsFile('store.tls.caFile', tls.caFile);
  if (tls.certFile !== undefined && tls.keyFile !== undefined) {
    return { ca_cert, cert: readTlsFile('store.tls.certFile', tls.certFile), key: readTlsFile('store.tls.keyFile', tls.keyFile) };
  }
  return { ca_cert };
}

function readTlsFile(key: string, file: string): Buffer {
  try {
    return readFileSync(resolve(file));
  } catch (err) {
    throw new StoreTlsFileUnreadableError(key, file, err);
  }
}

/**
 * The embedded engine binds one data directory per process, and the arguments of the first connection
 * configure it. An anchor session opened with the memory caps is kept while any store on that directory is
 * open, so the caps apply whichever connection came first; the `@clickhouse/client` connections share
 * the same engine.
 *
 * The per-query cap is an engine default rather than a client setting, so inserts carry no settings
 * (see OUTPUT_SETTINGS).
 */
interface Anchor {
  path: string;
  session: Session;
  users: number;
}
let anchor: Anchor | null = null;

async function openEmbedded(config: Config, dialect: Dialect, readonlySettings: ClickHouseSettings): Promise<Store> {
  const path = embeddedStorePath(config);
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const limits = config.store.embedded;
  if (anchor === null) {
    try {
      anchor = {
        path,
        users: 0,
        session: new Session(path, {
          connectionArgs: [
            `--max_server_memory_usage=${limits.maxMemoryMiB * MIB}`,
            `--max_memory_usage=${limits.maxQueryMemoryMiB * MIB}`,
          ],
        }),
      };
    } catch (err) {
      throw new StoreEngineBusyError(path, err);
    }
  } else if (anchor.path !== path) {
    throw new StoreEngineBusyError(path, new Error(`this process already has the embedded store ${anchor.path} open`));
  }
  anchor.users++;
  let connection;
  try {
    connection = createChdbConnection({ path });
  } catch (err) {
    await releaseAnchor();
    throw new StoreEngineBusyError(path, err);
  }
  const client = createClient({
    // chdb types its Connection against @clickhouse/client-common's declarations, which @clickhouse/client
    // bundles a copy of; the shapes agree, the nominal types differ.
    connection: connection as unknown as NonNullable<Parameters<typeof createClient>[0]>['connection'],
    log: { level: ClickHouseLogLevel.OFF },
    clickhouse_settings: { ...OUTPUT_SETTINGS, ...readonlySettings },
  });
  let closed = false;
  return {
    kind: 'embedded',
    client,
    dialect,
    where: path,
    async insertRaw(table, columns, body) {
      try {
        // store.database is a plain identifier (platform/config.ts), as chDB requires here.
        await connection.chdb.rawInsert({ table: `${dialect.database}.${table}`, values: body, columns: [...columns], format: 'JSONCompactEachRow' });
      } catch (err) {
        throw engineError(err);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await client.close();
      await releaseAnchor();
    },
  };
}

/**
 * chDB reports an engine refusal as `Code: N. DB::Exception: <message> (<TYPE>) (version …)`; the
 * writer decides by `type` whether data can never be stored, as the client's errors say it.
 */
export function engineError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const parsed = /^Code: (\d+)\. DB::Exception: ([\s\S]*?)\s*\(([A-Z0-9_]+)\)(?: \(version [^)]*\))?\.?\s*$/.exec(err.message);
  if (parsed !== null) return Object.assign(new Error(parsed[2], { cause: err }), { code: parsed[1], type: parsed[3] });
  // Another layout: the error name is still the last upper-case word in parentheses. Without one the
  // error stays as it is, and the writer treats it as "not now" (retry, then spool), never as bad data.
  const names = [...err.message.matchAll(/\(([A-Z][A-Z0-9_]{2,})\)/g)];
  const type = names.length > 0 ? names[names.length - 1]![1] : undefined;
  return type === undefined ? err : Object.assign(new Error(err.message, { cause: err }), { type });
}

async function releaseAnchor(): Promise<void> {
  if (anchor === null) return;
  anchor.users--;
  if (anchor.users > 0) return;
  anchor.session.close();
  anchor = null;
  // The engine finishes what it was running after close() returns; another directory can only be
  // opened once it has.
  await drainPending();
}

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { openStore, type Store } from '../../collector/store/connection';
import { qualified } from '../../collector/store/ddl';
import type { TableName } from '../../collector/store/rows';
import { createDevCertificates, type DevCertificateFiles } from '../../gateway/audit/dev-certificates';
import { decodeRecord } from '../../gateway/journal/canonical-encoding';
import { journalDirFor, listSegments } from '../../gateway/journal/segment-directory';
import { HEADER_BYTES, parseFrame } from '../../gateway/journal/segment-format';
import { parseConfig } from '../../platform/config';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import { nodeClient } from '../gateway/postgres/clients';
import { cliPath, runCli } from './host';
import { freePort, startPostgres, type PostgresServer } from './postgres';

/**
 * gapwatch as operators run it: `gapwatch gateway` and `gapwatch collector` as child processes with
 * their own data directories and configuration files, in front of a real PostgreSQL, with the Audit
 * stream on mutual TLS between them. Used by the fault-injection tests (test/reliability/) and
 * bench/soak: processes are killed with SIGKILL, restarted on the same ports and data directories,
 * and what they wrote is read back from the journal files and the embedded store.
 */

const running = new Set<ChildProcess>();

/** One running gapwatch command. */
export class GapwatchProcess {
  private stdout = '';
  private stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly command: string,
    readonly child: ChildProcess,
  ) {
    running.add(child);
    child.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-200_000)));
    this.exited = new Promise((resolve) =>
      child.on('close', (code, signal) => {
        running.delete(child);
        resolve({ code, signal });
      }),
    );
  }

  /** Starts `gapwatch <command> --config <file>` and resolves once it says it is up. */
  static async start(command: 'gateway' | 'collector', configFile: string): Promise<GapwatchProcess> {
    const child = spawn(process.execPath, [cliPath, command, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    const started = new GapwatchProcess(command, child);
    await started.up();
    return started;
  }

  get pid(): number {
    return this.child.pid!;
  }

  output(): string {
    return `--- ${this.command} stdout\n${this.stdout}\n--- ${this.command} stderr\n${this.stderr}`;
  }

  private up(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setInterval(() => {
        if (this.stdout.includes('Press Ctrl-C to stop.')) {
          clearInterval(timer);
          resolve();
        }
      }, 20);
      void this.exited.then(({ code, signal }) => {
        clearInterval(timer);
        reject(new Error(`gapwatch ${this.command} exited (${code ?? signal}) before it was up:\n${this.output()}`));
      });
    });
  }

  /** SIGKILL: no shutdown code runs, as in a crash, an OOM kill or a power loss. */
  async kill9(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, a clean stop; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return (await this.exited).code;
  }
}

/** Kills every gapwatch process the harness started and that still runs (after a failed test). */
export async function killAllGapwatch(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          child.once('close', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

export interface ReliabilitySetup {
  root: string;
  pg: PostgresServer;
  certs: DevCertificateFiles;
  gatewayId: string;
  gatewayConfig: string;
  collectorConfig: string;
  gatewayDataDir: string;
  collectorDataDir: string;
  postgresPort: number;
  auditAddress: string;
  login: string;
  token: string;
  /** Points the collector at another address for the gateway's Audit stream (a relay the test cuts). */
  subscribeVia(address: string): void;
  stop(): Promise<void>;
}

export interface ReliabilityOptions {
  /** Extra `collector` keys (sensor, correlate …). */
  collector?: Record<string, unknown>;
}

/**
 * A PostgreSQL server, development certificates, a gateway configuration (fixed ports, so a restarted
 * gateway is found where it was) and a collector configuration subscribed to it, and an agent token.
 */
export async function reliabilitySetup(options: ReliabilityOptions = {}): Promise<ReliabilitySetup> {
  const root = mkdtempSync(join(tmpdir(), 'gapwatch-reliability-'));
  const pg = await startPostgres();
  try {
    const certs = createDevCertificates({ dir: join(root, 'certs') });
    const gatewayId = 'gw-rel';
    const gatewayDataDir = join(root, 'gateway');
    const collectorDataDir = join(root, 'collector');
    mkdirSync(gatewayDataDir);
    mkdirSync(collectorDataDir);
    const postgresPort = await freePort();
    const auditPort = await freePort();
    const auditAddress = `127.0.0.1:${auditPort}`;
    const gatewayConfig = join(root, 'gateway.yaml');
    const collectorConfig = join(root, 'collector.yaml');
    writeFileSync(
      gatewayConfig,
      stringify({
        dataDir: gatewayDataDir,
        log: { format: 'json', level: 'warn' },
        gateway: {
          id: gatewayId,
          postgres: {
            listen: { host: '127.0.0.1', port: postgresPort },
            resources: [{ name: 'orders', upstream: { host: pg.host, port: pg.port, database: pg.database, user: pg.user, password: { value: pg.password } } }],
          },
          audit: { listen: { host: '127.0.0.1', port: auditPort }, tls: { caFile: certs.caCert, certFile: certs.gatewayCert, keyFile: certs.gatewayKey } },
        },
      }),
    );
    const writeCollectorConfig = (address: string): void =>
      writeFileSync(
        collectorConfig,
        stringify({
          dataDir: collectorDataDir,
          log: { format: 'json', level: 'warn' },
          store: { writer: { flushIntervalMs: 100 } },
          collector: {
            gateways: [{ address, caFile: certs.caCert, certFile: certs.collectorCert, keyFile: certs.collectorKey }],
            gatewayFeed: { commitIntervalMs: 100, reconnectBaseMs: 50, reconnectMaxMs: 500 },
            ...options.collector,
          },
        }),
      );
    writeCollectorConfig(auditAddress);
    const login = 'reliability-agent';
    const created = await runCli(['token', 'create', login, '--config', gatewayConfig]);
    if (created.code !== 0) throw new Error(`token create failed: ${created.stderr}`);
    const token = created.stdout.trim().split('\n').pop()!.trim();
    return {
      root,
      pg,
      certs,
      gatewayId,
      gatewayConfig,
      collectorConfig,
      gatewayDataDir,
      collectorDataDir,
      postgresPort,
      auditAddress,
      login,
      token,
      subscribeVia: writeCollectorConfig,
      async stop() {
        await killAllGapwatch();
        await pg.stop();
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await pg.stop();
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

/** One agent session through the gateway: `statements` queries on one connection, then the end. */
export async function agentSession(setup: ReliabilitySetup, statements: number, label: string): Promise<void> {
  const client = await nodeClient({ host: '127.0.0.1', port: setup.postgresPort, user: setup.login, password: setup.token, database: 'orders' });
  // A gateway stopping between two queries (or during end) sends FATAL 57P01, which node-pg emits as an
  // 'error' event rather than a rejected query: the session fails, as the callers expect, not the process.
  client.on('error', () => undefined);
  try {
    for (let i = 0; i < statements; i++) await client.query(`SELECT ${i} AS n, '${label}' AS label`);
  } finally {
    await client.end();
  }
}

/**
 * The gateway's journal as it is on disk, read without opening it for writing (the gateway may be
 * running): every whole frame of every segment; a frame still being written ends the read.
 */
export function readJournalFiles(dataDir: string, gatewayId: string): JournalRecord__Output[] {
  const records: JournalRecord__Output[] = [];
  for (const segment of listSegments(journalDirFor(dataDir, gatewayId))) {
    const bytes = readFileSync(segment.path);
    let offset = HEADER_BYTES;
    for (;;) {
      const parsed = parseFrame(bytes, offset);
      if (!parsed || parsed.kind !== 'frame') break;
      records.push(decodeRecord(parsed.payload));
      offset = parsed.end;
    }
  }
  return records;
}

/**
 * The journal once every session in it has ended: a session's last records (its end, its last events)
 * are journaled after the agent's connection closed, so a read right after the client's end may miss them.
 */
export async function settledJournal(setup: Pick<ReliabilitySetup, 'gatewayDataDir' | 'gatewayId'>): Promise<JournalRecord__Output[]> {
  let records: JournalRecord__Output[] = [];
  await waitUntil(() => {
    records = readJournalFiles(setup.gatewayDataDir, setup.gatewayId);
    const open = new Set<string>();
    for (const record of records) {
      if (record.session?.outcome === 'SESSION_OUTCOME_OPEN') open.add(record.session.sessionId);
      else if (record.session) open.delete(record.session.sessionId);
    }
    return open.size === 0;
  }, 'every journaled session to end');
  return records;
}

/** What the journal says should be in the store: session ids and session event ids (session_id/event_seq). */
export function journalTruth(records: readonly JournalRecord__Output[]): { sessions: Set<string>; events: Set<string>; lastSeq: bigint } {
  const sessions = new Set<string>();
  const events = new Set<string>();
  let lastSeq = 0n;
  for (const record of records) {
    lastSeq = BigInt(record.seq);
    if (record.session) sessions.add(record.session.sessionId);
    if (record.event) events.add(`${record.event.sessionId}/${record.event.eventSeq}`);
  }
  return { sessions, events, lastSeq };
}

/** The collector's saved Audit stream position (0 before the first save). */
export function collectorPosition(collectorDataDir: string): bigint {
  try {
    const dir = join(collectorDataDir, 'gateway-feed');
    const file = readdirSync(dir).find((name) => name.endsWith('.position.json'));
    if (!file) return 0n;
    return BigInt((JSON.parse(readFileSync(join(dir, file), 'utf8')) as { lastSeq: string }).lastSeq);
  } catch {
    return 0n;
  }
}

/** The collector's embedded store, opened by this process once the collector has stopped. */
export async function openCollectorStore(collectorDataDir: string): Promise<Store> {
  return openStore(parseConfig(`dataDir: ${collectorDataDir}\n`));
}

export async function storeQuery<T>(store: Store, sql: string): Promise<T[]> {
  return (await store.client.query({ query: sql, format: 'JSONEachRow' })).json<T>();
}

export function table(store: Store, name: TableName): string {
  return qualified(store.dialect, name);
}

/**
 * The gateway records in the store, counted three ways: rows after FINAL (what queries see), distinct
 * ids (must equal FINAL: no id stored twice under different versions) and the id sets themselves.
 */
export async function storedGatewayRecords(store: Store): Promise<{ sessions: Set<string>; events: Set<string>; sessionsFinal: number; eventsFinal: number }> {
  const sessionIds = await storeQuery<{ id: string }>(store, `SELECT session_id AS id FROM ${table(store, 'gateway_sessions')} FINAL`);
  const eventIds = await storeQuery<{ id: string }>(store, `SELECT concat(session_id, '/', toString(event_seq)) AS id FROM ${table(store, 'gateway_session_events')} FINAL`);
  return { sessions: new Set(sessionIds.map((r) => r.id)), events: new Set(eventIds.map((r) => r.id)), sessionsFinal: sessionIds.length, eventsFinal: eventIds.length };
}

/** Every session and session event the journal holds is in the store, none extra, none twice. */
export function assertStoredExactlyOnce(stored: Awaited<ReturnType<typeof storedGatewayRecords>>, truth: ReturnType<typeof journalTruth>): void {
  assert.deepEqual([...stored.sessions].sort(), [...truth.sessions].sort(), 'every session, none extra');
  assert.deepEqual([...stored.events].sort(), [...truth.events].sort(), 'every session event, none extra');
  assert.equal(stored.sessionsFinal, truth.sessions.size, 'no session twice');
  assert.equal(stored.eventsFinal, truth.events.size, 'no event twice');
}

export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

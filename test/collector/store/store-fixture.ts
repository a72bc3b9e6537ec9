import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseConfig, type Config } from '../../../platform/config';
import type { Logger } from '../../../platform/log';
import type { Store } from '../../../collector/store/connection';
import { qualified } from '../../../collector/store/ddl';
import type { InsertSink } from '../../../collector/store/sink';
import { connectEventRow, type Row, type TableName } from '../../../collector/store/rows';

export const silentLog: Logger = pino({ level: 'silent' });

/** Every store directory this process makes lives under one parent, removed when the process exits. */
let parent: string | null = null;

/** A configuration whose dataDir is a fresh temp directory; `extra` is YAML under `store:`. */
export function tempConfig(extra = ''): Config {
  if (parent === null) {
    const made = mkdtempSync(join(tmpdir(), 'gapwatch-store-'));
    parent = made;
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
  }
  const dir = mkdtempSync(join(parent, 'case-'));
  return parseConfig(`dataDir: ${dir}\nstore:\n  ttlDays: 30\n${extra.replace(/^/gm, '  ')}\n`);
}

export async function queryRows<T>(store: Store, sql: string): Promise<T[]> {
  return (await store.client.query({ query: sql, format: 'JSONEachRow' })).json<T>();
}

export async function countFinal(store: Store, table: TableName, where = '1'): Promise<number> {
  const rows = await queryRows<{ c: string }>(store, `SELECT count() AS c FROM ${qualified(store.dialect, table)} FINAL WHERE ${where}`);
  return Number(rows[0]!.c);
}

/** Raw row count without FINAL or merges: what was physically inserted. */
export async function countRaw(store: Store, table: TableName): Promise<number> {
  const rows = await queryRows<{ c: string }>(store, `SELECT count() AS c FROM ${qualified(store.dialect, table)}`);
  return Number(rows[0]!.c);
}

/**
 * A fault-injecting wrapper around a real sink: the next `failures` inserts fail the way an unreachable
 * server fails (connection refused) without reaching the store; every other insert goes to the real store.
 */
export class FaultySink implements InsertSink {
  failures: number;
  attempts = 0;
  failed = 0;

  constructor(
    private readonly real: InsertSink,
    failures: number,
  ) {
    this.failures = failures;
  }

  async insert(table: TableName, columns: readonly string[], body: Buffer, rows: number): Promise<void> {
    this.attempts++;
    if (this.failures > 0) {
      this.failures--;
      this.failed++;
      const err = new Error('connect ECONNREFUSED 127.0.0.1:8123') as NodeJS.ErrnoException;
      err.code = 'ECONNREFUSED';
      throw err;
    }
    await this.real.insert(table, columns, body, rows);
  }
}

/** Recent enough that the 30-day TTL of test stores does not expire rows under the test. */
const BASE_NANOS = BigInt(Date.now() - 3600_000) * 1_000_000n;

/** Connect events as the correlator would hand them over, with deterministic ids. */
export function connectRows(count: number, first = 0, agentRun = 'host-a:boot:100:1'): Row[] {
  const rows: Row[] = [];
  for (let i = first; i < first + count; i++) {
    rows.push(
      connectEventRow({
        eventId: `ce-${i}`,
        host: 'host-a',
        timeUnixNano: String(BASE_NANOS + BigInt(i) * 1000n),
        process: { execId: `host-a:boot:${200 + (i % 7)}:1`, pid: 200 + (i % 7), tgid: 200 + (i % 7), agentRun },
        transport: 'TRANSPORT_TCP',
        destination: { inet: { ip: '10.0.0.5', port: 5432 }, address: 'inet' },
        local: { ip: '10.0.0.9', port: 40000 + (i % 20000) },
        result: 0,
        verdict: i % 3 === 0 ? 'VERDICT_BYPASS' : 'VERDICT_MEDIATED',
        resource: 'orders-db',
        sessionId: i % 3 === 0 ? '' : `gw-local-${i}`,
      }),
    );
  }
  return rows;
}

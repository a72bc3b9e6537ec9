import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../../platform/config';
import type { CheckResult } from '../doctor/checks';
import { describeStore, embeddedStorePath, openStore } from './connection';

const CHECK = { id: 'store', title: 'ClickHouse store' } as const;

/**
 * The doctor's store check: opens the configured store and runs a query. An embedded store held by a
 * running collector is fine (that process owns it); a server that does not answer is a warning, because
 * the collector still runs and spools to disk until it does. An embedded store that does not exist yet is
 * not created by the check: the engine is tried on a scratch directory instead.
 */
export function storeCheck(config: Config): () => Promise<CheckResult> {
  return async () => {
    const fresh = config.store.url === undefined && !existsSync(embeddedStorePath(config));
    const scratch = fresh ? mkdtempSync(join(tmpdir(), 'gapwatch-doctor-')) : null;
    try {
      return await check(scratch === null ? config : { ...config, dataDir: scratch }, describeStore(config), fresh);
    } finally {
      if (scratch !== null) rmSync(scratch, { recursive: true, force: true });
    }
  };
}

async function check(config: Config, where: string, fresh: boolean): Promise<CheckResult> {
  let store;
  try {
    store = await openStore(config);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'STORE_ERR_ENGINE_BUSY') {
      return { ...CHECK, status: 'ok', detail: `embedded, ${where}, in use by a running gapwatch process` };
    }
    return {
      ...CHECK,
      status: 'fail',
      detail: (err as Error).message,
      fix: 'check the store section of the configuration (url, password source, TLS files) and that dataDir is writable',
    };
  }
  try {
    const rows = await (await store.client.query({ query: 'SELECT version() AS version', format: 'JSONEachRow' })).json<{ version: string }>();
    const kind = store.kind === 'embedded' ? 'embedded' : store.kind === 'cluster' ? 'cluster' : 'server';
    const created = fresh ? ' (created at first start)' : '';
    return { ...CHECK, status: 'ok', detail: `${kind} ClickHouse ${rows[0]?.version ?? '?'}, ${where}${created}` };
  } catch (err) {
    if (store.kind === 'embedded') {
      return { ...CHECK, status: 'fail', detail: `embedded engine at ${where} failed a query: ${(err as Error).message}`, fix: 'check free disk space and permissions of dataDir' };
    }
    return {
      ...CHECK,
      status: 'warn',
      detail: `${where} does not answer: ${(err as Error).message.split('\n')[0]}`,
      fix: 'check store.url, credentials and the network; until it answers the collector spools batches to disk',
    };
  } finally {
    await store.close();
  }
}

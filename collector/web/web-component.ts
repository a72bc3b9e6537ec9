import { rmSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { writeFileAtomic } from '../../platform/atomic-file';
import type { Config } from '../../platform/config';
import type { Logger } from '../../platform/log';
import type { Component } from '../../platform/supervisor';
import { openStore, type Store } from '../store/connection';
import { loadOrCreateToken, webStateDir } from './access-token';
import { QueryRunner } from './query-runner';
import { WebServer } from './web-server';

export interface WebComponent extends Component {
  /** http://host:port, once listening. */
  readonly url: string | null;
}

/** Where a running web UI says it listens, for `gapwatch query` while the store is held by that process. */
export function addressFile(dataDir: string): string {
  return join(webStateDir(dataDir), 'address.json');
}

export interface WebAddress {
  url: string;
  pid: number;
}

/**
 * The web UI as the collector runs it: a read-only store connection of its own (ClickHouse
 * `readonly = 1`, a time limit per query) in the process that owns the store, so the embedded engine is
 * shared rather than opened twice. Starts after the store component, which has brought the schema up
 * to date.
 */
export function webComponent(config: Config, log: Logger): WebComponent {
  const web = config.collector.web;
  let store: Store | null = null;
  let server: WebServer | null = null;
  let url: string | null = null;
  return {
    name: 'web UI',
    get url() {
      return url;
    },
    async start() {
      if (!web.enabled) return ['disabled (collector.web.enabled: false)'];
      const token = loadOrCreateToken(config.dataDir);
      // max_execution_time goes before readonly: once readonly is set, no other setting may change.
      store = await openStore(config, { readonly: true, settings: { max_execution_time: web.queryTimeoutSeconds } });
      const recordingsDir = config.gateway.ssh.recordingsDir;
      server = new WebServer({
        token,
        runner: new QueryRunner(store),
        recordingsDir: isAbsolute(recordingsDir) ? recordingsDir : join(config.dataDir, recordingsDir),
        sessionHours: web.sessionHours,
        maxPageRows: web.maxPageRows,
        log,
      });
      try {
        let address;
        try {
          address = await server.listen(web.listen.host, web.listen.port);
        } catch (err) {
          // Another gapwatch (a second data directory, a test) has the port: the address is printed and
          // written to the data directory, so any free port serves as well as the configured one.
          if (web.listen.port === 0 || ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code !== 'EADDRINUSE') throw err;
          log.warn({ port: web.listen.port }, 'web UI port in use; listening on a free port instead');
          address = await server.listen(web.listen.host, 0);
        }
        const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
        url = `http://${host}:${address.port}`;
      } catch (err) {
        await store.close();
        store = null;
        throw err;
      }
      writeFileAtomic(addressFile(config.dataDir), `${JSON.stringify({ url, pid: process.pid } satisfies WebAddress)}\n`);
      log.info({ url }, 'web UI listening');
      return [`${url}/ (log in with the access token ${token}; also in ${join(webStateDir(config.dataDir), 'token')})`];
    },
    async stop() {
      if (url !== null) rmSync(addressFile(config.dataDir), { force: true });
      url = null;
      await server?.close();
      server = null;
      await store?.close();
      store = null;
    },
  };
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { HttpGateway } from '../../gateway/http/listener';
import { FileIdentityStore } from '../../gateway/identity/identity-store';
import { openJournal, journalOptionsFromConfig, type Journal } from '../../gateway/journal/journal';
import { parseConfig, type Config } from '../../platform/config';
import { createLogger } from '../../platform/log';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import { allRecords } from './journal-records';

/** The HTTP gateway as `gapwatch gateway` runs it (real journal and identity store) in a fresh data directory. */
export interface HttpGatewayUnderTest {
  gateway: HttpGateway;
  port: number;
  url: string;
  login: string;
  token: string;
  dataDir: string;
  config: Config;
  journal: Journal;
  identities: FileIdentityStore;
  records(): Promise<JournalRecord__Output[]>;
  stop(): Promise<void>;
}

/**
 * `http` is the `gateway.http` section (without listen, which is a free port on 127.0.0.1); `policy`
 * the `gateway.policy` section (its reviewTimeoutSeconds bounds review holds).
 */
export async function startHttpGateway(http: Record<string, unknown>, logLevel: 'info' | 'warn' | 'fatal' = 'fatal', policy: Record<string, unknown> = {}): Promise<HttpGatewayUnderTest> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gapwatch-http-'));
  const document = { dataDir, gateway: { id: 'gw-http-test', policy, http: { listen: { host: '127.0.0.1', port: 0 }, ...http } } };
  let journal: Journal | null = null;
  try {
    const config = parseConfig(stringify(document));
    const log = createLogger({ level: logLevel, format: 'json' });
    journal = await openJournal(journalOptionsFromConfig(config, log));
    const identities = new FileIdentityStore({ dataDir });
    const login = 'claude-ci';
    const { token } = await identities.create(login, { claims: { repository: 'acme/shop' } });
    const review = { dataDir, timeoutSeconds: config.gateway.policy.reviewTimeoutSeconds };
    const gateway = new HttpGateway({ gatewayId: config.gateway.id, config: config.gateway.http, journal, identities, log, review });
    await gateway.start();
    const j = journal;
    const port = gateway.address().port;
    return {
      gateway,
      port,
      url: `http://127.0.0.1:${port}`,
      login,
      token,
      dataDir,
      config,
      journal,
      identities,
      records() {
        return allRecords(j);
      },
      async stop() {
        await gateway.stop();
        await j.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await journal?.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

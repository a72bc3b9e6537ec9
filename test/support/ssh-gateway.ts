import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { FileIdentityStore } from '../../gateway/identity/identity-store';
import { journalOptionsFromConfig, openJournal, type Journal } from '../../gateway/journal/journal';
import { SshCommandPolicy } from '../../gateway/ssh/command-policy';
import { SshGateway } from '../../gateway/ssh/listener';
import { formatSshPublicKey, parseSshPublicKey } from '../../gateway/ssh/ssh-keys';
import { parseConfig, type Config } from '../../platform/config';
import { createLogger } from '../../platform/log';
import type { JournalRecord__Output } from '../../proto/generated/gapwatch/v1/JournalRecord';
import type { Session__Output } from '../../proto/generated/gapwatch/v1/Session';
import type { SessionEvent__Output } from '../../proto/generated/gapwatch/v1/SessionEvent';
import { generateKey, startSshd, type SshServer } from './sshd';
import { allRecords } from './journal-records';

/**
 * The SSH gateway as `gapwatch gateway` runs it (real journal, identity store, review channel) in
 * front of a real OpenSSH server, plus what the OpenSSH client needs to reach either: option lists
 * for `ssh`/`scp`/`sftp` direct (with the resource's own key) and through the gateway (with the
 * agent's key registered for its identity).
 */
export interface SshGatewayUnderTest {
  sshd: SshServer;
  gateway: SshGateway;
  port: number;
  resource: string;
  login: string;
  token: string;
  agentKeyFile: string;
  dataDir: string;
  config: Config;
  identities: FileIdentityStore;
  journal: Journal;
  /** `-o` options shared by every client invocation (no user config, batch mode, pinned known_hosts). */
  directOptions: string[];
  gatewayOptions: string[];
  /** user@host for the direct and gateway paths. */
  directTarget: string;
  gatewayTarget: string;
  records(): Promise<JournalRecord__Output[]>;
  /** The seq of the last journal record (0 when empty): mark it before a client runs. */
  head(): Promise<bigint>;
  /** The first session that ended after `since`, with its events (waits for the gateway to write it). */
  sessionRecords(since: bigint): Promise<{ session: Session__Output; events: SessionEvent__Output[] }>;
  stop(): Promise<void>;
}

export interface SshGatewayOptions {
  /** Extra `gateway.ssh` keys (commands, forwarding …), given the server they front. */
  ssh?: (sshd: SshServer) => Record<string, unknown>;
  /** Replace the pinned upstream host key (host key mismatch tests). */
  hostKeys?: string[];
  logLevel?: 'info' | 'warn' | 'error' | 'fatal';
  reviewTimeoutSeconds?: number;
}

export async function startSshGateway(options: SshGatewayOptions = {}): Promise<SshGatewayUnderTest> {
  const sshd = await startSshd();
  const dataDir = mkdtempSync(join(tmpdir(), 'gapwatch-sshgw-'));
  const resource = 'web1';
  const document = {
    dataDir,
    gateway: {
      id: 'gw-ssh-test',
      policy: { reviewTimeoutSeconds: options.reviewTimeoutSeconds ?? 300 },
      ssh: {
        listen: { host: '127.0.0.1', port: 0 },
        resources: [
          {
            name: resource,
            upstream: {
              host: sshd.host,
              port: sshd.port,
              user: sshd.user,
              hostKeys: options.hostKeys ?? [sshd.hostPublicKey],
              privateKey: { file: sshd.clientKeyFile },
            },
          },
        ],
        ...options.ssh?.(sshd),
      },
    },
  };
  let journal: Journal | null = null;
  let policy: SshCommandPolicy | null = null;
  try {
    const config = parseConfig(stringify(document));
    const log = createLogger({ level: options.logLevel ?? 'fatal', format: 'json' });
    journal = await openJournal(journalOptionsFromConfig(config, log));
    const identities = new FileIdentityStore({ dataDir });
    const login = 'claude-ci';
    const agentKeyFile = generateKey(dataDir, 'agent_key');
    const { token } = await identities.create(login, {
      claims: { repository: 'acme/shop' },
      sshKeys: [formatSshPublicKey(parseSshPublicKey(readFileSync(`${agentKeyFile}.pub`, 'utf8')))],
    });
    policy = new SshCommandPolicy(config.gateway.ssh, { dataDir, timeoutSeconds: config.gateway.policy.reviewTimeoutSeconds });
    const gateway = new SshGateway({ gatewayId: config.gateway.id, config: config.gateway.ssh, dataDir, journal, identities, policy, log });
    await gateway.start();
    const port = gateway.address().port;
    const knownHosts = join(dataDir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`);
    const common = ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null'];
    const j = journal;
    const p = policy;
    const harness: SshGatewayUnderTest = {
      sshd,
      gateway,
      port,
      resource,
      login,
      token,
      agentKeyFile,
      dataDir,
      config,
      identities,
      journal,
      directOptions: [...common, '-o', 'StrictHostKeyChecking=yes', '-i', sshd.clientKeyFile, '-o', `Port=${sshd.port}`],
      gatewayOptions: [...common, '-o', 'StrictHostKeyChecking=accept-new', '-i', agentKeyFile, '-o', `Port=${port}`],
      directTarget: `${sshd.user}@127.0.0.1`,
      gatewayTarget: `${login}@${resource}@127.0.0.1`,
      async sessionRecords(since) {
        const deadline = Date.now() + 10_000;
        for (;;) {
          const all = await this.records();
          // A session already journaled by `since` belongs to an earlier test, even if it ends after it.
          const earlier = new Set(all.flatMap((record) => (BigInt(record.seq) <= since && record.session ? [record.session.sessionId] : [])));
          const records = all.filter((record) => BigInt(record.seq) > since);
          const ended = records.find((record) => record.session && record.session.endUnixNano !== '0' && !earlier.has(record.session.sessionId));
          if (ended) {
            const id = ended.session!.sessionId;
            return { session: ended.session!, events: records.flatMap((record) => (record.event?.sessionId === id ? [record.event] : [])) };
          }
          if (Date.now() > deadline) throw new Error(`no session ended after journal seq ${since}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      },
      async head() {
        const records = await this.records();
        return records.length === 0 ? 0n : BigInt(records[records.length - 1]!.seq);
      },
      records() {
        return allRecords(j);
      },
      async stop() {
        await gateway.stop();
        p.close();
        await j.close();
        await sshd.stop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
    return harness;
  } catch (err) {
    policy?.close();
    await journal?.close();
    await sshd.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

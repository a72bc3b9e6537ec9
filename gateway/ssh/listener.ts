import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { Server as SshServer } from 'ssh2';
import type { Logger } from '../../platform/log';
import { IdentityWatch } from '../identity/identity-watch';
import type { Component } from '../../platform/supervisor';
import type { Session } from '../../proto/generated/gapwatch/v1/Session';
import type { JournalWriter } from '../journal/contract';
import { unixNanos } from '../postgres/session-recorder';
import { newSessionId } from '../session-id';
import { AgentConnection } from './agent-connection';
import type { SshIdentitySource } from './agent-auth';
import type { SshCommandPolicy } from './command-policy';
import type { SshGatewayConfig } from './config-schema';
import { loadOrCreateHostKey } from './ssh-keys';

export interface SshGatewayOptions {
  gatewayId: string;
  config: SshGatewayConfig;
  dataDir: string;
  journal: JournalWriter;
  identities: SshIdentitySource;
  policy: SshCommandPolicy;
  log: Logger;
}

function inet(address: string | undefined, port: number | undefined): { ip: string; port: number } {
  const ip = (address ?? '').startsWith('::ffff:') ? address!.slice(7) : (address ?? '');
  return { ip, port: port ?? 0 };
}

/**
 * The SSH listener. Accepts TCP itself (so each session knows both endpoints of its socket, the
 * key the collector correlates on) and hands the socket to ssh2's server for the protocol. The
 * host key lives in the data directory and is created on first use.
 */
export class SshGateway implements Component {
  readonly name = 'ssh gateway';
  private server: NetServer | null = null;
  private readonly pending = new Map<string, Socket>();
  private readonly connections = new Set<AgentConnection>();
  private readonly identityWatch: IdentityWatch;
  hostKeyFingerprint = '';

  constructor(private readonly options: SshGatewayOptions) {
    this.identityWatch = new IdentityWatch(options.log);
  }

  private resolvePath(path: string): string {
    return isAbsolute(path) ? path : join(this.options.dataDir, path);
  }

  async start(): Promise<string[]> {
    const { config, log } = this.options;
    const hostKey = loadOrCreateHostKey(this.resolvePath(config.hostKeyFile));
    this.hostKeyFingerprint = hostKey.fingerprint;
    if (hostKey.created) log.info({ fingerprint: hostKey.fingerprint }, 'created the SSH gateway host key');
    const recordingsDir = this.resolvePath(config.recordingsDir);
    const ssh = new SshServer({ hostKeys: [hostKey.privateKey], ident: 'gapwatch', algorithms: { cipher: [...config.ciphers] } }, (conn, info) => {
      const key = `${info.ip}:${info.port}`;
      const socket = this.pending.get(key);
      this.pending.delete(key);
      const session: Session = {
        sessionId: newSessionId(),
        gatewayId: this.options.gatewayId,
        protocol: 'PROTOCOL_SSH',
        client: inet(info.ip, info.port),
        listener: inet(socket?.localAddress, socket?.localPort),
        startUnixNano: unixNanos(),
        outcome: 'SESSION_OUTCOME_OPEN',
        clientParameters: { client_version: info.header.versions.software, ...(info.header.comments ? { client_comments: info.header.comments } : {}) },
      };
      const connection = new AgentConnection(conn, session, socket ?? { bytesRead: 0, bytesWritten: 0 }, {
        config,
        recordingsDir,
        journal: this.options.journal,
        identities: this.options.identities,
        identityWatch: this.identityWatch,
        policy: this.options.policy,
        log,
      });
      this.connections.add(connection);
      void connection.done.then(() => this.connections.delete(connection));
    });
    ssh.on('error', (err: Error) => log.warn({ err }, 'ssh listener: a connection failed before its handshake'));
    const server = createServer({ noDelay: true }, (socket) => {
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      this.pending.set(key, socket);
      socket.once('close', () => this.pending.delete(key));
      ssh.injectSocket(socket);
    });
    const { host, port } = config.listen;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => log.error({ err }, 'ssh listener error'));
    this.server = server;
    const address = this.address();
    const names = config.resources.map((resource) => resource.name).join(', ');
    return [`ssh on ${address.host}:${address.port} (host key ${hostKey.fingerprint}), resources: ${names}`];
  }

  address(): { host: string; port: number } {
    const address = this.server?.address() as AddressInfo | null;
    if (!address) throw new Error('the ssh gateway is not listening');
    return { host: address.address, port: address.port };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.pending.values()) socket.destroy();
    for (const connection of this.connections) connection.shutdown();
    await Promise.allSettled([...this.connections].map((connection) => connection.done));
    await closed;
  }
}

import { connect as tcpConnect, type Socket } from 'node:net';
import { Client } from 'ssh2';
import { readCredential } from '../credentials/credential-source';
import type { SshResourceConfig } from './config-schema';
import { SshHostKeyMismatchError, SshUpstreamError } from './errors';
import { fingerprint, parseSshPublicKey } from './ssh-keys';

export interface UpstreamConnection {
  client: Client;
  socket: Socket;
  remote: { ip: string; port: number };
  local: { ip: string; port: number };
}

function plainIp(address: string | undefined): string {
  return (address ?? '').startsWith('::ffff:') ? address!.slice(7) : (address ?? '');
}

/**
 * Logs into the resource's SSH server with the resource's own credential (private key and/or
 * password, read now from config, file or environment, and handed only to ssh2), after checking
 * that the server's host key is one of the pinned keys. Nothing of the credential is returned.
 */
export async function connectUpstream(resource: SshResourceConfig): Promise<UpstreamConnection> {
  const { upstream } = resource;
  const setting = `gateway.ssh.resources[${resource.name}].upstream`;
  let privateKey: string | null;
  let passphrase: string | null;
  let password: string | null;
  try {
    privateKey = readCredential(resource.name, upstream.privateKey, { whole: true, setting: `${setting}.privateKey` });
    passphrase = readCredential(resource.name, upstream.passphrase, { setting: `${setting}.passphrase` });
    password = readCredential(resource.name, upstream.password, { setting: `${setting}.password` });
  } catch (err) {
    throw new SshUpstreamError(resource.name, (err as Error).message, err);
  }
  const pinned = upstream.hostKeys.map((line) => parseSshPublicKey(line).blob);
  let presented: Buffer | null = null;

  const socket = tcpConnect({ host: upstream.host, port: upstream.port, noDelay: true });
  const client = new Client();
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => {
        client.removeListener('ready', ready);
        reject(err);
      };
      const ready = (): void => {
        client.removeListener('error', fail);
        resolve();
      };
      client.once('ready', ready);
      client.once('error', fail);
      socket.once('error', fail);
      socket.once('connect', () => {
        socket.removeListener('error', fail);
        client.connect({
          sock: socket,
          username: upstream.user,
          ...(privateKey !== null ? { privateKey } : {}),
          ...(passphrase !== null ? { passphrase } : {}),
          ...(password !== null ? { password } : {}),
          readyTimeout: upstream.readyTimeoutSeconds * 1000,
          // Called with the raw host key blob (no hostHash configured): it must be a pinned one.
          hostVerifier: (key: Buffer) => {
            presented = key;
            return pinned.some((blob) => blob.equals(key));
          },
          tryKeyboard: false,
        });
      });
    });
  } catch (err) {
    client.end();
    socket.destroy();
    if (presented !== null && !pinned.some((blob) => blob.equals(presented!))) {
      throw new SshHostKeyMismatchError(resource.name, fingerprint(presented));
    }
    throw new SshUpstreamError(resource.name, (err as Error).message, err);
  }
  return {
    client,
    socket,
    remote: { ip: plainIp(socket.remoteAddress), port: socket.remotePort ?? 0 },
    local: { ip: plainIp(socket.localAddress), port: socket.localPort ?? 0 },
  };
}

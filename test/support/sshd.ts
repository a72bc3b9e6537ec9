import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './postgres';

/**
 * A real OpenSSH server for integration tests and benchmarks: `/usr/sbin/sshd -D -e` with its own
 * configuration and host key in a temp dir, on a random port of 127.0.0.1, public key logins only
 * (the account is the harness's own: root). Forwarding is enabled on the server, so a refusal seen
 * through the gateway is the gateway's.
 */
export interface SshServer {
  host: string;
  port: number;
  dir: string;
  user: string;
  /** The server's host public key line ("ssh-ed25519 AAAA… comment"). */
  hostPublicKey: string;
  /** A private key the server accepts for `user` (the resource's credential), and its public line. */
  clientKeyFile: string;
  clientPublicKey: string;
  stop(): Promise<void>;
}

export const SSHD = '/usr/sbin/sshd';

/** A fresh ed25519 key pair from ssh-keygen; returns the private key path. */
export function generateKey(dir: string, name: string): string {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  return file;
}

export async function startSshd(): Promise<SshServer> {
  const dir = mkdtempSync(join(tmpdir(), 'gapwatch-sshd-'));
  // sshd's privilege separation needs this directory; Debian creates it only when the service runs.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = generateKey(dir, 'ssh_host_ed25519_key');
  const clientKeyFile = generateKey(dir, 'resource_key');
  const clientPublicKey = readFileSync(`${clientKeyFile}.pub`, 'utf8').trim();
  writeFileSync(join(dir, 'authorized_keys'), `${clientPublicKey}\n`, { mode: 0o600 });
  const port = await freePort();
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKey}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'AllowTcpForwarding yes',
    'AllowAgentForwarding yes',
    'X11Forwarding no',
    'PrintMotd no',
    'PrintLastLog no',
    'AcceptEnv LANG LC_* GAPWATCH_*',
    'Subsystem sftp /usr/lib/openssh/sftp-server',
    'LogLevel ERROR',
  ].join('\n');
  const configFile = join(dir, 'sshd_config');
  writeFileSync(configFile, `${config}\n`);
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(port, child, () => stderr);
  return {
    host: '127.0.0.1',
    port,
    dir,
    user: 'root',
    hostPublicKey: readFileSync(`${hostKey}.pub`, 'utf8').trim(),
    clientKeyFile,
    clientPublicKey,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}: ${stderr()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`sshd did not listen on ${port} within 10 s: ${stderr()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

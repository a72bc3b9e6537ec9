import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A real PostgreSQL 15 server for integration tests and benchmarks: a fresh cluster in a temp dir,
 * a random port on 127.0.0.1, SCRAM-SHA-256 for TCP logins (md5 and cleartext for the accounts that
 * test those methods), trust only on its private unix socket for the harness itself. PostgreSQL
 * refuses to run as root, so the cluster belongs to the `postgres` user.
 */

export const PG_BIN = '/usr/lib/postgresql/15/bin';
const execFileAsync = promisify(execFile);

export interface PostgresServer {
  port: number;
  host: string;
  /** The directory holding the server's unix socket. */
  socketDir: string;
  dataDir: string;
  /** The account the gateway logs in with (SCRAM), and its password. */
  user: string;
  password: string;
  /** Accounts whose password is stored or sent so that the server asks for md5 / cleartext. */
  md5User: string;
  cleartextUser: string;
  database: string;
  /** Runs SQL as the superuser over the private socket and returns psql's unaligned output. */
  admin(sql: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

export interface PostgresOptions {
  /** Extra postgresql.conf lines. */
  settings?: Record<string, string>;
  /** A certificate and key for the server's TLS (ssl=on). */
  tls?: { cert: string; key: string };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function postgresIds(): { uid: number; gid: number } {
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  };
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  if (process.geteuid?.() !== 0) {
    throw new Error('the PostgreSQL test server runs as the postgres user, which needs root to switch to; run the tests as root');
  }
  const { uid, gid } = postgresIds();
  const root = mkdtempSync(join(tmpdir(), 'gapwatch-pg-'));
  chmodSync(root, 0o755);
  chownSync(root, uid, gid);
  const dataDir = join(root, 'data');
  const socketDir = root;
  const password = `upstream-${Math.random().toString(36).slice(2)}`;
  const pwfile = join(root, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  chownSync(pwfile, uid, gid);
  const user = 'gw_upstream';

  await execFileAsync(join(PG_BIN, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'], {
    uid,
    gid,
  });
  rmSync(pwfile);
  const port = await freePort();
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${socketDir}'`,
    password_encryption: "'scram-sha-256'",
    max_connections: '60',
    shared_buffers: "'64MB'",
    ...options.settings,
  };
  if (options.tls) {
    // Copies inside the cluster's own directory, readable by the postgres user whatever the originals' modes.
    const cert = join(root, 'server.crt');
    const key = join(root, 'server.key');
    copyFileSync(options.tls.cert, cert);
    copyFileSync(options.tls.key, key);
    for (const file of [cert, key]) chownSync(file, uid, gid);
    chmodSync(key, 0o600);
    settings.ssl = 'on';
    settings.ssl_cert_file = `'${cert}'`;
    settings.ssl_key_file = `'${key}'`;
  }
  writeFileSync(join(dataDir, 'postgresql.auto.conf'), Object.entries(settings).map(([k, v]) => `${k} = ${v}\n`).join(''));
  // First match wins: the md5 and cleartext test accounts, then SCRAM for every other TCP login.
  writeFileSync(
    join(dataDir, 'pg_hba.conf'),
    [
      'local all all trust',
      'host all md5_user 127.0.0.1/32 md5',
      'host all cleartext_user 127.0.0.1/32 password',
      'host all all 127.0.0.1/32 scram-sha-256',
      '',
    ].join('\n'),
  );

  const child: ChildProcess = spawn(join(PG_BIN, 'postgres'), ['-D', dataDir], { uid, gid, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-8000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const psql = async (sql: string, database = 'postgres'): Promise<string> => {
    const { stdout } = await execFileAsync(
      join(PG_BIN, 'psql'),
      ['-h', socketDir, '-p', String(port), '-U', 'postgres', '-d', database, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql],
      { maxBuffer: 64 << 20 },
    );
    return stdout.trim();
  };

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT'); // fast shutdown: roll back sessions, checkpoint, exit
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(root, { recursive: true, force: true });
  };

  try {
    for (let attempt = 0; ; attempt++) {
      if (child.exitCode !== null) throw new Error(`postgres exited during startup:\n${log}`);
      try {
        await execFileAsync(join(PG_BIN, 'pg_isready'), ['-h', socketDir, '-p', String(port), '-q']);
        break;
      } catch {
        if (attempt > 300) throw new Error(`postgres did not become ready:\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const quoted = `'${password}'`;
    // One statement per call: CREATE DATABASE cannot run inside the implicit transaction of a multi-statement string.
    for (const sql of [
      `CREATE ROLE ${user} LOGIN PASSWORD ${quoted}`,
      `CREATE DATABASE app OWNER ${user}`,
      `SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD ${quoted}; CREATE ROLE cleartext_user LOGIN PASSWORD ${quoted}`,
      `GRANT ${user} TO md5_user, cleartext_user`,
    ]) {
      await psql(sql);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    port,
    host: '127.0.0.1',
    socketDir,
    dataDir,
    user,
    password,
    md5User: 'md5_user',
    cleartextUser: 'cleartext_user',
    database: 'app',
    admin: psql,
    stop,
  };
}

/** A self-signed certificate and key in `dir`, for TLS towards the gateway or the upstream. */
export function selfSignedCertificate(dir: string, commonName = 'localhost'): { cert: string; key: string } {
  const cert = join(dir, `${commonName}.crt`);
  const key = join(dir, `${commonName}.key`);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${commonName}`, '-addext', `subjectAltName=DNS:${commonName},IP:127.0.0.1`, '-keyout', key, '-out', cert],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

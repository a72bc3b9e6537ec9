import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomic } from '../../platform/atomic-file';
import { GapwatchError } from '../../platform/errors';
import type { Logger } from '../../platform/log';

const execFileAsync = promisify(execFile);

export class DemoPostgresError extends GapwatchError {
  constructor(detail: string, cause?: unknown) {
    super('CLI_ERR_DEMO_POSTGRES', `the demo PostgreSQL for \`gapwatch up\` could not start: ${detail}; configure gateway.postgres.resources to guard your own database instead`, { cause });
  }
}

export interface DemoPostgres {
  host: string;
  port: number;
  socketDir: string;
  database: string;
  user: string;
  password: string;
  clusterDir: string;
  stop(): Promise<void>;
}

/** The newest Debian-packaged PostgreSQL (/usr/lib/postgresql/<major>/bin), or null. */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const majors = readdirSync(root)
    .filter((d) => /^\d+$/.test(d) && existsSync(join(root, d, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return majors.length > 0 ? join(root, majors[0]!, 'bin') : null;
}

async function freePort(): Promise<number> {
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

/**
 * A private PostgreSQL cluster for the demo resource of `gapwatch up`: initialised once under
 * <dataDir>/demo-postgres (or a temp dir when the postgres user cannot reach the data dir), started on
 * a free port on 127.0.0.1 and a unix socket in its own directory. PostgreSQL refuses to run as root,
 * so as root the cluster belongs to the `postgres` user. Logins: peer on the socket for the cluster's
 * owner (the harness), SCRAM for everyone else; the gateway's account has a random password kept in
 * the cluster directory.
 */
export async function startDemoPostgres(dataDir: string, log: Logger): Promise<DemoPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new DemoPostgresError('no PostgreSQL server is installed (Debian: apt-get install postgresql)');
  const asRoot = process.geteuid?.() === 0;
  const ids = asRoot
    ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()), name: 'postgres' }
    : { uid: process.getuid!(), gid: process.getgid!(), name: userInfo().username };

  let clusterDir = join(dataDir, 'demo-postgres');
  let temporary = false;
  mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
  chownSync(clusterDir, ids.uid, ids.gid);
  if (asRoot && spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-w', clusterDir]).status !== 0) {
    // A data directory under a private (0700) parent is out of the postgres user's reach.
    rmSync(clusterDir, { recursive: true, force: true });
    clusterDir = mkdtempSync(join(tmpdir(), 'gapwatch-demo-pg-'));
    chmodSync(clusterDir, 0o700);
    chownSync(clusterDir, ids.uid, ids.gid);
    temporary = true;
  }
  const pgdata = join(clusterDir, 'data');
  const passwordFile = join(clusterDir, 'gateway-password');
  const user = 'gapwatch_demo';
  const database = 'demo';
  const fresh = !existsSync(join(pgdata, 'PG_VERSION'));
  const run = { uid: ids.uid, gid: ids.gid };
  if (fresh) {
    try {
      await execFileAsync(join(bin, 'initdb'), ['-D', pgdata, '-U', ids.name, '--auth-local=peer', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'], run);
    } catch (err) {
      throw new DemoPostgresError(`initdb failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, err);
    }
  }
  const port = await freePort();
  writeFileSync(
    join(pgdata, 'postgresql.auto.conf'),
    `listen_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${clusterDir}'\npassword_encryption = 'scram-sha-256'\nmax_connections = 30\nshared_buffers = '32MB'\n`,
  );
  chownSync(join(pgdata, 'postgresql.auto.conf'), ids.uid, ids.gid);
  const child: ChildProcess = spawn(join(bin, 'postgres'), ['-D', pgdata], { ...run, stdio: ['ignore', 'ignore', 'pipe'] });
  let serverLog = '';
  child.stderr?.on('data', (chunk: Buffer) => (serverLog = (serverLog + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT'); // fast shutdown
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    if (temporary) rmSync(clusterDir, { recursive: true, force: true });
  };
  const psql = (sql: string, db = 'postgres'): Promise<{ stdout: string }> =>
    execFileAsync(join(bin, 'psql'), ['-h', clusterDir, '-p', String(port), '-U', ids.name, '-d', db, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], run);
  try {
    for (let attempt = 0; ; attempt++) {
      if (child.exitCode !== null) throw new DemoPostgresError(`postgres exited during startup:\n${serverLog}`);
      if (spawnSync(join(bin, 'pg_isready'), ['-h', clusterDir, '-p', String(port), '-q']).status === 0) break;
      if (attempt > 400) throw new DemoPostgresError(`postgres did not become ready:\n${serverLog}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // A new password on every start: it only ever lives in this file and the gateway's memory.
    const password = randomBytes(18).toString('base64url');
    if (fresh) {
      await psql(`CREATE ROLE ${user} LOGIN PASSWORD '${password}'`);
      await psql(`CREATE DATABASE ${database} OWNER ${user}`);
      await psql(
        `SET ROLE ${user}; CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric(10,2) NOT NULL); ` +
          `INSERT INTO orders (customer, total) VALUES ('ada', 42.00), ('grace', 17.50), ('linus', 99.90)`,
        database,
      );
    } else {
      await psql(`ALTER ROLE ${user} PASSWORD '${password}'`);
    }
    writeFileAtomic(passwordFile, `${password}\n`, 0o600);
    log.debug({ clusterDir, port }, 'demo postgres ready');
    return { host: '127.0.0.1', port, socketDir: clusterDir, database, user, password: readFileSync(passwordFile, 'utf8').trim(), clusterDir, stop };
  } catch (err) {
    await stop();
    if (err instanceof DemoPostgresError) throw err;
    throw new DemoPostgresError((err as { stderr?: string }).stderr ?? (err as Error).message, err);
  }
}

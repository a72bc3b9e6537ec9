import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { Client } from 'pg';
import { PG_BIN } from '../../support/postgres';

/** Real PostgreSQL clients (psql, pgbench, node pg) aimed at the gateway or at the server directly. */

export interface Target {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function clientEnv(target: Target, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PGHOST: target.host,
    PGPORT: String(target.port),
    PGUSER: target.user,
    PGPASSWORD: target.password,
    PGDATABASE: target.database,
    PGSSLMODE: 'disable',
    PGCONNECT_TIMEOUT: '10',
    ...extra,
  };
}

export function spawnClient(program: string, args: string[], target: Target, extra: Record<string, string> = {}, input?: string): { child: ChildProcess; done: Promise<RunResult> } {
  const child = spawn(program.includes('/') ? program : `${PG_BIN}/${program}`, args, { env: clientEnv(target, extra), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  if (input !== undefined) child.stdin!.end(input);
  else child.stdin!.end();
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done };
}

export function psql(target: Target, args: string[], extra: Record<string, string> = {}, input?: string): Promise<RunResult> {
  return spawnClient('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', ...args], target, extra, input).done;
}

export function pgbench(target: Target, args: string[]): Promise<RunResult> {
  return spawnClient('pgbench', args, target).done;
}

export async function nodeClient(target: Target): Promise<Client> {
  const client = new Client({ host: target.host, port: target.port, user: target.user, password: target.password, database: target.database });
  await client.connect();
  return client;
}

/** A raw TCP connection, for sending what no well-behaved client sends. */
export function rawConnection(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Everything the server sends until it closes the connection. */
export function readUntilClose(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

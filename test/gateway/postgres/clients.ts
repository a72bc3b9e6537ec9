import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { Client } from 'pg';
import { serialize } from 'pg-protocol';
import type { BackendMessage } from 'pg-protocol/dist/messages';
import { Parser } from 'pg-protocol/dist/parser';
import { ScramClient } from '../../../gateway/postgres/scram';
import { PG_BIN } from '../../support/postgres';

/** Real PostgreSQL clients (psql, pgbench, node pg) aimed at the gateway or at the server directly. */

export interface Target {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** The startup packet's `options` (command-line options for the server: `-c search_path=…`). */
  options?: string;
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
  const client = new Client({ host: target.host, port: target.port, user: target.user, password: target.password, database: target.database, ...(target.options ? { options: target.options } : {}) });
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

export interface PausedLogin {
  socket: Socket;
  localPort: number;
  /** Sends the SCRAM proof that completes the login (after the server's challenge). */
  finish(): void;
  /** Messages received and not taken yet, up to and including the first that `done` accepts (waits for it). */
  until(done: (m: BackendMessage) => boolean): Promise<BackendMessage[]>;
  /** Every message received and not taken yet (without waiting). */
  rest(): BackendMessage[];
  /** Every message received, once the connection has closed. */
  closed: Promise<BackendMessage[]>;
}

/**
 * A connection whose login stops before its last step: startup and the SCRAM exchange up to the
 * server's challenge (the gateway's own SCRAM client); the proof goes when the caller says so.
 */
export async function pausedLogin(target: Target): Promise<PausedLogin> {
  const socket = await rawConnection(target.port);
  socket.on('error', () => undefined);
  // Each write goes out at once, as libpq's do (TCP_NODELAY): a second write is not held back until
  // the gateway has answered the first.
  socket.setNoDelay(true);
  const parser = new Parser();
  const all: BackendMessage[] = [];
  let pending: BackendMessage[] = [];
  let waiter: (() => void) | null = null;
  socket.on('data', (chunk: Buffer) =>
    parser.parse(chunk, (m) => {
      all.push(m);
      pending.push(m);
      waiter?.();
    }),
  );
  const closed = new Promise<BackendMessage[]>((resolve) => socket.on('close', () => resolve(all)));
  const until = async (done: (m: BackendMessage) => boolean): Promise<BackendMessage[]> => {
    for (;;) {
      const at = pending.findIndex(done);
      if (at >= 0) {
        const out = pending.slice(0, at + 1);
        pending = pending.slice(at + 1);
        return out;
      }
      await new Promise<void>((resolve) => (waiter = resolve));
    }
  };
  const scram = new ScramClient(target.password);
  socket.write(serialize.startup({ user: target.user, database: target.database }));
  await until((m) => m.name === 'authenticationSASL');
  socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.firstMessage()));
  const [cont] = await until((m) => m.name === 'authenticationSASLContinue');
  return {
    socket,
    localPort: socket.localPort!,
    finish: () => socket.write(serialize.sendSCRAMClientFinalMessage(scram.finalMessage((cont as unknown as { data: string }).data))),
    until,
    rest: () => {
      const out = pending;
      pending = [];
      return out;
    },
    closed,
  };
}

/**
 * A logged-in connection that speaks the protocol message by message (pg-protocol's serializer and
 * parser, the gateway's SCRAM client), for pipelines that client libraries do not send.
 */
export async function rawSession(target: Target): Promise<{
  localPort: number;
  exchange(messages: Buffer[]): Promise<BackendMessage[]>;
  /** Sends the messages in one write; what arrives is kept for the next exchange. */
  send(messages: Buffer[]): void;
  /** Sends the messages in one write and returns what arrives up to the first message `done` accepts. */
  exchangeUntil(messages: Buffer[], done: (m: BackendMessage) => boolean): Promise<BackendMessage[]>;
  /** Sends the messages in one write and returns everything received until the connection closes. */
  sendUntilClose(messages: Buffer[]): Promise<BackendMessage[]>;
  close(): void;
}> {
  const login = await pausedLogin(target);
  const { socket, until } = login;
  login.finish();
  await until((m) => m.name === 'readyForQuery');
  return {
    exchange: async (messages) => {
      socket.write(Buffer.concat(messages));
      return until((m) => m.name === 'readyForQuery');
    },
    send: (messages) => {
      socket.write(Buffer.concat(messages));
    },
    exchangeUntil: async (messages, done) => {
      socket.write(Buffer.concat(messages));
      return until(done);
    },
    localPort: login.localPort,
    sendUntilClose: async (messages) => {
      socket.write(Buffer.concat(messages));
      await login.closed;
      return login.rest();
    },
    close: () => socket.end(serialize.end()),
  };
}

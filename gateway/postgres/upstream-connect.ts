import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { serialize } from 'pg-protocol';
import type { BackendMessage, DatabaseError } from 'pg-protocol/dist/messages';
import { Parser } from 'pg-protocol/dist/parser';
import type { PostgresResourceConfig } from '../../platform/config';
import { readCredential } from '../credentials/credential-source';
import { PostgresGatewayError, UpstreamConnectError } from './errors';
import { SCRAM_SHA_256 } from './protocol';
import { ScramClient } from './scram';

/**
 * Logs the gateway into a resource's upstream server with the resource's own account (credential
 * injection): optional TLS, then SCRAM-SHA-256, md5 or cleartext, whichever the server asks for.
 * The upstream side speaks through pg-protocol's serializer and parser.
 */

export type Upstream = PostgresResourceConfig['upstream'];

export interface UpstreamEndpoint {
  /** A unix socket path, or host and port. */
  path?: string;
  host?: string;
  port?: number;
}

export interface UpstreamSession {
  socket: Socket;
  /** The upstream server's key for CancelRequest; never shown to the agent. */
  processId: number;
  secretKey: number;
  /** ParameterStatus values reported at login (server_version, client_encoding, …), in order. */
  parameters: Array<[string, string]>;
  /** The gateway's own address and port towards the upstream (empty for unix sockets). */
  localAddress: string;
  localPort: number;
  endpoint: UpstreamEndpoint;
  /**
   * The schemas unqualified names resolve to once logged in, as the server reports them
   * (`current_schemas(false)`: the role's default or the agent's startup options, "$user" expanded,
   * schemas that do not exist left out); 'unknown' when it did not say. The policy engine starts the
   * session's search_path from it.
   */
  searchPath: readonly string[] | 'unknown';
  /**
   * The role statements run as once logged in (`current_user`): the resource's user unless a setting
   * (the agent's startup options `-c role=…`, an ALTER ROLE … SET role) changed it; '' when unknown.
   */
  currentUser: string;
}

/** Asked once logged in, before the agent's first message; the answer is not shown to the agent. */
export const SESSION_PROBE = 'SELECT pg_catalog.current_schemas(false), current_user';

const CONNECT_TIMEOUT_MS = 10_000;

export function upstreamEndpoint(upstream: Upstream): UpstreamEndpoint {
  if (upstream.socket !== null) {
    // As in libpq, a directory names the socket file inside it for the configured port.
    const path = upstream.socket.includes('.s.PGSQL.') ? upstream.socket : join(upstream.socket, `.s.PGSQL.${upstream.port}`);
    return { path };
  }
  return { host: upstream.host, port: upstream.port };
}

/** Opens a plain connection to the upstream and, when the resource says so, upgrades it to TLS. */
export async function openUpstreamSocket(resource: string, upstream: Upstream): Promise<Socket> {
  const endpoint = upstreamEndpoint(upstream);
  const plain = await new Promise<Socket>((resolve, reject) => {
    const socket = endpoint.path ? netConnect({ path: endpoint.path }) : netConnect({ host: endpoint.host!, port: endpoint.port! });
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new UpstreamConnectError(resource, `connect to ${describeEndpoint(endpoint)} failed (${err.message})`, err));
    });
  });
  plain.setNoDelay(true);
  if (upstream.tls === 'disable') return plain;

  plain.write(serialize.requestSsl());
  const answer = await new Promise<number>((resolve, reject) => {
    plain.once('data', (chunk: Buffer) => {
      plain.removeAllListeners('error');
      resolve(chunk[0]!);
    });
    plain.once('error', (err) => reject(new UpstreamConnectError(resource, `TLS negotiation failed (${err.message})`, err)));
  });
  if (answer !== 0x53 /* 'S' */) {
    plain.destroy();
    throw new UpstreamConnectError(resource, `the server refused TLS but the resource requires it (tls: ${upstream.tls})`);
  }
  return new Promise<Socket>((resolve, reject) => {
    const secure = tlsConnect({
      socket: plain,
      // SNI carries host names only (RFC 6066); an IP address is checked against the certificate's SANs.
      servername: endpoint.host && isIP(endpoint.host) === 0 ? endpoint.host : undefined,
      rejectUnauthorized: upstream.tls === 'verify-full',
      ca: upstream.ca ? readFileSync(upstream.ca) : undefined,
    });
    secure.once('secureConnect', () => {
      secure.removeAllListeners('error');
      secure.setNoDelay(true);
      resolve(secure);
    });
    secure.once('error', (err) => {
      plain.destroy();
      reject(new UpstreamConnectError(resource, `TLS handshake failed (${err.message})`, err));
    });
  });
}

export function describeEndpoint(endpoint: UpstreamEndpoint): string {
  return endpoint.path ?? `${endpoint.host}:${endpoint.port}`;
}

/**
 * Connects and logs in. `clientParameters` are the agent's startup parameters other than user and
 * database (application_name, client_encoding, options …), passed on so the session behaves as the
 * agent asked.
 */
export async function connectUpstream(
  resource: PostgresResourceConfig,
  clientParameters: ReadonlyMap<string, string>,
): Promise<UpstreamSession> {
  const upstream = resource.upstream;
  const socket = await openUpstreamSocket(resource.name, upstream);
  try {
    return await login(resource.name, upstream, socket, clientParameters);
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

function login(
  name: string,
  upstream: Upstream,
  socket: Socket,
  clientParameters: ReadonlyMap<string, string>,
): Promise<UpstreamSession> {
  const startup: Record<string, string> = {};
  for (const [key, value] of clientParameters) startup[key] = value;
  startup.user = upstream.user;
  startup.database = upstream.database;

  return new Promise<UpstreamSession>((resolve, reject) => {
    const parser = new Parser();
    const parameters: Array<[string, string]> = [];
    let key: { processId: number; secretKey: number } | null = null;
    let scram: ScramClient | null = null;
    let settled = false;
    // Logged in: the search_path probe runs, its answer and its ReadyForQuery end the login.
    let probing = false;
    let searchPath: readonly string[] | 'unknown' = 'unknown';
    let currentUser = '';
    const timer = setTimeout(() => fail(`no login answer within ${CONNECT_TIMEOUT_MS / 1000} s`), CONNECT_TIMEOUT_MS);

    const finish = (): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
    };
    function fail(detail: string, cause?: unknown): void {
      if (settled) return;
      settled = true;
      finish();
      reject(cause instanceof PostgresGatewayError ? cause : new UpstreamConnectError(name, detail, cause));
    }
    const password = (): string => {
      const value = readCredential(name, upstream.password);
      if (value === null) throw new UpstreamConnectError(name, 'the server asks for a password and the resource has none configured');
      return value;
    };

    const onMessage = (msg: BackendMessage): void => {
      switch (msg.name) {
        case 'authenticationCleartextPassword':
          socket.write(serialize.password(password()));
          return;
        case 'authenticationMD5Password': {
          // md5(md5(password || user) || salt), hex, prefixed "md5".
          const salt = (msg as unknown as { salt: Buffer }).salt;
          const inner = createHash('md5').update(password() + upstream.user).digest('hex');
          const outer = createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
          socket.write(serialize.password(`md5${outer}`));
          return;
        }
        case 'authenticationSASL': {
          const mechanisms = (msg as unknown as { mechanisms: string[] }).mechanisms;
          if (!mechanisms.includes(SCRAM_SHA_256)) {
            fail(`the server offers only SASL ${mechanisms.join(', ')}; the gateway speaks ${SCRAM_SHA_256}`);
            return;
          }
          scram = new ScramClient(password());
          socket.write(serialize.sendSASLInitialResponseMessage(SCRAM_SHA_256, scram.firstMessage()));
          return;
        }
        case 'authenticationSASLContinue':
          if (!scram) throw new Error('SASLContinue before SASL');
          socket.write(serialize.sendSCRAMClientFinalMessage(scram.finalMessage((msg as unknown as { data: string }).data)));
          return;
        case 'authenticationSASLFinal':
          if (!scram) throw new Error('SASLFinal before SASL');
          scram.verifyServerFinal((msg as unknown as { data: string }).data);
          return;
        case 'authenticationOk':
          return;
        case 'parameterStatus': {
          const p = msg as unknown as { parameterName: string; parameterValue: string };
          parameters.push([p.parameterName, p.parameterValue]);
          return;
        }
        case 'backendKeyData': {
          const k = msg as unknown as { processID: number; secretKey: number };
          key = { processId: k.processID, secretKey: k.secretKey };
          return;
        }
        case 'notice':
          return;
        case 'rowDescription':
        case 'commandComplete':
          if (!probing) fail(`unexpected ${msg.name} message during login`);
          return;
        case 'dataRow': {
          if (!probing) return fail('unexpected dataRow message during login');
          const [schemas, user] = (msg as unknown as { fields: Array<string | null> }).fields;
          searchPath = schemas == null ? 'unknown' : (parseTextArray(schemas) ?? 'unknown');
          currentUser = user ?? '';
          return;
        }
        case 'error': {
          const e = msg as DatabaseError;
          // The probe failing leaves the search_path unknown (rules read unqualified names cautiously).
          if (probing) return;
          fail(`the server refused the login: ${e.code ?? ''} ${e.message}`.trim());
          return;
        }
        case 'readyForQuery': {
          if (settled) return;
          if (!probing) {
            probing = true;
            socket.write(serialize.query(SESSION_PROBE));
            return;
          }
          settled = true;
          finish();
          resolve({
            socket,
            processId: key?.processId ?? 0,
            secretKey: key?.secretKey ?? 0,
            parameters,
            localAddress: socket.localAddress ?? '',
            localPort: socket.localPort ?? 0,
            endpoint: upstreamEndpoint(upstream),
            searchPath,
            currentUser,
          });
          return;
        }
        default:
          fail(`unexpected ${msg.name} message during login`);
      }
    };
    function onData(chunk: Buffer): void {
      try {
        parser.parse(chunk, onMessage);
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err), err);
      }
    }
    function onError(err: Error): void {
      fail(`connection error during login (${err.message})`, err);
    }
    function onClose(): void {
      fail('the server closed the connection during login');
    }
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    try {
      socket.write(serialize.startup(startup));
    } catch (err) {
      fail(err instanceof Error ? err.message : String(err), err);
    }
  });
}

/**
 * A one-dimensional PostgreSQL array in text form ('{public,"my schema"}') as its elements; null when
 * it is not one (or holds a NULL).
 */
export function parseTextArray(text: string): string[] | null {
  if (!text.startsWith('{') || !text.endsWith('}')) return null;
  const items: string[] = [];
  const body = text.slice(1, -1);
  if (body === '') return items;
  let i = 0;
  for (;;) {
    let item = '';
    if (body[i] === '"') {
      i++;
      while (i < body.length && body[i] !== '"') {
        if (body[i] === '\\') i++;
        item += body[i] ?? '';
        i++;
      }
      if (body[i] !== '"') return null;
      i++;
    } else {
      const end = body.indexOf(',', i);
      item = body.slice(i, end < 0 ? body.length : end);
      if (item === 'NULL' || item.includes('"') || item.includes('{')) return null;
      i = end < 0 ? body.length : end;
    }
    items.push(item);
    if (i >= body.length) return items;
    if (body[i] !== ',') return null;
    i++;
  }
}

/** Sends a CancelRequest for the upstream backend; PostgreSQL answers by closing the connection. */
export async function cancelUpstream(resource: string, upstream: Upstream, processId: number, secretKey: number): Promise<void> {
  const socket = await openUpstreamSocket(resource, upstream);
  await new Promise<void>((resolve) => {
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.end(serialize.cancel(processId, secretKey));
  });
}

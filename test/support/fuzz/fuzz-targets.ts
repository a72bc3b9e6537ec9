import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { serialize } from 'pg-protocol';
import { Client as PgClient } from 'pg';
import { Client as SshClient } from 'ssh2';
import { readFileSync } from 'node:fs';
import { ScramClient } from '../../../gateway/postgres/scram';
import { startHttpGateway, type HttpGatewayUnderTest } from '../http-gateway';
import { startHttpUpstream, type HttpUpstream } from '../http-upstream';
import { startGateway, type GatewayUnderTest } from '../pg-gateway';
import { startSshGateway } from '../ssh-gateway';
import type { Random } from './mutator';

export type FuzzTargetName = 'postgres' | 'ssh' | 'http';

/**
 * A gateway listener under fuzz, started for real (real journal and identity store, in front of a real
 * PostgreSQL, OpenSSH or HTTP server). Inputs go in lanes: each lane has its own seeds and is delivered
 * its own way (raw bytes on a fresh connection, or bytes after a real login, or fields of a real client).
 */
export interface FuzzTarget {
  name: FuzzTargetName;
  /** Where this target's code lives, for coverage feedback (a substring of script URLs). */
  sourceDir: string;
  lanes: readonly FuzzLane[];
  /** A well-behaved client does its whole job through the gateway; throws when it cannot. */
  goodClient(): Promise<void>;
  stop(): Promise<void>;
}

export interface FuzzLane {
  name: string;
  seeds: readonly Buffer[];
  dictionary: readonly Buffer[];
  maxBytes: number;
  /** Delivers one input; resolves with how the gateway ended it. */
  deliver(input: Buffer, rng: Random, hangMs: number): Promise<DeliveryOutcome>;
}

/**
 * `closed`: the gateway ended the connection; `hang`: it neither answered to the end nor closed within
 * hangMs; `setup-failed`: the well-formed part before the input (a real login) did not succeed, so the
 * input never reached the code under test.
 */
export type DeliveryOutcome = 'closed' | 'hang' | 'setup-failed';

/**
 * Writes `input` on a fresh connection (in 1-3 pieces, so parsers see messages split), half-closes,
 * and waits for the gateway to close. Every gateway must end a connection whose client has finished
 * sending, whatever it sent: a connection still open hangMs later is a hang.
 */
export function deliverRaw(port: number, input: Buffer, rng: Random, hangMs: number, prefix: (socket: Socket) => Promise<void> = async () => undefined): Promise<DeliveryOutcome> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let settled = false;
    const timer = setTimeout(() => finish('hang'), hangMs);
    function finish(outcome: DeliveryOutcome): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    }
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.on('close', () => finish('closed'));
    socket.once('connect', () => {
      void prefix(socket)
        .then(() => {
          const cuts = [0, ...Array.from({ length: rng.int(3) }, () => rng.int(input.length + 1)).sort((a, b) => a - b), input.length];
          for (let i = 1; i < cuts.length; i++) if (cuts[i]! > cuts[i - 1]!) socket.write(input.subarray(cuts[i - 1]!, cuts[i]!));
          socket.end();
        })
        .catch(() => finish('setup-failed'));
    });
  });
}

function words(...tokens: string[]): Buffer[] {
  return tokens.map((token) => Buffer.from(token, 'latin1'));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL (https://www.postgresql.org/docs/15/protocol-message-formats.html)

function pgMessage(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

function cstrings(...values: string[]): Buffer {
  return Buffer.concat(values.map((value) => Buffer.from(`${value}\0`, 'utf8')));
}

/** A logged-in socket: startup and the SCRAM-SHA-256 exchange done with the gateway's own SCRAM client. */
async function pgLogin(socket: Socket, gw: GatewayUnderTest): Promise<void> {
  let buffered = Buffer.alloc(0);
  const waitFor = (type: string): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        for (let at = 0; at + 5 <= buffered.length; ) {
          const length = buffered.readInt32BE(at + 1);
          if (at + 1 + length > buffered.length) break;
          const messageType = String.fromCharCode(buffered[at]!);
          const body = buffered.subarray(at + 5, at + 1 + length);
          if (messageType === 'E') return fail(new Error(`login refused: ${body.toString('latin1')}`));
          if (messageType === type) {
            buffered = buffered.subarray(at + 1 + length);
            return done(body);
          }
          at += 1 + length;
        }
      };
      const onData = (chunk: Buffer): void => {
        buffered = Buffer.concat([buffered, chunk]);
        check();
      };
      const onClose = (): void => fail(new Error('closed during login'));
      function done(body: Buffer): void {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve(body);
      }
      function fail(err: Error): void {
        socket.off('data', onData);
        socket.off('close', onClose);
        reject(err);
      }
      socket.on('data', onData);
      socket.on('close', onClose);
      check();
    });
  const scram = new ScramClient(gw.token);
  socket.write(serialize.startup({ user: gw.login, database: gw.resource }));
  await waitFor('R');
  socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.firstMessage()));
  const cont = await waitFor('R');
  socket.write(serialize.sendSCRAMClientFinalMessage(scram.finalMessage(cont.subarray(4).toString('utf8'))));
  await waitFor('Z');
}

export async function postgresTarget(): Promise<FuzzTarget> {
  const gw = await startGateway({ logLevel: 'fatal' });
  const startup = (params: Record<string, string>): Buffer => {
    const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), cstrings(...Object.entries(params).flat(), '')]);
    const length = Buffer.alloc(4);
    length.writeInt32BE(body.length + 4);
    return Buffer.concat([length, body]);
  };
  const special = (code: number, extra: Buffer = Buffer.alloc(0)): Buffer => {
    const out = Buffer.alloc(8 + extra.length);
    out.writeInt32BE(8 + extra.length, 0);
    out.writeInt32BE(code, 4);
    extra.copy(out, 8);
    return out;
  };
  const saslInitial = (mechanism: string, data: string): Buffer => {
    const payload = Buffer.from(data, 'utf8');
    const length = Buffer.alloc(4);
    length.writeInt32BE(payload.length);
    return pgMessage('p', Buffer.concat([cstrings(mechanism), length, payload]));
  };
  const login = startup({ user: gw.login, database: gw.resource, application_name: 'fuzz' });
  const preAuth: FuzzLane = {
    name: 'startup',
    seeds: [
      login,
      Buffer.concat([special(80877103), login]), // SSLRequest, then startup in the clear after 'N'
      Buffer.concat([special(80877104), login]), // GSSENCRequest
      special(80877102, randomBytesFixed(8)), // CancelRequest (pid, key)
      Buffer.concat([login, saslInitial('SCRAM-SHA-256', 'n,,n=,r=fuzzfuzzfuzzfuzz')]),
      Buffer.concat([login, saslInitial('SCRAM-SHA-256', 'n,,n=,r=abc'), pgMessage('p', Buffer.from('c=biws,r=abcdef,p=AAAA'))]),
      Buffer.concat([login, pgMessage('p', cstrings('not-a-token'))]),
      startup({ user: 'nobody', database: 'nowhere', replication: 'database', options: '-c search_path=x' }),
    ],
    dictionary: words('user\0', 'database\0', 'SCRAM-SHA-256\0', 'SCRAM-SHA-256-PLUS\0', 'n,,', 'y,,', 'p=tls-server-end-point,', 'r=', 'c=', 'p=', ',', '=2C', '\0\0\0\0', '\xff\xff\xff\xff'),
    maxBytes: 64 * 1024,
    deliver: (input, rng, hangMs) => deliverRaw(gw.port, input, rng, hangMs),
  };
  const parse = pgMessage('P', Buffer.concat([cstrings('s1', 'select $1::int + 1'), Buffer.from([0, 1, 0, 0, 0, 23])]));
  const bind = pgMessage('B', Buffer.concat([cstrings('', 's1'), Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x34, 0, 1, 0, 0])]));
  const describe = pgMessage('D', Buffer.from('P\0', 'latin1'));
  const execute = pgMessage('E', Buffer.from([0, 0, 0, 0, 0]));
  const sync = pgMessage('S', Buffer.alloc(0));
  const query = (sql: string): Buffer => pgMessage('Q', cstrings(sql));
  const session: FuzzLane = {
    name: 'session',
    seeds: [
      query('select 1'),
      query('select 1; select 2'),
      Buffer.concat([parse, bind, describe, execute, sync]),
      Buffer.concat([parse, sync, bind, execute, pgMessage('C', Buffer.from('Ss1\0', 'latin1')), sync]),
      Buffer.concat([query('copy (select 1) to stdout')]),
      Buffer.concat([query('create temp table t(a int)'), query('copy t from stdin'), pgMessage('d', Buffer.from('1\n2\n')), pgMessage('c', Buffer.alloc(0))]),
      Buffer.concat([query('copy t from stdin'), pgMessage('f', cstrings('stop'))]),
      pgMessage('F', Buffer.from([0, 0, 0x04, 0x00, 0, 0, 0, 0, 0, 0])), // FunctionCall
      pgMessage('H', Buffer.alloc(0)),
      pgMessage('X', Buffer.alloc(0)),
    ],
    dictionary: words('P', 'B', 'D', 'E', 'S', 'Q', 'C', 'H', 'F', 'd', 'c', 'f', 'X', 'select ', ' from ', ';', '$1', '\0', 'drop table x', 'copy ', ' to stdout', ' from stdin', "'", '"', '/*', '*/', '--'),
    maxBytes: 64 * 1024,
    deliver: (input, rng, hangMs) => deliverRaw(gw.port, input, rng, hangMs, (socket) => pgLogin(socket, gw)),
  };
  return {
    name: 'postgres',
    sourceDir: '/gateway/postgres/',
    lanes: [preAuth, session],
    async goodClient() {
      const client = new PgClient(gw.agent);
      await client.connect();
      try {
        const result = await client.query('select $1::int + 1 as n', [41]);
        if (result.rows[0]?.n !== 42) throw new Error(`the good client got ${JSON.stringify(result.rows)}`);
      } finally {
        await client.end();
      }
    },
    stop: () => gw.stop(),
  };
}

/** Deterministic filler for seeds, so the corpus is the same on every run. */
function randomBytesFixed(n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + 11) & 0xff));
}

// ---------------------------------------------------------------------------------------------
// SSH (RFC 4253 §4.2 version exchange, §6 binary packets, §7.1 KEXINIT; RFC 5656 ECDH; RFC 4252 auth)

function sshString(value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** An unencrypted binary packet: uint32 packet_length, byte padding_length, payload, padding (4..255, to a multiple of 8). */
function sshPacket(payload: Buffer): Buffer {
  let padding = 8 - ((5 + payload.length) % 8);
  if (padding < 4) padding += 8;
  const header = Buffer.alloc(5);
  header.writeUInt32BE(1 + payload.length + padding, 0);
  header[4] = padding;
  return Buffer.concat([header, payload, Buffer.alloc(padding)]);
}

const enum SshMessage {
  KexInit = 20, // SSH_MSG_KEXINIT
  KexEcdhInit = 30, // SSH_MSG_KEX_ECDH_INIT
  ServiceRequest = 5, // SSH_MSG_SERVICE_REQUEST
  Ignore = 2, // SSH_MSG_IGNORE
  Disconnect = 1, // SSH_MSG_DISCONNECT
}

function kexInit(kex: string, hostKey: string, cipher: string, mac: string): Buffer {
  return sshPacket(
    Buffer.concat([
      Buffer.from([SshMessage.KexInit]),
      randomBytesFixed(16), // cookie
      sshString(kex),
      sshString(hostKey),
      sshString(cipher),
      sshString(cipher),
      sshString(mac),
      sshString(mac),
      sshString('none'),
      sshString('none'),
      sshString(''),
      sshString(''),
      Buffer.from([0, 0, 0, 0, 0]), // first_kex_packet_follows, reserved
    ]),
  );
}

export async function sshTarget(): Promise<FuzzTarget> {
  const gw = await startSshGateway({ logLevel: 'fatal' });
  const version = Buffer.from('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n', 'latin1');
  const kex = kexInit('curve25519-sha256,ecdh-sha2-nistp256,diffie-hellman-group14-sha256,ext-info-c', 'ssh-ed25519,rsa-sha2-256,ecdsa-sha2-nistp256', 'aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-ctr', 'hmac-sha2-256,hmac-sha2-256-etm@openssh.com');
  const ecdhInit = sshPacket(Buffer.concat([Buffer.from([SshMessage.KexEcdhInit]), sshString(randomBytesFixed(32))]));
  const raw: FuzzLane = {
    name: 'handshake',
    seeds: [
      version,
      Buffer.concat([version, kex]),
      Buffer.concat([version, kex, ecdhInit]),
      Buffer.concat([Buffer.from('banner line before the version\r\n'), version, kex]),
      Buffer.concat([version, sshPacket(Buffer.from([SshMessage.Ignore, 0, 0, 0, 3, 1, 2, 3])), kex]),
      Buffer.concat([version, sshPacket(Buffer.concat([Buffer.from([SshMessage.ServiceRequest]), sshString('ssh-userauth')]))]),
      Buffer.concat([version, sshPacket(Buffer.concat([Buffer.from([SshMessage.Disconnect, 0, 0, 0, 11]), sshString('bye'), sshString('')]))]),
      Buffer.concat([version, kexInit('diffie-hellman-group-exchange-sha256', 'ssh-rsa', 'aes128-ctr', 'hmac-sha1'), sshPacket(Buffer.concat([Buffer.from([34]), Buffer.from([0, 0, 8, 0, 0, 0, 12, 0, 0, 0, 32, 0])]))]),
    ],
    dictionary: words('SSH-2.0-', 'SSH-1.99-', '\r\n', 'curve25519-sha256', 'ssh-ed25519', 'none', ',', 'ssh-userauth', 'ssh-connection', '\x14', '\x1e', '\x22', '\x05', '\xff\xff\xff\xff', '\x00\x00\x00\x00'),
    maxBytes: 64 * 1024,
    deliver: (input, rng, hangMs) => deliverRaw(gw.port, input, rng, hangMs),
  };
  const agentKey = readFileSync(gw.agentKeyFile);
  /** Auth packets are encrypted after KEX, so this lane drives a real client with mutated fields: the user name (login@resource) and the password (token). */
  const auth: FuzzLane = {
    name: 'auth',
    seeds: [Buffer.from(`${gw.login}@${gw.resource}\0${gw.token}`), Buffer.from(`${gw.login}@nowhere\0x`), Buffer.from(`@\0`), Buffer.from(`${gw.login}@${gw.resource}@extra\0${gw.token}`)],
    dictionary: words('@', '\0', gw.login, gw.resource, 'root', '%', '\n', ':'),
    maxBytes: 4096,
    deliver: (input, rng, hangMs) => {
      const split = input.indexOf(0);
      const username = (split < 0 ? input : input.subarray(0, split)).toString('utf8');
      const password = split < 0 ? '' : input.subarray(split + 1).toString('utf8');
      return new Promise((resolve) => {
        const client = new SshClient();
        let settled = false;
        const timer = setTimeout(() => finish('hang'), hangMs);
        function finish(outcome: DeliveryOutcome): void {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          client.end();
          client.destroy();
          resolve(outcome);
        }
        client.on('error', () => finish('closed'));
        client.on('close', () => finish('closed'));
        client.on('ready', () => {
          // Logged in with a mutated name: run nothing, just leave.
          client.end();
        });
        client.connect({
          host: '127.0.0.1',
          port: gw.port,
          username,
          ...(rng.chance(0.5) ? { password } : { privateKey: agentKey }),
          readyTimeout: hangMs,
          hostVerifier: () => true,
        });
      });
    },
  };
  return {
    name: 'ssh',
    sourceDir: '/gateway/ssh/',
    lanes: [raw, auth],
    async goodClient() {
      await new Promise<void>((resolve, reject) => {
        const client = new SshClient();
        client.on('error', reject);
        client.on('ready', () => {
          client.exec('echo served', (err, stream) => {
            if (err) return reject(err);
            let out = '';
            stream.on('data', (chunk: Buffer) => (out += chunk.toString()));
            stream.on('close', () => {
              client.end();
              if (out.trim() === 'served') resolve();
              else reject(new Error(`the good client got ${JSON.stringify(out)}`));
            });
          });
        });
        client.connect({ host: '127.0.0.1', port: gw.port, username: `${gw.login}@${gw.resource}`, privateKey: agentKey, hostVerifier: () => true, readyTimeout: 20_000 });
      });
    },
    stop: () => gw.stop(),
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 (RFC 9112)

export async function httpTarget(): Promise<FuzzTarget & { upstream: HttpUpstream; gateway: HttpGatewayUnderTest }> {
  const upstream = await startHttpUpstream({ record: false });
  const gw = await startHttpGateway({
    limits: { headersTimeoutMs: 2000, requestTimeoutMs: 4000, maxHeaderBytes: 8192, bufferBodyBytes: 65536 },
    resources: [{ name: 'api', pathPrefix: '/api/', upstream: { url: upstream.url }, credential: { header: 'Authorization', scheme: 'Bearer', source: { value: `upstream-${randomBytes(8).toString('hex')}` } } }],
  });
  const auth = `Authorization: Bearer ${gw.token}\r\n`;
  const basic = `Authorization: Basic ${Buffer.from(`${gw.login}:${gw.token}`).toString('base64')}\r\n`;
  const request = (lines: string): Buffer => Buffer.from(lines, 'latin1');
  const lane: FuzzLane = {
    name: 'request',
    seeds: [
      request(`GET /api/echo HTTP/1.1\r\nHost: gw\r\n${auth}\r\n`),
      request(`POST /api/echo HTTP/1.1\r\nHost: gw\r\n${auth}Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{"a":[1,2,3]}`),
      request(`POST /api/upload HTTP/1.1\r\nHost: gw\r\n${basic}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`),
      request(`GET /api/ws HTTP/1.1\r\nHost: gw\r\n${auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`),
      request(`GET /api/a HTTP/1.1\r\nHost: gw\r\n${auth}\r\nGET /api/b HTTP/1.1\r\nHost: gw\r\n${auth}\r\n`),
      request(`GET http://gw/api/abs?x=1 HTTP/1.1\r\nHost: gw\r\n${auth}\r\n`),
      request(`GET /api/old HTTP/1.0\r\n${auth}\r\n`),
      request(`CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n${auth}\r\n`),
      request(`GET /api/echo HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer wrong\r\n\r\n`),
      request(`DELETE /api/items/1 HTTP/1.1\r\nHost: gw\r\n${auth}Content-Length: 0\r\n\r\n`),
    ],
    dictionary: words('\r\n', ': ', 'Content-Length: ', 'Transfer-Encoding: chunked', 'Host: ', 'Authorization: Bearer ', 'Authorization: Basic ', 'Expect: 100-continue', 'Connection: close', 'Upgrade: websocket', ' HTTP/1.1', ' HTTP/1.0', 'GET ', 'POST ', '/api/', '/../', '%2e%2e/', '%00', '?', '#', '0\r\n\r\n', 'ffffffff\r\n'),
    maxBytes: 64 * 1024,
    deliver: (input, rng, hangMs) => deliverRaw(gw.port, input, rng, hangMs),
  };
  return {
    name: 'http',
    sourceDir: '/gateway/http/',
    lanes: [lane],
    upstream,
    gateway: gw,
    async goodClient() {
      const response = await fetch(`${gw.url}/api/echo/good`, { headers: { authorization: `Bearer ${gw.token}` } });
      const body = (await response.json()) as { url?: string };
      if (response.status !== 200 || body.url !== '/echo/good') throw new Error(`the good client got ${response.status} ${JSON.stringify(body)}`);
    },
    async stop() {
      await gw.stop();
      await upstream.stop();
    },
  };
}

export async function startFuzzTarget(name: FuzzTargetName): Promise<FuzzTarget> {
  if (name === 'postgres') return postgresTarget();
  if (name === 'ssh') return sshTarget();
  return httpTarget();
}

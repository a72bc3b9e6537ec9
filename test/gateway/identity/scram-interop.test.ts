import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createScramVerifier, ScramExchangeError, ScramServerExchange } from '../../../gateway/identity/scram';

/**
 * The SCRAM helpers against a real client: psql (libpq) logs in to a minimal server that speaks just
 * enough of the protocol (https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.3) to run
 * the SASL exchange. libpq checks the server signature itself, so psql sending its query proves both
 * directions: the gateway accepted libpq's proof and libpq accepted the gateway's signature.
 */
enum Auth {
  Ok = 0,
  Sasl = 10,
  SaslContinue = 11,
  SaslFinal = 12,
}

const PROTOCOL_3_0 = 196608;

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

function authentication(code: Auth, data: Buffer = Buffer.alloc(0)): Buffer {
  const body = Buffer.alloc(4);
  body.writeInt32BE(code);
  return message('R', Buffer.concat([body, data]));
}

function errorResponse(sqlstate: string, text: string): Buffer {
  return message('E', Buffer.from(`SFATAL\0C${sqlstate}\0M${text}\0\0`, 'utf8'));
}

interface Login {
  /** The query text psql sent after logging in, or null when it never got that far. */
  query: string | null;
  psqlExit: number | null;
  psqlStderr: string;
}

/** Reads whole messages from a socket: the startup packet has no type byte, the rest do. */
function reader(socket: Socket): (typed: boolean) => Promise<{ type: string; body: Buffer }> {
  let buffered = Buffer.alloc(0);
  let wake: (() => void) | null = null;
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    wake?.();
  });
  socket.on('close', () => wake?.());
  return async (typed) => {
    const headerLength = typed ? 5 : 4;
    for (;;) {
      if (buffered.length >= headerLength) {
        const length = buffered.readInt32BE(typed ? 1 : 0);
        const total = (typed ? 1 : 0) + length;
        if (buffered.length >= total) {
          const type = typed ? String.fromCharCode(buffered[0]!) : '';
          const body = buffered.subarray(headerLength, total);
          buffered = buffered.subarray(total);
          return { type, body };
        }
      }
      if (socket.destroyed) throw new Error('client closed');
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
}

async function serveOne(socket: Socket, token: string): Promise<string | null> {
  const read = reader(socket);
  const startup = await read(false);
  assert.equal(startup.body.readInt32BE(0), PROTOCOL_3_0);
  socket.write(authentication(Auth.Sasl, Buffer.from('SCRAM-SHA-256\0\0', 'utf8')));
  // SASLInitialResponse: mechanism name, then Int32 length and the client-first-message.
  const initial = await read(true);
  assert.equal(initial.type, 'p');
  const nul = initial.body.indexOf(0);
  assert.equal(initial.body.subarray(0, nul).toString(), 'SCRAM-SHA-256');
  const clientFirst = initial.body.subarray(nul + 5).toString('utf8');
  const exchange = new ScramServerExchange(createScramVerifier(token));
  socket.write(authentication(Auth.SaslContinue, Buffer.from(exchange.start(clientFirst), 'utf8')));
  const response = await read(true);
  let result;
  try {
    result = exchange.finish(response.body.toString('utf8'));
  } catch (err) {
    if (!(err instanceof ScramExchangeError)) throw err;
    result = { ok: false as const, reason: err.message };
  }
  if (!result.ok) {
    socket.end(errorResponse('28P01', result.reason));
    return null;
  }
  socket.write(authentication(Auth.SaslFinal, Buffer.from(result.serverFinalMessage, 'utf8')));
  socket.write(authentication(Auth.Ok));
  socket.write(message('Z', Buffer.from('I')));
  const query = await read(true);
  socket.end(errorResponse('0A000', 'this test server runs no queries'));
  return query.type === 'Q' ? query.body.subarray(0, query.body.length - 1).toString('utf8') : null;
}

async function psqlLogin(serverToken: string, clientToken: string): Promise<Login> {
  let served: Promise<string | null> = Promise.resolve(null);
  const server: Server = createServer((socket) => {
    served = serveOne(socket, serverToken).catch(() => null);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    const psql = spawn('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'claude-ci', '-d', 'orders', '-w', '-X', '-c', 'SELECT 1'], {
      env: { ...process.env, PGPASSWORD: clientToken, PGSSLMODE: 'disable', PGGSSENCMODE: 'disable', PGCONNECT_TIMEOUT: '10' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let psqlStderr = '';
    psql.stderr.on('data', (chunk: Buffer) => (psqlStderr += chunk.toString()));
    const psqlExit = await new Promise<number | null>((resolve, reject) => {
      psql.on('error', reject);
      psql.on('close', resolve);
    });
    return { query: await served, psqlExit, psqlStderr };
  } finally {
    server.close();
  }
}

describe('gateway/identity/scram with a real client (psql)', function () {
  this.timeout(30_000);

  it('psql logs in with the token and verifies the server signature', async () => {
    const login = await psqlLogin('gwt_interop-token-1', 'gwt_interop-token-1');
    assert.equal(login.query, 'SELECT 1', login.psqlStderr);
    assert.match(login.psqlStderr, /this test server runs no queries/);
  });

  it('a wrong token is refused with SQLSTATE 28P01 before any query', async () => {
    const login = await psqlLogin('gwt_interop-token-1', 'gwt_interop-token-2');
    assert.equal(login.query, null);
    assert.notEqual(login.psqlExit, 0);
    assert.match(login.psqlStderr, /password authentication failed/);
  });
});

import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { serialize } from 'pg-protocol';
import { Client as SshClient } from 'ssh2';
import { requireRoot } from '../support/host';
import { startGateway, type GatewayUnderTest } from '../support/pg-gateway';
import { startSshGateway, type SshGatewayUnderTest } from '../support/ssh-gateway';

/**
 * Every gateway listener refuses a client that presents no credentials, or credentials of the wrong
 * kind, before anything reaches the target. Tests of the same promise elsewhere:
 * - PostgreSQL wrong token: test/gateway/postgres/gateway.test.ts "refuses a wrong token …";
 * - SSH unregistered key, wrong token, unknown identity or resource: test/gateway/ssh/gateway.test.ts;
 * - HTTP none, wrong and revoked tokens: test/gateway/http/gateway.test.ts "authenticates every request …";
 * - gRPC Audit stream without TLS, without a client certificate, with another CA's certificate:
 *   test/gateway/audit/audit-server.test.ts "refuses subscribers without a client certificate of its CA";
 * - reviews, self-approval and reviewers not configured: test/gateway/policy/reviews.test.ts.
 */

/** Everything the gateway sends after `input`, until it closes the connection. */
function exchange(port: number, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: '127.0.0.1', port }, () => socket.write(input));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error('the gateway kept the unauthenticated connection open')), 20_000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Backend message types in order, with ErrorResponse fields (S, C, M …) decoded. */
function backendMessages(bytes: Buffer): Array<{ type: string; fields: Record<string, string> }> {
  const out: Array<{ type: string; fields: Record<string, string> }> = [];
  for (let at = 0; at + 5 <= bytes.length; ) {
    const type = String.fromCharCode(bytes[at]!);
    const length = bytes.readInt32BE(at + 1);
    const body = bytes.subarray(at + 5, at + 1 + length);
    const fields: Record<string, string> = {};
    if (type === 'E') {
      for (const part of body.toString('utf8').split('\0')) if (part.length > 1) fields[part[0]!] = part.slice(1);
    }
    out.push({ type, fields });
    at += 1 + length;
  }
  return out;
}

describe('every gateway listener refuses the unauthenticated', function () {
  this.timeout(120_000);

  describe('PostgreSQL', () => {
    let gw: GatewayUnderTest;
    before(async () => {
      requireRoot();
      gw = await startGateway();
    });
    after(async () => {
      await gw?.stop();
    });

    it('answers a query sent instead of credentials with an error and no result, and nothing reaches PostgreSQL', async () => {
      const before = await gw.pg.admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'no-creds'", gw.pg.database);
      const reply = backendMessages(
        await exchange(gw.port, Buffer.concat([serialize.startup({ user: gw.login, database: gw.resource, application_name: 'no-creds' }), serialize.query('SELECT 42'), serialize.end()])),
      );
      assert.equal(reply[0]!.type, 'R', 'the gateway asks for SASL first');
      assert.ok(!reply.some((m) => m.type === 'T' || m.type === 'D' || m.type === 'Z'), JSON.stringify(reply));
      const error = reply.find((m) => m.type === 'E');
      assert.ok(error, 'an ErrorResponse');
      assert.match(error.fields.C!, /^(08P01|28000|28P01)$/);
      assert.equal(await gw.pg.admin("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'no-creds'", gw.pg.database), before);
    });

    it('refuses the token sent as a cleartext password (only SCRAM-SHA-256 is accepted) and an unknown login', async () => {
      const cleartext = backendMessages(await exchange(gw.port, Buffer.concat([serialize.startup({ user: gw.login, database: gw.resource }), serialize.password(gw.token)])));
      assert.ok(cleartext.some((m) => m.type === 'E'), JSON.stringify(cleartext));
      assert.ok(!cleartext.some((m) => m.type === 'Z'));
      const wrongMechanism = backendMessages(
        await exchange(gw.port, Buffer.concat([serialize.startup({ user: gw.login, database: gw.resource }), serialize.sendSASLInitialResponseMessage('PLAIN', `\0${gw.login}\0${gw.token}`)])),
      );
      const refused = wrongMechanism.find((m) => m.type === 'E');
      assert.ok(refused, JSON.stringify(wrongMechanism));
      assert.match(refused.fields.M!, /SCRAM-SHA-256/);
      const stranger = backendMessages(await exchange(gw.port, Buffer.concat([serialize.startup({ user: 'nobody', database: gw.resource }), serialize.password('x')])));
      assert.ok(stranger.some((m) => m.type === 'E') && !stranger.some((m) => m.type === 'Z'));
    });
  });

  describe('SSH', () => {
    let gw: SshGatewayUnderTest;
    before(async () => {
      requireRoot();
      gw = await startSshGateway();
    });
    after(async () => {
      await gw?.stop();
    });

    /** The methods the gateway lists after an attempt, or 'ready' if it let the client in. */
    function attempt(auth: 'none' | 'keyboard-interactive'): Promise<string> {
      return new Promise((resolve, reject) => {
        const client = new SshClient();
        let methods = '';
        const timer = setTimeout(() => reject(new Error('no answer')), 20_000);
        client.on('ready', () => {
          clearTimeout(timer);
          client.end();
          resolve('ready');
        });
        client.on('error', (err) => {
          clearTimeout(timer);
          client.end();
          resolve(`refused: ${err.message} ${methods}`);
        });
        client.connect({
          host: '127.0.0.1',
          port: gw.port,
          username: `${gw.login}@${gw.resource}`,
          hostVerifier: () => true,
          tryKeyboard: auth === 'keyboard-interactive',
          // One attempt with the method under test; after it, no more methods (the client gives up).
          authHandler: (methodsLeft, _partial, next) => {
            if (methodsLeft !== null) {
              methods = methodsLeft.join(',');
              return false;
            }
            if (auth === 'none') return next({ type: 'none', username: `${gw.login}@${gw.resource}` });
            return next({ type: 'keyboard-interactive', username: `${gw.login}@${gw.resource}`, prompt: (_n, _i, _l, _p, finish) => finish([gw.token]) });
          },
        });
      });
    }

    it('refuses the "none" method and keyboard-interactive, offering only publickey and password (the token)', async () => {
      const none = await attempt('none');
      assert.match(none, /^refused: All configured authentication methods failed/);
      assert.match(none, / publickey,password$/);
      const keyboard = await attempt('keyboard-interactive');
      assert.match(keyboard, /^refused/);
      assert.doesNotMatch(keyboard, /ready/);
    });
  });
});

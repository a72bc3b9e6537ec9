import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ScramClient, ScramServer, keysFromSaltedPassword, saltedPassword } from '../../../gateway/postgres/scram';

function verifierFor(password: string): { iterations: number; salt: Buffer; storedKey: Buffer; serverKey: Buffer } {
  const salt = randomBytes(16);
  const { storedKey, serverKey } = keysFromSaltedPassword(saltedPassword(password, salt, 4096));
  return { iterations: 4096, salt, storedKey, serverKey };
}

describe('gateway/postgres SCRAM-SHA-256', () => {
  it('accepts the right password and each side verifies the other', () => {
    const server = new ScramServer(verifierFor('token-123'));
    const client = new ScramClient('token-123');
    const serverFirst = server.serverFirstMessage(client.firstMessage());
    const serverFinal = server.verifyClientFinal(client.finalMessage(serverFirst));
    assert.ok(serverFinal);
    client.verifyServerFinal(serverFinal);
  });

  it('refuses a wrong password, and a client refuses a server that does not hold the verifier', () => {
    const server = new ScramServer(verifierFor('token-123'));
    const client = new ScramClient('token-456');
    assert.equal(server.verifyClientFinal(client.finalMessage(server.serverFirstMessage(client.firstMessage()))), null);

    const impostor = new ScramServer(verifierFor('something-else'));
    const honest = new ScramClient('token-123');
    const first = impostor.serverFirstMessage(honest.firstMessage());
    honest.finalMessage(first);
    assert.throws(() => honest.verifyServerFinal(`v=${randomBytes(32).toString('base64')}`), /server signature does not match/);
  });

  it('refuses a replayed or altered nonce', () => {
    const server = new ScramServer(verifierFor('t'));
    const client = new ScramClient('t');
    const serverFirst = server.serverFirstMessage(client.firstMessage());
    const final = client.finalMessage(serverFirst).replace(/r=([^,]*)/, 'r=$1x');
    assert.throws(() => server.verifyClientFinal(final), /nonce does not match/);
  });
});

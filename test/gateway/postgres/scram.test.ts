import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ScramExchangeError, ScramServerExchange, createScramVerifier } from '../../../gateway/identity/scram';
import { ScramClient } from '../../../gateway/postgres/scram';

/** The gateway's SCRAM client (towards upstream servers) against the identity store's server side. */
describe('gateway/postgres SCRAM-SHA-256 client', () => {
  it('proves the password and verifies the server signature', () => {
    const server = new ScramServerExchange(createScramVerifier('token-123'));
    const client = new ScramClient('token-123');
    const serverFirst = server.start(client.firstMessage());
    const result = server.finish(client.finalMessage(serverFirst));
    assert.ok(result.ok);
    client.verifyServerFinal(result.serverFinalMessage);
  });

  it('fails with a wrong password, and refuses a server that does not hold the verifier', () => {
    const server = new ScramServerExchange(createScramVerifier('token-123'));
    const client = new ScramClient('token-456');
    assert.equal(server.finish(client.finalMessage(server.start(client.firstMessage()))).ok, false);

    const impostor = new ScramServerExchange(createScramVerifier('something-else'));
    const honest = new ScramClient('token-123');
    honest.finalMessage(impostor.start(honest.firstMessage()));
    assert.throws(() => honest.verifyServerFinal(`v=${randomBytes(32).toString('base64')}`), /server signature does not match/);
    assert.throws(() => honest.verifyServerFinal('e=invalid-proof'), /server refused the SCRAM exchange: invalid-proof/);
  });

  it('refuses a server nonce that does not extend its own', () => {
    const client = new ScramClient('t');
    client.firstMessage();
    assert.throws(() => client.finalMessage('r=someone-elses-nonce,s=AAAA,i=4096'), /does not extend the client nonce/);
    const server = new ScramServerExchange(createScramVerifier('t'));
    const serverFirst = server.start(client.firstMessage());
    const tampered = client.finalMessage(serverFirst).replace(/r=([^,]*)/, 'r=$1x');
    assert.throws(() => server.finish(tampered), ScramExchangeError);
  });
});

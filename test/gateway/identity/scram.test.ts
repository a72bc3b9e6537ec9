import assert from 'node:assert/strict';
import {
  computeClientProof,
  computeServerSignature,
  createScramVerifier,
  decoyScramVerifier,
  formatScramVerifier,
  parseScramVerifier,
  ScramExchangeError,
  ScramServerExchange,
  verifyClientProof,
} from '../../../gateway/identity/scram';

/** RFC 7677 §3: the published SCRAM-SHA-256 example exchange (user "user", password "pencil"). */
const RFC7677 = {
  password: 'pencil',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
};
const AUTH_MESSAGE = `n=user,r=rOprNGfwEbeRWgbNEkqO,${RFC7677.serverFirst},c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0`;

describe('gateway/identity/scram', () => {
  const verifier = createScramVerifier(RFC7677.password, { iterations: 4096, salt: Buffer.from(RFC7677.salt, 'base64') });

  it('verifies the RFC 7677 client proof and computes its server signature', () => {
    const proof = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
    assert.equal(verifyClientProof(verifier, AUTH_MESSAGE, proof), true);
    assert.equal(computeServerSignature(verifier, AUTH_MESSAGE).toString('base64'), '6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
    assert.deepEqual(computeClientProof(RFC7677.password, verifier.salt, 4096, AUTH_MESSAGE), proof);
  });

  it('runs the RFC 7677 exchange message by message', () => {
    const exchange = new ScramServerExchange(verifier, RFC7677.serverNonce);
    assert.equal(exchange.start(RFC7677.clientFirst), RFC7677.serverFirst);
    assert.deepEqual(exchange.finish(RFC7677.clientFinal), { ok: true, serverFinalMessage: RFC7677.serverFinal });
  });

  it('refuses a wrong password, a flipped proof bit and a wrong-length proof', () => {
    const wrong = createScramVerifier('pencil2', { iterations: 4096, salt: verifier.salt });
    const exchange = new ScramServerExchange(wrong, RFC7677.serverNonce);
    exchange.start(RFC7677.clientFirst);
    assert.deepEqual(exchange.finish(RFC7677.clientFinal), { ok: false, reason: 'password authentication failed' });
    const proof = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
    proof[0] = proof[0]! ^ 1;
    assert.equal(verifyClientProof(verifier, AUTH_MESSAGE, proof), false);
    assert.equal(verifyClientProof(verifier, AUTH_MESSAGE, proof.subarray(0, 31)), false);
  });

  it('refuses a replayed nonce, channel binding and malformed messages', () => {
    const exchange = new ScramServerExchange(verifier, RFC7677.serverNonce);
    exchange.start(RFC7677.clientFirst);
    assert.throws(() => exchange.finish(RFC7677.clientFinal.replace('k0,p=', 'k1,p=')), ScramExchangeError);
    assert.throws(() => new ScramServerExchange(verifier).start('p=tls-server-end-point,,n=,r=abc'), /channel binding is not supported/);
    assert.throws(() => new ScramServerExchange(verifier).start('n,,n=user'), /nonce/);
    assert.throws(() => new ScramServerExchange(verifier).start('garbage'), ScramExchangeError);
  });

  it('completes an exchange with a client that computes its own proof (PostgreSQL sends an empty user name)', () => {
    const token = 'gwt_example-token';
    const stored = createScramVerifier(token);
    const exchange = new ScramServerExchange(stored);
    const clientFirstBare = 'n=,r=clientnonce123';
    const serverFirst = exchange.start(`n,,${clientFirstBare}`);
    const nonce = /r=([^,]+)/.exec(serverFirst)![1]!;
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
    const proof = computeClientProof(token, stored.salt, stored.iterations, authMessage);
    const result = exchange.finish(`${withoutProof},p=${proof.toString('base64')}`);
    assert.deepEqual(result, { ok: true, serverFinalMessage: `v=${computeServerSignature(stored, authMessage).toString('base64')}` });
  });

  it('round-trips the PostgreSQL verifier text form and derives stable decoys', () => {
    const text = formatScramVerifier(verifier);
    assert.match(text, /^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$/);
    assert.deepEqual(parseScramVerifier(text), verifier);
    assert.throws(() => parseScramVerifier('md5abc'), /not a SCRAM-SHA-256 verifier/);
    const secret = Buffer.alloc(32, 7);
    assert.deepEqual(decoyScramVerifier('ghost', secret), decoyScramVerifier('ghost', secret));
    assert.notDeepEqual(decoyScramVerifier('ghost', secret).salt, decoyScramVerifier('other', secret).salt);
  });
});

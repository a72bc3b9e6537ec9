import { randomBytes } from 'node:crypto';
import type { AgentIdentity, IdentityStore, ScramVerifier } from '../identity/contract';
import { ScramExchangeError, ScramServerExchange, decoyScramVerifier } from '../identity/scram';
import { authentication, authenticationSasl } from './backend-writer';
import type { ClientChannel } from './client-channel';
import { AgentAuthError, FrontendProtocolError } from './errors';
import { BodyReader } from './frontend-parser';
import { AuthCode, FrontendType, SCRAM_SHA_256, SqlState } from './protocol';

/**
 * Per-process key for decoy verifiers: an unknown login gets a full exchange against a verifier
 * that is stable per login, so the gateway's answers do not tell an outsider which logins exist.
 */
const DECOY_KEY = randomBytes(32);

async function saslPayload(channel: ClientChannel, initial: boolean, login: string): Promise<string> {
  const msg = await channel.next();
  if (msg.type !== FrontendType.Password) {
    throw new FrontendProtocolError(`expected a SASL response during authentication, got message type ${String.fromCharCode(msg.type)}`);
  }
  const reader = new BodyReader(msg.body, initial ? 'SASLInitialResponse' : 'SASLResponse');
  if (!initial) return reader.rest().toString('utf8');
  const mechanism = reader.cstring();
  if (mechanism !== SCRAM_SHA_256) {
    throw new AgentAuthError(login, `the gateway accepts only ${SCRAM_SHA_256}; the client chose ${mechanism}`, SqlState.InvalidAuthorizationSpecification);
  }
  const length = reader.int32();
  const data = length < 0 ? Buffer.alloc(0) : reader.bytes(length);
  reader.end();
  return data.toString('utf8');
}

/**
 * Authenticates an agent with SCRAM-SHA-256 against its stored verifier (the token never reaches
 * the gateway in the clear). On success the client has received SASLFinal and AuthenticationOk.
 */
export async function authenticateAgent(channel: ClientChannel, login: string, store: IdentityStore): Promise<{ identity: AgentIdentity; verifier: ScramVerifier }> {
  const found = await store.lookup(login);
  const exchange = new ScramServerExchange(found?.verifier ?? decoyScramVerifier(login, DECOY_KEY));
  channel.write(authenticationSasl([SCRAM_SHA_256]));
  let serverFirst: string;
  try {
    serverFirst = exchange.start(await saslPayload(channel, true, login));
  } catch (err) {
    if (err instanceof ScramExchangeError) throw new AgentAuthError(login, err.message, SqlState.InvalidAuthorizationSpecification);
    throw err;
  }
  channel.write(authentication(AuthCode.SaslContinue, Buffer.from(serverFirst)));
  let result: ReturnType<ScramServerExchange['finish']>;
  try {
    result = exchange.finish(await saslPayload(channel, false, login));
  } catch (err) {
    if (err instanceof ScramExchangeError) throw new AgentAuthError(login, err.message, SqlState.InvalidAuthorizationSpecification);
    throw err;
  }
  if (!result.ok || !found) {
    throw new AgentAuthError(login, `password authentication failed for user "${login}"`);
  }
  channel.write(authentication(AuthCode.SaslFinal, Buffer.from(result.serverFinalMessage)));
  channel.write(authentication(AuthCode.Ok));
  return found;
}

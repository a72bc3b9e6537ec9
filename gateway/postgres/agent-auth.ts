import { createHmac, randomBytes } from 'node:crypto';
import type { AgentIdentity, IdentityStore, ScramVerifier } from '../identity/contract';
import { authentication, authenticationSasl } from './backend-writer';
import type { ClientChannel } from './client-channel';
import { AgentAuthError, FrontendProtocolError } from './errors';
import { BodyReader } from './frontend-parser';
import { AuthCode, FrontendType, SCRAM_SHA_256, SqlState } from './protocol';
import { ScramServer } from './scram';

/** Per-process key for the decoy verifiers of unknown logins (see below). */
const DECOY_KEY = randomBytes(32);

/**
 * An unknown login gets a full exchange against a decoy verifier whose salt is stable per login,
 * so the gateway's answers do not tell an outsider which logins exist.
 */
function decoyVerifier(login: string): ScramVerifier {
  const seed = createHmac('sha256', DECOY_KEY).update(login).digest();
  return { iterations: 4096, salt: seed.subarray(0, 16), storedKey: randomBytes(32), serverKey: randomBytes(32) };
}

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
export async function authenticateAgent(channel: ClientChannel, login: string, store: IdentityStore): Promise<AgentIdentity> {
  const found = await store.lookup(login);
  const server = new ScramServer(found?.verifier ?? decoyVerifier(login));
  channel.write(authenticationSasl([SCRAM_SHA_256]));
  let serverFirst: string;
  try {
    serverFirst = server.serverFirstMessage(await saslPayload(channel, true, login));
  } catch (err) {
    if (err instanceof AgentAuthError || err instanceof FrontendProtocolError) throw err;
    throw new FrontendProtocolError(`malformed SCRAM client-first message (${(err as Error).message})`);
  }
  channel.write(authentication(AuthCode.SaslContinue, Buffer.from(serverFirst)));
  let serverFinal: string | null;
  try {
    serverFinal = server.verifyClientFinal(await saslPayload(channel, false, login));
  } catch (err) {
    if (err instanceof FrontendProtocolError) throw err;
    throw new FrontendProtocolError(`malformed SCRAM client-final message (${(err as Error).message})`);
  }
  if (serverFinal === null || !found) {
    throw new AgentAuthError(login, `password authentication failed for user "${login}"`);
  }
  channel.write(authentication(AuthCode.SaslFinal, Buffer.from(serverFinal)));
  channel.write(authentication(AuthCode.Ok));
  return found.identity;
}

import type { Config } from '../platform/config';
import type { Logger } from '../platform/log';
import type { Component } from '../platform/supervisor';
import { FileIdentityStore } from './identity/identity-store';
import { journalOptionsFromConfig, openJournal, type Journal } from './journal/journal';
import { createPolicyEngine, type GatewayPolicyEngine } from './policy/policy-engine';
import { PostgresGateway } from './postgres/listener';

/**
 * The gateway as one supervised component: the journal first (nothing is served that cannot be
 * recorded), then the policy engine and identity store, then the protocol listeners. Stopping goes
 * in reverse, so the last session records reach the journal before it closes with a checkpoint.
 */
export interface GatewayComponent extends Component {
  /** The journal, once started (a collector in the same process follows it). */
  readonly journal: Journal | null;
  /** The PostgreSQL listener's address, once started. */
  postgresAddress(): { host: string; port: number } | null;
}

export function gatewayComponent(config: Config, log: Logger): GatewayComponent {
  let journal: Journal | null = null;
  let policy: GatewayPolicyEngine | null = null;
  let postgres: PostgresGateway | null = null;
  const stopAll = async (): Promise<void> => {
    await postgres?.stop();
    postgres = null;
    policy?.close();
    policy = null;
    await journal?.close();
    journal = null;
  };
  return {
    name: 'gateway',
    get journal() {
      return journal;
    },
    postgresAddress() {
      return postgres ? postgres.address() : null;
    },
    async start() {
      try {
        journal = await openJournal(journalOptionsFromConfig(config, log));
        policy = await createPolicyEngine({ config: config.gateway.policy, dataDir: config.dataDir, log });
        const identities = new FileIdentityStore({ dataDir: config.dataDir, iterations: config.gateway.identity.scramIterations });
        postgres = new PostgresGateway({ gatewayId: config.gateway.id, config: config.gateway.postgres, journal, identities, policy, log });
        const lines = await postgres.start();
        return [`journal ${journalOptionsFromConfig(config).dir}`, ...lines];
      } catch (err) {
        await stopAll();
        throw err;
      }
    },
    stop: stopAll,
  };
}

import type { Config } from '../platform/config';
import type { Logger } from '../platform/log';
import type { Component } from '../platform/supervisor';
import { FileIdentityStore } from './identity/identity-store';
import { journalOptionsFromConfig, openJournal, type Journal } from './journal/journal';
import { createPolicyEngine, type GatewayPolicyEngine } from './policy/policy-engine';
import { PostgresGateway } from './postgres/listener';
import { SshCommandPolicy } from './ssh/command-policy';
import { SshGateway } from './ssh/listener';

/**
 * The gateway as one supervised component: the journal first (nothing is served that cannot be
 * recorded), then the policy engine and identity store, then the protocol listeners. Stopping goes
 * in reverse, so the last session records reach the journal before it closes with a checkpoint.
 */
export function gatewayComponent(config: Config, log: Logger): Component {
  let journal: Journal | null = null;
  let policy: GatewayPolicyEngine | null = null;
  let postgres: PostgresGateway | null = null;
  let ssh: { gateway: SshGateway; policy: SshCommandPolicy } | null = null;
  const stopAll = async (): Promise<void> => {
    await ssh?.gateway.stop();
    ssh?.policy.close();
    ssh = null;
    await postgres?.stop();
    postgres = null;
    policy?.close();
    policy = null;
    await journal?.close();
    journal = null;
  };
  return {
    name: 'gateway',
    async start() {
      try {
        journal = await openJournal(journalOptionsFromConfig(config, log));
        policy = await createPolicyEngine({ config: config.gateway.policy, dataDir: config.dataDir, log });
        const identities = new FileIdentityStore({ dataDir: config.dataDir, iterations: config.gateway.identity.scramIterations });
        postgres = new PostgresGateway({ gatewayId: config.gateway.id, config: config.gateway.postgres, journal, identities, policy, log });
        const lines = await postgres.start();
        if (config.gateway.ssh.resources.length > 0) {
          const sshPolicy = new SshCommandPolicy(config.gateway.ssh, { dataDir: config.dataDir, timeoutSeconds: config.gateway.policy.reviewTimeoutSeconds, onError: (err) => log.warn({ err }, 'review channel: could not read a decision; retrying') });
          ssh = { gateway: new SshGateway({ gatewayId: config.gateway.id, config: config.gateway.ssh, dataDir: config.dataDir, journal, identities, policy: sshPolicy, log }), policy: sshPolicy };
          lines.push(...(await ssh.gateway.start()));
        }
        return [`journal ${journalOptionsFromConfig(config).dir}`, ...lines];
      } catch (err) {
        await stopAll();
        throw err;
      }
    },
    stop: stopAll,
  };
}

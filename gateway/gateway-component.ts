import type { Config } from '../platform/config';
import type { Logger } from '../platform/log';
import type { Component } from '../platform/supervisor';
import { AuditServer } from './audit/audit-server';
import { resourceCatalog } from './audit/resource-catalog';
import { HttpGateway } from './http/listener';
import { FileIdentityStore } from './identity/identity-store';
import { journalOptionsFromConfig, openJournal, type Journal } from './journal/journal';
import { cleanStopFile, closeAbortedSessions, markCleanStop } from './journal/session-recovery';
import { createPolicyEngine, type GatewayPolicyEngine } from './policy/policy-engine';
import { PostgresGateway } from './postgres/listener';
import { SshCommandPolicy } from './ssh/command-policy';
import { SshGateway } from './ssh/listener';

/**
 * The gateway as one supervised component: the journal first (nothing is served that cannot be
 * recorded), then the policy engine and identity store, then the protocol listeners, then the Audit
 * stream collectors subscribe to. Stopping goes in reverse, so the last session records reach the
 * journal before it closes with a checkpoint.
 */
export interface GatewayComponent extends Component {
  /** The journal, once started (a collector in the same process follows it). */
  readonly journal: Journal | null;
  /** The PostgreSQL listener's address, once started. */
  postgresAddress(): { host: string; port: number } | null;
  /** The HTTP and SSH listeners' addresses, when they listen (they do only with resources configured). */
  httpAddress(): { host: string; port: number } | null;
  sshAddress(): { host: string; port: number } | null;
}

export function gatewayComponent(config: Config, log: Logger): GatewayComponent {
  let journal: Journal | null = null;
  let policy: GatewayPolicyEngine | null = null;
  let postgres: PostgresGateway | null = null;
  let http: HttpGateway | null = null;
  let ssh: { gateway: SshGateway; policy: SshCommandPolicy } | null = null;
  let audit: AuditServer | null = null;
  const cleanStop = cleanStopFile(journalOptionsFromConfig(config).dir);
  const stopAll = async (): Promise<void> => {
    await audit?.stop();
    audit = null;
    await ssh?.gateway.stop();
    ssh?.policy.close();
    ssh = null;
    await http?.stop();
    http = null;
    await postgres?.stop();
    postgres = null;
    policy?.close();
    policy = null;
    const closing = journal;
    journal = null;
    if (closing) {
      // A clean stop is noted only when the journal still writes (the checkpoint throws after a write
      // failure, when session ends may be missing) and every listener has journaled its sessions' ends.
      const healthy = await closing.checkpoint().then(
        () => true,
        () => false,
      );
      await closing.close();
      if (healthy) markCleanStop(cleanStop, closing.head().seq);
    }
  };
  return {
    name: 'gateway',
    get journal() {
      return journal;
    },
    postgresAddress() {
      return postgres ? postgres.address() : null;
    },
    httpAddress() {
      return http ? http.address() : null;
    },
    sshAddress() {
      return ssh ? ssh.gateway.address() : null;
    },
    async start() {
      try {
        journal = await openJournal(journalOptionsFromConfig(config, log));
        // Before any listener accepts: every session still open in the journal belonged to a dead process.
        const aborted = await closeAbortedSessions(journal, log, cleanStop);
        policy = await createPolicyEngine({ config: config.gateway.policy, dataDir: config.dataDir, log });
        const identities = new FileIdentityStore({ dataDir: config.dataDir, iterations: config.gateway.identity.scramIterations });
        postgres = new PostgresGateway({ gatewayId: config.gateway.id, config: config.gateway.postgres, journal, identities, policy, log });
        const lines = await postgres.start();
        // The HTTP listener serves only configured resources; without any it does not listen.
        if (config.gateway.http.resources.length > 0) {
          http = new HttpGateway({
            gatewayId: config.gateway.id,
            config: config.gateway.http,
            journal,
            identities,
            log,
            review: { dataDir: config.dataDir, timeoutSeconds: config.gateway.policy.reviewTimeoutSeconds },
          });
          lines.push(...(await http.start()));
        }
        if (config.gateway.ssh.resources.length > 0) {
          const sshPolicy = new SshCommandPolicy(config.gateway.ssh, { dataDir: config.dataDir, timeoutSeconds: config.gateway.policy.reviewTimeoutSeconds, onError: (err) => log.warn({ err }, 'review channel: could not read a decision; retrying') });
          ssh = { gateway: new SshGateway({ gatewayId: config.gateway.id, config: config.gateway.ssh, dataDir: config.dataDir, journal, identities, policy: sshPolicy, log }), policy: sshPolicy };
          lines.push(...(await ssh.gateway.start()));
        }
        const pg = postgres;
        const web = http;
        const shell = ssh?.gateway ?? null;
        audit = new AuditServer({
          config: config.gateway.audit,
          journal,
          log,
          resources: (auditListener) =>
            resourceCatalog({
              gatewayId: config.gateway.id,
              postgres: config.gateway.postgres,
              postgresListener: pg.address(),
              http: config.gateway.http,
              httpListener: web?.address() ?? null,
              ssh: config.gateway.ssh,
              sshListener: shell?.address() ?? null,
              auditListener,
            }),
        });
        lines.push(...(await audit.start()));
        const closed = aborted.sessionIds.length;
        return [`journal ${journalOptionsFromConfig(config).dir}${closed > 0 ? ` (${closed} session${closed === 1 ? '' : 's'} left open by the last run closed as aborted)` : ''}`, ...lines];
      } catch (err) {
        await stopAll();
        throw err;
      }
    },
    stop: stopAll,
  };
}

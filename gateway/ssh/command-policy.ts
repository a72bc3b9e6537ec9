import type { AgentIdentity } from '../identity/contract';
import type { ReviewOutcome } from '../policy/contract';
import { GlobSet } from '../policy/name-patterns';
import { ReviewDirectory, ReviewWaiter } from '../policy/review-channel';
import type { SshCommandRuleConfig, SshForwardingKind, SshForwardingRuleConfig, SshGatewayConfig } from './config-schema';

/** Rule names of decisions taken without a configured rule. */
export enum SshEngineRule {
  CommandDefault = 'gapwatch:ssh-command-default',
  ForwardingDefault = 'gapwatch:ssh-forwarding-denied-by-default',
}

export type CommandDecision =
  | { action: 'allow'; rule: string }
  | { action: 'deny'; rule: string; reason: string }
  | { action: 'review'; rule: string; reason: string };

export type ForwardingDecision = { allowed: true; rule: string } | { allowed: false; rule: string; reason: string };

export interface SshPolicySubject {
  resource: string;
  identity: AgentIdentity;
}

class IdentityMatcher {
  private readonly resources: GlobSet;
  private readonly logins: GlobSet;
  private readonly subjects: GlobSet;

  constructor(rule: { resources: readonly string[]; logins: readonly string[]; subjects: readonly string[] }) {
    this.resources = new GlobSet(rule.resources);
    this.logins = new GlobSet(rule.logins);
    this.subjects = new GlobSet(rule.subjects);
  }

  matches({ resource, identity }: SshPolicySubject): boolean {
    return (
      (this.resources.empty || this.resources.matches(resource)) &&
      (this.logins.empty || this.logins.matches(identity.login)) &&
      (this.subjects.empty || this.subjects.matches(identity.subject))
    );
  }
}

class CommandRule {
  private readonly who: IdentityMatcher;
  private readonly patterns: RegExp[];

  constructor(readonly config: SshCommandRuleConfig) {
    this.who = new IdentityMatcher(config);
    // 's': a command line may span lines (`sh -c 'a\nrm -rf /'`); patterns see all of it.
    this.patterns = config.patterns.map((source) => new RegExp(source, 's'));
  }

  matches(subject: SshPolicySubject, command: string): boolean {
    return this.who.matches(subject) && this.patterns.some((pattern) => pattern.test(command));
  }
}

class ForwardingRule {
  private readonly who: IdentityMatcher;
  private readonly destinations: GlobSet;

  constructor(readonly config: SshForwardingRuleConfig) {
    this.who = new IdentityMatcher(config);
    this.destinations = new GlobSet(config.destinations);
  }

  matches(subject: SshPolicySubject, kind: SshForwardingKind, destination: string | null): boolean {
    if (!this.config.kinds.includes(kind) || !this.who.matches(subject)) return false;
    if (this.destinations.empty) return true;
    return destination !== null && this.destinations.matches(destination);
  }
}

/**
 * SSH-specific policy, configured under `gateway.ssh`: exec commands are decided by pattern
 * (first matching rule wins; allow, deny or review) before the upstream sees them, and every kind
 * of forwarding is refused unless a rule allows it. Reviews go through the same channel as the
 * PostgreSQL gateway's (`gapwatch reviews|approve|deny`).
 */
export class SshCommandPolicy {
  private readonly commands: CommandRule[];
  private readonly forwarding: ForwardingRule[];
  private readonly waiter: ReviewWaiter;

  constructor(
    private readonly config: Pick<SshGatewayConfig, 'commands' | 'commandDefault' | 'forwarding'>,
    review: { dataDir: string; timeoutSeconds: number; onError?: (err: unknown) => void },
  ) {
    this.commands = config.commands.map((rule) => new CommandRule(rule));
    this.forwarding = config.forwarding.map((rule) => new ForwardingRule(rule));
    const directory = new ReviewDirectory(review.dataDir);
    directory.ensure();
    this.waiter = new ReviewWaiter(directory, review.timeoutSeconds * 1000, review.onError);
  }

  decideCommand(subject: SshPolicySubject, command: string): CommandDecision {
    const rule = this.commands.find((candidate) => candidate.matches(subject, command));
    if (rule) {
      const { action, name, reason } = rule.config;
      if (action === 'allow') return { action, rule: name };
      if (action === 'deny') return { action, rule: name, reason: reason ?? 'the command is not allowed on this resource' };
      return { action, rule: name, reason: reason ?? 'the command needs a human approval' };
    }
    const action = this.config.commandDefault;
    if (action === 'allow') return { action, rule: SshEngineRule.CommandDefault };
    if (action === 'deny') return { action, rule: SshEngineRule.CommandDefault, reason: 'commands are denied unless a rule allows them' };
    return { action, rule: SshEngineRule.CommandDefault, reason: 'commands need a human approval unless a rule allows them' };
  }

  /** `destination` is "host:port" for local and remote forwarding, a socket path for unix, null otherwise. */
  decideForwarding(subject: SshPolicySubject, kind: SshForwardingKind, destination: string | null): ForwardingDecision {
    const rule = this.forwarding.find((candidate) => candidate.matches(subject, kind, destination));
    if (rule) return { allowed: true, rule: rule.config.name };
    return { allowed: false, rule: SshEngineRule.ForwardingDefault, reason: `${kind} forwarding is refused unless a gateway.ssh.forwarding rule allows it` };
  }

  /** Holds a command for a human decision; the requester can never approve it. */
  requestReview(
    subject: SshPolicySubject & { sessionId: string },
    command: string,
    decision: Extract<CommandDecision, { action: 'review' }>,
  ): { reviewId: string; outcome: Promise<ReviewOutcome>; withdraw(reason: string): void } {
    return this.waiter.request({
      sessionId: subject.sessionId,
      resource: subject.resource,
      login: subject.identity.login,
      subject: subject.identity.subject,
      claims: subject.identity.claims,
      via: 'ssh-exec',
      text: command,
      // An SSH command is opaque code to the policy layer's classes.
      statements: [{ text: command, classes: ['utility'], relations: [] }],
      rule: decision.rule,
      reason: decision.reason,
    });
  }

  close(): void {
    this.waiter.close();
  }
}

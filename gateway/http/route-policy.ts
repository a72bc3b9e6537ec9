import type { AgentIdentity } from '../identity/contract';
import type { HttpGatewayConfig, HttpRuleConfig } from './config-schema';

export interface RouteRequest {
  resource: string;
  identity: AgentIdentity;
  method: string;
  /** The normalised path as forwarded (see request-target.ts). */
  path: string;
}

export type RouteDecision =
  | { action: 'allow'; rule: string | null }
  | { action: 'deny'; rule: string; reason: string }
  | { action: 'review'; rule: string; reason: string };

/** Rule name of a decision taken by the configured default. */
export const DEFAULT_RULE = 'gapwatch:default';

function escape(text: string): string {
  return text.replace(/[.+^${}()|[\]\\?]/g, '\\$&');
}

/** A path glob: `**` spans segments, `*` stays within one; case-insensitive (see config-schema.ts). */
export function pathGlob(glob: string): RegExp {
  const source = glob
    .split('**')
    .map((part) => part.split('*').map(escape).join('[^/]*'))
    .join('.*');
  return new RegExp(`^${source}$`, 'i');
}

/** A name glob (logins, subjects, resources): `*` matches anything. */
function nameGlob(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map(escape).join('.*')}$`, 'i');
}

interface CompiledRule {
  config: HttpRuleConfig;
  resources: RegExp[];
  logins: RegExp[];
  subjects: RegExp[];
  methods: Set<string>;
  paths: RegExp[];
}

const anyMatch = (patterns: RegExp[], value: string): boolean => patterns.length === 0 || patterns.some((p) => p.test(value));

/** Whether any rule (or the default) can hold a request for review, so the gateway needs the review channel. */
export function needsReview(config: Pick<HttpGatewayConfig, 'rules' | 'default'>): boolean {
  return config.default === 'review' || config.rules.some((rule) => rule.action === 'review');
}

/**
 * Method/path policy of the HTTP gateway, decided before the upstream sees anything: rules in order,
 * first match wins, `default` for the rest. A rule matches when every list it sets matches (an empty
 * list matches everything).
 */
export class RoutePolicy {
  private readonly rules: CompiledRule[];
  private readonly defaultAction: HttpGatewayConfig['default'];

  constructor(config: Pick<HttpGatewayConfig, 'rules' | 'default'>) {
    this.defaultAction = config.default;
    this.rules = config.rules.map((rule) => ({
      config: rule,
      resources: rule.resources.map(nameGlob),
      logins: rule.logins.map(nameGlob),
      subjects: rule.subjects.map(nameGlob),
      methods: new Set(rule.methods),
      paths: rule.paths.map(pathGlob),
    }));
  }

  decide(request: RouteRequest): RouteDecision {
    const method = request.method.toUpperCase();
    for (const rule of this.rules) {
      if (!anyMatch(rule.resources, request.resource)) continue;
      if (!anyMatch(rule.logins, request.identity.login)) continue;
      if (!anyMatch(rule.subjects, request.identity.subject)) continue;
      if (rule.methods.size > 0 && !rule.methods.has(method)) continue;
      if (!anyMatch(rule.paths, request.path)) continue;
      if (rule.config.action === 'allow') return { action: 'allow', rule: rule.config.name };
      if (rule.config.action === 'review') return { action: 'review', rule: rule.config.name, reason: rule.config.reason ?? `${method} ${request.path} needs a human approval (rule ${rule.config.name})` };
      return { action: 'deny', rule: rule.config.name, reason: rule.config.reason ?? `${method} ${request.path} is denied by rule ${rule.config.name}` };
    }
    if (this.defaultAction === 'allow') return { action: 'allow', rule: null };
    if (this.defaultAction === 'review') return { action: 'review', rule: DEFAULT_RULE, reason: `no rule allows ${method} ${request.path}; the default for this gateway is review` };
    return { action: 'deny', rule: DEFAULT_RULE, reason: `no rule allows ${method} ${request.path}; the default for this gateway is deny` };
  }
}

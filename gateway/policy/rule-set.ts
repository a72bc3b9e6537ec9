import type { AgentIdentity } from '../identity/contract';
import type { PolicyConfig, PolicyRuleConfig } from './config-schema';
import type { ClassifiedStatement, StatementClass } from './contract';
import { GlobSet, RelationPattern, type SchemaResolution } from './name-patterns';

export type RuleAction = PolicyRuleConfig['action'];

/**
 * gapwatch's safe defaults, checked after the configured rules (so a configured rule can make an
 * exception, e.g. allow DDL for a migration identity) and before the default action.
 */
export const BUILTIN_RULES: readonly PolicyRuleConfig[] = [
  {
    name: 'gapwatch:deny-copy-program',
    resources: [],
    logins: [],
    subjects: [],
    claims: {},
    classes: ['copy_program'],
    relations: [],
    functions: [],
    commands: [],
    action: 'deny',
    reason: 'COPY … PROGRAM runs a shell command on the database server',
  },
  {
    name: 'gapwatch:deny-copy-server-file',
    resources: [],
    logins: [],
    subjects: [],
    claims: {},
    // A COPY with a file name (not STDIN/STDOUT) is the only COPY classed utility.
    classes: ['utility'],
    relations: [],
    functions: [],
    commands: ['CopyStmt'],
    action: 'deny',
    reason: "COPY to or from a file reads or writes the database server's file system; use COPY … FROM STDIN / TO STDOUT",
  },
  {
    name: 'gapwatch:deny-dcl',
    resources: [],
    logins: [],
    subjects: [],
    claims: {},
    classes: ['dcl'],
    relations: [],
    functions: [],
    commands: [],
    action: 'deny',
    reason: 'changing roles, privileges, ownership or row security (DCL) is reserved to administrators',
  },
  {
    name: 'gapwatch:deny-admin-functions',
    resources: [],
    logins: [],
    subjects: [],
    claims: {},
    classes: [],
    relations: [],
    functions: [
      'pg_terminate_backend',
      'pg_cancel_backend',
      'pg_reload_conf',
      'pg_rotate_logfile',
      'pg_promote',
      'pg_switch_wal',
      'pg_create_restore_point',
      'pg_read_file',
      'pg_read_binary_file',
      'pg_stat_file',
      'pg_ls_*',
      'pg_file_*',
      'pg_logdir_ls',
      'lo_import',
      'lo_export',
      'dblink*',
      'query_to_xml*',
      'cursor_to_xml*',
      'pg_create_*_replication_slot',
      'pg_drop_replication_slot',
      'pg_replication_origin_*',
      'pg_logical_emit_message',
      'pg_stat_reset*',
    ],
    commands: [],
    action: 'deny',
    reason: 'server administration, server file access and SQL-in-a-string functions are not available through the gateway',
  },
  {
    name: 'gapwatch:review-ddl',
    resources: [],
    logins: [],
    subjects: [],
    claims: {},
    classes: ['ddl'],
    relations: [],
    functions: [],
    commands: [],
    action: 'review',
    reason: 'schema changes (DDL) need a human approval',
  },
  {
    name: 'gapwatch:review-do-blocks',
    resources: [],
    logins: [],
    subjects: [],
    claims: {},
    classes: [],
    relations: [],
    functions: [],
    commands: ['DoStmt'],
    action: 'review',
    reason: 'a DO block runs code the gateway cannot inspect',
  },
];

/** One rule, compiled for matching. */
export class CompiledRule {
  readonly name: string;
  readonly action: RuleAction;
  readonly reason: string | undefined;
  readonly config: PolicyRuleConfig;
  private readonly resources: GlobSet;
  private readonly logins: GlobSet;
  private readonly subjects: GlobSet;
  private readonly claims: Array<[string, GlobSet]>;
  private readonly classes: ReadonlySet<StatementClass>;
  private readonly relations: RelationPattern[];
  private readonly functions: RelationPattern[];
  private readonly commands: ReadonlySet<string>;

  constructor(config: PolicyRuleConfig) {
    this.config = config;
    this.name = config.name;
    this.action = config.action;
    this.reason = config.reason;
    this.resources = new GlobSet(config.resources);
    this.logins = new GlobSet(config.logins);
    this.subjects = new GlobSet(config.subjects);
    this.claims = Object.entries(config.claims).map(([key, value]) => [key, new GlobSet([value])]);
    this.classes = new Set(config.classes);
    this.relations = config.relations.map((pattern) => new RelationPattern(pattern));
    this.functions = config.functions.map((pattern) => new RelationPattern(pattern));
    this.commands = new Set(config.commands);
  }

  /** Resource and identity conditions: every condition given must hold. */
  appliesTo(resource: string, identity: AgentIdentity): boolean {
    if (!this.resources.empty && !this.resources.matches(resource)) return false;
    if (!this.logins.empty && !this.logins.matches(identity.login)) return false;
    if (!this.subjects.empty && !this.subjects.matches(identity.subject)) return false;
    for (const [key, value] of this.claims) {
      const claim = identity.claims[key];
      if (claim === undefined || !value.matches(claim)) return false;
    }
    return true;
  }

  /**
   * Statement conditions. A deny, review or mask rule matches when ANY class, relation or function
   * of the statement matches (one forbidden table is enough); an allow rule only when EVERY class,
   * relation and function is covered (a read that also writes, or touches one table outside the
   * list, is not allowed by it).
   */
  matchesStatement(statement: ClassifiedStatement, searchPath: readonly string[] | 'unknown'): boolean {
    if (this.commands.size > 0 && !this.commands.has(statement.command ?? '')) return false;
    if (this.classes.size > 0) {
      const covered = (cls: StatementClass): boolean => this.classes.has(cls);
      // `allow [read]` must not let `WITH x AS (DELETE …) SELECT …` (read and write) through.
      if (this.action === 'allow' ? !statement.classes.every(covered) : !statement.classes.some(covered)) return false;
    }
    if (!this.namesMatch(this.relations, statement.relations, searchPath)) return false;
    if (!this.namesMatch(this.functions, statement.functions ?? [], searchPath)) return false;
    return true;
  }

  private namesMatch(patterns: readonly RelationPattern[], names: readonly string[], searchPath: readonly string[] | 'unknown'): boolean {
    if (patterns.length === 0) return true;
    if (this.action === 'allow') {
      const resolution: SchemaResolution = { searchPath, require: 'every' };
      return names.length > 0 && names.every((name) => patterns.some((pattern) => pattern.matches(name, resolution)));
    }
    const resolution: SchemaResolution = { searchPath, require: 'some' };
    return names.some((name) => patterns.some((pattern) => pattern.matches(name, resolution)));
  }
}

export interface StatementVerdict {
  action: 'allow' | 'deny' | 'review';
  /** null when no rule matched and the default decided. */
  rule: CompiledRule | null;
}

/** The configured rules, then the built-in ones, then the default: first match wins. */
export class RuleSet {
  readonly rules: readonly CompiledRule[];
  readonly defaultAction: PolicyConfig['default'];

  constructor(config: Pick<PolicyConfig, 'rules' | 'builtinRules' | 'default'>) {
    const rules = [...config.rules, ...(config.builtinRules ? BUILTIN_RULES : [])];
    this.rules = rules.map((rule) => new CompiledRule(rule));
    this.defaultAction = config.default;
  }

  /** Mask rules never decide a statement: they shape results (see maskerFor), so they are passed over here. */
  decide(resource: string, identity: AgentIdentity, statement: ClassifiedStatement, searchPath: readonly string[] | 'unknown'): StatementVerdict {
    for (const rule of this.rules) {
      if (rule.action === 'mask') continue;
      if (rule.appliesTo(resource, identity) && rule.matchesStatement(statement, searchPath)) return { action: rule.action, rule };
    }
    return { action: this.defaultAction, rule: null };
  }

  maskRules(resource: string, identity: AgentIdentity): CompiledRule[] {
    return this.rules.filter((rule) => rule.action === 'mask' && rule.appliesTo(resource, identity));
  }
}

import type { Logger } from '../../platform/log';
import type { AgentIdentity } from '../identity/contract';
import type { PolicyConfig } from './config-schema';
import type { ClassifiedStatement, Masker, MaskColumn, PendingReview, PolicyDecision, PolicyEngine, PolicyRequest, SearchPathChange } from './contract';
import { buildAuditRedactor, buildMasker } from './masker';
import { ReviewDirectory, ReviewWaiter } from './review-channel';
import { RuleSet } from './rule-set';
import { classifySql, loadStatementParser, type PreparedEffect, type SearchPathEffect } from './statement-classifier';

/** Rule names of decisions the engine takes itself, before any configured rule. */
export enum EngineRule {
  Unparseable = 'gapwatch:unparseable',
  UnknownPrepared = 'gapwatch:unknown-prepared-statement',
  ParserHazard = 'gapwatch:parser-differential',
  InternalError = 'gapwatch:internal-error',
  Default = 'gapwatch:default',
}

export interface PolicyEngineOptions {
  config: PolicyConfig;
  /** Where pending reviews are kept (`<dataDir>/reviews/`). */
  dataDir: string;
  log?: Logger;
}

export interface GatewayPolicyEngine extends PolicyEngine {
  /**
   * Settles every review still waiting as timed out (their statements are refused) and stops
   * watching the review directory.
   */
  close(): void;
}

const SEVERITY = { allow: 0, review: 1, deny: 2 } as const;

/**
 * The policy engine a gateway runs: classification with PostgreSQL's parser, rules (first match
 * wins, per statement; the strictest verdict of a multi-statement string decides it), reviews held
 * through files in the data directory, and result masking.
 */
export async function createPolicyEngine(options: PolicyEngineOptions): Promise<GatewayPolicyEngine> {
  await loadStatementParser();
  const rules = new RuleSet(options.config);
  const directory = new ReviewDirectory(options.dataDir);
  directory.ensure();
  const pruned = directory.prune(new Date(Date.now() - options.config.reviewRetentionDays * 86_400_000));
  if (pruned > 0) options.log?.info({ pruned }, 'removed old settled reviews');
  const waiter = new ReviewWaiter(directory, options.config.reviewTimeoutSeconds * 1000, (err) =>
    options.log?.warn({ err }, 'review channel: could not read a decision; retrying'),
  );
  const defaultSearchPath: readonly string[] = options.config.searchPath;
  /**
   * Per session, what the server will hold once the allowed statements ran: what each prepared
   * statement name runs (SQL PREPARE and protocol Parse share one namespace) and the search_path
   * that resolves unqualified names.
   */
  const sessions = new Map<string, SessionState>();
  /** Effects of a statement held for review, applied only if it is approved. */
  const heldEffects = new WeakMap<PolicyDecision, () => void>();

  const stateOf = (sessionId: string): SessionState => {
    let state = sessions.get(sessionId);
    if (!state) {
      state = { prepared: new Map(), gone: new Map(), unnamed: [], searchPath: defaultSearchPath, initialSearchPath: defaultSearchPath, version: 0, block: 'no' };
      sessions.set(sessionId, state);
    }
    return state;
  };

  const apply = (
    sessionId: string,
    effects: readonly PreparedEffect[],
    searchPath: readonly string[] | 'unknown',
    parsed: { name: string; statement: ClassifiedStatement } | null,
    block: SessionState['block'] = stateOf(sessionId).block,
    touches = false,
    certain = false,
  ): void => {
    const state = stateOf(sessionId);
    state.block = block;
    if (touches) state.version++;
    for (const effect of effects) {
      if (effect.op === 'set') prepare(state, effect.name, effect.statement);
      else if (effect.op === 'delete') deallocate(state, effect.name, certain);
      else for (const name of [...state.prepared.keys(), ...(certain ? state.gone.keys() : [])]) deallocate(state, name, certain);
    }
    // The unnamed statement's changes add up: an unnamed Parse the server skips (after an error in
    // its batch) leaves the one before it in place, and nothing tells the engine.
    if (parsed?.name === '') state.unnamed.push(...(parsed.statement.searchPath ?? []));
    else if (parsed) prepare(state, parsed.name, parsed.statement);
    const next = reachable(state, searchPath);
    if (!parsed && (effects.length > 0 || !sameSearchPath(state.searchPath, next))) state.version++;
    state.searchPath = next;
  };

  /**
   * A search_path with every path a prepared statement of the session can still set: a protocol
   * Execute runs one without the engine being asked, and a SQL EXECUTE of one whose SET the engine
   * takes as certain could run again later. Wider, never narrower, than the path the server has.
   */
  const reachable = (state: SessionState, searchPath: readonly string[] | 'unknown'): readonly string[] | 'unknown' => {
    let reached = searchPath;
    const widen = (changes: readonly SearchPathChange[] = []): void => {
      for (const change of changes) reached = possiblePaths(reached, nextSearchPath(state, searchPath, change));
    };
    widen(state.unnamed);
    for (const statement of state.prepared.values()) widen(statement.searchPath);
    for (const statement of state.gone.values()) widen(statement.searchPath);
    return reached;
  };

  /** search_path after a change; SET LOCAL ends with the transaction, so both paths stay possible. */
  const nextSearchPath = (state: SessionState, current: readonly string[] | 'unknown', change: SearchPathChange): readonly string[] | 'unknown' => {
    const target = change.schemas === 'default' ? state.initialSearchPath : change.schemas;
    if (target === 'unknown' || current === 'unknown') return 'unknown';
    return change.local ? [...new Set([...current, ...target])] : target;
  };

  /** Never throws: a failure to decide is a denial, with the cause logged. */
  const evaluateNow = (request: PolicyRequest): PolicyDecision => {
    try {
      return evaluateOrThrow(request);
    } catch (err) {
      options.log?.error({ err, sessionId: request.sessionId }, 'policy evaluation failed; denying the statement');
      return {
        action: 'deny',
        rule: EngineRule.InternalError,
        reason: `the gateway could not evaluate this statement (${(err as Error).message}); it was not run`,
        statements: [{ text: request.text, classes: [], relations: [], functions: [] }],
      };
    }
  };

  const evaluateOrThrow = (request: PolicyRequest): PolicyDecision => {
    if (request.via === 'function_call') {
      const statement: ClassifiedStatement = { text: request.text, classes: ['function_call'], relations: [], functions: [request.text], command: 'FunctionCall' };
      return decide(request, [statement], [], stateOf(request.sessionId)).decision;
    }
    const state = stateOf(request.sessionId);
    if (request.block) state.block = request.block;
    const classification = classifySql(request.text, state.prepared);
    if (!classification.ok) {
      const where = classification.position === null ? '' : ` at character ${classification.position + 1}`;
      return {
        action: 'deny',
        rule: EngineRule.Unparseable,
        reason: `the statement could not be parsed (${classification.error}${where}); the gateway refuses what it cannot classify`,
        statements: [{ text: request.text, classes: [], relations: [], functions: [] }],
      };
    }
    const { statements, preparedEffects, unknownPrepared, searchPathEffects, parserHazards } = classification;
    if (parserHazards.length > 0) {
      return {
        action: 'deny',
        rule: EngineRule.ParserHazard,
        reason: `${parserHazards[0]!}; the gateway refuses settings that would make it read statements differently from the server`,
        statements,
      };
    }
    if (unknownPrepared.length > 0) {
      return {
        action: 'deny',
        rule: EngineRule.UnknownPrepared,
        reason: `EXECUTE of prepared statement ${unknownPrepared.map((name) => JSON.stringify(name)).join(', ')} that the gateway did not see prepared in this session`,
        statements,
      };
    }
    const { decision, searchPath: after } = decide(request, statements, searchPathEffects, state);
    // Where the server's search_path ends up is certain only for a lone SET in a simple Query outside
    // a transaction block: a Parse runs later or never, a multi-statement Query is one implicit
    // transaction that a later error rolls back, and a block can end in ROLLBACK (an aborted block's
    // COMMIT too). Otherwise both the path before and the one after stay possible.
    const certain = request.via === 'query' && statements.length === 1 && state.block === 'no';
    const searchPath = certain ? after : possiblePaths(state.searchPath, after);
    // A Parse names a prepared statement: remember what it runs (and how it moves search_path), for a
    // later SQL EXECUTE of it and for the protocol Executes the engine is not asked about. An unnamed
    // one matters only when it moves search_path (those changes add up, see apply): other unnamed
    // Parses leave the state, and the decisions a data path keeps, as they are.
    const changes = searchPathEffects.map(({ schemas, local }): SearchPathChange => ({ schemas, local }));
    const name = request.via === 'parse' ? (request.statementName ?? '') : null;
    const parsed =
      name !== null && (name !== '' || changes.length > 0)
        ? { name, statement: changes.length > 0 ? { ...merge(statements), searchPath: changes } : merge(statements) }
        : null;
    const block = nextBlock(state.block, request.via, statements);
    // A statement that can touch the state changes its version whether or not this time it did: a
    // data path must not keep its decision (SET search_path to where it is now changes nothing here,
    // and the whole path elsewhere). Transaction control moves only the block, which a data path
    // that keeps decisions follows itself (blockTransition, PolicyRequest.block).
    const touches = searchPathEffects.length > 0 || preparedEffects.length > 0 || parsed !== null;
    const commit = (): void => apply(request.sessionId, preparedEffects, searchPath, parsed, block, touches, certain);
    if (decision.action === 'allow') commit();
    else if (decision.action === 'review') heldEffects.set(decision, commit);
    return decision;
  };

  const decide = (
    request: PolicyRequest,
    statements: ClassifiedStatement[],
    searchPathEffects: readonly SearchPathEffect[],
    state: SessionState,
  ): { decision: PolicyDecision; searchPath: readonly string[] | 'unknown' } => {
    let worst: { action: 'allow' | 'deny' | 'review'; rule: string | null; reason: string | null } = { action: 'allow', rule: null, reason: null };
    let first = true;
    let searchPath = state.searchPath;
    for (const [index, statement] of statements.entries()) {
      // A SET search_path earlier in the same string already applies to this statement.
      for (const change of searchPathEffects) if (change.statement === index - 1) searchPath = nextSearchPath(state, searchPath, change);
      const verdict = rules.decide(request.resource, request.identity, statement, searchPath);
      const rule = verdict.rule?.name ?? (verdict.action === 'allow' ? null : EngineRule.Default);
      const reason =
        verdict.rule?.reason ??
        (verdict.rule ? `${verdict.action === 'deny' ? 'denied' : 'held for review'} by rule ${verdict.rule.name}` : `no rule matched; the default for this gateway is ${verdict.action}`);
      if (first || SEVERITY[verdict.action] > SEVERITY[worst.action]) worst = { action: verdict.action, rule, reason };
      first = false;
    }
    for (const change of searchPathEffects) if (change.statement === statements.length - 1) searchPath = nextSearchPath(state, searchPath, change);
    if (worst.action === 'allow') return { decision: { action: 'allow', rule: worst.rule, statements }, searchPath };
    return { decision: { action: worst.action, rule: worst.rule ?? EngineRule.Default, reason: worst.reason ?? '', statements }, searchPath };
  };

  const requestReview = async (request: PolicyRequest, decision: Extract<PolicyDecision, { action: 'review' }>): Promise<PendingReview> => {
    const pending = waiter.request({
      sessionId: request.sessionId,
      resource: request.resource,
      login: request.identity.login,
      subject: request.identity.subject,
      claims: request.identity.claims,
      via: request.via,
      text: request.text,
      statements: decision.statements,
      rule: decision.rule,
      reason: decision.reason,
    });
    options.log?.info({ reviewId: pending.reviewId, sessionId: request.sessionId, rule: decision.rule }, 'statement held for review');
    const commit = heldEffects.get(decision);
    const outcome = pending.outcome.then((result) => {
      if (result.outcome === 'approved') commit?.();
      return result;
    });
    return { reviewId: pending.reviewId, outcome, withdraw: pending.withdraw };
  };

  const maskerFor = (resource: string, identity: AgentIdentity, columns: ReadonlyArray<MaskColumn>): Masker | null =>
    buildMasker(
      rules.maskRules(resource, identity).map((rule) => ({ mask: rule.config.mask!, relations: rule.config.relations })),
      columns,
    );

  const auditRedactor = (resource: string, identity: AgentIdentity): ((value: string) => string) | null =>
    buildAuditRedactor(
      rules.maskRules(resource, identity).map((rule) => ({ mask: rule.config.mask!, relations: rule.config.relations })),
      options.config.auditRedact,
      '****',
    );

  return {
    evaluate: async (request) => evaluateNow(request),
    evaluateNow,
    requestReview,
    maskerFor,
    auditRedactor,
    masks: (resource, identity) => rules.maskRules(resource, identity).length > 0,
    forgetStatement(sessionId, statementName) {
      // A protocol Close: skipped by the server when a message before it in its batch failed.
      const state = sessions.get(sessionId);
      if (state?.prepared.has(statementName)) {
        deallocate(state, statementName, false);
        state.version++;
      }
    },
    stateVersion: (sessionId) => sessions.get(sessionId)?.version ?? 0,
    startSession(sessionId, start) {
      const state = stateOf(sessionId);
      state.searchPath = start.searchPath;
      state.initialSearchPath = start.searchPath;
      state.version++;
    },
    endSession(sessionId) {
      sessions.delete(sessionId);
    },
    close() {
      waiter.close();
    },
  };
}

interface SessionState {
  prepared: Map<string, ClassifiedStatement>;
  /**
   * Names deallocated where the server may have skipped it (a protocol Close, a DEALLOCATE that is
   * not a lone simple Query outside a block): not EXECUTEd by name (unknown), but still possibly
   * there — for a protocol Execute, and for a Parse of the same name (see redefined()).
   */
  gone: Map<string, ClassifiedStatement>;
  /** Every search_path change an unnamed prepared statement of the session made (they add up: see apply). */
  unnamed: SearchPathChange[];
  searchPath: readonly string[] | 'unknown';
  /** Where RESET search_path returns: what the server reported at login (startSession), else the configured default. */
  initialSearchPath: readonly string[] | 'unknown';
  /** Bumped by every change to the two above (PolicyEngine.stateVersion). */
  version: number;
  /**
   * Whether the session may be inside a transaction block, from the statements allowed so far:
   * `no` only after a lone COMMIT or ROLLBACK in a simple Query (or before any BEGIN).
   */
  block: 'no' | 'maybe';
}

/** Both search paths stay possible: every schema of either (a pattern must hold for each). */
function possiblePaths(before: readonly string[] | 'unknown', after: readonly string[] | 'unknown'): readonly string[] | 'unknown' {
  if (before === 'unknown' || after === 'unknown') return 'unknown';
  return [...new Set([...before, ...after])];
}

/** The block state after an allowed Query or Parse (see SessionState.block). */
function nextBlock(block: SessionState['block'], via: PolicyRequest['via'], statements: readonly ClassifiedStatement[]): SessionState['block'] {
  const transition = blockTransition(via, statements);
  return transition === 'keep' ? block : transition;
}

/**
 * How an allowed statement moves the engine's view of the transaction block: it keeps it, or leaves
 * it `no` (a lone COMMIT / ROLLBACK / PREPARE TRANSACTION without chain in a simple Query) or `maybe`
 * (anything else with transaction control in it). The same for every text of a literal shape, so a
 * data path that keeps a decision can follow the block with it (PolicyRequest.block).
 */
export function blockTransition(via: PolicyRequest['via'], statements: readonly ClassifiedStatement[]): 'keep' | 'no' | 'maybe' {
  if (!statements.some((statement) => statement.transaction)) return 'keep';
  const only = statements.length === 1 ? statements[0]!.transaction : undefined;
  if (via !== 'query' || !only) return 'maybe';
  if (['commit', 'rollback', 'prepare'].includes(only.kind) && !only.chain) return 'no';
  if (['savepoint', 'release', 'rollback_to', 'commit_prepared', 'rollback_prepared'].includes(only.kind)) return 'keep';
  return 'maybe';
}

function sameSearchPath(a: readonly string[] | 'unknown', b: readonly string[] | 'unknown'): boolean {
  if (a === b) return true;
  if (a === 'unknown' || b === 'unknown' || a.length !== b.length) return false;
  return a.every((schema, i) => schema === b[i]);
}

/** A name prepared (Parse, SQL PREPARE). */
function prepare(state: SessionState, name: string, statement: ClassifiedStatement): void {
  state.prepared.set(name, redefined(state.prepared.get(name) ?? state.gone.get(name), statement));
  state.gone.delete(name);
}

/** A name deallocated: for certain, or maybe (see SessionState.gone). */
function deallocate(state: SessionState, name: string, certain: boolean): void {
  const statement = state.prepared.get(name) ?? state.gone.get(name);
  state.prepared.delete(name);
  if (certain || !statement) state.gone.delete(name);
  else state.gone.set(name, statement);
}

/**
 * A name prepared again while the engine holds it, or after a deallocation the server may have
 * skipped: PostgreSQL refuses a name that exists (42P05) and keeps the old statement, unless the old
 * one never came to be (its Parse failed at the server, which the engine does not learn). Either may
 * be what the name runs, so it stands for both: every class and relation of each, and search_path
 * changes that may or may not happen (made local: the path before stays possible beside them).
 */
function redefined(old: ClassifiedStatement | undefined, statement: ClassifiedStatement): ClassifiedStatement {
  if (!old) return statement;
  const both = merge([old, statement]);
  const changes = [...(old.searchPath ?? []), ...(statement.searchPath ?? [])].map((change) => ({ ...change, local: true }));
  return changes.length > 0 ? { ...both, searchPath: changes } : both;
}

/** One description of what a Parse's statements do, for later EXECUTEs of its name. */
function merge(statements: readonly ClassifiedStatement[]): ClassifiedStatement {
  const classes = new Set(statements.flatMap((statement) => statement.classes));
  return {
    text: statements.map((statement) => statement.text).join('; '),
    classes: [...classes],
    relations: [...new Set(statements.flatMap((statement) => statement.relations))],
    functions: [...new Set(statements.flatMap((statement) => statement.functions ?? []))],
    command: statements[0]?.command ?? 'unknown',
  };
}

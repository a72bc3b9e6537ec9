import type { AgentIdentity } from '../identity/contract';

/**
 * What a protocol gateway asks the policy layer before anything reaches the target, and what it
 * gets back. gateway/postgres/ calls `evaluate` for every simple Query, every Parse and every
 * function call; nothing is forwarded until the decision is allow (or an approved review).
 */
export type StatementClass =
  | 'read'
  | 'write'
  | 'ddl'
  | 'dcl'
  | 'copy_from'
  | 'copy_to'
  | 'copy_program'
  | 'session'
  | 'transaction'
  | 'function_call'
  | 'utility';

export interface ClassifiedStatement {
  /** The statement's own text (one statement of a multi-statement string). */
  text: string;
  /** Every class found anywhere in the tree: `WITH x AS (DELETE …) SELECT …` is read and write. */
  classes: StatementClass[];
  /** Relations named, schema-qualified when written so ("public.orders"). */
  relations: string[];
  /** Functions called anywhere in the statement, qualified when written so ("pg_catalog.now"). */
  functions?: string[];
  /** The parser's node type of the top-level statement ("SelectStmt", "CopyStmt" …), for audit. */
  command?: string;
  /** For transaction control (TransactionStmt): which one; `AND CHAIN` opens a new block at once. */
  transaction?: { kind: TransactionKind; chain: boolean };
  /**
   * A prepared statement's: the search_path changes it makes each time it runs (a SQL EXECUTE of it,
   * or a protocol Execute, which the policy engine is not asked about).
   */
  searchPath?: SearchPathChange[];
}

/**
 * A change of search_path, which decides the schema of unqualified names: a list of schemas,
 * 'default' (RESET, SET … TO DEFAULT) or 'unknown' (set in a way the tree does not show, such as
 * set_config('search_path', …)). `local`: SET LOCAL, undone at the end of the transaction.
 */
export interface SearchPathChange {
  schemas: string[] | 'default' | 'unknown';
  local: boolean;
}

/** TransactionStmt kinds (the parser's TRANS_STMT_*). END is commit; ABORT is rollback. */
export type TransactionKind = 'begin' | 'start' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollback_to' | 'prepare' | 'commit_prepared' | 'rollback_prepared';

export interface PolicyRequest {
  sessionId: string;
  resource: string;
  identity: AgentIdentity;
  /** How the statement arrived: a simple Query, a Parse of the extended protocol, or a FunctionCall. */
  via: 'query' | 'parse' | 'function_call';
  text: string;
  /**
   * For a Parse: the prepared statement's name ('' for the unnamed one). SQL EXECUTE shares the
   * namespace of protocol-level prepared statements, so the engine remembers what each name runs.
   */
  statementName?: string;
  /**
   * Whether a transaction block may be open before this statement, from a data path that follows the
   * block itself (it keeps decisions and reuses them without asking, transaction control among them):
   * the engine takes it instead of its own view. Absent: the engine's own (it follows every statement
   * it is asked about). Only a search_path change outside a block is followed as certain.
   */
  block?: 'no' | 'maybe';
}

export type PolicyDecision =
  | { action: 'allow'; rule: string | null; statements: ClassifiedStatement[] }
  | { action: 'deny'; rule: string; reason: string; statements: ClassifiedStatement[] }
  | { action: 'review'; rule: string; reason: string; statements: ClassifiedStatement[] };

export type ReviewOutcome =
  | { outcome: 'approved'; reviewer: string; at: Date }
  | { outcome: 'denied'; reviewer: string; at: Date; reason: string }
  | { outcome: 'timed_out'; at: Date };

export interface PendingReview {
  reviewId: string;
  /** Settles when a human decides or the review times out; never rejects. */
  outcome: Promise<ReviewOutcome>;
  /**
   * The client went away (or cancelled) before a decision: settle the review now (as timed out,
   * with this reason), so no one approves a statement nothing waits for. No-op once settled.
   */
  withdraw(reason: string): void;
}

export interface PolicyEngine {
  /** Classifies with the real PostgreSQL parser and applies the rules of the resource and identity. */
  evaluate(request: PolicyRequest): Promise<PolicyDecision>;
  /**
   * The same decision, synchronously (classification needs no I/O once the parser is loaded), so a
   * gateway can forward an allowed statement in the same turn it arrived. Never throws: a failure
   * to decide is a denial.
   */
  evaluateNow(request: PolicyRequest): PolicyDecision;
  /** Holds a statement whose decision was `review` until a human (not the requester) decides. */
  requestReview(request: PolicyRequest, decision: Extract<PolicyDecision, { action: 'review' }>): Promise<PendingReview>;
  /**
   * How to mask a result set, from its column names (and source table OIDs where the server gave
   * them): null when nothing needs masking, else a function over each text-format field value.
   */
  maskerFor(resource: string, identity: AgentIdentity, columns: ReadonlyArray<MaskColumn>): Masker | null;
  /**
   * How to write a text-format value (a bind parameter) into the audit journal: sensitive values
   * (the value patterns of the mask rules that apply, and gateway.policy.auditRedact) are replaced.
   * null when nothing is redacted for this resource and identity.
   */
  auditRedactor(resource: string, identity: AgentIdentity): ((value: string) => string) | null;
  /**
   * Whether mask rules apply to this resource and identity (result columns, value patterns, bind
   * parameters in the journal): such PostgreSQL sessions stay on the JavaScript data path, which
   * rewrites rows and parameters.
   */
  masks(resource: string, identity: AgentIdentity): boolean;
  /** The client closed a prepared statement (Close 'S'): forget what the name stood for. */
  forgetStatement(sessionId: string, statementName: string): void;
  /**
   * A session starts: the schemas unqualified names resolve to in it before any SET, as the server
   * reported them at login ('unknown' when it did not; RESET search_path returns to them). Without
   * it the session starts from gateway.policy.searchPath.
   */
  startSession(sessionId: string, start: { searchPath: readonly string[] | 'unknown' }): void;
  /** The session ended: drop its state (prepared statements, search_path as followed). */
  endSession(sessionId: string): void;
  /**
   * A counter of the session's policy state (prepared statement names, search_path as followed; not
   * the transaction block, which a data path that keeps decisions follows itself: blockTransition()):
   * it changes whenever an evaluation, an approved review or a forgotten statement changes that
   * state. A data path that keeps decisions for reuse drops them when it changes.
   */
  stateVersion(sessionId: string): number;
}

export interface MaskColumn {
  /** The column name from RowDescription. */
  name: string;
  /** The source table's OID from RowDescription (0 when the column is not a table column). */
  tableOid: number;
  /**
   * The source table as "schema.table" when the gateway resolved tableOid (pg_class/pg_namespace);
   * a table-qualified mask rule masks a column of unresolved table origin, failing closed.
   */
  relation?: string;
  /** The column's type OID from RowDescription: lets binary-format values be masked correctly. */
  typeOid?: number;
}

export interface Masker {
  /** Indexes of the columns masked outright, for the audit summary. */
  maskedColumns: number[];
  /** The value to send the client for column `index` of a text-format field; null stays null. */
  mask(index: number, value: Buffer | null): Buffer | null;
  /**
   * The same for a binary-format field (the client asked for binary in Bind). Text-like types are
   * masked as text; a masked column of another type, or a value the patterns cannot read (unknown
   * or composite type), becomes NULL — failing closed, since a replacement string is no valid value.
   */
  maskBinary(index: number, value: Buffer | null): Buffer | null;
}

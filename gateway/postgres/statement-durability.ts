import type { AppendAck } from '../journal/contract';
import type { ClassifiedStatement } from '../policy/contract';
import { isSideEffectFreeFunction } from '../policy/statement-classifier';

/**
 * How durable a request's journal record must be before the request reaches the server
 * (`gateway.postgres.audit.readDurability`, see README "Audit durability").
 *
 * The invariant: nothing that can change state outside this session's open transaction reaches the
 * server before its record is durable (fsync'd). A statement that cannot change state, or whose
 * effects become permanent only when its transaction block commits, needs its record only
 * 'written' (in the journal file: a killed gateway process loses nothing, a host crash can lose the
 * last milliseconds): if the gateway dies, its upstream connection goes and the server rolls the
 * open transaction back, and the COMMIT that would make it permanent is itself durable first — and
 * since seqs are written and fsync'd in order, so is every record of the transaction before it.
 */

/** What running one statement can do, as far as the audit's durability goes. */
export type StatementEffect =
  /** A plain read (SELECT, SHOW, EXPLAIN) calling only side-effect-free built-ins. */
  | 'none'
  /** BEGIN / START TRANSACTION: opens a block. */
  | 'begin'
  /** SAVEPOINT, RELEASE, ROLLBACK TO: nothing permanent (outside a block they fail). */
  | 'savepoint'
  /** ROLLBACK / ABORT: ends a block and undoes it; AND CHAIN opens the next one. */
  | 'rollback'
  | 'rollback_chain'
  /** COMMIT / END, PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED: permanent. */
  | 'commit'
  | 'commit_chain'
  /** INSERT / UPDATE / DELETE / MERGE (and SELECT with data-modifying CTEs) calling only side-effect-free built-ins. */
  | 'transactional'
  /** Anything else: DDL, DCL, COPY, settings, locks, cursors, other functions, EXECUTE, unclassified. */
  | 'immediate';

/**
 * Built-ins on the side-effect-free list that still leave a trace outside the transaction: they
 * assign a transaction id (a counter that never goes back).
 */
const XID_ASSIGNING = new Set(['txid_current', 'pg_current_xact_id']);

const READ_COMMANDS = new Set(['SelectStmt', 'VariableShowStmt', 'ExplainStmt']);
const DML_COMMANDS = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

function callsOnlySideEffectFree(statement: ClassifiedStatement): boolean {
  for (const name of statement.functions ?? []) {
    if (!isSideEffectFreeFunction(name)) return false;
    const bare = name.startsWith('pg_catalog.') ? name.slice('pg_catalog.'.length) : name;
    if (XID_ASSIGNING.has(bare)) return false;
  }
  return true;
}

/**
 * The effect of one statement as the policy classifier read it (the real PostgreSQL parse tree).
 * Conservative: what the classification does not show to be harmless is 'immediate'.
 */
export function statementEffect(statement: ClassifiedStatement): StatementEffect {
  const transaction = statement.transaction;
  if (transaction) {
    switch (transaction.kind) {
      case 'begin':
      case 'start':
        return 'begin';
      case 'savepoint':
      case 'release':
      case 'rollback_to':
        return 'savepoint';
      case 'rollback':
        return transaction.chain ? 'rollback_chain' : 'rollback';
      case 'commit':
        return transaction.chain ? 'commit_chain' : 'commit';
      default:
        return 'commit';
    }
  }
  const command = statement.command;
  if (command === undefined || !callsOnlySideEffectFree(statement)) return 'immediate';
  const classes = statement.classes;
  if (READ_COMMANDS.has(command) && classes.every((c) => c === 'read')) return 'none';
  if (DML_COMMANDS.has(command) && classes.every((c) => c === 'read' || c === 'write')) return 'transactional';
  return 'immediate';
}

export function statementEffects(statements: readonly ClassifiedStatement[]): StatementEffect[] {
  return statements.map(statementEffect);
}

/**
 * The acknowledgement a request running `effects` in order needs, given whether the session is
 * inside a transaction block when it starts, and whether it is inside one afterwards.
 * `inBlock` must never be true when the session may be outside a block (see ProxySession).
 */
export function requestAck(effects: readonly StatementEffect[], inBlock: boolean): { ack: AppendAck; inBlock: boolean } {
  let ack: AppendAck = 'written';
  let block = inBlock;
  for (const effect of effects) {
    switch (effect) {
      case 'none':
      case 'savepoint':
        break;
      case 'begin':
        block = true;
        break;
      case 'rollback':
        block = false;
        break;
      case 'rollback_chain':
        break;
      case 'commit':
        ack = 'durable';
        block = false;
        break;
      case 'commit_chain':
        ack = 'durable';
        break;
      case 'transactional':
        // In autocommit (or a multi-statement Query's implicit block) it commits on its own.
        if (!block) ack = 'durable';
        break;
      case 'immediate':
        ack = 'durable';
        break;
    }
  }
  return { ack, inBlock: block };
}

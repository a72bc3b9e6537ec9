import { loadModule, parseSync } from 'libpg-query';
import type { ClassifiedStatement, SearchPathChange, StatementClass, TransactionKind } from './contract';
import { formatQualifiedName } from './name-patterns';
import { isParserSafeClientEncoding, isTrueSetting, PARSER_SETTINGS } from './parser-safety';

/**
 * Statement classification from PostgreSQL's own grammar (libpg_query compiled to WASM), so that
 * the gateway reads a statement exactly as the server will. The raw parse tree is JSON in which a
 * node is `{ "<NodeType>": { fields } }`; fields whose type is fixed by the grammar (a statement's
 * `relation`, `withClause`, `CallStmt.funccall`) hold the node's body without the wrapper.
 * The walk visits every node, so a DELETE nested in a CTE, a subquery or a PREPARE is still seen.
 */

let parserReady: Promise<void> | null = null;
let parserLoaded = false;

/** Loads the WASM parser once; classifySql needs it. */
export function loadStatementParser(): Promise<void> {
  parserReady ??= loadModule().then(() => {
    parserLoaded = true;
  });
  return parserReady;
}

/** What a prepared statement's name stands for, per session (SQL PREPARE and protocol Parse share one namespace). */
export type PreparedStatements = ReadonlyMap<string, ClassifiedStatement>;

export type PreparedEffect = { op: 'set'; name: string; statement: ClassifiedStatement } | { op: 'delete'; name: string } | { op: 'clear' };

/** A change of search_path (see SearchPathChange) made by one statement of a text. */
export interface SearchPathEffect extends SearchPathChange {
  /** Index of the statement in the text that makes the change. */
  statement: number;
}

export type Classification =
  | {
      ok: true;
      statements: ClassifiedStatement[];
      /** PREPARE / DEALLOCATE / DISCARD in this text, to apply to the session once it is allowed to run. */
      preparedEffects: PreparedEffect[];
      /** EXECUTE of names the gateway never saw prepared: nothing is known of what they would run. */
      unknownPrepared: string[];
      searchPathEffects: SearchPathEffect[];
      /** Changes to how the server lexes query text (see parser-safety.ts): the gateway must refuse them. */
      parserHazards: string[];
    }
  | { ok: false; error: string; position: number | null };

/** Functions without side effects that ordinary queries (and psql's \d commands) call all the time. */
const PURE_FUNCTIONS = new Set(
  `count sum avg min max array_agg string_agg bool_and bool_or every json_agg jsonb_agg json_object_agg jsonb_object_agg
  stddev stddev_pop stddev_samp variance var_pop var_samp percentile_cont percentile_disc mode bit_and bit_or corr covar_pop covar_samp
  row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
  lower upper length char_length character_length octet_length bit_length substr substring trim btrim ltrim rtrim replace concat concat_ws
  left right lpad rpad split_part position strpos regexp_replace regexp_match regexp_matches regexp_split_to_array regexp_split_to_table
  regexp_like regexp_count regexp_instr regexp_substr initcap repeat reverse format md5 sha224 sha256 sha384 sha512 starts_with translate to_hex ascii chr
  quote_ident quote_literal quote_nullable encode decode string_to_array array_to_string string_to_table overlay normalize unistr
  abs ceil ceiling floor round trunc sqrt cbrt power pow mod ln log log10 exp sign pi degrees radians div gcd lcm width_bucket random
  sin cos tan asin acos atan atan2 sind cosd tand
  now date_trunc date_part extract age to_char to_date to_timestamp to_number make_date make_time make_timestamp make_timestamptz make_interval
  clock_timestamp statement_timestamp transaction_timestamp timeofday timezone date_bin justify_days justify_hours justify_interval isfinite overlaps
  json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb json_object jsonb_object
  json_extract_path jsonb_extract_path json_extract_path_text jsonb_extract_path_text jsonb_set jsonb_set_lax jsonb_insert jsonb_pretty
  json_array_length jsonb_array_length json_array_elements jsonb_array_elements json_array_elements_text jsonb_array_elements_text
  json_each jsonb_each json_each_text jsonb_each_text json_object_keys jsonb_object_keys json_typeof jsonb_typeof json_strip_nulls jsonb_strip_nulls
  row_to_json array_to_json json_populate_record jsonb_populate_record json_to_record jsonb_to_record json_to_recordset jsonb_to_recordset
  jsonb_path_query jsonb_path_query_array jsonb_path_query_first jsonb_path_exists jsonb_path_match
  array_length cardinality unnest array_append array_prepend array_cat array_position array_positions array_remove array_replace
  array_upper array_lower array_dims array_ndims array_fill generate_series generate_subscripts
  version current_setting current_database current_schema current_schemas current_query pg_backend_pid pg_typeof format_type
  gen_random_uuid uuid_generate_v4 col_description obj_description shobj_description
  pg_get_viewdef pg_get_indexdef pg_get_constraintdef pg_get_triggerdef pg_get_functiondef pg_get_function_arguments
  pg_get_function_result pg_get_function_identity_arguments pg_get_expr pg_get_userbyid pg_get_serial_sequence pg_get_statisticsobjdef
  pg_get_partkeydef pg_get_partition_constraintdef pg_get_ruledef pg_encoding_to_char pg_char_to_encoding
  pg_table_size pg_relation_size pg_total_relation_size pg_indexes_size pg_database_size pg_size_pretty pg_size_bytes pg_column_size
  pg_table_is_visible pg_type_is_visible pg_function_is_visible pg_is_in_recovery pg_postmaster_start_time pg_conf_load_time
  pg_my_temp_schema pg_is_other_temp_schema pg_get_keywords pg_relation_is_publishable pg_collation_is_visible pg_opclass_is_visible
  to_regclass to_regtype to_regproc to_regprocedure to_regnamespace to_regrole to_regoper
  has_table_privilege has_column_privilege has_schema_privilege has_database_privilege has_function_privilege has_sequence_privilege
  has_any_column_privilege pg_has_role row_security_active inet_server_addr inet_server_port inet_client_addr inet_client_port
  txid_current txid_current_if_assigned pg_current_xact_id num_nulls num_nonnulls`
    .split(/\s+/)
    .filter((name) => name.length > 0),
);

/**
 * Whether a function called by this name is one of the built-ins known to have no side effects (the
 * same list that keeps the `function_call` class off ordinary queries); a schema other than
 * pg_catalog makes it someone else's function.
 */
export function isSideEffectFreeFunction(name: string): boolean {
  const bare = name.startsWith('pg_catalog.') ? name.slice('pg_catalog.'.length) : name;
  return PURE_FUNCTIONS.has(bare) && !(bare in FUNCTION_CLASSES) && !OPAQUE_SQL_FUNCTIONS.has(bare);
}

const TRANSACTION_KINDS: Record<string, TransactionKind> = {
  TRANS_STMT_BEGIN: 'begin',
  TRANS_STMT_START: 'start',
  TRANS_STMT_COMMIT: 'commit',
  TRANS_STMT_ROLLBACK: 'rollback',
  TRANS_STMT_SAVEPOINT: 'savepoint',
  TRANS_STMT_RELEASE: 'release',
  TRANS_STMT_ROLLBACK_TO: 'rollback_to',
  TRANS_STMT_PREPARE: 'prepare',
  TRANS_STMT_COMMIT_PREPARED: 'commit_prepared',
  TRANS_STMT_ROLLBACK_PREPARED: 'rollback_prepared',
};

/** Functions that run SQL handed to them as a string: what they do cannot be read from the tree. */
const OPAQUE_SQL_FUNCTIONS = new Set([
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'dblink',
  'dblink_exec',
  'dblink_open',
  'dblink_send_query',
  'dblink_fetch',
]);

/** Built-in functions that change data or session state although called from a SELECT. */
const FUNCTION_CLASSES: Record<string, StatementClass[]> = {
  nextval: ['write'],
  setval: ['write'],
  lo_create: ['write'],
  lo_creat: ['write'],
  lo_unlink: ['write'],
  lo_put: ['write'],
  lo_from_bytea: ['write'],
  lo_import: ['write'],
  lo_export: ['write'],
  lowrite: ['write'],
  set_config: ['session'],
  pg_advisory_lock: ['utility'],
  pg_advisory_xact_lock: ['utility'],
};

/** Statement node types whose class does not follow from the name prefix alone. */
const NODE_CLASSES: Record<string, StatementClass[]> = {
  SelectStmt: ['read'],
  InsertStmt: ['write'],
  UpdateStmt: ['write'],
  DeleteStmt: ['write'],
  MergeStmt: ['write'],
  TruncateStmt: ['write', 'ddl'],
  CreateTableAsStmt: ['ddl', 'write'],
  RefreshMatViewStmt: ['write'],
  DoStmt: ['write', 'utility'],
  CallStmt: ['function_call', 'write'],
  VariableShowStmt: ['read'],
  FetchStmt: ['read'],
  ClosePortalStmt: ['read'],
  DeclareCursorStmt: [],
  PrepareStmt: [],
  ExecuteStmt: [],
  ExplainStmt: [],
  CopyStmt: [],
  VariableSetStmt: [],
  DeallocateStmt: ['session'],
  DiscardStmt: ['session'],
  ListenStmt: ['session'],
  UnlistenStmt: ['session'],
  NotifyStmt: ['utility'],
  TransactionStmt: ['transaction'],
  ConstraintsSetStmt: ['transaction'],
  LockStmt: ['utility'],
  LoadStmt: ['utility', 'ddl'],
  CheckPointStmt: ['utility'],
  VacuumStmt: ['utility'],
  ClusterStmt: ['utility'],
  ReindexStmt: ['utility'],
  CommentStmt: ['ddl'],
  RenameStmt: ['ddl'],
  DefineStmt: ['ddl'],
  IndexStmt: ['ddl'],
  RuleStmt: ['ddl'],
  ViewStmt: ['ddl'],
  CompositeTypeStmt: ['ddl'],
  ImportForeignSchemaStmt: ['ddl'],
  SecLabelStmt: ['ddl', 'dcl'],
  // Privileges, roles, row security and server configuration: data control.
  GrantStmt: ['dcl'],
  GrantRoleStmt: ['dcl'],
  CreateRoleStmt: ['dcl'],
  AlterRoleStmt: ['dcl'],
  AlterRoleSetStmt: ['dcl'],
  DropRoleStmt: ['dcl'],
  AlterDefaultPrivilegesStmt: ['dcl'],
  ReassignOwnedStmt: ['dcl'],
  DropOwnedStmt: ['dcl'],
  AlterSystemStmt: ['dcl'],
  CreatePolicyStmt: ['ddl', 'dcl'],
  AlterPolicyStmt: ['ddl', 'dcl'],
  AlterOwnerStmt: ['ddl', 'dcl'],
  CreateUserMappingStmt: ['dcl'],
  AlterUserMappingStmt: ['dcl'],
  DropUserMappingStmt: ['dcl'],
};

/** ALTER TABLE sub-commands that change who may do what: ownership and row-level security. */
const DCL_TABLE_COMMANDS = new Set(['AT_ChangeOwner', 'AT_EnableRowSecurity', 'AT_DisableRowSecurity', 'AT_ForceRowSecurity', 'AT_NoForceRowSecurity']);

/** DROP object types whose names are relations. */
const RELATION_OBJECT_TYPES = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_SEQUENCE', 'OBJECT_FOREIGN_TABLE', 'OBJECT_INDEX']);

function classesOfNode(type: string): StatementClass[] {
  const known = NODE_CLASSES[type];
  if (known) return known;
  if (!type.endsWith('Stmt')) return [];
  if (/^(Create|Alter|Drop)/.test(type)) return ['ddl'];
  return ['utility'];
}

type Json = unknown;
type JsonObject = Record<string, Json>;

function isObject(value: Json): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringValue(node: Json): string | null {
  if (isObject(node) && isObject(node.String) && typeof node.String.sval === 'string') return node.String.sval;
  return null;
}

function qualifiedName(parts: Json): string {
  if (!Array.isArray(parts)) return '';
  return formatQualifiedName(parts.map(stringValue).filter((part): part is string => part !== null));
}

/** Collects what one top-level statement touches. */
class StatementWalker {
  readonly classes = new Set<StatementClass>();
  readonly relations = new Set<string>();
  readonly functions = new Set<string>();
  readonly searchPath: SearchPathChange[] = [];
  readonly parserHazards: string[] = [];
  transaction: ClassifiedStatement['transaction'];

  constructor(
    private readonly prepared: Map<string, ClassifiedStatement>,
    private readonly effects: PreparedEffect[],
    private readonly unknownPrepared: string[],
    /**
     * `session`: the text reads the session's prepared statements (EXECUTE), so its result depends on
     * more than the text. `literals`: the walk looked at the value of a constant (a SET value,
     * set_config's setting name, EXPLAIN's ANALYZE option), so texts differing only in numeric
     * literals may classify differently.
     */
    private readonly reads: Reads,
  ) {}

  visit(value: Json, scope: ReadonlySet<string>): void {
    if (Array.isArray(value)) {
      for (const item of value) this.visit(item, scope);
      return;
    }
    if (!isObject(value)) return;
    // A RangeVar body sits unwrapped in typed fields (`relation`, IntoClause `rel`).
    if (typeof value.relname === 'string') {
      this.rangeVar(value, scope);
      return;
    }
    for (const [key, child] of Object.entries(value)) {
      // Node type names are PascalCase, field names are not.
      const first = key.charCodeAt(0);
      if (first >= 65 && first <= 90 && isObject(child)) this.node(key, child, scope);
      else this.visit(child, scope);
    }
  }

  private rangeVar(body: JsonObject, scope: ReadonlySet<string>, isTarget = false): void {
    const schema = typeof body.schemaname === 'string' ? body.schemaname : null;
    const catalog = typeof body.catalogname === 'string' ? body.catalogname : null;
    const name = body.relname as string;
    // An unqualified name that a WITH in scope defines is that CTE, not a table — except as the
    // target of INSERT/UPDATE/DELETE/MERGE, which always names a table.
    if (!isTarget && schema === null && scope.has(name)) return;
    this.relations.add(formatQualifiedName([catalog, schema, name].filter((part): part is string => part !== null)));
  }

  private node(type: string, body: JsonObject, scope: ReadonlySet<string>): void {
    for (const cls of classesOfNode(type)) this.classes.add(cls);
    switch (type) {
      case 'RangeVar':
        this.rangeVar(body, scope);
        return;
      case 'FuncCall':
        this.functionCall(body, scope);
        return;
      case 'SelectStmt':
        if (body.intoClause !== undefined) {
          this.classes.add('ddl');
          this.classes.add('write');
        }
        this.withScope(body, scope, null);
        return;
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        this.withScope(body, scope, 'relation');
        return;
      case 'CallStmt':
        // A procedure's body is code the gateway does not see: it may set search_path (set_config).
        this.searchPath.push({ schemas: 'unknown', local: false });
        if (isObject(body.funccall)) this.functionCall(body.funccall, scope);
        return;
      case 'DoStmt':
        // Opaque code, likewise.
        this.searchPath.push({ schemas: 'unknown', local: false });
        return;
      case 'CopyStmt':
        this.copy(body, scope);
        return;
      case 'ExplainStmt':
        this.explain(body, scope);
        return;
      case 'VariableSetStmt':
        this.setting(body, scope);
        return;
      case 'AlterTableCmd':
        if (typeof body.subtype === 'string' && DCL_TABLE_COMMANDS.has(body.subtype)) this.classes.add('dcl');
        this.visit(body, scope);
        return;
      case 'DropStmt':
        if (typeof body.removeType === 'string' && RELATION_OBJECT_TYPES.has(body.removeType) && Array.isArray(body.objects)) {
          for (const object of body.objects) {
            const items = isObject(object) && isObject(object.List) ? object.List.items : null;
            const name = qualifiedName(items);
            if (name) this.relations.add(name);
          }
        }
        return;
      case 'PrepareStmt':
        this.prepare(body, scope);
        return;
      case 'ExecuteStmt':
        this.execute(body, scope);
        return;
      case 'DeallocateStmt':
        if (body.isall === true || typeof body.name !== 'string') this.clearPrepared();
        else this.forgetPrepared(body.name);
        return;
      case 'DiscardStmt':
        if (body.target === 'DISCARD_ALL' || body.target === 'DISCARD_PLANS') this.clearPrepared();
        return;
      case 'TransactionStmt': {
        const kind = typeof body.kind === 'string' ? TRANSACTION_KINDS[body.kind] : undefined;
        if (kind) this.transaction ??= { kind, chain: body.chain === true };
        return;
      }
      default:
        this.visit(body, scope);
    }
  }

  /** Visits a statement that may carry a WITH clause, with the CTE names in scope. */
  private withScope(body: JsonObject, outer: ReadonlySet<string>, targetField: string | null): void {
    let scope = outer;
    const withClause = body.withClause;
    if (isObject(withClause) && Array.isArray(withClause.ctes)) {
      const recursive = withClause.recursive === true;
      const ctes = withClause.ctes.map((cte) => (isObject(cte) && isObject(cte.CommonTableExpr) ? cte.CommonTableExpr : {}));
      const names = ctes.map((cte) => (typeof cte.ctename === 'string' ? cte.ctename : ''));
      const inner = new Set(outer);
      ctes.forEach((cte, index) => {
        // A non-recursive CTE sees only the CTEs before it; WITH RECURSIVE sees them all.
        const visible = new Set(outer);
        for (const name of recursive ? names : names.slice(0, index)) visible.add(name);
        this.visit(cte.ctequery, visible);
        inner.add(names[index]!);
      });
      scope = inner;
    }
    for (const [key, child] of Object.entries(body)) {
      if (key === 'withClause') continue;
      if (key === targetField && isObject(child) && typeof child.relname === 'string') this.rangeVar(child, scope, true);
      else this.visit(child, scope);
    }
  }

  private functionCall(body: JsonObject, scope: ReadonlySet<string>): void {
    const name = qualifiedName(body.funcname);
    if (name) {
      this.functions.add(name);
      const bare = name.startsWith('pg_catalog.') ? name.slice('pg_catalog.'.length) : name;
      if (OPAQUE_SQL_FUNCTIONS.has(bare)) {
        this.classes.add('function_call');
        this.classes.add('write');
        this.classes.add('utility');
        // The SQL it runs is a string the gateway does not parse: it may set search_path.
        this.searchPath.push({ schemas: 'unknown', local: false });
      } else if (!PURE_FUNCTIONS.has(bare)) {
        this.classes.add('function_call');
      }
      for (const cls of FUNCTION_CLASSES[bare] ?? []) this.classes.add(cls);
      if (bare === 'set_config') this.configCall(body);
    }
    this.visit(body.args, scope);
    this.visit(body.agg_order, scope);
    this.visit(body.agg_filter, scope);
    this.visit(body.over, scope);
  }

  /** set_config(name, value, is_local) changes settings without a SET the tree would show. */
  private configCall(body: JsonObject): void {
    this.reads.literals = true;
    const args = Array.isArray(body.args) ? body.args : [];
    const setting = constantText(args[0])?.toLowerCase() ?? null;
    if (setting === null || setting === 'search_path') this.searchPath.push({ schemas: 'unknown', local: false });
    if (setting === null || PARSER_SETTINGS.has(setting)) {
      this.parserHazards.push(`set_config of ${setting ?? 'a computed setting name'} could change how the server reads query text`);
    }
  }

  private copy(body: JsonObject, scope: ReadonlySet<string>): void {
    if (body.is_program === true) {
      // Runs a shell command on the database server: its own class, whatever the direction.
      this.classes.add('copy_program');
    } else if (body.is_from === true) {
      this.classes.add('copy_from');
      this.classes.add('write');
    } else {
      this.classes.add('copy_to');
      this.classes.add('read');
    }
    // A file name without PROGRAM reads or writes the server's file system.
    if (body.is_program !== true && typeof body.filename === 'string') this.classes.add('utility');
    this.visit(body.relation, scope);
    this.visit(body.query, scope);
    this.visit(body.whereClause, scope);
  }

  /** EXPLAIN plans without running; EXPLAIN ANALYZE runs the statement, so it is what it explains. */
  private explain(body: JsonObject, scope: ReadonlySet<string>): void {
    this.reads.literals = true;
    if (explainRuns(body.options)) {
      this.visit(body.query, scope);
      return;
    }
    const inner = new StatementWalker(new Map(this.prepared), [], this.unknownPrepared, this.reads);
    inner.visit(body.query, scope);
    this.classes.add('read');
    // Planning may evaluate functions (constant folding), so calls stay visible.
    if (inner.classes.has('function_call')) this.classes.add('function_call');
    for (const relation of inner.relations) this.relations.add(relation);
    for (const fn of inner.functions) this.functions.add(fn);
  }

  private setting(body: JsonObject, scope: ReadonlySet<string>): void {
    this.reads.literals = true;
    const name = typeof body.name === 'string' ? body.name.toLowerCase() : '';
    if (body.kind === 'VAR_SET_MULTI' && (name === 'transaction' || name === 'session characteristics')) {
      this.classes.add('transaction');
    } else if (name === 'role' || name === 'session_authorization') {
      // SET ROLE / SET SESSION AUTHORIZATION change whose privileges the session runs with.
      this.classes.add('session');
      this.classes.add('dcl');
    } else {
      this.classes.add('session');
    }
    if (name === 'standard_conforming_strings' && body.kind === 'VAR_SET_VALUE') {
      const value = constantText(Array.isArray(body.args) ? body.args[0] : undefined);
      if (value === null || !isTrueSetting(value)) this.parserHazards.push('turning standard_conforming_strings off changes where string literals end');
    }
    if (name === 'client_encoding' && body.kind === 'VAR_SET_VALUE') {
      const value = constantText(Array.isArray(body.args) ? body.args[0] : undefined);
      if (value === null || !isParserSafeClientEncoding(value)) {
        this.parserHazards.push(`client encoding ${value ?? '(computed)'} is not ASCII-safe: the server would read the query text differently`);
      }
    }
    const local = body.is_local === true;
    if (name === 'search_path' || body.kind === 'VAR_RESET_ALL') {
      if (body.kind === 'VAR_SET_VALUE' && Array.isArray(body.args)) {
        const schemas = body.args.map((arg) => (isObject(arg) && isObject(arg.A_Const) && isObject(arg.A_Const.sval) ? arg.A_Const.sval.sval : null));
        this.searchPath.push({ schemas: schemas.every((schema) => typeof schema === 'string') ? (schemas as string[]).filter((schema) => schema !== '') : 'unknown', local });
      } else if (body.kind === 'VAR_SET_DEFAULT' || body.kind === 'VAR_RESET' || body.kind === 'VAR_RESET_ALL') {
        this.searchPath.push({ schemas: 'default', local });
      } else {
        this.searchPath.push({ schemas: 'unknown', local });
      }
    }
    this.visit(body.args, scope);
  }

  private prepare(body: JsonObject, scope: ReadonlySet<string>): void {
    const inner = new StatementWalker(this.prepared, this.effects, this.unknownPrepared, this.reads);
    inner.visit(body.query, scope);
    this.absorb(inner);
    if (typeof body.name === 'string') {
      const statement: ClassifiedStatement = {
        text: '',
        classes: [...inner.classes],
        relations: [...inner.relations],
        functions: [...inner.functions],
        command: 'PrepareStmt',
      };
      if (inner.searchPath.length > 0) statement.searchPath = inner.searchPath.map((change) => ({ ...change }));
      this.prepared.set(body.name, statement);
      this.effects.push({ op: 'set', name: body.name, statement });
    }
  }

  private execute(body: JsonObject, scope: ReadonlySet<string>): void {
    this.reads.session = true;
    const name = typeof body.name === 'string' ? body.name : '';
    const statement = this.prepared.get(name);
    if (statement) {
      for (const cls of statement.classes) this.classes.add(cls);
      for (const relation of statement.relations) this.relations.add(relation);
      for (const fn of statement.functions ?? []) this.functions.add(fn);
      // What it runs changes search_path here, as if written here.
      for (const change of statement.searchPath ?? []) this.searchPath.push({ ...change });
    } else {
      this.unknownPrepared.push(name);
      this.classes.add('utility');
    }
    this.visit(body.params, scope);
  }

  private forgetPrepared(name: string): void {
    this.prepared.delete(name);
    this.effects.push({ op: 'delete', name });
  }

  private clearPrepared(): void {
    this.prepared.clear();
    this.effects.push({ op: 'clear' });
  }

  private absorb(inner: StatementWalker): void {
    this.searchPath.push(...inner.searchPath);
    this.parserHazards.push(...inner.parserHazards);
    for (const cls of inner.classes) this.classes.add(cls);
    for (const relation of inner.relations) this.relations.add(relation);
    for (const fn of inner.functions) this.functions.add(fn);
  }
}

/** The text of a constant (string, integer or boolean), or null when the value is computed. */
function constantText(node: Json): string | null {
  if (!isObject(node) || !isObject(node.A_Const)) return null;
  const constant = node.A_Const;
  if (isObject(constant.sval) && typeof constant.sval.sval === 'string') return constant.sval.sval;
  if (isObject(constant.ival)) return String(constant.ival.ival ?? 0);
  if (isObject(constant.boolval)) return constant.boolval.boolval === true ? 'true' : 'false';
  return null;
}

/** ANALYZE present and not explicitly false/off/0. */
function explainRuns(options: Json): boolean {
  if (!Array.isArray(options)) return false;
  for (const option of options) {
    const def = isObject(option) && isObject(option.DefElem) ? option.DefElem : null;
    if (!def || def.defname !== 'analyze') continue;
    const arg = def.arg;
    if (arg === undefined) return true;
    const text = stringValue(arg);
    if (text !== null) return !['false', 'off', '0', 'no'].includes(text.toLowerCase());
    if (isObject(arg) && isObject(arg.Boolean)) return arg.Boolean.boolval === true;
    if (isObject(arg) && isObject(arg.Integer)) return arg.Integer.ival !== undefined && arg.Integer.ival !== 0;
    return true;
  }
  return false;
}

/** Classifications by exact text, for texts that do not read session state (no EXECUTE). */
const CACHE_ENTRIES = 2048;
const CACHE_MAX_TEXT = 8192;
const cache = new Map<string, Classification>();
/**
 * Classifications by literal shape (see literalShape), for texts whose walk read no session state
 * and no constant's value: clients that inline values (`WHERE aid = 4711`, pgbench -M simple, ORMs
 * without parameters) send a new text every time, and the parse is most of the cost of a decision.
 * Each entry keeps where its statements lie in the shape, so a hit cuts the statement texts out of
 * the text actually sent.
 */
const shapeCache = new Map<string, { result: Extract<Classification, { ok: true }>; spans: Array<[number, number]> }>();

type Reads = { session: boolean; literals: boolean };

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  if (map.size >= CACHE_ENTRIES) map.delete(map.keys().next().value as string);
  map.set(key, value);
}

/**
 * Splits and classifies a query string. `prepared` is the session's prepared statements (read, not
 * changed: the changes come back as `preparedEffects`). Unparseable input is a result, not a throw.
 * The extended protocol parses the same text again and again, so results are cached by text (and,
 * for texts with inlined numbers, by shape); a cached result is copied out, so callers may keep or
 * change what they get.
 */
export function classifySql(text: string, prepared: PreparedStatements = new Map()): Classification {
  if (!parserLoaded) throw new Error('the PostgreSQL parser is not loaded: await loadStatementParser() first');
  const hit = cache.get(text);
  if (hit) {
    cache.delete(text);
    cache.set(text, hit);
    return copyClassification(hit);
  }
  const shape = text.length <= CACHE_MAX_TEXT ? literalShape(text) : null;
  if (shape) {
    const shaped = shapeCache.get(shape.key);
    if (shaped) {
      shapeCache.delete(shape.key);
      shapeCache.set(shape.key, shaped);
      const copy = copyClassification(shaped.result) as Extract<Classification, { ok: true }>;
      copy.statements.forEach((statement, i) => {
        const [start, end] = shaped.spans[i]!;
        statement.text = text.slice(shape.original(start), shape.original(end)).trim();
      });
      return copy;
    }
  }
  const reads: Reads = { session: false, literals: false };
  const spans: Array<[number, number]> = [];
  const result = classifyText(text, prepared, reads, spans);
  if (!reads.session && text.length <= CACHE_MAX_TEXT) {
    remember(cache, text, copyClassification(result));
    // Parse failures are not cached by shape: a literal's value can decide whether a text parses (float(0)).
    if (shape && result.ok && !reads.literals) {
      remember(shapeCache, shape.key, { result: copyClassification(result) as Extract<Classification, { ok: true }>, spans: spans.map(([start, end]) => [shape.shaped(start), shape.shaped(end)]) });
    }
  }
  return result;
}

/**
 * Whether every text of `text`'s literal shape classifies as `text` did, apart from the statements'
 * own texts: the classification was kept by shape (it read no literal value and no session state),
 * so a policy decision made from it holds for the whole shape. Returns the statements' spans in
 * the shape's offsets (before trimming), from which another text of the shape gets its statement
 * texts; null when the shape is not known to be literal-blind. Ask after classifySql(text).
 */
export function reusableShape(text: string): { key: string; spans: ReadonlyArray<readonly [number, number]> } | null {
  const shape = text.length <= CACHE_MAX_TEXT ? literalShape(text) : null;
  const shaped = shape ? shapeCache.get(shape.key) : undefined;
  return shape && shaped ? { key: shape.key, spans: shaped.spans } : null;
}

/** Characters that may continue an identifier or a number token: a digit run next to one is part of that token. */
function continuesToken(code: number): boolean {
  return (
    (code >= 48 && code <= 57) || // 0-9
    (code >= 65 && code <= 90) || // A-Z
    (code >= 97 && code <= 122) || // a-z
    code === 95 || // _
    code === 36 || // $ (identifiers, $n parameters)
    code === 46 // . (1.5, .5, 5.)
  );
}

/**
 * The text with each integer literal of up to 9 digits written as 0, when that is certain to keep
 * the token stream the same apart from those values: the text holds no quotes, dollar quotes,
 * backslashes, comments or non-ASCII characters (in which digits could be part of a string, an
 * identifier or a comment), and each run replaced is bounded by characters that end a token (so it
 * is a whole ICONST, never part of `t1`, `$1`, `1.5`, `1e5` or `0x1F`). Up to 9 digits always lexes
 * as an integer constant, never as a numeric (FCONST) one. Null when the text does not qualify or
 * holds no such literal. `original`/`shaped` map character offsets between the two texts (ASCII only,
 * so characters are the bytes libpg_query's locations count).
 */
export function literalShape(text: string): { key: string; original(shapedOffset: number): number; shaped(originalOffset: number): number } | null {
  /** Each literal replaced: where it starts in the text and in the shape, and its length in the text. */
  const cuts: Array<{ at: number; shapedAt: number; length: number }> = [];
  let out = '';
  let copiedTo = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 126 || code === 39 || code === 34 || code === 36 || code === 92) return null; // non-ASCII ' " $ \
    if ((code === 45 && text.charCodeAt(i + 1) === 45) || (code === 47 && text.charCodeAt(i + 1) === 42)) return null; // -- /*
    if (code < 48 || code > 57) continue;
    let end = i + 1;
    while (end < text.length && text.charCodeAt(end) >= 48 && text.charCodeAt(end) <= 57) end++;
    const bounded = (i === 0 || !continuesToken(text.charCodeAt(i - 1))) && (end === text.length || !continuesToken(text.charCodeAt(end)));
    if (bounded && end - i <= 9) {
      out += text.slice(copiedTo, i);
      cuts.push({ at: i, shapedAt: out.length, length: end - i });
      out += '0';
      copiedTo = end;
    }
    i = end - 1;
  }
  if (cuts.length === 0) return null;
  out += text.slice(copiedTo);
  return {
    key: out,
    original(shapedOffset) {
      let offset = shapedOffset;
      for (const cut of cuts) {
        if (cut.shapedAt >= shapedOffset) break;
        offset += cut.length - 1;
      }
      return offset;
    },
    shaped(originalOffset) {
      let removed = 0;
      for (const cut of cuts) {
        if (cut.at >= originalOffset) break;
        removed += Math.min(cut.length, originalOffset - cut.at) - 1;
      }
      return originalOffset - removed;
    },
  };
}

function copyStatement(statement: ClassifiedStatement): ClassifiedStatement {
  return {
    ...statement,
    classes: [...statement.classes],
    relations: [...statement.relations],
    ...(statement.functions ? { functions: [...statement.functions] } : {}),
    ...(statement.transaction ? { transaction: { ...statement.transaction } } : {}),
    ...(statement.searchPath ? { searchPath: statement.searchPath.map((change) => ({ ...change, schemas: Array.isArray(change.schemas) ? [...change.schemas] : change.schemas })) } : {}),
  };
}

function copyClassification(result: Classification): Classification {
  if (!result.ok) return { ...result };
  return {
    ok: true,
    statements: result.statements.map(copyStatement),
    preparedEffects: result.preparedEffects.map((effect) => (effect.op === 'set' ? { ...effect, statement: copyStatement(effect.statement) } : { ...effect })),
    unknownPrepared: [...result.unknownPrepared],
    searchPathEffects: result.searchPathEffects.map((effect) => ({ ...effect, schemas: Array.isArray(effect.schemas) ? [...effect.schemas] : effect.schemas })),
    parserHazards: [...result.parserHazards],
  };
}

function classifyText(text: string, prepared: PreparedStatements, reads: Reads, spans: Array<[number, number]> = []): Classification {
  const effects: PreparedEffect[] = [];
  const unknownPrepared: string[] = [];
  const searchPathEffects: SearchPathEffect[] = [];
  const parserHazards: string[] = [];
  if (text.trim() === '') return { ok: true, statements: [], preparedEffects: effects, unknownPrepared, searchPathEffects, parserHazards };
  if (text.includes('\0')) return { ok: false, error: 'the query text contains a NUL byte', position: text.indexOf('\0') };
  let tree: { stmts?: Array<{ stmt?: Json; stmt_location?: number; stmt_len?: number }> };
  try {
    tree = parseSync(text) as typeof tree;
  } catch (err) {
    const details = (err as { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
    return { ok: false, error: (err as Error).message, position: typeof details?.cursorPosition === 'number' ? details.cursorPosition : null };
  }
  const bytes = Buffer.from(text, 'utf8');
  const session = new Map(prepared);
  const statements: ClassifiedStatement[] = [];
  for (const raw of tree.stmts ?? []) {
    const walker = new StatementWalker(session, effects, unknownPrepared, reads);
    try {
      walker.visit(raw.stmt, new Set());
    } catch (err) {
      // A tree deeper than the JavaScript stack: refuse it rather than classify part of it.
      if (err instanceof RangeError) return { ok: false, error: `statement nested too deeply to classify (${err.message})`, position: raw.stmt_location ?? 0 };
      throw err;
    }
    for (const change of walker.searchPath) searchPathEffects.push({ statement: statements.length, ...change });
    parserHazards.push(...walker.parserHazards);
    // Locations are byte offsets into the UTF-8 text; a missing length means "to the end".
    const start = raw.stmt_location ?? 0;
    const end = raw.stmt_len === undefined || raw.stmt_len === 0 ? bytes.length : start + raw.stmt_len;
    spans.push([start, end]);
    const command = isObject(raw.stmt) ? (Object.keys(raw.stmt)[0] ?? 'unknown') : 'unknown';
    statements.push({
      text: bytes.subarray(start, end).toString('utf8').trim(),
      classes: orderClasses(walker.classes),
      relations: [...walker.relations],
      functions: [...walker.functions],
      command,
      ...(walker.transaction ? { transaction: { ...walker.transaction } } : {}),
    });
  }
  return { ok: true, statements, preparedEffects: effects, unknownPrepared, searchPathEffects, parserHazards };
}

const CLASS_ORDER: StatementClass[] = ['read', 'write', 'ddl', 'dcl', 'copy_from', 'copy_to', 'copy_program', 'session', 'transaction', 'function_call', 'utility'];

function orderClasses(classes: ReadonlySet<StatementClass>): StatementClass[] {
  return CLASS_ORDER.filter((cls) => classes.has(cls));
}

import { GapwatchError } from '../../platform/errors';
import { SqlState } from './protocol';

/**
 * The PostgreSQL gateway's error catalogue. Each error that reaches an agent carries the SQLSTATE
 * the client receives in its ErrorResponse; callers branch on `code`.
 */
export class PostgresGatewayError extends GapwatchError {
  readonly sqlState: SqlState;

  constructor(code: string, sqlState: SqlState, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.sqlState = sqlState;
  }
}

/** The client sent something that is not the PostgreSQL protocol; its session is closed. */
export class FrontendProtocolError extends PostgresGatewayError {
  constructor(detail: string) {
    super('GW_ERR_PG_PROTOCOL', SqlState.ProtocolViolation, `protocol violation: ${detail}`);
  }
}

/** The agent's login failed: unknown or revoked identity, wrong token, or an unsupported method. */
export class AgentAuthError extends PostgresGatewayError {
  readonly login: string;

  constructor(login: string, detail: string, sqlState: SqlState = SqlState.InvalidPassword) {
    super('GW_ERR_PG_AUTH', sqlState, detail);
    this.login = login;
  }
}

/** The database the agent asked for names no configured resource. */
export class UnknownResourceError extends PostgresGatewayError {
  readonly database: string;

  constructor(database: string) {
    super(
      'GW_ERR_PG_UNKNOWN_RESOURCE',
      SqlState.InvalidCatalogName,
      `the gateway has no PostgreSQL resource for database "${database}"; connect with the resource name as the database (ask the gateway operator for the list)`,
    );
    this.database = database;
  }
}

/** The gateway could not log into the upstream server with the resource's credentials. */
export class UpstreamConnectError extends PostgresGatewayError {
  readonly resource: string;

  constructor(resource: string, detail: string, cause?: unknown) {
    super(
      'GW_ERR_PG_UPSTREAM',
      SqlState.SqlClientUnableToEstablishConnection,
      `the gateway could not reach the upstream server of resource "${resource}": ${detail}; the gateway operator should check the resource's address and credentials`,
      { cause },
    );
    this.resource = resource;
  }
}

/** A resource's credential source (env var, file) is missing or empty. */
export class CredentialUnavailableError extends PostgresGatewayError {
  readonly resource: string;

  constructor(resource: string, detail: string, cause?: unknown, setting = 'gateway.postgres.resources[].password') {
    super(
      'GW_ERR_PG_CREDENTIAL',
      SqlState.SqlClientUnableToEstablishConnection,
      `the upstream credential of resource "${resource}" is unavailable: ${detail}; fix ${setting} in the configuration`,
      { cause },
    );
    this.resource = resource;
  }
}

/** Reading the TLS certificate or key for the listener failed. */
export class ListenerTlsError extends GapwatchError {
  constructor(detail: string, cause?: unknown) {
    super('GW_ERR_PG_TLS', `the PostgreSQL listener's TLS setup failed: ${detail}; check gateway.postgres.tls.cert and .key`, { cause });
  }
}

/** The upstream server's stream broke the protocol; the session fails rather than guess. */
export class UpstreamProtocolError extends PostgresGatewayError {
  constructor(detail: string) {
    super('GW_ERR_PG_UPSTREAM_PROTOCOL', SqlState.ConnectionFailure, `the upstream server sent an invalid message: ${detail}`);
  }
}

/** The journal refused a record; the gateway stops forwarding rather than run unrecorded statements. */
export class AuditUnavailableError extends PostgresGatewayError {
  constructor(cause: unknown) {
    super(
      'GW_ERR_PG_AUDIT_UNAVAILABLE',
      SqlState.AdminShutdown,
      'the gateway cannot write its audit journal, so it ends this session instead of running unrecorded statements; the gateway operator should check the journal disk',
      { cause },
    );
  }
}

/** The gateway began shutting down while the session was logging in; it is not handed to a data path. */
export class GatewayShuttingDownError extends PostgresGatewayError {
  constructor() {
    super('GW_ERR_PG_SHUTTING_DOWN', SqlState.AdminShutdown, 'terminating connection: the gateway is shutting down');
  }
}

/**
 * The session would lex statements differently from the gateway's parser (standard_conforming_strings
 * off, or a client encoding that is not ASCII-safe: gateway/policy/parser-safety.ts), set before the
 * agent's first statement — startup options, ALTER ROLE / DATABASE — or by a statement the server ran:
 * a policy could be bypassed by a string literal that ends elsewhere, so the session is refused or ended.
 */
export class ParserHazardError extends PostgresGatewayError {
  constructor(setting: string, value: string, when: 'at login' | 'during the session') {
    super(
      'GW_ERR_PG_PARSER_HAZARD',
      SqlState.FeatureNotSupported,
      `the server reports ${setting} = ${value} ${when}; the gateway refuses sessions in which the server would read statements differently from the gateway's parser (standard_conforming_strings must be on, the client encoding ASCII-safe)`,
    );
  }
}

/**
 * The upstream session does not run as the resource's user: a setting the agent passed at startup
 * (`options=-c role=…`) or a role default switched it — what SET ROLE, refused as DCL, would do.
 */
export class SessionRoleError extends PostgresGatewayError {
  constructor(resource: string, expected: string, actual: string) {
    super(
      'GW_ERR_PG_SESSION_ROLE',
      SqlState.InsufficientPrivilege,
      `the upstream session of resource "${resource}" runs as role "${actual}", not as its configured user "${expected}" (a startup option such as -c role=…, or a role default); the gateway refuses sessions whose privileges are not the resource's own`,
    );
  }
}

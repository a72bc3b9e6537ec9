import { describeCause, GapwatchError } from '../../platform/errors';

/** The store's error catalogue. Codes are stable; callers branch on them. */

export class StoreUnreachableError extends GapwatchError {
  readonly where: string;

  constructor(where: string, cause: unknown) {
    super(
      'STORE_ERR_UNREACHABLE',
      `the ClickHouse store at ${where} did not answer: ${describeCause(cause)}. Check store.url, the network and the server; \`gapwatch doctor\` tests the connection`,
      { cause },
    );
    this.where = where;
  }
}

export class StoreEngineBusyError extends GapwatchError {
  readonly path: string;

  constructor(path: string, cause: unknown) {
    super(
      'STORE_ERR_ENGINE_BUSY',
      `the embedded store ${path} is open in another process (the embedded engine binds its data directory to one process): ${describeCause(cause)}. Query it through the process that owns it, stop that process, or configure store.url for a ClickHouse server`,
      { cause },
    );
    this.path = path;
  }
}

export class StorePasswordUnreadableError extends GapwatchError {
  constructor(source: string, cause?: unknown) {
    super(
      'STORE_ERR_PASSWORD_UNREADABLE',
      `cannot read the store password from ${source}${cause === undefined ? '' : `: ${describeCause(cause)}`}; fix store.passwordFile or store.passwordEnv`,
      { cause },
    );
  }
}

export class StoreTlsFileUnreadableError extends GapwatchError {
  constructor(key: string, file: string, cause: unknown) {
    super('STORE_ERR_TLS_FILE_UNREADABLE', `cannot read ${key} ${file}: ${describeCause(cause)}; fix store.tls in the configuration`, { cause });
  }
}

export class StoreMigrationError extends GapwatchError {
  readonly version: number;

  constructor(version: number, name: string, detail: string, cause?: unknown) {
    super('STORE_ERR_MIGRATION', `store migration ${version} (${name}) failed: ${detail}`, { cause });
    this.version = version;
  }
}

export class StoreQueryUnknownError extends GapwatchError {
  constructor(name: string, known: readonly string[]) {
    super(
      'STORE_ERR_QUERY_UNKNOWN',
      `no named query "${name}"; named queries: ${known.join(', ') || '(none)'}. Pass SQL text (starting with SELECT, WITH, SHOW, DESCRIBE or EXPLAIN) for an ad-hoc query`,
    );
  }
}

export class StoreQueryRefusedError extends GapwatchError {
  constructor(reason: string, cause?: unknown) {
    super(
      'STORE_ERR_QUERY_REFUSED',
      `query refused: ${reason}. \`gapwatch query\` only reads; writes go through the collector`,
      { cause },
    );
  }
}

export class StoreQueryFailedError extends GapwatchError {
  constructor(cause: unknown) {
    super('STORE_ERR_QUERY_FAILED', `query failed: ${describeCause(cause)}`, { cause });
  }
}

export class WriterClosedError extends GapwatchError {
  constructor() {
    super('STORE_ERR_WRITER_CLOSED', 'the store writer is closed; rows can no longer be accepted (this is a bug in the caller)');
  }
}

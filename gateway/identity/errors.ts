import { GapwatchError } from '../../platform/errors';

/** The identity store's error catalogue: callers branch on `code`. */
export class IdentityInputError extends GapwatchError {
  readonly field: string;

  constructor(field: string, message: string) {
    super('IDENTITY_ERR_INVALID_INPUT', message);
    this.field = field;
  }
}

export class IdentityExistsError extends GapwatchError {
  readonly login: string;

  constructor(login: string) {
    super(
      'IDENTITY_ERR_EXISTS',
      `identity ${login} already has an active token; revoke it first (\`gapwatch token revoke ${login}\`) or pass --replace to issue a new one`,
    );
    this.login = login;
  }
}

export class IdentityNotFoundError extends GapwatchError {
  readonly login: string;

  constructor(login: string) {
    super('IDENTITY_ERR_NOT_FOUND', `no identity named ${login}; \`gapwatch token list\` shows the known ones`);
    this.login = login;
  }
}

export class IdentityStoreCorruptError extends GapwatchError {
  readonly file: string;

  constructor(file: string, detail: string, cause?: unknown) {
    super(
      'IDENTITY_ERR_STORE_CORRUPT',
      `identity file ${file} is unreadable (${detail}); nothing was changed: restore it from a backup, or move it away and issue new tokens`,
      { cause },
    );
    this.file = file;
  }
}

export class IdentityStoreBusyError extends GapwatchError {
  readonly lockFile: string;

  constructor(lockFile: string, holder: number) {
    super(
      'IDENTITY_ERR_BUSY',
      `identity file is being changed by process ${holder} (lock ${lockFile}); retry when it has finished, or remove the lock if that process is gone`,
    );
    this.lockFile = lockFile;
  }
}

export class IdentityStoreAccessError extends GapwatchError {
  readonly file: string;

  constructor(file: string, cause: unknown) {
    super(
      'IDENTITY_ERR_ACCESS',
      `cannot access identity file ${file} (${(cause as Error).message}); run gapwatch as the user that owns the data directory, or as root`,
      { cause },
    );
    this.file = file;
  }
}

export class IdentityStoreInsecureError extends GapwatchError {
  readonly file: string;

  constructor(file: string, detail: string) {
    super(
      'IDENTITY_ERR_INSECURE',
      `identity file ${file} ${detail}: anyone who can write it can add a login; nothing was read. Fix it with \`chown <gateway user> ${file} && chmod 600 ${file}\` after checking its content`,
    );
    this.file = file;
  }
}

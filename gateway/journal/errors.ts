import { GapwatchError, describeCause } from '../../platform/errors';

/** The journal's error catalogue. Callers branch on `code`. */

/** A body handed to append() cannot be encoded; nothing was written. */
export class JournalRecordInvalidError extends GapwatchError {
  readonly path: string;

  constructor(path: string, reason: string) {
    super('GW_ERR_JOURNAL_RECORD_INVALID', `journal record field ${path} ${reason}; the record was not written, fix the caller`);
    this.path = path;
  }
}

export class JournalRecordTooLargeError extends GapwatchError {
  readonly bytes: number;
  readonly limit: number;

  constructor(bytes: number, limit: number) {
    super(
      'GW_ERR_JOURNAL_RECORD_TOO_LARGE',
      `journal record of ${bytes} bytes exceeds the ${limit}-byte limit; the record was not written: split or truncate large values (statement text, shell output) before journaling`,
    );
    this.bytes = bytes;
    this.limit = limit;
  }
}

/**
 * Stored journal data is damaged somewhere other than a torn tail (which recovery handles). The
 * journal refuses to open rather than build on a chain it cannot trust.
 */
export class JournalCorruptError extends GapwatchError {
  readonly file: string;
  readonly offset: number;
  /** The last intact record before the damage, 0 when none. */
  readonly afterSeq: bigint;

  constructor(file: string, offset: number, afterSeq: bigint, reason: string) {
    super(
      'GW_ERR_JOURNAL_CORRUPT',
      `journal file ${file} is damaged at byte ${offset} (after seq ${afterSeq}): ${reason}; run \`gapwatch verify\` on the journal directory, keep a copy of it as evidence, then move the damaged journal aside to start a new one`,
    );
    this.file = file;
    this.offset = offset;
    this.afterSeq = afterSeq;
  }
}

/**
 * A write or fsync failed. After a failed fsync the kernel may have dropped the dirty pages, so
 * nothing already written can be trusted to be durable: the journal stops accepting appends
 * (fail-stop) and must be reopened, which recovers the tail from what is really on disk.
 */
export class JournalWriteFailedError extends GapwatchError {
  readonly dir: string;

  constructor(dir: string, cause: unknown) {
    super(
      'GW_ERR_JOURNAL_WRITE_FAILED',
      `journal ${dir} could not write or fsync (${describeCause(cause)}); it accepts no more records until reopened: check the disk (space, errors in dmesg), then restart the gateway`,
      { cause },
    );
    this.dir = dir;
  }
}

export class JournalClosedError extends GapwatchError {
  constructor(dir: string) {
    super('GW_ERR_JOURNAL_CLOSED', `journal ${dir} is closed; the record was not written (the gateway is shutting down)`);
  }
}

/** Two writers of one journal would interleave two chains; one process, one writer. */
export class JournalInUseError extends GapwatchError {
  readonly dir: string;

  constructor(dir: string) {
    super('GW_ERR_JOURNAL_IN_USE', `journal ${dir} is already open for writing in this process; share the one Journal instance`);
    this.dir = dir;
  }
}

export class JournalKeyError extends GapwatchError {
  readonly file: string;

  constructor(file: string, reason: string, cause?: unknown) {
    super('GW_ERR_JOURNAL_KEY', `journal signing key ${file}: ${reason}`, cause === undefined ? undefined : { cause });
    this.file = file;
  }
}

/** The directory holds another gateway's journal: appending would mix two gateways in one chain. */
export class JournalGatewayMismatchError extends GapwatchError {
  readonly dir: string;
  readonly found: string;
  readonly expected: string;

  constructor(dir: string, found: string, expected: string) {
    super(
      'GW_ERR_JOURNAL_GATEWAY_MISMATCH',
      `journal ${dir} belongs to gateway "${found}", not "${expected}"; one journal directory belongs to one gateway id: check gateway.id and dataDir`,
    );
    this.dir = dir;
    this.found = found;
    this.expected = expected;
  }
}

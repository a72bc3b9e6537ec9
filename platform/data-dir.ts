import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { GapwatchError } from './errors';

export class DataDirLockedError extends GapwatchError {
  readonly dataDir: string;
  readonly pid: number;

  constructor(dataDir: string, pid: number) {
    super(
      'DATA_DIR_ERR_LOCKED',
      `data directory ${dataDir} is in use by gapwatch process ${pid}; stop that process, or give this instance its own dataDir`,
    );
    this.dataDir = dataDir;
    this.pid = pid;
  }
}

export interface DataDirLock {
  readonly dataDir: string;
  release(): void;
}

/**
 * One gapwatch process owns a data directory: the embedded store binds its directory to one process,
 * and two writers of one spool or journal would corrupt it. The lock is a pid file created
 * exclusively; a file left by a process that no longer exists is taken over.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const pidFile = join(dataDir, 'gapwatch.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(pidFile, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return {
        dataDir,
        release() {
          if (released) return;
          released = true;
          rmSync(pidFile, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
        throw new DataDirLockedError(dataDir, holder);
      }
      rmSync(pidFile, { force: true });
    }
  }
  throw new DataDirLockedError(dataDir, -1);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

import { closeSync, fsyncSync, linkSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

/** A temporary name next to `path`, so a rename or link stays within one filesystem (and is atomic). */
function temporaryPath(path: string): string {
  return join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
}

function writeDurably(path: string, content: string | Buffer, mode: number): void {
  // 'wx' with an explicit mode: the file never exists with looser permissions, whatever the umask widens.
  const fd = openSync(path, 'wx', mode);
  try {
    const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    let offset = 0;
    while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `path` with `content` so that a reader sees the old file or the new one, never a torn
 * write, and a crash leaves one of the two: write a temporary file, fsync it, rename it over.
 */
export function writeFileAtomic(path: string, content: string | Buffer, mode = 0o600): void {
  const temp = temporaryPath(path);
  try {
    writeDurably(temp, content, mode);
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  syncDirectory(dirname(path));
}

/**
 * Creates `path` with `content` only if it does not exist yet, atomically: the first of several
 * racing writers (processes included) wins and the others get false. link(2) fails with EEXIST
 * instead of replacing, and the linked file is already complete when it appears.
 */
export function createFileExclusive(path: string, content: string | Buffer, mode = 0o600): boolean {
  const temp = temporaryPath(path);
  try {
    writeDurably(temp, content, mode);
    try {
      linkSync(temp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  } finally {
    rmSync(temp, { force: true });
  }
  syncDirectory(dirname(path));
  return true;
}

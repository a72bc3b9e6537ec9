import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * The unix sockets of the local server listening on a TCP port: the server that owns the listening
 * socket (found by inode in /proc/net/tcp{,6} and /proc/<pid>/fd) usually listens on a unix socket too
 * (PostgreSQL's <dir>/.s.PGSQL.<port>), and a client reaching it there bypasses the gateway just the same.
 * /proc/net/unix lists bound sockets with their inode and path; state 01 with flags 00010000 is listening.
 */
export function localSocketsOf(port: number, proc = '/proc'): string[] {
  const inodes = listeningInodes(port, proc);
  if (inodes.size === 0) return [];
  const owner = ownerOf(inodes, proc);
  if (owner === null) return [];
  const owned = socketInodesOf(owner, proc);
  const paths: string[] = [];
  let unix: string;
  try {
    unix = readFileSync(`${proc}/net/unix`, 'utf8');
  } catch {
    return [];
  }
  for (const line of unix.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8 || fields[3] !== '00010000') continue;
    if (owned.has(fields[6]!)) paths.push(fields[7]!);
  }
  // Debian's packaged clusters put theirs here; include it when the file exists and nothing was found.
  const debian = `/var/run/postgresql/.s.PGSQL.${port}`;
  if (paths.length === 0 && existsSync(debian)) paths.push(debian);
  return paths;
}

/** /proc/net/tcp lines: sl local_address rem_address st … inode; ports in hex, st 0A = LISTEN. */
function listeningInodes(port: number, proc: string): Set<string> {
  const out = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`${proc}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== '0A') continue;
      if (fields[1]!.split(':')[1] === hexPort) out.add(fields[9]!);
    }
  }
  return out;
}

function ownerOf(inodes: Set<string>, proc: string): string | null {
  for (const pid of readdirSync(proc)) {
    if (!/^\d+$/.test(pid)) continue;
    for (const inode of socketInodesOf(pid, proc)) if (inodes.has(inode)) return pid;
  }
  return null;
}

function socketInodesOf(pid: string, proc: string): Set<string> {
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`${proc}/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`${proc}/${pid}/fd/${fd}`);
      const match = /^socket:\[(\d+)\]$/.exec(target);
      if (match) out.add(match[1]!);
    } catch {
      // The fd closed while we looked.
    }
  }
  return out;
}

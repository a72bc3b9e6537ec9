import { access, readdir, readFile, readlink } from 'node:fs/promises';

/**
 * The unix sockets of the local server listening on a TCP port: the server that owns the listening
 * socket (found by inode in /proc/net/tcp{,6} and /proc/<pid>/fd) usually listens on a unix socket too
 * (PostgreSQL's <dir>/.s.PGSQL.<port>), and a client reaching it there bypasses the gateway just the same.
 * /proc/net/unix lists bound sockets with their inode and path; state 01 with flags 00010000 is listening.
 *
 * Every read is asynchronous: during a connect storm /proc/net/tcp holds one line per TIME_WAIT socket
 * and the owner search reads every process's fds, which done synchronously stalled the collector's
 * event loop (and every alert behind it) for hundreds of milliseconds at each inventory rebuild.
 */
export async function localSocketsOf(port: number, proc = '/proc'): Promise<string[]> {
  const inodes = await listeningInodes(port, proc);
  if (inodes.size === 0) return [];
  const owner = await ownerOf(inodes, proc);
  if (owner === null) return [];
  const owned = await socketInodesOf(owner, proc);
  const paths: string[] = [];
  let unix: string;
  try {
    unix = await readFile(`${proc}/net/unix`, 'utf8');
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
  if (paths.length === 0 && (await exists(debian))) paths.push(debian);
  return paths;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** /proc/net/tcp lines: sl local_address rem_address st … inode; ports in hex, st 0A = LISTEN. */
async function listeningInodes(port: number, proc: string): Promise<Set<string>> {
  const out = new Set<string>();
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  for (const file of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = await readFile(`${proc}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      // Most lines are connections of other ports: skip them before splitting.
      if (!line.includes(hexPort)) continue;
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== '0A') continue;
      if (`${fields[1]!.slice(fields[1]!.lastIndexOf(':'))} ` === hexPort) out.add(fields[9]!);
    }
  }
  return out;
}

async function ownerOf(inodes: Set<string>, proc: string): Promise<string | null> {
  for (const pid of await readdir(proc)) {
    if (!/^\d+$/.test(pid)) continue;
    for (const inode of await socketInodesOf(pid, proc)) if (inodes.has(inode)) return pid;
  }
  return null;
}

async function socketInodesOf(pid: string, proc: string): Promise<Set<string>> {
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = await readdir(`${proc}/${pid}/fd`);
  } catch {
    return out;
  }
  const targets = await Promise.all(fds.map((fd) => readlink(`${proc}/${pid}/fd/${fd}`).catch(() => '')));
  for (const target of targets) {
    const match = /^socket:\[(\d+)\]$/.exec(target);
    if (match) out.add(match[1]!);
  }
  return out;
}

import { access, readdir, readFile, readlink } from 'node:fs/promises';
import { SocketAddress } from 'node:net';
import { endianness } from 'node:os';

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

/** One LISTEN socket of this host as /proc/net/tcp{,6} lists it. */
export interface ListeningSocket {
  /** Canonical textual address (v4-mapped IPv6 stays as the kernel reports it on a tcp6 socket). */
  address: string;
  port: number;
  inode: string;
}

/** /proc/net/tcp{,6}: the `st` column of a listening socket (include/net/tcp_states.h TCP_LISTEN = 10). */
const TCP_LISTEN = '0A';

/**
 * The LISTEN sockets on these ports. /proc/net/tcp lines: sl local_address rem_address st … inode,
 * address and port in hex; the address is the kernel's in-memory __be32 (IPv4) or four __be32 words
 * (IPv6) printed as host-order integers, so on a little-endian host each 32-bit word reads byte-reversed.
 */
export async function listeningSockets(ports: ReadonlySet<number>, proc = '/proc'): Promise<ListeningSocket[]> {
  const out: ListeningSocket[] = [];
  const hexPorts = new Map([...ports].map((port) => [`:${port.toString(16).toUpperCase().padStart(4, '0')}`, port]));
  for (const file of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = await readFile(`${proc}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      // Most lines are connections of other ports: skip them before splitting.
      if (!line.includes(` ${TCP_LISTEN} `)) continue;
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== TCP_LISTEN) continue;
      const local = fields[1]!;
      const colon = local.lastIndexOf(':');
      const port = hexPorts.get(local.slice(colon));
      if (port === undefined) continue;
      const address = procAddress(local.slice(0, colon));
      if (address !== null) out.push({ address, port, inode: fields[9]! });
    }
  }
  return out;
}

function procAddress(hex: string): string | null {
  if (hex.length !== 8 && hex.length !== 32) return null;
  const bytes = Buffer.from(hex, 'hex');
  if (endianness() === 'LE') bytes.swap32();
  if (bytes.length === 4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // SocketAddress canonicalises through inet_pton/inet_ntop: "::1", "::", "::ffff:127.0.0.1".
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

/**
 * Every process holding one of these socket inodes, by inode. A listening socket is usually held by
 * one process, but a forked server's children may inherit it: all holders are returned. One pass over
 * /proc/<pid>/fd, read asynchronously (see localSocketsOf).
 */
export async function holdersOf(inodes: ReadonlySet<string>, proc = '/proc'): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  if (inodes.size === 0) return out;
  let entries: string[];
  try {
    entries = await readdir(proc);
  } catch {
    return out;
  }
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    for (const inode of await socketInodesOf(pid, proc)) {
      if (!inodes.has(inode)) continue;
      const list = out.get(inode) ?? [];
      list.push(Number(pid));
      out.set(inode, list);
    }
  }
  return out;
}

async function listeningInodes(port: number, proc: string): Promise<Set<string>> {
  return new Set((await listeningSockets(new Set([port]), proc)).map((s) => s.inode));
}

async function ownerOf(inodes: Set<string>, proc: string): Promise<string | null> {
  for (const pid of await readdir(proc)) {
    if (!/^\d+$/.test(pid)) continue;
    for (const inode of await socketInodesOf(pid, proc)) if (inodes.has(inode)) return pid;
  }
  return null;
}

/** The inodes of the sockets this process holds (its fds that read `socket:[inode]`). */
export async function socketInodesOf(pid: string, proc = '/proc'): Promise<Set<string>> {
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

import { basename } from 'node:path';

/** Where a client's command line says it will connect: a host (name, address or socket directory) and port. */
export interface ClientTarget {
  host: string;
  port: number | null;
  /** The unix socket path it names, for PostgreSQL clients given a socket directory. */
  unixPath: string | null;
}

type ClientFamily = 'postgres' | 'ssh' | 'http' | 'generic';

const FAMILY: Record<string, ClientFamily> = {
  psql: 'postgres',
  pg_dump: 'postgres',
  pg_dumpall: 'postgres',
  pg_restore: 'postgres',
  pgcli: 'postgres',
  ssh: 'ssh',
  scp: 'ssh',
  sftp: 'ssh',
  rsync: 'ssh',
  curl: 'http',
  wget: 'http',
};

/**
 * Short options that take a value, per OpenSSH client (ssh(1), scp(1), sftp(1) SYNOPSIS), and the one
 * that is the port: ssh -p, scp/sftp -P (their -p is "preserve times", a flag). rsync's remote shell
 * comes with -e. Knowing them keeps an option's value from being read as the destination.
 */
const SSH_VALUE_OPTIONS: Record<string, { withValue: string; port: string | null }> = {
  ssh: { withValue: 'BbcDEeFIiJLlmOoPpQRSWw', port: 'p' },
  scp: { withValue: 'cDFiJlLoPSX', port: 'P' },
  sftp: { withValue: 'BbcDFiJlLoPRSsX', port: 'P' },
  rsync: { withValue: 'e', port: null },
};

/** Default ports when the command line names none (libpq 5432, ssh 22, http 80 / https 443). */
const DEFAULT_PORT: Record<ClientFamily, number | null> = { postgres: 5432, ssh: 22, http: 80, generic: null };

/** The client program an exec runs, by file name or argv[0] (symlinks such as pg_wrapper keep argv[0]). */
export function clientName(filename: string, argv: readonly string[], known: ReadonlySet<string>): string | null {
  for (const candidate of [basename(filename), argv[0] ? basename(argv[0]) : '']) if (known.has(candidate)) return candidate;
  return null;
}

/**
 * The targets a known client's argv names: PostgreSQL -h/--host, -p/--port, postgres:// URIs and
 * "host=… port=…" conninfo strings (libpq: a host starting with "/" is a socket directory, the
 * socket being <dir>/.s.PGSQL.<port>); ssh-style user@host[:path] and -p; URLs for the HTTP clients;
 * `host port` pairs for the generic tools (nc, telnet).
 */
export function clientTargets(client: string, argv: readonly string[]): ClientTarget[] {
  const family = FAMILY[client] ?? 'generic';
  const hosts: Array<{ host: string; port: number | null }> = [];
  let port: number | null = null;
  const args = argv.slice(1);
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = (): string | undefined => args[++i];
    if (family === 'ssh' && arg.length > 1 && arg.startsWith('-') && !arg.startsWith('--')) {
      port = sshOption(client, arg, value) ?? port;
      continue;
    }
    if (family === 'postgres' && (arg === '-h' || arg === '--host')) pushHost(hosts, value());
    else if (family === 'postgres' && arg.startsWith('--host=')) pushHost(hosts, arg.slice(7));
    else if (family === 'postgres' && /^-h./.test(arg)) pushHost(hosts, arg.slice(2));
    else if (family === 'postgres' && (arg === '-p' || arg === '--port')) port = toPort(value()) ?? port;
    else if (family === 'postgres' && arg.startsWith('--port=')) port = toPort(arg.slice(7)) ?? port;
    else if (family === 'postgres' && /^-p\d+$/.test(arg)) port = toPort(arg.slice(2)) ?? port;
    else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(arg)) hosts.push(...urlTargets(arg));
    else if (family === 'postgres' && /(^|\s)host\s*=/.test(arg)) hosts.push(...conninfoTargets(arg));
    else if (!arg.startsWith('-')) positional.push(arg);
  }
  if (family === 'ssh') {
    // ssh and sftp take the destination first (what follows ssh's is the remote command); scp and
    // rsync name remote files as [user@]host:path, local ones without a colon.
    const copies = client === 'scp' || client === 'rsync';
    for (const arg of copies ? positional.filter((a) => /^(?:[^@\s/]+@)?(\[[^\]]+\]|[A-Za-z0-9_.-]+):/.test(a)) : positional.slice(0, 1)) {
      const match = /^(?:[^@\s]+@)?(\[[^\]]+\]|[A-Za-z0-9_.-]+)(?::.*)?$/.exec(arg);
      if (match) hosts.push({ host: match[1]!.replace(/^\[|\]$/g, ''), port: null });
    }
  }
  if (family === 'generic' && positional.length >= 2) hosts.push({ host: positional[0]!, port: toPort(positional[1]) });
  const fallback = port ?? DEFAULT_PORT[family];
  return hosts.map(({ host, port: own }) => {
    const effective = own ?? fallback;
    const socketDir = family === 'postgres' && host.startsWith('/');
    return { host, port: effective, unixPath: socketDir ? `${host.replace(/\/$/, '')}/.s.PGSQL.${effective ?? 5432}` : null };
  });
}

/**
 * One ssh/scp/sftp option argument, possibly bundled ("-vp2222", "-oPort=2222"): consumes the next
 * argument when the option's value is not attached, and returns the port it sets, if any (the port
 * option, or -o Port=N).
 */
function sshOption(client: string, arg: string, next: () => string | undefined): number | null {
  const options = SSH_VALUE_OPTIONS[client] ?? SSH_VALUE_OPTIONS.ssh!;
  for (let j = 1; j < arg.length; j++) {
    const letter = arg[j]!;
    if (!options.withValue.includes(letter)) continue;
    const value = j + 1 < arg.length ? arg.slice(j + 1) : next();
    if (letter === options.port) return toPort(value);
    if (letter === 'o') {
      const port = /^port\s*[=\s]\s*(\d+)$/i.exec(value ?? '');
      return port ? toPort(port[1]) : null;
    }
    return null;
  }
  return null;
}

function pushHost(hosts: Array<{ host: string; port: number | null }>, value: string | undefined): void {
  // libpq accepts a comma-separated list of hosts.
  for (const host of (value ?? '').split(',')) if (host) hosts.push({ host, port: null });
}

function toPort(text: string | undefined): number | null {
  const n = Number(text);
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : null;
}

function urlTargets(text: string): Array<{ host: string; port: number | null }> {
  try {
    const url = new URL(text);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const socketHost = url.searchParams.get('host');
    const out: Array<{ host: string; port: number | null }> = [];
    const scheme = url.protocol.replace(/:$/, '');
    const schemePort = scheme === 'https' ? 443 : scheme === 'http' ? 80 : null;
    if (host) out.push({ host: decodeURIComponent(host), port: url.port ? Number(url.port) : schemePort });
    if (socketHost) out.push({ host: socketHost, port: url.port ? Number(url.port) : null });
    return out;
  } catch {
    return [];
  }
}

function conninfoTargets(text: string): Array<{ host: string; port: number | null }> {
  const pairs = new Map<string, string>();
  for (const match of text.matchAll(/(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/g)) pairs.set(match[1]!, match[2]!.replace(/^'|'$/g, ''));
  const port = toPort(pairs.get('port'));
  const out: Array<{ host: string; port: number | null }> = [];
  for (const key of ['host', 'hostaddr']) for (const host of (pairs.get(key) ?? '').split(',')) if (host) out.push({ host, port });
  return out;
}

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { FileIdentityStore } from '../gateway/identity/identity-store';
import { journalOptionsFromConfig, openJournal, type Journal } from '../gateway/journal/journal';
import { createPolicyEngine } from '../gateway/policy/policy-engine';
import { PostgresGateway } from '../gateway/postgres/listener';
import { parseConfig } from '../platform/config';
import { createLogger } from '../platform/log';
import { packageRoot } from '../platform/package-root';
import { PG_BIN, freePort, startPostgres, type PostgresServer } from '../test/support/postgres';
import { round, summarize, type Summary } from './stats';

/**
 * `npm run bench -- gateway-pg [rounds] [seconds] [clients] [mode-regex] [path-regex]`: pgbench against one PostgreSQL 15
 * by three paths in the same run — direct, through PgBouncer (session pooling), and through the gapwatch
 * gateway with full audit (every request journaled before it is forwarded — fsync'd first when it can
 * change state, written first when it cannot —, every result journaled, policy evaluated) —, beside the
 * gateway in `before-reply` durability, two diagnostics (the gateway with every request fsync'd before
 * forwarding, as before read durability existed, and the gateway with an unsynced journal) and two floors
 * (node_relay and native_floor, below), for `-S` (select-only) and the default TPC-B-like script, each
 * with `-M simple` and `-M prepared`. Paths alternate within each round, so drift on this noisy machine
 * hits all alike. Reports median TPS and per-transaction latency p50/p99 after each run's first
 * second (WARMUP_SECONDS; from pgbench's transaction log; pgbench's whole-run TPS beside them), CPU
 * per transaction (of this process, which hosts the gateways; of PgBouncer and the native floor from
 * /proc), and gapwatch/PgBouncer ratios.
 */

/**
 * gapwatch is the default configuration (gateway.postgres.dataPath: auto — its sessions on the native
 * session loop, gateway/postgres/README.md "The native data path"; audit.durability: before-forward,
 * readDurability: written): `ratio_vs_pgbouncer` is its lowest ratio over the modes.
 * gapwatch_node is the same gateway with `dataPath: node` (every session on the JavaScript data path,
 * which mask rules and TLS to the agent still take).
 * gapwatch_strict is the default with readDurability: durable (every request fsync'd before
 * forwarding): what the read fast path buys. gapwatch_before_reply is the other product mode (forward
 * at once, hold the answer until the request's record is at its level; the native data path).
 * gapwatch_tmpfs_journal is a diagnostic, not a product mode: the default configuration with its journal
 * in /dev/shm (memory: NOT durable across a host crash), where fdatasync costs nothing — it stands in for
 * a journal on a device of its own, and what it gains over gapwatch is what sharing PostgreSQL's disk costs.
 * gapwatch_nofsync is a diagnostic, not a product mode: the JavaScript data path with a journal that
 * skips fsync (NOT durable), to separate the proxy's own cost from the journal's fsync latency.
 * node_relay is the floor of any data path written on Node's sockets: a TCP relay in this process that
 * copies bytes both ways (no parsing, no audit; the client authenticates to PostgreSQL itself).
 * native_floor is the floor of an audited data path written in C (bench/native-floor-relay.c, built
 * here): one epoll thread parsing the framing both ways, one SHA-256-chained, CRC-framed record per
 * frontend message and per statement result written ahead of forwarding, fdatasync'd within 5 ms by a
 * second thread — the journal's mechanics without identity, policy or canonical encoding. What it
 * reaches is what a native gateway data path could reach on this machine. native_relay is the same
 * program with the records left out (framing only): the relay mechanics alone, which is what the
 * audit's share of native_floor is measured against.
 */
type PathName =
  | 'direct'
  | 'pgbouncer'
  | 'node_relay'
  | 'native_relay'
  | 'native_floor'
  | 'gapwatch'
  | 'gapwatch_node'
  | 'gapwatch_strict'
  | 'gapwatch_before_reply'
  | 'gapwatch_tmpfs_journal'
  | 'gapwatch_nofsync';

/** Paths served by another process, whose CPU per transaction is read from /proc. */
type ExternalPath = 'pgbouncer' | 'native_relay' | 'native_floor';

/** Paths served by this process, whose CPU per transaction is this process's. */
const inProcess = (path: PathName): boolean => path.startsWith('gapwatch') || path === 'node_relay';

interface Endpoint {
  port: number;
  user: string;
  password: string;
  database: string;
}

interface RunResult {
  /** Transactions per second over the run after its warm-up (WARMUP_SECONDS), from pgbench's transaction log. */
  tps: number;
  /** pgbench's own figure: over the whole run, warm-up included. */
  tpsWholeRun: number;
  /** Latency percentiles of the transactions after the warm-up. */
  p50Ms: number;
  p99Ms: number;
  /**
   * CPU time of this process (which hosts the gateways; pgbench, PgBouncer and PostgreSQL are other
   * processes) per transaction: the gateway's own cost, which the noise of a shared machine hardly moves.
   */
  cpuUsPerTx: number;
  /** The part of it spent in the kernel (socket and file system calls). */
  sysUsPerTx: number;
  /** For PgBouncer: its own process's CPU per transaction (10 ms clock ticks over the run), the same measure for the baseline. */
  otherCpuUsPerTx: number;
}

const SCRIPTS = [
  { name: 'select-only', args: ['-S'] },
  { name: 'tpcb-like', args: [] as string[] },
] as const;
const PROTOCOLS = ['simple', 'prepared'] as const;

/**
 * Seconds at the start of each run that TPS and latency leave out. Every path but PgBouncer starts
 * new PostgreSQL backends for each run (PgBouncer's session pool keeps its server connections from the
 * previous run), and a new backend's first second runs at about half speed here (its caches and page
 * tables are still being filled: `pgbench -S -c 8 -P 1` through PgBouncer restarted before the run,
 * 6,967 then 12,542-14,548 TPS, against 12,168-16,842 from its first second when its backends were
 * kept; the C relay 6,669 then 11,757-16,494). Counting that second compared backend warm-ups, not data
 * paths; pgbench's whole-run figure is still reported (`tps_whole_run`).
 */
const WARMUP_SECONDS = 1;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function waitForPort(port: number, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not start listening on ${port}`);
}

/** PgBouncer in session mode, as the postgres user (it refuses root), with its own ini in a temp dir. */
async function startPgBouncer(pg: PostgresServer, dir: string): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  chownSync(dir, uid, gid);
  const port = await freePort();
  const ini = join(dir, 'pgbouncer.ini');
  writeFileSync(join(dir, 'userlist.txt'), `"${pg.user}" "${pg.password}"\n`, { mode: 0o600 });
  writeFileSync(
    ini,
    [
      '[databases]',
      `${pg.database} = host=127.0.0.1 port=${pg.port} dbname=${pg.database} user=${pg.user} password=${pg.password}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      'pool_mode = session',
      'max_client_conn = 200',
      'default_pool_size = 40',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  for (const f of ['userlist.txt', 'pgbouncer.ini']) chownSync(join(dir, f), uid, gid);
  const child: ChildProcess = spawn('/usr/sbin/pgbouncer', [ini], { uid, gid, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(port, 'pgbouncer');
  return {
    port,
    pid: child.pid!,
    async stop() {
      child.kill('SIGINT');
      await exited;
    },
  };
}

function pgbench(target: Endpoint, args: string[], logDir: string | null): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(PG_BIN, 'pgbench'), args, {
      cwd: logDir ?? undefined,
      env: { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(target.port), PGUSER: target.user, PGPASSWORD: target.password, PGDATABASE: target.database, PGSSLMODE: 'disable' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`pgbench ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`))));
  });
}

/** CPU time (user + system, µs) of another process so far, from /proc/<pid>/stat (in clock ticks of 10 ms). */
function processCpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  // After "pid (comm) ": state is field 3, so utime (14) and stime (15) are at 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function runOnce(target: Endpoint, script: readonly string[], protocol: string, clients: number, seconds: number, scratch: string, otherPid: number | null = null): Promise<RunResult> {
  const logDir = mkdtempSync(join(scratch, 'run-'));
  const otherBefore = otherPid === null ? 0 : processCpuUs(otherPid);
  const cpuBefore = process.cpuUsage();
  const out = await pgbench(target, ['-n', ...script, '-M', protocol, '-c', String(clients), '-j', '2', '-T', String(seconds), '-l', '--log-prefix', 'tx'], logDir);
  const tpsWholeRun = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1]);
  if (!Number.isFinite(tpsWholeRun)) throw new Error(`no tps in pgbench output:\n${out}`);
  const cpu = process.cpuUsage(cpuBefore);
  const otherCpuUs = otherPid === null ? 0 : processCpuUs(otherPid) - otherBefore;
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  // pgbench's log (without aggregation): client_id transaction_no time_us script_no end_epoch_s end_us.
  const ends: number[] = [];
  const latencies: number[] = [];
  let runStartUs = Infinity;
  for (const file of readdirSync(logDir)) {
    for (const line of readFileSync(join(logDir, file), 'utf8').split('\n')) {
      const fields = line.split(' ');
      if (fields.length < 6) continue;
      const latencyUs = Number(fields[2]);
      const endUs = Number(fields[4]) * 1e6 + Number(fields[5]);
      runStartUs = Math.min(runStartUs, endUs - latencyUs);
      ends.push(endUs);
      latencies.push(latencyUs);
    }
  }
  rmSync(logDir, { recursive: true, force: true });
  const steadyFromUs = runStartUs + WARMUP_SECONDS * 1e6;
  let runEndUs = -Infinity;
  const steadyLatencies: number[] = [];
  for (let i = 0; i < ends.length; i++) {
    runEndUs = Math.max(runEndUs, ends[i]!);
    if (ends[i]! >= steadyFromUs) steadyLatencies.push(latencies[i]! / 1000);
  }
  if (steadyLatencies.length === 0 || runEndUs <= steadyFromUs) throw new Error(`no transactions after the ${WARMUP_SECONDS} s warm-up of a ${seconds} s run`);
  steadyLatencies.sort((a, b) => a - b);
  return {
    tps: steadyLatencies.length / ((runEndUs - steadyFromUs) / 1e6),
    tpsWholeRun,
    p50Ms: percentile(steadyLatencies, 50),
    p99Ms: percentile(steadyLatencies, 99),
    cpuUsPerTx: transactions > 0 ? (cpu.user + cpu.system) / transactions : 0,
    sysUsPerTx: transactions > 0 ? cpu.system / transactions : 0,
    otherCpuUsPerTx: transactions > 0 ? otherCpuUs / transactions : 0,
  };
}

/**
 * The native_floor path (audited) or the native_relay path (`audited` false: framing only):
 * bench/native-floor-relay.c, compiled into `dir`, relaying to PostgreSQL.
 */
async function startNativeFloor(pg: PostgresServer, dir: string, audited: boolean): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const binary = join(dir, 'native-floor-relay');
  execFileSync('gcc', ['-O2', '-Wall', '-pthread', '-o', binary, join(packageRoot(), 'bench', 'native-floor-relay.c'), '-lcrypto', '-lz']);
  const child = spawn(binary, [String(pg.port), audited ? join(dir, 'native-floor.journal') : '-'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.once('exit', (code) => reject(new Error(`native-floor-relay exited ${code} before listening`)));
  });
  return {
    port,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The node_relay path: every accepted connection relayed to PostgreSQL byte for byte. */
async function startNodeRelay(pg: PostgresServer): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (client) => {
    const upstream = connect({ host: pg.host, port: pg.port, noDelay: true });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export async function run(args: string[]): Promise<{ name: string } & Record<string, unknown>> {
  const rounds = Number(args[0] ?? 3);
  const seconds = Number(args[1] ?? 5);
  const clients = Number(args[2] ?? 8);
  if (!(seconds >= WARMUP_SECONDS + 1)) throw new Error(`gateway-pg: runs of ${args[1]} s leave nothing after the ${WARMUP_SECONDS} s warm-up; give at least ${WARMUP_SECONDS + 1}`);
  /** A regular expression over "select-only/simple" … to run some modes only (e.g. while profiling). */
  const only = new RegExp(args[3] ?? '.');
  /**
   * A regular expression over the path names to run some paths only (gapwatch and pgbouncer always run:
   * `ratio_vs_pgbouncer` is theirs); the ratios of paths left out are null.
   */
  const onlyPaths = new RegExp(args[4] ?? '.');
  const scale = 5;
  const scratch = mkdtempSync(join(tmpdir(), 'gapwatch-bench-pg-'));
  const bouncerDir = mkdtempSync(join(tmpdir(), 'gapwatch-bench-pgbouncer-'));
  const dataDir = join(scratch, 'data');
  const say = (line: string): void => void process.stderr.write(`gateway-pg: ${line}\n`);

  const pg = await startPostgres({ settings: { max_connections: '100' } });
  const cleanups: Array<() => Promise<void>> = [async () => pg.stop()];
  try {
    const direct: Endpoint = { port: pg.port, user: pg.user, password: pg.password, database: pg.database };
    say(`initialising pgbench tables (scale ${scale})`);
    await pgbench(direct, ['-i', '-q', '-s', String(scale)], null);

    const bouncer = await startPgBouncer(pg, bouncerDir);
    cleanups.push(() => bouncer.stop());

    // The gateway as `gapwatch gateway` runs it, default policy (statements classified and checked),
    // journal with group commit: full audit on.
    const document = {
      dataDir,
      gateway: {
        id: 'gw-bench',
        postgres: {
          listen: { host: '127.0.0.1', port: 0 },
          resources: [{ name: 'bench', upstream: { host: pg.host, port: pg.port, database: pg.database, user: pg.user, password: { value: pg.password } } }],
        },
      },
    };
    const config = parseConfig(stringify(document));
    const log = createLogger({ level: 'error', format: 'json' });
    const policy = await createPolicyEngine({ config: config.gateway.policy, dataDir, log });
    cleanups.push(async () => policy.close());
    const identities = new FileIdentityStore({ dataDir });
    const { token } = await identities.create('bench-agent');
    const startGateway = async (
      gatewayId: string,
      sync: 'group' | 'none',
      durability: 'before-forward' | 'before-reply' = 'before-forward',
      readDurability: 'written' | 'durable' = 'written',
      dataPath: 'auto' | 'node' = 'node',
      journalDir?: string,
    ): Promise<{ port: number; journal: Journal }> => {
      const options = journalOptionsFromConfig({ ...config, gateway: { ...config.gateway, id: gatewayId } }, log);
      const journal = await openJournal({ ...options, dir: journalDir ?? options.dir, sync });
      const postgres = { ...config.gateway.postgres, audit: { durability, readDurability }, dataPath };
      const gateway = new PostgresGateway({ gatewayId, config: postgres, journal, identities, policy, log });
      await gateway.start();
      cleanups.push(async () => {
        await gateway.stop();
        await journal.close();
      });
      return { port: gateway.address().port, journal };
    };
    const audited = await startGateway('gw-bench', 'group', 'before-forward', 'written', 'auto');
    const nodePath = await startGateway('gw-bench-node', 'group', 'before-forward', 'written', 'node');
    const strict = await startGateway('gw-bench-strict', 'group', 'before-forward', 'durable', 'auto');
    const beforeReply = await startGateway('gw-bench-before-reply', 'group', 'before-reply', 'written', 'auto');
    const unsynced = await startGateway('gw-bench-nofsync', 'none');
    const tmpfsDir = mkdtempSync('/dev/shm/gapwatch-bench-journal-');
    cleanups.push(async () => rmSync(tmpfsDir, { recursive: true, force: true }));
    const tmpfsJournal = await startGateway('gw-bench-tmpfs', 'group', 'before-forward', 'written', 'auto', tmpfsDir);
    const journal = audited.journal;
    const relay = await startNodeRelay(pg);
    cleanups.push(() => relay.stop());
    const floor = await startNativeFloor(pg, scratch, true);
    cleanups.push(() => floor.stop());
    const nativeRelay = await startNativeFloor(pg, scratch, false);
    cleanups.push(() => nativeRelay.stop());
    const externalPid: Record<ExternalPath, number> = { pgbouncer: bouncer.pid, native_relay: nativeRelay.pid, native_floor: floor.pid };
    const isExternal = (path: PathName): path is ExternalPath => path in externalPid;

    const paths: Record<PathName, Endpoint> = {
      direct,
      pgbouncer: { ...direct, port: bouncer.port },
      node_relay: { ...direct, port: relay.port },
      native_relay: { ...direct, port: nativeRelay.port },
      native_floor: { ...direct, port: floor.port },
      gapwatch: { port: audited.port, user: 'bench-agent', password: token, database: 'bench' },
      gapwatch_strict: { port: strict.port, user: 'bench-agent', password: token, database: 'bench' },
      gapwatch_before_reply: { port: beforeReply.port, user: 'bench-agent', password: token, database: 'bench' },
      gapwatch_tmpfs_journal: { port: tmpfsJournal.port, user: 'bench-agent', password: token, database: 'bench' },
      gapwatch_nofsync: { port: unsynced.port, user: 'bench-agent', password: token, database: 'bench' },
      gapwatch_node: { port: nodePath.port, user: 'bench-agent', password: token, database: 'bench' },
    };
    const allPaths: PathName[] = ['direct', 'pgbouncer', 'node_relay', 'native_relay', 'native_floor', 'gapwatch', 'gapwatch_node', 'gapwatch_strict', 'gapwatch_before_reply', 'gapwatch_tmpfs_journal', 'gapwatch_nofsync'];
    const order = allPaths.filter((path) => path === 'gapwatch' || path === 'pgbouncer' || onlyPaths.test(path));
    const modes: Record<string, unknown> = {};
    const tps: Record<string, Record<PathName, number>> = {};
    let lowest = Infinity;
    let lowestNode = Infinity;
    let lowestWholeRun = Infinity;
    for (const script of SCRIPTS) {
      for (const protocol of PROTOCOLS) {
        const mode = `${script.name}/${protocol}`;
        if (!only.test(mode)) continue;
        const samples = Object.fromEntries(order.map((path) => [path, [] as RunResult[]])) as Record<PathName, RunResult[]>;
        for (let r = 0; r < rounds; r++) {
          // Rotate the order each round so no path always runs first (or right after another).
          for (let i = 0; i < order.length; i++) {
            const path = order[(i + r) % order.length]!;
            const result = await runOnce(paths[path], script.args, protocol, clients, seconds, scratch, isExternal(path) ? externalPid[path] : null);
            samples[path].push(result);
            const cpu = inProcess(path)
              ? `, ${path === 'node_relay' ? 'relay' : 'gateway'} cpu ${round(result.cpuUsPerTx, 1)} us/tx (${round(result.sysUsPerTx, 1)} in the kernel)`
              : isExternal(path)
                ? `, ${path.replace('_', ' ')} cpu ${round(result.otherCpuUsPerTx, 1)} us/tx`
                : '';
            say(`${mode} round ${r + 1} ${path}: ${round(result.tps, 1)} tps (${round(result.tpsWholeRun, 1)} with the warm-up), p50 ${round(result.p50Ms)} ms, p99 ${round(result.p99Ms)} ms${cpu}`);
          }
        }
        const summaryOf = (path: PathName): { tps: Summary; tps_whole_run: number; p50_ms: number; p99_ms: number; cpu_us_per_tx?: number } => ({
          tps: summarize(samples[path].map((s) => s.tps)),
          tps_whole_run: round(summarize(samples[path].map((s) => s.tpsWholeRun)).median, 1),
          p50_ms: summarize(samples[path].map((s) => s.p50Ms)).median,
          p99_ms: summarize(samples[path].map((s) => s.p99Ms)).median,
          ...(inProcess(path) ? { cpu_us_per_tx: round(summarize(samples[path].map((s) => s.cpuUsPerTx)).median, 1) } : {}),
          ...(isExternal(path) ? { cpu_us_per_tx: round(summarize(samples[path].map((s) => s.otherCpuUsPerTx)).median, 1) } : {}),
        });
        const per = Object.fromEntries(order.map((path) => [path, summaryOf(path)])) as Partial<Record<PathName, ReturnType<typeof summaryOf>>>;
        const tpsOf = (path: PathName): number => per[path]?.tps.median ?? NaN;
        /** a/b of two paths' median TPS, null when either was left out of this run. */
        const ratioOf = (a: PathName, b: PathName): number | null => (per[a] && per[b] ? round(tpsOf(a) / tpsOf(b)) : null);
        const ratio = tpsOf('gapwatch') / tpsOf('pgbouncer');
        lowest = Math.min(lowest, ratio);
        const wholeRunRatio = (per.gapwatch?.tps_whole_run ?? NaN) / (per.pgbouncer?.tps_whole_run ?? NaN);
        lowestWholeRun = Math.min(lowestWholeRun, wholeRunRatio);
        if (per.gapwatch_node) lowestNode = Math.min(lowestNode, tpsOf('gapwatch_node') / tpsOf('pgbouncer'));
        modes[mode] = {
          ...per,
          ratio_vs_pgbouncer: round(ratio),
          // The same over pgbench's whole runs, each path's backend warm-up included (WARMUP_SECONDS).
          whole_run_ratio_vs_pgbouncer: round(wholeRunRatio),
          ratio_vs_direct: ratioOf('gapwatch', 'direct'),
          pgbouncer_vs_direct: ratioOf('pgbouncer', 'direct'),
          strict_ratio_vs_pgbouncer: ratioOf('gapwatch_strict', 'pgbouncer'),
          // What taking the fsync out of the round trip of reads and in-transaction statements bought.
          ratio_vs_strict: ratioOf('gapwatch', 'gapwatch_strict'),
          before_reply_ratio_vs_pgbouncer: ratioOf('gapwatch_before_reply', 'pgbouncer'),
          // The default configuration with its journal where an fdatasync costs nothing: what the disk
          // PostgreSQL's WAL shares takes from it.
          tmpfs_journal_ratio_vs_pgbouncer: ratioOf('gapwatch_tmpfs_journal', 'pgbouncer'),
          nofsync_ratio_vs_pgbouncer: ratioOf('gapwatch_nofsync', 'pgbouncer'),
          node_ratio_vs_pgbouncer: ratioOf('gapwatch_node', 'pgbouncer'),
          // CPU per transaction of the unsynced gateway over PgBouncer's own: the proxy's cost alone.
          nofsync_cpu_vs_pgbouncer_cpu: per.gapwatch_nofsync ? round((per.gapwatch_nofsync.cpu_us_per_tx ?? 0) / Math.max(1, per.pgbouncer?.cpu_us_per_tx ?? 0)) : null,
          // The ceiling of a data path on Node's sockets, and how much of it the gateway reaches.
          node_relay_ratio_vs_pgbouncer: ratioOf('node_relay', 'pgbouncer'),
          ratio_vs_node_relay: ratioOf('gapwatch', 'node_relay'),
          // A relay in C (framing only), and the ceiling of an audited data path in C, and how much
          // of the latter the gateway reaches.
          native_relay_ratio_vs_pgbouncer: ratioOf('native_relay', 'pgbouncer'),
          native_floor_ratio_vs_pgbouncer: ratioOf('native_floor', 'pgbouncer'),
          ratio_vs_native_floor: ratioOf('gapwatch', 'native_floor'),
        };
        tps[mode] = Object.fromEntries(order.map((path) => [path, tpsOf(path)])) as Record<PathName, number>;
      }
    }
    let journalRecords = 0;
    for await (const record of journal.read(1n)) {
      if (record.seq) journalRecords += 1;
    }
    return {
      name: 'gateway-pg',
      clients,
      seconds_per_run: seconds,
      warmup_seconds: WARMUP_SECONDS,
      rounds,
      scale,
      tps,
      modes,
      journal_records: journalRecords,
      journal_stats: journal.stats(),
      strict_journal_stats: strict.journal.stats(),
      // Group commit at work: records per fdatasync round (the journal's own and the native loop's) across all concurrent sessions.
      records_per_fsync: round(journalRecords / Math.max(1, journal.stats().fsyncs + journal.stats().nativeFsyncs), 2),
      ratio_vs_pgbouncer: round(lowest),
      whole_run_ratio_vs_pgbouncer: round(lowestWholeRun),
      // The same with every session on the JavaScript data path (dataPath: node).
      node_ratio_vs_pgbouncer: Number.isFinite(lowestNode) ? round(lowestNode) : null,
    };
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((err: unknown) => say(`cleanup failed: ${String(err)}`));
    }
    rmSync(scratch, { recursive: true, force: true });
    rmSync(bouncerDir, { recursive: true, force: true });
  }
}

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { HttpGateway } from '../gateway/http/listener';
import { FileIdentityStore } from '../gateway/identity/identity-store';
import { journalOptionsFromConfig, openJournal } from '../gateway/journal/journal';
import { parseConfig } from '../platform/config';
import { createLogger } from '../platform/log';
import { round, summarize, type Summary } from './stats';

/**
 * `npm run bench -- gateway-http [rounds] [seconds] [connections]`: wrk against one HTTP upstream (a
 * Node server in its own process) by five paths in the same run — direct, through nginx as a
 * reverse proxy (one worker, keep-alive upstream pool, injecting an Authorization header),
 * a bare Node proxy on the gateway's own stack (the platform's ceiling), and through
 * the gapwatch HTTP gateway with recording on (bearer-token check, policy, every request journaled and
 * fsync'd before it is forwarded, every exchange journaled with headers and body excerpts), and the
 * same gateway with record.writeAhead off (records group-committed in the background). Paths
 * alternate within each round so drift on this noisy machine hits all alike; medians of the rounds.
 * Two request kinds: GET /hello (small response) and POST /echo with a 1 KiB JSON body. Besides
 * requests/s, each path's CPU µs per request (nginx's process, the Node proxy's, this process for the
 * gateways, journal threads included) and the upstream's: CPU per request moves far less with the
 * machine's load than requests/s do, and says where a path's cost is: `cpu_ratio_vs_nginx` is the
 * requests/s ratio by CPU alone, and `gateway_cpu_us_over_node_proxy` the gateway's own cost on top of
 * the Node stack it runs on.
 */

/**
 * gapwatch: the default configuration (write-ahead, the native data path); gapwatch_async: record.writeAhead off;
 * gapwatch_node: the default but for dataPath 'node' (every connection served by JavaScript);
 * node_proxy: the platform's ceiling, a proxy on the same Node stack (node:http server, undici pool)
 * that only swaps the credential: no token check, policy or journal.
 */
type PathName = 'direct' | 'nginx' | 'node_proxy' | 'gapwatch' | 'gapwatch_async' | 'gapwatch_node';
const PATHS: PathName[] = ['direct', 'nginx', 'node_proxy', 'gapwatch', 'gapwatch_async', 'gapwatch_node'];
const perPath = <T>(make: () => T): Record<PathName, T> => Object.fromEntries(PATHS.map((path) => [path, make()])) as Record<PathName, T>;

/** Clock ticks per second of /proc/<pid>/stat's utime and stime. */
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU time (user + system, µs) a process has used so far: another process's from /proc, this one's from the runtime. */
function cpuMicros(pid: number | null): number {
  if (pid === null) {
    const usage = process.cpuUsage();
    return usage.user + usage.system;
  }
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / CLOCK_TICKS;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The upstream in a child process, so it does not share the gateway's event loop. */
async function startUpstream(): Promise<{ port: number; child: ChildProcess }> {
  const script = `
    const { startHttpUpstream } = require(${JSON.stringify(join(__dirname, '..', 'test', 'support', 'http-upstream.js'))});
    startHttpUpstream({ record: false }).then((u) => process.stdout.write(u.port + '\\n'));
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`the upstream exited (${code})`)));
  });
  return { port, child };
}

/** The bare Node proxy (see PathName), in its own process as nginx is. */
async function startNodeProxy(upstreamPort: number): Promise<{ port: number; child: ChildProcess }> {
  const script = `
    const { createServer } = require('node:http');
    const { Pool } = require(${JSON.stringify(require.resolve('undici'))});
    const pool = new Pool('http://127.0.0.1:${upstreamPort}', { connections: 256 });
    const hop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'authorization', 'upgrade', 'te', 'trailer', 'proxy-connection']);
    const server = createServer({ noDelay: true }, (req, res) => {
      const headers = ['host', '127.0.0.1:${upstreamPort}', 'authorization', 'Bearer upstream-secret'];
      for (let i = 0; i < req.rawHeaders.length; i += 2) if (!hop.has(req.rawHeaders[i].toLowerCase())) headers.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
      const bodyless = req.method === 'GET' || req.method === 'HEAD';
      pool.dispatch({ path: req.url, method: req.method, headers, body: bodyless ? null : req }, {
        onConnect() {},
        onHeaders(status, raw, resume, text) {
          const out = [];
          for (let i = 0; i < raw.length; i += 2) { const name = raw[i].toString('latin1'); if (!hop.has(name.toLowerCase())) out.push(name, raw[i + 1].toString('latin1')); }
          res.writeHead(status, text, out);
          res.on('drain', resume);
          return true;
        },
        onData(chunk) { return res.write(chunk); },
        onComplete() { res.end(); },
        onError() { res.destroy(); },
      });
    });
    server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`the node proxy exited (${code})`)));
  });
  return { port, child };
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = require('node:net').connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

/**
 * nginx with its own config in a temp dir: not a daemon, pid file and temp paths inside the dir; one
 * process (no master), so its CPU time is the proxy's.
 */
async function startNginx(dir: string, upstreamPort: number): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer upstream-secret";
    }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port);
  return {
    port,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGQUIT');
      await exited;
    },
  };
}

function wrk(url: string, seconds: number, connections: number, extra: string[]): Promise<{ rps: number; requests: number }> {
  return new Promise((resolve, reject) => {
    execFile('wrk', ['-t', '2', '-c', String(connections), '-d', `${seconds}s`, ...extra, url], (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`wrk failed: ${stderr || err.message}`));
        return;
      }
      const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
      const requests = /(\d+) requests in/.exec(stdout);
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
      if (!rps) return reject(new Error(`wrk printed no Requests/sec:\n${stdout}`));
      if (non2xx) return reject(new Error(`wrk saw ${non2xx[1]} error responses from ${url}`));
      resolve({ rps: Number(rps[1]), requests: Number(requests?.[1] ?? 0) });
    });
  });
}

export async function run(args: string[]): Promise<{ name: string } & Record<string, unknown>> {
  const rounds = Number(args[0] ?? 3);
  const seconds = Number(args[1] ?? 5);
  const connections = Number(args[2] ?? 32);
  const dir = mkdtempSync(join(tmpdir(), 'gapwatch-bench-http-'));
  const upstream = await startUpstream();
  let nginx: Awaited<ReturnType<typeof startNginx>> | null = null;
  let nodeProxy: Awaited<ReturnType<typeof startNodeProxy>> | null = null;
  let gateway: HttpGateway | null = null;
  let gatewayAsync: HttpGateway | null = null;
  let gatewayNode: HttpGateway | null = null;
  let journal: Awaited<ReturnType<typeof openJournal>> | null = null;
  try {
    nginx = await startNginx(dir, upstream.port);
    nodeProxy = await startNodeProxy(upstream.port);
    const dataDir = join(dir, 'data');
    const config = parseConfig(
      stringify({
        dataDir,
        gateway: {
          id: 'gw-bench',
          http: {
            listen: { host: '127.0.0.1', port: 0 },
            resources: [{ name: 'app', pathPrefix: '/', upstream: { url: `http://127.0.0.1:${upstream.port}` }, credential: { source: { value: 'upstream-secret' } } }],
          },
        },
      }),
    );
    const log = createLogger({ level: 'error', format: 'json' });
    journal = await openJournal(journalOptionsFromConfig(config, log));
    const identities = new FileIdentityStore({ dataDir });
    const { token } = await identities.create('bench-agent');
    gateway = new HttpGateway({ gatewayId: 'gw-bench', config: config.gateway.http, journal, identities, log });
    await gateway.start();
    const asyncConfig = { ...config.gateway.http, record: { ...config.gateway.http.record, writeAhead: false } };
    gatewayAsync = new HttpGateway({ gatewayId: 'gw-bench', config: asyncConfig, journal, identities, log });
    await gatewayAsync.start();
    gatewayNode = new HttpGateway({ gatewayId: 'gw-bench', config: { ...config.gateway.http, dataPath: 'node' }, journal, identities, log });
    await gatewayNode.start();
    const ports: Record<PathName, number> = {
      direct: upstream.port,
      nginx: nginx.port,
      node_proxy: nodeProxy.port,
      gapwatch: gateway.address().port,
      gapwatch_async: gatewayAsync.address().port,
      gapwatch_node: gatewayNode.address().port,
    };
    const auth = ['-H', `Authorization: Bearer ${token}`];
    const script = join(dir, 'post.lua');
    const body = JSON.stringify({ items: Array.from({ length: 40 }, (_, i) => ({ id: i, name: `item-${i}` })) });
    writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`);
    const kinds = [
      { name: 'get_hello', path: '/hello', extra: [] as string[] },
      { name: 'post_echo_1k', path: '/echo', extra: ['-s', script] },
    ];
    const samples: Record<string, Record<PathName, number[]>> = {};
    // CPU µs per request of the process in the path (the gateways run in this one) and of the upstream.
    const proxyCpu: Record<string, Record<PathName, number[]>> = {};
    const upstreamCpu: Record<string, Record<PathName, number[]>> = {};
    for (const kind of kinds) {
      samples[kind.name] = perPath(() => []);
      proxyCpu[kind.name] = perPath(() => []);
      upstreamCpu[kind.name] = perPath(() => []);
    }
    const proxyPid: Record<PathName, number | null | undefined> = { direct: undefined, nginx: nginx.pid, node_proxy: nodeProxy.child.pid!, gapwatch: null, gapwatch_async: null, gapwatch_node: null };
    // Warm-up: connection pools, JIT, the token cache.
    for (const path of PATHS) await wrk(`http://127.0.0.1:${ports[path]}/hello`, 1, connections, auth);
    for (let r = 0; r < rounds; r++) {
      for (const kind of kinds) {
        const order = r % 2 === 0 ? PATHS : [...PATHS].reverse();
        for (const path of order) {
          const pid = proxyPid[path];
          const proxyBefore = pid === undefined ? 0 : cpuMicros(pid);
          const upstreamBefore = cpuMicros(upstream.child.pid!);
          const { rps, requests } = await wrk(`http://127.0.0.1:${ports[path]}${kind.path}`, seconds, connections, [...auth, ...kind.extra]);
          samples[kind.name]![path].push(rps);
          if (requests > 0) {
            if (pid !== undefined) proxyCpu[kind.name]![path].push((cpuMicros(pid) - proxyBefore) / requests);
            upstreamCpu[kind.name]![path].push((cpuMicros(upstream.child.pid!) - upstreamBefore) / requests);
          }
          process.stderr.write(`round ${r + 1} ${kind.name} ${path}: ${Math.round(rps)} req/s\n`);
        }
      }
    }
    const results: Record<
      string,
      Record<PathName, Summary> & { ratio_vs_nginx: number; ratio_vs_nginx_async: number; ratio_vs_nginx_node: number; ratio_vs_direct: number; ratio_node_proxy_vs_nginx: number; ratio_vs_node_proxy: number }
    > = {};
    for (const kind of kinds) {
      const s = samples[kind.name]!;
      const summary = Object.fromEntries(PATHS.map((path) => [path, summarize(s[path])])) as Record<PathName, Summary>;
      results[kind.name] = {
        ...summary,
        ratio_vs_nginx: round(summary.gapwatch.median / summary.nginx.median),
        ratio_vs_nginx_async: round(summary.gapwatch_async.median / summary.nginx.median),
        ratio_vs_nginx_node: round(summary.gapwatch_node.median / summary.nginx.median),
        ratio_vs_direct: round(summary.gapwatch.median / summary.direct.median),
        ratio_node_proxy_vs_nginx: round(summary.node_proxy.median / summary.nginx.median),
        ratio_vs_node_proxy: round(summary.gapwatch.median / summary.node_proxy.median),
      };
    }
    return {
      name: 'gateway-http',
      rounds,
      seconds,
      connections,
      tool: 'wrk -t2',
      nginx_workers: 1,
      rps: Object.fromEntries(kinds.map((k) => [k.name, Object.fromEntries(PATHS.map((path) => [path, results[k.name]![path].median]))])),
      cpu_us_per_request: Object.fromEntries(
        kinds.map((k) => [k.name, Object.fromEntries(PATHS.filter((path) => proxyCpu[k.name]![path].length > 0).map((path) => [path, round(summarize(proxyCpu[k.name]![path]).median, 1)]))]),
      ),
      upstream_cpu_us_per_request: Object.fromEntries(
        kinds.map((k) => [k.name, Object.fromEntries(PATHS.filter((path) => upstreamCpu[k.name]![path].length > 0).map((path) => [path, round(summarize(upstreamCpu[k.name]![path]).median, 1)]))]),
      ),
      // What the gateway adds per request on top of the same Node stack (node_proxy): its own work
      // (token check, policy, records encoded, hashed and written) as opposed to node:http and undici.
      gateway_cpu_us_over_node_proxy: Object.fromEntries(
        kinds.map((k) => {
          const median = (path: PathName): number => summarize(proxyCpu[k.name]![path]).median;
          return [
            k.name,
            { gapwatch: round(median('gapwatch') - median('node_proxy'), 1), gapwatch_async: round(median('gapwatch_async') - median('node_proxy'), 1), gapwatch_node: round(median('gapwatch_node') - median('node_proxy'), 1) },
          ];
        }),
      ),
      // nginx's CPU per request over the gateway's: the requests/s ratio each would reach with a
      // core to itself, which the machine's load moves far less than the measured requests/s.
      cpu_ratio_vs_nginx: Math.min(...kinds.map((k) => round(summarize(proxyCpu[k.name]!.nginx).median / summarize(proxyCpu[k.name]!.gapwatch).median))),
      cpu_ratio_vs_nginx_async: Math.min(...kinds.map((k) => round(summarize(proxyCpu[k.name]!.nginx).median / summarize(proxyCpu[k.name]!.gapwatch_async).median))),
      detail: results,
      // Every record of the run (the native path writes its own, beside the journal's).
      journal_records: Number(journal.writtenHead().seq),
      journal_stats: journal.stats(),
      // The default gateway's data path: 'native' unless the addon or the journal's native chain is missing.
      data_path: gateway.nativeStats ? 'native' : 'node',
      native_stats: gateway.nativeStats,
      ratio_vs_nginx: Math.min(...kinds.map((k) => results[k.name]!.ratio_vs_nginx)),
      ratio_vs_nginx_async: Math.min(...kinds.map((k) => results[k.name]!.ratio_vs_nginx_async)),
      ratio_vs_nginx_node: Math.min(...kinds.map((k) => results[k.name]!.ratio_vs_nginx_node)),
      ratio_node_proxy_vs_nginx: Math.min(...kinds.map((k) => results[k.name]!.ratio_node_proxy_vs_nginx)),
      goal_ratio_vs_nginx: 0.7,
    };
  } finally {
    await gatewayNode?.stop();
    await gatewayAsync?.stop();
    await gateway?.stop();
    await journal?.close();
    await nginx?.stop();
    nodeProxy?.child.kill();
    upstream.child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

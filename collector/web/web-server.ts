import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DashboardQueryParamError } from '../../dashboards/errors';
import { bindParams, loadNamedQueries, loadNamedQuery } from '../../dashboards/named-queries';
import type { Logger } from '../../platform/log';
import type { OutputFormat } from '../store/query';
import { secretsEqual } from './access-token';
import { WebListenFailedError, WebRequestRefusedError } from './errors';
import type { QueryRunner } from './query-runner';
import { staticAsset, UI_PAGES } from './static-assets';

export interface WebServerOptions {
  token: string;
  runner: QueryRunner;
  /** Where the SSH gateway writes shell recordings (asciicast v2), or null when there is none. */
  recordingsDir: string | null;
  sessionHours: number;
  maxPageRows: number;
  log: Logger;
}

const SESSION_COOKIE = 'gapwatch_session';
/** Rows a page holds when the request does not say. */
const DEFAULT_PAGE_ROWS = 100;
/** A login form is a token and a path; anything longer is not one. */
const MAX_FORM_BYTES = 4096;
const TEXT_FORMATS: readonly OutputFormat[] = ['table', 'json', 'csv'];

/**
 * Every response carries these. The CSP allows scripts only from this origin (no inline script, no
 * eval); 'wasm-unsafe-eval' lets the asciicast player compile its terminal emulator (WebAssembly, not
 * JavaScript eval). Inline styles are allowed because the chart and player libraries position elements
 * through style attributes.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/**
 * The collector's web UI and read-only API. Every page and API route needs the access token, as
 * `Authorization: Bearer <token>` or as the session cookie the login form sets; static assets (the UI's
 * own code and the vendored chart and player libraries) are public. The API answers GET only: it lists
 * and runs the named queries of dashboards/sql and serves SSH shell recordings.
 */
export class WebServer {
  private readonly options: WebServerOptions;
  private readonly sessions = new Map<string, number>();
  private server: Server | null = null;

  constructor(options: WebServerOptions) {
    this.options = options;
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err));
    });
    // Loopback clients keep connections alive; closing must not wait for them.
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', (err) => reject(new WebListenFailedError(host, port, err)));
      server.listen(port, host, () => resolveListen());
    });
    this.server = server;
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolveClose) => {
      server.close(() => resolveClose());
      server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gapwatch.invalid');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);

    if (path.startsWith('/static/')) {
      requireMethod(method, ['GET', 'HEAD']);
      const asset = staticAsset(path.slice('/static/'.length));
      if (!asset) throw notFound(`no static file ${path}`);
      res.writeHead(200, { 'Content-Type': asset.contentType, 'Cache-Control': 'private, max-age=300' });
      res.end(method === 'HEAD' ? undefined : asset.body());
      return;
    }
    res.setHeader('Cache-Control', 'no-store');
    if (path === '/login') {
      if (method === 'POST') return this.login(req, res);
      requireMethod(method, ['GET', 'HEAD', 'POST']);
      return sendHtml(res, staticAsset('login.html')!.body());
    }
    if (path === '/logout') {
      requireMethod(method, ['POST']);
      const session = cookie(req, SESSION_COOKIE);
      if (session) this.sessions.delete(session);
      res.writeHead(303, { Location: '/login', 'Set-Cookie': `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0` });
      res.end();
      return;
    }

    const authorized = this.authorized(req);
    if (path.startsWith('/api/')) {
      if (!authorized) {
        res.setHeader('WWW-Authenticate', 'Bearer realm="gapwatch"');
        throw new WebRequestRefusedError(401, 'WEB_ERR_UNAUTHORIZED', 'the web API needs the access token (Authorization: Bearer <token>, printed by `gapwatch up` and kept in <dataDir>/web/token)');
      }
      // The API only reads: anything but GET is refused before routing, whatever the path.
      requireMethod(method, ['GET', 'HEAD']);
      return this.api(path, url.searchParams, res);
    }
    if (UI_PAGES.has(path)) {
      requireMethod(method, ['GET', 'HEAD']);
      if (!authorized) {
        res.writeHead(303, { Location: `/login?next=${encodeURIComponent(path + url.search)}` });
        res.end();
        return;
      }
      return sendHtml(res, staticAsset('app.html')!.body());
    }
    throw notFound(`no page ${path}`);
  }

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
      return bearer !== null && secretsEqual(bearer[1]!, this.options.token);
    }
    const session = cookie(req, SESSION_COOKIE);
    if (!session) return false;
    const expires = this.sessions.get(session);
    if (expires === undefined) return false;
    if (expires < Date.now()) {
      this.sessions.delete(session);
      return false;
    }
    return true;
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A form posted from another site must not log this browser in (login CSRF).
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== 'null' && new URL(origin).host !== req.headers.host) {
      throw new WebRequestRefusedError(403, 'WEB_ERR_CROSS_ORIGIN', 'the login form was posted from another origin');
    }
    const form = new URLSearchParams(await readBody(req, MAX_FORM_BYTES));
    const next = safeNext(form.get('next'));
    if (!secretsEqual(form.get('token') ?? '', this.options.token)) {
      this.options.log.warn({ remote: req.socket.remoteAddress }, 'web UI login with a wrong token');
      res.writeHead(303, { Location: `/login?failed=1&next=${encodeURIComponent(next)}` });
      res.end();
      return;
    }
    const now = Date.now();
    for (const [id, expires] of this.sessions) if (expires < now) this.sessions.delete(id);
    const session = randomBytes(32).toString('base64url');
    const maxAge = Math.round(this.options.sessionHours * 3600);
    this.sessions.set(session, now + maxAge * 1000);
    res.writeHead(303, { Location: next, 'Set-Cookie': `${SESSION_COOKIE}=${session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}` });
    res.end();
  }

  private async api(path: string, search: URLSearchParams, res: ServerResponse): Promise<void> {
    if (path === '/api/queries') {
      return sendJson(res, 200, {
        queries: loadNamedQueries().map((q) => ({ name: q.name, question: q.question, params: q.params.map(({ name, type, defaultValue, doc, standard }) => ({ name, type, default: defaultValue ?? null, doc, standard })) })),
      });
    }
    const queryRoute = /^\/api\/queries\/([^/]+)$/.exec(path);
    if (queryRoute) {
      let name: string;
      try {
        name = decodeURIComponent(queryRoute[1]!);
      } catch {
        throw badRequest('the query name is not valid percent-encoding');
      }
      return this.runQuery(name, search, res);
    }
    const recordings = /^\/api\/recordings\/([0-9A-Za-z_-]{1,128})(?:\/([0-9A-Za-z_-]{1,160}\.cast))?$/.exec(path);
    if (recordings) return this.recording(recordings[1]!, recordings[2] ?? null, res);
    throw notFound(`no API route ${path}`);
  }

  private async runQuery(name: string, search: URLSearchParams, res: ServerResponse): Promise<void> {
    // Files are read per request: a query edited while the collector runs is served as edited.
    const query = /^[a-z0-9][a-z0-9-]*$/.test(name) ? loadNamedQuery(name) : undefined;
    if (!query) {
      throw notFound(`no named query "${name}"; named queries: ${loadNamedQueries().map((q) => q.name).join(', ')}. The API runs only the files of dashboards/sql`);
    }
    const given: Record<string, string> = {};
    let format: string | null = null;
    let rows = DEFAULT_PAGE_ROWS;
    let offset = 0;
    for (const [key, value] of search) {
      if (key in given) throw badRequest(`parameter ${key} is given twice`);
      // The API's own keys start with "_", so they never shadow a query parameter (several are called limit).
      if (key === '_format') format = value;
      else if (key === '_rows') rows = pageNumber('_rows', value, 1, this.options.maxPageRows);
      else if (key === '_offset') offset = pageNumber('_offset', value, 0, Number.MAX_SAFE_INTEGER);
      else given[key] = value;
    }
    let params: Record<string, string>;
    try {
      params = bindParams(query, given);
    } catch (err) {
      if (err instanceof DashboardQueryParamError) throw badRequest(err.message);
      throw err;
    }
    if (format !== null) {
      if (!TEXT_FORMATS.includes(format as OutputFormat)) throw badRequest(`_format must be one of ${TEXT_FORMATS.join(', ')}`);
      const text = await this.options.runner.text(query, params, format as OutputFormat);
      res.writeHead(200, { 'Content-Type': format === 'csv' ? 'text/csv; charset=utf-8' : 'text/plain; charset=utf-8' });
      res.end(text);
      return;
    }
    const page = await this.options.runner.page(query, params, { limit: rows, offset });
    return sendJson(res, 200, { ...page, params });
  }

  /** SSH shell recordings: the output file of each channel (`<session>-<channel>.cast`), never the input file. */
  private async recording(sessionId: string, file: string | null, res: ServerResponse): Promise<void> {
    const dir = this.options.recordingsDir;
    const names = dir === null ? [] : listDir(dir).filter((name) => name.startsWith(`${sessionId}-`) && /^[0-9A-Za-z_]+-\d+\.cast$/.test(name));
    if (file === null) {
      return sendJson(res, 200, { sessionId, recordings: names.map((name) => ({ name, bytes: statSync(join(dir!, name)).size, url: `/api/recordings/${sessionId}/${name}` })) });
    }
    if (!names.includes(file)) throw notFound(`no recording ${file} of session ${sessionId}`);
    res.writeHead(200, { 'Content-Type': 'application/x-asciicast; charset=utf-8' });
    res.end(readFileSync(join(dir!, file)));
  }

  private fail(res: ServerResponse, err: unknown): void {
    const refused = err instanceof WebRequestRefusedError;
    const status = refused ? err.status : 500;
    const code = refused ? err.code : 'WEB_ERR_INTERNAL';
    if (!refused) this.options.log.error({ err }, 'web request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (refused) for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
    sendJson(res, status, { error: { code, message: refused ? err.message : 'internal error; see the collector log' } });
  }
}

function requireMethod(method: string, allowed: readonly string[]): void {
  if (!allowed.includes(method)) {
    throw new WebRequestRefusedError(405, 'WEB_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed here (allowed: ${allowed.join(', ')}); the web API is read-only`, { Allow: allowed.join(', ') });
  }
}

function pageNumber(name: string, value: string, min: number, max: number): number {
  if (!/^\d{1,16}$/.test(value) || Number(value) < min || Number(value) > max) throw badRequest(`${name} must be a whole number from ${min} to ${max}`);
  return Number(value);
}

function notFound(message: string): WebRequestRefusedError {
  return new WebRequestRefusedError(404, 'WEB_ERR_NOT_FOUND', message);
}

function badRequest(message: string): WebRequestRefusedError {
  return new WebRequestRefusedError(400, 'WEB_ERR_BAD_PARAMETER', message);
}

/** A redirect target after login: a path on this site only (no scheme, no `//host`). */
function safeNext(next: string | null): string {
  if (next === null || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
  return next;
}

function cookie(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

function readBody(req: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        reject(new WebRequestRefusedError(413, 'WEB_ERR_TOO_LARGE', `the request body is larger than ${max} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolveBody(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function sendHtml(res: ServerResponse, body: Buffer): void {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(body);
}

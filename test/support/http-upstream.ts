import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';

/** What the upstream received, as it received it: the proof of what the gateway forwarded. */
export interface ReceivedRequest {
  method: string;
  url: string;
  /** Raw header pairs, names as sent. */
  rawHeaders: string[];
  body: string;
  upgrade: boolean;
}

export interface HttpUpstream {
  port: number;
  url: string;
  received: ReceivedRequest[];
  /** Lets held /stream?hold=1 responses finish. */
  releaseStreams(): void;
  stop(): Promise<void>;
}

export const STREAM_CHUNKS = 5;

/**
 * A real HTTP server for the gateway's tests and benchmark:
 *   /stream     → a chunked text/plain response written in STREAM_CHUNKS pieces, 30 ms apart; with
 *                 ?hold=1 the first piece is written and the rest wait for releaseStreams()
 *   /big?n=     → n bytes of 'x' as text/plain (default 100000)
 *   /hello      → a short fixed body (for load tests)
 *   /ws         → WebSocket echo (upgrade)
 *   anything else → JSON echo of method, url, headers and body
 */
export async function startHttpUpstream(options: { record?: boolean } = {}): Promise<HttpUpstream> {
  const received: ReceivedRequest[] = [];
  const record = options.record ?? true;
  let holds: Array<() => void> = [];
  const wss = new WebSocketServer({ noServer: true });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    // Invalid frames (the gateway relays what the agent sends) end the connection, as a real server does.
    ws.on('error', () => ws.terminate());
  });
  const hello = Buffer.from('hello from upstream\n');
  const server: Server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    if (req.url === '/hello' && !record) {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': hello.length });
      res.end(hello);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (record) received.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body, upgrade: false });
      const url = new URL(req.url ?? '/', 'http://upstream');
      if (url.pathname === '/hello') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': hello.length });
        res.end(hello);
      } else if (url.pathname === '/stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let sent = 0;
        const rest = (): void => {
          const tick = setInterval(() => {
            sent += 1;
            res.write(`chunk ${sent}\n`);
            if (sent === STREAM_CHUNKS) {
              clearInterval(tick);
              res.end();
            }
          }, 30);
        };
        if (url.searchParams.get('hold') === '1') {
          sent = 1;
          res.write('chunk 1\n');
          holds.push(rest);
        } else {
          rest();
        }
      } else if (url.pathname === '/big') {
        const n = Number(url.searchParams.get('n') ?? 100000);
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': n });
        res.end(Buffer.alloc(n, 'x'));
      } else {
        const echo = JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders, body });
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'upstream-session=secret-cookie', 'x-upstream': 'yes' });
        res.end(echo);
      }
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (record) received.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body: '', upgrade: true });
    if (req.url !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    releaseStreams() {
      const waiting = holds;
      holds = [];
      for (const release of waiting) release();
    },
    async stop() {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

import type { Socket } from 'node:net';
import { FrontendProtocolError } from './errors';
import { FrontendParser, type FrontendMessage, type StartupPacket } from './frontend-parser';

/**
 * The agent's connection during the handshake (TLS negotiation, startup, authentication): messages
 * are awaited one at a time. Once the session is established the proxy reads the socket directly,
 * starting with whatever the parser still holds.
 */
export class ClientChannel {
  private waiter: (() => void) | null = null;
  private ended: Error | null = null;
  bytesIn = 0;
  bytesOut = 0;

  constructor(
    public socket: Socket,
    readonly parser: FrontendParser,
    private readonly handshakeTimeoutMs: number,
  ) {
    this.attach(socket);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.bytesIn += chunk.length;
    this.parser.push(chunk);
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.ended ??= new FrontendProtocolError('the client closed the connection during the handshake');
    this.wake();
  };
  private readonly onError = (err: Error): void => {
    this.ended ??= new FrontendProtocolError(`connection error during the handshake (${err.message})`);
    this.wake();
  };

  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** Stops listening, so the proxy can take the socket over. */
  detach(): void {
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onEnd);
    this.socket.removeListener('error', this.onError);
  }

  /** Swaps in the TLS socket that wraps the plain one after SSLRequest. */
  replaceSocket(socket: Socket): void {
    this.detach();
    this.socket = socket;
    this.attach(socket);
  }

  write(data: Buffer): void {
    this.bytesOut += data.length;
    this.socket.write(data);
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  private async await<T>(read: () => T | null): Promise<T> {
    const deadline = Date.now() + this.handshakeTimeoutMs;
    for (;;) {
      const value = read();
      if (value !== null) return value;
      if (this.ended) throw this.ended;
      const left = deadline - Date.now();
      if (left <= 0) throw new FrontendProtocolError(`the handshake did not finish within ${this.handshakeTimeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  nextStartup(): Promise<StartupPacket> {
    return this.await(() => this.parser.nextStartup());
  }

  next(): Promise<FrontendMessage> {
    return this.await(() => this.parser.next());
  }
}

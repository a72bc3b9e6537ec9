import type { ClientChannel, ServerChannel } from 'ssh2';

export interface BridgeTaps {
  /** Bytes the agent sent (stdin), in order, before they go upstream. */
  fromAgent?(chunk: Buffer): void;
  /** Bytes the upstream sent on stdout, before they go to the agent. */
  fromUpstream?(chunk: Buffer): void;
}

export interface BridgeResult {
  exitStatus: number | null;
  exitSignal: string | null;
  stdinBytes: number;
  stdoutBytes: number;
  stderrBytes: number;
}

/**
 * Joins an agent's session channel to the upstream's, both ways with back-pressure (each side's
 * SSH window only opens as the other side accepts data), and ends it the way sshd does: all
 * output first, then exit-status or exit-signal (RFC 4254 §6.10), then EOF and close. The agent's
 * EOF is passed upstream as EOF; the agent closing the channel closes the upstream one.
 */
export function bridgeChannels(agent: ServerChannel, upstream: ClientChannel, taps: BridgeTaps = {}): Promise<BridgeResult> {
  const result: BridgeResult = { exitStatus: null, exitSignal: null, stdinBytes: 0, stdoutBytes: 0, stderrBytes: 0 };
  agent.on('data', (chunk: Buffer) => {
    result.stdinBytes += chunk.length;
    taps.fromAgent?.(chunk);
  });
  upstream.on('data', (chunk: Buffer) => {
    result.stdoutBytes += chunk.length;
    taps.fromUpstream?.(chunk);
  });
  upstream.stderr.on('data', (chunk: Buffer) => {
    result.stderrBytes += chunk.length;
  });
  let coreDumped = false;
  let description = '';
  upstream.on('exit', (code: number | null, signal?: string, dumped?: boolean, message?: string) => {
    if (typeof code === 'number') result.exitStatus = code;
    else if (signal) {
      // ssh2 prefixes "SIG"; on the wire (RFC 4254 §6.10) and in the journal the name has none.
      result.exitSignal = signal.replace(/^SIG/, '');
      coreDumped = dumped === true;
      description = message ?? '';
    }
  });
  agent.pipe(upstream);
  upstream.pipe(agent, { end: false });
  upstream.stderr.pipe(agent.stderr, { end: false });
  // When the agent's side finishes or closes first (an agent that closes its channel without waiting
  // for exit-status), Node unpipes and pauses the upstream stream. ssh2 emits a client channel's
  // 'close' only after its readable side has ended, and a paused stream never ends: the bridge would
  // wait forever and the channel's end would never be journaled. Keep reading (the taps still see
  // what the upstream sends) so the upstream channel can end and close.
  agent.on('unpipe', (source: NodeJS.ReadableStream) => source.resume());
  agent.stderr.on('unpipe', (source: NodeJS.ReadableStream) => source.resume());
  agent.on('close', () => upstream.close());
  agent.on('error', () => upstream.close());
  upstream.on('error', () => undefined);

  const closed = (emitter: NodeJS.EventEmitter): Promise<void> => new Promise((resolve) => emitter.once('close', () => resolve()));
  return Promise.all([closed(upstream), closed(upstream.stderr)]).then(async () => {
    await drained(agent);
    await drained(agent.stderr);
    if (agent.writable) {
      if (result.exitStatus !== null) agent.exit(result.exitStatus);
      else if (result.exitSignal !== null) agent.exit(result.exitSignal, coreDumped, description);
      agent.end();
    }
    return result;
  });
}

/**
 * Resolves once everything written to the stream so far has gone out: writes complete in order and
 * ssh2 calls a write back only once its bytes were handed to the transport, so an empty write's
 * callback marks the point.
 */
function drained(stream: NodeJS.WritableStream & { writable?: boolean; writableLength?: number }): Promise<void> {
  if (!stream.writable || (stream.writableLength ?? 0) === 0) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('close', () => resolve());
    stream.write(Buffer.alloc(0), () => resolve());
  });
}

import type { Logger } from './log';

/** A long-running part of gapwatch (gateway listener, sensor, store writer, web UI) that `up` runs. */
export interface Component {
  readonly name: string;
  /** Starts the component and returns what it started and where, one line each, for the operator. */
  start(): Promise<string[]>;
  stop(): Promise<void>;
}

/**
 * Starts components in order and keeps them running until SIGINT or SIGTERM, then stops them in
 * reverse order. If one fails to start, those already started are stopped before the error propagates,
 * so nothing is left half-running. A second signal during shutdown exits at once.
 */
export async function runUntilSignal(
  components: readonly Component[],
  log: Logger,
  announce: (lines: string[]) => void,
): Promise<void> {
  const started: Component[] = [];
  const lines: string[] = [];
  try {
    for (const component of components) {
      const said = await component.start();
      started.push(component);
      lines.push(...said.map((line) => `${component.name}: ${line}`));
    }
  } catch (err) {
    await stopAll(started, log);
    throw err;
  }
  // Listening before announcing: whoever reads "up" may signal at once, and a signal that arrives
  // before the listeners exist kills the process without a clean stop.
  const signalled = new Promise<NodeJS.Signals>((resolveSignal) => {
    const onSignal = (sig: NodeJS.Signals): void => resolveSignal(sig);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  // Signal listeners do not keep Node's event loop alive; without this timer a host whose components
  // hold no sockets would exit here, silently, while saying it is up.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  announce(lines);
  const signal = await signalled;
  clearInterval(keepAlive);
  const forceExit = (): void => {
    log.warn('second signal during shutdown; exiting without a clean stop');
    process.exit(130);
  };
  process.once('SIGINT', forceExit);
  process.once('SIGTERM', forceExit);
  log.info({ signal }, 'shutting down');
  await stopAll(started, log);
  process.removeListener('SIGINT', forceExit);
  process.removeListener('SIGTERM', forceExit);
}

async function stopAll(started: Component[], log: Logger): Promise<void> {
  for (const component of [...started].reverse()) {
    try {
      await component.stop();
      log.info({ component: component.name }, 'stopped');
    } catch (err) {
      log.error({ component: component.name, err }, 'failed to stop cleanly');
    }
  }
}

import type { Command } from 'commander';
import { HostSensor, type SensorRecord } from '../../collector/sensor/host-sensor';
import { GapwatchError } from '../../platform/errors';
import { defineCommand } from '../cli';

interface SensorOptions {
  json?: boolean;
  duration?: string;
  filter?: string[];
}

/** `--filter key=value`: records must match every filter; loss records always pass. */
const FILTER_KEYS = ['kind', 'pid', 'ppid', 'comm', 'agent', 'execId', 'agentRunId', 'port', 'uid'] as const;
type FilterKey = (typeof FILTER_KEYS)[number];

export class SensorFilterError extends GapwatchError {
  constructor(filter: string) {
    super('CLI_ERR_BAD_FILTER', `bad --filter '${filter}': expected key=value with key one of ${FILTER_KEYS.join(', ')} (e.g. --filter kind=connect --filter comm=curl)`);
  }
}

export function parseFilters(filters: readonly string[]): ((record: SensorRecord) => boolean) {
  const parsed = filters.map((filter) => {
    const eq = filter.indexOf('=');
    const key = filter.slice(0, eq) as FilterKey;
    if (eq <= 0 || !FILTER_KEYS.includes(key)) throw new SensorFilterError(filter);
    return { key, value: filter.slice(eq + 1) };
  });
  return (record) => {
    if (record.kind === 'loss') return true;
    return parsed.every(({ key, value }) => {
      if (key === 'port') return record.kind === 'connect' && (String(record.remotePort) === value || String(record.localPort) === value);
      const field = (record as unknown as Record<string, unknown>)[key];
      return field !== undefined && field !== null && String(field) === value;
    });
  };
}

function humanLine(record: SensorRecord): string {
  if (record.kind === 'loss') return `${record.time} LOSS kernel=${JSON.stringify(record.kernelDrops)} queue=${JSON.stringify(record.queueDrops)}`;
  const who = `${record.pid} ${record.comm}${record.agent ? ` [${record.agent}]` : ''}`;
  switch (record.kind) {
    case 'exec':
      return `${record.time} exec ${who} ${record.filename} ${JSON.stringify(record.argv)}${record.argvTruncated ? ' (truncated)' : ''}${record.argvRedacted ? ' (redacted)' : ''}`;
    case 'fork':
      return `${record.time} fork ${who} parent=${record.ppid}`;
    case 'exit':
      return `${record.time} exit ${who} ${record.signal !== null ? `signal=${record.signal}` : `code=${record.exitCode}`}`;
    case 'connect': {
      const remote = record.unixPath !== null ? record.unixPath : `${record.remoteAddress}:${record.remotePort}`;
      const local = record.localPort !== null ? ` from ${record.localAddress}:${record.localPort}` : '';
      const result = record.result === null ? 'intent' : record.result === 'started' ? 'started' : `failed errno=${record.errno}`;
      return `${record.time} connect ${who} ${record.transport} ${remote}${local} ${result}`;
    }
  }
}

export function registerSensor(program: Command): void {
  defineCommand<SensorOptions>(
    program,
    'sensor',
    'stream the host sensor\'s raw events (exec, fork, exit, connect, loss) for debugging; needs root',
    (command) =>
      command
        .option('--json', 'one JSON object per line (NDJSON)')
        .option('--duration <seconds>', 'stop after this many seconds (default: until interrupted)')
        .option('--filter <key=value>', `only records matching (repeatable; keys: ${FILTER_KEYS.join(', ')})`, (v: string, acc: string[] = []) => [...acc, v]),
    async (context, options) => {
      const filter = parseFilters(options.filter ?? []);
      let duration: number | null = null;
      if (options.duration !== undefined) {
        duration = Number(options.duration);
        if (!Number.isFinite(duration) || duration <= 0) throw new SensorDurationError(options.duration);
      }
      let closed = false;
      const write = (record: SensorRecord): void => {
        if (closed || !filter(record)) return;
        process.stdout.write(options.json ? `${JSON.stringify(record)}\n` : `${humanLine(record)}\n`);
      };
      const sensor = new HostSensor(context.config.collector.sensor, write);
      const started = sensor.start();
      context.log.info({ programs: started.programs.length, seeded: started.seededProcesses, cgroupRoot: started.cgroupRoot, unixConnectHook: started.unixConnectHook }, 'sensor started');
      await new Promise<void>((resolve) => {
        const timer = duration === null ? null : setTimeout(resolve, duration * 1000);
        const onSignal = (): void => {
          if (timer) clearTimeout(timer);
          resolve();
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        // The reader went away (`gapwatch sensor | head`): stop writing, stop like on a signal.
        process.stdout.on('error', () => {
          closed = true;
          onSignal();
        });
      });
      const stats = await sensor.stop();
      if (stats) context.log.info({ records: stats.records, kernelDrops: stats.kernelDrops, queueDrops: stats.queueDrops }, 'sensor stopped');
      return 0;
    },
  );
}

export class SensorDurationError extends GapwatchError {
  constructor(value: string) {
    super('CLI_ERR_BAD_DURATION', `bad --duration '${value}': expected a positive number of seconds`);
  }
}

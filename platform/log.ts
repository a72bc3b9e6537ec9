import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from './config';

export type { Logger };

/**
 * Keys that may carry credentials anywhere in a log record. Logs must never hold secrets: values under
 * these keys are replaced before the record is written, whichever component logged them.
 */
const REDACTED_KEYS = [
  'password',
  'secret',
  'token',
  'authorization',
  'credentials',
  '*.password',
  '*.secret',
  '*.token',
  '*.authorization',
  '*.credentials',
  '*.*.password',
  '*.*.token',
];

/**
 * Structured JSON lines on stderr (stdout is kept for command output such as `gapwatch sensor` NDJSON),
 * human-readable when stderr is a terminal.
 */
export function createLogger(options: Config['log'], name = 'gapwatch'): Logger {
  const usePretty = options.format === 'pretty' || (options.format === 'auto' && process.stderr.isTTY === true);
  const base = {
    name,
    level: options.level,
    redact: { paths: REDACTED_KEYS, censor: '[redacted]' },
  };
  if (usePretty) {
    return pino(base, pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname' }));
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
}

import { Command, Option } from 'commander';
import { loadConfig, type Config } from '../platform/config';
import { GapwatchError } from '../platform/errors';
import { createLogger, type Logger } from '../platform/log';
import { packageVersion } from '../platform/package-root';

/** What every command's action receives: the validated configuration and a logger built from it. */
export interface CommandContext {
  config: Config;
  configSource: string | null;
  log: Logger;
}

interface CommonOptions {
  config?: string;
  logLevel?: Config['log']['level'];
}

/**
 * Declares a subcommand with the options every command shares (--config, --log-level, --help,
 * --version), and runs its action with the configuration loaded and validated.
 */
export function defineCommand<O extends object>(
  program: Command,
  name: string,
  description: string,
  configure: (command: Command) => void,
  action: (context: CommandContext, options: O, args: string[]) => Promise<number | void>,
): Command {
  const command = program
    .command(name)
    .description(description)
    .version(packageVersion(), '-V, --version', 'print the gapwatch version')
    .option('-c, --config <file>', 'configuration file (default: ./gapwatch.yaml when present)')
    .addOption(new Option('--log-level <level>', 'override log.level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal']));
  configure(command);
  command.action(async (...received: unknown[]) => {
    const cmd = received[received.length - 1] as Command;
    const options = cmd.opts<O & CommonOptions>();
    const args = cmd.args;
    const { config, source } = loadConfig(options.config);
    if (options.logLevel) config.log.level = options.logLevel;
    const log = createLogger(config.log);
    const code = await action({ config, configSource: source, log }, options, args);
    process.exitCode = code ?? 0;
  });
  return command;
}

/** Prints an error the way users should see it: code and message, no stack unless it is a bug. */
export function reportError(err: unknown): number {
  if (err instanceof GapwatchError) {
    process.stderr.write(`gapwatch: ${err.message}\n  (${err.code})\n`);
    return err.code.startsWith('CONFIG_ERR') ? 2 : 1;
  }
  process.stderr.write(`gapwatch: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 70; // EX_SOFTWARE
}

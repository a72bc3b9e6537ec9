import type { Command } from 'commander';
import { runDoctor } from '../../collector/doctor/checks';
import { renderDoctorReport } from '../../collector/doctor/report';
import { DoctorFailedError } from '../../collector/errors';
import { storeCheck } from '../../collector/store/store-check';
import { storeComponent } from '../../collector/store/store-component';
import { gatewayComponent } from '../../gateway/gateway-component';
import { lockDataDir, type DataDirLock } from '../../platform/data-dir';
import { runUntilSignal, type Component } from '../../platform/supervisor';
import { defineCommand, type CommandContext } from '../cli';

/**
 * `gapwatch up`: the one-host mode `npm start` runs. It checks the host, then starts every component
 * on this host and keeps them running until SIGINT/SIGTERM. Components are added here as they exist.
 */
export function registerUp(program: Command): void {
  defineCommand(
    program,
    'up',
    'run gapwatch on this host: check it, start every component, keep running until Ctrl-C',
    () => undefined,
    async (context) => {
      const report = await runDoctor([storeCheck(context.config)]);
      process.stdout.write(renderDoctorReport(report));
      if (!report.ok) {
        throw new DoctorFailedError(report.checks.filter((c) => c.status === 'fail').map((c) => c.title));
      }
      await runUntilSignal(oneHostComponents(context), context.log, (lines) => {
        process.stdout.write(
          `\ngapwatch ${context.configSource ? `(config ${context.configSource})` : '(default configuration)'} is up:\n` +
            lines.map((line) => `  ${line}\n`).join('') +
            'Press Ctrl-C to stop.\n',
        );
      });
      process.stdout.write('gapwatch stopped.\n');
      return 0;
    },
  );
}

function oneHostComponents(context: CommandContext): Component[] {
  const components = [dataDirComponent(context.config.dataDir), storeComponent(context.config, context.log)];
  // The gateway runs when it has something to guard.
  if (context.config.gateway.postgres.resources.length > 0) components.push(gatewayComponent(context.config, context.log));
  return components;
}

function dataDirComponent(dataDir: string): Component {
  let lock: DataDirLock | null = null;
  return {
    name: 'data directory',
    async start() {
      lock = lockDataDir(dataDir);
      return [`${dataDir} (locked by pid ${process.pid})`];
    },
    async stop() {
      lock?.release();
    },
  };
}

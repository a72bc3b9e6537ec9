#!/usr/bin/env node
import { Command } from 'commander';
import { packageVersion } from '../platform/package-root';
import { reportError } from './cli';
import { registerCerts } from './commands/certs';
import { registerCollector } from './commands/collector';
import { registerAlerts } from './commands/alerts';
import { registerDoctor } from './commands/doctor';
import { registerGateway } from './commands/gateway';
import { registerQuery } from './commands/query';
import { registerReviews } from './commands/reviews';
import { registerSensor } from './commands/sensor';
import { registerToken } from './commands/token';
import { registerUp } from './commands/up';
import { registerVerify } from './commands/verify';

async function main(argv: string[]): Promise<void> {
  const program = new Command('gapwatch')
    .description('Accountability for AI coding agents: an L7 gateway joined with an eBPF host sensor')
    .version(packageVersion(), '-V, --version', 'print the gapwatch version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerUp(program);
  registerDoctor(program);
  registerVerify(program);
  registerToken(program);
  registerReviews(program);
  registerGateway(program);
  registerQuery(program);
  registerSensor(program);
  registerCerts(program);
  registerCollector(program);
  registerAlerts(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // commander signals --help, --version and usage errors by throwing when exitOverride is on.
    const code = (err as { code?: string; exitCode?: number }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      process.exitCode = (err as { exitCode: number }).exitCode;
      return;
    }
    process.exitCode = reportError(err);
  }
}

void main(process.argv);

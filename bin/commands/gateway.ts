import type { Command } from 'commander';
import { gatewayComponent } from '../../gateway/gateway-component';
import { runUntilSignal } from '../../platform/supervisor';
import { defineCommand } from '../cli';

/**
 * `gapwatch gateway`: runs the gateway alone (fleet deployments run it on its own host): the
 * PostgreSQL listener for the configured resources, with its journal and policy, until Ctrl-C.
 */
export function registerGateway(program: Command): void {
  defineCommand(
    program,
    'gateway',
    'run the access gateway (PostgreSQL listener, audit journal, policy) until Ctrl-C',
    () => undefined,
    async (context) => {
      await runUntilSignal([gatewayComponent(context.config, context.log)], context.log, (lines) => {
        process.stdout.write(`gapwatch gateway is up:\n${lines.map((line) => `  ${line}\n`).join('')}Press Ctrl-C to stop.\n`);
      });
      process.stdout.write('gapwatch gateway stopped.\n');
      return 0;
    },
  );
}

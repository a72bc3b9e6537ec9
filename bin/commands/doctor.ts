import type { Command } from 'commander';
import { runDoctor } from '../../collector/doctor/checks';
import { renderDoctorReport } from '../../collector/doctor/report';
import { storeCheck } from '../../collector/store/store-check';
import { defineCommand } from '../cli';

export function registerDoctor(program: Command): void {
  defineCommand<{ json?: boolean }>(
    program,
    'doctor',
    'check that this host can run gapwatch: kernel, BTF, BPF programs, cgroup hooks, privileges, store',
    (command) => command.option('--json', 'print the report as JSON'),
    async (context, options) => {
      const report = await runDoctor([storeCheck(context.config)]);
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderDoctorReport(report));
      return report.ok ? 0 : 1;
    },
  );
}

import type { Command } from 'commander';
import { runDoctor } from '../../collector/doctor/checks';
import { renderDoctorReport } from '../../collector/doctor/report';
import { defineCommand } from '../cli';

export function registerDoctor(program: Command): void {
  defineCommand<{ json?: boolean }>(
    program,
    'doctor',
    'check that this host can run gapwatch: kernel, BTF, BPF programs, cgroup hooks, privileges',
    (command) => command.option('--json', 'print the report as JSON'),
    async (_context, options) => {
      const report = await runDoctor();
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderDoctorReport(report));
      return report.ok ? 0 : 1;
    },
  );
}

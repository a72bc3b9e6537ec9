import type { CheckStatus, DoctorReport } from './checks';

const LABEL: Record<CheckStatus, string> = { ok: 'ok', warn: 'warn', fail: 'FAIL' };

/** The doctor report as a fixed-width table, fixes listed under the table for warn and fail rows. */
export function renderDoctorReport(report: DoctorReport): string {
  const titleWidth = Math.max(5, ...report.checks.map((c) => c.title.length));
  const lines = [`${'CHECK'.padEnd(titleWidth)}  STATUS  DETAIL`];
  for (const check of report.checks) {
    lines.push(`${check.title.padEnd(titleWidth)}  ${LABEL[check.status].padEnd(6)}  ${check.detail}`);
  }
  const fixes = report.checks.filter((c) => c.fix && c.status !== 'ok');
  if (fixes.length > 0) {
    lines.push('', 'To fix:');
    for (const check of fixes) lines.push(`  ${check.title}: ${check.fix}`);
  }
  const failed = report.checks.filter((c) => c.status === 'fail').length;
  const warned = report.checks.filter((c) => c.status === 'warn').length;
  lines.push(
    '',
    report.ok
      ? `The collector can run on this host (${warned} warning${warned === 1 ? '' : 's'}).`
      : `The collector cannot run on this host: ${failed} check${failed === 1 ? '' : 's'} failed.`,
  );
  return `${lines.join('\n')}\n`;
}

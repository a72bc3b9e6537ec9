import type { Command } from 'commander';
import { ReviewDirectory, type ReviewEntry } from '../../gateway/policy/review-channel';
import { defineCommand, type CommandContext } from '../cli';

function directoryOf(context: CommandContext): ReviewDirectory {
  return new ReviewDirectory(context.config.dataDir);
}

function entryJson(entry: ReviewEntry): Record<string, unknown> {
  return { ...entry.request, status: entry.status, gatewayRunning: entry.gatewayRunning, decision: entry.decision };
}

function renderEntry(entry: ReviewEntry): string {
  const { request } = entry;
  const lines = [
    `${request.reviewId}  ${entry.status}  requested ${request.createdAt} by ${request.subject} (login ${request.login}) on ${request.resource}`,
    `  rule ${request.rule}: ${request.reason}`,
    `  expires ${request.expiresAt}; session ${request.sessionId}`,
  ];
  if (entry.status === 'pending' && !entry.gatewayRunning) lines.push(`  (gateway process ${request.gatewayPid} is not running on this host: nothing may be waiting for this decision)`);
  for (const statement of request.statements) {
    lines.push(`  > ${statement.text.replace(/\s+/g, ' ')}`);
    lines.push(`    classes: ${statement.classes.join(', ') || '-'}; relations: ${statement.relations.join(', ') || '-'}`);
  }
  if (entry.decision?.reviewer) lines.push(`  decided by ${entry.decision.reviewer} at ${entry.decision.at}${entry.decision.reason ? `: ${entry.decision.reason}` : ''}`);
  else if (entry.decision) lines.push(`  settled at ${entry.decision.at}${entry.decision.reason ? `: ${entry.decision.reason}` : ' (no decision in time)'}`);
  return `${lines.join('\n')}\n`;
}

/** `gapwatch reviews`, `gapwatch approve <id> --as <name>`, `gapwatch deny <id> --as <name>`. */
export function registerReviews(program: Command): void {
  defineCommand<{ all?: boolean; json?: boolean }>(
    program,
    'reviews',
    'list statements waiting for a human decision',
    (command) => command.option('--all', 'include settled and expired reviews').option('--json', 'print one JSON object per line'),
    async (context, options) => {
      const entries = directoryOf(context)
        .list()
        .filter((entry) => options.all === true || entry.status === 'pending');
      if (options.json) {
        for (const entry of entries) process.stdout.write(`${JSON.stringify(entryJson(entry))}\n`);
      } else if (entries.length === 0) {
        process.stdout.write(options.all ? 'no reviews\n' : 'no reviews pending\n');
      } else {
        process.stdout.write(entries.map(renderEntry).join('\n'));
      }
      return 0;
    },
  );

  for (const outcome of ['approved', 'denied'] as const) {
    const verb = outcome === 'approved' ? 'approve' : 'deny';
    defineCommand<{ as: string; reason?: string }>(
      program,
      verb,
      outcome === 'approved' ? 'let a held statement run' : 'refuse a held statement (the client gets an error)',
      (command) => {
        command.argument('<id>', 'the review id (from `gapwatch reviews` or the client notice)');
        command.requiredOption('--as <reviewer>', 'who decides (recorded in the journal; must not be the requester)');
        if (outcome === 'denied') command.option('--reason <text>', 'told to the client');
      },
      async (context, options, args) => {
        const id = args[0]!;
        const decision = directoryOf(context).decide(id, outcome, options.as, { reason: options.reason, reviewers: context.config.gateway.policy.reviewers });
        process.stdout.write(`${id} ${outcome} by ${decision.reviewer ?? options.as}\n`);
        return 0;
      },
    );
  }
}

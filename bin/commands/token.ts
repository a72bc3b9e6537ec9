import type { Command } from 'commander';
import { IdentityInputError } from '../../gateway/identity/errors';
import { FileIdentityStore, parseClaims, parseExpiry, type IdentitySummary } from '../../gateway/identity/identity-store';
import { formatSshPublicKey, parseSshPublicKey } from '../../gateway/ssh/ssh-keys';
import { defineCommand, type CommandContext } from '../cli';
import { readFileSync } from 'node:fs';

function storeOf(context: CommandContext): FileIdentityStore {
  return new FileIdentityStore({ dataDir: context.config.dataDir, iterations: context.config.gateway.identity.scramIterations });
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Reads and validates an OpenSSH public key file for the SSH gateway ("type base64", comment dropped). */
function readSshKey(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new IdentityInputError('ssh-key', `cannot read ${file}: ${(err as Error).message}`);
  }
  return formatSshPublicKey(parseSshPublicKey(text));
}

function renderClaims(claims: Record<string, string>): string {
  return Object.entries(claims)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

function summaryJson(summary: IdentitySummary): Record<string, unknown> {
  return {
    login: summary.login,
    subject: summary.subject,
    claims: summary.claims,
    status: summary.status,
    createdAt: summary.createdAt.toISOString(),
    expiresAt: summary.expiresAt?.toISOString() ?? null,
    revokedAt: summary.revokedAt?.toISOString() ?? null,
  };
}

function renderTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n') + '\n';
}

/**
 * `gapwatch token create|list|revoke`: agent identities for the gateway. The token is printed once,
 * alone on stdout (so `TOKEN=$(gapwatch token create ci-bot)` works); only its SCRAM verifier is kept.
 */
export function registerToken(program: Command): void {
  const token = program.command('token').description('manage agent identities and their gateway tokens (create, list, revoke)');

  defineCommand<{ claim?: string[]; expires?: string; subject?: string; replace?: boolean; json?: boolean; sshKey?: string[] }>(
    token,
    'create',
    'issue a token for an agent login; prints the token once (only a SCRAM verifier is stored)',
    (command) =>
      command
        .argument('<login>', 'the login the agent presents to the gateway')
        .option('--claim <key=value>', 'a fact about the agent, repeatable (owner=alice, repo=org/app …)', collect)
        .option('--expires <when>', 'a duration (90m, 12h, 30d, 2w) or an ISO date; default: never')
        .option('--subject <subject>', 'subject recorded in audit records (default: agent:<login>)')
        .option('--replace', 'issue a new token even if the login has an active one (the old one stops working)')
        .option('--ssh-key <file>', 'an OpenSSH public key the agent may log into the SSH gateway with, repeatable', collect)
        .option('--json', 'print {login, subject, token, …} as JSON'),
    async (context, options, args) => {
      const login = args[0]!;
      const { summary, token: secret } = await storeOf(context).create(login, {
        claims: parseClaims(options.claim ?? []),
        expiresAt: options.expires === undefined ? null : parseExpiry(options.expires),
        subject: options.subject,
        replace: options.replace === true,
        sshKeys: (options.sshKey ?? []).map(readSshKey),
      });
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ ...summaryJson(summary), token: secret })}\n`);
      } else {
        process.stderr.write(
          `created identity ${summary.login} (subject ${summary.subject}, expires ${summary.expiresAt?.toISOString() ?? 'never'}).\n` +
            'The token below is shown only this once; the gateway keeps only a verifier of it.\n',
        );
        process.stdout.write(`${secret}\n`);
      }
      return 0;
    },
  );

  defineCommand<{ json?: boolean }>(
    token,
    'list',
    'list agent identities (never their tokens)',
    (command) => command.option('--json', 'print one JSON object per line'),
    async (context, options) => {
      const identities = await storeOf(context).list();
      if (options.json) {
        for (const summary of identities) process.stdout.write(`${JSON.stringify(summaryJson(summary))}\n`);
        return 0;
      }
      if (identities.length === 0) {
        process.stdout.write('no identities; create one with `gapwatch token create <login>`\n');
        return 0;
      }
      const rows = [['LOGIN', 'SUBJECT', 'STATUS', 'CREATED', 'EXPIRES', 'CLAIMS']];
      for (const summary of identities) {
        rows.push([
          summary.login,
          summary.subject,
          summary.status,
          summary.createdAt.toISOString(),
          summary.expiresAt?.toISOString() ?? 'never',
          renderClaims(summary.claims),
        ]);
      }
      process.stdout.write(renderTable(rows));
      return 0;
    },
  );

  defineCommand(
    token,
    'add-ssh-key',
    'register an OpenSSH public key for an identity: the agent can then log into the SSH gateway with it',
    (command) => command.argument('<login>', 'the identity').argument('<file>', 'the public key file (e.g. ~/.ssh/id_ed25519.pub)'),
    async (context, _options, args) => {
      const key = readSshKey(args[1]!);
      const summary = await storeOf(context).addSshKey(args[0]!, key);
      process.stdout.write(`registered ${key.split(' ')[0]} key for ${summary.login}\n`);
      return 0;
    },
  );

  defineCommand(
    token,
    'revoke',
    'revoke an agent login: its token stops working for new connections',
    (command) => command.argument('<login>', 'the login to revoke'),
    async (context, _options, args) => {
      const summary = await storeOf(context).revoke(args[0]!);
      process.stdout.write(`revoked ${summary.login} at ${summary.revokedAt?.toISOString() ?? ''}\n`);
      return 0;
    },
  );
}

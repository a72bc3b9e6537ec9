import assert from 'node:assert/strict';
import { packageVersion } from '../../platform/package-root';
import { runCli } from '../support/host';

/** The identity and review commands follow the CLI conventions every command has. */
const COMMANDS = [['token', 'create'], ['token', 'list'], ['token', 'revoke'], ['reviews'], ['approve'], ['deny']];

describe('bin/gapwatch identity and review commands', function () {
  this.timeout(60_000);

  it('are listed in the help', async () => {
    const result = await runCli(['--help']);
    for (const command of ['token', 'reviews', 'approve', 'deny']) assert.match(result.stdout, new RegExp(`^  ${command} `, 'm'));
    const token = await runCli(['token', '--help']);
    for (const command of ['create', 'list', 'revoke']) assert.match(token.stdout, new RegExp(`^  ${command} `, 'm'));
  });

  for (const command of COMMANDS) {
    it(`${command.join(' ')} has --help and --version`, async () => {
      const help = await runCli([...command, '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, new RegExp(`^Usage: gapwatch ${command.join(' ')}`));
      assert.match(help.stdout, /--config <file>/);
      const version = await runCli([...command, '--version']);
      assert.equal(version.stdout.trim(), packageVersion());
    });
  }

  it('approve and deny require --as', async () => {
    const result = await runCli(['approve', 'rv-000000000000']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /required option '--as <reviewer>' not specified/);
  });
});

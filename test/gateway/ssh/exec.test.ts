import assert from 'node:assert/strict';
import { runCommand } from '../../support/host';
import { startSshGateway, type SshGatewayUnderTest } from '../../support/ssh-gateway';

describe('gateway/ssh: exec through the gateway with the real OpenSSH client', function () {
  this.timeout(60_000);
  let gw: SshGatewayUnderTest;

  before(async () => {
    gw = await startSshGateway();
  });

  after(async () => {
    await gw?.stop();
  });

  it('runs a command with the same output and exit status as direct', async () => {
    const command = 'echo out; echo err >&2; exit 3';
    const direct = await runCommand('ssh', [...gw.directOptions, gw.directTarget, command]);
    const through = await runCommand('ssh', [...gw.gatewayOptions, gw.gatewayTarget, command]);
    assert.equal(direct.code, 3, direct.stderr);
    assert.deepEqual({ code: through.code, stdout: through.stdout, stderr: through.stderr }, { code: direct.code, stdout: direct.stdout, stderr: direct.stderr });
  });
});

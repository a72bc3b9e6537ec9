import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SshCommandPolicy, SshEngineRule } from '../../../gateway/ssh/command-policy';
import { parseConfig } from '../../../platform/config';

describe('gateway/ssh SshCommandPolicy', () => {
  let dataDir: string;
  const ci = { resource: 'web1', identity: { login: 'claude-ci', subject: 'agent:claude-ci', claims: {} } };
  const ops = { resource: 'web1', identity: { login: 'ops-bot', subject: 'agent:ops-bot', claims: {} } };

  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'gapwatch-ssh-policy-'));
  });

  after(() => rmSync(dataDir, { recursive: true, force: true }));

  const policyOf = (ssh: Record<string, unknown>): SshCommandPolicy => {
    const config = parseConfig(JSON.stringify({ gateway: { ssh } }));
    return new SshCommandPolicy(config.gateway.ssh, { dataDir, timeoutSeconds: 5 });
  };

  it('decides commands by the first matching rule, per identity and resource, else the default', () => {
    const policy = policyOf({
      commandDefault: 'review',
      commands: [
        { name: 'ops-anything', logins: ['ops-*'], patterns: ['.*'], action: 'allow' },
        { name: 'no-wipe', patterns: ['rm\\s+-rf'], action: 'deny', reason: 'no' },
        { name: 'read-only', resources: ['web*'], patterns: ['^(ls|cat|uptime)( |$)'], action: 'allow' },
      ],
    });
    try {
      assert.deepEqual(policy.decideCommand(ops, 'rm -rf /'), { action: 'allow', rule: 'ops-anything' });
      assert.deepEqual(policy.decideCommand(ci, 'sh -c "cd /; rm  -rf /"'), { action: 'deny', rule: 'no-wipe', reason: 'no' });
      assert.deepEqual(policy.decideCommand(ci, 'uptime'), { action: 'allow', rule: 'read-only' });
      // Patterns see the whole command, across lines.
      assert.equal(policy.decideCommand(ci, 'ls\nrm -rf /').action, 'deny');
      const fallback = policy.decideCommand({ ...ci, resource: 'db1' }, 'uptime');
      assert.equal(fallback.action, 'review');
      assert.equal(fallback.rule, SshEngineRule.CommandDefault);
    } finally {
      policy.close();
    }
  });

  it('refuses every kind of forwarding unless a rule allows the kind and destination', () => {
    const policy = policyOf({ forwarding: [{ name: 'db-tunnel', logins: ['claude-*'], kinds: ['local'], destinations: ['db.internal:5432'] }] });
    try {
      assert.deepEqual(policy.decideForwarding(ci, 'local', 'db.internal:5432'), { allowed: true, rule: 'db-tunnel' });
      assert.equal(policy.decideForwarding(ci, 'local', 'db.internal:22').allowed, false);
      assert.equal(policy.decideForwarding(ci, 'remote', 'db.internal:5432').allowed, false);
      assert.equal(policy.decideForwarding(ops, 'local', 'db.internal:5432').allowed, false);
      const refused = policy.decideForwarding(ci, 'agent', null);
      assert.equal(refused.allowed, false);
      assert.equal(refused.rule, SshEngineRule.ForwardingDefault);
    } finally {
      policy.close();
    }
  });

  it('refuses bad configuration: an invalid pattern, a resource without credential or pinned key', () => {
    assert.throws(() => parseConfig(JSON.stringify({ gateway: { ssh: { commands: [{ name: 'x', patterns: ['('], action: 'deny' }] } } })), /gateway\.ssh\.commands\.0\.patterns\.0/);
    assert.throws(
      () => parseConfig(JSON.stringify({ gateway: { ssh: { resources: [{ name: 'web1', upstream: { host: 'h', user: 'u', hostKeys: ['ssh-ed25519 AAAA'] } }] } } })),
      /privateKey or upstream\.password/,
    );
    assert.throws(() => parseConfig(JSON.stringify({ gateway: { ssh: { resources: [{ name: 'web1', upstream: { host: 'h', user: 'u', hostKeys: [], password: { env: 'X' } } }] } } })), /hostKeys/);
  });
});

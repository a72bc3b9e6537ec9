import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentIdentity } from '../../../gateway/identity/contract';
import type { PolicyDecision, PolicyRequest } from '../../../gateway/policy/contract';
import { createPolicyEngine, type GatewayPolicyEngine } from '../../../gateway/policy/policy-engine';
import { ReviewDirectory } from '../../../gateway/policy/review-channel';
import { parseConfig } from '../../../platform/config';
import { runCli } from '../../support/host';

const AGENT: AgentIdentity = { login: 'claude-ci', subject: 'agent:claude-ci', claims: {} };

interface Gateway {
  engine: GatewayPolicyEngine;
  configFile: string;
  dataDir: string;
}

async function startGateway(policyYaml = '    default: allow\n'): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'gapwatch-review-'));
  const dataDir = join(dir, 'data');
  const configFile = join(dir, 'gapwatch.yaml');
  const yaml = `dataDir: ${dataDir}\ngateway:\n  policy:\n${policyYaml}`;
  writeFileSync(configFile, yaml);
  const config = parseConfig(yaml);
  return { engine: await createPolicyEngine({ config: config.gateway.policy, dataDir }), configFile, dataDir };
}

function request(text: string, sessionId = 's1'): PolicyRequest {
  return { sessionId, resource: 'orders-db', identity: AGENT, via: 'query', text };
}

async function held(engine: GatewayPolicyEngine, text: string, sessionId = 's1') {
  const decision = await engine.evaluate(request(text, sessionId));
  assert.equal(decision.action, 'review');
  const pending = await engine.requestReview(request(text, sessionId), decision as Extract<PolicyDecision, { action: 'review' }>);
  assert.match(pending.reviewId, /^rv-[0-9a-f]{12}$/);
  return pending;
}

describe('gateway/policy reviews across processes', function () {
  this.timeout(60_000);

  it('lists a held statement, refuses self-approval, and releases it on approval by someone else', async () => {
    const gateway = await startGateway();
    try {
      const pending = await held(gateway.engine, 'DROP TABLE orders');
      const listed = await runCli(['reviews', '--json', '--config', gateway.configFile]);
      assert.equal(listed.code, 0, listed.stderr);
      const entry = JSON.parse(listed.stdout.trim()) as Record<string, unknown>;
      assert.deepEqual([entry.reviewId, entry.status, entry.subject, entry.text, entry.rule], [pending.reviewId, 'pending', 'agent:claude-ci', 'DROP TABLE orders', 'gapwatch:review-ddl']);
      const human = await runCli(['reviews', '--config', gateway.configFile]);
      assert.match(human.stdout, new RegExp(`^${pending.reviewId}  pending  requested .* by agent:claude-ci \\(login claude-ci\\) on orders-db`, 'm'));
      assert.match(human.stdout, /> DROP TABLE orders/);

      for (const self of ['claude-ci', 'Agent:Claude-CI']) {
        const refused = await runCli(['approve', pending.reviewId, '--as', self, '--config', gateway.configFile]);
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, /POLICY_ERR_SELF_APPROVAL/);
      }
      const approved = await runCli(['approve', pending.reviewId, '--as', 'alice', '--config', gateway.configFile]);
      assert.equal(approved.code, 0, approved.stderr);
      const outcome = await pending.outcome;
      assert.equal(outcome.outcome, 'approved');
      assert.equal(outcome.outcome === 'approved' ? outcome.reviewer : '', 'alice');

      const again = await runCli(['deny', pending.reviewId, '--as', 'bob', '--config', gateway.configFile]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already settled: approved by alice/);
      const none = await runCli(['reviews', '--config', gateway.configFile]);
      assert.equal(none.stdout, 'no reviews pending\n');
      const all = await runCli(['reviews', '--all', '--json', '--config', gateway.configFile]);
      assert.equal((JSON.parse(all.stdout.trim()) as { status: string }).status, 'approved');
      for (const file of [`${pending.reviewId}.json`, `${pending.reviewId}.decision.json`]) {
        assert.equal(statSync(join(gateway.dataDir, 'reviews', file)).mode & 0o777, 0o600);
      }
      assert.equal(statSync(join(gateway.dataDir, 'reviews')).mode & 0o777, 0o700);
    } finally {
      gateway.engine.close();
    }
  });

  it('refuses a held statement on deny, with the reviewer and the reason', async () => {
    const gateway = await startGateway();
    try {
      const pending = await held(gateway.engine, "DO $$ BEGIN PERFORM 1; END $$");
      const denied = await runCli(['deny', pending.reviewId, '--as', 'bob', '--reason', 'not during the freeze', '--config', gateway.configFile]);
      assert.equal(denied.code, 0, denied.stderr);
      assert.deepEqual(await pending.outcome.then((o) => ({ ...o, at: undefined })), { outcome: 'denied', reviewer: 'bob', reason: 'not during the freeze', at: undefined });
    } finally {
      gateway.engine.close();
    }
  });

  it('times out, and a late approval then changes nothing', async () => {
    const gateway = await startGateway('    reviewTimeoutSeconds: 1\n');
    try {
      const pending = await held(gateway.engine, 'ALTER TABLE orders ADD COLUMN x int');
      assert.equal((await pending.outcome).outcome, 'timed_out');
      const late = await runCli(['approve', pending.reviewId, '--as', 'alice', '--config', gateway.configFile]);
      assert.equal(late.code, 1);
      assert.match(late.stderr, /already settled: timed_out/);
    } finally {
      gateway.engine.close();
    }
  });

  it('a withdrawn review (the client went away) is settled at once and can no longer be approved', async () => {
    const gateway = await startGateway();
    try {
      const pending = await held(gateway.engine, 'DROP TABLE orders');
      pending.withdraw('the client disconnected');
      assert.equal((await pending.outcome).outcome, 'timed_out');
      const late = await runCli(['approve', pending.reviewId, '--as', 'alice', '--config', gateway.configFile]);
      assert.equal(late.code, 1);
      assert.match(late.stderr, /already settled: timed_out/);
      const all = await runCli(['reviews', '--all', '--json', '--config', gateway.configFile]);
      const entry = JSON.parse(all.stdout.trim()) as { decision: { reason: string } };
      assert.equal(entry.decision.reason, 'the client disconnected');
    } finally {
      gateway.engine.close();
    }
  });

  it('accepts only the configured reviewers', async () => {
    const gateway = await startGateway('    reviewers: [carol]\n');
    try {
      const pending = await held(gateway.engine, 'CREATE INDEX ON orders (id)');
      const stranger = await runCli(['approve', pending.reviewId, '--as', 'alice', '--config', gateway.configFile]);
      assert.equal(stranger.code, 1);
      assert.match(stranger.stderr, /POLICY_ERR_REVIEWER_NOT_ALLOWED/);
      const carol = await runCli(['approve', pending.reviewId, '--as', 'carol', '--config', gateway.configFile]);
      assert.equal(carol.code, 0, carol.stderr);
      assert.equal((await pending.outcome).outcome, 'approved');
    } finally {
      gateway.engine.close();
    }
  });

  it('applies what a held string prepares only once it is approved', async () => {
    const gateway = await startGateway();
    try {
      const pending = await held(gateway.engine, 'PREPARE p AS SELECT 1; CREATE TABLE t (id int)', 'prep');
      assert.equal((await gateway.engine.evaluate(request('EXECUTE p', 'prep'))).action, 'deny');
      new ReviewDirectory(gateway.dataDir).decide(pending.reviewId, 'approved', 'alice');
      assert.equal((await pending.outcome).outcome, 'approved');
      assert.equal((await gateway.engine.evaluate(request('EXECUTE p', 'prep'))).action, 'allow');
    } finally {
      gateway.engine.close();
    }
  });

  it('reads a decision file others could have written as a denial', async () => {
    const gateway = await startGateway();
    try {
      const pending = await held(gateway.engine, 'DROP TABLE orders');
      const directory = new ReviewDirectory(gateway.dataDir);
      const forged = directory.decisionPath(pending.reviewId);
      const record = { outcome: 'approved', reviewer: 'alice', reason: null, at: new Date().toISOString(), decidedBy: { uid: 0, user: 'x', pid: 1 } };
      writeFileSync(`${forged}.tmp`, JSON.stringify(record), { mode: 0o666 });
      chmodSync(`${forged}.tmp`, 0o666);
      const { renameSync } = await import('node:fs');
      renameSync(`${forged}.tmp`, forged);
      const outcome = await pending.outcome;
      assert.equal(outcome.outcome, 'denied');
      assert.match(outcome.outcome === 'denied' ? outcome.reason : '', /decision file was rejected: writable by other users/);
    } finally {
      gateway.engine.close();
    }
  });

  it('removes old settled reviews at start, and says when the holding gateway is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gapwatch-review-'));
    const dataDir = join(dir, 'data');
    const directory = new ReviewDirectory(dataDir);
    const base = {
      version: 1 as const,
      sessionId: 's',
      resource: 'db',
      login: 'claude-ci',
      subject: 'agent:claude-ci',
      claims: {},
      via: 'query',
      text: 'DROP TABLE t',
      statements: [],
      rule: 'gapwatch:review-ddl',
      reason: 'ddl',
    };
    const gone = spawnSync('true').pid!;
    directory.create({ ...base, reviewId: 'rv-00000000000a', createdAt: '2020-01-01T00:00:00Z', expiresAt: '2020-01-01T00:05:00Z', gatewayPid: gone });
    directory.settle('rv-00000000000a', { outcome: 'timed_out', reviewer: null, reason: null });
    const soon = new Date(Date.now() + 600_000).toISOString();
    directory.create({ ...base, reviewId: 'rv-00000000000b', createdAt: new Date().toISOString(), expiresAt: soon, gatewayPid: gone });
    const configFile = join(dir, 'gapwatch.yaml');
    writeFileSync(configFile, `dataDir: ${dataDir}\n`);
    const engine = await createPolicyEngine({ config: parseConfig(`dataDir: ${dataDir}\n`).gateway.policy, dataDir });
    try {
      assert.deepEqual(directory.list().map((entry) => [entry.request.reviewId, entry.status, entry.gatewayRunning]), [['rv-00000000000b', 'pending', false]]);
      const listed = await runCli(['reviews', '--config', configFile]);
      assert.match(listed.stdout, new RegExp(`gateway process ${gone} is not running on this host`));
    } finally {
      engine.close();
    }
  });

  it('refuses a malformed review id before touching the file system', async () => {
    const gateway = await startGateway();
    try {
      const result = await runCli(['approve', '../../identities', '--as', 'alice', '--config', gateway.configFile]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /is not a review id/);
    } finally {
      gateway.engine.close();
    }
  });
});

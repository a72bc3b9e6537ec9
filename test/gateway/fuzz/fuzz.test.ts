import assert from 'node:assert/strict';
import { runFuzz, type FuzzResult } from '../../support/fuzz/fuzz-run';
import { deliverRaw, httpTarget, startFuzzTarget, type FuzzTarget, type FuzzTargetName } from '../../support/fuzz/fuzz-targets';
import { Random } from '../../support/fuzz/mutator';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Client as SshClient } from 'ssh2';
import { requireRoot } from '../../support/host';
import { startSshGateway } from '../../support/ssh-gateway';

/**
 * A bounded, reproducible fuzz run of each gateway entry point (fixed seed, a few seconds): the
 * PostgreSQL listener before and after login, the SSH listener's version exchange and key exchange
 * and its authentication, the HTTP listener's request path. Nothing may crash the gateway, every
 * connection must end once the client has finished sending, a good client must still be served, and
 * the heap must come back to about where it was. `npm run bench -- fuzz <seconds> <target>` runs longer.
 */
const SECONDS = 4;
const SEED = 0x9a77;

function describeFindings(result: FuzzResult): string {
  return JSON.stringify(result.findings.slice(0, 3).map((f) => ({ ...f, input: f.input.slice(0, 400) })), null, 2);
}

for (const name of ['postgres', 'ssh', 'http'] as FuzzTargetName[]) {
  describe(`gateway fuzzing: ${name} listener (seed ${SEED}, ${SECONDS} s)`, function () {
    this.timeout(120_000);
    let target: FuzzTarget | null = null;

    before(async () => {
      requireRoot();
      target = await startFuzzTarget(name);
    });
    after(async () => {
      await target?.stop();
    });

    it('survives generated and mutated input: no crash, no hang, the good client is served, memory comes back', async () => {
      const result = await runFuzz(target!, { seconds: SECONDS, seed: SEED, hangMs: 10_000, coverage: true, goodClientEvery: 250 });
      assert.equal(result.crashes, 0, describeFindings(result));
      assert.equal(result.hangs, 0, describeFindings(result));
      assert.deepEqual(result.findings, []);
      assert.ok(result.goodClientChecks >= 1);
      for (const [lane, count] of Object.entries(result.perLane)) assert.ok(count > 0, `lane ${lane} got no input`);
      assert.ok(result.blocksCovered > 0, 'coverage feedback saw the target run');
      // Bounded memory: what the run left behind on the heap is small next to what it processed.
      assert.ok(result.heapGrowthMiB < 64, `heap grew by ${result.heapGrowthMiB} MiB`);
    });
  });
}

describe('gateway fuzzing: regressions', function () {
  this.timeout(60_000);

  it('http: invalid WebSocket frames after an upgrade end the relayed connection, and the gateway goes on serving (found by bench/fuzz seed 11)', async () => {
    requireRoot();
    const target = await httpTarget();
    try {
      const upgrade = `GET /api/ws HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${target.gateway.token}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
      // "\r\n" read as a frame header: FIN clear, opcode 0xD (reserved), which a WebSocket peer must refuse.
      const outcome = await deliverRaw(target.gateway.port, Buffer.from(upgrade + '\r\n'.repeat(15), 'latin1'), new Random(1), 10_000);
      assert.equal(outcome, 'closed');
      await target.goodClient();
    } finally {
      await target.stop();
    }
  });

  it('ssh: an agent that logs in and leaves at once leaves no upstream connection behind (found by bench/fuzz seed 23: one leaked upstream login per such agent)', async () => {
    requireRoot();
    const gw = await startSshGateway();
    try {
      const key = readFileSync(gw.agentKeyFile);
      // Connections to this test's own sshd: only its gateway makes them.
      const upstreamConnections = (): number =>
        execFileSync('ss', ['-Htn', 'state', 'established', `( dport = :${gw.sshd.port} )`]).toString().split('\n').filter((line) => line.trim() !== '').length;
      for (let i = 0; i < 4; i++) {
        await new Promise<void>((resolve) => {
          const client = new SshClient();
          client.on('ready', () => client.end());
          client.on('close', () => resolve());
          client.on('error', () => resolve());
          client.connect({ host: '127.0.0.1', port: gw.port, username: `${gw.login}@${gw.resource}`, privateKey: key, hostVerifier: () => true, readyTimeout: 30_000 });
        });
      }
      // The upstream logins started for them finish (or fail) within a few seconds; none may stay open.
      const deadline = Date.now() + 15_000;
      while (upstreamConnections() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(upstreamConnections(), 0);
      const since = await gw.head();
      const sessions = (await gw.records()).filter((record) => record.session && BigInt(record.seq) <= since);
      // Every session the agents opened ended in the journal with its last record, never reopened after it.
      const last = new Map<string, string>();
      for (const record of sessions) last.set(record.session!.sessionId, record.session!.outcome);
      assert.ok(last.size >= 4);
      assert.ok([...last.values()].every((outcome) => outcome !== 'SESSION_OUTCOME_OPEN'), JSON.stringify([...last]));
    } finally {
      await gw.stop();
    }
  });
});

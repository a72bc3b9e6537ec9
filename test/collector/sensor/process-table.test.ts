import assert from 'node:assert/strict';
import { AgentMatcher, DEFAULT_AGENT_SIGNATURES } from '../../../collector/sensor/agent-signatures';
import { parseStat } from '../../../collector/sensor/proc-reader';
import { ProcessTable, type ProcessIdentity } from '../../../collector/sensor/process-table';

const identity = { host: 'h', bootId: 'b' };
const proc = (pid: number, startNs: number, ppid: number, parentStartNs: number | null, comm = 'x'): ProcessIdentity => ({
  pid,
  startNs: BigInt(startNs),
  ppid,
  parentStartNs: parentStartNs === null ? null : BigInt(parentStartNs),
  uid: 0,
  gid: 0,
  comm,
});
const image = (filename: string, argv: string[]) => ({ filename, comm: filename.split('/').pop()!, argv, argvRedacted: false, argvTruncated: false });

describe('collector/sensor/process-table', () => {
  const table = () => new ProcessTable(identity, new AgentMatcher(DEFAULT_AGENT_SIGNATURES), { graceMs: 1000, maxProcesses: 1024 });

  it('gives a reused pid a new exec_id and keeps the old process apart', () => {
    const t = table();
    const first = t.fork(proc(500, 100, 1, 1));
    t.exit(proc(500, 100, 1, 1), 0, 0);
    const second = t.fork(proc(500, 200, 1, 1));
    assert.notEqual(first.execId, second.execId);
    assert.equal(t.get(first.execId)!.exited, true);
    assert.equal(t.get(second.execId)!.exited, false);
    assert.equal(t.byPidNow(500)!.execId, second.execId);
  });

  it('attributes descendants to the nearest agent ancestor and keeps lineage', () => {
    const t = table();
    t.seed(proc(10, 1, 1, 1), image('/bin/bash', ['bash']));
    t.fork(proc(11, 2, 10, 1));
    const agent = t.exec(proc(11, 2, 10, 1), image('/usr/local/bin/claude', ['claude']));
    t.fork(proc(12, 3, 11, 2));
    const tool = t.exec(proc(12, 3, 11, 2), image('/usr/bin/psql', ['psql']));
    assert.equal(tool.agentRunId, agent.execId);
    assert.equal(tool.agentRunAgent, 'claude');
    assert.deepEqual(t.lineage(tool.execId).map((e) => e.pid), [12, 11, 10]);
    assert.equal(t.get(t.execIdOf(10, 1n))!.agentRunId, null);
  });

  it('de-duplicates a seeded process the live stream sees again', () => {
    const t = table();
    t.seed(proc(20, 5, 1, 1), image('/bin/sleep', ['sleep', '100']));
    t.exit(proc(20, 5, 1, 1), 0, 0);
    assert.equal(t.size, 1);
    assert.equal(t.byPidNow(20)!.source, 'proc');
  });

  it('drops exited processes after the grace period and stays within its bound', () => {
    const t = new ProcessTable(identity, new AgentMatcher([]), { graceMs: 1000, maxProcesses: 1024 });
    t.fork(proc(30, 1, 1, 1));
    t.exit(proc(30, 1, 1, 1), 0, 5000);
    assert.equal(t.sweep(5500), 0);
    assert.equal(t.sweep(6000), 1);
    assert.equal(t.size, 0);
    for (let pid = 100; pid < 100 + 1100; pid++) t.fork(proc(pid, pid, 1, 1));
    assert.equal(t.size, 1024);
    assert.equal(t.evicted, 1100 - 1024);
  });

  it('parses /proc/<pid>/stat with spaces and parentheses in comm', () => {
    const stat = '4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615';
    assert.deepEqual(parseStat(stat), { comm: 'a (b) c', ppid: 17, startTicks: 987654n });
  });
});

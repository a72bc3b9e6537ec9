import assert from 'node:assert/strict';
import { runDoctor, type CheckResult, type DoctorReport } from '../../../collector/doctor/checks';
import { repoRoot, requireRoot, runCli, runUnprivileged } from '../../support/host';

function check(report: DoctorReport, id: string): CheckResult {
  const found = report.checks.find((c) => c.id === id);
  assert.ok(found, `no ${id} check in the report`);
  return found;
}

describe('collector/doctor (real kernel)', function () {
  this.timeout(60_000);
  let report: DoctorReport;

  before(async () => {
    requireRoot();
    report = await runDoctor();
  });

  it('passes on this host, so the collector can run', () => {
    const failed = report.checks.filter((c) => c.status === 'fail');
    assert.deepEqual(failed, [], `failed checks: ${JSON.stringify(failed, null, 2)}`);
    assert.equal(report.ok, true);
  });

  it('loads, attaches and fires the tracepoint, raw and BTF tracepoint programs', () => {
    for (const id of ['bpf-tracepoint', 'bpf-raw-tp', 'bpf-tp-btf']) {
      assert.equal(check(report, id).status, 'ok', JSON.stringify(check(report, id)));
    }
  });

  it('attaches a cgroup/connect4 program at the cgroup v2 root and sees it fire', () => {
    const cgroup = check(report, 'bpf-cgroup');
    assert.equal(cgroup.status, 'ok', JSON.stringify(cgroup));
    assert.match(cgroup.detail, /cgroup\/connect4 attached at \/\S+ and fired/);
  });

  it('finds every sensor tracepoint, the kernel BTF and root privileges', () => {
    assert.equal(check(report, 'tracepoints').status, 'ok');
    assert.equal(check(report, 'btf').status, 'ok');
    assert.equal(check(report, 'privileges').status, 'ok');
    assert.match(check(report, 'privileges').detail, /root/);
  });

  it('reports trampoline programs as a warning, never a failure', () => {
    for (const id of ['bpf-fentry', 'bpf-lsm']) {
      const result = check(report, id);
      assert.notEqual(result.status, 'fail');
      // On this VM trampolines are refused; where a kernel offers them, ok is right too.
      if (result.status === 'warn') assert.match(result.detail, /refused at \w+ \(.+\); not needed/);
    }
  });

  it('says kprobes are not needed', () => {
    assert.match(check(report, 'kprobes').detail, /^not needed/);
  });

  it('exits 0 from the CLI and prints the table', async () => {
    const result = await runCli(['doctor'], { cwd: repoRoot });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^CHECK\s+STATUS\s+DETAIL/);
    assert.match(result.stdout, /The collector can run on this host/);
  });

  it('prints JSON with --json', async () => {
    const result = await runCli(['doctor', '--json'], { cwd: repoRoot });
    const parsed = JSON.parse(result.stdout) as DoctorReport;
    assert.equal(parsed.ok, true);
    assert.ok(parsed.checks.length >= 10);
  });

  it('fails with a pointed message when run without privileges', async () => {
    const result = await runUnprivileged(['doctor']);
    assert.equal(result.code, 1, `stdout: ${result.stdout}\nstderr: ${result.stderr}`);
    assert.match(
      result.stdout,
      /privileges\s+FAIL\s+running as (uid \d+|root) with no relevant capabilities; loading BPF programs needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN/,
    );
    assert.match(result.stdout, /privileges: run as root \(`sudo gapwatch doctor`\)/);
    assert.match(result.stdout, /The collector cannot run on this host/);
  });

});

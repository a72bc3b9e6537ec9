import assert from 'node:assert/strict';
import { CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, cgroup2Root, hasCap, mountsOfType, parseEffectiveCaps, parseKernelRelease, tracefsRoot } from '../../../collector/doctor/host-facts';

const HYBRID = [
  '24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw',
  '28 24 0:25 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
  '29 28 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate',
  '30 28 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd',
  '40 24 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:18 - tracefs tracefs rw',
].join('\n');

const UNIFIED = [
  '35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot',
  '41 33 0:12 / /sys/kernel/debug/tracing rw,nosuid,nodev,noexec,relatime - tracefs tracefs rw',
  '99 35 0:30 /user.slice /mnt/odd\\040path rw - cgroup2 cgroup2 rw',
].join('\n');

describe('collector/doctor/host-facts', () => {
  it('finds the cgroup v2 root wherever it is mounted', () => {
    assert.equal(cgroup2Root(HYBRID), '/sys/fs/cgroup/unified');
    assert.equal(cgroup2Root(UNIFIED), '/sys/fs/cgroup');
    assert.equal(cgroup2Root('1 2 0:1 / / rw - ext4 /dev/vda rw'), null);
  });

  it('unescapes mount paths', () => {
    assert.deepEqual(mountsOfType(UNIFIED, 'cgroup2'), ['/sys/fs/cgroup', '/mnt/odd path']);
  });

  it('finds tracefs, preferring /sys/kernel/tracing', () => {
    assert.equal(tracefsRoot(HYBRID), '/sys/kernel/tracing');
    assert.equal(tracefsRoot(UNIFIED), '/sys/kernel/debug/tracing');
  });

  it('decodes effective capabilities', () => {
    const root = parseEffectiveCaps('Name:\tx\nCapEff:\t000001ffffffffff\n');
    assert.ok(hasCap(root, CAP_BPF) && hasCap(root, CAP_PERFMON) && hasCap(root, CAP_SYS_ADMIN));
    const none = parseEffectiveCaps('CapEff:\t0000000000000000\n');
    assert.ok(!hasCap(none, CAP_BPF));
    const bpfOnly = parseEffectiveCaps(`CapEff:\t${(1n << 39n).toString(16).padStart(16, '0')}\n`);
    assert.ok(hasCap(bpfOnly, CAP_BPF) && !hasCap(bpfOnly, CAP_PERFMON));
    assert.throws(() => parseEffectiveCaps('Name: x\n'), /CapEff/);
  });

  it('parses kernel releases', () => {
    assert.deepEqual(parseKernelRelease('6.18.44-fc-v595'), [6, 18, 44]);
    assert.deepEqual(parseKernelRelease('5.15.0-91-generic'), [5, 15, 0]);
    assert.deepEqual(parseKernelRelease('6.8-rc1'), [6, 8, 0]);
    assert.throws(() => parseKernelRelease('unknown'), /unrecognised kernel release/);
  });
});

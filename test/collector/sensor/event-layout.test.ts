import assert from 'node:assert/strict';
import { loadNative, type RecordLayout } from '../../../native/binding';
import * as Layout from '../../../collector/sensor/event-layout';

/** The decoder's offsets (event-layout.ts) against sizeof/offsetof of events.h as the addon was compiled. */
describe('collector/sensor/event-layout matches native/bpf/events.h', () => {
  const layouts = loadNative().eventLayouts();

  function expectFields(name: string, native: RecordLayout, ours: Record<string, number>, base: number, map: Record<string, string>): void {
    for (const [tsKey, cKey] of Object.entries(map)) {
      const field = native.fields[cKey];
      assert.ok(field, `events.h ${name} has no field ${cKey}`);
      assert.equal(ours[tsKey]! - base, field.offset, `${name}.${cKey}: decoder offset ${ours[tsKey]! - base}, events.h ${field.offset}`);
    }
  }

  it('header', () => {
    assert.equal(Layout.Header.size, layouts.header.size);
    expectFields('gw_header', layouts.header, Layout.Header, 0, { type: 'type', flags: 'flags', recordSize: 'size', timeNs: 'time_ns' });
    assert.equal(layouts.header.fields.type!.size, 2);
    assert.equal(layouts.header.fields.size!.size, 4);
  });

  it('task', () => {
    assert.equal(Layout.Task.size, layouts.task.size);
    expectFields('gw_task', layouts.task, Layout.Task, 0, {
      pid: 'pid',
      tgid: 'tgid',
      ppid: 'ppid',
      uid: 'uid',
      gid: 'gid',
      startNs: 'start_ns',
      parentStartNs: 'parent_start_ns',
      cgroupId: 'cgroup_id',
      comm: 'comm',
    });
    assert.equal(layouts.task.fields.comm!.size, Layout.COMM_LEN);
  });

  it('exec, fork, exit', () => {
    assert.equal(Layout.Exec.size, layouts.exec.size);
    expectFields('gw_exec', layouts.exec, Layout.Exec, 0, {
      task: 'task',
      argvTotal: 'argv_total',
      argvCaptured: 'argv_captured',
      filenameLen: 'filename_len',
      oldPid: 'old_pid',
      filename: 'filename',
    });
    assert.equal(layouts.exec.fields.filename!.size, Layout.FILENAME_LEN);
    assert.equal(Layout.Fork.size, layouts.fork.size);
    expectFields('gw_fork', layouts.fork, Layout.Fork, 0, { task: 'task' });
    assert.equal(Layout.Exit.size, layouts.exit.size);
    expectFields('gw_exit', layouts.exit, Layout.Exit, 0, { task: 'task', exitStatus: 'exit_status' });
  });

  it('connect', () => {
    assert.equal(Layout.Connect.size, layouts.connect.size);
    expectFields('gw_connect', layouts.connect, Layout.Connect, 0, {
      task: 'task',
      socketCookie: 'socket_cookie',
      fd: 'fd',
      ret: 'ret',
      family: 'family',
      sockType: 'sock_type',
      protocol: 'protocol',
      remotePort: 'remote_port',
      localPort: 'local_port',
      pathLen: 'path_len',
      remoteAddr: 'remote_addr',
      localAddr: 'local_addr',
      unixPath: 'unix_path',
    });
    assert.equal(layouts.connect.fields.unix_path!.size, Layout.UNIX_PATH_LEN);
  });

  it('loss', () => {
    assert.equal(Layout.Loss.size, layouts.loss.size);
    expectFields('gw_loss', layouts.loss, Layout.Loss, 0, { kernelDrops: 'kernel_drops', queueDrops: 'queue_drops' });
    assert.equal(layouts.loss.fields.kernel_drops!.size, 8 * Layout.EVENT_TYPE_COUNT);
  });

  it('task start (iterator output)', () => {
    assert.equal(Layout.TaskStart.size, layouts.taskStart.size);
    expectFields('gw_task_start', layouts.taskStart, Layout.TaskStart, 0, { tgid: 'tgid', startNs: 'start_ns' });
  });

  it('every record is a multiple of 8 bytes, so packed records stay aligned', () => {
    for (const name of ['header', 'task', 'exec', 'fork', 'exit', 'connect', 'loss', 'taskStart'] as const) {
      assert.equal(layouts[name].size % 8, 0, `${name} is ${layouts[name].size} bytes`);
    }
  });

  it('constants', () => {
    const c = layouts.constants;
    assert.equal(c.GW_EVENT_EXEC, Layout.EventType.Exec);
    assert.equal(c.GW_EVENT_FORK, Layout.EventType.Fork);
    assert.equal(c.GW_EVENT_EXIT, Layout.EventType.Exit);
    assert.equal(c.GW_EVENT_CONNECT, Layout.EventType.Connect);
    assert.equal(c.GW_EVENT_LOSS, Layout.EventType.Loss);
    assert.equal(c.GW_EVENT_TYPE_COUNT, Layout.EVENT_TYPE_COUNT);
    assert.equal(c.GW_EXEC_F_ARGV_TRUNCATED, Layout.ExecFlag.ArgvTruncated);
    assert.equal(c.GW_EXEC_F_ARGV_READ_FAILED, Layout.ExecFlag.ArgvReadFailed);
    assert.equal(c.GW_EXEC_F_FILENAME_TRUNCATED, Layout.ExecFlag.FilenameTruncated);
    assert.equal(c.GW_CONNECT_F_INTENT, Layout.ConnectFlag.Intent);
    assert.equal(c.GW_CONNECT_F_OUTCOME, Layout.ConnectFlag.Outcome);
    assert.equal(c.GW_CONNECT_F_LOCAL, Layout.ConnectFlag.Local);
    assert.equal(c.GW_CONNECT_F_PATH_TRUNCATED, Layout.ConnectFlag.PathTruncated);
    assert.equal(c.GW_ARGV_AREA, Layout.ARGV_AREA);
  });
});

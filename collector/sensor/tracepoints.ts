/**
 * The tracepoints the host sensor attaches to (see ARCHITECTURE.md, native/). `gapwatch doctor`
 * checks each exists before the sensor relies on it.
 */
export const SENSOR_TRACEPOINTS = [
  { category: 'sched', name: 'sched_process_exec', why: 'exec events (argv, filename)' },
  { category: 'sched', name: 'sched_process_fork', why: 'process tree' },
  { category: 'sched', name: 'sched_process_exit', why: 'exit codes and process lifetime' },
  { category: 'syscalls', name: 'sys_enter_connect', why: 'connect attempts' },
  { category: 'syscalls', name: 'sys_exit_connect', why: 'connect outcomes' },
  { category: 'sock', name: 'inet_sock_set_state', why: 'local port of TCP connects' },
] as const;

/** Kernel versions that matter to the sensor. */
export const MIN_KERNEL: readonly [number, number] = [5, 8]; // BPF ring buffer
export const CONNECT_UNIX_KERNEL: readonly [number, number] = [6, 7]; // cgroup/connect_unix hook

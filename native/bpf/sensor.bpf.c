/*
 * The host sensor: exec, fork, exit and connect, written as events.h records
 * into one ring buffer. Loaded by native/addon/sensor-session.cc.
 *
 * Hooks (this kernel has no kprobes and refuses trampolines, see issue 3):
 *   tp_btf/sched_process_exec|fork|exit   process lifecycle, BTF-typed args
 *   cgroup/connect4|6|unix (cgroup root)  connect intent, every path incl. io_uring
 *   tracepoint/syscalls/sys_*_connect     outcome and local address of connect(2)
 *   tp_btf/inet_sock_set_state            local port of a TCP connect that failed
 *                                         before the syscall returned
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "events.h"

/* uapi values vmlinux.h does not carry (macros, not BTF types). */
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7
#define EBADF 9
#define ENOTSOCK 88

/* Set by the loader before load (rodata); the defaults are what an unconfigured sensor uses. */
const volatile __u32 argv_max = 4096;
/* Wake the reader only when this much is waiting; it drains on its flush timer otherwise. */
const volatile __u64 wakeup_bytes = 256 * 1024;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024); /* resized by the loader */
} events SEC(".maps");

/* Failed ring buffer reservations, per CPU and per enum gw_event_type. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GW_EVENT_TYPE_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/*
 * Per-CPU room to build an exec record with its argv before copying it out
 * with bpf_ringbuf_output (a reservation must have a constant size). A
 * per-CPU array cannot hold values over 32 KiB, so this is a plain array
 * indexed by CPU, sized to the number of CPUs by the loader. Tracing programs
 * do not nest on one CPU, so each slot has one user at a time.
 */
struct exec_scratch {
	struct gw_exec event;
	char argv[GW_ARGV_AREA];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_scratch);
} exec_scratch SEC(".maps");

/* connect(2) calls in flight, keyed by pid_tgid of the calling thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct gw_connect);
} connects SEC(".maps");

/* Local address of TCP sockets whose connect failed (SYN_SENT -> CLOSE), keyed by struct sock *. */
struct failed_local {
	__u8 addr[16];
	__u16 port;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct failed_local);
} failed_locals SEC(".maps");

static const struct gw_connect zero_connect;

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

static __always_inline void count_drop(__u32 type)
{
	__u64 *count = bpf_map_lookup_elem(&drops, &type);

	if (count)
		*count += 1;
}

static __always_inline __u64 wakeup_flags(void)
{
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void fill_header(struct gw_header *header, __u16 type, __u32 size)
{
	header->type = type;
	header->flags = 0;
	header->size = size;
	header->time_ns = bpf_ktime_get_boot_ns();
}

static __always_inline void fill_task(struct gw_task *out, struct task_struct *task)
{
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	struct task_struct *parent_leader = BPF_CORE_READ(parent, group_leader);

	out->pid = BPF_CORE_READ(task, pid);
	out->tgid = BPF_CORE_READ(task, tgid);
	out->ppid = BPF_CORE_READ(parent, tgid);
	out->uid = BPF_CORE_READ(task, real_cred, uid.val);
	out->gid = BPF_CORE_READ(task, real_cred, gid.val);
	out->reserved = 0;
	out->start_ns = BPF_CORE_READ(leader, start_boottime);
	out->parent_start_ns = BPF_CORE_READ(parent_leader, start_boottime);
	out->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	bpf_probe_read_kernel_str(out->comm, sizeof(out->comm), &task->comm);
}

/* fill_task for the current task in tracing programs: helpers instead of pointer chases where they exist. */
static __always_inline void fill_current_task(struct gw_task *out)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	out->pid = (__u32)pid_tgid;
	out->tgid = pid_tgid >> 32;
	out->ppid = BPF_CORE_READ(parent, tgid);
	out->uid = (__u32)uid_gid;
	out->gid = uid_gid >> 32;
	out->reserved = 0;
	out->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	out->parent_start_ns = BPF_CORE_READ(parent, group_leader, start_boottime);
	out->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(out->comm, sizeof(out->comm));
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sensor_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct exec_scratch *scratch;
	struct gw_exec *event;
	struct mm_struct *mm;
	__u64 arg_start, arg_end, total;
	__u32 captured;
	long filename_len;
	__u16 flags = 0;

	/* The loader sizes the array to the CPU count; index by CPU. */
	scratch = bpf_map_lookup_elem(&exec_scratch, &cpu);
	if (!scratch)
		return 0;
	event = &scratch->event;

	fill_task(&event->task, task);
	event->old_pid = old_pid;

	filename_len = bpf_probe_read_kernel_str(event->filename, sizeof(event->filename),
						 BPF_CORE_READ(bprm, filename));
	if (filename_len < 1) {
		filename_len = 1;
		event->filename[0] = 0;
	}
	if (filename_len >= GW_FILENAME_LEN)
		flags |= GW_EXEC_F_FILENAME_TRUNCATED;
	event->filename_len = filename_len - 1;

	/* The new mm: exec has replaced the image, and argv sits at arg_start..arg_end. */
	mm = BPF_CORE_READ(task, mm);
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	total = arg_end > arg_start ? arg_end - arg_start : 0;
	if (total > 0xffffffff)
		total = 0xffffffff;
	captured = total < argv_max ? total : argv_max;
	if (captured > GW_ARGV_AREA)
		captured = GW_ARGV_AREA;
	if (captured > 0 && bpf_probe_read_user(scratch->argv, captured, (void *)arg_start) != 0) {
		flags |= GW_EXEC_F_ARGV_READ_FAILED;
		captured = 0;
	}
	if (total > captured)
		flags |= GW_EXEC_F_ARGV_TRUNCATED;
	event->argv_total = total;
	event->argv_captured = captured;

	__u32 size = sizeof(struct gw_exec) + ((captured + 7) & ~7U);
	if (size > sizeof(struct exec_scratch))
		return 0;
	fill_header(&event->header, GW_EVENT_EXEC, size);
	event->header.flags = flags;
	if (bpf_ringbuf_output(&events, scratch, size, wakeup_flags()) != 0)
		count_drop(GW_EVENT_EXEC);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sensor_fork, struct task_struct *parent, struct task_struct *child)
{
	struct gw_fork *event;

	/* A new thread shares its process's tgid; only new processes matter to the tree. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		count_drop(GW_EVENT_FORK);
		return 0;
	}
	fill_header(&event->header, GW_EVENT_FORK, sizeof(*event));
	fill_task(&event->task, child);
	bpf_ringbuf_submit(event, wakeup_flags());
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sensor_exit, struct task_struct *task)
{
	struct gw_exit *event;

	/* do_exit decrements signal->live before this tracepoint: 0 means the last thread is leaving. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		count_drop(GW_EVENT_EXIT);
		return 0;
	}
	fill_header(&event->header, GW_EVENT_EXIT, sizeof(*event));
	fill_task(&event->task, task);
	/* do_exit stores the wait status (the group's, for a group exit) in exit_code first. */
	event->exit_status = BPF_CORE_READ(task, exit_code);
	event->reserved = 0;
	bpf_ringbuf_submit(event, wakeup_flags());
	return 0;
}

/*
 * The address a cgroup sock_addr hook sees, copied into a connect record.
 * family is the hook's constant: the verifier allows user_ip4 only in
 * connect4 and user_ip6 only in connect6, so the other branches must vanish.
 */
static __always_inline void read_hook_address(struct gw_connect *event, struct bpf_sock_addr *ctx,
					      const __u16 family)
{
	event->family = family;
	event->sock_type = ctx->type;
	event->protocol = ctx->protocol;
	event->socket_cookie = bpf_get_socket_cookie(ctx);
	if (family == AF_INET) {
		__u32 ip4 = ctx->user_ip4;

		__builtin_memcpy(event->remote_addr, &ip4, 4);
		event->remote_port = bpf_ntohs(ctx->user_port);
	} else if (family == AF_INET6) {
		__u32 ip6[4];

		ip6[0] = ctx->user_ip6[0];
		ip6[1] = ctx->user_ip6[1];
		ip6[2] = ctx->user_ip6[2];
		ip6[3] = ctx->user_ip6[3];
		__builtin_memcpy(event->remote_addr, ip6, 16);
		event->remote_port = bpf_ntohs(ctx->user_port);
	} else if (family == AF_UNIX) {
		/* The path is only in the kernel's copy of the address (6.7+ bpf_sock_addr_kern). */
		struct bpf_sock_addr_kern *kern = bpf_cast_to_kern_ctx(ctx);
		__u32 addr_len = BPF_CORE_READ(kern, uaddrlen);
		__u32 path_len = addr_len > 2 ? addr_len - 2 : 0;

		if (path_len > GW_UNIX_PATH_LEN)
			path_len = GW_UNIX_PATH_LEN;
		if (path_len > 0 &&
		    bpf_probe_read_kernel(event->unix_path, path_len,
					  (void *)BPF_CORE_READ(kern, uaddr) + 2) == 0)
			event->path_len = path_len;
	}
}

static __always_inline int on_connect_hook(struct bpf_sock_addr *ctx, const __u16 family)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct gw_connect *pending = bpf_map_lookup_elem(&connects, &id);
	struct gw_connect *event;

	if (pending) {
		/* connect(2) in flight on this thread: join the intent into its record. */
		read_hook_address(pending, ctx, family);
		pending->header.flags |= GW_CONNECT_F_INTENT;
		return 1;
	}
	/* No syscall around it (io_uring, kernel-internal): the intent is the whole record. */
	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		count_drop(GW_EVENT_CONNECT);
		return 1;
	}
	__builtin_memset(event, 0, sizeof(*event));
	fill_header(&event->header, GW_EVENT_CONNECT, sizeof(*event));
	event->header.flags = GW_CONNECT_F_INTENT;
	fill_task(&event->task, (struct task_struct *)bpf_get_current_task());
	event->fd = -1;
	read_hook_address(event, ctx, family);
	bpf_ringbuf_submit(event, wakeup_flags());
	return 1;
}

/* Observe only: returning 1 lets every connect proceed. */
SEC("cgroup/connect4")
int sensor_connect4(struct bpf_sock_addr *ctx)
{
	return on_connect_hook(ctx, AF_INET);
}

SEC("cgroup/connect6")
int sensor_connect6(struct bpf_sock_addr *ctx)
{
	return on_connect_hook(ctx, AF_INET6);
}

/*
 * cgroup/connect_unix (kernel 6.7+). libbpf 1.1 does not know that section
 * name, so this is declared as a sock_addr program and the loader sets the
 * expected attach type (BPF_CGROUP_UNIX_CONNECT, looked up in the kernel BTF)
 * before load, or leaves it unloaded on older kernels.
 */
SEC("cgroup/connect6")
int sensor_connect_unix(struct bpf_sock_addr *ctx)
{
	return on_connect_hook(ctx, AF_UNIX);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int sensor_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	void *uaddr = (void *)ctx->args[1];
	__u32 addr_len = ctx->args[2];
	struct gw_connect *event;
	__u16 family = 0;

	if (bpf_probe_read_user(&family, sizeof(family), uaddr) != 0)
		return 0;
	if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
		return 0;
	if (bpf_map_update_elem(&connects, &id, &zero_connect, BPF_ANY) != 0)
		return 0;
	event = bpf_map_lookup_elem(&connects, &id);
	if (!event)
		return 0;
	event->fd = ctx->args[0];
	event->family = family;
	/* What the caller asked for; the cgroup hook overwrites it with the kernel's copy. */
	if (family == AF_INET) {
		struct sockaddr_in sin = {};

		bpf_probe_read_user(&sin, sizeof(sin), uaddr);
		__builtin_memcpy(event->remote_addr, &sin.sin_addr, 4);
		event->remote_port = bpf_ntohs(sin.sin_port);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 sin6 = {};

		bpf_probe_read_user(&sin6, sizeof(sin6), uaddr);
		__builtin_memcpy(event->remote_addr, &sin6.sin6_addr, 16);
		event->remote_port = bpf_ntohs(sin6.sin6_port);
	} else {
		__u32 path_len = addr_len > 2 ? addr_len - 2 : 0;

		if (path_len > GW_UNIX_PATH_LEN)
			path_len = GW_UNIX_PATH_LEN;
		if (path_len > 0 && bpf_probe_read_user(event->unix_path, path_len, uaddr + 2) == 0)
			event->path_len = path_len;
	}
	return 0;
}

/* The struct sock behind a file descriptor of the current task, or NULL. */
static __always_inline struct sock *socket_of_fd(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	struct file *file = NULL;
	struct socket *sock;

	if (fd < 0 || (unsigned int)fd >= max_fds)
		return NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) != 0 || !file)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int sensor_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct gw_connect *event = bpf_map_lookup_elem(&connects, &id);
	struct sock *sk;
	long ret = ctx->ret;

	if (!event)
		return 0;
	/* Keep the flags: the cgroup hook may have joined its intent already. */
	__u16 flags = event->header.flags | GW_CONNECT_F_OUTCOME;

	fill_header(&event->header, GW_EVENT_CONNECT, sizeof(*event));
	event->header.flags = flags;
	event->ret = ret;
	fill_current_task(&event->task);

	/* -EBADF/-ENOTSOCK: the fd is not a socket, nothing to read from it. */
	sk = (ret == -EBADF || ret == -ENOTSOCK) ? NULL : socket_of_fd(event->fd);
	if (sk) {
		__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
		__u64 key = (__u64)sk;
		struct failed_local *failed;

		event->sock_type = BPF_CORE_READ(sk, sk_type);
		event->protocol = BPF_CORE_READ(sk, sk_protocol);
		if (family == AF_INET || family == AF_INET6) {
			event->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
			if (family == AF_INET) {
				__be32 ip4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);

				__builtin_memcpy(event->local_addr, &ip4, 4);
			} else {
				BPF_CORE_READ_INTO(&event->local_addr, sk, __sk_common.skc_v6_rcv_saddr);
			}
			/* A refused connect has released its port by now; the state change kept it. */
			failed = bpf_map_lookup_elem(&failed_locals, &key);
			if (failed) {
				if (event->local_port == 0) {
					event->local_port = failed->port;
					__builtin_memcpy(event->local_addr, failed->addr, 16);
				}
				bpf_map_delete_elem(&failed_locals, &key);
			}
			if (event->local_port != 0)
				event->header.flags |= GW_CONNECT_F_LOCAL;
		}
	}
	if (bpf_ringbuf_output(&events, event, sizeof(*event), wakeup_flags()) != 0)
		count_drop(GW_EVENT_CONNECT);
	bpf_map_delete_elem(&connects, &id);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sensor_sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct failed_local local = {};
	__u64 key = (__u64)sk;
	__u16 family;

	/* Only failures inside connect(2) matter; at SYN_SENT -> CLOSE the port is still bound. */
	if (oldstate != TCP_SYN_SENT || newstate != TCP_CLOSE)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	/* The socket may already be unhashed (skc_num 0); inet_sport still holds the port. */
	local.port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	if (family == AF_INET) {
		__be32 ip4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);

		__builtin_memcpy(local.addr, &ip4, 4);
	} else {
		BPF_CORE_READ_INTO(&local.addr, sk, __sk_common.skc_v6_rcv_saddr);
	}
	bpf_map_update_elem(&failed_locals, &key, &local, BPF_ANY);
	return 0;
}

/*
 * The exact start time of every process that exists when the sensor starts.
 * /proc only reports start times in 10 ms ticks, too coarse for exec_ids (a
 * pid can be reused within one tick); the loader runs this iterator once
 * after attaching and seeds the process table with it.
 */
SEC("iter/task")
int sensor_task_starts(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct gw_task_start record = {};

	if (!task || task->pid != task->tgid)
		return 0;
	record.tgid = task->tgid;
	record.start_ns = task->start_boottime;
	bpf_seq_write(ctx->meta->seq, &record, sizeof(record));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

/*
 * Capability probes for `gapwatch doctor`.
 *
 * Each program is loaded and attached on its own by the addon, which then
 * triggers it from its own process and reads hits[its tgid]. A program that
 * loads, attaches and counts a hit proves that this kernel really allows that
 * program type and attach point, which feature probing alone cannot show
 * (lockdown, LSM policy and missing config all surface only at load/attach).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* Syscall numbers are per architecture and vmlinux.h carries no macros. */
#if defined(__TARGET_ARCH_x86)
#define GAPWATCH_NR_CONNECT 42
#elif defined(__TARGET_ARCH_arm64)
#define GAPWATCH_NR_CONNECT 203
#else
#error "probe.bpf.c: define __TARGET_ARCH_x86 or __TARGET_ARCH_arm64"
#endif

/*
 * Hook points such as cgroup/connect4 on the root cgroup see every process,
 * so the map is sized for a busy host: a full map would make our own insert
 * fail and the probe would wrongly report "did not fire".
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u64);
} hits SEC(".maps");

static __always_inline void count_hit(void)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	u64 one = 1;
	u64 *count;

	count = bpf_map_lookup_elem(&hits, &tgid);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return;
	}
	/* Another CPU may insert the same tgid first; then add to its entry. */
	if (bpf_map_update_elem(&hits, &tgid, &one, BPF_NOEXIST) == 0)
		return;
	count = bpf_map_lookup_elem(&hits, &tgid);
	if (count)
		__sync_fetch_and_add(count, 1);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int probe_tracepoint(void *ctx)
{
	count_hit();
	return 0;
}

/* raw_tp/sys_enter runs for every syscall: args[1] is the syscall number. */
SEC("raw_tp/sys_enter")
int probe_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	if (ctx->args[1] == GAPWATCH_NR_CONNECT)
		count_hit();
	return 0;
}

/* Runs in the parent's context, so the current tgid is the forking process. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(probe_tp_btf, struct task_struct *parent, struct task_struct *child)
{
	count_hit();
	return 0;
}

/* Observe only: returning 1 lets the connect() proceed. */
SEC("cgroup/connect4")
int probe_cgroup_connect4(struct bpf_sock_addr *ctx)
{
	count_hit();
	return 1;
}

SEC("fentry/__sys_connect")
int BPF_PROG(probe_fentry, int fd, struct sockaddr *uservaddr, int addrlen)
{
	count_hit();
	return 0;
}

/* Pass through the verdict of earlier LSM hooks; never deny on our own. */
SEC("lsm/socket_connect")
int BPF_PROG(probe_lsm, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	count_hit();
	return ret;
}

/* The kernel grants GPL-only helpers (e.g. tracing ones) only to "GPL" programs. */
char LICENSE[] SEC("license") = "GPL";

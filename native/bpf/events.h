/*
 * The record layouts of the host sensor: written by sensor.bpf.c into the
 * ring buffer, packed into batches by the addon (native/addon/ring-reader.cc)
 * and decoded by collector/sensor/event-decoder.ts. This header is the single
 * definition; the addon reports sizeof/offsetof of every field so a test
 * checks the TypeScript decoder against it.
 *
 * Every record starts with gw_header and is a multiple of 8 bytes long, so
 * records packed back to back stay aligned. Integers are host-endian.
 * Times are CLOCK_BOOTTIME nanoseconds (what task->start_boottime uses and
 * what /proc/<pid>/stat field 22 reports in clock ticks).
 */
#ifndef GAPWATCH_EVENTS_H
#define GAPWATCH_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define GW_COMM_LEN 16
#define GW_FILENAME_LEN 256
/* sizeof(((struct sockaddr_un *)0)->sun_path) */
#define GW_UNIX_PATH_LEN 108
/* The argv area of an exec record; the configured cap (argv_max) is at most this. */
#define GW_ARGV_AREA 65536

enum gw_event_type {
	GW_EVENT_EXEC = 1,
	GW_EVENT_FORK = 2,
	GW_EVENT_EXIT = 3,
	GW_EVENT_CONNECT = 4,
	/* Written by the addon, never by the kernel: counters of records lost. */
	GW_EVENT_LOSS = 5,
	GW_EVENT_TYPE_COUNT = 6,
};

struct gw_header {
	__u16 type;   /* enum gw_event_type */
	__u16 flags;  /* per type, see the GW_*_F_ flags */
	__u32 size;   /* whole record including this header, multiple of 8 */
	__u64 time_ns; /* bpf_ktime_get_boot_ns() when the event happened */
};

/* The process an event happened in; start_ns makes (tgid, start_ns) unique across pid reuse. */
struct gw_task {
	__u32 pid;  /* thread id */
	__u32 tgid; /* process id */
	__u32 ppid; /* tgid of the real parent */
	__u32 uid;
	__u32 gid;
	__u32 reserved;
	__u64 start_ns;        /* group leader's start_boottime */
	__u64 parent_start_ns; /* real parent's group leader start_boottime */
	__u64 cgroup_id;       /* cgroup v2 id */
	char comm[GW_COMM_LEN];
};

#define GW_EXEC_F_ARGV_TRUNCATED 0x1   /* argv_total > argv_captured */
#define GW_EXEC_F_ARGV_READ_FAILED 0x2 /* the new mm's argv could not be read */
#define GW_EXEC_F_FILENAME_TRUNCATED 0x4

/* sched_process_exec. Followed by argv_captured bytes of NUL-separated argv, then padding to 8. */
struct gw_exec {
	struct gw_header header;
	struct gw_task task;
	__u32 argv_total;    /* mm->arg_end - mm->arg_start */
	__u32 argv_captured; /* bytes of argv that follow this struct */
	__u32 filename_len;  /* bytes of filename, without the NUL */
	__u32 old_pid;       /* thread id before exec (differs when a thread called exec) */
	char filename[GW_FILENAME_LEN];
};

/* sched_process_fork of a new process (threads are not reported). task is the child. */
struct gw_fork {
	struct gw_header header;
	struct gw_task task;
};

/* sched_process_exit of the last thread of a process. */
struct gw_exit {
	struct gw_header header;
	struct gw_task task;
	/* wait(2) status: exit code in bits 8-15, terminating signal in bits 0-6, core dump 0x80 */
	__u32 exit_status;
	__u32 reserved;
};

#define GW_CONNECT_F_INTENT 0x1      /* a cgroup connect hook saw the attempt */
#define GW_CONNECT_F_OUTCOME 0x2     /* the connect() syscall returned (ret is valid) */
#define GW_CONNECT_F_LOCAL 0x4       /* local address/port are valid */
#define GW_CONNECT_F_PATH_TRUNCATED 0x8

/*
 * One connect attempt. Both views are joined in the kernel: the cgroup hook
 * (sees io_uring and every other path) and the syscall exit (outcome, local
 * address). A connect issued outside connect(2) (io_uring) has only INTENT.
 */
struct gw_connect {
	struct gw_header header;
	struct gw_task task;
	__u64 socket_cookie; /* bpf_get_socket_cookie, 0 without INTENT */
	__s32 fd;            /* -1 without OUTCOME */
	__s32 ret;           /* 0 or -errno; -EINPROGRESS means started */
	__u16 family;        /* AF_INET 2, AF_INET6 10, AF_UNIX 1 */
	__u16 sock_type;     /* SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5 */
	__u16 protocol;      /* IPPROTO_TCP 6, IPPROTO_UDP 17, 0 for unix */
	__u16 remote_port;   /* host order */
	__u16 local_port;    /* host order */
	__u16 path_len;      /* bytes of unix_path used; abstract names start with NUL */
	__u32 reserved;
	__u8 remote_addr[16]; /* IPv4 in the first 4 bytes */
	__u8 local_addr[16];
	char unix_path[GW_UNIX_PATH_LEN];
	__u32 reserved2;
};

/*
 * Loss counters since the previous loss record, per event type (index =
 * enum gw_event_type). kernel_drops: ring buffer reservations that failed;
 * queue_drops: records the addon discarded because JavaScript fell behind.
 */
struct gw_loss {
	struct gw_header header;
	__u64 kernel_drops[GW_EVENT_TYPE_COUNT];
	__u64 queue_drops[GW_EVENT_TYPE_COUNT];
};

/* Written by the task iterator (not the ring buffer): one per process alive at start. */
struct gw_task_start {
	__u32 tgid;
	__u32 reserved;
	__u64 start_ns; /* start_boottime */
};

#endif

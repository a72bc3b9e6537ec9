/*
 * The sensor tests' workload: each step does one kind of thing the sensor
 * must see, and prints what it did as "key=value" lines on stdout so the test
 * can compare with the events. Built by the test with gcc.
 *
 *   workload connect <tcp|tcp6|udp|unix> <addr-or-path> <port> [nonblock]
 *     (unix @name: an abstract name; the workload listens on it itself first)
 *   workload fork-exit <code>       fork a child that exits with <code>, no exec
 *   workload pid-reuse              two processes with the same pid, one after the other
 *   workload udp-storm <port> <n>   n UDP connects in a tight loop
 *   workload uring-connect <port>   a TCP connect to 127.0.0.1:<port> through io_uring,
 *                                   which never calls connect(2)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int do_connect(const char *kind, const char *where, int port, int nonblock)
{
	int fd;
	int ret;
	struct sockaddr_storage storage;
	socklen_t len;

	memset(&storage, 0, sizeof(storage));
	if (strcmp(kind, "tcp") == 0 || strcmp(kind, "udp") == 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&storage;
		fd = socket(AF_INET, strcmp(kind, "tcp") == 0 ? SOCK_STREAM : SOCK_DGRAM, 0);
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		inet_pton(AF_INET, where, &sin->sin_addr);
		len = sizeof(*sin);
	} else if (strcmp(kind, "tcp6") == 0) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&storage;
		fd = socket(AF_INET6, SOCK_STREAM, 0);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		inet_pton(AF_INET6, where, &sin6->sin6_addr);
		len = sizeof(*sin6);
	} else {
		/* unix: a leading '@' means an abstract name (leading NUL, exact length). */
		struct sockaddr_un *sun = (struct sockaddr_un *)&storage;
		size_t n = strlen(where);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, where, n);
		if (where[0] == '@') {
			/* Node binds abstract names with the whole sun_path; listen here with the exact name instead. */
			int listener = socket(AF_UNIX, SOCK_STREAM, 0);

			sun->sun_path[0] = 0;
			len = offsetof(struct sockaddr_un, sun_path) + n;
			if (listener < 0 || bind(listener, (struct sockaddr *)&storage, len) != 0 || listen(listener, 1) != 0) {
				perror("abstract listener");
				return 2;
			}
		} else {
			len = sizeof(*sun);
		}
	}
	if (fd < 0) {
		perror("socket");
		return 2;
	}
	if (nonblock)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ret = connect(fd, (struct sockaddr *)&storage, len);
	printf("pid=%d\nret=%d\nerrno=%d\n", getpid(), ret, ret == 0 ? 0 : errno);
	if (ret == 0 || errno == EINPROGRESS) {
		struct sockaddr_storage local;
		socklen_t local_len = sizeof(local);
		if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0) {
			if (local.ss_family == AF_INET)
				printf("local_port=%d\n", ntohs(((struct sockaddr_in *)&local)->sin_port));
			else if (local.ss_family == AF_INET6)
				printf("local_port=%d\n", ntohs(((struct sockaddr_in6 *)&local)->sin6_port));
		}
	}
	fflush(stdout);
	close(fd);
	return 0;
}

static pid_t fork_exit(int code)
{
	pid_t child = fork();
	int status;

	if (child == 0)
		_exit(code);
	waitpid(child, &status, 0);
	return child;
}

static int pid_reuse(void)
{
	/* Ask the kernel to hand out the same pid again via ns_last_pid; other processes on the host may take it first, so retry. */
	for (int attempt = 0; attempt < 200; attempt++) {
		pid_t first = fork_exit(0);
		FILE *last = fopen("/proc/sys/kernel/ns_last_pid", "w");
		pid_t second;

		if (!last) {
			perror("ns_last_pid");
			return 2;
		}
		fprintf(last, "%d", first - 1);
		fclose(last);
		second = fork_exit(0);
		if (second == first) {
			printf("pid=%d\nreused=%d\n", getpid(), first);
			return 0;
		}
	}
	printf("reused=0\n");
	return 1;
}

/* One IORING_OP_CONNECT, with raw syscalls (no liburing on the build host). */
static int uring_connect(int port)
{
	struct io_uring_params params;
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int ring, fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned char *sq, *cq;
	struct io_uring_sqe *sqes;
	unsigned *tail, *array, *cq_head;
	struct io_uring_cqe *cqes;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&params, 0, sizeof(params));
	ring = syscall(__NR_io_uring_setup, 4, &params);
	if (ring < 0) {
		perror("io_uring_setup");
		return 2;
	}
	sq = mmap(NULL, params.sq_off.array + params.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	cq = mmap(NULL, params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, params.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	tail = (unsigned *)(sq + params.sq_off.tail);
	array = (unsigned *)(sq + params.sq_off.array);
	memset(&sqes[0], 0, sizeof(sqes[0]));
	sqes[0].opcode = IORING_OP_CONNECT;
	sqes[0].fd = fd;
	sqes[0].addr = (unsigned long)&sin;
	sqes[0].off = sizeof(sin);
	array[*tail & *(unsigned *)(sq + params.sq_off.ring_mask)] = 0;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
		perror("io_uring_enter");
		return 2;
	}
	cq_head = (unsigned *)(cq + params.cq_off.head);
	cqes = (struct io_uring_cqe *)(cq + params.cq_off.cqes);
	printf("pid=%d\nres=%d\n", getpid(), cqes[*cq_head & *(unsigned *)(cq + params.cq_off.ring_mask)].res);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "uring-connect") == 0)
		return uring_connect(atoi(argv[2]));
	if (argc >= 5 && strcmp(argv[1], "connect") == 0)
		return do_connect(argv[2], argv[3], atoi(argv[4]), argc > 5 && strcmp(argv[5], "nonblock") == 0);
	if (argc == 3 && strcmp(argv[1], "fork-exit") == 0) {
		pid_t child = fork_exit(atoi(argv[2]));
		printf("pid=%d\nchild=%d\n", getpid(), child);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "pid-reuse") == 0)
		return pid_reuse();
	if (argc == 4 && strcmp(argv[1], "udp-storm") == 0) {
		int n = atoi(argv[3]);
		for (int i = 0; i < n; i++) {
			int fd = socket(AF_INET, SOCK_DGRAM, 0);
			struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
			sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			connect(fd, (struct sockaddr *)&sin, sizeof(sin));
			close(fd);
		}
		printf("pid=%d\n", getpid());
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of workload.c\n");
	return 2;
}

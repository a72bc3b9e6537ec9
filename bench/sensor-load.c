/*
 * Load generator for bench/sensor: storms of the two things the sensor
 * traces most, so traced and untraced rates can be compared.
 *
 *   sensor-load connect <seconds> <workers>
 *       workers loop TCP connect to a loopback listener served by this
 *       process, closing with RST (SO_LINGER 0) so no TIME_WAIT piles up.
 *   sensor-load udp <seconds> <workers>
 *       workers loop UDP socket + connect + close: the highest connect rate
 *       this host can offer, to find where the sensor starts dropping.
 *   sensor-load exec <seconds> <workers>
 *       workers loop posix_spawn of this binary with "noop" and wait for it.
 *   sensor-load noop
 *
 * Prints "ops=<total> seconds=<elapsed>" on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *accept_loop(void *arg)
{
	int listener = *(int *)arg;

	for (;;) {
		int fd = accept(listener, NULL, NULL);

		if (fd >= 0)
			close(fd);
	}
	return NULL;
}

static long connect_worker(int port, double until)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	long ops = 0;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	while (now() < until) {
		for (int i = 0; i < 64; i++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);

			if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
				ops++;
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
			close(fd);
		}
	}
	return ops;
}

static long udp_worker(double until)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(9) };
	long ops = 0;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	while (now() < until) {
		for (int i = 0; i < 256; i++) {
			int fd = socket(AF_INET, SOCK_DGRAM, 0);

			if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
				ops++;
			close(fd);
		}
	}
	return ops;
}

static long exec_worker(const char *self, double until)
{
	char *argv[] = { (char *)self, "noop", NULL };
	long ops = 0;

	while (now() < until) {
		pid_t child;
		int status;

		if (posix_spawn(&child, self, NULL, NULL, argv, environ) == 0 && waitpid(child, &status, 0) == child)
			ops++;
	}
	return ops;
}

int main(int argc, char **argv)
{
	double seconds, start, until;
	int workers, port = 0, listener = -1;
	long *counts;
	long total = 0;

	if (argc == 2 && strcmp(argv[1], "noop") == 0)
		return 0;
	if (argc != 4 || (strcmp(argv[1], "connect") != 0 && strcmp(argv[1], "udp") != 0 && strcmp(argv[1], "exec") != 0)) {
		fprintf(stderr, "usage: sensor-load <connect|udp|exec> <seconds> <workers> | noop\n");
		return 2;
	}
	seconds = atof(argv[2]);
	workers = atoi(argv[3]);
	counts = mmap(NULL, sizeof(long) * workers, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (strcmp(argv[1], "connect") == 0) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		socklen_t len = sizeof(sin);
		pthread_t thread;

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		listener = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(listener, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(listener, 4096) != 0) {
			perror("listen");
			return 1;
		}
		getsockname(listener, (struct sockaddr *)&sin, &len);
		port = ntohs(sin.sin_port);
		pthread_create(&thread, NULL, accept_loop, &listener);
	}

	start = now();
	until = start + seconds;
	for (int w = 0; w < workers; w++) {
		pid_t pid = fork();

		if (pid == 0) {
			if (strcmp(argv[1], "connect") == 0)
				counts[w] = connect_worker(port, until);
			else if (strcmp(argv[1], "udp") == 0)
				counts[w] = udp_worker(until);
			else
				counts[w] = exec_worker(argv[0], until);
			_exit(0);
		}
	}
	for (int w = 0; w < workers; w++)
		wait(NULL);
	for (int w = 0; w < workers; w++)
		total += counts[w];
	printf("ops=%ld seconds=%.3f\n", total, now() - start);
	return 0;
}

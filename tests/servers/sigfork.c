/*
 * sigfork.c - a host whose signal handlers fork, or write, while the
 * preload holds its event buffer's lock on the same thread, run by
 * integration/forklocks.sh under tests/servers/bufsig.so, which raises
 * the signals at those points. Every mode serves requests to itself on
 * one loopback connection (its own client); the paths are over 32 bytes,
 * so that the preload copies them into its records with memcpy.
 *
 * "sigfork N M" (bufsig.so before libapiprof.so): N requests, GET
 * PARENT_PATH; each one's append to the buffer raises SIGUSR1, whose
 * handler forks. The child of an odd-numbered fork (counting from 0)
 * calls _exit(0) in the handler; that of an even-numbered one returns from
 * it, into the append it interrupted, then serves M requests of its own,
 * GET CHILD_PATH, on a connection of its own and calls exit(0). The
 * parent goes on serving, then waits for every child. Prints "pid P: N
 * requests, F forks, E children exited 0; serving: C..." (C: the pids of
 * the children that served) and exits 0 when every child exited 0.
 *
 * "sigfork crash" (the same preload): reads the head of one request, GET
 * CRASH_PATH, and dies of a NULL store before it answers: the preload's
 * crash handler appends it to the buffer, aborted, and that append raises
 * SIGUSR1, whose handler forks (the child calls _exit(0)), waits for the
 * child and writes "crash: child status S" on stderr. The process then
 * dies of its SIGSEGV.
 *
 * "sigfork window" (bufsig.so after libapiprof.so, BUFSIG_FORK=1): serves
 * 3 requests, GET WINDOW_PATH, reads the head of a fourth and forks (the
 * child calls _exit(0)); bufsig.so's prepare handler raises SIGUSR2
 * inside the fork, after the preload's, and its handler writes the
 * fourth's response. Then a fifth request on the same connection. Prints
 * "window: pid P, child status S" and exits 0 when the child exited 0.
 *
 * Exit 1 when a child did not exit 0, 2 on a setup error. alarm(): the
 * parent dies of SIGALRM after 15 s (a fork that hangs in its prepare
 * handler: 142 in a shell), a serving child after 10 s: a run takes well
 * under a second, and a hang is for good, so the alarms leave a loaded
 * machine plenty of room.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve.h"

#define PARENT_PATH "/sigfork/parent/interrupted-by-its-signal-handler"
#define CHILD_PATH "/sigfork/child/served-after-the-forking-handler"
#define CRASH_PATH "/sigfork/crash/interrupted-in-the-crash-handler"
#define WINDOW_PATH "/sigfork/window/answered-by-a-handler-in-a-fork"
#define MAX_FORKS 64

enum mode { PLAIN, CRASH, WINDOW };

static volatile sig_atomic_t forks, in_child;
static pid_t kids[MAX_FORKS];
static char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
static int window_fd = -1;
static volatile int *volatile nowhere; /* NULL */

static void on_usr1(int sig)
{
	(void)sig;
	int saved = errno;
	int k = forks;
	if (k < MAX_FORKS) {
		pid_t p = fork();
		if (p == 0) {
			if (k % 2)
				_exit(0);
			in_child = 1;
		} else if (p > 0) {
			kids[k] = p;
			forks = k + 1;
		}
	}
	errno = saved;
}

static void on_usr1_crash(int sig)
{
	(void)sig;
	int saved = errno, status = -1;
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	if (p > 0)
		waitpid(p, &status, 0);
	char m[64];
	int n = snprintf(m, sizeof m, "crash: child status 0x%x\n", (unsigned)status);
	(void)!write(2, m, (size_t)n);
	errno = saved;
}

/* Inside a fork (bufsig.so's prepare handler): the response, written. */
static void on_usr2(int sig)
{
	(void)sig;
	int saved = errno;
	if (window_fd >= 0 && serve_write_all(window_fd, resp, sizeof resp - 1) != 0)
		_exit(2);
	errno = saved;
}

static int serve(enum mode mode, const char *path, int n, int m);

/* The child of an even-numbered fork, back from the handler: the parent's
 * sockets are the parent's. */
static void child_main(int m)
{
	in_child = 0;
	alarm(10);
	exit(serve(PLAIN, CHILD_PATH, m, 0) == 0 ? 0 : 3);
}

/* n requests of path to ourselves; m: what a serving child serves. */
static int serve(enum mode mode, const char *path, int n, int m)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) != 0)
		return -1;
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) != 0)
		return -1;
	int s = accept(l, NULL, NULL);
	if (s < 0)
		return -1;
	char req[256], buf[256];
	int rlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: sigfork\r\n\r\n", path);
	for (int i = 0; i < n; i++) {
		if (serve_write_all(c, req, (size_t)rlen) != 0 || serve_read_all(s, buf, (size_t)rlen) != 0)
			return -1;
		if (mode == CRASH)
			*nowhere = 1; /* its request in flight */
		if (mode == WINDOW && i == 3) {
			window_fd = s;
			pid_t p = fork();
			if (p == 0)
				_exit(0);
			window_fd = -1;
			int status = -1;
			if (p < 0 || waitpid(p, &status, 0) != p)
				return -1;
			printf("window: pid %d, child status 0x%x\n", (int)getpid(), (unsigned)status);
			if (status != 0)
				return 1;
		} else if (serve_write_all(s, resp, sizeof resp - 1) != 0) {
			return -1;
		}
		/* The response's last write ended the request: its event, the
		 * signal, the fork. */
		if (in_child)
			child_main(m);
		if (serve_read_all(c, buf, sizeof resp - 1) != 0)
			return -1;
	}
	close(c);
	close(s);
	close(l);
	return 0;
}

int main(int argc, char **argv)
{
	const char *arg = argc > 1 ? argv[1] : "20";
	enum mode mode = strcmp(arg, "crash") == 0 ? CRASH : strcmp(arg, "window") == 0 ? WINDOW
	                                                                                : PLAIN;
	alarm(15);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = mode == CRASH ? on_usr1_crash : on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	if (mode == CRASH) {
		serve(CRASH, CRASH_PATH, 1, 0);
		return 2;
	}
	if (mode == WINDOW) {
		int r = serve(WINDOW, WINDOW_PATH, 5, 0);
		return r < 0 ? 2 : r;
	}
	int n = atoi(arg), m = argc > 2 ? atoi(argv[2]) : 3;
	if (serve(PLAIN, PARENT_PATH, n, m) != 0) {
		perror("serve");
		return 2;
	}
	int ok = 0, f = forks;
	for (int k = 0; k < f; k++) {
		int status = -1;
		if (waitpid(kids[k], &status, 0) == kids[k] && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0)
			ok++;
		else
			printf("child %d (fork %d): status 0x%x\n", (int)kids[k], k, (unsigned)status);
	}
	printf("pid %d: %d requests, %d forks, %d children exited 0; serving:", (int)getpid(), n, f,
	       ok);
	for (int k = 0; k < f; k += 2)
		printf(" %d", (int)kids[k]);
	printf("\n");
	return ok == f ? 0 : 1;
}

/*
 * forklocks.c - a threaded host that forks while its threads run SQL
 * through libpq, run by integration/forklocks.sh with and without the
 * preload. Two threads call PQexecPrepared() without pause; the main
 * thread forks 200 times, and each child makes the same call once and
 * exits. Only the forking thread survives a fork, so a lock another
 * thread held at that moment stays taken in the child: a child whose call
 * does not return within 5 s (SIGALRM kills it; an overloaded machine took
 * 500 ms) is a hang.
 *
 * The calls pass a NULL connection: libpq answers NULL at once, takes no
 * lock of its own and needs no server, while the preload's hook still
 * does all its work (the prepared statement's text looked up under its
 * lock, the statement normalised and appended to the event buffer).
 *
 * Prints "N forks, H children hung, S slow, P preempted" and exits 0 when
 * H is 0, else 1 at the first hung child. S counts the children that took
 * 90 ms or more from fork to exit while sleeping: a child that inherited
 * the parent's shipper thread sending (it sends without the buffer's
 * lock) waited for it at _exit for the exit flush's whole 100 ms budget,
 * in 1 ms sleeps, and then sent nothing. Sleeping is told by the child's
 * voluntary context switches (wait4's rusage): 10 or more; a child's call
 * and exit otherwise make a few at most (a blocked send each). P counts
 * the children that took as long without sleeping: slowed by a loaded
 * machine, preempted (under two tests, CPU hogs and builds on 2 cores,
 * 20 to 40 of the 200).
 *
 * "forklocks N accept": N forks, and one of the two threads first calls
 * accept() once on a listening socket with nothing to accept, under the
 * preload a scan of the loaded objects that holds the scan's lock, so
 * that the fork handler's own scan is skipped (integration/forklocks.sh,
 * with tests/servers/slowwalk.so).
 *
 * With -s, no threads: a SIGALRM handler forks (its child exits at once)
 * while the main thread's first call is under way, 100 ms in: under
 * tests/servers/slowwalk.so, inside the preload's walk of the loaded
 * objects. Prints "signal fork: child status S" and exits 0 when the
 * child exited 0; a fork that waits for its own thread's walk hangs.
 *
 * With -w, a request to itself in flight on one loopback connection (one
 * served before it, so the preload's shipper runs), a second thread that
 * forks 100 ms in, and a SIGALRM handler, 200 ms in, that writes the
 * request's response, while the main thread's first call walks the loaded
 * objects (under tests/servers/slowwalk.so with SLOWWALK_MAIN=1, 300 ms):
 * the fork's prepare handler waits for that walk, and the handler's write
 * must not wait for a lock the fork holds meanwhile (the event buffer's).
 * Prints "walk fork: child status S, response R" and exits 0 when the
 * child exited 0 and the response arrived.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

#define FORKS 200 /* unless argv[1] says how many; argv[2] "accept": below */

/* arg non-NULL: first one accept() on a listening socket with nothing
 * to accept (the preload's first-accept scan of the loaded objects runs
 * on this thread then, its lock held all along). */
static void *hammer(void *arg)
{
	if (arg) {
		int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		struct sockaddr_in a = { .sin_family = AF_INET };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && listen(s, 1) == 0)
			accept(s, NULL, NULL);
	}
	for (;;)
		PQexecPrepared(NULL, "s", 0, NULL, NULL, NULL, 0);
	return arg;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t child_status = -1;

static void fork_in_handler(int sig)
{
	(void)sig;
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	int status;
	if (p > 0 && waitpid(p, &status, 0) == p)
		child_status = status;
}

static int signal_fork(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fork_in_handler;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, 0 }, { 0, 100000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	PQexecPrepared(NULL, "s", 0, NULL, NULL, NULL, 0);
	while (child_status == -1)
		pause(); /* the call ended first: no walk was slowed */
	printf("signal fork: child status 0x%x\n", (unsigned)child_status);
	return child_status == 0 ? 0 : 1;
}

/* -w: the connection's server end, the fork's child status. */
static int walk_fd = -1;
static volatile int walk_status = -1;
static const char walk_resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
static const char walk_req[] = "GET /forklocks/walk/answered-by-a-signal-handler HTTP/1.1\r\n"
                               "Host: forklocks\r\n\r\n";

static void respond_in_handler(int sig)
{
	(void)sig;
	int saved = errno;
	if (serve_write_all(walk_fd, walk_resp, sizeof walk_resp - 1) != 0)
		_exit(3);
	errno = saved;
}

static void *fork_later(void *arg)
{
	(void)arg;
	usleep(100000);
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	int status = -1;
	if (p > 0)
		waitpid(p, &status, 0);
	walk_status = status;
	return NULL;
}

static int walk_fork(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) != 0)
		return 2;
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) != 0)
		return 2;
	walk_fd = accept(l, NULL, NULL);
	char buf[256];
	size_t qlen = sizeof walk_req - 1, rlen = sizeof walk_resp - 1;
	/* The first request: its event starts the shipper. */
	if (walk_fd < 0 || serve_write_all(c, walk_req, qlen) != 0 ||
	    serve_read_all(walk_fd, buf, qlen) != 0 ||
	    serve_write_all(walk_fd, walk_resp, rlen) != 0 || serve_read_all(c, buf, rlen) != 0)
		return 2;
	/* The second, in flight: answered by the handler. */
	if (serve_write_all(c, walk_req, qlen) != 0 || serve_read_all(walk_fd, buf, qlen) != 0)
		return 2;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = respond_in_handler;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	pthread_t t;
	if (pthread_create(&t, NULL, fork_later, NULL) != 0)
		return 2;
	struct itimerval it = { { 0, 0 }, { 0, 200000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	PQexecPrepared(NULL, "s", 0, NULL, NULL, NULL, 0);
	pthread_join(t, NULL);
	int got = serve_read_all(c, buf, rlen) == 0 && memcmp(buf, walk_resp, rlen) == 0;
	printf("walk fork: child status 0x%x, response %s\n", (unsigned)walk_status,
	       got ? "ok" : "missing");
	return walk_status == 0 && got ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "-w") == 0)
		return walk_fork();
	if (argc > 1 && strcmp(argv[1], "-s") == 0)
		return signal_fork();
	int slow = 0, preempted = 0, forks = argc > 1 ? atoi(argv[1]) : FORKS;
	/* libpq binds its message catalogue under a mutex of its own at its
	 * first message (the hook reads PQerrorMessage): done here first, so
	 * that no fork catches a thread holding that lock, which is libpq's. */
	(void)PQerrorMessage(NULL);
	int acceptor = argc > 2 && strcmp(argv[2], "accept") == 0;
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, hammer, i == 0 && acceptor ? &t[i] : NULL) != 0)
			return 2;
	usleep(10000);
	for (int i = 0; i < forks; i++) {
		double t0 = now();
		pid_t p = fork();
		if (p < 0) {
			perror("fork");
			return 2;
		}
		if (p == 0) {
			alarm(5);
			PQexecPrepared(NULL, "s", 0, NULL, NULL, NULL, 0);
			_exit(0);
		}
		int status;
		struct rusage ru;
		if (wait4(p, &status, 0, &ru) != p)
			return 2;
		if (now() - t0 >= 0.09) {
			if (ru.ru_nvcsw >= 10)
				slow++;
			else
				preempted++;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			printf("%d forks, 1 children hung (status 0x%x)\n", i + 1, (unsigned)status);
			return 1;
		}
	}
	printf("%d forks, 0 children hung, %d slow, %d preempted\n", forks, slow, preempted);
	return 0;
}

/*
 * prof_server - a single-threaded HTTP/1.1 server for the CPU-profile test.
 *
 * Built -O2 -fomit-frame-pointer (tests/Makefile.am), so the stacks the
 * preload samples can only be unwound right with DWARF CFI: a frame-pointer
 * walk from inside libm's sin skips burn_sin() entirely.
 *
 * Routes (each answers 200 with a small body, Connection: close honoured):
 *   GET /sin?ms=N    burns about N ms of CPU (default 150) in burn_sin(), a
 *                    static (non-exported) function that calls libm's sin()
 *   GET /spin?ms=N   burns about N ms in spin_plain(), which calls nothing
 *   GET /wait?ms=N   burns about N ms in wait_burn(), in 0.5 ms slices
 *                    each followed by calls that block and that SA_RESTART
 *                    does not restart (poll and epoll_wait for 1 ms,
 *                    nanosleep for 20 us); answers "eintr=K calls=C", K
 *                    the calls that failed with EINTR
 *   GET /take?how=H&ms=N
 *                    burns N/2 ms in spin_plain(), then claims the
 *                    preload's sampling signal (the real-time signal with
 *                    an SA_SIGINFO handler this program did not install) as
 *                    a host would: H=sigaction, its own SA_SIGINFO handler;
 *                    H=signal, its own handler through signal(); H=default,
 *                    signal(SIG_DFL), whose action is death; then burns N/2
 *                    ms more and answers "sig=S hits=K", K the signals its
 *                    own handler received (any is a sample of the preload's
 *                    that reached the host)
 *   anything else    404
 *
 * Usage: prof_server --port N ; prints "listening on PORT" once listening.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

static volatile double sink;

static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The function the /sin route's profile must show: its time is in sin(),
 * called through the PLT into libm, whose frames have no frame pointer. */
static __attribute__((noinline)) double burn_sin(double ms)
{
	double end = cpu_ms() + ms, acc = 0;
	while (cpu_ms() < end)
		for (int i = 0; i < 2000; i++)
			acc += sin(acc + i * 0.001);
	return acc;
}

static __attribute__((noinline)) double spin_plain(double ms)
{
	double end = cpu_ms() + ms;
	unsigned long x = 88172645463325252ul;
	while (cpu_ms() < end)
		for (int i = 0; i < 20000; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
	return (double)x;
}

/* A profiled request's thread that blocks between bursts of CPU: the
 * sampling signal must not make those calls fail (its timer runs on the
 * thread's CPU time, and the kernel sends it on the way back to user
 * space, not in the middle of a call that is about to sleep). */
static __attribute__((noinline)) void wait_burn(double ms, long *eintr, long *calls)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	double end = cpu_ms() + ms;
	*eintr = *calls = 0;
	while (cpu_ms() < end) {
		double slice = cpu_ms() + 0.5;
		unsigned long x = 88172645463325252ul;
		while (cpu_ms() < slice)
			for (int i = 0; i < 2000; i++)
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		sink = (double)x;
		struct epoll_event ev;
		struct timespec ts = { 0, 20000 };
		*eintr += poll(NULL, 0, 1) < 0 && errno == EINTR;
		*eintr += ep >= 0 && epoll_wait(ep, &ev, 1, 1) < 0 && errno == EINTR;
		*eintr += nanosleep(&ts, NULL) < 0 && errno == EINTR;
		*calls += 3;
	}
	if (ep >= 0)
		close(ep);
}

static volatile sig_atomic_t take_hits;

static void take_action(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	take_hits++;
}

static void take_plain(int sig)
{
	(void)sig;
	take_hits++;
}

/* The preload's sampling signal, or -1. */
static int sampling_signal(void)
{
	for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++) {
		struct sigaction sa;
		if (sigaction(sig, NULL, &sa) == 0 && (sa.sa_flags & SA_SIGINFO) &&
		    sa.sa_sigaction != take_action)
			return sig;
	}
	return -1;
}

static void take(double ms, const char *how, char *out, size_t size)
{
	sink = spin_plain(ms / 2);
	int sig = sampling_signal();
	if (sig > 0) {
		if (strncmp(how, "sigaction", 9) == 0) {
			struct sigaction sa;
			memset(&sa, 0, sizeof sa);
			sa.sa_sigaction = take_action;
			sa.sa_flags = SA_SIGINFO | SA_RESTART;
			sigaction(sig, &sa, NULL);
		} else if (strncmp(how, "signal", 6) == 0) {
			signal(sig, take_plain);
		} else {
			signal(sig, SIG_DFL);
		}
	}
	sink = spin_plain(ms / 2);
	snprintf(out, size, "sig=%d hits=%d\n", sig, (int)take_hits);
}

static void serve(int fd, void *unused)
{
	(void)unused;
	char req[2048];
	char method[16], target[256];
	if (serve_read_head(fd, req, sizeof req) < 0 ||
	    sscanf(req, "%15s %255s", method, target) != 2)
		return;
	double ms = 150;
	const char *q = strstr(target, "ms=");
	if (q)
		ms = atof(q + 3);
	if (strncmp(target, "/sin", 4) == 0 && (target[4] == '\0' || target[4] == '?')) {
		sink = burn_sin(ms);
		serve_reply(fd, 200, "sin\n");
	} else if (strncmp(target, "/spin", 5) == 0 && (target[5] == '\0' || target[5] == '?')) {
		sink = spin_plain(ms);
		serve_reply(fd, 200, "spin\n");
	} else if (strncmp(target, "/wait", 5) == 0 && (target[5] == '\0' || target[5] == '?')) {
		long eintr, calls;
		char b[64];
		wait_burn(ms, &eintr, &calls);
		snprintf(b, sizeof b, "eintr=%ld calls=%ld\n", eintr, calls);
		serve_reply(fd, 200, b);
	} else if (strncmp(target, "/take?", 6) == 0) {
		const char *how = strstr(target, "how=");
		char b[64];
		take(ms, how ? how + 4 : "", b, sizeof b);
		serve_reply(fd, 200, b);
	} else {
		serve_reply(fd, 404, "not found\n");
	}
}

int main(int argc, char **argv)
{
	int port = 0;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = atoi(argv[++i]);
	serve_run("prof_server", port, 64, SERVE_ONE_AT_A_TIME, serve, NULL);
	return 1;
}

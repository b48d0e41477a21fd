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
 *   anything else    404
 *
 * Usage: prof_server --port N ; prints "listening on PORT" once listening.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

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
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

static void answer(int fd, int status, const char *body)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf,
	                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n%s",
	                 status, status == 200 ? "OK" : "Not Found", strlen(body), body);
	(void)!write(fd, buf, (size_t)n);
}

static void serve(int fd)
{
	char req[2048];
	size_t len = 0;
	while (len < sizeof req - 1) {
		ssize_t n = read(fd, req + len, sizeof req - 1 - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	char method[16], target[256];
	if (sscanf(req, "%15s %255s", method, target) != 2)
		return;
	double ms = 150;
	const char *q = strstr(target, "ms=");
	if (q)
		ms = atof(q + 3);
	if (strncmp(target, "/sin", 4) == 0 && (target[4] == '\0' || target[4] == '?')) {
		sink = burn_sin(ms);
		answer(fd, 200, "sin\n");
	} else if (strncmp(target, "/spin", 5) == 0 && (target[5] == '\0' || target[5] == '?')) {
		sink = spin_plain(ms);
		answer(fd, 200, "spin\n");
	} else {
		answer(fd, 404, "not found\n");
	}
}

int main(int argc, char **argv)
{
	int port = 0;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = atoi(argv[++i]);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 64) != 0) {
		perror("prof_server: bind/listen");
		return 1;
	}
	socklen_t sl = sizeof sa;
	getsockname(ls, (struct sockaddr *)&sa, &sl);
	printf("listening on %d\n", ntohs(sa.sin_port));
	fflush(stdout);
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		if (fd < 0)
			continue;
		serve(fd);
		close(fd);
	}
}

/*
 * shortlived.c - a CGI-style flood of short-lived senders for
 * integration/resources.sh: `shortlived SOCKET N SERVICE` forks N children,
 * one after another; each sends one datagram (batch header, HELLO, one
 * GET /short request, encoded by hand as ap_wire.h lays them out) to
 * SOCKET and exits. Prints "N FAILED"; exits 1 when any send failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static size_t put(uint8_t *b, size_t at, const void *p, size_t n) { memcpy(b + at, p, n); return at + n; }
static size_t str16(uint8_t *b, size_t at, const char *s)
{
	uint16_t n = (uint16_t)strlen(s);
	at = put(b, at, &n, 2);
	return put(b, at, s, n);
}
static int64_t ns(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }

static void child(const char *path, const char *svc)
{
	uint8_t b[1024];
	size_t at = 0;
	uint32_t magic = 0x46525041, seq = 1, pid = (uint32_t)getpid();
	uint8_t ver = 1, z = 0;
	uint16_t hl = 24;
	int64_t mono = ns(CLOCK_MONOTONIC), off = ns(CLOCK_REALTIME) - mono;
	at = put(b, at, &magic, 4); at = put(b, at, &ver, 1); at = put(b, at, &z, 1);
	at = put(b, at, &hl, 2); at = put(b, at, &seq, 4); at = put(b, at, &pid, 4);
	at = put(b, at, &off, 8);
	/* HELLO */
	size_t rh = at;
	uint16_t type = 1, flags = 0;
	uint32_t len = 0, ppid = 1;
	uint64_t start = (uint64_t)mono;
	at = put(b, at, &type, 2); at = put(b, at, &flags, 2); at = put(b, at, &len, 4);
	at = put(b, at, &pid, 4); at = put(b, at, &ppid, 4); at = put(b, at, &start, 8);
	at = str16(b, at, svc); at = str16(b, at, "/bin/forker");
	len = (uint32_t)(at - rh - 8); memcpy(b + rh + 4, &len, 4);
	/* REQUEST */
	rh = at; type = 2;
	at = put(b, at, &type, 2); at = put(b, at, &flags, 2); at = put(b, at, &len, 4);
	uint64_t q[5] = { 1, (uint64_t)mono - 1000000, (uint64_t)mono, 10, 20 };
	at = put(b, at, q, sizeof q);
	uint32_t tid = pid; uint16_t status = 200, rflags = 0;
	at = put(b, at, &tid, 4); at = put(b, at, &status, 2); at = put(b, at, &rflags, 2);
	at = str16(b, at, "GET"); at = str16(b, at, "/short"); at = str16(b, at, "");
	len = (uint32_t)(at - rh - 8); memcpy(b + rh + 4, &len, 4);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (sendto(fd, b, at, 0, (struct sockaddr *)&sa, sizeof sa) < 0)
		_exit(1);
	_exit(0);
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	int n = atoi(argv[2]), failed = 0;
	for (int i = 0; i < n; i++) {
		pid_t p = fork();
		if (p == 0)
			child(argv[1], argv[3]);
		int st;
		if (p < 0 || waitpid(p, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	}
	printf("%d %d\n", n, failed);
	return failed != 0;
}

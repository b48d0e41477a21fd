/*
 * feed.c - sends synthetic request events to apiprof-collector, as the
 * preload would, for the /api/v1/endpoints latency benchmark.
 *
 * usage: feed --socket PATH --requests N [--routes R] [--service NAME]
 *             [--http HOST:PORT] [--max-queue ROWS] [--spread-s SECONDS]
 *
 * Datagrams are encoded with the project's own encoder (shared/wire.c), so
 * they follow ap_wire.h exactly: each is a batch header, this process's
 * HELLO record, then as many REQUEST records as fit in AP_WIRE_MAX_DATAGRAM
 * bytes. Requests spread over R routes (default 200) with a Zipf-like mix,
 * numeric ids in the paths (the collector templates them to `{id}`), every
 * fifth route a POST, about 1% 500s and 2% 404s, durations from 0.2 ms to
 * a few hundred ms. --spread-s S dates the requests evenly over the last S
 * seconds (default 0: all now).
 *
 * Pacing: sends are blocking, so a full socket queue in the collector
 * makes us wait instead of losing datagrams. The collector's SQLite writer
 * has its own bounded queue and drops rows when it is full (statistics stay
 * exact), so with --http we poll /api/v1/status every few thousand events
 * and wait while store.queue_depth exceeds --max-queue (default 20000).
 *
 * Build: gcc -O2 -I BUILD -I SRC/shared feed.c SRC/shared/wire.c -lm
 * (config.h comes from the build directory).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ap_wire.h"

#define MAX_ROUTES 10000
#define REC_ROOM 256
#define POLL_EVERY 20000 /* events between two looks at the store's queue */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t wall_minus_mono(void)
{
	struct timespec w, m;
	clock_gettime(CLOCK_REALTIME, &w);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return ((int64_t)w.tv_sec - m.tv_sec) * 1000000000 + (w.tv_nsec - m.tv_nsec);
}

/* xorshift64*: repeatable, fast, good enough for a traffic mix. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}
static double rnd01(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

/* One GET on the collector's HTTP API; returns the body's value of the
 * first `"key":NUMBER` found after `"section"`, or -1. */
static long long http_number(const char *host, int port, const char *path,
                             const char *section, const char *key)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (s < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
	    connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	char req[256];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
	                 path, host);
	if (write(s, req, (size_t)n) != n) {
		close(s);
		return -1;
	}
	static char buf[1 << 16];
	size_t len = 0;
	ssize_t r;
	while (len < sizeof buf - 1 && (r = read(s, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)r;
	close(s);
	buf[len] = '\0';
	char pat[64];
	const char *p = buf;
	if (section) {
		snprintf(pat, sizeof pat, "\"%s\"", section);
		p = strstr(p, pat);
		if (!p)
			return -1;
	}
	snprintf(pat, sizeof pat, "\"%s\"", key);
	p = strstr(p, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	return strtoll(p, NULL, 10);
}

static void usage(void)
{
	fprintf(stderr, "usage: feed --socket PATH --requests N [--routes R] [--service NAME]\n"
	                "            [--http HOST:PORT] [--max-queue ROWS] [--spread-s SECONDS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *sock_path = NULL, *service = "bench-feed", *http = NULL;
	long long total = 0, max_queue = 20000;
	int nroutes = 200;
	uint64_t spread_ns = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		if (strcmp(a, "--socket") == 0)
			sock_path = v;
		else if (strcmp(a, "--requests") == 0)
			total = atoll(v);
		else if (strcmp(a, "--routes") == 0)
			nroutes = atoi(v);
		else if (strcmp(a, "--service") == 0)
			service = v;
		else if (strcmp(a, "--http") == 0)
			http = v;
		else if (strcmp(a, "--max-queue") == 0)
			max_queue = atoll(v);
		else if (strcmp(a, "--spread-s") == 0)
			spread_ns = (uint64_t)atoll(v) * 1000000000u;
		else
			usage();
		i++;
	}
	if (!sock_path || total <= 0 || nroutes < 1 || nroutes > MAX_ROUTES)
		usage();
	char host[64] = "127.0.0.1";
	int port = 0;
	if (http) {
		const char *colon = strrchr(http, ':');
		if (!colon || (size_t)(colon - http) >= sizeof host)
			usage();
		memcpy(host, http, (size_t)(colon - http));
		host[colon - http] = '\0';
		port = atoi(colon + 1);
	}

	/* Route weights ~ 1/(k+1)^0.8, as cumulative thresholds. */
	static double cum[MAX_ROUTES];
	double sum = 0;
	for (int k = 0; k < nroutes; k++) {
		sum += 1.0 / pow(k + 1, 0.8);
		cum[k] = sum;
	}
	for (int k = 0; k < nroutes; k++)
		cum[k] /= sum;

	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		perror("feed: socket");
		return 1;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(sock_path) >= sizeof sa.sun_path) {
		fprintf(stderr, "feed: socket path too long\n");
		return 1;
	}
	strcpy(sa.sun_path, sock_path);
	int sndbuf = 4 << 20;
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

	char exe[256] = "feed";
	ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (el > 0)
		exe[el] = '\0';
	uint64_t start_mono = mono_ns();
	static uint8_t dg[AP_WIRE_MAX_DATAGRAM];
	uint32_t seq = 0;
	long long sent = 0, datagrams = 0, next_poll = POLL_EVERY, waits = 0;
	uint64_t req_id = 0;
	uint64_t t0 = mono_ns();
	while (sent < total) {
		struct ap_batch_hdr h = { .seq = seq++, .pid = (uint32_t)getpid(),
		                          .wall_minus_mono_ns = wall_minus_mono() };
		size_t off = ap_wire_put_batch_hdr(dg, sizeof dg, &h);
		struct ap_rec_hello hello = {
			.pid = (uint32_t)getpid(), .ppid = (uint32_t)getppid(),
			.start_mono_ns = start_mono,
			.service = { service, (uint16_t)strlen(service) },
			.exe = { exe, (uint16_t)strlen(exe) },
		};
		off += ap_wire_put_hello(dg + off, sizeof dg - off, &hello);
		uint64_t now = mono_ns();
		/* With --spread-s, the stream's timestamps run from S seconds ago
		 * to now, in order, as if the collector had been receiving this
		 * traffic for that long (minutes then close and are stored). */
		if (spread_ns)
			now -= spread_ns - (uint64_t)((double)spread_ns * (double)sent / (double)total);
		/* REC_ROOM bounds one record (paths are < 128 bytes). */
		while (sent < total && off + REC_ROOM <= sizeof dg) {
			double u = rnd01();
			int k = 0;
			while (k < nroutes - 1 && cum[k] < u)
				k++;
			char path[128];
			unsigned long id = (unsigned long)(rnd() % 100000);
			switch (k % 4) {
			case 0: snprintf(path, sizeof path, "/api/res%d/%lu", k, id); break;
			case 1: snprintf(path, sizeof path, "/api/res%d/%lu/items", k, id); break;
			case 2: snprintf(path, sizeof path, "/api/res%d", k); break;
			default: snprintf(path, sizeof path, "/api/v2/res%d/%lu/detail?x=%lu", k, id, id); break;
			}
			double pr = rnd01();
			uint16_t status = pr < 0.01 ? 500 : pr < 0.03 ? 404 : 200;
			/* 0.2 ms .. ~300 ms, heavy towards the low end. */
			double d = 0.2 + rnd01() * rnd01() * rnd01() * 300.0;
			uint64_t dur = (uint64_t)(d * 1e6);
			const char *method = k % 5 == 0 ? "POST" : "GET";
			struct ap_rec_request r = {
				.req_id = ++req_id,
				.start_ns = now - dur,
				.end_ns = now,
				.bytes_in = 120,
				.bytes_out = 200 + (uint64_t)(rnd() % 2000),
				.tid = (uint32_t)getpid(),
				.status = status,
				.flags = 0,
				.method = { method, (uint16_t)strlen(method) },
				.path = { path, (uint16_t)strlen(path) },
			};
			size_t w = ap_wire_put_request(dg + off, sizeof dg - off, &r);
			if (w == 0) {
				fprintf(stderr, "feed: encoding failed\n");
				return 1;
			}
			off += w;
			sent++;
		}
		for (;;) {
			ssize_t r = sendto(s, dg, off, MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof sa);
			if (r >= 0)
				break;
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == ENOBUFS) {
				struct timespec ts = { 0, 1000000 };
				nanosleep(&ts, NULL);
				continue;
			}
			fprintf(stderr, "feed: sendto %s: %s\n", sock_path, strerror(errno));
			return 1;
		}
		datagrams++;
		if (http && sent >= next_poll) {
			next_poll = sent + POLL_EVERY;
			for (;;) {
				long long q = http_number(host, port, "/api/v1/status", "store", "queue_depth");
				if (q < 0 || q <= max_queue)
					break;
				waits++;
				struct timespec ts = { 0, 20000000 };
				nanosleep(&ts, NULL);
			}
		}
	}
	double secs = (double)(mono_ns() - t0) / 1e9;
	printf("feed: sent %lld requests in %lld datagrams over %d routes in %.2f s"
	       " (%.0f/s, %lld waits for the store)\n",
	       sent, datagrams, nroutes, secs, (double)sent / secs, waits);
	return 0;
}

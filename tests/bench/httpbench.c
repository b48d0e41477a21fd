/*
 * httpbench.c - cost of the HTTP framing parsers (shared/http.c) per
 * exchange, fed the way preload/conn.c feeds them: each buffer the host
 * read or wrote goes through *_feed() until it reports NEED_MORE or
 * MSG_DONE, events handled in between.
 *
 * Not part of `make check`: the number that matters is instructions, which
 * only a simulator counts reliably. Build and measure, e.g.:
 *
 *   gcc -O2 -I<builddir> -Ishared tests/bench/httpbench.c shared/http.c \
 *       -o httpbench
 *   valgrind --tool=callgrind --toggle-collect=bench_run ./httpbench small 100000
 *
 * then divide the collected Ir by the iteration count (the program prints
 * the exact divisor). That counts the feeding loop too, as the preload's
 * would be; --toggle-collect='ap_http_*' counts the parser alone. Without
 * valgrind it prints nanoseconds per iteration, noisy but handy while
 * editing.
 *
 * Requests go through ap_http_req_feed_head() and
 * ap_http_req_end_bodyless(), as the preload feeds them; a third argument
 * `feed` sends them through ap_http_req_feed() alone, one event per call.
 *
 * Cases:
 *   small    a curl-like GET and nginx's reply (headers and body in two
 *            iovecs of one writev), request and response
 *   smallreq / smallresp   the two halves of `small` alone
 *   browser  a 429-byte browser-like GET with ten headers (a 106-byte
 *            Cookie line among them), request only
 */
#include "config.h"
#include "ap_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STR(s) { s, sizeof(s) - 1 }

struct buf {
	const char *p;
	size_t n;
};

static const struct buf small_req =
	STR("GET /ok HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n");

/* nginx writes the header block and the body as two iovecs of one writev */
static const struct buf small_resp[2] = {
	STR("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"
	    "Date: Sun, 22 Nov 2026 08:23:47 GMT\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 3\r\nConnection: keep-alive\r\n\r\n"),
	STR("ok\n"),
};

static const struct buf browser_req =
	STR("GET /products?page=2 HTTP/1.1\r\n"
	    "Host: shop.example.com\r\n"
	    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0\r\n"
	    "Accept: text/html,*/*;q=0.8\r\n"
	    "Accept-Language: en-US,en;q=0.5\r\n"
	    "Accept-Encoding: gzip, br\r\n"
	    "Cookie: session=3f2a9c1e7b5d4f608a1c2e3b4d5f6a7b; theme=dark; lang=en; "
	    "cart=17; seen=1732263827; ab=b; x=1\r\n"
	    "Referer: https://shop.example.com/\r\n"
	    "Connection: keep-alive\r\n"
	    "Upgrade-Insecure-Requests: 1\r\n"
	    "Sec-Fetch-Mode: navigate\r\n"
	    "\r\n");

/* 1: requests through ap_http_req_feed() alone, one event per call, as
 * before ap_http_req_feed_head() (the third argument "feed"). */
static int plain_feed;

/* Feeds one buffer the way preload/conn.c does (ap_http_req_feed_head(),
 * ap_http_req_end_bodyless() after the head); returns 1 after MSG_DONE,
 * exits on any event the fixed inputs cannot produce. */
static int req_buf(struct ap_http_req *p, const struct buf *b)
{
	const char *s = b->p;
	size_t n = b->n;
	for (;;) {
		enum ap_http_ev ev;
		size_t used = plain_feed ? ap_http_req_feed(p, s, n, &ev)
		                         : ap_http_req_feed_head(p, s, n, &ev);
		s += used;
		n -= used;
		if (ev == AP_HTTP_MSG_DONE)
			return 1;
		if ((ev == AP_HTTP_HEAD_DONE || ev == AP_HTTP_HEADERS_DONE) && !plain_feed &&
		    ap_http_req_end_bodyless(p))
			return 1;
		if (ev == AP_HTTP_NEED_MORE)
			return 0;
		if (ev == AP_HTTP_ERROR) {
			fprintf(stderr, "httpbench: request parse error\n");
			exit(1);
		}
	}
}

static int resp_buf(struct ap_http_resp *p, const struct buf *b)
{
	const char *s = b->p;
	size_t n = b->n;
	for (;;) {
		enum ap_http_ev ev;
		size_t used = ap_http_resp_feed(p, s, n, &ev);
		s += used;
		n -= used;
		if (ev == AP_HTTP_MSG_DONE)
			return 1;
		if (ev == AP_HTTP_NEED_MORE)
			return 0;
		if (ev == AP_HTTP_ERROR) {
			fprintf(stderr, "httpbench: response parse error\n");
			exit(1);
		}
	}
}

static void one_req(struct ap_http_req *p, const struct buf *b)
{
	ap_http_req_init(p);
	if (!req_buf(p, b) || p->content_length != 0 || !p->keep_alive) {
		fprintf(stderr, "httpbench: request not parsed as expected\n");
		exit(1);
	}
}

static void one_resp(struct ap_http_resp *p)
{
	ap_http_resp_begin(p, 0);
	if (resp_buf(p, &small_resp[0]) || !resp_buf(p, &small_resp[1]) ||
	    p->status != 200 || p->content_length != 3) {
		fprintf(stderr, "httpbench: response not parsed as expected\n");
		exit(1);
	}
}

/* The measured loop: callgrind's --toggle-collect=bench_run counts only
 * this. noinline keeps it a function of its own at -O2. */
__attribute__((noinline)) void bench_run(const char *which, long iters,
                                         struct ap_http_req *rq,
                                         struct ap_http_resp *rs)
{
	int req = strcmp(which, "smallresp") != 0;
	int resp = strcmp(which, "small") == 0 || strcmp(which, "smallresp") == 0;
	const struct buf *b = strcmp(which, "browser") == 0 ? &browser_req : &small_req;

	for (long i = 0; i < iters; i++) {
		if (req)
			one_req(rq, b);
		if (resp)
			one_resp(rs);
	}
}

int main(int argc, char **argv)
{
	const char *which = argc > 1 ? argv[1] : "small";
	long iters = argc > 2 ? atol(argv[2]) : 100000;
	plain_feed = argc > 3 && strcmp(argv[3], "feed") == 0;
	static struct ap_http_req rq;
	static struct ap_http_resp rs;
	struct timespec t0, t1;

	if (strcmp(which, "small") && strcmp(which, "smallreq") &&
	    strcmp(which, "smallresp") && strcmp(which, "browser")) {
		fprintf(stderr, "usage: httpbench [small|smallreq|smallresp|browser] [iterations] "
		                "[feed]\n");
		return 2;
	}
	if (strcmp(which, "browser") == 0)
		printf("browser request: %zu bytes\n", browser_req.n);
	ap_http_resp_init(&rs);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bench_run(which, iters, &rq, &rs);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
	printf("%s: %ld iterations (divide callgrind Ir by this), %.1f ns/iteration\n",
	       which, iters, iters ? ns / (double)iters : 0.0);
	return 0;
}

/*
 * fuzz_http.c - libFuzzer harness for the incremental HTTP/1.x parsers
 * (shared/http.c).
 *
 * The preload feeds the parsers whatever pieces the host read or wrote, so
 * the property checked besides memory safety is split invariance: the
 * events and results of a message stream must not depend on where the
 * reads cut it. The input's first byte chooses the direction and a seed
 * for the cut points; the rest is the byte stream, parsed once whole, once
 * in pieces of 1..16 bytes and once in pieces of 1..200 bytes (which reach
 * the SIMD paths for 16-, 32- and 64-byte windows with a line begun in an
 * earlier piece), and the event logs must match. Another run, in the
 * small pieces and then whole, takes the preload's shortcuts
 * (ap_http_req_feed_head(), whose HEAD_DONE is logged as the START_LINE
 * and HEADERS_DONE it stands for, ap_http_req_end_bodyless(),
 * ap_http_resp_feed_to_end()): requests must give the same log, responses
 * the same MSG_DONEs and errors.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ap_http.h"

#define MAX_EVENTS 4096

struct evlog {
	size_t n;
	uint64_t v[MAX_EVENTS];
};

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_http: %s\n", what);
	abort();
}

static void log_ev(struct evlog *l, uint64_t v)
{
	if (l->n < MAX_EVENTS)
		l->v[l->n++] = v;
}

/* A digest of what the caller may read after each event. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static void check_req(const struct ap_http_req *r, enum ap_http_ev ev, struct evlog *l)
{
	uint64_t h = 14695981039346656037ull ^ (uint64_t)ev;
	if (ev == AP_HTTP_START_LINE) {
		if (r->method_len >= AP_HTTP_METHOD_MAX || r->target_len >= AP_HTTP_TARGET_MAX)
			fail("request: method or target longer than its buffer");
		if (r->method[r->method_len] != '\0' || r->target[r->target_len] != '\0')
			fail("request: method or target not NUL-terminated");
		if (r->version_minor > 1)
			fail("request: version other than 1.0/1.1 accepted");
		h = hash_bytes(h, r->method, r->method_len);
		h = hash_bytes(h, r->target, r->target_len);
		h = hash_bytes(h, &r->target_truncated, 1);
		h = hash_bytes(h, &r->version_minor, 1);
	} else if (ev == AP_HTTP_HEADERS_DONE) {
		uint8_t f[5] = { r->keep_alive, r->expect_continue, r->profile, r->chunked, 0 };
		h = hash_bytes(h, f, sizeof f);
		if (!r->chunked)
			h = hash_bytes(h, &r->content_length, sizeof r->content_length);
	}
	log_ev(l, h);
}

static void check_resp(const struct ap_http_resp *r, enum ap_http_ev ev, struct evlog *l)
{
	uint64_t h = 14695981039346656037ull ^ (uint64_t)ev;
	if (r->errbody_len > AP_HTTP_ERRBODY_MAX)
		fail("response: errbody_len past its buffer");
	if (ev == AP_HTTP_START_LINE) {
		if (r->status > 999)
			fail("response: status out of 0..999");
		h = hash_bytes(h, &r->status, sizeof r->status);
	} else if (ev == AP_HTTP_HEADERS_DONE) {
		uint8_t f[3] = { r->keep_alive, r->chunked, r->until_close };
		h = hash_bytes(h, f, sizeof f);
		if (!r->chunked && !r->until_close)
			h = hash_bytes(h, &r->content_length, sizeof r->content_length);
	} else if (ev == AP_HTTP_MSG_DONE) {
		h = hash_bytes(h, &r->errbody_len, sizeof r->errbody_len);
		h = hash_bytes(h, r->errbody, r->errbody_len);
	}
	log_ev(l, h);
}

enum run_mode {
	RUN_ALL,      /* every event logged */
	RUN_ENDS,     /* responses: only MSG_DONE and ERROR logged */
	RUN_SHORTCUT  /* the preload's shortcuts, every event they report logged */
};

/* Parses data[0..n) in pieces of 1..maxp bytes, their sizes drawn from
 * the seed (0: whole). */
static void run(int response, int head, uint32_t seed, size_t maxp, const char *data,
                size_t n, enum run_mode mode, struct evlog *l)
{
	struct ap_http_req rq;
	struct ap_http_resp rs;
	ap_http_req_init(&rq);
	ap_http_resp_init(&rs);
	if (response)
		ap_http_resp_begin(&rs, head);
	size_t pos = 0;
	unsigned stalls = 0;
	l->n = 0;
	while (pos < n) {
		size_t piece = n - pos;
		if (seed) {
			seed = seed * 1103515245u + 12345u;
			size_t k = 1 + (seed >> 16) % maxp;
			if (k < piece)
				piece = k;
		}
		size_t off = 0;
		while (off < piece) {
			enum ap_http_ev ev = AP_HTTP_NEED_MORE;
			size_t used = !response
			              ? (mode == RUN_SHORTCUT
			                 ? ap_http_req_feed_head(&rq, data + pos + off, piece - off, &ev)
			                 : ap_http_req_feed(&rq, data + pos + off, piece - off, &ev))
			              : mode == RUN_SHORTCUT
			              ? ap_http_resp_feed_to_end(&rs, data + pos + off, piece - off, &ev)
			              : ap_http_resp_feed(&rs, data + pos + off, piece - off, &ev);
			if (used > piece - off)
				fail("feed consumed more than it was given");
			if (ev == AP_HTTP_NEED_MORE && used != piece - off)
				fail("NEED_MORE without consuming everything");
			off += used;
			if (ev == AP_HTTP_NEED_MORE)
				continue;
			if (used == 0 && ++stalls > 8)
				fail("no progress: events without consuming bytes");
			if (used != 0)
				stalls = 0;
			if (response && mode == RUN_SHORTCUT &&
			    (ev == AP_HTTP_START_LINE || ev == AP_HTTP_HEADERS_DONE))
				fail("ap_http_resp_feed_to_end() reported a start line or headers");
			if (!response && mode != RUN_SHORTCUT && ev == AP_HTTP_HEAD_DONE)
				fail("ap_http_req_feed() reported a whole head");
			if (response && (mode == RUN_ALL || ev == AP_HTTP_MSG_DONE || ev == AP_HTTP_ERROR)) {
				check_resp(&rs, ev, l);
			} else if (!response && ev == AP_HTTP_HEAD_DONE) {
				/* the two events it stands for */
				check_req(&rq, AP_HTTP_START_LINE, l);
				check_req(&rq, AP_HTTP_HEADERS_DONE, l);
			} else if (!response) {
				check_req(&rq, ev, l);
			}
			if (!response && mode == RUN_SHORTCUT &&
			    (ev == AP_HTTP_HEADERS_DONE || ev == AP_HTTP_HEAD_DONE) &&
			    ap_http_req_end_bodyless(&rq))
				check_req(&rq, AP_HTTP_MSG_DONE, l);
			if (ev == AP_HTTP_ERROR)
				return; /* sticky; the preload stops tracking here */
			if (response && ev == AP_HTTP_MSG_DONE) {
				if (rs.status == 101)
					return; /* no longer HTTP */
				ap_http_resp_begin(&rs, head);
			}
		}
		pos += piece;
	}
	/* A bodyless message's MSG_DONE is held back to the next feed call:
	 * ask for it at the end of the stream too, so that runs which end
	 * it earlier (the shortcuts) can be compared. */
	enum ap_http_ev ev = AP_HTTP_NEED_MORE;
	if (response)
		ap_http_resp_feed(&rs, NULL, 0, &ev);
	else
		ap_http_req_feed(&rq, NULL, 0, &ev);
	if (ev == AP_HTTP_MSG_DONE) {
		if (response)
			check_resp(&rs, ev, l);
		else
			check_req(&rq, ev, l);
		if (response && rs.status == 101)
			return; /* as in the loop */
	}
	if (response)
		log_ev(l, (uint64_t)ap_http_resp_eof(&rs) | 0x1000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct evlog whole, cut, ends, shortcut;
	static const size_t maxp[2] = { 16, 200 };
	if (size < 1)
		return 0;
	int response = data[0] & 1, head = (data[0] >> 1) & 1;
	uint32_t seed = (uint32_t)data[0] * 2654435761u | 1;
	const char *s = (const char *)data + 1;
	size--;
	run(response, head, 0, 0, s, size, RUN_ALL, &whole);
	for (int i = 0; i < 2; i++) {
		run(response, head, seed, maxp[i], s, size, RUN_ALL, &cut);
		if (whole.n != cut.n || memcmp(whole.v, cut.v, whole.n * sizeof whole.v[0]) != 0)
			fail("events differ when the same bytes arrive in other pieces");
	}
	struct evlog *want = &whole;
	if (response) {
		run(response, head, 0, 0, s, size, RUN_ENDS, &ends);
		want = &ends;
	}
	/* in pieces, and whole (where a request's head comes whole to
	 * ap_http_req_feed_head(), and a response's to resp_head()) */
	for (int pass = 0; pass < 2; pass++) {
		run(response, head, pass ? 0 : seed, 16, s, size, RUN_SHORTCUT, &shortcut);
		if (want->n != shortcut.n ||
		    memcmp(want->v, shortcut.v, want->n * sizeof want->v[0]) != 0)
			fail("the preload's shortcuts give other events than the plain feeds");
	}
	return 0;
}

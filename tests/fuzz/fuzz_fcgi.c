/*
 * fuzz_fcgi.c - libFuzzer harness for the FastCGI parser (shared/fcgi.c).
 *
 * The preload feeds ap_fcgi_feed_in() and ap_fcgi_feed_out() whatever
 * pieces php-fpm read or wrote, and loops until AP_FCGI_NEED_MORE, so
 * besides memory safety the harness checks what that loop relies on:
 *   - progress: AP_FCGI_NEED_MORE means every byte was consumed, and every
 *     other event but AP_FCGI_ERROR consumed at least one byte;
 *   - split invariance: a conversation gives the same events and results
 *     (a target cut at AP_FCGI_TARGET_MAX or not included) whether each of
 *     its chunks is fed whole or in pieces of 1..16 bytes;
 *   - once AP_FCGI_ERROR, always AP_FCGI_ERROR, consuming nothing;
 *   - the results stay within their arrays.
 * Input: a seed byte for the cut points, then chunks: a byte whose top bit
 * says the direction (set: the server wrote it) and whose low 7 bits are
 * the chunk's length, then that many bytes.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ap_fcgi.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_fcgi: %s\n", what);
	abort();
}

#define MAX_EV 2048

struct evrec {
	uint8_t ev;
	uint16_t req_id, status, target_len;
	uint8_t method_len, target_truncated, profile, keep_conn;
	uint64_t bytes_in, bytes_out;
};

struct log {
	size_t n;
	struct evrec e[MAX_EV];
};

static void record(struct log *l, const struct ap_fcgi *p, enum ap_fcgi_ev ev)
{
	if (p->method_len >= AP_FCGI_METHOD_MAX || p->target_len > AP_FCGI_TARGET_MAX ||
	    p->errbody_len > AP_FCGI_ERRBODY_MAX)
		fail("a result beyond its array");
	if (ev == AP_FCGI_NEED_MORE || l->n == MAX_EV)
		return; /* how many NEED_MOREs depends on the cuts */
	struct evrec *r = &l->e[l->n++];
	memset(r, 0, sizeof *r);
	r->ev = (uint8_t)ev;
	r->req_id = p->req_id;
	if (ev == AP_FCGI_PARAMS_DONE) {
		r->method_len = p->method_len;
		r->target_len = p->target_len;
		r->target_truncated = p->target_truncated;
		r->profile = p->profile;
	}
	if (ev == AP_FCGI_HEAD_DONE || ev == AP_FCGI_END) {
		r->status = p->status;
		r->bytes_in = p->bytes_in;
		r->keep_conn = p->keep_conn;
	}
	if (ev == AP_FCGI_END)
		r->bytes_out = p->bytes_out;
}

/* Feeds one chunk in pieces (max_piece 0: whole); 1 after an error. */
static int feed(struct ap_fcgi *p, int out, const uint8_t *b, size_t n, size_t max_piece,
                unsigned *seed, struct log *l)
{
	while (n) {
		size_t piece = max_piece ? 1 + (size_t)rand_r(seed) % max_piece : n;
		if (piece > n)
			piece = n;
		const uint8_t *q = b;
		size_t left = piece;
		while (left) {
			enum ap_fcgi_ev ev;
			size_t used = out ? ap_fcgi_feed_out(p, q, left, &ev) : ap_fcgi_feed_in(p, q, left, &ev);
			if (used > left)
				fail("consumed more than given");
			if (ev == AP_FCGI_NEED_MORE && used != left)
				fail("NEED_MORE with bytes left");
			if (ev != AP_FCGI_NEED_MORE && ev != AP_FCGI_ERROR && used == 0)
				fail("an event without progress");
			record(l, p, ev);
			if (ev == AP_FCGI_ERROR) {
				if (used != 0)
					fail("an error consumed bytes");
				enum ap_fcgi_ev ev2;
				if (ap_fcgi_feed_in(p, b, n, &ev2) != 0 || ev2 != AP_FCGI_ERROR ||
				    ap_fcgi_feed_out(p, b, n, &ev2) != 0 || ev2 != AP_FCGI_ERROR)
					fail("an error that did not stick");
				return 1;
			}
			q += used;
			left -= used;
		}
		b += piece;
		n -= piece;
	}
	return 0;
}

static void run(const uint8_t *data, size_t size, size_t max_piece, unsigned seed, struct log *l)
{
	static struct ap_fcgi p;
	ap_fcgi_init(&p);
	l->n = 0;
	size_t i = 1;
	while (i < size) {
		int out = data[i] >> 7;
		size_t len = data[i] & 0x7f;
		i++;
		if (len > size - i)
			len = size - i;
		if (feed(&p, out, data + i, len, max_piece, &seed, l))
			return;
		i += len;
	}
}

static struct log whole, cut;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	run(data, size, 0, 0, &whole);
	run(data, size, 16, data[0], &cut);
	if (whole.n != cut.n || memcmp(whole.e, cut.e, whole.n * sizeof whole.e[0]) != 0)
		fail("the events depend on how the bytes were cut");
	return 0;
}

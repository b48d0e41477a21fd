/*
 * fuzz_h2.c - libFuzzer harness for the HTTP/2 frame parser (shared/h2.c).
 *
 * The preload feeds ap_h2_feed() whatever pieces the server read or
 * wrote, and loops until it reports AP_H2_NEED_MORE, so besides memory
 * safety the harness checks what that loop relies on:
 *   - progress: AP_H2_NEED_MORE means every byte was consumed, and no
 *     more than two events in a row come without consuming a byte (a
 *     frame's header, then its empty block's AP_H2_HEADERS and
 *     AP_H2_END_STREAM); else the preload's loop could spin;
 *   - split invariance: one direction's bytes give the same events (and
 *     the same DATA bytes per stream, the same header results) whether
 *     fed whole or in pieces of 1..16 bytes;
 *   - once AP_H2_ERROR, always AP_H2_ERROR, consuming nothing.
 * The input's first byte chooses the side (the client's bytes are
 * prefixed with the preface), the stream whose DATA is reported
 * (data_stream, 0 to 7) and the seed of the cut points.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ap_h2.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_h2: %s\n", what);
	abort();
}

#define MAX_EV 4096

struct evrec {
	uint8_t ev, type;
	uint32_t stream, value, frame_bytes;
	uint16_t status, path_len;
	uint8_t method_len, path_lost, method_lost;
	uint64_t data; /* AP_H2_DATA: bytes since the last other event */
};

struct log {
	size_t n;
	struct evrec e[MAX_EV];
};

static void record(struct log *l, const struct ap_h2 *p, enum ap_h2_ev ev)
{
	if (ev == AP_H2_DATA) {
		/* pieces differ with the cuts: only their sum per run counts */
		if (l->n && l->e[l->n - 1].ev == AP_H2_DATA && l->e[l->n - 1].stream == p->stream) {
			l->e[l->n - 1].data += p->value;
			return;
		}
	}
	if (l->n == MAX_EV)
		return;
	struct evrec *r = &l->e[l->n++];
	memset(r, 0, sizeof *r);
	r->ev = (uint8_t)ev;
	r->stream = p->stream;
	switch (ev) {
	case AP_H2_FRAME:
		r->type = p->type;
		r->frame_bytes = p->frame_bytes;
		break;
	case AP_H2_HEADERS:
		r->status = p->hpack.status;
		r->method_len = p->hpack.method_len;
		r->method_lost = p->hpack.method_lost;
		r->path_len = p->hpack.path_len;
		r->path_lost = p->hpack.path_lost;
		break;
	case AP_H2_DATA:
		r->data = p->value;
		break;
	case AP_H2_RESET:
	case AP_H2_GOAWAY:
	case AP_H2_TABLE_SIZE:
		r->value = p->value;
		break;
	default:
		break;
	}
}

/* Feeds buf[0..len) the way the preload does; returns 1 at AP_H2_ERROR. */
static int feed(struct ap_h2 *p, const uint8_t *buf, size_t len, struct log *l)
{
	int idle = 0;
	for (;;) {
		enum ap_h2_ev ev;
		size_t used = ap_h2_feed(p, buf, len, &ev);
		if (used > len)
			fail("consumed more than given");
		buf += used;
		len -= used;
		if (ev == AP_H2_NEED_MORE) {
			if (len)
				fail("NEED_MORE with bytes left");
			return 0;
		}
		if (ev == AP_H2_ERROR) {
			enum ap_h2_ev again;
			if (ap_h2_feed(p, buf, len, &again) != 0 || again != AP_H2_ERROR)
				fail("an error that is not sticky");
			record(l, p, ev);
			return 1;
		}
		if (ev == AP_H2_DATA && (p->value == 0 || p->stream != p->data_stream))
			fail("DATA of no bytes, or of a stream not asked for");
		idle = used ? 0 : idle + 1;
		if (idle > 2)
			fail("three events in a row without progress");
		record(l, p, ev);
	}
}

/* The next piece's size, 1..16 bytes (xorshift32), at most left. */
static size_t piece(uint32_t *rng, size_t left)
{
	uint32_t x = *rng;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*rng = x;
	return 1 + x % 16 < left ? 1 + x % 16 : left;
}

static struct log whole_log, split_log;
static uint8_t stream[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ap_h2 whole, split;
	if (size < 1 || size > sizeof stream - AP_H2_PREFACE_LEN)
		return 0;
	enum ap_h2_side side = (data[0] & 1) ? AP_H2_FROM_SERVER : AP_H2_FROM_CLIENT;
	uint32_t rng = data[0] * 2654435761u | 1;
	size_t n = 0;
	if (side == AP_H2_FROM_CLIENT) {
		memcpy(stream, AP_H2_PREFACE, AP_H2_PREFACE_LEN);
		n = AP_H2_PREFACE_LEN;
	}
	memcpy(stream + n, data + 1, size - 1);
	n += size - 1;

	ap_h2_init(&whole, side);
	ap_h2_init(&split, side);
	whole.data_stream = split.data_stream = (data[0] >> 1) & 7;
	whole_log.n = split_log.n = 0;
	feed(&whole, stream, n, &whole_log);
	for (size_t i = 0; i < n;) {
		size_t k = piece(&rng, n - i);
		if (feed(&split, stream + i, k, &split_log))
			break;
		i += k;
	}
	if (whole_log.n != split_log.n ||
	    memcmp(whole_log.e, split_log.e, whole_log.n * sizeof whole_log.e[0]) != 0)
		fail("split and whole differ");
	return 0;
}

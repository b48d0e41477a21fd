/* Unit tests for shared/h2.c: HTTP/2 framing, one direction at a time.
 * Every case is a byte string and the events it must give, as text; each
 * is fed whole, one byte at a time, and in seeded random splits, and must
 * give the same events. Header blocks use HPACK's static table and plain
 * literals only: shared/hpack.c has its own suite. */
#include "config.h"
#include "check_suites.h"
#include "ap_h2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A frame: 9-byte header then payload, appended to out. */
static size_t frame(uint8_t *out, uint8_t type, uint8_t flags, uint32_t sid,
                    const void *payload, size_t len)
{
	out[0] = (uint8_t)(len >> 16);
	out[1] = (uint8_t)(len >> 8);
	out[2] = (uint8_t)len;
	out[3] = type;
	out[4] = flags;
	out[5] = (uint8_t)(sid >> 24);
	out[6] = (uint8_t)(sid >> 16);
	out[7] = (uint8_t)(sid >> 8);
	out[8] = (uint8_t)sid;
	memcpy(out + 9, payload, len);
	return 9 + len;
}

enum { END_STREAM = 1, END_HEADERS = 4, PADDED = 8, PRIO = 0x20 };

/* Events of one parser as text: "F1/9" a frame of type 1 on stream 9,
 * "H9 GET /x" a header block (method path, or "S200" for :status),
 * "E9" END_STREAM, "R9:8" a reset, "G7:0" GOAWAY, "T4096" a table size,
 * "X" an error (and nothing after it). */
static void trace_event(char *t, size_t cap, const struct ap_h2 *p, enum ap_h2_ev ev)
{
	size_t n = strlen(t);
	switch (ev) {
	case AP_H2_FRAME:
		snprintf(t + n, cap - n, "F%u/%u/%u ", p->type, p->stream, p->frame_bytes);
		break;
	case AP_H2_HEADERS:
		if (p->hpack.status)
			snprintf(t + n, cap - n, "H%u S%u ", p->stream, p->hpack.status);
		else
			snprintf(t + n, cap - n, "H%u %.*s %.*s ", p->stream, p->hpack.method_len,
			         p->hpack.method, p->hpack.path_len, p->hpack.path);
		break;
	case AP_H2_END_STREAM:
		snprintf(t + n, cap - n, "E%u ", p->stream);
		break;
	case AP_H2_RESET:
		snprintf(t + n, cap - n, "R%u:%u ", p->stream, p->value);
		break;
	case AP_H2_GOAWAY:
		snprintf(t + n, cap - n, "G%u:%u ", p->stream, p->value);
		break;
	case AP_H2_TABLE_SIZE:
		snprintf(t + n, cap - n, "T%u ", p->value);
		break;
	case AP_H2_DATA: {
		/* "D1:4": 4 data bytes on stream 1, however they were split */
		unsigned sid, got;
		const char *last = n >= 2 ? t + n - 2 : t;
		while (last > t && last[-1] != ' ')
			last--;
		if (sscanf(last, "D%u:%u ", &sid, &got) == 2 && sid == p->stream)
			snprintf((char *)last, cap - (size_t)(last - t), "D%u:%u ", sid, got + p->value);
		else
			snprintf(t + n, cap - n, "D%u:%u ", p->stream, p->value);
		break;
	}
	case AP_H2_ERROR:
		snprintf(t + n, cap - n, "X ");
		break;
	default:
		break;
	}
}

/* Feeds buf in pieces of the sizes next_piece() picks; returns the trace. */
static void run(enum ap_h2_side side, const uint8_t *buf, size_t len, int mode, unsigned seed,
                char *t, size_t cap)
{
	static struct ap_h2 p; /* large: the HPACK mirror */
	ap_h2_init(&p, side);
	if (side == AP_H2_FROM_SERVER)
		p.data_stream = 1; /* stream 1's DATA is reported (D1:n) */
	t[0] = '\0';
	srand(seed);
	size_t off = 0;
	while (off < len) {
		size_t piece = mode == 0 ? len - off : mode == 1 ? 1 : 1 + (size_t)rand() % 23;
		if (piece > len - off)
			piece = len - off;
		const uint8_t *q = buf + off;
		size_t n = piece;
		off += piece;
		for (;;) {
			enum ap_h2_ev ev;
			size_t used = ap_h2_feed(&p, q, n, &ev);
			ck_assert_uint_le(used, n);
			q += used;
			n -= used;
			if (ev == AP_H2_NEED_MORE) {
				ck_assert_uint_eq(n, 0);
				break;
			}
			trace_event(t, cap, &p, ev);
			if (ev == AP_H2_ERROR)
				return;
		}
	}
}

/* buf must give `want` whole, byte by byte and in 50 random splits. */
static void check_all_splits(enum ap_h2_side side, const uint8_t *buf, size_t len,
                             const char *want)
{
	char t[4096];
	run(side, buf, len, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, want);
	run(side, buf, len, 1, 0, t, sizeof t);
	ck_assert_str_eq(t, want);
	for (unsigned seed = 1; seed <= 50; seed++) {
		run(side, buf, len, 2, seed, t, sizeof t);
		ck_assert_str_eq(t, want);
	}
}

static size_t preface(uint8_t *out)
{
	memcpy(out, AP_H2_PREFACE, AP_H2_PREFACE_LEN);
	return AP_H2_PREFACE_LEN;
}

/* :method GET, :scheme http, :path "/a/b?q=1" (literal, static name 4) */
static const uint8_t get_ab[] = { 0x82, 0x86, 0x04, 0x08, '/', 'a', '/', 'b', '?', 'q', '=', '1' };

START_TEST(test_client_basic)
{
	uint8_t b[512];
	size_t n = preface(b);
	/* SETTINGS: HEADER_TABLE_SIZE 8192, MAX_CONCURRENT_STREAMS 100 */
	const uint8_t set[] = { 0, 1, 0, 0, 0x20, 0, 0, 3, 0, 0, 0, 100 };
	n += frame(b + n, 4, 0, 0, set, sizeof set);
	n += frame(b + n, 8, 0, 0, "\0\0\1\0", 4); /* WINDOW_UPDATE */
	n += frame(b + n, 1, END_HEADERS | END_STREAM, 1, get_ab, sizeof get_ab);
	/* POST / with a body in two DATA frames, the second padded */
	const uint8_t post[] = { 0x83, 0x86, 0x84 };
	n += frame(b + n, 1, END_HEADERS, 3, post, sizeof post);
	n += frame(b + n, 0, 0, 3, "hello", 5);
	const uint8_t padded[] = { 2, 'x', 'y', 0, 0 };
	n += frame(b + n, 0, PADDED | END_STREAM, 3, padded, sizeof padded);
	n += frame(b + n, 3, 0, 5, "\0\0\0\x08", 4); /* RST_STREAM CANCEL */
	n += frame(b + n, 6, 0, 0, "12345678", 8);   /* PING */
	n += frame(b + n, 7, 0, 0, "\0\0\0\x03\0\0\0\0debug", 13); /* GOAWAY */
	check_all_splits(AP_H2_FROM_CLIENT, b, n,
	                 "F4/0/21 T8192 F8/0/13 F1/1/21 H1 GET /a/b?q=1 E1 "
	                 "F1/3/12 H3 POST / F0/3/14 F0/3/14 E3 F3/5/13 R5:8 "
	                 "F6/0/17 F7/0/22 G3:0 ");
}
END_TEST

START_TEST(test_continuation_padding_priority)
{
	uint8_t b[512];
	size_t n = preface(b);
	/* HEADERS, PADDED and PRIORITY, block split over two CONTINUATIONs */
	uint8_t h[64];
	size_t hn = 0;
	h[hn++] = 3;                      /* pad length */
	memcpy(h + hn, "\x80\0\0\x01\x10", 5); /* exclusive dep on 1, weight */
	hn += 5;
	h[hn++] = 0x82;                   /* :method GET */
	h[hn++] = 0x04;                   /* :path, literal value ... */
	memset(h + hn, 0, 3);             /* ... in the next frame; padding */
	hn += 3;
	n += frame(b + n, 1, PADDED | PRIO | END_STREAM, 7, h, hn);
	const uint8_t c1[] = { 0x03, '/', 'x' };
	n += frame(b + n, 9, 0, 7, c1, sizeof c1);
	const uint8_t c2[] = { 'y', 0x86 };
	n += frame(b + n, 9, END_HEADERS, 7, c2, sizeof c2);
	check_all_splits(AP_H2_FROM_CLIENT, b, n,
	                 "F1/7/20 F9/7/12 F9/7/11 H7 GET /xy E7 ");
}
END_TEST

START_TEST(test_server_side)
{
	uint8_t b[512];
	size_t n = 0;
	n += frame(b + n, 4, 0, 0, "\0\1\0\0\x10\0", 6); /* HEADER_TABLE_SIZE 4096 */
	n += frame(b + n, 4, 1, 0, "", 0);                /* ACK */
	const uint8_t st100[] = { 0x08, 0x03, '1', '0', '0' }; /* :status 100 literal */
	n += frame(b + n, 1, END_HEADERS, 1, st100, sizeof st100);
	n += frame(b + n, 1, END_HEADERS, 1, "\x88", 1);       /* :status 200 */
	n += frame(b + n, 0, 0, 1, "body", 4);
	n += frame(b + n, 0, END_STREAM | PADDED, 1, "\x02ok\0\0", 5);
	n += frame(b + n, 0, 0, 3, "unwanted", 8); /* stream 3: not reported */
	/* a push promise (not reported), then a 404 ending in its HEADERS */
	const uint8_t pp[] = { 0, 0, 0, 2, 0x82, 0x84 };
	n += frame(b + n, 5, END_HEADERS, 1, pp, sizeof pp);
	n += frame(b + n, 1, END_HEADERS | END_STREAM, 3, "\x8d", 1); /* :status 404 */
	n += frame(b + n, 3, 0, 5, "\0\0\0\x02", 4);
	check_all_splits(AP_H2_FROM_SERVER, b, n,
	                 "F4/0/15 T4096 F4/0/9 F1/1/14 H1 S100 F1/1/10 H1 S200 F0/1/13 D1:4 "
	                 "F0/1/14 D1:2 E1 F0/3/17 F5/1/15 F1/3/10 H3 S404 E3 F3/5/13 R5:2 ");
}
END_TEST

START_TEST(test_errors)
{
	uint8_t b[512];
	size_t n;
	char t[1024];

	/* not the preface */
	memcpy(b, "GET / HTTP/1.1\r\n\r\n", 18);
	run(AP_H2_FROM_CLIENT, b, 18, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "X ");

	/* CONTINUATION without a block */
	n = preface(b);
	n += frame(b + n, 9, END_HEADERS, 1, "\x82", 1);
	run(AP_H2_FROM_CLIENT, b, n, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "X ");

	/* a block interrupted by another frame */
	n = preface(b);
	n += frame(b + n, 1, 0, 1, "\x82", 1);
	n += frame(b + n, 0, 0, 1, "x", 1);
	run(AP_H2_FROM_CLIENT, b, n, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "F1/1/10 X ");

	/* CONTINUATION on another stream */
	n = preface(b);
	n += frame(b + n, 1, 0, 1, "\x82", 1);
	n += frame(b + n, 9, END_HEADERS, 3, "\x84", 1);
	run(AP_H2_FROM_CLIENT, b, n, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "F1/1/10 X ");

	/* RST_STREAM of 3 bytes, SETTINGS of 5 */
	n = frame(b, 3, 0, 1, "\0\0\0", 3);
	run(AP_H2_FROM_SERVER, b, n, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "X ");
	n = frame(b, 4, 0, 0, "\0\1\0\0\0", 5);
	run(AP_H2_FROM_SERVER, b, n, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "X ");

	/* padding longer than the frame */
	n = frame(b, 1, PADDED | END_HEADERS, 1, "\x09\x88", 2);
	run(AP_H2_FROM_SERVER, b, n, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "F1/1/11 X ");

	/* a frame shorter than its fixed front part (HEADERS with PRIORITY
	 * needs 5 bytes, PUSH_PROMISE 4): an error, not a read past the
	 * frame's end into the next one's header as if it were the front */
	n = frame(b, 1, PRIO | END_HEADERS, 1, "\x88\x88\x88", 3);
	n += frame(b + n, 1, END_HEADERS | END_STREAM, 3, "\x88", 1);
	run(AP_H2_FROM_SERVER, b, n, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "X ");
	n = frame(b, 5, END_HEADERS, 1, "\0\0", 2);
	n += frame(b + n, 1, END_HEADERS | END_STREAM, 3, "\x88", 1);
	run(AP_H2_FROM_SERVER, b, n, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "X ");

	/* HPACK errors surface: index 0, and a block cut mid-field */
	n = frame(b, 1, END_HEADERS, 1, "\x80", 1);
	run(AP_H2_FROM_SERVER, b, n, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "F1/1/10 X ");
	n = frame(b, 1, END_HEADERS, 1, "\x04\x05/ab", 4);
	run(AP_H2_FROM_SERVER, b, n, 0, 0, t, sizeof t);
	ck_assert_str_eq(t, "F1/1/13 X ");

	/* sticky */
	struct ap_h2 *p = malloc(sizeof *p);
	ap_h2_init(p, AP_H2_FROM_CLIENT);
	enum ap_h2_ev ev;
	ap_h2_feed(p, (const uint8_t *)"XYZ", 3, &ev);
	ck_assert_int_eq(ev, AP_H2_ERROR);
	size_t used = ap_h2_feed(p, (const uint8_t *)AP_H2_PREFACE, AP_H2_PREFACE_LEN, &ev);
	ck_assert_int_eq(ev, AP_H2_ERROR);
	ck_assert_uint_eq(used, 0);
	free(p);
}
END_TEST

START_TEST(test_preface_prefix)
{
	ck_assert_int_eq(ap_h2_is_preface((const uint8_t *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nxx", 26), 1);
	ck_assert_int_eq(ap_h2_is_preface((const uint8_t *)"PRI * HT", 8), 1);
	ck_assert_int_eq(ap_h2_is_preface((const uint8_t *)"P", 1), 1);
	ck_assert_int_eq(ap_h2_is_preface((const uint8_t *)"POST / HTTP/1.1", 15), 0);
	ck_assert_int_eq(ap_h2_is_preface((const uint8_t *)"PRI * HTTP/1.1", 14), 0);
}
END_TEST

/* The dynamic table is kept across header blocks: a later block that
 * names an earlier one's :path by index reads it back. */
START_TEST(test_table_across_blocks)
{
	uint8_t b[512];
	size_t n = preface(b);
	/* literal with incremental indexing, name :path (static 4) */
	const uint8_t first[] = { 0x82, 0x44, 0x04, '/', 'a', 'p', 'i' };
	n += frame(b + n, 1, END_HEADERS | END_STREAM, 1, first, sizeof first);
	/* :method GET, then dynamic index 62: the newest entry */
	const uint8_t second[] = { 0x82, 0xbe };
	n += frame(b + n, 1, END_HEADERS | END_STREAM, 3, second, sizeof second);
	check_all_splits(AP_H2_FROM_CLIENT, b, n,
	                 "F1/1/16 H1 GET /api E1 F1/3/11 H3 GET /api E3 ");
}
END_TEST

Suite *h2_suite(void)
{
	Suite *s = suite_create("h2");
	TCase *tc = tcase_create("framing");
	tcase_add_test(tc, test_client_basic);
	tcase_add_test(tc, test_continuation_padding_priority);
	tcase_add_test(tc, test_server_side);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_preface_prefix);
	tcase_add_test(tc, test_table_across_blocks);
	suite_add_tcase(s, tc);
	return s;
}

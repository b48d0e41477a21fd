/*
 * check_hpack.c - the streaming HPACK decoder (shared/hpack.c).
 *
 * Every sequence of header blocks is decoded with a fresh decoder once per
 * way of splitting the bytes (whole, one byte at a time, random pieces
 * under several fixed seeds), and each way must give the results the
 * sequence states after every block: :method, :path, :status, the lost and
 * truncated flags, and the dynamic table's size. Each piece is copied to
 * the very end of a heap buffer of its own size, so AddressSanitizer
 * catches any read past the n the decoder was given.
 *
 * The vectors: RFC 7541 Appendix C (C.2 to C.6, with the table sizes the
 * RFC states), blocks made by python3-hpack's Encoder (4.0.0) and decoded
 * by its Decoder for the expected results (the bytes are pasted here: the
 * test needs no Python), and blocks built here by a small encoder that
 * uses the Huffman code table as RFC 7541 Appendix B prints it (code and
 * length per symbol, not the decoder's canonical tables).
 */
#include "config.h"
#include "check_suites.h"
#include "ap_hpack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ck_assert_* report every passing assertion to the parent process; the
 * loops over splits and bytes use this, which costs only on failure. */
#define CHECK(cond) \
	do { \
		if (!(cond)) \
			ck_abort_msg("%s:%d: assertion failed: %s", __FILE__, __LINE__, #cond); \
	} while (0)

/* --- a small HPACK encoder ------------------------------------------------ */

static const struct { uint32_t code; uint8_t len; } huff_code[257] = {
	{ 0x1ff8, 13 }, { 0x7fffd8, 23 }, { 0xfffffe2, 28 }, { 0xfffffe3, 28 },
	{ 0xfffffe4, 28 }, { 0xfffffe5, 28 }, { 0xfffffe6, 28 }, { 0xfffffe7, 28 },
	{ 0xfffffe8, 28 }, { 0xffffea, 24 }, { 0x3ffffffc, 30 }, { 0xfffffe9, 28 },
	{ 0xfffffea, 28 }, { 0x3ffffffd, 30 }, { 0xfffffeb, 28 }, { 0xfffffec, 28 },
	{ 0xfffffed, 28 }, { 0xfffffee, 28 }, { 0xfffffef, 28 }, { 0xffffff0, 28 },
	{ 0xffffff1, 28 }, { 0xffffff2, 28 }, { 0x3ffffffe, 30 }, { 0xffffff3, 28 },
	{ 0xffffff4, 28 }, { 0xffffff5, 28 }, { 0xffffff6, 28 }, { 0xffffff7, 28 },
	{ 0xffffff8, 28 }, { 0xffffff9, 28 }, { 0xffffffa, 28 }, { 0xffffffb, 28 },
	{ 0x14, 6 }, { 0x3f8, 10 }, { 0x3f9, 10 }, { 0xffa, 12 },
	{ 0x1ff9, 13 }, { 0x15, 6 }, { 0xf8, 8 }, { 0x7fa, 11 },
	{ 0x3fa, 10 }, { 0x3fb, 10 }, { 0xf9, 8 }, { 0x7fb, 11 },
	{ 0xfa, 8 }, { 0x16, 6 }, { 0x17, 6 }, { 0x18, 6 },
	{ 0x0, 5 }, { 0x1, 5 }, { 0x2, 5 }, { 0x19, 6 },
	{ 0x1a, 6 }, { 0x1b, 6 }, { 0x1c, 6 }, { 0x1d, 6 },
	{ 0x1e, 6 }, { 0x1f, 6 }, { 0x5c, 7 }, { 0xfb, 8 },
	{ 0x7ffc, 15 }, { 0x20, 6 }, { 0xffb, 12 }, { 0x3fc, 10 },
	{ 0x1ffa, 13 }, { 0x21, 6 }, { 0x5d, 7 }, { 0x5e, 7 },
	{ 0x5f, 7 }, { 0x60, 7 }, { 0x61, 7 }, { 0x62, 7 },
	{ 0x63, 7 }, { 0x64, 7 }, { 0x65, 7 }, { 0x66, 7 },
	{ 0x67, 7 }, { 0x68, 7 }, { 0x69, 7 }, { 0x6a, 7 },
	{ 0x6b, 7 }, { 0x6c, 7 }, { 0x6d, 7 }, { 0x6e, 7 },
	{ 0x6f, 7 }, { 0x70, 7 }, { 0x71, 7 }, { 0x72, 7 },
	{ 0xfc, 8 }, { 0x73, 7 }, { 0xfd, 8 }, { 0x1ffb, 13 },
	{ 0x7fff0, 19 }, { 0x1ffc, 13 }, { 0x3ffc, 14 }, { 0x22, 6 },
	{ 0x7ffd, 15 }, { 0x3, 5 }, { 0x23, 6 }, { 0x4, 5 },
	{ 0x24, 6 }, { 0x5, 5 }, { 0x25, 6 }, { 0x26, 6 },
	{ 0x27, 6 }, { 0x6, 5 }, { 0x74, 7 }, { 0x75, 7 },
	{ 0x28, 6 }, { 0x29, 6 }, { 0x2a, 6 }, { 0x7, 5 },
	{ 0x2b, 6 }, { 0x76, 7 }, { 0x2c, 6 }, { 0x8, 5 },
	{ 0x9, 5 }, { 0x2d, 6 }, { 0x77, 7 }, { 0x78, 7 },
	{ 0x79, 7 }, { 0x7a, 7 }, { 0x7b, 7 }, { 0x7ffe, 15 },
	{ 0x7fc, 11 }, { 0x3ffd, 14 }, { 0x1ffd, 13 }, { 0xffffffc, 28 },
	{ 0xfffe6, 20 }, { 0x3fffd2, 22 }, { 0xfffe7, 20 }, { 0xfffe8, 20 },
	{ 0x3fffd3, 22 }, { 0x3fffd4, 22 }, { 0x3fffd5, 22 }, { 0x7fffd9, 23 },
	{ 0x3fffd6, 22 }, { 0x7fffda, 23 }, { 0x7fffdb, 23 }, { 0x7fffdc, 23 },
	{ 0x7fffdd, 23 }, { 0x7fffde, 23 }, { 0xffffeb, 24 }, { 0x7fffdf, 23 },
	{ 0xffffec, 24 }, { 0xffffed, 24 }, { 0x3fffd7, 22 }, { 0x7fffe0, 23 },
	{ 0xffffee, 24 }, { 0x7fffe1, 23 }, { 0x7fffe2, 23 }, { 0x7fffe3, 23 },
	{ 0x7fffe4, 23 }, { 0x1fffdc, 21 }, { 0x3fffd8, 22 }, { 0x7fffe5, 23 },
	{ 0x3fffd9, 22 }, { 0x7fffe6, 23 }, { 0x7fffe7, 23 }, { 0xffffef, 24 },
	{ 0x3fffda, 22 }, { 0x1fffdd, 21 }, { 0xfffe9, 20 }, { 0x3fffdb, 22 },
	{ 0x3fffdc, 22 }, { 0x7fffe8, 23 }, { 0x7fffe9, 23 }, { 0x1fffde, 21 },
	{ 0x7fffea, 23 }, { 0x3fffdd, 22 }, { 0x3fffde, 22 }, { 0xfffff0, 24 },
	{ 0x1fffdf, 21 }, { 0x3fffdf, 22 }, { 0x7fffeb, 23 }, { 0x7fffec, 23 },
	{ 0x1fffe0, 21 }, { 0x1fffe1, 21 }, { 0x3fffe0, 22 }, { 0x1fffe2, 21 },
	{ 0x7fffed, 23 }, { 0x3fffe1, 22 }, { 0x7fffee, 23 }, { 0x7fffef, 23 },
	{ 0xfffea, 20 }, { 0x3fffe2, 22 }, { 0x3fffe3, 22 }, { 0x3fffe4, 22 },
	{ 0x7ffff0, 23 }, { 0x3fffe5, 22 }, { 0x3fffe6, 22 }, { 0x7ffff1, 23 },
	{ 0x3ffffe0, 26 }, { 0x3ffffe1, 26 }, { 0xfffeb, 20 }, { 0x7fff1, 19 },
	{ 0x3fffe7, 22 }, { 0x7ffff2, 23 }, { 0x3fffe8, 22 }, { 0x1ffffec, 25 },
	{ 0x3ffffe2, 26 }, { 0x3ffffe3, 26 }, { 0x3ffffe4, 26 }, { 0x7ffffde, 27 },
	{ 0x7ffffdf, 27 }, { 0x3ffffe5, 26 }, { 0xfffff1, 24 }, { 0x1ffffed, 25 },
	{ 0x7fff2, 19 }, { 0x1fffe3, 21 }, { 0x3ffffe6, 26 }, { 0x7ffffe0, 27 },
	{ 0x7ffffe1, 27 }, { 0x3ffffe7, 26 }, { 0x7ffffe2, 27 }, { 0xfffff2, 24 },
	{ 0x1fffe4, 21 }, { 0x1fffe5, 21 }, { 0x3ffffe8, 26 }, { 0x3ffffe9, 26 },
	{ 0xffffffd, 28 }, { 0x7ffffe3, 27 }, { 0x7ffffe4, 27 }, { 0x7ffffe5, 27 },
	{ 0xfffec, 20 }, { 0xfffff3, 24 }, { 0xfffed, 20 }, { 0x1fffe6, 21 },
	{ 0x3fffe9, 22 }, { 0x1fffe7, 21 }, { 0x1fffe8, 21 }, { 0x7ffff3, 23 },
	{ 0x3fffea, 22 }, { 0x3fffeb, 22 }, { 0x1ffffee, 25 }, { 0x1ffffef, 25 },
	{ 0xfffff4, 24 }, { 0xfffff5, 24 }, { 0x3ffffea, 26 }, { 0x7ffff4, 23 },
	{ 0x3ffffeb, 26 }, { 0x7ffffe6, 27 }, { 0x3ffffec, 26 }, { 0x3ffffed, 26 },
	{ 0x7ffffe7, 27 }, { 0x7ffffe8, 27 }, { 0x7ffffe9, 27 }, { 0x7ffffea, 27 },
	{ 0x7ffffeb, 27 }, { 0xffffffe, 28 }, { 0x7ffffec, 27 }, { 0x7ffffed, 27 },
	{ 0x7ffffee, 27 }, { 0x7ffffef, 27 }, { 0x7fffff0, 27 }, { 0x3ffffee, 26 },
	{ 0x3fffffff, 30 },
};

#define EOS 256

/* Header-block bytes being built. */
struct enc {
	uint8_t b[32768];
	size_t n;
};

static struct enc *enc_new(void)
{
	struct enc *e = calloc(1, sizeof *e);
	ck_assert_ptr_nonnull(e);
	return e;
}

static void put_byte(struct enc *e, unsigned v)
{
	CHECK(e->n < sizeof e->b);
	e->b[e->n++] = (uint8_t)v;
}

/* An integer with a prefix-bit prefix after the pattern bits `flags`
 * (RFC 7541 5.1). */
static void put_int(struct enc *e, unsigned flags, unsigned prefix, uint64_t v)
{
	uint64_t max = (1u << prefix) - 1;
	if (v < max) {
		put_byte(e, flags | (unsigned)v);
		return;
	}
	put_byte(e, flags | (unsigned)max);
	v -= max;
	while (v >= 128) {
		put_byte(e, 0x80 | (unsigned)(v & 127));
		v >>= 7;
	}
	put_byte(e, (unsigned)v);
}

/* The Huffman code of s (5.2), padded with ones; *bits: its length in bits
 * before the padding. */
static size_t huff_encode(const uint8_t *s, size_t n, uint8_t *out, size_t cap)
{
	uint64_t acc = 0;
	unsigned have = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		acc = acc << huff_code[s[i]].len | huff_code[s[i]].code;
		have += huff_code[s[i]].len;
		while (have >= 8) {
			CHECK(o < cap);
			out[o++] = (uint8_t)(acc >> (have - 8));
			have -= 8;
		}
	}
	if (have > 0) {
		CHECK(o < cap);
		out[o++] = (uint8_t)((acc << (8 - have)) | ((1u << (8 - have)) - 1));
	}
	return o;
}

/* A string literal (5.2), Huffman-coded or not. */
static void put_str(struct enc *e, const void *s, size_t n, int huff)
{
	if (!huff) {
		put_int(e, 0x00, 7, n);
		CHECK(e->n + n <= sizeof e->b);
		memcpy(e->b + e->n, s, n);
		e->n += n;
		return;
	}
	static uint8_t tmp[16384];
	size_t m = huff_encode(s, n, tmp, sizeof tmp);
	put_int(e, 0x80, 7, m);
	CHECK(e->n + m <= sizeof e->b);
	memcpy(e->b + e->n, tmp, m);
	e->n += m;
}

static void put_indexed(struct enc *e, uint32_t index)
{
	put_int(e, 0x80, 7, index);
}

static void put_size_update(struct enc *e, uint64_t size)
{
	put_int(e, 0x20, 5, size);
}

/* Literal representations (6.2): with incremental indexing, without
 * indexing, never indexed. */
#define INC 0x40
#define NOIDX 0x00
#define NEVER 0x10

/* A literal field whose name is entry name_index. */
static void put_lit(struct enc *e, unsigned rep, uint32_t name_index, const void *v, size_t n, int huff)
{
	put_int(e, rep, rep == INC ? 6 : 4, name_index);
	put_str(e, v, n, huff);
}

/* A literal field with a literal name. */
static void put_lit_name(struct enc *e, unsigned rep, const char *name, const void *v, size_t n, int huff)
{
	put_int(e, rep, rep == INC ? 6 : 4, 0);
	put_str(e, name, strlen(name), huff);
	put_str(e, v, n, huff);
}

/* Static entries used below */
#define ST_METHOD_GET 2
#define ST_PATH 4
#define ST_STATUS_200 8
#define ST_STATUS 8
#define ST_CACHE_CONTROL 24
#define DYN(age) (62 + (age)) /* the dynamic entry inserted age insertions before the newest */

/* --- splitting ---------------------------------------------------------------- */

static const uint32_t seeds[] = { 1, 7, 42, 1234, 99991 };
#define NSPLITS (2 + (int)(sizeof seeds / sizeof seeds[0]))

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Feeds p[0..n) split the way-th way (0 whole, 1 bytes, then the seeds),
 * now and then with an empty feed; 0, or -1 from the first failing feed,
 * after which every later feed must fail as well (sticky). */
static int feed_split(struct ap_hpack *h, const uint8_t *p, size_t n, int way, uint32_t *rng)
{
	int rc = 0;
	size_t off = 0;
	do {
		size_t k = n - off;
		if (way == 1 && k > 1)
			k = 1;
		else if (way >= 2) {
			uint32_t r = rnd(rng);
			size_t cap = (r & 7) == 0 ? 600 : (r & 1) ? 3 : 17;
			k = (r >> 8) % (cap + 1); /* 0 sometimes: an empty feed */
			if (k > n - off)
				k = n - off;
		}
		uint8_t *piece = malloc(k ? k : 1);
		ck_assert_ptr_nonnull(piece);
		memcpy(piece, p + off, k);
		int r = ap_hpack_feed(h, piece, k);
		free(piece);
		if (rc < 0)
			CHECK(r < 0);
		rc = r < 0 ? -1 : rc;
		off += k;
	} while (off < n);
	return rc;
}

/* --- expectations ------------------------------------------------------------- */

/* What a block must give. path: NULL with path_lost 0: no :path; path_len
 * 0: strlen(path). size: the table's size after it, -1 not checked. */
struct want {
	int rc;
	const char *method;
	const char *path;
	int status;
	long size;
	int method_lost, path_lost, path_truncated;
	size_t path_len;
};

static void check_results(const struct ap_hpack *h, const struct want *w, const char *what, int way, size_t blk)
{
	char at[160];
	snprintf(at, sizeof at, "%s block %zu split %d", what, blk, way);
	size_t ml = w->method ? strlen(w->method) : 0;
	ck_assert_msg(h->method_len == ml && memcmp(h->method, w->method ? w->method : "", ml) == 0,
	              "%s: method '%.*s', want '%s'", at, (int)h->method_len, h->method, w->method ? w->method : "");
	ck_assert_msg(h->method_lost == w->method_lost, "%s: method_lost %d", at, h->method_lost);
	ck_assert_msg(h->path_seen == (w->path != NULL || w->path_lost), "%s: path_seen %d", at, h->path_seen);
	ck_assert_msg(h->path_lost == w->path_lost, "%s: path_lost %d", at, h->path_lost);
	ck_assert_msg(h->path_truncated == w->path_truncated, "%s: path_truncated %d", at, h->path_truncated);
	if (w->path) {
		size_t pl = w->path_len ? w->path_len : strlen(w->path);
		ck_assert_msg(h->path_len == pl && memcmp(h->path, w->path, pl) == 0,
		              "%s: path '%.*s' (%u bytes), want %zu bytes", at, (int)h->path_len, h->path,
		              h->path_len, pl);
	} else {
		ck_assert_msg(h->path_len == 0, "%s: path_len %u", at, h->path_len);
	}
	ck_assert_msg(h->status == w->status, "%s: status %u, want %d", at, h->status, w->status);
	if (w->size >= 0)
		ck_assert_msg(ap_hpack_table_size(h) == (size_t)w->size, "%s: table size %zu, want %ld", at,
		              ap_hpack_table_size(h), w->size);
}

/* One block's bytes. */
struct bytes {
	const uint8_t *p;
	size_t n;
};

/* Decodes the n blocks with a fresh decoder (limit: its
 * SETTINGS_HEADER_TABLE_SIZE, 0 the default), once per split, checking
 * each block against w[]. A failing block must leave the decoder failing
 * (sticky) and ends the sequence. */
static void run_blocks(const char *what, uint32_t limit, const struct bytes *b, const struct want *w, size_t n)
{
	struct ap_hpack *h = malloc(sizeof *h);
	ck_assert_ptr_nonnull(h);
	for (int way = 0; way < NSPLITS; way++) {
		uint32_t rng = way >= 2 ? seeds[way - 2] : 0;
		ap_hpack_init(h);
		if (limit)
			ap_hpack_set_limit(h, limit);
		for (size_t i = 0; i < n; i++) {
			ap_hpack_block_begin(h);
			int rc = feed_split(h, b[i].p, b[i].n, way, &rng);
			int end = ap_hpack_block_end(h);
			if (rc < 0)
				CHECK(end < 0);
			ck_assert_msg((end < 0 ? -1 : 0) == w[i].rc, "%s block %zu split %d: rc %d, want %d", what, i,
			              way, end, w[i].rc);
			if (end < 0) {
				static const uint8_t get[] = { 0x82 };
				ap_hpack_block_begin(h);
				CHECK(ap_hpack_feed(h, get, 1) < 0);
				CHECK(ap_hpack_block_end(h) < 0);
				break;
			}
			check_results(h, &w[i], what, way, i);
		}
	}
	free(h);
}

/* Hex (spaces ignored) to bytes; the caller frees. */
static uint8_t *unhex(const char *hex, size_t *n)
{
	uint8_t *out = malloc(strlen(hex) / 2 + 1);
	ck_assert_ptr_nonnull(out);
	size_t o = 0;
	int hi = -1;
	for (const char *s = hex; *s; s++) {
		int v;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else
			continue;
		if (hi < 0)
			hi = v;
		else {
			out[o++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	CHECK(hi < 0);
	*n = o;
	return out;
}

/* A block given as hex, with what it must give. */
struct vec {
	const char *hex;
	struct want w;
};

static void run_vecs(const char *what, uint32_t limit, const struct vec *v, size_t n)
{
	struct bytes b[16] = { { 0 } };
	struct want w[16] = { { 0 } };
	CHECK(n <= 16);
	for (size_t i = 0; i < n; i++) {
		b[i].p = unhex(v[i].hex, &b[i].n);
		w[i] = v[i].w;
	}
	run_blocks(what, limit, b, w, n);
	for (size_t i = 0; i < n; i++)
		free((void *)b[i].p);
}

#define RUN_VECS(limit, v) run_vecs(#v, limit, v, sizeof v / sizeof v[0])

/* A sequence of blocks built with the encoder above. */
struct seq {
	struct enc *e[16];
	struct want w[16];
	size_t n;
};

static struct enc *seq_block(struct seq *s, struct want w)
{
	CHECK(s->n < 16);
	s->e[s->n] = enc_new();
	s->w[s->n] = w;
	return s->e[s->n++];
}

static void seq_run(const char *what, uint32_t limit, struct seq *s)
{
	struct bytes b[16] = { { 0 } };
	for (size_t i = 0; i < s->n; i++) {
		b[i].p = s->e[i]->b;
		b[i].n = s->e[i]->n;
	}
	run_blocks(what, limit, b, s->w, s->n);
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i]);
	s->n = 0;
}

/* --- RFC 7541 Appendix C ------------------------------------------------------- */

/* A block's results: :method, :path, :status and the table's size after
 * it; WANT() the same as an expression. */
#define W(m, p, st, sz) { 0, m, p, st, sz, 0, 0, 0, 0 }
#define WANT(m, p, st, sz) ((struct want)W(m, p, st, sz))

START_TEST(test_rfc_c2)
{
	/* C.2.1 literal with indexing, C.2.2 without indexing, C.2.3 never
	 * indexed, C.2.4 indexed: each on a fresh decoder */
	static const struct vec c21[] = {
		{ "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
		  W(NULL, NULL, 0, 55) },
	};
	static const struct vec c22[] = {
		{ "040c 2f73 616d 706c 652f 7061 7468", W(NULL, "/sample/path", 0, 0) },
	};
	static const struct vec c23[] = {
		{ "1008 7061 7373 776f 7264 0673 6563 7265 74", W(NULL, NULL, 0, 0) },
	};
	static const struct vec c24[] = {
		{ "82", W("GET", NULL, 0, 0) },
	};
	RUN_VECS(0, c21);
	RUN_VECS(0, c22);
	RUN_VECS(0, c23);
	RUN_VECS(0, c24);
}
END_TEST

START_TEST(test_rfc_c3)
{
	static const struct vec c3[] = {
		{ "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", W("GET", "/", 0, 57) },
		{ "8286 84be 5808 6e6f 2d63 6163 6865", W("GET", "/", 0, 110) },
		{ "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
		  W("GET", "/index.html", 0, 164) },
	};
	RUN_VECS(0, c3);
}
END_TEST

START_TEST(test_rfc_c4)
{
	static const struct vec c4[] = {
		{ "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", W("GET", "/", 0, 57) },
		{ "8286 84be 5886 a8eb 1064 9cbf", W("GET", "/", 0, 110) },
		{ "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
		  W("GET", "/index.html", 0, 164) },
	};
	RUN_VECS(0, c4);
}
END_TEST

START_TEST(test_rfc_c5)
{
	/* responses with a 256-byte table: :status 302 and 307 are inserted,
	 * the second evicting the first, the third block evicts two more */
	static const struct vec c5[] = {
		{ "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032"
		  "303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65"
		  "2e63 6f6d",
		  W(NULL, NULL, 302, 222) },
		{ "4803 3330 37c1 c0bf", W(NULL, NULL, 307, 222) },
		{ "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0"
		  "5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541"
		  "5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
		  W(NULL, NULL, 200, 215) },
	};
	RUN_VECS(256, c5);
}
END_TEST

START_TEST(test_rfc_c6)
{
	static const struct vec c6[] = {
		{ "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6"
		  "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
		  W(NULL, NULL, 302, 222) },
		{ "4883 640e ffc1 c0bf", W(NULL, NULL, 307, 222) },
		{ "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab"
		  "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f"
		  "9587 3160 65c0 03ed 4ee5 b106 3d50 07",
		  W(NULL, NULL, 200, 215) },
	};
	RUN_VECS(256, c6);
}
END_TEST

/* --- python3-hpack 4.0.0 -----------------------------------------------------------
 * Made by its Encoder (which indexes every field), expectations from its
 * Decoder. Later requests name earlier :path and :method entries by index
 * ("be", "c2", ...): without the mirrored table they fail or are lost. */

START_TEST(test_py_requests)
{
	static const struct vec v[] = {
		{ "8287440d2f6170692f75736572732f3137410b6578616d706c652e636f6d7a08"
		  "6375726c2f382e35",
		  W("GET", "/api/users/17", 0, 153) },
		{ "8387c0bf5f106170706c69636174696f6e2f6a736f6e", W("POST", "/api/users/17", 0, 213) },
		{ "828744162f6170692f75736572732f31373f657870616e643d31c1c0",
		  W("GET", "/api/users/17?expand=1", 0, 272) },
		{ "4205504154434887c3c2", W("PATCH", "/api/users/17", 0, 316) },
		{ "be87bfc2", W("PATCH", "/api/users/17?expand=1", 0, 316) },
		{ "87c28582", W("GET", "/index.html", 0, 316) },
		{ "420644454c45544587c4c3", W("DELETE", "/api/users/17", 0, 361) },
	};
	RUN_VECS(0, v);
}
END_TEST

START_TEST(test_py_requests_huffman)
{
	static const struct vec v[] = {
		{ "828744896075998b505b10c05d41882f91d35d055c87a77a8625b650c3cbb7",
		  W("GET", "/api/users/17", 0, 153) },
		{ "8387c0bf5f8b1d75d0620d263d4c7441ea", W("POST", "/api/users/17", 0, 213) },
		{ "828744906075998b505b10c05dff0be6b1d52401c1c0", W("GET", "/api/users/17?expand=1", 0, 272) },
		{ "4285d70efbd8ff87c3c2", W("PATCH", "/api/users/17", 0, 316) },
		{ "be87bfc2", W("PATCH", "/api/users/17?expand=1", 0, 316) },
		{ "87c28582", W("GET", "/index.html", 0, 316) },
		{ "4286bf833e0df83f87c4c3", W("DELETE", "/api/users/17", 0, 361) },
	};
	RUN_VECS(0, v);
}
END_TEST

START_TEST(test_py_responses)
{
	static const struct vec v[] = {
		{ "488210035f8b1d75d0620d263d4c7441ea5c820bbf", W(NULL, NULL, 201, 150) },
		{ "88bf5c8167", W(NULL, NULL, 200, 197) },
		{ "c1c0bf", W(NULL, NULL, 201, 197) },
		{ "48836c0cff75816f", W(NULL, NULL, 503, 283) },
		{ "bfbe", W(NULL, NULL, 503, 283) },
		{ "5c810789", W(NULL, NULL, 204, 330) },
		{ "c4c2", W(NULL, NULL, 201, 330) },
	};
	RUN_VECS(0, v);
}
END_TEST

START_TEST(test_py_responses_small_table)
{
	/* SETTINGS_HEADER_TABLE_SIZE 128: a size update, then evictions at
	 * every block (the :status 201 entry is evicted and inserted again) */
	static const struct vec v[] = {
		{ "3f61488210035f8b1d75d0620d263d4c7441ea5c820bbf", W(NULL, NULL, 201, 108) },
		{ "88bf5c8167", W(NULL, NULL, 200, 95) },
		{ "488210035f8b1d75d0620d263d4c7441ea5c820bbf", W(NULL, NULL, 201, 108) },
		{ "48836c0cff75816f", W(NULL, NULL, 503, 86) },
		{ "bfbe", W(NULL, NULL, 503, 86) },
		{ "5c810789", W(NULL, NULL, 204, 91) },
		{ "488210035c820bbf", W(NULL, NULL, 201, 90) },
	};
	RUN_VECS(128, v);
}
END_TEST

/* --- Huffman ------------------------------------------------------------------------ */

START_TEST(test_huffman_every_byte)
{
	/* each byte value in a Huffman-coded :path, repeated 1 to 8 times so
	 * that the padding takes every length */
	for (unsigned c = 0; c < 256; c++) {
		uint8_t path[16];
		size_t n = 0;
		path[n++] = '/';
		for (unsigned k = 0; k <= c % 8; k++)
			path[n++] = (uint8_t)c;
		struct seq s = { .n = 0 };
		struct want w = WANT("GET", (const char *)path, 0, 0);
		w.path_len = n;
		struct enc *e = seq_block(&s, w);
		put_indexed(e, ST_METHOD_GET);
		put_lit(e, NOIDX, ST_PATH, path, n, 1);
		seq_run("every byte", 0, &s);
	}

	/* all 256 in one :path entry, then from the table; and in a header
	 * of no interest, whose decoded length alone counts */
	static uint8_t all[257];
	all[0] = '/';
	for (unsigned c = 0; c < 256; c++)
		all[c + 1] = (uint8_t)c;
	struct seq s = { .n = 0 };
	struct want w = WANT(NULL, (const char *)all, 0, 5 + 257 + 32);
	w.path_len = 257;
	put_lit(seq_block(&s, w), INC, ST_PATH, all, 257, 1);
	w.size += 10 + 256 + 32;
	struct enc *e = seq_block(&s, w);
	put_lit_name(e, INC, "x-all-byte", all + 1, 256, 1);
	put_indexed(e, DYN(1));
	seq_run("all bytes", 0, &s);
}
END_TEST

START_TEST(test_huffman_alignments)
{
	/* long codes (13 to 30 bits) starting at every bit offset from 0 to
	 * 70 of a string, so at every place within the decoder's four-bit
	 * steps and across byte and feed edges (written for an earlier
	 * decoder's 64-bit window, whose edges these covered too); '0' and '/'
	 * are 5 and 6 bits, and their sums reach every offset from 20 up */
	static const uint8_t longs[] = { 10, 13, 22, 0, 1, 2, 127, 255 };
	for (unsigned off = 0; off <= 70; off++) {
		unsigned sixes = 0;
		while (sixes * 6 <= off && (off - sixes * 6) % 5 != 0)
			sixes++;
		if (sixes * 6 > off)
			continue; /* 1-4, 7-9, 13, 14, 19: no sum of 5s and 6s */
		for (size_t k = 0; k < sizeof longs; k++) {
			uint8_t path[40];
			size_t n = 0;
			for (unsigned i = 0; i < sixes; i++)
				path[n++] = '/';
			for (unsigned i = 0; i < (off - sixes * 6) / 5; i++)
				path[n++] = '0';
			path[n++] = longs[k];
			path[n++] = longs[(k + 1) % sizeof longs];
			memcpy(path + n, "abcdefgh", 8);
			n += 8;
			struct seq s = { .n = 0 };
			struct want w = WANT(NULL, (const char *)path, 0, 0);
			w.path_len = n;
			put_lit(seq_block(&s, w), NOIDX, ST_PATH, path, n, 1);
			seq_run("alignments", 0, &s);
		}
	}
}
END_TEST

START_TEST(test_huffman_errors)
{
	struct seq s = { .n = 0 };
	uint8_t code[8];
	struct enc *e;
	struct want bad = { .rc = -1 };

	/* "/a": 6 + 5 bits, 5 bits of padding; a zero in the padding */
	size_t m = huff_encode((const uint8_t *)"/a", 2, code, sizeof code);
	ck_assert_uint_eq(m, 2);
	ck_assert_uint_eq(code[1] & 0x1f, 0x1f);
	e = seq_block(&s, bad);
	put_int(e, NOIDX, 4, ST_PATH);
	put_int(e, 0x80, 7, 2);
	put_byte(e, code[0]);
	put_byte(e, code[1] & 0xfe);
	seq_run("padding with a zero", 0, &s);

	/* the same with a whole byte of ones more: 13 bits of padding */
	e = seq_block(&s, bad);
	put_int(e, NOIDX, 4, ST_PATH);
	put_int(e, 0x80, 7, 3);
	put_byte(e, code[0]);
	put_byte(e, code[1]);
	put_byte(e, 0xff);
	seq_run("padding of 13 bits", 0, &s);

	/* EOS (30 ones) inside the string */
	e = seq_block(&s, bad);
	put_int(e, NOIDX, 4, ST_PATH);
	put_int(e, 0x80, 7, 4);
	for (int i = 0; i < 4; i++)
		put_byte(e, 0xff);
	seq_run("EOS", 0, &s);

	/* EOS in a longer string, after "/00" (6 + 5 + 5 bits: no padding)
	 * and after "/0000000000" (56 bits: EOS starting mid-byte and
	 * spanning four bytes; an earlier decoder read 8 bytes at a time and
	 * cut it there) */
	static const char *const before[] = { "/00", "/0000000000" };
	for (int k = 0; k < 2; k++) {
		uint8_t eos[32];
		size_t len = strlen(before[k]);
		m = huff_encode((const uint8_t *)before[k], len, eos, sizeof eos);
		ck_assert_uint_eq(m * 8, 6 + 5 * (len - 1));
		for (int i = 0; i < 8; i++)
			eos[m++] = 0xff;
		e = seq_block(&s, bad);
		put_int(e, NOIDX, 4, ST_PATH);
		put_int(e, 0x80, 7, m);
		for (size_t i = 0; i < m; i++)
			put_byte(e, eos[i]);
		seq_run("EOS in a long string", 0, &s);
	}

	/* and in a header of no interest going into the table, which is
	 * decoded only to count its length */
	e = seq_block(&s, bad);
	put_int(e, INC, 6, ST_CACHE_CONTROL);
	put_int(e, 0x80, 7, 5);
	put_byte(e, 0x00); /* "00" */
	for (int i = 0; i < 4; i++)
		put_byte(e, 0xff);
	seq_run("EOS in another header", 0, &s);

	/* One that does not go into the table (without indexing, or larger
	 * than the table) is skipped undecoded: nobody needs its text or its
	 * length, and decoding is most of an HTTP/2 response's cost. So its
	 * EOS passes, and the field after it is read as usual. */
	struct want skipped = WANT(NULL, "/a", 0, 0);
	e = seq_block(&s, skipped);
	put_int(e, NOIDX, 4, ST_CACHE_CONTROL);
	put_int(e, 0x80, 7, 5);
	put_byte(e, 0x00);
	for (int i = 0; i < 4; i++)
		put_byte(e, 0xff);
	put_int(e, NOIDX, 4, ST_PATH);
	put_int(e, 0x80, 7, 2);
	put_byte(e, code[0]);
	put_byte(e, code[1]);
	seq_run("a skipped value (never decoded)", 0, &s);
	e = seq_block(&s, skipped);
	put_size_update(e, 0);
	put_int(e, INC, 6, ST_CACHE_CONTROL); /* larger than a table of 0 */
	put_int(e, 0x80, 7, 5);
	put_byte(e, 0x00);
	for (int i = 0; i < 4; i++)
		put_byte(e, 0xff);
	put_int(e, NOIDX, 4, ST_PATH);
	put_int(e, 0x80, 7, 2);
	put_byte(e, code[0]);
	put_byte(e, code[1]);
	seq_run("a skipped value (larger than the table)", 0, &s);

	/* the padding in a literal name is checked as well */
	e = seq_block(&s, bad);
	put_int(e, NOIDX, 4, 0);
	put_int(e, 0x80, 7, 2);
	put_byte(e, code[0]);
	put_byte(e, code[1] & 0xef);
	put_str(e, "v", 1, 0);
	seq_run("padding of a name", 0, &s);

	/* the same strings well padded pass; an empty one too */
	struct want ok = WANT(NULL, "/a", 0, 0);
	e = seq_block(&s, ok);
	put_int(e, NOIDX, 4, ST_PATH);
	put_int(e, 0x80, 7, 2);
	put_byte(e, code[0]);
	put_byte(e, code[1]);
	put_int(e, NOIDX, 4, ST_CACHE_CONTROL);
	put_int(e, 0x80, 7, 0);
	seq_run("good padding", 0, &s);
}
END_TEST

/* --- integers, indexes, size updates, sticky errors ------------------------------------- */

START_TEST(test_integers)
{
	struct seq s = { .n = 0 };
	struct want bad = { .rc = -1 };
	struct want ok = WANT(NULL, NULL, 0, 0);
	struct enc *e;

	/* the largest integer, 2^32 - 1, as a size update within the limit */
	e = seq_block(&s, ok);
	put_size_update(e, UINT32_MAX);
	seq_run("2^32 - 1", UINT32_MAX, &s);

	/* 2^32 overflows */
	put_size_update(seq_block(&s, bad), (uint64_t)UINT32_MAX + 1);
	seq_run("2^32", UINT32_MAX, &s);

	/* far beyond, and too many continuation bytes of zeros */
	e = seq_block(&s, bad);
	put_byte(e, 0xff);
	for (int i = 0; i < 5; i++)
		put_byte(e, 0xff);
	put_byte(e, 0x01);
	seq_run("overflow", 0, &s);
	e = seq_block(&s, bad);
	put_byte(e, 0x3f);
	for (int i = 0; i < 6; i++)
		put_byte(e, 0x80);
	put_byte(e, 0x00);
	seq_run("long integer", UINT32_MAX, &s);

	/* a multi-byte index: static 61 (www-authenticate) as 0xff 0x... no:
	 * 7-bit prefix 127 + 0 is index 127, beyond an empty table */
	e = seq_block(&s, bad);
	put_byte(e, 0xff);
	put_byte(e, 0x00);
	seq_run("index 127", 0, &s);

	/* a 4-bit-prefix name index over two bytes: 15 + 1 = 16
	 * (accept-encoding), value "x" */
	e = seq_block(&s, WANT(NULL, NULL, 0, 0));
	put_byte(e, 0x0f);
	put_byte(e, 0x01);
	put_str(e, "x", 1, 0);
	seq_run("index 16", 0, &s);
}
END_TEST

START_TEST(test_index_errors)
{
	struct seq s = { .n = 0 };
	struct want bad = { .rc = -1 };
	struct enc *e;

	put_indexed(seq_block(&s, bad), 0);
	seq_run("index 0", 0, &s);

	put_indexed(seq_block(&s, bad), 62);
	seq_run("index 62, empty table", 0, &s);

	put_lit(seq_block(&s, bad), INC, 62, "v", 1, 0);
	seq_run("name 62, empty table", 0, &s);

	/* one entry: 62 is it, 63 is beyond (and the error is sticky: the
	 * runner checks that a valid block fails after it) */
	put_lit(seq_block(&s, WANT(NULL, "/one", 0, 41)), INC, ST_PATH, "/one", 4, 0);
	put_indexed(seq_block(&s, WANT(NULL, "/one", 0, 41)), 62);
	put_indexed(seq_block(&s, bad), 63);
	put_indexed(seq_block(&s, WANT("GET", NULL, 0, 41)), ST_METHOD_GET); /* not reached */
	seq_run("index 63, one entry", 0, &s);

	/* a block cut inside a field: in an integer, a string length, a string */
	e = seq_block(&s, bad);
	put_byte(e, 0xff);
	seq_run("cut in an integer", 0, &s);
	e = seq_block(&s, bad);
	put_int(e, NOIDX, 4, ST_PATH);
	seq_run("cut before a string", 0, &s);
	e = seq_block(&s, bad);
	put_int(e, NOIDX, 4, ST_PATH);
	put_int(e, 0, 7, 5);
	put_byte(e, '/');
	seq_run("cut in a string", 0, &s);
}
END_TEST

START_TEST(test_size_updates)
{
	struct seq s = { .n = 0 };
	struct want bad = { .rc = -1 };
	struct enc *e;

	/* beyond the default limit */
	put_size_update(seq_block(&s, bad), 4097);
	seq_run("update 4097", 0, &s);

	/* beyond a lowered limit */
	put_size_update(seq_block(&s, bad), 257);
	seq_run("update 257 > 256", 256, &s);

	/* after a field */
	e = seq_block(&s, bad);
	put_indexed(e, ST_METHOD_GET);
	put_size_update(e, 100);
	seq_run("update after a field", 0, &s);

	/* two at the start are fine; 0 empties the table */
	put_lit(seq_block(&s, WANT(NULL, "/a", 0, 39)), INC, ST_PATH, "/a", 2, 0);
	e = seq_block(&s, WANT("GET", NULL, 0, 0));
	put_size_update(e, 0);
	put_size_update(e, 4096);
	put_indexed(e, ST_METHOD_GET);
	put_indexed(seq_block(&s, bad), 62);
	seq_run("update to 0", 0, &s);

	/* a smaller maximum evicts the oldest entries */
	put_lit(seq_block(&s, WANT(NULL, "/aaaa", 0, 42)), INC, ST_PATH, "/aaaa", 5, 0);
	put_lit(seq_block(&s, WANT(NULL, "/bbbb", 0, 84)), INC, ST_PATH, "/bbbb", 5, 0);
	e = seq_block(&s, WANT(NULL, "/bbbb", 0, 42));
	put_size_update(e, 50);
	put_indexed(e, 62);
	put_indexed(seq_block(&s, bad), 63);
	seq_run("update to 50", 0, &s);
}
END_TEST

START_TEST(test_set_limit)
{
	struct seq s = { .n = 0 };
	struct want bad = { .rc = -1 };
	struct enc *e;
	static char big[5000];
	memset(big, 'p', sizeof big);
	big[0] = '/';

	/* a larger limit leaves the table at 4096 until the encoder's update:
	 * an entry of 5037 bytes empties it and is not added */
	e = seq_block(&s, WANT(NULL, "/x", 0, 39));
	put_lit(e, INC, ST_PATH, "/x", 2, 0);
	struct want w = WANT(NULL, big, 0, 0);
	w.path_len = AP_HPACK_PATH_MAX - 1;
	w.path_truncated = 1;
	put_lit(seq_block(&s, w), INC, ST_PATH, big, sizeof big, 0);
	put_indexed(seq_block(&s, bad), 62);
	seq_run("limit raised", 8192, &s);

	/* after the update it fits */
	w.size = 5 + 5000 + 32;
	e = seq_block(&s, w);
	put_size_update(e, 8192);
	put_lit(e, INC, ST_PATH, big, sizeof big, 0);
	put_indexed(seq_block(&s, w), 62);
	seq_run("limit raised and used", 8192, &s);

	/* a lowered limit binds at once */
	struct ap_hpack *h = malloc(sizeof *h);
	ck_assert_ptr_nonnull(h);
	ap_hpack_init(h);
	ap_hpack_block_begin(h);
	for (int i = 0; i < 3; i++) {
		struct enc *b = enc_new();
		put_lit(b, INC, ST_PATH, "/0123456789", 11, 0); /* 48 bytes */
		ck_assert_int_eq(ap_hpack_feed(h, b->b, b->n), 0);
		free(b);
	}
	ck_assert_int_eq(ap_hpack_block_end(h), 0);
	ck_assert_uint_eq(ap_hpack_table_size(h), 3 * 48);
	ap_hpack_set_limit(h, 100);
	ck_assert_uint_eq(ap_hpack_table_size(h), 2 * 48);
	ap_hpack_block_begin(h);
	static const uint8_t beyond[] = { 0x80 | 64 };
	ck_assert_int_eq(ap_hpack_feed(h, beyond, 1), -1);
	free(h);
}
END_TEST

START_TEST(test_eviction)
{
	/* a 100-byte table: each new 57-byte entry evicts the one before;
	 * an entry larger than the table empties it and is not added */
	struct seq s = { .n = 0 };
	struct want bad = { .rc = -1 };
	struct enc *e;
	const char *a = "/aaaaaaaaaaaaaaaaaaa", *b = "/bbbbbbbbbbbbbbbbbbb";
	put_lit(seq_block(&s, WANT(NULL, a, 0, 57)), INC, ST_PATH, a, 20, 0);
	put_lit(seq_block(&s, WANT(NULL, b, 0, 57)), INC, ST_PATH, b, 20, 0);
	put_indexed(seq_block(&s, WANT(NULL, b, 0, 57)), 62);
	put_indexed(seq_block(&s, bad), 63);
	seq_run("evicted", 100, &s);

	/* the name of the entry being evicted is still the new entry's name
	 * (RFC 7541 4.4) */
	put_lit(seq_block(&s, WANT(NULL, a, 0, 57)), INC, ST_PATH, a, 20, 0);
	put_lit(seq_block(&s, WANT(NULL, b, 0, 57)), INC, 62, b, 20, 0);
	put_indexed(seq_block(&s, WANT(NULL, b, 0, 57)), 62);
	seq_run("name of the evicted", 100, &s);

	static char c[70];
	memset(c, 'c', sizeof c);
	c[0] = '/';
	struct want w = WANT(NULL, c, 0, 0);
	w.path_len = sizeof c;
	put_lit(seq_block(&s, WANT(NULL, a, 0, 57)), INC, ST_PATH, a, 20, 0);
	put_lit(seq_block(&s, w), INC, ST_PATH, c, sizeof c, 0);
	put_indexed(seq_block(&s, bad), 62);
	seq_run("larger than the table", 100, &s);

	/* exactly the table's size fits */
	static char d[63];
	memset(d, 'd', sizeof d);
	d[0] = '/';
	w = WANT(NULL, d, 0, 100);
	w.path_len = sizeof d;
	put_lit(seq_block(&s, WANT(NULL, a, 0, 57)), INC, ST_PATH, a, 20, 0);
	put_lit(seq_block(&s, w), INC, ST_PATH, d, sizeof d, 0);
	e = seq_block(&s, w);
	put_indexed(e, 62);
	seq_run("as large as the table", 100, &s);
}
END_TEST

/* --- what the mirror cannot hold -------------------------------------------------------- */

START_TEST(test_lost_slots)
{
	/* a 65536-byte table with 200 :path entries: the last
	 * AP_HPACK_SLOTS are mirrored, older ones are reported lost (as
	 * :method too, since their kind is not known either), never wrong */
	struct seq s = { .n = 0 };
	struct want bad = { .rc = -1 };
	char p[16];
	struct enc *e = seq_block(&s, WANT(NULL, "/p000", 0, 200 * 42));
	put_size_update(e, 65536);
	for (int i = 0; i < 200; i++) {
		snprintf(p, sizeof p, "/p%03d", i);
		put_lit(e, INC, ST_PATH, p, 5, i & 1);
	}
	put_indexed(seq_block(&s, WANT(NULL, "/p199", 0, 200 * 42)), DYN(0));
	put_indexed(seq_block(&s, WANT(NULL, "/p072", 0, 200 * 42)), DYN(AP_HPACK_SLOTS - 1));
	struct want lost = WANT(NULL, NULL, 0, 200 * 42);
	lost.path_lost = 1;
	lost.method_lost = 1;
	put_indexed(seq_block(&s, lost), DYN(AP_HPACK_SLOTS));
	put_indexed(seq_block(&s, lost), DYN(199));
	/* a block that carries its own :method and :path is not affected */
	e = seq_block(&s, WANT("GET", "/p150", 0, 200 * 42));
	put_indexed(e, DYN(150));
	put_indexed(e, ST_METHOD_GET);
	put_indexed(e, DYN(199 - 150));
	put_indexed(seq_block(&s, bad), DYN(200));
	seq_run("past the slots", 65536, &s);

	/* an eviction of some of the unmirrored entries: the size is no
	 * longer known, the mirrored entries still are; an update to 0
	 * makes the mirror exact again */
	e = seq_block(&s, WANT(NULL, NULL, 0, 200 * 42));
	put_size_update(e, 65536);
	for (int i = 0; i < 200; i++) {
		snprintf(p, sizeof p, "/p%03d", i);
		put_lit(e, INC, ST_PATH, p, 5, 0);
	}
	put_indexed(e, ST_STATUS_200); /* a field: the path is the first one */
	s.w[s.n - 1].path = "/p000";
	s.w[s.n - 1].status = 200;
	e = seq_block(&s, WANT(NULL, "/p199", 0, -1));
	put_size_update(e, 6000);
	put_indexed(e, DYN(0));
	put_indexed(seq_block(&s, WANT(NULL, "/p072", 0, -1)), DYN(AP_HPACK_SLOTS - 1));
	/* the encoder evicted 58 entries (to 5964 bytes): /p069 is still in
	 * its table, so this is no error, only a value the mirror lost */
	struct want lost_blind = lost;
	lost_blind.size = -1;
	put_indexed(seq_block(&s, lost_blind), DYN(130));
	e = seq_block(&s, WANT(NULL, "/new", 0, 41));
	put_size_update(e, 0);
	put_size_update(e, 6000);
	put_lit(e, INC, ST_PATH, "/new", 4, 0);
	put_indexed(seq_block(&s, WANT(NULL, "/new", 0, 41)), DYN(0));
	put_indexed(seq_block(&s, bad), DYN(1));
	seq_run("blind", 65536, &s);

	/* a new entry named by an unmirrored one: whether it was inserted at
	 * all is unknown, so every reference is lost until the table is
	 * certainly empty */
	e = seq_block(&s, WANT(NULL, NULL, 0, 200 * 42));
	put_size_update(e, 65536);
	for (int i = 0; i < 200; i++) {
		snprintf(p, sizeof p, "/p%03d", i);
		put_lit(e, INC, ST_PATH, p, 5, 0);
	}
	s.w[s.n - 1].path = "/p000";
	e = seq_block(&s, lost);
	put_lit(e, INC, DYN(150), "/q", 2, 0);
	s.w[s.n - 1].size = -1;
	put_indexed(seq_block(&s, s.w[s.n - 1]), DYN(0));
	e = seq_block(&s, WANT(NULL, "/r", 0, 39));
	put_size_update(e, 0);
	put_size_update(e, 4096);
	put_lit(e, INC, ST_PATH, "/r", 2, 0);
	put_indexed(seq_block(&s, WANT(NULL, "/r", 0, 39)), DYN(0));
	seq_run("unknown name", 65536, &s);
}
END_TEST

START_TEST(test_lost_arena)
{
	/* five 500-byte :path copies do not fit in the 2048-byte arena: the
	 * oldest is dropped and reported lost, the others (one of them
	 * wrapping around the arena's end) are intact */
	static char v[5][500];
	struct seq s = { .n = 0 };
	for (int i = 0; i < 5; i++) {
		memset(v[i], 'a' + i, 500);
		v[i][0] = '/';
		v[i][1] = (char)('0' + i);
	}
	struct want w = WANT(NULL, v[0], 0, 5 * 537);
	w.path_len = 500;
	struct enc *e = seq_block(&s, w);
	for (int i = 0; i < 5; i++)
		put_lit(e, INC, ST_PATH, v[i], 500, i & 1);
	struct want lost = WANT(NULL, NULL, 0, 5 * 537);
	lost.path_lost = 1;
	put_indexed(seq_block(&s, lost), DYN(4));
	for (int age = 3; age >= 0; age--) {
		w.path = v[4 - age];
		put_indexed(seq_block(&s, w), DYN(age));
	}
	/* a 100-byte :path copy drops the next oldest (v[1]); a :method
	 * copy fits beside it */
	static char z[100];
	memset(z, 'z', sizeof z);
	z[0] = '/';
	long size = 5 * 537 + 137 + 44;
	e = seq_block(&s, WANT("PURGE", NULL, 0, size));
	put_lit(e, INC, ST_PATH, z, sizeof z, 0);
	s.w[s.n - 1].path = z;
	s.w[s.n - 1].path_len = sizeof z;
	put_lit(e, INC, ST_METHOD_GET, "PURGE", 5, 0);
	e = seq_block(&s, WANT("PURGE", NULL, 0, size));
	put_indexed(e, DYN(0));
	put_indexed(e, DYN(1));
	s.w[s.n - 1].path = z;
	s.w[s.n - 1].path_len = sizeof z;
	lost.size = size;
	put_indexed(seq_block(&s, lost), DYN(5));
	w.path = v[2];
	w.size = size;
	put_indexed(seq_block(&s, w), DYN(4));
	w.path = v[4];
	put_indexed(seq_block(&s, w), DYN(2));
	seq_run("arena", 0, &s);
}
END_TEST

START_TEST(test_truncated_path)
{
	static char v[600];
	for (size_t i = 0; i < sizeof v; i++)
		v[i] = (char)('a' + i % 26);
	v[0] = '/';
	struct seq s = { .n = 0 };
	struct want w = WANT(NULL, v, 0, 5 + 600 + 32);
	w.path_len = AP_HPACK_PATH_MAX - 1;
	w.path_truncated = 1;
	put_lit(seq_block(&s, w), INC, ST_PATH, v, sizeof v, 1);
	/* from the table: still truncated */
	put_indexed(seq_block(&s, w), DYN(0));
	/* exactly AP_HPACK_PATH_MAX - 1 bytes is whole, one more is not */
	w.path_truncated = 0;
	w.size += 5 + AP_HPACK_PATH_MAX - 1 + 32;
	put_lit(seq_block(&s, w), INC, ST_PATH, v, AP_HPACK_PATH_MAX - 1, 0);
	w.size = -1;
	put_indexed(seq_block(&s, w), DYN(0));
	w.path_truncated = 1;
	put_lit(seq_block(&s, w), NOIDX, ST_PATH, v, AP_HPACK_PATH_MAX, 1);
	put_indexed(seq_block(&s, w), DYN(1));
	seq_run("truncated", 0, &s);
}
END_TEST

START_TEST(test_odd_values)
{
	struct seq s = { .n = 0 };
	struct want w;
	struct enc *e;

	/* a :method longer than AP_HTTP_METHOD_MAX - 1 is lost, also from
	 * the table; one of exactly that length is kept */
	w = WANT(NULL, NULL, 0, -1);
	w.method_lost = 1;
	put_lit(seq_block(&s, w), INC, ST_METHOD_GET, "ABCDEFGHIJKLMNOP", 16, 0);
	put_indexed(seq_block(&s, w), DYN(0));
	put_lit(seq_block(&s, WANT("ABCDEFGHIJKLMNO", NULL, 0, -1)), INC, 2, "ABCDEFGHIJKLMNO", 15, 1);
	put_indexed(seq_block(&s, WANT("ABCDEFGHIJKLMNO", NULL, 0, -1)), DYN(0));
	seq_run("long method", 0, &s);

	/* a :status that is not three digits is no status, also from the table */
	put_lit(seq_block(&s, WANT(NULL, NULL, 0, -1)), INC, ST_STATUS, "2000", 4, 0);
	put_indexed(seq_block(&s, WANT(NULL, NULL, 0, -1)), DYN(0));
	put_lit(seq_block(&s, WANT(NULL, NULL, 0, -1)), INC, ST_STATUS, "2x0", 3, 0);
	put_indexed(seq_block(&s, WANT(NULL, NULL, 0, -1)), DYN(0));
	put_lit(seq_block(&s, WANT(NULL, NULL, 0, -1)), INC, ST_STATUS, "20", 2, 0);
	put_lit(seq_block(&s, WANT(NULL, NULL, 999, -1)), NOIDX, ST_STATUS, "999", 3, 1);
	seq_run("odd status", 0, &s);

	/* literal names are recognised, Huffman-coded or not; a name that
	 * only starts like one is not */
	e = seq_block(&s, WANT("GET", "/lit", 204, 7 + 3 + 32 + 5 + 4 + 32 + 7 + 3 + 32));
	put_lit_name(e, INC, ":method", "GET", 3, 1);
	put_lit_name(e, INC, ":path", "/lit", 4, 0);
	put_lit_name(e, INC, ":status", "204", 3, 1);
	put_lit_name(e, NOIDX, ":pathx", "/no", 3, 0);
	put_lit_name(e, NOIDX, ":pat", "/no", 3, 1);
	put_lit_name(e, NOIDX, ":methodsandmorethan16", "NO", 2, 0);
	e = seq_block(&s, WANT("GET", "/lit", 204, -1));
	put_indexed(e, DYN(0));
	put_indexed(e, DYN(1));
	put_indexed(e, DYN(2));
	seq_run("literal names", 0, &s);

	/* the first of a repeated field counts */
	e = seq_block(&s, WANT("POST", "/first", 0, 0));
	put_indexed(e, 3);
	put_lit(e, NEVER, ST_PATH, "/first", 6, 0);
	put_indexed(e, ST_METHOD_GET);
	put_lit(e, NOIDX, ST_PATH, "/second", 7, 1);
	put_indexed(e, 4);
	seq_run("repeated", 0, &s);

	/* an empty :path is a :path */
	put_lit(seq_block(&s, WANT(NULL, "", 0, 0)), NOIDX, ST_PATH, "", 0, 0);
	seq_run("empty path", 0, &s);
}
END_TEST

/* --- robustness ---------------------------------------------------------------------------- */

START_TEST(test_garbage_split_invariance)
{
	/* random blocks, most of them leaning towards valid representations:
	 * every split gives the same return codes and results as the whole */
	uint32_t rng = 2718281;
	uint8_t buf[64];
	struct ap_hpack *ref = malloc(sizeof *ref), *h = malloc(sizeof *h);
	ck_assert_ptr_nonnull(ref);
	ck_assert_ptr_nonnull(h);
	for (int round = 0; round < 400; round++) {
		int rc_ref[8];
		ap_hpack_init(ref);
		uint32_t save = rng;
		for (int blk = 0; blk < 8; blk++) {
			size_t n = rnd(&rng) % sizeof buf;
			for (size_t i = 0; i < n; i++) {
				uint32_t r = rnd(&rng);
				buf[i] = (r & 3) == 0 ? (uint8_t)(0x80 | (r >> 8) % 70) : (uint8_t)(r >> 8);
			}
			ap_hpack_block_begin(ref);
			int a = ap_hpack_feed(ref, buf, n);
			int b = ap_hpack_block_end(ref);
			rc_ref[blk] = a < 0 || b < 0 ? -1 : 0;
			for (int way = 1; way < NSPLITS; way++) {
				/* replay this round's blocks up to blk under another split */
				uint32_t r2 = save, srng = way >= 2 ? seeds[way - 2] + (uint32_t)round : 0;
				ap_hpack_init(h);
				int rc = 0;
				for (int k = 0; k <= blk; k++) {
					uint8_t b2[64];
					size_t n2 = rnd(&r2) % sizeof b2;
					for (size_t i = 0; i < n2; i++) {
						uint32_t r = rnd(&r2);
						b2[i] = (r & 3) == 0 ? (uint8_t)(0x80 | (r >> 8) % 70) : (uint8_t)(r >> 8);
					}
					ap_hpack_block_begin(h);
					int fr = feed_split(h, b2, n2, way, &srng);
					int er = ap_hpack_block_end(h);
					rc = fr < 0 || er < 0 ? -1 : 0;
					CHECK(rc == rc_ref[k]);
				}
				CHECK(h->method_len == ref->method_len && memcmp(h->method, ref->method, h->method_len) == 0);
				CHECK(h->method_lost == ref->method_lost);
				CHECK(h->path_seen == ref->path_seen && h->path_lost == ref->path_lost);
				CHECK(h->path_truncated == ref->path_truncated);
				CHECK(h->path_len == ref->path_len && memcmp(h->path, ref->path, h->path_len) == 0);
				CHECK(h->status == ref->status);
				CHECK(ap_hpack_table_size(h) == ap_hpack_table_size(ref));
				CHECK(h->path_len < AP_HPACK_PATH_MAX && h->method_len < AP_HTTP_METHOD_MAX);
			}
			if (rc_ref[blk] < 0)
				break;
		}
	}
	free(ref);
	free(h);
}
END_TEST

/* "x-apiprof-profile: 1" sets profile (SPEC: such a request is profiled),
 * literal or Huffman-coded, and read back from the dynamic table by a later
 * block; "0", "10" and other names do not; each block starts clear. */
static int profile_of(struct ap_hpack *h, const struct enc *e)
{
	ap_hpack_block_begin(h);
	CHECK(ap_hpack_feed(h, e->b, e->n) == 0);
	CHECK(ap_hpack_block_end(h) == 0);
	return h->profile;
}

START_TEST(test_profile_header)
{
	struct ap_hpack *h = malloc(sizeof *h);
	ck_assert_ptr_nonnull(h);
	for (int huff = 0; huff <= 1; huff++) {
		ap_hpack_init(h);
		struct enc e = { .n = 0 };
		put_indexed(&e, 2); /* :method GET */
		put_lit_name(&e, INC, "x-apiprof-profile", "1", 1, huff);
		ck_assert_int_eq(profile_of(h, &e), 1);
		e.n = 0;
		put_indexed(&e, 2);
		ck_assert_int_eq(profile_of(h, &e), 0); /* a new block: clear */
		e.n = 0;
		put_indexed(&e, 62); /* the entry inserted above */
		ck_assert_int_eq(profile_of(h, &e), 1);
		e.n = 0;
		put_lit_name(&e, NOIDX, "x-apiprof-profile", "0", 1, huff);
		put_lit_name(&e, NOIDX, "x-apiprof-profilf", "1", 1, huff);
		ck_assert_int_eq(profile_of(h, &e), 0);
		e.n = 0;
		put_lit(&e, NOIDX, 62, "10", 2, huff); /* its name, by index */
		ck_assert_int_eq(profile_of(h, &e), 0);
		e.n = 0;
		put_lit(&e, NOIDX, 62, "1", 1, huff);
		ck_assert_int_eq(profile_of(h, &e), 1);
	}
	free(h);
}
END_TEST

/* --- the cache of decoded lengths (hpack.c: string_counted) ------------------------------ */

/* Is the Huffman code of v remembered in h's len_cache? */
static int len_cached(const struct ap_hpack *h, const char *v)
{
	uint8_t code[64];
	size_t m = huff_encode((const uint8_t *)v, strlen(v), code, sizeof code);
	for (unsigned i = 0; i < AP_HPACK_LEN_CACHE; i++)
		if (h->len_cache[i].enc_len == m && memcmp(h->len_cache[i].bytes, code, m) == 0)
			return 1;
	return 0;
}

START_TEST(test_len_cache)
{
	/* every pair below is the same number of Huffman bytes with a
	 * different decoded length: a look-up by length, or by fewer than
	 * all of the bytes, counts the second wrong and the table's size
	 * shows it. 'a' is 5 bits, 'z' 7: "aaaaaaaa" is 40 bits, "zzzzz"
	 * 35 and "aaaaaaa" 35, padded to the same 5 bytes, the last of which
	 * alone tells "aaaaaaa" from "aaaaaaaa". cache-control is 13 bytes. */
	struct seq s = { .n = 0 };
	long size = 0;
	struct enc *e;
	static const char *const vals[] = { "aaaaaaaa", "zzzzz", "aaaaaaaa", "aaaaaaa", "aaaaaaaa",
	                                    "aaaaaaa" };
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		size += 13 + (long)strlen(vals[i]) + 32;
		put_lit(seq_block(&s, WANT(NULL, NULL, 0, size)), INC, ST_CACHE_CONTROL, vals[i], strlen(vals[i]), 1);
	}
	seq_run("same length, other bytes", 0, &s);

	/* the same, 10 to 24 bytes long (compared eight at a time): the
	 * last byte differs, or bytes 5-9, 0-4 or 10-14 only ("zzzzz" and
	 * "aaaaaaa" are both 35 bits) */
#define A15 "aaaaaaaaaaaaaaa"
	static const char *const longer[] = { "a" A15, A15, "a" A15,
	                                      "aaaaaaaazzzzzaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaa",
	                                      "aaaaaaaazzzzzaaaaaaaa",
	                                      "zzzzz" A15 "aaaaaaaaaa", "aaaaaaa" A15 "aaaaaaaaaa",
	                                      "a" A15 "zzzzz" A15, "a" A15 "aaaaaaa" A15 };
#undef A15
	size = 0;
	for (size_t i = 0; i < sizeof longer / sizeof longer[0]; i++) {
		size += 13 + (long)strlen(longer[i]) + 32;
		put_lit(seq_block(&s, WANT(NULL, NULL, 0, size)), INC, ST_CACHE_CONTROL, longer[i],
		        strlen(longer[i]), 1);
	}
	seq_run("same length, other bytes, longer", 0, &s);

	/* more distinct values than the cache holds, each used again after
	 * being pushed out, in one block and across blocks */
	static const char *const many[] = { "alpha", "bravo", "charlie", "delta", "echo", "foxtrot" };
	size = 0;
	e = seq_block(&s, WANT(NULL, NULL, 0, 0));
	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < 6; i++) {
			size += 13 + (long)strlen(many[i]) + 32;
			put_lit(e, INC, ST_CACHE_CONTROL, many[i], strlen(many[i]), 1);
		}
	s.w[0].size = size;
	for (size_t i = 6; i-- > 0;) {
		size += 13 + (long)strlen(many[i]) + 32;
		put_lit(seq_block(&s, WANT(NULL, NULL, 0, size)), INC, ST_CACHE_CONTROL, many[i], strlen(many[i]), 1);
	}
	seq_run("more than the cache", 0, &s);

	/* a value of interest is decoded (kept), even when its bytes are
	 * remembered for another name: "204" as cache-control, then as
	 * :status */
	e = seq_block(&s, WANT(NULL, NULL, 0, 13 + 3 + 32));
	put_lit(e, INC, ST_CACHE_CONTROL, "204", 3, 1);
	e = seq_block(&s, WANT(NULL, NULL, 204, 2 * 48 - 6));
	put_lit(e, INC, ST_STATUS, "204", 3, 1);
	e = seq_block(&s, WANT(NULL, NULL, 204, 2 * 48 - 6));
	put_indexed(e, DYN(0));
	seq_run("value of interest", 0, &s);

	/* a string longer than AP_HPACK_LEN_CACHE_BYTES encoded is decoded
	 * every time, and counted right */
	static char longv[80];
	memset(longv, 'a', sizeof longv - 1);
	e = seq_block(&s, WANT(NULL, NULL, 0, 13 + 79 + 32));
	put_lit(e, INC, ST_CACHE_CONTROL, longv, 79, 1);
	e = seq_block(&s, WANT(NULL, NULL, 0, 2 * (13 + 79 + 32)));
	put_lit(e, INC, ST_CACHE_CONTROL, longv, 79, 1);
	seq_run("long value", 0, &s);
}
END_TEST

START_TEST(test_len_cache_policy)
{
	struct ap_hpack *h = malloc(sizeof *h);
	ck_assert_ptr_nonnull(h);
	struct enc *e = enc_new();
	ap_hpack_init(h);

	/* a whole value is remembered; four fill the cache; a hit makes its
	 * entry the most recently used, so a fifth replaces the least
	 * recently used (bravo), not the oldest (alpha) */
	static const char *const v[] = { "alpha", "bravo", "charlie", "delta", "alpha", "echo" };
	for (size_t i = 0; i < 6; i++)
		put_lit(e, INC, ST_CACHE_CONTROL, v[i], strlen(v[i]), 1);
	ap_hpack_block_begin(h);
	ck_assert_int_eq(ap_hpack_feed(h, e->b, e->n), 0);
	ck_assert_int_eq(ap_hpack_block_end(h), 0);
	ck_assert(len_cached(h, "alpha"));
	ck_assert(!len_cached(h, "bravo"));
	ck_assert(len_cached(h, "charlie"));
	ck_assert(len_cached(h, "delta"));
	ck_assert(len_cached(h, "echo"));

	/* not remembered: a value fed in pieces, a value the table skips
	 * (without indexing), a value of interest, a value whose padding
	 * is wrong (and fails) */
	ap_hpack_init(h);
	e->n = 0;
	put_lit(e, INC, ST_CACHE_CONTROL, "split", 5, 1);
	ap_hpack_block_begin(h);
	ck_assert_int_eq(ap_hpack_feed(h, e->b, e->n - 1), 0);
	ck_assert_int_eq(ap_hpack_feed(h, e->b + e->n - 1, 1), 0);
	ck_assert_int_eq(ap_hpack_block_end(h), 0);
	ck_assert_uint_eq(ap_hpack_table_size(h), 13 + 5 + 32);
	e->n = 0;
	put_lit(e, NOIDX, ST_CACHE_CONTROL, "skipped", 7, 1);
	put_lit(e, INC, ST_STATUS, "404", 3, 1);
	ap_hpack_block_begin(h);
	ck_assert_int_eq(ap_hpack_feed(h, e->b, e->n), 0);
	ck_assert_int_eq(ap_hpack_block_end(h), 0);
	ck_assert_uint_eq(h->status, 404);
	ck_assert(!len_cached(h, "split"));
	ck_assert(!len_cached(h, "skipped"));
	ck_assert(!len_cached(h, "404"));
	/* "aaaaaaa" with a 0 in its padding: 35 bits, then 10111 */
	uint8_t good[8];
	ck_assert_uint_eq(huff_encode((const uint8_t *)"aaaaaaa", 7, good, sizeof good), 5);
	e->n = 0;
	put_int(e, INC, 6, ST_CACHE_CONTROL);
	put_int(e, 0x80, 7, 5);
	for (int i = 0; i < 5; i++)
		put_byte(e, good[i] ^ (i == 4 ? 0x08 : 0));
	ap_hpack_block_begin(h);
	ck_assert_int_eq(ap_hpack_feed(h, e->b, e->n), -1);
	for (unsigned i = 0; i < AP_HPACK_LEN_CACHE; i++)
		ck_assert_uint_eq(h->len_cache[i].enc_len, 0);
	free(e);
	free(h);
}
END_TEST

Suite *hpack_suite(void)
{
	Suite *s = suite_create("hpack");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rfc_c2);
	tcase_add_test(tc, test_rfc_c3);
	tcase_add_test(tc, test_rfc_c4);
	tcase_add_test(tc, test_rfc_c5);
	tcase_add_test(tc, test_rfc_c6);
	tcase_add_test(tc, test_py_requests);
	tcase_add_test(tc, test_py_requests_huffman);
	tcase_add_test(tc, test_py_responses);
	tcase_add_test(tc, test_py_responses_small_table);
	tcase_add_test(tc, test_huffman_every_byte);
	tcase_add_test(tc, test_huffman_alignments);
	tcase_add_test(tc, test_huffman_errors);
	tcase_add_test(tc, test_integers);
	tcase_add_test(tc, test_index_errors);
	tcase_add_test(tc, test_size_updates);
	tcase_add_test(tc, test_set_limit);
	tcase_add_test(tc, test_eviction);
	tcase_add_test(tc, test_lost_slots);
	tcase_add_test(tc, test_lost_arena);
	tcase_add_test(tc, test_truncated_path);
	tcase_add_test(tc, test_odd_values);
	tcase_add_test(tc, test_garbage_split_invariance);
	tcase_add_test(tc, test_profile_header);
	tcase_add_test(tc, test_len_cache);
	tcase_add_test(tc, test_len_cache_policy);
	suite_add_tcase(s, tc);
	return s;
}

/*
 * fuzz_hpack.c - libFuzzer harness for the streaming HPACK decoder
 * (shared/hpack.c).
 *
 * The h2 layer feeds the decoder header-block fragments as they come, so
 * the property checked besides memory safety is split invariance: a
 * sequence of header blocks must give the same return codes, results and
 * table size whether each block is fed whole or in pieces of 1..16
 * bytes. The input's first byte chooses the decoder's
 * SETTINGS_HEADER_TABLE_SIZE and the seed of the cut points; then each
 * block is a length byte and that many bytes, or 0xff, a 16-bit length
 * (big-endian) and that many bytes: a :path past AP_HPACK_PATH_MAX, or
 * more insertions than AP_HPACK_SLOTS, need a block of more than 254.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ap_hpack.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_hpack: %s\n", what);
	abort();
}

/* One block's outcome, as the h2 layer would read it. */
struct outcome {
	int rc;
	uint8_t method_len, method_lost, path_seen, path_truncated, path_lost;
	uint16_t path_len, status;
	size_t size;
	char method[AP_HTTP_METHOD_MAX];
	char path[AP_HPACK_PATH_MAX];
};

static void outcome(const struct ap_hpack *h, int rc, struct outcome *o)
{
	memset(o, 0, sizeof *o);
	o->rc = rc;
	if (h->method_len >= AP_HTTP_METHOD_MAX || h->path_len >= AP_HPACK_PATH_MAX)
		fail("result beyond its buffer");
	if ((h->path_len || h->path_truncated || h->path_lost) && !h->path_seen)
		fail("a :path result without path_seen");
	o->method_len = h->method_len;
	o->method_lost = h->method_lost;
	o->path_seen = h->path_seen;
	o->path_truncated = h->path_truncated;
	o->path_lost = h->path_lost;
	o->path_len = h->path_len;
	o->status = h->status;
	o->size = ap_hpack_table_size(h);
	memcpy(o->method, h->method, h->method_len);
	memcpy(o->path, h->path, h->path_len);
}

static const uint32_t limits[8] = { 4096, 0, 64, 256, 1000, 4096, 8192, 65536 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ap_hpack whole, split;
	static struct outcome a, b;
	if (size < 1)
		return 0;
	uint32_t rng = data[0] * 2654435761u | 1;
	ap_hpack_init(&whole);
	ap_hpack_init(&split);
	ap_hpack_set_limit(&whole, limits[data[0] & 7]);
	ap_hpack_set_limit(&split, limits[data[0] & 7]);
	size_t off = 1;
	while (off < size) {
		size_t n = data[off++];
		if (n == 0xff && size - off >= 2) {
			n = (size_t)data[off] << 8 | data[off + 1];
			off += 2;
		}
		if (n > size - off)
			n = size - off;
		const uint8_t *p = data + off;
		off += n;

		ap_hpack_block_begin(&whole);
		int rw = ap_hpack_feed(&whole, p, n);
		int ew = ap_hpack_block_end(&whole);
		outcome(&whole, rw < 0 || ew < 0 ? -1 : 0, &a);

		ap_hpack_block_begin(&split);
		int rs = 0;
		for (size_t i = 0; i < n;) {
			rng ^= rng << 13;
			rng ^= rng >> 17;
			rng ^= rng << 5;
			size_t k = 1 + rng % 16;
			if (k > n - i)
				k = n - i;
			if (ap_hpack_feed(&split, p + i, k) < 0)
				rs = -1;
			else if (rs < 0)
				fail("a feed succeeded after an error");
			i += k;
		}
		int es = ap_hpack_block_end(&split);
		outcome(&split, rs < 0 || es < 0 ? -1 : 0, &b);
		if (memcmp(&a, &b, sizeof a) != 0)
			fail("split and whole differ");
		if (a.rc < 0)
			break;
	}
	return 0;
}

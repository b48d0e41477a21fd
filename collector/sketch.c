/*
 * sketch.c - DDSketch with a dense, growable bucket store (sketch.h).
 *
 * The store covers only the bucket indices between the smallest and the
 * largest value seen (plus some slack so a sketch does not reallocate for
 * every new extreme), inside the fixed index range [IDX_MIN, IDX_MAX] that
 * COL_SKETCH_MIN_MS..COL_SKETCH_MAX_MS map to: memory is bounded by
 * COL_SKETCH_MAX_BINS counters whatever is added.
 */
#include "config.h"
#include "sketch.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* gamma = (1 + a) / (1 - a) for a = COL_SKETCH_ALPHA; the constants are
 * precomputed so adding a value costs one log(), and check_sketch.c checks
 * them against the formula. 2 / (gamma + 1) is exactly 1 - a. */
#define SK_LN_GAMMA 0.019800646904042287
#define SK_INV_LN_GAMMA 50.50340046192384
#define SK_MID (1.0 - COL_SKETCH_ALPHA)
#define IDX_MIN (-348) /* ceil(ln(COL_SKETCH_MIN_MS) / ln gamma) */
#define IDX_MAX 1047   /* ceil(ln(COL_SKETCH_MAX_MS) / ln gamma) */
#define GROW_SLACK 16

_Static_assert(IDX_MAX - IDX_MIN + 1 <= COL_SKETCH_MAX_BINS, "bucket range");

void col_sketch_init(struct col_sketch *s)
{
	memset(s, 0, sizeof *s);
}

void col_sketch_release(struct col_sketch *s)
{
	free(s->bins);
	memset(s, 0, sizeof *s);
}

struct col_sketch *col_sketch_new(void)
{
	return calloc(1, sizeof(struct col_sketch));
}

void col_sketch_free(struct col_sketch *s)
{
	if (s == NULL)
		return;
	free(s->bins);
	free(s);
}

uint64_t col_sketch_count(const struct col_sketch *s)
{
	return s->count;
}

static int index_of(double v)
{
	if (v >= COL_SKETCH_MAX_MS)
		return IDX_MAX;
	int i = (int)ceil(log(v) * SK_INV_LN_GAMMA);
	if (i < IDX_MIN)
		i = IDX_MIN;
	if (i > IDX_MAX)
		i = IDX_MAX;
	return i;
}

static double value_of(int idx)
{
	return exp(idx * SK_LN_GAMMA) * SK_MID;
}

/* Makes the store cover bucket indices [lo, hi] (within IDX_MIN..IDX_MAX).
 * 0 or -ENOMEM with the store unchanged. */
static int ensure(struct col_sketch *s, int lo, int hi)
{
	if (s->nbins > 0 && lo >= s->lo && hi < s->lo + (int)s->nbins)
		return 0;
	int nlo = lo, nhi = hi;
	if (s->nbins > 0) {
		if (s->lo < nlo)
			nlo = s->lo;
		if (s->lo + (int)s->nbins - 1 > nhi)
			nhi = s->lo + (int)s->nbins - 1;
	}
	/* Slack only on the side that grows. */
	if (s->nbins == 0 || lo < s->lo)
		nlo -= GROW_SLACK;
	if (s->nbins == 0 || hi >= s->lo + (int)s->nbins)
		nhi += GROW_SLACK;
	if (nlo < IDX_MIN)
		nlo = IDX_MIN;
	if (nhi > IDX_MAX)
		nhi = IDX_MAX;
	uint32_t n = (uint32_t)(nhi - nlo + 1);
	uint64_t *b = calloc(n, sizeof *b);
	if (b == NULL)
		return -ENOMEM;
	if (s->nbins > 0)
		memcpy(b + (s->lo - nlo), s->bins, s->nbins * sizeof *b);
	free(s->bins);
	s->bins = b;
	s->lo = nlo;
	s->nbins = n;
	return 0;
}

static void note_extremes(struct col_sketch *s, double min, double max)
{
	if (s->count == 0 || min < s->min)
		s->min = min;
	if (s->count == 0 || max > s->max)
		s->max = max;
}

int col_sketch_add(struct col_sketch *s, double v)
{
	if (!(v > 0)) /* negative, zero or NaN */
		v = 0;
	if (v < COL_SKETCH_MIN_MS) {
		note_extremes(s, v, v);
		s->zero++;
		s->count++;
		return 0;
	}
	int i = index_of(v);
	if (ensure(s, i, i) < 0)
		return -ENOMEM;
	note_extremes(s, v, v);
	s->bins[i - s->lo]++;
	s->count++;
	return 0;
}

int col_sketch_merge(struct col_sketch *dst, const struct col_sketch *src)
{
	if (src->count == 0)
		return 0;
	if (src->nbins > 0) {
		/* Only the non-empty span of src needs room in dst. */
		uint32_t a = 0, b = src->nbins;
		while (a < b && src->bins[a] == 0)
			a++;
		while (b > a && src->bins[b - 1] == 0)
			b--;
		if (a < b) {
			if (ensure(dst, src->lo + (int)a, src->lo + (int)b - 1) < 0)
				return -ENOMEM;
			for (uint32_t i = a; i < b; i++)
				dst->bins[src->lo + (int)i - dst->lo] += src->bins[i];
		}
	}
	note_extremes(dst, src->min, src->max);
	dst->zero += src->zero;
	dst->count += src->count;
	return 0;
}

int col_sketch_copy(struct col_sketch *dst, const struct col_sketch *src)
{
	col_sketch_init(dst);
	int rc = col_sketch_merge(dst, src);
	if (rc < 0)
		col_sketch_release(dst);
	return rc;
}

static double clamp(const struct col_sketch *s, double v)
{
	if (v < s->min)
		return s->min;
	if (v > s->max)
		return s->max;
	return v;
}

/* The rank DDSketch answers for: floor(q * (n - 1)), 0-based. */
static uint64_t rank_of(const struct col_sketch *s, double q)
{
	if (!(q > 0)) /* also NaN */
		q = 0;
	if (q > 1)
		q = 1;
	return (uint64_t)floor(q * (double)(s->count - 1));
}

void col_sketch_quantiles(const struct col_sketch *s, const double *qs,
                          double *out, size_t n)
{
	size_t j = 0;
	if (s->count == 0) {
		for (; j < n; j++)
			out[j] = 0;
		return;
	}
	/* The first and last ranks are the exact min and max; the zero
	 * bucket answers with the exact min too (its values are all < 1 us). */
	uint64_t cum = s->zero;
	uint32_t i = 0;
	double v = s->min;
	for (; j < n; j++) {
		uint64_t r = rank_of(s, qs[j]);
		if (r == s->count - 1) {
			out[j] = s->max;
			continue;
		}
		if (r == 0 || r < s->zero) {
			out[j] = s->min;
			continue;
		}
		while (r >= cum && i < s->nbins) { /* walk to the bucket holding r */
			cum += s->bins[i];
			v = clamp(s, value_of(s->lo + (int)i));
			i++;
		}
		out[j] = r < cum ? v : s->max; /* s->max only if counts were inconsistent */
	}
}

double col_sketch_quantile(const struct col_sketch *s, double q)
{
	double v;
	col_sketch_quantiles(s, &q, &v, 1);
	return v;
}

/* ---- serialisation ---- */

#define SK_FORMAT 1

struct sbuf {
	uint8_t *p;
	size_t len, cap;
};

static void put_varint(struct sbuf *b, uint64_t v)
{
	do {
		uint8_t byte = v & 0x7f;
		v >>= 7;
		b->p[b->len++] = byte | (v ? 0x80 : 0);
	} while (v);
}

static void put_f64(struct sbuf *b, double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	for (int i = 0; i < 8; i++)
		b->p[b->len++] = (uint8_t)(u >> (8 * i));
}

int col_sketch_encode(const struct col_sketch *s, uint8_t **out, size_t *len)
{
	uint32_t nonempty = 0;
	for (uint32_t i = 0; i < s->nbins; i++)
		nonempty += s->bins[i] != 0;
	/* Worst case: 10 bytes per varint. */
	size_t cap = 2 + 10 + 10 + 16 + 10 + (size_t)nonempty * 20;
	struct sbuf b = { malloc(cap), 0, cap };
	if (b.p == NULL)
		return -ENOMEM;
	b.p[b.len++] = SK_FORMAT;
	b.p[b.len++] = 0;
	put_varint(&b, s->count);
	put_varint(&b, s->zero);
	put_f64(&b, s->count ? s->min : 0);
	put_f64(&b, s->count ? s->max : 0);
	put_varint(&b, nonempty);
	int64_t prev = 0;
	for (uint32_t i = 0; i < s->nbins; i++) {
		if (s->bins[i] == 0)
			continue;
		int64_t idx = s->lo + (int64_t)i, d = idx - prev;
		put_varint(&b, ((uint64_t)d << 1) ^ (uint64_t)(d >> 63)); /* zigzag */
		put_varint(&b, s->bins[i]);
		prev = idx;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	int bad;
};

static uint64_t get_varint(struct rbuf *r)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (r->off >= r->len) {
			r->bad = 1;
			return 0;
		}
		uint8_t byte = r->p[r->off++];
		v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80))
			return v;
	}
	r->bad = 1;
	return 0;
}

static double get_f64(struct rbuf *r)
{
	uint64_t u = 0;
	if (r->len - r->off < 8) {
		r->bad = 1;
		return 0;
	}
	for (int i = 0; i < 8; i++)
		u |= (uint64_t)r->p[r->off++] << (8 * i);
	double d;
	memcpy(&d, &u, sizeof d);
	return d;
}

int col_sketch_merge_encoded(struct col_sketch *dst, const uint8_t *blob, size_t len)
{
	struct rbuf r = { blob, len, 0, 0 };
	if (len < 2 || blob[0] != SK_FORMAT || blob[1] != 0)
		return -EINVAL;
	r.off = 2;
	struct col_sketch t;
	col_sketch_init(&t);
	t.count = get_varint(&r);
	t.zero = get_varint(&r);
	t.min = get_f64(&r);
	t.max = get_f64(&r);
	uint64_t nonempty = get_varint(&r);
	if (r.bad || t.zero > t.count || nonempty > IDX_MAX - IDX_MIN + 1 ||
	    (t.count > 0 && !(t.min >= 0 && t.min <= t.max && isfinite(t.max))))
		return -EINVAL;
	/* First pass: validate and find the index span. */
	size_t start = r.off;
	int64_t idx = 0, lo = 0, hi = 0;
	uint64_t sum = t.zero;
	for (uint64_t k = 0; k < nonempty; k++) {
		uint64_t z = get_varint(&r);
		int64_t d = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
		uint64_t c = get_varint(&r);
		if (r.bad || (k > 0 && d <= 0) || c == 0 || c > t.count - sum)
			return -EINVAL;
		/* Bound the delta before adding so a hostile blob cannot overflow. */
		if (d < IDX_MIN - IDX_MAX || d > IDX_MAX - IDX_MIN)
			return -EINVAL;
		idx += d;
		if (idx < IDX_MIN || idx > IDX_MAX)
			return -EINVAL;
		if (k == 0)
			lo = idx;
		hi = idx;
		sum += c;
	}
	if (sum != t.count || r.off != len)
		return -EINVAL;
	if (t.count == 0)
		return 0;
	/* Second pass: fill a temporary store, then merge (dst unchanged on
	 * failure). */
	if (nonempty > 0) {
		t.lo = (int32_t)lo;
		t.nbins = (uint32_t)(hi - lo + 1);
		t.bins = calloc(t.nbins, sizeof *t.bins);
		if (t.bins == NULL)
			return -ENOMEM;
		r.off = start;
		idx = 0;
		for (uint64_t k = 0; k < nonempty; k++) {
			uint64_t z = get_varint(&r);
			idx += (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
			t.bins[idx - lo] = get_varint(&r);
		}
	}
	int rc = col_sketch_merge(dst, &t);
	col_sketch_release(&t);
	return rc;
}

/*
 * check_sketch.c - the DDSketch (collector/sketch.h): quantiles within 1 %
 * of the exact ones on several distributions, merge == sketch of the
 * union, serialisation round trip and rejection of damaged blobs, empty
 * and extreme values, bounded memory.
 */
#include "config.h"
#include "check_suites.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sketch.h"

/* A deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
	rng_state = s ? s : 0x9e3779b97f4a7c15ULL;
}

static double rng_unit(void) /* (0, 1) */
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	uint64_t v = rng_state * 0x2545f4914f6cdd1dULL;
	return ((double)(v >> 11) + 0.5) / 9007199254740992.0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The exact quantile DDSketch promises to approximate: the value of rank
 * floor(q * (n - 1)) in sorted order. */
static double exact_quantile(const double *sorted, size_t n, double q)
{
	return sorted[(size_t)floor(q * (double)(n - 1))];
}

static const double test_qs[] = { 0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9,
                                  0.95, 0.99, 0.999, 1 };
#define NQ (sizeof test_qs / sizeof test_qs[0])

/* Adds v[0..n) to a fresh sketch and checks every test quantile. */
static void check_accuracy(const char *name, double *v, size_t n)
{
	struct col_sketch s;
	col_sketch_init(&s);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(col_sketch_add(&s, v[i]), 0);
	ck_assert_uint_eq(col_sketch_count(&s), n);
	qsort(v, n, sizeof *v, cmp_double);
	double got[NQ];
	col_sketch_quantiles(&s, test_qs, got, NQ);
	for (size_t k = 0; k < NQ; k++) {
		double want = exact_quantile(v, n, test_qs[k]);
		double one = col_sketch_quantile(&s, test_qs[k]);
		ck_assert_msg(fabs(got[k] - want) <= 0.01 * want,
		              "%s: q=%g got %.9g want %.9g (rel err %.5f)", name, test_qs[k],
		              got[k], want, want > 0 ? fabs(got[k] - want) / want : 0);
		ck_assert_msg(one == got[k], "%s: quantile() and quantiles() disagree at q=%g",
		              name, test_qs[k]);
	}
	/* q = 0 and q = 1 are the exact minimum and maximum. */
	ck_assert(got[0] == v[0]);
	ck_assert(got[NQ - 1] == v[n - 1]);
	ck_assert_uint_le(s.nbins, COL_SKETCH_MAX_BINS);
	col_sketch_release(&s);
}

#define N 20000

START_TEST(test_uniform)
{
	static double v[N];
	rng_seed(1);
	for (size_t i = 0; i < N; i++)
		v[i] = 1 + 999 * rng_unit();
	check_accuracy("uniform 1..1000", v, N);
}
END_TEST

START_TEST(test_exponential)
{
	static double v[N];
	rng_seed(2);
	for (size_t i = 0; i < N; i++)
		v[i] = -50 * log(rng_unit());
	check_accuracy("exponential mean 50", v, N);
}
END_TEST

START_TEST(test_lognormal)
{
	static double v[N];
	rng_seed(3);
	for (size_t i = 0; i < N; i++) {
		/* Box-Muller: latencies are roughly log-normal, long tail. */
		double z = sqrt(-2 * log(rng_unit())) * cos(2 * M_PI * rng_unit());
		v[i] = exp(3 + 1.5 * z);
	}
	check_accuracy("log-normal", v, N);
}
END_TEST

START_TEST(test_pareto)
{
	static double v[N];
	rng_seed(4);
	for (size_t i = 0; i < N; i++)
		v[i] = 2 / pow(rng_unit(), 1 / 1.2); /* heavy tail: max near 1e4 */
	check_accuracy("pareto", v, N);
}
END_TEST

START_TEST(test_bimodal_wide)
{
	/* Cache hits (~0.05 ms) and misses (~800 ms), and values spanning the
	 * whole range 1 us .. 1e7 ms. */
	static double v[N];
	rng_seed(5);
	for (size_t i = 0; i < N; i++) {
		double u = rng_unit();
		if (i % 10 == 0)
			v[i] = pow(10, -3 + 10 * u); /* 1e-3 .. 1e7 */
		else if (u < 0.6)
			v[i] = 0.05 * (1 + rng_unit());
		else
			v[i] = 800 * (1 + rng_unit());
	}
	check_accuracy("bimodal and wide", v, N);
}
END_TEST

START_TEST(test_constant)
{
	static double v[1000];
	for (size_t i = 0; i < 1000; i++)
		v[i] = 42.0;
	check_accuracy("constant", v, 1000);
	/* Clamped to [min, max], a constant comes back exactly. */
	struct col_sketch s;
	col_sketch_init(&s);
	for (int i = 0; i < 10; i++)
		col_sketch_add(&s, 42.0);
	ck_assert(col_sketch_quantile(&s, 0.5) == 42.0);
	col_sketch_release(&s);
}
END_TEST

START_TEST(test_small_counts)
{
	/* One, two and three values: ranks are exact positions. */
	for (size_t n = 1; n <= 3; n++) {
		double v[3] = { 5, 500, 50 };
		check_accuracy("small", v, n);
	}
}
END_TEST

START_TEST(test_empty)
{
	struct col_sketch s;
	col_sketch_init(&s);
	ck_assert_uint_eq(col_sketch_count(&s), 0);
	ck_assert(col_sketch_quantile(&s, 0.5) == 0);
	ck_assert(col_sketch_quantile(&s, 0) == 0);
	ck_assert(col_sketch_quantile(&s, 1) == 0);
	/* Empty round trip and empty merges. */
	uint8_t *blob;
	size_t len;
	ck_assert_int_eq(col_sketch_encode(&s, &blob, &len), 0);
	struct col_sketch t;
	col_sketch_init(&t);
	ck_assert_int_eq(col_sketch_merge_encoded(&t, blob, len), 0);
	ck_assert_uint_eq(col_sketch_count(&t), 0);
	ck_assert_int_eq(col_sketch_merge(&t, &s), 0);
	ck_assert_uint_eq(col_sketch_count(&t), 0);
	free(blob);
	col_sketch_release(&t);
	col_sketch_release(&s);
	/* Heap version; free(NULL) is a no-op. */
	struct col_sketch *h = col_sketch_new();
	ck_assert_ptr_nonnull(h);
	ck_assert(col_sketch_quantile(h, 0.99) == 0);
	col_sketch_free(h);
	col_sketch_free(NULL);
}
END_TEST

START_TEST(test_extremes)
{
	struct col_sketch s;
	col_sketch_init(&s);
	col_sketch_add(&s, 0);
	col_sketch_add(&s, 1e7);
	ck_assert(col_sketch_quantile(&s, 0) == 0);
	ck_assert(col_sketch_quantile(&s, 1) == 1e7);
	for (int i = 0; i < 98; i++)
		col_sketch_add(&s, 1e7);
	double p50 = col_sketch_quantile(&s, 0.5);
	ck_assert_msg(fabs(p50 - 1e7) <= 0.01 * 1e7, "p50 %g", p50);
	ck_assert(col_sketch_quantile(&s, 0.001) == 0);
	col_sketch_release(&s);

	/* Negative and NaN count as 0; beyond the range is clamped to max. */
	col_sketch_init(&s);
	col_sketch_add(&s, -5);
	col_sketch_add(&s, NAN);
	col_sketch_add(&s, 1e12);
	ck_assert_uint_eq(col_sketch_count(&s), 3);
	ck_assert(col_sketch_quantile(&s, 0) == 0);
	ck_assert(col_sketch_quantile(&s, 0.5) == 0);
	ck_assert(col_sketch_quantile(&s, 1) == 1e12);
	col_sketch_release(&s);

	/* Tiny values below the indexable range answer with the exact min. */
	col_sketch_init(&s);
	col_sketch_add(&s, 0.0004);
	col_sketch_add(&s, 0.0007);
	ck_assert(col_sketch_quantile(&s, 0) == 0.0004);
	ck_assert(col_sketch_quantile(&s, 1) == 0.0007);
	col_sketch_release(&s);
}
END_TEST

START_TEST(test_bounded_memory)
{
	struct col_sketch s;
	col_sketch_init(&s);
	/* Every decade from 1e-4 to 1e10, many times: all buckets in use. */
	for (double v = 1e-4; v < 1e10; v *= 1.001)
		ck_assert_int_eq(col_sketch_add(&s, v), 0);
	ck_assert_uint_le(s.nbins, COL_SKETCH_MAX_BINS);
	ck_assert_uint_gt(s.nbins, 1000);
	col_sketch_release(&s);
}
END_TEST

/* Encodes s into a malloc'ed blob. */
static uint8_t *enc(const struct col_sketch *s, size_t *len)
{
	uint8_t *b = NULL;
	ck_assert_int_eq(col_sketch_encode(s, &b, len), 0);
	ck_assert_ptr_nonnull(b);
	return b;
}

static void assert_same(const struct col_sketch *a, const struct col_sketch *b)
{
	ck_assert_uint_eq(a->count, b->count);
	ck_assert_uint_eq(a->zero, b->zero);
	ck_assert(a->min == b->min);
	ck_assert(a->max == b->max);
	double qa[NQ], qb[NQ];
	col_sketch_quantiles(a, test_qs, qa, NQ);
	col_sketch_quantiles(b, test_qs, qb, NQ);
	for (size_t k = 0; k < NQ; k++)
		ck_assert_msg(qa[k] == qb[k], "q=%g: %.17g != %.17g", test_qs[k], qa[k], qb[k]);
	/* The encoding holds exactly the non-empty buckets: equal blobs mean
	 * equal sketches. */
	size_t la, lb;
	uint8_t *ba = enc(a, &la), *bb = enc(b, &lb);
	ck_assert_uint_eq(la, lb);
	ck_assert(memcmp(ba, bb, la) == 0);
	free(ba);
	free(bb);
}

START_TEST(test_merge_is_union)
{
	struct col_sketch all, a, b, c;
	col_sketch_init(&all);
	col_sketch_init(&a);
	col_sketch_init(&b);
	col_sketch_init(&c);
	rng_seed(6);
	for (int i = 0; i < 30000; i++) {
		double v = -20 * log(rng_unit());
		if (i % 7 == 0)
			v = 0; /* some in the zero bucket */
		struct col_sketch *part = i % 3 == 0 ? &a : i % 3 == 1 ? &b : &c;
		/* The parts cover different ranges, so merging must grow. */
		if (part == &b)
			v *= 1000;
		col_sketch_add(part, v);
		col_sketch_add(&all, v);
	}
	struct col_sketch m;
	col_sketch_init(&m);
	ck_assert_int_eq(col_sketch_merge(&m, &a), 0);
	ck_assert_int_eq(col_sketch_merge(&m, &b), 0);
	ck_assert_int_eq(col_sketch_merge(&m, &c), 0);
	assert_same(&m, &all);

	/* Order does not matter, and merging into a non-empty sketch works. */
	struct col_sketch m2;
	ck_assert_int_eq(col_sketch_copy(&m2, &c), 0);
	ck_assert_int_eq(col_sketch_merge(&m2, &b), 0);
	ck_assert_int_eq(col_sketch_merge(&m2, &a), 0);
	assert_same(&m2, &all);

	/* Merging through blobs (how stored minutes are combined) too. */
	struct col_sketch m3;
	col_sketch_init(&m3);
	struct col_sketch *parts[3] = { &a, &b, &c };
	for (int i = 0; i < 3; i++) {
		size_t len;
		uint8_t *blob = enc(parts[i], &len);
		ck_assert_int_eq(col_sketch_merge_encoded(&m3, blob, len), 0);
		free(blob);
	}
	assert_same(&m3, &all);

	col_sketch_release(&m3);
	col_sketch_release(&m2);
	col_sketch_release(&m);
	col_sketch_release(&all);
	col_sketch_release(&a);
	col_sketch_release(&b);
	col_sketch_release(&c);
}
END_TEST

START_TEST(test_round_trip)
{
	struct col_sketch s, t;
	col_sketch_init(&s);
	col_sketch_init(&t);
	rng_seed(7);
	for (int i = 0; i < 5000; i++)
		col_sketch_add(&s, exp(8 * rng_unit()) - 1);
	col_sketch_add(&s, 0);
	col_sketch_add(&s, 1e7);
	size_t len;
	uint8_t *blob = enc(&s, &len);
	ck_assert_uint_lt(len, 4096); /* sparse: a few bytes per bucket */
	ck_assert_int_eq(col_sketch_merge_encoded(&t, blob, len), 0);
	assert_same(&s, &t);
	free(blob);
	col_sketch_release(&s);
	col_sketch_release(&t);
}
END_TEST

START_TEST(test_bad_blobs)
{
	struct col_sketch s, t;
	col_sketch_init(&s);
	col_sketch_init(&t);
	for (int i = 1; i <= 100; i++)
		col_sketch_add(&s, i);
	col_sketch_add(&t, 3); /* the target: must stay unchanged on failure */
	size_t len;
	uint8_t *blob = enc(&s, &len);

	/* Every truncation is refused. */
	for (size_t n = 0; n < len; n++)
		ck_assert_int_eq(col_sketch_merge_encoded(&t, blob, n), -EINVAL);
	/* A trailing byte, an unknown version, a wrong flag byte. */
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, blob, len);
	longer[len] = 0;
	ck_assert_int_eq(col_sketch_merge_encoded(&t, longer, len + 1), -EINVAL);
	longer[0] = 2;
	ck_assert_int_eq(col_sketch_merge_encoded(&t, longer, len), -EINVAL);
	longer[0] = 1;
	longer[1] = 1;
	ck_assert_int_eq(col_sketch_merge_encoded(&t, longer, len), -EINVAL);
	free(longer);
	/* Single-byte corruptions never crash and either fail or keep the
	 * counts consistent. */
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			blob[i] ^= (uint8_t)(1 << bit);
			struct col_sketch u;
			col_sketch_init(&u);
			int rc = col_sketch_merge_encoded(&u, blob, len);
			ck_assert(rc == 0 || rc == -EINVAL);
			if (rc == 0) {
				uint64_t sum = u.zero;
				for (uint32_t k = 0; k < u.nbins; k++)
					sum += u.bins[k];
				ck_assert_uint_eq(sum, u.count);
			}
			col_sketch_release(&u);
			blob[i] ^= (uint8_t)(1 << bit);
		}
	}
	ck_assert_uint_eq(col_sketch_count(&t), 1);
	ck_assert(col_sketch_quantile(&t, 0.5) == 3);
	free(blob);
	col_sketch_release(&s);
	col_sketch_release(&t);
}
END_TEST

Suite *sketch_suite(void)
{
	Suite *s = suite_create("sketch");
	TCase *acc = tcase_create("accuracy");
	tcase_add_test(acc, test_uniform);
	tcase_add_test(acc, test_exponential);
	tcase_add_test(acc, test_lognormal);
	tcase_add_test(acc, test_pareto);
	tcase_add_test(acc, test_bimodal_wide);
	tcase_add_test(acc, test_constant);
	tcase_add_test(acc, test_small_counts);
	suite_add_tcase(s, acc);
	TCase *edge = tcase_create("edges");
	tcase_add_test(edge, test_empty);
	tcase_add_test(edge, test_extremes);
	tcase_add_test(edge, test_bounded_memory);
	suite_add_tcase(s, edge);
	TCase *ser = tcase_create("merge and serialise");
	tcase_add_test(ser, test_merge_is_union);
	tcase_add_test(ser, test_round_trip);
	tcase_add_test(ser, test_bad_blobs);
	suite_add_tcase(s, ser);
	return s;
}

/*
 * check_profile.c - CPU profiles in the collector (collector/profile.h):
 * the AP_REC_PROFILE wire record, folding per endpoint with its bounds,
 * the collapsed and speedscope formats, top functions by self and total
 * samples, and ingest attributing stacks to the service, method and route.
 */
#include "config.h"
#include "check_suites.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "ap_config.h"
#include "ap_wire.h"
#include "ingest.h"
#include "profile.h"

/* ---- wire ---- */

START_TEST(wire_roundtrip)
{
	struct ap_rec_profile r = {
		.req_id = 0x0102030405060708ull, .tid = 77, .count = 42,
		.flags = AP_PROFF_HEADER | AP_PROFF_TRUNCATED,
		.method = { "GET", 3 }, .path = { "/a/1", 4 }, .stack = { "main;f;g", 8 },
	};
	uint8_t buf[256];
	size_t n = ap_wire_put_profile(buf, sizeof buf, &r);
	ck_assert_uint_eq(n, ap_wire_profile_size(&r));
	/* Golden header: type 7, reserved 0, payload length. */
	const uint8_t hdr[8] = { 7, 0, 0, 0, (uint8_t)(n - 8), 0, 0, 0 };
	ck_assert_mem_eq(buf, hdr, 8);
	static const uint8_t head[] = { 8, 7, 6, 5, 4, 3, 2, 1, 77, 0, 0, 0, 42, 0, 0, 0, 3, 0,
	                                3, 0, 'G', 'E', 'T' };
	ck_assert_mem_eq(buf + 8, head, sizeof head);
	struct ap_rec_profile d;
	ck_assert_int_eq(ap_wire_get_profile(buf + 8, (uint32_t)(n - 8), &d), 0);
	ck_assert_uint_eq(d.req_id, r.req_id);
	ck_assert_uint_eq(d.tid, 77);
	ck_assert_uint_eq(d.count, 42);
	ck_assert_uint_eq(d.flags, r.flags);
	ck_assert_int_eq(d.stack.len, 8);
	ck_assert_mem_eq(d.stack.p, "main;f;g", 8);
	ck_assert_mem_eq(d.path.p, "/a/1", 4);
	/* Every truncation is refused; too small a buffer writes nothing. */
	for (uint32_t k = 0; k < n - 8; k++)
		ck_assert_int_eq(ap_wire_get_profile(buf + 8, k, &d), -EBADMSG);
	ck_assert_uint_eq(ap_wire_put_profile(buf, n - 1, &r), 0);
}
END_TEST

/* ---- the store and its formats ---- */

static struct col_prof *prof;

static void setup(void)
{
	prof = col_prof_new();
	ck_assert_ptr_nonnull(prof);
}

static void teardown(void)
{
	col_prof_free(prof);
	prof = NULL;
}

static void add(const char *svc, const char *m, const char *route, uint64_t req,
                const char *stack, uint64_t n)
{
	ck_assert_int_eq(col_prof_add(prof, svc, m, route, req, stack, strlen(stack), n), 0);
}

static void fill(void)
{
	add("api", "GET", "/sin", 1, "main;serve;burn;[libm.so.6]", 90);
	add("api", "GET", "/sin", 1, "main;serve;burn", 8);
	add("api", "GET", "/sin", 2, "main;serve;burn;[libm.so.6]", 100);
	add("api", "GET", "/sin", 2, "main;serve;write", 2);
	add("api", "GET", "/spin", 3, "main;serve;spin", 50);
	add("api", "POST", "/sin", 4, "main;serve;post", 5);
	add("other", "GET", "/sin", 5, "main;serve;burn", 1);
}

static char *collapsed(const char *svc, const char *m, const char *route)
{
	struct col_prof_rows rows;
	ck_assert_int_eq(col_prof_select(prof, svc, m, route, &rows), 0);
	size_t len = 0;
	char *t = col_prof_collapsed(&rows, &len);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(len, strlen(t));
	col_prof_rows_free(&rows);
	return t;
}

START_TEST(collapsed_per_endpoint)
{
	fill();
	char *t = collapsed("api", "GET", "/sin");
	ck_assert_str_eq(t, "main;serve;burn 8\n"
	                    "main;serve;burn;[libm.so.6] 190\n"
	                    "main;serve;write 2\n");
	free(t);
	/* Filters: method only merges every route and service of that method. */
	t = collapsed(NULL, "GET", NULL);
	ck_assert_str_eq(t, "main;serve;burn 9\n"
	                    "main;serve;burn;[libm.so.6] 190\n"
	                    "main;serve;spin 50\n"
	                    "main;serve;write 2\n");
	free(t);
	t = collapsed("api", "DELETE", NULL);
	ck_assert_str_eq(t, "");
	free(t);
	/* Nothing selected: no functions, and a speedscope file with no profile. */
	struct col_prof_rows rows;
	ck_assert_int_eq(col_prof_select(prof, "nobody", NULL, NULL, &rows), 0);
	ck_assert_uint_eq(rows.n, 0);
	struct col_prof_fn *f;
	size_t n = 99;
	ck_assert_int_eq(col_prof_top(&rows, 0, &f, &n), 0);
	ck_assert_uint_eq(n, 0);
	col_prof_fns_free(f, n);
	size_t len;
	t = col_prof_speedscope(&rows, &len);
	ck_assert_ptr_nonnull(t);
	json_t *doc = json_loads(t, 0, NULL);
	ck_assert_ptr_nonnull(doc);
	ck_assert_uint_eq(json_array_size(json_object_get(doc, "profiles")), 0);
	json_decref(doc);
	free(t);
	col_prof_rows_free(&rows);
}
END_TEST

START_TEST(select_rows)
{
	fill();
	struct col_prof_rows rows;
	ck_assert_int_eq(col_prof_select(prof, "api", NULL, NULL, &rows), 0);
	ck_assert_uint_eq(rows.n, 3);
	/* Most samples first. */
	ck_assert_str_eq(rows.v[0].route, "/sin");
	ck_assert_str_eq(rows.v[0].method, "GET");
	ck_assert_uint_eq(rows.v[0].samples, 200);
	ck_assert_uint_eq(rows.v[0].requests, 2);
	ck_assert_uint_eq(rows.v[0].n, 3);
	ck_assert_str_eq(rows.v[1].route, "/spin");
	ck_assert_uint_eq(rows.v[1].requests, 1);
	ck_assert_str_eq(rows.v[2].method, "POST");
	col_prof_rows_free(&rows);
	col_prof_rows_free(&rows); /* harmless twice */
}
END_TEST

START_TEST(empty_stack_and_bounds)
{
	ck_assert_int_eq(col_prof_add(prof, "api", "GET", "/x", 1, "", 0, 3), 0);
	char buf[64];
	for (int i = 0; i < COL_PROF_MAX_STACKS + 10; i++) {
		snprintf(buf, sizeof buf, "main;f%d", i);
		add("api", "GET", "/y", 1, buf, 1);
	}
	char *t = collapsed("api", "GET", "/x");
	ck_assert_str_eq(t, "[unknown] 3\n");
	free(t);
	struct col_prof_rows rows;
	ck_assert_int_eq(col_prof_select(prof, "api", "GET", "/y", &rows), 0);
	ck_assert_uint_eq(rows.n, 1);
	/* The cap holds COL_PROF_MAX_STACKS stacks, the last one "[other]". */
	ck_assert_uint_eq(rows.v[0].n, COL_PROF_MAX_STACKS + 1);
	ck_assert_uint_eq(rows.v[0].samples, COL_PROF_MAX_STACKS + 10);
	uint64_t other = 0;
	for (size_t i = 0; i < rows.v[0].n; i++)
		if (strcmp(rows.v[0].v[i].stack, COL_PROF_OTHER) == 0)
			other = rows.v[0].v[i].count;
	ck_assert_uint_eq(other, 10);
	col_prof_rows_free(&rows);
	ck_assert_uint_eq(col_prof_dropped(prof), 0);
}
END_TEST

/* Any local process may send stacks of up to 64 KiB: each is cut to
 * COL_PROF_STACK_MAX at a frame boundary, and all endpoints' stacks
 * together stay within COL_PROF_MAX_BYTES, the rest counting as each
 * endpoint's "[other]"; no sample is lost. */
START_TEST(stack_bytes_bounded)
{
	size_t big = 60000;
	char *buf = malloc(big + 1);
	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < big; i++)
		buf[i] = i % 100 == 99 ? ';' : 'f';
	buf[big] = '\0';
	ck_assert_int_eq(col_prof_add(prof, "api", "GET", "/cut", 1, buf, big, 1), 0);
	struct col_prof_rows rows;
	ck_assert_int_eq(col_prof_select(prof, "api", "GET", "/cut", &rows), 0);
	ck_assert_uint_eq(rows.n, 1);
	size_t cut = strlen(rows.v[0].v[0].stack);
	ck_assert_uint_le(cut, COL_PROF_STACK_MAX);
	ck_assert_uint_ge(cut, COL_PROF_STACK_MAX - 100);
	ck_assert_int_eq(buf[cut], ';');
	col_prof_rows_free(&rows);

	/* 8 endpoints of 1,500 distinct stacks of ~16 KiB: 190 MiB offered. */
	const int neps = 8, nst = 1500;
	uint64_t sent = 0;
	char route[32];
	for (int e = 0; e < neps; e++) {
		snprintf(route, sizeof route, "/big%d", e);
		for (int i = 0; i < nst; i++) {
			int n = snprintf(buf, 32, "%d;%d;", e, i);
			buf[n] = 'f'; /* the rest of buf: as above */
			ck_assert_int_eq(col_prof_add(prof, "api", "GET", route, 2, buf,
			                              COL_PROF_STACK_MAX, 1), 0);
			sent++;
		}
	}
	ck_assert_int_eq(col_prof_select(prof, "api", NULL, NULL, &rows), 0);
	uint64_t samples = 0, bytes = 0, other = 0;
	for (size_t e = 0; e < rows.n; e++) {
		if (strncmp(rows.v[e].route, "/big", 4) != 0)
			continue;
		samples += rows.v[e].samples;
		for (size_t i = 0; i < rows.v[e].n; i++) {
			bytes += strlen(rows.v[e].v[i].stack);
			if (strcmp(rows.v[e].v[i].stack, COL_PROF_OTHER) == 0)
				other += rows.v[e].v[i].count;
		}
	}
	col_prof_rows_free(&rows);
	ck_assert_uint_eq(samples, sent);
	ck_assert_uint_le(bytes, COL_PROF_MAX_BYTES);
	ck_assert_uint_gt(other, 0);
	ck_assert_uint_eq(col_prof_dropped(prof), 0);
	free(buf);
}
END_TEST

START_TEST(top_functions)
{
	fill();
	add("api", "GET", "/sin", 6, "main;rec;rec;rec", 4); /* recursion counts once */
	struct col_prof_rows rows;
	ck_assert_int_eq(col_prof_select(prof, "api", "GET", "/sin", &rows), 0);
	struct col_prof_fn *f;
	size_t n;
	ck_assert_int_eq(col_prof_top(&rows, 0, &f, &n), 0);
	ck_assert_uint_eq(n, 6); /* main serve burn [libm.so.6] write rec */
	ck_assert_str_eq(f[0].name, "[libm.so.6]");
	ck_assert_uint_eq(f[0].self, 190);
	ck_assert_uint_eq(f[0].total, 190);
	ck_assert_str_eq(f[1].name, "burn");
	ck_assert_uint_eq(f[1].self, 8);
	ck_assert_uint_eq(f[1].total, 198);
	ck_assert_str_eq(f[2].name, "rec");
	ck_assert_uint_eq(f[2].self, 4);
	ck_assert_uint_eq(f[2].total, 4);
	ck_assert_str_eq(f[3].name, "write");
	/* Self 0: by total, then name. */
	ck_assert_str_eq(f[4].name, "main");
	ck_assert_uint_eq(f[4].total, 204);
	ck_assert_str_eq(f[5].name, "serve");
	ck_assert_uint_eq(f[5].total, 200);
	col_prof_fns_free(f, n);
	ck_assert_int_eq(col_prof_top(&rows, 1, &f, &n), 0);
	ck_assert_str_eq(f[0].name, "main");
	ck_assert_str_eq(f[1].name, "serve");
	ck_assert_str_eq(f[2].name, "burn");
	col_prof_fns_free(f, n);
	col_prof_rows_free(&rows);
}
END_TEST

START_TEST(speedscope_format)
{
	fill();
	add("api", "GET", "/spin", 3, "main;with \"quote\"", 1);
	struct col_prof_rows rows;
	ck_assert_int_eq(col_prof_select(prof, "api", "GET", NULL, &rows), 0);
	size_t len = 0;
	char *t = col_prof_speedscope(&rows, &len);
	col_prof_rows_free(&rows);
	ck_assert_ptr_nonnull(t);
	json_error_t e;
	json_t *doc = json_loads(t, 0, &e);
	ck_assert_msg(doc != NULL, "invalid JSON: %s in %s", e.text, t);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "$schema")),
	                 "https://www.speedscope.app/file-format-schema.json");
	json_t *frames = json_object_get(json_object_get(doc, "shared"), "frames");
	json_t *profiles = json_object_get(doc, "profiles");
	ck_assert_uint_eq(json_array_size(profiles), 2);
	ck_assert_uint_eq(json_array_size(frames), 7); /* main serve burn [libm] write spin quote */
	json_t *p0 = json_array_get(profiles, 0);
	ck_assert_str_eq(json_string_value(json_object_get(p0, "type")), "sampled");
	ck_assert_str_eq(json_string_value(json_object_get(p0, "name")), "GET /sin (api)");
	ck_assert_int_eq(json_integer_value(json_object_get(p0, "endValue")), 200);
	json_t *samples = json_object_get(p0, "samples"), *weights = json_object_get(p0, "weights");
	ck_assert_uint_eq(json_array_size(samples), 3);
	ck_assert_uint_eq(json_array_size(weights), 3);
	/* Rebuild the folded text from indices: it must match the collapsed one. */
	char rebuilt[512] = "";
	long long sum = 0;
	for (size_t i = 0; i < json_array_size(samples); i++) {
		json_t *s = json_array_get(samples, i);
		for (size_t k = 0; k < json_array_size(s); k++) {
			json_int_t ix = json_integer_value(json_array_get(s, k));
			ck_assert(ix >= 0 && (size_t)ix < json_array_size(frames));
			strcat(rebuilt, k ? ";" : "");
			strcat(rebuilt, json_string_value(json_object_get(json_array_get(frames, (size_t)ix), "name")));
		}
		json_int_t w = json_integer_value(json_array_get(weights, i));
		sum += w;
		char num[32];
		snprintf(num, sizeof num, " %lld\n", (long long)w);
		strcat(rebuilt, num);
	}
	ck_assert_int_eq(sum, 200);
	char *c = collapsed("api", "GET", "/sin");
	ck_assert_str_eq(rebuilt, c);
	free(c);
	json_t *p1 = json_array_get(profiles, 1);
	ck_assert_str_eq(json_string_value(json_object_get(p1, "name")), "GET /spin (api)");
	json_decref(doc);
	free(t);
}
END_TEST

/* ---- ingest ---- */

START_TEST(ingest_attributes)
{
	struct ap_config cfg;
	ck_assert_int_eq(ap_config_init(&cfg), 0);
	struct col_agg *agg = col_agg_new(cfg.max_routes);
	struct col_ingest *in = col_ingest_new(&cfg, agg);
	ck_assert_ptr_nonnull(in);
	uint8_t b[4096];
	struct ap_batch_hdr h = { .seq = 1, .pid = 9, .wall_minus_mono_ns = 0 };
	size_t n = ap_wire_put_batch_hdr(b, sizeof b, &h);
	struct ap_rec_hello hello = { .pid = 9, .ppid = 1, .start_mono_ns = 1,
	                              .service = { "shop", 4 }, .exe = { "/x", 2 } };
	n += ap_wire_put_hello(b + n, sizeof b - n, &hello);
	const char *paths[] = { "/users/42?tab=a", "/users/43", "/favicon.ico" };
	for (int i = 0; i < 3; i++) {
		struct ap_rec_profile r = {
			.req_id = (uint64_t)i + 1, .tid = 9, .count = 10,
			.method = { "get", 3 }, .path = { paths[i], (uint16_t)strlen(paths[i]) },
			.stack = { "main;handler\nx", 14 },
		};
		n += ap_wire_put_profile(b + n, sizeof b - n, &r);
	}
	col_ingest_process(in, b, n, 9, 0, 1000, 1000);
	struct col_prof_rows rows;
	ck_assert_int_eq(col_prof_select(col_agg_profiles(agg), NULL, NULL, NULL, &rows), 0);
	ck_assert_uint_eq(rows.n, 1); /* /favicon.ico is ignored */
	ck_assert_str_eq(rows.v[0].service, "shop");
	ck_assert_str_eq(rows.v[0].method, "OTHER"); /* methods are case-sensitive */
	ck_assert_str_eq(rows.v[0].route, "/users/{id}");
	ck_assert_uint_eq(rows.v[0].samples, 20);
	ck_assert_uint_eq(rows.v[0].requests, 2);
	ck_assert_str_eq(rows.v[0].v[0].stack, "main;handler?x"); /* cleaned: no newline */
	col_prof_rows_free(&rows);
	col_ingest_free(in);
	col_agg_free(agg);
	ap_config_free(&cfg);
}
END_TEST

Suite *profile_suite(void)
{
	Suite *s = suite_create("profile");
	TCase *tc = tcase_create("wire");
	tcase_add_test(tc, wire_roundtrip);
	suite_add_tcase(s, tc);
	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, collapsed_per_endpoint);
	tcase_add_test(tc, select_rows);
	tcase_add_test(tc, empty_stack_and_bounds);
	tcase_add_test(tc, stack_bytes_bounded);
	tcase_add_test(tc, top_functions);
	tcase_add_test(tc, speedscope_format);
	suite_add_tcase(s, tc);
	tc = tcase_create("ingest");
	tcase_add_test(tc, ingest_attributes);
	suite_add_tcase(s, tc);
	return s;
}

/*
 * check_agg.c - the collector's in-memory side: the hash map, endpoint
 * sets and the aggregate (route cap, services, processes, minutes).
 */
#include "config.h"
#include "check_suites.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "ap_route.h"
#include "epset.h"
#include "hmap.h"

/* ---- hmap ---- */

START_TEST(test_hmap)
{
	enum { N = 20000 };
	static char keys[N][16];
	struct col_hmap *m = col_hmap_new();
	ck_assert_ptr_nonnull(m);
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		ck_assert_int_eq(col_hmap_put(m, keys[i], strlen(keys[i]), keys[i]), 0);
	}
	ck_assert_uint_eq(col_hmap_count(m), N);
	/* Replacing keeps the count. */
	ck_assert_int_eq(col_hmap_put(m, keys[5], strlen(keys[5]), keys[6]), 0);
	ck_assert_ptr_eq(col_hmap_get(m, "k5", 2), keys[6]);
	ck_assert_int_eq(col_hmap_put(m, keys[5], strlen(keys[5]), keys[5]), 0);
	ck_assert_uint_eq(col_hmap_count(m), N);
	/* Delete every third key in a scrambled order: backward shifting must
	 * keep every other key reachable. */
	for (int j = 0; j < N; j++) {
		int i = (int)(((uint64_t)j * 7919) % N);
		if (i % 3 == 0)
			ck_assert_ptr_eq(col_hmap_del(m, keys[i], strlen(keys[i])), keys[i]);
	}
	ck_assert_ptr_null(col_hmap_del(m, "k0", 2));
	for (int i = 0; i < N; i++) {
		void *v = col_hmap_get(m, keys[i], strlen(keys[i]));
		if (i % 3 == 0)
			ck_assert_ptr_null(v);
		else
			ck_assert_ptr_eq(v, keys[i]);
	}
	size_t it = 0, n = 0;
	const void *k;
	size_t kl;
	while (col_hmap_next(m, &it, &k, &kl) != NULL)
		n++;
	ck_assert_uint_eq(n, col_hmap_count(m));
	ck_assert_uint_eq(n, N - (N + 2) / 3);
	ck_assert_ptr_null(col_hmap_get(m, "", 0));
	col_hmap_free(m);
	col_hmap_free(NULL);
}
END_TEST

/* ---- epset ---- */

static void add(struct col_epset *s, const char *svc, const char *m, const char *r,
                double ms, int error)
{
	struct col_ep *e = col_epset_get(s, svc, m, r, 1);
	ck_assert_ptr_nonnull(e);
	struct col_obs o = { .duration_ms = ms, .error = error, .slow = ms >= 1000 };
	ck_assert_int_eq(col_stats_add(&e->st, &o), 0);
	e->dirty = 1;
}

START_TEST(test_epset)
{
	struct col_epset *a = col_epset_new(), *b = col_epset_new();
	for (int i = 0; i < 10; i++)
		add(a, "api", "GET", "/x", 10 + i, 0);
	add(a, "api", "POST", "/x", 2000, 1);
	add(b, "api", "POST", "/x", 4, 0);
	add(b, "web", "GET", "/", 1, 0);
	add(b, "web", "GET", "/", 3, 0);
	ck_assert_ptr_null(col_epset_get(a, "api", "PUT", "/x", 0));
	ck_assert_int_eq(col_epset_merge(a, b, NULL), 0);
	ck_assert_uint_eq(col_epset_count(a), 3);

	struct col_ep_rows rows;
	ck_assert_int_eq(col_epset_rows(a, NULL, &rows), 0);
	ck_assert_uint_eq(rows.n, 3);
	/* By count, then names: api GET /x (10), api POST /x (2), web GET / (2). */
	ck_assert_str_eq(rows.v[0].method, "GET");
	ck_assert_uint_eq(rows.v[0].count, 10);
	ck_assert(rows.v[0].min_ms == 10 && rows.v[0].max_ms == 19);
	ck_assert(rows.v[0].sum_ms == 145);
	ck_assert(rows.v[0].p50_ms >= 13.8 && rows.v[0].p50_ms <= 14.2);
	ck_assert_str_eq(rows.v[1].service, "api");
	ck_assert_str_eq(rows.v[1].method, "POST");
	ck_assert_uint_eq(rows.v[1].error_count, 1);
	ck_assert_uint_eq(rows.v[1].slow_count, 1);
	ck_assert(rows.v[1].min_ms == 4 && rows.v[1].max_ms == 2000);
	ck_assert_str_eq(rows.v[2].service, "web");
	ck_assert_str_eq(rows.v[2].route, "/");
	col_ep_rows_free(&rows);

	ck_assert_int_eq(col_epset_rows(a, "web", &rows), 0);
	ck_assert_uint_eq(rows.n, 1);
	ck_assert_uint_eq(rows.v[0].count, 2);
	col_ep_rows_free(&rows);
	ck_assert_int_eq(col_epset_rows(a, "nope", &rows), 0);
	ck_assert_uint_eq(rows.n, 0);
	col_ep_rows_free(&rows);
	col_epset_free(a);
	col_epset_free(b);
	col_epset_free(NULL);
}
END_TEST

/* ---- agg ---- */

#define T0 (1795335300LL * 1000000000LL) /* 2026-11-22T08:15:00Z, a minute start */
#define MIN_NS (60 * 1000000000LL)

static void req(struct col_agg *a, uint32_t pid, const char *route_in, int64_t ts,
                double ms, char *route_out, char *svc_out)
{
	char route[AP_ROUTE_MAX], svc[COL_SERVICE_MAX];
	snprintf(route, sizeof route, "%s", route_in);
	struct col_obs o = { .duration_ms = ms };
	ck_assert_int_eq(col_agg_request(a, pid, "GET", route, ts, &o, svc, sizeof svc), 0);
	if (route_out)
		strcpy(route_out, route);
	if (svc_out)
		strcpy(svc_out, svc);
}

START_TEST(test_agg_services_and_cap)
{
	struct col_agg *a = col_agg_new(3);
	char route[AP_ROUTE_MAX], svc[COL_SERVICE_MAX];
	/* Records before any HELLO (and of an unseen pid) are "unknown". */
	req(a, 99, "/a", T0, 1, route, svc);
	ck_assert_str_eq(svc, "unknown");
	ck_assert_int_eq(col_agg_datagram(a, 10, 1000, 0, T0), 0);
	req(a, 10, "/a", T0, 1, route, svc);
	ck_assert_str_eq(svc, "unknown");
	col_agg_hello(a, 10, 1, 555, "api", "/usr/bin/api");
	for (int i = 0; i < 5; i++) {
		char r[16];
		snprintf(r, sizeof r, "/r%d", i);
		req(a, 10, r, T0, 1, route, svc);
		ck_assert_str_eq(svc, "api");
		/* The cap is per service: 3 routes, then {other}. */
		ck_assert_str_eq(route, i < 3 ? r : AP_ROUTE_OTHER);
	}
	req(a, 10, "/r1", T0, 1, route, NULL); /* a known route stays */
	ck_assert_str_eq(route, "/r1");
	struct col_totals t;
	col_agg_totals(a, &t);
	ck_assert_uint_eq(t.requests, 8);
	ck_assert_uint_eq(t.other_route, 2);
	ck_assert(t.request_ms == 8);

	struct col_ep_rows rows;
	ck_assert_int_eq(col_agg_endpoints(a, "api", &rows), 0);
	ck_assert_uint_eq(rows.n, 4); /* /r0 /r1 /r2 {other} */
	/* Counts 2, 2, 1, 1; equal counts sort by route. */
	ck_assert_str_eq(rows.v[0].route, "/r1");
	ck_assert_str_eq(rows.v[1].route, AP_ROUTE_OTHER);
	ck_assert_uint_eq(rows.v[1].count, 2);
	ck_assert_str_eq(rows.v[2].route, "/r0");
	col_ep_rows_free(&rows);
	ck_assert_int_eq(col_agg_endpoints(a, NULL, &rows), 0);
	ck_assert_uint_eq(rows.n, 5); /* plus unknown GET /a */
	col_ep_rows_free(&rows);
	col_agg_free(a);
}
END_TEST

/* Any local process may name any service in its HELLO: past
 * COL_MAX_SERVICES, new names go to {other}, known ones keep working. */
START_TEST(test_agg_service_cap)
{
	struct col_agg *a = col_agg_new(10);
	/* As ingest does: a datagram makes the process known, then its HELLO. */
#define HELLO(pid, name) do { \
		ck_assert_int_eq(col_agg_datagram(a, (pid), 1000, 0, T0), 0); \
		col_agg_hello(a, (pid), 0, 1, (name), "/bin/x"); \
	} while (0)
	char route[AP_ROUTE_MAX], svc[COL_SERVICE_MAX], name[32];
	HELLO(1, "first");
	/* "unknown" and "first" exist: fill up to the cap. */
	for (uint32_t i = 2; i < COL_MAX_SERVICES; i++) {
		snprintf(name, sizeof name, "svc-%u", i);
		HELLO(100 + i, name);
	}
	struct col_totals t;
	col_agg_totals(a, &t);
	ck_assert_uint_eq(t.other_service, 0);
	req(a, 100 + COL_MAX_SERVICES - 1, "/a", T0, 1, route, svc);
	ck_assert_str_eq(svc, "svc-999");
	for (uint32_t i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "flood-%u", i);
		HELLO(5000 + i, name);
	}
	req(a, 5000, "/a", T0, 1, route, svc);
	ck_assert_str_eq(svc, COL_OTHER_SERVICE);
	req(a, 9999, "/b", T0, 1, route, svc);
	ck_assert_str_eq(svc, COL_OTHER_SERVICE);
	req(a, 1, "/a", T0, 1, route, svc);       /* a known service stays */
	ck_assert_str_eq(svc, "first");
	HELLO(2, "first"); /* and can be named again */
	req(a, 2, "/a", T0, 1, route, svc);
	ck_assert_str_eq(svc, "first");
	col_agg_totals(a, &t);
	ck_assert_uint_eq(t.other_service, 5000);
	struct col_ep_rows rows;
	ck_assert_int_eq(col_agg_endpoints(a, NULL, &rows), 0);
	ck_assert_uint_eq(rows.n, 4); /* svc-999 /a, {other} /a and /b, first /a */
	col_ep_rows_free(&rows);
	col_agg_free(a);
#undef HELLO
}
END_TEST

/* Routes of all services together stop at COL_MAX_ROUTES_ALL: 25
 * services of 1,000 routes each would be 25,000 endpoints. Past the cap a
 * service's new routes count as its {other}; known routes keep theirs;
 * every request is counted. max_routes larger than the cap wins. */
START_TEST(test_agg_route_cap_all)
{
	struct col_agg *a = col_agg_new(1000);
	char route[AP_ROUTE_MAX], svc[COL_SERVICE_MAX], name[32];
	const uint32_t nsvc = COL_MAX_ROUTES_ALL / 1000 + 5;
	for (uint32_t v = 0; v < nsvc; v++) {
		snprintf(name, sizeof name, "svc-%u", v);
		ck_assert_int_eq(col_agg_datagram(a, 100 + v, 1000, 0, T0), 0);
		col_agg_hello(a, 100 + v, 0, 1, name, "/bin/x");
		for (uint32_t r = 0; r < 1000; r++) {
			char path[32];
			snprintf(path, sizeof path, "/r%u", r);
			req(a, 100 + v, path, T0, 1, route, svc);
		}
	}
	req(a, 100, "/r7", T0, 1, route, svc);      /* known: stays */
	ck_assert_str_eq(route, "/r7");
	req(a, 100 + nsvc - 1, "/r7", T0, 1, route, svc);
	ck_assert_str_eq(route, AP_ROUTE_OTHER);
	struct col_totals t;
	col_agg_totals(a, &t);
	ck_assert_uint_eq(t.requests, nsvc * 1000 + 2);
	ck_assert_uint_eq(t.other_route, 5 * 1000 + 1);
	ck_assert_uint_eq(t.endpoints, COL_MAX_ROUTES_ALL + 5);
	col_agg_free(a);

	/* A max_routes above the collector-wide cap is honoured. */
	a = col_agg_new(COL_MAX_ROUTES_ALL + 10);
	ck_assert_int_eq(col_agg_datagram(a, 7, 1000, 0, T0), 0);
	col_agg_hello(a, 7, 0, 1, "big", "/bin/x");
	for (uint32_t r = 0; r < COL_MAX_ROUTES_ALL + 20; r++) {
		char path[32];
		snprintf(path, sizeof path, "/r%u", r);
		req(a, 7, path, T0, 1, route, svc);
	}
	col_agg_totals(a, &t);
	ck_assert_uint_eq(t.other_route, 10);
	ck_assert_uint_eq(t.endpoints, COL_MAX_ROUTES_ALL + 11);
	col_agg_free(a);
}
END_TEST

START_TEST(test_agg_processes)
{
	struct col_agg *a = col_agg_new(100);
	int64_t s = 1000000000LL;
	col_agg_datagram(a, 20, 33, 10 * s, T0);
	col_agg_hello(a, 20, 1, 7, "web", "/bin/web");
	col_agg_proc_stats(a, 20, 100, 5, 0);
	col_agg_proc_stats(a, 20, 150, 6, 0); /* latest wins */
	col_agg_datagram(a, 21, 33, 12 * s, T0);
	col_agg_hello(a, 99, 1, 7, "ghost", ""); /* no entry: ignored */

	struct col_proc_info *p;
	size_t n;
	ck_assert_int_eq(col_agg_processes(a, 16 * s, &p, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(p[0].pid, 20);
	ck_assert_str_eq(p[0].service, "web");
	ck_assert_uint_eq(p[0].events, 150);
	ck_assert_uint_eq(p[0].dropped, 6);
	ck_assert_uint_eq(p[0].uid, 33);
	ck_assert_int_eq(p[0].connected, 0); /* 6 s silent */
	ck_assert_str_eq(p[1].service, "unknown");
	ck_assert_int_eq(p[1].connected, 1); /* 4 s */
	free(p);

	/* The same pid with a new start time is a new process. */
	col_agg_hello(a, 20, 1, 8, "web2", "/bin/web2");
	ck_assert_int_eq(col_agg_processes(a, 16 * s, &p, &n), 0);
	ck_assert_str_eq(p[0].service, "web2");
	ck_assert_uint_eq(p[0].events, 0);
	free(p);

	ck_assert_uint_eq(col_agg_prune(a, 12 * s + 600 * s, 600 * s, 0, NULL), 1);
	ck_assert_int_eq(col_agg_processes(a, 0, &p, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(p[0].pid, 21);
	free(p);
	col_agg_free(a);
}
END_TEST

START_TEST(test_agg_minutes)
{
	struct col_agg *a = col_agg_new(100);
	int64_t m0 = T0 / 1000000000LL;
	req(a, 1, "/a", T0 + 1, 1, NULL, NULL);
	req(a, 1, "/a", T0 + MIN_NS - 1, 2, NULL, NULL);
	req(a, 1, "/a", T0 + MIN_NS, 3, NULL, NULL);
	req(a, 1, "/b", T0 + 2 * MIN_NS + 5, 4, NULL, NULL);

	struct col_epset *pend = col_epset_new(), *taken = col_epset_new();
	uint64_t id = 99;
	ck_assert_int_eq(col_agg_minutes_copy(a, m0, m0 + 120, NULL, pend, taken, &id), 0);
	ck_assert_uint_eq(id, 0);
	struct col_ep *e = col_epset_get(pend, "unknown", "GET", "/a", 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->st.count, 3);
	ck_assert_ptr_null(col_epset_get(pend, "unknown", "GET", "/b", 0));

	/* Take the first two minutes; they stay visible as "taken". */
	struct col_minute_batch *b = col_agg_minutes_take(a, m0 + 120, INT64_MAX, 7);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(b->id, 7);
	int nmin = 0;
	for (struct col_minute *m = b->minutes; m; m = m->next)
		nmin++;
	ck_assert_int_eq(nmin, 2);
	ck_assert_ptr_null(col_agg_minutes_take(a, INT64_MAX, INT64_MAX, 8)); /* one at a time */

	/* A late request for a taken minute opens a new pending entry. */
	req(a, 1, "/a", T0 + 30 * 1000000000LL, 5, NULL, NULL);
	col_epset_free(pend);
	col_epset_free(taken);
	pend = col_epset_new();
	taken = col_epset_new();
	ck_assert_int_eq(col_agg_minutes_copy(a, m0, m0 + 180, NULL, pend, taken, &id), 0);
	ck_assert_uint_eq(id, 7);
	ck_assert_uint_eq(col_epset_get(taken, "unknown", "GET", "/a", 0)->st.count, 3);
	ck_assert_uint_eq(col_epset_get(pend, "unknown", "GET", "/a", 0)->st.count, 1);
	ck_assert_uint_eq(col_epset_get(pend, "unknown", "GET", "/b", 0)->st.count, 1);
	col_agg_minutes_done(a, b);

	struct col_totals t;
	col_agg_totals(a, &t);
	ck_assert_uint_eq(t.pending_minutes, 2);
	/* Everything, including the far future (a broken sender clock). */
	req(a, 1, "/c", T0 + 1000 * MIN_NS, 1, NULL, NULL);
	b = col_agg_minutes_take(a, m0 + 60, m0 + 600, 8);
	nmin = 0;
	for (struct col_minute *m = b->minutes; m; m = m->next)
		nmin++;
	ck_assert_int_eq(nmin, 2); /* the late m0 entry and the far future one */
	col_agg_minutes_done(a, b);
	col_epset_free(pend);
	col_epset_free(taken);
	col_agg_free(a); /* frees the remaining pending minute */
}
END_TEST

START_TEST(test_agg_load)
{
	struct col_agg *a = col_agg_new(2);
	struct col_stats st = { 0 };
	struct col_obs o = { .duration_ms = 7, .error = 1 };
	col_stats_add(&st, &o);
	col_stats_add(&st, &o);
	ck_assert_int_eq(col_agg_load(a, "api", "GET", "/old1", &st), 0);
	ck_assert_int_eq(col_agg_load(a, "api", "GET", "/old2", &st), 0);
	ck_assert_int_eq(col_agg_load(a, "api", "GET", AP_ROUTE_OTHER, &st), 0);
	col_stats_release(&st);
	/* Loaded routes count toward the cap. */
	col_agg_datagram(a, 5, 0, 0, T0);
	col_agg_hello(a, 5, 1, 1, "api", "");
	char route[AP_ROUTE_MAX];
	req(a, 5, "/new", T0, 1, route, NULL);
	ck_assert_str_eq(route, AP_ROUTE_OTHER);
	req(a, 5, "/old1", T0, 1, route, NULL);
	ck_assert_str_eq(route, "/old1");
	struct col_ep_rows rows;
	ck_assert_int_eq(col_agg_endpoints(a, NULL, &rows), 0);
	ck_assert_uint_eq(rows.n, 3);
	ck_assert_uint_eq(rows.v[0].count, 3);
	ck_assert_uint_eq(rows.v[0].error_count, 2);
	col_ep_rows_free(&rows);
	col_agg_free(a);
}
END_TEST

Suite *agg_suite(void)
{
	Suite *s = suite_create("agg");
	TCase *tc = tcase_create("containers");
	tcase_add_test(tc, test_hmap);
	tcase_add_test(tc, test_epset);
	suite_add_tcase(s, tc);
	tc = tcase_create("aggregate");
	tcase_add_test(tc, test_agg_services_and_cap);
	tcase_add_test(tc, test_agg_service_cap);
	tcase_add_test(tc, test_agg_route_cap_all);
	tcase_add_test(tc, test_agg_processes);
	tcase_add_test(tc, test_agg_minutes);
	tcase_add_test(tc, test_agg_load);
	suite_add_tcase(s, tc);
	return s;
}

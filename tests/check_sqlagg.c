/*
 * check_sqlagg.c - the in-memory SQL aggregates: statement shapes
 * (collector/shapeset.h and col_agg_sql: figures, p95, order, the shape
 * cap, minutes, totals) and the error groups and N+1 patterns
 * (collector/findings.h: counting, latest message and example, filters,
 * order, bounds, persistence hooks and retention).
 */
#include "config.h"
#include "check_suites.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "ap_wire.h"
#include "findings.h"
#include "shapeset.h"
#include "stmt.h"

#define T0 (1795335300LL * 1000000000LL) /* 2026-11-22T08:15:00Z */
#define SEC 1000000000LL
#define MS 1000000ULL

/* A statement of `dur_ms` starting at wall time ts. */
static struct col_stmt *mk(const char *sql, uint64_t fp, uint8_t db, uint8_t flags,
                           int64_t ts, double dur_ms, uint64_t rows)
{
	struct ap_rec_sql r = {
		.req_id = 0, .start_ns = 1000, .end_ns = 1000 + (uint64_t)(dur_ms * 1e6),
		.rows = rows, .fingerprint = fp, .db = db, .flags = flags,
		.error_code = { "1146", 4 }, .error_message = { "no table", 8 },
		.sql = { sql, (uint16_t)strlen(sql) },
	};
	struct col_stmt *s = col_stmt_new(&r, ts - 1000, 100);
	ck_assert_ptr_nonnull(s);
	return s;
}

static void sql(struct col_agg *a, uint32_t pid, const char *text, uint64_t fp, uint8_t db,
                uint8_t flags, int64_t ts, double ms, uint64_t rows)
{
	char svc[COL_SERVICE_MAX];
	struct col_stmt *s = mk(text, fp, db, flags, ts, ms, rows);
	ck_assert_int_eq(col_agg_sql(a, pid, s, svc, sizeof svc), 0);
	col_stmt_free(s);
}

static const struct col_shape_row *find(const struct col_shape_rows *r, const char *svc,
                                        uint64_t fp)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].service, svc) && r->v[i].fp == fp)
			return &r->v[i];
	return NULL;
}

START_TEST(test_shape_stats)
{
	struct col_agg *a = col_agg_new(100);
	col_agg_datagram(a, 7, 0, 0, T0);
	col_agg_hello(a, 7, 1, 1, "api", "/bin/api");
	/* Shape A: 100 calls of 1..100 ms, 2 rows each, 2 errors, the ones at
	 * or above 100 ms slow. */
	for (int i = 1; i <= 100; i++)
		sql(a, 7, "SELECT * FROM a WHERE id = ?", 0xa, AP_DB_POSTGRES,
		    i <= 2 ? AP_SQLF_ERROR : 0, T0 + i, i, 2);
	/* Shape B: fewer calls, more time; rows unknown. */
	for (int i = 0; i < 3; i++)
		sql(a, 7, "SELECT pg_sleep(?)", 0xb, AP_DB_POSTGRES, AP_SQLF_ROWS_UNKNOWN,
		    T0 + 70 * SEC, 5000, 99);
	/* The same fingerprint on another database is another shape. */
	sql(a, 7, "SELECT * FROM a WHERE id = ?", 0xa, AP_DB_SQLITE, 0, T0, 1, 0);
	/* Before a HELLO: "unknown". */
	sql(a, 8, "SELECT 1", 0xc, AP_DB_MYSQL, 0, T0, 1, 1);

	struct col_shape_rows r;
	ck_assert_int_eq(col_agg_shapes(a, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 4);
	ck_assert(r.v[0].fp == 0xb); /* by total time */
	ck_assert(r.v[0].total_ms == 15000 && r.v[0].calls == 3 && r.v[0].rows == 0);
	ck_assert(r.v[0].max_ms == 5000 && r.v[0].slow_count == 3);
	const struct col_shape_row *x = &r.v[1];
	ck_assert(x->fp == 0xa && x->db == AP_DB_POSTGRES);
	ck_assert_str_eq(x->service, "api");
	ck_assert_str_eq(x->sql, "SELECT * FROM a WHERE id = ?");
	ck_assert_uint_eq(x->calls, 100);
	ck_assert(x->total_ms > 5049.99 && x->total_ms < 5050.01);
	ck_assert(x->max_ms > 99.99 && x->max_ms < 100.01);
	ck_assert_uint_eq(x->rows, 200);
	ck_assert_uint_eq(x->errors, 2);
	ck_assert_uint_eq(x->slow_count, 1);
	/* p95 of 1..100: the value of rank 94 (0-based) is 95, within 1 %. */
	ck_assert_msg(x->p95_ms > 95 * 0.99 && x->p95_ms < 95 * 1.01, "%g", x->p95_ms);
	ck_assert(find(&r, "unknown", 0xc) != NULL);
	col_shape_rows_free(&r);
	ck_assert_int_eq(col_agg_shapes(a, "unknown", &r), 0);
	ck_assert_uint_eq(r.n, 1);
	col_shape_rows_free(&r);

	struct col_totals t;
	col_agg_totals(a, &t);
	ck_assert_uint_eq(t.sql, 105);
	ck_assert(t.sql_ms > 20051.9 && t.sql_ms < 20052.1);
	ck_assert_uint_eq(t.shapes, 4);
	ck_assert_uint_eq(t.requests, 0); /* statements are not requests */

	/* Minutes: by each statement's own time. */
	struct col_shapeset *pend = col_shapeset_new(), *taken = col_shapeset_new();
	uint64_t id;
	int64_t m0 = T0 / SEC;
	ck_assert_int_eq(col_agg_shape_minutes_copy(a, m0 + 60, m0 + 120, "api", pend, taken,
	                                            &id), 0);
	ck_assert_uint_eq(col_shapeset_count(pend), 1);
	struct col_shape *sh = col_shapeset_get(pend, "api", AP_DB_POSTGRES, 0xb, NULL, 0);
	ck_assert_ptr_nonnull(sh);
	ck_assert_uint_eq(sh->st.calls, 3);
	col_shapeset_free(pend);
	col_shapeset_free(taken);
	col_agg_free(a);
}
END_TEST

START_TEST(test_shape_cap)
{
	struct col_agg *a = col_agg_new(100);
	col_agg_set_max_shapes(a, 3);
	col_agg_datagram(a, 7, 0, 0, T0);
	col_agg_hello(a, 7, 1, 1, "api", "");
	for (uint64_t fp = 1; fp <= 5; fp++)
		sql(a, 7, "SELECT ?", fp, AP_DB_POSTGRES, 0, T0, 1, 0);
	sql(a, 7, "SELECT ?", 2, AP_DB_POSTGRES, 0, T0, 1, 0); /* known: stays */
	/* A fingerprint of 0 counts as {other} rather than pose as one. */
	sql(a, 8, "SELECT 0", 0, AP_DB_MYSQL, 0, T0, 1, 0);
	struct col_shape_rows r;
	ck_assert_int_eq(col_agg_shapes(a, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 5); /* api: 1 2 3 {other}; unknown: {other} */
	const struct col_shape_row *o = find(&r, "api", COL_SHAPE_OTHER_FP);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(o->sql, COL_SHAPE_OTHER_SQL);
	ck_assert_uint_eq(o->calls, 2);
	ck_assert_uint_eq(find(&r, "api", 2)->calls, 2);
	ck_assert_str_eq(find(&r, "unknown", 0)->sql, COL_SHAPE_OTHER_SQL);
	col_shape_rows_free(&r);
	struct col_totals t;
	col_agg_totals(a, &t);
	ck_assert_uint_eq(t.other_shape, 3);

	/* Loaded shapes count toward the cap. */
	struct col_agg *b = col_agg_new(100);
	col_agg_set_max_shapes(b, 2);
	struct col_shape_stats st = { 0 };
	struct col_shape_obs ob = { .duration_ms = 4, .rows = 1, .rows_known = 1 };
	col_shape_stats_add(&st, &ob);
	ck_assert_int_eq(col_agg_load_shape(b, "unknown", AP_DB_POSTGRES, 1, "SELECT 1", &st), 0);
	ck_assert_int_eq(col_agg_load_shape(b, "unknown", AP_DB_POSTGRES, 2, "SELECT 2", &st), 0);
	ck_assert_int_eq(col_agg_load_shape(b, "unknown", AP_DB_POSTGRES, 2, "SELECT 2", &st), 0);
	col_shape_stats_release(&st);
	sql(b, 9, "SELECT 3", 3, AP_DB_POSTGRES, 0, T0, 1, 0);
	sql(b, 9, "SELECT 1", 1, AP_DB_POSTGRES, 0, T0, 1, 0);
	ck_assert_int_eq(col_agg_shapes(b, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 3);
	ck_assert_uint_eq(find(&r, "unknown", 2)->calls, 2);
	ck_assert_uint_eq(find(&r, "unknown", 1)->calls, 2);
	ck_assert_uint_eq(find(&r, "unknown", 0)->calls, 1);
	col_shape_rows_free(&r);
	col_agg_free(a);
	col_agg_free(b);
}
END_TEST

/* Shapes of all services together stop at COL_MAX_SHAPES_ALL, each
 * service staying under its own cap too: past it, new shapes of any
 * service count as its {other}; every statement is counted. */
START_TEST(test_shape_cap_all)
{
	struct col_agg *a = col_agg_new(100);
	const uint64_t per = 10000, nsvc = COL_MAX_SHAPES_ALL / 10000 + 1;
	col_agg_set_max_shapes(a, per);
	for (uint32_t v = 0; v < nsvc; v++) {
		char name[32];
		snprintf(name, sizeof name, "svc-%u", v);
		col_agg_datagram(a, 10 + v, 0, 0, T0);
		col_agg_hello(a, 10 + v, 1, 1, name, "");
		for (uint64_t fp = 1; fp <= per; fp++)
			sql(a, 10 + v, "SELECT ?", fp, AP_DB_POSTGRES, 0, T0, 1, 0);
	}
	struct col_totals t;
	col_agg_totals(a, &t);
	ck_assert_uint_eq(t.sql, nsvc * per);
	ck_assert_uint_eq(t.other_shape, nsvc * per - COL_MAX_SHAPES_ALL);
	ck_assert_uint_eq(t.shapes, COL_MAX_SHAPES_ALL + 1);
	col_agg_free(a);
}
END_TEST

/* Statement text past COL_SQL_TEXT_MAX is cut, never inside a
 * character, and flagged truncated; a long message is cut too. */
START_TEST(test_stmt_text_bounded)
{
	size_t big = 60000;
	char *text = malloc(big + 1), *msg = malloc(big + 1);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(msg);
	memset(text, 'a', big);
	memcpy(text + COL_SQL_TEXT_MAX - 1, "\xc3\xa9", 2); /* é across the bound */
	text[big] = '\0';
	memset(msg, 'm', big);
	msg[big] = '\0';
	struct ap_rec_sql r = {
		.start_ns = 1000, .end_ns = 2000, .fingerprint = 5, .db = AP_DB_POSTGRES,
		.flags = AP_SQLF_ERROR, .error_code = { "42P01", 5 },
		.error_message = { msg, (uint16_t)big }, .sql = { text, (uint16_t)big },
	};
	struct col_stmt *st = col_stmt_new(&r, 0, 100);
	ck_assert_ptr_nonnull(st);
	ck_assert_uint_eq(strlen(st->sql), COL_SQL_TEXT_MAX - 1);
	ck_assert_int_eq(st->sql[COL_SQL_TEXT_MAX - 2], 'a');
	ck_assert_uint_eq(strlen(st->error_message), COL_SQL_MESSAGE_MAX);
	ck_assert(st->flags & AP_SQLF_TRUNCATED);
	ck_assert(st->flags & AP_SQLF_ERROR);
	col_stmt_free(st);
	r.sql.len = 100; /* short: whole, not flagged */
	r.error_message.len = 10;
	st = col_stmt_new(&r, 0, 100);
	ck_assert_uint_eq(strlen(st->sql), 100);
	ck_assert(!(st->flags & AP_SQLF_TRUNCATED));
	col_stmt_free(st);

	/* All shapes' texts together stay within COL_SHAPE_TEXT_ALL: 16 KiB
	 * shapes past it count as {other}, every statement counted. */
	struct col_agg *a = col_agg_new(100);
	col_agg_datagram(a, 7, 0, 0, T0);
	col_agg_hello(a, 7, 1, 1, "api", "");
	const uint64_t n = COL_SHAPE_TEXT_ALL / COL_SQL_TEXT_MAX + 100;
	r.sql.len = COL_SQL_TEXT_MAX;
	r.error_message.len = 0;
	r.flags = 0;
	for (uint64_t fp = 1; fp <= n; fp++) {
		char svc[COL_SERVICE_MAX];
		int k = snprintf(text, 32, "SELECT %llu ", (unsigned long long)fp);
		text[k] = 'a';
		r.fingerprint = fp;
		st = col_stmt_new(&r, 0, 100);
		ck_assert_int_eq(col_agg_sql(a, 7, st, svc, sizeof svc), 0);
		col_stmt_free(st);
	}
	struct col_totals t;
	col_agg_totals(a, &t);
	ck_assert_uint_eq(t.sql, n);
	ck_assert_uint_ge(t.other_shape, 100);
	ck_assert_uint_le((t.shapes - 1) * (COL_SQL_TEXT_MAX - 1), COL_SHAPE_TEXT_ALL);
	col_agg_free(a);
	free(text);
	free(msg);
}
END_TEST

START_TEST(test_shapeset_merge)
{
	struct col_shapeset *x = col_shapeset_new(), *y = col_shapeset_new();
	struct col_shape_obs o = { .duration_ms = 10, .rows = 5, .rows_known = 1, .error = 1 };
	struct col_shape *s = col_shapeset_get(x, "a", 1, 42, "SELECT first", 1);
	col_shape_stats_add(&s->st, &o);
	s = col_shapeset_get(y, "a", 1, 42, "SELECT second", 1);
	o.duration_ms = 30;
	o.error = 0;
	col_shape_stats_add(&s->st, &o);
	s = col_shapeset_get(y, "b", 1, 42, "SELECT b", 1);
	col_shape_stats_add(&s->st, &o);
	ck_assert_int_eq(col_shapeset_merge(x, y, "a"), 0);
	ck_assert_uint_eq(col_shapeset_count(x), 1);
	s = col_shapeset_get(x, "a", 1, 42, NULL, 0);
	ck_assert_str_eq(s->sql, "SELECT first"); /* the first text stays */
	ck_assert(s->st.calls == 2 && s->st.total_ms == 40 && s->st.max_ms == 30);
	ck_assert(s->st.rows == 10 && s->st.errors == 1);
	ck_assert_ptr_null(col_shapeset_get(x, "a", 2, 42, NULL, 0));
	ck_assert_int_eq(col_shapeset_merge(x, y, NULL), 0);
	ck_assert_uint_eq(col_shapeset_count(x), 2);
	/* Empty shapes are not listed. */
	col_shapeset_get(x, "c", 1, 1, "SELECT c", 1);
	struct col_shape_rows r;
	ck_assert_int_eq(col_shapeset_rows(x, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 2);
	ck_assert_str_eq(r.v[0].service, "a"); /* 40 ms before 30 */
	col_shape_rows_free(&r);
	col_shapeset_free(x);
	col_shapeset_free(y);
	col_shapeset_free(NULL);
}
END_TEST

/* ---- findings ---- */

START_TEST(test_errors)
{
	struct col_findings *f = col_findings_new(0, 0);
	col_findings_error(f, "api", "GET", "/a", "HTTP 500", "boom 1", T0 + 1 * SEC, 11);
	col_findings_error(f, "api", "GET", "/a", "HTTP 500", "boom 2", T0 + 3 * SEC, 0);
	col_findings_error(f, "api", "GET", "/a", "HTTP 500", "late", T0 + 2 * SEC, 12);
	col_findings_error(f, "api", "GET", "/a", "SQLSTATE 42P01", "no rel", T0 + 2 * SEC, 12);
	col_findings_error(f, "api", NULL, NULL, "SQLSTATE 42P01", "no rel", T0 + 4 * SEC, 0);
	col_findings_error(f, "web", "POST", "/b", "aborted", NULL, T0 + 5 * SEC, 13);

	struct col_error_rows r;
	ck_assert_int_eq(col_findings_errors(f, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 4);
	/* Newest last occurrence first. */
	ck_assert_str_eq(r.v[0].type, "aborted");
	ck_assert_str_eq(r.v[0].message, "");
	ck_assert_int_eq(r.v[0].example_id, 13);
	ck_assert_str_eq(r.v[1].type, "SQLSTATE 42P01");
	ck_assert_ptr_null(r.v[1].method); /* service-level */
	ck_assert_ptr_null(r.v[1].route);
	ck_assert_int_eq(r.v[1].example_id, 0);
	const struct col_error_row *h = &r.v[2];
	ck_assert_str_eq(h->type, "HTTP 500");
	ck_assert_str_eq(h->method, "GET");
	ck_assert_str_eq(h->route, "/a");
	ck_assert_uint_eq(h->count, 3);
	ck_assert_int_eq(h->first_ns, T0 + SEC);
	ck_assert_int_eq(h->last_ns, T0 + 3 * SEC);
	ck_assert_str_eq(h->message, "boom 2"); /* the latest, not the last to arrive */
	/* The latest occurrence with a stored request: a late one only fills
	 * an empty example. */
	ck_assert_int_eq(h->example_id, 11);
	ck_assert_str_eq(r.v[3].type, "SQLSTATE 42P01");
	ck_assert_str_eq(r.v[3].route, "/a");
	col_error_rows_free(&r);

	/* Filters: service; since by last occurrence; until by the first. */
	struct col_find_filter flt = { "api", INT64_MIN, INT64_MAX };
	ck_assert_int_eq(col_findings_errors(f, &flt, &r), 0);
	ck_assert_uint_eq(r.n, 3);
	col_error_rows_free(&r);
	flt.since_ns = T0 + 3 * SEC;
	ck_assert_int_eq(col_findings_errors(f, &flt, &r), 0);
	ck_assert_uint_eq(r.n, 2);
	col_error_rows_free(&r);
	flt = (struct col_find_filter){ NULL, INT64_MIN, T0 + 2 * SEC };
	ck_assert_int_eq(col_findings_errors(f, &flt, &r), 0);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_str_eq(r.v[0].type, "HTTP 500");
	col_error_rows_free(&r);

	/* Messages are cleaned and bounded. */
	char big[2000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	big[0] = '\n';
	col_findings_error(f, "api", "GET", "/big", "HTTP 502", big, T0, 0);
	flt = (struct col_find_filter){ "api", INT64_MIN, INT64_MAX };
	ck_assert_int_eq(col_findings_errors(f, &flt, &r), 0);
	ck_assert_str_eq(r.v[r.n - 1].type, "HTTP 502");
	ck_assert_uint_eq(strlen(r.v[r.n - 1].message), COL_FINDINGS_MESSAGE_MAX - 1);
	ck_assert_int_eq(r.v[r.n - 1].message[0], '?');
	col_error_rows_free(&r);
	col_findings_free(f);
	col_findings_free(NULL);
}
END_TEST

/* Regression (found by tests/fuzz/fuzz_api): an empty list has v NULL, and
 * sorting it passed NULL to qsort, undefined behaviour that the sanitizer
 * build (UBSan, halt_on_error) stops on. */
START_TEST(test_findings_empty)
{
	struct col_findings *f = col_findings_new(0, 0);
	struct col_error_rows e = { NULL, 7 };
	struct col_n1_rows p = { NULL, 7 };
	ck_assert_int_eq(col_findings_errors(f, NULL, &e), 0);
	ck_assert_uint_eq(e.n, 0);
	ck_assert_int_eq(col_findings_patterns(f, NULL, &p), 0);
	ck_assert_uint_eq(p.n, 0);
	col_error_rows_free(&e);
	col_n1_rows_free(&p);
	col_findings_free(f);
}
END_TEST

START_TEST(test_patterns)
{
	struct col_findings *f = col_findings_new(0, 0);
	col_findings_n1(f, "api", "GET", "/books", 0xa, "SELECT a", 5, T0 + SEC, 1);
	col_findings_n1(f, "api", "GET", "/books", 0xa, "SELECT changed", 9, T0 + 3 * SEC, 3);
	col_findings_n1(f, "api", "GET", "/books", 0xa, "SELECT a", 4, T0 + 2 * SEC, 2);
	col_findings_n1(f, "api", "GET", "/books", 0xb, "SELECT b", 3, T0 + 4 * SEC, 0);
	col_findings_n1(f, "api", "GET", "/authors", 0xa, "SELECT a", 3, T0, 4);
	struct col_n1_rows r;
	ck_assert_int_eq(col_findings_patterns(f, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 3);
	const struct col_n1_row *p = &r.v[0]; /* most occurrences first */
	ck_assert_str_eq(p->route, "/books");
	ck_assert(p->fp == 0xa);
	ck_assert_str_eq(p->sql, "SELECT a"); /* first seen */
	ck_assert_uint_eq(p->occurrences, 3);
	ck_assert_uint_eq(p->max_repeats, 9);
	ck_assert_int_eq(p->first_ns, T0 + SEC);
	ck_assert_int_eq(p->last_ns, T0 + 3 * SEC);
	ck_assert_int_eq(p->example_id, 3);
	ck_assert(r.v[1].fp == 0xb); /* then the newest */
	ck_assert_int_eq(r.v[1].example_id, 0);
	ck_assert_str_eq(r.v[2].route, "/authors");
	col_n1_rows_free(&r);
	struct col_find_filter flt = { NULL, T0 + 4 * SEC, INT64_MAX };
	ck_assert_int_eq(col_findings_patterns(f, &flt, &r), 0);
	ck_assert_uint_eq(r.n, 1);
	col_n1_rows_free(&r);
	/* A late occurrence older than the first moves first_seen back, which
	 * `until` reads: 0xb is then the only pattern first seen before T0. */
	col_findings_n1(f, "api", "GET", "/books", 0xb, "SELECT b", 3, T0 - SEC, 0);
	flt = (struct col_find_filter){ NULL, INT64_MIN, T0 };
	ck_assert_int_eq(col_findings_patterns(f, &flt, &r), 0);
	ck_assert_uint_eq(r.n, 1);
	ck_assert(r.v[0].fp == 0xb);
	ck_assert_int_eq(r.v[0].first_ns, T0 - SEC);
	ck_assert_int_eq(r.v[0].last_ns, T0 + 4 * SEC);
	ck_assert_uint_eq(r.v[0].occurrences, 2);
	col_n1_rows_free(&r);
	col_findings_free(f);
}
END_TEST

START_TEST(test_findings_bounds_and_persistence)
{
	struct col_findings *f = col_findings_new(2, 1);
	col_findings_error(f, "s", "GET", "/", "HTTP 500", "a", T0, 0);
	col_findings_error(f, "s", "GET", "/", "HTTP 503", "b", T0, 0);
	col_findings_error(f, "s", "GET", "/", "HTTP 504", "c", T0, 0); /* past the bound */
	col_findings_error(f, "s", "GET", "/", "HTTP 500", "a", T0, 0); /* known: counts */
	col_findings_n1(f, "s", "GET", "/", 1, "x", 3, T0, 0);
	col_findings_n1(f, "s", "GET", "/", 2, "y", 3, T0, 0);
	struct col_findings_counters c;
	col_findings_counters(f, &c);
	ck_assert_uint_eq(c.errors, 2);
	ck_assert_uint_eq(c.patterns, 1);
	ck_assert_uint_eq(c.errors_dropped, 1);
	ck_assert_uint_eq(c.patterns_dropped, 1);

	/* Changed groups are taken once. */
	struct col_error_rows e;
	struct col_n1_rows p;
	ck_assert_int_eq(col_findings_take_dirty(f, &e, &p), 0);
	ck_assert_uint_eq(e.n, 2);
	ck_assert_uint_eq(p.n, 1);
	col_error_rows_free(&e);
	col_n1_rows_free(&p);
	ck_assert_int_eq(col_findings_take_dirty(f, &e, &p), 0);
	ck_assert_uint_eq(e.n + p.n, 0);
	col_error_rows_free(&e);
	col_n1_rows_free(&p);
	col_findings_error(f, "s", "GET", "/", "HTTP 503", "b2", T0 + SEC, 5);
	ck_assert_int_eq(col_findings_take_dirty(f, &e, &p), 0);
	ck_assert_uint_eq(e.n, 1);
	col_n1_rows_free(&p);
	ck_assert_str_eq(e.v[0].type, "HTTP 503");
	ck_assert_uint_eq(e.v[0].count, 2);
	ck_assert_int_eq(e.v[0].example_id, 5);

	/* What is stored loads back, clean, merging with what is there. */
	struct col_findings *g = col_findings_new(0, 0);
	ck_assert_int_eq(col_findings_load_error(g, &e.v[0]), 0);
	col_findings_error(g, "s", "GET", "/", "HTTP 503", "b3", T0 - SEC, 0);
	struct col_error_rows all;
	ck_assert_int_eq(col_findings_errors(g, NULL, &all), 0);
	ck_assert_uint_eq(all.n, 1);
	ck_assert_uint_eq(all.v[0].count, 3);
	ck_assert_str_eq(all.v[0].message, "b2"); /* the older one did not replace it */
	ck_assert_int_eq(all.v[0].first_ns, T0 - SEC);
	col_error_rows_free(&all);
	struct col_n1_row pr = { .service = "s", .method = "GET", .route = "/", .fp = 9,
	                         .sql = "z", .occurrences = 4, .max_repeats = 7,
	                         .first_ns = T0, .last_ns = T0, .example_id = 8 };
	ck_assert_int_eq(col_findings_load_n1(g, &pr), 0);
	col_error_rows_free(&e);
	ck_assert_int_eq(col_findings_take_dirty(g, &e, &p), 0);
	ck_assert_uint_eq(e.n, 1); /* changed after loading */
	ck_assert_uint_eq(p.n, 0); /* loaded only: clean */
	col_error_rows_free(&e);
	col_n1_rows_free(&p);

	/* Retention. */
	ck_assert_uint_eq(col_findings_expire(g, T0), 0);
	ck_assert_uint_eq(col_findings_expire(g, T0 + SEC), 1);     /* the pattern */
	ck_assert_uint_eq(col_findings_expire(g, T0 + SEC + 1), 1); /* the error group */
	col_findings_counters(g, &c);
	ck_assert_uint_eq(c.errors + c.patterns, 0);
	col_findings_free(f);
	col_findings_free(g);
}
END_TEST

Suite *sqlagg_suite(void)
{
	Suite *s = suite_create("sqlagg");
	TCase *tc = tcase_create("shapes");
	tcase_add_test(tc, test_shape_stats);
	tcase_add_test(tc, test_shape_cap);
	tcase_add_test(tc, test_shape_cap_all);
	tcase_add_test(tc, test_stmt_text_bounded);
	tcase_add_test(tc, test_shapeset_merge);
	suite_add_tcase(s, tc);
	tc = tcase_create("findings");
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_findings_empty);
	tcase_add_test(tc, test_patterns);
	tcase_add_test(tc, test_findings_bounds_and_persistence);
	suite_add_tcase(s, tc);
	return s;
}

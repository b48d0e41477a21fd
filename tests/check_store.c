/*
 * check_store.c - the SQLite side of the collector: the writer thread
 * (collector/store.h) and the read pool (collector/query.h), on a
 * temporary database: every queued row written at stop, sampling per
 * second, minutes persisted and reloaded with identical statistics, period
 * queries, request listing filters and the cursor; a refused row and a
 * failed retention reported with SQLite's reason.
 */
#include "config.h"
#include "check_suites.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agg.h"
#include "ap_route.h"
#include "query.h"
#include "store.h"

#define T0 (1795335300LL * 1000000000LL) /* 2026-11-22T08:15:00Z */
#define SEC 1000000000LL

static char dir[64];
static char dbpath[128];

static void setup(void)
{
	strcpy(dir, "/tmp/check_store.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dbpath, sizeof dbpath, "%s/t.db", dir);
}

static void teardown(void)
{
	char p[160];
	static const char *const sfx[] = { "", "-wal", "-shm" };
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", dbpath, sfx[i]);
		unlink(p);
	}
	rmdir(dir);
}

static struct col_store *open_store(int max_rows_per_s)
{
	char err[256] = "";
	struct col_store_opts o = { .path = dbpath, .host = "h1", .retention_days = 36500,
	                            .max_rows_per_s = max_rows_per_s };
	struct col_store *s = col_store_open(&o, err, sizeof err);
	ck_assert_msg(s != NULL, "open: %s", err);
	return s;
}

static int64_t count_rows(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n = -1;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static struct col_row *mkrow(int i, int64_t ts)
{
	char path[64];
	snprintf(path, sizeof path, "/items/%d%s", i, i % 10 == 0 ? "/100%_off" : "");
	struct col_row *r = col_row_new("api", path, i % 10 == 0 ? "/items/{id}/100%_off"
	                                                         : "/items/{id}");
	ck_assert_ptr_nonnull(r);
	r->ts_ns = ts;
	r->pid = 77;
	r->status = i % 7 == 0 ? 503 : 200;
	r->error = r->status >= 500;
	r->slow = i % 5 == 0;
	r->duration_ms = i;
	r->method = i % 2 ? "GET" : "POST";
	return r;
}

START_TEST(test_rows_written_at_stop)
{
	struct col_agg *a = col_agg_new(100);
	struct col_store *s = open_store(1000);
	char err[256];
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0);
	for (int i = 1; i <= 3000; i++)
		ck_assert_int_eq(col_store_push(s, mkrow(i, T0 + i), 1), 0);
	col_store_stop(s); /* no sleep: stop itself must flush */
	struct col_store_counters c;
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.rows_written, 3000);
	ck_assert_uint_eq(c.rows_dropped, 0);
	col_store_free(s);
	ck_assert_int_eq(count_rows("SELECT count(*) FROM requests"), 3000);
	ck_assert_int_eq(count_rows("SELECT version FROM schema_version"), COL_SCHEMA_VERSION);
	col_agg_free(a);
}
END_TEST

/* A row SQLite refuses (here a trigger's RAISE) is counted and skipped,
 * the others written, and the log gives SQLite's reason: it gave the
 * COMMIT's, "not an error". */
START_TEST(test_refused_row_reason)
{
	struct col_agg *a = col_agg_new(100);
	struct col_store *s = open_store(1000);
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "CREATE TRIGGER refuse BEFORE INSERT ON requests"
	                              " WHEN NEW.path = '/items/3' BEGIN"
	                              " SELECT RAISE(ABORT, 'refused by a trigger'); END",
	                              NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	char logpath[160], log[4096];
	snprintf(logpath, sizeof logpath, "%s/log", dir);
	int saved = log_capture_start(logpath);
	char err[256];
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0);
	for (int i = 1; i <= 5; i++)
		ck_assert_int_eq(col_store_push(s, mkrow(i, T0 + i), 1), 0);
	col_store_stop(s);
	log_capture_end(saved, logpath, log, sizeof log);
	struct col_store_counters c;
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.rows_written, 4);
	ck_assert_uint_eq(c.rows_rejected, 1);
	col_store_free(s);
	col_agg_free(a);
	ck_assert_int_eq(count_rows("SELECT count(*) FROM requests"), 4);
	ck_assert_msg(strstr(log, "storage: 1 request rows refused: refused by a trigger") != NULL,
	              "log: %s", log);
}
END_TEST

/* Retention that fails (a trigger keeps the rows) is a storage error with
 * SQLite's reason: it was read after the ROLLBACK, "not an error". */
START_TEST(test_expiry_error_reason)
{
	struct col_agg *a = col_agg_new(100);
	char err[256] = "";
	struct col_store_opts o = { .path = dbpath, .host = "h1", .retention_days = 1,
	                            .max_rows_per_s = 1000 };
	struct col_store *s = col_store_open(&o, err, sizeof err);
	ck_assert_msg(s != NULL, "open: %s", err);
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO requests (id, ts_ns, host, service, pid,"
	                              " tid, method, path, route, status, duration_ms, bytes_in,"
	                              " bytes_out) VALUES (1, 1, 'h1', 'api', 1, 1, 'GET', '/', '/',"
	                              " 200, 1, 0, 0);"
	                              "CREATE TRIGGER keep BEFORE DELETE ON requests BEGIN"
	                              " SELECT RAISE(ABORT, 'kept by a trigger'); END",
	                              NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0); /* retention at start */
	struct col_store_counters c;
	for (int i = 0; i < 100; i++) {
		col_store_counters(s, &c);
		if (c.last_error[0] != '\0') /* set with the fault state, under mu */
			break;
		usleep(20000);
	}
	/* A failed retention pass is counted and reported, but is no fault:
	 * what comes in is still being stored. */
	ck_assert_uint_eq(c.storage_errors, 1);
	ck_assert_int_eq(c.writing, 1);
	col_store_stop(s);
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.storage_errors, 1);
	ck_assert_int_eq(c.writing, 1);
	ck_assert_str_eq(c.last_error, "deleting expired rows: kept by a trigger");
	col_store_free(s);
	col_agg_free(a);
	ck_assert_int_eq(count_rows("SELECT count(*) FROM requests"), 1);
}
END_TEST

START_TEST(test_admit)
{
	struct col_store *s = open_store(5);
	int admitted = 0;
	for (int i = 0; i < 10; i++)
		admitted += col_store_admit(s, 0, T0 + i);
	ck_assert_int_eq(admitted, 5);
	ck_assert_int_eq(col_store_admit(s, 1, T0 + 20), 1); /* slow/failed: always */
	ck_assert_int_eq(col_store_admit(s, 0, T0 + 30), 0);
	ck_assert_int_eq(col_store_admit(s, 0, T0 + SEC), 1); /* next second */
	struct col_store_counters c;
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.rows_sampled_out, 6);
	col_store_free(s);

	s = open_store(0); /* 0: only the always-stored ones */
	ck_assert_int_eq(col_store_admit(s, 0, T0), 0);
	ck_assert_int_eq(col_store_admit(s, 1, T0), 1);
	col_store_free(s);
}
END_TEST

static void req(struct col_agg *a, const char *route, int64_t ts, double ms)
{
	char r[AP_ROUTE_MAX], svc[COL_SERVICE_MAX];
	snprintf(r, sizeof r, "%s", route);
	struct col_obs o = { .duration_ms = ms, .error = ms > 90, .slow = ms > 95 };
	ck_assert_int_eq(col_agg_request(a, 1, "GET", r, ts, &o, svc, sizeof svc), 0);
}

static void rows_equal(const struct col_ep_rows *x, const struct col_ep_rows *y)
{
	ck_assert_uint_eq(x->n, y->n);
	for (size_t i = 0; i < x->n; i++) {
		const struct col_ep_row *p = &x->v[i], *q = &y->v[i];
		ck_assert_str_eq(p->service, q->service);
		ck_assert_str_eq(p->method, q->method);
		ck_assert_str_eq(p->route, q->route);
		ck_assert_uint_eq(p->count, q->count);
		ck_assert_uint_eq(p->error_count, q->error_count);
		ck_assert_uint_eq(p->slow_count, q->slow_count);
		ck_assert(p->min_ms == q->min_ms && p->max_ms == q->max_ms);
		ck_assert_msg(p->sum_ms - q->sum_ms < 1e-6 && q->sum_ms - p->sum_ms < 1e-6,
		              "%g %g", p->sum_ms, q->sum_ms);
		ck_assert(p->p50_ms == q->p50_ms && p->p95_ms == q->p95_ms &&
		          p->p99_ms == q->p99_ms);
	}
}

START_TEST(test_minutes_persist_and_reload)
{
	struct col_agg *a = col_agg_new(100);
	for (int i = 0; i < 500; i++) {
		req(a, "/a", T0 + (int64_t)i * SEC / 2, 1 + i % 100);  /* minutes 0..4 */
		req(a, "/b", T0 + 60 * SEC + i, 3);
	}
	struct col_store *s = open_store(1000);
	char err[256];
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0);
	col_store_stop(s); /* the final flush takes every minute */
	struct col_ep_rows before;
	ck_assert_int_eq(col_agg_endpoints(a, NULL, &before), 0);
	col_store_free(s);
	ck_assert_int_eq(count_rows("SELECT count(*) FROM endpoint_minutes"), 6);
	ck_assert_int_eq(count_rows("SELECT sum(count) FROM endpoint_minutes"), 1000);

	/* A new collector on the same database starts with the same all-time
	 * statistics, percentiles included. */
	struct col_agg *b = col_agg_new(100);
	s = open_store(1000);
	ck_assert_int_eq(col_store_load(s, b, err, sizeof err), 0);
	struct col_ep_rows after;
	ck_assert_int_eq(col_agg_endpoints(b, NULL, &after), 0);
	rows_equal(&before, &after);
	col_ep_rows_free(&after);

	/* More traffic in an already stored minute merges on write. */
	req(b, "/b", T0 + 60 * SEC + 5, 3);
	ck_assert_int_eq(col_store_start(s, b, err, sizeof err), 0);
	col_store_stop(s);
	col_store_free(s);
	ck_assert_int_eq(count_rows("SELECT count(*) FROM endpoint_minutes"), 6);
	ck_assert_int_eq(count_rows("SELECT count FROM endpoint_minutes WHERE route = '/b'"), 501);

	/* Period queries: stored minutes plus memory, counted once. */
	struct col_query *q = col_query_open(dbpath, "h1", 2, err, sizeof err);
	ck_assert_ptr_nonnull(q);
	struct col_agg *c = col_agg_new(100);
	int64_t m0 = T0 / SEC;
	struct col_ep_rows r;
	ck_assert_int_eq(col_query_endpoints(q, c, m0, m0 + 3600, NULL, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 2);
	ck_assert_str_eq(r.v[0].route, "/b"); /* 501 vs 500 */
	col_ep_rows_free(&r);
	req(c, "/a", T0 + 30 * SEC, 50); /* in memory only */
	ck_assert_int_eq(col_query_endpoints(q, c, m0, m0 + 60, NULL, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_uint_eq(r.v[0].count, 121); /* 120 stored in minute 0, one in memory */
	col_ep_rows_free(&r);
	ck_assert_int_eq(col_query_endpoints(q, c, m0 + 60, m0 + 120, NULL, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 2);
	col_ep_rows_free(&r);
	ck_assert_int_eq(col_query_endpoints(q, c, m0, m0 + 3600, NULL, "other", &r), 0);
	ck_assert_uint_eq(r.n, 0);
	col_ep_rows_free(&r);
	ck_assert_int_eq(col_query_endpoints(q, c, m0, m0 + 3600, "nope", NULL, &r), 0);
	ck_assert_uint_eq(r.n, 0);
	col_ep_rows_free(&r);
	/* The whole range equals the all-time aggregate of the first run plus
	 * the one late request of the second. */
	ck_assert_int_eq(col_query_endpoints(q, c, INT64_MIN, INT64_MAX, NULL, NULL, &r), 0);
	ck_assert_uint_eq(r.v[0].count + r.v[1].count, 1002);
	col_ep_rows_free(&r);

	col_query_free(q);
	col_ep_rows_free(&before);
	col_agg_free(a);
	col_agg_free(b);
	col_agg_free(c);
}
END_TEST

struct collected {
	int n;
	int64_t ids[16];
	char paths[16][64];
};

static int collect(void *arg, const struct col_req_view *v)
{
	struct collected *c = arg;
	if (c->n < 16) {
		c->ids[c->n] = v->id;
		snprintf(c->paths[c->n], sizeof c->paths[0], "%s", v->path);
	}
	c->n++;
	return 0;
}

START_TEST(test_request_queries)
{
	struct col_agg *a = col_agg_new(100);
	struct col_store *s = open_store(1000);
	char err[256];
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0);
	for (int i = 1; i <= 100; i++)
		col_store_push(s, mkrow(i, T0 + i * SEC), 1);
	col_store_stop(s);
	col_store_free(s);

	struct col_query *q = col_query_open(dbpath, "h1", 1, err, sizeof err);
	ck_assert_ptr_nonnull(q);
	struct col_req_filter f;
	struct collected c;
	int more;

	/* Newest first, pages by cursor. */
	col_req_filter_init(&f);
	f.limit = 3;
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(col_query_requests(q, &f, collect, &c, &more), 3);
	ck_assert_int_eq(more, 1);
	ck_assert_int_eq(c.ids[0], 100);
	ck_assert_int_eq(c.ids[2], 98);
	f.before = c.ids[2];
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(col_query_requests(q, &f, collect, &c, &more), 3);
	ck_assert_int_eq(c.ids[0], 97);
	f.before = 3;
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(col_query_requests(q, &f, collect, &c, &more), 2);
	ck_assert_int_eq(more, 0);

	/* Filters. */
	col_req_filter_init(&f);
	f.limit = 1000;
	f.status_lo = 500;
	f.status_hi = 599;
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(col_query_requests(q, &f, collect, &c, &more), 14); /* 7, 14, ... 98 */
	f.slow = 1;
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(col_query_requests(q, &f, collect, &c, &more), 2); /* 35, 70 */
	col_req_filter_init(&f);
	f.limit = 1000;
	f.q = "%_"; /* literal, not LIKE wildcards */
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(col_query_requests(q, &f, collect, &c, &more), 10);
	f.q = "/items/1";
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(col_query_requests(q, &f, collect, &c, &more), 12); /* 1, 10..19, 100 */
	col_req_filter_init(&f);
	f.limit = 1000;
	f.method = "POST";
	f.route = "/items/{id}";
	f.since_ns = T0 + 11 * SEC;
	f.until_ns = T0 + 21 * SEC; /* 11..20, POST = even, not 20 (route) */
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(col_query_requests(q, &f, collect, &c, &more), 4);
	f.host = "other";
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(col_query_requests(q, &f, collect, &c, &more), 0);

	/* One by id. */
	memset(&c, 0, sizeof c);
	ck_assert_int_eq(col_query_request(q, 42, collect, &c), 1);
	ck_assert_str_eq(c.paths[0], "/items/42");
	ck_assert_int_eq(col_query_request(q, 4242, collect, &c), 0);
	col_query_free(q);
	col_agg_free(a);
}
END_TEST

START_TEST(test_bad_database)
{
	char err[256] = "";
	FILE *f = fopen(dbpath, "w");
	fputs("this is not a database, just text that is long enough.......\n"
	      "..............................................................\n", f);
	fclose(f);
	struct col_store_opts o = { .path = dbpath, .host = "h1", .retention_days = 7 };
	ck_assert_ptr_null(col_store_open(&o, err, sizeof err));
	ck_assert_msg(strstr(err, dbpath) != NULL, "%s", err);
	o.path = "/nonexistent-dir/x.db";
	ck_assert_ptr_null(col_store_open(&o, err, sizeof err));
	ck_assert_msg(strstr(err, "/nonexistent-dir/x.db") != NULL, "%s", err);
}
END_TEST

/* Pages in the middle overwritten: refused at open, naming the file, and
 * the file left as it was; a fresh store reports no fault. */
START_TEST(test_damaged_database)
{
	char err[512] = "";
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA page_size=4096; CREATE TABLE t(x);"
	                              "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1"
	                              " FROM n WHERE i < 4000) INSERT INTO t SELECT"
	                              " printf('%0100d', i) FROM n;", NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	FILE *f = fopen(dbpath, "r+b");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	long pages = ftell(f) / 4096;
	ck_assert_int_ge(pages, 40);
	ck_assert_int_eq(fseek(f, 4096 * (pages / 2), SEEK_SET), 0);
	for (int i = 0; i < 3 * 4096; i++)
		fputc((i * 7919) & 0xff, f);
	fclose(f);
	struct col_store_opts o = { .path = dbpath, .host = "h1", .retention_days = 7 };
	ck_assert_ptr_null(col_store_open(&o, err, sizeof err));
	ck_assert_msg(strstr(err, dbpath) && strstr(err, "damaged") && strstr(err, "move it aside"),
	              "%s", err);

	unlink(dbpath);
	struct col_store *st = open_store(0);
	struct col_store_counters c;
	col_store_counters(st, &c);
	ck_assert_int_eq(c.writing, 1);
	ck_assert_str_eq(c.last_error, "");
	ck_assert_int_eq(c.last_error_at_ns, 0);
	col_store_free(st);
}
END_TEST

Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("sqlite");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_rows_written_at_stop);
	tcase_add_test(tc, test_refused_row_reason);
	tcase_add_test(tc, test_expiry_error_reason);
	tcase_add_test(tc, test_admit);
	tcase_add_test(tc, test_minutes_persist_and_reload);
	tcase_add_test(tc, test_request_queries);
	tcase_add_test(tc, test_bad_database);
	tcase_add_test(tc, test_damaged_database);
	suite_add_tcase(s, tc);
	return s;
}

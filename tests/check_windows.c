/*
 * check_windows.c - summary windows (collector/windows.h) on a temporary
 * database: alignment and boundaries, late events, closing (idempotent),
 * summaries, regressions through the windows with their guard, open
 * windows surviving a stop and start, alerts resent by a start with the
 * attempts they have left, dropped alerts counted once as failed, alert
 * bodies; 10-second buckets
 * (collector/timeseries.h): complete buckets only, rates, ranges.
 */
#include "config.h"
#include "check_suites.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ap_config.h"
#include "col.h"
#include "epset.h"
#include "metrics.h"
#include "timeseries.h"
#include "windows.h"

#define SEC 1000000000LL
#define W3 (3 * SEC)
#define T0 (1795335300LL * SEC) /* 2026-11-22T08:15:00Z, a multiple of 3 s and 10 s */

static char dir[64];
static char dbpath[128];

static void setup(void)
{
	strcpy(dir, "/tmp/check_windows.XXXXXX");
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

static struct col_windows *open_w(uint64_t min_requests)
{
	char err[256] = "";
	struct col_windows_opts o = {
		.db_path = dbpath,
		.host = "h1",
		.window_ns = W3,
		.grace_ns = -1,
		.rules = { .factor = 2.0, .delta = 0.1, .min_requests = min_requests },
	};
	struct col_windows *w = col_windows_open(&o, err, sizeof err);
	ck_assert_msg(w != NULL, "open: %s", err);
	return w;
}

static void req(struct col_windows *w, const char *route, int64_t ts, double ms, int error)
{
	struct col_obs o = { .duration_ms = ms, .error = error };
	col_windows_request(w, "svc", "GET", route, ts, &o, NULL, NULL, 0);
}

/* Collects summaries as "start/route/count/avg" lines. */
struct rows {
	char text[4096];
	int n;
};

static int sum_cb(void *arg, const struct col_summary_view *v)
{
	struct rows *r = arg;
	size_t l = strlen(r->text);
	snprintf(r->text + l, sizeof r->text - l, "%lld %s %s %llu %.1f %.1f %.1f %llu %.2f\n",
	         (long long)((v->start_ns - T0) / SEC), v->method, v->route,
	         (unsigned long long)v->count, v->avg_ms, v->min_ms, v->max_ms,
	         (unsigned long long)v->error_count, v->error_rate);
	r->n++;
	return 0;
}

static int reg_cb(void *arg, const struct col_regression_view *v)
{
	struct rows *r = arg;
	size_t l = strlen(r->text);
	snprintf(r->text + l, sizeof r->text - l, "%s %s %lld %lld %.1f %.1f %s\n",
	         col_reg_type_name(v->type), v->route,
	         (long long)((v->window_start_ns - T0) / SEC),
	         (long long)((v->previous_window_start_ns - T0) / SEC),
	         v->previous_avg_ms, v->current_avg_ms, col_webhook_status_name(v->webhook));
	r->n++;
	return 0;
}

static struct col_win_filter all(void)
{
	struct col_win_filter f = { .type = -1, .since_ns = INT64_MIN, .until_ns = INT64_MAX,
	                            .limit = 1000 };
	return f;
}

static void summaries(struct col_windows *w, struct rows *r)
{
	memset(r, 0, sizeof *r);
	struct col_win_filter f = all();
	ck_assert_int_ge(col_windows_summaries(w, &f, sum_cb, r), 0);
}

static void regressions(struct col_windows *w, struct rows *r)
{
	memset(r, 0, sizeof *r);
	struct col_win_filter f = all();
	ck_assert_int_ge(col_windows_regressions(w, &f, reg_cb, r), 0);
}

START_TEST(test_alignment)
{
	ck_assert_int_eq(col_windows_size_ns(0.05), W3);
	ck_assert_int_eq(col_windows_size_ns(60), 3600 * SEC);
	ck_assert_int_eq(col_windows_size_ns(0.1), 6 * SEC);
	ck_assert_int_eq(col_windows_size_ns(1.0 / 3), 20 * SEC);
	ck_assert_int_eq(col_windows_start_of(T0, W3), T0);
	ck_assert_int_eq(col_windows_start_of(T0 + W3 - 1, W3), T0);    /* last ns inside */
	ck_assert_int_eq(col_windows_start_of(T0 + W3, W3), T0 + W3);   /* the end opens the next */
	ck_assert_int_eq(col_windows_start_of(T0 - 1, W3), T0 - W3);
	ck_assert_int_eq(col_windows_start_of(0, W3), 0);
	ck_assert_int_eq(col_windows_start_of(-1, W3), -W3);            /* floor, not truncation */
	/* 60-minute windows are whole UTC hours */
	ck_assert_int_eq(col_windows_start_of(T0, 3600 * SEC) % (3600 * SEC), 0);
	ck_assert_int_eq(col_windows_start_of(T0, 3600 * SEC), 1795334400LL * SEC);
	ck_assert_int_eq(col_windows_grace_ns(W3), 2 * SEC);
	ck_assert_int_eq(col_windows_grace_ns(3600 * SEC), 30 * SEC);
	ck_assert_int_eq(col_windows_grace_ns(600 * SEC), 30 * SEC);
	ck_assert_int_eq(col_windows_grace_ns(120 * SEC), 6 * SEC);
}
END_TEST

/* A window closes when the cutoff reaches its end, not a nanosecond
 * before; events on its boundaries land in the right window. */
START_TEST(test_boundaries)
{
	struct col_windows *w = open_w(20);
	req(w, "/a", T0, 10, 0);
	req(w, "/a", T0 + W3 - 1, 20, 0);
	req(w, "/a", T0 + W3, 40, 0);           /* the next window */
	size_t ns = 9, nr = 9;
	ck_assert_int_eq(col_windows_close(w, T0 + W3 - 1, &ns, &nr), 0);
	ck_assert_uint_eq(ns, 0);
	ck_assert_uint_eq(nr, 0);
	ck_assert_int_eq(col_windows_close(w, T0 + W3, &ns, &nr), 0);
	ck_assert_uint_eq(ns, 1);
	struct rows r;
	summaries(w, &r);
	ck_assert_str_eq(r.text, "0 GET /a 2 15.0 10.0 20.0 0 0.00\n");
	ck_assert_int_eq(col_windows_close(w, T0 + 2 * W3 + SEC, &ns, &nr), 0);
	ck_assert_uint_eq(ns, 1);
	summaries(w, &r);
	ck_assert_str_eq(r.text, "3 GET /a 1 40.0 40.0 40.0 0 0.00\n"
	                         "0 GET /a 2 15.0 10.0 20.0 0 0.00\n");
	struct col_windows_counters c;
	col_windows_counters(w, &c);
	ck_assert_int_eq(c.closed_until_ns, T0 + 2 * W3);
	ck_assert_uint_eq(c.windows_closed, 2);
	ck_assert_uint_eq(c.summaries_written, 2);
	ck_assert_uint_eq(c.open_windows, 0);
	col_windows_free(w);
}
END_TEST

/* Events for a window already closed are late: counted, not summarised,
 * and they do not reopen it. Events for an open window after others
 * closed are fine. */
START_TEST(test_late_events)
{
	struct col_windows *w = open_w(20);
	req(w, "/a", T0 + SEC, 10, 0);
	req(w, "/b", T0 + W3 + SEC, 10, 0);
	size_t ns;
	ck_assert_int_eq(col_windows_close(w, T0 + W3 + SEC, &ns, NULL), 0);
	ck_assert_uint_eq(ns, 1);
	req(w, "/a", T0 + 2 * SEC, 99, 0);       /* late */
	req(w, "/b", T0 + W3 + 2 * SEC, 30, 0);  /* still open: fine */
	struct col_windows_counters c;
	col_windows_counters(w, &c);
	ck_assert_uint_eq(c.late_events, 1);
	ck_assert_uint_eq(c.open_windows, 1);
	ck_assert_int_eq(col_windows_close(w, T0 + 10 * W3, &ns, NULL), 0);
	ck_assert_uint_eq(ns, 1);
	struct rows r;
	summaries(w, &r);
	ck_assert_str_eq(r.text, "3 GET /b 2 20.0 10.0 30.0 0 0.00\n"
	                         "0 GET /a 1 10.0 10.0 10.0 0 0.00\n");
	/* far in the future: dropped, no window opened */
	req(w, "/a", col_clock_real_ns() + 3600 * SEC, 1, 0);
	col_windows_counters(w, &c);
	ck_assert_uint_eq(c.dropped_events, 1);
	ck_assert_uint_eq(c.open_windows, 0);
	col_windows_free(w);
}
END_TEST

/* Closing twice writes nothing twice; the watermark survives a restart,
 * so a reopened collector does not summarise a closed window again. */
START_TEST(test_idempotent)
{
	struct col_windows *w = open_w(20);
	for (int i = 0; i < 5; i++)
		req(w, "/a", T0 + i * 100000000LL, 10 + i, i == 0);
	size_t ns, nr;
	ck_assert_int_eq(col_windows_close(w, T0 + W3, &ns, &nr), 0);
	ck_assert_uint_eq(ns, 1);
	ck_assert_int_eq(col_windows_close(w, T0 + W3, &ns, &nr), 0);
	ck_assert_uint_eq(ns, 0);
	ck_assert_int_eq(col_windows_aggregate(w, &ns, &nr), 0);
	ck_assert_uint_eq(ns, 0);
	ck_assert_uint_eq(nr, 0);
	col_windows_free(w);

	w = open_w(20);
	req(w, "/a", T0 + SEC, 10, 0);           /* late across the restart */
	ck_assert_int_eq(col_windows_close(w, T0 + W3, &ns, &nr), 0);
	ck_assert_uint_eq(ns, 0);
	struct rows r;
	summaries(w, &r);
	ck_assert_int_eq(r.n, 1);
	ck_assert_str_eq(r.text, "0 GET /a 5 12.0 10.0 14.0 1 0.20\n");
	struct col_windows_counters c;
	col_windows_counters(w, &c);
	ck_assert_uint_eq(c.late_events, 1);
	col_windows_free(w);
}
END_TEST

/* A window open at stop is stored and taken back at the next start: a
 * restart in the middle of a window loses nothing. */
START_TEST(test_restart_mid_window)
{
	struct col_windows *w = open_w(20);
	req(w, "/a", T0 + SEC, 10, 0);
	req(w, "/a", T0 + SEC, 30, 1);
	col_windows_free(w);                     /* stop: stores the open window */
	w = open_w(20);
	struct col_windows_counters c;
	col_windows_counters(w, &c);
	ck_assert_uint_eq(c.open_windows, 1);
	req(w, "/a", T0 + 2 * SEC, 50, 0);
	size_t ns;
	ck_assert_int_eq(col_windows_close(w, T0 + W3, &ns, NULL), 0);
	ck_assert_uint_eq(ns, 1);
	struct rows r;
	summaries(w, &r);
	ck_assert_str_eq(r.text, "0 GET /a 3 30.0 10.0 50.0 1 0.33\n");
	col_windows_free(w);
	/* taken back once only */
	w = open_w(20);
	col_windows_counters(w, &c);
	ck_assert_uint_eq(c.open_windows, 0);
	col_windows_free(w);
}
END_TEST

/* A window that ended while the collector was down is not closed at the
 * start but a grace later: the events the preloaded processes buffered
 * meanwhile arrive within a second of the start, and were all late. */
START_TEST(test_start_waits_grace)
{
	char err[256] = "";
	struct col_windows_opts o = {
		.db_path = dbpath, .host = "h1", .window_ns = W3, .grace_ns = SEC,
		.rules = { .factor = 2.0, .delta = 0.1, .min_requests = 20 },
	};
	struct col_windows *w = col_windows_open(&o, err, sizeof err);
	ck_assert_msg(w != NULL, "open: %s", err);
	/* a window that ended 3 to 6 s ago, more than the grace */
	int64_t base = col_windows_start_of(col_clock_real_ns(), W3) - 2 * W3;
	req(w, "/a", base + SEC, 10, 0);
	ck_assert_int_eq(col_windows_start(w, err, sizeof err), 0);
	usleep(100000);
	req(w, "/a", base + SEC, 30, 0);         /* delivered after the start */
	struct rows r;
	for (int i = 0; i < 300; i++) { /* 15 s: a loaded sanitizer build */
		summaries(w, &r);
		if (r.n > 0)
			break;
		usleep(50000);
	}
	ck_assert_int_eq(r.n, 1);
	ck_assert_msg(strstr(r.text, " GET /a 2 20.0 10.0 30.0 ") != NULL, "%s", r.text);
	struct col_windows_counters c;
	col_windows_counters(w, &c);
	ck_assert_uint_eq(c.late_events, 0);
	col_windows_free(w);
}
END_TEST

/* Regressions through the windows: against the previous window of the
 * same route (also across a restart), only with enough requests. */
START_TEST(test_regressions)
{
	struct col_windows *w = open_w(5);
	for (int i = 0; i < 5; i++) {
		req(w, "/slow", T0 + i, 30, 0);
		req(w, "/few", T0 + i, 10, 0);
	}
	size_t ns, nr;
	ck_assert_int_eq(col_windows_close(w, T0 + W3, &ns, &nr), 0);
	ck_assert_uint_eq(ns, 2);
	ck_assert_uint_eq(nr, 0);                /* nothing to compare with */
	col_windows_free(w);

	w = open_w(5);                           /* previous summaries reloaded */
	for (int i = 0; i < 5; i++)
		req(w, "/slow", T0 + 2 * W3 + i, 300, i < 2);
	for (int i = 0; i < 4; i++)              /* below min_requests */
		req(w, "/few", T0 + 2 * W3 + i, 100, 1);
	ck_assert_int_eq(col_windows_close(w, T0 + 3 * W3, &ns, &nr), 0);
	ck_assert_uint_eq(ns, 2);
	ck_assert_uint_eq(nr, 2);
	struct rows r;
	regressions(w, &r);
	ck_assert_int_eq(r.n, 2);
	ck_assert_ptr_nonnull(strstr(r.text, "response_time /slow 6 0 30.0 300.0 none\n"));
	ck_assert_ptr_nonnull(strstr(r.text, "error_rate /slow 6 0 30.0 300.0 none\n"));

	struct col_reg_count *cnt;
	size_t n;
	ck_assert_int_eq(col_windows_regression_counts(w, &cnt, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(cnt[0].service, "svc");
	ck_assert_uint_eq(cnt[0].n[COL_REG_RESPONSE_TIME], 1);
	ck_assert_uint_eq(cnt[0].n[COL_REG_ERROR_RATE], 1);
	ck_assert_uint_eq(cnt[0].n[COL_REG_P95], 0);
	col_reg_counts_free(cnt, n);

	/* filters */
	struct col_win_filter f = all();
	f.type = COL_REG_ERROR_RATE;
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(col_windows_regressions(w, &f, reg_cb, &r), 1);
	f = all();
	f.route = "/few";
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(col_windows_summaries(w, &f, sum_cb, &r), 2);
	f.since_ns = T0 + W3;
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(col_windows_summaries(w, &f, sum_cb, &r), 1);
	ck_assert_str_eq(r.text, "6 GET /few 4 100.0 100.0 100.0 4 1.00\n");
	col_windows_free(w);
}
END_TEST

/* A new N+1 fingerprint in a route is a regression carrying it. */
START_TEST(test_n_plus_one_regression)
{
	struct col_windows *w = open_w(1);
	struct col_obs o = { .duration_ms = 10 };
	col_windows_request(w, "svc", "GET", "/books", T0, &o, NULL, NULL, 0);
	ck_assert_int_eq(col_windows_close(w, T0 + W3, NULL, NULL), 0);
	uint64_t fp = 0x1234abcd5678ef00ULL;
	const char *sql = "SELECT * FROM authors WHERE id = ?";
	o.n_plus_one = 1;
	col_windows_request(w, "svc", "GET", "/books", T0 + W3, &o, &fp, &sql, 1);
	size_t nr;
	ck_assert_int_eq(col_windows_close(w, T0 + 2 * W3, NULL, &nr), 0);
	ck_assert_uint_eq(nr, 1);
	struct rows r;
	regressions(w, &r);
	ck_assert_str_eq(r.text, "n_plus_one /books 3 0 10.0 10.0 none\n");
	col_windows_free(w);
}
END_TEST

/* Many regressions in one window (the list grows while it is built): each
 * keeps its own fingerprint. */
START_TEST(test_many_regressions)
{
	struct col_windows *w = open_w(1);
	struct col_obs o = { .duration_ms = 10 };
	char route[32];
	for (int i = 0; i < 12; i++) {
		snprintf(route, sizeof route, "/r%02d", i);
		col_windows_request(w, "svc", "GET", route, T0, &o, NULL, NULL, 0);
	}
	ck_assert_int_eq(col_windows_close(w, T0 + W3, NULL, NULL), 0);
	o.duration_ms = 100;
	o.n_plus_one = 1;
	for (int i = 0; i < 12; i++) {
		snprintf(route, sizeof route, "/r%02d", i);
		uint64_t fp = 0x1000 + (uint64_t)i;
		const char *sql = "SELECT 1";
		col_windows_request(w, "svc", "GET", route, T0 + W3, &o, &fp, &sql, 1);
	}
	size_t nr;
	ck_assert_int_eq(col_windows_close(w, T0 + 2 * W3, NULL, &nr), 0);
	ck_assert_uint_eq(nr, 24);
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT route, fingerprint FROM regressions"
	                                    " WHERE type = 'n_plus_one' ORDER BY route", -1, &st,
	                                    NULL), SQLITE_OK);
	int n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		char want[32];
		snprintf(want, sizeof want, "%016x", 0x1000 + n);
		ck_assert_str_eq((const char *)sqlite3_column_text(st, 1), want);
		n++;
	}
	ck_assert_int_eq(n, 12);
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM regressions WHERE type ="
	                                    " 'response_time' AND fingerprint = ''", -1, &st,
	                                    NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(st, 0), 12);
	sqlite3_finalize(st);
	sqlite3_close(db);
	col_windows_free(w);
}
END_TEST

/* A webhook URL where nobody listens: every attempt fails at once. */
static void dead_url(char *url, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	snprintf(url, len, "http://127.0.0.1:%d/hook", ntohs(sa.sin_port));
}

/* The first column of the first row of sql on the test database. */
static int64_t db_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 2000);   /* the worker writes meanwhile */
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* apiprof_collector_webhook_deliveries_total{result} in m's exposition. */
static long whcount(struct col_metrics *m, const char *result)
{
	struct col_metrics_sources src = { .now_mono_ns = 1 };
	char *t = NULL, line[128];
	ck_assert_int_eq(col_metrics_render(m, &src, &t), 0);
	snprintf(line, sizeof line, "\napiprof_collector_webhook_deliveries_total{result=\"%s\"} ",
	         result);
	const char *p = strstr(t, line);
	ck_assert_msg(p != NULL, "no %s series", result);
	long v = strtol(p + strlen(line), NULL, 10);
	free(t);
	return v;
}

/* A regression on each of n routes, in windows in the future (the closing
 * thread leaves them alone); their alerts are queued. */
static void regress_routes(struct col_windows *w, int n)
{
	int64_t base = col_windows_start_of(col_clock_real_ns(), W3) + 10 * W3;
	char route[16];
	for (int i = 0; i < n; i++) {
		snprintf(route, sizeof route, "/r%d", i);
		req(w, route, base, 10, 0);
		req(w, route, base + W3, 100, 0);
	}
	size_t nr;
	ck_assert_int_eq(col_windows_close(w, base + 2 * W3, NULL, &nr), 0);
	ck_assert_uint_eq(nr, (size_t)n);
}

/* Options for a collector whose every regression alerts a webhook that
 * refuses connections (url from dead_url()), retried only after 1000 s. */
static struct col_windows_opts dead_hook_opts(const char *url)
{
	return (struct col_windows_opts){
		.db_path = dbpath, .host = "h1", .window_ns = W3, .grace_ns = -1,
		.rules = { .factor = 2.0, .delta = 0.1, .min_requests = 1 },
		.webhook_url = url,
		.webhook_delay_scale_pct = 100000,
	};
}

/* An alert still pending at a stop is queued again by the next start. */
/* Any local process can make regressions (fast requests, then slow ones,
 * on many routes): at most COL_WIN_REG_LOG_PER_MIN are logged a minute,
 * the first held back says so; all are stored. */
START_TEST(test_regression_log_limited)
{
	char logpath[160];
	snprintf(logpath, sizeof logpath, "%s/log", dir);
	static char text[64 * 1024];
	int saved = log_capture_start(logpath);
	struct col_windows *w = open_w(1);
	const int n = COL_WIN_REG_LOG_PER_MIN + 15;
	regress_routes(w, n);
	col_windows_free(w);
	log_capture_end(saved, logpath, text, sizeof text);
	ck_assert_int_eq(count_in(text, "regression response_time: svc GET /r"),
	                 COL_WIN_REG_LOG_PER_MIN);
	ck_assert_int_eq(count_in(text, "regressions in a minute: the rest are not logged"), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM regressions"), n);
}
END_TEST

START_TEST(test_alert_resent_after_restart)
{
	char url[64], err[256];
	dead_url(url, sizeof url);
	struct col_windows_opts o = dead_hook_opts(url);
	struct col_windows *w = col_windows_open(&o, err, sizeof err);
	ck_assert_msg(w != NULL, "%s", err);
	ck_assert_int_eq(col_windows_start(w, err, sizeof err), 0);
	/* windows in the future, so the closing thread leaves them alone */
	int64_t base = col_windows_start_of(col_clock_real_ns(), W3) + 10 * W3;
	req(w, "/a", base, 10, 0);
	req(w, "/a", base + W3, 100, 0);
	size_t nr;
	ck_assert_int_eq(col_windows_close(w, base + 2 * W3, NULL, &nr), 0);
	ck_assert_uint_eq(nr, 1);
	struct col_windows_counters c;
	for (int i = 0; i < 750; i++) { /* 15 s: a loaded sanitizer build */
		col_windows_counters(w, &c);
		if (c.webhook.attempts_failed > 0)
			break;
		usleep(20000);
	}
	ck_assert_uint_eq(c.webhook.attempts_failed, 1);
	ck_assert_uint_eq(c.webhook.queued, 1);
	struct rows r;
	regressions(w, &r);
	ck_assert_ptr_nonnull(strstr(r.text, "response_time /a"));
	ck_assert_ptr_nonnull(strstr(r.text, " pending\n"));
	col_windows_free(w);

	w = col_windows_open(&o, err, sizeof err);
	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(col_windows_start(w, err, sizeof err), 0);
	col_windows_counters(w, &c);
	ck_assert_uint_eq(c.webhook.queued, 1);
	col_windows_free(w);
}
END_TEST

/* Every alert's outcome counts once in
 * apiprof_collector_webhook_deliveries_total, one the full queue drops
 * too: `failed` there and in the table at once, and never sent again (nor
 * counted again) by a later start. At a start, pending alerts the queue
 * cannot take are dropped the same way. */
START_TEST(test_alert_dropped_counted_once)
{
	struct ap_config cfg;
	ck_assert_int_eq(ap_config_init(&cfg), 0);
	struct col_metrics *m = col_metrics_new(&cfg);
	ck_assert_ptr_nonnull(m);
	char url[64], err[256];
	dead_url(url, sizeof url);
	struct col_windows_opts o = dead_hook_opts(url);
	o.webhook_queue = 2;
	o.metrics = m;
	struct col_windows *w = col_windows_open(&o, err, sizeof err);
	ck_assert_msg(w != NULL, "%s", err);
	ck_assert_int_eq(col_windows_start(w, err, sizeof err), 0);
	regress_routes(w, 3);
	struct col_windows_counters c;
	col_windows_counters(w, &c);
	ck_assert_uint_eq(c.webhook.dropped, 1);
	ck_assert_int_eq(whcount(m, "failed"), 1);
	ck_assert_int_eq(whcount(m, "delivered"), 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM regressions WHERE webhook = 'failed'"), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM regressions WHERE webhook = 'pending'"), 2);
	col_windows_free(w);
	ck_assert_int_eq(whcount(m, "failed"), 1);   /* a stop settles nothing */

	/* The two pending ones come back to a queue of one: one is dropped;
	 * the one dropped before is not among them. */
	o.webhook_queue = 1;
	w = col_windows_open(&o, err, sizeof err);
	ck_assert_msg(w != NULL, "%s", err);
	ck_assert_int_eq(col_windows_start(w, err, sizeof err), 0);
	col_windows_counters(w, &c);
	ck_assert_uint_eq(c.webhook.queued, 1);
	ck_assert_uint_eq(c.webhook.dropped, 1);
	ck_assert_int_eq(whcount(m, "failed"), 2);
	ck_assert_int_eq(db_int("SELECT count(*) FROM regressions WHERE webhook = 'failed'"), 2);
	ck_assert_int_eq(db_int("SELECT count(*) FROM regressions WHERE webhook = 'pending'"), 1);
	col_windows_free(w);
	ck_assert_int_eq(whcount(m, "failed"), 2);
	ck_assert_int_eq(whcount(m, "delivered"), 0);
	col_metrics_free(m);
	ap_config_free(&cfg);
}
END_TEST

/* SPEC 5's 8 attempts are the alert's, across restarts: one pending after
 * 7 failed attempts gets one more at the next start, then is `failed`
 * (counted once) with webhook_attempts 8. */
START_TEST(test_alert_attempts_survive_restart)
{
	struct ap_config cfg;
	ck_assert_int_eq(ap_config_init(&cfg), 0);
	struct col_metrics *m = col_metrics_new(&cfg);
	ck_assert_ptr_nonnull(m);
	char url[64], err[256];
	dead_url(url, sizeof url);
	struct col_windows_opts o = dead_hook_opts(url);
	struct col_windows *w = col_windows_open(&o, err, sizeof err);
	ck_assert_msg(w != NULL, "%s", err);
	ck_assert_int_eq(col_windows_start(w, err, sizeof err), 0);
	regress_routes(w, 1);
	const char *attempts_sql = "SELECT webhook_attempts FROM regressions";
	for (int i = 0; i < 750 && db_int(attempts_sql) < 1; i++) /* 15 s */
		usleep(20000);
	ck_assert_int_eq(db_int(attempts_sql), 1);
	col_windows_free(w);

	/* As if six more had failed before the stop. */
	sqlite3 *db;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 2000);
	ck_assert_int_eq(sqlite3_exec(db, "UPDATE regressions SET webhook_attempts = 7", NULL,
	                              NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	o.metrics = m;
	w = col_windows_open(&o, err, sizeof err);
	ck_assert_msg(w != NULL, "%s", err);
	ck_assert_int_eq(col_windows_start(w, err, sizeof err), 0);
	struct col_windows_counters c;
	for (int i = 0; i < 750; i++) { /* 15 s: a loaded sanitizer build */
		col_windows_counters(w, &c);
		if (c.webhook.failed > 0)
			break;
		usleep(20000);
	}
	ck_assert_uint_eq(c.webhook.failed, 1);
	ck_assert_uint_eq(c.webhook.attempts_failed, 1);
	ck_assert_uint_eq(c.webhook.queued, 0);
	col_windows_free(w);
	ck_assert_int_eq(db_int(attempts_sql), 8);
	ck_assert_int_eq(db_int("SELECT count(*) FROM regressions WHERE webhook = 'failed'"), 1);
	ck_assert_int_eq(whcount(m, "failed"), 1);
	col_metrics_free(m);
	ap_config_free(&cfg);
}
END_TEST

START_TEST(test_alert_body)
{
	struct col_regression_view v = {
		.type = COL_REG_RESPONSE_TIME, .host = "web1", .service = "api", .method = "GET",
		.route = "/api/users/{id}", .window_start_ns = T0, .window_end_ns = T0 + 3600 * SEC,
		.previous_avg_ms = 120.5, .current_avg_ms = 890.3, .previous_count = 100,
		.current_count = 120, .fingerprint = "", .detected_ns = T0 + 3630 * SEC,
	};
	char *s = col_windows_alert_body(&v);
	ck_assert_ptr_nonnull(s);
	json_t *o = json_loads(s, 0, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "type")), "response_time");
	ck_assert_str_eq(json_string_value(json_object_get(o, "service")), "api");
	ck_assert_str_eq(json_string_value(json_object_get(o, "route")), "/api/users/{id}");
	ck_assert_str_eq(json_string_value(json_object_get(o, "method")), "GET");
	ck_assert(json_real_value(json_object_get(o, "previous_avg_ms")) == 120.5);
	ck_assert(json_real_value(json_object_get(o, "current_avg_ms")) == 890.3);
	ck_assert_str_eq(json_string_value(json_object_get(o, "window_start")),
	                 "2026-11-22T08:15:00.000Z");
	ck_assert_str_eq(json_string_value(json_object_get(o, "text")),
	                 ":warning: apiprof: GET /api/users/{id} on api got slower: average 890.3 ms,"
	                 " up from 120.5 ms (7.4x) in 08:15:00-09:15:00 UTC on web1");
	ck_assert_ptr_null(json_object_get(o, "fingerprint"));
	json_decref(o);
	free(s);
	/* A route a client chose, with Slack's markup in it: escaped in the
	 * text (no @channel notification, no disguised link), as is in
	 * "route". */
	v.route = "/<!channel>/<http://evil.example|docs>&x";
	s = col_windows_alert_body(&v);
	o = json_loads(s, 0, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "route")),
	                 "/<!channel>/<http://evil.example|docs>&x");
	ck_assert_str_eq(json_string_value(json_object_get(o, "text")),
	                 ":warning: apiprof: GET /&lt;!channel&gt;/&lt;http://evil.example|docs&gt;&amp;x"
	                 " on api got slower: average 890.3 ms, up from 120.5 ms (7.4x) in"
	                 " 08:15:00-09:15:00 UTC on web1");
	json_decref(o);
	free(s);
	v.route = "/api/users/{id}";
	v.type = COL_REG_N_PLUS_ONE;
	v.fingerprint = "00000000deadbeef";
	v.sql = "SELECT * FROM t WHERE id = ?";
	s = col_windows_alert_body(&v);
	o = json_loads(s, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(o, "fingerprint")), "00000000deadbeef");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(o, "text")),
	                             "new N+1 query pattern: SELECT * FROM t WHERE id = ?"));
	json_decref(o);
	free(s);
	/* Text the profiled server's clients chose: the SQL's 300-byte cut and
	 * the text's 1024-byte one fall inside 2-byte characters. The alert
	 * is still sent, its text valid UTF-8 cut between characters. */
	char sql[400], svc[256], route[512];
	memset(sql, 'a', 299);
	for (int i = 299; i < 397; i += 2)
		memcpy(sql + i, "\xc3\xa9", 2);
	sql[397] = '\0';
	for (int i = 0; i < 254; i += 2)
		memcpy(svc + i, "\xc3\xa9", 2);
	svc[254] = '\0';
	memset(route, 'r', 510);
	route[0] = '/';
	route[510] = '\0';
	v.sql = sql;
	for (int shift = 0; shift < 2; shift++) {
		v.route = route + shift; /* moves the 1024-byte cut by one */
		s = col_windows_alert_body(&v);
		ck_assert_ptr_nonnull(s);
		o = json_loads(s, 0, NULL);
		ck_assert_ptr_nonnull(o);
		ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(o, "text")),
		                             "pattern: aaaa"));
		json_decref(o);
		free(s);
		v.service = svc;
		s = col_windows_alert_body(&v);
		ck_assert_ptr_nonnull(s);
		free(s);
		v.service = "api";
	}
}
END_TEST

/* ---- timeseries ---- */

START_TEST(test_ts_complete_only)
{
	struct col_tseries *t = col_tseries_new(T0 - 30 * SEC);
	for (int i = 0; i < 25; i++)
		col_tseries_request(t, i % 2 ? "a" : "b", T0 + i * 100000000LL, 4);   /* 25 in [T0, T0+10s) */
	col_tseries_sql(t, "a", T0 + SEC, 1);
	col_tseries_sql(t, NULL, T0 + 9 * SEC, 3);
	col_tseries_request(t, "b", T0 + 10 * SEC, 100);            /* the next bucket */
	struct col_ts_point *p;
	size_t n;
	/* bucket T0 ends at T0+10s; complete once 1 s more has passed */
	ck_assert_int_eq(col_tseries_points(t, NULL, T0 + 10 * SEC + COL_TS_SETTLE_NS - 1, INT64_MIN,
	                                    INT64_MAX, &p, &n), 0);
	ck_assert_uint_eq(n, 3);                               /* the three empty ones before */
	ck_assert_int_eq(p[n - 1].t_ns, T0 - 10 * SEC);
	ck_assert_uint_eq(p[n - 1].requests, 0);
	free(p);
	ck_assert_int_eq(col_tseries_points(t, NULL, T0 + 10 * SEC + COL_TS_SETTLE_NS, INT64_MIN,
	                                    INT64_MAX, &p, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(p[3].t_ns, T0);
	ck_assert_uint_eq(p[3].requests, 25);
	ck_assert(p[3].requests_per_s == 2.5);
	ck_assert(p[3].avg_request_ms == 4);
	ck_assert(p[3].sql_per_s == 0.2);
	ck_assert(p[3].avg_sql_ms == 2);
	free(p);
	/* since/until */
	ck_assert_int_eq(col_tseries_points(t, NULL, T0 + 60 * SEC, T0, T0 + 20 * SEC, &p, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(p[0].t_ns, T0);
	ck_assert_uint_eq(p[1].requests, 1);
	ck_assert(p[1].avg_request_ms == 100);
	free(p);
	/* per service: "a" had the odd requests and one statement */
	ck_assert_int_eq(col_tseries_points(t, "a", T0 + 60 * SEC, T0, T0 + 20 * SEC, &p, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(p[0].requests, 12);
	ck_assert_uint_eq(p[0].sql, 1);
	ck_assert_uint_eq(p[1].requests, 0);
	free(p);
	ck_assert_int_eq(col_tseries_points(t, "b", T0 + 60 * SEC, T0, T0 + 20 * SEC, &p, &n), 0);
	ck_assert_uint_eq(p[0].requests, 13);
	ck_assert_uint_eq(p[0].sql, 0);
	ck_assert_uint_eq(p[1].requests, 1);
	free(p);
	ck_assert_int_eq(col_tseries_points(t, "c", T0 + 60 * SEC, T0, T0 + 20 * SEC, &p, &n),
	                 -ENOENT);
	/* past the cap, services count in the totals only */
	char name[16];
	for (int i = 0; i < COL_TS_MAX_SERVICES + 5; i++) {
		snprintf(name, sizeof name, "s%d", i);
		col_tseries_request(t, name, T0 + 20 * SEC, 1);
	}
	ck_assert_int_eq(col_tseries_points(t, NULL, T0 + 60 * SEC, T0 + 20 * SEC, T0 + 30 * SEC,
	                                    &p, &n), 0);
	ck_assert_uint_eq(p[0].requests, COL_TS_MAX_SERVICES + 5);
	free(p);
	ck_assert_int_eq(col_tseries_points(t, "s3", T0 + 60 * SEC, T0 + 20 * SEC, T0 + 30 * SEC,
	                                    &p, &n), 0);
	ck_assert_uint_eq(p[0].requests, 1);
	free(p);
	snprintf(name, sizeof name, "s%d", COL_TS_MAX_SERVICES + 1);
	ck_assert_int_eq(col_tseries_points(t, name, T0 + 60 * SEC, T0 + 20 * SEC, T0 + 30 * SEC,
	                                    &p, &n), -ENOENT);
	col_tseries_free(t);
}
END_TEST

START_TEST(test_ts_start_and_ring)
{
	/* the bucket the collector started in is incomplete: never listed */
	struct col_tseries *t = col_tseries_new(T0 + 5 * SEC);
	struct col_ts_point *p;
	size_t n;
	ck_assert_int_eq(col_tseries_points(t, NULL, T0 + 12 * SEC, INT64_MIN, INT64_MAX, &p, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(col_tseries_points(t, NULL, T0 + 21 * SEC, INT64_MIN, INT64_MAX, &p, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(p[0].t_ns, T0 + 10 * SEC);
	free(p);
	/* at least an hour is kept */
	int64_t now = T0 + 5 * 3600 * SEC;
	ck_assert_int_eq(col_tseries_points(t, NULL, now, INT64_MIN, INT64_MAX, &p, &n), 0);
	ck_assert_uint_ge(n, 360);
	ck_assert_uint_lt(n, COL_TS_BUCKETS);
	free(p);
	col_tseries_free(t);

	/* an event one ring older than a newer one is out of range */
	int64_t base = col_clock_real_ns() - 2 * 3600 * SEC;
	t = col_tseries_new(base);
	col_tseries_request(t, "a", base + (int64_t)COL_TS_BUCKETS * COL_TS_BUCKET_NS + SEC, 1);
	col_tseries_request(t, "a", base + SEC, 1);
	ck_assert_uint_eq(col_tseries_out_of_range(t), 1);
	col_tseries_request(t, "a", col_clock_real_ns() + 3600 * SEC, 1);   /* a broken clock */
	ck_assert_uint_eq(col_tseries_out_of_range(t), 2);
	col_tseries_free(t);
}
END_TEST

Suite *windows_suite(void)
{
	Suite *s = suite_create("windows");
	TCase *tc = tcase_create("windows");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_alignment);
	tcase_add_test(tc, test_boundaries);
	tcase_add_test(tc, test_late_events);
	tcase_add_test(tc, test_idempotent);
	tcase_add_test(tc, test_restart_mid_window);
	tcase_add_test(tc, test_start_waits_grace);
	tcase_add_test(tc, test_regressions);
	tcase_add_test(tc, test_n_plus_one_regression);
	tcase_add_test(tc, test_many_regressions);
	tcase_add_test(tc, test_regression_log_limited);
	tcase_add_test(tc, test_alert_resent_after_restart);
	tcase_add_test(tc, test_alert_dropped_counted_once);
	tcase_add_test(tc, test_alert_attempts_survive_restart);
	tcase_add_test(tc, test_alert_body);
	suite_add_tcase(s, tc);
	TCase *ts = tcase_create("timeseries");
	tcase_add_test(ts, test_ts_complete_only);
	tcase_add_test(ts, test_ts_start_and_ring);
	suite_add_tcase(s, ts);
	return s;
}

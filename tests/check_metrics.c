/*
 * check_metrics.c - the Prometheus exposition (collector/metrics.h):
 * every SPEC 6 family with HELP and TYPE, the namespace prefix, custom
 * latency buckets, cumulative histograms with +Inf, _sum and _count,
 * label escaping, bounded label values (tables, error codes), SQL
 * operations and table operations, dropped events that survive a pruned
 * process, and the whole path from a datagram through ingest.
 */
#include "config.h"
#include "check_suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "ap_config.h"
#include "ap_wire.h"
#include "ingest.h"
#include "metrics.h"
#include "stmt.h"

static struct ap_config cfg;

static void cfg_setup(void)
{
	ck_assert_int_eq(ap_config_init(&cfg), 0);
}

static void cfg_teardown(void)
{
	ap_config_free(&cfg);
}

static void cfg_set(const char *k, const char *v)
{
	char err[256];
	ck_assert_msg(ap_config_set(&cfg, k, v, err, sizeof err) == 0, "%s", err);
}

static char *render(struct col_metrics *m, struct col_agg *agg)
{
	struct col_metrics_sources src = { .agg = agg, .now_mono_ns = 1 };
	char *t = NULL;
	ck_assert_int_eq(col_metrics_render(m, &src, &t), 0);
	ck_assert_ptr_nonnull(t);
	return t;
}

/* Asserts that text has the exact line. */
#define has_line(text, line) \
	ck_assert_msg(has_line_(text, line), "missing line: %s", line)
static int has_line_(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

static int count_prefix(const char *text, const char *prefix)
{
	int n = 0;
	size_t pl = strlen(prefix);
	for (const char *p = text; p && *p; ) {
		if (strncmp(p, prefix, pl) == 0)
			n++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return n;
}

static struct col_stmt *stmt(const char *sql, uint8_t db, uint8_t flags, uint64_t dur_us,
                             const char *code)
{
	struct ap_rec_sql r = {
		.req_id = 1, .start_ns = 1000, .end_ns = 1000 + dur_us * 1000, .rows = 1,
		.fingerprint = 7, .tid = 1, .db = db, .flags = flags,
		.error_code = { code ? code : "", (uint16_t)(code ? strlen(code) : 0) },
		.error_message = { "", 0 },
		.sql = { sql, (uint16_t)strlen(sql) },
	};
	struct col_stmt *s = col_stmt_new(&r, 0, 100);
	ck_assert_ptr_nonnull(s);
	return s;
}

static const char *FAMILIES[][2] = {
	{ "apiprof_http_requests_total", "counter" },
	{ "apiprof_http_request_duration_seconds", "histogram" },
	{ "apiprof_http_request_size_bytes", "histogram" },
	{ "apiprof_http_response_size_bytes", "histogram" },
	{ "apiprof_http_errors_total", "counter" },
	{ "apiprof_db_queries_total", "counter" },
	{ "apiprof_db_query_duration_seconds", "histogram" },
	{ "apiprof_db_errors_total", "counter" },
	{ "apiprof_db_table_operations_total", "counter" },
	{ "apiprof_n_plus_one_total", "counter" },
	{ "apiprof_regressions_total", "counter" },
	{ "apiprof_events_dropped_total", "counter" },
	{ "apiprof_processes", "gauge" },
	{ "apiprof_collector_events_received_total", "counter" },
	{ "apiprof_collector_store_queue_depth", "gauge" },
	{ "apiprof_collector_storage_errors_total", "counter" },
	{ "apiprof_collector_webhook_deliveries_total", "counter" },
};
#define NFAM (sizeof FAMILIES / sizeof FAMILIES[0])

START_TEST(every_family_has_help_and_type)
{
	struct col_metrics *m = col_metrics_new(&cfg);
	char *t = render(m, NULL);
	char line[256];
	for (size_t i = 0; i < NFAM; i++) {
		snprintf(line, sizeof line, "# TYPE %s %s", FAMILIES[i][0], FAMILIES[i][1]);
		has_line(t, line);
		snprintf(line, sizeof line, "# HELP %s ", FAMILIES[i][0]);
		ck_assert_msg(strstr(t, line) != NULL, "no HELP for %s", FAMILIES[i][0]);
	}
	ck_assert_int_eq(count_prefix(t, "# TYPE "), (int)NFAM);
	ck_assert_int_eq(count_prefix(t, "# HELP "), (int)NFAM);
	/* The collector's health shows at 0 before anything happened. */
	has_line(t, "apiprof_collector_events_received_total 0");
	has_line(t, "apiprof_collector_store_queue_depth 0");
	has_line(t, "apiprof_collector_storage_errors_total 0");
	has_line(t, "apiprof_collector_webhook_deliveries_total{result=\"delivered\"} 0");
	has_line(t, "apiprof_collector_webhook_deliveries_total{result=\"failed\"} 0");
	free(t);
	col_metrics_free(m);
	col_metrics_free(NULL);
}
END_TEST

START_TEST(namespace_prefixes_every_name)
{
	cfg_set("metric_namespace", "shop");
	struct col_metrics *m = col_metrics_new(&cfg);
	col_metrics_request(m, "api", "GET", "/x", 200, 0, 0.001, 10, 20, 0);
	char *t = render(m, NULL);
	for (const char *p = t; *p; ) {
		if (p[0] == '#')
			ck_assert_msg(strncmp(p, "# HELP shop_apiprof_", 20) == 0 ||
			              strncmp(p, "# TYPE shop_apiprof_", 20) == 0, "%.80s", p);
		else
			ck_assert_msg(strncmp(p, "shop_apiprof_", 13) == 0, "%.80s", p);
		p = strchr(p, '\n');
		ck_assert_ptr_nonnull(p);
		p++;
	}
	has_line(t, "shop_apiprof_http_requests_total{service=\"api\",method=\"GET\","
	            "route=\"/x\",status=\"200\"} 1");
	free(t);
	col_metrics_free(m);
}
END_TEST

START_TEST(histogram_buckets_are_cumulative)
{
	cfg_set("latency_buckets", "0.1,1,10");
	struct col_metrics *m = col_metrics_new(&cfg);
	double d[] = { 0.05, 0.1, 0.5, 2, 20 };
	for (size_t i = 0; i < 5; i++)
		col_metrics_request(m, "api", "POST", "/u/{id}", 201, 0, d[i], 100, 5000, 0);
	char *t = render(m, NULL);
	const char *L = "service=\"api\",method=\"POST\",route=\"/u/{id}\"";
	char line[256];
#define H(suffix, le, v) \
	snprintf(line, sizeof line, "apiprof_http_request_duration_seconds_%s{%s%s} %s", \
	         suffix, L, le, v); \
	has_line(t, line)
	H("bucket", ",le=\"0.1\"", "2");   /* 0.1 is <= 0.1: the bound is inclusive */
	H("bucket", ",le=\"1\"", "3");
	H("bucket", ",le=\"10\"", "4");
	H("bucket", ",le=\"+Inf\"", "5");
	H("count", "", "5");
	H("sum", "", "22.65");
#undef H
	ck_assert_int_eq(count_prefix(t, "apiprof_http_request_duration_seconds_bucket{"), 4);
	/* Sizes: fixed powers of 4. */
	has_line(t, "apiprof_http_request_size_bytes_bucket{service=\"api\",method=\"POST\","
	            "route=\"/u/{id}\",le=\"64\"} 0");
	has_line(t, "apiprof_http_request_size_bytes_bucket{service=\"api\",method=\"POST\","
	            "route=\"/u/{id}\",le=\"256\"} 5");
	has_line(t, "apiprof_http_response_size_bytes_bucket{service=\"api\",method=\"POST\","
	            "route=\"/u/{id}\",le=\"4096\"} 0");
	has_line(t, "apiprof_http_response_size_bytes_bucket{service=\"api\",method=\"POST\","
	            "route=\"/u/{id}\",le=\"16384\"} 5");
	has_line(t, "apiprof_http_response_size_bytes_sum{service=\"api\",method=\"POST\","
	            "route=\"/u/{id}\"} 25000");
	has_line(t, "apiprof_http_requests_total{service=\"api\",method=\"POST\","
	            "route=\"/u/{id}\",status=\"201\"} 5");
	free(t);
	col_metrics_free(m);
}
END_TEST

START_TEST(default_buckets_read_as_written)
{
	struct col_metrics *m = col_metrics_new(&cfg);
	col_metrics_request(m, "a", "GET", "/", 200, 0, 0.003, 1, 1, 0);
	char *t = render(m, NULL);
	const char *le[] = { "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
	                     "2.5", "5", "10", "+Inf" };
	char line[256];
	for (size_t i = 0; i < sizeof le / sizeof le[0]; i++) {
		snprintf(line, sizeof line, "apiprof_http_request_duration_seconds_bucket{"
		         "service=\"a\",method=\"GET\",route=\"/\",le=\"%s\"} 1", le[i]);
		has_line(t, line);
	}
	has_line(t, "apiprof_http_request_duration_seconds_sum{service=\"a\",method=\"GET\","
	            "route=\"/\"} 0.003");
	free(t);
	col_metrics_free(m);
}
END_TEST

START_TEST(errors_statuses_and_n_plus_one)
{
	struct col_metrics *m = col_metrics_new(&cfg);
	col_metrics_request(m, "api", "GET", "/a", 500, 0, 0.01, 1, 1, 0);
	col_metrics_request(m, "api", "GET", "/a", 503, 0, 0.01, 1, 1, 1);
	col_metrics_request(m, "api", "GET", "/a", 0, 1, 0.01, 1, 0, 0);
	col_metrics_request(m, "api", "GET", "/a", 200, 1, 0.01, 1, 0, 1);
	col_metrics_request(m, "api", "GET", "/a", 404, 0, 0.01, 1, 0, 0);
	col_metrics_request(m, "api", "GET", "/a", 7, 0, 0.01, 1, 0, 0);
	col_metrics_error(m, "api", NULL, "SIGSEGV");
	col_metrics_regression(m, "api", "p95");
	col_metrics_regression(m, "api", "p95");
	col_metrics_webhook(m, "failed");
	char *t = render(m, NULL);
	const char *p = "apiprof_http_requests_total{service=\"api\",method=\"GET\",route=\"/a\",";
	char line[256];
	snprintf(line, sizeof line, "%sstatus=\"500\"} 1", p);
	has_line(t, line);
	snprintf(line, sizeof line, "%sstatus=\"aborted\"} 1", p);
	has_line(t, line);
	snprintf(line, sizeof line, "%sstatus=\"200\"} 1", p);
	has_line(t, line);
	snprintf(line, sizeof line, "%sstatus=\"other\"} 1", p);
	has_line(t, line);
	has_line(t, "apiprof_http_errors_total{service=\"api\",route=\"/a\",type=\"HTTP 500\"} 1");
	has_line(t, "apiprof_http_errors_total{service=\"api\",route=\"/a\",type=\"HTTP 503\"} 1");
	has_line(t, "apiprof_http_errors_total{service=\"api\",route=\"/a\",type=\"aborted\"} 2");
	has_line(t, "apiprof_http_errors_total{service=\"api\",route=\"\",type=\"SIGSEGV\"} 1");
	ck_assert_ptr_null(strstr(t, "type=\"HTTP 404\""));
	has_line(t, "apiprof_n_plus_one_total{service=\"api\",method=\"GET\",route=\"/a\"} 2");
	has_line(t, "apiprof_regressions_total{service=\"api\",type=\"p95\"} 2");
	has_line(t, "apiprof_collector_webhook_deliveries_total{result=\"failed\"} 1");
	has_line(t, "apiprof_collector_webhook_deliveries_total{result=\"delivered\"} 0");
	/* One count per alert once its delivery is settled (windows.c), not
	 * per attempt: a retried alert that gets through is one "delivered". */
	has_line(t, "# HELP apiprof_collector_webhook_deliveries_total Regression alerts by the"
	            " outcome of their delivery, each counted once: delivered, or failed after"
	            " the last attempt or dropped.");
	free(t);
	col_metrics_free(m);
}
END_TEST

START_TEST(label_values_are_escaped)
{
	char out[64];
	ck_assert_uint_eq(col_metrics_escape("a\"b\\c\nd", out, sizeof out), 10);
	ck_assert_str_eq(out, "a\\\"b\\\\c\\nd");
	/* Never splits an escape. */
	ck_assert_uint_eq(col_metrics_escape("ab\"", out, 4), 2);
	ck_assert_str_eq(out, "ab");
	ck_assert_uint_eq(col_metrics_escape("héllo", out, sizeof out), 6);
	ck_assert_str_eq(out, "héllo");

	struct col_metrics *m = col_metrics_new(&cfg);
	col_metrics_request(m, "we\"ird\\svc", "GET", "/x\ny", 200, 0, 0.01, 1, 1, 0);
	char *t = render(m, NULL);
	has_line(t, "apiprof_http_requests_total{service=\"we\\\"ird\\\\svc\",method=\"GET\","
	            "route=\"/x\\ny\",status=\"200\"} 1");
	free(t);
	col_metrics_free(m);
}
END_TEST

START_TEST(sql_operations_tables_and_errors)
{
	struct col_metrics *m = col_metrics_new(&cfg);
	struct col_stmt *s[] = {
		stmt("SELECT * FROM books WHERE id = ?", AP_DB_POSTGRES, 0, 2000, NULL),
		stmt("SELECT 1", AP_DB_POSTGRES, 0, 200000, NULL),
		stmt("INSERT INTO books (title) VALUES (?)", AP_DB_POSTGRES, 0, 1000, NULL),
		stmt("INSERT INTO books (title) VALUES (?)", AP_DB_POSTGRES, AP_SQLF_PREPARE, 1000, NULL),
		stmt("UPDATE public.authors SET name = ?", AP_DB_POSTGRES, 0, 1000, NULL),
		stmt("DELETE FROM `shop`.`orders` WHERE id = ?", AP_DB_MYSQL, 0, 1000, NULL),
		stmt("CREATE TABLE t (id int)", AP_DB_SQLITE, 0, 1000, NULL),
		stmt("ALTER TABLE books ADD COLUMN x int", AP_DB_POSTGRES, 0, 1000, NULL),
		stmt("BEGIN", AP_DB_POSTGRES, 0, 1000, NULL),
		stmt("INSERT INTO missing VALUES (?)", AP_DB_POSTGRES, AP_SQLF_ERROR, 1000, "42P01"),
		stmt("SELECT x FROM y", AP_DB_MYSQL, AP_SQLF_ERROR, 1000, "1146"),
		stmt("SELECT x FROM y", AP_DB_MYSQL, AP_SQLF_ERROR, 1000, ""),
	};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		col_metrics_sql(m, "api", s[i]);
	char *t = render(m, NULL);
#define Q(db, op, n) has_line(t, "apiprof_db_queries_total{service=\"api\",db=\"" db \
	"\",operation=\"" op "\"} " n)
	Q("postgresql", "select", "2");
	Q("postgresql", "insert", "3");   /* the prepare and the failed one too */
	Q("postgresql", "update", "1");
	Q("postgresql", "ddl", "1");
	Q("postgresql", "other", "1");
	Q("mysql", "delete", "1");
	Q("mysql", "select", "2");
	Q("sqlite", "ddl", "1");
#undef Q
#define T(db, table, op, n) has_line(t, "apiprof_db_table_operations_total{service=\"api\"," \
	"db=\"" db "\",table=\"" table "\",operation=\"" op "\"} " n)
	T("postgresql", "books", "insert", "1");  /* not the prepare */
	T("postgresql", "public.authors", "update", "1");
	T("mysql", "shop.orders", "delete", "1");
#undef T
	ck_assert_ptr_null(strstr(t, "table=\"missing\""));  /* it failed */
	has_line(t, "apiprof_db_errors_total{service=\"api\",db=\"postgresql\",code=\"42P01\"} 1");
	has_line(t, "apiprof_db_errors_total{service=\"api\",db=\"mysql\",code=\"1146\"} 1");
	has_line(t, "apiprof_db_errors_total{service=\"api\",db=\"mysql\",code=\"unknown\"} 1");
	has_line(t, "apiprof_db_query_duration_seconds_count{service=\"api\",db=\"postgresql\"} 8");
	has_line(t, "apiprof_db_query_duration_seconds_bucket{service=\"api\",db=\"postgresql\","
	            "le=\"0.005\"} 7");
	has_line(t, "apiprof_db_query_duration_seconds_bucket{service=\"api\",db=\"postgresql\","
	            "le=\"0.25\"} 8");
	const char *sum = strstr(t, "apiprof_db_query_duration_seconds_sum{service=\"api\","
	                            "db=\"postgresql\"} ");
	ck_assert_ptr_nonnull(sum);
	ck_assert_double_eq_tol(strtod(strchr(sum, '}') + 2, NULL), 0.208, 1e-9);
	free(t);
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		col_stmt_free(s[i]);
	col_metrics_free(m);
}
END_TEST

START_TEST(tables_and_codes_are_bounded)
{
	struct col_metrics *m = col_metrics_new(&cfg);
	char sql[64], code[16];
	for (int i = 0; i < COL_METRICS_MAX_TABLES + 20; i++) {
		snprintf(sql, sizeof sql, "INSERT INTO t%d VALUES (?)", i);
		struct col_stmt *s = stmt(sql, AP_DB_SQLITE, 0, 10, NULL);
		col_metrics_sql(m, "api", s);
		col_metrics_sql(m, "other-svc", s); /* its own budget */
		col_stmt_free(s);
	}
	/* A table seen before the cap keeps its name afterwards. */
	struct col_stmt *s0 = stmt("UPDATE t0 SET a = ?", AP_DB_SQLITE, 0, 10, NULL);
	col_metrics_sql(m, "api", s0);
	col_stmt_free(s0);
	for (int i = 0; i < COL_METRICS_MAX_CODES + 5; i++) {
		snprintf(code, sizeof code, "E%d", i);
		struct col_stmt *s = stmt("SELECT 1", AP_DB_SQLITE, AP_SQLF_ERROR, 10, code);
		col_metrics_sql(m, "api", s);
		col_stmt_free(s);
	}
	char *t = render(m, NULL);
	has_line(t, "apiprof_db_table_operations_total{service=\"api\",db=\"sqlite\","
	            "table=\"{other}\",operation=\"insert\"} 20");
	has_line(t, "apiprof_db_table_operations_total{service=\"other-svc\",db=\"sqlite\","
	            "table=\"{other}\",operation=\"insert\"} 20");
	has_line(t, "apiprof_db_table_operations_total{service=\"api\",db=\"sqlite\","
	            "table=\"t499\",operation=\"insert\"} 1");
	has_line(t, "apiprof_db_table_operations_total{service=\"api\",db=\"sqlite\","
	            "table=\"t0\",operation=\"update\"} 1");
	ck_assert_ptr_null(strstr(t, "table=\"t500\""));
	ck_assert_int_eq(count_prefix(t, "apiprof_db_table_operations_total{service=\"api\""),
	                 COL_METRICS_MAX_TABLES + 2);
	has_line(t, "apiprof_db_errors_total{service=\"api\",db=\"sqlite\",code=\"other\"} 5");
	ck_assert_int_eq(count_prefix(t, "apiprof_db_errors_total{"), COL_METRICS_MAX_CODES + 1);
	free(t);
	col_metrics_free(m);
}
END_TEST

/* Any status 100-999 may come from a local sender: a service keeps its
 * first COL_METRICS_MAX_STATUSES, later ones count as "other" (also in
 * the error type), so 100 routes of 900 statuses make 5,100 series per
 * family, not 90,000. */
START_TEST(statuses_are_bounded)
{
	struct col_metrics *m = col_metrics_new(&cfg);
	char route[32];
	for (int r = 0; r < 100; r++) {
		snprintf(route, sizeof route, "/r%d", r);
		for (unsigned st = 100; st < 1000; st++)
			col_metrics_request(m, "api", "GET", route, st, 0, 0.001, 1, 1, 0);
	}
	col_metrics_request(m, "api", "GET", "/r0", 100, 0, 0.001, 1, 1, 0); /* kept */
	col_metrics_request(m, "other-svc", "GET", "/x", 999, 0, 0.001, 1, 1, 0);
	char *t = render(m, NULL);
	ck_assert_int_eq(count_prefix(t, "apiprof_http_requests_total{service=\"api\""),
	                 100 * (COL_METRICS_MAX_STATUSES + 1));
	has_line(t, "apiprof_http_requests_total{service=\"api\",method=\"GET\",route=\"/r0\","
	            "status=\"100\"} 2");
	has_line(t, "apiprof_http_requests_total{service=\"api\",method=\"GET\",route=\"/r7\","
	            "status=\"other\"} 850");
	has_line(t, "apiprof_http_errors_total{service=\"api\",route=\"/r7\",type=\"HTTP other\"} 500");
	has_line(t, "apiprof_http_requests_total{service=\"other-svc\",method=\"GET\",route=\"/x\","
	            "status=\"999\"} 1");
	ck_assert_int_eq(count_prefix(t, "apiprof_http_errors_total{service=\"api\""), 100);
	free(t);
	col_metrics_free(m);
}
END_TEST

/* As kill(pid, 0): only pid 12 has exited. */
static int pid_gone_if_12(uint32_t pid)
{
	return pid != 12;
}

START_TEST(processes_and_dropped_events)
{
	struct col_agg *agg = col_agg_new(100);
	struct col_metrics *m = col_metrics_new(&cfg);
	int64_t now = 1000 * 1000000000LL;
	col_agg_datagram(agg, 10, 0, now, now);
	col_agg_hello(agg, 10, 1, 5, "web", "/bin/web");
	col_agg_datagram(agg, 11, 0, now, now);
	col_agg_hello(agg, 11, 1, 6, "web", "/bin/web");
	struct col_metrics_sources src = { .agg = agg, .now_mono_ns = now };
	char *t = NULL;
	/* A series from the first process on, before anything is dropped. */
	ck_assert_int_eq(col_metrics_render(m, &src, &t), 0);
	has_line(t, "apiprof_events_dropped_total{service=\"web\"} 0");
	free(t);
	col_agg_proc_stats(agg, 10, 100, 7, 0);
	col_agg_proc_stats(agg, 11, 100, 3, 0);
	ck_assert_int_eq(col_metrics_render(m, &src, &t), 0);
	has_line(t, "apiprof_events_dropped_total{service=\"web\"} 10");
	has_line(t, "apiprof_processes{service=\"web\"} 2");
	free(t);
	/* pid 11 goes silent and is pruned: its drops stay counted. */
	col_agg_datagram(agg, 10, 0, now + 700 * 1000000000LL, now);
	col_agg_proc_stats(agg, 10, 200, 9, 0);
	ck_assert_uint_eq(col_agg_prune(agg, now + 700 * 1000000000LL, 600 * 1000000000LL, 0,
	                                NULL), 1);
	src.now_mono_ns = now + 700 * 1000000000LL;
	ck_assert_int_eq(col_metrics_render(m, &src, &t), 0);
	has_line(t, "apiprof_events_dropped_total{service=\"web\"} 12");
	has_line(t, "apiprof_processes{service=\"web\"} 1");
	free(t);
	/* And again: the retired count is not added twice. */
	ck_assert_int_eq(col_metrics_render(m, &src, &t), 0);
	has_line(t, "apiprof_events_dropped_total{service=\"web\"} 12");
	free(t);
	/* pid 10 is reused by a new process: its predecessor's 9 stay. */
	col_agg_datagram(agg, 10, 0, now + 701 * 1000000000LL, now);
	col_agg_hello(agg, 10, 1, 99, "web", "/bin/web");
	col_agg_proc_stats(agg, 10, 5, 2, 0);
	src.now_mono_ns = now + 701 * 1000000000LL;
	ck_assert_int_eq(col_metrics_render(m, &src, &t), 0);
	has_line(t, "apiprof_events_dropped_total{service=\"web\"} 14");
	free(t);
	/* Exited processes are forgotten after gone_ns, not idle_ns; one
	 * pruned between two scrapes after reporting more drops keeps them
	 * all (no scrape saw its last count). */
	col_agg_datagram(agg, 12, 0, now + 702 * 1000000000LL, now);
	col_agg_hello(agg, 12, 1, 7, "web", "/bin/web");
	col_agg_proc_stats(agg, 12, 10, 4, 0);
	ck_assert_uint_eq(col_agg_prune(agg, now + 710 * 1000000000LL, 600 * 1000000000LL,
	                                5 * 1000000000LL, pid_gone_if_12), 1);
	src.now_mono_ns = now + 710 * 1000000000LL;
	ck_assert_int_eq(col_metrics_render(m, &src, &t), 0);
	has_line(t, "apiprof_events_dropped_total{service=\"web\"} 18");
	ck_assert_ptr_null(strstr(t, "apiprof_processes{service=\"web\"} 2"));
	free(t);
	col_metrics_free(m);
	col_agg_free(agg);
}
END_TEST

/* A datagram through ingest reaches the metrics: durations in seconds, the
 * request and response sizes each in its own histogram, N+1s. */
START_TEST(ingest_feeds_metrics)
{
	struct col_agg *agg = col_agg_new(100);
	struct col_ingest *in = col_ingest_new(&cfg, agg);
	struct col_metrics *m = col_metrics_new(&cfg);
	col_ingest_set_metrics(in, m);
	uint8_t b[4096];
	struct ap_batch_hdr h = { .seq = 1, .pid = 1, .wall_minus_mono_ns = 1795335300LL * 1000000000LL };
	size_t n = ap_wire_put_batch_hdr(b, sizeof b, &h);
	struct ap_rec_hello hello = { .pid = 1, .ppid = 1, .start_mono_ns = 1,
		.service = { "shop", 4 }, .exe = { "/x", 2 } };
	n += ap_wire_put_hello(b + n, sizeof b - n, &hello);
	struct ap_rec_sql sq = { .req_id = 9, .start_ns = 1000, .end_ns = 2001000, .db = AP_DB_POSTGRES,
		.sql = { "INSERT INTO carts VALUES (?)", 28 } };
	n += ap_wire_put_sql(b + n, sizeof b - n, &sq);
	struct ap_rec_request r = { .req_id = 9, .start_ns = 1000, .end_ns = 30001000,
		.bytes_in = 300, .bytes_out = 70000, .status = 502,
		.method = { "PUT", 3 }, .path = { "/carts/12345", 12 } };
	n += ap_wire_put_request(b + n, sizeof b - n, &r);
	/* a request with an N+1: the same statement shape 3 times */
	for (int i = 0; i < 3; i++) {
		struct ap_rec_sql q = { .req_id = 10, .start_ns = 40000000, .end_ns = 41000000,
			.fingerprint = 0x77, .db = AP_DB_POSTGRES,
			.sql = { "SELECT * FROM items WHERE cart = ?", 34 } };
		n += ap_wire_put_sql(b + n, sizeof b - n, &q);
	}
	struct ap_rec_request r2 = { .req_id = 10, .start_ns = 40000000, .end_ns = 50000000,
		.bytes_in = 80, .bytes_out = 900, .status = 200,
		.method = { "GET", 3 }, .path = { "/carts/1", 8 } };
	n += ap_wire_put_request(b + n, sizeof b - n, &r2);
	col_ingest_process(in, b, n, 4242, 0, 1, h.wall_minus_mono_ns + 1);
	char *t = render(m, agg);
	has_line(t, "apiprof_http_requests_total{service=\"shop\",method=\"PUT\","
	            "route=\"/carts/{id}\",status=\"502\"} 1");
	has_line(t, "apiprof_http_errors_total{service=\"shop\",route=\"/carts/{id}\","
	            "type=\"HTTP 502\"} 1");
	has_line(t, "apiprof_http_request_duration_seconds_sum{service=\"shop\",method=\"PUT\","
	            "route=\"/carts/{id}\"} 0.03");
	has_line(t, "apiprof_http_request_size_bytes_sum{service=\"shop\",method=\"PUT\","
	            "route=\"/carts/{id}\"} 300");
	has_line(t, "apiprof_http_response_size_bytes_sum{service=\"shop\",method=\"PUT\","
	            "route=\"/carts/{id}\"} 70000");
	has_line(t, "apiprof_n_plus_one_total{service=\"shop\",method=\"GET\","
	            "route=\"/carts/{id}\"} 1");
	ck_assert_ptr_null(strstr(t, "apiprof_n_plus_one_total{service=\"shop\",method=\"PUT\""));
	has_line(t, "apiprof_db_table_operations_total{service=\"shop\",db=\"postgresql\","
	            "table=\"carts\",operation=\"insert\"} 1");
	has_line(t, "apiprof_db_queries_total{service=\"shop\",db=\"postgresql\","
	            "operation=\"insert\"} 1");
	free(t);
	col_ingest_free(in);
	col_metrics_free(m);
	col_agg_free(agg);
}
END_TEST

Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("exposition");
	tcase_add_checked_fixture(tc, cfg_setup, cfg_teardown);
	tcase_add_test(tc, every_family_has_help_and_type);
	tcase_add_test(tc, namespace_prefixes_every_name);
	tcase_add_test(tc, histogram_buckets_are_cumulative);
	tcase_add_test(tc, default_buckets_read_as_written);
	tcase_add_test(tc, errors_statuses_and_n_plus_one);
	tcase_add_test(tc, label_values_are_escaped);
	tcase_add_test(tc, sql_operations_tables_and_errors);
	tcase_add_test(tc, tables_and_codes_are_bounded);
	tcase_add_test(tc, statuses_are_bounded);
	tcase_add_test(tc, processes_and_dropped_events);
	tcase_add_test(tc, ingest_feeds_metrics);
	suite_add_tcase(s, tc);
	return s;
}

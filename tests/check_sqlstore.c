/*
 * check_sqlstore.c - the SQL side of the store and the read pool
 * (collector/store.h, collector/query.h) on a temporary database: the
 * schema migration from version 1, a request's statements and N+1
 * findings written with it and read back in order, retention taking them
 * with their request, statement-shape minutes persisted, reloaded and
 * queried by period, and error groups and N+1 patterns surviving a
 * restart; PostgreSQL helpers (COPY text, URI redaction, the decision
 * about a failure, against a fake server on a Unix socket) and, against
 * the same fake server, a failed retention pass not counted towards
 * refusing a batch of rows, and the API's reads logging the failed
 * statement's own message.
 */
#include "config.h"
#include "check_suites.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agg.h"
#include "ap_wire.h"
#include "col.h"
#include "findings.h"
#include "pg.h"
#include "query.h"
#include "query_pg.h"
#include "epset.h"
#include "shapeset.h"
#include "stmt.h"
#include "store.h"
#include "store_int.h"

#define T0 (1795335300LL * 1000000000LL) /* 2026-11-22T08:15:00Z */
#define SEC 1000000000LL
#define MS 1000000ULL

static char dir[64];
static char dbpath[128];

static void setup(void)
{
	strcpy(dir, "/tmp/check_sqlstore.XXXXXX");
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

static struct col_store *open_store(int retention_days)
{
	char err[256] = "";
	struct col_store_opts o = { .path = dbpath, .host = "h1",
	                            .retention_days = retention_days, .max_rows_per_s = 1000 };
	struct col_store *s = col_store_open(&o, err, sizeof err);
	ck_assert_msg(s != NULL, "open: %s", err);
	return s;
}

static int64_t scalar(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n = -1;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
	              sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void exec_sql(const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK, "%s", msg);
	sqlite3_close(db);
}

static struct col_stmt *mk(const char *sql, uint64_t fp, uint8_t db, uint8_t flags,
                           int64_t ts, uint64_t dur_ms, uint64_t rows)
{
	struct ap_rec_sql r = {
		.req_id = 1, .start_ns = 1000, .end_ns = 1000 + dur_ms * MS, .rows = rows,
		.fingerprint = fp, .db = db, .flags = flags,
		.error_code = { "", 0 }, .error_message = { "", 0 },
		.sql = { sql, (uint16_t)strlen(sql) },
	};
	if (flags & AP_SQLF_ERROR) {
		r.error_code = (struct ap_str){ "42P01", 5 };
		r.error_message = (struct ap_str){ "relation \"nope\" does not exist", 30 };
	}
	struct col_stmt *s = col_stmt_new(&r, ts - 1000, 100);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* A stored-request row with `n` statements; n1 findings when n1 > 0. */
static struct col_row *mkrow(struct col_store *s, int64_t ts, int n, int n1)
{
	struct col_row *r = col_row_new("api", "/books/", "/books/");
	ck_assert_ptr_nonnull(r);
	r->id = col_store_next_id(s);
	r->ts_ns = ts;
	r->pid = 42;
	r->status = 500;
	r->error = 1;
	r->duration_ms = 12.5;
	r->method = "GET";
	r->message = strdup("Traceback: KeyError ?");
	r->sql_count = (uint32_t)n;
	r->stmts = calloc((size_t)n + 1, sizeof *r->stmts);
	for (int i = 0; i < n; i++)
		r->stmts[i] = mk(i == 0 ? "BEGIN" : "SELECT * FROM author WHERE id = ?",
		                 i == 0 ? 0x1 : 0xfedcba9876543210ULL, AP_DB_POSTGRES,
		                 i == 2 ? AP_SQLF_ERROR : i == 3 ? AP_SQLF_ROWS_UNKNOWN : 0,
		                 ts + i * (int64_t)MS, i == 1 ? 150 : 1, (uint64_t)i);
	r->nstmts = (uint32_t)n;
	if (n1 > 0) {
		r->n1 = calloc(1, sizeof *r->n1);
		r->n1[0] = (struct col_row_n1){ 0xfedcba9876543210ULL, (uint32_t)n - 1,
		                                strdup("SELECT * FROM author WHERE id = ?") };
		r->nn1 = 1;
	}
	return r;
}

/* What the detail read gives back. */
struct detail {
	int found_request;
	char message[128];
	int nq, nn1;
	int seq[8];
	char sql[8][64];
	uint64_t fp[8];
	int64_t rows[8];
	char code[8][16];
	char emsg[8][64];
	int slow[8], prepare[8];
	double dur[8];
	uint64_t n1fp;
	int64_t n1count;
	char n1sql[64];
};

static int d_req(void *arg, const struct col_req_view *v)
{
	struct detail *d = arg;
	d->found_request = 1;
	snprintf(d->message, sizeof d->message, "%s", v->message);
	return 0;
}

static int d_stmt(void *arg, const struct col_stmt_view *q)
{
	struct detail *d = arg;
	int i = d->nq++;
	if (i >= 8)
		return 0;
	d->seq[i] = q->seq;
	snprintf(d->sql[i], sizeof d->sql[i], "%s", q->sql);
	d->fp[i] = q->fingerprint;
	d->rows[i] = q->rows;
	snprintf(d->code[i], sizeof d->code[i], "%s", q->error_code ? q->error_code : "-");
	snprintf(d->emsg[i], sizeof d->emsg[i], "%s", q->error_message);
	d->slow[i] = q->slow;
	d->prepare[i] = q->prepare;
	d->dur[i] = q->duration_ms;
	return 0;
}

static int d_n1(void *arg, const struct col_n1_view *n)
{
	struct detail *d = arg;
	d->nn1++;
	d->n1fp = n->fingerprint;
	d->n1count = n->count;
	snprintf(d->n1sql, sizeof d->n1sql, "%s", n->sql);
	return 0;
}

static void read_detail(struct col_query *q, int64_t id, struct detail *d, int expect)
{
	memset(d, 0, sizeof *d);
	struct col_detail_cbs cbs = { d_req, d_stmt, d_n1, d };
	ck_assert_int_eq(col_query_request_detail(q, id, &cbs), expect);
}

START_TEST(test_statements_with_request)
{
	struct col_agg *a = col_agg_new(100);
	struct col_store *s = open_store(36500);
	char err[256];
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0);
	struct col_row *r1 = mkrow(s, T0, 4, 1);
	int64_t id1 = r1->id;
	ck_assert_int_eq(id1, 1);
	ck_assert_int_eq(col_store_push(s, r1, 1), 0);
	struct col_row *r2 = mkrow(s, T0 + SEC, 0, 0); /* no statements */
	int64_t id2 = r2->id;
	free(r2->message);
	r2->message = NULL;
	r2->status = 200;
	ck_assert_int_eq(col_store_push(s, r2, 1), 0);
	col_store_stop(s);
	struct col_store_counters c;
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.rows_written, 2);
	ck_assert_uint_eq(c.queries_written, 4);
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT count(*) FROM queries"), 4);

	struct col_query *q = col_query_open(dbpath, "h1", 1, err, sizeof err);
	ck_assert_ptr_nonnull(q);
	struct detail d;
	read_detail(q, id1, &d, 1);
	ck_assert_str_eq(d.message, "Traceback: KeyError ?");
	ck_assert_int_eq(d.nq, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(d.seq[i], i + 1); /* in order */
	ck_assert_str_eq(d.sql[0], "BEGIN");
	ck_assert_str_eq(d.sql[1], "SELECT * FROM author WHERE id = ?");
	/* A fingerprint with its top bit set survives SQLite's signed integers. */
	ck_assert(d.fp[1] == 0xfedcba9876543210ULL);
	ck_assert(d.dur[1] == 150);
	ck_assert_int_eq(d.slow[1], 1);
	ck_assert_int_eq(d.slow[0], 0);
	ck_assert_int_eq(d.rows[1], 1);
	ck_assert_int_eq(d.rows[3], -1); /* unknown */
	ck_assert_str_eq(d.code[1], "-");
	ck_assert_str_eq(d.code[2], "42P01");
	ck_assert_str_eq(d.emsg[2], "relation \"nope\" does not exist");
	ck_assert_int_eq(d.nn1, 1);
	ck_assert(d.n1fp == 0xfedcba9876543210ULL);
	ck_assert_int_eq(d.n1count, 3);
	ck_assert_str_eq(d.n1sql, "SELECT * FROM author WHERE id = ?");
	read_detail(q, id2, &d, 1);
	ck_assert_str_eq(d.message, "");
	ck_assert_int_eq(d.nq, 0);
	ck_assert_int_eq(d.nn1, 0);
	read_detail(q, 999, &d, 0);
	ck_assert_int_eq(d.found_request, 0);
	col_query_free(q);

	/* A new store continues the ids: none is ever handed out twice. */
	s = open_store(36500);
	ck_assert_int_eq(col_store_next_id(s), id2 + 1);
	col_store_free(s);
	col_agg_free(a);
}
END_TEST

/* The version 1 schema, as the first collector created it. */
static const char v1_schema[] =
	"CREATE TABLE schema_version (version INTEGER NOT NULL);"
	"INSERT INTO schema_version VALUES (1);"
	"CREATE TABLE requests (id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL,"
	" host TEXT NOT NULL, service TEXT NOT NULL, pid INTEGER NOT NULL,"
	" tid INTEGER NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,"
	" route TEXT NOT NULL, status INTEGER NOT NULL, duration_ms REAL NOT NULL,"
	" bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL,"
	" sql_count INTEGER NOT NULL DEFAULT 0, sql_time_ms REAL NOT NULL DEFAULT 0,"
	" slow INTEGER NOT NULL DEFAULT 0, error INTEGER NOT NULL DEFAULT 0,"
	" aborted INTEGER NOT NULL DEFAULT 0, n_plus_one INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX requests_ts ON requests(ts_ns);"
	"CREATE TABLE endpoint_minutes (id INTEGER PRIMARY KEY, minute INTEGER NOT NULL,"
	" host TEXT NOT NULL, service TEXT NOT NULL, method TEXT NOT NULL,"
	" route TEXT NOT NULL, count INTEGER NOT NULL, error_count INTEGER NOT NULL,"
	" slow_count INTEGER NOT NULL, sum_ms REAL NOT NULL, min_ms REAL NOT NULL,"
	" max_ms REAL NOT NULL, sql_count INTEGER NOT NULL DEFAULT 0,"
	" sql_time_ms REAL NOT NULL DEFAULT 0, n_plus_one_count INTEGER NOT NULL DEFAULT 0,"
	" sketch BLOB NOT NULL, UNIQUE (minute, host, service, method, route));"
	"CREATE TABLE minute_flush (host TEXT PRIMARY KEY, last_batch INTEGER NOT NULL);"
	"INSERT INTO requests (id, ts_ns, host, service, pid, tid, method, path, route,"
	" status, duration_ms, bytes_in, bytes_out)"
	" VALUES (7, 1795335300000000000, 'h1', 'old', 1, 1, 'GET', '/x', '/x', 503, 2.5,"
	" 1, 2);";

static int v_req(void *arg, const struct col_req_view *v)
{
	struct col_req_view *out = arg;
	*out = *v;
	out->path = out->message[0] ? "message" : "no message";
	return 0;
}

START_TEST(test_migration)
{
	exec_sql(v1_schema);
	struct col_store *s = open_store(36500);
	ck_assert_int_eq(scalar("SELECT max(version) FROM schema_version"), COL_SCHEMA_VERSION);
	ck_assert_int_eq(scalar("SELECT count(*) FROM schema_version"), 1);
	/* v3: the index of ?host= listings. */
	ck_assert_int_eq(scalar("SELECT count(*) FROM sqlite_master WHERE type = 'index'"
	                        " AND name = 'requests_host'"), 1);
	ck_assert_int_eq(scalar("SELECT count(*) FROM pragma_table_info('requests')"
	                        " WHERE name = 'message'"), 1);
	ck_assert_int_eq(scalar("SELECT count(*) FROM queries"), 0);
	ck_assert_int_eq(col_store_next_id(s), 8); /* after the old rows */
	col_store_free(s);

	/* The old row reads with the new columns; a second open changes
	 * nothing. */
	char err[256];
	struct col_query *q = col_query_open(dbpath, "h1", 1, err, sizeof err);
	ck_assert_ptr_nonnull(q);
	struct col_req_view v;
	ck_assert_int_eq(col_query_request(q, 7, v_req, &v), 1);
	ck_assert_str_eq(v.path, "no message");
	ck_assert_int_eq(v.status, 503);
	struct detail d;
	read_detail(q, 7, &d, 1);
	ck_assert_int_eq(d.nq, 0);
	col_query_free(q);
	s = open_store(36500);
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT max(version) FROM schema_version"), COL_SCHEMA_VERSION);

	/* Version 2 (v3 without its index) is upgraded in place. */
	exec_sql("DROP INDEX requests_host; UPDATE schema_version SET version = 2");
	s = open_store(36500);
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT max(version) FROM schema_version"), 3);
	ck_assert_int_eq(scalar("SELECT count(*) FROM sqlite_master WHERE type = 'index'"
	                        " AND name = 'requests_host'"), 1);

	/* A newer schema than ours is refused with a message. */
	exec_sql("UPDATE schema_version SET version = 4");
	struct col_store_opts o = { .path = dbpath, .host = "h1", .retention_days = 7 };
	ck_assert_ptr_null(col_store_open(&o, err, sizeof err));
	ck_assert_msg(strstr(err, "version 4") != NULL, "%s", err);
}
END_TEST

/* The queue is bounded in memory too: rows whose statements would take
 * it past queue_byte_cap are dropped and counted, whatever the row and
 * statement counts allow; the first row always fits. */
START_TEST(test_store_queue_bytes)
{
	char err[256] = "";
	struct col_row *probe = NULL;
	struct col_store_opts o = { .path = dbpath, .host = "h1", .retention_days = 7,
	                            .max_rows_per_s = 1000 };
	struct col_store *s = col_store_open(&o, err, sizeof err);
	ck_assert_msg(s != NULL, "open: %s", err);
	int64_t now = col_clock_real_ns();
	probe = mkrow(s, now, 50, 0);
	size_t b = col_row_bytes(probe);
	ck_assert_uint_gt(b, 50 * 30);
	col_row_free(probe);
	col_store_free(s);

	o.queue_byte_cap = 3 * b + b / 2;
	s = col_store_open(&o, err, sizeof err);
	ck_assert_msg(s != NULL, "open: %s", err);
	for (int i = 0; i < 5; i++)
		col_store_push(s, mkrow(s, now + i, 50, 0), 0);
	struct col_store_counters c;
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.queue_depth, 3);
	ck_assert_uint_eq(c.rows_dropped, 2);
	ck_assert_uint_eq(c.queue_stmts, 150);
	col_store_free(s);
}
END_TEST

/* While the database is down, a full queue keeps the newest rows: the
 * oldest are dropped and counted; once it is up, a full queue refuses new
 * rows as before. */
START_TEST(test_store_down)
{
	char err[256] = "";
	struct col_store_opts o = { .path = dbpath, .host = "h1", .retention_days = 7,
	                            .max_rows_per_s = 1000, .queue_cap = 4 };
	struct col_store *s = col_store_open(&o, err, sizeof err);
	ck_assert_msg(s != NULL, "open: %s", err);
	int64_t now = col_clock_real_ns();
	col_store_set_down(s, 1, "test outage");
	int64_t first = 0;
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(col_store_has_room(s, 1, 0), 1);
		struct col_row *r = mkrow(s, now + i, 1, 0);
		if (i == 0)
			first = r->id;
		ck_assert_int_eq(col_store_push(s, r, 0), 0);
	}
	struct col_store_counters c;
	col_store_counters(s, &c);
	ck_assert_int_eq(c.database_down, 1);
	ck_assert(c.down_since_ns >= now - 60 * SEC);
	ck_assert_str_eq(c.down_reason, "test outage");
	ck_assert_uint_eq(c.rows_dropped_oldest, 2);
	ck_assert_uint_eq(c.rows_dropped, 0);
	ck_assert_uint_eq(c.rows_held, 4);
	for (size_t i = 0; i < 4; i++) /* the newest four, in order */
		ck_assert_int_eq(s->q[(s->head + i) % s->cap]->id, first + 2 + (int64_t)i);
	col_store_set_down(s, 0, NULL);
	col_store_counters(s, &c);
	ck_assert_int_eq(c.database_down, 0);
	ck_assert_int_eq(c.down_since_ns, 0);
	ck_assert_int_eq(col_store_has_room(s, 1, 0), 0);
	ck_assert_int_eq(col_store_push(s, mkrow(s, now, 1, 0), 0), -ENOSPC);
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.rows_dropped, 1);
	ck_assert_uint_eq(c.rows_dropped_oldest, 2);
	ck_assert_str_eq(c.backend, "sqlite");
	col_store_free(s);
}
END_TEST

/* COPY's text format, as the PostgreSQL store writes its batches. */
START_TEST(test_pg_copy)
{
	struct col_pg_buf b = { 0 };
	col_pg_copy_text(&b, "a\tb\\c\nd\re");
	col_pg_copy_sep(&b, '\t');
	col_pg_copy_text(&b, NULL);
	col_pg_copy_sep(&b, '\t');
	/* Invalid UTF-8 (a lone continuation byte, a cut sequence, an
	 * overlong slash, a surrogate) becomes '?'; valid multibyte stays. */
	col_pg_copy_text(&b, "\x80x\xc3\xc0\xafy\xed\xa0\x80z\xc3\xa9\xf0\x9f\x98\x80");
	col_pg_copy_sep(&b, '\t');
	col_pg_copy_i64(&b, INT64_MIN);
	col_pg_copy_sep(&b, '\t');
	col_pg_copy_f64(&b, 0.25);
	col_pg_copy_sep(&b, '\t');
	col_pg_copy_f64(&b, 1.0 / 0.0);
	col_pg_copy_sep(&b, '\n');
	ck_assert_int_eq(b.oom, 0);
	char *z = realloc(b.p, b.len + 1);
	ck_assert_ptr_nonnull(z);
	b.p = z;
	b.p[b.len] = '\0';
	ck_assert_str_eq(b.p, "a\\tb\\\\c\\nd\\re\t\\N\t?x???y???z\xc3\xa9\xf0\x9f\x98\x80\t"
	                      "-9223372036854775808\t0.25\tInfinity\n");
	free(b.p);
}
END_TEST

START_TEST(test_pg_redact)
{
	char out[256];
	col_pg_redact("postgresql://apiprof:s3cret@db:5432/apiprof?sslmode=require", out, sizeof out);
	ck_assert_str_eq(out, "postgresql://apiprof:***@db:5432/apiprof?sslmode=require");
	col_pg_redact("postgres://apiprof@db/apiprof", out, sizeof out);
	ck_assert_str_eq(out, "postgres://apiprof@db/apiprof");
	/* An @ past the host is not a password's end. */
	col_pg_redact("postgresql://db:5432/x?user=a@b", out, sizeof out);
	ck_assert_str_eq(out, "postgresql://db:5432/x?user=a@b");
	/* The query's secrets: password and sslpassword, also spelt with
	 * percent-escapes (libpq decodes a parameter's name), also behind a
	 * '?' in the user's password. */
	col_pg_redact("postgresql://u@db/x?sslmode=require&password=s3cret&sslpassword=k3y",
	              out, sizeof out);
	ck_assert_str_eq(out, "postgresql://u@db/x?sslmode=require&password=***&sslpassword=***");
	col_pg_redact("postgresql://u@db/x?pass%77ord=s3cret&%73slpassword=k3y", out, sizeof out);
	ck_assert_str_eq(out, "postgresql://u@db/x?pass%77ord=***&%73slpassword=***");
	col_pg_redact("postgresql://u:p?w@db/x?password=s3cret", out, sizeof out);
	ck_assert_str_eq(out, "postgresql://u:***@db/x?password=***");
	col_pg_redact("postgresql://u@db/x?passwords=a&xpassword=b", out, sizeof out);
	ck_assert_str_eq(out, "postgresql://u@db/x?passwords=a&xpassword=b");
	col_pg_redact("/var/lib/apiprof/apiprof.db", out, sizeof out);
	ck_assert_str_eq(out, "/var/lib/apiprof/apiprof.db");
	ck_assert_int_eq(col_store_is_pg("postgresql://db/x"), 1);
	ck_assert_int_eq(col_store_is_pg("postgres://db/x"), 1);
	ck_assert_int_eq(col_store_is_pg("./postgresql://x.db"), 0);
	ck_assert_int_eq(col_store_is_pg("apiprof.db"), 0);
}
END_TEST

START_TEST(test_retention)
{
	int64_t now = col_clock_real_ns();
	/* Old rows first (8 days), recent ones after, with statements and
	 * findings each. */
	struct col_store *s = open_store(36500);
	char err[256];
	struct col_agg *a = col_agg_new(100);
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0);
	for (int i = 0; i < 3; i++)
		col_store_push(s, mkrow(s, now - 8 * 86400 * SEC + i, 4, 1), 1);
	for (int i = 0; i < 2; i++)
		col_store_push(s, mkrow(s, now - i * SEC, 4, 1), 1);
	col_findings_error(col_agg_findings(a), "api", "GET", "/", "HTTP 500", "old",
	                   now - 8 * 86400 * SEC, 1);
	col_findings_error(col_agg_findings(a), "api", "GET", "/", "HTTP 502", "new", now, 4);
	col_store_stop(s);
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT count(*) FROM queries"), 20);
	ck_assert_int_eq(scalar("SELECT count(*) FROM request_n_plus_one"), 5);
	ck_assert_int_eq(scalar("SELECT count(*) FROM error_groups"), 2);

	/* A 7-day store deletes the old ones at start, with everything that
	 * hangs on them. */
	struct col_agg *b = col_agg_new(100);
	s = open_store(7);
	ck_assert_int_eq(col_store_load(s, b, err, sizeof err), 0);
	ck_assert_int_eq(col_store_start(s, b, err, sizeof err), 0);
	struct col_store_counters c;
	for (int t = 0; t < 300; t++) { /* 15 s: a loaded sanitizer build */
		col_store_counters(s, &c);
		if (c.rows_expired >= 3)
			break;
		nanosleep(&(struct timespec){ 0, 50 * 1000000L }, NULL);
	}
	col_store_stop(s);
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.rows_expired, 3);
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT count(*) FROM requests"), 2);
	ck_assert_int_eq(scalar("SELECT count(*) FROM queries"), 8);
	ck_assert_int_eq(scalar("SELECT count(*) FROM queries WHERE request_id <= 3"), 0);
	ck_assert_int_eq(scalar("SELECT count(*) FROM request_n_plus_one"), 2);
	ck_assert_int_eq(scalar("SELECT count(*) FROM error_groups"), 1);
	struct col_error_rows e;
	ck_assert_int_eq(col_findings_errors(col_agg_findings(b), NULL, &e), 0);
	ck_assert_uint_eq(e.n, 1);
	ck_assert_str_eq(e.v[0].type, "HTTP 502");
	col_error_rows_free(&e);
	col_agg_free(a);
	col_agg_free(b);
}
END_TEST

/* A retention past what nanoseconds hold (any int the configuration
 * accepted) keeps everything: retention_days * 86400e9 overflowed, and
 * from 106,752 days on the cutoff fell in the future and every request
 * was deleted. */
START_TEST(test_retention_huge)
{
	int64_t now = col_clock_real_ns();
	char err[256];
	struct col_store *s = open_store(36500);
	struct col_agg *a = col_agg_new(100);
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0);
	col_store_push(s, mkrow(s, now - 8 * 86400 * SEC, 1, 0), 1);
	col_store_push(s, mkrow(s, now, 1, 0), 1);
	col_store_stop(s);
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT count(*) FROM requests"), 2);

	struct col_agg *b = col_agg_new(100);
	s = open_store(200000);
	ck_assert_int_eq(col_store_load(s, b, err, sizeof err), 0);
	ck_assert_int_eq(col_store_start(s, b, err, sizeof err), 0);
	/* Retention runs once the first commit interval (200 ms) is over. */
	struct col_store_counters c;
	for (int t = 0; t < 16; t++) {
		col_store_counters(s, &c);
		if (c.rows_expired > 0)
			break;
		nanosleep(&(struct timespec){ 0, 50 * 1000000L }, NULL);
	}
	col_store_stop(s);
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.rows_expired, 0);
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT count(*) FROM requests"), 2);
	col_agg_free(a);
	col_agg_free(b);
}
END_TEST

static void stmt(struct col_agg *a, const char *sql, uint64_t fp, int64_t ts, uint64_t ms)
{
	char svc[COL_SERVICE_MAX];
	struct col_stmt *st = mk(sql, fp, AP_DB_POSTGRES, 0, ts, ms, 1);
	ck_assert_int_eq(col_agg_sql(a, 1, st, svc, sizeof svc), 0);
	col_stmt_free(st);
}

static const struct col_shape_row *shape(const struct col_shape_rows *r, uint64_t fp)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].fp == fp)
			return &r->v[i];
	ck_abort_msg("no shape %llx", (unsigned long long)fp);
	return NULL;
}

START_TEST(test_shapes_persist)
{
	struct col_agg *a = col_agg_new(100);
	for (int i = 0; i < 300; i++) {
		stmt(a, "SELECT * FROM a WHERE id = ?", 0xa, T0 + i * SEC / 2, 1 + (uint64_t)i % 50);
		if (i % 3 == 0)
			stmt(a, "SELECT * FROM b", 0xfb00000000000000ULL, T0 + 60 * SEC + i, 7);
	}
	struct col_shape_rows before;
	ck_assert_int_eq(col_agg_shapes(a, NULL, &before), 0);
	struct col_store *s = open_store(36500);
	char err[256];
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0);
	col_store_stop(s); /* the final flush writes every minute */
	struct col_store_counters c;
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.shape_minutes_written, 4); /* a: minutes 0..2, b: minute 1 */
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT sum(calls) FROM query_minutes"), 400);
	ck_assert_int_eq(scalar("SELECT count(*) FROM query_shapes"), 2);

	/* A new collector starts with the same figures, p95 included. */
	struct col_agg *b = col_agg_new(100);
	s = open_store(36500);
	ck_assert_int_eq(col_store_load(s, b, err, sizeof err), 0);
	col_store_free(s);
	struct col_shape_rows after;
	ck_assert_int_eq(col_agg_shapes(b, NULL, &after), 0);
	ck_assert_uint_eq(after.n, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct col_shape_row *x = &before.v[i], *y = shape(&after, x->fp);
		ck_assert_str_eq(x->sql, y->sql);
		ck_assert_str_eq(y->service, "unknown");
		ck_assert(x->calls == y->calls && x->rows == y->rows && x->max_ms == y->max_ms);
		ck_assert(x->p95_ms == y->p95_ms);
		ck_assert(x->total_ms - y->total_ms < 1e-6 && y->total_ms - x->total_ms < 1e-6);
	}
	col_shape_rows_free(&after);

	/* Periods: stored minutes and memory, each counted once. */
	struct col_query *q = col_query_open(dbpath, "h1", 1, err, sizeof err);
	ck_assert_ptr_nonnull(q);
	int64_t m0 = T0 / SEC;
	struct col_shape_rows r;
	ck_assert_int_eq(col_query_shapes(q, b, m0 + 60, m0 + 120, NULL, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 2);
	ck_assert_uint_eq(shape(&r, 0xa)->calls, 120);
	ck_assert_uint_eq(shape(&r, 0xfb00000000000000ULL)->calls, 100);
	ck_assert_str_eq(shape(&r, 0xfb00000000000000ULL)->sql, "SELECT * FROM b");
	col_shape_rows_free(&r);
	stmt(b, "SELECT * FROM a WHERE id = ?", 0xa, T0 + 61 * SEC, 3); /* memory only */
	ck_assert_int_eq(col_query_shapes(q, b, m0 + 60, m0 + 120, NULL, NULL, &r), 0);
	ck_assert_uint_eq(shape(&r, 0xa)->calls, 121);
	col_shape_rows_free(&r);
	ck_assert_int_eq(col_query_shapes(q, b, m0, m0 + 60, NULL, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_uint_eq(r.v[0].calls, 120);
	col_shape_rows_free(&r);
	ck_assert_int_eq(col_query_shapes(q, b, m0, m0 + 600, "nope", NULL, &r), 0);
	ck_assert_uint_eq(r.n, 0);
	col_shape_rows_free(&r);
	ck_assert_int_eq(col_query_shapes(q, b, m0, m0 + 600, NULL, "other-host", &r), 0);
	ck_assert_uint_eq(r.n, 0);
	col_shape_rows_free(&r);
	col_query_free(q);
	col_shape_rows_free(&before);
	col_agg_free(a);
	col_agg_free(b);
}
END_TEST

/* Retention deletes a shape's text with its last minute: query_shapes
 * kept every text ever seen before (read whole at each start and each
 * ?since= query of /api/v1/queries), growing with every new shape. A
 * shape that comes back writes its text again with its new minute. */
START_TEST(test_shape_texts_expire)
{
	int64_t now = col_clock_real_ns();
	char err[256];
	struct col_agg *a = col_agg_new(100);
	stmt(a, "SELECT * FROM old", 0xa, now - 8 * 86400 * SEC, 1);
	stmt(a, "SELECT * FROM new", 0xb, now, 1);
	struct col_store *s = open_store(36500);
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0);
	col_store_stop(s);
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT count(*) FROM query_minutes"), 2);
	ck_assert_int_eq(scalar("SELECT count(*) FROM query_shapes"), 2);

	struct col_agg *b = col_agg_new(100);
	s = open_store(7);
	ck_assert_int_eq(col_store_load(s, b, err, sizeof err), 0);
	ck_assert_int_eq(col_store_start(s, b, err, sizeof err), 0);
	for (int t = 0; t < 300 && scalar("SELECT count(*) FROM query_shapes") != 1; t++) /* 15 s */
		nanosleep(&(struct timespec){ 0, 50 * 1000000L }, NULL);
	ck_assert_int_eq(scalar("SELECT count(*) FROM query_minutes"), 1);
	ck_assert_int_eq(scalar("SELECT count(*) FROM query_shapes"), 1);
	ck_assert_int_eq(scalar("SELECT count(*) FROM query_shapes WHERE sql = 'SELECT * FROM new'"), 1);
	stmt(b, "SELECT * FROM old", 0xa, now, 2);
	col_store_stop(s);
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT count(*) FROM query_shapes WHERE sql = 'SELECT * FROM old'"), 1);
	col_agg_free(a);
	col_agg_free(b);
}
END_TEST

START_TEST(test_findings_persist)
{
	struct col_agg *a = col_agg_new(100);
	struct col_findings *f = col_agg_findings(a);
	col_findings_error(f, "api", "GET", "/a", "HTTP 503", "down", T0, 40);
	col_findings_error(f, "api", NULL, NULL, "MySQL 1146", "no table", T0 + SEC, 0);
	col_findings_n1(f, "api", "GET", "/books", 0xfedcba9876543210ULL, "SELECT ?", 7, T0, 41);
	struct col_store *s = open_store(36500);
	char err[256];
	ck_assert_int_eq(col_store_start(s, a, err, sizeof err), 0);
	col_store_stop(s);
	col_store_free(s);
	ck_assert_int_eq(scalar("SELECT count(*) FROM error_groups"), 2);
	ck_assert_int_eq(scalar("SELECT count(*) FROM n_plus_one_patterns"), 1);

	struct col_agg *b = col_agg_new(100);
	s = open_store(36500);
	ck_assert_int_eq(col_store_load(s, b, err, sizeof err), 0);
	/* Ids continue past every example, even with no request stored. */
	ck_assert_int_eq(col_store_next_id(s), 42);
	ck_assert_int_eq(col_store_start(s, b, err, sizeof err), 0);
	col_findings_error(col_agg_findings(b), "api", "GET", "/a", "HTTP 503", "down again",
	                   T0 + 5 * SEC, 0);
	col_store_stop(s);
	col_store_free(s);
	struct col_error_rows e;
	ck_assert_int_eq(col_findings_errors(col_agg_findings(b), NULL, &e), 0);
	ck_assert_uint_eq(e.n, 2);
	ck_assert_str_eq(e.v[0].type, "HTTP 503");
	ck_assert_uint_eq(e.v[0].count, 2);
	ck_assert_int_eq(e.v[0].example_id, 40);
	ck_assert_str_eq(e.v[0].message, "down again");
	ck_assert_ptr_null(e.v[1].method);
	ck_assert_str_eq(e.v[1].type, "MySQL 1146");
	col_error_rows_free(&e);
	struct col_n1_rows p;
	ck_assert_int_eq(col_findings_patterns(col_agg_findings(b), NULL, &p), 0);
	ck_assert_uint_eq(p.n, 1);
	ck_assert(p.v[0].fp == 0xfedcba9876543210ULL);
	ck_assert_uint_eq(p.v[0].max_repeats, 7);
	ck_assert_int_eq(p.v[0].example_id, 41);
	col_n1_rows_free(&p);
	/* The second run's change was written over the first's row. */
	ck_assert_int_eq(scalar("SELECT count FROM error_groups WHERE type = 'HTTP 503'"), 2);
	col_agg_free(a);
	col_agg_free(b);
}
END_TEST

/* A fake PostgreSQL server on a Unix socket in dir, for one connection:
 * it trusts the startup, then answers each statement, in the simple or
 * the extended protocol, by the first rule whose `match` its text
 * contains: an ErrorResponse (SQLSTATE `state`, message `msg`), a row of
 * text values (`row`, comma-separated), or the connection closed (`close`,
 * as a crashed server's); a statement no rule names succeeds with no
 * rows. Rules end with a NULL match. */
struct fake_rule {
	const char *match;
	const char *state, *msg;
	const char *row;
	int close;
};

static int fake_pg_fd = -1;
static const struct fake_rule *fake_rules;

/* A full disk, for every statement. */
static const struct fake_rule disk_full[] = {
	{ "", "53100", "could not extend file: No space left on device", NULL, 0 },
	{ NULL, NULL, NULL, NULL, 0 },
};

static int fake_read(int fd, void *b, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, (char *)b + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static void fake_msg(int fd, char type, const void *body, size_t n)
{
	unsigned char h[5] = { (unsigned char)type, (unsigned char)((n + 4) >> 24),
	                       (unsigned char)((n + 4) >> 16), (unsigned char)((n + 4) >> 8),
	                       (unsigned char)(n + 4) };
	ck_assert_int_eq(write(fd, h, 5), 5);
	ck_assert_int_eq(write(fd, body, n), (ssize_t)n);
}

static const struct fake_rule *fake_find(const char *sql)
{
	for (const struct fake_rule *r = fake_rules; r != NULL && r->match != NULL; r++)
		if (strstr(sql, r->match) != NULL)
			return r;
	return NULL;
}

static void fake_error(int fd, const struct fake_rule *r)
{
	char b[512];
	int n = snprintf(b, sizeof b, "SERROR%cVERROR%cC%s%cM%s%c", 0, 0, r->state, 0, r->msg, 0);
	fake_msg(fd, 'E', b, (size_t)n + 1); /* snprintf's 0 ends the list */
}

static size_t put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
	return 2;
}

static size_t put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	return 4;
}

/* RowDescription (text columns c0, c1, ...) or, data set, DataRow of
 * the rule's row. */
static void fake_row(int fd, const char *row, int data)
{
	unsigned char b[512];
	char vals[256];
	snprintf(vals, sizeof vals, "%s", row);
	unsigned ncol = 1;
	for (const char *c = vals; *c; c++)
		ncol += *c == ',';
	size_t n = put16(b, ncol);
	char *save = NULL;
	unsigned i = 0;
	for (char *v = strtok_r(vals, ",", &save); v != NULL; v = strtok_r(NULL, ",", &save), i++) {
		if (data) {
			n += put32(b + n, (uint32_t)strlen(v));
			memcpy(b + n, v, strlen(v));
			n += strlen(v);
			continue;
		}
		n += (size_t)snprintf((char *)b + n, sizeof b - n, "c%u", i) + 1;
		n += put32(b + n, 0);        /* table */
		n += put16(b + n, 0);        /* column */
		n += put32(b + n, 25);       /* text */
		n += put16(b + n, 0xffff);   /* variable length */
		n += put32(b + n, 0xffffffffu);
		n += put16(b + n, 0);        /* text format */
	}
	fake_msg(fd, data ? 'D' : 'T', b, n);
}

static void *fake_pg_main(void *arg)
{
	(void)arg;
	int fd = accept(fake_pg_fd, NULL, NULL);
	/* One connection: a second is refused at once. */
	close(fake_pg_fd);
	fake_pg_fd = -1;
	if (fd < 0)
		return NULL;
	unsigned char b[8192];
	uint32_t len;
	for (;;) { /* startup packet, after any SSL / GSS request ("no") */
		if (fake_read(fd, b, 4) < 0)
			goto out;
		len = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
		if (len < 8 || len > sizeof b || fake_read(fd, b, len - 4) < 0)
			goto out;
		uint32_t code = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
		                (uint32_t)b[2] << 8 | b[3];
		if (code != 80877103 && code != 80877104)
			break;
		ck_assert_int_eq(write(fd, "N", 1), 1);
	}
	static const unsigned char auth_ok[4] = { 0, 0, 0, 0 };
	static const char version[] = "server_version\0" "16.0";
	static const char encoding[] = "client_encoding\0" "UTF8";
	fake_msg(fd, 'R', auth_ok, 4);
	fake_msg(fd, 'S', version, sizeof version);
	fake_msg(fd, 'S', encoding, sizeof encoding);
	fake_msg(fd, 'Z', "I", 1);
	const struct fake_rule *cur = NULL; /* the extended protocol's statement */
	int failed = 0;                     /* it failed: skip to Sync */
	for (;;) {
		if (fake_read(fd, b, 5) < 0)
			break;
		len = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
		if (b[0] == 'X' || len < 4 || len - 4 >= sizeof b - 5 ||
		    fake_read(fd, b + 5, len - 4) < 0)
			break;
		b[5 + len - 4] = '\0';
		const char *body = (const char *)b + 5;
		switch (b[0]) {
		case 'Q': /* simple query: its results, then ReadyForQuery */
			cur = fake_find(body);
			if (cur != NULL && cur->close)
				goto out;
			if (cur != NULL && cur->state != NULL) {
				fake_error(fd, cur);
			} else {
				if (cur != NULL && cur->row != NULL) {
					fake_row(fd, cur->row, 0);
					fake_row(fd, cur->row, 1);
				}
				fake_msg(fd, 'C', "OK", 3);
			}
			fake_msg(fd, 'Z', "I", 1);
			break;
		case 'P': /* Parse: the statement name, then its text */
			cur = fake_find(body + strlen(body) + 1);
			failed = 0;
			if (cur != NULL && cur->close)
				goto out;
			if (cur != NULL && cur->state != NULL) {
				fake_error(fd, cur);
				failed = 1;
			} else {
				fake_msg(fd, '1', "", 0);
			}
			break;
		case 'B':
			if (!failed)
				fake_msg(fd, '2', "", 0);
			break;
		case 'D':
			if (failed)
				break;
			if (cur != NULL && cur->row != NULL)
				fake_row(fd, cur->row, 0);
			else
				fake_msg(fd, 'n', "", 0);
			break;
		case 'E':
			if (failed)
				break;
			if (cur != NULL && cur->row != NULL)
				fake_row(fd, cur->row, 1);
			fake_msg(fd, 'C', "OK", 3);
			break;
		case 'S':
			fake_msg(fd, 'Z', "I", 1);
			failed = 0;
			break;
		default:
			break;
		}
	}
out:
	close(fd);
	return NULL;
}

/* Starts the fake server with rules; its connection string into uri. */
static void fake_pg_start(const struct fake_rule *rules, pthread_t *th, char *uri, size_t len)
{
	char sock[128];
	snprintf(sock, sizeof sock, "%s/.s.PGSQL.5432", dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ck_assert_uint_lt(strlen(sock), sizeof sa.sun_path);
	strcpy(sa.sun_path, sock);
	fake_rules = rules;
	fake_pg_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fake_pg_fd, 0);
	ck_assert_int_eq(bind(fake_pg_fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fake_pg_fd, 1), 0);
	ck_assert_int_eq(pthread_create(th, NULL, fake_pg_main, NULL), 0);
	snprintf(uri, len, "postgresql:///t?host=%s&port=5432&user=t&sslmode=disable"
	         "&gssencmode=disable", dir);
}

static void fake_pg_end(pthread_t th)
{
	char sock[128];
	pthread_join(th, NULL);
	snprintf(sock, sizeof sock, "%s/.s.PGSQL.5432", dir);
	unlink(sock);
}

/* The retry-or-refuse decision reads the failure it is about: a full disk
 * passes by itself (1); a failure no statement reports, found after it
 * (a connection lost without a result), must not read its SQLSTATE. */
START_TEST(test_pg_take_failure)
{
	char uri[256], buf[512];
	pthread_t th;
	fake_pg_start(disk_full, &th, uri, sizeof uri);
	PGconn *c = col_pg_connect(uri, buf, sizeof buf);
	ck_assert_msg(c != NULL, "connect: %s", buf);
	ck_assert_int_eq(col_pg_exec(c, "INSERT INTO t VALUES (1)"), -EIO);
	ck_assert_int_eq(col_pg_take_failure(c, buf, sizeof buf), 1);
	ck_assert_str_eq(buf, "could not extend file: No space left on device (SQLSTATE 53100)");
	/* The next failure, with no statement: its own (the connection's). */
	ck_assert_int_eq(col_pg_take_failure(c, buf, sizeof buf), 0);
	ck_assert_ptr_null(strstr(buf, "SQLSTATE"));
	PQfinish(c);
	fake_pg_end(th);
}
END_TEST

/* PostgreSQL refuses a batch of rows for its data on every try (here its
 * COPY, SQLSTATE 23514) and a retention pass fails between two tries:
 * the rows are refused after their third failed try, as without it. The
 * retention failure counted towards the three, and they were refused at
 * their second. The fake server answers what opening the store asks
 * (schema version current, the host's slot). */
START_TEST(test_pg_retention_not_data_error)
{
	static const struct fake_rule rules[] = {
		{ "FROM schema_version", NULL, NULL, "8", 0 },
		{ "SELECT (SELECT slot", NULL, NULL, "1,0,0", 0 },
		{ "COPY requests", "23514", "refused", NULL, 0 },
		{ "pg_inherits", "42501", "permission denied for table pg_inherits", NULL, 0 },
		{ NULL, NULL, NULL, NULL, 0 },
	};
	char uri[256], err[256] = "";
	pthread_t th;
	fake_pg_start(rules, &th, uri, sizeof uri);
	struct col_store_opts o = { .path = uri, .host = "h1", .retention_days = 7,
	                            .max_rows_per_s = 1000 };
	struct col_store *s = col_store_open(&o, err, sizeof err);
	ck_assert_msg(s != NULL, "open: %s", err);
	ck_assert_str_eq(s->be->name, "postgresql");
	struct col_row *row = mkrow(s, col_clock_real_ns(), 1, 0);
	struct col_store_counters c;
	/* What the store thread does (store.c), one step at a time. */
	s->cur_kind = COL_SK_ROWS;
	ck_assert_int_eq(s->be->write_rows(s, &row, 1), -EIO);
	s->cur_kind = COL_SK_RETENTION;
	ck_assert_int_eq(s->be->expire_step(s), 0);
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.storage_errors, 2);
	ck_assert_ptr_nonnull(strstr(c.last_error, "deleting expired rows: permission denied"));
	s->cur_kind = COL_SK_ROWS;
	ck_assert_int_eq(s->be->write_rows(s, &row, 1), -EIO);
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.rows_rejected, 0);
	ck_assert_int_eq(s->be->write_rows(s, &row, 1), 0);
	col_store_counters(s, &c);
	ck_assert_uint_eq(c.rows_rejected, 1);
	ck_assert_uint_eq(c.storage_errors, 4);
	s->cur_kind = 0;
	col_row_free(row);
	col_store_free(s);
	fake_pg_end(th);
}
END_TEST

/* Runs one read of the API on PostgreSQL against the fake server with
 * rules: its log into log. */
static void qpg_read_log(const struct fake_rule *rules, int minutes, char *log, size_t len)
{
	char uri[256], err[256] = "", logpath[160];
	pthread_t th;
	fake_pg_start(rules, &th, uri, sizeof uri);
	struct col_qpg *q = col_qpg_open(uri, 1, err, sizeof err);
	ck_assert_msg(q != NULL, "open: %s", err);
	snprintf(logpath, sizeof logpath, "%s/log", dir);
	int saved = log_capture_start(logpath);
	int rc;
	if (minutes) {
		struct col_epset *e = col_epset_new();
		ck_assert_ptr_nonnull(e);
		uint64_t last = 0;
		rc = col_qpg_minutes(q, "h1", 0, 60, NULL, NULL, e, &last);
		col_epset_free(e);
	} else {
		struct col_req_filter f;
		col_req_filter_init(&f);
		int more = 0;
		rc = col_qpg_requests(q, &f, NULL, NULL, &more);
	}
	log_capture_end(saved, logpath, log, len);
	ck_assert_int_eq(rc, -EIO);
	col_qpg_free(q);
	fake_pg_end(th);
}

/* The API's PostgreSQL reads log the failed statement's own message when
 * the server goes away mid-statement (libpq's "server closed the
 * connection unexpectedly"): a read of the minutes said the ROLLBACK's
 * run after it ("no connection to the server"), and a read of requests,
 * whose reconnection failed too, "out of memory". */
START_TEST(test_qpg_error_message)
{
	static const struct fake_rule minutes_gone[] = {
		{ "FROM endpoint_minutes", NULL, NULL, NULL, 1 },
		{ NULL, NULL, NULL, NULL, 0 },
	};
	static const struct fake_rule requests_gone[] = {
		{ "FROM requests", NULL, NULL, NULL, 1 },
		{ NULL, NULL, NULL, NULL, 0 },
	};
	char log[4096];
	qpg_read_log(minutes_gone, 1, log, sizeof log);
	ck_assert_msg(strstr(log, "query: endpoint minutes: server closed the connection"
	                     " unexpectedly") != NULL, "log: %s", log);
	qpg_read_log(requests_gone, 0, log, sizeof log);
	ck_assert_msg(strstr(log, "query: listing requests: server closed the connection"
	                     " unexpectedly") != NULL, "log: %s", log);
}
END_TEST

Suite *sqlstore_suite(void)
{
	Suite *s = suite_create("sqlstore");
	TCase *tc = tcase_create("sqlite");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_statements_with_request);
	tcase_add_test(tc, test_migration);
	tcase_add_test(tc, test_store_down);
	tcase_add_test(tc, test_store_queue_bytes);
	tcase_add_test(tc, test_pg_copy);
	tcase_add_test(tc, test_pg_redact);
	tcase_add_test(tc, test_pg_take_failure);
	tcase_add_test(tc, test_pg_retention_not_data_error);
	tcase_add_test(tc, test_qpg_error_message);
	tcase_add_test(tc, test_retention);
	tcase_add_test(tc, test_retention_huge);
	tcase_add_test(tc, test_shapes_persist);
	tcase_add_test(tc, test_shape_texts_expire);
	tcase_add_test(tc, test_findings_persist);
	suite_add_tcase(s, tc);
	return s;
}

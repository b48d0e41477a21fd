/*
 * store.c - the SQLite writer thread (store.h).
 *
 * One connection, used only by the writer thread (and by col_store_open/
 * _load before it starts), with every statement prepared once. Readers
 * (query.c) have their own connections: WAL lets them read while we write.
 */
#include "config.h"
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agg.h"
#include "col.h"
#include "log.h"

#define DEFAULT_QUEUE_CAP 65536
#define BATCH_MAX 5000               /* rows per transaction */
#define WAKE_ROWS 1000               /* commit early when this many wait */
#define FLUSH_NS (200 * 1000000LL)   /* commit at least this often */
#define RETRY_NS (1000 * 1000000LL)  /* after a failed transaction */
#define MINUTE_CHECK_NS COL_NS_PER_S
#define MINUTE_GRACE_S 5             /* take a minute this long after it ends */
#define RETENTION_EVERY_NS (3600 * COL_NS_PER_S)
#define RETENTION_BATCH 2000
#define RETENTION_BUDGET_NS (50 * 1000000LL)
#define ERROR_LOG_EVERY_NS (60 * COL_NS_PER_S)
#define SHUTDOWN_TRIES 5

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS requests ("
	" id INTEGER PRIMARY KEY,"
	" ts_ns INTEGER NOT NULL,"          /* Unix ns, start of the request */
	" host TEXT NOT NULL,"
	" service TEXT NOT NULL,"
	" pid INTEGER NOT NULL,"
	" tid INTEGER NOT NULL,"
	" method TEXT NOT NULL,"
	" path TEXT NOT NULL,"
	" route TEXT NOT NULL,"
	" status INTEGER NOT NULL,"
	" duration_ms REAL NOT NULL,"
	" bytes_in INTEGER NOT NULL,"
	" bytes_out INTEGER NOT NULL,"
	" sql_count INTEGER NOT NULL DEFAULT 0,"
	" sql_time_ms REAL NOT NULL DEFAULT 0,"
	" slow INTEGER NOT NULL DEFAULT 0,"
	" error INTEGER NOT NULL DEFAULT 0,"
	" aborted INTEGER NOT NULL DEFAULT 0,"
	" n_plus_one INTEGER NOT NULL DEFAULT 0);"
	/* Newest-first listing walks the primary key; filters get an index
	 * each, with id so that "WHERE x = ? ORDER BY id DESC" needs no sort.
	 * The flags are rare, so partial indexes cost little. */
	"CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts_ns);"
	"CREATE INDEX IF NOT EXISTS requests_route ON requests(route, id);"
	"CREATE INDEX IF NOT EXISTS requests_service ON requests(service, id);"
	"CREATE INDEX IF NOT EXISTS requests_status ON requests(status, id);"
	"CREATE INDEX IF NOT EXISTS requests_slow ON requests(id) WHERE slow = 1;"
	"CREATE INDEX IF NOT EXISTS requests_error ON requests(id) WHERE error = 1;"
	"CREATE INDEX IF NOT EXISTS requests_n_plus_one ON requests(id) WHERE n_plus_one = 1;"
	"CREATE TABLE IF NOT EXISTS endpoint_minutes ("
	" id INTEGER PRIMARY KEY,"
	" minute INTEGER NOT NULL,"         /* Unix s of its start, multiple of 60 */
	" host TEXT NOT NULL,"
	" service TEXT NOT NULL,"
	" method TEXT NOT NULL,"
	" route TEXT NOT NULL,"
	" count INTEGER NOT NULL,"
	" error_count INTEGER NOT NULL,"
	" slow_count INTEGER NOT NULL,"
	" sum_ms REAL NOT NULL,"
	" min_ms REAL NOT NULL,"
	" max_ms REAL NOT NULL,"
	" sql_count INTEGER NOT NULL DEFAULT 0,"
	" sql_time_ms REAL NOT NULL DEFAULT 0,"
	" n_plus_one_count INTEGER NOT NULL DEFAULT 0,"
	" sketch BLOB NOT NULL,"
	" UNIQUE (minute, host, service, method, route));"
	"CREATE TABLE IF NOT EXISTS minute_flush ("
	" host TEXT PRIMARY KEY,"
	" last_batch INTEGER NOT NULL);";

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT_REQ,
	ST_MIN_SELECT,
	ST_MIN_INSERT,
	ST_MIN_UPDATE,
	ST_FLUSH_MARK,
	ST_EXPIRE_REQ,
	ST_EXPIRE_MIN,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_INSERT_REQ] =
		"INSERT INTO requests (ts_ns, host, service, pid, tid, method, path, route,"
		" status, duration_ms, bytes_in, bytes_out, sql_count, sql_time_ms, slow,"
		" error, aborted, n_plus_one)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
		" ?16, ?17, ?18)",
	[ST_MIN_SELECT] =
		"SELECT id, count, error_count, slow_count, sum_ms, min_ms, max_ms,"
		" sql_count, sql_time_ms, n_plus_one_count, sketch FROM endpoint_minutes"
		" WHERE minute = ?1 AND host = ?2 AND service = ?3 AND method = ?4 AND route = ?5",
	[ST_MIN_INSERT] =
		"INSERT INTO endpoint_minutes (minute, host, service, method, route, count,"
		" error_count, slow_count, sum_ms, min_ms, max_ms, sql_count, sql_time_ms,"
		" n_plus_one_count, sketch)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
	[ST_MIN_UPDATE] =
		"UPDATE endpoint_minutes SET count = ?6, error_count = ?7, slow_count = ?8,"
		" sum_ms = ?9, min_ms = ?10, max_ms = ?11, sql_count = ?12, sql_time_ms = ?13,"
		" n_plus_one_count = ?14, sketch = ?15 WHERE id = ?1",
	[ST_FLUSH_MARK] =
		"INSERT INTO minute_flush (host, last_batch) VALUES (?1, ?2)"
		" ON CONFLICT (host) DO UPDATE SET last_batch = excluded.last_batch",
	[ST_EXPIRE_REQ] =
		"DELETE FROM requests WHERE id IN"
		" (SELECT id FROM requests WHERE ts_ns < ?1 LIMIT 2000)",
	[ST_EXPIRE_MIN] =
		"DELETE FROM endpoint_minutes WHERE id IN"
		" (SELECT id FROM endpoint_minutes WHERE minute < ?1 LIMIT 2000)",
};

struct col_store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	char *path, *host;
	int retention_days;
	int max_rows_per_s;
	struct col_agg *agg;

	pthread_t thread;
	int running;                  /* thread started and not joined */

	pthread_mutex_t mu;           /* guards the queue and flags below */
	pthread_cond_t wake;          /* rows or stop for the writer */
	pthread_cond_t room;          /* space for a waiting producer */
	struct col_row **q;
	size_t cap, head, n;
	int stopping;
	int exited;                   /* the writer no longer takes rows */

	/* ingest thread only */
	int64_t admit_sec;
	int admit_n;

	/* writer thread only */
	uint64_t next_batch_id;
	struct col_minute_batch *batch;
	int64_t last_error_log;
	uint64_t errors_unlogged;

	/* written by their owner thread, read by anyone (relaxed atomics) */
	uint64_t c_written, c_dropped, c_sampled, c_rejected, c_expired,
	         c_minutes, c_errors;
};

#define CNT_ADD(s, f, v) __atomic_fetch_add(&(s)->f, (v), __ATOMIC_RELAXED)
#define CNT_GET(s, f) __atomic_load_n(&(s)->f, __ATOMIC_RELAXED)

struct col_row *col_row_new(const char *service, const char *path, const char *route)
{
	size_t ls = strlen(service) + 1, lp = strlen(path) + 1, lr = strlen(route) + 1;
	struct col_row *r = calloc(1, sizeof *r + ls + lp + lr);
	if (r == NULL)
		return NULL;
	char *d = r->data;
	memcpy(d, service, ls);
	r->service = d;
	memcpy(d + ls, path, lp);
	r->path = d + ls;
	memcpy(d + ls + lp, route, lr);
	r->route = d + ls + lp;
	r->method = "GET";
	return r;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Transient errors are worth retrying the whole transaction for; anything
 * else is about one row's data. */
static int is_transient(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_NOMEM:
	case SQLITE_READONLY:
	case SQLITE_PROTOCOL:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return 1;
	default:
		return 0;
	}
}

/* Counts a failed transaction and logs it, at most once a minute. */
static void storage_error(struct col_store *s, const char *what)
{
	CNT_ADD(s, c_errors, 1);
	int64_t now = col_clock_mono_ns();
	if (s->last_error_log != 0 && now - s->last_error_log < ERROR_LOG_EVERY_NS) {
		s->errors_unlogged++;
		return;
	}
	if (s->errors_unlogged > 0)
		col_log(COL_LOG_ERROR, "storage: %s: %s (%llu more errors in the last minute)",
		        what, sqlite3_errmsg(s->db), (unsigned long long)s->errors_unlogged);
	else
		col_log(COL_LOG_ERROR, "storage: %s: %s (will retry; further errors are"
		        " reported once a minute)", what, sqlite3_errmsg(s->db));
	s->last_error_log = now;
	s->errors_unlogged = 0;
}

static int exec1(struct col_store *s, int which)
{
	sqlite3_stmt *st = s->st[which];
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void rollback(struct col_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		exec1(s, ST_ROLLBACK);
}

static int64_t clamp_i64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* ---- opening ---- */

static int create_schema(struct col_store *s, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, schema_sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		set_err(err, errlen, "db %s: creating the schema: %s", s->path,
		        msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -EIO;
	}
	sqlite3_stmt *st = NULL;
	int version = -1;
	rc = sqlite3_prepare_v2(s->db, "SELECT max(version) FROM schema_version", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > COL_SCHEMA_VERSION) {
		set_err(err, errlen, "db %s: schema version %d is newer than this collector"
		        " supports (%d)", s->path, version, COL_SCHEMA_VERSION);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -EPROTONOSUPPORT;
	}
	if (version < 0)
		rc = sqlite3_exec(s->db, "INSERT INTO schema_version (version) VALUES (1)",
		                  NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		set_err(err, errlen, "db %s: creating the schema: %s", s->path,
		        msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -EIO;
	}
	return 0;
}

static uint64_t read_last_batch(struct col_store *s)
{
	sqlite3_stmt *st = NULL;
	uint64_t last = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT last_batch FROM minute_flush WHERE host = ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, s->host, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		last = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return last;
}

struct col_store *col_store_open(const struct col_store_opts *o, char *err, size_t errlen)
{
	struct col_store *s = calloc(1, sizeof *s);
	if (s == NULL) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_cond_init(&s->room, &ca);
	pthread_condattr_destroy(&ca);
	s->path = strdup(o->path);
	s->host = strdup(o->host);
	s->cap = o->queue_cap ? o->queue_cap : DEFAULT_QUEUE_CAP;
	s->q = calloc(s->cap, sizeof *s->q);
	s->retention_days = o->retention_days > 0 ? o->retention_days : 1;
	s->max_rows_per_s = o->max_rows_per_s >= 0 ? o->max_rows_per_s : 0;
	s->admit_sec = -1;
	if (s->path == NULL || s->host == NULL || s->q == NULL) {
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	int rc = sqlite3_open_v2(s->path, &s->db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                         NULL);
	if (rc != SQLITE_OK) {
		set_err(err, errlen, "db %s: %s", s->path,
		        s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, 5000);
	/* A file that is not a database fails on its first read, here. */
	sqlite3_stmt *st = NULL;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		set_err(err, errlen, "db %s: %s", s->path, sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		goto fail;
	}
	const char *mode = (const char *)sqlite3_column_text(st, 0);
	if (mode == NULL || strcmp(mode, "wal") != 0)
		col_log(COL_LOG_WARN, "db %s: WAL mode unavailable (journal mode %s):"
		        " readers may wait for the writer", s->path, mode ? mode : "?");
	sqlite3_finalize(st);
	sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	if (create_schema(s, err, errlen) < 0)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                        &s->st[i], NULL);
		if (rc != SQLITE_OK) {
			set_err(err, errlen, "db %s: %s", s->path, sqlite3_errmsg(s->db));
			goto fail;
		}
	}
	s->next_batch_id = read_last_batch(s) + 1;
	return s;
fail:
	col_store_free(s);
	return NULL;
}

/* ---- loading stored minutes ---- */

int col_store_read_stats(sqlite3_stmt *st, int c, struct col_stats *o)
{
	o->count = (uint64_t)sqlite3_column_int64(st, c);
	o->error_count = (uint64_t)sqlite3_column_int64(st, c + 1);
	o->slow_count = (uint64_t)sqlite3_column_int64(st, c + 2);
	o->sum_ms = sqlite3_column_double(st, c + 3);
	o->min_ms = sqlite3_column_double(st, c + 4);
	o->max_ms = sqlite3_column_double(st, c + 5);
	o->sql_count = (uint64_t)sqlite3_column_int64(st, c + 6);
	o->sql_time_ms = sqlite3_column_double(st, c + 7);
	o->n_plus_one_count = (uint64_t)sqlite3_column_int64(st, c + 8);
	const void *blob = sqlite3_column_blob(st, c + 9);
	int len = sqlite3_column_bytes(st, c + 9);
	if (blob == NULL || len <= 0)
		return o->count ? -EINVAL : 0;
	return col_sketch_merge_encoded(&o->sketch, blob, (size_t)len);
}

int col_store_load(struct col_store *s, struct col_agg *agg, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int64_t t0 = col_clock_mono_ns();
	int rc = sqlite3_prepare_v2(s->db,
		"SELECT service, method, route, count, error_count, slow_count, sum_ms,"
		" min_ms, max_ms, sql_count, sql_time_ms, n_plus_one_count, sketch"
		" FROM endpoint_minutes WHERE host = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		set_err(err, errlen, "db %s: %s", s->path, sqlite3_errmsg(s->db));
		return -EIO;
	}
	sqlite3_bind_text(st, 1, s->host, -1, SQLITE_STATIC);
	uint64_t rows = 0, damaged = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *svc = (const char *)sqlite3_column_text(st, 0);
		const char *method = (const char *)sqlite3_column_text(st, 1);
		const char *route = (const char *)sqlite3_column_text(st, 2);
		if (svc == NULL || method == NULL || route == NULL)
			continue;
		struct col_stats stats = { 0 };
		if (col_store_read_stats(st, 3, &stats) < 0)
			damaged++;
		int lrc = col_agg_load(agg, svc, method, route, &stats);
		col_stats_release(&stats);
		if (lrc < 0) {
			sqlite3_finalize(st);
			set_err(err, errlen, "loading stored statistics: out of memory");
			return -ENOMEM;
		}
		rows++;
	}
	if (rc != SQLITE_DONE) {
		set_err(err, errlen, "db %s: loading stored statistics: %s", s->path,
		        sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return -EIO;
	}
	sqlite3_finalize(st);
	if (damaged)
		col_log(COL_LOG_WARN, "db %s: %llu stored minute sketches were damaged;"
		        " their percentiles are lost, counts kept", s->path,
		        (unsigned long long)damaged);
	col_log(COL_LOG_INFO, "loaded %llu stored endpoint-minutes in %.0f ms",
	        (unsigned long long)rows, (double)(col_clock_mono_ns() - t0) / 1e6);
	return 0;
}

/* ---- writing rows ---- */

static int bind_row(sqlite3_stmt *st, const struct col_store *s, const struct col_row *r)
{
	sqlite3_bind_int64(st, 1, r->ts_ns);
	sqlite3_bind_text(st, 2, s->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->service, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, r->pid);
	sqlite3_bind_int64(st, 5, r->tid);
	sqlite3_bind_text(st, 6, r->method, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, r->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, r->route, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, r->status);
	sqlite3_bind_double(st, 10, r->duration_ms);
	sqlite3_bind_int64(st, 11, clamp_i64(r->bytes_in));
	sqlite3_bind_int64(st, 12, clamp_i64(r->bytes_out));
	sqlite3_bind_int64(st, 13, r->sql_count);
	sqlite3_bind_double(st, 14, r->sql_time_ms);
	sqlite3_bind_int(st, 15, r->slow);
	sqlite3_bind_int(st, 16, r->error);
	sqlite3_bind_int(st, 17, r->aborted);
	return sqlite3_bind_int(st, 18, r->n_plus_one);
}

/* Inserts rows[0..n) in one transaction. 0 (rows a constraint refused are
 * counted and skipped), or -EIO after a transient failure (rolled back). */
static int write_rows(struct col_store *s, struct col_row **rows, size_t n)
{
	int rc = exec1(s, ST_BEGIN);
	if (rc != SQLITE_OK) {
		storage_error(s, "starting a transaction");
		return -EIO;
	}
	sqlite3_stmt *st = s->st[ST_INSERT_REQ];
	uint64_t rejected = 0;
	for (size_t i = 0; i < n; i++) {
		bind_row(st, s, rows[i]);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc == SQLITE_DONE)
			continue;
		if (is_transient(rc)) {
			storage_error(s, "writing requests");
			rollback(s);
			return -EIO;
		}
		rejected++;
	}
	sqlite3_clear_bindings(st);
	rc = exec1(s, ST_COMMIT);
	if (rc != SQLITE_OK) {
		storage_error(s, "committing requests");
		rollback(s);
		return -EIO;
	}
	if (rejected) {
		CNT_ADD(s, c_rejected, rejected);
		col_log(COL_LOG_WARN, "storage: %llu request rows refused: %s",
		        (unsigned long long)rejected, sqlite3_errmsg(s->db));
	}
	CNT_ADD(s, c_written, n - rejected);
	return 0;
}

/* ---- writing minutes ---- */

static void bind_stats(sqlite3_stmt *st, const struct col_stats *o,
                       const uint8_t *blob, size_t len)
{
	sqlite3_bind_int64(st, 6, clamp_i64(o->count));
	sqlite3_bind_int64(st, 7, clamp_i64(o->error_count));
	sqlite3_bind_int64(st, 8, clamp_i64(o->slow_count));
	sqlite3_bind_double(st, 9, o->sum_ms);
	sqlite3_bind_double(st, 10, o->min_ms);
	sqlite3_bind_double(st, 11, o->max_ms);
	sqlite3_bind_int64(st, 12, clamp_i64(o->sql_count));
	sqlite3_bind_double(st, 13, o->sql_time_ms);
	sqlite3_bind_int64(st, 14, clamp_i64(o->n_plus_one_count));
	sqlite3_bind_blob(st, 15, blob, (int)len, SQLITE_TRANSIENT);
}

/* Upserts one endpoint-minute, merging with what is stored (a late request
 * for a minute already written, or the same minute before a restart).
 * Returns an SQLite code. */
static int upsert_minute(struct col_store *s, int64_t minute, const struct col_ep *e)
{
	sqlite3_stmt *sel = s->st[ST_MIN_SELECT];
	sqlite3_bind_int64(sel, 1, minute);
	sqlite3_bind_text(sel, 2, s->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(sel, 3, e->service, -1, SQLITE_STATIC);
	sqlite3_bind_text(sel, 4, e->method, -1, SQLITE_STATIC);
	sqlite3_bind_text(sel, 5, e->route, -1, SQLITE_STATIC);
	struct col_stats merged = { 0 };
	int64_t id = 0;
	int rc = sqlite3_step(sel);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(sel, 0);
		if (col_store_read_stats(sel, 1, &merged) < 0)
			col_log(COL_LOG_WARN, "storage: damaged sketch for %s %s %s at minute"
			        " %lld replaced", e->service, e->method, e->route,
			        (long long)minute);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_reset(sel);
	if (rc != SQLITE_OK)
		return rc;
	if (col_stats_merge(&merged, &e->st) < 0) {
		col_stats_release(&merged);
		return SQLITE_NOMEM;
	}
	uint8_t *blob = NULL;
	size_t len = 0;
	if (col_sketch_encode(&merged.sketch, &blob, &len) < 0) {
		col_stats_release(&merged);
		return SQLITE_NOMEM;
	}
	sqlite3_stmt *w = s->st[id ? ST_MIN_UPDATE : ST_MIN_INSERT];
	sqlite3_bind_int64(w, 1, id ? id : minute);
	if (!id) {
		sqlite3_bind_text(w, 2, s->host, -1, SQLITE_STATIC);
		sqlite3_bind_text(w, 3, e->service, -1, SQLITE_STATIC);
		sqlite3_bind_text(w, 4, e->method, -1, SQLITE_STATIC);
		sqlite3_bind_text(w, 5, e->route, -1, SQLITE_STATIC);
	}
	bind_stats(w, &merged, blob, len);
	rc = sqlite3_step(w);
	sqlite3_reset(w);
	sqlite3_clear_bindings(w);
	free(blob);
	col_stats_release(&merged);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Writes a taken batch and marks it committed, in one transaction. */
static int write_minutes(struct col_store *s, const struct col_minute_batch *b)
{
	uint64_t n = 0;
	int rc = exec1(s, ST_BEGIN);
	if (rc != SQLITE_OK) {
		storage_error(s, "starting a transaction");
		return -EIO;
	}
	for (const struct col_minute *m = b->minutes; m && rc == SQLITE_OK; m = m->next) {
		size_t it = 0;
		const struct col_ep *e;
		while (rc == SQLITE_OK && (e = col_epset_next(m->eps, &it)) != NULL) {
			rc = upsert_minute(s, m->minute, e);
			n++;
		}
	}
	if (rc == SQLITE_OK) {
		sqlite3_stmt *st = s->st[ST_FLUSH_MARK];
		sqlite3_bind_text(st, 1, s->host, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)b->id);
		rc = exec1(s, ST_FLUSH_MARK);
	}
	if (rc == SQLITE_OK)
		rc = exec1(s, ST_COMMIT);
	if (rc != SQLITE_OK) {
		storage_error(s, "writing endpoint minutes");
		rollback(s);
		return -EIO;
	}
	CNT_ADD(s, c_minutes, n);
	return 0;
}

/* Takes finished minutes (all of them when `all`) and writes them. Returns
 * 0 when nothing is left to write, -EIO when a batch is kept for retry. */
static int flush_minutes(struct col_store *s, int all)
{
	for (;;) {
		if (s->batch == NULL) {
			int64_t now_s = col_clock_real_ns() / COL_NS_PER_S;
			int64_t cutoff = all ? INT64_MAX : now_s - MINUTE_GRACE_S - COL_MINUTE_S + 1;
			int64_t horizon = all ? INT64_MIN : now_s + 3600;
			s->batch = col_agg_minutes_take(s->agg, cutoff, horizon, s->next_batch_id);
			if (s->batch == NULL)
				return 0;
			s->next_batch_id++;
		}
		if (write_minutes(s, s->batch) < 0)
			return -EIO;
		col_agg_minutes_done(s->agg, s->batch);
		s->batch = NULL;
		if (!all)
			return 0;
	}
}

/* ---- retention ---- */

/* Deletes up to a time budget of expired rows. 1 when more remain. */
static int expire_step(struct col_store *s)
{
	int64_t keep_ns = (int64_t)s->retention_days * 86400 * COL_NS_PER_S;
	int64_t cutoff_ns = col_clock_real_ns() - keep_ns;
	int64_t t0 = col_clock_mono_ns();
	for (int which = ST_EXPIRE_REQ; which <= ST_EXPIRE_MIN; which++) {
		for (;;) {
			sqlite3_stmt *st = s->st[which];
			sqlite3_bind_int64(st, 1, which == ST_EXPIRE_REQ ? cutoff_ns
			                                                 : cutoff_ns / COL_NS_PER_S - COL_MINUTE_S);
			int rc = exec1(s, which);
			if (rc != SQLITE_OK) {
				storage_error(s, "deleting expired rows");
				return 0; /* next hour */
			}
			int changed = sqlite3_changes(s->db);
			if (which == ST_EXPIRE_REQ)
				CNT_ADD(s, c_expired, (uint64_t)changed);
			if (changed < RETENTION_BATCH)
				break;
			if (col_clock_mono_ns() - t0 > RETENTION_BUDGET_NS)
				return 1;
		}
	}
	return 0;
}

/* ---- the thread ---- */

static void free_rows(struct col_row **rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rows[i]);
}

/* Moves up to BATCH_MAX queued rows into batch (lock held). */
static size_t take_rows(struct col_store *s, struct col_row **batch)
{
	size_t k = 0;
	while (k < BATCH_MAX && s->n > 0) {
		batch[k++] = s->q[s->head];
		s->head = (s->head + 1) % s->cap;
		s->n--;
	}
	if (k)
		pthread_cond_broadcast(&s->room);
	return k;
}

static void timed_wait(pthread_cond_t *c, pthread_mutex_t *mu, int64_t deadline_mono)
{
	struct timespec ts = {
		.tv_sec = deadline_mono / COL_NS_PER_S,
		.tv_nsec = deadline_mono % COL_NS_PER_S,
	};
	pthread_cond_timedwait(c, mu, &ts);
}

/* Shutdown: write every queued row and every minute, retrying transient
 * failures a few times; what still fails is counted as lost. */
static void final_flush(struct col_store *s, struct col_row **batch, size_t nb)
{
	for (;;) {
		if (nb == 0) {
			pthread_mutex_lock(&s->mu);
			nb = take_rows(s, batch);
			pthread_mutex_unlock(&s->mu);
			if (nb == 0)
				break;
		}
		int tries = 0;
		while (write_rows(s, batch, nb) < 0 && ++tries < SHUTDOWN_TRIES)
			nanosleep(&(struct timespec){ 0, 200 * 1000000L }, NULL);
		if (tries >= SHUTDOWN_TRIES) {
			CNT_ADD(s, c_dropped, nb);
			col_log(COL_LOG_ERROR, "storage: %zu request rows lost at shutdown", nb);
		}
		free_rows(batch, nb);
		nb = 0;
	}
	int tries = 0;
	while (flush_minutes(s, 1) < 0 && ++tries < SHUTDOWN_TRIES)
		nanosleep(&(struct timespec){ 0, 200 * 1000000L }, NULL);
	if (tries >= SHUTDOWN_TRIES)
		col_log(COL_LOG_ERROR, "storage: endpoint minutes lost at shutdown");
}

static void *store_main(void *arg)
{
	struct col_store *s = arg;
	struct col_row **batch = malloc(BATCH_MAX * sizeof *batch);
	size_t nb = 0;
	int64_t now = col_clock_mono_ns();
	int64_t next_retry = 0, next_minutes = now + MINUTE_CHECK_NS, next_expire = now;
	if (batch == NULL) {
		col_log(COL_LOG_ERROR, "storage: out of memory; nothing will be stored");
		pthread_mutex_lock(&s->mu);
		s->exited = 1;
		pthread_cond_broadcast(&s->room);
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&s->mu);
		/* Holding a failed batch, wait for its retry time whatever queues
		 * up; otherwise commit every FLUSH_NS or once WAKE_ROWS wait. */
		int64_t deadline = nb ? next_retry : now + FLUSH_NS;
		if (deadline > next_minutes)
			deadline = next_minutes;
		while (!s->stopping && (nb > 0 || s->n < WAKE_ROWS) &&
		       col_clock_mono_ns() < deadline)
			timed_wait(&s->wake, &s->mu, deadline);
		int stop = s->stopping;
		if (nb == 0)
			nb = take_rows(s, batch);
		pthread_mutex_unlock(&s->mu);

		if (stop) {
			final_flush(s, batch, nb);
			break;
		}
		now = col_clock_mono_ns();
		if (nb > 0 && now >= next_retry) {
			if (write_rows(s, batch, nb) == 0) {
				free_rows(batch, nb);
				nb = 0;
			} else {
				next_retry = now + RETRY_NS;
			}
		}
		if (now >= next_minutes) {
			flush_minutes(s, 0);
			next_minutes = now + MINUTE_CHECK_NS;
		}
		if (now >= next_expire)
			next_expire = expire_step(s) ? now : now + RETENTION_EVERY_NS;
		now = col_clock_mono_ns();
	}
	free(batch);
	pthread_mutex_lock(&s->mu);
	s->exited = 1;
	pthread_cond_broadcast(&s->room);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int col_store_start(struct col_store *s, struct col_agg *agg, char *err, size_t errlen)
{
	s->agg = agg;
	sigset_t all, old;
	sigfillset(&all);
	/* The writer never handles signals: main waits for them. */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&s->thread, NULL, store_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		set_err(err, errlen, "starting the store thread: %s", strerror(rc));
		return -rc;
	}
	s->running = 1;
	return 0;
}

int col_store_admit(struct col_store *s, int always, int64_t now_real_ns)
{
	int64_t sec = now_real_ns / COL_NS_PER_S;
	if (sec != s->admit_sec) {
		s->admit_sec = sec;
		s->admit_n = 0;
	}
	if (!always && s->admit_n >= s->max_rows_per_s) {
		CNT_ADD(s, c_sampled, 1);
		return 0;
	}
	if (s->admit_n < INT_MAX)
		s->admit_n++;
	return 1;
}

int col_store_push(struct col_store *s, struct col_row *row, int wait)
{
	pthread_mutex_lock(&s->mu);
	while (s->n == s->cap) {
		if (!wait || !s->running || s->exited || s->stopping) {
			pthread_mutex_unlock(&s->mu);
			free(row);
			CNT_ADD(s, c_dropped, 1);
			return -ENOSPC;
		}
		pthread_cond_signal(&s->wake);
		pthread_cond_wait(&s->room, &s->mu);
	}
	s->q[(s->head + s->n) % s->cap] = row;
	s->n++;
	if (s->n == WAKE_ROWS)
		pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void col_store_stop(struct col_store *s)
{
	if (s == NULL || !s->running)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->running = 0;
}

void col_store_free(struct col_store *s)
{
	if (s == NULL)
		return;
	col_store_stop(s);
	/* Rows queued but never written (a store that never started). */
	while (s->q && s->n > 0) {
		free(s->q[s->head]);
		s->head = (s->head + 1) % s->cap;
		s->n--;
	}
	/* A minute batch still taken (its final write failed) belongs to the
	 * aggregate, which frees it. */
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db)
		sqlite3_close(s->db);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->room);
	pthread_mutex_destroy(&s->mu);
	free(s->q);
	free(s->path);
	free(s->host);
	free(s);
}

void col_store_counters(struct col_store *s, struct col_store_counters *c)
{
	c->rows_written = CNT_GET(s, c_written);
	c->rows_dropped = CNT_GET(s, c_dropped);
	c->rows_sampled_out = CNT_GET(s, c_sampled);
	c->rows_rejected = CNT_GET(s, c_rejected);
	c->rows_expired = CNT_GET(s, c_expired);
	c->minutes_written = CNT_GET(s, c_minutes);
	c->storage_errors = CNT_GET(s, c_errors);
	pthread_mutex_lock(&s->mu);
	c->queue_depth = s->n;
	pthread_mutex_unlock(&s->mu);
	c->queue_cap = s->cap;
}

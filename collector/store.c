/*
 * store.c - the writer thread (store.h): the generic part (queue,
 * admission, ids, the thread's batching, retries and shutdown) and the
 * SQLite backend (store_int.h's vtable; PostgreSQL's is store_pg.c).
 *
 * SQLite: one connection, used only by the writer thread (and by
 * col_store_open/_load before it starts), with every statement prepared
 * once. Readers (query.c) have their own connections: WAL lets them read
 * while we write.
 */
#include "config.h"
#include "store.h"
#include "store_int.h"

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
#include "ap_config.h"
#include "ap_wire.h"
#include "col.h"
#include "findings.h"
#include "hmap.h"
#include "log.h"
#include "pg.h"
#include "shapeset.h"
#include "stmt.h"

#define DEFAULT_QUEUE_CAP 65536
#define DEFAULT_QUEUE_STMT_CAP 262144
#define DEFAULT_QUEUE_BYTE_CAP ((size_t)256 << 20)
#define BATCH_MAX 5000               /* rows per transaction */
#define BATCH_STMTS 50000            /* and their statements, past the first row */
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
	" n_plus_one INTEGER NOT NULL DEFAULT 0,"
	" message TEXT);"                   /* v2 */
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
	/* v3: ?host= listings of a fleet's database, newest first. */
	"CREATE INDEX IF NOT EXISTS requests_host ON requests(host, id);"
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
	" last_batch INTEGER NOT NULL);"
	/* v2: statements. A request's statements are read together, in
	 * order, and deleted together: clustered by (request_id, seq). */
	"CREATE TABLE IF NOT EXISTS queries ("
	" request_id INTEGER NOT NULL,"
	" seq INTEGER NOT NULL,"
	" ts_ns INTEGER NOT NULL,"
	" duration_ms REAL NOT NULL,"
	" db TEXT NOT NULL,"
	" fingerprint INTEGER NOT NULL,"     /* the u64 as a signed integer */
	" sql TEXT NOT NULL,"
	" rows INTEGER,"                     /* NULL: unknown */
	" error_code TEXT,"                  /* NULL unless failed */
	" error_message TEXT,"
	" slow INTEGER NOT NULL DEFAULT 0,"
	" prepare INTEGER NOT NULL DEFAULT 0,"
	" truncated INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (request_id, seq)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS request_n_plus_one ("
	" request_id INTEGER NOT NULL,"
	" fingerprint INTEGER NOT NULL,"
	" count INTEGER NOT NULL,"
	" sql TEXT NOT NULL,"
	" PRIMARY KEY (request_id, fingerprint)) WITHOUT ROWID;"
	/* Read by minute ranges, up to shapes x minutes rows: clustered by
	 * its key, a range is one sequential scan (about 3x faster than
	 * through a separate index). */
	"CREATE TABLE IF NOT EXISTS query_minutes ("
	" minute INTEGER NOT NULL,"
	" host TEXT NOT NULL,"
	" service TEXT NOT NULL,"
	" db TEXT NOT NULL,"
	" fingerprint INTEGER NOT NULL,"
	" calls INTEGER NOT NULL,"
	" total_ms REAL NOT NULL,"
	" max_ms REAL NOT NULL,"
	" rows INTEGER NOT NULL,"
	" errors INTEGER NOT NULL,"
	" slow_count INTEGER NOT NULL,"
	" sketch BLOB NOT NULL,"
	" PRIMARY KEY (minute, host, service, db, fingerprint)) WITHOUT ROWID;"
	/* A shape's text once, not in every minute row. */
	"CREATE TABLE IF NOT EXISTS query_shapes ("
	" service TEXT NOT NULL,"
	" db TEXT NOT NULL,"
	" fingerprint INTEGER NOT NULL,"
	" sql TEXT NOT NULL,"
	" PRIMARY KEY (service, db, fingerprint)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS error_groups ("
	" host TEXT NOT NULL,"
	" service TEXT NOT NULL,"
	" method TEXT NOT NULL,"             /* '' for service-level errors */
	" route TEXT NOT NULL,"
	" type TEXT NOT NULL,"
	" message TEXT NOT NULL,"
	" count INTEGER NOT NULL,"
	" first_seen_ns INTEGER NOT NULL,"
	" last_seen_ns INTEGER NOT NULL,"
	" example_request_id INTEGER,"
	" PRIMARY KEY (host, service, method, route, type)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS n_plus_one_patterns ("
	" host TEXT NOT NULL,"
	" service TEXT NOT NULL,"
	" method TEXT NOT NULL,"
	" route TEXT NOT NULL,"
	" fingerprint INTEGER NOT NULL,"
	" sql TEXT NOT NULL,"
	" occurrences INTEGER NOT NULL,"
	" max_repeats INTEGER NOT NULL,"
	" first_seen_ns INTEGER NOT NULL,"
	" last_seen_ns INTEGER NOT NULL,"
	" example_request_id INTEGER,"
	" PRIMARY KEY (host, service, method, route, fingerprint)) WITHOUT ROWID;";

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT_REQ,
	ST_MIN_SELECT,
	ST_MIN_INSERT,
	ST_MIN_UPDATE,
	ST_FLUSH_MARK,
	ST_EXPIRE_QUERIES,
	ST_EXPIRE_REQ_N1,
	ST_EXPIRE_REQ,
	ST_EXPIRE_MIN,
	ST_EXPIRE_QMIN,
	ST_EXPIRE_TEXTS,
	ST_EXPIRE_ERR,
	ST_EXPIRE_PAT,
	ST_INSERT_QUERY,
	ST_INSERT_N1,
	ST_SHAPE_SELECT,
	ST_SHAPE_UPSERT,
	ST_SHAPE_TEXT,
	ST_ERR_UPSERT,
	ST_PAT_UPSERT,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_INSERT_REQ] =
		"INSERT INTO requests (id, ts_ns, host, service, pid, tid, method, path, route,"
		" status, duration_ms, bytes_in, bytes_out, sql_count, sql_time_ms, slow,"
		" error, aborted, n_plus_one, message)"
		" VALUES (?19, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
		" ?16, ?17, ?18, ?20)",
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
	/* The same 2000 requests for the three, in one transaction: the
	 * ORDER BY makes the choice deterministic (requests_ts). */
	[ST_EXPIRE_QUERIES] =
		"DELETE FROM queries WHERE request_id IN"
		" (SELECT id FROM requests WHERE ts_ns < ?1 ORDER BY ts_ns, id LIMIT 2000)",
	[ST_EXPIRE_REQ_N1] =
		"DELETE FROM request_n_plus_one WHERE request_id IN"
		" (SELECT id FROM requests WHERE ts_ns < ?1 ORDER BY ts_ns, id LIMIT 2000)",
	[ST_EXPIRE_REQ] =
		"DELETE FROM requests WHERE id IN"
		" (SELECT id FROM requests WHERE ts_ns < ?1 ORDER BY ts_ns, id LIMIT 2000)",
	[ST_EXPIRE_MIN] =
		"DELETE FROM endpoint_minutes WHERE id IN"
		" (SELECT id FROM endpoint_minutes WHERE minute < ?1 LIMIT 2000)",
	/* One minute at a time (at most its shapes). */
	[ST_EXPIRE_QMIN] =
		"DELETE FROM query_minutes WHERE minute ="
		" (SELECT min(minute) FROM query_minutes WHERE minute < ?1)",
	/* The texts of shapes left with no minute: one scan of query_minutes
	 * (about 1 s a million rows), so only after a pass deleted some. */
	[ST_EXPIRE_TEXTS] =
		"DELETE FROM query_shapes WHERE (service, db, fingerprint) NOT IN"
		" (SELECT service, db, fingerprint FROM query_minutes)",
	[ST_EXPIRE_ERR] =
		"DELETE FROM error_groups WHERE host = ?2 AND last_seen_ns < ?1",
	[ST_EXPIRE_PAT] =
		"DELETE FROM n_plus_one_patterns WHERE host = ?2 AND last_seen_ns < ?1",
	[ST_INSERT_QUERY] =
		"INSERT INTO queries (request_id, seq, ts_ns, duration_ms, db, fingerprint, sql,"
		" rows, error_code, error_message, slow, prepare, truncated)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[ST_INSERT_N1] =
		"INSERT OR REPLACE INTO request_n_plus_one (request_id, fingerprint, count, sql)"
		" VALUES (?1, ?2, ?3, ?4)",
	[ST_SHAPE_SELECT] =
		"SELECT calls, total_ms, max_ms, rows, errors, slow_count, sketch"
		" FROM query_minutes WHERE minute = ?1 AND host = ?2 AND service = ?3"
		" AND db = ?4 AND fingerprint = ?5",
	[ST_SHAPE_UPSERT] =
		"INSERT OR REPLACE INTO query_minutes (minute, host, service, db, fingerprint,"
		" calls, total_ms, max_ms, rows, errors, slow_count, sketch)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[ST_SHAPE_TEXT] =
		"INSERT OR IGNORE INTO query_shapes (service, db, fingerprint, sql)"
		" VALUES (?1, ?2, ?3, ?4)",
	/* Groups hold cumulative values: the latest copy wins. */
	[ST_ERR_UPSERT] =
		"INSERT INTO error_groups (host, service, method, route, type, message, count,"
		" first_seen_ns, last_seen_ns, example_request_id)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
		" ON CONFLICT (host, service, method, route, type) DO UPDATE SET"
		" message = excluded.message, count = excluded.count,"
		" first_seen_ns = excluded.first_seen_ns, last_seen_ns = excluded.last_seen_ns,"
		" example_request_id = excluded.example_request_id",
	[ST_PAT_UPSERT] =
		"INSERT INTO n_plus_one_patterns (host, service, method, route, fingerprint, sql,"
		" occurrences, max_repeats, first_seen_ns, last_seen_ns, example_request_id)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
		" ON CONFLICT (host, service, method, route, fingerprint) DO UPDATE SET"
		" sql = excluded.sql, occurrences = excluded.occurrences,"
		" max_repeats = excluded.max_repeats, first_seen_ns = excluded.first_seen_ns,"
		" last_seen_ns = excluded.last_seen_ns,"
		" example_request_id = excluded.example_request_id",
};

_Static_assert(ST_COUNT <= COL_STORE_SQLITE_STMTS, "COL_STORE_SQLITE_STMTS too small");

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

size_t col_row_bytes(const struct col_row *r)
{
	size_t b = sizeof *r + strlen(r->service) + strlen(r->path) + strlen(r->route) + 3;
	if (r->message != NULL)
		b += strlen(r->message) + 1;
	b += r->nstmts * sizeof *r->stmts;
	for (uint32_t i = 0; i < r->nstmts; i++)
		b += sizeof *r->stmts[i] + strlen(r->stmts[i]->sql) + COL_ERR_CODE_MAX +
		     strlen(r->stmts[i]->error_message) + 2;
	for (uint32_t i = 0; i < r->nn1; i++)
		b += sizeof *r->n1 + (r->n1[i].sql ? strlen(r->n1[i].sql) + 1 : 0);
	return b;
}

void col_row_free(struct col_row *r)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < r->nstmts; i++)
		col_stmt_free(r->stmts[i]);
	free(r->stmts);
	for (uint32_t i = 0; i < r->nn1; i++)
		free(r->n1[i].sql);
	free(r->n1);
	free(r->message);
	free(r);
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

/* Counts a failed transaction, records it for the status and logs it, at
 * most once a minute. A failed retention pass raises no fault (see
 * COL_SK_RETENTION): logged each time (once an hour at most), it neither
 * sets writing false nor takes the once-a-minute turn of a fault's
 * first line, and no "writing again" follows it. */
void col_store_error(struct col_store *s, const char *what)
{
	int retention = s->cur_kind == COL_SK_RETENTION;
	CNT_ADD(s, c_errors, 1);
	if (!retention) {
		s->fault_errors++;
		s->fault_kinds |= s->cur_kind;
	}
	pthread_mutex_lock(&s->mu);
	if (!retention)
		s->faulty = 1;
	snprintf(s->last_error, sizeof s->last_error, "%s: %s", what, s->be->errmsg(s));
	s->last_error_at_ns = col_clock_real_ns();
	pthread_mutex_unlock(&s->mu);
	if (retention) {
		col_log(COL_LOG_ERROR, "storage: %s: %s (retention retries in an hour)",
		        what, s->be->errmsg(s));
		return;
	}
	int64_t now = col_clock_mono_ns();
	if (s->last_error_log != 0 && now - s->last_error_log < ERROR_LOG_EVERY_NS) {
		s->errors_unlogged++;
		return;
	}
	if (s->errors_unlogged > 0)
		col_log(COL_LOG_ERROR, "storage: %s: %s (%llu more errors in the last minute)",
		        what, s->be->errmsg(s), (unsigned long long)s->errors_unlogged);
	else
		col_log(COL_LOG_ERROR, "storage: %s: %s (will retry; further errors are"
		        " reported once a minute)", what, s->be->errmsg(s));
	s->last_error_log = now;
	s->errors_unlogged = 0;
}

void col_store_set_down(struct col_store *s, int down, const char *reason)
{
	pthread_mutex_lock(&s->mu);
	int was = s->db_down;
	int64_t since = s->down_since_ns;
	size_t held = s->n + __atomic_load_n(&s->held, __ATOMIC_RELAXED);
	s->db_down = down;
	if (down && !was) {
		s->down_since_ns = col_clock_real_ns();
		snprintf(s->down_reason, sizeof s->down_reason, "%s", reason ? reason : "?");
	} else if (!down) {
		s->down_since_ns = 0;
		s->down_reason[0] = '\0';
	}
	pthread_mutex_unlock(&s->mu);
	if (down && !was)
		col_log(COL_LOG_ERROR, "storage: %s database unreachable: %s; holding up to %zu"
		        " request rows (%zu statements) in memory, then dropping the oldest;"
		        " minute statistics are kept until it is back", s->be->name,
		        reason ? reason : "?", s->cap, s->stmt_cap);
	else if (!down && was)
		col_log(COL_LOG_INFO, "storage: %s database reachable again after %.1f s;"
		        " writing %zu held request rows", s->be->name,
		        (double)(col_clock_real_ns() - since) / 1e9, held);
}

/* A transaction committed: a standing fault is over, which the log says
 * once (the errors were logged at most once a minute). */
void col_store_ok(struct col_store *s)
{
	if (s->fault_errors == 0)
		return;
	s->fault_kinds &= ~s->cur_kind;
	if (s->fault_kinds != 0)
		return;
	col_log(COL_LOG_INFO, "storage: writing again after %llu failed transactions",
	        (unsigned long long)s->fault_errors);
	s->fault_errors = 0;
	s->last_error_log = 0; /* a new fault is logged at once */
	s->errors_unlogged = 0;
	pthread_mutex_lock(&s->mu);
	s->faulty = 0;
	pthread_mutex_unlock(&s->mu);
}

static int exec1(struct col_store *s, int which)
{
	sqlite3_stmt *st = s->st[which];
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
	if (which == ST_COMMIT && rc == SQLITE_OK)
		col_store_ok(s);
	return rc;
}

static void rollback(struct col_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		exec1(s, ST_ROLLBACK);
}

int64_t col_store_clamp_i64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* Fingerprints are stored as SQLite's signed 64-bit integers, bit for bit. */
int64_t col_store_fp_to_db(uint64_t fp)
{
	int64_t v;
	memcpy(&v, &fp, sizeof v);
	return v;
}

uint64_t col_store_fp_from_db(int64_t v)
{
	uint64_t fp;
	memcpy(&fp, &v, sizeof fp);
	return fp;
}

/* ---- opening ---- */

/* 1 when table has the column (schema checks during migration). */
static int has_column(sqlite3 *db, const char *table, const char *column)
{
	char sql[128];
	sqlite3_stmt *st = NULL;
	int found = 0;
	snprintf(sql, sizeof sql, "PRAGMA table_info(%s)", table);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return 0;
	while (!found && sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		found = name && strcmp(name, column) == 0;
	}
	sqlite3_finalize(st);
	return found;
}

/* Creates the schema, or migrates an older one, in one transaction: a
 * collector stopped half-way leaves the database as it was.
 * Version 1 -> 2: requests gains `message`; the SQL tables are new.
 * Version 2 -> 3: the requests_host index. Each step is idempotent (IF NOT
 * EXISTS, a column check), so any older version goes straight to the
 * current one. */
static int create_schema(struct col_store *s, char *err, size_t errlen)
{
	char *msg = NULL;
	sqlite3_stmt *st = NULL;
	int version = -1;
	int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE;"
	                      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
	                      NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		goto fail;
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
	rc = sqlite3_exec(s->db, schema_sql, NULL, NULL, &msg);
	/* CREATE TABLE IF NOT EXISTS left a version 1 requests table alone. */
	if (rc == SQLITE_OK && !has_column(s->db, "requests", "message"))
		rc = sqlite3_exec(s->db, "ALTER TABLE requests ADD COLUMN message TEXT",
		                  NULL, NULL, &msg);
	char set[96];
	snprintf(set, sizeof set, version < 0 ? "INSERT INTO schema_version (version) VALUES (%d)"
	         : "UPDATE schema_version SET version = %d", COL_SCHEMA_VERSION);
	if (rc == SQLITE_OK && version < COL_SCHEMA_VERSION)
		rc = sqlite3_exec(s->db, set, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		goto fail;
	if (version >= 1 && version < COL_SCHEMA_VERSION)
		col_log(COL_LOG_INFO, "db %s: schema migrated from version %d to %d", s->path,
		        version, COL_SCHEMA_VERSION);
	return 0;
fail:
	set_err(err, errlen, "db %s: creating the schema: %s", s->path,
	        msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return -EIO;
}

/* The largest request id in use, examples of stored findings included, so
 * that new ids never name an old request even after retention emptied the
 * requests table. */
static int64_t read_max_id(struct col_store *s)
{
	sqlite3_stmt *st = NULL;
	int64_t max = 0;
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT max(coalesce((SELECT max(id) FROM requests), 0),"
	                       " coalesce((SELECT max(example_request_id) FROM error_groups), 0),"
	                       " coalesce((SELECT max(example_request_id) FROM n_plus_one_patterns),"
	                       " 0))", -1, &st, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		max = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return max > 0 ? max : 0;
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

/* A damaged file (pages overwritten, a torn copy) is refused rather than
 * written into: SQLite would fail on the damaged pages only, at any later
 * time, and writing around them can spread the damage. quick_check reads
 * every page once (a few seconds per GB), without the index
 * cross-checks of integrity_check. 0, or -1 with err filled. */
static int check_intact(struct col_store *s, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	const char *res = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	if (res != NULL && strcmp(res, "ok") == 0) {
		sqlite3_finalize(st);
		return 0;
	}
	/* quick_check's first finding, on one line without its heading */
	char why[160];
	const char *w = res ? res : sqlite3_errmsg(s->db);
	if (strncmp(w, "*** in database main ***\n", 25) == 0)
		w += 25;
	snprintf(why, sizeof why, "%s", w);
	for (char *p = why; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	set_err(err, errlen, "db %s: the database file is damaged (%s); move it aside"
	        " (a new one is then created) and salvage what it holds with the sqlite3"
	        " shell (.recover, .dump), or remove it", s->path, why);
	sqlite3_finalize(st);
	return -1;
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
	char shown[1024];
	col_pg_redact(o->path, shown, sizeof shown);
	s->shown = strdup(shown);
	s->cap = o->queue_cap ? o->queue_cap : DEFAULT_QUEUE_CAP;
	s->stmt_cap = o->queue_stmt_cap ? o->queue_stmt_cap : DEFAULT_QUEUE_STMT_CAP;
	s->byte_cap = o->queue_byte_cap ? o->queue_byte_cap : DEFAULT_QUEUE_BYTE_CAP;
	s->q = calloc(s->cap, sizeof *s->q);
	/* Capped like the configuration's: days * 86400e9 overflowed past
	 * 106,751 days, into a cutoff in the future that deleted everything. */
	s->retention_days = o->retention_days < 1 ? 1
	                    : o->retention_days > AP_CONFIG_MAX_RETENTION_DAYS
	                    ? AP_CONFIG_MAX_RETENTION_DAYS : o->retention_days;
	s->max_rows_per_s = o->max_rows_per_s >= 0 ? o->max_rows_per_s : 0;
	s->admit_sec = -1;
	s->id_slot = -1;
	s->be = col_store_is_pg(o->path) ? &col_store_pg_be : &col_store_sqlite_be;
	if (s->path == NULL || s->host == NULL || s->shown == NULL || s->q == NULL) {
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	if (s->be->open(s, err, errlen) < 0)
		goto fail;
	return s;
fail:
	col_store_free(s);
	return NULL;
}

int col_store_is_pg(const char *db)
{
	return db != NULL && (strncmp(db, "postgresql://", 13) == 0 ||
	                      strncmp(db, "postgres://", 11) == 0);
}

/* The SQLite backend's open: the file in WAL mode, its schema, the
 * statements, and where ids and minute batches continue. */
static int sq_open(struct col_store *s, char *err, size_t errlen)
{
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
	if (check_intact(s, err, errlen) < 0)
		goto fail;
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
	s->next_id = read_max_id(s) + 1;
	return 0;
fail:
	return -EIO;
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

int col_store_read_shape_stats(sqlite3_stmt *st, int c, struct col_shape_stats *o)
{
	o->calls = (uint64_t)sqlite3_column_int64(st, c);
	o->total_ms = sqlite3_column_double(st, c + 1);
	o->max_ms = sqlite3_column_double(st, c + 2);
	o->rows = (uint64_t)sqlite3_column_int64(st, c + 3);
	o->errors = (uint64_t)sqlite3_column_int64(st, c + 4);
	o->slow_count = (uint64_t)sqlite3_column_int64(st, c + 5);
	const void *blob = sqlite3_column_blob(st, c + 6);
	int len = sqlite3_column_bytes(st, c + 6);
	if (blob == NULL || len <= 0)
		return o->calls ? -EINVAL : 0;
	return col_sketch_merge_encoded(&o->sketch, blob, (size_t)len);
}

static const char *text_or(sqlite3_stmt *st, int i, const char *dflt)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	return t ? t : dflt;
}

static int load_endpoints(struct col_store *s, struct col_agg *agg, char *err, size_t errlen)
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

/* ---- shape texts ---- */

struct text_entry {
	size_t klen;
	const char *sql;
	char key[];              /* "service\0" db fp, then the text */
};

struct col_shape_texts {
	struct col_hmap *map;
};

static size_t text_key(char *key, size_t cap, const char *service, uint8_t db, uint64_t fp)
{
	size_t ls = strlen(service);
	if (ls + 10 > cap)
		return 0;
	memcpy(key, service, ls + 1);
	key[ls + 1] = (char)db;
	memcpy(key + ls + 2, &fp, 8);
	return ls + 10;
}

void col_shape_texts_free(struct col_shape_texts *t)
{
	if (t == NULL)
		return;
	size_t it = 0;
	void *e;
	while ((e = col_hmap_next(t->map, &it, NULL, NULL)) != NULL)
		free(e);
	col_hmap_free(t->map);
	free(t);
}

int col_shape_texts_load(sqlite3 *db, const char *service, struct col_shape_texts **out)
{
	sqlite3_stmt *st = NULL;
	int rc = -ENOMEM;
	struct col_shape_texts *t = calloc(1, sizeof *t);
	*out = NULL;
	if (t == NULL || (t->map = col_hmap_new()) == NULL)
		goto fail;
	if (sqlite3_prepare_v2(db, service
	                       ? "SELECT service, db, fingerprint, sql FROM query_shapes"
	                         " WHERE service = ?1"
	                       : "SELECT service, db, fingerprint, sql FROM query_shapes",
	                       -1, &st, NULL) != SQLITE_OK) {
		rc = -EIO;
		goto fail;
	}
	if (service)
		sqlite3_bind_text(st, 1, service, -1, SQLITE_STATIC);
	int src;
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		const char *svc = text_or(st, 0, ""), *sql = text_or(st, 3, "");
		int dbv = col_sql_db_lookup(text_or(st, 1, ""));
		char key[4200];
		size_t k = text_key(key, sizeof key, svc, (uint8_t)(dbv < 0 ? 0 : dbv),
		                    col_store_fp_from_db(sqlite3_column_int64(st, 2)));
		if (k == 0)
			continue;
		size_t lq = strlen(sql) + 1;
		struct text_entry *e = malloc(sizeof *e + k + lq);
		if (e == NULL)
			goto fail;
		e->klen = k;
		memcpy(e->key, key, k);
		memcpy(e->key + k, sql, lq);
		e->sql = e->key + k;
		void *old = col_hmap_get(t->map, e->key, k);
		if (col_hmap_put(t->map, e->key, k, e) < 0) {
			free(e);
			goto fail;
		}
		free(old);
	}
	if (src != SQLITE_DONE) {
		rc = -EIO;
		goto fail;
	}
	sqlite3_finalize(st);
	*out = t;
	return 0;
fail:
	sqlite3_finalize(st);
	col_shape_texts_free(t);
	return rc;
}

const char *col_shape_texts_get(const struct col_shape_texts *t, const char *service,
                                uint8_t db, uint64_t fp)
{
	char key[4200];
	size_t k = text_key(key, sizeof key, service, db, fp);
	struct text_entry *e = k ? col_hmap_get(t->map, key, k) : NULL;
	return e ? e->sql : NULL;
}

static int load_shapes(struct col_store *s, struct col_agg *agg, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int64_t t0 = col_clock_mono_ns();
	struct col_shape_texts *texts = NULL;
	int rc = col_shape_texts_load(s->db, NULL, &texts);
	if (rc < 0) {
		set_err(err, errlen, "db %s: loading statement texts: %s", s->path,
		        rc == -ENOMEM ? "out of memory" : sqlite3_errmsg(s->db));
		return rc;
	}
	rc = sqlite3_prepare_v2(s->db,
		"SELECT service, db, fingerprint, calls, total_ms, max_ms, rows, errors,"
		" slow_count, sketch FROM query_minutes WHERE host = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		set_err(err, errlen, "db %s: %s", s->path, sqlite3_errmsg(s->db));
		col_shape_texts_free(texts);
		return -EIO;
	}
	sqlite3_bind_text(st, 1, s->host, -1, SQLITE_STATIC);
	uint64_t rows = 0, damaged = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *svc = (const char *)sqlite3_column_text(st, 0);
		const char *db = (const char *)sqlite3_column_text(st, 1);
		if (svc == NULL || db == NULL)
			continue;
		int dbv = col_sql_db_lookup(db);
		uint8_t dbb = (uint8_t)(dbv < 0 ? 0 : dbv);
		uint64_t fp = col_store_fp_from_db(sqlite3_column_int64(st, 2));
		const char *sql = col_shape_texts_get(texts, svc, dbb, fp);
		struct col_shape_stats stats = { 0 };
		if (col_store_read_shape_stats(st, 3, &stats) < 0)
			damaged++;
		int lrc = col_agg_load_shape(agg, svc, dbb, fp, sql ? sql : "", &stats);
		col_shape_stats_release(&stats);
		if (lrc < 0) {
			sqlite3_finalize(st);
			col_shape_texts_free(texts);
			set_err(err, errlen, "loading stored statistics: out of memory");
			return -ENOMEM;
		}
		rows++;
	}
	col_shape_texts_free(texts);
	if (rc != SQLITE_DONE) {
		set_err(err, errlen, "db %s: loading stored statement statistics: %s", s->path,
		        sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return -EIO;
	}
	sqlite3_finalize(st);
	if (damaged)
		col_log(COL_LOG_WARN, "db %s: %llu stored statement sketches were damaged;"
		        " their percentiles are lost, counts kept", s->path,
		        (unsigned long long)damaged);
	col_log(COL_LOG_INFO, "loaded %llu stored query-minutes in %.0f ms",
	        (unsigned long long)rows, (double)(col_clock_mono_ns() - t0) / 1e6);
	return 0;
}

static int load_findings(struct col_store *s, struct col_agg *agg, char *err, size_t errlen)
{
	struct col_findings *f = col_agg_findings(agg);
	sqlite3_stmt *st = NULL;
	uint64_t skipped = 0, n = 0;
	int rc = sqlite3_prepare_v2(s->db,
		"SELECT service, method, route, type, message, count, first_seen_ns,"
		" last_seen_ns, example_request_id FROM error_groups WHERE host = ?1",
		-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, s->host, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *method = text_or(st, 1, "");
		struct col_error_row r = {
			.service = (char *)text_or(st, 0, ""),
			.method = method[0] ? method : NULL,
			.route = method[0] ? text_or(st, 2, "") : NULL,
			.type = text_or(st, 3, ""),
			.message = text_or(st, 4, ""),
			.count = (uint64_t)sqlite3_column_int64(st, 5),
			.first_ns = sqlite3_column_int64(st, 6),
			.last_ns = sqlite3_column_int64(st, 7),
			.example_id = sqlite3_column_int64(st, 8),
		};
		int lrc = col_findings_load_error(f, &r);
		if (lrc == -ENOMEM)
			goto oom;
		skipped += lrc < 0;
		n++;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	rc = sqlite3_prepare_v2(s->db,
		"SELECT service, method, route, fingerprint, sql, occurrences, max_repeats,"
		" first_seen_ns, last_seen_ns, example_request_id FROM n_plus_one_patterns"
		" WHERE host = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, s->host, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t rep = sqlite3_column_int64(st, 6);
		struct col_n1_row r = {
			.service = (char *)text_or(st, 0, ""),
			.method = text_or(st, 1, ""),
			.route = text_or(st, 2, ""),
			.fp = col_store_fp_from_db(sqlite3_column_int64(st, 3)),
			.sql = text_or(st, 4, ""),
			.occurrences = (uint64_t)sqlite3_column_int64(st, 5),
			.max_repeats = rep < 0 ? 0 : rep > UINT32_MAX ? UINT32_MAX : (uint32_t)rep,
			.first_ns = sqlite3_column_int64(st, 7),
			.last_ns = sqlite3_column_int64(st, 8),
			.example_id = sqlite3_column_int64(st, 9),
		};
		int lrc = col_findings_load_n1(f, &r);
		if (lrc == -ENOMEM)
			goto oom;
		skipped += lrc < 0;
		n++;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	if (skipped)
		col_log(COL_LOG_WARN, "db %s: %llu stored error groups and N+1 patterns past the"
		        " in-memory bound were not loaded", s->path, (unsigned long long)skipped);
	col_log(COL_LOG_INFO, "loaded %llu stored error groups and N+1 patterns",
	        (unsigned long long)n);
	return 0;
fail:
	set_err(err, errlen, "db %s: loading error groups and N+1 patterns: %s", s->path,
	        sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return -EIO;
oom:
	sqlite3_finalize(st);
	set_err(err, errlen, "loading stored findings: out of memory");
	return -ENOMEM;
}

int col_store_load(struct col_store *s, struct col_agg *agg, char *err, size_t errlen)
{
	return s->be->load(s, agg, err, errlen);
}

static int sq_load(struct col_store *s, struct col_agg *agg, char *err, size_t errlen)
{
	int rc = load_endpoints(s, agg, err, errlen);
	if (rc == 0)
		rc = load_shapes(s, agg, err, errlen);
	if (rc == 0)
		rc = load_findings(s, agg, err, errlen);
	return rc;
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
	sqlite3_bind_int64(st, 11, col_store_clamp_i64(r->bytes_in));
	sqlite3_bind_int64(st, 12, col_store_clamp_i64(r->bytes_out));
	sqlite3_bind_int64(st, 13, r->sql_count);
	sqlite3_bind_double(st, 14, r->sql_time_ms);
	sqlite3_bind_int(st, 15, r->slow);
	sqlite3_bind_int(st, 16, r->error);
	sqlite3_bind_int(st, 17, r->aborted);
	sqlite3_bind_int(st, 18, r->n_plus_one);
	if (r->id > 0)
		sqlite3_bind_int64(st, 19, r->id);
	else
		sqlite3_bind_null(st, 19);
	if (r->message && r->message[0])
		return sqlite3_bind_text(st, 20, r->message, -1, SQLITE_STATIC);
	return sqlite3_bind_null(st, 20);
}

static void bind_query(sqlite3_stmt *st, int64_t request_id, int seq, const struct col_stmt *q)
{
	sqlite3_bind_int64(st, 1, request_id);
	sqlite3_bind_int(st, 2, seq);
	sqlite3_bind_int64(st, 3, q->ts_ns);
	sqlite3_bind_double(st, 4, q->duration_ms);
	sqlite3_bind_text(st, 5, col_sql_db_name(q->db), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, col_store_fp_to_db(q->fingerprint));
	sqlite3_bind_text(st, 7, q->sql, -1, SQLITE_STATIC);
	if (q->rows_known)
		sqlite3_bind_int64(st, 8, col_store_clamp_i64(q->rows));
	else
		sqlite3_bind_null(st, 8);
	if (q->failed) {
		sqlite3_bind_text(st, 9, q->error_code, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 10, q->error_message, -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_null(st, 9);
		sqlite3_bind_null(st, 10);
	}
	sqlite3_bind_int(st, 11, q->slow);
	sqlite3_bind_int(st, 12, q->prepare);
	sqlite3_bind_int(st, 13, (q->flags & AP_SQLF_TRUNCATED) != 0);
}

/* Steps a bound statement and resets it; an SQLite code. */
static int step1(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Writes one request, then its statements and N+1 findings under the id
 * it got. Returns SQLITE_OK, a transient code (the caller rolls back), or
 * SQLITE_CONSTRAINT when SQLite refused the request itself (skipped).
 * *queries counts the statement rows written. */
static int write_row(struct col_store *s, const struct col_row *r, uint64_t *queries)
{
	sqlite3_stmt *st = s->st[ST_INSERT_REQ];
	bind_row(st, s, r);
	int rc = step1(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY && r->id > 0) {
		/* Our id is taken: another writer on this file. Keep the row
		 * under the id SQLite picks (the findings' example may then
		 * name another request: one writer per file is the rule). */
		sqlite3_bind_null(st, 19);
		rc = step1(st);
	}
	if (rc != SQLITE_OK)
		return is_transient(rc) ? rc : SQLITE_CONSTRAINT;
	int64_t id = sqlite3_last_insert_rowid(s->db);
	st = s->st[ST_INSERT_QUERY];
	for (uint32_t i = 0; i < r->nstmts; i++) {
		bind_query(st, id, (int)i + 1, r->stmts[i]);
		rc = step1(st);
		if (rc != SQLITE_OK && is_transient(rc))
			return rc;
		*queries += rc == SQLITE_OK;
	}
	st = s->st[ST_INSERT_N1];
	for (uint32_t i = 0; i < r->nn1; i++) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, col_store_fp_to_db(r->n1[i].fingerprint));
		sqlite3_bind_int64(st, 3, r->n1[i].count);
		sqlite3_bind_text(st, 4, r->n1[i].sql ? r->n1[i].sql : "", -1, SQLITE_STATIC);
		rc = step1(st);
		if (rc != SQLITE_OK && is_transient(rc))
			return rc;
	}
	return SQLITE_OK;
}

/* Inserts rows[0..n) in one transaction. 0 (rows a constraint refused are
 * counted and skipped), or -EIO after a transient failure (rolled back). */
static int sq_write_rows(struct col_store *s, struct col_row **rows, size_t n)
{
	int rc = exec1(s, ST_BEGIN);
	if (rc != SQLITE_OK) {
		col_store_error(s, "starting a transaction");
		return -EIO;
	}
	uint64_t rejected = 0, queries = 0;
	char why[256] = ""; /* the first refusal's reason (the COMMIT clears it) */
	for (size_t i = 0; i < n; i++) {
		rc = write_row(s, rows[i], &queries);
		if (rc == SQLITE_OK)
			continue;
		if (rc != SQLITE_CONSTRAINT) {
			col_store_error(s, "writing requests");
			rollback(s);
			return -EIO;
		}
		if (rejected++ == 0)
			snprintf(why, sizeof why, "%s", sqlite3_errmsg(s->db));
	}
	sqlite3_clear_bindings(s->st[ST_INSERT_REQ]);
	sqlite3_clear_bindings(s->st[ST_INSERT_QUERY]);
	sqlite3_clear_bindings(s->st[ST_INSERT_N1]);
	rc = exec1(s, ST_COMMIT);
	if (rc != SQLITE_OK) {
		col_store_error(s, "committing requests");
		rollback(s);
		return -EIO;
	}
	if (rejected) {
		CNT_ADD(s, c_rejected, rejected);
		col_log(COL_LOG_WARN, "storage: %llu request rows refused: %s",
		        (unsigned long long)rejected, why);
	}
	CNT_ADD(s, c_written, n - rejected);
	CNT_ADD(s, c_queries, queries);
	return 0;
}

/* ---- writing minutes ---- */

static void bind_stats(sqlite3_stmt *st, const struct col_stats *o,
                       const uint8_t *blob, size_t len)
{
	sqlite3_bind_int64(st, 6, col_store_clamp_i64(o->count));
	sqlite3_bind_int64(st, 7, col_store_clamp_i64(o->error_count));
	sqlite3_bind_int64(st, 8, col_store_clamp_i64(o->slow_count));
	sqlite3_bind_double(st, 9, o->sum_ms);
	sqlite3_bind_double(st, 10, o->min_ms);
	sqlite3_bind_double(st, 11, o->max_ms);
	sqlite3_bind_int64(st, 12, col_store_clamp_i64(o->sql_count));
	sqlite3_bind_double(st, 13, o->sql_time_ms);
	sqlite3_bind_int64(st, 14, col_store_clamp_i64(o->n_plus_one_count));
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

/* Upserts one shape-minute like upsert_minute(), and the shape's text
 * when it is not stored yet. Returns an SQLite code. */
static int upsert_shape_minute(struct col_store *s, int64_t minute, const struct col_shape *e)
{
	const char *db = col_sql_db_name(e->db);
	int64_t fp = col_store_fp_to_db(e->fp);
	sqlite3_stmt *sel = s->st[ST_SHAPE_SELECT];
	sqlite3_bind_int64(sel, 1, minute);
	sqlite3_bind_text(sel, 2, s->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(sel, 3, e->service, -1, SQLITE_STATIC);
	sqlite3_bind_text(sel, 4, db, -1, SQLITE_STATIC);
	sqlite3_bind_int64(sel, 5, fp);
	struct col_shape_stats merged = { 0 };
	int known = 0;
	int rc = sqlite3_step(sel);
	if (rc == SQLITE_ROW) {
		known = 1;
		if (col_store_read_shape_stats(sel, 0, &merged) < 0)
			col_log(COL_LOG_WARN, "storage: damaged sketch for statement %016llx of %s"
			        " at minute %lld replaced", (unsigned long long)e->fp, e->service,
			        (long long)minute);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_reset(sel);
	if (rc != SQLITE_OK)
		return rc;
	uint8_t *blob = NULL;
	size_t len = 0;
	if (col_shape_stats_merge(&merged, &e->st) < 0 ||
	    col_sketch_encode(&merged.sketch, &blob, &len) < 0) {
		col_shape_stats_release(&merged);
		return SQLITE_NOMEM;
	}
	sqlite3_stmt *w = s->st[ST_SHAPE_UPSERT];
	sqlite3_bind_int64(w, 1, minute);
	sqlite3_bind_text(w, 2, s->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(w, 3, e->service, -1, SQLITE_STATIC);
	sqlite3_bind_text(w, 4, db, -1, SQLITE_STATIC);
	sqlite3_bind_int64(w, 5, fp);
	sqlite3_bind_int64(w, 6, col_store_clamp_i64(merged.calls));
	sqlite3_bind_double(w, 7, merged.total_ms);
	sqlite3_bind_double(w, 8, merged.max_ms);
	sqlite3_bind_int64(w, 9, col_store_clamp_i64(merged.rows));
	sqlite3_bind_int64(w, 10, col_store_clamp_i64(merged.errors));
	sqlite3_bind_int64(w, 11, col_store_clamp_i64(merged.slow_count));
	sqlite3_bind_blob(w, 12, blob, (int)len, SQLITE_TRANSIENT);
	rc = step1(w);
	sqlite3_clear_bindings(w);
	free(blob);
	col_shape_stats_release(&merged);
	if (rc != SQLITE_OK || known)
		return rc;
	sqlite3_stmt *t = s->st[ST_SHAPE_TEXT];
	sqlite3_bind_text(t, 1, e->service, -1, SQLITE_STATIC);
	sqlite3_bind_text(t, 2, db, -1, SQLITE_STATIC);
	sqlite3_bind_int64(t, 3, fp);
	sqlite3_bind_text(t, 4, e->sql, -1, SQLITE_STATIC);
	rc = step1(t);
	sqlite3_clear_bindings(t);
	return rc;
}

/* Writes a taken batch and marks it committed, in one transaction. */
static int sq_write_minutes(struct col_store *s, const struct col_minute_batch *b)
{
	uint64_t n = 0, ns = 0;
	int rc = exec1(s, ST_BEGIN);
	if (rc != SQLITE_OK) {
		col_store_error(s, "starting a transaction");
		return -EIO;
	}
	for (const struct col_minute *m = b->minutes; m && rc == SQLITE_OK; m = m->next) {
		size_t it = 0;
		const struct col_ep *e;
		while (rc == SQLITE_OK && (e = col_epset_next(m->eps, &it)) != NULL) {
			rc = upsert_minute(s, m->minute, e);
			n++;
		}
		it = 0;
		const struct col_shape *sh;
		while (rc == SQLITE_OK && (sh = col_shapeset_next(m->shapes, &it)) != NULL) {
			rc = upsert_shape_minute(s, m->minute, sh);
			ns++;
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
		col_store_error(s, "writing endpoint minutes");
		rollback(s);
		return -EIO;
	}
	CNT_ADD(s, c_minutes, n);
	CNT_ADD(s, c_shape_minutes, ns);
	return 0;
}

/* ---- writing findings ---- */

static int sq_write_findings(struct col_store *s, const struct col_error_rows *e,
                          const struct col_n1_rows *p)
{
	int rc = exec1(s, ST_BEGIN);
	if (rc != SQLITE_OK) {
		col_store_error(s, "starting a transaction");
		return -EIO;
	}
	sqlite3_stmt *st = s->st[ST_ERR_UPSERT];
	for (size_t i = 0; i < e->n && rc == SQLITE_OK; i++) {
		const struct col_error_row *r = &e->v[i];
		sqlite3_bind_text(st, 1, s->host, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, r->service, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->method ? r->method : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, r->route ? r->route : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, r->type, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, r->message, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, col_store_clamp_i64(r->count));
		sqlite3_bind_int64(st, 8, r->first_ns);
		sqlite3_bind_int64(st, 9, r->last_ns);
		if (r->example_id > 0)
			sqlite3_bind_int64(st, 10, r->example_id);
		else
			sqlite3_bind_null(st, 10);
		rc = step1(st);
	}
	sqlite3_clear_bindings(st);
	st = s->st[ST_PAT_UPSERT];
	for (size_t i = 0; i < p->n && rc == SQLITE_OK; i++) {
		const struct col_n1_row *r = &p->v[i];
		sqlite3_bind_text(st, 1, s->host, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, r->service, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->method, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, r->route, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, col_store_fp_to_db(r->fp));
		sqlite3_bind_text(st, 6, r->sql, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, col_store_clamp_i64(r->occurrences));
		sqlite3_bind_int64(st, 8, r->max_repeats);
		sqlite3_bind_int64(st, 9, r->first_ns);
		sqlite3_bind_int64(st, 10, r->last_ns);
		if (r->example_id > 0)
			sqlite3_bind_int64(st, 11, r->example_id);
		else
			sqlite3_bind_null(st, 11);
		rc = step1(st);
	}
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_OK)
		rc = exec1(s, ST_COMMIT);
	if (rc != SQLITE_OK) {
		col_store_error(s, "writing error groups and N+1 patterns");
		rollback(s);
		return -EIO;
	}
	CNT_ADD(s, c_findings, e->n + p->n);
	return 0;
}

/* Takes the changed findings (unless a failed batch is held for retry) and
 * writes them. 0, or -EIO with the batch held. */
static int flush_findings(struct col_store *s)
{
	if (!s->find_held) {
		if (col_findings_take_dirty(col_agg_findings(s->agg), &s->find_err,
		                            &s->find_pat) < 0)
			return 0; /* out of memory: still dirty, next time */
		if (s->find_err.n == 0 && s->find_pat.n == 0) {
			col_error_rows_free(&s->find_err);
			col_n1_rows_free(&s->find_pat);
			return 0;
		}
		s->find_held = 1;
	}
	s->cur_kind = COL_SK_FINDINGS;
	int rc = s->be->write_findings(s, &s->find_err, &s->find_pat);
	s->cur_kind = 0;
	if (rc < 0)
		return -EIO;
	col_error_rows_free(&s->find_err);
	col_n1_rows_free(&s->find_pat);
	s->find_held = 0;
	return 0;
}

/* Takes finished minutes (all of them when `all`) and writes them. Returns
 * 0 when nothing is left to write, -EIO when a batch is kept for retry. */
static int flush_minutes(struct col_store *s, int all)
{
	for (;;) {
		if (s->batch == NULL) {
			int64_t now_s = col_clock_real_ns() / COL_NS_PER_S;
			int64_t cutoff = all ? INT64_MAX : now_s - s->be->minute_grace_s - COL_MINUTE_S + 1;
			int64_t horizon = all ? INT64_MIN : now_s + 3600;
			s->batch = col_agg_minutes_take(s->agg, cutoff, horizon, s->next_batch_id);
			if (s->batch == NULL)
				return 0;
			s->next_batch_id++;
		}
		s->cur_kind = COL_SK_MINUTES;
		int rc = s->be->write_minutes(s, s->batch);
		s->cur_kind = 0;
		if (rc < 0)
			return -EIO;
		col_agg_minutes_done(s->agg, s->batch);
		s->batch = NULL;
		if (!all)
			return 0;
	}
}

/* ---- retention ---- */

/* Deletes one batch of expired requests with their statements and N+1
 * findings, in one transaction. Returns the requests deleted, or -1 (the
 * failure counted and logged by col_store_error()). */
static int expire_requests(struct col_store *s, int64_t cutoff_ns)
{
	static const int order[3] = { ST_EXPIRE_QUERIES, ST_EXPIRE_REQ_N1, ST_EXPIRE_REQ };
	int changed = 0;
	if (exec1(s, ST_BEGIN) != SQLITE_OK)
		goto fail;
	for (int i = 0; i < 3; i++) {
		sqlite3_bind_int64(s->st[order[i]], 1, cutoff_ns);
		if (exec1(s, order[i]) != SQLITE_OK)
			goto fail;
		changed = sqlite3_changes(s->db); /* the last one: requests */
	}
	if (exec1(s, ST_COMMIT) != SQLITE_OK)
		goto fail;
	return changed;
fail:
	/* Before the ROLLBACK, whose success would leave "not an error". */
	col_store_error(s, "deleting expired rows");
	rollback(s);
	return -1;
}

/* Deletes up to a time budget of expired rows. 1 when more remain. */
static int sq_expire_step(struct col_store *s)
{
	int64_t keep_ns = (int64_t)s->retention_days * 86400 * COL_NS_PER_S;
	int64_t cutoff_ns = col_clock_real_ns() - keep_ns;
	int64_t cutoff_min = cutoff_ns / COL_NS_PER_S - COL_MINUTE_S;
	int64_t t0 = col_clock_mono_ns();
	for (;;) {
		int changed = expire_requests(s, cutoff_ns);
		if (changed < 0)
			return 0; /* next hour (the error is counted) */
		CNT_ADD(s, c_expired, (uint64_t)changed);
		if (changed < RETENTION_BATCH)
			break;
		if (col_clock_mono_ns() - t0 > RETENTION_BUDGET_NS)
			return 1;
	}
	/* Endpoint minutes go in batches of RETENTION_BATCH, query minutes a
	 * minute at a time (until none is left). */
	static const int minutes[2] = { ST_EXPIRE_MIN, ST_EXPIRE_QMIN };
	static const int last_batch_below[2] = { RETENTION_BATCH, 1 };
	for (int i = 0; i < 2; i++) {
		for (;;) {
			sqlite3_bind_int64(s->st[minutes[i]], 1, cutoff_min);
			if (exec1(s, minutes[i]) != SQLITE_OK) {
				col_store_error(s, "deleting expired rows");
				return 0;
			}
			int n = sqlite3_changes(s->db);
			if (minutes[i] == ST_EXPIRE_QMIN && n > 0)
				s->texts_orphaned = 1;
			if (n < last_batch_below[i])
				break;
			if (col_clock_mono_ns() - t0 > RETENTION_BUDGET_NS)
				return 1;
		}
	}
	/* A shape's text is written with its first minute and kept while
	 * any minute of it is: without this, query_shapes kept every text
	 * ever seen (read whole at each start and each ?since= query), and
	 * a shape that comes back writes its text again with its minute. */
	if (s->texts_orphaned) {
		if (exec1(s, ST_EXPIRE_TEXTS) != SQLITE_OK) {
			col_store_error(s, "deleting expired rows");
			return 0;
		}
		s->texts_orphaned = 0;
	}
	/* Groups nobody saw within the retention: memory first, so that a
	 * flush in between cannot write them back. */
	col_findings_expire(col_agg_findings(s->agg), cutoff_ns);
	static const int groups[2] = { ST_EXPIRE_ERR, ST_EXPIRE_PAT };
	for (int i = 0; i < 2; i++) {
		sqlite3_bind_int64(s->st[groups[i]], 1, cutoff_ns);
		sqlite3_bind_text(s->st[groups[i]], 2, s->host, -1, SQLITE_STATIC);
		if (exec1(s, groups[i]) != SQLITE_OK) {
			col_store_error(s, "deleting expired rows");
			return 0;
		}
	}
	return 0;
}

/* ---- the thread ---- */

static void free_rows(struct col_row **rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		col_row_free(rows[i]);
}

/* Moves up to BATCH_MAX queued rows (and about BATCH_STMTS statements)
 * into batch (lock held). */
static size_t take_rows(struct col_store *s, struct col_row **batch)
{
	size_t k = 0, stmts = 0;
	while (k < BATCH_MAX && s->n > 0) {
		struct col_row *r = s->q[s->head];
		if (k > 0 && stmts + r->nstmts > BATCH_STMTS)
			break;
		batch[k++] = r;
		stmts += r->nstmts;
		s->q_stmts -= r->nstmts;
		s->q_bytes -= r->bytes;
		s->head = (s->head + 1) % s->cap;
		s->n--;
	}
	if (k)
		pthread_cond_broadcast(&s->room);
	__atomic_store_n(&s->held, k, __ATOMIC_RELAXED);
	return k;
}

/* The backend's write_rows, as a write of kind rows (col_store_ok()). */
static int write_rows(struct col_store *s, struct col_row **rows, size_t n)
{
	s->cur_kind = COL_SK_ROWS;
	int rc = s->be->write_rows(s, rows, n);
	s->cur_kind = 0;
	return rc;
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
		__atomic_store_n(&s->held, 0, __ATOMIC_RELAXED);
		nb = 0;
	}
	int tries = 0;
	while (flush_minutes(s, 1) < 0 && ++tries < SHUTDOWN_TRIES)
		nanosleep(&(struct timespec){ 0, 200 * 1000000L }, NULL);
	if (tries >= SHUTDOWN_TRIES)
		col_log(COL_LOG_ERROR, "storage: endpoint minutes lost at shutdown");
	tries = 0;
	while (flush_findings(s) < 0 && ++tries < SHUTDOWN_TRIES)
		nanosleep(&(struct timespec){ 0, 200 * 1000000L }, NULL);
	if (tries >= SHUTDOWN_TRIES)
		col_log(COL_LOG_ERROR, "storage: error groups and N+1 patterns lost at shutdown");
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
		/* A database that hangs (not down: stopped, or locked) holds this
		 * thread in a call; the status tells from how long it has been in. */
		__atomic_store_n(&s->busy_since, now, __ATOMIC_RELAXED);
		if (nb > 0 && now >= next_retry) {
			if (write_rows(s, batch, nb) == 0) {
				free_rows(batch, nb);
				__atomic_store_n(&s->held, 0, __ATOMIC_RELAXED);
				nb = 0;
			} else {
				next_retry = now + RETRY_NS;
			}
		}
		if (now >= next_minutes) {
			flush_minutes(s, 0);
			flush_findings(s);
			if (s->be->tick) {
				s->cur_kind = COL_SK_TICK;
				s->be->tick(s);
				s->cur_kind = 0;
			}
			next_minutes = now + MINUTE_CHECK_NS;
		}
		if (now >= next_expire) {
			s->cur_kind = COL_SK_RETENTION;
			next_expire = s->be->expire_step(s) ? now : now + RETENTION_EVERY_NS;
			s->cur_kind = 0;
		}
		__atomic_store_n(&s->busy_since, 0, __ATOMIC_RELAXED);
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

int64_t col_store_next_id(struct col_store *s)
{
	if (s->id_slot >= 0)
		return col_store_pg_id(s);
	return s->next_id++;
}

/* Lock held. A row bigger than the statement bound still goes into an
 * empty queue, so no row is refused forever. */
static int room_for(const struct col_store *s, uint32_t nstmts, size_t bytes)
{
	return s->n < s->cap && (s->n == 0 || (s->q_stmts + nstmts <= s->stmt_cap &&
	                                       s->q_bytes + bytes <= s->byte_cap));
}

int col_store_has_room(struct col_store *s, uint32_t nstmts, size_t bytes)
{
	pthread_mutex_lock(&s->mu);
	int ok = room_for(s, nstmts, bytes) || s->db_down || s->drop_oldest;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

int col_store_push(struct col_store *s, struct col_row *row, int wait)
{
	row->bytes = col_row_bytes(row);
	pthread_mutex_lock(&s->mu);
	/* Database down (or, with PostgreSQL, too slow): the newest rows
	 * matter most to whoever looks at the outage; the oldest go, counted. */
	while ((s->db_down || (s->drop_oldest && !wait)) &&
	       !room_for(s, row->nstmts, row->bytes) && s->n > 0) {
		struct col_row *old = s->q[s->head];
		s->q_stmts -= old->nstmts;
		s->q_bytes -= old->bytes;
		s->head = (s->head + 1) % s->cap;
		s->n--;
		col_row_free(old);
		CNT_ADD(s, c_dropped_oldest, 1);
	}
	while (!room_for(s, row->nstmts, row->bytes)) {
		if (!wait || !s->running || s->exited || s->stopping) {
			pthread_mutex_unlock(&s->mu);
			col_row_free(row);
			CNT_ADD(s, c_dropped, 1);
			return -ENOSPC;
		}
		pthread_cond_signal(&s->wake);
		pthread_cond_wait(&s->room, &s->mu);
	}
	s->q[(s->head + s->n) % s->cap] = row;
	s->n++;
	s->q_stmts += row->nstmts;
	s->q_bytes += row->bytes;
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
		col_row_free(s->q[s->head]);
		s->head = (s->head + 1) % s->cap;
		s->n--;
	}
	/* A minute batch still taken (its final write failed) belongs to the
	 * aggregate, which frees it. */
	col_error_rows_free(&s->find_err);
	col_n1_rows_free(&s->find_pat);
	if (s->be)
		s->be->close(s);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->room);
	pthread_mutex_destroy(&s->mu);
	free(s->q);
	free(s->path);
	free(s->shown);
	free(s->host);
	free(s);
}

static void sq_close(struct col_store *s)
{
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db)
		sqlite3_close(s->db);
	s->db = NULL;
}

/* Each second: was the database file removed or replaced (rm, a rename
 * over it) while we hold it open? SQLite in WAL mode goes on writing to the
 * unlinked file without an error, so everything stored from then on would
 * vanish at exit, and a restart would begin on an empty file. Nothing can
 * link the file back, so this reports it (the status's writing false and
 * last_error, one storage error, one log line) and keeps writing: the
 * API's raw rows and statistics stay whole until the restart it asks for. */
static void sq_tick(struct col_store *s)
{
	int moved = 0;
	if (s->db == NULL || s->file_moved ||
	    sqlite3_file_control(s->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK ||
	    !moved)
		return;
	CNT_ADD(s, c_errors, 1);
	pthread_mutex_lock(&s->mu);
	s->file_moved = 1;
	snprintf(s->last_error, sizeof s->last_error, "db %s: the file was removed or"
	         " replaced while in use", s->path);
	s->last_error_at_ns = col_clock_real_ns();
	pthread_mutex_unlock(&s->mu);
	col_log(COL_LOG_ERROR, "storage: the database file %s was removed or replaced while"
	        " in use: what is stored from now on is lost when the collector stops"
	        " (the statistics in memory stay exact until then); restart the collector"
	        " to store into a new file", s->path);
}

static const char *sq_errmsg(struct col_store *s)
{
	return s->db ? sqlite3_errmsg(s->db) : "not open";
}

const struct col_store_be col_store_sqlite_be = {
	.name = "sqlite",
	.open = sq_open,
	.load = sq_load,
	.write_rows = sq_write_rows,
	.write_minutes = sq_write_minutes,
	.write_findings = sq_write_findings,
	.expire_step = sq_expire_step,
	.errmsg = sq_errmsg,
	.close = sq_close,
	.tick = sq_tick,
	.minute_grace_s = MINUTE_GRACE_S,
};

void col_store_counters(struct col_store *s, struct col_store_counters *c)
{
	c->rows_written = CNT_GET(s, c_written);
	c->rows_dropped = CNT_GET(s, c_dropped);
	c->rows_sampled_out = CNT_GET(s, c_sampled);
	c->rows_rejected = CNT_GET(s, c_rejected);
	c->rows_expired = CNT_GET(s, c_expired);
	c->minutes_written = CNT_GET(s, c_minutes);
	c->queries_written = CNT_GET(s, c_queries);
	c->shape_minutes_written = CNT_GET(s, c_shape_minutes);
	c->findings_written = CNT_GET(s, c_findings);
	c->storage_errors = CNT_GET(s, c_errors);
	c->rows_dropped_oldest = CNT_GET(s, c_dropped_oldest);
	int64_t busy = __atomic_load_n(&s->busy_since, __ATOMIC_RELAXED);
	c->write_busy_ms = busy ? (double)(col_clock_mono_ns() - busy) / 1e6 : 0;
	c->backend = s->be->name;
	pthread_mutex_lock(&s->mu);
	c->queue_depth = s->n;
	c->queue_stmts = s->q_stmts;
	c->rows_held = s->n + __atomic_load_n(&s->held, __ATOMIC_RELAXED);
	c->database_down = s->db_down;
	c->down_since_ns = s->down_since_ns;
	snprintf(c->down_reason, sizeof c->down_reason, "%s", s->down_reason);
	c->writing = !s->faulty && !s->file_moved;
	memcpy(c->last_error, s->last_error, sizeof c->last_error);
	c->last_error_at_ns = s->last_error_at_ns;
	pthread_mutex_unlock(&s->mu);
	c->queue_cap = s->cap;
}

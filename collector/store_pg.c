/*
 * store_pg.c - the PostgreSQL storage backend (store_int.h), for a fleet
 * of collectors sharing one database.
 *
 * One connection, the store thread's. Raw rows go in with COPY, one
 * transaction per batch; requests, queries and request_n_plus_one are
 * partitioned by day of the request's start (declarative range partitions
 * named TABLE_pYYYYMMDD, created before the first row of a day is written,
 * under an advisory lock since every collector of the fleet creates them),
 * so retention drops whole partitions. Every row carries this collector's
 * host. Minute statistics are upserted every second, the current minute
 * included, merging sketches with the stored row, so any collector reading
 * the database sees every host within about 2 s.
 *
 * Faults: any failure whose connection is gone marks the database down
 * (logged once with libpq's reason, col_store_set_down) and is retried with
 * a backoff doubling from 250 ms to 5 s; the generic store holds the rows
 * meanwhile (bounded, oldest dropped first) and the minutes stay in the
 * aggregate. Reconnecting logs once.
 *
 * Schema versions (schema_version, migrated under pg_advisory_lock so that
 * collectors starting together do not race): 2 is the first PostgreSQL
 * layout (the SQLite version 2 tables, partitioned, plus `hosts`); 3 adds
 * the requests (host, id) index; 4 each host's all-time totals, upserted
 * every second where they changed; 5 each host's closed summary windows
 * and regressions (window_summaries, regressions: written by windows.c);
 * 6 the 10-second buckets; 7 the CPU profiles; 8 query_shapes.last_seen_ns.
 *
 * Statement texts (query_shapes) are shared by the fleet: a row is kept
 * while any host's minutes or all-time totals name it, and retention
 * deletes the others. A collector writing a minute row of a shape for the
 * first time also sets the shape's last_seen_ns, in the same transaction,
 * when it is older than SHAPE_REFRESH_NS (an UPDATE, which holds the row
 * until the minutes commit); retention deletes only texts unseen for
 * retention_days + SHAPE_REFRESH_NS + 2 minutes, which no minute row can
 * name any more (prune_shapes() says why), and skips rows another
 * transaction holds.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agg.h"
#include "ap_wire.h"
#include "col.h"
#include "findings.h"
#include "hmap.h"
#include "log.h"
#include "pg.h"
#include "shapeset.h"
#include "sketch.h"
#include "stmt.h"
#include "profile.h"
#include "store_int.h"
#include "timeseries.h"

#define LOCK_MIGRATE 0x61706970726f6601LL   /* "apiprof" + 1 */
#define LOCK_PARTITIONS 0x61706970726f6602LL
#define BACKOFF_MIN_NS (250 * 1000000LL)
#define BACKOFF_MAX_NS (5000 * 1000000LL)
#define DAY_NS (86400 * COL_NS_PER_S)
#define KNOWN_DAYS 64
#define ID_SLOTS 4096
/* Ids are (milliseconds since 2020-01-01) * ID_SLOTS + the host's slot. */
#define ID_EPOCH_MS 1577836800000LL
#define DATA_ERROR_TRIES 3
#define TOTALS_REWRITE_NS (60 * COL_NS_PER_S)
#define TS_KEEP_NS (2 * 3600 * COL_NS_PER_S)  /* twice the ring's hour */
/* A shape's last_seen_ns is rewritten when older than this (so about once
 * an hour per shape in the whole fleet, not with every minute row). */
#define SHAPE_REFRESH_NS (3600 * COL_NS_PER_S)
#define SHAPE_PRUNE_BATCH 10000

struct pg {
	PGconn *conn;
	char err[512];
	int64_t next_attempt;     /* monotonic ns */
	int64_t backoff;
	int64_t known_days[KNOWN_DAYS];
	int nknown;
	int data_errors;          /* consecutive failures on a live connection, but of
	                           * retention (after_failure()) */
	struct col_hmap *totals;  /* key -> struct written: what the totals tables hold */
	int64_t totals_reset;     /* monotonic: forget the map then (rewrite all) */
	int prof_cleared;         /* this host's earlier profiles deleted */
};

static void forget_totals(struct pg *p);

/* The count last written to endpoint_totals / query_totals for a key. */
struct written {
	uint64_t count;
	size_t klen;
	char key[];
};

static struct pg *PG(struct col_store *s)
{
	return s->pg;
}

/* Runs a statement whose result is not needed: 0 or -EIO. */
static int run_ok(PGconn *c, const char *sql, const struct col_pg_params *pp)
{
	PGresult *r = col_pg_run(c, sql, pp);
	PQclear(r);
	return r ? 0 : -EIO;
}

/* ---- migrations ---- */

/* Each entry migrates from the version before it; [0] unused. */
static const char *const migrations[] = {
	[0] = NULL,
	[1] = NULL,
	[2] =
	"CREATE TABLE IF NOT EXISTS hosts (host text PRIMARY KEY, slot serial NOT NULL);"
	"CREATE TABLE IF NOT EXISTS requests ("
	" id bigint NOT NULL, ts_ns bigint NOT NULL, host text NOT NULL, service text NOT NULL,"
	" pid bigint NOT NULL, tid bigint NOT NULL, method text NOT NULL, path text NOT NULL,"
	" route text NOT NULL, status integer NOT NULL, duration_ms double precision NOT NULL,"
	" bytes_in bigint NOT NULL, bytes_out bigint NOT NULL,"
	" sql_count bigint NOT NULL DEFAULT 0, sql_time_ms double precision NOT NULL DEFAULT 0,"
	" slow smallint NOT NULL DEFAULT 0, error smallint NOT NULL DEFAULT 0,"
	" aborted smallint NOT NULL DEFAULT 0, n_plus_one smallint NOT NULL DEFAULT 0,"
	" message text, PRIMARY KEY (id, ts_ns)) PARTITION BY RANGE (ts_ns);"
	"CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts_ns);"
	"CREATE INDEX IF NOT EXISTS requests_route ON requests (route, id);"
	"CREATE INDEX IF NOT EXISTS requests_service ON requests (service, id);"
	"CREATE INDEX IF NOT EXISTS requests_status ON requests (status, id);"
	"CREATE INDEX IF NOT EXISTS requests_slow ON requests (id) WHERE slow = 1;"
	"CREATE INDEX IF NOT EXISTS requests_error ON requests (id) WHERE error = 1;"
	"CREATE INDEX IF NOT EXISTS requests_n_plus_one ON requests (id) WHERE n_plus_one = 1;"
	/* req_ts_ns: the request's start, so its statements share its day. */
	"CREATE TABLE IF NOT EXISTS queries ("
	" request_id bigint NOT NULL, seq integer NOT NULL, req_ts_ns bigint NOT NULL,"
	" ts_ns bigint NOT NULL, duration_ms double precision NOT NULL, db text NOT NULL,"
	" fingerprint bigint NOT NULL, sql text NOT NULL, rows bigint, error_code text,"
	" error_message text, slow smallint NOT NULL DEFAULT 0,"
	" prepare smallint NOT NULL DEFAULT 0, truncated smallint NOT NULL DEFAULT 0,"
	" PRIMARY KEY (request_id, seq, req_ts_ns)) PARTITION BY RANGE (req_ts_ns);"
	"CREATE TABLE IF NOT EXISTS request_n_plus_one ("
	" request_id bigint NOT NULL, fingerprint bigint NOT NULL, req_ts_ns bigint NOT NULL,"
	" count bigint NOT NULL, sql text NOT NULL,"
	" PRIMARY KEY (request_id, fingerprint, req_ts_ns)) PARTITION BY RANGE (req_ts_ns);"
	"CREATE TABLE IF NOT EXISTS endpoint_minutes ("
	" minute bigint NOT NULL, host text NOT NULL, service text NOT NULL,"
	" method text NOT NULL, route text NOT NULL, count bigint NOT NULL,"
	" error_count bigint NOT NULL, slow_count bigint NOT NULL,"
	" sum_ms double precision NOT NULL, min_ms double precision NOT NULL,"
	" max_ms double precision NOT NULL, sql_count bigint NOT NULL DEFAULT 0,"
	" sql_time_ms double precision NOT NULL DEFAULT 0,"
	" n_plus_one_count bigint NOT NULL DEFAULT 0, sketch bytea NOT NULL,"
	" PRIMARY KEY (minute, host, service, method, route));"
	"CREATE TABLE IF NOT EXISTS minute_flush (host text PRIMARY KEY, last_batch bigint NOT NULL);"
	"CREATE TABLE IF NOT EXISTS query_minutes ("
	" minute bigint NOT NULL, host text NOT NULL, service text NOT NULL, db text NOT NULL,"
	" fingerprint bigint NOT NULL, calls bigint NOT NULL, total_ms double precision NOT NULL,"
	" max_ms double precision NOT NULL, rows bigint NOT NULL, errors bigint NOT NULL,"
	" slow_count bigint NOT NULL, sketch bytea NOT NULL,"
	" PRIMARY KEY (minute, host, service, db, fingerprint));"
	"CREATE TABLE IF NOT EXISTS query_shapes ("
	" service text NOT NULL, db text NOT NULL, fingerprint bigint NOT NULL, sql text NOT NULL,"
	" PRIMARY KEY (service, db, fingerprint));"
	"CREATE TABLE IF NOT EXISTS error_groups ("
	" host text NOT NULL, service text NOT NULL, method text NOT NULL, route text NOT NULL,"
	" type text NOT NULL, message text NOT NULL, count bigint NOT NULL,"
	" first_seen_ns bigint NOT NULL, last_seen_ns bigint NOT NULL, example_request_id bigint,"
	" PRIMARY KEY (host, service, method, route, type));"
	"CREATE TABLE IF NOT EXISTS n_plus_one_patterns ("
	" host text NOT NULL, service text NOT NULL, method text NOT NULL, route text NOT NULL,"
	" fingerprint bigint NOT NULL, sql text NOT NULL, occurrences bigint NOT NULL,"
	" max_repeats bigint NOT NULL, first_seen_ns bigint NOT NULL,"
	" last_seen_ns bigint NOT NULL, example_request_id bigint,"
	" PRIMARY KEY (host, service, method, route, fingerprint));",
	[3] =
	/* ?host= listings of a fleet, newest first. */
	"CREATE INDEX IF NOT EXISTS requests_host ON requests (host, id);",
	[4] =
	/* Each host's all-time statistics, as its memory holds them, so that
	 * a fleet's all-time answer reads hosts x endpoints rows rather than
	 * every stored minute. */
	"CREATE TABLE IF NOT EXISTS endpoint_totals ("
	" host text NOT NULL, service text NOT NULL, method text NOT NULL, route text NOT NULL,"
	" count bigint NOT NULL, error_count bigint NOT NULL, slow_count bigint NOT NULL,"
	" sum_ms double precision NOT NULL, min_ms double precision NOT NULL,"
	" max_ms double precision NOT NULL, sql_count bigint NOT NULL,"
	" sql_time_ms double precision NOT NULL, n_plus_one_count bigint NOT NULL,"
	" sketch bytea NOT NULL, updated_ns bigint NOT NULL,"
	" PRIMARY KEY (host, service, method, route));"
	"CREATE TABLE IF NOT EXISTS query_totals ("
	" host text NOT NULL, service text NOT NULL, db text NOT NULL, fingerprint bigint NOT NULL,"
	" calls bigint NOT NULL, total_ms double precision NOT NULL,"
	" max_ms double precision NOT NULL, rows bigint NOT NULL, errors bigint NOT NULL,"
	" slow_count bigint NOT NULL, sketch bytea NOT NULL, updated_ns bigint NOT NULL,"
	" PRIMARY KEY (host, service, db, fingerprint));",
	[5] =
	/* Each host's closed summary windows and regressions, published by
	 * windows.c from its local SQLite file so that /api/v1/summaries and
	 * /api/v1/regressions answer for the fleet (the sketch merges p95
	 * over hosts). id is the host's own regression id. */
	"CREATE TABLE IF NOT EXISTS window_summaries ("
	" window_start_ns bigint NOT NULL, window_end_ns bigint NOT NULL, host text NOT NULL,"
	" service text NOT NULL, method text NOT NULL, route text NOT NULL,"
	" count bigint NOT NULL, sum_ms double precision NOT NULL,"
	" min_ms double precision NOT NULL, max_ms double precision NOT NULL,"
	" error_count bigint NOT NULL, slow_count bigint NOT NULL,"
	" n_plus_one_count bigint NOT NULL, sql_count bigint NOT NULL,"
	" sql_time_ms double precision NOT NULL, sketch bytea,"
	" PRIMARY KEY (window_start_ns, host, service, method, route));"
	"CREATE TABLE IF NOT EXISTS regressions ("
	" host text NOT NULL, id bigint NOT NULL, type text NOT NULL, service text NOT NULL,"
	" method text NOT NULL, route text NOT NULL, window_start_ns bigint NOT NULL,"
	" window_end_ns bigint NOT NULL, previous_window_start_ns bigint NOT NULL,"
	" previous_avg_ms double precision NOT NULL, current_avg_ms double precision NOT NULL,"
	" previous_p95_ms double precision NOT NULL, current_p95_ms double precision NOT NULL,"
	" previous_error_rate double precision NOT NULL,"
	" current_error_rate double precision NOT NULL, previous_count bigint NOT NULL,"
	" current_count bigint NOT NULL, fingerprint text NOT NULL, sql text,"
	" detected_at_ns bigint NOT NULL, webhook text NOT NULL, webhook_attempts integer NOT NULL,"
	" PRIMARY KEY (host, id));"
	"CREATE INDEX IF NOT EXISTS regressions_detected ON regressions (detected_at_ns);",
	[6] =
	/* Each host's complete 10-second buckets (timeseries.h), so that
	 * /api/v1/timeseries answers for the fleet; service '' is the series
	 * of all the host's services. Kept TS_KEEP_NS (the endpoint serves
	 * about the last hour). */
	"CREATE TABLE IF NOT EXISTS ts_buckets ("
	" bucket_ns bigint NOT NULL, host text NOT NULL, service text NOT NULL,"
	" requests bigint NOT NULL, sql bigint NOT NULL,"
	" request_ms double precision NOT NULL, sql_ms double precision NOT NULL,"
	" PRIMARY KEY (bucket_ns, service, host));",
	[7] =
	/* Each host's CPU profiles since its collector started (profile.h),
	 * so that /api/v1/profile answers for the fleet: per endpoint its
	 * sample and profiled-request counts, and its folded stacks. */
	"CREATE TABLE IF NOT EXISTS profile_endpoints ("
	" host text NOT NULL, service text NOT NULL, method text NOT NULL, route text NOT NULL,"
	" samples bigint NOT NULL, requests bigint NOT NULL, updated_ns bigint NOT NULL,"
	" PRIMARY KEY (host, service, method, route));"
	"CREATE TABLE IF NOT EXISTS profile_stacks ("
	" host text NOT NULL, service text NOT NULL, method text NOT NULL, route text NOT NULL,"
	" stack text NOT NULL, count bigint NOT NULL, updated_ns bigint NOT NULL,"
	" PRIMARY KEY (host, service, method, route, stack));",
	[8] =
	/* When a minute row last named each text (prune_shapes()). Rows
	 * already there, and rows inserted by collectors of version 7 still
	 * running in the fleet, take the time of the migration or insertion
	 * (now() is stable: no table rewrite), so no text is deleted before
	 * retention_days and an hour have passed without it. */
	"ALTER TABLE query_shapes ADD COLUMN IF NOT EXISTS last_seen_ns bigint NOT NULL"
	" DEFAULT (extract(epoch FROM now()) * 1000000000)::bigint;",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == COL_PG_SCHEMA_VERSION + 1,
               "a migration per schema version");

/* The stored schema version (0: none yet), or -1. */
static int stored_version(PGconn *c)
{
	if (col_pg_exec(c, "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)") < 0)
		return -1;
	PGresult *r = col_pg_run(c, "SELECT coalesce(max(version), 0) FROM schema_version", NULL);
	int v = r ? (int)col_pg_i64(r, 0, 0) : -1;
	PQclear(r);
	return v;
}

/* Creates or migrates the schema, each version step in its own
 * transaction, all under an advisory lock: a second collector starting at
 * the same moment waits, then finds the schema current. */
static int migrate(struct col_store *s, char *err, size_t errlen)
{
	PGconn *c = PG(s)->conn;
	char buf[512], sql[96];
	snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", LOCK_MIGRATE);
	if (col_pg_exec(c, sql) < 0) {
		snprintf(err, errlen, "db %s: %s", s->shown, col_pg_error(c, buf, sizeof buf));
		return -EIO;
	}
	int rc = 0, version = stored_version(c), v = version;
	if (version < 0) {
		rc = -EIO;
		snprintf(err, errlen, "db %s: reading the schema version: %s", s->shown,
		         col_pg_error(c, buf, sizeof buf));
	} else if (version > COL_PG_SCHEMA_VERSION) {
		rc = -EPROTONOSUPPORT;
		snprintf(err, errlen, "db %s: schema version %d is newer than this collector"
		         " supports (%d)", s->shown, version, COL_PG_SCHEMA_VERSION);
	}
	/* PostgreSQL starts at version 2 (the layout of SQLite's version 2). */
	for (v = version < 2 ? 2 : version + 1; rc == 0 && v <= COL_PG_SCHEMA_VERSION; v++) {
		snprintf(sql, sizeof sql, v == 2 ? "INSERT INTO schema_version (version) VALUES (%d)"
		         : "UPDATE schema_version SET version = %d", v);
		if (col_pg_exec(c, "BEGIN") < 0 || col_pg_exec(c, migrations[v]) < 0 ||
		    col_pg_exec(c, sql) < 0 || col_pg_exec(c, "COMMIT") < 0) {
			col_pg_error(c, buf, sizeof buf);
			col_pg_rollback(c);
			snprintf(err, errlen, "db %s: migrating the schema to version %d: %s",
			         s->shown, v, buf);
			rc = -EIO;
		}
	}
	if (rc == 0 && version >= 2 && version < COL_PG_SCHEMA_VERSION)
		col_log(COL_LOG_INFO, "db %s: schema migrated from version %d to %d", s->shown,
		        version, COL_PG_SCHEMA_VERSION);
	snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%lld)", LOCK_MIGRATE);
	col_pg_exec(c, sql);
	return rc;
}

/* ---- partitions ---- */

static const char *const partitioned[] = { "requests", "queries", "request_n_plus_one" };

/* Creates the day's partitions of the three tables unless known. */
static int ensure_day(struct col_store *s, int64_t day)
{
	struct pg *p = PG(s);
	for (int i = 0; i < p->nknown; i++)
		if (p->known_days[i] == day)
			return 0;
	time_t t = (time_t)(day * 86400);
	struct tm tm;
	gmtime_r(&t, &tm);
	/* The first and last days of int64 nanoseconds (1677, 2262: a sender's
	 * clock offset is whatever its datagram says) end past the range:
	 * (day + 1) * DAY_NS overflowed into a bound PostgreSQL refused, and
	 * the batch with that row was retried forever. */
	char lo[24] = "MINVALUE", hi[24] = "MAXVALUE";
	if (day >= INT64_MIN / DAY_NS)
		snprintf(lo, sizeof lo, "%" PRId64, (int64_t)(day * DAY_NS));
	if (day < INT64_MAX / DAY_NS)
		snprintf(hi, sizeof hi, "%" PRId64, (int64_t)((day + 1) * DAY_NS));
	char sql[1024];
	size_t n = (size_t)snprintf(sql, sizeof sql,
	                            "BEGIN; SELECT pg_advisory_xact_lock(%lld);", LOCK_PARTITIONS);
	for (size_t i = 0; i < 3; i++)
		n += (size_t)snprintf(sql + n, sizeof sql - n,
		                      "CREATE TABLE IF NOT EXISTS %s_p%04d%02d%02d PARTITION OF %s"
		                      " FOR VALUES FROM (%s) TO (%s);",
		                      partitioned[i], tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		                      partitioned[i], lo, hi);
	snprintf(sql + n, sizeof sql - n, "COMMIT");
	if (col_pg_exec(p->conn, sql) < 0) {
		col_pg_rollback(p->conn);
		return -EIO;
	}
	if (p->nknown == KNOWN_DAYS)
		p->nknown = 0;
	p->known_days[p->nknown++] = day;
	return 0;
}

static int64_t day_of(int64_t ts_ns)
{
	/* floor division; ts_ns - DAY_NS + 1 overflowed near INT64_MIN */
	int64_t d = ts_ns / DAY_NS;
	return ts_ns % DAY_NS < 0 ? d - 1 : d;
}

/* ---- connection ---- */

/* A failure on the connection: when it is gone, the database is down
 * (logged once) and the next attempt waits for the backoff. Either way
 * the noted failure is forgotten (col_pg_take_failure()): a later
 * failure that no failed statement reports must not be judged by this
 * one's SQLSTATE. A failed retention pass (COL_SK_RETENTION) leaves
 * data_errors alone: it refuses no data, and counted it made a batch of
 * rows failing meanwhile refused one try sooner. */
static void after_failure(struct col_store *s)
{
	struct pg *p = PG(s);
	if (p->conn != NULL && PQstatus(p->conn) == CONNECTION_OK) {
		/* The failed statement's own message (the ROLLBACK after it
		 * cleared the connection's). A full disk, a timeout or a
		 * deadlock pass: what waits is held and retried, as in an
		 * outage; only data refused again and again is given up. */
		int passes = col_pg_take_failure(p->conn, p->err, sizeof p->err);
		if (s->cur_kind == COL_SK_RETENTION)
			return;
		if (passes)
			p->data_errors = 0;
		else
			p->data_errors++;
		return;
	}
	col_pg_forget();
	col_pg_error(p->conn, p->err, sizeof p->err);
	PQfinish(p->conn);
	p->conn = NULL;
	p->nknown = 0;
	col_store_set_down(s, 1, p->err);
	p->backoff = p->backoff ? p->backoff * 2 : BACKOFF_MIN_NS;
	if (p->backoff > BACKOFF_MAX_NS)
		p->backoff = BACKOFF_MAX_NS;
	p->next_attempt = col_clock_mono_ns() + p->backoff;
}

/* 0 with a live connection, else -EIO (down, or waiting for the backoff). */
static int ensure_conn(struct col_store *s)
{
	struct pg *p = PG(s);
	if (p->conn != NULL && PQstatus(p->conn) == CONNECTION_OK)
		return 0;
	if (p->conn != NULL) {
		after_failure(s);
		return -EIO;
	}
	if (col_clock_mono_ns() < p->next_attempt)
		return -EIO;
	char why[512];
	p->conn = col_pg_connect(s->path, why, sizeof why);
	if (p->conn == NULL) {
		snprintf(p->err, sizeof p->err, "%s", why);
		col_store_set_down(s, 1, why);
		p->backoff = p->backoff ? p->backoff * 2 : BACKOFF_MIN_NS;
		if (p->backoff > BACKOFF_MAX_NS)
			p->backoff = BACKOFF_MAX_NS;
		p->next_attempt = col_clock_mono_ns() + p->backoff;
		return -EIO;
	}
	p->backoff = 0;
	col_pg_exec(p->conn, "SET statement_timeout = '30s'");
	col_store_set_down(s, 0, NULL);
	return 0;
}

static int pg_open(struct col_store *s, char *err, size_t errlen)
{
	struct pg *p = calloc(1, sizeof *p);
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->pg = p;
	/* A fleet's database may be slow as well as down: either way a full
	 * queue keeps the newest rows. */
	s->drop_oldest = 1;
	char why[512];
	p->conn = col_pg_connect(s->path, why, sizeof why);
	if (p->conn == NULL) {
		snprintf(err, errlen, "db %s: %s", s->shown, why);
		return -EIO;
	}
	col_pg_exec(p->conn, "SET statement_timeout = '30s'");
	int rc = migrate(s, err, errlen);
	if (rc < 0)
		return rc;
	/* This host's id slot, and where its ids and minute batches go on. */
	struct col_pg_params pp = { 0 };
	col_pg_p_text(&pp, s->host);
	/* Not a plain ON CONFLICT: that takes a slot number from the sequence
	 * at every start, and slots would run past ID_SLOTS with restarts. */
	PGresult *r = col_pg_run(p->conn, "INSERT INTO hosts (host) SELECT $1 WHERE NOT EXISTS"
	                         " (SELECT 1 FROM hosts WHERE host = $1)"
	                         " ON CONFLICT (host) DO NOTHING", &pp);
	PQclear(r);
	r = col_pg_run(p->conn,
	               "SELECT (SELECT slot FROM hosts WHERE host = $1),"
	               " (SELECT coalesce(max(id), 0) FROM requests WHERE host = $1),"
	               " (SELECT coalesce(max(last_batch), 0) FROM minute_flush WHERE host = $1)",
	               &pp);
	if (r == NULL || PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
		snprintf(err, errlen, "db %s: %s", s->shown, col_pg_error(p->conn, why, sizeof why));
		PQclear(r);
		return -EIO;
	}
	int64_t slot = col_pg_i64(r, 0, 0);
	s->id_slot = (slot - 1) % ID_SLOTS;
	if (slot > ID_SLOTS)
		col_log(COL_LOG_WARN, "db %s: more than %d hosts: request ids of host %s may"
		        " collide with another's", s->shown, ID_SLOTS, s->host);
	s->next_id = col_pg_i64(r, 0, 1) / ID_SLOTS + 1;
	s->next_batch_id = (uint64_t)col_pg_i64(r, 0, 2) + 1;
	PQclear(r);
	int64_t today = day_of(col_clock_real_ns());
	if (ensure_day(s, today) < 0 || ensure_day(s, today + 1) < 0) {
		/* ensure_day() rolled back: PostgreSQL's reason is the failed
		 * statement's (PQerrorMessage is empty again). */
		snprintf(err, errlen, "db %s: creating partitions: %s", s->shown,
		         col_pg_failure(p->conn, why, sizeof why));
		return -EIO;
	}
	return 0;
}

int64_t col_store_pg_id(struct col_store *s)
{
	int64_t ms = col_clock_real_ns() / 1000000 - ID_EPOCH_MS;
	int64_t v = s->next_id > ms ? s->next_id : ms;
	s->next_id = v + 1;
	return v * ID_SLOTS + s->id_slot;
}

static void pg_close(struct col_store *s)
{
	struct pg *p = PG(s);
	if (p == NULL)
		return;
	PQfinish(p->conn);
	forget_totals(p);
	col_hmap_free(p->totals);
	free(p);
	s->pg = NULL;
}

static const char *pg_errmsg(struct col_store *s)
{
	struct pg *p = PG(s);
	return p && p->err[0] ? p->err : "unknown error";
}

/* ---- COPY ---- */

static int copy_in(PGconn *c, const char *sql, const struct col_pg_buf *b)
{
	if (b->len == 0)
		return 0;
	PGresult *r = PQexec(c, sql);
	col_pg_note(r);
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		PQclear(r);
		return -EIO;
	}
	PQclear(r);
	int ok = PQputCopyData(c, b->p, (int)b->len) == 1;
	if (PQputCopyEnd(c, ok ? NULL : "aborted") != 1)
		ok = 0;
	while ((r = PQgetResult(c)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			if (ok)
				col_pg_note(r);
			ok = 0;
		}
		PQclear(r);
	}
	return ok ? 0 : -EIO;
}

/* After a failed batch of n rows (after_failure() counted it): a batch a
 * live database refuses again and again as data (a duplicate id after a
 * clock jump, say) would block every later row, so its rows are counted
 * as rejected and 0 returned; otherwise -EIO (held, retried). Refused,
 * the rows are settled as SQLite's refused rows are by their commit: the
 * fault of the rows' kind is over (col_store_ok()), else it stood, with
 * store.writing false, until another batch of rows committed, whatever
 * else the store wrote meanwhile. */
static int refuse_after_tries(struct col_store *s, size_t n)
{
	struct pg *p = PG(s);
	if (p->conn == NULL || p->data_errors < DATA_ERROR_TRIES)
		return -EIO;
	col_log(COL_LOG_ERROR, "storage: %zu request rows refused: %s", n, p->err);
	CNT_ADD(s, c_rejected, n);
	p->data_errors = 0;
	col_store_ok(s);
	return 0;
}

static int pg_write_rows(struct col_store *s, struct col_row **rows, size_t n)
{
	struct pg *p = PG(s);
	if (ensure_conn(s) < 0)
		return -EIO;
	for (size_t i = 0; i < n; i++) {
		if (ensure_day(s, day_of(rows[i]->ts_ns)) < 0) {
			after_failure(s);
			col_store_error(s, "creating partitions");
			return refuse_after_tries(s, n);
		}
	}
	struct col_pg_buf rq = { 0 }, qs = { 0 }, n1 = { 0 };
	uint64_t queries = 0;
	for (size_t i = 0; i < n; i++) {
		const struct col_row *r = rows[i];
		int64_t id = r->id > 0 ? r->id : col_store_pg_id(s);
		col_pg_copy_i64(&rq, id); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, r->ts_ns); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_text(&rq, s->host); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_text(&rq, r->service); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, r->pid); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, r->tid); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_text(&rq, r->method); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_text(&rq, r->path); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_text(&rq, r->route); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, r->status); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_f64(&rq, r->duration_ms); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, col_store_clamp_i64(r->bytes_in)); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, col_store_clamp_i64(r->bytes_out)); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, r->sql_count); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_f64(&rq, r->sql_time_ms); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, r->slow); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, r->error); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, r->aborted); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_i64(&rq, r->n_plus_one); col_pg_copy_sep(&rq, '\t');
		col_pg_copy_text(&rq, r->message && r->message[0] ? r->message : NULL);
		col_pg_copy_sep(&rq, '\n');
		for (uint32_t k = 0; k < r->nstmts; k++) {
			const struct col_stmt *q = r->stmts[k];
			col_pg_copy_i64(&qs, id); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_i64(&qs, (int64_t)k + 1); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_i64(&qs, r->ts_ns); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_i64(&qs, q->ts_ns); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_f64(&qs, q->duration_ms); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_text(&qs, col_sql_db_name(q->db)); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_i64(&qs, col_store_fp_to_db(q->fingerprint)); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_text(&qs, q->sql); col_pg_copy_sep(&qs, '\t');
			if (q->rows_known)
				col_pg_copy_i64(&qs, col_store_clamp_i64(q->rows));
			else
				col_pg_copy_text(&qs, NULL);
			col_pg_copy_sep(&qs, '\t');
			col_pg_copy_text(&qs, q->failed ? q->error_code : NULL); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_text(&qs, q->failed ? q->error_message : NULL); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_i64(&qs, q->slow); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_i64(&qs, q->prepare); col_pg_copy_sep(&qs, '\t');
			col_pg_copy_i64(&qs, (q->flags & AP_SQLF_TRUNCATED) != 0);
			col_pg_copy_sep(&qs, '\n');
			queries++;
		}
		for (uint32_t k = 0; k < r->nn1; k++) {
			col_pg_copy_i64(&n1, id); col_pg_copy_sep(&n1, '\t');
			col_pg_copy_i64(&n1, col_store_fp_to_db(r->n1[k].fingerprint)); col_pg_copy_sep(&n1, '\t');
			col_pg_copy_i64(&n1, r->ts_ns); col_pg_copy_sep(&n1, '\t');
			col_pg_copy_i64(&n1, r->n1[k].count); col_pg_copy_sep(&n1, '\t');
			col_pg_copy_text(&n1, r->n1[k].sql ? r->n1[k].sql : "");
			col_pg_copy_sep(&n1, '\n');
		}
	}
	int rc = -EIO;
	if (rq.oom || qs.oom || n1.oom) {
		snprintf(p->err, sizeof p->err, "out of memory");
		CNT_ADD(s, c_errors, 1);
		goto out;
	}
	if (col_pg_exec(p->conn, "BEGIN") < 0 ||
	    copy_in(p->conn, "COPY requests (id, ts_ns, host, service, pid, tid, method, path,"
	            " route, status, duration_ms, bytes_in, bytes_out, sql_count, sql_time_ms,"
	            " slow, error, aborted, n_plus_one, message) FROM STDIN", &rq) < 0 ||
	    copy_in(p->conn, "COPY queries (request_id, seq, req_ts_ns, ts_ns, duration_ms, db,"
	            " fingerprint, sql, rows, error_code, error_message, slow, prepare, truncated)"
	            " FROM STDIN", &qs) < 0 ||
	    copy_in(p->conn, "COPY request_n_plus_one (request_id, fingerprint, req_ts_ns, count,"
	            " sql) FROM STDIN", &n1) < 0 ||
	    col_pg_exec(p->conn, "COMMIT") < 0) {
		col_pg_rollback(p->conn);
		after_failure(s);
		col_store_error(s, "writing requests");
		rc = refuse_after_tries(s, n);
		goto out;
	}
	p->data_errors = 0;
	col_store_ok(s);
	CNT_ADD(s, c_written, n);
	CNT_ADD(s, c_queries, queries);
	rc = 0;
out:
	free(rq.p);
	free(qs.p);
	free(n1.p);
	return rc;
}

/* ---- minutes ---- */

/* The statistics columns as parameters, in col_pg_read_stats()'s order,
 * but for the sketch: run_with_sketch() appends it. */
static void p_stats(struct col_pg_params *pp, const struct col_stats *st)
{
	col_pg_p_i64(pp, col_store_clamp_i64(st->count));
	col_pg_p_i64(pp, col_store_clamp_i64(st->error_count));
	col_pg_p_i64(pp, col_store_clamp_i64(st->slow_count));
	col_pg_p_f64(pp, st->sum_ms);
	col_pg_p_f64(pp, st->min_ms);
	col_pg_p_f64(pp, st->max_ms);
	col_pg_p_i64(pp, col_store_clamp_i64(st->sql_count));
	col_pg_p_f64(pp, st->sql_time_ms);
	col_pg_p_i64(pp, col_store_clamp_i64(st->n_plus_one_count));
}

/* Likewise in col_pg_read_shape_stats()'s order. */
static void p_shape_stats(struct col_pg_params *pp, const struct col_shape_stats *st)
{
	col_pg_p_i64(pp, col_store_clamp_i64(st->calls));
	col_pg_p_f64(pp, st->total_ms);
	col_pg_p_f64(pp, st->max_ms);
	col_pg_p_i64(pp, col_store_clamp_i64(st->rows));
	col_pg_p_i64(pp, col_store_clamp_i64(st->errors));
	col_pg_p_i64(pp, col_store_clamp_i64(st->slow_count));
}

/* Runs sql (an upsert of statistics) with pp and then sk, encoded, as its
 * last parameter (a bytea). pp is the caller's. 0, -ENOMEM (nothing run)
 * or -EIO. */
static int run_with_sketch(PGconn *c, const char *sql, struct col_pg_params *pp,
                           const struct col_sketch *sk)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	if (col_sketch_encode(sk, &blob, &len) < 0)
		return -ENOMEM;
	col_pg_p_bin(pp, blob, len);
	int rc = run_ok(c, sql, pp);
	free(blob);
	return rc;
}

static int upsert_minute(struct col_store *s, int64_t minute, const struct col_ep *e)
{
	PGconn *c = PG(s)->conn;
	struct col_pg_params pp = { 0 };
	col_pg_p_i64(&pp, minute);
	col_pg_p_text(&pp, s->host);
	col_pg_p_text(&pp, e->service);
	col_pg_p_text(&pp, e->method);
	col_pg_p_text(&pp, e->route);
	PGresult *r = col_pg_run(c,
		"SELECT count, error_count, slow_count, sum_ms, min_ms, max_ms, sql_count,"
		" sql_time_ms, n_plus_one_count, sketch FROM endpoint_minutes"
		" WHERE minute = $1 AND host = $2 AND service = $3 AND method = $4 AND route = $5"
		" FOR UPDATE", &pp);
	if (r == NULL)
		return -EIO;
	struct col_stats m = { 0 };
	if (PQntuples(r) == 1 && col_pg_read_stats(r, 0, 0, &m) < 0)
		col_log(COL_LOG_WARN, "storage: damaged sketch for %s %s %s at minute %lld"
		        " replaced", e->service, e->method, e->route, (long long)minute);
	PQclear(r);
	if (col_stats_merge(&m, &e->st) < 0) {
		col_stats_release(&m);
		return -ENOMEM;
	}
	p_stats(&pp, &m);
	int rc = run_with_sketch(c,
		"INSERT INTO endpoint_minutes (minute, host, service, method, route, count,"
		" error_count, slow_count, sum_ms, min_ms, max_ms, sql_count, sql_time_ms,"
		" n_plus_one_count, sketch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
		" $12, $13, $14, $15) ON CONFLICT (minute, host, service, method, route) DO UPDATE"
		" SET count = $6, error_count = $7, slow_count = $8, sum_ms = $9, min_ms = $10,"
		" max_ms = $11, sql_count = $12, sql_time_ms = $13, n_plus_one_count = $14,"
		" sketch = $15", &pp, &m.sketch);
	col_stats_release(&m);
	return rc;
}

/* Upserts this host's row of shape e at minute; *added is set when the
 * row is new (its text is then written by touch_shapes()). 0, -ENOMEM or
 * -EIO. */
static int upsert_shape_minute(struct col_store *s, int64_t minute, const struct col_shape *e,
                               int *added)
{
	PGconn *c = PG(s)->conn;
	struct col_pg_params pp = { 0 };
	col_pg_p_i64(&pp, minute);
	col_pg_p_text(&pp, s->host);
	col_pg_p_text(&pp, e->service);
	col_pg_p_text(&pp, col_sql_db_name(e->db));
	col_pg_p_i64(&pp, col_store_fp_to_db(e->fp));
	PGresult *r = col_pg_run(c,
		"SELECT calls, total_ms, max_ms, rows, errors, slow_count, sketch FROM query_minutes"
		" WHERE minute = $1 AND host = $2 AND service = $3 AND db = $4 AND fingerprint = $5"
		" FOR UPDATE", &pp);
	if (r == NULL)
		return -EIO;
	struct col_shape_stats m = { 0 };
	int known = PQntuples(r) == 1;
	if (known && col_pg_read_shape_stats(r, 0, 0, &m) < 0)
		col_log(COL_LOG_WARN, "storage: damaged sketch for statement %016llx of %s at"
		        " minute %lld replaced", (unsigned long long)e->fp, e->service,
		        (long long)minute);
	PQclear(r);
	if (col_shape_stats_merge(&m, &e->st) < 0) {
		col_shape_stats_release(&m);
		return -ENOMEM;
	}
	p_shape_stats(&pp, &m);
	int rc = run_with_sketch(c,
		"INSERT INTO query_minutes (minute, host, service, db, fingerprint, calls,"
		" total_ms, max_ms, rows, errors, slow_count, sketch) VALUES ($1, $2, $3, $4, $5,"
		" $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (minute, host, service, db,"
		" fingerprint) DO UPDATE SET calls = $6, total_ms = $7, max_ms = $8, rows = $9,"
		" errors = $10, slow_count = $11, sketch = $12", &pp, &m.sketch);
	col_shape_stats_release(&m);
	*added = rc == 0 && !known;
	return rc;
}

/* The order in which every collector takes shape rows: the same for all,
 * so that two transactions touching the same shapes cannot deadlock. */
static int shape_cmp(const void *a, const void *b)
{
	const struct col_shape *x = *(const struct col_shape *const *)a;
	const struct col_shape *y = *(const struct col_shape *const *)b;
	int c = strcmp(x->service, y->service);
	if (c == 0)
		c = x->db < y->db ? -1 : x->db > y->db;
	if (c == 0)
		c = x->fp < y->fp ? -1 : x->fp > y->fp;
	return c;
}

/* Writes the texts of the shapes whose minute rows v[0..n) were just
 * added, in the caller's transaction, and sets last_seen_ns to now where
 * it is older than SHAPE_REFRESH_NS. v is sorted here.
 *
 * The UPDATE locks only such stale rows, until the minutes commit: a
 * retention pass of another collector skips a locked row, and one that
 * read the row before sees its new last_seen_ns (READ COMMITTED re-checks
 * the WHERE clause on the updated row), so a text is never deleted under
 * minutes about to name it. Fresh rows are left alone (no lock, no write):
 * retention takes none of them. When the row is missing, or was deleted
 * by a retention pass we waited for, the INSERT writes it again. 0 or
 * -EIO. */
static int touch_shapes(struct col_store *s, const struct col_shape **v, size_t n)
{
	qsort(v, n, sizeof *v, shape_cmp);
	int64_t now = col_clock_real_ns();
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && shape_cmp(&v[i - 1], &v[i]) == 0)
			continue;
		struct col_pg_params pp = { 0 };
		col_pg_p_text(&pp, v[i]->service);
		col_pg_p_text(&pp, col_sql_db_name(v[i]->db));
		col_pg_p_i64(&pp, col_store_fp_to_db(v[i]->fp));
		col_pg_p_text(&pp, v[i]->sql);
		col_pg_p_i64(&pp, now);
		col_pg_p_i64(&pp, now - SHAPE_REFRESH_NS);
		if (run_ok(PG(s)->conn,
		           "WITH seen AS (UPDATE query_shapes SET last_seen_ns = $5"
		           " WHERE service = $1 AND db = $2 AND fingerprint = $3"
		           " AND last_seen_ns < $6 RETURNING 1)"
		           " INSERT INTO query_shapes (service, db, fingerprint, sql, last_seen_ns)"
		           " SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT FROM seen)"
		           " ON CONFLICT DO NOTHING", &pp) < 0)
			return -EIO;
	}
	return 0;
}

/* ---- all-time totals ---- */

/* Forgets what was written (after a failed transaction: all is rewritten). */
static void forget_totals(struct pg *p)
{
	size_t it = 0;
	void *w;
	while (p->totals && (w = col_hmap_next(p->totals, &it, NULL, NULL)) != NULL)
		free(w);
	col_hmap_free(p->totals);
	p->totals = NULL;
}

/* 1 when key's total is to be written (count differs from the last
 * written, which becomes count); -ENOMEM. */
static int changed(struct pg *p, const char *key, size_t klen, uint64_t count)
{
	if (p->totals == NULL && (p->totals = col_hmap_new()) == NULL)
		return -ENOMEM;
	struct written *w = col_hmap_get(p->totals, key, klen);
	if (w != NULL) {
		if (w->count == count)
			return 0;
		w->count = count;
		return 1;
	}
	w = malloc(sizeof *w + klen);
	if (w == NULL)
		return -ENOMEM;
	w->count = count;
	w->klen = klen;
	memcpy(w->key, key, klen);
	if (col_hmap_put(p->totals, w->key, klen, w) < 0) {
		free(w);
		return -ENOMEM;
	}
	return 1;
}

/* Up to three strings and a number as one map key ("e\0svc\0...\0"). */
static size_t total_key(char *buf, size_t cap, char kind, const char *a, const char *b,
                        const char *c)
{
	int n = snprintf(buf, cap, "%c%s%c%s%c%s", kind, a, 0, b, 0, c);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* The totals' upserts: updated_ns comes before the statistics so that
 * the sketch is the last parameter (run_with_sketch()). */
static int upsert_ep_total(struct col_store *s, const struct col_ep *e, int64_t now)
{
	struct col_pg_params pp = { 0 };
	col_pg_p_text(&pp, s->host);
	col_pg_p_text(&pp, e->service);
	col_pg_p_text(&pp, e->method);
	col_pg_p_text(&pp, e->route);
	col_pg_p_i64(&pp, now);
	p_stats(&pp, &e->st);
	return run_with_sketch(PG(s)->conn,
		"INSERT INTO endpoint_totals (host, service, method, route, updated_ns, count,"
		" error_count, slow_count, sum_ms, min_ms, max_ms, sql_count, sql_time_ms,"
		" n_plus_one_count, sketch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
		" $12, $13, $14, $15) ON CONFLICT (host, service, method, route) DO UPDATE SET"
		" updated_ns = $5, count = $6, error_count = $7, slow_count = $8, sum_ms = $9,"
		" min_ms = $10, max_ms = $11, sql_count = $12, sql_time_ms = $13,"
		" n_plus_one_count = $14, sketch = $15", &pp, &e->st.sketch);
}

static int upsert_shape_total(struct col_store *s, const struct col_shape *e, int64_t now)
{
	struct col_pg_params pp = { 0 };
	col_pg_p_text(&pp, s->host);
	col_pg_p_text(&pp, e->service);
	col_pg_p_text(&pp, col_sql_db_name(e->db));
	col_pg_p_i64(&pp, col_store_fp_to_db(e->fp));
	col_pg_p_i64(&pp, now);
	p_shape_stats(&pp, &e->st);
	return run_with_sketch(PG(s)->conn,
		"INSERT INTO query_totals (host, service, db, fingerprint, updated_ns, calls,"
		" total_ms, max_ms, rows, errors, slow_count, sketch) VALUES ($1, $2, $3, $4, $5,"
		" $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (host, service, db, fingerprint)"
		" DO UPDATE SET updated_ns = $5, calls = $6, total_ms = $7, max_ms = $8, rows = $9,"
		" errors = $10, slow_count = $11, sketch = $12", &pp, &e->st.sketch);
}

/* Publishes this host's all-time statistics that changed since the last
 * call, in one transaction (the minutes' texts of new shapes are already
 * in query_shapes). 0, -ENOMEM or -EIO (all rewritten next time). */
static int write_totals(struct col_store *s)
{
	struct pg *p = PG(s);
	struct col_epset *eps = col_epset_new();
	struct col_shapeset *shapes = col_shapeset_new();
	int rc = -ENOMEM;
	if (eps == NULL || shapes == NULL || col_agg_alltime_copy(s->agg, NULL, eps, shapes) < 0)
		goto out;
	int64_t now = col_clock_real_ns(), mono = col_clock_mono_ns();
	/* Once a minute everything is written again: rows deleted meanwhile
	 * (retention of a long-silent host, a hand-made cleanup) come back. */
	if (mono >= p->totals_reset) {
		forget_totals(p);
		p->totals_reset = mono + TOTALS_REWRITE_NS;
	}
	char key[COL_SERVICE_MAX * 2 + 4096];
	int begun = 0;
	rc = 0;
	size_t it = 0;
	const struct col_ep *e;
	while (rc == 0 && (e = col_epset_next(eps, &it)) != NULL) {
		size_t k = total_key(key, sizeof key, 'e', e->service, e->method, e->route);
		int ch = k ? changed(p, key, k, e->st.count) : 1;
		if (ch > 0 && !begun++)
			rc = col_pg_exec(p->conn, "BEGIN");
		rc = rc < 0 ? rc : ch < 0 ? ch : ch ? upsert_ep_total(s, e, now) : 0;
	}
	it = 0;
	const struct col_shape *sh;
	while (rc == 0 && (sh = col_shapeset_next(shapes, &it)) != NULL) {
		char fp[24];
		snprintf(fp, sizeof fp, "%u:%016llx", (unsigned)sh->db, (unsigned long long)sh->fp);
		size_t k = total_key(key, sizeof key, 's', sh->service, fp, "");
		int ch = k ? changed(p, key, k, sh->st.calls) : 1;
		if (ch > 0 && !begun++)
			rc = col_pg_exec(p->conn, "BEGIN");
		rc = rc < 0 ? rc : ch < 0 ? ch : ch ? upsert_shape_total(s, sh, now) : 0;
	}
	if (rc == 0 && begun)
		rc = col_pg_exec(p->conn, "COMMIT");
	if (rc < 0) {
		col_pg_rollback(p->conn);
		forget_totals(p);
		if (rc == -EIO) {
			after_failure(s);
			col_store_error(s, "writing all-time totals");
		}
	}
out:
	col_epset_free(eps);
	col_shapeset_free(shapes);
	return rc;
}

void col_store_set_tseries(struct col_store *s, struct col_tseries *t)
{
	s->tseries = t;
	s->ts_published = INT64_MIN;
}

/* Publishes this host's buckets completed since the last call, in one
 * transaction; on failure they are published again next time. Each bucket
 * is written once: a request that ran past the settling time still counts
 * in this host's memory only. 0, -ENOMEM or -EIO. */
static int write_buckets(struct col_store *s)
{
	struct pg *p = PG(s);
	struct col_ts_bucket *v;
	size_t n;
	int64_t last;
	int rc = col_tseries_complete(s->tseries, col_clock_real_ns(), s->ts_published, &v, &n,
	                              &last);
	if (rc < 0)
		return rc;
	if (n > 0)
		rc = col_pg_exec(p->conn, "BEGIN");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct col_pg_params pp = { 0 };
		col_pg_p_i64(&pp, v[i].t_ns);
		col_pg_p_text(&pp, s->host);
		col_pg_p_text(&pp, v[i].service);
		col_pg_p_i64(&pp, col_store_clamp_i64(v[i].requests));
		col_pg_p_i64(&pp, col_store_clamp_i64(v[i].sql));
		col_pg_p_f64(&pp, v[i].request_ms);
		col_pg_p_f64(&pp, v[i].sql_ms);
		rc = run_ok(p->conn, "INSERT INTO ts_buckets (bucket_ns, host, service, requests,"
		            " sql, request_ms, sql_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)"
		            " ON CONFLICT (bucket_ns, service, host) DO UPDATE SET"
		            " requests = EXCLUDED.requests, sql = EXCLUDED.sql,"
		            " request_ms = EXCLUDED.request_ms, sql_ms = EXCLUDED.sql_ms", &pp);
	}
	if (rc == 0 && n > 0)
		rc = col_pg_exec(p->conn, "COMMIT");
	free(v);
	if (rc < 0) {
		col_pg_rollback(p->conn);
		after_failure(s);
		col_store_error(s, "writing timeseries buckets");
		return rc;
	}
	s->ts_published = last;
	return 0;
}

/* Upserts one endpoint's profile row and all its stacks (counts only
 * grow while the collector runs). 0 or -EIO. */
static int upsert_profile(struct col_store *s, const struct col_prof_ep *e, int64_t now)
{
	PGconn *c = PG(s)->conn;
	struct col_pg_params pp = { 0 };
	col_pg_p_text(&pp, s->host);
	col_pg_p_text(&pp, e->service);
	col_pg_p_text(&pp, e->method);
	col_pg_p_text(&pp, e->route);
	col_pg_p_i64(&pp, col_store_clamp_i64(e->samples));
	col_pg_p_i64(&pp, col_store_clamp_i64(e->requests));
	col_pg_p_i64(&pp, now);
	if (run_ok(c, "INSERT INTO profile_endpoints (host, service, method, route, samples,"
	           " requests, updated_ns) VALUES ($1, $2, $3, $4, $5, $6, $7)"
	           " ON CONFLICT (host, service, method, route) DO UPDATE SET"
	           " samples = EXCLUDED.samples, requests = EXCLUDED.requests,"
	           " updated_ns = EXCLUDED.updated_ns", &pp) < 0)
		return -EIO;
	for (size_t k = 0; k < e->n; k++) {
		struct col_pg_params sp = { 0 };
		col_pg_p_text(&sp, s->host);
		col_pg_p_text(&sp, e->service);
		col_pg_p_text(&sp, e->method);
		col_pg_p_text(&sp, e->route);
		col_pg_p_text(&sp, e->v[k].stack);
		col_pg_p_i64(&sp, col_store_clamp_i64(e->v[k].count));
		col_pg_p_i64(&sp, now);
		if (run_ok(c, "INSERT INTO profile_stacks (host, service, method, route, stack,"
		           " count, updated_ns) VALUES ($1, $2, $3, $4, $5, $6, $7)"
		           " ON CONFLICT (host, service, method, route, stack) DO UPDATE SET"
		           " count = EXCLUDED.count, updated_ns = EXCLUDED.updated_ns", &sp) < 0)
			return -EIO;
	}
	return 0;
}

/* Publishes the CPU profiles of this host's endpoints that changed since
 * the last call (all of them once a minute, with the totals), in one
 * transaction. The first call of a run deletes what this host published
 * before (its collector's profiles start empty). 0, -ENOMEM or -EIO. */
static int write_profiles(struct col_store *s)
{
	struct pg *p = PG(s);
	struct col_prof_rows rows;
	if (col_prof_select(col_agg_profiles(s->agg), NULL, NULL, NULL, &rows) < 0)
		return -ENOMEM;
	int64_t now = col_clock_real_ns();
	char key[COL_SERVICE_MAX * 2 + 4096];
	int rc = 0, begun = 0;
	if (!p->prof_cleared) {
		struct col_pg_params hp = { 0 };
		col_pg_p_text(&hp, s->host);
		begun = 1;
		rc = col_pg_exec(p->conn, "BEGIN");
		if (rc == 0)
			rc = run_ok(p->conn, "DELETE FROM profile_stacks WHERE host = $1", &hp);
		if (rc == 0)
			rc = run_ok(p->conn, "DELETE FROM profile_endpoints WHERE host = $1", &hp);
	}
	for (size_t i = 0; rc == 0 && i < rows.n; i++) {
		const struct col_prof_ep *e = &rows.v[i];
		size_t k = total_key(key, sizeof key, 'p', e->service, e->method, e->route);
		/* Samples and profiled requests in one number: either changing
		 * rewrites the endpoint. */
		int ch = k ? changed(p, key, k, e->samples ^ (e->requests << 40)) : 1;
		if (ch > 0 && !begun++)
			rc = col_pg_exec(p->conn, "BEGIN");
		rc = rc < 0 ? rc : ch < 0 ? ch : ch ? upsert_profile(s, e, now) : 0;
	}
	if (rc == 0 && begun)
		rc = col_pg_exec(p->conn, "COMMIT");
	col_prof_rows_free(&rows);
	if (rc < 0) {
		col_pg_rollback(p->conn);
		forget_totals(p);
		if (rc == -EIO) {
			after_failure(s);
			col_store_error(s, "writing profiles");
		}
		return rc;
	}
	p->prof_cleared = 1;
	return 0;
}

/* The writes of every second (kind COL_SK_TICK): a fault of theirs ends
 * once all three went through, not at the next commit of rows or
 * minutes (all-time totals failing every second while rows committed
 * flipped the fault off and on, two log lines a second). */
static void pg_tick(struct col_store *s)
{
	int ok = ensure_conn(s) == 0 && write_totals(s) == 0;
	ok = ensure_conn(s) == 0 && write_profiles(s) == 0 && ok;
	if (s->tseries != NULL)
		ok = ensure_conn(s) == 0 && write_buckets(s) == 0 && ok;
	if (ok)
		col_store_ok(s);
}

static int pg_write_minutes(struct col_store *s, const struct col_minute_batch *b)
{
	struct pg *p = PG(s);
	uint64_t n = 0, ns = 0;
	const struct col_shape **added = NULL;
	size_t nadded = 0, cap = 0;
	if (ensure_conn(s) < 0)
		return -EIO;
	int rc = col_pg_exec(p->conn, "BEGIN");
	for (const struct col_minute *m = b->minutes; m && rc == 0; m = m->next) {
		size_t it = 0;
		const struct col_ep *e;
		while (rc == 0 && (e = col_epset_next(m->eps, &it)) != NULL) {
			rc = upsert_minute(s, m->minute, e);
			n++;
		}
		it = 0;
		const struct col_shape *sh;
		while (rc == 0 && (sh = col_shapeset_next(m->shapes, &it)) != NULL) {
			int add = 0;
			rc = upsert_shape_minute(s, m->minute, sh, &add);
			ns++;
			if (rc < 0 || !add)
				continue;
			if (nadded == cap) {
				size_t nc = cap ? cap * 2 : 64;
				const struct col_shape **nv = realloc(added, nc * sizeof *nv);
				if (nv == NULL) {
					rc = -ENOMEM;
					break;
				}
				added = nv;
				cap = nc;
			}
			added[nadded++] = sh;
		}
	}
	/* Last, so that the rows of shared texts are held only while this
	 * host's own rows and the COMMIT remain. */
	if (rc == 0 && nadded > 0)
		rc = touch_shapes(s, added, nadded);
	free(added);
	if (rc == 0) {
		struct col_pg_params pp = { 0 };
		col_pg_p_text(&pp, s->host);
		col_pg_p_i64(&pp, (int64_t)b->id);
		PGresult *r = col_pg_run(p->conn, "INSERT INTO minute_flush (host, last_batch)"
		                         " VALUES ($1, $2) ON CONFLICT (host) DO UPDATE"
		                         " SET last_batch = excluded.last_batch", &pp);
		rc = r ? 0 : -EIO;
		PQclear(r);
	}
	if (rc == 0)
		rc = col_pg_exec(p->conn, "COMMIT");
	if (rc < 0) {
		col_pg_rollback(p->conn);
		after_failure(s);
		col_store_error(s, "writing endpoint minutes");
		return -EIO;
	}
	col_store_ok(s);
	CNT_ADD(s, c_minutes, n);
	CNT_ADD(s, c_shape_minutes, ns);
	return 0;
}

/* ---- findings ---- */

static void p_id_or_null(struct col_pg_params *pp, int64_t id)
{
	if (id > 0)
		col_pg_p_i64(pp, id);
	else
		col_pg_p_text(pp, NULL);
}

static int pg_write_findings(struct col_store *s, const struct col_error_rows *e,
                             const struct col_n1_rows *pt)
{
	struct pg *p = PG(s);
	if (ensure_conn(s) < 0)
		return -EIO;
	int rc = col_pg_exec(p->conn, "BEGIN");
	for (size_t i = 0; i < e->n && rc == 0; i++) {
		const struct col_error_row *r = &e->v[i];
		struct col_pg_params pp = { 0 };
		col_pg_p_text(&pp, s->host);
		col_pg_p_text(&pp, r->service);
		col_pg_p_text(&pp, r->method ? r->method : "");
		col_pg_p_text(&pp, r->route ? r->route : "");
		col_pg_p_text(&pp, r->type);
		col_pg_p_text(&pp, r->message);
		col_pg_p_i64(&pp, col_store_clamp_i64(r->count));
		col_pg_p_i64(&pp, r->first_ns);
		col_pg_p_i64(&pp, r->last_ns);
		p_id_or_null(&pp, r->example_id);
		rc = run_ok(p->conn,
			"INSERT INTO error_groups (host, service, method, route, type, message, count,"
			" first_seen_ns, last_seen_ns, example_request_id)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
			" ON CONFLICT (host, service, method, route, type) DO UPDATE SET"
			" message = $6, count = $7, first_seen_ns = $8, last_seen_ns = $9,"
			" example_request_id = $10", &pp);
	}
	for (size_t i = 0; i < pt->n && rc == 0; i++) {
		const struct col_n1_row *r = &pt->v[i];
		struct col_pg_params pp = { 0 };
		col_pg_p_text(&pp, s->host);
		col_pg_p_text(&pp, r->service);
		col_pg_p_text(&pp, r->method);
		col_pg_p_text(&pp, r->route);
		col_pg_p_i64(&pp, col_store_fp_to_db(r->fp));
		col_pg_p_text(&pp, r->sql);
		col_pg_p_i64(&pp, col_store_clamp_i64(r->occurrences));
		col_pg_p_i64(&pp, r->max_repeats);
		col_pg_p_i64(&pp, r->first_ns);
		col_pg_p_i64(&pp, r->last_ns);
		p_id_or_null(&pp, r->example_id);
		rc = run_ok(p->conn,
			"INSERT INTO n_plus_one_patterns (host, service, method, route, fingerprint,"
			" sql, occurrences, max_repeats, first_seen_ns, last_seen_ns, example_request_id)"
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
			" ON CONFLICT (host, service, method, route, fingerprint) DO UPDATE SET"
			" sql = $6, occurrences = $7, max_repeats = $8, first_seen_ns = $9,"
			" last_seen_ns = $10, example_request_id = $11", &pp);
	}
	if (rc == 0)
		rc = col_pg_exec(p->conn, "COMMIT");
	if (rc < 0) {
		col_pg_rollback(p->conn);
		after_failure(s);
		col_store_error(s, "writing error groups and N+1 patterns");
		return -EIO;
	}
	col_store_ok(s);
	CNT_ADD(s, c_findings, e->n + pt->n);
	return 0;
}

/* ---- retention ---- */

/* Deletes the texts no host needs: unseen (last_seen_ns) since cutoff_ns
 * and named by no host's all-time totals. 0 or -EIO.
 *
 * No minute row can name them: whenever a collector adds a minute row of
 * a text, it leaves the text's last_seen_ns at its clock minus
 * SHAPE_REFRESH_NS or later (touch_shapes()), and a minute starts before
 * the clock that writes it; so the minutes of a text unseen since
 * cutoff_ns - SHAPE_REFRESH_NS - 2 min started before cutoff_ns - 2 min,
 * and this pass has just deleted those. (Looking for them instead reads
 * all of query_minutes, whose key begins with the minute: 2.7 s for 2
 * million rows on the development machine, or 0.6-0.8 s per text looked
 * up one at a time.) The candidates are locked where they are chosen (FOR
 * UPDATE): a DELETE re-checks only its own table's row, so a plain
 * subquery would still pass a row that touch_shapes() updated meanwhile.
 * A row held by a transaction (touch_shapes() writing minutes that name
 * it, or another collector's pass) is skipped, never waited for: no
 * deadlock, and the next pass sees it. The totals are read
 * in one hash (not a nested loop: their key begins with the host), and
 * only when some text is old enough. */
static int prune_shapes(struct col_store *s, int64_t cutoff_ns)
{
	PGconn *c = PG(s)->conn;
	struct col_pg_params pp = { 0 };
	col_pg_p_i64(&pp, cutoff_ns - SHAPE_REFRESH_NS - 2 * COL_MINUTE_S * COL_NS_PER_S);
	col_pg_p_i64(&pp, SHAPE_PRUNE_BATCH);
	for (int round = 0; round < 100; round++) {
		if (col_pg_exec(c, "BEGIN; SET LOCAL enable_nestloop = off") < 0)
			goto fail;
		PGresult *r = col_pg_run(c,
			"DELETE FROM query_shapes WHERE (service, db, fingerprint) IN"
			" (SELECT t.service, t.db, t.fingerprint FROM query_shapes t"
			" WHERE t.last_seen_ns < $1 AND NOT EXISTS (SELECT FROM query_totals q"
			" WHERE q.service = t.service AND q.db = t.db AND q.fingerprint = t.fingerprint)"
			" LIMIT $2 FOR UPDATE OF t SKIP LOCKED)", &pp);
		if (r == NULL)
			goto fail;
		long n = strtol(PQcmdTuples(r), NULL, 10);
		PQclear(r);
		if (col_pg_exec(c, "COMMIT") < 0)
			goto fail;
		if (n > 0)
			col_log(COL_LOG_DEBUG, "storage: retention deleted %ld statement texts", n);
		if (n < SHAPE_PRUNE_BATCH)
			break;
	}
	return 0;
fail:
	col_pg_rollback(c);
	return -EIO;
}

/* Drops the partitions whose whole day ended before the cutoff (so rows
 * live between retention_days and retention_days + 1), deletes expired
 * minutes of every host, the texts no host needs any more and this host's
 * stale findings. Never more. */
static int pg_expire_step(struct col_store *s)
{
	struct pg *p = PG(s);
	if (ensure_conn(s) < 0)
		return 0;
	int64_t now = col_clock_real_ns();
	int64_t keep_ns = (int64_t)s->retention_days * DAY_NS;
	int64_t cutoff_ns = now - keep_ns;
	int64_t cutoff_min = cutoff_ns / COL_NS_PER_S - COL_MINUTE_S;
	int64_t today = day_of(now);
	/* Ahead: tomorrow's partitions exist before its first row. */
	ensure_day(s, today + 1);
	PGresult *r = col_pg_run(p->conn,
		"SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
		" JOIN pg_class pa ON pa.oid = i.inhparent"
		" WHERE pa.relname IN ('requests', 'queries', 'request_n_plus_one')"
		" ORDER BY c.relname", NULL);
	if (r == NULL)
		goto fail;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *name = PQgetvalue(r, i, 0);
		const char *suf = strrchr(name, '_');
		int y, mo, d;
		if (suf == NULL || sscanf(suf, "_p%4d%2d%2d", &y, &mo, &d) != 3)
			continue;
		struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d };
		int64_t day = (int64_t)timegm(&tm) / 86400;
		if (day >= day_of(cutoff_ns)) /* not over at the cutoff */
			continue;
		/* Counted and dropped under one lock: the fleet's other
		 * collectors expire the same partitions, and the one whose lock
		 * waited finds it gone (its LOCK fails), so each expired row is
		 * counted once in the fleet. */
		char sql[256];
		if (col_pg_exec(p->conn, "BEGIN") < 0) {
			PQclear(r);
			goto fail;
		}
		snprintf(sql, sizeof sql, "LOCK TABLE \"%s\" IN ACCESS EXCLUSIVE MODE", name);
		if (col_pg_exec(p->conn, sql) < 0) {
			col_pg_exec(p->conn, "ROLLBACK"); /* dropped by another collector */
			continue;
		}
		uint64_t rows = 0;
		if (strncmp(name, "requests_", 9) == 0) {
			snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", name);
			PGresult *cr = col_pg_run(p->conn, sql, NULL);
			if (cr != NULL)
				rows = (uint64_t)col_pg_i64(cr, 0, 0);
			PQclear(cr);
		}
		snprintf(sql, sizeof sql, "DROP TABLE \"%s\"", name);
		if (col_pg_exec(p->conn, sql) < 0 || col_pg_exec(p->conn, "COMMIT") < 0) {
			col_pg_rollback(p->conn);
			PQclear(r);
			goto fail;
		}
		CNT_ADD(s, c_expired, rows);
		col_log(COL_LOG_INFO, "storage: retention dropped partition %s", name);
	}
	PQclear(r);
	struct col_pg_params pp = { 0 };
	col_pg_p_i64(&pp, cutoff_min);
	if (run_ok(p->conn, "DELETE FROM endpoint_minutes WHERE minute < $1", &pp) < 0)
		goto fail;
	if (run_ok(p->conn, "DELETE FROM query_minutes WHERE minute < $1", &pp) < 0)
		goto fail;
	/* Totals of hosts silent for the whole retention (gone from the fleet). */
	struct col_pg_params tp = { 0 };
	col_pg_p_i64(&tp, cutoff_ns);
	if (run_ok(p->conn, "DELETE FROM endpoint_totals WHERE updated_ns < $1", &tp) < 0 ||
	    run_ok(p->conn, "DELETE FROM query_totals WHERE updated_ns < $1", &tp) < 0)
		goto fail;
	/* The buckets of every host past what the endpoint serves. */
	struct col_pg_params bp = { 0 };
	col_pg_p_i64(&bp, now - TS_KEEP_NS);
	if (run_ok(p->conn, "DELETE FROM ts_buckets WHERE bucket_ns < $1", &bp) < 0)
		goto fail;
	/* Profiles of hosts silent for the whole retention. */
	if (run_ok(p->conn, "DELETE FROM profile_stacks WHERE updated_ns < $1", &tp) < 0 ||
	    run_ok(p->conn, "DELETE FROM profile_endpoints WHERE updated_ns < $1", &tp) < 0)
		goto fail;
	/* After the minutes and the totals: what named the texts. */
	if (prune_shapes(s, cutoff_ns) < 0)
		goto fail;
	col_findings_expire(col_agg_findings(s->agg), cutoff_ns);
	struct col_pg_params hp = { 0 };
	col_pg_p_i64(&hp, cutoff_ns);
	col_pg_p_text(&hp, s->host);
	r = col_pg_run(p->conn, "DELETE FROM error_groups WHERE host = $2 AND last_seen_ns < $1",
	               &hp);
	if (r == NULL)
		goto fail;
	PQclear(r);
	if (run_ok(p->conn, "DELETE FROM n_plus_one_patterns WHERE host = $2"
	               " AND last_seen_ns < $1", &hp) < 0)
		goto fail;
	return 0;
fail:
	after_failure(s);
	col_store_error(s, "deleting expired rows");
	return 0;
}

/* ---- loading this host's statistics (startup) ---- */

/* Row loaders: one stored row into the aggregate; < 0 when out of memory. */
static int load_ep(struct col_agg *agg, const PGresult *r, int i)
{
	struct col_stats st = { 0 };
	col_pg_read_stats(r, i, 3, &st);
	int rc = col_agg_load(agg, col_pg_str(r, i, 0), col_pg_str(r, i, 1),
	                      col_pg_str(r, i, 2), &st);
	col_stats_release(&st);
	return rc;
}

static int load_shape(struct col_agg *agg, const PGresult *r, int i)
{
	struct col_shape_stats st = { 0 };
	col_pg_read_shape_stats(r, i, 3, &st);
	int dbv = col_sql_db_lookup(col_pg_str(r, i, 1));
	int rc = col_agg_load_shape(agg, col_pg_str(r, i, 0), (uint8_t)(dbv < 0 ? 0 : dbv),
	                            col_store_fp_from_db(col_pg_i64(r, i, 2)),
	                            col_pg_str(r, i, 10), &st);
	col_shape_stats_release(&st);
	return rc;
}

static int load_error(struct col_agg *agg, const PGresult *r, int i)
{
	struct col_error_row e;
	col_pg_error_row(r, i, &e);
	return col_findings_load_error(col_agg_findings(agg), &e) == -ENOMEM ? -ENOMEM : 0;
}

static int load_n1(struct col_agg *agg, const PGresult *r, int i)
{
	struct col_n1_row n;
	col_pg_n1_row(r, i, &n);
	return col_findings_load_n1(col_agg_findings(agg), &n) == -ENOMEM ? -ENOMEM : 0;
}

/* This host's stored minutes and findings, as the SQLite backend loads
 * them (col_store_load). */
static int pg_load(struct col_store *s, struct col_agg *agg, char *err, size_t errlen)
{
	static const struct {
		const char *sql;
		int (*load)(struct col_agg *agg, const PGresult *r, int i);
	} parts[] = {
		{ "SELECT service, method, route, count, error_count, slow_count, sum_ms, min_ms,"
		  " max_ms, sql_count, sql_time_ms, n_plus_one_count, sketch FROM endpoint_minutes"
		  " WHERE host = $1", load_ep },
		{ "SELECT m.service, m.db, m.fingerprint, m.calls, m.total_ms, m.max_ms, m.rows,"
		  " m.errors, m.slow_count, m.sketch, coalesce(t.sql, '') FROM query_minutes m"
		  " LEFT JOIN query_shapes t ON t.service = m.service AND t.db = m.db"
		  " AND t.fingerprint = m.fingerprint WHERE m.host = $1", load_shape },
		{ "SELECT " COL_PG_ERROR_COLUMNS " FROM error_groups WHERE host = $1", load_error },
		{ "SELECT " COL_PG_N1_COLUMNS " FROM n_plus_one_patterns WHERE host = $1", load_n1 },
	};
	PGconn *c = PG(s)->conn;
	char why[512];
	struct col_pg_params pp = { 0 };
	col_pg_p_text(&pp, s->host);
	for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
		PGresult *r = col_pg_run(c, parts[k].sql, &pp);
		if (r == NULL) {
			snprintf(err, errlen, "db %s: loading stored statistics: %s", s->shown,
			         col_pg_error(c, why, sizeof why));
			return -EIO;
		}
		for (int i = 0; i < PQntuples(r); i++) {
			if (parts[k].load(agg, r, i) < 0) {
				PQclear(r);
				snprintf(err, errlen, "loading stored statistics: out of memory");
				return -ENOMEM;
			}
		}
		PQclear(r);
	}
	return 0;
}

const struct col_store_be col_store_pg_be = {
	.name = "postgresql",
	.open = pg_open,
	.load = pg_load,
	.write_rows = pg_write_rows,
	.write_minutes = pg_write_minutes,
	.write_findings = pg_write_findings,
	.expire_step = pg_expire_step,
	.tick = pg_tick,
	.errmsg = pg_errmsg,
	.close = pg_close,
	.minute_grace_s = -COL_MINUTE_S,
};

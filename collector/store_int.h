/*
 * store_int.h - inside the store: the writer's state shared by the generic
 * part (store.c: the queue, the thread, admission, retries) and its two
 * storage backends, SQLite (store.c, the embedded default) and PostgreSQL
 * (store_pg.c, for a fleet of collectors on one database). Not for other
 * modules: they use store.h.
 *
 * A backend is a small vtable. Every function but open and close runs on
 * the store thread only (open and load run before it starts, close after
 * it stopped), so a backend needs no locking of its own.
 */
#ifndef COL_STORE_INT_H
#define COL_STORE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "findings.h"
#include "store.h"

struct col_minute_batch;
struct sqlite3;
struct sqlite3_stmt;

#define COL_STORE_SQLITE_STMTS 32   /* prepared statements of the SQLite backend */

struct col_store_be {
	const char *name;               /* "sqlite", "postgresql" */
	/* Connects, migrates the schema (schema_version) and sets s->next_id
	 * and s->next_batch_id. 0, or a negative errno with err filled. */
	int (*open)(struct col_store *s, char *err, size_t errlen);
	/* This host's stored minutes and findings into agg (startup). */
	int (*load)(struct col_store *s, struct col_agg *agg, char *err, size_t errlen);
	/* Writes rows[0..n) with their statements and N+1 findings in one
	 * transaction. 0 (rows the database refused one by one are counted in
	 * c_rejected), or -EIO with nothing written (the caller retries). */
	int (*write_rows)(struct col_store *s, struct col_row **rows, size_t n);
	/* Upserts a minute batch (merging sketches with stored rows) and marks
	 * it in minute_flush, in one transaction. 0 or -EIO. */
	int (*write_minutes)(struct col_store *s, const struct col_minute_batch *b);
	/* Upserts error groups and N+1 patterns in one transaction. 0 or -EIO. */
	int (*write_findings)(struct col_store *s, const struct col_error_rows *e,
	                      const struct col_n1_rows *p);
	/* Retention within a time budget: 1 when more remains to delete. */
	int (*expire_step)(struct col_store *s);
	/* Called about once a second by the writer after the minutes and
	 * findings, or NULL: PostgreSQL publishes this host's all-time totals
	 * (only those that changed; all of them once a minute); SQLite checks
	 * that its file was not removed or replaced (file_moved). */
	void (*tick)(struct col_store *s);
	/* The last error's text, for the log. */
	const char *(*errmsg)(struct col_store *s);
	/* Releases the connection and everything the backend holds. */
	void (*close)(struct col_store *s);
	/* Minutes are taken this many seconds after they end: SQLite waits for
	 * late events (fewer rewrites); PostgreSQL writes the current minute
	 * every second too (negative: -60), so that the other collectors of a
	 * fleet see this host's statistics within about 2 s. */
	int minute_grace_s;
};

/* PostgreSQL's schema version: SQLite's layout (version 2 and 3) plus,
 * from 4, each host's all-time totals (endpoint_totals, query_totals),
 * from 5 each host's summary windows and regressions, from 6 each host's
 * complete 10-second buckets (ts_buckets, for /api/v1/timeseries), from 7
 * each host's CPU profiles (profile_endpoints, profile_stacks), from 8
 * query_shapes.last_seen_ns (so that retention can delete texts). */
#define COL_PG_SCHEMA_VERSION 8

extern const struct col_store_be col_store_sqlite_be;
extern const struct col_store_be col_store_pg_be;

/* 1 when a --db value names a PostgreSQL database (postgresql:// or
 * postgres://). */
int col_store_is_pg(const char *db);

struct col_store {
	const struct col_store_be *be;
	void *pg;                     /* the PostgreSQL backend's state */
	struct sqlite3 *db;           /* the SQLite backend's */
	struct sqlite3_stmt *st[COL_STORE_SQLITE_STMTS];
	char *path, *host;
	char *shown;                  /* path for messages: a URI's password as *** */
	int retention_days;
	int max_rows_per_s;
	int texts_orphaned;           /* SQLite: query minutes expired since the
	                               * last deletion of unused shape texts */
	struct col_agg *agg;
	/* PostgreSQL publishes its complete buckets (col_store_set_tseries);
	 * NULL: none. ts_published: the last published bucket's start
	 * (INT64_MIN: none yet). Writer thread. */
	struct col_tseries *tseries;
	int64_t ts_published;

	pthread_t thread;
	int running;                  /* thread started and not joined */

	pthread_mutex_t mu;           /* guards the queue and flags below */
	pthread_cond_t wake;          /* rows or stop for the writer */
	pthread_cond_t room;          /* space for a waiting producer */
	struct col_row **q;
	size_t cap, head, n;
	size_t q_stmts, stmt_cap;     /* statements of queued rows */
	size_t q_bytes, byte_cap;     /* their memory (col_row_bytes) */
	size_t held;                  /* rows taken by the writer, not yet written
	                                 (relaxed atomics: read by the status) */
	int stopping;
	int exited;                   /* the writer no longer takes rows */
	/* The database is unreachable (set by the backend, under mu): a full
	 * queue then drops its oldest rows for the newest instead of refusing
	 * new ones, and /api/v1/status says so. */
	int db_down;
	int drop_oldest;              /* always so (PostgreSQL: down or slow) */
	int64_t down_since_ns;        /* wall clock; 0 while up */
	char down_reason[256];

	/* ingest thread only */
	int64_t admit_sec;
	int admit_n;
	int64_t next_id;
	int64_t id_slot;              /* PostgreSQL: this host's id slot, else -1 */

	/* writer thread only */
	uint64_t next_batch_id;
	struct col_minute_batch *batch;
	struct col_error_rows find_err;   /* findings taken, not yet written */
	struct col_n1_rows find_pat;
	int find_held;
	int64_t last_error_log;
	uint64_t errors_unlogged;
	uint64_t fault_errors;        /* failed transactions since the last commit */
	/* What the writer is writing (COL_SK_*), and the kinds whose last
	 * write failed: a fault stands until each of them has committed
	 * again. A failed retention pass (COL_SK_RETENTION) is no fault. */
	unsigned cur_kind, fault_kinds;

	/* the standing fault, for /api/v1/status: written by the writer
	 * thread under mu */
	int faulty;                   /* the last transaction failed */
	int file_moved;               /* SQLite: the file was removed or replaced */
	char last_error[COL_STORE_ERROR_MAX];
	int64_t last_error_at_ns;     /* wall clock; 0: never */

	/* written by their owner thread, read by anyone (relaxed atomics) */
	int64_t busy_since;           /* monotonic start of the writer's work, 0: idle */
	uint64_t c_written, c_dropped, c_sampled, c_rejected, c_expired,
	         c_minutes, c_errors, c_queries, c_shape_minutes, c_findings,
	         c_dropped_oldest;
};

#define CNT_ADD(s, f, v) __atomic_fetch_add(&(s)->f, (v), __ATOMIC_RELAXED)
#define CNT_GET(s, f) __atomic_load_n(&(s)->f, __ATOMIC_RELAXED)

/* The kinds of writes the generic store makes (s->cur_kind). */
#define COL_SK_ROWS 1u
#define COL_SK_MINUTES 2u
#define COL_SK_FINDINGS 4u
#define COL_SK_TICK 8u      /* be->tick (PostgreSQL: totals, profiles, buckets) */
/* be->expire_step. Its failures count as storage errors and set
 * last_error, but raise no fault: store.writing means that what comes in
 * is being stored, which a failed deletion of old rows does not stop (it
 * is retried at the next pass, an hour later). Its commits end no fault. */
#define COL_SK_RETENTION 16u

/* Counts a failed transaction, records it for the status (with
 * be->errmsg) and logs it, at most once a minute; a failed retention pass
 * (COL_SK_RETENTION) is logged each time and leaves the fault state
 * alone. Store thread. */
void col_store_error(struct col_store *s, const char *what);

/* A transaction committed: ends a standing fault (logged once), unless a
 * write of another kind still fails: rows refused by a full table while
 * the small minute writes still fit must not flip the fault off and on
 * (a log line each way, every second). Store thread; backends call it
 * after each successful commit. */
void col_store_ok(struct col_store *s);

/* Marks the database unreachable (reason: why) or reachable again; logs
 * each change once. Store thread. */
void col_store_set_down(struct col_store *s, int down, const char *reason);

/* The next request id of a PostgreSQL store (a fleet shares the id space):
 * (milliseconds since 2020) * 4096 + this host's slot, increasing, so ids
 * of different hosts never collide and sort by time across hosts (ahead of
 * the clock only while a host stores more than 1000 rows a second).
 * Ingest thread, as col_store_next_id(). */
int64_t col_store_pg_id(struct col_store *s);

/* Merge helpers shared by the backends. */
int64_t col_store_clamp_i64(uint64_t v);
int64_t col_store_fp_to_db(uint64_t fp);
uint64_t col_store_fp_from_db(int64_t v);

#endif /* COL_STORE_INT_H */

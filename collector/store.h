/*
 * store.h - the SQLite writer: raw request rows and per-minute endpoint
 * statistics, written by one thread in batched transactions.
 *
 * Flow: the ingest thread asks col_store_admit() whether a request's raw
 * row is to be stored (max_stored_requests_per_second; slow, failed and
 * N+1 requests always are) and hands rows over with col_store_push() into
 * a bounded queue; when the queue is full the row is dropped and counted
 * (statistics stay exact: the aggregate counts every request). The store
 * thread commits queued rows every 200 ms (sooner when 1000 are waiting),
 * writes finished minutes of the aggregate 5 s after they end, and deletes
 * rows older than retention_days at start and hourly, in small batches. A
 * storage error is counted, logged at most once a minute, and the batch is
 * retried; ingestion never waits for the disk.
 *
 * Schema (version 1), created when missing:
 *   schema_version(version)
 *   requests(id INTEGER PRIMARY KEY, ts_ns, host, service, pid, tid, method,
 *            path, route, status, duration_ms, bytes_in, bytes_out,
 *            sql_count, sql_time_ms, slow, error, aborted, n_plus_one)
 *   endpoint_minutes(id, minute (Unix s), host, service, method, route,
 *            count, error_count, slow_count, sum_ms, min_ms, max_ms,
 *            sql_count, sql_time_ms, n_plus_one_count, sketch BLOB)
 *            UNIQUE (minute, host, service, method, route)
 *   minute_flush(host PRIMARY KEY, last_batch): the id of the last minute
 *            batch committed, so readers can tell whether the batch they
 *            saw in memory is already in the table (see query.c).
 */
#ifndef COL_STORE_H
#define COL_STORE_H

#include <stddef.h>
#include <stdint.h>

struct col_agg;
struct col_stats;
struct sqlite3_stmt;

/* The schema version this collector creates and understands. */
#define COL_SCHEMA_VERSION 1

/* One raw request row. Strings point into the same allocation. */
struct col_row {
	int64_t ts_ns;          /* wall clock, start of the request */
	uint32_t pid, tid;
	int status;
	double duration_ms;
	uint64_t bytes_in, bytes_out;
	uint32_t sql_count;
	double sql_time_ms;
	uint8_t slow, error, aborted, n_plus_one;
	const char *method;     /* a static name (col_method_name) */
	const char *service;
	const char *path;
	const char *route;
	char data[];
};

/* A zero-filled row holding copies of the three strings; NULL when out of
 * memory. Free with free(). */
struct col_row *col_row_new(const char *service, const char *path, const char *route);

struct col_store_opts {
	const char *path;         /* SQLite file */
	const char *host;         /* host label of everything written */
	int retention_days;       /* >= 1 */
	int max_rows_per_s;       /* >= 0 */
	size_t queue_cap;         /* rows; 0 for the default (65536) */
};

struct col_store;

/* Opens (creating if needed) the database in WAL mode and its schema.
 * Returns NULL with err filled ("db PATH: why") on failure. Nothing runs
 * until col_store_start(). */
struct col_store *col_store_open(const struct col_store_opts *o, char *err, size_t errlen);

/* Loads this host's stored minutes into the aggregate's all-time
 * statistics (startup, before ingest runs). Returns 0, or a negative errno
 * with err filled. Not thread-safe with col_store_start(). */
int col_store_load(struct col_store *s, struct col_agg *agg, char *err, size_t errlen);

/* Starts the writer thread, which takes finished minutes from agg. 0 or a
 * negative errno (err filled). */
int col_store_start(struct col_store *s, struct col_agg *agg, char *err, size_t errlen);

/* Whether the raw row of a request received at now_real_ns is stored:
 * always when `always` (slow, failed, N+1), else while fewer than
 * max_rows_per_s rows were admitted in this wall-clock second. Counts what
 * it refuses. Call from one thread only (the ingest thread). */
int col_store_admit(struct col_store *s, int always, int64_t now_real_ns);

/* Queues a row; the store owns it from here. When the queue is full the
 * row is freed and counted as dropped (-ENOSPC), unless `wait` is set and
 * the writer runs: then it waits for room (used while draining at
 * shutdown, so nothing received is lost). Thread-safe. */
int col_store_push(struct col_store *s, struct col_row *row, int wait);

/* Writes everything queued and every minute still in the aggregate, then
 * stops the thread. Call after ingest has stopped. Idempotent. */
void col_store_stop(struct col_store *s);

/* Stops if needed and closes the database. NULL is a no-op. */
void col_store_free(struct col_store *s);

struct col_store_counters {
	uint64_t rows_written;      /* raw rows committed */
	uint64_t rows_dropped;      /* queue full, or lost at shutdown */
	uint64_t rows_sampled_out;  /* beyond max_stored_requests_per_second */
	uint64_t rows_rejected;     /* refused by SQLite one by one (bad data) */
	uint64_t rows_expired;      /* deleted by retention */
	uint64_t minutes_written;   /* endpoint-minute rows upserted */
	uint64_t storage_errors;    /* failed transactions */
	size_t queue_depth, queue_cap;
};

/* Reads the statistics columns of an endpoint_minutes row starting at
 * column `col`: count, error_count, slow_count, sum_ms, min_ms, max_ms,
 * sql_count, sql_time_ms, n_plus_one_count, sketch; merges the sketch into
 * o->sketch (o zeroed or holding earlier rows' sketch data is fine: the
 * counters are overwritten). Returns 0, or -EINVAL when the sketch blob is
 * damaged (counters still filled), -ENOMEM. Shared with query.c so both
 * sides read minutes the same way. */
int col_store_read_stats(struct sqlite3_stmt *st, int col, struct col_stats *o);

/* A consistent-enough snapshot of the counters (each read atomically). */
void col_store_counters(struct col_store *s, struct col_store_counters *c);

#endif /* COL_STORE_H */

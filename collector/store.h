/*
 * store.h - the database writer: raw request rows with their statements,
 * per-minute endpoint and statement-shape statistics, and the error groups
 * and N+1 patterns, written by one thread in batched transactions.
 *
 * Flow: the ingest thread asks col_store_admit() whether a request's raw
 * row is to be stored (max_stored_requests_per_second; slow, failed, N+1
 * and SQL-error requests always are), numbers it (col_store_next_id) and
 * hands it over with col_store_push() into a queue bounded in rows,
 * statements and bytes (col_row_bytes); when the queue
 * is full the row is dropped and counted (statistics stay exact: the
 * aggregate counts every request). The store thread commits queued rows
 * every 200 ms (sooner when 1000 are waiting), each request with its
 * statements and N+1 findings in the same transaction; writes finished
 * minutes of the aggregate 5 s after they end; writes changed error groups
 * and N+1 patterns every second; and deletes rows older than retention_days
 * at start and hourly, in small batches. A storage error is counted,
 * logged at most once a minute, and the batch is retried; ingestion never
 * waits for the disk. A SQLite file removed or replaced while open is
 * reported once (status writing false, last_error, one storage error and
 * a log line asking for a restart); writing goes on into the open file.
 *
 * Two backends (store_int.h): SQLite, the embedded default, and PostgreSQL
 * when the db is a postgresql:// or postgres:// URI (store_pg.c: a fleet of
 * collectors on one database, each row tagged with its host; partitioned
 * by day; rows held in memory while the database is down).
 *
 * SQLite schema (version 3; versions 1 and 2 are migrated in place; v3
 * adds the index requests_host (host, id)), created when missing:
 *   schema_version(version)
 *   requests(id INTEGER PRIMARY KEY, ts_ns, host, service, pid, tid, method,
 *            path, route, status, duration_ms, bytes_in, bytes_out,
 *            sql_count, sql_time_ms, slow, error, aborted, n_plus_one,
 *            message (v2: the scrubbed start of a 5xx body, or NULL))
 *   queries(request_id, seq (1, 2, ... in execution order), ts_ns,
 *            duration_ms, db, fingerprint (the 64-bit value as a signed
 *            integer), sql, rows (NULL: unknown), error_code, error_message
 *            (NULL unless failed), slow, prepare, truncated)
 *            PRIMARY KEY (request_id, seq), WITHOUT ROWID       (v2)
 *   request_n_plus_one(request_id, fingerprint, count, sql)
 *            PRIMARY KEY (request_id, fingerprint)             (v2)
 *   endpoint_minutes(id, minute (Unix s), host, service, method, route,
 *            count, error_count, slow_count, sum_ms, min_ms, max_ms,
 *            sql_count, sql_time_ms, n_plus_one_count, sketch BLOB)
 *            UNIQUE (minute, host, service, method, route)
 *   query_minutes(minute, host, service, db, fingerprint, calls,
 *            total_ms, max_ms, rows, errors, slow_count, sketch BLOB)
 *            PRIMARY KEY (minute, host, service, db, fingerprint),
 *            WITHOUT ROWID                                     (v2)
 *   query_shapes(service, db, fingerprint, sql): the text each shape was
 *            first stored with                                 (v2)
 *   error_groups(host, service, method, route, type, message, count,
 *            first_seen_ns, last_seen_ns, example_request_id): method and
 *            route '' for service-level groups                 (v2)
 *   n_plus_one_patterns(host, service, method, route, fingerprint, sql,
 *            occurrences, max_repeats, first_seen_ns, last_seen_ns,
 *            example_request_id)                               (v2)
 *   minute_flush(host PRIMARY KEY, last_batch): the id of the last minute
 *            batch committed, so readers can tell whether the batch they
 *            saw in memory is already in the table (see query.c).
 * Retention deletes a request's statements and findings with it.
 */
#ifndef COL_STORE_H
#define COL_STORE_H

#include <stddef.h>
#include <stdint.h>

struct col_agg;
struct col_stats;
struct col_shape_stats;
struct col_stmt;
struct sqlite3;
struct sqlite3_stmt;

/* The size of a storage error message, with its NUL. */
#define COL_STORE_ERROR_MAX 256

/* The schema version this collector creates and understands. */
#define COL_SCHEMA_VERSION 3

/* An N+1 finding of a stored request. */
struct col_row_n1 {
	uint64_t fingerprint;
	uint32_t count;
	char *sql;              /* owned by the row */
};

/* One raw request row. service, path and route point into the same
 * allocation; message, stmts and n1 are owned by the row
 * (col_row_free). */
struct col_row {
	int64_t id;             /* col_store_next_id(); 0: let SQLite choose */
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
	char *message;              /* NULL: none */
	struct col_stmt **stmts;    /* its statements in order; NULL when none */
	uint32_t nstmts;
	size_t bytes;               /* col_row_bytes(), set by col_store_push() */
	struct col_row_n1 *n1;
	uint32_t nn1;
	char data[];
};

/* A zero-filled row holding copies of the three strings; NULL when out of
 * memory. Free with col_row_free(). */
struct col_row *col_row_new(const char *service, const char *path, const char *route);

/* Frees the row and everything it owns. NULL is a no-op. */
void col_row_free(struct col_row *r);

/* The memory r holds, roughly (its strings and statements): what the
 * queue's byte bound counts. A statement may carry 16 KiB of text and a
 * failed one is always kept, so 262,144 queued statements could otherwise
 * hold 4 GiB. */
size_t col_row_bytes(const struct col_row *r);

struct col_store_opts {
	const char *path;         /* SQLite file, or a postgresql:// URI */
	const char *host;         /* host label of everything written */
	int retention_days;       /* >= 1; above AP_CONFIG_MAX_RETENTION_DAYS, that */
	int max_rows_per_s;       /* >= 0 */
	size_t queue_cap;         /* rows; 0 for the default (65536) */
	size_t queue_stmt_cap;    /* statements of queued rows; 0: 262144 */
	size_t queue_byte_cap;    /* memory of queued rows (col_row_bytes); 0: 256 MiB */
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

struct col_tseries;

/* The live 10-second buckets that a PostgreSQL store publishes, complete
 * ones about once a second, for a fleet's /api/v1/timeseries (SQLite:
 * ignored). t must outlive the store. Call before col_store_start(). */
void col_store_set_tseries(struct col_store *s, struct col_tseries *t);

/* Starts the writer thread, which takes finished minutes from agg. 0 or a
 * negative errno (err filled). */
int col_store_start(struct col_store *s, struct col_agg *agg, char *err, size_t errlen);

/* Whether the raw row of a request received at now_real_ns is stored:
 * always when `always` (slow, failed, N+1), else while fewer than
 * max_rows_per_s rows were admitted in this wall-clock second. Counts what
 * it refuses. Call from one thread only (the ingest thread). */
int col_store_admit(struct col_store *s, int always, int64_t now_real_ns);

/* The id for the next admitted row: increasing, from the largest id in
 * the database at open. Ingest thread only. */
int64_t col_store_next_id(struct col_store *s);

/* 1 when col_store_push() of a row with nstmts statements and
 * col_row_bytes() bytes would not be refused for lack of room now
 * (always, when it would drop older rows). The ingest thread is the only
 * producer, so room seen here stays there until it pushes. */
int col_store_has_room(struct col_store *s, uint32_t nstmts, size_t bytes);

/* Queues a row; the store owns it from here. When the queue (rows, or
 * statements of queued rows) is full the row is freed and counted as
 * dropped (-ENOSPC), unless `wait` is set and the writer runs: then it
 * waits for room (used while draining at shutdown, so nothing received is
 * lost). While the database is down, and with PostgreSQL whenever `wait`
 * is not set, a full queue drops its oldest rows instead (counted in
 * rows_dropped_oldest) and the row is queued. Thread-safe. */
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
	uint64_t queries_written;   /* statement rows committed */
	uint64_t minutes_written;   /* endpoint-minute rows upserted */
	uint64_t shape_minutes_written; /* query-minute rows upserted */
	uint64_t findings_written;  /* error group and N+1 pattern rows upserted */
	uint64_t storage_errors;    /* failed transactions */
	size_t queue_depth, queue_cap;
	size_t queue_stmts;         /* statements of queued rows */
	const char *backend;        /* "sqlite" or "postgresql" (static) */
	int database_down;          /* unreachable since down_since_ns (wall) */
	int64_t down_since_ns;
	char down_reason[256];
	size_t rows_held;           /* queued plus taken, not yet written */
	uint64_t rows_dropped_oldest; /* dropped for newer rows (database down or slow) */
	double write_busy_ms;       /* how long the writer has been in its current
	                               round of database calls; 0: idle */
	int writing;                /* 0 while a storage fault stands: the last
	                               transaction failed, none committed since */
	char last_error[COL_STORE_ERROR_MAX]; /* "what: the database's message" of the
	                               latest failure (kept after recovery); "" */
	int64_t last_error_at_ns;   /* its wall-clock time; 0: never failed */
};

/* Reads the statistics columns of an endpoint_minutes row starting at
 * column `col`: count, error_count, slow_count, sum_ms, min_ms, max_ms,
 * sql_count, sql_time_ms, n_plus_one_count, sketch; merges the sketch into
 * o->sketch (o zeroed or holding earlier rows' sketch data is fine: the
 * counters are overwritten). Returns 0, or -EINVAL when the sketch blob is
 * damaged (counters still filled), -ENOMEM. Shared with query.c so both
 * sides read minutes the same way. */
int col_store_read_stats(struct sqlite3_stmt *st, int col, struct col_stats *o);

/* Reads query_minutes statistics starting at column `col`: calls,
 * total_ms, max_ms, rows, errors, slow_count, sketch; as
 * col_store_read_stats(). */
int col_store_read_shape_stats(struct sqlite3_stmt *st, int col, struct col_shape_stats *o);

/* The stored texts of statement shapes, for readers that merge
 * query_minutes rows: one read of query_shapes (only `service`'s unless
 * NULL) into memory is much cheaper than a join per minute row. */
struct col_shape_texts;

/* Reads the texts through db (any connection). 0, -EIO or -ENOMEM; *out
 * is then NULL. */
int col_shape_texts_load(struct sqlite3 *db, const char *service,
                         struct col_shape_texts **out);
/* The text of (service, db, fp), or NULL; valid until _free. */
const char *col_shape_texts_get(const struct col_shape_texts *t, const char *service,
                                uint8_t db, uint64_t fp);
void col_shape_texts_free(struct col_shape_texts *t); /* NULL is a no-op */

/* A consistent-enough snapshot of the counters (each read atomically). */
void col_store_counters(struct col_store *s, struct col_store_counters *c);

#endif /* COL_STORE_H */

/*
 * query.h - read-only access to the database for the HTTP API: raw request
 * listing and lookup (with statements and N+1 findings), and endpoint and
 * statement-shape statistics over a period.
 *
 * With a postgresql:// db every call goes to query_pg.c and answers for
 * every host of the fleet (host filters narrow it).
 *
 * A small pool of read-only SQLite connections, separate from the writer's
 * (WAL lets them read while it writes). Every function is thread-safe:
 * each call borrows a connection for its duration, waiting when all are
 * busy. Callbacks run while the connection is borrowed, so they should
 * only format, not block.
 */
#ifndef COL_QUERY_H
#define COL_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "epset.h"
#include "shapeset.h"

struct col_agg;
struct col_query;

/* Opens nconn (>= 1) read-only connections to the database at path (a
 * SQLite file, or a postgresql:// URI), which
 * must exist with its schema (col_store_open first). host is this
 * collector's host label. NULL with err filled on failure. */
struct col_query *col_query_open(const char *path, const char *host, unsigned nconn,
                                 char *err, size_t errlen);
/* Closes every connection. No call may be in progress. NULL is a no-op. */
void col_query_free(struct col_query *q);

/* Filters of GET /api/v1/requests; NULL / -1 / 0 mean "not filtered" as
 * noted. Strings are compared exactly, except q (a literal substring of
 * the path, case-sensitive). */
struct col_req_filter {
	const char *service, *host, *route, *method, *q;   /* NULL: any */
	int status_lo, status_hi;   /* inclusive range; status_lo < 0: any */
	int slow, error, n_plus_one; /* -1 any, 0, 1 */
	int64_t before;             /* only ids below this; 0: any */
	int64_t since_ns;           /* ts >= since_ns; INT64_MIN: any */
	int64_t until_ns;           /* ts < until_ns; INT64_MAX: any */
	int limit;                  /* rows wanted, >= 1 */
};

/* Sets every filter to "any" and limit to 100. */
void col_req_filter_init(struct col_req_filter *f);

/* One stored request; strings are valid during the callback only. */
struct col_req_view {
	int64_t id, ts_ns;
	const char *host, *service, *method, *path, *route;
	int64_t pid, tid;
	int status;
	double duration_ms;
	int64_t bytes_in, bytes_out, sql_count;
	double sql_time_ms;
	int slow, error, aborted, n_plus_one;
	const char *message;    /* "" when none */
};

/* Called per row; a non-zero return stops the listing and is returned. */
typedef int (*col_req_cb)(void *arg, const struct col_req_view *r);

/* Lists matching requests newest first (by id), at most f->limit, calling
 * cb for each. *more is set when further rows match (the next page starts
 * before the last id delivered). Returns the number of rows delivered, a
 * callback's non-zero return, or -EIO (logged). */
int col_query_requests(struct col_query *q, const struct col_req_filter *f,
                       col_req_cb cb, void *arg, int *more);

/* Looks one request up by id: 1 (cb called), 0 (no such request), or a
 * negative errno / the callback's return. */
int col_query_request(struct col_query *q, int64_t id, col_req_cb cb, void *arg);

/* One stored statement of a request; strings valid during the callback. */
struct col_stmt_view {
	int seq;
	int64_t ts_ns;
	double duration_ms;
	const char *db;         /* "postgresql", "mysql", "sqlite", ... */
	uint64_t fingerprint;
	const char *sql;
	int64_t rows;           /* -1: unknown */
	const char *error_code; /* NULL unless the statement failed */
	const char *error_message;
	int slow, prepare, truncated;
};

/* One stored N+1 finding of a request. */
struct col_n1_view {
	uint64_t fingerprint;
	int64_t count;
	const char *sql;
};

/* The detail of one request: its row, then its statements in order, then
 * its N+1 findings (most repeated first), read in one transaction. Any
 * callback returning non-zero stops and its value is returned. */
struct col_detail_cbs {
	col_req_cb request;
	int (*stmt)(void *arg, const struct col_stmt_view *s);
	int (*n1)(void *arg, const struct col_n1_view *n);
	void *arg;
};

/* 1 (found: callbacks called), 0 (no such request), or a negative errno /
 * a callback's return. */
int col_query_request_detail(struct col_query *q, int64_t id, const struct col_detail_cbs *cbs);

/* Endpoint statistics over the minutes [from_s, to_s) (Unix seconds,
 * multiples of 60): stored minutes merged with those still in agg's
 * memory, each counted exactly once even while the store is writing them.
 * service / host narrow the rows (NULL: all). Rows come sorted by count.
 * Returns 0, -ENOMEM or -EIO. Free out with col_ep_rows_free(). */
int col_query_endpoints(struct col_query *q, struct col_agg *agg, int64_t from_s,
                        int64_t to_s, const char *service, const char *host,
                        struct col_ep_rows *out);

/* Statement-shape statistics over [from_s, to_s), as
 * col_query_endpoints(); rows sorted by total time. Free out with
 * col_shape_rows_free(). */
int col_query_shapes(struct col_query *q, struct col_agg *agg, int64_t from_s,
                     int64_t to_s, const char *service, const char *host,
                     struct col_shape_rows *out);

/* All-time endpoint / statement-shape statistics of a fleet (only
 * service's, host's unless NULL): this host's from agg's memory, the
 * others' from the totals their collectors publish. PostgreSQL only
 * (-ENOTSUP otherwise: one host's all-time is agg's). 0, -ENOMEM, -EIO. */
int col_query_endpoints_all(struct col_query *q, struct col_agg *agg, const char *service,
                            const char *host, struct col_ep_rows *out);
int col_query_shapes_all(struct col_query *q, struct col_agg *agg, const char *service,
                         const char *host, struct col_shape_rows *out);

/* 1 when the database is a fleet's PostgreSQL: its error groups and N+1
 * patterns of every host are then read from the database
 * (col_query_errors / _patterns) rather than from this collector's memory. */
int col_query_fleet(const struct col_query *q);

struct col_find_filter;
struct col_error_rows;
struct col_n1_rows;

/* Error groups / N+1 patterns of every host of a fleet (host narrows),
 * merged per group as query_pg.h says. -ENOTSUP on SQLite (one host: the
 * findings in memory are the answer), else 0, -ENOMEM or -EIO. */
int col_query_errors(struct col_query *q, const struct col_find_filter *f, const char *host,
                     struct col_error_rows *out);
int col_query_patterns(struct col_query *q, const struct col_find_filter *f, const char *host,
                       struct col_n1_rows *out);

/* Summary windows / regressions of every host of a fleet (f->host
 * narrows), as query_pg.h says; -ENOTSUP on SQLite (windows.c's own file
 * is the answer), else the number of rows, -EIO, or cb's non-zero. */
struct col_win_filter;
struct col_summary_view;
struct col_regression_view;
int col_query_win_summaries(struct col_query *q, const struct col_win_filter *f,
                            int (*cb)(void *, const struct col_summary_view *), void *arg);
int col_query_win_regressions(struct col_query *q, const struct col_win_filter *f,
                              int (*cb)(void *, const struct col_regression_view *), void *arg);

/* A fleet's 10-second buckets, as col_qpg_timeseries() says. -ENOTSUP on
 * SQLite (one host: its memory is the answer). */
struct col_ts_bucket;
int col_query_timeseries(struct col_query *q, const char *service, const char *host,
                         int64_t first_ns, int64_t last_ns, struct col_ts_bucket **out,
                         size_t *n);

/* A fleet's CPU profiles, as col_qpg_profile() says. -ENOTSUP on SQLite
 * (one host: its memory is the answer). */
struct col_prof_rows;
int col_query_profile(struct col_query *q, const char *service, const char *method,
                      const char *route, const char *host, struct col_prof_rows *out);

#endif /* COL_QUERY_H */

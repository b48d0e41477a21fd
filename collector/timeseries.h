/*
 * timeseries.h - live rates in 10-second buckets (GET /api/v1/timeseries),
 * as django-redis-monitor keeps them: requests and SQL statements per
 * second and their average times, for the last hour and more.
 *
 * Events count in the bucket of their own start time (wall clock, aligned
 * to the epoch: 10:00:00, 10:00:10, ...). A bucket is complete, and only
 * then listed, once COL_TS_SETTLE_NS have passed after its end: events
 * reach the collector within 1 s of their response, so a listed bucket
 * does not change any more (except for a request that ran longer than
 * that, which still counts where it started). The ring holds
 * COL_TS_BUCKETS buckets; older events, and events more than one bucket
 * in the future, are counted as out of range and dropped here only.
 *
 * Thread-safe: one short mutex section per event or read.
 */
#ifndef COL_TIMESERIES_H
#define COL_TIMESERIES_H

#include <stddef.h>
#include <stdint.h>

#define COL_TS_BUCKET_S 10
#define COL_TS_BUCKET_NS (COL_TS_BUCKET_S * 1000000000LL)
#define COL_TS_BUCKETS 372          /* an hour (360) and some slack */
#define COL_TS_SETTLE_NS 1000000000LL

struct col_tseries;

/* A new empty series; buckets that started before start_real_ns (the
 * collector's start, wall clock) are incomplete and never listed. NULL when
 * out of memory. */
struct col_tseries *col_tseries_new(int64_t start_real_ns);
void col_tseries_free(struct col_tseries *t); /* NULL is a no-op */

#define COL_TS_MAX_SERVICES 64      /* services with rates of their own */

/* One request (or statement) of service (NULL: counted in the totals only)
 * that started at ts_ns and took duration_ms. Every event counts in the
 * series of all services; the first COL_TS_MAX_SERVICES services also get
 * a series of their own. */
void col_tseries_request(struct col_tseries *t, const char *service, int64_t ts_ns,
                         double duration_ms);
void col_tseries_sql(struct col_tseries *t, const char *service, int64_t ts_ns,
                     double duration_ms);

struct col_ts_point {
	int64_t t_ns;            /* the bucket's start */
	double requests_per_s, sql_per_s;
	double avg_request_ms, avg_sql_ms;   /* 0 when none */
	uint64_t requests, sql;
};

/* The complete buckets at now_real_ns whose start is in [since_ns,
 * until_ns), oldest first, empty ones included (rates 0), at most the
 * ring's span, of service (NULL: all services; a service without a series
 * of its own: -ENOENT). *out is malloc'ed (NULL when *n is 0); the caller
 * frees. 0, -ENOENT or -ENOMEM. */
int col_tseries_points(struct col_tseries *t, const char *service, int64_t now_real_ns,
                       int64_t since_ns, int64_t until_ns, struct col_ts_point **out,
                       size_t *n);

/* ---- a fleet's copy (PostgreSQL) ---- */

/* One complete bucket of one series, as published to a fleet's database:
 * service "" is the series of all services. */
struct col_ts_bucket {
	const char *service;     /* owned by the series: valid until col_tseries_free */
	int64_t t_ns;            /* the bucket's start */
	uint64_t requests, sql;
	double request_ms, sql_ms;
};

/* The non-empty complete buckets at now_real_ns that start after
 * after_ns (INT64_MIN: all the ring holds), of every series, copied out so
 * that the caller's database work holds no lock. *out is malloc'ed (NULL
 * when *n is 0); the caller frees. *last_ns is the last complete bucket's
 * start (what to pass as after_ns next time). 0 or -ENOMEM. */
int col_tseries_complete(struct col_tseries *t, int64_t now_real_ns, int64_t after_ns,
                         struct col_ts_bucket **out, size_t *n, int64_t *last_ns);

/* The bucket numbers (start / COL_TS_BUCKET_NS) listed at now_real_ns for
 * [since_ns, until_ns): complete, within the ring's span; *first > *last
 * when none. Not bounded by a series' start (col_tseries_first). */
void col_tseries_span(int64_t now_real_ns, int64_t since_ns, int64_t until_ns,
                      int64_t *first, int64_t *last);

/* The first complete bucket's number of this collector's series. */
int64_t col_tseries_first(struct col_tseries *t);

/* A point from summed counts and milliseconds (of one or several hosts). */
void col_ts_point_fill(struct col_ts_point *p, int64_t idx, uint64_t requests, uint64_t sql,
                       double request_ms, double sql_ms);

/* Events dropped for being outside the ring. */
uint64_t col_tseries_out_of_range(struct col_tseries *t);

#endif /* COL_TIMESERIES_H */

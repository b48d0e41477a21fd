/*
 * query_pg.h - the API's readers on a PostgreSQL database (query_pg.c), the
 * counterpart of query.c's SQLite functions: same contracts, but the rows
 * of every host of the fleet. query.c dispatches here when the db is a
 * postgresql:// URI; nothing else calls these.
 *
 * A small pool of connections (one per concurrent API call), each borrowed
 * for one call; a call on a broken connection resets it and fails with
 * -EIO (the API answers 500 until the database is back).
 */
#ifndef COL_QUERY_PG_H
#define COL_QUERY_PG_H

#include <stdint.h>

#include "findings.h"
#include "query.h"

struct col_qpg;

/* NULL with err filled when the first connection fails. */
struct col_qpg *col_qpg_open(const char *uri, unsigned nconn, char *err, size_t errlen);
void col_qpg_free(struct col_qpg *q);   /* NULL is a no-op */

int col_qpg_requests(struct col_qpg *q, const struct col_req_filter *f, col_req_cb cb,
                     void *arg, int *more);
int col_qpg_request_detail(struct col_qpg *q, int64_t id, const struct col_detail_cbs *cbs);

/* As query.c's stored_minutes(): merges the endpoint_minutes rows of
 * [from_s, to_s) (every host unless host) into out and reports our_host's
 * last committed minute batch, from one snapshot. 0, -ENOMEM or -EIO. */
int col_qpg_minutes(struct col_qpg *q, const char *our_host, int64_t from_s, int64_t to_s,
                    const char *service, const char *host, struct col_epset *out,
                    uint64_t *last_batch);
int col_qpg_shape_minutes(struct col_qpg *q, const char *our_host, int64_t from_s,
                          int64_t to_s, const char *service, const char *host,
                          struct col_shapeset *out, uint64_t *last_batch);

/* The all-time totals of every host but our_host (or of host alone, which
 * is then not our_host), merged into out: the sketches of each host's
 * memory as its collector last published them (within about 1 s). 0,
 * -ENOMEM or -EIO. */
int col_qpg_totals(struct col_qpg *q, const char *our_host, const char *service,
                   const char *host, struct col_epset *out);
int col_qpg_shape_totals(struct col_qpg *q, const char *our_host, const char *service,
                         const char *host, struct col_shapeset *out);

/* Error groups / N+1 patterns of every host (or host), one row per
 * service, method, route and type (fingerprint): counts summed, first and
 * last seen the extremes, the example the newest host's; sorted as
 * col_findings_errors() / col_findings_patterns(). 0, -ENOMEM or -EIO. */
int col_qpg_errors(struct col_qpg *q, const struct col_find_filter *f, const char *host,
                   struct col_error_rows *out);
int col_qpg_patterns(struct col_qpg *q, const struct col_find_filter *f, const char *host,
                     struct col_n1_rows *out);

/* Summary windows and regressions of every host (f->host narrows), as
 * windows.c publishes them (windows_pg.h); the contracts of
 * col_windows_summaries() / col_windows_regressions(). A summary is one
 * row per window and endpoint over the hosts: counts and times summed,
 * min/max the extremes, averages and rates from the sums, p95 from the
 * hosts' sketches merged; its host the one host that had it, else NULL.
 * Each regression has its host; ids are per host. */
struct col_win_filter;
struct col_summary_view;
struct col_regression_view;
int col_qpg_win_summaries(struct col_qpg *q, const struct col_win_filter *f,
                          int (*cb)(void *, const struct col_summary_view *), void *arg);
int col_qpg_win_regressions(struct col_qpg *q, const struct col_win_filter *f,
                            int (*cb)(void *, const struct col_regression_view *), void *arg);

/* The 10-second buckets of every host (host: of that one) starting in
 * [first_ns, last_ns], of service (NULL: all services), summed per bucket
 * over the hosts, oldest first; buckets no host had are missing. *out
 * is malloc'ed (NULL when *n is 0; its service fields are ""); the caller
 * frees. 0, -ENOMEM or -EIO. */
struct col_ts_bucket;
int col_qpg_timeseries(struct col_qpg *q, const char *service, const char *host,
                       int64_t first_ns, int64_t last_ns, struct col_ts_bucket **out,
                       size_t *n);

/* The CPU profiles of every host (host: of that one) of the endpoints
 * matching the filters (NULL: any), merged per endpoint: samples, profiled
 * requests and each stack's count summed over hosts; as col_prof_select()
 * lays them out (endpoints by samples, most first; stacks by text). 0,
 * -ENOMEM or -EIO (out then empty). */
struct col_prof_rows;
int col_qpg_profile(struct col_qpg *q, const char *service, const char *method,
                    const char *route, const char *host, struct col_prof_rows *out);

#endif /* COL_QUERY_PG_H */

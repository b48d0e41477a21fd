/*
 * metrics.h - the Prometheus metrics of SPEC section 6, served at /metrics
 * in the text exposition format (version 0.0.4).
 *
 * Ingest feeds every request and statement it counts (col_metrics_request,
 * col_metrics_sql); the regression detector and the webhook sender report
 * theirs (col_metrics_regression, col_metrics_webhook). The per-process
 * figures (apiprof_events_dropped_total, apiprof_processes) and the
 * collector's own health are read from the aggregate, ingest and store at
 * scrape time (col_metrics_render). Everything counts from the collector's
 * start: Prometheus handles counter resets, and every process of a
 * service (prefork workers) adds into the same series.
 *
 * Label values are bounded: method is one of col_method_name()'s, route is
 * bounded by max_routes (the aggregate's {other}), status is a three-digit
 * code (the first COL_METRICS_MAX_STATUSES distinct ones of each service;
 * later ones, also in an error's "HTTP <status>" type, are "other"),
 * "aborted" (no status was sent), or "other"; table by
 * COL_METRICS_MAX_TABLES per service, then "{other}"; db error codes by
 * COL_METRICS_MAX_CODES per service and database, then "other".
 *
 * Thread-safety: every function takes the module's mutex for a short time;
 * col_metrics_render copies the series under it and formats outside it,
 * so a scrape never holds up ingest for long.
 */
#ifndef COL_METRICS_H
#define COL_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct ap_config;
struct col_agg;
struct col_ingest;
struct col_store;
struct col_stmt;
struct col_metrics;

#define COL_METRICS_MAX_TABLES 500
#define COL_METRICS_MAX_CODES 100
#define COL_METRICS_MAX_STATUSES 50
#define COL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A new, empty set using cfg's metric_namespace and latency_buckets (read
 * now; cfg need not outlive it). NULL when out of memory. */
struct col_metrics *col_metrics_new(const struct ap_config *cfg);
void col_metrics_free(struct col_metrics *m); /* NULL is a no-op */

/* One finished request: counts apiprof_http_requests_total, the duration
 * and size histograms, apiprof_http_errors_total (type "HTTP <status>" for
 * >= 500, "aborted" when flagged so) and apiprof_n_plus_one_total when
 * n_plus_one. service, method and route are NUL-terminated, route already
 * bounded. status 0 with aborted: nothing was answered. aborted is
 * COL_METRICS_ABORTED, or COL_METRICS_CRASHED for a request its process
 * died serving: counted in the status label "aborted" like the first, but
 * not as an error type here, since its CRASH record counts the signal
 * (col_metrics_error). m NULL: no-op. */
enum { COL_METRICS_ABORTED = 1, COL_METRICS_CRASHED = 2 };
void col_metrics_request(struct col_metrics *m, const char *service, const char *method,
                         const char *route, unsigned status, int aborted,
                         double duration_s, uint64_t bytes_in, uint64_t bytes_out,
                         int n_plus_one);

/* One statement of service: apiprof_db_queries_total by operation (from
 * its normalised text), apiprof_db_query_duration_seconds,
 * apiprof_db_errors_total when it failed, and
 * apiprof_db_table_operations_total for an INSERT, UPDATE or DELETE that
 * executed (not a prepare). m NULL: no-op. */
void col_metrics_sql(struct col_metrics *m, const char *service, const struct col_stmt *s);

/* An error of the process itself (a fatal signal, type "SIGSEGV"...),
 * counted in apiprof_http_errors_total under route (NULL: none). */
void col_metrics_error(struct col_metrics *m, const char *service, const char *route,
                       const char *type);

/* A regression found (type "response_time", "error_rate", "p95",
 * "n_plus_one"), and the outcome of an alert, once per alert ("delivered",
 * or "failed": after its last attempt, or dropped). m NULL: no-op. */
void col_metrics_regression(struct col_metrics *m, const char *service, const char *type);
void col_metrics_webhook(struct col_metrics *m, const char *result);

/* What the scrape reads besides the module's own series; any may be NULL
 * (its metrics then show no series, or 0). */
struct col_metrics_sources {
	struct col_agg *agg;        /* processes: dropped events, live processes */
	struct col_ingest *ingest;  /* events received */
	struct col_store *store;    /* queue depth, storage errors */
	int64_t now_mono_ns;        /* for "connected"; 0: now */
};

/* Formats every metric, HELP and TYPE lines included, into a malloc'ed
 * NUL-terminated string (*out, the caller frees), series sorted by their
 * labels. 0 or -ENOMEM. */
int col_metrics_render(struct col_metrics *m, const struct col_metrics_sources *src,
                       char **out);

/* Appends value escaped as a Prometheus label value (\\, \" and \n) to
 * out (NUL-terminated, cut at outlen - 1 without splitting an escape);
 * returns the length written. For tests and callers formatting labels. */
size_t col_metrics_escape(const char *value, char *out, size_t outlen);

#endif /* COL_METRICS_H */

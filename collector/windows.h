/*
 * windows.h - summary windows (aggregation_window_minutes), their closing,
 * regression detection and the alerts that follow (SPEC sections 4, 5).
 *
 * Windows are wall-clock intervals of window_ns aligned to the epoch (a
 * 60-minute window is 10:00-11:00 UTC, a 3-second one 10:00:03-10:00:06),
 * and every request counts in the window of its own start time, whenever it
 * arrives. Each open window keeps, per (service, method, route), the
 * request statistics (struct col_stats: counters and a duration sketch)
 * and the N+1 fingerprints seen.
 *
 * Closing. A thread closes every window whose end is at least grace_ns in
 * the past, waiting for that absolute deadline (recomputed from the wall
 * clock at each wake-up, so it does not drift). col_windows_aggregate()
 * closes every window whose end is at or before now, with no grace. Closing
 * a window writes one summary row per endpoint to SQLite in one
 * transaction, runs the regression rules (regress.h) against each
 * endpoint's previous summary, stores the regressions in the same
 * transaction, logs each as a warning, counts it, and queues its alert
 * (webhook.h) when webhook_url is set. Closing raises a watermark
 * (closed_until, stored): an event for a window that is already closed is
 * late, counted and left out of the summaries (it still counts everywhere
 * else), so closing is idempotent: running it twice writes nothing twice.
 *
 * A fleet. With pg_uri, every call of col_windows_close() (each second on
 * the thread, and POST /api/v1/aggregate) then copies the summaries and
 * regressions committed to SQLite and not yet in PostgreSQL there
 * (windows_pg.h), where query_pg.c reads every host's. SQLite stays the
 * source of detection and alerts; PostgreSQL being away delays the copy
 * only.
 *
 * Restarts. col_windows_stop() stores the windows still open
 * (window_partials) and the next col_windows_open() takes them back, so a
 * restart in the middle of a window loses nothing received; the previous
 * summary of every endpoint is reloaded for the regression rules, and
 * alerts still pending (detected less than a day before) are sent again,
 * with the attempts they have left (webhook.h). Each alert's outcome is
 * counted once in apiprof_collector_webhook_deliveries_total: by the
 * webhook worker, or as failed when the queue drops it.
 *
 * Tables (created when missing, in the collector's database; the store's
 * schema_version does not cover them, they only ever gain tables):
 *   window_summaries(window_start_ns, window_end_ns, host, service, method,
 *       route, count, sum_ms, avg_ms, p95_ms, min_ms, max_ms, error_count,
 *       error_rate, slow_count, n_plus_one_count, sql_count, sql_time_ms,
 *       n1 (JSON [{"fingerprint","sql"}]), sketch BLOB)
 *       PRIMARY KEY (window_start_ns, host, service, method, route)
 *   regressions(id, type, host, service, method, route, window_start_ns,
 *       window_end_ns, previous_window_start_ns, previous_/current_avg_ms,
 *       previous_/current_p95_ms, previous_/current_error_rate,
 *       previous_/current_count, fingerprint ('' unless n_plus_one), sql,
 *       detected_at_ns, webhook, webhook_attempts, alert (the JSON body))
 *   window_state(host PRIMARY KEY, closed_until_ns)
 *   window_partials(host, window_start_ns, service, method, route, the
 *       statistics columns, n1, sketch)
 *
 * Threads: col_windows_request() is called by the ingest thread; closing
 * by the window thread and API threads; readers by API threads. All
 * functions are thread-safe unless noted.
 */
#ifndef COL_WINDOWS_H
#define COL_WINDOWS_H

#include <stddef.h>
#include <stdint.h>

#include "regress.h"
#include "webhook.h"

struct col_obs;
struct col_windows;

#define COL_WIN_MAX_OPEN 64       /* open windows; events beyond are dropped here */
/* Regression warnings logged a minute: any local process can make them
 * (slow requests alternating with fast ones, on many routes), and each is
 * also stored and served (/api/v1/regressions) and alerted. */
#define COL_WIN_REG_LOG_PER_MIN 60
#define COL_WIN_GRACE_MIN_NS (2 * 1000000000LL)
#define COL_WIN_GRACE_MAX_NS (30 * 1000000000LL)

/* The window length for aggregation_window_minutes (to the millisecond). */
int64_t col_windows_size_ns(double minutes);
/* The default grace: a twentieth of the window, within [2 s, 30 s]. */
int64_t col_windows_grace_ns(int64_t window_ns);
/* The start of the window holding ts_ns (floor, also before 1970). */
int64_t col_windows_start_of(int64_t ts_ns, int64_t window_ns);

struct col_windows_opts {
	const char *db_path;       /* the collector's SQLite database */
	const char *host;          /* host label of every row */
	const char *pg_uri;        /* a fleet's postgresql:// db, or NULL: closed
	                              windows and regressions are copied there
	                              (windows_pg.h) */
	int64_t window_ns;         /* > 0 */
	int64_t grace_ns;          /* < 0: col_windows_grace_ns(window_ns) */
	struct col_reg_rules rules;
	const char *webhook_url;   /* NULL or "": no alerts */
	int64_t webhook_delay_scale_pct; /* 0: the SPEC schedule (tests shorten it) */
	size_t webhook_queue;      /* 0: COL_WEBHOOK_QUEUE alerts (tests lower it) */
	struct col_metrics *metrics; /* NULL: none; regressions and alerts are
	                                counted there (apiprof_regressions_total,
	                                and each alert once by its outcome in
	                                apiprof_collector_webhook_deliveries_total,
	                                a dropped one as failed) */
};

/* Opens two connections to the database (a writer, a reader), creates the
 * tables, loads the watermark, the previous summaries and the open windows
 * stored at the last stop. NULL with err filled on failure. Nothing runs
 * until col_windows_start(). */
struct col_windows *col_windows_open(const struct col_windows_opts *o, char *err, size_t errlen);

/* Starts the closing thread and the webhook worker, and requeues pending
 * alerts. 0 or a negative errno with err filled. */
int col_windows_start(struct col_windows *w, char *err, size_t errlen);

/* Counts one request (ingest thread): its endpoint, start time, figures
 * and N+1 fingerprints (n1[0..nn1), their texts in n1sql, may be NULL). */
void col_windows_request(struct col_windows *w, const char *service, const char *method,
                         const char *route, int64_t ts_ns, const struct col_obs *o,
                         const uint64_t *n1, const char *const *n1sql, size_t nn1);

/* Closes every window ending at or before cutoff_ns and raises the
 * watermark to it. *summaries and *regressions (may be NULL) get the rows
 * written. 0, or -EIO when the database refused (the windows stay open and
 * are retried by the thread). */
int col_windows_close(struct col_windows *w, int64_t cutoff_ns, size_t *summaries,
                      size_t *regressions);

/* POST /api/v1/aggregate: col_windows_close(w, now, ...). */
int col_windows_aggregate(struct col_windows *w, size_t *summaries, size_t *regressions);

/* Stops the thread, stores the open windows, stops the webhook worker.
 * Call after ingest has stopped. Idempotent. */
void col_windows_stop(struct col_windows *w);
/* Stops if needed, closes the database. NULL is a no-op. */
void col_windows_free(struct col_windows *w);

/* ---- readers ---- */

struct col_win_filter {
	const char *service, *host, *method, *route;   /* NULL: any */
	int type;                  /* regressions: enum col_reg_type, -1 any */
	int64_t since_ns, until_ns;/* window_start in [since, until) */
	int limit;                 /* >= 1 */
};

struct col_summary_view {
	int64_t start_ns, end_ns;
	const char *host, *service, *method, *route;
	uint64_t count, error_count, slow_count, n_plus_one_count, sql_count;
	double avg_ms, p95_ms, min_ms, max_ms, error_rate, sql_time_ms;
};

struct col_regression_view {
	int64_t id;
	int type;
	const char *host, *service, *method, *route;
	int64_t window_start_ns, window_end_ns, previous_window_start_ns;
	double previous_avg_ms, current_avg_ms, previous_p95_ms, current_p95_ms;
	double previous_error_rate, current_error_rate;
	uint64_t previous_count, current_count;
	const char *fingerprint;   /* "" unless n_plus_one */
	const char *sql;           /* the N+1 statement, or NULL */
	int64_t detected_ns;
	int webhook;               /* enum col_webhook_status */
	int webhook_attempts;
};

/* Summaries newest window first (then by count), regressions newest first;
 * cb per row (strings valid during the call; non-zero stops and is
 * returned). The number of rows, or -EIO. */
int col_windows_summaries(struct col_windows *w, const struct col_win_filter *f,
                          int (*cb)(void *, const struct col_summary_view *), void *arg);
int col_windows_regressions(struct col_windows *w, const struct col_win_filter *f,
                            int (*cb)(void *, const struct col_regression_view *), void *arg);

struct col_windows_counters {
	int64_t window_ns, grace_ns;
	int64_t closed_until_ns;
	size_t open_windows;
	uint64_t windows_closed, summaries_written, regressions;
	uint64_t late_events;      /* for windows already closed */
	uint64_t dropped_events;   /* too far in the future, or too many windows open */
	uint64_t storage_errors;
	struct col_webhook_counters webhook;
};

void col_windows_counters(struct col_windows *w, struct col_windows_counters *c);

/* Regressions detected since the collector started, per service and type
 * (for apiprof_regressions_total{service,type}). */
struct col_reg_count {
	char *service;             /* owned by the array: free with _free */
	uint64_t n[COL_REG_TYPES];
};
/* *out is malloc'ed (NULL when *n is 0). 0 or -ENOMEM. */
int col_windows_regression_counts(struct col_windows *w, struct col_reg_count **out, size_t *n);
void col_reg_counts_free(struct col_reg_count *v, size_t n);

/* The alert body for a regression (SPEC 5: text, type, service, route,
 * method, previous_avg_ms, current_avg_ms, and the rest of the row), a
 * malloc'ed JSON string, or NULL when out of memory. */
char *col_windows_alert_body(const struct col_regression_view *r);

#endif /* COL_WINDOWS_H */

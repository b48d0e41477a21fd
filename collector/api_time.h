/*
 * api_time.h - the time-based endpoints of the HTTP API (SPEC section 5):
 *
 *   GET  /api/v1/timeseries   complete 10-second buckets (timeseries.h);
 *                             service, host, since, until narrow them
 *   GET  /api/v1/summaries    closed windows, newest first (windows.h);
 *                             service, host, method, route, since, until
 *                             (on window_start), limit (100, at most 1000)
 *   POST /api/v1/aggregate    closes every window ending at or before now
 *   GET  /api/v1/regressions  newest first; service, host, method, route,
 *                             type, since, until (on window_start), limit
 *
 * Called by api.c's dispatcher after authorisation, on libmicrohttpd's
 * threads. Responses are JSON; bad parameters are 400s.
 */
#ifndef COL_API_TIME_H
#define COL_API_TIME_H

#include <jansson.h>
#include <microhttpd.h>

struct col_api_ctx;

/* 1 when sub (the path after "/api/v1/") is one of ours. */
int col_api_time_owns(const char *sub);

/* Answers the request for sub (col_api_time_owns() must be true). */
enum MHD_Result col_api_time(const struct col_api_ctx *ctx, struct MHD_Connection *c,
                             const char *sub, const char *method);

/* The "windows" object of /api/v1/status: window_s, grace_s, closed_until,
 * open_windows, windows_closed, summaries_written, regressions,
 * late_events, dropped_events, storage_errors, timeseries_out_of_range and
 * webhook {delivered, failed, attempts_failed, dropped, queued}. A new
 * reference, or NULL when out of memory. */
json_t *col_api_time_status(const struct col_api_ctx *ctx);

#endif /* COL_API_TIME_H */

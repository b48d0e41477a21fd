/*
 * api.h - the HTTP API (SPEC section 5) on libmicrohttpd, JSON by jansson.
 *
 * Handlers run on libmicrohttpd's pool of COL_API_THREADS threads, each
 * polling its share of up to COL_API_MAX_CONNECTIONS connections (fewer
 * when RLIMIT_NOFILE cannot hold them; closed after
 * COL_API_IDLE_TIMEOUT_S idle), so slow or idle clients cost a descriptor
 * each, not a thread, and cannot starve the others; libmicrohttpd's
 * messages about them (a line per dropped client) are logged at most
 * COL_API_LOG_PER_MIN a minute. They read the
 * aggregate through its copying accessors and the database through the
 * query pool: no handler holds the aggregate's lock while formatting or
 * doing I/O. Every response but
 * /healthz is application/json; a bad parameter is a 400 {"error": ...}.
 *
 * SQL endpoints (choices the SPEC leaves open):
 *  - /api/v1/queries: one row per (service, db, fingerprint). Without
 *    since/until, all time from memory (reloaded from query_minutes at
 *    start); with them, every minute overlapping [since, until), stored
 *    minutes merged with memory, like /endpoints. Prepares count as calls
 *    (a prepare is a statement, SPEC 3). Statements past a service's
 *    5,000th shape count under fingerprint 0000000000000000, sql
 *    "{other}". Sorted by total_ms; all rows unless limit; `db` filters.
 *  - /api/v1/n-plus-one and /api/v1/errors: counts since the data began
 *    (persisted, kept for retention_days after the last occurrence);
 *    since keeps groups whose last occurrence is at or after it, until
 *    those whose first is before it; limit defaults to 100. Patterns come
 *    most frequent first, errors most recent first. A failed statement of
 *    no request (req_id 0, ambiguous, or expired waiting for its request)
 *    is a service-level error: method, route and example_request_id
 *    null. example_request_id is the latest stored request showing it.
 *  - /api/v1/requests/{id}: `queries` in execution order (at most 1,000
 *    per request plus every failed one; sql_count stays exact), each with
 *    seq, ts, duration_ms, db, sql, fingerprint (16 hex digits), rows (null:
 *    unknown), error ({code, message} or null), slow, prepare, truncated;
 *    `n_plus_one` [{fingerprint, sql, count}] as found when the request
 *    arrived; `error` is what the client saw first - {"type": "aborted"},
 *    else "HTTP <status>" for >= 500 with the stored body prefix - else,
 *    for a request whose only failure is SQL, its first failed statement
 *    ("SQLSTATE 42P01", "MySQL 1146", "SQLite 1"); null otherwise. The
 *    list's `error` flag stays the status's (>= 500 or aborted).
 *  - /api/v1/status has `config`: slow_request_threshold_ms,
 *    slow_query_threshold_ms, n_plus_one_threshold and
 *    aggregation_window_minutes, for clients such as the dashboard.
 *  - GET / and the dashboard's files are answered by dashboard.c before
 *    the token is checked (they hold no data; dashboard.h says why).
 *  - Other hosts' findings live with their collectors: host=OTHER gives
 *    empty /errors and /n-plus-one lists (and /queries without a period).
 */
#ifndef COL_API_H
#define COL_API_H

#include <stddef.h>
#include <stdint.h>

struct ap_config;
struct col_agg;
struct col_ingest;
struct col_metrics;
struct col_query;
struct col_store;
struct col_tseries;
struct col_windows;
struct col_api;

#define COL_API_MAX_CONNECTIONS 4096
#define COL_API_THREADS 8
#define COL_API_IDLE_TIMEOUT_S 30
#define COL_API_LOG_PER_MIN 10    /* libmicrohttpd's own messages logged a minute */

/* Headers of every API answer (X-Content-Type-Options: nosniff and this
 * Content-Security-Policy): its text is chosen by the profiled server's
 * clients (paths, SQL, messages, stacks), so a browser opening an answer
 * directly must neither sniff it as HTML nor run anything in it. */
#define COL_API_CSP "default-src 'none'; frame-ancestors 'none'; sandbox"

/* What the handlers read. Everything must outlive the API (col_api_stop). */
struct col_api_ctx {
	const struct ap_config *cfg;   /* auth_token, host_name */
	struct col_agg *agg;
	struct col_query *query;
	struct col_ingest *ingest;     /* for counters; may be NULL */
	struct col_store *store;       /* for counters; may be NULL */
	struct col_metrics *metrics;   /* /metrics; NULL: 404 */
	const char *socket_path;       /* shown in /status */
	const char *db_path;
	int64_t start_mono_ns, start_real_ns;
	struct col_tseries *timeseries;  /* /timeseries; may be NULL */
	struct col_windows *windows;     /* /summaries, /aggregate, /regressions; may be NULL */
};

/* Binds and listens on "ADDR:PORT" ("127.0.0.1:9747", "[::1]:9747",
 * "localhost:9747", "0.0.0.0:9747"; an empty ADDR also means every
 * address, though the config's validation refuses it). Returns the listening
 * socket, or a negative errno with err filled, naming ADDR:PORT (e.g.
 * "http 127.0.0.1:9747: address already in use"). The URL it serves
 * ("http://127.0.0.1:9747") is written to url when not NULL. */
int col_api_listen(const char *addr_port, char *url, size_t urllen,
                   char *err, size_t errlen);

/* Starts serving on listen_fd (which the API owns from here, even on
 * failure). Returns NULL with err filled on failure. */
struct col_api *col_api_start(int listen_fd, const struct col_api_ctx *ctx,
                              char *err, size_t errlen);

/* Stops accepting, waits for handlers in progress, frees. NULL is a no-op. */
void col_api_stop(struct col_api *api);

#endif /* COL_API_H */

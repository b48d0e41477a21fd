/*
 * agg.h - the in-memory aggregate: per-endpoint and per-statement-shape
 * statistics for all time and per minute, the process table, totals, the
 * per-service route and shape caps, and (owned here, locked on their own)
 * the error groups and N+1 patterns.
 *
 * Writers: the ingest thread (col_agg_datagram/_hello/_proc_stats/_request/
 * _sql/_prune), the store thread (col_agg_minutes_take/_done) and startup
 * (col_agg_load/_load_shape). Readers: API threads. Every function takes
 * the aggregate's mutex for a short, bounded time and copies what it
 * returns, so callers format JSON or do I/O without holding it. All
 * functions are thread-safe unless noted.
 *
 * Minutes: each request, and each statement, also counts in the
 * epoch-aligned minute of its start time (ts). Minutes stay "pending" in
 * memory until the store takes them as a batch (col_agg_minutes_take),
 * writes them to SQLite, and releases them (col_agg_minutes_done). A taken
 * batch is immutable and still visible to period queries
 * (col_agg_minutes_copy, col_agg_shape_minutes_copy) until released;
 * events arriving late for a taken minute open a new pending entry for it,
 * which the store merges into the stored row later.
 */
#ifndef COL_AGG_H
#define COL_AGG_H

#include <stddef.h>
#include <stdint.h>

#include "epset.h"
#include "shapeset.h"

struct col_findings;
struct col_stmt;

#define COL_SERVICE_MAX 256   /* longest service name kept, NUL included */
#define COL_EXE_MAX 512
#define COL_UNKNOWN_SERVICE "unknown"
/* Services senders may name: any local process may send a HELLO with any
 * name, and each service holds up to max_routes routes, so a process
 * naming a new service in every HELLO would grow the collector without
 * end. Processes naming a new service past this many are counted under
 * COL_OTHER_SERVICE. */
#define COL_MAX_SERVICES 1000
#define COL_OTHER_SERVICE "{other}"
/* Routes of all services together (or max_routes, when larger): 1,000
 * services of max_routes each would be a million endpoints, each with its
 * statistics, minutes, windows and metric series (about 2.5 KiB apiece),
 * which one sender can name in a minute. Past it, a service's new routes
 * count as its {other}, as past max_routes. */
#define COL_MAX_ROUTES_ALL 20000
#define COL_MINUTE_S 60
#define COL_MAX_SHAPES 5000   /* statement shapes per service; then {other} */
/* Shapes of all services together, for the same reason as
 * COL_MAX_ROUTES_ALL (each keeps its text and a sketch); then {other}. */
#define COL_MAX_SHAPES_ALL 50000
/* And the bytes of their texts (each up to COL_SQL_TEXT_MAX): 50,000
 * shapes of 16 KiB would be 800 MB, twice over with the minutes. */
#define COL_SHAPE_TEXT_ALL (64u << 20)

struct col_agg;
struct col_prof;

/* A new empty aggregate capping routes at max_routes per service (>= 1)
 * and at COL_MAX_ROUTES_ALL (or max_routes) for all services together.
 * NULL when out of memory. */
struct col_agg *col_agg_new(int max_routes);
/* Frees everything, including a batch still taken. NULL is a no-op. Not
 * thread-safe: no other thread may use the aggregate any more. */
void col_agg_free(struct col_agg *a);

/* Sets the shape cap per service (>= 1; default COL_MAX_SHAPES). For
 * tests; call before any statement is counted. */
void col_agg_set_max_shapes(struct col_agg *a, size_t max_shapes);

/* The error groups and N+1 patterns (findings.h), owned by the aggregate
 * and living as long as it; thread-safe on their own. */
struct col_findings *col_agg_findings(struct col_agg *a);

/* The CPU profiles (profile.h), owned by the aggregate like the findings;
 * thread-safe on their own. */
struct col_prof *col_agg_profiles(struct col_agg *a);

/* For a profile of pid: copies its service (svclen >= COL_SERVICE_MAX) and
 * replaces route (a buffer of AP_ROUTE_MAX bytes) by "{other}" when the
 * service does not know it and is at max_routes, as requests are. */
void col_agg_profile_key(struct col_agg *a, uint32_t pid, char *route,
                         char *service, size_t svclen);

/* ---- ingest side ---- */

/* A datagram from (pid, uid) arrived at now_mono/now_real (ns): creates the
 * process's entry (service "unknown" until a HELLO) or refreshes it.
 * 0 or -ENOMEM. */
int col_agg_datagram(struct col_agg *a, uint32_t pid, uint32_t uid,
                     int64_t now_mono, int64_t now_real);

/* A HELLO of pid: sets its service, exe and ppid (NUL-terminated, already
 * cleaned; cut to COL_SERVICE_MAX / COL_EXE_MAX). A different start time
 * than the last HELLO means a new process reusing the pid: its counters are
 * reset. Ignored when pid has no entry (call col_agg_datagram first). */
void col_agg_hello(struct col_agg *a, uint32_t pid, uint32_t ppid,
                   uint64_t start_mono_ns, const char *service, const char *exe);

/* A STATS record of pid: its cumulative counters (latest wins). */
void col_agg_proc_stats(struct col_agg *a, uint32_t pid, uint64_t events,
                        uint64_t dropped, uint64_t untracked_conns);

/* Counts one request of pid in the all-time and minute statistics of
 * (pid's service, method, route) and in the totals. route (NUL-terminated,
 * in a buffer of at least AP_ROUTE_MAX bytes) is replaced in place by
 * "{other}" when the service already has max_routes other routes, or all
 * services together COL_MAX_ROUTES_ALL (routes loaded at startup count
 * too, though they are never refused). The
 * service used is copied to service (svclen >= COL_SERVICE_MAX). Returns 0,
 * or -ENOMEM when part of the update could not be made (counted). */
int col_agg_request(struct col_agg *a, uint32_t pid, const char *method,
                    char *route, int64_t ts_ns, const struct col_obs *o,
                    char *service, size_t svclen);

/* Counts one statement of pid (its service: the process's, "unknown"
 * before a HELLO) in the totals and in the statistics of its shape, all
 * time and in the minute of its start: (service, db, fingerprint), or the
 * service's {other} shape once it has max_shapes others. Copies the
 * service into service (svclen >= COL_SERVICE_MAX). Statements count here,
 * when they arrive, whether or not a request claims them later; a
 * request's own sql_count goes with col_agg_request(). 0 or -ENOMEM. */
int col_agg_sql(struct col_agg *a, uint32_t pid, const struct col_stmt *s,
                char *service, size_t svclen);

/* Removes processes not heard from for idle_ns, and, with alive given,
 * those not heard from for gone_ns for which alive(pid) returns 0 (the
 * process has exited: short-lived senders, CGI-style, would otherwise fill
 * the table and /api/v1/status for idle_ns). alive runs without the lock.
 * A removed process's dropped count stays in its service's sum
 * (col_agg_dropped). Returns how many were removed. */
size_t col_agg_prune(struct col_agg *a, int64_t now_mono, int64_t idle_ns, int64_t gone_ns,
                     int (*alive)(uint32_t pid));

/* Events dropped per service since start: its processes' latest STATS
 * counts plus those of processes removed or replaced (pid reuse), so the
 * sum never goes down. A malloc'ed array of the services with processes
 * now (0 included) or with drops (*out, caller frees; NULL when none) of
 * *n entries. 0 or -ENOMEM. */
struct col_svc_dropped {
	char service[COL_SERVICE_MAX];
	uint64_t dropped;
	int live;                /* it has processes now */
};
int col_agg_dropped(struct col_agg *a, struct col_svc_dropped **out, size_t *n);

/* ---- startup ---- */

/* Merges stored statistics of an endpoint into the all-time set and makes
 * the route count toward its service's cap. 0 or -ENOMEM. */
int col_agg_load(struct col_agg *a, const char *service, const char *method,
                 const char *route, const struct col_stats *st);

/* Merges stored statistics of a statement shape into the all-time set
 * and makes it count toward its service's shape cap. 0 or -ENOMEM. */
int col_agg_load_shape(struct col_agg *a, const char *service, uint8_t db, uint64_t fp,
                       const char *sql, const struct col_shape_stats *st);

/* ---- store side ---- */

struct col_minute {
	int64_t minute;              /* Unix seconds of its start, a multiple of 60 */
	struct col_epset *eps;       /* requests */
	struct col_shapeset *shapes; /* statements */
	struct col_minute *next;
};

struct col_minute_batch {
	uint64_t id;                 /* given by the store, increasing */
	struct col_minute *minutes;  /* immutable while taken */
};

/* Takes every pending minute starting before cutoff_s or after horizon_s
 * (Unix seconds; the latter catches senders with a broken clock) as one
 * batch with the given id. Returns NULL when there is nothing to take or a
 * batch is still taken (at most one at a time). The batch stays owned by
 * the aggregate; the caller reads it without a lock and must pass it to
 * col_agg_minutes_done() once it is stored. */
struct col_minute_batch *col_agg_minutes_take(struct col_agg *a, int64_t cutoff_s,
                                              int64_t horizon_s, uint64_t id);

/* Releases a batch taken by col_agg_minutes_take() (after it is stored). */
void col_agg_minutes_done(struct col_agg *a, struct col_minute_batch *b);

/* ---- readers ---- */

/* All-time endpoint rows (only `service`'s unless NULL), sorted by count.
 * 0 or -ENOMEM. Free with col_ep_rows_free(). */
int col_agg_endpoints(struct col_agg *a, const char *service, struct col_ep_rows *out);

/* Merges the in-memory minutes in [from_s, to_s) (only `service`'s unless
 * NULL): pending ones into pending, those of the taken batch into taken,
 * setting *taken_id to the batch's id (0 when none). The caller decides
 * whether the taken part is already in the database (see query.c).
 * 0 or -ENOMEM. */
int col_agg_minutes_copy(struct col_agg *a, int64_t from_s, int64_t to_s,
                         const char *service, struct col_epset *pending,
                         struct col_epset *taken, uint64_t *taken_id);

/* All-time statement shapes (only `service`'s unless NULL), sorted by
 * total time. 0 or -ENOMEM. Free with col_shape_rows_free(). */
int col_agg_shapes(struct col_agg *a, const char *service, struct col_shape_rows *out);

/* Merges the all-time statistics, sketches included (only `service`'s
 * unless NULL), into eps and shapes (either may be NULL): for a fleet's
 * store, which publishes them, and its readers. 0 or -ENOMEM. */
int col_agg_alltime_copy(struct col_agg *a, const char *service, struct col_epset *eps,
                         struct col_shapeset *shapes);

/* As col_agg_minutes_copy(), for statement shapes. */
int col_agg_shape_minutes_copy(struct col_agg *a, int64_t from_s, int64_t to_s,
                               const char *service, struct col_shapeset *pending,
                               struct col_shapeset *taken, uint64_t *taken_id);

struct col_totals {
	uint64_t requests;      /* since the collector started */
	uint64_t sql;           /* every statement, with a request or not */
	double request_ms;
	double sql_ms;
	uint64_t other_shape;   /* statements counted as {other} by the shape cap */
	size_t shapes;          /* all-time statement shapes */
	uint64_t other_route;   /* requests counted as {other} by the route cap */
	uint64_t other_service; /* HELLOs put under {other} by the service cap */
	uint64_t oom;           /* updates lost to out-of-memory */
	size_t endpoints;       /* all-time endpoints */
	size_t pending_minutes; /* minute sets in memory */
};

void col_agg_totals(struct col_agg *a, struct col_totals *t);

struct col_proc_info {
	uint32_t pid, uid, ppid;
	int has_hello;
	int connected;               /* heard from within COL_CONNECTED_NS */
	char service[COL_SERVICE_MAX];
	char exe[COL_EXE_MAX];
	int64_t first_seen_ns;       /* wall clock */
	int64_t last_seen_ns;
	uint64_t datagrams, requests;
	uint64_t events, dropped, untracked_conns; /* from the last STATS */
};

#define COL_CONNECTED_NS (5 * 1000000000LL)

/* Copies the process table, sorted by pid, into a malloc'ed array (*out,
 * caller frees; NULL when empty) of *n entries. 0 or -ENOMEM. */
int col_agg_processes(struct col_agg *a, int64_t now_mono,
                      struct col_proc_info **out, size_t *n);

#endif /* COL_AGG_H */

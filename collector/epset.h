/*
 * epset.h - per-endpoint request statistics and sets of them.
 *
 * struct col_stats is what the collector knows about the requests of one
 * endpoint (service, method, route) over some period: exact counters and
 * sums plus a DDSketch of durations. Two stats merge into the stats of the
 * union, so an all-time figure, a minute and a period made of minutes are
 * all the same type.
 *
 * struct col_epset maps (service, method, route) to stats. The aggregator
 * keeps one for all time and one per minute; period queries merge minutes
 * into a fresh one. Not thread-safe: the owner serialises access.
 */
#ifndef COL_EPSET_H
#define COL_EPSET_H

#include <stddef.h>
#include <stdint.h>

#include "sketch.h"

/* One finished request, as far as statistics care. */
struct col_obs {
	double duration_ms;
	int error;            /* status >= 500 or aborted */
	int slow;             /* duration >= slow_request_threshold_ms */
	int n_plus_one;       /* had an N+1 pattern (SQL feature; 0 for now) */
	uint32_t sql_count;   /* statements issued (SQL feature; 0 for now) */
	double sql_time_ms;
};

struct col_stats {
	uint64_t count;
	uint64_t error_count;
	uint64_t slow_count;
	double sum_ms;
	double min_ms, max_ms;      /* meaningless while count == 0 */
	uint64_t sql_count;         /* statements in total */
	double sql_time_ms;
	uint64_t n_plus_one_count;  /* requests with an N+1 */
	struct col_sketch sketch;   /* durations */
};

/* A zeroed struct col_stats is empty; _release frees its sketch. */
void col_stats_release(struct col_stats *s);
/* Adds one request. 0, or -ENOMEM (counters updated, sketch not). */
int col_stats_add(struct col_stats *s, const struct col_obs *o);
/* Adds src into dst. 0, or -ENOMEM (counters merged, sketch not). */
int col_stats_merge(struct col_stats *dst, const struct col_stats *src);

/* One endpoint of a set. service/method/route point into the entry itself
 * and live as long as it. q[] caches p50/p95/p99 while !dirty. */
struct col_ep {
	const char *service;
	const char *method;
	const char *route;
	struct col_stats st;
	int dirty;
	double q[3];
};

struct col_epset;

/* An empty set, or NULL when out of memory. */
struct col_epset *col_epset_new(void);
/* Frees the set and every entry. NULL is a no-op. */
void col_epset_free(struct col_epset *s);

/* The entry for (service, method, route); when absent and create is set, a
 * new empty one. NULL when absent (create == 0), out of memory, or when the
 * three names together exceed 4 KiB. The entry belongs to the set. Callers
 * that change ->st must set ->dirty. */
struct col_ep *col_epset_get(struct col_epset *s, const char *service,
                             const char *method, const char *route, int create);

size_t col_epset_count(const struct col_epset *s);

/* Iterates entries: *it = 0 first; NULL at the end. No changes meanwhile. */
struct col_ep *col_epset_next(const struct col_epset *s, size_t *it);

/* Merges every entry of src (only those of `service` unless it is NULL)
 * into dst. 0 or -ENOMEM (dst then holds part of src). */
int col_epset_merge(struct col_epset *dst, const struct col_epset *src,
                    const char *service);

/* ---- plain copies for readers ---- */

/* An endpoint's figures with quantiles computed: what /endpoints shows. */
struct col_ep_row {
	char *service;   /* owned: one allocation holding all three names */
	const char *method;
	const char *route;
	uint64_t count, error_count, slow_count, sql_count, n_plus_one_count;
	double sum_ms, min_ms, max_ms, sql_time_ms;
	double p50_ms, p95_ms, p99_ms;
};

struct col_ep_rows {
	struct col_ep_row *v;
	size_t n;
};

/* Copies the entries of s (only `service`'s unless NULL) into out, sorted
 * by count descending, then service, method, route ascending. Quantiles of
 * dirty entries are computed and cached (so s is updated: the caller must
 * hold whatever lock guards s for writing). Returns 0 or -ENOMEM (out is
 * then empty). Free out with col_ep_rows_free(). */
int col_epset_rows(struct col_epset *s, const char *service, struct col_ep_rows *out);

/* Frees the rows (not the struct itself); leaves it empty. */
void col_ep_rows_free(struct col_ep_rows *r);

#endif /* COL_EPSET_H */

/*
 * profile.h - CPU profiles per endpoint: folded call stacks and their
 * sample counts per (service, method, route), fed by the preload's
 * AP_REC_PROFILE records, and the formats GET /api/v1/profile serves.
 *
 * A stack is folded text, outermost frame first: "main;handle;burn;sin".
 * Counts are samples, each about a millisecond of the serving thread's CPU
 * time. Everything is kept in memory since the collector started (not
 * stored in the database), bounded: COL_PROF_MAX_ENDPOINTS endpoints,
 * COL_PROF_MAX_STACKS distinct stacks per endpoint and COL_PROF_MAX_BYTES
 * of stacks in all, each cut to COL_PROF_STACK_MAX bytes; samples beyond
 * go to the endpoint's "[other]" stack (or, past the endpoint cap, are
 * counted as dropped).
 *
 * Thread-safety: struct col_prof is locked inside; ingest adds while API
 * handlers take copies (col_prof_select) and format those without the lock.
 * The formatting functions are pure.
 */
#ifndef COL_PROFILE_H
#define COL_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#define COL_PROF_MAX_ENDPOINTS 10000
#define COL_PROF_MAX_STACKS 2000
/* Stacks of all endpoints together: 10,000 endpoints of 2,000 stacks of
 * up to 64 KiB (what a datagram holds) would be terabytes, and any local
 * process may send them. Past this, new stacks count as their endpoint's
 * "[other]". */
#define COL_PROF_MAX_BYTES (128u << 20)
/* Longer stacks are cut at their last frame boundary before this (the
 * preload sends at most 4 KiB). */
#define COL_PROF_STACK_MAX 16384
#define COL_PROF_OTHER "[other]"

struct col_prof;

/* An empty set, or NULL when out of memory. */
struct col_prof *col_prof_new(void);
/* Frees everything. NULL is a no-op. */
void col_prof_free(struct col_prof *p);

/* Adds count samples of stack[0..len) (folded; empty: "[unknown]") to the
 * endpoint. req_key identifies the sampled request (the sender's pid and
 * request id): a change counts one more profiled request. 0, or -ENOMEM
 * (counted as dropped). */
int col_prof_add(struct col_prof *p, const char *service, const char *method,
                 const char *route, uint64_t req_key, const char *stack, size_t len,
                 uint64_t count);

/* Samples dropped (endpoint cap, out of memory) since start. */
uint64_t col_prof_dropped(struct col_prof *p);

/* One endpoint's stacks, copied out. Owned by the rows. */
struct col_prof_stack {
	char *stack;
	uint64_t count;
};
struct col_prof_ep {
	char *service, *method, *route;
	uint64_t samples;          /* sum of the counts */
	uint64_t requests;         /* requests profiled */
	struct col_prof_stack *v;  /* sorted by stack text */
	size_t n;
};
struct col_prof_rows {
	struct col_prof_ep *v;     /* sorted by samples, most first */
	size_t n;
};

/* Copies the endpoints matching the filters (NULL: any) into out. 0 or
 * -ENOMEM (out then empty). */
int col_prof_select(struct col_prof *p, const char *service, const char *method,
                    const char *route, struct col_prof_rows *out);
void col_prof_rows_free(struct col_prof_rows *r);
/* Sorts r's endpoints as col_prof_select() does (by samples, most first,
 * then by service, route and method): for rows built elsewhere. */
void col_prof_rows_sort(struct col_prof_rows *r);

/* flamegraph.pl's folded input: "stack count\n" per distinct stack, the
 * stacks of every endpoint in rows merged (sorted by stack). Returns a
 * malloc'ed NUL-terminated text (empty when no samples), NULL on OOM. */
char *col_prof_collapsed(const struct col_prof_rows *r, size_t *len);

/* A speedscope file (https://www.speedscope.app/file-format-schema.json):
 * one shared frame table, one "sampled" profile per endpoint, named
 * "METHOD ROUTE (service)", with weighted samples. malloc'ed JSON, NULL on
 * OOM. */
char *col_prof_speedscope(const struct col_prof_rows *r, size_t *len);

/* Functions by samples over every endpoint in rows: self (the function is
 * the innermost frame) and total (it appears anywhere in the stack, counted
 * once per stack even when recursive). */
struct col_prof_fn {
	char *name;
	uint64_t self, total;
};
/* Fills *out (malloc'ed, sorted by self then total then name, or by total
 * first when by_total) and *n. 0 or -ENOMEM. */
int col_prof_top(const struct col_prof_rows *r, int by_total,
                 struct col_prof_fn **out, size_t *n);
void col_prof_fns_free(struct col_prof_fn *v, size_t n);

#endif /* COL_PROFILE_H */

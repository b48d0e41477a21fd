/*
 * sqlreq.h - attaching SQL statements to the HTTP request they ran for,
 * and finding N+1 patterns in one request.
 *
 * The preload emits a process's records in order, so a request's
 * statements arrive before the request's own record, from the same pid
 * (the kernel's). Statements carrying a request id wait here, grouped by
 * (pid, req_id), until that record takes them (col_pending_take). A record
 * may never come (the process was killed, the record was dropped), so
 * pending groups are bounded and expire, least recently active first:
 *   - a group idle for ttl_ns (default 30 s),
 *   - the oldest groups of a process holding more than max_per_proc
 *     statements (default 10,000), and of all processes together more
 *     than max_total (default 100,000),
 *   - every group of a pid when a HELLO shows a new process under it
 *     (pid reuse).
 * Expired statements are handed to the expiry callback one by one (so the
 * caller can count their errors for the service) and freed.
 *
 * Per request, every statement is counted (count, time), but only the
 * first max_per_req (default 1,000) are kept for the statement list;
 * failed statements are always kept. N+1 detection uses exact counts per
 * fingerprint whatever was kept (up to COL_REQ_MAX_SHAPES distinct shapes
 * per request).
 *
 * Not thread-safe: the ingest thread owns a col_pending.
 */
#ifndef COL_SQLREQ_H
#define COL_SQLREQ_H

#include <stddef.h>
#include <stdint.h>

#include "stmt.h"

#define COL_PEND_TTL_NS (30 * 1000000000LL)
#define COL_PEND_MAX_PER_PROC 10000
#define COL_PEND_MAX_TOTAL 100000
#define COL_REQ_MAX_STMTS 1000
#define COL_REQ_MAX_SHAPES 1024

/* Statements of one request (or of one pending group). Public fields are
 * read-only for callers; the rest is private. */
struct col_reqsql {
	uint32_t count;            /* statements counted, kept or not */
	uint32_t omitted;          /* counted but not kept (count - n) */
	double time_ms;            /* sum of every statement's duration */
	struct col_stmt **v;       /* kept statements, in arrival order (owned) */
	uint32_t n;

	/* private */
	uint32_t cap;
	struct col_rs_shape *shapes; /* open addressing by fingerprint */
	uint32_t nshapes, shapes_cap;
	uint8_t key[12];           /* pid, req_id: the pending map's key */
	uint64_t req_id;
	int64_t last_mono;
	struct col_pend_proc *proc;
	struct col_reqsql *prev, *next;   /* all groups, least recently active first */
	struct col_reqsql *pprev, *pnext; /* the process's groups, likewise */
};

/* One N+1 finding of a request. sql points into a kept statement or into
 * the request's own copy: valid as long as the col_reqsql. */
struct col_n1 {
	uint64_t fingerprint;
	uint32_t count;            /* executions in the request */
	const char *sql;
};

/* Finds N+1 patterns: fingerprints executed at least threshold times
 * (prepares do not count: a prepare is not an execution), unless
 * transaction control or session statements. Writes at most max into out,
 * sorted by count descending then fingerprint, and returns how many were
 * found in total (may exceed max). */
size_t col_reqsql_n1(const struct col_reqsql *r, int threshold, struct col_n1 *out,
                     size_t max);

/* Moves the kept statements out (the caller owns the array and each
 * statement; free them with col_stmt_free and free()). *n gets their
 * number. The col_reqsql keeps its counts and shapes; n1 results taken
 * before still point into the moved statements. */
struct col_stmt **col_reqsql_steal(struct col_reqsql *r, uint32_t *n);

/* Frees r and whatever it still owns. NULL is a no-op. */
void col_reqsql_free(struct col_reqsql *r);

/* ---- pending groups ---- */

struct col_pending;

/* Called for each statement of an expired group, with the service the
 * process had when the group last grew. The statement is freed after the
 * call. */
typedef void (*col_pending_expire_cb)(void *arg, const char *service,
                                      const struct col_stmt *s);

struct col_pending_opts {
	int64_t ttl_ns;             /* 0: COL_PEND_TTL_NS */
	size_t max_per_proc;        /* 0: COL_PEND_MAX_PER_PROC */
	size_t max_total;           /* 0: COL_PEND_MAX_TOTAL */
	size_t max_per_req;         /* 0: COL_REQ_MAX_STMTS */
	col_pending_expire_cb expired;  /* may be NULL */
	void *arg;
};

/* NULL opts: defaults. Bounds are adjusted so that max_per_req <=
 * max_per_proc <= max_total. NULL when out of memory. */
struct col_pending *col_pending_new(const struct col_pending_opts *o);
/* Expires everything (calling the callback) and frees. NULL is a no-op. */
void col_pending_free(struct col_pending *p);

/* A HELLO of pid with the process's start time: when pid's pending
 * statements came from a process with another start time, that process is
 * gone (the pid was reused) and they expire. */
void col_pending_hello(struct col_pending *p, uint32_t pid, uint64_t start_mono_ns);

/* Adds a statement (taken: freed on failure) for (pid, req_id), req_id !=
 * 0, received at now_mono. service is the process's service (copied).
 * start_mono_ns is the start time of the HELLO that came with it (0:
 * unknown), checked like col_pending_hello. Returns 1 when kept, 0 when
 * only counted (the request's list is full), -ENOMEM when it could not be
 * recorded (counted as lost). Expires what the bounds require first. */
int col_pending_add(struct col_pending *p, uint32_t pid, uint64_t start_mono_ns,
                    uint64_t req_id, const char *service, struct col_stmt *s,
                    int64_t now_mono);

/* Detaches the group of (pid, req_id): the caller owns it (free with
 * col_reqsql_free). NULL when there is none. */
struct col_reqsql *col_pending_take(struct col_pending *p, uint32_t pid, uint64_t req_id);

/* Expires groups idle longer than the TTL at now_mono. Cheap when nothing
 * is due (looks at the oldest group only). Returns the statements expired. */
size_t col_pending_expire(struct col_pending *p, int64_t now_mono);

/* Expires every group (shutdown: no record will come any more). */
void col_pending_expire_all(struct col_pending *p);

struct col_pending_counters {
	uint64_t groups;            /* pending now */
	uint64_t statements;        /* kept and pending now */
	uint64_t expired;           /* statements expired so far */
	uint64_t lost;              /* statements lost to out-of-memory */
};

void col_pending_counters(const struct col_pending *p, struct col_pending_counters *c);

#endif /* COL_SQLREQ_H */

/*
 * findings.h - what went wrong, grouped: error groups (/api/v1/errors) and
 * N+1 patterns (/api/v1/n-plus-one), kept in memory since the collector's
 * data began and persisted by the store.
 *
 * An error group is (service, method, route, type), where type is
 * "HTTP <status>" (status >= 500), "aborted", or a failed statement's
 * "SQLSTATE <code>" / "MySQL <errno>" / "SQLite <code>". Statements that
 * belong to no request (req_id 0, ambiguous, or expired while pending)
 * make service-level groups with no method and route. Each group keeps its
 * count, first and last occurrence, the latest message and the latest
 * stored request showing it.
 *
 * An N+1 pattern is (service, method, route, fingerprint): occurrences
 * (requests in which that shape was an N+1), the largest repeat count in
 * one request, the normalised text, first and last occurrence and the
 * latest stored request showing it.
 *
 * Both sets are bounded (max_errors, max_patterns groups); occurrences of
 * new groups past the bound are counted as dropped. Every function takes
 * the set's mutex for a bounded time and is thread-safe; readers get
 * copies.
 */
#ifndef COL_FINDINGS_H
#define COL_FINDINGS_H

#include <stddef.h>
#include <stdint.h>

#define COL_FINDINGS_MAX_ERRORS 10000
#define COL_FINDINGS_MAX_PATTERNS 10000
#define COL_FINDINGS_MESSAGE_MAX 512   /* bytes of a message kept, incl. NUL */
#define COL_ABORTED_TYPE "aborted"
#define COL_ABORTED_MESSAGE "connection closed before a complete response"
/* An aborted request's message when its process died without a word
 * while serving it (AP_REQF_KILLED). */
#define COL_KILLED_MESSAGE "the process was killed while serving it (SIGKILL, OOM killer)"

struct col_findings;

/* 0 for either bound means its default. NULL when out of memory. */
struct col_findings *col_findings_new(size_t max_errors, size_t max_patterns);
void col_findings_free(struct col_findings *f); /* NULL is a no-op */

/* One occurrence of an error. method and route are NULL together for a
 * service-level error. message may be NULL (""); it is cut at a character
 * boundary to COL_FINDINGS_MESSAGE_MAX - 1 bytes. request_id 0: no stored
 * request shows it (the example stays as it was). ts_ns is wall time. */
void col_findings_error(struct col_findings *f, const char *service, const char *method,
                        const char *route, const char *type, const char *message,
                        int64_t ts_ns, int64_t request_id);

/* The same, but message only fills a group that has none (a new one): an
 * existing group keeps its latest message. For an occurrence whose
 * message says less than the ones before (a crash not symbolised). */
void col_findings_error_keep(struct col_findings *f, const char *service, const char *method,
                             const char *route, const char *type, const char *message,
                             int64_t ts_ns, int64_t request_id);

/* 1 when the group (as col_findings_error() would make it) has a message
 * already, or cannot be made (the set is full, or the names too long): a
 * message for it now would show nowhere new. 0 for a group whose message
 * came from col_findings_error_keep() (a new group's first, unsymbolised
 * crash message): a better one is wanted. (Kept in memory only: after a
 * restart such a group counts as known until a report replaces it.) */
int col_findings_error_known(struct col_findings *f, const char *service, const char *method,
                             const char *route, const char *type);

/* One request in which fingerprint fp (text sql) ran `repeats` times: an
 * N+1 occurrence. */
void col_findings_n1(struct col_findings *f, const char *service, const char *method,
                     const char *route, uint64_t fp, const char *sql, uint32_t repeats,
                     int64_t ts_ns, int64_t request_id);

/* ---- readers ---- */

struct col_find_filter {
	const char *service;      /* NULL: any */
	int64_t since_ns;         /* last_seen >= since; INT64_MIN: any */
	int64_t until_ns;         /* first_seen < until; INT64_MAX: any */
};

struct col_error_row {
	char *service;            /* owned: one allocation holding every string */
	const char *method;       /* NULL for a service-level group */
	const char *route;        /* NULL likewise */
	const char *type;
	const char *message;
	uint64_t count;
	int64_t first_ns, last_ns;
	int64_t example_id;       /* 0: none */
	int dirty;                /* (persistence) */
};

struct col_error_rows {
	struct col_error_row *v;
	size_t n;
};

struct col_n1_row {
	char *service;            /* owned, as above */
	const char *method, *route, *sql;
	uint64_t fp;
	uint64_t occurrences;
	uint32_t max_repeats;
	int64_t first_ns, last_ns;
	int64_t example_id;
	int dirty;
};

struct col_n1_rows {
	struct col_n1_row *v;
	size_t n;
};

/* Error groups matching flt (NULL: all), newest last occurrence first
 * (then larger count, then service, method, route, type). 0 or -ENOMEM. */
int col_findings_errors(struct col_findings *f, const struct col_find_filter *flt,
                        struct col_error_rows *out);

/* N+1 patterns matching flt, most occurrences first (then newest, then
 * service, method, route, fingerprint). 0 or -ENOMEM. */
int col_findings_patterns(struct col_findings *f, const struct col_find_filter *flt,
                          struct col_n1_rows *out);

void col_error_rows_free(struct col_error_rows *r);
void col_n1_rows_free(struct col_n1_rows *r);

/* ---- persistence (the store thread) ---- */

/* Copies every group changed since the last call (unsorted) and marks them
 * clean. On -ENOMEM nothing is marked clean. */
int col_findings_take_dirty(struct col_findings *f, struct col_error_rows *errors,
                            struct col_n1_rows *patterns);

/* Puts back a stored group at startup (or merges it into one already
 * there: counts add, times widen, the newer example and message win).
 * Loaded groups are clean. 0 or -ENOMEM (-ENOSPC past the bound). */
int col_findings_load_error(struct col_findings *f, const struct col_error_row *r);
int col_findings_load_n1(struct col_findings *f, const struct col_n1_row *r);

/* Forgets groups whose last occurrence is before cutoff_ns (retention).
 * Returns how many. */
size_t col_findings_expire(struct col_findings *f, int64_t cutoff_ns);

struct col_findings_counters {
	size_t errors, patterns;          /* groups held */
	uint64_t errors_dropped, patterns_dropped;  /* occurrences past the bounds */
};

void col_findings_counters(struct col_findings *f, struct col_findings_counters *c);

#endif /* COL_FINDINGS_H */

/*
 * shapeset.h - per statement shape statistics, and sets of them.
 *
 * A shape is (service, db, fingerprint): every statement whose normalised
 * text has that fingerprint, in one service, on one kind of database. Its
 * statistics are pg_stat_statements' columns (calls, total and max time,
 * rows, errors) plus the slow count and a DDSketch of durations for p95.
 * Like struct col_stats (epset.h), two shape statistics merge into those of
 * the union, so all-time figures, minutes and periods share one type.
 *
 * A set keeps the normalised text each shape was first seen with. Not
 * thread-safe: the owner serialises access.
 */
#ifndef COL_SHAPESET_H
#define COL_SHAPESET_H

#include <stddef.h>
#include <stdint.h>

#include "sketch.h"

/* The shape counting a service's statements past its shape cap. */
#define COL_SHAPE_OTHER_FP 0
#define COL_SHAPE_OTHER_SQL "{other}"

/* One finished statement, as far as shape statistics care. */
struct col_shape_obs {
	double duration_ms;
	uint64_t rows;        /* counted when rows_known */
	int rows_known;
	int error;
	int slow;
};

struct col_shape_stats {
	uint64_t calls;
	uint64_t errors;
	uint64_t slow_count;
	uint64_t rows;
	double total_ms;
	double max_ms;
	struct col_sketch sketch;
};

/* A zeroed struct is empty; _release frees its sketch. */
void col_shape_stats_release(struct col_shape_stats *s);
/* 0, or -ENOMEM (counters updated, sketch not). */
int col_shape_stats_add(struct col_shape_stats *s, const struct col_shape_obs *o);
int col_shape_stats_merge(struct col_shape_stats *dst, const struct col_shape_stats *src);

/* One shape of a set. service and sql point into the entry. p95 caches
 * the sketch's 0.95 quantile while !dirty. */
struct col_shape {
	const char *service;
	const char *sql;
	uint64_t fp;
	uint8_t db;
	struct col_shape_stats st;
	int dirty;
	double p95;
};

struct col_shapeset;

struct col_shapeset *col_shapeset_new(void);
void col_shapeset_free(struct col_shapeset *s); /* NULL is a no-op */

/* The shape (service, db, fp); when absent and create is set, a new empty
 * one holding a copy of sql. NULL when absent (create == 0), out of memory
 * or service longer than 4 KiB. Callers that change ->st set ->dirty. */
struct col_shape *col_shapeset_get(struct col_shapeset *s, const char *service, uint8_t db,
                                   uint64_t fp, const char *sql, int create);

size_t col_shapeset_count(const struct col_shapeset *s);

/* Iterates: *it = 0 first; NULL at the end. No changes meanwhile. */
struct col_shape *col_shapeset_next(const struct col_shapeset *s, size_t *it);

/* Merges src (only `service`'s shapes unless NULL) into dst. 0 or -ENOMEM. */
int col_shapeset_merge(struct col_shapeset *dst, const struct col_shapeset *src,
                       const char *service);

/* ---- plain copies for readers ---- */

struct col_shape_row {
	char *service;          /* owned: one allocation holding service and sql */
	const char *sql;
	uint64_t fp;
	uint8_t db;
	uint64_t calls, errors, slow_count, rows;
	double total_ms, max_ms, p95_ms;
};

struct col_shape_rows {
	struct col_shape_row *v;
	size_t n;
};

/* Copies the shapes of s (only `service`'s unless NULL) with at least one
 * call into out, sorted by total_ms descending, then calls descending,
 * then service, db and fingerprint. Caches p95 of dirty shapes (so s is
 * written: hold its write lock). 0 or -ENOMEM (out empty). */
int col_shapeset_rows(struct col_shapeset *s, const char *service, struct col_shape_rows *out);

/* Frees the rows and leaves out empty. */
void col_shape_rows_free(struct col_shape_rows *r);

#endif /* COL_SHAPESET_H */

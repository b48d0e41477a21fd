/*
 * pg.h - small helpers shared by the PostgreSQL store (store_pg.c) and its
 * readers (query_pg.c): connecting, parameters, and reading stored
 * statistics out of text-format results.
 */
#ifndef COL_PG_H
#define COL_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct col_stats;
struct col_shape_stats;

/* Connects to uri (a postgresql:// URI) in UTF-8, NOTICEs silenced; unless
 * the URI says otherwise, with a 3 s connect timeout, application_name
 * apiprof-collector, TCP keepalives (5 s idle, 3 probes 2 s apart) and a
 * 10 s TCP user timeout. Returns the connection, or NULL
 * with err filled with libpq's reason (one line). */
PGconn *col_pg_connect(const char *uri, char *err, size_t errlen);

/* Copies conn's last error message as one line into buf; returns buf. */
const char *col_pg_error(PGconn *conn, char *buf, size_t len);

/* Runs commands without parameters; 0, or -EIO (the result is cleared;
 * PQerrorMessage says why). */
int col_pg_exec(PGconn *conn, const char *sql);

/* Ends a failed transaction without forgetting why it failed: a ROLLBACK
 * through col_pg_exec() clears PQerrorMessage, so the reason logged after
 * it read "unknown error". */
void col_pg_rollback(PGconn *conn);

/* This thread's last statement through col_pg_exec() / col_pg_run() (or
 * a result given to col_pg_note()): when it failed, its message as one
 * line, kept from the moment it failed (a ROLLBACK after it, or any
 * other statement but a noted one, does not change it): the server's
 * primary message and SQLSTATE, else libpq's (a connection lost
 * mid-statement), else, when none was known, col_pg_error()'s at the
 * time of reading. */
void col_pg_note(const PGresult *r);
const char *col_pg_failure(PGconn *conn, char *buf, size_t len);

/* Decides about a failure and forgets what was noted: its message into
 * buf (col_pg_failure()), and 1 when the noted SQLSTATE is of a class
 * that passes by itself (disk full, a timeout, a deadlock, I/O) rather
 * than one that says the data is refused (a constraint, a bad value: 0).
 * Forgotten, a later failure that no statement reports (found without a
 * result: a lost connection, out of memory) reads as itself (0, the
 * connection's message), not as the failure before it. */
int col_pg_take_failure(PGconn *conn, char *buf, size_t len);

/* Forgets the noted failure without reading it. */
void col_pg_forget(void);

/* Parameters of PQexecParams: text values (binary for bytea), built in
 * order ($1, $2, ...). Strings are not copied: they must outlive the call. */
#define COL_PG_MAXP 24
struct col_pg_params {
	int n;
	const char *v[COL_PG_MAXP];
	int len[COL_PG_MAXP];
	int fmt[COL_PG_MAXP];
	char buf[COL_PG_MAXP][32];
};
void col_pg_p_text(struct col_pg_params *p, const char *s);   /* NULL: SQL NULL */
void col_pg_p_i64(struct col_pg_params *p, int64_t v);
void col_pg_p_f64(struct col_pg_params *p, double v);
void col_pg_p_bin(struct col_pg_params *p, const void *data, size_t len);

/* PQexecParams with p; text results. Returns the result (caller clears)
 * or NULL when it did not end with PGRES_COMMAND_OK / PGRES_TUPLES_OK (the
 * failed result is cleared). */
PGresult *col_pg_run(PGconn *conn, const char *sql, const struct col_pg_params *p);

/* Field accessors for text results: "" / 0 for NULL. */
int64_t col_pg_i64(const PGresult *r, int row, int col);
double col_pg_f64(const PGresult *r, int row, int col);
const char *col_pg_str(const PGresult *r, int row, int col);

/* Reads stored statistics starting at column col, the same columns and
 * contract as col_store_read_stats() / col_store_read_shape_stats() (the
 * sketch a bytea). */
int col_pg_read_stats(const PGresult *r, int row, int col, struct col_stats *o);
int col_pg_read_shape_stats(const PGresult *r, int row, int col, struct col_shape_stats *o);

/* The columns of error_groups and n_plus_one_patterns, in the order
 * col_pg_error_row() and col_pg_n1_row() read them. */
#define COL_PG_ERROR_COLUMNS \
	"service, method, route, type, message, count, first_seen_ns, last_seen_ns," \
	" coalesce(example_request_id, 0)"
#define COL_PG_N1_COLUMNS \
	"service, method, route, fingerprint, sql, occurrences, max_repeats, first_seen_ns," \
	" last_seen_ns, coalesce(example_request_id, 0)"

struct col_error_row;
struct col_n1_row;

/* Fills e / n from row i of a result with those columns (or aggregates in
 * that order); the strings point into the result (e->service included:
 * not owned, unlike a col_findings row). An empty method is a
 * service-level error group (method and route NULL). */
void col_pg_error_row(const PGresult *r, int i, struct col_error_row *e);
void col_pg_n1_row(const PGresult *r, int i, struct col_n1_row *n);

/* Formats a double as PostgreSQL reads it (NaN, Infinity included). */
const char *col_pg_fmt_f64(double v, char *buf, size_t len);

/* A growing buffer of COPY ... FROM STDIN data in text format: fields
 * separated by col_pg_copy_sep('\t'), rows ended by col_pg_copy_sep('\n').
 * Zero-initialise; free(b.p) when done. On allocation failure oom is set
 * and later appends are ignored. */
struct col_pg_buf {
	char *p;
	size_t len, cap;
	int oom;
};

/* A text field: backslash, newline, CR and tab escaped; NULL is \N; bytes
 * that are not valid UTF-8 become '?', so that one bad byte cannot make
 * the server refuse a whole batch. */
void col_pg_copy_text(struct col_pg_buf *b, const char *s);
void col_pg_copy_i64(struct col_pg_buf *b, int64_t v);
void col_pg_copy_f64(struct col_pg_buf *b, double v);   /* NaN, Infinity too */
void col_pg_copy_sep(struct col_pg_buf *b, char c);

/* Copies a --db value for display into out: the password of a URI
 * (scheme://user:PASSWORD@host..., and a password=PASSWORD parameter after
 * '?') becomes "***"; anything else is copied as is (truncated to len). */
void col_pg_redact(const char *db, char *out, size_t len);

#endif /* COL_PG_H */

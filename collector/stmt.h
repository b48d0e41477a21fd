/*
 * stmt.h - one SQL statement as the collector keeps it, and the small
 * classifications every SQL module shares: database names, error types,
 * and fingerprints as text.
 *
 * A struct col_stmt is built from a decoded AP_REC_SQL record (ap_wire.h)
 * by copying and cleaning its strings, so it no longer depends on the
 * datagram buffer, and classified with the shared normaliser's rules
 * (shared/ap_sql.h), so both sides agree on what a session statement is.
 * It is one allocation: free() or col_stmt_free() it.
 * Everything here is thread-safe (no shared state).
 */
#ifndef COL_STMT_H
#define COL_STMT_H

#include <stddef.h>
#include <stdint.h>

struct ap_rec_sql;

#define COL_FP_HEX 17        /* 16 hex digits and the NUL */
#define COL_ERR_TYPE_MAX 48  /* "SQLSTATE 42P01", "MySQL 1146", ... incl. NUL */
#define COL_ERR_CODE_MAX 16  /* longest error code kept (SQLSTATE is 5) */
/* Longest statement text and error message kept, in bytes: the preload
 * sends at most 16 KiB of text (APIPROF_MAX_SQL_BYTES), but any local
 * process may send 64 KiB, and every shape, pending statement and queued
 * row keeps its text. Longer text is cut (never inside a character) and
 * marked truncated. */
#define COL_SQL_TEXT_MAX 16384
#define COL_SQL_MESSAGE_MAX 2048

struct col_stmt {
	int64_t ts_ns;             /* wall clock (Unix ns) of its start */
	double duration_ms;
	uint64_t rows;             /* returned or affected; see rows_known */
	uint64_t fingerprint;      /* of the normalised shape (from the sender) */
	uint8_t db;                /* enum ap_sql_db; other values are kept */
	uint8_t flags;             /* enum ap_sql_flags, as sent */
	uint8_t slow;              /* duration_ms >= slow_query_threshold_ms */
	uint8_t failed;            /* AP_SQLF_ERROR */
	uint8_t prepare;           /* AP_SQLF_PREPARE: a prepare, not an execution */
	uint8_t rows_known;        /* !AP_SQLF_ROWS_UNKNOWN */
	uint8_t session;           /* transaction control or session state
	                              (ap_sql_is_session): never an N+1 */
	const char *sql;           /* cleaned normalised text (valid UTF-8, no
	                              control characters), NUL-terminated */
	const char *error_code;    /* "" unless failed; at most COL_ERR_CODE_MAX - 1
	                              bytes of [0-9A-Za-z_-], others become '?' */
	const char *error_message; /* cleaned; "" when none */
	char data[];
};

/* A new statement from a decoded record: times are the sender's monotonic
 * clock, wall_minus_mono_ns converts them (the batch header's offset);
 * slow_ms is slow_query_threshold_ms. Text past COL_SQL_TEXT_MAX and a
 * message past COL_SQL_MESSAGE_MAX are cut (the text then flagged
 * AP_SQLF_TRUNCATED). NULL when out of memory. */
struct col_stmt *col_stmt_new(const struct ap_rec_sql *r, int64_t wall_minus_mono_ns,
                              double slow_ms);

/* Same as free(s); NULL is a no-op. */
void col_stmt_free(struct col_stmt *s);

/* "postgresql", "mysql", "sqlite", or "unknown" for any other value. The
 * string is static. */
const char *col_sql_db_name(int db);

/* The enum ap_sql_db value named by s ("postgresql", "mysql", "sqlite"),
 * or -1. */
int col_sql_db_lookup(const char *s);

/* The /api/v1/errors type of a failed statement: "SQLSTATE <code>"
 * (PostgreSQL), "MySQL <errno>", "SQLite <code>", "SQL <code>" for an
 * unknown database; "<prefix> unknown" when the code is empty. Writes it
 * NUL-terminated into out (outlen >= COL_ERR_TYPE_MAX) and returns out. */
char *col_sql_error_type(int db, const char *code, char *out, size_t outlen);

/* Writes fp as 16 lowercase hex digits into out (>= COL_FP_HEX bytes). */
char *col_fp_hex(uint64_t fp, char *out);

/* Parses 1..16 hex digits; 0 or -EINVAL. */
int col_fp_parse(const char *s, uint64_t *fp);

#endif /* COL_STMT_H */

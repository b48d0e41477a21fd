/*
 * stmt.c - statements as the collector keeps them (stmt.h).
 */
#include "config.h"
#include "stmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ap_sql.h"
#include "ap_wire.h"
#include "col.h"

/* Keeps the code a short printable token: it becomes part of an error
 * type ("SQLSTATE 42P01"), a label and a key. */
static size_t clean_code(const char *in, size_t len, char *out)
{
	size_t n = len < COL_ERR_CODE_MAX - 1 ? len : COL_ERR_CODE_MAX - 1;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		int ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		         (c >= 'a' && c <= 'z') || c == '_' || c == '-';
		out[i] = ok ? c : '?';
	}
	out[n] = '\0';
	return n;
}

struct col_stmt *col_stmt_new(const struct ap_rec_sql *r, int64_t wall_minus_mono_ns,
                              double slow_ms)
{
	/* Cleaning never makes text longer, so each string needs its wire
	 * length, cut to its bound, plus a NUL. */
	size_t sql_cap = (r->sql.len < COL_SQL_TEXT_MAX ? (size_t)r->sql.len : COL_SQL_TEXT_MAX) + 1;
	size_t msg_cap = (r->error_message.len < COL_SQL_MESSAGE_MAX ? (size_t)r->error_message.len
	                                                             : COL_SQL_MESSAGE_MAX) + 1;
	size_t need = sql_cap + COL_ERR_CODE_MAX + msg_cap;
	struct col_stmt *s = malloc(sizeof *s + need);
	if (s == NULL)
		return NULL;
	char *d = s->data;
	s->sql = d;
	d += col_clean_text(r->sql.p, r->sql.len, d, sql_cap) + 1;
	s->error_code = d;
	d += clean_code(r->error_code.p, r->error_code.len, d) + 1;
	s->error_message = d;
	col_clean_text(r->error_message.p, r->error_message.len, d, msg_cap);

	s->ts_ns = (int64_t)(r->start_ns + (uint64_t)wall_minus_mono_ns);
	s->duration_ms = r->end_ns > r->start_ns ? (double)(r->end_ns - r->start_ns) / 1e6 : 0;
	s->rows = r->rows;
	s->fingerprint = r->fingerprint;
	s->db = r->db;
	s->flags = r->flags;
	if (r->sql.len > COL_SQL_TEXT_MAX)
		s->flags |= AP_SQLF_TRUNCATED;
	s->slow = s->duration_ms >= slow_ms;
	s->failed = (r->flags & AP_SQLF_ERROR) != 0;
	s->prepare = (r->flags & AP_SQLF_PREPARE) != 0;
	s->rows_known = (r->flags & AP_SQLF_ROWS_UNKNOWN) == 0;
	/* On the text as sent: cleaning turns a newline ending a `--`
	 * comment into '?', which would hide the statement behind it. */
	s->session = (uint8_t)ap_sql_is_session(r->sql.p, r->sql.len);
	return s;
}

void col_stmt_free(struct col_stmt *s)
{
	free(s);
}

const char *col_sql_db_name(int db)
{
	switch (db) {
	case AP_DB_POSTGRES:
		return "postgresql";
	case AP_DB_MYSQL:
		return "mysql";
	case AP_DB_SQLITE:
		return "sqlite";
	default:
		return "unknown";
	}
}

int col_sql_db_lookup(const char *s)
{
	for (int db = AP_DB_POSTGRES; db <= AP_DB_SQLITE; db++)
		if (strcmp(s, col_sql_db_name(db)) == 0)
			return db;
	return -1;
}

char *col_sql_error_type(int db, const char *code, char *out, size_t outlen)
{
	const char *prefix = db == AP_DB_POSTGRES ? "SQLSTATE"
	                     : db == AP_DB_MYSQL  ? "MySQL"
	                     : db == AP_DB_SQLITE ? "SQLite"
	                                          : "SQL";
	snprintf(out, outlen, "%s %s", prefix, code && code[0] ? code : "unknown");
	return out;
}

char *col_fp_hex(uint64_t fp, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--) {
		out[i] = hex[fp & 15];
		fp >>= 4;
	}
	out[16] = '\0';
	return out;
}

int col_fp_parse(const char *s, uint64_t *fp)
{
	uint64_t v = 0;
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		int d = c >= '0' && c <= '9' ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0 || n >= 16)
			return -EINVAL;
		v = v << 4 | (uint64_t)d;
	}
	if (n == 0)
		return -EINVAL;
	*fp = v;
	return 0;
}

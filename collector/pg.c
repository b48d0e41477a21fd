/*
 * pg.c - PostgreSQL helpers (pg.h).
 */
#include "config.h"
#include "pg.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epset.h"
#include "findings.h"
#include "shapeset.h"
#include "sketch.h"

/* libpq's messages span lines; the log wants one. */
static void one_line(char *buf)
{
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = p[1] ? ' ' : '\0';
}

const char *col_pg_error(PGconn *conn, char *buf, size_t len)
{
	const char *m = conn ? PQerrorMessage(conn) : "out of memory";
	snprintf(buf, len, "%s", m && m[0] ? m : "unknown error");
	one_line(buf);
	return buf;
}

/* NOTICEs ("relation already exists, skipping") are not for our log. */
static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

PGconn *col_pg_connect(const char *uri, char *err, size_t errlen)
{
	/* Defaults before the URI, which may override them; the encoding
	 * after it (COPY data and results are UTF-8). Keepalives and a TCP
	 * user timeout notice a database gone silent (a network partition) in
	 * about 10 s rather than the kernel's minutes. */
	static const char *const keys[] = {
		"connect_timeout", "application_name", "keepalives", "keepalives_idle",
		"keepalives_interval", "keepalives_count", "tcp_user_timeout",
		"dbname", "client_encoding", NULL
	};
	const char *vals[] = { "3", "apiprof-collector", "1", "5", "2", "3", "10000",
	                       uri, "UTF8", NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		col_pg_error(c, err, errlen);
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet, NULL);
	return c;
}

/* The outcome of this thread's last statement (col_pg_note()): its
 * SQLSTATE and message when it failed, empty when it succeeded. */
static __thread char fail_state[6];
static __thread char fail_msg[512];

/* conn: the statement's connection, whose message is the failure's when
 * no result came (NULL: none known). */
static void note(PGconn *conn, const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	if (r != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
	                  st == PGRES_COPY_IN)) {
		fail_state[0] = fail_msg[0] = '\0';
		return;
	}
	const char *c = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	snprintf(fail_state, sizeof fail_state, "%s", c ? c : "");
	/* The primary message only: the CONTEXT of a failed COPY quotes a
	 * whole row. A failure libpq found itself (a connection lost
	 * mid-statement) has no fields: its text is kept now, as the
	 * connection's is replaced by the next statement's (a ROLLBACK's "no
	 * connection to the server"). */
	if (m != NULL)
		snprintf(fail_msg, sizeof fail_msg, "%s (SQLSTATE %s)", m, fail_state);
	else
		snprintf(fail_msg, sizeof fail_msg, "%s",
		         r ? PQresultErrorMessage(r) : conn ? PQerrorMessage(conn) : "");
	one_line(fail_msg);
}

void col_pg_note(const PGresult *r)
{
	note(NULL, r);
}

const char *col_pg_failure(PGconn *conn, char *buf, size_t len)
{
	if (fail_msg[0] == '\0')
		return col_pg_error(conn, buf, len);
	snprintf(buf, len, "%s", fail_msg);
	return buf;
}

void col_pg_forget(void)
{
	fail_state[0] = fail_msg[0] = '\0';
}

int col_pg_take_failure(PGconn *conn, char *buf, size_t len)
{
	/* 08 connection, 40 rollback (deadlock, serialization), 53 resources
	 * (disk full, out of memory, too many connections), 55 a lock not
	 * available, 57 operator intervention (statement timeout, shutdown),
	 * 58 system (I/O), XX internal (damage) */
	static const char *const classes[] = { "08", "40", "53", "55", "57", "58", "XX" };
	int transient = 0;
	col_pg_failure(conn, buf, len);
	for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
		if (strncmp(fail_state, classes[i], 2) == 0)
			transient = 1;
	col_pg_forget();
	return transient;
}

int col_pg_exec(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);
	note(conn, r);
	PQclear(r);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -EIO;
}

void col_pg_rollback(PGconn *conn)
{
	PQclear(PQexec(conn, "ROLLBACK"));
}

void col_pg_p_text(struct col_pg_params *p, const char *s)
{
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n++] = 0;
}

void col_pg_p_i64(struct col_pg_params *p, int64_t v)
{
	snprintf(p->buf[p->n], sizeof p->buf[0], "%" PRId64, v);
	col_pg_p_text(p, p->buf[p->n]);
}

const char *col_pg_fmt_f64(double v, char *buf, size_t len)
{
	if (isnan(v))
		snprintf(buf, len, "NaN");
	else if (isinf(v))
		snprintf(buf, len, v > 0 ? "Infinity" : "-Infinity");
	else
		snprintf(buf, len, "%.17g", v);
	return buf;
}

void col_pg_p_f64(struct col_pg_params *p, double v)
{
	col_pg_fmt_f64(v, p->buf[p->n], sizeof p->buf[0]);
	col_pg_p_text(p, p->buf[p->n]);
}

void col_pg_p_bin(struct col_pg_params *p, const void *data, size_t len)
{
	p->v[p->n] = data;
	p->len[p->n] = (int)len;
	p->fmt[p->n++] = 1;
}

PGresult *col_pg_run(PGconn *conn, const char *sql, const struct col_pg_params *p)
{
	PGresult *r = PQexecParams(conn, sql, p ? p->n : 0, NULL, p ? p->v : NULL,
	                           p ? p->len : NULL, p ? p->fmt : NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	note(conn, r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		PQclear(r);
		return NULL;
	}
	return r;
}

int64_t col_pg_i64(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

double col_pg_f64(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	return strtod(PQgetvalue(r, row, col), NULL);
}

const char *col_pg_str(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

/* Merges a text-format bytea sketch into dst. */
static int merge_sketch(const PGresult *r, int row, int col, struct col_sketch *dst,
                        uint64_t n)
{
	if (PQgetisnull(r, row, col))
		return n ? -EINVAL : 0;
	size_t len = 0;
	unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &len);
	if (b == NULL)
		return -ENOMEM;
	int rc = len ? col_sketch_merge_encoded(dst, b, len) : (n ? -EINVAL : 0);
	PQfreemem(b);
	return rc;
}

int col_pg_read_stats(const PGresult *r, int row, int c, struct col_stats *o)
{
	o->count = (uint64_t)col_pg_i64(r, row, c);
	o->error_count = (uint64_t)col_pg_i64(r, row, c + 1);
	o->slow_count = (uint64_t)col_pg_i64(r, row, c + 2);
	o->sum_ms = col_pg_f64(r, row, c + 3);
	o->min_ms = col_pg_f64(r, row, c + 4);
	o->max_ms = col_pg_f64(r, row, c + 5);
	o->sql_count = (uint64_t)col_pg_i64(r, row, c + 6);
	o->sql_time_ms = col_pg_f64(r, row, c + 7);
	o->n_plus_one_count = (uint64_t)col_pg_i64(r, row, c + 8);
	return merge_sketch(r, row, c + 9, &o->sketch, o->count);
}

int col_pg_read_shape_stats(const PGresult *r, int row, int c, struct col_shape_stats *o)
{
	o->calls = (uint64_t)col_pg_i64(r, row, c);
	o->total_ms = col_pg_f64(r, row, c + 1);
	o->max_ms = col_pg_f64(r, row, c + 2);
	o->rows = (uint64_t)col_pg_i64(r, row, c + 3);
	o->errors = (uint64_t)col_pg_i64(r, row, c + 4);
	o->slow_count = (uint64_t)col_pg_i64(r, row, c + 5);
	return merge_sketch(r, row, c + 6, &o->sketch, o->calls);
}

void col_pg_error_row(const PGresult *r, int i, struct col_error_row *e)
{
	const char *method = col_pg_str(r, i, 1);
	*e = (struct col_error_row){
		.service = (char *)col_pg_str(r, i, 0),
		.method = method[0] ? method : NULL,
		.route = method[0] ? col_pg_str(r, i, 2) : NULL,
		.type = col_pg_str(r, i, 3),
		.message = col_pg_str(r, i, 4),
		.count = (uint64_t)col_pg_i64(r, i, 5),
		.first_ns = col_pg_i64(r, i, 6),
		.last_ns = col_pg_i64(r, i, 7),
		.example_id = col_pg_i64(r, i, 8),
	};
}

void col_pg_n1_row(const PGresult *r, int i, struct col_n1_row *n)
{
	int64_t rep = col_pg_i64(r, i, 6);
	*n = (struct col_n1_row){
		.service = (char *)col_pg_str(r, i, 0),
		.method = col_pg_str(r, i, 1),
		.route = col_pg_str(r, i, 2),
		.fp = (uint64_t)col_pg_i64(r, i, 3),
		.sql = col_pg_str(r, i, 4),
		.occurrences = (uint64_t)col_pg_i64(r, i, 5),
		.max_repeats = rep < 0 ? 0 : rep > UINT32_MAX ? UINT32_MAX : (uint32_t)rep,
		.first_ns = col_pg_i64(r, i, 7),
		.last_ns = col_pg_i64(r, i, 8),
		.example_id = col_pg_i64(r, i, 9),
	};
}

/* ---- COPY ... FROM STDIN, text format ---- */

static void buf_put(struct col_pg_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 65536;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* The length of a valid UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	size_t n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
	         : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (n == 0 || (n == 2 && s[0] < 0xc2) || s[0] > 0xf4)
		return 0;
	/* Overlong forms, UTF-16 surrogates and past U+10FFFF: PostgreSQL
	 * refuses them too. */
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A text field of COPY's text format: escaped, and invalid UTF-8 bytes
 * replaced by '?' so that one bad byte cannot fail a whole batch. */
void col_pg_copy_text(struct col_pg_buf *b, const char *s)
{
	if (s == NULL) {
		buf_put(b, "\\N", 2);
		return;
	}
	const unsigned char *u = (const unsigned char *)s;
	while (*u) {
		const char *esc = NULL;
		switch (*u) {
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default: break;
		}
		if (esc) {
			buf_put(b, esc, 2);
			u++;
			continue;
		}
		size_t n = utf8_len(u);
		if (n == 0) {
			buf_put(b, "?", 1);
			u++;
		} else {
			buf_put(b, (const char *)u, n);
			u += n;
		}
	}
}

void col_pg_copy_i64(struct col_pg_buf *b, int64_t v)
{
	char buf[32];
	buf_put(b, buf, (size_t)snprintf(buf, sizeof buf, "%" PRId64, v));
}

void col_pg_copy_f64(struct col_pg_buf *b, double v)
{
	char buf[40];
	col_pg_fmt_f64(v, buf, sizeof buf);
	buf_put(b, buf, strlen(buf));
}

void col_pg_copy_sep(struct col_pg_buf *b, char c)
{
	buf_put(b, &c, 1);
}

/* 1 when the query parameter name k[0..n) is one whose value is a secret:
 * password, or sslpassword (the client key's passphrase), compared as
 * libpq compares it, after percent-decoding (pass%77ord is a password). */
static int pg_secret_key(const char *k, size_t n)
{
	char name[16];
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		if (c == '%' && i + 2 < n && isxdigit((unsigned char)k[i + 1]) &&
		    isxdigit((unsigned char)k[i + 2])) {
			char hex[3] = { k[i + 1], k[i + 2], '\0' };
			c = (char)strtol(hex, NULL, 16);
			i += 2;
		}
		if (m + 1 >= sizeof name)
			return 0;
		name[m++] = c;
	}
	name[m] = '\0';
	return strcmp(name, "password") == 0 || strcmp(name, "sslpassword") == 0;
}

/* Masks the value of every secret parameter (pg_secret_key()) of a URI in
 * out (a buffer of len bytes), in place. Every '?' and '&' is taken as a
 * parameter's start, whichever part of the URI it is in: a '?' in the
 * user's password must not hide the query's first parameter. */
static void pg_redact_param(char *out, size_t len)
{
	for (char *p = strpbrk(out, "?&"); p != NULL; p = strpbrk(p, "?&")) {
		p++;
		size_t kn = strcspn(p, "=&?");
		if (p[kn] != '=' || !pg_secret_key(p, kn))
			continue;
		char *v = p + kn + 1, *end = v + strcspn(v, "&");
		char rest[1024];
		snprintf(rest, sizeof rest, "%s", end);
		snprintf(v, len - (size_t)(v - out), "***%s", rest);
		p = v;
	}
}

void col_pg_redact(const char *db, char *out, size_t len)
{
	snprintf(out, len, "%s", db);
	if (strstr(out, "://") != NULL)
		pg_redact_param(out, len);
	char *scheme = strstr(out, "://");
	if (scheme == NULL)
		return;
	char *auth = scheme + 3;
	char *at = strchr(auth, '@'), *slash = strchr(auth, '/');
	if (at == NULL || (slash != NULL && slash < at))
		return;
	char *colon = memchr(auth, ':', (size_t)(at - auth));
	if (colon == NULL)
		return;
	char rest[1024];
	snprintf(rest, sizeof rest, "%s", at);
	snprintf(colon + 1, len - (size_t)(colon + 1 - out), "***%s", rest);
}

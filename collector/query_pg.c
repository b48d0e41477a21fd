/*
 * query_pg.c - the API's readers on PostgreSQL (query_pg.h).
 */
#include "config.h"
#include "query_pg.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epset.h"
#include "log.h"
#include "pg.h"
#include "profile.h"
#include "shapeset.h"
#include "sketch.h"
#include "stmt.h"
#include "store_int.h"
#include "timeseries.h"
#include "windows.h"

struct qconn {
	PGconn *c;
	int busy;
};

struct col_qpg {
	pthread_mutex_t mu;
	pthread_cond_t freed;
	struct qconn *c;
	unsigned n;
	char *uri;
};

static const char req_columns[] =
	"id, ts_ns, host, service, pid, tid, method, path, route, status, duration_ms,"
	" bytes_in, bytes_out, sql_count, sql_time_ms, slow, error, aborted, n_plus_one,"
	" coalesce(message, '')";

/* A reader's connection. A read waits at most 2 s for a lock (as the
 * SQLite readers' busy timeout) and runs at most 30 s (as the writer's
 * statements): without them a read of a table someone locked (VACUUM
 * FULL, an ALTER, a LOCK TABLE) waited as long as the lock, a handful of
 * them held every HTTP thread, and /healthz went unanswered with the
 * rest. It fails instead, a 503 (-EIO). */
static PGconn *qconnect(const char *uri, char *why, size_t whylen)
{
	PGconn *c = col_pg_connect(uri, why, whylen);
	if (c != NULL &&
	    col_pg_exec(c, "SET lock_timeout = '2s'; SET statement_timeout = '30s'") < 0) {
		col_pg_error(c, why, whylen);
		PQfinish(c);
		return NULL;
	}
	return c;
}

void col_qpg_free(struct col_qpg *q)
{
	if (q == NULL)
		return;
	for (unsigned i = 0; i < q->n; i++)
		PQfinish(q->c[i].c);
	free(q->c);
	free(q->uri);
	pthread_cond_destroy(&q->freed);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

struct col_qpg *col_qpg_open(const char *uri, unsigned nconn, char *err, size_t errlen)
{
	struct col_qpg *q = calloc(1, sizeof *q);
	if (q == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->freed, NULL);
	q->n = nconn ? nconn : 1;
	q->c = calloc(q->n, sizeof *q->c);
	q->uri = strdup(uri);
	if (q->c == NULL || q->uri == NULL) {
		snprintf(err, errlen, "out of memory");
		col_qpg_free(q);
		return NULL;
	}
	/* The first now (a bad URI fails at start); the others when needed. */
	char why[512];
	q->c[0].c = qconnect(uri, why, sizeof why);
	if (q->c[0].c == NULL) {
		char shown[1024];
		col_pg_redact(uri, shown, sizeof shown);
		snprintf(err, errlen, "db %s: read connection: %s", shown, why);
		col_qpg_free(q);
		return NULL;
	}
	return q;
}

/* Borrows a connection, (re)connecting it when needed; NULL when the
 * database cannot be reached. */
static struct qconn *acquire(struct col_qpg *q)
{
	struct qconn *c = NULL;
	pthread_mutex_lock(&q->mu);
	while (c == NULL) {
		for (unsigned i = 0; i < q->n && c == NULL; i++)
			if (!q->c[i].busy)
				c = &q->c[i];
		if (c == NULL)
			pthread_cond_wait(&q->freed, &q->mu);
	}
	c->busy = 1;
	pthread_mutex_unlock(&q->mu);
	if (c->c != NULL && PQstatus(c->c) != CONNECTION_OK) {
		PQfinish(c->c);
		c->c = NULL;
	}
	if (c->c == NULL) {
		char why[512];
		c->c = qconnect(q->uri, why, sizeof why);
		if (c->c == NULL) {
			col_log(COL_LOG_WARN, "query: database unreachable: %s", why);
			pthread_mutex_lock(&q->mu);
			c->busy = 0;
			pthread_cond_signal(&q->freed);
			pthread_mutex_unlock(&q->mu);
			return NULL;
		}
	}
	return c;
}

/* A connection the server closed (a restart, an idle timeout) is only seen
 * as such by the first statement that fails on it: then reconnect and run
 * that first statement once more. */
static int revive(struct col_qpg *q, struct qconn *c)
{
	if (PQstatus(c->c) == CONNECTION_OK)
		return 0;
	char why[512];
	PQfinish(c->c);
	c->c = qconnect(q->uri, why, sizeof why);
	return c->c != NULL ? 1 : 0;
}

static PGresult *qrun(struct col_qpg *q, struct qconn *c, const char *sql,
                      const struct col_pg_params *p)
{
	PGresult *r = col_pg_run(c->c, sql, p);
	if (r == NULL && revive(q, c))
		r = col_pg_run(c->c, sql, p);
	return r;
}

static int qbegin(struct col_qpg *q, struct qconn *c)
{
	static const char begin[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
	if (col_pg_exec(c->c, begin) == 0)
		return 0;
	return revive(q, c) ? col_pg_exec(c->c, begin) : -EIO;
}

static void release(struct col_qpg *q, struct qconn *c)
{
	pthread_mutex_lock(&q->mu);
	c->busy = 0;
	pthread_cond_signal(&q->freed);
	pthread_mutex_unlock(&q->mu);
}

static void db_error(struct qconn *c, const char *what)
{
	char buf[512];
	col_log(COL_LOG_ERROR, "query: %s: %s", what, col_pg_failure(c->c, buf, sizeof buf));
}

static void read_view(const PGresult *r, int i, struct col_req_view *v)
{
	v->id = col_pg_i64(r, i, 0);
	v->ts_ns = col_pg_i64(r, i, 1);
	v->host = col_pg_str(r, i, 2);
	v->service = col_pg_str(r, i, 3);
	v->pid = col_pg_i64(r, i, 4);
	v->tid = col_pg_i64(r, i, 5);
	v->method = col_pg_str(r, i, 6);
	v->path = col_pg_str(r, i, 7);
	v->route = col_pg_str(r, i, 8);
	v->status = (int)col_pg_i64(r, i, 9);
	v->duration_ms = col_pg_f64(r, i, 10);
	v->bytes_in = col_pg_i64(r, i, 11);
	v->bytes_out = col_pg_i64(r, i, 12);
	v->sql_count = col_pg_i64(r, i, 13);
	v->sql_time_ms = col_pg_f64(r, i, 14);
	v->slow = col_pg_i64(r, i, 15) != 0;
	v->error = col_pg_i64(r, i, 16) != 0;
	v->aborted = col_pg_i64(r, i, 17) != 0;
	v->n_plus_one = col_pg_i64(r, i, 18) != 0;
	v->message = col_pg_str(r, i, 19);
}

/* SQL built clause by clause with $n placeholders. */
struct qb {
	char sql[2048];
	size_t len;
	struct col_pg_params p;
};

static void qb_add(struct qb *b, const char *text)
{
	size_t n = strlen(text);
	if (b->len + n < sizeof b->sql) {
		memcpy(b->sql + b->len, text, n + 1);
		b->len += n;
	}
}

/* Appends clause with "$?" replaced by the next parameter's number. */
static void qb_param(struct qb *b, const char *clause)
{
	char buf[256], num[16];
	snprintf(num, sizeof num, "$%d", b->p.n + 1);
	const char *q = strstr(clause, "$?");
	if (q == NULL) {
		qb_add(b, clause);
		return;
	}
	snprintf(buf, sizeof buf, "%.*s%s%s", (int)(q - clause), clause, num, q + 2);
	qb_add(b, buf);
}

static void qb_text(struct qb *b, const char *clause, const char *v)
{
	qb_param(b, clause);
	col_pg_p_text(&b->p, v);
}

static void qb_int(struct qb *b, const char *clause, int64_t v)
{
	qb_param(b, clause);
	col_pg_p_i64(&b->p, v);
}

/* Runs a built query on a borrowed connection: the result, or NULL
 * (logged as `what`). */
static PGresult *fetch(struct col_qpg *q, const struct qb *b, const char *what)
{
	struct qconn *c = acquire(q);
	if (c == NULL)
		return NULL;
	PGresult *r = qrun(q, c, b->sql, &b->p);
	if (r == NULL)
		db_error(c, what);
	release(q, c);
	return r;
}

int col_qpg_requests(struct col_qpg *q, const struct col_req_filter *f, col_req_cb cb,
                     void *arg, int *more)
{
	struct qb b = { .len = 0 };
	*more = 0;
	qb_add(&b, "SELECT ");
	qb_add(&b, req_columns);
	qb_add(&b, " FROM requests WHERE true");
	if (f->service)
		qb_text(&b, " AND service = $?", f->service);
	if (f->host)
		qb_text(&b, " AND host = $?", f->host);
	if (f->route)
		qb_text(&b, " AND route = $?", f->route);
	if (f->method)
		qb_text(&b, " AND method = $?", f->method);
	if (f->q)
		qb_text(&b, " AND strpos(path, $?) > 0", f->q);
	if (f->status_lo >= 0 && f->status_lo == f->status_hi)
		qb_int(&b, " AND status = $?", f->status_lo);
	else if (f->status_lo >= 0) {
		qb_int(&b, " AND status >= $?", f->status_lo);
		qb_int(&b, " AND status <= $?", f->status_hi);
	}
	if (f->slow >= 0)
		qb_add(&b, f->slow ? " AND slow = 1" : " AND slow = 0");
	if (f->error >= 0)
		qb_add(&b, f->error ? " AND error = 1" : " AND error = 0");
	if (f->n_plus_one >= 0)
		qb_add(&b, f->n_plus_one ? " AND n_plus_one = 1" : " AND n_plus_one = 0");
	if (f->before > 0)
		qb_int(&b, " AND id < $?", f->before);
	if (f->since_ns != INT64_MIN)
		qb_int(&b, " AND ts_ns >= $?", f->since_ns);
	if (f->until_ns != INT64_MAX)
		qb_int(&b, " AND ts_ns < $?", f->until_ns);
	int limit = f->limit > 0 ? f->limit : 1;
	qb_int(&b, " ORDER BY id DESC LIMIT $?", (int64_t)limit + 1);

	PGresult *r = fetch(q, &b, "listing requests");
	if (r == NULL)
		return -EIO;
	int n = 0, ret = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		if (n == limit) {
			*more = 1;
			break;
		}
		struct col_req_view v;
		read_view(r, i, &v);
		ret = cb(arg, &v);
		if (ret != 0)
			break;
		n++;
	}
	PQclear(r);
	return ret != 0 ? ret : n;
}

static int read_request(struct qconn *c, int64_t id, const struct col_detail_cbs *cbs)
{
	char sql[512];
	struct col_pg_params p = { 0 };
	col_pg_p_i64(&p, id);
	snprintf(sql, sizeof sql, "SELECT %s FROM requests WHERE id = $1", req_columns);
	PGresult *r = col_pg_run(c->c, sql, &p);
	if (r == NULL)
		goto fail;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	struct col_req_view v;
	read_view(r, 0, &v);
	int ret = cbs->request(cbs->arg, &v);
	PQclear(r);
	if (ret != 0)
		return ret;
	if (cbs->stmt) {
		r = col_pg_run(c->c, "SELECT seq, ts_ns, duration_ms, db, fingerprint, sql, rows,"
		               " error_code, error_message, slow, prepare, truncated"
		               " FROM queries WHERE request_id = $1 ORDER BY seq", &p);
		if (r == NULL)
			goto fail;
		for (int i = 0; i < PQntuples(r); i++) {
			struct col_stmt_view s = {
				.seq = (int)col_pg_i64(r, i, 0),
				.ts_ns = col_pg_i64(r, i, 1),
				.duration_ms = col_pg_f64(r, i, 2),
				.db = col_pg_str(r, i, 3),
				.fingerprint = col_store_fp_from_db(col_pg_i64(r, i, 4)),
				.sql = col_pg_str(r, i, 5),
				.rows = PQgetisnull(r, i, 6) ? -1 : col_pg_i64(r, i, 6),
				.error_code = PQgetisnull(r, i, 7) ? NULL : col_pg_str(r, i, 7),
				.error_message = col_pg_str(r, i, 8),
				.slow = col_pg_i64(r, i, 9) != 0,
				.prepare = col_pg_i64(r, i, 10) != 0,
				.truncated = col_pg_i64(r, i, 11) != 0,
			};
			ret = cbs->stmt(cbs->arg, &s);
			if (ret != 0) {
				PQclear(r);
				return ret;
			}
		}
		PQclear(r);
	}
	if (cbs->n1) {
		r = col_pg_run(c->c, "SELECT fingerprint, count, sql FROM request_n_plus_one"
		               " WHERE request_id = $1 ORDER BY count DESC, fingerprint", &p);
		if (r == NULL)
			goto fail;
		for (int i = 0; i < PQntuples(r); i++) {
			struct col_n1_view n = {
				.fingerprint = col_store_fp_from_db(col_pg_i64(r, i, 0)),
				.count = col_pg_i64(r, i, 1),
				.sql = col_pg_str(r, i, 2),
			};
			ret = cbs->n1(cbs->arg, &n);
			if (ret != 0) {
				PQclear(r);
				return ret;
			}
		}
		PQclear(r);
	}
	return 1;
fail:
	db_error(c, "reading a request");
	return -EIO;
}

int col_qpg_request_detail(struct col_qpg *q, int64_t id, const struct col_detail_cbs *cbs)
{
	struct qconn *c = acquire(q);
	if (c == NULL)
		return -EIO;
	/* One snapshot: retention cannot drop the statements in between. */
	if (qbegin(q, c) < 0) {
		db_error(c, "reading a request");
		release(q, c);
		return -EIO;
	}
	int ret = read_request(c, id, cbs);
	col_pg_exec(c->c, "COMMIT");
	release(q, c);
	return ret;
}

/* Reads minute_flush's last batch of our_host and runs the minute query,
 * in one snapshot. Returns the result of the second, or NULL. */
static PGresult *minutes_snapshot(struct col_qpg *q, struct qconn *c, const char *our_host, const char *columns,
                                  const char *table, const char *alias, int64_t from_s,
                                  int64_t to_s,
                                  const char *service, const char *host,
                                  uint64_t *last_batch)
{
	*last_batch = 0;
	if (qbegin(q, c) < 0)
		return NULL;
	struct col_pg_params hp = { 0 };
	col_pg_p_text(&hp, our_host);
	PGresult *r = col_pg_run(c->c, "SELECT last_batch FROM minute_flush WHERE host = $1", &hp);
	if (r == NULL) {
		col_pg_rollback(c->c);
		return NULL;
	}
	if (PQntuples(r) == 1)
		*last_batch = (uint64_t)col_pg_i64(r, 0, 0);
	PQclear(r);
	struct qb b = { .len = 0 };
	qb_add(&b, "SELECT ");
	qb_add(&b, columns);
	qb_add(&b, " FROM ");
	qb_add(&b, table);
	char cl[64];
	snprintf(cl, sizeof cl, " WHERE %sminute >= $?", alias);
	qb_int(&b, cl, from_s);
	snprintf(cl, sizeof cl, " AND %sminute < $?", alias);
	qb_int(&b, cl, to_s);
	if (service) {
		snprintf(cl, sizeof cl, " AND %sservice = $?", alias);
		qb_text(&b, cl, service);
	}
	if (host) {
		snprintf(cl, sizeof cl, " AND %shost = $?", alias);
		qb_text(&b, cl, host);
	}
	r = col_pg_run(c->c, b.sql, &b.p);
	if (r != NULL)
		col_pg_exec(c->c, "COMMIT");
	else
		col_pg_rollback(c->c);
	return r;
}

/* Merges rows of (service, method, route, then col_pg_read_stats()'s
 * columns) into out; sketches merge exactly, so a fleet's p95 is as
 * accurate as a host's. 0 or -ENOMEM. */
static int merge_ep_rows(const PGresult *r, struct col_epset *out)
{
	int ret = 0;
	for (int i = 0; i < PQntuples(r) && ret == 0; i++) {
		struct col_ep *e = col_epset_get(out, col_pg_str(r, i, 0), col_pg_str(r, i, 1),
		                                 col_pg_str(r, i, 2), 1);
		struct col_stats row = { 0 };
		int rr = col_pg_read_stats(r, i, 3, &row);
		if (e == NULL || rr == -ENOMEM || col_stats_merge(&e->st, &row) < 0)
			ret = -ENOMEM;
		else
			e->dirty = 1;
		col_stats_release(&row);
	}
	return ret;
}

int col_qpg_minutes(struct col_qpg *q, const char *our_host, int64_t from_s, int64_t to_s,
                    const char *service, const char *host, struct col_epset *out,
                    uint64_t *last_batch)
{
	struct qconn *c = acquire(q);
	if (c == NULL)
		return -EIO;
	PGresult *r = minutes_snapshot(q, c, our_host,
		"service, method, route, count, error_count, slow_count, sum_ms, min_ms, max_ms,"
		" sql_count, sql_time_ms, n_plus_one_count, sketch", "endpoint_minutes", "",
		from_s, to_s, service, host, last_batch);
	if (r == NULL) {
		db_error(c, "endpoint minutes");
		release(q, c);
		return -EIO;
	}
	release(q, c);
	int ret = merge_ep_rows(r, out);
	PQclear(r);
	return ret;
}

/* Merges rows of (service, db, fingerprint, calls, total_ms, max_ms, rows,
 * errors, slow_count, sketch, sql) into out. 0 or -ENOMEM. */
static int merge_shape_rows(const PGresult *r, struct col_shapeset *out)
{
	int ret = 0;
	for (int i = 0; i < PQntuples(r) && ret == 0; i++) {
		const char *svc = col_pg_str(r, i, 0);
		int dbv = col_sql_db_lookup(col_pg_str(r, i, 1));
		uint8_t dbb = (uint8_t)(dbv < 0 ? 0 : dbv);
		uint64_t fp = col_store_fp_from_db(col_pg_i64(r, i, 2));
		const char *text = fp == COL_SHAPE_OTHER_FP ? COL_SHAPE_OTHER_SQL : col_pg_str(r, i, 10);
		struct col_shape *e = col_shapeset_get(out, svc, dbb, fp, NULL, 0);
		if (e == NULL)
			e = col_shapeset_get(out, svc, dbb, fp, text, 1);
		struct col_shape_stats row = { 0 };
		int rr = col_pg_read_shape_stats(r, i, 3, &row);
		if (e == NULL || rr == -ENOMEM || col_shape_stats_merge(&e->st, &row) < 0)
			ret = -ENOMEM;
		else
			e->dirty = 1;
		col_shape_stats_release(&row);
	}
	return ret;
}

int col_qpg_shape_minutes(struct col_qpg *q, const char *our_host, int64_t from_s,
                          int64_t to_s, const char *service, const char *host,
                          struct col_shapeset *out, uint64_t *last_batch)
{
	struct qconn *c = acquire(q);
	if (c == NULL)
		return -EIO;
	PGresult *r = minutes_snapshot(q, c, our_host,
		"m.service, m.db, m.fingerprint, m.calls, m.total_ms, m.max_ms, m.rows, m.errors,"
		" m.slow_count, m.sketch, coalesce(t.sql, '')",
		"query_minutes m LEFT JOIN query_shapes t ON t.service = m.service AND t.db = m.db"
		" AND t.fingerprint = m.fingerprint", "m.", from_s, to_s, service, host, last_batch);
	if (r == NULL) {
		db_error(c, "query minutes");
		release(q, c);
		return -EIO;
	}
	release(q, c);
	int ret = merge_shape_rows(r, out);
	PQclear(r);
	return ret;
}

/* The WHERE clause of the totals: other hosts than ours, or one. */
static void totals_where(struct qb *b, const char *alias, const char *our_host,
                         const char *service, const char *host)
{
	char cl[64];
	snprintf(cl, sizeof cl, host ? " WHERE %shost = $?" : " WHERE %shost <> $?", alias);
	qb_text(b, cl, host ? host : our_host);
	if (service) {
		snprintf(cl, sizeof cl, " AND %sservice = $?", alias);
		qb_text(b, cl, service);
	}
}

int col_qpg_totals(struct col_qpg *q, const char *our_host, const char *service,
                   const char *host, struct col_epset *out)
{
	struct qb b = { .len = 0 };
	qb_add(&b, "SELECT service, method, route, count, error_count, slow_count, sum_ms,"
	       " min_ms, max_ms, sql_count, sql_time_ms, n_plus_one_count, sketch"
	       " FROM endpoint_totals");
	totals_where(&b, "", our_host, service, host);
	PGresult *r = fetch(q, &b, "endpoint totals");
	if (r == NULL)
		return -EIO;
	int ret = merge_ep_rows(r, out);
	PQclear(r);
	return ret;
}

int col_qpg_shape_totals(struct col_qpg *q, const char *our_host, const char *service,
                         const char *host, struct col_shapeset *out)
{
	struct qb b = { .len = 0 };
	qb_add(&b, "SELECT m.service, m.db, m.fingerprint, m.calls, m.total_ms, m.max_ms, m.rows,"
	       " m.errors, m.slow_count, m.sketch, coalesce(t.sql, '') FROM query_totals m"
	       " LEFT JOIN query_shapes t ON t.service = m.service AND t.db = m.db"
	       " AND t.fingerprint = m.fingerprint");
	totals_where(&b, "m.", our_host, service, host);
	PGresult *r = fetch(q, &b, "query totals");
	if (r == NULL)
		return -EIO;
	int ret = merge_shape_rows(r, out);
	PQclear(r);
	return ret;
}

/* A copy of n strings in one allocation (a findings row owns its strings
 * through its service pointer); ptrs[i] point into it. NULL: no memory. */
static char *pack(const char *const *s, const char **ptrs, int n)
{
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += strlen(s[i] ? s[i] : "") + 1;
	char *p = malloc(len), *d = p;
	if (p == NULL)
		return NULL;
	for (int i = 0; i < n; i++) {
		if (s[i] == NULL) {
			ptrs[i] = NULL;
			*d++ = '\0';
			continue;
		}
		size_t l = strlen(s[i]) + 1;
		memcpy(d, s[i], l);
		ptrs[i] = d;
		d += l;
	}
	return p;
}

/* The findings filter and host as WHERE clauses. */
static void find_where(struct qb *b, const struct col_find_filter *f, const char *host)
{
	qb_add(b, " WHERE true");
	if (f->service)
		qb_text(b, " AND service = $?", f->service);
	if (host)
		qb_text(b, " AND host = $?", host);
	if (f->since_ns != INT64_MIN)
		qb_int(b, " AND last_seen_ns >= $?", f->since_ns);
	if (f->until_ns != INT64_MAX)
		qb_int(b, " AND first_seen_ns < $?", f->until_ns);
}

/* The column lists of COL_PG_ERROR_COLUMNS / COL_PG_N1_COLUMNS, merged
 * over hosts: sums, extremes, and the newest host's texts and example. */
#define NEWEST(col) "(array_agg(" col " ORDER BY last_seen_ns DESC))[1]"

int col_qpg_errors(struct col_qpg *q, const struct col_find_filter *f, const char *host,
                   struct col_error_rows *out)
{
	struct qb b = { .len = 0 };
	out->v = NULL;
	out->n = 0;
	qb_add(&b, "SELECT service, method, route, type, " NEWEST("message") ", sum(count),"
	       " min(first_seen_ns), max(last_seen_ns),"
	       " coalesce(" NEWEST("example_request_id") ", 0) FROM error_groups");
	find_where(&b, f, host);
	qb_add(&b, " GROUP BY service, method, route, type"
	       " ORDER BY 8 DESC, 6 DESC, service, method, route, type");
	PGresult *r = fetch(q, &b, "error groups");
	if (r == NULL)
		return -EIO;
	int n = PQntuples(r);
	out->v = n ? calloc((size_t)n, sizeof *out->v) : NULL;
	for (int i = 0; i < n && out->v; i++) {
		struct col_error_row e;
		col_pg_error_row(r, i, &e);
		const char *str[5] = { e.service, e.method, e.route, e.type, e.message };
		const char *p[5];
		e.service = pack(str, p, 5);
		if (e.service == NULL)
			break;
		e.method = p[1];
		e.route = p[2];
		e.type = p[3];
		e.message = p[4];
		out->v[out->n++] = e;
	}
	PQclear(r);
	if ((size_t)n != out->n) {
		col_error_rows_free(out);
		return -ENOMEM;
	}
	return 0;
}

int col_qpg_patterns(struct col_qpg *q, const struct col_find_filter *f, const char *host,
                     struct col_n1_rows *out)
{
	struct qb b = { .len = 0 };
	out->v = NULL;
	out->n = 0;
	qb_add(&b, "SELECT service, method, route, fingerprint, " NEWEST("sql") ","
	       " sum(occurrences), max(max_repeats), min(first_seen_ns), max(last_seen_ns),"
	       " coalesce(" NEWEST("example_request_id") ", 0) FROM n_plus_one_patterns");
	find_where(&b, f, host);
	qb_add(&b, " GROUP BY service, method, route, fingerprint"
	       " ORDER BY 6 DESC, 9 DESC, service, method, route, fingerprint");
	PGresult *r = fetch(q, &b, "N+1 patterns");
	if (r == NULL)
		return -EIO;
	int n = PQntuples(r);
	out->v = n ? calloc((size_t)n, sizeof *out->v) : NULL;
	for (int i = 0; i < n && out->v; i++) {
		struct col_n1_row e;
		col_pg_n1_row(r, i, &e);
		const char *str[4] = { e.service, e.method, e.route, e.sql };
		const char *p[4];
		e.service = pack(str, p, 4);
		if (e.service == NULL)
			break;
		e.method = p[1];
		e.route = p[2];
		e.sql = p[3];
		out->v[out->n++] = e;
	}
	PQclear(r);
	if ((size_t)n != out->n) {
		col_n1_rows_free(out);
		return -ENOMEM;
	}
	return 0;
}

/* ---- summary windows and regressions (windows_pg.h publishes them) ---- */

static void win_where(struct qb *b, const struct col_win_filter *f, int with_type)
{
	qb_add(b, " WHERE true");
	if (f->host)
		qb_text(b, " AND host = $?", f->host);
	if (f->service)
		qb_text(b, " AND service = $?", f->service);
	if (f->method)
		qb_text(b, " AND method = $?", f->method);
	if (f->route)
		qb_text(b, " AND route = $?", f->route);
	if (with_type && f->type >= 0)
		qb_text(b, " AND type = $?", col_reg_type_name(f->type));
	qb_int(b, " AND window_start_ns >= $?", f->since_ns);
	qb_int(b, " AND window_start_ns < $?", f->until_ns);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Merges the sketches of s, hex strings separated by commas (bytea's
 * encode(..., 'hex') joined by string_agg), into sk. 0 or -ENOMEM / -EINVAL. */
static int merge_hex_sketches(struct col_sketch *sk, const char *s)
{
	size_t cap = 0;
	uint8_t *buf = NULL;
	int rc = 0;
	while (rc == 0 && *s) {
		size_t n = strcspn(s, ",");
		if (n / 2 > cap) {
			uint8_t *nb = realloc(buf, n / 2);
			if (nb == NULL) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap = n / 2;
		}
		size_t k = 0;
		for (; k < n / 2; k++) {
			int hi = hexval(s[2 * k]), lo = hexval(s[2 * k + 1]);
			if (hi < 0 || lo < 0)
				break;
			buf[k] = (uint8_t)(hi << 4 | lo);
		}
		if (k == n / 2 && k > 0 && col_sketch_merge_encoded(sk, buf, k) < 0)
			rc = -EINVAL;
		s += n;
		if (*s == ',')
			s++;
	}
	free(buf);
	return rc;
}

int col_qpg_win_summaries(struct col_qpg *q, const struct col_win_filter *f,
                          int (*cb)(void *, const struct col_summary_view *), void *arg)
{
	struct qb b = { .len = 0 };
	/* One row per window and endpoint over the hosts: the host's name
	 * when one host had it, else NULL. */
	qb_add(&b, "SELECT window_start_ns, window_end_ns,"
	       " CASE WHEN count(DISTINCT host) = 1 THEN min(host) END, service, method, route,"
	       " sum(count), sum(sum_ms), min(min_ms), max(max_ms), sum(error_count),"
	       " sum(slow_count), sum(n_plus_one_count), sum(sql_count), sum(sql_time_ms),"
	       " string_agg(encode(sketch, 'hex'), ',') FROM window_summaries");
	win_where(&b, f, 0);
	qb_add(&b, " GROUP BY window_start_ns, window_end_ns, service, method, route"
	       " ORDER BY window_start_ns DESC, 7 DESC, service, route, method");
	qb_int(&b, " LIMIT $?", f->limit);
	PGresult *r = fetch(q, &b, "summaries");
	if (r == NULL)
		return -EIO;
	int n = PQntuples(r), rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		struct col_sketch sk;
		col_sketch_init(&sk);
		uint64_t count = (uint64_t)col_pg_i64(r, i, 6);
		uint64_t errors = (uint64_t)col_pg_i64(r, i, 10);
		double sum_ms = col_pg_f64(r, i, 7);
		if (merge_hex_sketches(&sk, col_pg_str(r, i, 15)) == -ENOMEM)
			rc = -ENOMEM;
		struct col_summary_view v = {
			.start_ns = col_pg_i64(r, i, 0),
			.end_ns = col_pg_i64(r, i, 1),
			.host = PQgetisnull(r, i, 2) ? NULL : col_pg_str(r, i, 2),
			.service = col_pg_str(r, i, 3),
			.method = col_pg_str(r, i, 4),
			.route = col_pg_str(r, i, 5),
			.count = count,
			.avg_ms = count ? sum_ms / (double)count : 0,
			.p95_ms = col_sketch_quantile(&sk, 0.95),
			.min_ms = col_pg_f64(r, i, 8),
			.max_ms = col_pg_f64(r, i, 9),
			.error_count = errors,
			.error_rate = count ? (double)errors / (double)count : 0,
			.slow_count = (uint64_t)col_pg_i64(r, i, 11),
			.n_plus_one_count = (uint64_t)col_pg_i64(r, i, 12),
			.sql_count = (uint64_t)col_pg_i64(r, i, 13),
			.sql_time_ms = col_pg_f64(r, i, 14),
		};
		col_sketch_release(&sk);
		if (rc == 0)
			rc = cb(arg, &v);
	}
	PQclear(r);
	return rc != 0 ? rc : n;
}

int col_qpg_win_regressions(struct col_qpg *q, const struct col_win_filter *f,
                            int (*cb)(void *, const struct col_regression_view *), void *arg)
{
	struct qb b = { .len = 0 };
	qb_add(&b, "SELECT id, type, host, service, method, route, window_start_ns, window_end_ns,"
	       " previous_window_start_ns, previous_avg_ms, current_avg_ms, previous_p95_ms,"
	       " current_p95_ms, previous_error_rate, current_error_rate, previous_count,"
	       " current_count, fingerprint, sql, detected_at_ns, webhook, webhook_attempts"
	       " FROM regressions");
	win_where(&b, f, 1);
	qb_add(&b, " ORDER BY detected_at_ns DESC, id DESC, host");
	qb_int(&b, " LIMIT $?", f->limit);
	PGresult *r = fetch(q, &b, "regressions");
	if (r == NULL)
		return -EIO;
	int n = PQntuples(r), rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		int whs = col_webhook_status_lookup(col_pg_str(r, i, 20));
		struct col_regression_view v = {
			.id = col_pg_i64(r, i, 0),
			.type = col_reg_type_lookup(col_pg_str(r, i, 1)),
			.host = col_pg_str(r, i, 2),
			.service = col_pg_str(r, i, 3),
			.method = col_pg_str(r, i, 4),
			.route = col_pg_str(r, i, 5),
			.window_start_ns = col_pg_i64(r, i, 6),
			.window_end_ns = col_pg_i64(r, i, 7),
			.previous_window_start_ns = col_pg_i64(r, i, 8),
			.previous_avg_ms = col_pg_f64(r, i, 9),
			.current_avg_ms = col_pg_f64(r, i, 10),
			.previous_p95_ms = col_pg_f64(r, i, 11),
			.current_p95_ms = col_pg_f64(r, i, 12),
			.previous_error_rate = col_pg_f64(r, i, 13),
			.current_error_rate = col_pg_f64(r, i, 14),
			.previous_count = (uint64_t)col_pg_i64(r, i, 15),
			.current_count = (uint64_t)col_pg_i64(r, i, 16),
			.fingerprint = col_pg_str(r, i, 17),
			.sql = PQgetisnull(r, i, 18) ? NULL : col_pg_str(r, i, 18),
			.detected_ns = col_pg_i64(r, i, 19),
			.webhook = whs < 0 ? COL_WEBHOOK_NONE : whs,
			.webhook_attempts = (int)col_pg_i64(r, i, 21),
		};
		rc = cb(arg, &v);
	}
	PQclear(r);
	return rc != 0 ? rc : n;
}

int col_qpg_timeseries(struct col_qpg *q, const char *service, const char *host,
                       int64_t first_ns, int64_t last_ns, struct col_ts_bucket **out,
                       size_t *n)
{
	*out = NULL;
	*n = 0;
	struct qb b = { .len = 0 };
	qb_add(&b, "SELECT bucket_ns, sum(requests), sum(sql), sum(request_ms), sum(sql_ms)"
	       " FROM ts_buckets");
	qb_text(&b, " WHERE service = $?", service ? service : "");
	if (host)
		qb_text(&b, " AND host = $?", host);
	qb_int(&b, " AND bucket_ns >= $?", first_ns);
	qb_int(&b, " AND bucket_ns <= $?", last_ns);
	qb_add(&b, " GROUP BY bucket_ns ORDER BY bucket_ns");
	PGresult *r = fetch(q, &b, "timeseries");
	if (r == NULL)
		return -EIO;
	int rows = PQntuples(r);
	struct col_ts_bucket *v = rows ? calloc((size_t)rows, sizeof *v) : NULL;
	if (rows && v == NULL) {
		PQclear(r);
		return -ENOMEM;
	}
	for (int i = 0; i < rows; i++)
		v[i] = (struct col_ts_bucket){
			.service = "",
			.t_ns = col_pg_i64(r, i, 0),
			.requests = (uint64_t)col_pg_i64(r, i, 1),
			.sql = (uint64_t)col_pg_i64(r, i, 2),
			.request_ms = col_pg_f64(r, i, 3),
			.sql_ms = col_pg_f64(r, i, 4),
		};
	PQclear(r);
	*out = v;
	*n = (size_t)rows;
	return 0;
}

/* WHERE clauses of the profile tables' filters. */
static void prof_where(struct qb *b, const char *service, const char *method,
                       const char *route, const char *host)
{
	qb_add(b, " WHERE true");
	if (service)
		qb_text(b, " AND service = $?", service);
	if (method)
		qb_text(b, " AND method = $?", method);
	if (route)
		qb_text(b, " AND route = $?", route);
	if (host)
		qb_text(b, " AND host = $?", host);
}

/* Compares row i's first three columns with e's service, method, route. */
static int cmp_row_ep(const PGresult *r, int i, const struct col_prof_ep *e)
{
	int c = strcmp(col_pg_str(r, i, 0), e->service);
	if (c == 0)
		c = strcmp(col_pg_str(r, i, 1), e->method);
	return c ? c : strcmp(col_pg_str(r, i, 2), e->route);
}

int col_qpg_profile(struct col_qpg *q, const char *service, const char *method,
                    const char *route, const char *host, struct col_prof_rows *out)
{
	out->v = NULL;
	out->n = 0;
	struct qb eb = { .len = 0 }, sb = { .len = 0 };
	/* Both in C order of the endpoint's names, to be walked together. */
	qb_add(&eb, "SELECT service, method, route, sum(samples), sum(requests)"
	       " FROM profile_endpoints");
	prof_where(&eb, service, method, route, host);
	qb_add(&eb, " GROUP BY 1, 2, 3 ORDER BY service COLLATE \"C\", method COLLATE \"C\","
	       " route COLLATE \"C\"");
	qb_add(&sb, "SELECT service, method, route, stack, sum(count) FROM profile_stacks");
	prof_where(&sb, service, method, route, host);
	qb_add(&sb, " GROUP BY 1, 2, 3, 4 ORDER BY service COLLATE \"C\", method COLLATE \"C\","
	       " route COLLATE \"C\", stack COLLATE \"C\"");
	PGresult *er = fetch(q, &eb, "profiles");
	PGresult *sr = er ? fetch(q, &sb, "profile stacks") : NULL;
	if (sr == NULL) {
		PQclear(er);
		return -EIO;
	}
	int ne = PQntuples(er), ns = PQntuples(sr), rc = 0;
	out->v = calloc(ne ? (size_t)ne : 1, sizeof *out->v);
	if (out->v == NULL)
		rc = -ENOMEM;
	int k = 0;
	for (int i = 0; rc == 0 && i < ne; i++) {
		struct col_prof_ep *e = &out->v[out->n++];
		const char *sv = col_pg_str(er, i, 0), *m = col_pg_str(er, i, 1),
		           *rt = col_pg_str(er, i, 2);
		size_t ls = strlen(sv), lm = strlen(m), lr = strlen(rt);
		/* One allocation for the three names, as col_prof_select's. */
		e->service = malloc(ls + lm + lr + 3);
		if (e->service == NULL) {
			rc = -ENOMEM;
			break;
		}
		memcpy(e->service, sv, ls + 1);
		e->method = e->service + ls + 1;
		memcpy(e->method, m, lm + 1);
		e->route = e->method + lm + 1;
		memcpy(e->route, rt, lr + 1);
		e->samples = (uint64_t)col_pg_i64(er, i, 3);
		e->requests = (uint64_t)col_pg_i64(er, i, 4);
		while (k < ns && cmp_row_ep(sr, k, e) < 0)
			k++;
		int first = k;
		while (k < ns && cmp_row_ep(sr, k, e) == 0)
			k++;
		e->v = calloc(k > first ? (size_t)(k - first) : 1, sizeof *e->v);
		if (e->v == NULL) {
			rc = -ENOMEM;
			break;
		}
		for (int j = first; j < k; j++) {
			e->v[e->n].stack = strdup(col_pg_str(sr, j, 3));
			if (e->v[e->n].stack == NULL) {
				rc = -ENOMEM;
				break;
			}
			e->v[e->n++].count = (uint64_t)col_pg_i64(sr, j, 4);
		}
	}
	PQclear(er);
	PQclear(sr);
	if (rc < 0)
		col_prof_rows_free(out);
	else
		col_prof_rows_sort(out);
	return rc;
}

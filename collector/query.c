/*
 * query.c - read-only database access for the API (query.h).
 */
#include "config.h"
#include "query.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "log.h"
#include "query_pg.h"
#include "stmt.h"
#include "store.h"
#include "store_int.h"

struct conn {
	sqlite3 *db;
	int busy;
};

struct col_query {
	pthread_mutex_t mu;
	pthread_cond_t freed;
	struct conn *c;
	unsigned n;
	char *host;
	struct col_qpg *pg;       /* PostgreSQL: every call goes there */
};

static const char req_columns[] =
	"id, ts_ns, host, service, pid, tid, method, path, route, status, duration_ms,"
	" bytes_in, bytes_out, sql_count, sql_time_ms, slow, error, aborted, n_plus_one,"
	" message";

void col_query_free(struct col_query *q)
{
	if (q == NULL)
		return;
	for (unsigned i = 0; i < q->n; i++)
		sqlite3_close_v2(q->c[i].db);
	free(q->c);
	free(q->host);
	col_qpg_free(q->pg);
	pthread_cond_destroy(&q->freed);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

struct col_query *col_query_open(const char *path, const char *host, unsigned nconn,
                                 char *err, size_t errlen)
{
	struct col_query *q = calloc(1, sizeof *q);
	if (q == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->freed, NULL);
	if (nconn == 0)
		nconn = 1;
	q->c = calloc(nconn, sizeof *q->c);
	q->host = strdup(host);
	if (q->c == NULL || q->host == NULL) {
		snprintf(err, errlen, "out of memory");
		col_query_free(q);
		return NULL;
	}
	if (col_store_is_pg(path)) {
		q->pg = col_qpg_open(path, nconn, err, errlen);
		if (q->pg == NULL) {
			col_query_free(q);
			return NULL;
		}
		return q;
	}
	for (; q->n < nconn; q->n++) {
		sqlite3 *db = NULL;
		int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
		q->c[q->n].db = db;
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "db %s: read connection: %s", path,
			         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
			q->n++;
			col_query_free(q);
			return NULL;
		}
		sqlite3_busy_timeout(db, 2000);
	}
	return q;
}

static struct conn *acquire(struct col_query *q)
{
	pthread_mutex_lock(&q->mu);
	for (;;) {
		for (unsigned i = 0; i < q->n; i++) {
			if (!q->c[i].busy) {
				q->c[i].busy = 1;
				pthread_mutex_unlock(&q->mu);
				return &q->c[i];
			}
		}
		pthread_cond_wait(&q->freed, &q->mu);
	}
}

static void release(struct col_query *q, struct conn *c)
{
	pthread_mutex_lock(&q->mu);
	c->busy = 0;
	pthread_cond_signal(&q->freed);
	pthread_mutex_unlock(&q->mu);
}

void col_req_filter_init(struct col_req_filter *f)
{
	memset(f, 0, sizeof *f);
	f->status_lo = f->status_hi = -1;
	f->slow = f->error = f->n_plus_one = -1;
	f->since_ns = INT64_MIN;
	f->until_ns = INT64_MAX;
	f->limit = 100;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

static void read_view(sqlite3_stmt *st, struct col_req_view *v)
{
	v->id = sqlite3_column_int64(st, 0);
	v->ts_ns = sqlite3_column_int64(st, 1);
	v->host = col_text(st, 2);
	v->service = col_text(st, 3);
	v->pid = sqlite3_column_int64(st, 4);
	v->tid = sqlite3_column_int64(st, 5);
	v->method = col_text(st, 6);
	v->path = col_text(st, 7);
	v->route = col_text(st, 8);
	v->status = sqlite3_column_int(st, 9);
	v->duration_ms = sqlite3_column_double(st, 10);
	v->bytes_in = sqlite3_column_int64(st, 11);
	v->bytes_out = sqlite3_column_int64(st, 12);
	v->sql_count = sqlite3_column_int64(st, 13);
	v->sql_time_ms = sqlite3_column_double(st, 14);
	v->slow = sqlite3_column_int(st, 15) != 0;
	v->error = sqlite3_column_int(st, 16) != 0;
	v->aborted = sqlite3_column_int(st, 17) != 0;
	v->n_plus_one = sqlite3_column_int(st, 18) != 0;
	v->message = col_text(st, 19);
}

static void db_error(struct conn *c, const char *what)
{
	col_log(COL_LOG_ERROR, "query: %s: %s", what, sqlite3_errmsg(c->db));
}

/* SQL text built clause by clause; binds are recorded in order and applied
 * once the statement is prepared. */
struct sqlb {
	char sql[1024];
	size_t len;
	int nb;
	struct { int is_text; const char *s; int64_t i; } b[16];
};

static void sqlb_add(struct sqlb *q, const char *text)
{
	size_t n = strlen(text);
	if (q->len + n < sizeof q->sql) { /* clauses are fixed; cannot overflow */
		memcpy(q->sql + q->len, text, n + 1);
		q->len += n;
	}
}

static void sqlb_text(struct sqlb *q, const char *clause, const char *v)
{
	sqlb_add(q, clause);
	q->b[q->nb].is_text = 1;
	q->b[q->nb++].s = v;
}

static void sqlb_int(struct sqlb *q, const char *clause, int64_t v)
{
	sqlb_add(q, clause);
	q->b[q->nb].is_text = 0;
	q->b[q->nb++].i = v;
}

int col_query_requests(struct col_query *q, const struct col_req_filter *f,
                       col_req_cb cb, void *arg, int *more)
{
	if (q->pg)
		return col_qpg_requests(q->pg, f, cb, arg, more);
	struct sqlb b = { .len = 0, .nb = 0 };
	*more = 0;
	sqlb_add(&b, "SELECT ");
	sqlb_add(&b, req_columns);
	sqlb_add(&b, " FROM requests WHERE 1");
	if (f->service)
		sqlb_text(&b, " AND service = ?", f->service);
	if (f->host)
		sqlb_text(&b, " AND host = ?", f->host);
	if (f->route)
		sqlb_text(&b, " AND route = ?", f->route);
	if (f->method)
		sqlb_text(&b, " AND method = ?", f->method);
	if (f->q)
		sqlb_text(&b, " AND instr(path, ?) > 0", f->q);
	if (f->status_lo >= 0 && f->status_lo == f->status_hi)
		sqlb_int(&b, " AND status = ?", f->status_lo);
	else if (f->status_lo >= 0) {
		sqlb_int(&b, " AND status >= ?", f->status_lo);
		sqlb_int(&b, " AND status <= ?", f->status_hi);
	}
	/* Flags as literals, so the partial indexes (WHERE slow = 1) apply. */
	if (f->slow >= 0)
		sqlb_add(&b, f->slow ? " AND slow = 1" : " AND slow = 0");
	if (f->error >= 0)
		sqlb_add(&b, f->error ? " AND error = 1" : " AND error = 0");
	if (f->n_plus_one >= 0)
		sqlb_add(&b, f->n_plus_one ? " AND n_plus_one = 1" : " AND n_plus_one = 0");
	if (f->before > 0)
		sqlb_int(&b, " AND id < ?", f->before);
	if (f->since_ns != INT64_MIN)
		sqlb_int(&b, " AND ts_ns >= ?", f->since_ns);
	if (f->until_ns != INT64_MAX)
		sqlb_int(&b, " AND ts_ns < ?", f->until_ns);
	int limit = f->limit > 0 ? f->limit : 1;
	sqlb_int(&b, " ORDER BY id DESC LIMIT ?", (int64_t)limit + 1);

	struct conn *c = acquire(q);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(c->db, b.sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		db_error(c, "listing requests");
		release(q, c);
		return -EIO;
	}
	for (int i = 0; i < b.nb; i++) {
		if (b.b[i].is_text)
			sqlite3_bind_text(st, i + 1, b.b[i].s, -1, SQLITE_STATIC);
		else
			sqlite3_bind_int64(st, i + 1, b.b[i].i);
	}
	int n = 0, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == limit) {
			*more = 1;
			break;
		}
		struct col_req_view v;
		read_view(st, &v);
		ret = cb(arg, &v);
		if (ret != 0)
			break;
		n++;
	}
	if (ret == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_error(c, "listing requests");
		ret = -EIO;
	}
	sqlite3_finalize(st);
	release(q, c);
	return ret != 0 ? ret : n;
}

/* Reads the request `id` with the given callbacks on connection c (inside
 * a read transaction when detail callbacks are set). */
static int read_request(struct conn *c, int64_t id, const struct col_detail_cbs *cbs)
{
	char sql[512];
	sqlite3_stmt *st = NULL;
	int ret;
	snprintf(sql, sizeof sql, "SELECT %s FROM requests WHERE id = ?1", req_columns);
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(st);
		return 0;
	}
	if (rc != SQLITE_ROW)
		goto fail;
	struct col_req_view v;
	read_view(st, &v);
	ret = cbs->request(cbs->arg, &v);
	sqlite3_finalize(st);
	st = NULL;
	if (ret != 0)
		return ret;

	if (cbs->stmt) {
		if (sqlite3_prepare_v2(c->db,
		                       "SELECT seq, ts_ns, duration_ms, db, fingerprint, sql, rows,"
		                       " error_code, error_message, slow, prepare, truncated"
		                       " FROM queries WHERE request_id = ?1 ORDER BY seq",
		                       -1, &st, NULL) != SQLITE_OK)
			goto fail;
		sqlite3_bind_int64(st, 1, id);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t fpv = sqlite3_column_int64(st, 4);
			struct col_stmt_view q = {
				.seq = sqlite3_column_int(st, 0),
				.ts_ns = sqlite3_column_int64(st, 1),
				.duration_ms = sqlite3_column_double(st, 2),
				.db = col_text(st, 3),
				.sql = col_text(st, 5),
				.rows = sqlite3_column_type(st, 6) == SQLITE_NULL
				        ? -1 : sqlite3_column_int64(st, 6),
				.error_code = sqlite3_column_type(st, 7) == SQLITE_NULL
				              ? NULL : col_text(st, 7),
				.error_message = col_text(st, 8),
				.slow = sqlite3_column_int(st, 9) != 0,
				.prepare = sqlite3_column_int(st, 10) != 0,
				.truncated = sqlite3_column_int(st, 11) != 0,
			};
			memcpy(&q.fingerprint, &fpv, sizeof fpv);
			ret = cbs->stmt(cbs->arg, &q);
			if (ret != 0) {
				sqlite3_finalize(st);
				return ret;
			}
		}
		if (rc != SQLITE_DONE)
			goto fail;
		sqlite3_finalize(st);
		st = NULL;
	}
	if (cbs->n1) {
		if (sqlite3_prepare_v2(c->db,
		                       "SELECT fingerprint, count, sql FROM request_n_plus_one"
		                       " WHERE request_id = ?1 ORDER BY count DESC, fingerprint",
		                       -1, &st, NULL) != SQLITE_OK)
			goto fail;
		sqlite3_bind_int64(st, 1, id);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t fpv = sqlite3_column_int64(st, 0);
			struct col_n1_view n = {
				.count = sqlite3_column_int64(st, 1),
				.sql = col_text(st, 2),
			};
			memcpy(&n.fingerprint, &fpv, sizeof fpv);
			ret = cbs->n1(cbs->arg, &n);
			if (ret != 0) {
				sqlite3_finalize(st);
				return ret;
			}
		}
		if (rc != SQLITE_DONE)
			goto fail;
		sqlite3_finalize(st);
	}
	return 1;
fail:
	db_error(c, "reading a request");
	sqlite3_finalize(st);
	return -EIO;
}

int col_query_request(struct col_query *q, int64_t id, col_req_cb cb, void *arg)
{
	struct col_detail_cbs cbs = { .request = cb, .arg = arg };
	if (q->pg)
		return col_qpg_request_detail(q->pg, id, &cbs);
	struct conn *c = acquire(q);
	int ret = read_request(c, id, &cbs);
	release(q, c);
	return ret;
}

int col_query_request_detail(struct col_query *q, int64_t id, const struct col_detail_cbs *cbs)
{
	if (q->pg)
		return col_qpg_request_detail(q->pg, id, cbs);
	struct conn *c = acquire(q);
	/* One snapshot: retention cannot remove the statements between the
	 * row and its list. */
	if (sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		db_error(c, "reading a request");
		release(q, c);
		return -EIO;
	}
	int ret = read_request(c, id, cbs);
	sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	release(q, c);
	return ret;
}

/* Merges the stored minutes of [from_s, to_s) into out and reports the last
 * minute batch committed, both from one read transaction (one snapshot). */
static int stored_minutes(struct conn *c, const char *our_host, int64_t from_s,
                          int64_t to_s, const char *service, const char *host,
                          struct col_epset *out, uint64_t *last_batch)
{
	char sql[512];
	int ret = 0;
	sqlite3_stmt *st = NULL;
	*last_batch = 0;
	if (sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		db_error(c, "endpoint minutes");
		return -EIO;
	}
	if (sqlite3_prepare_v2(c->db, "SELECT last_batch FROM minute_flush WHERE host = ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, our_host, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*last_batch = (uint64_t)sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;

	snprintf(sql, sizeof sql,
	         "SELECT service, method, route, count, error_count, slow_count, sum_ms,"
	         " min_ms, max_ms, sql_count, sql_time_ms, n_plus_one_count, sketch"
	         " FROM endpoint_minutes WHERE minute >= ?1 AND minute < ?2%s%s",
	         service ? " AND service = ?3" : "", host ? " AND host = ?4" : "");
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, from_s);
	sqlite3_bind_int64(st, 2, to_s);
	if (service)
		sqlite3_bind_text(st, 3, service, -1, SQLITE_STATIC);
	if (host)
		sqlite3_bind_text(st, 4, host, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *svc = (const char *)sqlite3_column_text(st, 0);
		const char *method = (const char *)sqlite3_column_text(st, 1);
		const char *route = (const char *)sqlite3_column_text(st, 2);
		if (svc == NULL || method == NULL || route == NULL)
			continue;
		struct col_ep *e = col_epset_get(out, svc, method, route, 1);
		struct col_stats row = { 0 };
		int r = col_store_read_stats(st, 3, &row);
		if (e == NULL || r == -ENOMEM || col_stats_merge(&e->st, &row) < 0) {
			col_stats_release(&row);
			ret = -ENOMEM;
			break;
		}
		e->dirty = 1;
		col_stats_release(&row);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	return ret;
fail:
	db_error(c, "endpoint minutes");
	sqlite3_finalize(st);
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return -EIO;
}

int col_query_endpoints(struct col_query *q, struct col_agg *agg, int64_t from_s,
                        int64_t to_s, const char *service, const char *host,
                        struct col_ep_rows *out)
{
	struct col_epset *pending = col_epset_new(), *taken = col_epset_new(),
	                 *sum = col_epset_new();
	uint64_t taken_id = 0, last_batch = 0;
	int rc = -ENOMEM;
	out->v = NULL;
	out->n = 0;
	if (pending == NULL || taken == NULL || sum == NULL)
		goto out;
	/* Memory first, then the database: a batch the store commits in
	 * between is then in both, and its id (<= last_batch) says to count
	 * the stored copy only. Read the other way round, a batch could be
	 * released from memory after being missed in the database. */
	int ours = host == NULL || strcmp(host, q->host) == 0;
	if (ours) {
		rc = col_agg_minutes_copy(agg, from_s, to_s, service, pending, taken, &taken_id);
		if (rc < 0)
			goto out;
	}
	if (q->pg) {
		rc = col_qpg_minutes(q->pg, q->host, from_s, to_s, service, host, sum, &last_batch);
	} else {
		struct conn *c = acquire(q);
		rc = stored_minutes(c, q->host, from_s, to_s, service, host, sum, &last_batch);
		release(q, c);
	}
	if (rc < 0)
		goto out;
	if (ours) {
		if (taken_id > last_batch)
			rc = col_epset_merge(sum, taken, NULL);
		if (rc == 0)
			rc = col_epset_merge(sum, pending, NULL);
		if (rc < 0)
			goto out;
	}
	rc = col_epset_rows(sum, NULL, out);
out:
	col_epset_free(pending);
	col_epset_free(taken);
	col_epset_free(sum);
	return rc;
}

/* As stored_minutes(), for query_minutes; texts from query_shapes. */
static int stored_shape_minutes(struct conn *c, const char *our_host, int64_t from_s,
                                int64_t to_s, const char *service, const char *host,
                                struct col_shapeset *out, uint64_t *last_batch)
{
	char sql[768];
	int ret = 0;
	sqlite3_stmt *st = NULL;
	struct col_shape_texts *texts = NULL;
	*last_batch = 0;
	if (sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		db_error(c, "query minutes");
		return -EIO;
	}
	if (sqlite3_prepare_v2(c->db, "SELECT last_batch FROM minute_flush WHERE host = ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, our_host, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*last_batch = (uint64_t)sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;

	int trc = col_shape_texts_load(c->db, service, &texts);
	if (trc == -ENOMEM) {
		ret = -ENOMEM;
		goto fail;
	}
	if (trc < 0)
		goto fail;
	snprintf(sql, sizeof sql,
	         "SELECT service, db, fingerprint, calls, total_ms, max_ms, rows, errors,"
	         " slow_count, sketch FROM query_minutes"
	         " WHERE minute >= ?1 AND minute < ?2%s%s",
	         service ? " AND service = ?3" : "", host ? " AND host = ?4" : "");
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, from_s);
	sqlite3_bind_int64(st, 2, to_s);
	if (service)
		sqlite3_bind_text(st, 3, service, -1, SQLITE_STATIC);
	if (host)
		sqlite3_bind_text(st, 4, host, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *svc = (const char *)sqlite3_column_text(st, 0);
		const char *db = (const char *)sqlite3_column_text(st, 1);
		if (svc == NULL || db == NULL)
			continue;
		int dbv = col_sql_db_lookup(db);
		uint8_t dbb = (uint8_t)(dbv < 0 ? 0 : dbv);
		int64_t fpv = sqlite3_column_int64(st, 2);
		uint64_t fp;
		memcpy(&fp, &fpv, sizeof fp);
		struct col_shape *e = col_shapeset_get(out, svc, dbb, fp, NULL, 0);
		if (e == NULL) {
			const char *text = fp == COL_SHAPE_OTHER_FP
			                   ? COL_SHAPE_OTHER_SQL : col_shape_texts_get(texts, svc, dbb, fp);
			e = col_shapeset_get(out, svc, dbb, fp, text ? text : "", 1);
		}
		struct col_shape_stats row = { 0 };
		int r = col_store_read_shape_stats(st, 3, &row);
		if (e == NULL || r == -ENOMEM || col_shape_stats_merge(&e->st, &row) < 0) {
			col_shape_stats_release(&row);
			ret = -ENOMEM;
			break;
		}
		e->dirty = 1;
		col_shape_stats_release(&row);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	col_shape_texts_free(texts);
	sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	return ret;
fail:
	if (ret == 0) {
		db_error(c, "query minutes");
		ret = -EIO;
	}
	sqlite3_finalize(st);
	col_shape_texts_free(texts);
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

int col_query_shapes(struct col_query *q, struct col_agg *agg, int64_t from_s,
                     int64_t to_s, const char *service, const char *host,
                     struct col_shape_rows *out)
{
	struct col_shapeset *pending = col_shapeset_new(), *taken = col_shapeset_new(),
	                    *sum = col_shapeset_new();
	uint64_t taken_id = 0, last_batch = 0;
	int rc = -ENOMEM;
	out->v = NULL;
	out->n = 0;
	if (pending == NULL || taken == NULL || sum == NULL)
		goto out;
	/* Memory first, then the database: see col_query_endpoints(). */
	int ours = host == NULL || strcmp(host, q->host) == 0;
	if (ours) {
		rc = col_agg_shape_minutes_copy(agg, from_s, to_s, service, pending, taken,
		                                &taken_id);
		if (rc < 0)
			goto out;
	}
	if (q->pg) {
		rc = col_qpg_shape_minutes(q->pg, q->host, from_s, to_s, service, host, sum,
		                           &last_batch);
	} else {
		struct conn *c = acquire(q);
		rc = stored_shape_minutes(c, q->host, from_s, to_s, service, host, sum,
		                          &last_batch);
		release(q, c);
	}
	if (rc < 0)
		goto out;
	if (ours) {
		if (taken_id > last_batch)
			rc = col_shapeset_merge(sum, taken, NULL);
		if (rc == 0)
			rc = col_shapeset_merge(sum, pending, NULL);
		if (rc < 0)
			goto out;
	}
	rc = col_shapeset_rows(sum, NULL, out);
out:
	col_shapeset_free(pending);
	col_shapeset_free(taken);
	col_shapeset_free(sum);
	return rc;
}

int col_query_fleet(const struct col_query *q)
{
	return q != NULL && q->pg != NULL;
}

int col_query_errors(struct col_query *q, const struct col_find_filter *f, const char *host,
                     struct col_error_rows *out)
{
	out->v = NULL;
	out->n = 0;
	return q->pg ? col_qpg_errors(q->pg, f, host, out) : -ENOTSUP;
}

int col_query_patterns(struct col_query *q, const struct col_find_filter *f, const char *host,
                       struct col_n1_rows *out)
{
	out->v = NULL;
	out->n = 0;
	return q->pg ? col_qpg_patterns(q->pg, f, host, out) : -ENOTSUP;
}

int col_query_endpoints_all(struct col_query *q, struct col_agg *agg, const char *service,
                            const char *host, struct col_ep_rows *out)
{
	out->v = NULL;
	out->n = 0;
	if (q->pg == NULL)
		return -ENOTSUP;
	struct col_epset *sum = col_epset_new();
	int ours = host == NULL || strcmp(host, q->host) == 0;
	int rc = sum ? 0 : -ENOMEM;
	/* Ours from memory (fresh at once), the others' published totals. */
	if (rc == 0 && ours)
		rc = col_agg_alltime_copy(agg, service, sum, NULL);
	if (rc == 0 && (host == NULL || !ours))
		rc = col_qpg_totals(q->pg, q->host, service, host, sum);
	if (rc == 0)
		rc = col_epset_rows(sum, NULL, out);
	col_epset_free(sum);
	return rc;
}

int col_query_shapes_all(struct col_query *q, struct col_agg *agg, const char *service,
                         const char *host, struct col_shape_rows *out)
{
	out->v = NULL;
	out->n = 0;
	if (q->pg == NULL)
		return -ENOTSUP;
	struct col_shapeset *sum = col_shapeset_new();
	int ours = host == NULL || strcmp(host, q->host) == 0;
	int rc = sum ? 0 : -ENOMEM;
	if (rc == 0 && ours)
		rc = col_agg_alltime_copy(agg, service, NULL, sum);
	if (rc == 0 && (host == NULL || !ours))
		rc = col_qpg_shape_totals(q->pg, q->host, service, host, sum);
	if (rc == 0)
		rc = col_shapeset_rows(sum, NULL, out);
	col_shapeset_free(sum);
	return rc;
}

int col_query_win_summaries(struct col_query *q, const struct col_win_filter *f,
                            int (*cb)(void *, const struct col_summary_view *), void *arg)
{
	return q->pg ? col_qpg_win_summaries(q->pg, f, cb, arg) : -ENOTSUP;
}

int col_query_win_regressions(struct col_query *q, const struct col_win_filter *f,
                              int (*cb)(void *, const struct col_regression_view *), void *arg)
{
	return q->pg ? col_qpg_win_regressions(q->pg, f, cb, arg) : -ENOTSUP;
}

int col_query_timeseries(struct col_query *q, const char *service, const char *host,
                         int64_t first_ns, int64_t last_ns, struct col_ts_bucket **out,
                         size_t *n)
{
	*out = NULL;
	*n = 0;
	return q->pg ? col_qpg_timeseries(q->pg, service, host, first_ns, last_ns, out, n)
	             : -ENOTSUP;
}

int col_query_profile(struct col_query *q, const char *service, const char *method,
                      const char *route, const char *host, struct col_prof_rows *out)
{
	return q->pg ? col_qpg_profile(q->pg, service, method, route, host, out) : -ENOTSUP;
}

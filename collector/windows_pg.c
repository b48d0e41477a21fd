/*
 * windows_pg.c - see windows_pg.h.
 */
#include "config.h"

#include <errno.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "col.h"
#include "log.h"
#include "pg.h"
#include "windows_pg.h"

#define RETRY_NS (5 * COL_NS_PER_S)
/* Webhook outcomes change within a day of detection (the resend horizon
 * of windows.c): older regressions are not looked at again. */
#define WEBHOOK_HORIZON_NS (25 * 3600 * COL_NS_PER_S)

struct col_winpub {
	char *uri, *host;
	PGconn *c;
	int known;                /* the watermarks below were read */
	int64_t sum_until;        /* newest window start of ours in the database */
	int64_t reg_until;        /* newest regression id of ours there */
	int webhook_dirty;        /* atomic: set by any thread */
	int failing;              /* the last run failed (logged once) */
	int64_t retry_mono;
};

struct col_winpub *col_winpub_new(const char *uri, const char *host)
{
	struct col_winpub *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->uri = strdup(uri);
	p->host = strdup(host);
	if (p->uri == NULL || p->host == NULL) {
		col_winpub_free(p);
		return NULL;
	}
	p->webhook_dirty = 1;  /* outcomes of the last run may not be there */
	return p;
}

void col_winpub_free(struct col_winpub *p)
{
	if (p == NULL)
		return;
	if (p->c)
		PQfinish(p->c);
	free(p->uri);
	free(p->host);
	free(p);
}

void col_winpub_webhook_changed(struct col_winpub *p)
{
	if (p)
		__atomic_store_n(&p->webhook_dirty, 1, __ATOMIC_RELAXED);
}

/* One value of a one-row, one-column query with $1 = host. */
static int pg_scalar(struct col_winpub *p, const char *sql, int64_t *out)
{
	struct col_pg_params pr = { .n = 0 };
	col_pg_p_text(&pr, p->host);
	PGresult *r = col_pg_run(p->c, sql, &pr);
	if (r == NULL)
		return -EIO;
	*out = col_pg_i64(r, 0, 0);
	PQclear(r);
	return 0;
}

static int exec_ok(struct col_winpub *p, const char *sql, struct col_pg_params *pr)
{
	PGresult *r = col_pg_run(p->c, sql, pr);
	if (r == NULL)
		return -EIO;
	PQclear(r);
	return 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* Inserts our summaries newer than sum_until; *top gets the newest start
 * copied. 0 or -EIO (SQLite's failure included). */
static int copy_summaries(struct col_winpub *p, sqlite3 *db, int64_t *top, int *any)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, s;
	if (sqlite3_prepare_v2(db, "SELECT window_start_ns, window_end_ns, service, method, route,"
	                       " count, sum_ms, min_ms, max_ms, error_count, slow_count,"
	                       " n_plus_one_count, sql_count, sql_time_ms, sketch"
	                       " FROM window_summaries WHERE host = ? AND window_start_ns > ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, p->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, p->sum_until);
	while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
		struct col_pg_params pr = { .n = 0 };
		int64_t start = sqlite3_column_int64(st, 0);
		col_pg_p_i64(&pr, start);
		col_pg_p_i64(&pr, sqlite3_column_int64(st, 1));
		col_pg_p_text(&pr, p->host);
		for (int i = 2; i <= 4; i++)
			col_pg_p_text(&pr, col_text(st, i));
		col_pg_p_i64(&pr, sqlite3_column_int64(st, 5));
		col_pg_p_f64(&pr, sqlite3_column_double(st, 6));
		col_pg_p_f64(&pr, sqlite3_column_double(st, 7));
		col_pg_p_f64(&pr, sqlite3_column_double(st, 8));
		for (int i = 9; i <= 12; i++)
			col_pg_p_i64(&pr, sqlite3_column_int64(st, i));
		col_pg_p_f64(&pr, sqlite3_column_double(st, 13));
		if (sqlite3_column_type(st, 14) == SQLITE_BLOB)
			col_pg_p_bin(&pr, sqlite3_column_blob(st, 14),
			             (size_t)sqlite3_column_bytes(st, 14));
		else
			col_pg_p_text(&pr, NULL);
		rc = exec_ok(p, "INSERT INTO window_summaries (window_start_ns, window_end_ns, host,"
		             " service, method, route, count, sum_ms, min_ms, max_ms, error_count,"
		             " slow_count, n_plus_one_count, sql_count, sql_time_ms, sketch) VALUES"
		             " ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)"
		             " ON CONFLICT DO NOTHING", &pr);
		if (start > *top)
			*top = start;
		*any = 1;
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	return rc;
}

/* The regression columns of the SQLite file, in the order of $2..$22. */
#define REG_COLUMNS \
	"id, type, service, method, route, window_start_ns, window_end_ns," \
	" previous_window_start_ns, previous_avg_ms, current_avg_ms, previous_p95_ms," \
	" current_p95_ms, previous_error_rate, current_error_rate, previous_count," \
	" current_count, fingerprint, sql, detected_at_ns, webhook, webhook_attempts"

/* Inserts our regressions with an id above reg_until (*top: the largest
 * copied); webhook outcomes of rows already there are updated. */
static int copy_regressions(struct col_winpub *p, sqlite3 *db, int64_t *top, int *any)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, s;
	if (sqlite3_prepare_v2(db, "SELECT " REG_COLUMNS " FROM regressions"
	                       " WHERE host = ? AND id > ? ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, p->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, p->reg_until);
	while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
		struct col_pg_params pr = { .n = 0 };
		col_pg_p_text(&pr, p->host);
		int64_t id = sqlite3_column_int64(st, 0);
		col_pg_p_i64(&pr, id);
		for (int i = 1; i <= 4; i++)
			col_pg_p_text(&pr, col_text(st, i));
		for (int i = 5; i <= 7; i++)
			col_pg_p_i64(&pr, sqlite3_column_int64(st, i));
		for (int i = 8; i <= 13; i++)
			col_pg_p_f64(&pr, sqlite3_column_double(st, i));
		col_pg_p_i64(&pr, sqlite3_column_int64(st, 14));
		col_pg_p_i64(&pr, sqlite3_column_int64(st, 15));
		const char *fp = col_text(st, 16);
		col_pg_p_text(&pr, fp ? fp : "");
		col_pg_p_text(&pr, col_text(st, 17));
		col_pg_p_i64(&pr, sqlite3_column_int64(st, 18));
		const char *wh = col_text(st, 19);
		col_pg_p_text(&pr, wh ? wh : "none");
		col_pg_p_i64(&pr, sqlite3_column_int64(st, 20));
		rc = exec_ok(p, "INSERT INTO regressions (host, " REG_COLUMNS ") VALUES"
		             " ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,"
		             "$20,$21,$22) ON CONFLICT (host, id) DO UPDATE SET webhook = excluded.webhook,"
		             " webhook_attempts = excluded.webhook_attempts", &pr);
		if (id > *top)
			*top = id;
		*any = 1;
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	return rc;
}

/* Copies the webhook outcomes of our recent regressions already published. */
static int copy_webhooks(struct col_winpub *p, sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, s;
	if (sqlite3_prepare_v2(db, "SELECT id, webhook, webhook_attempts FROM regressions"
	                       " WHERE host = ? AND id <= ? AND detected_at_ns >= ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, p->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, p->reg_until);
	sqlite3_bind_int64(st, 3, col_clock_real_ns() - WEBHOOK_HORIZON_NS);
	while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
		struct col_pg_params pr = { .n = 0 };
		col_pg_p_text(&pr, p->host);
		col_pg_p_i64(&pr, sqlite3_column_int64(st, 0));
		const char *wh = col_text(st, 1);
		col_pg_p_text(&pr, wh ? wh : "none");
		col_pg_p_i64(&pr, sqlite3_column_int64(st, 2));
		rc = exec_ok(p, "UPDATE regressions SET webhook = $3, webhook_attempts = $4"
		             " WHERE host = $1 AND id = $2 AND (webhook <> $3 OR webhook_attempts <> $4)",
		             &pr);
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	return rc;
}

/* 1 when db has summaries or regressions of ours not yet published (or
 * when it cannot tell: the run then finds out). */
static int pending(struct col_winpub *p, sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int r = 1;
	if (sqlite3_prepare_v2(db, "SELECT EXISTS (SELECT 1 FROM window_summaries WHERE host = ?1"
	                       " AND window_start_ns > ?2) OR EXISTS (SELECT 1 FROM regressions"
	                       " WHERE host = ?1 AND id > ?3)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, p->host, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, p->sum_until);
		sqlite3_bind_int64(st, 3, p->reg_until);
		if (sqlite3_step(st) == SQLITE_ROW)
			r = sqlite3_column_int(st, 0) != 0;
	}
	sqlite3_finalize(st);
	return r;
}

int col_winpub_run(struct col_winpub *p, sqlite3 *db)
{
	if (p == NULL)
		return 0;
	int64_t now = col_clock_mono_ns();
	if (p->retry_mono != 0 && now < p->retry_mono)
		return -EAGAIN;
	char err[512] = "";
	int rc = 0, any = 0, dirty = 0;
	if (p->c == NULL) {
		p->c = col_pg_connect(p->uri, err, sizeof err);
		if (p->c == NULL)
			goto fail;
	}
	if (!p->known) {
		if (pg_scalar(p, "SELECT coalesce(max(window_start_ns), -9223372036854775808)"
		              " FROM window_summaries WHERE host = $1", &p->sum_until) < 0 ||
		    pg_scalar(p, "SELECT coalesce(max(id), 0) FROM regressions WHERE host = $1",
		              &p->reg_until) < 0)
			goto fail_pg;
		p->known = 1;
	}
	/* Nothing new: no transaction (this runs every second). */
	dirty = __atomic_exchange_n(&p->webhook_dirty, 0, __ATOMIC_RELAXED);
	if (!dirty && !pending(p, db))
		return 0;
	int64_t sum_top = p->sum_until, reg_top = p->reg_until;
	if (col_pg_exec(p->c, "BEGIN") < 0)
		goto fail_pg;
	rc = copy_summaries(p, db, &sum_top, &any);
	if (rc == 0)
		rc = copy_regressions(p, db, &reg_top, &any);
	if (rc == 0 && dirty)
		rc = copy_webhooks(p, db);
	if (rc < 0 || col_pg_exec(p->c, (any || dirty) ? "COMMIT" : "ROLLBACK") < 0)
		goto fail_pg;
	p->sum_until = sum_top;
	p->reg_until = reg_top;
	if (p->failing)
		col_log(COL_LOG_INFO, "windows: publishing summaries to PostgreSQL again");
	p->failing = 0;
	p->retry_mono = 0;
	return 0;
fail_pg:
	if (dirty)
		col_winpub_webhook_changed(p);
	col_pg_error(p->c, err, sizeof err);
	if (PQstatus(p->c) == CONNECTION_OK)
		col_pg_exec(p->c, "ROLLBACK");
	PQfinish(p->c);
	p->c = NULL;
fail:
	if (!p->failing)
		col_log(COL_LOG_WARN, "windows: publishing summaries to PostgreSQL: %s (retried every"
		        " 5 s)", err[0] ? err : sqlite3_errmsg(db));
	p->failing = 1;
	p->retry_mono = now + RETRY_NS;
	return -EIO;
}

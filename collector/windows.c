/*
 * windows.c - summary windows, regression detection, alerts (windows.h).
 *
 * Locks: `mu` guards the open windows, the watermark and the counters
 * (held by the ingest thread for one hash look-up and one sketch update per
 * request); `close_mu` serialises closings and every use of the writer
 * connection (closing, alert status updates, the final store); `read_mu`
 * the reader connection. Order: close_mu, then mu. Closing takes the due
 * windows out under mu and computes and writes their summaries without it,
 * so ingestion never waits for the disk.
 */
#include "config.h"
#include "windows.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "col.h"
#include "epset.h"
#include "hmap.h"
#include "metrics.h"
#include "log.h"
#include "sketch.h"
#include "stmt.h"
#include "windows_pg.h"

#define ALERT_RESEND_NS (24 * 3600 * COL_NS_PER_S)
#define TICK_NS COL_NS_PER_S

/* One endpoint in one window. key is "service\0method\0route". */
struct wep {
	struct col_stats st;
	uint32_t nn1;
	uint64_t n1[COL_WIN_MAX_N1];
	char *n1sql[COL_WIN_MAX_N1];
	size_t klen;
	char key[];
};

struct win {
	int64_t start;
	struct col_hmap *eps;
	struct win *next;          /* ascending start */
};

/* The previous summary of an endpoint, for the rules. */
struct last {
	int64_t start;
	struct col_win_sum sum;
	size_t klen;
	char key[];
};

struct col_windows {
	struct col_metrics *metrics;   /* may be NULL; thread-safe itself */
	pthread_mutex_t mu, close_mu, read_mu;
	pthread_cond_t wake;
	pthread_t thread;
	int running, stopping, stopped;
	char *host;
	int64_t window_ns, grace_ns;
	struct col_reg_rules rules;
	char *webhook_url;
	int64_t webhook_scale;
	size_t webhook_queue;
	struct col_webhook *wh;
	struct col_winpub *pub;    /* PostgreSQL: the fleet's copy; read_mu */

	sqlite3 *wdb, *rdb;
	struct win *open;          /* guarded by mu */
	size_t nopen;
	int64_t closed_until;      /* guarded by mu */
	struct col_hmap *last;     /* close_mu */
	struct col_log_budget reg_log; /* close_mu */
	struct col_reg_count *counts;  /* mu */
	size_t ncounts;

	uint64_t closed, summaries, regressions, late, dropped, storage_errors; /* mu */
};

/* ---- small helpers ---- */

int64_t col_windows_size_ns(double minutes)
{
	int64_t ms = llround(minutes * 60000.0);
	return (ms > 0 ? ms : 1) * 1000000LL;
}

int64_t col_windows_grace_ns(int64_t window_ns)
{
	int64_t g = window_ns / 20;
	if (g < COL_WIN_GRACE_MIN_NS)
		g = COL_WIN_GRACE_MIN_NS;
	if (g > COL_WIN_GRACE_MAX_NS)
		g = COL_WIN_GRACE_MAX_NS;
	return g;
}

int64_t col_windows_start_of(int64_t ts_ns, int64_t window_ns)
{
	int64_t k = ts_ns / window_ns;
	if (ts_ns < 0 && k * window_ns != ts_ns)
		k--;
	return k * window_ns;
}

static void wep_free(struct wep *e)
{
	col_stats_release(&e->st);
	for (uint32_t i = 0; i < e->nn1; i++)
		free(e->n1sql[i]);
	free(e);
}

static void win_free(struct win *x)
{
	if (x == NULL)
		return;
	size_t it = 0;
	struct wep *e;
	while ((e = col_hmap_next(x->eps, &it, NULL, NULL)) != NULL)
		wep_free(e);
	col_hmap_free(x->eps);
	free(x);
}

static size_t make_key(char *key, size_t cap, const char *service, const char *method,
                       const char *route)
{
	size_t a = strlen(service) + 1, b = strlen(method) + 1, c = strlen(route) + 1;
	if (a + b + c > cap)
		return 0;
	memcpy(key, service, a);
	memcpy(key + a, method, b);
	memcpy(key + a + b, route, c);
	return a + b + c;
}

#define KEY_MAX 8192

/* The open window starting at start, created in order (mu held). */
static struct win *win_get(struct col_windows *w, int64_t start)
{
	struct win **pp = &w->open;
	for (; *pp != NULL && (*pp)->start <= start; pp = &(*pp)->next)
		if ((*pp)->start == start)
			return *pp;
	if (w->nopen >= COL_WIN_MAX_OPEN)
		return NULL;
	struct win *x = calloc(1, sizeof *x);
	if (x == NULL || (x->eps = col_hmap_new()) == NULL) {
		free(x);
		return NULL;
	}
	x->start = start;
	x->next = *pp;
	*pp = x;
	w->nopen++;
	return x;
}

static struct wep *wep_get(struct win *x, const char *key, size_t klen)
{
	struct wep *e = col_hmap_get(x->eps, key, klen);
	if (e != NULL)
		return e;
	e = calloc(1, sizeof *e + klen);
	if (e == NULL)
		return NULL;
	memcpy(e->key, key, klen);
	e->klen = klen;
	if (col_hmap_put(x->eps, e->key, klen, e) < 0) {
		free(e);
		return NULL;
	}
	return e;
}

static void wep_add_n1(struct wep *e, uint64_t fp, const char *sql)
{
	for (uint32_t i = 0; i < e->nn1; i++)
		if (e->n1[i] == fp)
			return;
	if (e->nn1 >= COL_WIN_MAX_N1)
		return;
	e->n1[e->nn1] = fp;
	e->n1sql[e->nn1] = sql ? strdup(sql) : NULL;
	e->nn1++;
}

/* ---- the database ---- */

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS window_summaries ("
	" window_start_ns INTEGER NOT NULL, window_end_ns INTEGER NOT NULL,"
	" host TEXT NOT NULL, service TEXT NOT NULL, method TEXT NOT NULL, route TEXT NOT NULL,"
	" count INTEGER NOT NULL, sum_ms REAL NOT NULL, avg_ms REAL NOT NULL, p95_ms REAL NOT NULL,"
	" min_ms REAL NOT NULL, max_ms REAL NOT NULL, error_count INTEGER NOT NULL,"
	" error_rate REAL NOT NULL, slow_count INTEGER NOT NULL, n_plus_one_count INTEGER NOT NULL,"
	" sql_count INTEGER NOT NULL, sql_time_ms REAL NOT NULL, n1 TEXT, sketch BLOB,"
	" PRIMARY KEY (window_start_ns, host, service, method, route)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS window_summaries_ep ON window_summaries"
	" (host, service, method, route, window_start_ns);"
	"CREATE TABLE IF NOT EXISTS regressions ("
	" id INTEGER PRIMARY KEY, type TEXT NOT NULL, host TEXT NOT NULL, service TEXT NOT NULL,"
	" method TEXT NOT NULL, route TEXT NOT NULL, window_start_ns INTEGER NOT NULL,"
	" window_end_ns INTEGER NOT NULL, previous_window_start_ns INTEGER NOT NULL,"
	" previous_avg_ms REAL, current_avg_ms REAL, previous_p95_ms REAL, current_p95_ms REAL,"
	" previous_error_rate REAL, current_error_rate REAL, previous_count INTEGER,"
	" current_count INTEGER, fingerprint TEXT NOT NULL DEFAULT '', sql TEXT,"
	" detected_at_ns INTEGER NOT NULL, webhook TEXT NOT NULL,"
	" webhook_attempts INTEGER NOT NULL DEFAULT 0, alert TEXT,"
	" UNIQUE (host, service, method, route, window_start_ns, type, fingerprint));"
	"CREATE TABLE IF NOT EXISTS window_state ("
	" host TEXT PRIMARY KEY, closed_until_ns INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS window_partials ("
	" host TEXT NOT NULL, window_start_ns INTEGER NOT NULL, service TEXT NOT NULL,"
	" method TEXT NOT NULL, route TEXT NOT NULL, count INTEGER, error_count INTEGER,"
	" slow_count INTEGER, sum_ms REAL, min_ms REAL, max_ms REAL, sql_count INTEGER,"
	" sql_time_ms REAL, n_plus_one_count INTEGER, n1 TEXT, sketch BLOB);";

static int open_db(const char *path, int flags, sqlite3 **db, char *err, size_t errlen)
{
	int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "db %s: %s", path, *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		return -EIO;
	}
	sqlite3_busy_timeout(*db, 5000);
	return 0;
}

/* The N+1 fingerprints of e as JSON text (malloc'ed; NULL when none). */
static char *n1_json(const uint64_t *fp, char *const *sql, uint32_t n)
{
	if (n == 0)
		return NULL;
	json_t *a = json_array();
	for (uint32_t i = 0; i < n; i++) {
		char hex[COL_FP_HEX];
		json_array_append_new(a, json_pack("{s:s, s:s?}", "fingerprint", col_fp_hex(fp[i], hex),
		                                   "sql", sql ? sql[i] : NULL));
	}
	char *s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

static uint64_t parse_fp(const char *s)
{
	return s ? strtoull(s, NULL, 16) : 0;
}

/* Reads the fingerprints (and texts, when e is not NULL) of an n1 column. */
static uint32_t n1_parse(const char *text, uint64_t *fp, struct wep *e)
{
	uint32_t n = 0;
	if (text == NULL)
		return 0;
	json_t *a = json_loads(text, 0, NULL);
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) {
		if (n >= COL_WIN_MAX_N1)
			break;
		uint64_t f = parse_fp(json_string_value(json_object_get(v, "fingerprint")));
		if (fp)
			fp[n] = f;
		if (e)
			wep_add_n1(e, f, json_string_value(json_object_get(v, "sql")));
		n++;
	}
	json_decref(a);
	return n;
}

static void split_key(const char *key, const char **svc, const char **method, const char **route)
{
	*svc = key;
	*method = key + strlen(key) + 1;
	*route = *method + strlen(*method) + 1;
}

static int load_state(struct col_windows *w, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(w->wdb, "SELECT closed_until_ns FROM window_state WHERE host = ?",
	                            -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, w->host, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		w->closed_until = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);

	/* The latest summary of each endpoint. */
	rc = sqlite3_prepare_v2(w->wdb,
		"SELECT s.service, s.method, s.route, s.window_start_ns, s.count, s.error_count,"
		" s.avg_ms, s.p95_ms, s.n1 FROM window_summaries s"
		" WHERE s.host = ?1 AND s.window_start_ns = (SELECT max(t.window_start_ns)"
		"  FROM window_summaries t WHERE t.host = ?1 AND t.service = s.service"
		"  AND t.method = s.method AND t.route = s.route)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, w->host, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char key[KEY_MAX];
		size_t klen = make_key(key, sizeof key, (const char *)sqlite3_column_text(st, 0),
		                       (const char *)sqlite3_column_text(st, 1),
		                       (const char *)sqlite3_column_text(st, 2));
		struct last *l = klen ? calloc(1, sizeof *l + klen) : NULL;
		if (l == NULL)
			continue;
		memcpy(l->key, key, klen);
		l->klen = klen;
		l->start = sqlite3_column_int64(st, 3);
		l->sum.count = (uint64_t)sqlite3_column_int64(st, 4);
		l->sum.error_count = (uint64_t)sqlite3_column_int64(st, 5);
		l->sum.avg_ms = sqlite3_column_double(st, 6);
		l->sum.p95_ms = sqlite3_column_double(st, 7);
		l->sum.nn1 = n1_parse((const char *)sqlite3_column_text(st, 8), l->sum.n1, NULL);
		free(col_hmap_del(w->last, l->key, klen));
		if (col_hmap_put(w->last, l->key, klen, l) < 0)
			free(l);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		goto fail;

	/* The windows open at the last stop. */
	rc = sqlite3_prepare_v2(w->wdb,
		"SELECT window_start_ns, service, method, route, count, error_count, slow_count,"
		" sum_ms, min_ms, max_ms, sql_count, sql_time_ms, n_plus_one_count, n1, sketch"
		" FROM window_partials WHERE host = ?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, w->host, -1, SQLITE_STATIC);
	size_t loaded = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t start = col_windows_start_of(sqlite3_column_int64(st, 0), w->window_ns);
		if (start < w->closed_until)
			continue;
		char key[KEY_MAX];
		size_t klen = make_key(key, sizeof key, (const char *)sqlite3_column_text(st, 1),
		                       (const char *)sqlite3_column_text(st, 2),
		                       (const char *)sqlite3_column_text(st, 3));
		struct win *x = klen ? win_get(w, start) : NULL;
		struct wep *e = x ? wep_get(x, key, klen) : NULL;
		if (e == NULL)
			continue;
		struct col_stats s = { 0 };
		s.count = (uint64_t)sqlite3_column_int64(st, 4);
		s.error_count = (uint64_t)sqlite3_column_int64(st, 5);
		s.slow_count = (uint64_t)sqlite3_column_int64(st, 6);
		s.sum_ms = sqlite3_column_double(st, 7);
		s.min_ms = sqlite3_column_double(st, 8);
		s.max_ms = sqlite3_column_double(st, 9);
		s.sql_count = (uint64_t)sqlite3_column_int64(st, 10);
		s.sql_time_ms = sqlite3_column_double(st, 11);
		s.n_plus_one_count = (uint64_t)sqlite3_column_int64(st, 12);
		const void *blob = sqlite3_column_blob(st, 14);
		int blen = sqlite3_column_bytes(st, 14);
		if (blob && blen > 0)
			col_sketch_merge_encoded(&s.sketch, blob, (size_t)blen);
		col_stats_merge(&e->st, &s);
		col_stats_release(&s);
		n1_parse((const char *)sqlite3_column_text(st, 13), NULL, e);
		loaded++;
	}
	sqlite3_finalize(st);
	st = NULL; /* fail: finalizes st: not twice (a damaged file got there) */
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_stmt *del = NULL;
	if (sqlite3_prepare_v2(w->wdb, "DELETE FROM window_partials WHERE host = ?", -1, &del,
	                       NULL) == SQLITE_OK) {
		sqlite3_bind_text(del, 1, w->host, -1, SQLITE_STATIC);
		sqlite3_step(del);
	}
	sqlite3_finalize(del);
	if (loaded)
		col_log(COL_LOG_INFO, "windows: %zu endpoint rows of %zu open windows taken back",
		        loaded, w->nopen);
	return 0;
fail:
	snprintf(err, errlen, "db: windows: %s", sqlite3_errmsg(w->wdb));
	sqlite3_finalize(st);
	return -EIO;
}

struct col_windows *col_windows_open(const struct col_windows_opts *o, char *err, size_t errlen)
{
	struct col_windows *w = calloc(1, sizeof *w);
	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_mutex_init(&w->close_mu, NULL);
	pthread_mutex_init(&w->read_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);
	w->host = strdup(o->host);
	w->reg_log = (struct col_log_budget){
		.per_min = COL_WIN_REG_LOG_PER_MIN, .level = COL_LOG_WARN,
		.held_fmt = "%llu more regressions were not logged",
		.full_fmt = "more than %d regressions in a minute: the rest are not logged until"
		            " the minute ends (all are in /api/v1/regressions)" };
	w->window_ns = o->window_ns > 0 ? o->window_ns : 3600 * COL_NS_PER_S;
	w->grace_ns = o->grace_ns >= 0 ? o->grace_ns : col_windows_grace_ns(w->window_ns);
	w->rules = o->rules;
	w->webhook_url = o->webhook_url && o->webhook_url[0] ? strdup(o->webhook_url) : NULL;
	w->webhook_scale = o->webhook_delay_scale_pct;
	w->webhook_queue = o->webhook_queue;
	w->metrics = o->metrics;
	w->last = col_hmap_new();
	if (w->host == NULL || w->last == NULL || (o->webhook_url && o->webhook_url[0] && !w->webhook_url)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (open_db(o->db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &w->wdb, err, errlen) < 0)
		goto fail;
	char *msg = NULL;
	if (sqlite3_exec(w->wdb, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "db %s: creating the window tables: %s", o->db_path,
		         msg ? msg : "?");
		sqlite3_free(msg);
		goto fail;
	}
	if (open_db(o->db_path, SQLITE_OPEN_READONLY, &w->rdb, err, errlen) < 0)
		goto fail;
	if (load_state(w, err, errlen) < 0)
		goto fail;
	if (o->pg_uri != NULL && (w->pub = col_winpub_new(o->pg_uri, w->host)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return w;
fail:
	col_windows_free(w);
	return NULL;
}

/* ---- ingest ---- */

void col_windows_request(struct col_windows *w, const char *service, const char *method,
                         const char *route, int64_t ts_ns, const struct col_obs *o,
                         const uint64_t *n1, const char *const *n1sql, size_t nn1)
{
	char key[KEY_MAX];
	size_t klen = make_key(key, sizeof key, service, method, route);
	int64_t start = col_windows_start_of(ts_ns, w->window_ns);
	pthread_mutex_lock(&w->mu);
	if (start < w->closed_until) {
		w->late++;
		goto out;
	}
	/* A sender with a broken clock must not open windows for years. */
	if (klen == 0 || start > col_clock_real_ns() + w->window_ns + 60 * COL_NS_PER_S) {
		w->dropped++;
		goto out;
	}
	struct win *x = win_get(w, start);
	struct wep *e = x ? wep_get(x, key, klen) : NULL;
	if (e == NULL) {
		w->dropped++;
		goto out;
	}
	col_stats_add(&e->st, o);
	for (size_t i = 0; i < nn1; i++)
		wep_add_n1(e, n1[i], n1sql ? n1sql[i] : NULL);
out:
	pthread_mutex_unlock(&w->mu);
}

/* ---- closing ---- */

struct sum {
	const struct wep *e;
	const char *service, *method, *route;
	struct col_win_sum ws;
	double min_ms, max_ms, error_rate;
};

struct reg {
	struct col_regression_view v;
	char fp[COL_FP_HEX];
	const struct sum *s;
};

static void count_reg(struct col_windows *w, const char *service, int type)
{
	for (size_t i = 0; i < w->ncounts; i++)
		if (strcmp(w->counts[i].service, service) == 0) {
			w->counts[i].n[type]++;
			return;
		}
	struct col_reg_count *v = realloc(w->counts, (w->ncounts + 1) * sizeof *v);
	if (v == NULL)
		return;
	w->counts = v;
	memset(&v[w->ncounts], 0, sizeof v[0]);
	v[w->ncounts].service = strdup(service);
	if (v[w->ncounts].service == NULL)
		return;
	v[w->ncounts].n[type] = 1;
	w->ncounts++;
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Writes one window's summaries and regressions (close_mu held, in the
 * caller's transaction). */
static int write_window(struct col_windows *w, int64_t start, struct sum *sums, size_t ns,
                        struct reg *regs, size_t nr, size_t *nsum)
{
	int rc = 0;
	sqlite3_stmt *si = NULL, *ri = NULL;
	if (sqlite3_prepare_v2(w->wdb,
		"INSERT OR IGNORE INTO window_summaries (window_start_ns, window_end_ns, host, service,"
		" method, route, count, sum_ms, avg_ms, p95_ms, min_ms, max_ms, error_count, error_rate,"
		" slow_count, n_plus_one_count, sql_count, sql_time_ms, n1, sketch)"
		" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &si, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(w->wdb,
		"INSERT OR IGNORE INTO regressions (type, host, service, method, route, window_start_ns,"
		" window_end_ns, previous_window_start_ns, previous_avg_ms, current_avg_ms,"
		" previous_p95_ms, current_p95_ms, previous_error_rate, current_error_rate,"
		" previous_count, current_count, fingerprint, sql, detected_at_ns, webhook, alert)"
		" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &ri, NULL) != SQLITE_OK) {
		rc = -EIO;
		goto out;
	}
	for (size_t i = 0; i < ns && rc == 0; i++) {
		const struct sum *s = &sums[i];
		const struct col_stats *st = &s->e->st;
		uint8_t *blob = NULL;
		size_t blen = 0;
		col_sketch_encode(&st->sketch, &blob, &blen);
		char *n1 = n1_json(s->e->n1, s->e->n1sql, s->e->nn1);
		sqlite3_bind_int64(si, 1, start);
		sqlite3_bind_int64(si, 2, start + w->window_ns);
		sqlite3_bind_text(si, 3, w->host, -1, SQLITE_STATIC);
		sqlite3_bind_text(si, 4, s->service, -1, SQLITE_STATIC);
		sqlite3_bind_text(si, 5, s->method, -1, SQLITE_STATIC);
		sqlite3_bind_text(si, 6, s->route, -1, SQLITE_STATIC);
		sqlite3_bind_int64(si, 7, (int64_t)st->count);
		sqlite3_bind_double(si, 8, st->sum_ms);
		sqlite3_bind_double(si, 9, s->ws.avg_ms);
		sqlite3_bind_double(si, 10, s->ws.p95_ms);
		sqlite3_bind_double(si, 11, s->min_ms);
		sqlite3_bind_double(si, 12, s->max_ms);
		sqlite3_bind_int64(si, 13, (int64_t)st->error_count);
		sqlite3_bind_double(si, 14, s->error_rate);
		sqlite3_bind_int64(si, 15, (int64_t)st->slow_count);
		sqlite3_bind_int64(si, 16, (int64_t)st->n_plus_one_count);
		sqlite3_bind_int64(si, 17, (int64_t)st->sql_count);
		sqlite3_bind_double(si, 18, st->sql_time_ms);
		if (n1)
			sqlite3_bind_text(si, 19, n1, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(si, 19);
		if (blob)
			sqlite3_bind_blob(si, 20, blob, (int)blen, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(si, 20);
		rc = step_done(si);
		if (rc == 0)
			*nsum += (size_t)sqlite3_changes(w->wdb);
		free(blob);
		free(n1);
	}
	for (size_t i = 0; i < nr && rc == 0; i++) {
		struct col_regression_view *v = &regs[i].v;
		char *alert = col_windows_alert_body(v);
		sqlite3_bind_text(ri, 1, col_reg_type_name(v->type), -1, SQLITE_STATIC);
		sqlite3_bind_text(ri, 2, w->host, -1, SQLITE_STATIC);
		sqlite3_bind_text(ri, 3, v->service, -1, SQLITE_STATIC);
		sqlite3_bind_text(ri, 4, v->method, -1, SQLITE_STATIC);
		sqlite3_bind_text(ri, 5, v->route, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ri, 6, v->window_start_ns);
		sqlite3_bind_int64(ri, 7, v->window_end_ns);
		sqlite3_bind_int64(ri, 8, v->previous_window_start_ns);
		sqlite3_bind_double(ri, 9, v->previous_avg_ms);
		sqlite3_bind_double(ri, 10, v->current_avg_ms);
		sqlite3_bind_double(ri, 11, v->previous_p95_ms);
		sqlite3_bind_double(ri, 12, v->current_p95_ms);
		sqlite3_bind_double(ri, 13, v->previous_error_rate);
		sqlite3_bind_double(ri, 14, v->current_error_rate);
		sqlite3_bind_int64(ri, 15, (int64_t)v->previous_count);
		sqlite3_bind_int64(ri, 16, (int64_t)v->current_count);
		sqlite3_bind_text(ri, 17, v->fingerprint, -1, SQLITE_STATIC);
		if (v->sql)
			sqlite3_bind_text(ri, 18, v->sql, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(ri, 18);
		sqlite3_bind_int64(ri, 19, v->detected_ns);
		sqlite3_bind_text(ri, 20, col_webhook_status_name(v->webhook), -1, SQLITE_STATIC);
		if (alert)
			sqlite3_bind_text(ri, 21, alert, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(ri, 21);
		rc = step_done(ri);
		v->id = rc == 0 && sqlite3_changes(w->wdb) > 0 ? sqlite3_last_insert_rowid(w->wdb) : 0;
		free(alert);
	}
out:
	sqlite3_finalize(si);
	sqlite3_finalize(ri);
	return rc;
}

static int sum_cmp(const void *a, const void *b)
{
	const struct sum *x = a, *y = b;
	int c = strcmp(x->service, y->service);
	if (c == 0)
		c = strcmp(x->route, y->route);
	if (c == 0)
		c = strcmp(x->method, y->method);
	return c;
}

/* Summarises one window, applies the rules, writes (close_mu held, in a
 * transaction). On success the endpoints' `last` entries are updated and
 * *regs_out holds the new regressions (with ids) for the caller to log and
 * alert. */
static int close_window(struct col_windows *w, struct win *x, int64_t now_real,
                        size_t *nsum, struct reg **regs_out, size_t *nregs_out)
{
	size_t n = col_hmap_count(x->eps), ns = 0, nr = 0, rcap = 0;
	struct sum *sums = calloc(n ? n : 1, sizeof *sums);
	struct reg *regs = NULL;
	if (sums == NULL)
		return -ENOMEM;
	size_t it = 0;
	struct wep *e;
	while ((e = col_hmap_next(x->eps, &it, NULL, NULL)) != NULL) {
		if (e->st.count == 0)
			continue;
		struct sum *s = &sums[ns++];
		s->e = e;
		split_key(e->key, &s->service, &s->method, &s->route);
		s->ws.count = e->st.count;
		s->ws.error_count = e->st.error_count;
		s->ws.avg_ms = e->st.sum_ms / (double)e->st.count;
		s->ws.p95_ms = col_sketch_quantile(&e->st.sketch, 0.95);
		s->ws.nn1 = e->nn1;
		memcpy(s->ws.n1, e->n1, sizeof s->ws.n1);
		s->min_ms = e->st.min_ms;
		s->max_ms = e->st.max_ms;
		s->error_rate = col_win_error_rate(&s->ws);
	}
	qsort(sums, ns, sizeof *sums, sum_cmp);
	for (size_t i = 0; i < ns; i++) {
		struct sum *s = &sums[i];
		const struct last *l = col_hmap_get(w->last, s->e->key, s->e->klen);
		if (l == NULL || l->start >= x->start)
			continue;
		struct col_reg_hit hits[COL_REG_TYPES + COL_WIN_MAX_N1];
		size_t nh = col_regress_detect(&w->rules, &l->sum, &s->ws, hits,
		                               sizeof hits / sizeof hits[0]);
		if (nh > sizeof hits / sizeof hits[0])
			nh = sizeof hits / sizeof hits[0];
		for (size_t k = 0; k < nh; k++) {
			if (nr == rcap) {
				size_t nc = rcap ? rcap * 2 : 8;
				struct reg *v = realloc(regs, nc * sizeof *v);
				if (v == NULL)
					break;
				regs = v;
				rcap = nc;
			}
			struct reg *r = &regs[nr++];
			memset(r, 0, sizeof *r);
			r->s = s;
			r->v.type = hits[k].type;
			r->v.host = w->host;
			r->v.service = s->service;
			r->v.method = s->method;
			r->v.route = s->route;
			r->v.window_start_ns = x->start;
			r->v.window_end_ns = x->start + w->window_ns;
			r->v.previous_window_start_ns = l->start;
			r->v.previous_avg_ms = l->sum.avg_ms;
			r->v.current_avg_ms = s->ws.avg_ms;
			r->v.previous_p95_ms = l->sum.p95_ms;
			r->v.current_p95_ms = s->ws.p95_ms;
			r->v.previous_error_rate = col_win_error_rate(&l->sum);
			r->v.current_error_rate = s->error_rate;
			r->v.previous_count = l->sum.count;
			r->v.current_count = s->ws.count;
			r->v.detected_ns = now_real;
			r->v.webhook = w->wh ? COL_WEBHOOK_PENDING : COL_WEBHOOK_NONE;
			if (hits[k].type == COL_REG_N_PLUS_ONE) {
				col_fp_hex(hits[k].fingerprint, r->fp);
				for (uint32_t j = 0; j < s->e->nn1; j++)
					if (s->e->n1[j] == hits[k].fingerprint)
						r->v.sql = s->e->n1sql[j];
			}
		}
	}
	/* Only now: regs may have moved while it grew. */
	for (size_t i = 0; i < nr; i++)
		regs[i].v.fingerprint = regs[i].fp;
	int rc = write_window(w, x->start, sums, ns, regs, nr, nsum);
	if (rc == 0) {
		for (size_t i = 0; i < ns; i++) {
			struct sum *s = &sums[i];
			struct last *l = col_hmap_get(w->last, s->e->key, s->e->klen);
			if (l == NULL) {
				l = calloc(1, sizeof *l + s->e->klen);
				if (l == NULL)
					continue;
				memcpy(l->key, s->e->key, s->e->klen);
				l->klen = s->e->klen;
				if (col_hmap_put(w->last, l->key, l->klen, l) < 0) {
					free(l);
					continue;
				}
			}
			if (l->start < x->start) {
				l->start = x->start;
				l->sum = s->ws;
			}
		}
		*regs_out = regs;
		*nregs_out = nr;
		regs = NULL;
	}
	free(regs);
	free(sums);
	return rc;
}

static void write_state(struct col_windows *w, int64_t closed_until)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(w->wdb,
		"INSERT INTO window_state (host, closed_until_ns) VALUES (?, ?)"
		" ON CONFLICT (host) DO UPDATE SET closed_until_ns = max(closed_until_ns, excluded.closed_until_ns)",
		-1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, w->host, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, closed_until);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
}

/* One warning line per regression, at most COL_WIN_REG_LOG_PER_MIN a
 * minute (close_mu held). */
static void log_regression(struct col_windows *w, const struct col_regression_view *v)
{
	if (!col_log_budget_take(&w->reg_log, col_clock_mono_ns()))
		return;
	char when[COL_TIME_BUF];
	col_time_format(v->window_start_ns, when, sizeof when);
	switch (v->type) {
	case COL_REG_RESPONSE_TIME:
	case COL_REG_P95: {
		int p95 = v->type == COL_REG_P95;
		double a = p95 ? v->previous_p95_ms : v->previous_avg_ms;
		double b = p95 ? v->current_p95_ms : v->current_avg_ms;
		col_log(COL_LOG_WARN, "regression %s: %s %s %s: %s %.1f ms, was %.1f ms, in the window"
		        " starting %s", col_reg_type_name(v->type), v->service, v->method, v->route,
		        p95 ? "p95" : "average", b, a, when);
		break;
	}
	case COL_REG_ERROR_RATE:
		col_log(COL_LOG_WARN, "regression error_rate: %s %s %s: error rate %.1f%%, was %.1f%%,"
		        " in the window starting %s", v->service, v->method, v->route,
		        v->current_error_rate * 100, v->previous_error_rate * 100, when);
		break;
	default:
		col_log(COL_LOG_WARN, "regression n_plus_one: %s %s %s: new N+1 pattern %s (%s) in the"
		        " window starting %s", v->service, v->method, v->route, v->fingerprint,
		        v->sql ? v->sql : "?", when);
	}
}

/* Alert `id` (`attempts` made) that col_webhook_send() refused with `err`
 * (close_mu held): dropped (queue full, out of memory), it never reaches
 * on_webhook, so its outcome is settled here, as on_webhook settles the
 * others, once: `failed` in the table (so no later start resends it) and in
 * apiprof_collector_webhook_deliveries_total. (-ESHUTDOWN cannot happen:
 * the worker stops after the closing thread and the API.) */
/* Alert `id`'s webhook status (a name: "pending", "delivered", "failed")
 * and attempts in the table, close_mu held; the fleet's copy is told. A
 * failed write is logged. */
static void set_alert_status(struct col_windows *w, int64_t id, const char *status,
                             int attempts)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(w->wdb, "UPDATE regressions SET webhook = ?, webhook_attempts = ?"
	                       " WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, attempts);
		sqlite3_bind_int64(st, 3, id);
		if (sqlite3_step(st) != SQLITE_DONE)
			col_log(COL_LOG_WARN, "windows: alert %lld status: %s", (long long)id,
			        sqlite3_errmsg(w->wdb));
		col_winpub_webhook_changed(w->pub);
	}
	sqlite3_finalize(st);
}

static void alert_unsent(struct col_windows *w, int64_t id, int attempts, int err)
{
	col_metrics_webhook(w->metrics, "failed");
	set_alert_status(w, id, "failed", attempts);
	col_log(COL_LOG_WARN, "webhook: alert %lld dropped (%s)", (long long)id,
	        err == -ENOSPC ? "queue full" : strerror(-err));
}

int col_windows_close(struct col_windows *w, int64_t cutoff_ns, size_t *summaries,
                      size_t *regressions)
{
	size_t nsum = 0, nreg = 0;
	int rc = 0;
	int64_t boundary = col_windows_start_of(cutoff_ns, w->window_ns);
	pthread_mutex_lock(&w->close_mu);
	pthread_mutex_lock(&w->mu);
	struct win *due = NULL, **tail = &due;
	while (w->open != NULL && w->open->start < boundary) {
		struct win *x = w->open;
		w->open = x->next;
		x->next = NULL;
		*tail = x;
		tail = &x->next;
		w->nopen--;
	}
	int raised = boundary > w->closed_until;
	if (raised)
		w->closed_until = boundary;
	pthread_mutex_unlock(&w->mu);

	int64_t now_real = col_clock_real_ns();
	while (due != NULL) {
		struct win *x = due;
		struct reg *regs = NULL;
		size_t nr = 0, ns = 0;
		/* Without the transaction, a failure would leave half a window
		 * written: refuse to start without it. */
		if (sqlite3_exec(w->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			rc = -EIO;
		else
			rc = close_window(w, x, now_real, &ns, &regs, &nr);
		if (rc == 0) {
			write_state(w, boundary);
			rc = sqlite3_exec(w->wdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
		}
		if (rc < 0) {
			sqlite3_exec(w->wdb, "ROLLBACK", NULL, NULL, NULL);
			free(regs);
			pthread_mutex_lock(&w->mu);
			w->storage_errors++;
			/* Back into the open list, retried at the next tick. */
			struct win **pp = &w->open;
			struct win *rest = due;
			while (rest != NULL) {
				struct win *y = rest;
				rest = y->next;
				while (*pp != NULL && (*pp)->start < y->start)
					pp = &(*pp)->next;
				y->next = *pp;
				*pp = y;
				w->nopen++;
			}
			pthread_mutex_unlock(&w->mu);
			col_log(COL_LOG_ERROR, "windows: writing summaries: %s", sqlite3_errmsg(w->wdb));
			rc = -EIO;
			due = NULL;
			break;
		}
		due = x->next;
		nsum += ns;
		for (size_t i = 0; i < nr; i++) {
			struct col_regression_view *v = &regs[i].v;
			if (v->id == 0)
				continue; /* already stored */
			nreg++;
			log_regression(w, v);
			col_metrics_regression(w->metrics, v->service, col_reg_type_name(v->type));
			pthread_mutex_lock(&w->mu);
			count_reg(w, v->service, v->type);
			w->regressions++;
			pthread_mutex_unlock(&w->mu);
			if (w->wh != NULL) {
				char *body = col_windows_alert_body(v);
				int sent = body ? col_webhook_send(w->wh, v->id, body, 0) : -ENOMEM;
				if (sent < 0)
					alert_unsent(w, v->id, 0, sent);
				free(body);
			}
		}
		free(regs);
		if (col_log_enabled(COL_LOG_INFO)) {
			char when[COL_TIME_BUF];
			col_time_format(x->start, when, sizeof when);
			col_log(COL_LOG_INFO, "windows: window %s closed %.3f s after its end:"
			        " %zu summaries, %zu regressions", when,
			        (double)(col_clock_real_ns() - x->start - w->window_ns) / 1e9, ns, nr);
		}
		pthread_mutex_lock(&w->mu);
		w->closed++;
		w->summaries += ns;
		pthread_mutex_unlock(&w->mu);
		win_free(x);
	}
	if (rc == 0 && raised && nsum == 0)
		write_state(w, boundary);
	pthread_mutex_unlock(&w->close_mu);
	/* The fleet's copy, from what is committed (also what an earlier call
	 * could not publish), read on the reader connection: a database slow
	 * to answer then holds up neither closing, the webhook worker nor the
	 * status. With PostgreSQL the API does not read that connection. */
	if (w->pub) {
		pthread_mutex_lock(&w->read_mu);
		col_winpub_run(w->pub, w->rdb);
		pthread_mutex_unlock(&w->read_mu);
	}
	if (summaries)
		*summaries = nsum;
	if (regressions)
		*regressions = nreg;
	return rc;
}

int col_windows_aggregate(struct col_windows *w, size_t *summaries, size_t *regressions)
{
	return col_windows_close(w, col_clock_real_ns(), summaries, regressions);
}

/* ---- the thread ---- */

static void *closer_main(void *arg)
{
	struct col_windows *w = arg;
	/* Nothing is closed during the first grace: a window that ended
	 * while the collector was down waits for what the preloaded
	 * processes buffered meanwhile, delivered within a second of the
	 * start. Closed at once, every request of the downtime was late. */
	int64_t first_mono = col_clock_mono_ns() + w->grace_ns;
	pthread_mutex_lock(&w->mu);
	while (!w->stopping) {
		pthread_mutex_unlock(&w->mu);
		int64_t now = col_clock_real_ns();
		int64_t to_first = first_mono - col_clock_mono_ns();
		if (to_first <= 0)
			col_windows_close(w, now - w->grace_ns, NULL, NULL);
		/* The next deadline: the end of the window now open plus the
		 * grace, on the wall clock; waited for in steps of at most a
		 * second on CLOCK_MONOTONIC, so a clock step is noticed. */
		now = col_clock_real_ns();
		int64_t next = col_windows_start_of(now - w->grace_ns, w->window_ns) + w->window_ns +
		               w->grace_ns;
		int64_t wait = next - now;
		if (to_first > 0 && to_first < wait)
			wait = to_first;
		if (wait > TICK_NS)
			wait = TICK_NS;
		if (wait < 1000000)
			wait = 1000000;
		int64_t dl = col_clock_mono_ns() + wait;
		struct timespec ts = { .tv_sec = dl / COL_NS_PER_S, .tv_nsec = dl % COL_NS_PER_S };
		pthread_mutex_lock(&w->mu);
		if (!w->stopping)
			pthread_cond_timedwait(&w->wake, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void on_webhook(void *arg, int64_t id, int status, int attempts)
{
	struct col_windows *w = arg;
	if (status == COL_WEBHOOK_DELIVERED || status == COL_WEBHOOK_FAILED)
		col_metrics_webhook(w->metrics, status == COL_WEBHOOK_DELIVERED ? "delivered" : "failed");
	pthread_mutex_lock(&w->close_mu);
	set_alert_status(w, id, col_webhook_status_name(status), attempts);
	pthread_mutex_unlock(&w->close_mu);
}

/* Alerts left pending by the last run (stopped before delivery), with the
 * attempts it made: SPEC 5's 8 attempts are per alert, not per run. One
 * the queue cannot take is dropped as a new one would be. */
static void resend_pending(struct col_windows *w)
{
	sqlite3_stmt *st = NULL;
	struct { int64_t id; int attempts, err; } *drop = NULL;
	size_t ndrop = 0, cap = 0;
	pthread_mutex_lock(&w->close_mu);
	if (sqlite3_prepare_v2(w->wdb, "SELECT id, alert, webhook_attempts FROM regressions"
	                       " WHERE host = ? AND webhook = 'pending' AND alert IS NOT NULL"
	                       " AND detected_at_ns >= ? ORDER BY id", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, w->host, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, col_clock_real_ns() - ALERT_RESEND_NS);
		while (sqlite3_step(st) == SQLITE_ROW) {
			int64_t id = sqlite3_column_int64(st, 0);
			int attempts = sqlite3_column_int(st, 2);
			int rc = col_webhook_send(w->wh, id, (const char *)sqlite3_column_text(st, 1),
			                          attempts);
			if (rc == 0)
				continue;
			/* Settled after the SELECT: its rows are not changed under it. */
			if (ndrop == cap) {
				size_t nc = cap ? cap * 2 : 16;
				void *p = realloc(drop, nc * sizeof *drop);
				if (p == NULL)
					continue; /* left pending: resent by the next start */
				drop = p;
				cap = nc;
			}
			drop[ndrop].id = id;
			drop[ndrop].attempts = attempts;
			drop[ndrop++].err = rc;
		}
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < ndrop; i++)
		alert_unsent(w, drop[i].id, drop[i].attempts, drop[i].err);
	pthread_mutex_unlock(&w->close_mu);
	free(drop);
}

int col_windows_start(struct col_windows *w, char *err, size_t errlen)
{
	if (w->webhook_url != NULL) {
		struct col_webhook_opts wo = {
			.url = w->webhook_url,
			.delay_scale_pct = w->webhook_scale,
			.queue_cap = w->webhook_queue,
			.cb = on_webhook,
			.arg = w,
		};
		w->wh = col_webhook_start(&wo, err, errlen);
		if (w->wh == NULL)
			return -ENOMEM;
		resend_pending(w);
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&w->thread, NULL, closer_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "windows: starting the thread: %s", strerror(rc));
		return -rc;
	}
	w->running = 1;
	return 0;
}

/* Stores the open windows for the next start (close_mu held). */
static void store_partials(struct col_windows *w)
{
	sqlite3_stmt *st = NULL;
	size_t rows = 0;
	sqlite3_exec(w->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	sqlite3_stmt *del = NULL;
	if (sqlite3_prepare_v2(w->wdb, "DELETE FROM window_partials WHERE host = ?", -1, &del,
	                       NULL) == SQLITE_OK) {
		sqlite3_bind_text(del, 1, w->host, -1, SQLITE_STATIC);
		sqlite3_step(del);
	}
	sqlite3_finalize(del);
	int rc = sqlite3_prepare_v2(w->wdb,
		"INSERT INTO window_partials (host, window_start_ns, service, method, route, count,"
		" error_count, slow_count, sum_ms, min_ms, max_ms, sql_count, sql_time_ms,"
		" n_plus_one_count, n1, sketch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
		-1, &st, NULL);
	pthread_mutex_lock(&w->mu);
	for (struct win *x = w->open; x && rc == SQLITE_OK; x = x->next) {
		size_t it = 0;
		struct wep *e;
		while ((e = col_hmap_next(x->eps, &it, NULL, NULL)) != NULL && rc == SQLITE_OK) {
			const char *svc, *method, *route;
			split_key(e->key, &svc, &method, &route);
			uint8_t *blob = NULL;
			size_t blen = 0;
			col_sketch_encode(&e->st.sketch, &blob, &blen);
			char *n1 = n1_json(e->n1, e->n1sql, e->nn1);
			sqlite3_bind_text(st, 1, w->host, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, x->start);
			sqlite3_bind_text(st, 3, svc, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, method, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 5, route, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 6, (int64_t)e->st.count);
			sqlite3_bind_int64(st, 7, (int64_t)e->st.error_count);
			sqlite3_bind_int64(st, 8, (int64_t)e->st.slow_count);
			sqlite3_bind_double(st, 9, e->st.sum_ms);
			sqlite3_bind_double(st, 10, e->st.min_ms);
			sqlite3_bind_double(st, 11, e->st.max_ms);
			sqlite3_bind_int64(st, 12, (int64_t)e->st.sql_count);
			sqlite3_bind_double(st, 13, e->st.sql_time_ms);
			sqlite3_bind_int64(st, 14, (int64_t)e->st.n_plus_one_count);
			if (n1)
				sqlite3_bind_text(st, 15, n1, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(st, 15);
			if (blob)
				sqlite3_bind_blob(st, 16, blob, (int)blen, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(st, 16);
			if (step_done(st) < 0)
				rc = SQLITE_ERROR;
			else
				rows++;
			free(blob);
			free(n1);
		}
	}
	size_t nopen = w->nopen;
	pthread_mutex_unlock(&w->mu);
	sqlite3_finalize(st);
	if (rc == SQLITE_OK && sqlite3_exec(w->wdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
		if (rows)
			col_log(COL_LOG_INFO, "windows: %zu open windows stored (%zu endpoint rows)",
			        nopen, rows);
	} else {
		col_log(COL_LOG_ERROR, "windows: storing the open windows: %s", sqlite3_errmsg(w->wdb));
		sqlite3_exec(w->wdb, "ROLLBACK", NULL, NULL, NULL);
	}
}

void col_windows_stop(struct col_windows *w)
{
	if (w == NULL || w->stopped)
		return;
	w->stopped = 1;
	if (w->running) {
		pthread_mutex_lock(&w->mu);
		w->stopping = 1;
		pthread_cond_signal(&w->wake);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
		w->running = 0;
	}
	/* Every open window waits for the next start, even one already due:
	 * closing it there gives the same summary, and a stop stays quick. */
	pthread_mutex_lock(&w->close_mu);
	store_partials(w);
	pthread_mutex_unlock(&w->close_mu);
	struct col_webhook *wh = w->wh;
	col_webhook_stop(wh);
	pthread_mutex_lock(&w->close_mu);
	w->wh = NULL;
	pthread_mutex_unlock(&w->close_mu);
}

void col_windows_free(struct col_windows *w)
{
	if (w == NULL)
		return;
	col_windows_stop(w);
	while (w->open) {
		struct win *x = w->open;
		w->open = x->next;
		win_free(x);
	}
	if (w->last) {
		size_t it = 0;
		struct last *l;
		while ((l = col_hmap_next(w->last, &it, NULL, NULL)) != NULL)
			free(l);
		col_hmap_free(w->last);
	}
	col_reg_counts_free(w->counts, w->ncounts);
	col_winpub_free(w->pub);
	sqlite3_close(w->wdb);
	sqlite3_close(w->rdb);
	free(w->host);
	free(w->webhook_url);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->mu);
	pthread_mutex_destroy(&w->close_mu);
	pthread_mutex_destroy(&w->read_mu);
	free(w);
}

/* ---- readers ---- */

/* Appends "AND col = ?" for each filter set; binds in order. */
struct where {
	char sql[512];
	const char *vals[8];
	int64_t nums[4];
	int nv, nn;
};

static void where_str(struct where *q, const char *col, const char *v)
{
	if (v == NULL)
		return;
	size_t l = strlen(q->sql);
	snprintf(q->sql + l, sizeof q->sql - l, " AND %s = ?", col);
	q->vals[q->nv++] = v;
}

static void where_period(struct where *q, const struct col_win_filter *f)
{
	size_t l = strlen(q->sql);
	snprintf(q->sql + l, sizeof q->sql - l, " AND window_start_ns >= ? AND window_start_ns < ?");
	q->nums[0] = f->since_ns;
	q->nums[1] = f->until_ns;
}

static void where_bind(sqlite3_stmt *st, const struct where *q, int limit)
{
	int i = 1;
	for (int k = 0; k < q->nv; k++)
		sqlite3_bind_text(st, i++, q->vals[k], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, i++, q->nums[0]);
	sqlite3_bind_int64(st, i++, q->nums[1]);
	sqlite3_bind_int(st, i, limit);
}

int col_windows_summaries(struct col_windows *w, const struct col_win_filter *f,
                          int (*cb)(void *, const struct col_summary_view *), void *arg)
{
	struct where q = { .sql = "" };
	where_str(&q, "host", f->host);
	where_str(&q, "service", f->service);
	where_str(&q, "method", f->method);
	where_str(&q, "route", f->route);
	where_period(&q, f);
	char sql[1024];
	snprintf(sql, sizeof sql,
	         "SELECT window_start_ns, window_end_ns, host, service, method, route, count,"
	         " avg_ms, p95_ms, min_ms, max_ms, error_count, error_rate, slow_count,"
	         " n_plus_one_count, sql_count, sql_time_ms FROM window_summaries WHERE 1%s"
	         " ORDER BY window_start_ns DESC, count DESC, service, route, method LIMIT ?", q.sql);
	int n = 0, rc;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&w->read_mu);
	if (sqlite3_prepare_v2(w->rdb, sql, -1, &st, NULL) != SQLITE_OK) {
		n = -EIO;
		goto out;
	}
	where_bind(st, &q, f->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct col_summary_view v = {
			.start_ns = sqlite3_column_int64(st, 0),
			.end_ns = sqlite3_column_int64(st, 1),
			.host = (const char *)sqlite3_column_text(st, 2),
			.service = (const char *)sqlite3_column_text(st, 3),
			.method = (const char *)sqlite3_column_text(st, 4),
			.route = (const char *)sqlite3_column_text(st, 5),
			.count = (uint64_t)sqlite3_column_int64(st, 6),
			.avg_ms = sqlite3_column_double(st, 7),
			.p95_ms = sqlite3_column_double(st, 8),
			.min_ms = sqlite3_column_double(st, 9),
			.max_ms = sqlite3_column_double(st, 10),
			.error_count = (uint64_t)sqlite3_column_int64(st, 11),
			.error_rate = sqlite3_column_double(st, 12),
			.slow_count = (uint64_t)sqlite3_column_int64(st, 13),
			.n_plus_one_count = (uint64_t)sqlite3_column_int64(st, 14),
			.sql_count = (uint64_t)sqlite3_column_int64(st, 15),
			.sql_time_ms = sqlite3_column_double(st, 16),
		};
		int r = cb(arg, &v);
		if (r != 0) {
			n = r;
			goto out;
		}
		n++;
	}
	if (rc != SQLITE_DONE)
		n = -EIO;
out:
	if (n == -EIO)
		col_log(COL_LOG_WARN, "windows: reading summaries: %s", sqlite3_errmsg(w->rdb));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&w->read_mu);
	return n;
}

int col_windows_regressions(struct col_windows *w, const struct col_win_filter *f,
                            int (*cb)(void *, const struct col_regression_view *), void *arg)
{
	struct where q = { .sql = "" };
	where_str(&q, "host", f->host);
	where_str(&q, "service", f->service);
	where_str(&q, "method", f->method);
	where_str(&q, "route", f->route);
	where_str(&q, "type", f->type >= 0 ? col_reg_type_name(f->type) : NULL);
	where_period(&q, f);
	char sql[1400];
	snprintf(sql, sizeof sql,
	         "SELECT id, type, host, service, method, route, window_start_ns, window_end_ns,"
	         " previous_window_start_ns, previous_avg_ms, current_avg_ms, previous_p95_ms,"
	         " current_p95_ms, previous_error_rate, current_error_rate, previous_count,"
	         " current_count, fingerprint, sql, detected_at_ns, webhook, webhook_attempts"
	         " FROM regressions WHERE 1%s ORDER BY detected_at_ns DESC, id DESC LIMIT ?", q.sql);
	int n = 0, rc;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&w->read_mu);
	if (sqlite3_prepare_v2(w->rdb, sql, -1, &st, NULL) != SQLITE_OK) {
		n = -EIO;
		goto out;
	}
	where_bind(st, &q, f->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *wh = (const char *)sqlite3_column_text(st, 20);
		int whs = wh ? col_webhook_status_lookup(wh) : COL_WEBHOOK_NONE;
		struct col_regression_view v = {
			.id = sqlite3_column_int64(st, 0),
			.type = col_reg_type_lookup((const char *)sqlite3_column_text(st, 1)),
			.host = (const char *)sqlite3_column_text(st, 2),
			.service = (const char *)sqlite3_column_text(st, 3),
			.method = (const char *)sqlite3_column_text(st, 4),
			.route = (const char *)sqlite3_column_text(st, 5),
			.window_start_ns = sqlite3_column_int64(st, 6),
			.window_end_ns = sqlite3_column_int64(st, 7),
			.previous_window_start_ns = sqlite3_column_int64(st, 8),
			.previous_avg_ms = sqlite3_column_double(st, 9),
			.current_avg_ms = sqlite3_column_double(st, 10),
			.previous_p95_ms = sqlite3_column_double(st, 11),
			.current_p95_ms = sqlite3_column_double(st, 12),
			.previous_error_rate = sqlite3_column_double(st, 13),
			.current_error_rate = sqlite3_column_double(st, 14),
			.previous_count = (uint64_t)sqlite3_column_int64(st, 15),
			.current_count = (uint64_t)sqlite3_column_int64(st, 16),
			.fingerprint = (const char *)sqlite3_column_text(st, 17),
			.sql = (const char *)sqlite3_column_text(st, 18),
			.detected_ns = sqlite3_column_int64(st, 19),
			.webhook = whs < 0 ? COL_WEBHOOK_NONE : whs,
			.webhook_attempts = sqlite3_column_int(st, 21),
		};
		if (v.fingerprint == NULL)
			v.fingerprint = "";
		int r = cb(arg, &v);
		if (r != 0) {
			n = r;
			goto out;
		}
		n++;
	}
	if (rc != SQLITE_DONE)
		n = -EIO;
out:
	if (n == -EIO)
		col_log(COL_LOG_WARN, "windows: reading regressions: %s", sqlite3_errmsg(w->rdb));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&w->read_mu);
	return n;
}

void col_windows_counters(struct col_windows *w, struct col_windows_counters *c)
{
	memset(c, 0, sizeof *c);
	pthread_mutex_lock(&w->mu);
	c->window_ns = w->window_ns;
	c->grace_ns = w->grace_ns;
	c->closed_until_ns = w->closed_until;
	c->open_windows = w->nopen;
	c->windows_closed = w->closed;
	c->summaries_written = w->summaries;
	c->regressions = w->regressions;
	c->late_events = w->late;
	c->dropped_events = w->dropped;
	c->storage_errors = w->storage_errors;
	pthread_mutex_unlock(&w->mu);
	pthread_mutex_lock(&w->close_mu);
	col_webhook_counters(w->wh, &c->webhook);
	pthread_mutex_unlock(&w->close_mu);
}

int col_windows_regression_counts(struct col_windows *w, struct col_reg_count **out, size_t *n)
{
	int rc = 0;
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&w->mu);
	if (w->ncounts > 0) {
		struct col_reg_count *v = calloc(w->ncounts, sizeof *v);
		size_t k = 0;
		for (; v && k < w->ncounts; k++) {
			v[k] = w->counts[k];
			v[k].service = strdup(w->counts[k].service);
			if (v[k].service == NULL)
				break;
		}
		if (v == NULL || k < w->ncounts) {
			col_reg_counts_free(v, k);
			rc = -ENOMEM;
		} else {
			*out = v;
			*n = k;
		}
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void col_reg_counts_free(struct col_reg_count *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].service);
	free(v);
}

/* ---- alerts ---- */

static double ms3(double v)
{
	return isfinite(v) ? round(v * 1e3) / 1e3 : 0;
}

static void hhmmss(int64_t ns, char *out, size_t len)
{
	time_t t = (time_t)(ns / COL_NS_PER_S);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, len, "%H:%M:%S", &tm);
}

/* Slack reads <...> in a message's text as a mention or a link (<!channel>
 * notifies everyone, <http://x|label> disguises a link) and & as the
 * start of an entity; the route, service and SQL in the text are chosen by
 * the profiled server's clients, so &, < and > are escaped, as Slack asks
 * of any text that is not markup. out holds 5 * strlen(in) + 1 bytes. */
static void slack_escape(const char *in, char *out)
{
	for (; *in; in++) {
		const char *e = *in == '&' ? "&amp;" : *in == '<' ? "&lt;" : *in == '>' ? "&gt;" : NULL;
		if (e == NULL) {
			*out++ = *in;
		} else {
			memcpy(out, e, strlen(e));
			out += strlen(e);
		}
	}
	*out = '\0';
}

char *col_windows_alert_body(const struct col_regression_view *r)
{
	char raw[1024], clean[1024], text[5 * sizeof clean], from[16], to[16];
	char ws[COL_TIME_BUF], we[COL_TIME_BUF], det[COL_TIME_BUF];
	hhmmss(r->window_start_ns, from, sizeof from);
	hhmmss(r->window_end_ns, to, sizeof to);
	col_time_format(r->window_start_ns, ws, sizeof ws);
	col_time_format(r->window_end_ns, we, sizeof we);
	col_time_format(r->detected_ns, det, sizeof det);
	const char *host = r->host ? r->host : "";
	switch (r->type) {
	case COL_REG_RESPONSE_TIME:
		snprintf(raw, sizeof raw, ":warning: apiprof: %s %s on %s got slower: average %.1f ms,"
		         " up from %.1f ms (%.1fx) in %s-%s UTC on %s", r->method, r->route, r->service,
		         r->current_avg_ms, r->previous_avg_ms,
		         r->previous_avg_ms > 0 ? r->current_avg_ms / r->previous_avg_ms : 0.0,
		         from, to, host);
		break;
	case COL_REG_P95:
		snprintf(raw, sizeof raw, ":warning: apiprof: %s %s on %s got slower at the tail: p95"
		         " %.1f ms, up from %.1f ms (average %.1f ms, was %.1f ms) in %s-%s UTC on %s",
		         r->method, r->route, r->service, r->current_p95_ms, r->previous_p95_ms,
		         r->current_avg_ms, r->previous_avg_ms, from, to, host);
		break;
	case COL_REG_ERROR_RATE:
		snprintf(raw, sizeof raw, ":rotating_light: apiprof: %s %s on %s fails more: error"
		         " rate %.1f%%, up from %.1f%% in %s-%s UTC on %s", r->method, r->route,
		         r->service, r->current_error_rate * 100, r->previous_error_rate * 100,
		         from, to, host);
		break;
	default:
		snprintf(raw, sizeof raw, ":warning: apiprof: %s %s on %s has a new N+1 query"
		         " pattern: %.300s (fingerprint %s) in %s-%s UTC on %s", r->method, r->route,
		         r->service, r->sql ? r->sql : "?", r->fingerprint ? r->fingerprint : "",
		         from, to, host);
	}
	/* The SQL's %.300s and the buffer's end may cut a character of the
	 * route, service or SQL in two; jansson refuses invalid UTF-8 (no
	 * alert at all), so a cut character becomes '?'. */
	col_clean_text(raw, strlen(raw), clean, sizeof clean);
	slack_escape(clean, text);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I,"
	                      " s:s, s:s, s:s, s:s}",
		"text", text,
		"type", col_reg_type_name(r->type),
		"service", r->service,
		"route", r->route,
		"method", r->method,
		"previous_avg_ms", ms3(r->previous_avg_ms),
		"current_avg_ms", ms3(r->current_avg_ms),
		"previous_p95_ms", ms3(r->previous_p95_ms),
		"current_p95_ms", ms3(r->current_p95_ms),
		"previous_error_rate", round(r->previous_error_rate * 1e6) / 1e6,
		"current_error_rate", round(r->current_error_rate * 1e6) / 1e6,
		"previous_count", (json_int_t)r->previous_count,
		"current_count", (json_int_t)r->current_count,
		"window_start", ws,
		"window_end", we,
		"detected_at", det,
		"host", host);
	if (o == NULL)
		return NULL;
	if (r->type == COL_REG_N_PLUS_ONE) {
		json_object_set_new(o, "fingerprint", json_string(r->fingerprint ? r->fingerprint : ""));
		if (r->sql)
			json_object_set_new(o, "sql", json_string(r->sql));
	}
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(o);
	return s;
}

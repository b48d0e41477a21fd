/*
 * api_time.c - /timeseries, /summaries, /aggregate and /regressions
 * (api_time.h).
 */
#include "config.h"
#include "api_time.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "ap_config.h"
#include "col.h"
#include "jw.h"
#include "query.h"
#include "timeseries.h"
#include "windows.h"

#define MAX_LIMIT 1000
#define DEFAULT_LIMIT 100
#define MS 3
#define RATE 6

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body,
                            const char *allow)
{
	if (body == NULL) {
		body = strdup("{\"error\":\"out of memory\"}");
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		if (body == NULL)
			return MHD_NO;
	}
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Content-Security-Policy", COL_API_CSP);
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *allow,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *allow,
                                  const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "error");
	jw_str(&w, msg);
	jw_obj_end(&w);
	return reply(c, status, jw_finish(&w, NULL), allow);
}

static const char *arg(struct MHD_Connection *c, const char *name)
{
	const char *v = NULL;
	if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, name, strlen(name),
	                                  &v, NULL) != MHD_YES)
		return NULL;
	return v ? v : "";
}

/* The common filters; 0, or -1 with err filled. */
static int p_filter(struct MHD_Connection *c, struct col_win_filter *f, int with_type,
                    char *err, size_t errlen)
{
	static const char *const strs[] = { "service", "host", "method", "route" };
	const char **dst[] = { &f->service, &f->host, &f->method, &f->route };
	memset(f, 0, sizeof *f);
	f->type = -1;
	f->limit = DEFAULT_LIMIT;
	f->since_ns = INT64_MIN;
	f->until_ns = INT64_MAX;
	for (size_t i = 0; i < 4; i++) {
		const char *v = arg(c, strs[i]);
		if (v != NULL && *v == '\0') {
			snprintf(err, errlen, "%s: expected a non-empty value", strs[i]);
			return -1;
		}
		if (v != NULL && !col_utf8_valid(v)) { /* as api.c's p_str() */
			snprintf(err, errlen, "%s: expected UTF-8 text", strs[i]);
			return -1;
		}
		*dst[i] = v;
	}
	if (f->method != NULL) {
		int m = col_method_lookup(f->method);
		if (m < 0) {
			snprintf(err, errlen, COL_METHOD_EXPECTED);
			return -1;
		}
		f->method = col_method_name(m);
	}
	const char *s = arg(c, "limit");
	if (s != NULL) {
		char *end;
		long v = strtol(s, &end, 10);
		if (*s < '0' || *s > '9' || *end != '\0' || v < 1 || v > MAX_LIMIT) {
			snprintf(err, errlen, "limit: expected an integer 1..%d", MAX_LIMIT);
			return -1;
		}
		f->limit = (int)v;
	}
	static const char *const times[] = { "since", "until" };
	int64_t *tdst[] = { &f->since_ns, &f->until_ns };
	for (size_t i = 0; i < 2; i++) {
		s = arg(c, times[i]);
		if (s != NULL && col_time_parse(s, tdst[i]) < 0) {
			snprintf(err, errlen, "%s: expected an RFC 3339 time (2026-11-22T08:15:02Z)"
			         " or Unix seconds", times[i]);
			return -1;
		}
	}
	if (f->since_ns > f->until_ns) {
		snprintf(err, errlen, "since: must not be after until");
		return -1;
	}
	if (with_type && (s = arg(c, "type")) != NULL) {
		f->type = col_reg_type_lookup(s);
		if (f->type < 0) {
			snprintf(err, errlen, "type: expected response_time, error_rate, p95 or n_plus_one");
			return -1;
		}
	}
	return 0;
}

static void jw_time(struct jw *w, int64_t ns)
{
	char buf[COL_TIME_BUF];
	col_time_format(ns, buf, sizeof buf);
	jw_str(w, buf);
}

/* ---- /timeseries ---- */

/* A reader's failure: -EIO (the database not answering) is 503, as asking
 * again later may work; anything else 500. */
static enum MHD_Result win_read_error(struct MHD_Connection *c, int rc)
{
	if (rc == -EIO)
		return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
		                  "the database is unavailable; try again later");
	return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "database error");
}

/* The complete buckets of every host of a fleet (f->host: of that one),
 * summed per bucket, empty ones included from the first any host had
 * (or this collector's start, when it is one of those asked). *out is
 * malloc'ed; 0, -ENOMEM or -EIO. */
static int fleet_points(const struct col_api_ctx *x, const struct col_win_filter *f,
                        struct col_ts_point **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	int64_t first, last;
	col_tseries_span(col_clock_real_ns(), f->since_ns, f->until_ns, &first, &last);
	if (last < first)
		return 0;
	struct col_ts_bucket *b;
	size_t nb;
	int rc = col_query_timeseries(x->query, f->service, f->host, first * COL_TS_BUCKET_NS,
	                              last * COL_TS_BUCKET_NS, &b, &nb);
	if (rc < 0)
		return rc;
	int64_t from = nb ? b[0].t_ns / COL_TS_BUCKET_NS : INT64_MAX;
	int ours = f->host == NULL || strcmp(f->host, x->cfg->host_name) == 0;
	if (ours && f->service == NULL && x->timeseries &&
	    col_tseries_first(x->timeseries) < from)
		from = col_tseries_first(x->timeseries);
	if (from > first)
		first = from;
	if (last < first) {
		free(b);
		return 0;
	}
	size_t cnt = (size_t)(last - first + 1), k = 0;
	struct col_ts_point *v = calloc(cnt, sizeof *v);
	if (v == NULL) {
		free(b);
		return -ENOMEM;
	}
	for (size_t i = 0; i < cnt; i++) {
		int64_t idx = first + (int64_t)i;
		while (k < nb && b[k].t_ns < idx * COL_TS_BUCKET_NS)
			k++;
		if (k < nb && b[k].t_ns == idx * COL_TS_BUCKET_NS)
			col_ts_point_fill(&v[i], idx, b[k].requests, b[k].sql, b[k].request_ms,
			                  b[k].sql_ms);
		else
			col_ts_point_fill(&v[i], idx, 0, 0, 0, 0);
	}
	free(b);
	*out = v;
	*n = cnt;
	return 0;
}

static enum MHD_Result h_timeseries(const struct col_api_ctx *x, struct MHD_Connection *c)
{
	char err[256];
	struct col_win_filter f;
	if (p_filter(c, &f, 0, err, sizeof err) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, NULL, "%s", err);
	struct col_ts_point *p = NULL;
	size_t n = 0;
	/* Another host's rates live with its collector, or in a fleet's
	 * PostgreSQL; a service without a series of its own (unknown, or past
	 * the cap) has no points. */
	int ours = f.host == NULL || strcmp(f.host, x->cfg->host_name) == 0;
	int rc = col_query_fleet(x->query)
	         ? fleet_points(x, &f, &p, &n)
	         : ours && x->timeseries
	         ? col_tseries_points(x->timeseries, f.service, col_clock_real_ns(), f.since_ns,
	                              f.until_ns, &p, &n)
	         : 0;
	if (rc == -EIO)
		return win_read_error(c, rc);
	if (rc == -ENOMEM)
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	/* An explicit limit keeps the newest points (the list stays oldest
	 * first); without one, every complete bucket of the period. */
	size_t first = 0;
	if (arg(c, "limit") != NULL && n > (size_t)f.limit)
		first = n - (size_t)f.limit;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "bucket_seconds");
	jw_int(&w, COL_TS_BUCKET_S);
	jw_key(&w, "points");
	jw_arr(&w);
	for (size_t i = first; i < n; i++) {
		jw_obj(&w);
		jw_key(&w, "t");
		jw_time(&w, p[i].t_ns);
		jw_key(&w, "requests_per_s");
		jw_real(&w, p[i].requests_per_s, RATE);
		jw_key(&w, "sql_per_s");
		jw_real(&w, p[i].sql_per_s, RATE);
		jw_key(&w, "avg_request_ms");
		jw_real(&w, p[i].avg_request_ms, MS);
		jw_key(&w, "avg_sql_ms");
		jw_real(&w, p[i].avg_sql_ms, MS);
		jw_key(&w, "requests");
		jw_uint(&w, p[i].requests);
		jw_key(&w, "sql");
		jw_uint(&w, p[i].sql);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	free(p);
	return reply(c, MHD_HTTP_OK, jw_finish(&w, NULL), NULL);
}

/* ---- /summaries ---- */

static int summary_cb(void *arg, const struct col_summary_view *v)
{
	struct jw *w = arg;
	jw_obj(w);
	jw_key(w, "window_start");
	jw_time(w, v->start_ns);
	jw_key(w, "window_end");
	jw_time(w, v->end_ns);
	/* null: a fleet's row merged over several hosts */
	jw_key(w, "host");
	if (v->host)
		jw_str(w, v->host);
	else
		jw_null(w);
	jw_key(w, "service");
	jw_str(w, v->service);
	jw_key(w, "method");
	jw_str(w, v->method);
	jw_key(w, "route");
	jw_str(w, v->route);
	jw_key(w, "count");
	jw_uint(w, v->count);
	jw_key(w, "avg_ms");
	jw_real(w, v->avg_ms, MS);
	jw_key(w, "p95_ms");
	jw_real(w, v->p95_ms, MS);
	jw_key(w, "min_ms");
	jw_real(w, v->min_ms, MS);
	jw_key(w, "max_ms");
	jw_real(w, v->max_ms, MS);
	jw_key(w, "error_count");
	jw_uint(w, v->error_count);
	jw_key(w, "error_rate");
	jw_real(w, v->error_rate, RATE);
	jw_key(w, "slow_count");
	jw_uint(w, v->slow_count);
	jw_key(w, "n_plus_one_count");
	jw_uint(w, v->n_plus_one_count);
	jw_key(w, "sql_count");
	jw_uint(w, v->sql_count);
	jw_key(w, "sql_time_ms");
	jw_real(w, v->sql_time_ms, MS);
	jw_obj_end(w);
	return 0;
}

static enum MHD_Result h_summaries(const struct col_api_ctx *x, struct MHD_Connection *c)
{
	char err[256];
	struct col_win_filter f;
	if (p_filter(c, &f, 0, err, sizeof err) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, NULL, "%s", err);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "summaries");
	jw_arr(&w);
	/* A fleet's PostgreSQL holds every host's closed windows. */
	int rc = col_query_fleet(x->query) ? col_query_win_summaries(x->query, &f, summary_cb, &w)
	         : x->windows ? col_windows_summaries(x->windows, &f, summary_cb, &w) : 0;
	if (rc < 0) {
		jw_release(&w);
		return win_read_error(c, rc);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	return reply(c, MHD_HTTP_OK, jw_finish(&w, NULL), NULL);
}

/* ---- /regressions ---- */

static int regression_cb(void *arg, const struct col_regression_view *v)
{
	struct jw *w = arg;
	int n1 = v->type == COL_REG_N_PLUS_ONE;
	jw_obj(w);
	jw_key(w, "id");
	jw_int(w, v->id);
	jw_key(w, "type");
	jw_str(w, col_reg_type_name(v->type));
	jw_key(w, "host");
	jw_str(w, v->host);
	jw_key(w, "service");
	jw_str(w, v->service);
	jw_key(w, "method");
	jw_str(w, v->method);
	jw_key(w, "route");
	jw_str(w, v->route);
	jw_key(w, "window_start");
	jw_time(w, v->window_start_ns);
	jw_key(w, "window_end");
	jw_time(w, v->window_end_ns);
	jw_key(w, "previous_window_start");
	jw_time(w, v->previous_window_start_ns);
	jw_key(w, "previous_avg_ms");
	jw_real(w, v->previous_avg_ms, MS);
	jw_key(w, "current_avg_ms");
	jw_real(w, v->current_avg_ms, MS);
	jw_key(w, "previous_p95_ms");
	jw_real(w, v->previous_p95_ms, MS);
	jw_key(w, "current_p95_ms");
	jw_real(w, v->current_p95_ms, MS);
	jw_key(w, "previous_error_rate");
	jw_real(w, v->previous_error_rate, RATE);
	jw_key(w, "current_error_rate");
	jw_real(w, v->current_error_rate, RATE);
	jw_key(w, "previous_count");
	jw_uint(w, v->previous_count);
	jw_key(w, "current_count");
	jw_uint(w, v->current_count);
	jw_key(w, "fingerprint");
	if (n1)
		jw_str(w, v->fingerprint);
	else
		jw_null(w);
	jw_key(w, "sql");
	if (n1 && v->sql)
		jw_str(w, v->sql);
	else
		jw_null(w);
	jw_key(w, "detected_at");
	jw_time(w, v->detected_ns);
	jw_key(w, "webhook");
	jw_str(w, col_webhook_status_name(v->webhook));
	jw_key(w, "webhook_attempts");
	jw_int(w, v->webhook_attempts);
	jw_obj_end(w);
	return 0;
}

static enum MHD_Result h_regressions(const struct col_api_ctx *x, struct MHD_Connection *c)
{
	char err[256];
	struct col_win_filter f;
	if (p_filter(c, &f, 1, err, sizeof err) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, NULL, "%s", err);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "regressions");
	jw_arr(&w);
	int rc = col_query_fleet(x->query)
	         ? col_query_win_regressions(x->query, &f, regression_cb, &w)
	         : x->windows ? col_windows_regressions(x->windows, &f, regression_cb, &w) : 0;
	if (rc < 0) {
		jw_release(&w);
		return win_read_error(c, rc);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	return reply(c, MHD_HTTP_OK, jw_finish(&w, NULL), NULL);
}

/* ---- /aggregate ---- */

static enum MHD_Result h_aggregate(const struct col_api_ctx *x, struct MHD_Connection *c)
{
	size_t ns = 0, nr = 0;
	if (x->windows && col_windows_aggregate(x->windows, &ns, &nr) < 0)
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL,
		                  "the database refused the summaries; they are retried");
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "summaries");
	jw_uint(&w, ns);
	jw_key(&w, "regressions");
	jw_uint(&w, nr);
	jw_obj_end(&w);
	return reply(c, MHD_HTTP_OK, jw_finish(&w, NULL), NULL);
}

int col_api_time_owns(const char *sub)
{
	return strcmp(sub, "timeseries") == 0 || strcmp(sub, "summaries") == 0 ||
	       strcmp(sub, "aggregate") == 0 || strcmp(sub, "regressions") == 0;
}

enum MHD_Result col_api_time(const struct col_api_ctx *x, struct MHD_Connection *c,
                             const char *sub, const char *method)
{
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	if (strcmp(sub, "aggregate") == 0) {
		if (strcmp(method, "POST") != 0)
			return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "POST",
			                  "method %.32s not allowed on /api/v1/aggregate: use POST", method);
		return h_aggregate(x, c);
	}
	if (!get)
		return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD",
		                  "method %.32s not allowed on /api/v1/%.64s", method, sub);
	if (strcmp(sub, "timeseries") == 0)
		return h_timeseries(x, c);
	if (strcmp(sub, "summaries") == 0)
		return h_summaries(x, c);
	return h_regressions(x, c);
}

json_t *col_api_time_status(const struct col_api_ctx *x)
{
	struct col_windows_counters c;
	memset(&c, 0, sizeof c);
	if (x->windows)
		col_windows_counters(x->windows, &c);
	char cu[COL_TIME_BUF];
	col_time_format(c.closed_until_ns, cu, sizeof cu);
	return json_pack("{s:f, s:f, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
	                 " s:{s:I, s:I, s:I, s:I, s:I}}",
		"window_s", (double)c.window_ns / 1e9,
		"grace_s", (double)c.grace_ns / 1e9,
		"closed_until", c.closed_until_ns > 0 ? cu : NULL,
		"open_windows", (json_int_t)c.open_windows,
		"windows_closed", (json_int_t)c.windows_closed,
		"summaries_written", (json_int_t)c.summaries_written,
		"regressions", (json_int_t)c.regressions,
		"late_events", (json_int_t)c.late_events,
		"dropped_events", (json_int_t)c.dropped_events,
		"storage_errors", (json_int_t)c.storage_errors,
		"timeseries_out_of_range",
		(json_int_t)(x->timeseries ? col_tseries_out_of_range(x->timeseries) : 0),
		"webhook",
		"delivered", (json_int_t)c.webhook.delivered,
		"failed", (json_int_t)c.webhook.failed,
		"attempts_failed", (json_int_t)c.webhook.attempts_failed,
		"dropped", (json_int_t)c.webhook.dropped,
		"queued", (json_int_t)c.webhook.queued);
}

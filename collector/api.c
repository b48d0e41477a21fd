/*
 * api.c - HTTP API handlers (api.h).
 */
#include "config.h"
#include "api.h"
#include "api_time.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agg.h"
#include "ap_config.h"
#include "col.h"
#include "dashboard.h"
#include "findings.h"
#include "ingest.h"
#include "jw.h"
#include "log.h"
#include "metrics.h"
#include "profile.h"
#include "query.h"
#include "stmt.h"
#include "store.h"

#define MAX_LIMIT 1000
#define DEFAULT_REQUESTS_LIMIT 100
#define DEFAULT_LIST_LIMIT 100
#define PREFIX "/api/v1"
#define MS_DECIMALS 3    /* milliseconds to the microsecond */
#define RATE_DECIMALS 6

struct col_api {
	struct MHD_Daemon *d;
	struct col_api_ctx ctx;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- listening ---- */

int col_api_listen(const char *addr_port, char *url, size_t urllen,
                   char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(addr_port, ':');
	const char *hs = addr_port, *he = colon;
	if (colon == NULL || colon[1] == '\0') {
		set_err(err, errlen, "http %s: expected ADDR:PORT", addr_port);
		return -EINVAL;
	}
	if (*hs == '[') { /* [v6]:port */
		if (he == hs || he[-1] != ']') {
			set_err(err, errlen, "http %s: expected [ADDR]:PORT", addr_port);
			return -EINVAL;
		}
		hs++;
		he--;
	}
	if ((size_t)(he - hs) >= sizeof host) {
		set_err(err, errlen, "http %s: address too long", addr_port);
		return -EINVAL;
	}
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || errno || port < 0 || port > 65535 || colon[1] == '-' ||
	    colon[1] == '+') {
		set_err(err, errlen, "http %s: bad port '%s'", addr_port, colon + 1);
		return -EINVAL;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	                          .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res;
	int gai = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
	if (gai != 0) {
		set_err(err, errlen, "http %s: %s", addr_port, gai_strerror(gai));
		return -EINVAL;
	}
	int fd = -1, e = EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		int one = 1;
		/* Lets a restarted collector bind while old connections sit in
		 * TIME_WAIT; on Linux it never allows two listeners. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (e == EADDRINUSE)
			set_err(err, errlen, "http %s: address already in use (another collector,"
			        " or another program, listens there)", addr_port);
		else
			set_err(err, errlen, "http %s: %s", addr_port, strerror(e));
		return -e;
	}
	if (url != NULL) {
		struct sockaddr_storage ss = { .ss_family = AF_UNSPEC }; /* read if getsockname fails */
		socklen_t sl = sizeof ss;
		char h[INET6_ADDRSTRLEN] = "?";
		int p = (int)port;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
			if (ss.ss_family == AF_INET) {
				struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
				inet_ntop(AF_INET, &s4->sin_addr, h, sizeof h);
				p = ntohs(s4->sin_port);
			} else if (ss.ss_family == AF_INET6) {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
				inet_ntop(AF_INET6, &s6->sin6_addr, h, sizeof h);
				p = ntohs(s6->sin6_port);
			}
		}
		snprintf(url, urllen, ss.ss_family == AF_INET6 ? "http://[%s]:%d" : "http://%s:%d",
		         h, p);
	}
	return fd;
}

/* ---- responses ---- */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status,
                                 const char *type, char *body /* malloc'ed, taken */)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Content-Security-Policy", COL_API_CSP);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                        "Bearer realm=\"apiprof\"");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Sends body (a reference taken) as JSON. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	json_decref(body);
	if (s == NULL) {
		s = strdup("{\"error\":\"out of memory\"}");
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		if (s == NULL)
			return MHD_NO;
	}
	return send_text(c, status, "application/json", s);
}

/* Sends what w wrote (released either way). */
static enum MHD_Result send_jw(struct MHD_Connection *c, unsigned status, struct jw *w)
{
	char *s = jw_finish(w, NULL);
	if (s == NULL) {
		s = strdup("{\"error\":\"out of memory\"}");
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		if (s == NULL)
			return MHD_NO;
	}
	return send_text(c, status, "application/json", s);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status,
                                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status,
                                  const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* The message may quote user input: json_string rejects invalid
	 * UTF-8, so fall back to a fixed text rather than fail. */
	json_t *m = json_string(msg);
	if (m == NULL)
		m = json_string("bad request");
	return send_json(c, status, json_pack("{s:o}", "error", m));
}

/* A reader's failure (what: "reading statistics"). -EIO is the database not
 * answering (PostgreSQL unreachable or too slow, SQLite locked or damaged):
 * 503, as asking again later may work; anything else is 500. */
static enum MHD_Result send_read_error(struct MHD_Connection *c, const char *what, int rc)
{
	if (rc == -EIO)
		return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
		                  "%s: the database is unavailable; try again later", what);
	return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s: %s", what, strerror(-rc));
}

/* Milliseconds (and seconds) rounded to 1e-3, as jw_real(v, MS_DECIMALS)
 * writes them; never NaN or infinite (jansson refuses those). */
static json_t *jms(double v)
{
	if (!isfinite(v))
		v = 0;
	if (fabs(v) < 1e12)
		v = round(v * 1e3) / 1e3;
	return json_real(v);
}

static json_t *jint(uint64_t v)
{
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *jtime(int64_t ns)
{
	char buf[COL_TIME_BUF];
	col_time_format(ns, buf, sizeof buf);
	return json_string(buf);
}

/* Strings from the database are valid UTF-8 (ingest cleans them), but a
 * database edited by hand might not be: never let that turn into a NULL. */
static json_t *jstr(const char *s)
{
	json_t *j = json_string(s ? s : "");
	return j ? j : json_string("?");
}

/* ---- parameters ---- */

/* A query parameter: NULL when absent, "" when given without a value. */
static const char *arg(struct MHD_Connection *c, const char *name)
{
	const char *v = NULL;
	if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, name, strlen(name),
	                                  &v, NULL) != MHD_YES)
		return NULL;
	return v ? v : "";
}

/* Each parser returns 0 (absent: output untouched), 1 (parsed) or -1 with
 * err filled with the 400 message. */

static int p_int64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	if (s == NULL || *s == '\0')
		return -1;
	int64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int p_limit(struct MHD_Connection *c, int *out, char *err, size_t errlen)
{
	const char *s = arg(c, "limit");
	int64_t v;
	if (s == NULL)
		return 0;
	if (p_int64(s, 1, MAX_LIMIT, &v) < 0) {
		snprintf(err, errlen, "limit: expected an integer 1..%d", MAX_LIMIT);
		return -1;
	}
	*out = (int)v;
	return 1;
}

static int p_bool(struct MHD_Connection *c, const char *name, int *out,
                  char *err, size_t errlen)
{
	const char *s = arg(c, name);
	if (s == NULL)
		return 0;
	if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0) {
		*out = 1;
		return 1;
	}
	if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0) {
		*out = 0;
		return 1;
	}
	snprintf(err, errlen, "%s: expected true, false, 1 or 0", name);
	return -1;
}

static int p_time(struct MHD_Connection *c, const char *name, int64_t *out,
                  char *err, size_t errlen)
{
	const char *s = arg(c, name);
	if (s == NULL)
		return 0;
	if (col_time_parse(s, out) < 0) {
		snprintf(err, errlen, "%s: expected an RFC 3339 time (2026-11-22T08:15:02Z)"
		         " or Unix seconds", name);
		return -1;
	}
	return 1;
}

static int p_str(struct MHD_Connection *c, const char *name, const char **out,
                 char *err, size_t errlen)
{
	const char *s = arg(c, name);
	if (s == NULL)
		return 0;
	if (*s == '\0') {
		snprintf(err, errlen, "%s: expected a non-empty value", name);
		return -1;
	}
	/* Every stored name is UTF-8, so such a value matches nothing; and
	 * PostgreSQL refuses it as a parameter, which read as the database
	 * being unavailable (503). */
	if (!col_utf8_valid(s)) {
		snprintf(err, errlen, "%s: expected UTF-8 text", name);
		return -1;
	}
	*out = s;
	return 1;
}

/* since/until, checked together. */
static int p_period(struct MHD_Connection *c, int64_t *since, int64_t *until,
                    int *given, char *err, size_t errlen)
{
	*since = INT64_MIN;
	*until = INT64_MAX;
	int a = p_time(c, "since", since, err, errlen);
	if (a < 0)
		return -1;
	int b = p_time(c, "until", until, err, errlen);
	if (b < 0)
		return -1;
	if (*since > *until) {
		snprintf(err, errlen, "since: must not be after until");
		return -1;
	}
	*given = a > 0 || b > 0;
	return 0;
}

/* ---- auth ---- */

/* Compares in time independent of where the strings differ. */
static int token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char diff = alen != blen;
	size_t n = alen > blen ? alen : blen;
	for (size_t i = 0; i < n; i++) {
		unsigned char x = i < alen ? (unsigned char)a[i] : 0;
		unsigned char y = i < blen ? (unsigned char)b[i] : 0;
		diff |= x ^ y;
	}
	return diff == 0;
}

static int authorized(const struct col_api *api, struct MHD_Connection *c)
{
	const char *token = api->ctx.cfg->auth_token;
	if (token == NULL || token[0] == '\0')
		return 1;
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                            MHD_HTTP_HEADER_AUTHORIZATION);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	size_t n = strlen(h);
	while (n > 0 && h[n - 1] == ' ')
		n--;
	return token_equal(h, n, token, strlen(token));
}

/* ---- /api/v1/status ---- */

/* The status calls a database "slow" past this (ms): the store thread
 * commits every 200 ms and writes minutes every second when all is well. */
#define SLOW_DB_MS 5000

static enum MHD_Result h_status(struct col_api *api, struct MHD_Connection *c)
{
	const struct col_api_ctx *x = &api->ctx;
	int64_t now_mono = col_clock_mono_ns();
	struct col_totals t;
	struct col_proc_info *procs = NULL;
	size_t np = 0;
	col_agg_totals(x->agg, &t);
	if (col_agg_processes(x->agg, now_mono, &procs, &np) < 0)
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");

	json_t *jp = json_array();
	for (size_t i = 0; i < np; i++) {
		const struct col_proc_info *p = &procs[i];
		json_array_append_new(jp, json_pack(
			"{s:I, s:o, s:b, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}",
			"pid", (json_int_t)p->pid,
			"service", jstr(p->service),
			"connected", p->connected,
			"events", jint(p->events),
			"dropped", jint(p->dropped),
			"uid", (json_int_t)p->uid,
			"ppid", (json_int_t)p->ppid,
			"exe", jstr(p->exe),
			"untracked_connections", jint(p->untracked_conns),
			"datagrams", jint(p->datagrams),
			"requests", jint(p->requests),
			"first_seen", jtime(p->first_seen_ns),
			"last_seen", jtime(p->last_seen_ns)));
	}
	free(procs);

	json_t *ji = json_object();
	if (x->ingest) {
		struct col_ingest_counters ic;
		col_ingest_counters(x->ingest, &ic);
		json_decref(ji);
		ji = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
		               " s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
			"datagrams", jint(ic.datagrams),
			"bytes", jint(ic.bytes),
			"datagrams_bad", jint(ic.datagrams_bad),
			"bad_magic", jint(ic.bad_magic),
			"bad_version", jint(ic.bad_version),
			"truncated", jint(ic.truncated),
			"no_credentials", jint(ic.no_credentials),
			"records", jint(ic.records),
			"records_bad", jint(ic.records_bad),
			"records_misdated", jint(ic.records_misdated),
			"records_unknown", jint(ic.records_unknown),
			"requests", jint(ic.requests),
			"requests_ignored", jint(ic.requests_ignored),
			"statements", jint(ic.statements),
			"statements_unattributed", jint(ic.statements_unattributed),
			"statements_pending", jint(ic.statements_pending),
			"requests_pending", jint(ic.groups_pending),
			"statements_expired", jint(ic.statements_expired),
			"statements_lost", jint(ic.statements_lost),
			"socket_recreated", jint(ic.socket_recreated),
			"crashes_symbolised", jint(ic.crashes_symbolised),
			"crashes_unsymbolised", jint(ic.crashes_unsymbolised),
			"requests_killed", jint(ic.requests_killed),
			"requests_announced", jint(ic.inflight_pending));
	}
	json_t *js = json_object();
	if (x->store) {
		struct col_store_counters sc;
		col_store_counters(x->store, &sc);
		json_decref(js);
		js = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
			"rows_written", jint(sc.rows_written),
			"queries_written", jint(sc.queries_written),
			"query_minutes_written", jint(sc.shape_minutes_written),
			"findings_written", jint(sc.findings_written),
			"queue_statements", jint(sc.queue_stmts),
			"rows_dropped", jint(sc.rows_dropped),
			"rows_sampled_out", jint(sc.rows_sampled_out),
			"rows_rejected", jint(sc.rows_rejected),
			"rows_expired", jint(sc.rows_expired),
			"minutes_written", jint(sc.minutes_written),
			"storage_errors", jint(sc.storage_errors),
			"queue_depth", jint(sc.queue_depth),
			"queue_capacity", jint(sc.queue_cap));
		/* The storage fault, if one stands (and the latest one). */
		json_object_set_new(js, "writing", json_boolean(sc.writing));
		json_object_set_new(js, "last_error",
		                    sc.last_error_at_ns ? jstr(sc.last_error) : json_null());
		json_object_set_new(js, "last_error_at",
		                    sc.last_error_at_ns ? jtime(sc.last_error_at_ns) : json_null());
		/* The outage state (PostgreSQL; SQLite is always "up"). */
		json_object_set_new(js, "backend", json_string(sc.backend));
		/* "slow": reachable as far as we know, but the writer has been
		 * inside one round of database calls for SLOW_DB_MS or more. */
		json_object_set_new(js, "database", json_string(sc.database_down ? "down"
		                    : sc.write_busy_ms >= SLOW_DB_MS ? "slow" : "up"));
		json_object_set_new(js, "write_busy_ms", jms(sc.write_busy_ms));
		json_object_set_new(js, "database_down_since", sc.database_down
		                    ? jtime(sc.down_since_ns) : json_null());
		json_object_set_new(js, "database_error", sc.database_down
		                    ? jstr(sc.down_reason) : json_null());
		json_object_set_new(js, "rows_held", jint(sc.rows_held));
		json_object_set_new(js, "rows_dropped_oldest", jint(sc.rows_dropped_oldest));
	}
	struct col_findings_counters fc;
	col_findings_counters(col_agg_findings(x->agg), &fc);
	json_t *body = json_pack(
		"{s:s, s:{s:o, s:o, s:I, s:o}, s:o, s:{s:o, s:o, s:o, s:o}, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
		" s:o, s:{s:o, s:o, s:o, s:o, s:o, s:o}}",
		"version", PACKAGE_VERSION,
		"config",
		"slow_request_threshold_ms", jms(x->cfg->slow_request_threshold_ms),
		"slow_query_threshold_ms", jms(x->cfg->slow_query_threshold_ms),
		"n_plus_one_threshold", (json_int_t)x->cfg->n_plus_one_threshold,
		"aggregation_window_minutes", json_real(x->cfg->aggregation_window_minutes),
		"uptime_s", jms((double)(now_mono - x->start_mono_ns) / 1e9),
		"totals",
		"requests", jint(t.requests),
		"sql", jint(t.sql),
		"request_ms", jms(t.request_ms),
		"sql_ms", jms(t.sql_ms),
		"processes", jp,
		"host", jstr(x->cfg->host_name),
		"started_at", jtime(x->start_real_ns),
		"socket", jstr(x->socket_path),
		"db", jstr(x->db_path),
		"endpoints", jint(t.endpoints),
		"requests_other_route", jint(t.other_route),
		"processes_other_service", jint(t.other_service),
		"ingest", ji,
		"store", js,
		"out_of_memory", jint(t.oom),
		"sql",
		"shapes", jint(t.shapes),
		"statements_other_shape", jint(t.other_shape),
		"error_groups", jint(fc.errors),
		"n_plus_one_patterns", jint(fc.patterns),
		"error_groups_dropped", jint(fc.errors_dropped),
		"n_plus_one_patterns_dropped", jint(fc.patterns_dropped));
	if (body != NULL)
		json_object_set_new(body, "windows", col_api_time_status(x));
	return send_json(c, MHD_HTTP_OK, body);
}

/* ---- /api/v1/endpoints ---- */

static void endpoint_jw(struct jw *w, const struct col_ep_row *r)
{
	double n = r->count ? (double)r->count : 1;
	jw_obj(w);
	jw_key(w, "service");
	jw_str(w, r->service);
	jw_key(w, "method");
	jw_str(w, r->method);
	jw_key(w, "route");
	jw_str(w, r->route);
	jw_key(w, "count");
	jw_uint(w, r->count);
	jw_key(w, "error_count");
	jw_uint(w, r->error_count);
	jw_key(w, "error_rate");
	jw_real(w, (double)r->error_count / n, RATE_DECIMALS);
	jw_key(w, "slow_count");
	jw_uint(w, r->slow_count);
	jw_key(w, "avg_ms");
	jw_real(w, r->sum_ms / n, MS_DECIMALS);
	jw_key(w, "p50_ms");
	jw_real(w, r->p50_ms, MS_DECIMALS);
	jw_key(w, "p95_ms");
	jw_real(w, r->p95_ms, MS_DECIMALS);
	jw_key(w, "p99_ms");
	jw_real(w, r->p99_ms, MS_DECIMALS);
	jw_key(w, "min_ms");
	jw_real(w, r->min_ms, MS_DECIMALS);
	jw_key(w, "max_ms");
	jw_real(w, r->max_ms, MS_DECIMALS);
	jw_key(w, "sql_count");
	jw_uint(w, r->sql_count);
	jw_key(w, "sql_per_request");
	jw_real(w, (double)r->sql_count / n, MS_DECIMALS);
	jw_key(w, "sql_time_ms");
	jw_real(w, r->sql_time_ms, MS_DECIMALS);
	jw_key(w, "n_plus_one_count");
	jw_uint(w, r->n_plus_one_count);
	jw_obj_end(w);
}

/* floor / ceil to a minute boundary, in seconds. */
static int64_t minute_floor(int64_t ns)
{
	int64_t s = ns / COL_NS_PER_S - (ns % COL_NS_PER_S < 0);
	return s / COL_MINUTE_S * COL_MINUTE_S - (s % COL_MINUTE_S < 0 ? COL_MINUTE_S : 0);
}

/* Minute bounds of [since, until): every minute overlapping it. */
static void minute_range(int64_t since, int64_t until, int64_t *from_s, int64_t *to_s)
{
	*from_s = since == INT64_MIN ? INT64_MIN : minute_floor(since);
	*to_s = INT64_MAX;
	if (until != INT64_MAX) {
		*to_s = minute_floor(until);
		if ((int64_t)*to_s * COL_NS_PER_S < until)
			*to_s += COL_MINUTE_S;
	}
}

static enum MHD_Result h_endpoints(struct col_api *api, struct MHD_Connection *c)
{
	char err[256];
	const char *service = NULL, *host = NULL;
	int limit = INT_MAX, period;
	int64_t since, until;
	if (p_str(c, "service", &service, err, sizeof err) < 0 ||
	    p_str(c, "host", &host, err, sizeof err) < 0 ||
	    p_limit(c, &limit, err, sizeof err) < 0 ||
	    p_period(c, &since, &until, &period, err, sizeof err) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "%s", err);

	struct col_ep_rows rows = { NULL, 0 };
	int rc = 0;
	if (!period && col_query_fleet(api->ctx.query)) {
		/* A fleet's all time: ours from memory, the others' totals. */
		rc = col_query_endpoints_all(api->ctx.query, api->ctx.agg, service, host, &rows);
	} else if (!period) {
		/* The common call: all time, straight from memory. */
		if (host == NULL || strcmp(host, api->ctx.cfg->host_name) == 0)
			rc = col_agg_endpoints(api->ctx.agg, service, &rows);
	} else {
		/* Minute granularity: every minute overlapping [since, until). */
		int64_t from_s, to_s;
		minute_range(since, until, &from_s, &to_s);
		rc = col_query_endpoints(api->ctx.query, api->ctx.agg, from_s, to_s,
		                         service, host, &rows);
	}
	if (rc < 0)
		return send_read_error(c, "reading statistics", rc);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "endpoints");
	jw_arr(&w);
	for (size_t i = 0; i < rows.n && i < (size_t)limit; i++)
		endpoint_jw(&w, &rows.v[i]);
	jw_arr_end(&w);
	jw_obj_end(&w);
	col_ep_rows_free(&rows);
	return send_jw(c, MHD_HTTP_OK, &w);
}

/* ---- /api/v1/requests ---- */

/* A stored request's fields. The list view writes the whole object; the
 * detail view (detail != 0) leaves it open after the common fields, for
 * the statements, N+1 findings and error object that replace the flags
 * (see h_request). */
static void request_jw(struct jw *w, const struct col_req_view *r, int detail)
{
	jw_obj(w);
	jw_key(w, "id");
	jw_int(w, r->id);
	jw_key(w, "ts");
	char ts[COL_TIME_BUF];
	col_time_format(r->ts_ns, ts, sizeof ts);
	jw_str(w, ts);
	jw_key(w, "host");
	jw_str(w, r->host);
	jw_key(w, "service");
	jw_str(w, r->service);
	jw_key(w, "pid");
	jw_int(w, r->pid);
	jw_key(w, "method");
	jw_str(w, r->method);
	jw_key(w, "path");
	jw_str(w, r->path);
	jw_key(w, "route");
	jw_str(w, r->route);
	jw_key(w, "status");
	jw_int(w, r->status);
	jw_key(w, "duration_ms");
	jw_real(w, r->duration_ms, MS_DECIMALS);
	jw_key(w, "bytes_in");
	jw_int(w, r->bytes_in);
	jw_key(w, "bytes_out");
	jw_int(w, r->bytes_out);
	jw_key(w, "sql_count");
	jw_int(w, r->sql_count);
	jw_key(w, "sql_time_ms");
	jw_real(w, r->sql_time_ms, MS_DECIMALS);
	jw_key(w, "slow");
	jw_bool(w, r->slow);
	jw_key(w, "aborted");
	jw_bool(w, r->aborted);
	jw_key(w, "tid");
	jw_int(w, r->tid);
	if (!detail) {
		jw_key(w, "error");
		jw_bool(w, r->error);
		jw_key(w, "n_plus_one");
		jw_bool(w, r->n_plus_one);
		jw_obj_end(w);
		return;
	}
}

struct list_ctx {
	struct jw *w;
	int64_t last_id;
};

static int list_cb(void *arg, const struct col_req_view *r)
{
	struct list_ctx *l = arg;
	request_jw(l->w, r, 0);
	l->last_id = r->id;
	return l->w->failed ? -ENOMEM : 0;
}

static int p_status(struct MHD_Connection *c, int *lo, int *hi, char *err, size_t errlen)
{
	const char *s = arg(c, "status");
	int64_t v;
	if (s == NULL)
		return 0;
	/* "503", or a class: "5xx". */
	if (strlen(s) == 3 && s[0] >= '1' && s[0] <= '9' && (s[1] == 'x' || s[1] == 'X') &&
	    (s[2] == 'x' || s[2] == 'X')) {
		*lo = (s[0] - '0') * 100;
		*hi = *lo + 99;
		return 1;
	}
	if (p_int64(s, 0, 999, &v) < 0) {
		snprintf(err, errlen, "status: expected a status code (0..999) or a class like 5xx");
		return -1;
	}
	*lo = *hi = (int)v;
	return 1;
}

static enum MHD_Result h_requests(struct col_api *api, struct MHD_Connection *c)
{
	char err[256];
	struct col_req_filter f;
	col_req_filter_init(&f);
	f.limit = DEFAULT_REQUESTS_LIMIT;
	const char *method = NULL;
	int period;
	int64_t before = 0;
	const char *bs = arg(c, "before");
	if (p_str(c, "service", &f.service, err, sizeof err) < 0 ||
	    p_str(c, "host", &f.host, err, sizeof err) < 0 ||
	    p_str(c, "route", &f.route, err, sizeof err) < 0 ||
	    p_str(c, "q", &f.q, err, sizeof err) < 0 ||
	    p_str(c, "method", &method, err, sizeof err) < 0 ||
	    p_status(c, &f.status_lo, &f.status_hi, err, sizeof err) < 0 ||
	    p_bool(c, "slow", &f.slow, err, sizeof err) < 0 ||
	    p_bool(c, "error", &f.error, err, sizeof err) < 0 ||
	    p_bool(c, "n_plus_one", &f.n_plus_one, err, sizeof err) < 0 ||
	    p_limit(c, &f.limit, err, sizeof err) < 0 ||
	    p_period(c, &f.since_ns, &f.until_ns, &period, err, sizeof err) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "%s", err);
	if (bs != NULL && p_int64(bs, 1, INT64_MAX, &before) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST,
		                  "before: expected a cursor (the \"next\" of a previous page)");
	f.before = before;
	if (method != NULL) {
		int m = col_method_lookup(method);
		if (m < 0)
			return send_error(c, MHD_HTTP_BAD_REQUEST, COL_METHOD_EXPECTED);
		f.method = col_method_name(m);
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "requests");
	jw_arr(&w);
	struct list_ctx l = { &w, 0 };
	int more = 0;
	int rc = col_query_requests(api->ctx.query, &f, list_cb, &l, &more);
	if (rc < 0) {
		jw_release(&w);
		return send_read_error(c, "reading requests", rc);
	}
	jw_arr_end(&w);
	/* The cursor is opaque to clients: today the last id, as a string. */
	jw_key(&w, "next");
	if (more) {
		char buf[32];
		snprintf(buf, sizeof buf, "%lld", (long long)l.last_id);
		jw_str(&w, buf);
	} else {
		jw_null(&w);
	}
	jw_obj_end(&w);
	return send_jw(c, MHD_HTTP_OK, &w);
}

/* The detail of one request, written as the query module reads it. */
struct detail_ctx {
	struct jw *w;
	int in_n1;                  /* the n_plus_one array is open (else queries) */
	int aborted, status;
	char message[1024];         /* the request's (5xx body) */
	char sql_type[COL_ERR_TYPE_MAX];  /* its first failed statement's, or "" */
	char sql_message[1024];
};

static int detail_request(void *arg, const struct col_req_view *r)
{
	struct detail_ctx *d = arg;
	request_jw(d->w, r, 1);
	d->aborted = r->aborted;
	d->status = r->status;
	snprintf(d->message, sizeof d->message, "%s", r->message);
	jw_key(d->w, "queries");
	jw_arr(d->w);
	return d->w->failed ? -ENOMEM : 0;
}

static int detail_stmt(void *arg, const struct col_stmt_view *q)
{
	struct detail_ctx *d = arg;
	struct jw *w = d->w;
	char ts[COL_TIME_BUF], fp[COL_FP_HEX];
	col_time_format(q->ts_ns, ts, sizeof ts);
	jw_obj(w);
	jw_key(w, "seq");
	jw_int(w, q->seq);
	jw_key(w, "ts");
	jw_str(w, ts);
	jw_key(w, "duration_ms");
	jw_real(w, q->duration_ms, MS_DECIMALS);
	jw_key(w, "db");
	jw_str(w, q->db);
	jw_key(w, "sql");
	jw_str(w, q->sql);
	jw_key(w, "fingerprint");
	jw_str(w, col_fp_hex(q->fingerprint, fp));
	jw_key(w, "rows");
	if (q->rows < 0)
		jw_null(w);
	else
		jw_int(w, q->rows);
	jw_key(w, "error");
	if (q->error_code) {
		jw_obj(w);
		jw_key(w, "code");
		jw_str(w, q->error_code);
		jw_key(w, "message");
		jw_str(w, q->error_message);
		jw_obj_end(w);
		if (d->sql_type[0] == '\0') {
			col_sql_error_type(col_sql_db_lookup(q->db), q->error_code, d->sql_type,
			                   sizeof d->sql_type);
			snprintf(d->sql_message, sizeof d->sql_message, "%s", q->error_message);
		}
	} else {
		jw_null(w);
	}
	jw_key(w, "slow");
	jw_bool(w, q->slow);
	jw_key(w, "prepare");
	jw_bool(w, q->prepare);
	jw_key(w, "truncated");
	jw_bool(w, q->truncated);
	jw_obj_end(w);
	return w->failed ? -ENOMEM : 0;
}

static int detail_n1(void *arg, const struct col_n1_view *n)
{
	struct detail_ctx *d = arg;
	struct jw *w = d->w;
	char fp[COL_FP_HEX];
	if (!d->in_n1) {
		jw_arr_end(w);
		jw_key(w, "n_plus_one");
		jw_arr(w);
		d->in_n1 = 1;
	}
	jw_obj(w);
	jw_key(w, "fingerprint");
	jw_str(w, col_fp_hex(n->fingerprint, fp));
	jw_key(w, "sql");
	jw_str(w, n->sql);
	jw_key(w, "count");
	jw_int(w, n->count);
	jw_obj_end(w);
	return w->failed ? -ENOMEM : 0;
}

/* The request's error: what its client saw first (an abort, then a 5xx
 * status), else - for a request answered normally whose only failure is
 * SQL - its first failed statement. */
static void detail_error(struct detail_ctx *d)
{
	struct jw *w = d->w;
	char type[COL_ERR_TYPE_MAX];
	const char *msg;
	if (d->aborted) {
		snprintf(type, sizeof type, "%s", COL_ABORTED_TYPE);
		/* the collector's own for a request its killed process never
		 * reported (COL_KILLED_MESSAGE, stored on the row) */
		msg = d->message[0] ? d->message : COL_ABORTED_MESSAGE;
	} else if (d->status >= 500) {
		snprintf(type, sizeof type, "HTTP %d", d->status);
		msg = d->message;
	} else if (d->sql_type[0]) {
		snprintf(type, sizeof type, "%s", d->sql_type);
		msg = d->sql_message;
	} else {
		jw_null(w);
		return;
	}
	jw_obj(w);
	jw_key(w, "type");
	jw_str(w, type);
	jw_key(w, "message");
	jw_str(w, msg);
	jw_obj_end(w);
}

static enum MHD_Result h_request(struct col_api *api, struct MHD_Connection *c,
                                 const char *id_text)
{
	int64_t id;
	if (p_int64(id_text, 1, INT64_MAX, &id) < 0)
		return send_error(c, MHD_HTTP_NOT_FOUND, "no request with id '%.64s'", id_text);
	struct jw w;
	jw_init(&w);
	struct detail_ctx *d = calloc(1, sizeof *d);
	if (d == NULL)
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	d->w = &w;
	struct col_detail_cbs cbs = { detail_request, detail_stmt, detail_n1, d };
	int rc = col_query_request_detail(api->ctx.query, id, &cbs);
	if (rc == 1) {
		if (!d->in_n1) {
			jw_arr_end(&w);
			jw_key(&w, "n_plus_one");
			jw_arr(&w);
		}
		jw_arr_end(&w);
		jw_key(&w, "error");
		detail_error(d);
		jw_obj_end(&w);
	}
	free(d);
	if (rc <= 0)
		jw_release(&w);
	if (rc < 0)
		return send_read_error(c, "reading request", rc);
	if (rc == 0)
		return send_error(c, MHD_HTTP_NOT_FOUND, "no request with id %lld", (long long)id);
	return send_jw(c, MHD_HTTP_OK, &w);
}

/* ---- /api/v1/queries ---- */

static void shape_jw(struct jw *w, const struct col_shape_row *r)
{
	char fp[COL_FP_HEX];
	jw_obj(w);
	jw_key(w, "service");
	jw_str(w, r->service);
	jw_key(w, "db");
	jw_str(w, col_sql_db_name(r->db));
	jw_key(w, "fingerprint");
	jw_str(w, col_fp_hex(r->fp, fp));
	jw_key(w, "sql");
	jw_str(w, r->sql);
	jw_key(w, "calls");
	jw_uint(w, r->calls);
	jw_key(w, "total_ms");
	jw_real(w, r->total_ms, MS_DECIMALS);
	jw_key(w, "mean_ms");
	jw_real(w, r->calls ? r->total_ms / (double)r->calls : 0, MS_DECIMALS);
	jw_key(w, "p95_ms");
	jw_real(w, r->p95_ms, MS_DECIMALS);
	jw_key(w, "max_ms");
	jw_real(w, r->max_ms, MS_DECIMALS);
	jw_key(w, "rows");
	jw_uint(w, r->rows);
	jw_key(w, "errors");
	jw_uint(w, r->errors);
	jw_key(w, "slow_count");
	jw_uint(w, r->slow_count);
	jw_obj_end(w);
}

static enum MHD_Result h_queries(struct col_api *api, struct MHD_Connection *c)
{
	char err[256];
	const char *service = NULL, *host = NULL, *db = NULL;
	int limit = INT_MAX, period;
	int64_t since, until;
	if (p_str(c, "service", &service, err, sizeof err) < 0 ||
	    p_str(c, "host", &host, err, sizeof err) < 0 ||
	    p_str(c, "db", &db, err, sizeof err) < 0 ||
	    p_limit(c, &limit, err, sizeof err) < 0 ||
	    p_period(c, &since, &until, &period, err, sizeof err) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "%s", err);
	int dbv = -1;
	if (db != NULL && (dbv = col_sql_db_lookup(db)) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST,
		                  "db: expected postgresql, mysql or sqlite");

	struct col_shape_rows rows = { NULL, 0 };
	int rc = 0;
	if (!period && col_query_fleet(api->ctx.query)) {
		rc = col_query_shapes_all(api->ctx.query, api->ctx.agg, service, host, &rows);
	} else if (!period) {
		if (host == NULL || strcmp(host, api->ctx.cfg->host_name) == 0)
			rc = col_agg_shapes(api->ctx.agg, service, &rows);
	} else {
		int64_t from_s, to_s;
		minute_range(since, until, &from_s, &to_s);
		rc = col_query_shapes(api->ctx.query, api->ctx.agg, from_s, to_s, service, host,
		                      &rows);
	}
	if (rc < 0)
		return send_read_error(c, "reading statistics", rc);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "queries");
	jw_arr(&w);
	size_t shown = 0;
	for (size_t i = 0; i < rows.n && shown < (size_t)limit; i++) {
		if (dbv >= 0 && rows.v[i].db != dbv)
			continue;
		shape_jw(&w, &rows.v[i]);
		shown++;
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	col_shape_rows_free(&rows);
	return send_jw(c, MHD_HTTP_OK, &w);
}

/* ---- /api/v1/n-plus-one and /api/v1/errors ---- */

/* The common parameters of the findings lists. 0, or -1 with err. *ours
 * is 0 when host names another collector (whose findings live there). */
static int p_findings(struct col_api *api, struct MHD_Connection *c,
                      struct col_find_filter *f, int *limit, int *ours,
                      const char **hostp, char *err, size_t errlen)
{
	const char *host = NULL;
	int period;
	f->service = NULL;
	*limit = DEFAULT_LIST_LIMIT;
	if (p_str(c, "service", &f->service, err, errlen) < 0 ||
	    p_str(c, "host", &host, err, errlen) < 0 ||
	    p_limit(c, limit, err, errlen) < 0 ||
	    p_period(c, &f->since_ns, &f->until_ns, &period, err, errlen) < 0)
		return -1;
	*ours = host == NULL || strcmp(host, api->ctx.cfg->host_name) == 0;
	*hostp = host;
	return 0;
}

static void jw_time(struct jw *w, int64_t ns)
{
	char buf[COL_TIME_BUF];
	col_time_format(ns, buf, sizeof buf);
	jw_str(w, buf);
}

static void jw_str_or_null(struct jw *w, const char *s)
{
	if (s)
		jw_str(w, s);
	else
		jw_null(w);
}

static void jw_id_or_null(struct jw *w, int64_t id)
{
	if (id > 0)
		jw_int(w, id);
	else
		jw_null(w);
}

static enum MHD_Result h_n_plus_one(struct col_api *api, struct MHD_Connection *c)
{
	char err[256];
	struct col_find_filter f;
	int limit, ours;
	const char *host = NULL;
	if (p_findings(api, c, &f, &limit, &ours, &host, err, sizeof err) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "%s", err);
	struct col_n1_rows rows = { NULL, 0 };
	if (col_query_fleet(api->ctx.query)) {
		int rc = col_query_patterns(api->ctx.query, &f, host, &rows);
		if (rc < 0)
			return send_read_error(c, "reading N+1 patterns", rc);
	} else if (ours && col_findings_patterns(col_agg_findings(api->ctx.agg), &f, &rows) < 0)
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "patterns");
	jw_arr(&w);
	for (size_t i = 0; i < rows.n && i < (size_t)limit; i++) {
		const struct col_n1_row *r = &rows.v[i];
		char fp[COL_FP_HEX];
		jw_obj(&w);
		jw_key(&w, "service");
		jw_str(&w, r->service);
		jw_key(&w, "method");
		jw_str(&w, r->method);
		jw_key(&w, "route");
		jw_str(&w, r->route);
		jw_key(&w, "fingerprint");
		jw_str(&w, col_fp_hex(r->fp, fp));
		jw_key(&w, "sql");
		jw_str(&w, r->sql);
		jw_key(&w, "occurrences");
		jw_uint(&w, r->occurrences);
		jw_key(&w, "max_repeats");
		jw_uint(&w, r->max_repeats);
		jw_key(&w, "first_seen");
		jw_time(&w, r->first_ns);
		jw_key(&w, "last_seen");
		jw_time(&w, r->last_ns);
		jw_key(&w, "example_request_id");
		jw_id_or_null(&w, r->example_id);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	col_n1_rows_free(&rows);
	return send_jw(c, MHD_HTTP_OK, &w);
}

static enum MHD_Result h_errors(struct col_api *api, struct MHD_Connection *c)
{
	char err[256];
	struct col_find_filter f;
	int limit, ours;
	const char *host = NULL;
	if (p_findings(api, c, &f, &limit, &ours, &host, err, sizeof err) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "%s", err);
	struct col_error_rows rows = { NULL, 0 };
	if (col_query_fleet(api->ctx.query)) {
		int rc = col_query_errors(api->ctx.query, &f, host, &rows);
		if (rc < 0)
			return send_read_error(c, "reading errors", rc);
	} else if (ours && col_findings_errors(col_agg_findings(api->ctx.agg), &f, &rows) < 0)
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "errors");
	jw_arr(&w);
	for (size_t i = 0; i < rows.n && i < (size_t)limit; i++) {
		const struct col_error_row *r = &rows.v[i];
		jw_obj(&w);
		jw_key(&w, "service");
		jw_str(&w, r->service);
		jw_key(&w, "method");
		jw_str_or_null(&w, r->method);
		jw_key(&w, "route");
		jw_str_or_null(&w, r->route);
		jw_key(&w, "type");
		jw_str(&w, r->type);
		jw_key(&w, "message");
		jw_str(&w, r->message);
		jw_key(&w, "count");
		jw_uint(&w, r->count);
		jw_key(&w, "first_seen");
		jw_time(&w, r->first_ns);
		jw_key(&w, "last_seen");
		jw_time(&w, r->last_ns);
		jw_key(&w, "example_request_id");
		jw_id_or_null(&w, r->example_id);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	col_error_rows_free(&rows);
	return send_jw(c, MHD_HTTP_OK, &w);
}

/* ---- /metrics ---- */

static enum MHD_Result h_metrics(struct col_api *api, struct MHD_Connection *c)
{
	struct col_metrics_sources src = {
		.agg = api->ctx.agg,
		.ingest = api->ctx.ingest,
		.store = api->ctx.store,
	};
	char *text = NULL;
	if (col_metrics_render(api->ctx.metrics, &src, &text) < 0)
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return send_text(c, MHD_HTTP_OK, COL_METRICS_CONTENT_TYPE, text);
}

/* ---- /api/v1/profile ---- */

/* CPU profiles (profile.h): format=collapsed (folded text), speedscope
 * (JSON file), or by default a JSON summary with the top functions by self
 * samples (sort=total: by total). Filters service, method, route; host
 * other than ours gives an empty profile (profiles live in memory). */
static enum MHD_Result h_profile(struct col_api *api, struct MHD_Connection *c)
{
	char err[256];
	const char *service = NULL, *method = NULL, *route = NULL, *host = NULL;
	const char *format = NULL, *sort = NULL;
	int limit = DEFAULT_LIST_LIMIT;
	if (p_str(c, "service", &service, err, sizeof err) < 0 ||
	    p_str(c, "method", &method, err, sizeof err) < 0 ||
	    p_str(c, "route", &route, err, sizeof err) < 0 ||
	    p_str(c, "host", &host, err, sizeof err) < 0 ||
	    p_str(c, "format", &format, err, sizeof err) < 0 ||
	    p_str(c, "sort", &sort, err, sizeof err) < 0 ||
	    p_limit(c, &limit, err, sizeof err) < 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "%s", err);
	/* Case-insensitive, as /requests and /summaries take it: profiles are
	 * kept under the canonical name (GET). */
	if (method != NULL) {
		int m = col_method_lookup(method);
		if (m < 0)
			return send_error(c, MHD_HTTP_BAD_REQUEST, COL_METHOD_EXPECTED);
		method = col_method_name(m);
	}
	enum { TOP, COLLAPSED, SPEEDSCOPE } fmt = TOP;
	if (format == NULL || strcmp(format, "json") == 0)
		fmt = TOP;
	else if (strcmp(format, "collapsed") == 0)
		fmt = COLLAPSED;
	else if (strcmp(format, "speedscope") == 0)
		fmt = SPEEDSCOPE;
	else
		return send_error(c, MHD_HTTP_BAD_REQUEST,
		                  "format: expected collapsed, speedscope or json");
	int by_total = 0;
	if (sort != NULL && strcmp(sort, "total") == 0)
		by_total = 1;
	else if (sort != NULL && strcmp(sort, "self") != 0)
		return send_error(c, MHD_HTTP_BAD_REQUEST, "sort: expected self or total");

	struct col_prof_rows rows = { NULL, 0 };
	int rc = 0;
	/* A fleet's PostgreSQL holds every host's profiles. */
	if (col_query_fleet(api->ctx.query))
		rc = col_query_profile(api->ctx.query, service, method, route, host, &rows);
	else if (host == NULL || strcmp(host, api->ctx.cfg->host_name) == 0)
		rc = col_prof_select(col_agg_profiles(api->ctx.agg), service, method, route, &rows);
	if (rc < 0)
		return send_read_error(c, "reading profiles", rc);
	if (fmt == COLLAPSED || fmt == SPEEDSCOPE) {
		size_t len = 0;
		char *body = fmt == COLLAPSED ? col_prof_collapsed(&rows, &len)
		                              : col_prof_speedscope(&rows, &len);
		col_prof_rows_free(&rows);
		if (body == NULL)
			return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		return send_text(c, MHD_HTTP_OK,
		                 fmt == COLLAPSED ? "text/plain; charset=utf-8" : "application/json",
		                 body);
	}
	struct col_prof_fn *fns = NULL;
	size_t nfns = 0;
	if (col_prof_top(&rows, by_total, &fns, &nfns) < 0) {
		col_prof_rows_free(&rows);
		return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	uint64_t samples = 0, requests = 0;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "endpoints");
	jw_arr(&w);
	for (size_t i = 0; i < rows.n; i++) {
		samples += rows.v[i].samples;
		requests += rows.v[i].requests;
		jw_obj(&w);
		jw_key(&w, "service");
		jw_str(&w, rows.v[i].service);
		jw_key(&w, "method");
		jw_str(&w, rows.v[i].method);
		jw_key(&w, "route");
		jw_str(&w, rows.v[i].route);
		jw_key(&w, "samples");
		jw_uint(&w, rows.v[i].samples);
		jw_key(&w, "requests");
		jw_uint(&w, rows.v[i].requests);
		jw_key(&w, "stacks");
		jw_uint(&w, rows.v[i].n);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "samples");
	jw_uint(&w, samples);
	jw_key(&w, "requests");
	jw_uint(&w, requests);
	jw_key(&w, "functions");
	jw_arr(&w);
	for (size_t i = 0; i < nfns && i < (size_t)limit; i++) {
		jw_obj(&w);
		jw_key(&w, "function");
		jw_str(&w, fns[i].name);
		jw_key(&w, "self");
		jw_uint(&w, fns[i].self);
		jw_key(&w, "total");
		jw_uint(&w, fns[i].total);
		jw_key(&w, "self_fraction");
		jw_real(&w, samples ? (double)fns[i].self / (double)samples : 0, RATE_DECIMALS);
		jw_key(&w, "total_fraction");
		jw_real(&w, samples ? (double)fns[i].total / (double)samples : 0, RATE_DECIMALS);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	col_prof_fns_free(fns, nfns);
	col_prof_rows_free(&rows);
	return send_jw(c, MHD_HTTP_OK, &w);
}

/* ---- dispatch ---- */

static enum MHD_Result dispatch(struct col_api *api, struct MHD_Connection *c,
                                const char *url, const char *method)
{
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	if (strcmp(url, "/healthz") == 0) {
		if (!get)
			return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
		char *ok = strdup("ok");
		return ok ? send_text(c, MHD_HTTP_OK, "text/plain", ok) : MHD_NO;
	}
	/* A browser cannot send the token when it navigates: the page comes
	 * as a 401 without it, its files (no data) as they are (dashboard.h). */
	const struct col_dash_asset *asset = col_dashboard_find(url);
	if (asset != NULL)
		return col_dashboard_serve(c, asset, method,
		                           asset != col_dashboard_find("/") || authorized(api, c));
	if (!authorized(api, c))
		return send_error(c, MHD_HTTP_UNAUTHORIZED,
		                  "unauthorized: send Authorization: Bearer TOKEN");
	if (strcmp(url, "/metrics") == 0 && api->ctx.metrics != NULL) {
		if (!get)
			return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
		return h_metrics(api, c);
	}
	const char *sub = strncmp(url, PREFIX "/", sizeof PREFIX) == 0
	                  ? url + sizeof PREFIX : NULL;
	enum { NONE, STATUS, ENDPOINTS, REQUESTS, REQUEST, QUERIES, N_PLUS_ONE, ERRORS, PROFILE } which = NONE;
	if (sub != NULL && col_api_time_owns(sub))
		return col_api_time(&api->ctx, c, sub, method);
	if (sub == NULL)
		which = NONE;
	else if (strcmp(sub, "status") == 0)
		which = STATUS;
	else if (strcmp(sub, "endpoints") == 0)
		which = ENDPOINTS;
	else if (strcmp(sub, "requests") == 0)
		which = REQUESTS;
	else if (strcmp(sub, "queries") == 0)
		which = QUERIES;
	else if (strcmp(sub, "n-plus-one") == 0)
		which = N_PLUS_ONE;
	else if (strcmp(sub, "errors") == 0)
		which = ERRORS;
	else if (strcmp(sub, "profile") == 0)
		which = PROFILE;
	else if (strncmp(sub, "requests/", 9) == 0 && sub[9] != '\0' && !strchr(sub + 9, '/'))
		which = REQUEST;
	if (which == NONE)
		return send_error(c, MHD_HTTP_NOT_FOUND, "not found: %.200s", url);
	if (!get)
		return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method %.32s not allowed on %.200s",
		                  method, url);
	switch (which) {
	case STATUS:
		return h_status(api, c);
	case ENDPOINTS:
		return h_endpoints(api, c);
	case REQUESTS:
		return h_requests(api, c);
	case REQUEST:
		return h_request(api, c, sub + 9);
	case QUERIES:
		return h_queries(api, c);
	case N_PLUS_ONE:
		return h_n_plus_one(api, c);
	case ERRORS:
		return h_errors(api, c);
	case PROFILE:
		return h_profile(api, c);
	default:
		return MHD_NO;
	}
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version,
                               const char *upload_data, size_t *upload_data_size,
                               void **con_cls)
{
	static int seen; /* marks a request's first call; only its address is used */
	struct col_api *api = cls;
	if (*con_cls == NULL) {
		*con_cls = &seen;
		return MHD_YES;
	}
	if (*upload_data_size != 0) { /* no endpoint takes a body yet: discard */
		*upload_data_size = 0;
		return MHD_YES;
	}
	int64_t t0 = col_clock_mono_ns();
	enum MHD_Result r = dispatch(api, c, url, method);
	if (col_log_enabled(COL_LOG_DEBUG))
		col_log(COL_LOG_DEBUG, "http: %s %s (%.2f ms)", method, url,
		        (double)(col_clock_mono_ns() - t0) / 1e6);
	return r;
}

/* libmicrohttpd's messages, at most COL_API_LOG_PER_MIN a minute: it
 * reports every client that drops a connection mid-request or finds the
 * server full, so any local client could otherwise write a line per
 * connection into the log (and fill the disk under it). The first message
 * held back says so; the next one logged counts what was held back. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static struct col_log_budget budget = {
		.per_min = COL_API_LOG_PER_MIN, .level = COL_LOG_WARN,
		.held_fmt = "http: %llu more libmicrohttpd messages were not logged",
		.full_fmt = "http: further libmicrohttpd messages are not logged"
		            " this minute (at most %d a minute)" };
	(void)cls;
	int64_t now = col_clock_mono_ns();
	pthread_mutex_lock(&mu);
	if (col_log_budget_take(&budget, now))
		col_logv(COL_LOG_WARN, fmt, ap);
	pthread_mutex_unlock(&mu);
}

/* COL_API_MAX_CONNECTIONS, or fewer when the descriptor limit cannot hold
 * them and the collector's own files (the soft RLIMIT_NOFILE is raised
 * toward the hard one first, as a program that never uses select() may). */
static unsigned connection_limit(void)
{
	const rlim_t reserve = 128; /* database, socket, webhook, logs */
	rlim_t want = COL_API_MAX_CONNECTIONS + reserve;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 64;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		struct rlimit up = rl;
		up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return COL_API_MAX_CONNECTIONS;
	unsigned n = rl.rlim_cur > reserve + 64 ? (unsigned)(rl.rlim_cur - reserve) : 64;
	col_log(COL_LOG_WARN, "http: at most %u connections at once (descriptor limit %llu;"
	        " raise it, e.g. LimitNOFILE=, for more)", n, (unsigned long long)rl.rlim_cur);
	return n;
}

struct col_api *col_api_start(int listen_fd, const struct col_api_ctx *ctx,
                              char *err, size_t errlen)
{
	struct col_api *api = calloc(1, sizeof *api);
	if (api == NULL) {
		close(listen_fd);
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	api->ctx = *ctx;
	/* A pool of threads polling their connections (epoll), not a thread
	 * per connection: an idle or trickling client then costs a descriptor
	 * and its buffer, not one of a few slots, so slow clients (slowloris,
	 * pooled keep-alives) cannot make /healthz and the rest unanswerable.
	 * A handler waiting on the database holds up only its own thread's
	 * other connections. */
	unsigned limit = connection_limit();
	api->d = MHD_start_daemon(
		MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
		0, NULL, NULL, handler, api,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, listen_fd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)COL_API_THREADS,
		MHD_OPTION_CONNECTION_LIMIT, limit,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)COL_API_IDLE_TIMEOUT_S,
		MHD_OPTION_END);
	if (api->d == NULL) {
		close(listen_fd);
		free(api);
		set_err(err, errlen, "http: cannot start the HTTP server");
		return NULL;
	}
	return api;
}

void col_api_stop(struct col_api *api)
{
	if (api == NULL)
		return;
	MHD_stop_daemon(api->d);
	free(api);
}

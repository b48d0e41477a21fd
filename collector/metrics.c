/*
 * metrics.c - Prometheus metrics (metrics.h).
 *
 * Every series of every family lives in one hash map keyed by its family
 * number and label values ("\x03" "api\0GET\0/x\0"), values in the series
 * itself. Histograms keep per-bucket (not cumulative) counts; the scrape
 * accumulates them. The three histograms of an endpoint (duration, request
 * and response size) share one entry, so a request costs two look-ups
 * (about 900 instructions, against 4,300 for the rest of its ingest). A
 * scrape copies the series under the mutex, then sorts and formats the
 * copies without it, each series' labels formatted once.
 */
#include "config.h"
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "ap_config.h"
#include "ap_sql.h"
#include "col.h"
#include "hmap.h"
#include "ingest.h"
#include "stmt.h"
#include "store.h"

#define KEY_MAX 2048          /* family byte + label values; longer are cut */
#define NS_MAX (AP_CONFIG_MAX_NAMESPACE + 2) /* the namespace, '_', NUL */

enum fam {
	F_HTTP_REQUESTS,
	F_HTTP_DURATION,
	F_HTTP_REQ_SIZE,
	F_HTTP_RESP_SIZE,
	F_HTTP_ERRORS,
	F_DB_QUERIES,
	F_DB_DURATION,
	F_DB_ERRORS,
	F_DB_TABLE_OPS,
	F_N_PLUS_ONE,
	F_REGRESSIONS,
	F_EVENTS_DROPPED,        /* built at scrape time */
	F_PROCESSES,             /* built at scrape time */
	F_COL_EVENTS,            /* the collector's own: scalars at scrape time */
	F_COL_QUEUE,
	F_COL_STORAGE_ERRORS,
	F_COL_WEBHOOKS,
	F_COUNT
};

enum kind { K_COUNTER, K_GAUGE, K_HIST };
enum buckets { B_NONE, B_LATENCY, B_SIZE };

struct family {
	const char *name;
	const char *help;
	enum kind kind;
	enum buckets buckets;
	int nlabels;
	const char *labels[4];
};

static const struct family FAM[F_COUNT] = {
	[F_HTTP_REQUESTS] = { "apiprof_http_requests_total",
		"HTTP requests finished, by status (\"aborted\": closed before a response).",
		K_COUNTER, B_NONE, 4, { "service", "method", "route", "status" } },
	[F_HTTP_DURATION] = { "apiprof_http_request_duration_seconds",
		"Time from the first byte of the request to the last byte of the response.",
		K_HIST, B_LATENCY, 3, { "service", "method", "route" } },
	[F_HTTP_REQ_SIZE] = { "apiprof_http_request_size_bytes",
		"Bytes received per request, headers and body.",
		K_HIST, B_SIZE, 3, { "service", "method", "route" } },
	[F_HTTP_RESP_SIZE] = { "apiprof_http_response_size_bytes",
		"Bytes sent per response, headers and body.",
		K_HIST, B_SIZE, 3, { "service", "method", "route" } },
	[F_HTTP_ERRORS] = { "apiprof_http_errors_total",
		"Failed requests by type: HTTP <status> (>= 500), aborted, or a fatal signal.",
		K_COUNTER, B_NONE, 3, { "service", "route", "type" } },
	[F_DB_QUERIES] = { "apiprof_db_queries_total",
		"SQL statements (prepares included) by operation.",
		K_COUNTER, B_NONE, 3, { "service", "db", "operation" } },
	[F_DB_DURATION] = { "apiprof_db_query_duration_seconds",
		"SQL statement duration.",
		K_HIST, B_LATENCY, 2, { "service", "db" } },
	[F_DB_ERRORS] = { "apiprof_db_errors_total",
		"Failed SQL statements by error code (SQLSTATE, MySQL errno, SQLite code).",
		K_COUNTER, B_NONE, 3, { "service", "db", "code" } },
	[F_DB_TABLE_OPS] = { "apiprof_db_table_operations_total",
		"Executed INSERT, UPDATE and DELETE statements per table.",
		K_COUNTER, B_NONE, 4, { "service", "db", "table", "operation" } },
	[F_N_PLUS_ONE] = { "apiprof_n_plus_one_total",
		"Requests in which an N+1 query pattern was found.",
		K_COUNTER, B_NONE, 3, { "service", "method", "route" } },
	[F_REGRESSIONS] = { "apiprof_regressions_total",
		"Regressions detected between aggregation windows.",
		K_COUNTER, B_NONE, 2, { "service", "type" } },
	[F_EVENTS_DROPPED] = { "apiprof_events_dropped_total",
		"Events the preloaded processes dropped (buffer full or collector unreachable).",
		K_COUNTER, B_NONE, 1, { "service" } },
	[F_PROCESSES] = { "apiprof_processes",
		"Processes heard from in the last 5 seconds.",
		K_GAUGE, B_NONE, 1, { "service" } },
	[F_COL_EVENTS] = { "apiprof_collector_events_received_total",
		"Event records the collector decoded.",
		K_COUNTER, B_NONE, 0, { NULL } },
	[F_COL_QUEUE] = { "apiprof_collector_store_queue_depth",
		"Request rows waiting to be written to the database.",
		K_GAUGE, B_NONE, 0, { NULL } },
	[F_COL_STORAGE_ERRORS] = { "apiprof_collector_storage_errors_total",
		"Database transactions that failed.",
		K_COUNTER, B_NONE, 0, { NULL } },
	[F_COL_WEBHOOKS] = { "apiprof_collector_webhook_deliveries_total",
		"Regression alerts by the outcome of their delivery, each counted once: delivered, or failed after the last attempt or dropped.",
		K_COUNTER, B_NONE, 1, { "result" } },
};

/* Request and response sizes: powers of 4 from 64 B to 16 MiB. */
static const double SIZE_BUCKETS[] = {
	64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216
};
#define N_SIZE_BUCKETS (sizeof SIZE_BUCKETS / sizeof SIZE_BUCKETS[0])

struct series {
	uint64_t count;          /* counter value or histogram observations */
	double sum;              /* histograms; gauges */
	double sum_in, sum_out;  /* F_HTTP_DURATION: the two size histograms' sums */
	uint32_t klen;
	uint32_t nb;             /* finite buckets */
	char *key;               /* family byte + values, each NUL-terminated */
	uint64_t b[];            /* nb per-bucket counts, then the key bytes */
};

/* One member of a bounded label set (tables, error codes), and the
 * per-scope count. */
struct member {
	size_t klen;
	char key[];
};
struct scope {
	size_t n;
	size_t klen;
	char key[];
};

struct col_metrics {
	pthread_mutex_t mu;
	struct col_hmap *series;
	struct col_hmap *members;   /* bounded label values seen */
	struct col_hmap *scopes;    /* their counts per scope */
	uint64_t oom;
	char ns[NS_MAX];            /* "myco_" or "" */
	double lat[AP_CONFIG_MAX_BUCKETS];
	size_t nlat;
};

struct col_metrics *col_metrics_new(const struct ap_config *cfg)
{
	struct col_metrics *m = calloc(1, sizeof *m);
	if (m == NULL)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	m->series = col_hmap_new();
	m->members = col_hmap_new();
	m->scopes = col_hmap_new();
	if (!m->series || !m->members || !m->scopes) {
		col_metrics_free(m);
		return NULL;
	}
	if (cfg != NULL && cfg->metric_namespace != NULL && cfg->metric_namespace[0] != '\0')
		snprintf(m->ns, sizeof m->ns, "%s_", cfg->metric_namespace);
	if (cfg != NULL && cfg->n_latency_buckets > 0) {
		m->nlat = cfg->n_latency_buckets;
		memcpy(m->lat, cfg->latency_buckets, m->nlat * sizeof m->lat[0]);
	} else {
		static const double def[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
		                              1, 2.5, 5, 10 };
		m->nlat = sizeof def / sizeof def[0];
		memcpy(m->lat, def, sizeof def);
	}
	return m;
}

static void free_values(struct col_hmap *h)
{
	size_t it = 0;
	void *v;
	while ((v = col_hmap_next(h, &it, NULL, NULL)) != NULL)
		free(v);
	col_hmap_free(h);
}

void col_metrics_free(struct col_metrics *m)
{
	if (m == NULL)
		return;
	if (m->series)
		free_values(m->series);
	if (m->members)
		free_values(m->members);
	if (m->scopes)
		free_values(m->scopes);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* ---- keys ---- */

struct key {
	char b[KEY_MAX];
	size_t len;
};

static void key_start(struct key *k, enum fam f)
{
	k->b[0] = (char)f;
	k->len = 1;
}

/* Appends a value and its NUL; a value that does not fit is cut (labels
 * longer than ~2 KiB would be useless anyway). */
static void key_add(struct key *k, const char *v)
{
	size_t room = sizeof k->b - k->len - 1;
	size_t n = strlen(v ? v : "");
	if (n > room)
		n = room;
	memcpy(k->b + k->len, v ? v : "", n);
	k->len += n;
	k->b[k->len++] = '\0';
}

/* Buckets stored in a series of family f: an endpoint's F_HTTP_DURATION
 * entry holds its duration buckets, then the request size ones, then the
 * response size ones (the two size families have no entries of their own). */
static size_t fam_nb(const struct col_metrics *m, enum fam f)
{
	if (f == F_HTTP_DURATION)
		return m->nlat + 2 * N_SIZE_BUCKETS;
	return FAM[f].buckets == B_LATENCY ? m->nlat : 0;
}

/* Counts v in the first of bounds[0..n) it does not exceed. */
static void bucket_add(uint64_t *b, const double *bounds, size_t n, double v)
{
	for (size_t i = 0; i < n; i++) {
		if (v <= bounds[i]) {
			b[i]++;
			return;
		}
	}
}

/* The series under k, created at zero when new; NULL when out of memory
 * (counted). Called locked. */
static struct series *series_get(struct col_metrics *m, const struct key *k)
{
	struct series *s = col_hmap_get(m->series, k->b, k->len);
	if (s != NULL)
		return s;
	size_t nb = fam_nb(m, (enum fam)k->b[0]);
	s = calloc(1, sizeof *s + nb * sizeof s->b[0] + k->len);
	if (s == NULL) {
		m->oom++;
		return NULL;
	}
	s->nb = (uint32_t)nb;
	s->klen = (uint32_t)k->len;
	s->key = (char *)(s->b + nb);
	memcpy(s->key, k->b, k->len);
	if (col_hmap_put(m->series, s->key, s->klen, s) < 0) {
		free(s);
		m->oom++;
		return NULL;
	}
	return s;
}

static void count(struct col_metrics *m, const struct key *k, uint64_t n)
{
	struct series *s = series_get(m, k);
	if (s != NULL)
		s->count += n;
}

/* A latency histogram (F_DB_DURATION). */
static void observe(struct col_metrics *m, const struct key *k, double v)
{
	struct series *s = series_get(m, k);
	if (s == NULL)
		return;
	if (!(v >= 0)) /* NaN or negative: impossible from ingest */
		v = 0;
	s->count++;
	s->sum += v;
	bucket_add(s->b, m->lat, m->nlat, v);
}

/* An endpoint's three histograms at once. */
static void observe_endpoint(struct col_metrics *m, const struct key *k, double dur,
                             uint64_t in, uint64_t out)
{
	struct series *s = series_get(m, k);
	if (s == NULL)
		return;
	if (!(dur >= 0))
		dur = 0;
	s->count++;
	s->sum += dur;
	s->sum_in += (double)in;
	s->sum_out += (double)out;
	bucket_add(s->b, m->lat, m->nlat, dur);
	bucket_add(s->b + m->nlat, SIZE_BUCKETS, N_SIZE_BUCKETS, (double)in);
	bucket_add(s->b + m->nlat + N_SIZE_BUCKETS, SIZE_BUCKETS, N_SIZE_BUCKETS, (double)out);
}

/* Bounds a label value within a scope (a service's tables): the value
 * itself while fewer than max values were seen there, else `other`.
 * Called locked. */
static const char *bounded(struct col_metrics *m, const char *scope, const char *value,
                           size_t max, const char *other)
{
	struct key k;
	k.b[0] = 'm';
	k.len = 1;
	key_add(&k, scope);
	size_t slen = k.len;
	key_add(&k, value);
	if (col_hmap_get(m->members, k.b, k.len) != NULL)
		return value;
	struct scope *sc = col_hmap_get(m->scopes, k.b, slen);
	if (sc == NULL) {
		sc = calloc(1, sizeof *sc + slen);
		if (sc == NULL) {
			m->oom++;
			return other;
		}
		memcpy(sc->key, k.b, slen);
		sc->klen = slen;
		if (col_hmap_put(m->scopes, sc->key, slen, sc) < 0) {
			free(sc);
			m->oom++;
			return other;
		}
	}
	if (sc->n >= max)
		return other;
	struct member *mb = malloc(sizeof *mb + k.len);
	if (mb == NULL) {
		m->oom++;
		return other;
	}
	mb->klen = k.len;
	memcpy(mb->key, k.b, k.len);
	if (col_hmap_put(m->members, mb->key, mb->klen, mb) < 0) {
		free(mb);
		m->oom++;
		return other;
	}
	sc->n++;
	return value;
}

/* ---- feeding ---- */

void col_metrics_request(struct col_metrics *m, const char *service, const char *method,
                         const char *route, unsigned status, int aborted,
                         double duration_s, uint64_t bytes_in, uint64_t bytes_out,
                         int n_plus_one)
{
	if (m == NULL)
		return;
	char st[8];
	if (status >= 100 && status <= 999) {
		st[0] = (char)('0' + status / 100);
		st[1] = (char)('0' + status / 10 % 10);
		st[2] = (char)('0' + status % 10);
		st[3] = '\0';
	} else {
		memcpy(st, aborted ? "aborted" : "other", aborted ? 8 : 6);
	}
	struct key k;
	pthread_mutex_lock(&m->mu);
	/* Any status 100-999 is a label value; a service's first
	 * COL_METRICS_MAX_STATUSES keep theirs, so routes times statuses
	 * cannot multiply into millions of series. */
	char scope[COL_SERVICE_MAX + 2];
	snprintf(scope, sizeof scope, "s%s", service);
	const char *stl = bounded(m, scope, st, COL_METRICS_MAX_STATUSES, "other");
	key_start(&k, F_HTTP_REQUESTS);
	key_add(&k, service);
	key_add(&k, method);
	key_add(&k, route);
	key_add(&k, stl);
	count(m, &k, 1);

	key_start(&k, F_HTTP_DURATION);
	key_add(&k, service);
	key_add(&k, method);
	key_add(&k, route);
	observe_endpoint(m, &k, duration_s, bytes_in, bytes_out);
	if (n_plus_one) {
		k.b[0] = F_N_PLUS_ONE;
		count(m, &k, 1);
	}

	if ((aborted || status >= 500) && aborted != COL_METRICS_CRASHED) {
		char type[24];
		if (aborted)
			snprintf(type, sizeof type, "aborted");
		else
			snprintf(type, sizeof type, "HTTP %s", stl);
		key_start(&k, F_HTTP_ERRORS);
		key_add(&k, service);
		key_add(&k, route);
		key_add(&k, type);
		count(m, &k, 1);
	}
	pthread_mutex_unlock(&m->mu);
}

void col_metrics_sql(struct col_metrics *m, const char *service, const struct col_stmt *s)
{
	if (m == NULL || s == NULL)
		return;
	const char *db = col_sql_db_name(s->db);
	size_t slen = strlen(s->sql);
	enum ap_sql_op op = ap_sql_operation(s->sql, slen);
	char table[256] = "";
	if (!s->prepare && !s->failed &&
	    (op == AP_SQL_OP_INSERT || op == AP_SQL_OP_UPDATE || op == AP_SQL_OP_DELETE))
		ap_sql_table(s->sql, slen, table, sizeof table);

	struct key k;
	pthread_mutex_lock(&m->mu);
	key_start(&k, F_DB_QUERIES);
	key_add(&k, service);
	key_add(&k, db);
	key_add(&k, ap_sql_op_name(op));
	count(m, &k, 1);

	key_start(&k, F_DB_DURATION);
	key_add(&k, service);
	key_add(&k, db);
	observe(m, &k, s->duration_ms / 1000.0);

	if (s->failed) {
		char scope[COL_SERVICE_MAX + 16];
		snprintf(scope, sizeof scope, "c%s/%s", service, db);
		const char *code = s->error_code[0] ? s->error_code : "unknown";
		code = bounded(m, scope, code, COL_METRICS_MAX_CODES, "other");
		key_start(&k, F_DB_ERRORS);
		key_add(&k, service);
		key_add(&k, db);
		key_add(&k, code);
		count(m, &k, 1);
	}
	if (table[0] != '\0') {
		char scope[COL_SERVICE_MAX + 2];
		snprintf(scope, sizeof scope, "t%s", service);
		const char *t = bounded(m, scope, table, COL_METRICS_MAX_TABLES, "{other}");
		key_start(&k, F_DB_TABLE_OPS);
		key_add(&k, service);
		key_add(&k, db);
		key_add(&k, t);
		key_add(&k, ap_sql_op_name(op));
		count(m, &k, 1);
	}
	pthread_mutex_unlock(&m->mu);
}

void col_metrics_error(struct col_metrics *m, const char *service, const char *route,
                       const char *type)
{
	if (m == NULL)
		return;
	struct key k;
	key_start(&k, F_HTTP_ERRORS);
	key_add(&k, service);
	key_add(&k, route ? route : "");
	key_add(&k, type);
	pthread_mutex_lock(&m->mu);
	count(m, &k, 1);
	pthread_mutex_unlock(&m->mu);
}

void col_metrics_regression(struct col_metrics *m, const char *service, const char *type)
{
	if (m == NULL)
		return;
	struct key k;
	key_start(&k, F_REGRESSIONS);
	key_add(&k, service);
	key_add(&k, type);
	pthread_mutex_lock(&m->mu);
	count(m, &k, 1);
	pthread_mutex_unlock(&m->mu);
}

void col_metrics_webhook(struct col_metrics *m, const char *result)
{
	if (m == NULL)
		return;
	struct key k;
	key_start(&k, F_COL_WEBHOOKS);
	key_add(&k, result);
	pthread_mutex_lock(&m->mu);
	count(m, &k, 1);
	pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ---- */

struct buf {
	char *p;
	size_t len, cap;
	int failed;
};

static void buf_reserve(struct buf *b, size_t n)
{
	if (b->failed || b->len + n + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 16384;
	while (cap < b->len + n + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		b->failed = 1;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	if (b->failed)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void buf_fmt(struct buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof tmp) {
		buf_add(b, tmp, (size_t)n);
		return;
	}
	buf_reserve(b, (size_t)n);
	if (b->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

size_t col_metrics_escape(const char *v, char *out, size_t outlen)
{
	size_t o = 0;
	if (outlen == 0)
		return 0;
	for (; *v; v++) {
		const char *rep = NULL;
		if (*v == '\\')
			rep = "\\\\";
		else if (*v == '"')
			rep = "\\\"";
		else if (*v == '\n')
			rep = "\\n";
		size_t n = rep ? 2 : 1;
		if (o + n >= outlen)
			break;
		if (rep) {
			out[o++] = rep[0];
			out[o++] = rep[1];
		} else {
			out[o++] = *v;
		}
	}
	out[o] = '\0';
	return o;
}

static void buf_escaped(struct buf *b, const char *v)
{
	for (const char *p = v; *p; ) {
		size_t n = strcspn(p, "\\\"\n");
		buf_add(b, p, n);
		p += n;
		if (*p == '\0')
			break;
		buf_str(b, *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : "\\n");
		p++;
	}
}

/* The shortest decimal that reads back as v ("0.005", "2.5", "10");
 * "+Inf", "-Inf", "NaN" as Prometheus spells them. */
static void fmt_double(double v, char *out, size_t outlen)
{
	if (isnan(v)) {
		snprintf(out, outlen, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, outlen, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* Plain decimals where they stay short, so bucket labels read as
	 * users write them (le="10", not le="1e+01"). */
	double a = fabs(v);
	if (a == 0 || (a >= 1e-6 && a < 1e15)) {
		for (int prec = 0; prec <= 20; prec++) {
			snprintf(out, outlen, "%.*f", prec, v);
			if (strtod(out, NULL) == v)
				return;
		}
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, outlen, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* Decimal digits of v at out (>= 21 bytes); returns the length. */
static size_t fmt_u64(uint64_t v, char *out)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* ' ' value '\n' */
static void buf_u64_line(struct buf *b, uint64_t v)
{
	char num[24];
	num[0] = ' ';
	size_t n = 1 + fmt_u64(v, num + 1);
	num[n++] = '\n';
	buf_add(b, num, n);
}

/* The label pairs of a series without braces ('service="a",route="/x"'),
 * from its key, escaped, into lb. */
static void series_labels(struct buf *lb, const struct series *s, enum fam f)
{
	lb->len = 0;
	if (lb->p != NULL)
		lb->p[0] = '\0';
	const char *v = s->key + 1;
	for (int i = 0; i < FAM[f].nlabels; i++) {
		if (i > 0)
			buf_str(lb, ",");
		buf_str(lb, FAM[f].labels[i]);
		buf_str(lb, "=\"");
		buf_escaped(lb, v);
		buf_str(lb, "\"");
		v += strlen(v) + 1;
	}
}

/* name + suffix + {labels[,le="X"]} */
static void write_name(struct buf *b, const char *ns, const char *name, const char *suffix,
                       const struct buf *lb, const char *le)
{
	buf_str(b, ns);
	buf_str(b, name);
	buf_str(b, suffix);
	int nl = lb->len > 0;
	if (!nl && le == NULL)
		return;
	buf_str(b, "{");
	if (nl)
		buf_add(b, lb->p, lb->len);
	if (le != NULL) {
		buf_str(b, nl ? ",le=\"" : "le=\"");
		buf_str(b, le);
		buf_str(b, "\"");
	}
	buf_str(b, "}");
}

/* The le values of a bucket set, formatted once per scrape. */
struct les {
	char v[AP_CONFIG_MAX_BUCKETS][40];
	size_t n;
};

static void les_init(struct les *l, const double *bounds, size_t n)
{
	l->n = n;
	for (size_t i = 0; i < n; i++)
		fmt_double(bounds[i], l->v[i], sizeof l->v[i]);
}

/* One histogram: buckets b[0..les->n) (per bucket, made cumulative here),
 * +Inf, _sum and _count. */
static void write_hist(struct buf *b, const char *ns, const char *name, const struct buf *lb,
                       const struct les *les, const uint64_t *bk, uint64_t count, double sum)
{
	uint64_t cum = 0;
	for (size_t i = 0; i < les->n; i++) {
		cum += bk[i];
		write_name(b, ns, name, "_bucket", lb, les->v[i]);
		buf_u64_line(b, cum);
	}
	write_name(b, ns, name, "_bucket", lb, "+Inf");
	buf_u64_line(b, count);
	char num[40];
	fmt_double(sum, num, sizeof num);
	write_name(b, ns, name, "_sum", lb, NULL);
	buf_str(b, " ");
	buf_str(b, num);
	buf_str(b, "\n");
	write_name(b, ns, name, "_count", lb, NULL);
	buf_u64_line(b, count);
}

/* Every line of series s for family f (the size families read their
 * part of the endpoint's F_HTTP_DURATION entry). */
static void write_series(struct buf *b, struct buf *lb, const struct col_metrics *m,
                         const struct les *lat, const struct les *size, enum fam f,
                         const struct series *s)
{
	series_labels(lb, s, f);
	const char *name = FAM[f].name;
	switch (f) {
	case F_HTTP_DURATION:
	case F_DB_DURATION:
		write_hist(b, m->ns, name, lb, lat, s->b, s->count, s->sum);
		return;
	case F_HTTP_REQ_SIZE:
		write_hist(b, m->ns, name, lb, size, s->b + m->nlat, s->count, s->sum_in);
		return;
	case F_HTTP_RESP_SIZE:
		write_hist(b, m->ns, name, lb, size, s->b + m->nlat + N_SIZE_BUCKETS, s->count,
		           s->sum_out);
		return;
	default:
		break;
	}
	write_name(b, m->ns, name, "", lb, NULL);
	if (FAM[f].kind == K_GAUGE) {
		char num[40];
		fmt_double(s->sum, num, sizeof num);
		buf_str(b, " ");
		buf_str(b, num);
		buf_str(b, "\n");
	} else {
		buf_u64_line(b, s->count);
	}
}

static int cmp_series(const void *a, const void *b)
{
	const struct series *x = *(const struct series *const *)a;
	const struct series *y = *(const struct series *const *)b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);
	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static struct series *series_copy(const struct series *s)
{
	size_t sz = sizeof *s + s->nb * sizeof s->b[0] + s->klen;
	struct series *c = malloc(sz);
	if (c == NULL)
		return NULL;
	memcpy(c, s, sz);
	c->key = (char *)(c->b + c->nb);
	return c;
}

/* A scrape-time series with one label value (or none). */
static struct series *series_make(enum fam f, const char *label, uint64_t count, double gauge)
{
	struct key k;
	key_start(&k, f);
	if (label != NULL)
		key_add(&k, label);
	struct series *s = calloc(1, sizeof *s + k.len);
	if (s == NULL)
		return NULL;
	s->klen = (uint32_t)k.len;
	s->key = (char *)s->b;
	memcpy(s->key, k.b, k.len);
	s->count = count;
	s->sum = gauge;
	return s;
}

struct vec {
	struct series **v;
	size_t n, cap;
};

static int vec_push(struct vec *v, struct series *s)
{
	if (s == NULL)
		return -ENOMEM;
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		struct series **p = realloc(v->v, cap * sizeof *p);
		if (p == NULL) {
			free(s);
			return -ENOMEM;
		}
		v->v = p;
		v->cap = cap;
	}
	v->v[v->n++] = s;
	return 0;
}

/* Adds n to the series of fam f labelled `label` in v, or a new one. */
static int vec_add_label(struct vec *v, enum fam f, const char *label, uint64_t cnt,
                         double gauge)
{
	for (size_t i = 0; i < v->n; i++) {
		if (strcmp(v->v[i]->key + 1, label) == 0) {
			v->v[i]->count += cnt;
			v->v[i]->sum += gauge;
			return 0;
		}
	}
	return vec_push(v, series_make(f, label, cnt, gauge));
}

int col_metrics_render(struct col_metrics *m, const struct col_metrics_sources *src,
                       char **out)
{
	*out = NULL;
	struct vec fam[F_COUNT];
	memset(fam, 0, sizeof fam);
	int rc = 0;

	struct col_proc_info *pi = NULL;
	size_t npi = 0;
	struct col_svc_dropped *dr = NULL;
	size_t ndr = 0;
	int64_t now = src && src->now_mono_ns ? src->now_mono_ns : col_clock_mono_ns();
	if (src != NULL && src->agg != NULL &&
	    (col_agg_processes(src->agg, now, &pi, &npi) < 0 ||
	     col_agg_dropped(src->agg, &dr, &ndr) < 0))
		rc = -ENOMEM;

	pthread_mutex_lock(&m->mu);
	size_t it = 0;
	struct series *s;
	while (rc == 0 && (s = col_hmap_next(m->series, &it, NULL, NULL)) != NULL)
		rc = vec_push(&fam[(unsigned char)s->key[0]], series_copy(s));
	pthread_mutex_unlock(&m->mu);
	/* Dropped events: the aggregate keeps each service's sum, gone
	 * processes included, so the counter never goes down. */
	for (size_t i = 0; rc == 0 && i < ndr; i++)
		rc = vec_add_label(&fam[F_EVENTS_DROPPED], F_EVENTS_DROPPED, dr[i].service,
		                   dr[i].dropped, 0);
	free(dr);

	for (size_t i = 0; rc == 0 && i < npi; i++)
		rc = vec_add_label(&fam[F_PROCESSES], F_PROCESSES, pi[i].service, 0,
		                   pi[i].connected ? 1 : 0);
	free(pi);

	/* The collector's own health. */
	struct col_ingest_counters ic = { 0 };
	struct col_store_counters sc = { 0 };
	if (src != NULL && src->ingest != NULL)
		col_ingest_counters(src->ingest, &ic);
	if (src != NULL && src->store != NULL)
		col_store_counters(src->store, &sc);
	if (rc == 0)
		rc = vec_push(&fam[F_COL_EVENTS], series_make(F_COL_EVENTS, NULL, ic.records, 0));
	if (rc == 0)
		rc = vec_push(&fam[F_COL_QUEUE],
		              series_make(F_COL_QUEUE, NULL, 0, (double)sc.queue_depth));
	if (rc == 0)
		rc = vec_push(&fam[F_COL_STORAGE_ERRORS],
		              series_make(F_COL_STORAGE_ERRORS, NULL, sc.storage_errors, 0));
	/* Both results always show, so rate() sees the first failure. */
	if (rc == 0)
		rc = vec_add_label(&fam[F_COL_WEBHOOKS], F_COL_WEBHOOKS, "delivered", 0, 0);
	if (rc == 0)
		rc = vec_add_label(&fam[F_COL_WEBHOOKS], F_COL_WEBHOOKS, "failed", 0, 0);

	struct buf b = { 0 }, lb = { 0 };
	struct les *les = malloc(2 * sizeof *les);
	if (les == NULL)
		rc = -ENOMEM;
	else {
		les_init(&les[0], m->lat, m->nlat);
		les_init(&les[1], SIZE_BUCKETS, N_SIZE_BUCKETS);
	}
	for (int f = 0; rc == 0 && f < F_COUNT; f++) {
		/* The size histograms live in the duration entries. */
		const struct vec *v = (f == F_HTTP_REQ_SIZE || f == F_HTTP_RESP_SIZE)
		                      ? &fam[F_HTTP_DURATION] : &fam[f];
		if (v == &fam[f] && fam[f].n > 1)
			qsort(fam[f].v, fam[f].n, sizeof fam[f].v[0], cmp_series);
		buf_fmt(&b, "# HELP %s%s %s\n", m->ns, FAM[f].name, FAM[f].help);
		buf_fmt(&b, "# TYPE %s%s %s\n", m->ns, FAM[f].name,
		        FAM[f].kind == K_HIST ? "histogram" :
		        FAM[f].kind == K_GAUGE ? "gauge" : "counter");
		for (size_t i = 0; i < v->n; i++)
			write_series(&b, &lb, m, &les[0], &les[1], (enum fam)f, v->v[i]);
	}
	free(les);
	if (lb.failed)
		rc = -ENOMEM;
	free(lb.p);
	for (int f = 0; f < F_COUNT; f++) {
		for (size_t i = 0; i < fam[f].n; i++)
			free(fam[f].v[i]);
		free(fam[f].v);
	}
	if (rc == 0 && (b.failed || b.p == NULL))
		rc = -ENOMEM;
	if (rc < 0) {
		free(b.p);
		return rc;
	}
	*out = b.p;
	return 0;
}

/*
 * timeseries.c - 10-second buckets in a ring (timeseries.h).
 */
#include "config.h"
#include "timeseries.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "col.h"

struct bucket {
	int64_t idx;             /* bucket number (start / 10 s); -1: unused */
	uint64_t requests, sql;
	double request_ms, sql_ms;
};

struct ring {
	struct bucket b[COL_TS_BUCKETS];
};

struct svc_ring {
	char *name;
	struct ring r;
};

struct col_tseries {
	pthread_mutex_t mu;
	int64_t first_idx;       /* the first complete bucket */
	uint64_t out_of_range;
	struct ring all;
	struct svc_ring *svc[COL_TS_MAX_SERVICES];
	size_t nsvc;
	char last_name[64];      /* the last service looked up, and its ring: */
	struct ring *last;       /*   events come in runs of one service */
};

static int64_t idx_of(int64_t ns)
{
	int64_t i = ns / COL_TS_BUCKET_NS;
	return (ns < 0 && i * COL_TS_BUCKET_NS != ns) ? i - 1 : i;
}

struct col_tseries *col_tseries_new(int64_t start_real_ns)
{
	struct col_tseries *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	pthread_mutex_init(&t->mu, NULL);
	int64_t i = idx_of(start_real_ns);
	t->first_idx = i * COL_TS_BUCKET_NS == start_real_ns ? i : i + 1;
	for (size_t k = 0; k < COL_TS_BUCKETS; k++)
		t->all.b[k].idx = -1;
	return t;
}

/* The ring of service, created while there is room (lock held); NULL when
 * it has none. */
static struct ring *ring_of(struct col_tseries *t, const char *service, int create)
{
	if (service == NULL)
		return NULL;
	if (t->last != NULL && strcmp(t->last_name, service) == 0)
		return t->last;
	struct ring *r = NULL;
	for (size_t i = 0; i < t->nsvc && r == NULL; i++)
		if (strcmp(t->svc[i]->name, service) == 0)
			r = &t->svc[i]->r;
	if (r == NULL && create && t->nsvc < COL_TS_MAX_SERVICES) {
		struct svc_ring *s = malloc(sizeof *s);
		if (s == NULL || (s->name = strdup(service)) == NULL) {
			free(s);
			return NULL;
		}
		for (size_t k = 0; k < COL_TS_BUCKETS; k++)
			s->r.b[k].idx = -1;
		t->svc[t->nsvc++] = s;
		r = &s->r;
	}
	if (r != NULL && strlen(service) < sizeof t->last_name) {
		strcpy(t->last_name, service);
		t->last = r;
	}
	return r;
}

void col_tseries_free(struct col_tseries *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nsvc; i++) {
		free(t->svc[i]->name);
		free(t->svc[i]);
	}
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* The bucket for ts, reset when it held an older one; NULL when ts is out
 * of the ring (lock held). The newest index seen bounds the ring. */
static struct bucket *slot(struct ring *r, int64_t i)
{
	struct bucket *b = &r->b[(uint64_t)i % COL_TS_BUCKETS];
	if (b->idx == i)
		return b;
	if (b->idx > i)          /* a bucket one ring older */
		return NULL;
	*b = (struct bucket){ .idx = i };
	return b;
}

/* Counts one event in the series of all services and in service's. */
static void count(struct col_tseries *t, const char *service, int64_t ts_ns, double ms, int sql)
{
	int64_t i = idx_of(ts_ns);
	if (ms < 0)
		ms = 0;
	pthread_mutex_lock(&t->mu);
	/* A sender with a broken clock must not wipe the ring. */
	struct bucket *b = i > idx_of(col_clock_real_ns()) + 1 ? NULL : slot(&t->all, i);
	if (b == NULL) {
		t->out_of_range++;
	} else {
		struct ring *r = ring_of(t, service, 1);
		struct bucket *sb = r ? slot(r, i) : NULL;
		if (sql) {
			b->sql++;
			b->sql_ms += ms;
		} else {
			b->requests++;
			b->request_ms += ms;
		}
		if (sb && sql) {
			sb->sql++;
			sb->sql_ms += ms;
		} else if (sb) {
			sb->requests++;
			sb->request_ms += ms;
		}
	}
	pthread_mutex_unlock(&t->mu);
}

void col_tseries_request(struct col_tseries *t, const char *service, int64_t ts_ns,
                         double duration_ms)
{
	count(t, service, ts_ns, duration_ms, 0);
}

void col_tseries_sql(struct col_tseries *t, const char *service, int64_t ts_ns,
                     double duration_ms)
{
	count(t, service, ts_ns, duration_ms, 1);
}

void col_tseries_span(int64_t now_real_ns, int64_t since_ns, int64_t until_ns,
                      int64_t *first_out, int64_t *last_out)
{
	/* The last complete bucket ends at least SETTLE before now. */
	int64_t last = idx_of(now_real_ns - COL_TS_SETTLE_NS) - 1;
	int64_t first = last - (COL_TS_BUCKETS - 2) + 1; /* one slot spare for writers */
	if (first < 0)
		first = 0;
	if (since_ns > INT64_MIN) {
		int64_t s = idx_of(since_ns);
		if (s * COL_TS_BUCKET_NS < since_ns)
			s++;
		if (s > first)
			first = s;
	}
	if (until_ns < INT64_MAX) {
		int64_t u = idx_of(until_ns);
		if (u * COL_TS_BUCKET_NS == until_ns)
			u--;            /* until is exclusive */
		if (u < last)
			last = u;
	}
	*first_out = first;
	*last_out = last;
}

int64_t col_tseries_first(struct col_tseries *t)
{
	pthread_mutex_lock(&t->mu);
	int64_t v = t->first_idx;
	pthread_mutex_unlock(&t->mu);
	return v;
}

void col_ts_point_fill(struct col_ts_point *p, int64_t idx, uint64_t requests, uint64_t sql,
                       double request_ms, double sql_ms)
{
	p->t_ns = idx * COL_TS_BUCKET_NS;
	p->requests = requests;
	p->sql = sql;
	p->requests_per_s = (double)requests / COL_TS_BUCKET_S;
	p->sql_per_s = (double)sql / COL_TS_BUCKET_S;
	p->avg_request_ms = requests ? request_ms / (double)requests : 0;
	p->avg_sql_ms = sql ? sql_ms / (double)sql : 0;
}

int col_tseries_points(struct col_tseries *t, const char *service, int64_t now_real_ns,
                       int64_t since_ns, int64_t until_ns, struct col_ts_point **out,
                       size_t *n)
{
	*out = NULL;
	*n = 0;
	int64_t first, last;
	col_tseries_span(now_real_ns, since_ns, until_ns, &first, &last);
	int64_t own = col_tseries_first(t);
	if (first < own)
		first = own;
	if (last < first)
		return 0;
	size_t cnt = (size_t)(last - first + 1);
	struct col_ts_point *v = calloc(cnt, sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&t->mu);
	const struct ring *r = service ? ring_of(t, service, 0) : &t->all;
	if (r == NULL) {
		pthread_mutex_unlock(&t->mu);
		free(v);
		return -ENOENT;
	}
	for (size_t k = 0; k < cnt; k++) {
		int64_t i = first + (int64_t)k;
		const struct bucket *b = &r->b[(uint64_t)i % COL_TS_BUCKETS];
		if (b->idx != i)
			col_ts_point_fill(&v[k], i, 0, 0, 0, 0);
		else
			col_ts_point_fill(&v[k], i, b->requests, b->sql, b->request_ms, b->sql_ms);
	}
	pthread_mutex_unlock(&t->mu);
	*out = v;
	*n = cnt;
	return 0;
}

/* Appends ring r's non-empty buckets in [first, last] to v (lock held). */
static void take(const struct ring *r, const char *service, int64_t first, int64_t last,
                 struct col_ts_bucket *v, size_t *n)
{
	for (int64_t i = first; i <= last; i++) {
		const struct bucket *b = &r->b[(uint64_t)i % COL_TS_BUCKETS];
		if (b->idx != i || (b->requests == 0 && b->sql == 0))
			continue;
		v[(*n)++] = (struct col_ts_bucket){
			.service = service, .t_ns = i * COL_TS_BUCKET_NS,
			.requests = b->requests, .sql = b->sql,
			.request_ms = b->request_ms, .sql_ms = b->sql_ms,
		};
	}
}

int col_tseries_complete(struct col_tseries *t, int64_t now_real_ns, int64_t after_ns,
                         struct col_ts_bucket **out, size_t *n, int64_t *last_ns)
{
	*out = NULL;
	*n = 0;
	int64_t first, last;
	col_tseries_span(now_real_ns, INT64_MIN, INT64_MAX, &first, &last);
	*last_ns = last * COL_TS_BUCKET_NS;
	if (after_ns > INT64_MIN && idx_of(after_ns) + 1 > first)
		first = idx_of(after_ns) + 1;
	pthread_mutex_lock(&t->mu);
	if (first < t->first_idx)
		first = t->first_idx;
	if (last < first) {
		pthread_mutex_unlock(&t->mu);
		return 0;
	}
	size_t cap = (size_t)(last - first + 1) * (t->nsvc + 1);
	struct col_ts_bucket *v = malloc(cap * sizeof *v);
	if (v == NULL) {
		pthread_mutex_unlock(&t->mu);
		return -ENOMEM;
	}
	take(&t->all, "", first, last, v, n);
	for (size_t i = 0; i < t->nsvc; i++)
		take(&t->svc[i]->r, t->svc[i]->name, first, last, v, n);
	pthread_mutex_unlock(&t->mu);
	if (*n == 0) {
		free(v);
		v = NULL;
	}
	*out = v;
	return 0;
}

uint64_t col_tseries_out_of_range(struct col_tseries *t)
{
	pthread_mutex_lock(&t->mu);
	uint64_t v = t->out_of_range;
	pthread_mutex_unlock(&t->mu);
	return v;
}

/*
 * timeseries.c - 10-second buckets in a ring (timeseries.h).
 */
#include "config.h"
#include "timeseries.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "col.h"

struct bucket {
	int64_t idx;             /* bucket number (start / 10 s); -1: unused */
	uint64_t requests, sql;
	double request_ms, sql_ms;
};

struct col_tseries {
	pthread_mutex_t mu;
	int64_t first_idx;       /* the first complete bucket */
	uint64_t out_of_range;
	struct bucket b[COL_TS_BUCKETS];
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
		t->b[k].idx = -1;
	return t;
}

void col_tseries_free(struct col_tseries *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* The bucket for ts, reset when it held an older one; NULL when ts is out
 * of the ring (lock held). The newest index seen bounds the ring. */
static struct bucket *slot(struct col_tseries *t, int64_t ts_ns)
{
	int64_t i = idx_of(ts_ns);
	/* A sender with a broken clock must not wipe the ring. */
	if (i > idx_of(col_clock_real_ns()) + 1) {
		t->out_of_range++;
		return NULL;
	}
	struct bucket *b = &t->b[(uint64_t)i % COL_TS_BUCKETS];
	if (b->idx == i)
		return b;
	if (b->idx > i) {        /* a bucket one ring older */
		t->out_of_range++;
		return NULL;
	}
	*b = (struct bucket){ .idx = i };
	return b;
}

void col_tseries_request(struct col_tseries *t, int64_t ts_ns, double duration_ms)
{
	pthread_mutex_lock(&t->mu);
	struct bucket *b = slot(t, ts_ns);
	if (b) {
		b->requests++;
		b->request_ms += duration_ms > 0 ? duration_ms : 0;
	}
	pthread_mutex_unlock(&t->mu);
}

void col_tseries_sql(struct col_tseries *t, int64_t ts_ns, double duration_ms)
{
	pthread_mutex_lock(&t->mu);
	struct bucket *b = slot(t, ts_ns);
	if (b) {
		b->sql++;
		b->sql_ms += duration_ms > 0 ? duration_ms : 0;
	}
	pthread_mutex_unlock(&t->mu);
}

int col_tseries_points(struct col_tseries *t, int64_t now_real_ns, int64_t since_ns,
                       int64_t until_ns, struct col_ts_point **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	/* The last complete bucket ends at least SETTLE before now. */
	int64_t last = idx_of(now_real_ns - COL_TS_SETTLE_NS) - 1;
	int64_t first = last - (COL_TS_BUCKETS - 2) + 1; /* one slot spare for writers */
	if (first < 0)
		first = 0;
	pthread_mutex_lock(&t->mu);
	if (first < t->first_idx)
		first = t->first_idx;
	pthread_mutex_unlock(&t->mu);
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
	if (last < first)
		return 0;
	size_t cnt = (size_t)(last - first + 1);
	struct col_ts_point *v = calloc(cnt, sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&t->mu);
	for (size_t k = 0; k < cnt; k++) {
		int64_t i = first + (int64_t)k;
		const struct bucket *b = &t->b[(uint64_t)i % COL_TS_BUCKETS];
		struct col_ts_point *p = &v[k];
		p->t_ns = i * COL_TS_BUCKET_NS;
		if (b->idx != i)
			continue;
		p->requests = b->requests;
		p->sql = b->sql;
		p->requests_per_s = (double)b->requests / COL_TS_BUCKET_S;
		p->sql_per_s = (double)b->sql / COL_TS_BUCKET_S;
		p->avg_request_ms = b->requests ? b->request_ms / (double)b->requests : 0;
		p->avg_sql_ms = b->sql ? b->sql_ms / (double)b->sql : 0;
	}
	pthread_mutex_unlock(&t->mu);
	*out = v;
	*n = cnt;
	return 0;
}

uint64_t col_tseries_out_of_range(struct col_tseries *t)
{
	pthread_mutex_lock(&t->mu);
	uint64_t v = t->out_of_range;
	pthread_mutex_unlock(&t->mu);
	return v;
}

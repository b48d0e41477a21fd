/*
 * epset.c - endpoint statistics and sets of them (epset.h).
 */
#include "config.h"
#include "epset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

#define MAX_KEY 4096

void col_stats_release(struct col_stats *s)
{
	col_sketch_release(&s->sketch);
	memset(s, 0, sizeof *s);
}

int col_stats_add(struct col_stats *s, const struct col_obs *o)
{
	double d = o->duration_ms > 0 ? o->duration_ms : 0;
	if (s->count == 0 || d < s->min_ms)
		s->min_ms = d;
	if (s->count == 0 || d > s->max_ms)
		s->max_ms = d;
	s->count++;
	s->error_count += o->error != 0;
	s->slow_count += o->slow != 0;
	s->sum_ms += d;
	s->sql_count += o->sql_count;
	s->sql_time_ms += o->sql_time_ms;
	s->n_plus_one_count += o->n_plus_one != 0;
	return col_sketch_add(&s->sketch, d);
}

int col_stats_merge(struct col_stats *dst, const struct col_stats *src)
{
	if (src->count == 0)
		return 0;
	if (dst->count == 0 || src->min_ms < dst->min_ms)
		dst->min_ms = src->min_ms;
	if (dst->count == 0 || src->max_ms > dst->max_ms)
		dst->max_ms = src->max_ms;
	dst->count += src->count;
	dst->error_count += src->error_count;
	dst->slow_count += src->slow_count;
	dst->sum_ms += src->sum_ms;
	dst->sql_count += src->sql_count;
	dst->sql_time_ms += src->sql_time_ms;
	dst->n_plus_one_count += src->n_plus_one_count;
	return col_sketch_merge(&dst->sketch, &src->sketch);
}

/* An entry and its key in one allocation: the key is
 * "service\0method\0route", and the names point into it. */
struct ep_entry {
	struct col_ep ep;
	size_t klen;
	char key[];
};

struct col_epset {
	struct col_hmap *map;
};

struct col_epset *col_epset_new(void)
{
	struct col_epset *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->map = col_hmap_new();
	if (s->map == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void col_epset_free(struct col_epset *s)
{
	if (s == NULL)
		return;
	size_t it = 0;
	struct ep_entry *e;
	while ((e = col_hmap_next(s->map, &it, NULL, NULL)) != NULL) {
		col_stats_release(&e->ep.st);
		free(e);
	}
	col_hmap_free(s->map);
	free(s);
}

size_t col_epset_count(const struct col_epset *s)
{
	return col_hmap_count(s->map);
}

struct col_ep *col_epset_next(const struct col_epset *s, size_t *it)
{
	struct ep_entry *e = col_hmap_next(s->map, it, NULL, NULL);
	return e ? &e->ep : NULL;
}

struct col_ep *col_epset_get(struct col_epset *s, const char *service,
                             const char *method, const char *route, int create)
{
	size_t ls = strlen(service), lm = strlen(method), lr = strlen(route);
	size_t klen = ls + 1 + lm + 1 + lr;
	if (klen > MAX_KEY)
		return NULL;
	char key[MAX_KEY + 1];
	memcpy(key, service, ls + 1);
	memcpy(key + ls + 1, method, lm + 1);
	memcpy(key + ls + 1 + lm + 1, route, lr + 1);
	struct ep_entry *e = col_hmap_get(s->map, key, klen);
	if (e != NULL || !create)
		return e ? &e->ep : NULL;
	e = calloc(1, sizeof *e + klen + 1);
	if (e == NULL)
		return NULL;
	memcpy(e->key, key, klen + 1);
	e->klen = klen;
	e->ep.service = e->key;
	e->ep.method = e->key + ls + 1;
	e->ep.route = e->key + ls + 1 + lm + 1;
	e->ep.dirty = 1;
	if (col_hmap_put(s->map, e->key, klen, e) < 0) {
		free(e);
		return NULL;
	}
	return &e->ep;
}

int col_epset_merge(struct col_epset *dst, const struct col_epset *src,
                    const char *service)
{
	size_t it = 0;
	struct col_ep *e;
	while ((e = col_epset_next(src, &it)) != NULL) {
		if (service && strcmp(e->service, service) != 0)
			continue;
		struct col_ep *d = col_epset_get(dst, e->service, e->method, e->route, 1);
		if (d == NULL || col_stats_merge(&d->st, &e->st) < 0)
			return -ENOMEM;
		d->dirty = 1;
	}
	return 0;
}

static int row_cmp(const void *a, const void *b)
{
	const struct col_ep_row *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	int c = strcmp(x->service, y->service);
	if (c == 0)
		c = strcmp(x->method, y->method);
	if (c == 0)
		c = strcmp(x->route, y->route);
	return c;
}

int col_epset_rows(struct col_epset *s, const char *service, struct col_ep_rows *out)
{
	static const double qs[3] = { 0.50, 0.95, 0.99 };
	size_t n = col_hmap_count(s->map), k = 0, it = 0;
	out->v = NULL;
	out->n = 0;
	if (n == 0)
		return 0;
	struct col_ep_row *v = calloc(n, sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	struct ep_entry *e;
	while ((e = col_hmap_next(s->map, &it, NULL, NULL)) != NULL) {
		struct col_ep *ep = &e->ep;
		if (service && strcmp(ep->service, service) != 0)
			continue;
		if (ep->st.count == 0)
			continue;
		if (ep->dirty) {
			col_sketch_quantiles(&ep->st.sketch, qs, ep->q, 3);
			ep->dirty = 0;
		}
		struct col_ep_row *r = &v[k];
		r->service = malloc(e->klen + 1);
		if (r->service == NULL) {
			out->v = v;
			out->n = k;
			col_ep_rows_free(out);
			return -ENOMEM;
		}
		memcpy(r->service, e->key, e->klen + 1);
		r->method = r->service + (ep->method - e->key);
		r->route = r->service + (ep->route - e->key);
		r->count = ep->st.count;
		r->error_count = ep->st.error_count;
		r->slow_count = ep->st.slow_count;
		r->sql_count = ep->st.sql_count;
		r->n_plus_one_count = ep->st.n_plus_one_count;
		r->sum_ms = ep->st.sum_ms;
		r->min_ms = ep->st.min_ms;
		r->max_ms = ep->st.max_ms;
		r->sql_time_ms = ep->st.sql_time_ms;
		r->p50_ms = ep->q[0];
		r->p95_ms = ep->q[1];
		r->p99_ms = ep->q[2];
		k++;
	}
	qsort(v, k, sizeof *v, row_cmp);
	out->v = v;
	out->n = k;
	return 0;
}

void col_ep_rows_free(struct col_ep_rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].service);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

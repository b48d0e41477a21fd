/*
 * shapeset.c - statement shape statistics and sets (shapeset.h).
 */
#include "config.h"
#include "shapeset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

#define MAX_SERVICE 4096

void col_shape_stats_release(struct col_shape_stats *s)
{
	col_sketch_release(&s->sketch);
	memset(s, 0, sizeof *s);
}

int col_shape_stats_add(struct col_shape_stats *s, const struct col_shape_obs *o)
{
	double d = o->duration_ms > 0 ? o->duration_ms : 0;
	if (s->calls == 0 || d > s->max_ms)
		s->max_ms = d;
	s->calls++;
	s->errors += o->error != 0;
	s->slow_count += o->slow != 0;
	if (o->rows_known)
		s->rows += o->rows;
	s->total_ms += d;
	return col_sketch_add(&s->sketch, d);
}

int col_shape_stats_merge(struct col_shape_stats *dst, const struct col_shape_stats *src)
{
	if (src->calls == 0)
		return 0;
	if (dst->calls == 0 || src->max_ms > dst->max_ms)
		dst->max_ms = src->max_ms;
	dst->calls += src->calls;
	dst->errors += src->errors;
	dst->slow_count += src->slow_count;
	dst->rows += src->rows;
	dst->total_ms += src->total_ms;
	return col_sketch_merge(&dst->sketch, &src->sketch);
}

/* An entry, its key ("service\0" db fp) and its text in one allocation. */
struct shape_entry {
	struct col_shape sh;
	size_t klen;
	char *sql;
	char key[];
};

struct col_shapeset {
	struct col_hmap *map;
};

struct col_shapeset *col_shapeset_new(void)
{
	struct col_shapeset *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->map = col_hmap_new();
	if (s->map == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void col_shapeset_free(struct col_shapeset *s)
{
	if (s == NULL)
		return;
	size_t it = 0;
	struct shape_entry *e;
	while ((e = col_hmap_next(s->map, &it, NULL, NULL)) != NULL) {
		col_shape_stats_release(&e->sh.st);
		free(e);
	}
	col_hmap_free(s->map);
	free(s);
}

size_t col_shapeset_count(const struct col_shapeset *s)
{
	return col_hmap_count(s->map);
}

struct col_shape *col_shapeset_next(const struct col_shapeset *s, size_t *it)
{
	struct shape_entry *e = col_hmap_next(s->map, it, NULL, NULL);
	return e ? &e->sh : NULL;
}

struct col_shape *col_shapeset_get(struct col_shapeset *s, const char *service, uint8_t db,
                                   uint64_t fp, const char *sql, int create)
{
	size_t ls = strlen(service);
	if (ls > MAX_SERVICE)
		return NULL;
	size_t klen = ls + 1 + 1 + 8;
	char key[MAX_SERVICE + 10];
	memcpy(key, service, ls + 1);
	key[ls + 1] = (char)db;
	memcpy(key + ls + 2, &fp, 8);
	struct shape_entry *e = col_hmap_get(s->map, key, klen);
	if (e != NULL || !create)
		return e ? &e->sh : NULL;
	if (sql == NULL)
		sql = "";
	size_t lq = strlen(sql);
	e = calloc(1, sizeof *e + klen + lq + 1);
	if (e == NULL)
		return NULL;
	memcpy(e->key, key, klen);
	e->klen = klen;
	e->sql = e->key + klen;
	memcpy(e->sql, sql, lq + 1);
	e->sh.service = e->key;
	e->sh.sql = e->sql;
	e->sh.fp = fp;
	e->sh.db = db;
	e->sh.dirty = 1;
	if (col_hmap_put(s->map, e->key, klen, e) < 0) {
		free(e);
		return NULL;
	}
	return &e->sh;
}

int col_shapeset_merge(struct col_shapeset *dst, const struct col_shapeset *src,
                       const char *service)
{
	size_t it = 0;
	struct col_shape *e;
	while ((e = col_shapeset_next(src, &it)) != NULL) {
		if (service && strcmp(e->service, service) != 0)
			continue;
		struct col_shape *d = col_shapeset_get(dst, e->service, e->db, e->fp, e->sql, 1);
		if (d == NULL || col_shape_stats_merge(&d->st, &e->st) < 0)
			return -ENOMEM;
		d->dirty = 1;
	}
	return 0;
}

static int row_cmp(const void *a, const void *b)
{
	const struct col_shape_row *x = a, *y = b;
	if (x->total_ms != y->total_ms)
		return x->total_ms > y->total_ms ? -1 : 1;
	if (x->calls != y->calls)
		return x->calls > y->calls ? -1 : 1;
	int c = strcmp(x->service, y->service);
	if (c != 0)
		return c;
	if (x->db != y->db)
		return x->db < y->db ? -1 : 1;
	return x->fp < y->fp ? -1 : x->fp > y->fp;
}

int col_shapeset_rows(struct col_shapeset *s, const char *service, struct col_shape_rows *out)
{
	size_t n = col_hmap_count(s->map), k = 0, it = 0;
	out->v = NULL;
	out->n = 0;
	if (n == 0)
		return 0;
	struct col_shape_row *v = calloc(n, sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	struct shape_entry *e;
	while ((e = col_hmap_next(s->map, &it, NULL, NULL)) != NULL) {
		struct col_shape *sh = &e->sh;
		if (sh->st.calls == 0 || (service && strcmp(sh->service, service) != 0))
			continue;
		if (sh->dirty) {
			sh->p95 = col_sketch_quantile(&sh->st.sketch, 0.95);
			sh->dirty = 0;
		}
		size_t ls = strlen(sh->service) + 1, lq = strlen(sh->sql) + 1;
		struct col_shape_row *r = &v[k];
		r->service = malloc(ls + lq);
		if (r->service == NULL) {
			out->v = v;
			out->n = k;
			col_shape_rows_free(out);
			return -ENOMEM;
		}
		memcpy(r->service, sh->service, ls);
		memcpy(r->service + ls, sh->sql, lq);
		r->sql = r->service + ls;
		r->fp = sh->fp;
		r->db = sh->db;
		r->calls = sh->st.calls;
		r->errors = sh->st.errors;
		r->slow_count = sh->st.slow_count;
		r->rows = sh->st.rows;
		r->total_ms = sh->st.total_ms;
		r->max_ms = sh->st.max_ms;
		r->p95_ms = sh->p95;
		k++;
	}
	qsort(v, k, sizeof *v, row_cmp);
	out->v = v;
	out->n = k;
	return 0;
}

void col_shape_rows_free(struct col_shape_rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].service);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

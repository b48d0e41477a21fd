/*
 * profile.c - CPU profiles per endpoint (profile.h).
 */
#include "config.h"
#include "profile.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "jw.h"

struct stk {
	uint64_t count;
	size_t len;
	char text[];          /* the key, NUL-terminated */
};

struct ep {
	struct col_hmap *stacks;  /* text -> struct stk */
	uint64_t samples, requests, last_req;
	size_t klen;
	char key[];           /* "service\0method\0route", the key */
};

struct col_prof {
	pthread_mutex_t mu;
	struct col_hmap *eps;  /* key -> struct ep */
	uint64_t dropped;
	size_t bytes;          /* stacks' memory, for COL_PROF_MAX_BYTES */
};

/* What one stack of len bytes costs, roughly: its entry and its map slot. */
#define STK_COST(len) (sizeof(struct stk) + (len) + 1 + 32)

struct col_prof *col_prof_new(void)
{
	struct col_prof *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->eps = col_hmap_new();
	if (p->eps == NULL) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	return p;
}

static void ep_free(struct ep *e)
{
	size_t it = 0;
	struct stk *s;
	while ((s = col_hmap_next(e->stacks, &it, NULL, NULL)) != NULL)
		free(s);
	col_hmap_free(e->stacks);
	free(e);
}

void col_prof_free(struct col_prof *p)
{
	if (p == NULL)
		return;
	size_t it = 0;
	struct ep *e;
	while ((e = col_hmap_next(p->eps, &it, NULL, NULL)) != NULL)
		ep_free(e);
	col_hmap_free(p->eps);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Finds or creates an endpoint (lock held); NULL at the cap or OOM. */
static struct ep *ep_get(struct col_prof *p, const char *service, const char *method,
                         const char *route)
{
	size_t ls = strlen(service), lm = strlen(method), lr = strlen(route);
	size_t klen = ls + 1 + lm + 1 + lr;
	char stackkey[512];
	char *key = klen <= sizeof stackkey ? stackkey : malloc(klen);
	if (key == NULL)
		return NULL;
	memcpy(key, service, ls + 1);
	memcpy(key + ls + 1, method, lm + 1);
	memcpy(key + ls + 1 + lm + 1, route, lr);
	struct ep *e = col_hmap_get(p->eps, key, klen);
	if (e == NULL && col_hmap_count(p->eps) < COL_PROF_MAX_ENDPOINTS) {
		e = calloc(1, sizeof *e + klen);
		if (e != NULL) {
			memcpy(e->key, key, klen);
			e->klen = klen;
			e->stacks = col_hmap_new();
			if (e->stacks == NULL || col_hmap_put(p->eps, e->key, klen, e) < 0) {
				col_hmap_free(e->stacks);
				free(e);
				e = NULL;
			}
		}
	}
	if (key != stackkey)
		free(key);
	return e;
}

/* The endpoint's entry for text, made when new: past the endpoint's
 * COL_PROF_MAX_STACKS, or when the new stack would take all endpoints'
 * stacks past COL_PROF_MAX_BYTES, the endpoint's "[other]" instead. */
static struct stk *stk_get(struct col_prof *p, struct ep *e, const char *text, size_t len)
{
	struct stk *s = col_hmap_get(e->stacks, text, len);
	if (s != NULL)
		return s;
	int other = len == strlen(COL_PROF_OTHER) && memcmp(text, COL_PROF_OTHER, len) == 0;
	if (!other && (col_hmap_count(e->stacks) >= COL_PROF_MAX_STACKS ||
	               p->bytes + STK_COST(len) > COL_PROF_MAX_BYTES))
		return stk_get(p, e, COL_PROF_OTHER, strlen(COL_PROF_OTHER));
	s = calloc(1, sizeof *s + len + 1);
	if (s == NULL)
		return NULL;
	memcpy(s->text, text, len);
	s->len = len;
	if (col_hmap_put(e->stacks, s->text, len, s) < 0) {
		free(s);
		return NULL;
	}
	p->bytes += STK_COST(len);
	return s;
}

int col_prof_add(struct col_prof *p, const char *service, const char *method,
                 const char *route, uint64_t req_key, const char *stack, size_t len,
                 uint64_t count)
{
	if (len == 0) {
		stack = "[unknown]";
		len = strlen(stack);
	}
	int rc = 0;
	pthread_mutex_lock(&p->mu);
	struct ep *e = ep_get(p, service, method, route);
	/* Cut at a frame boundary: the outermost frames come first. */
	if (len > COL_PROF_STACK_MAX) {
		len = COL_PROF_STACK_MAX;
		while (len > 0 && stack[len] != ';')
			len--;
		if (len == 0)
			len = COL_PROF_STACK_MAX;
	}
	struct stk *s = e ? stk_get(p, e, stack, len) : NULL;
	if (s == NULL) {
		p->dropped += count;
		rc = -ENOMEM;
	} else {
		s->count += count;
		e->samples += count;
		if (e->last_req != req_key || e->requests == 0)
			e->requests++;
		e->last_req = req_key;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

uint64_t col_prof_dropped(struct col_prof *p)
{
	pthread_mutex_lock(&p->mu);
	uint64_t d = p->dropped;
	pthread_mutex_unlock(&p->mu);
	return d;
}

void col_prof_rows_free(struct col_prof_rows *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++) {
		struct col_prof_ep *e = &r->v[i];
		for (size_t k = 0; k < e->n; k++)
			free(e->v[k].stack);
		free(e->v);
		free(e->service);
	}
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

static int cmp_stack(const void *a, const void *b)
{
	return strcmp(((const struct col_prof_stack *)a)->stack,
	              ((const struct col_prof_stack *)b)->stack);
}

static int cmp_ep(const void *a, const void *b)
{
	const struct col_prof_ep *x = a, *y = b;
	if (x->samples != y->samples)
		return x->samples > y->samples ? -1 : 1;
	int c = strcmp(x->service, y->service);
	if (c == 0)
		c = strcmp(x->route, y->route);
	return c ? c : strcmp(x->method, y->method);
}

/* Copies one endpoint (lock held). */
static int ep_copy(const struct ep *e, struct col_prof_ep *o)
{
	memset(o, 0, sizeof *o);
	o->service = malloc(e->klen + 1);
	if (o->service == NULL)
		return -ENOMEM;
	memcpy(o->service, e->key, e->klen);
	o->service[e->klen] = '\0';
	o->method = o->service + strlen(o->service) + 1;
	o->route = o->method + strlen(o->method) + 1;
	o->samples = e->samples;
	o->requests = e->requests;
	size_t n = col_hmap_count(e->stacks);
	o->v = calloc(n ? n : 1, sizeof *o->v);
	if (o->v == NULL)
		return -ENOMEM;
	size_t it = 0;
	struct stk *s;
	while ((s = col_hmap_next(e->stacks, &it, NULL, NULL)) != NULL) {
		o->v[o->n].stack = strdup(s->text);
		if (o->v[o->n].stack == NULL)
			return -ENOMEM;
		o->v[o->n++].count = s->count;
	}
	qsort(o->v, o->n, sizeof *o->v, cmp_stack);
	return 0;
}

int col_prof_select(struct col_prof *p, const char *service, const char *method,
                    const char *route, struct col_prof_rows *out)
{
	out->v = NULL;
	out->n = 0;
	int rc = 0;
	pthread_mutex_lock(&p->mu);
	size_t cap = col_hmap_count(p->eps);
	out->v = calloc(cap ? cap : 1, sizeof *out->v);
	if (out->v == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	size_t it = 0;
	struct ep *e;
	while ((e = col_hmap_next(p->eps, &it, NULL, NULL)) != NULL) {
		const char *s = e->key, *m = s + strlen(s) + 1, *r = m + strlen(m) + 1;
		size_t rlen = e->klen - (size_t)(r - e->key);
		if ((service && strcmp(service, s) != 0) || (method && strcmp(method, m) != 0) ||
		    (route && (strlen(route) != rlen || memcmp(route, r, rlen) != 0)))
			continue;
		rc = ep_copy(e, &out->v[out->n]);
		out->n++;
		if (rc < 0)
			break;
	}
out:
	pthread_mutex_unlock(&p->mu);
	if (rc < 0)
		col_prof_rows_free(out);
	else
		col_prof_rows_sort(out);
	return rc;
}

void col_prof_rows_sort(struct col_prof_rows *r)
{
	qsort(r->v, r->n, sizeof *r->v, cmp_ep);
}

/* ---- formats ---- */

/* A growable text buffer; `bad` latches on OOM. */
struct tb {
	char *p;
	size_t len, cap;
	int bad;
};

static void tb_put(struct tb *b, const char *s, size_t n)
{
	if (b->bad)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (np == NULL) {
			b->bad = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Every endpoint's stacks merged by text, sorted; counts summed. */
static int merged(const struct col_prof_rows *r, struct col_prof_stack **out, size_t *n)
{
	size_t total = 0;
	for (size_t i = 0; i < r->n; i++)
		total += r->v[i].n;
	struct col_prof_stack *v = calloc(total ? total : 1, sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < r->n; i++)
		for (size_t j = 0; j < r->v[i].n; j++)
			v[k++] = r->v[i].v[j]; /* borrowed texts */
	qsort(v, k, sizeof *v, cmp_stack);
	size_t m = 0;
	for (size_t i = 0; i < k; i++) {
		if (m && strcmp(v[m - 1].stack, v[i].stack) == 0)
			v[m - 1].count += v[i].count;
		else
			v[m++] = v[i];
	}
	*out = v;
	*n = m;
	return 0;
}

char *col_prof_collapsed(const struct col_prof_rows *r, size_t *len)
{
	struct col_prof_stack *v;
	size_t n;
	if (merged(r, &v, &n) < 0)
		return NULL;
	struct tb b = { 0 };
	tb_put(&b, "", 0);
	for (size_t i = 0; i < n; i++) {
		char num[32];
		int nl = snprintf(num, sizeof num, " %llu\n", (unsigned long long)v[i].count);
		tb_put(&b, v[i].stack, strlen(v[i].stack));
		tb_put(&b, num, (size_t)nl);
	}
	free(v);
	if (b.bad) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

/* Frame names -> indices for speedscope's shared frame table. */
struct frames {
	struct col_hmap *idx;  /* name -> (index + 1) cast to a pointer */
	char **names;          /* owned copies, the keys */
	size_t n, cap;
};

static long frame_index(struct frames *f, const char *name, size_t len)
{
	void *v = col_hmap_get(f->idx, name, len);
	if (v != NULL)
		return (long)(uintptr_t)v - 1;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		char **nn = realloc(f->names, cap * sizeof *nn);
		if (nn == NULL)
			return -1;
		f->names = nn;
		f->cap = cap;
	}
	char *copy = malloc(len + 1);
	if (copy == NULL)
		return -1;
	memcpy(copy, name, len);
	copy[len] = '\0';
	if (col_hmap_put(f->idx, copy, len, (void *)(uintptr_t)(f->n + 1)) < 0) {
		free(copy);
		return -1;
	}
	f->names[f->n] = copy;
	return (long)f->n++;
}

char *col_prof_speedscope(const struct col_prof_rows *r, size_t *len)
{
	struct frames f = { .idx = col_hmap_new() };
	if (f.idx == NULL)
		return NULL;
	/* JSON objects are unordered: the profiles come first, collecting the
	 * frame table written after them. */
	struct jw w;
	jw_init(&w);
	int bad = 0;
	jw_obj(&w);
	jw_key(&w, "$schema");
	jw_str(&w, "https://www.speedscope.app/file-format-schema.json");
	jw_key(&w, "exporter");
	jw_str(&w, "apiprof " PACKAGE_VERSION);
	jw_key(&w, "name");
	jw_str(&w, r->n == 1 ? r->v[0].route : "apiprof");
	jw_key(&w, "activeProfileIndex");
	jw_int(&w, 0);
	jw_key(&w, "profiles");
	jw_arr(&w);
	for (size_t i = 0; i < r->n && !bad; i++) {
		const struct col_prof_ep *e = &r->v[i];
		char name[1024];
		snprintf(name, sizeof name, "%s %s (%s)", e->method, e->route, e->service);
		jw_obj(&w);
		jw_key(&w, "type");
		jw_str(&w, "sampled");
		jw_key(&w, "name");
		jw_str(&w, name);
		jw_key(&w, "unit");
		jw_str(&w, "none");
		jw_key(&w, "startValue");
		jw_int(&w, 0);
		jw_key(&w, "endValue");
		jw_uint(&w, e->samples);
		jw_key(&w, "samples");
		jw_arr(&w);
		for (size_t k = 0; k < e->n && !bad; k++) {
			jw_arr(&w);
			const char *s = e->v[k].stack;
			while (*s) {
				const char *end = strchr(s, ';');
				size_t fl = end ? (size_t)(end - s) : strlen(s);
				long ix = frame_index(&f, s, fl);
				if (ix < 0) {
					bad = 1;
					break;
				}
				jw_int(&w, ix);
				s += fl;
				if (*s == ';')
					s++;
			}
			jw_arr_end(&w);
		}
		jw_arr_end(&w);
		jw_key(&w, "weights");
		jw_arr(&w);
		for (size_t k = 0; k < e->n; k++)
			jw_uint(&w, e->v[k].count);
		jw_arr_end(&w);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "shared");
	jw_obj(&w);
	jw_key(&w, "frames");
	jw_arr(&w);
	for (size_t i = 0; i < f.n; i++) {
		jw_obj(&w);
		jw_key(&w, "name");
		jw_str(&w, f.names[i]);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	jw_obj_end(&w);
	char *out = NULL;
	if (bad)
		jw_release(&w);
	else
		out = jw_finish(&w, len);
	for (size_t i = 0; i < f.n; i++)
		free(f.names[i]);
	free(f.names);
	col_hmap_free(f.idx);
	return out;
}

void col_prof_fns_free(struct col_prof_fn *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

static int by_self(const void *a, const void *b)
{
	const struct col_prof_fn *x = a, *y = b;
	if (x->self != y->self)
		return x->self > y->self ? -1 : 1;
	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int by_total(const void *a, const void *b)
{
	const struct col_prof_fn *x = a, *y = b;
	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	if (x->self != y->self)
		return x->self > y->self ? -1 : 1;
	return strcmp(x->name, y->name);
}

int col_prof_top(const struct col_prof_rows *r, int total_first,
                 struct col_prof_fn **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	struct frames f = { .idx = col_hmap_new() };
	if (f.idx == NULL)
		return -ENOMEM;
	struct col_prof_fn *v = NULL;
	size_t cap = 0;
	/* Per stack, which functions were already counted in its total. */
	uint32_t *seen = NULL;
	size_t seen_cap = 0;
	uint32_t stamp = 0;
	int rc = 0;
	for (size_t i = 0; i < r->n && rc == 0; i++)
		for (size_t k = 0; k < r->v[i].n && rc == 0; k++) {
			const char *s = r->v[i].v[k].stack;
			uint64_t c = r->v[i].v[k].count;
			stamp++;
			long last = -1;
			while (*s) {
				const char *end = strchr(s, ';');
				size_t fl = end ? (size_t)(end - s) : strlen(s);
				long ix = frame_index(&f, s, fl);
				if (ix < 0) {
					rc = -ENOMEM;
					break;
				}
				if ((size_t)ix >= cap) {
					size_t nc = cap ? cap * 2 : 64;
					while (nc <= (size_t)ix)
						nc *= 2;
					struct col_prof_fn *nv = realloc(v, nc * sizeof *nv);
					uint32_t *ns = realloc(seen, nc * sizeof *ns);
					if (nv)
						v = nv;
					if (ns)
						seen = ns;
					if (!nv || !ns) {
						rc = -ENOMEM;
						break;
					}
					memset(v + cap, 0, (nc - cap) * sizeof *v);
					memset(seen + cap, 0, (nc - cap) * sizeof *seen);
					cap = nc;
					seen_cap = nc;
				}
				if (seen[ix] != stamp) {
					seen[ix] = stamp;
					v[ix].total += c;
				}
				last = ix;
				s += fl;
				if (*s == ';')
					s++;
			}
			if (last >= 0)
				v[last].self += c;
		}
	(void)seen_cap;
	free(seen);
	if (rc == 0) {
		for (size_t i = 0; i < f.n; i++) {
			v[i].name = f.names[i]; /* ownership moves to v */
			f.names[i] = NULL;
		}
		if (f.n) /* v is NULL when there were no frames */
			qsort(v, f.n, sizeof *v, total_first ? by_total : by_self);
		*out = v;
		*n = f.n;
	} else {
		free(v);
	}
	for (size_t i = 0; i < f.n; i++)
		free(f.names[i]);
	free(f.names);
	col_hmap_free(f.idx);
	return rc;
}

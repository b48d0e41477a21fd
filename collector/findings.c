/*
 * findings.c - error groups and N+1 patterns (findings.h).
 */
#include "config.h"
#include "findings.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "col.h"
#include "hmap.h"

#define KEY_MAX 8192

/* Keys: a kind byte ('R' for a request's group, 'S' for service-level),
 * then "service\0method\0route\0" and the type (errors) or the 8 bytes of
 * the fingerprint (patterns). Names point into the key. */
struct err_entry {
	size_t klen;
	uint64_t count;
	int64_t first_ns, last_ns, example_id;
	int dirty;
	char *message;           /* malloc'ed, never NULL once created */
	int provisional;         /* message from col_findings_error_keep(): a
	                          * better one is wanted (col_findings_error_known) */
	const char *service, *method, *route, *type; /* method/route NULL: service-level */
	char key[];
};

struct n1_entry {
	size_t klen;
	uint64_t fp, occurrences;
	uint32_t max_repeats;
	int64_t first_ns, last_ns, example_id;
	int dirty;
	char *sql;               /* malloc'ed, never NULL once created */
	const char *service, *method, *route;
	char key[];
};

struct col_findings {
	pthread_mutex_t mu;
	size_t max_errors, max_patterns;
	struct col_hmap *errors;   /* key -> struct err_entry */
	struct col_hmap *patterns; /* key -> struct n1_entry */
	uint64_t errors_dropped, patterns_dropped;
};

struct col_findings *col_findings_new(size_t max_errors, size_t max_patterns)
{
	struct col_findings *f = calloc(1, sizeof *f);
	if (f == NULL)
		return NULL;
	pthread_mutex_init(&f->mu, NULL);
	f->max_errors = max_errors ? max_errors : COL_FINDINGS_MAX_ERRORS;
	f->max_patterns = max_patterns ? max_patterns : COL_FINDINGS_MAX_PATTERNS;
	f->errors = col_hmap_new();
	f->patterns = col_hmap_new();
	if (f->errors == NULL || f->patterns == NULL) {
		col_findings_free(f);
		return NULL;
	}
	return f;
}

static void err_free(struct err_entry *e)
{
	if (e) {
		free(e->message);
		free(e);
	}
}

static void n1_free(struct n1_entry *e)
{
	if (e) {
		free(e->sql);
		free(e);
	}
}

void col_findings_free(struct col_findings *f)
{
	if (f == NULL)
		return;
	size_t it = 0;
	void *e;
	if (f->errors) {
		while ((e = col_hmap_next(f->errors, &it, NULL, NULL)) != NULL)
			err_free(e);
		col_hmap_free(f->errors);
	}
	it = 0;
	if (f->patterns) {
		while ((e = col_hmap_next(f->patterns, &it, NULL, NULL)) != NULL)
			n1_free(e);
		col_hmap_free(f->patterns);
	}
	pthread_mutex_destroy(&f->mu);
	free(f);
}

/* Appends the name parts of a key; returns its length or 0 when too long. */
static size_t key_names(char *key, const char *service, const char *method, const char *route)
{
	size_t ls = strlen(service), lm = method ? strlen(method) : 0,
	       lr = route ? strlen(route) : 0;
	if (1 + ls + 1 + lm + 1 + lr + 1 + 64 > KEY_MAX)
		return 0;
	size_t k = 0;
	key[k++] = method ? 'R' : 'S';
	memcpy(key + k, service, ls + 1);
	k += ls + 1;
	if (lm)
		memcpy(key + k, method, lm);
	key[k + lm] = '\0';
	k += lm + 1;
	if (lr)
		memcpy(key + k, route, lr);
	key[k + lr] = '\0';
	k += lr + 1;
	return k;
}

/* Points service/method/route into a copied key. */
static void key_split(const char *key, const char **service, const char **method,
                      const char **route, const char **rest)
{
	const char *p = key + 1;
	*service = p;
	p += strlen(p) + 1;
	*method = key[0] == 'R' ? p : NULL;
	p += strlen(p) + 1;
	*route = key[0] == 'R' ? p : NULL;
	p += strlen(p) + 1;
	*rest = p;
}

/* A cleaned, bounded copy of msg; NULL when out of memory. */
static char *copy_message(const char *msg)
{
	char buf[COL_FINDINGS_MESSAGE_MAX];
	if (msg == NULL)
		msg = "";
	col_clean_text(msg, strlen(msg), buf, sizeof buf);
	return strdup(buf);
}

/* An error group's key into key[KEY_MAX]: its length, 0 when too long. */
static size_t err_key(char *key, const char *service, const char *method, const char *route,
                      const char *type)
{
	if (route == NULL)
		method = NULL;
	if (method == NULL)
		route = NULL;
	size_t k = key_names(key, service, method, route), lt = strlen(type);
	if (k == 0 || k + lt > KEY_MAX)
		return 0;
	memcpy(key + k, type, lt);
	return k + lt;
}

/* Finds or creates an error group (lock held). */
static struct err_entry *err_get(struct col_findings *f, const char *service,
                                 const char *method, const char *route, const char *type,
                                 int *created)
{
	char key[KEY_MAX];
	size_t k = err_key(key, service, method, route, type);
	*created = 0;
	if (k == 0)
		return NULL;
	struct err_entry *e = col_hmap_get(f->errors, key, k);
	if (e != NULL)
		return e;
	if (col_hmap_count(f->errors) >= f->max_errors) {
		f->errors_dropped++;
		return NULL;
	}
	e = calloc(1, sizeof *e + k + 1);
	if (e == NULL)
		return NULL;
	memcpy(e->key, key, k);
	e->key[k] = '\0';
	e->klen = k;
	key_split(e->key, &e->service, &e->method, &e->route, &e->type);
	e->message = strdup("");
	if (e->message == NULL || col_hmap_put(f->errors, e->key, k, e) < 0) {
		err_free(e);
		return NULL;
	}
	*created = 1;
	return e;
}

/* replace: message becomes the group's latest; 0: it only fills a group
 * that has none. */
static void err_add(struct col_findings *f, const char *service, const char *method,
                    const char *route, const char *type, const char *message, int replace,
                    int64_t ts_ns, int64_t request_id)
{
	char *msg = copy_message(message); /* outside the lock */
	pthread_mutex_lock(&f->mu);
	int created;
	struct err_entry *e = err_get(f, service, method, route, type, &created);
	if (e != NULL) {
		if (created || ts_ns < e->first_ns)
			e->first_ns = ts_ns;
		/* Late events do not replace the latest message and example. */
		if (created || ts_ns >= e->last_ns) {
			e->last_ns = ts_ns;
			if (msg != NULL && (replace || e->message[0] == '\0')) {
				free(e->message);
				e->message = msg;
				msg = NULL;
				e->provisional = !replace;
			}
			if (request_id > 0)
				e->example_id = request_id;
		} else if (e->example_id == 0 && request_id > 0) {
			e->example_id = request_id;
		}
		e->count++;
		e->dirty = 1;
	}
	pthread_mutex_unlock(&f->mu);
	free(msg);
}

void col_findings_error(struct col_findings *f, const char *service, const char *method,
                        const char *route, const char *type, const char *message,
                        int64_t ts_ns, int64_t request_id)
{
	err_add(f, service, method, route, type, message, 1, ts_ns, request_id);
}

void col_findings_error_keep(struct col_findings *f, const char *service, const char *method,
                             const char *route, const char *type, const char *message,
                             int64_t ts_ns, int64_t request_id)
{
	err_add(f, service, method, route, type, message, 0, ts_ns, request_id);
}

int col_findings_error_known(struct col_findings *f, const char *service, const char *method,
                             const char *route, const char *type)
{
	char key[KEY_MAX];
	size_t k = err_key(key, service, method, route, type);
	if (k == 0)
		return 1; /* no such group can be made */
	pthread_mutex_lock(&f->mu);
	struct err_entry *e = col_hmap_get(f->errors, key, k);
	int known = e != NULL ? e->message[0] != '\0' && !e->provisional
	                      : col_hmap_count(f->errors) >= f->max_errors;
	pthread_mutex_unlock(&f->mu);
	return known;
}

static struct n1_entry *n1_get(struct col_findings *f, const char *service, const char *method,
                               const char *route, uint64_t fp, int *created)
{
	char key[KEY_MAX];
	size_t k = key_names(key, service, method ? method : "", route ? route : "");
	*created = 0;
	if (k == 0)
		return NULL;
	memcpy(key + k, &fp, 8);
	k += 8;
	struct n1_entry *e = col_hmap_get(f->patterns, key, k);
	if (e != NULL)
		return e;
	if (col_hmap_count(f->patterns) >= f->max_patterns) {
		f->patterns_dropped++;
		return NULL;
	}
	e = calloc(1, sizeof *e + k);
	if (e == NULL)
		return NULL;
	memcpy(e->key, key, k);
	e->klen = k;
	e->fp = fp;
	const char *rest;
	key_split(e->key, &e->service, &e->method, &e->route, &rest);
	e->sql = strdup("");
	if (e->sql == NULL || col_hmap_put(f->patterns, e->key, k, e) < 0) {
		n1_free(e);
		return NULL;
	}
	*created = 1;
	return e;
}

void col_findings_n1(struct col_findings *f, const char *service, const char *method,
                     const char *route, uint64_t fp, const char *sql, uint32_t repeats,
                     int64_t ts_ns, int64_t request_id)
{
	pthread_mutex_lock(&f->mu);
	int created;
	struct n1_entry *e = n1_get(f, service, method, route, fp, &created);
	if (e != NULL) {
		if (created) {
			char *s = strdup(sql ? sql : "");
			if (s != NULL) {
				free(e->sql);
				e->sql = s;
			}
		}
		if (created || ts_ns < e->first_ns)
			e->first_ns = ts_ns;
		if (created || ts_ns >= e->last_ns) {
			e->last_ns = ts_ns;
			if (request_id > 0)
				e->example_id = request_id;
		} else if (e->example_id == 0 && request_id > 0) {
			e->example_id = request_id;
		}
		e->occurrences++;
		if (repeats > e->max_repeats)
			e->max_repeats = repeats;
		e->dirty = 1;
	}
	pthread_mutex_unlock(&f->mu);
}

/* ---- copies ---- */

static int match(const struct col_find_filter *flt, const char *service, int64_t first,
                 int64_t last)
{
	if (flt == NULL)
		return 1;
	if (flt->service && strcmp(flt->service, service) != 0)
		return 0;
	return last >= flt->since_ns && first < flt->until_ns;
}

/* One allocation holding the strings, in order; pointers set in out[]. */
static char *pack(const char *const *in, const char **out, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += in[i] ? strlen(in[i]) + 1 : 0;
	char *buf = malloc(total ? total : 1), *p = buf;
	if (buf == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == NULL) {
			out[i] = NULL;
			continue;
		}
		size_t l = strlen(in[i]) + 1;
		memcpy(p, in[i], l);
		out[i] = p;
		p += l;
	}
	return buf;
}

static int err_copy(const struct err_entry *e, struct col_error_row *r)
{
	const char *in[5] = { e->service, e->method, e->route, e->type, e->message };
	const char *out[5];
	char *buf = pack(in, out, 5);
	if (buf == NULL)
		return -ENOMEM;
	r->service = buf;
	r->method = out[1];
	r->route = out[2];
	r->type = out[3];
	r->message = out[4];
	r->count = e->count;
	r->first_ns = e->first_ns;
	r->last_ns = e->last_ns;
	r->example_id = e->example_id;
	r->dirty = e->dirty;
	return 0;
}

static int n1_copy(const struct n1_entry *e, struct col_n1_row *r)
{
	const char *in[4] = { e->service, e->method, e->route, e->sql };
	const char *out[4];
	char *buf = pack(in, out, 4);
	if (buf == NULL)
		return -ENOMEM;
	r->service = buf;
	r->method = out[1];
	r->route = out[2];
	r->sql = out[3];
	r->fp = e->fp;
	r->occurrences = e->occurrences;
	r->max_repeats = e->max_repeats;
	r->first_ns = e->first_ns;
	r->last_ns = e->last_ns;
	r->example_id = e->example_id;
	r->dirty = e->dirty;
	return 0;
}

static int strcmp0(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static int err_cmp(const void *a, const void *b)
{
	const struct col_error_row *x = a, *y = b;
	if (x->last_ns != y->last_ns)
		return x->last_ns > y->last_ns ? -1 : 1;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	int c = strcmp(x->service, y->service);
	if (c == 0)
		c = strcmp0(x->method, y->method);
	if (c == 0)
		c = strcmp0(x->route, y->route);
	if (c == 0)
		c = strcmp(x->type, y->type);
	return c;
}

static int n1_cmp(const void *a, const void *b)
{
	const struct col_n1_row *x = a, *y = b;
	if (x->occurrences != y->occurrences)
		return x->occurrences > y->occurrences ? -1 : 1;
	if (x->last_ns != y->last_ns)
		return x->last_ns > y->last_ns ? -1 : 1;
	int c = strcmp(x->service, y->service);
	if (c == 0)
		c = strcmp(x->method, y->method);
	if (c == 0)
		c = strcmp(x->route, y->route);
	if (c == 0)
		c = x->fp < y->fp ? -1 : x->fp > y->fp;
	return c;
}

/* Copies the groups matching flt, or with dirty_only the changed ones,
 * into a new array (lock held). */
static int copy_errors(struct col_findings *f, const struct col_find_filter *flt,
                       int dirty_only, struct col_error_rows *out)
{
	size_t n = col_hmap_count(f->errors), k = 0, it = 0;
	out->v = NULL;
	out->n = 0;
	if (n == 0)
		return 0;
	struct col_error_row *v = calloc(n, sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	struct err_entry *e;
	while ((e = col_hmap_next(f->errors, &it, NULL, NULL)) != NULL) {
		if (dirty_only ? !e->dirty : !match(flt, e->service, e->first_ns, e->last_ns))
			continue;
		if (err_copy(e, &v[k]) < 0) {
			out->v = v;
			out->n = k;
			col_error_rows_free(out);
			return -ENOMEM;
		}
		k++;
	}
	if (k == 0) {
		free(v);
		v = NULL;
	}
	out->v = v;
	out->n = k;
	return 0;
}

static int copy_patterns(struct col_findings *f, const struct col_find_filter *flt,
                         int dirty_only, struct col_n1_rows *out)
{
	size_t n = col_hmap_count(f->patterns), k = 0, it = 0;
	out->v = NULL;
	out->n = 0;
	if (n == 0)
		return 0;
	struct col_n1_row *v = calloc(n, sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	struct n1_entry *e;
	while ((e = col_hmap_next(f->patterns, &it, NULL, NULL)) != NULL) {
		if (dirty_only ? !e->dirty : !match(flt, e->service, e->first_ns, e->last_ns))
			continue;
		if (n1_copy(e, &v[k]) < 0) {
			out->v = v;
			out->n = k;
			col_n1_rows_free(out);
			return -ENOMEM;
		}
		k++;
	}
	if (k == 0) {
		free(v);
		v = NULL;
	}
	out->v = v;
	out->n = k;
	return 0;
}

int col_findings_errors(struct col_findings *f, const struct col_find_filter *flt,
                        struct col_error_rows *out)
{
	pthread_mutex_lock(&f->mu);
	int rc = copy_errors(f, flt, 0, out);
	pthread_mutex_unlock(&f->mu);
	/* An empty result has v NULL, and qsort's pointer must not be NULL. */
	if (rc == 0 && out->n > 1)
		qsort(out->v, out->n, sizeof *out->v, err_cmp);
	return rc;
}

int col_findings_patterns(struct col_findings *f, const struct col_find_filter *flt,
                          struct col_n1_rows *out)
{
	pthread_mutex_lock(&f->mu);
	int rc = copy_patterns(f, flt, 0, out);
	pthread_mutex_unlock(&f->mu);
	if (rc == 0 && out->n > 1)
		qsort(out->v, out->n, sizeof *out->v, n1_cmp);
	return rc;
}

void col_error_rows_free(struct col_error_rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].service);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

void col_n1_rows_free(struct col_n1_rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].service);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

/* ---- persistence ---- */

int col_findings_take_dirty(struct col_findings *f, struct col_error_rows *errors,
                            struct col_n1_rows *patterns)
{
	pthread_mutex_lock(&f->mu);
	/* Both copies first, then mark clean, so a failure loses nothing. */
	int rc = copy_errors(f, NULL, 1, errors);
	if (rc == 0) {
		rc = copy_patterns(f, NULL, 1, patterns);
		if (rc < 0)
			col_error_rows_free(errors);
	}
	if (rc == 0) {
		size_t it = 0;
		struct err_entry *e;
		while ((e = col_hmap_next(f->errors, &it, NULL, NULL)) != NULL)
			e->dirty = 0;
		it = 0;
		struct n1_entry *p;
		while ((p = col_hmap_next(f->patterns, &it, NULL, NULL)) != NULL)
			p->dirty = 0;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int col_findings_load_error(struct col_findings *f, const struct col_error_row *r)
{
	char *msg = copy_message(r->message);
	int rc = 0;
	pthread_mutex_lock(&f->mu);
	int created;
	struct err_entry *e = err_get(f, r->service, r->method, r->route, r->type, &created);
	if (e == NULL) {
		rc = col_hmap_count(f->errors) >= f->max_errors ? -ENOSPC : -ENOMEM;
	} else {
		if (created || r->first_ns < e->first_ns)
			e->first_ns = r->first_ns;
		if (created || r->last_ns >= e->last_ns) {
			e->last_ns = r->last_ns;
			if (msg) {
				free(e->message);
				e->message = msg;
				msg = NULL;
			}
			if (r->example_id > 0)
				e->example_id = r->example_id;
		}
		e->count += r->count;
		if (created)
			e->dirty = 0;
	}
	pthread_mutex_unlock(&f->mu);
	free(msg);
	return rc;
}

int col_findings_load_n1(struct col_findings *f, const struct col_n1_row *r)
{
	int rc = 0;
	pthread_mutex_lock(&f->mu);
	int created;
	struct n1_entry *e = n1_get(f, r->service, r->method, r->route, r->fp, &created);
	if (e == NULL) {
		rc = col_hmap_count(f->patterns) >= f->max_patterns ? -ENOSPC : -ENOMEM;
	} else {
		if (created) {
			char *s = strdup(r->sql ? r->sql : "");
			if (s) {
				free(e->sql);
				e->sql = s;
			}
		}
		if (created || r->first_ns < e->first_ns)
			e->first_ns = r->first_ns;
		if (created || r->last_ns >= e->last_ns) {
			e->last_ns = r->last_ns;
			if (r->example_id > 0)
				e->example_id = r->example_id;
		}
		e->occurrences += r->occurrences;
		if (r->max_repeats > e->max_repeats)
			e->max_repeats = r->max_repeats;
		if (created)
			e->dirty = 0;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

size_t col_findings_expire(struct col_findings *f, int64_t cutoff_ns)
{
	size_t removed = 0;
	pthread_mutex_lock(&f->mu);
	/* Deleting reorders a table: collect, then delete, in rounds. */
	for (int which = 0; which < 2; which++) {
		struct col_hmap *m = which ? f->patterns : f->errors;
		for (;;) {
			void *dead[64];
			size_t nd = 0, it = 0;
			void *v;
			while (nd < 64 && (v = col_hmap_next(m, &it, NULL, NULL)) != NULL) {
				int64_t last = which ? ((struct n1_entry *)v)->last_ns
				                     : ((struct err_entry *)v)->last_ns;
				if (last < cutoff_ns)
					dead[nd++] = v;
			}
			for (size_t i = 0; i < nd; i++) {
				if (which) {
					struct n1_entry *e = dead[i];
					col_hmap_del(m, e->key, e->klen);
					n1_free(e);
				} else {
					struct err_entry *e = dead[i];
					col_hmap_del(m, e->key, e->klen);
					err_free(e);
				}
			}
			removed += nd;
			if (nd < 64)
				break;
		}
	}
	pthread_mutex_unlock(&f->mu);
	return removed;
}

void col_findings_counters(struct col_findings *f, struct col_findings_counters *c)
{
	pthread_mutex_lock(&f->mu);
	c->errors = col_hmap_count(f->errors);
	c->patterns = col_hmap_count(f->patterns);
	c->errors_dropped = f->errors_dropped;
	c->patterns_dropped = f->patterns_dropped;
	pthread_mutex_unlock(&f->mu);
}

/*
 * agg.c - the in-memory aggregate (agg.h).
 *
 * One mutex guards everything. Each call does a bounded amount of work
 * under it: an ingest update is a few hash look-ups and one sketch
 * increment; a reader copies rows (quantiles are cached per endpoint and
 * recomputed only for endpoints that changed since the last read).
 */
#include "config.h"
#include "agg.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ap_route.h"
#include "ap_wire.h"
#include "findings.h"
#include "hmap.h"
#include "profile.h"
#include "stmt.h"

/* A service's known routes, for the max_routes cap. Services are never
 * removed (their number is bounded by what senders name them, and the
 * all-time statistics keep them anyway). */
struct svc {
	struct col_hmap *routes; /* route -> its own malloc'ed copy */
	size_t nroutes;
	size_t nshapes;          /* all-time shapes but {other}, for the shape cap */
	uint64_t dropped_gone;   /* events dropped by its processes no longer in
	                            the table (or whose pid was reused) */
	size_t ix;               /* scratch: its row in col_agg_dropped() (lock held) */
	char name[];
};

struct proc {
	uint32_t pid;            /* the key points here */
	struct col_proc_info info;
	uint64_t start_mono_ns;  /* from HELLO, to tell pid reuse apart */
	int64_t last_seen_mono;
	struct svc *svc;         /* NULL until the first HELLO */
};

struct col_agg {
	pthread_mutex_t mu;
	int max_routes;
	size_t max_routes_all;             /* routes of all services together */
	size_t nroutes_all;
	size_t max_shapes;
	size_t nshapes_all;                /* shapes of all services together */
	size_t shape_text_all;             /* bytes of their texts */
	struct col_epset *all;
	struct col_shapeset *all_shapes;
	struct col_findings *findings;
	struct col_prof *profiles;         /* CPU profiles (profile.h) */
	struct col_minute *pending;        /* newest first */
	struct col_minute_batch *taken;
	struct col_hmap *services;         /* name -> struct svc */
	struct col_hmap *procs;            /* pid -> struct proc */
	struct svc *unknown;               /* the "unknown" service */
	struct col_totals totals;
};

static struct svc *svc_new(const char *name)
{
	size_t n = strlen(name);
	struct svc *s = calloc(1, sizeof *s + n + 1);
	if (s == NULL)
		return NULL;
	s->routes = col_hmap_new();
	if (s->routes == NULL) {
		free(s);
		return NULL;
	}
	memcpy(s->name, name, n + 1);
	return s;
}

static void svc_free(struct svc *s)
{
	size_t it = 0;
	char *r;
	while ((r = col_hmap_next(s->routes, &it, NULL, NULL)) != NULL)
		free(r);
	col_hmap_free(s->routes);
	free(s);
}

/* Finds or creates a service (lock held). */
static struct svc *svc_get(struct col_agg *a, const char *name)
{
	size_t n = strlen(name);
	struct svc *s = col_hmap_get(a->services, name, n);
	if (s != NULL)
		return s;
	s = svc_new(name);
	if (s == NULL)
		return NULL;
	if (col_hmap_put(a->services, s->name, n, s) < 0) {
		svc_free(s);
		return NULL;
	}
	return s;
}

/* Registers route for s without the caps, counting it in the
 * collector-wide total (lock held). */
static int svc_add_route(struct col_agg *a, struct svc *s, const char *route)
{
	size_t n = strlen(route);
	if (col_hmap_get(s->routes, route, n) != NULL)
		return 0;
	char *copy = strdup(route);
	if (copy == NULL)
		return -ENOMEM;
	if (col_hmap_put(s->routes, copy, n, copy) < 0) {
		free(copy);
		return -ENOMEM;
	}
	s->nroutes++;
	a->nroutes_all++;
	return 0;
}

/* 1 when route, not yet known for s, must count as {other}: s holds
 * max_routes, or all services together hold the collector-wide cap
 * (lock held). */
static int route_capped(const struct col_agg *a, const struct svc *s)
{
	return s->nroutes >= (size_t)a->max_routes || a->nroutes_all >= a->max_routes_all;
}

struct col_agg *col_agg_new(int max_routes)
{
	struct col_agg *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	pthread_mutex_init(&a->mu, NULL);
	a->max_routes = max_routes > 0 ? max_routes : 1;
	a->max_routes_all = (size_t)a->max_routes > COL_MAX_ROUTES_ALL ? (size_t)a->max_routes
	                                                               : COL_MAX_ROUTES_ALL;
	a->max_shapes = COL_MAX_SHAPES;
	a->all = col_epset_new();
	a->all_shapes = col_shapeset_new();
	a->findings = col_findings_new(0, 0);
	a->profiles = col_prof_new();
	a->services = col_hmap_new();
	a->procs = col_hmap_new();
	if (a->all && a->all_shapes && a->findings && a->profiles && a->services && a->procs)
		a->unknown = svc_get(a, COL_UNKNOWN_SERVICE);
	if (a->unknown == NULL) {
		col_agg_free(a);
		return NULL;
	}
	return a;
}

static void minutes_free(struct col_minute *m)
{
	while (m != NULL) {
		struct col_minute *next = m->next;
		col_epset_free(m->eps);
		col_shapeset_free(m->shapes);
		free(m);
		m = next;
	}
}

void col_agg_free(struct col_agg *a)
{
	if (a == NULL)
		return;
	col_epset_free(a->all);
	col_shapeset_free(a->all_shapes);
	col_findings_free(a->findings);
	col_prof_free(a->profiles);
	minutes_free(a->pending);
	if (a->taken) {
		minutes_free(a->taken->minutes);
		free(a->taken);
	}
	if (a->services) {
		size_t it = 0;
		struct svc *s;
		while ((s = col_hmap_next(a->services, &it, NULL, NULL)) != NULL)
			svc_free(s);
		col_hmap_free(a->services);
	}
	if (a->procs) {
		size_t it = 0;
		struct proc *p;
		while ((p = col_hmap_next(a->procs, &it, NULL, NULL)) != NULL)
			free(p);
		col_hmap_free(a->procs);
	}
	pthread_mutex_destroy(&a->mu);
	free(a);
}

void col_agg_set_max_shapes(struct col_agg *a, size_t max_shapes)
{
	pthread_mutex_lock(&a->mu);
	a->max_shapes = max_shapes > 0 ? max_shapes : 1;
	pthread_mutex_unlock(&a->mu);
}

struct col_findings *col_agg_findings(struct col_agg *a)
{
	return a->findings;
}

static void copy_str(char *dst, size_t cap, const char *src);

struct col_prof *col_agg_profiles(struct col_agg *a)
{
	return a->profiles;
}

void col_agg_profile_key(struct col_agg *a, uint32_t pid, char *route,
                         char *service, size_t svclen)
{
	pthread_mutex_lock(&a->mu);
	struct proc *p = col_hmap_get(a->procs, &pid, sizeof pid);
	struct svc *s = p && p->svc ? p->svc : a->unknown;
	copy_str(service, svclen, s->name);
	if (col_hmap_get(s->routes, route, strlen(route)) == NULL && route_capped(a, s))
		strcpy(route, AP_ROUTE_OTHER);
	pthread_mutex_unlock(&a->mu);
}

/* ---- ingest side ---- */

int col_agg_datagram(struct col_agg *a, uint32_t pid, uint32_t uid,
                     int64_t now_mono, int64_t now_real)
{
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	struct proc *p = col_hmap_get(a->procs, &pid, sizeof pid);
	if (p == NULL) {
		p = calloc(1, sizeof *p);
		if (p != NULL)
			p->pid = pid; /* the key: set before it is hashed */
		if (p == NULL || col_hmap_put(a->procs, &p->pid, sizeof p->pid, p) < 0) {
			free(p);
			a->totals.oom++;
			rc = -ENOMEM;
			goto out;
		}
		p->info.pid = pid;
		p->info.first_seen_ns = now_real;
		strcpy(p->info.service, COL_UNKNOWN_SERVICE);
	}
	p->info.uid = uid;
	p->info.last_seen_ns = now_real;
	p->info.datagrams++;
	p->last_seen_mono = now_mono;
out:
	pthread_mutex_unlock(&a->mu);
	return rc;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Moves p's dropped count into its service's sum of processes gone (lock
 * held), before p is forgotten or its counters restart. */
static void retire_dropped(struct col_agg *a, struct proc *p)
{
	struct svc *s = p->svc ? p->svc : a->unknown;
	s->dropped_gone += p->info.dropped;
	p->info.dropped = 0;
}

void col_agg_hello(struct col_agg *a, uint32_t pid, uint32_t ppid,
                   uint64_t start_mono_ns, const char *service, const char *exe)
{
	pthread_mutex_lock(&a->mu);
	struct proc *p = col_hmap_get(a->procs, &pid, sizeof pid);
	if (p == NULL)
		goto out;
	if (p->info.has_hello && p->start_mono_ns != start_mono_ns) {
		/* The pid was reused by a new process (or it forked and the
		 * kernel handed the child our pid's number again). */
		retire_dropped(a, p);
		p->info.events = p->info.untracked_conns = 0;
		p->info.requests = 0;
	}
	p->start_mono_ns = start_mono_ns;
	p->info.ppid = ppid;
	p->info.has_hello = 1;
	if (p->svc == NULL || strcmp(p->svc->name, service) != 0) {
		char name[COL_SERVICE_MAX];
		copy_str(name, sizeof name, service[0] ? service : COL_UNKNOWN_SERVICE);
		if (col_hmap_get(a->services, name, strlen(name)) == NULL &&
		    col_hmap_count(a->services) >= COL_MAX_SERVICES) {
			copy_str(name, sizeof name, COL_OTHER_SERVICE);
			a->totals.other_service++;
		}
		struct svc *s = svc_get(a, name);
		if (s == NULL) {
			a->totals.oom++;
		} else {
			p->svc = s;
			copy_str(p->info.service, sizeof p->info.service, s->name);
		}
	}
	copy_str(p->info.exe, sizeof p->info.exe, exe);
out:
	pthread_mutex_unlock(&a->mu);
}

void col_agg_proc_stats(struct col_agg *a, uint32_t pid, uint64_t events,
                        uint64_t dropped, uint64_t untracked_conns)
{
	pthread_mutex_lock(&a->mu);
	struct proc *p = col_hmap_get(a->procs, &pid, sizeof pid);
	if (p != NULL) {
		p->info.events = events;
		p->info.dropped = dropped;
		p->info.untracked_conns = untracked_conns;
	}
	pthread_mutex_unlock(&a->mu);
}

/* The pending minute starting at m, created if needed (lock held). Pending
 * minutes are few (the current one, a previous one until the store takes
 * it, rarely a late one), so a list searched from the newest is enough. */
static struct col_minute *minute_get(struct col_agg *a, int64_t m)
{
	struct col_minute **pp = &a->pending;
	for (; *pp != NULL && (*pp)->minute >= m; pp = &(*pp)->next)
		if ((*pp)->minute == m)
			return *pp;
	struct col_minute *n = calloc(1, sizeof *n);
	if (n == NULL)
		return NULL;
	n->eps = col_epset_new();
	n->shapes = col_shapeset_new();
	if (n->eps == NULL || n->shapes == NULL) {
		col_epset_free(n->eps);
		col_shapeset_free(n->shapes);
		free(n);
		return NULL;
	}
	n->minute = m;
	n->next = *pp;
	*pp = n;
	return n;
}

static int64_t minute_of(int64_t ts_ns)
{
	int64_t s = ts_ns / 1000000000LL;
	if (ts_ns < 0 && s * 1000000000LL != ts_ns)
		s--;
	int64_t m = s / COL_MINUTE_S;
	if (s < 0 && m * COL_MINUTE_S != s)
		m--;
	return m * COL_MINUTE_S;
}

/* Counts o in set under (svc, method, route) (lock held). */
static int count_in(struct col_epset *set, const char *svc, const char *method,
                    const char *route, const struct col_obs *o)
{
	struct col_ep *e = col_epset_get(set, svc, method, route, 1);
	if (e == NULL)
		return -ENOMEM;
	e->dirty = 1;
	return col_stats_add(&e->st, o);
}

int col_agg_request(struct col_agg *a, uint32_t pid, const char *method,
                    char *route, int64_t ts_ns, const struct col_obs *o,
                    char *service, size_t svclen)
{
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	struct proc *p = col_hmap_get(a->procs, &pid, sizeof pid);
	struct svc *s = p && p->svc ? p->svc : a->unknown;
	if (p)
		p->info.requests++;
	copy_str(service, svclen, s->name);

	size_t rlen = strlen(route);
	if (col_hmap_get(s->routes, route, rlen) == NULL) {
		if (route_capped(a, s)) {
			strcpy(route, AP_ROUTE_OTHER);
			a->totals.other_route++;
		} else if (svc_add_route(a, s, route) < 0) {
			rc = -ENOMEM;
		}
	}

	if (count_in(a->all, s->name, method, route, o) < 0)
		rc = -ENOMEM;
	struct col_minute *m = minute_get(a, minute_of(ts_ns));
	if (m == NULL || count_in(m->eps, s->name, method, route, o) < 0)
		rc = -ENOMEM;

	/* Statements are in the totals already (col_agg_sql). */
	a->totals.requests++;
	a->totals.request_ms += o->duration_ms;
	if (rc < 0)
		a->totals.oom++;
	pthread_mutex_unlock(&a->mu);
	return rc;
}

/* Counts o in set under the shape (lock held). */
static int shape_in(struct col_shapeset *set, const char *svc, uint8_t db, uint64_t fp,
                    const char *sql, const struct col_shape_obs *o)
{
	struct col_shape *sh = col_shapeset_get(set, svc, db, fp, sql, 1);
	if (sh == NULL)
		return -ENOMEM;
	sh->dirty = 1;
	return col_shape_stats_add(&sh->st, o);
}

int col_agg_sql(struct col_agg *a, uint32_t pid, const struct col_stmt *s,
                char *service, size_t svclen)
{
	int rc = 0;
	struct col_shape_obs o = {
		.duration_ms = s->duration_ms,
		.rows = s->rows,
		.rows_known = s->rows_known,
		.error = s->failed,
		.slow = s->slow,
	};
	pthread_mutex_lock(&a->mu);
	struct proc *p = col_hmap_get(a->procs, &pid, sizeof pid);
	struct svc *sv = p && p->svc ? p->svc : a->unknown;
	copy_str(service, svclen, sv->name);

	uint64_t fp = s->fingerprint;
	const char *sql = s->sql;
	if (col_shapeset_get(a->all_shapes, sv->name, s->db, fp, NULL, 0) == NULL) {
		if (fp == COL_SHAPE_OTHER_FP || sv->nshapes >= a->max_shapes ||
		    a->nshapes_all >= COL_MAX_SHAPES_ALL ||
		    a->shape_text_all + strlen(sql) > COL_SHAPE_TEXT_ALL) {
			/* A genuine fingerprint 0 would be taken for {other}:
			 * count it there rather than let it hide a real shape. */
			fp = COL_SHAPE_OTHER_FP;
			sql = COL_SHAPE_OTHER_SQL;
			a->totals.other_shape++;
		} else {
			sv->nshapes++;
			a->nshapes_all++;
			a->shape_text_all += strlen(sql);
		}
	} else if (fp == COL_SHAPE_OTHER_FP) {
		sql = COL_SHAPE_OTHER_SQL;
		a->totals.other_shape++;
	}
	if (shape_in(a->all_shapes, sv->name, s->db, fp, sql, &o) < 0)
		rc = -ENOMEM;
	struct col_minute *m = minute_get(a, minute_of(s->ts_ns));
	if (m == NULL || shape_in(m->shapes, sv->name, s->db, fp, sql, &o) < 0)
		rc = -ENOMEM;
	a->totals.sql++;
	a->totals.sql_ms += s->duration_ms > 0 ? s->duration_ms : 0;
	if (rc < 0)
		a->totals.oom++;
	pthread_mutex_unlock(&a->mu);
	return rc;
}

size_t col_agg_prune(struct col_agg *a, int64_t now_mono, int64_t idle_ns, int64_t gone_ns,
                     int (*alive)(uint32_t pid))
{
	/* Candidates under the lock, the liveness checks (syscalls) without
	 * it, then the removals under it, each re-checked: a process heard
	 * from meanwhile stays. */
	pthread_mutex_lock(&a->mu);
	size_t cnt = col_hmap_count(a->procs), nc = 0, it = 0;
	uint32_t *cand = cnt ? malloc(cnt * sizeof *cand) : NULL;
	struct proc *p;
	while (cand != NULL && (p = col_hmap_next(a->procs, &it, NULL, NULL)) != NULL) {
		int64_t silent = now_mono - p->last_seen_mono;
		if (silent > idle_ns || (alive != NULL && silent > gone_ns))
			cand[nc++] = p->pid;
	}
	pthread_mutex_unlock(&a->mu);
	if (cand == NULL)
		return 0;
	size_t keep = 0;
	for (size_t i = 0; i < nc; i++) {
		/* The idle ones go anyway; only the others need asking. */
		int idle = 0;
		pthread_mutex_lock(&a->mu);
		p = col_hmap_get(a->procs, &cand[i], sizeof cand[i]);
		idle = p != NULL && now_mono - p->last_seen_mono > idle_ns;
		pthread_mutex_unlock(&a->mu);
		if (idle || alive == NULL || !alive(cand[i]))
			cand[keep++] = cand[i];
	}
	size_t removed = 0;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < keep; i++) {
		p = col_hmap_get(a->procs, &cand[i], sizeof cand[i]);
		if (p == NULL || now_mono - p->last_seen_mono <= (alive ? gone_ns : idle_ns))
			continue;
		retire_dropped(a, p);
		free(col_hmap_del(a->procs, &cand[i], sizeof cand[i]));
		removed++;
	}
	pthread_mutex_unlock(&a->mu);
	free(cand);
	return removed;
}

int col_agg_dropped(struct col_agg *a, struct col_svc_dropped **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	size_t cnt = col_hmap_count(a->services), k = 0, it = 0;
	struct col_svc_dropped *v = cnt ? calloc(cnt, sizeof *v) : NULL;
	if (cnt && v == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	struct svc *s;
	while ((s = col_hmap_next(a->services, &it, NULL, NULL)) != NULL && k < cnt) {
		copy_str(v[k].service, sizeof v[k].service, s->name);
		v[k].dropped = s->dropped_gone;
		v[k].live = 0;
		s->ix = k++;
	}
	struct proc *p;
	it = 0;
	while ((p = col_hmap_next(a->procs, &it, NULL, NULL)) != NULL) {
		struct svc *ps = p->svc ? p->svc : a->unknown;
		if (ps->ix < k) {
			v[ps->ix].dropped += p->info.dropped;
			v[ps->ix].live = 1;
		}
	}
	/* A service with processes has a series from the start, 0 until
	 * something is dropped (so that increase() sees the first drops);
	 * one whose processes are gone keeps it only if they dropped some. */
	size_t m = 0;
	for (size_t i = 0; i < k; i++)
		if (v[i].dropped > 0 || v[i].live)
			v[m++] = v[i];
	*out = m ? v : NULL;
	*n = m;
	if (m == 0)
		free(v);
	v = NULL;
out:
	pthread_mutex_unlock(&a->mu);
	free(v);
	return rc;
}

/* ---- startup ---- */

int col_agg_load(struct col_agg *a, const char *service, const char *method,
                 const char *route, const struct col_stats *st)
{
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	struct svc *s = svc_get(a, service);
	if (s == NULL || (strcmp(route, AP_ROUTE_OTHER) != 0 && svc_add_route(a, s, route) < 0))
		rc = -ENOMEM;
	struct col_ep *e = col_epset_get(a->all, service, method, route, 1);
	if (e == NULL || col_stats_merge(&e->st, st) < 0)
		rc = -ENOMEM;
	else
		e->dirty = 1;
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int col_agg_load_shape(struct col_agg *a, const char *service, uint8_t db, uint64_t fp,
                       const char *sql, const struct col_shape_stats *st)
{
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	struct svc *s = svc_get(a, service);
	if (s == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	int known = col_shapeset_get(a->all_shapes, service, db, fp, NULL, 0) != NULL;
	struct col_shape *sh = col_shapeset_get(a->all_shapes, service, db, fp,
	                                        fp == COL_SHAPE_OTHER_FP ? COL_SHAPE_OTHER_SQL
	                                                                 : sql, 1);
	if (sh == NULL || col_shape_stats_merge(&sh->st, st) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	sh->dirty = 1;
	if (!known && fp != COL_SHAPE_OTHER_FP) {
		s->nshapes++;
		a->nshapes_all++;
		a->shape_text_all += sql ? strlen(sql) : 0;
	}
out:
	pthread_mutex_unlock(&a->mu);
	return rc;
}

/* ---- store side ---- */

struct col_minute_batch *col_agg_minutes_take(struct col_agg *a, int64_t cutoff_s,
                                              int64_t horizon_s, uint64_t id)
{
	/* Allocated up front so that nothing can fail once minutes move. */
	struct col_minute_batch *b = calloc(1, sizeof *b);
	if (b == NULL)
		return NULL;
	pthread_mutex_lock(&a->mu);
	if (a->taken == NULL) {
		struct col_minute **pp = &a->pending, **tail = &b->minutes;
		while (*pp != NULL) {
			struct col_minute *m = *pp;
			if (m->minute < cutoff_s || m->minute > horizon_s) {
				*pp = m->next;
				m->next = NULL;
				*tail = m;
				tail = &m->next;
			} else {
				pp = &m->next;
			}
		}
	}
	if (b->minutes != NULL) {
		b->id = id;
		a->taken = b;
	}
	pthread_mutex_unlock(&a->mu);
	if (b->minutes == NULL) {
		free(b);
		return NULL;
	}
	return b;
}

void col_agg_minutes_done(struct col_agg *a, struct col_minute_batch *b)
{
	if (b == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	if (a->taken == b)
		a->taken = NULL;
	pthread_mutex_unlock(&a->mu);
	minutes_free(b->minutes);
	free(b);
}

/* ---- readers ---- */

int col_agg_endpoints(struct col_agg *a, const char *service, struct col_ep_rows *out)
{
	pthread_mutex_lock(&a->mu);
	int rc = col_epset_rows(a->all, service, out);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int col_agg_minutes_copy(struct col_agg *a, int64_t from_s, int64_t to_s,
                         const char *service, struct col_epset *pending,
                         struct col_epset *taken, uint64_t *taken_id)
{
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	for (struct col_minute *m = a->pending; m && rc == 0; m = m->next)
		if (m->minute >= from_s && m->minute < to_s)
			rc = col_epset_merge(pending, m->eps, service);
	*taken_id = a->taken ? a->taken->id : 0;
	if (a->taken)
		for (struct col_minute *m = a->taken->minutes; m && rc == 0; m = m->next)
			if (m->minute >= from_s && m->minute < to_s)
				rc = col_epset_merge(taken, m->eps, service);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int col_agg_shapes(struct col_agg *a, const char *service, struct col_shape_rows *out)
{
	pthread_mutex_lock(&a->mu);
	int rc = col_shapeset_rows(a->all_shapes, service, out);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int col_agg_alltime_copy(struct col_agg *a, const char *service, struct col_epset *eps,
                         struct col_shapeset *shapes)
{
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	if (eps != NULL)
		rc = col_epset_merge(eps, a->all, service);
	if (rc == 0 && shapes != NULL)
		rc = col_shapeset_merge(shapes, a->all_shapes, service);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int col_agg_shape_minutes_copy(struct col_agg *a, int64_t from_s, int64_t to_s,
                               const char *service, struct col_shapeset *pending,
                               struct col_shapeset *taken, uint64_t *taken_id)
{
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	for (struct col_minute *m = a->pending; m && rc == 0; m = m->next)
		if (m->minute >= from_s && m->minute < to_s)
			rc = col_shapeset_merge(pending, m->shapes, service);
	*taken_id = a->taken ? a->taken->id : 0;
	if (a->taken)
		for (struct col_minute *m = a->taken->minutes; m && rc == 0; m = m->next)
			if (m->minute >= from_s && m->minute < to_s)
				rc = col_shapeset_merge(taken, m->shapes, service);
	pthread_mutex_unlock(&a->mu);
	return rc;
}

void col_agg_totals(struct col_agg *a, struct col_totals *t)
{
	pthread_mutex_lock(&a->mu);
	*t = a->totals;
	t->endpoints = col_epset_count(a->all);
	t->shapes = col_shapeset_count(a->all_shapes);
	size_t n = 0;
	for (struct col_minute *m = a->pending; m; m = m->next)
		n++;
	if (a->taken)
		for (struct col_minute *m = a->taken->minutes; m; m = m->next)
			n++;
	t->pending_minutes = n;
	pthread_mutex_unlock(&a->mu);
}

static int proc_cmp(const void *x, const void *y)
{
	const struct col_proc_info *a = x, *b = y;
	return a->pid < b->pid ? -1 : a->pid > b->pid;
}

int col_agg_processes(struct col_agg *a, int64_t now_mono,
                      struct col_proc_info **out, size_t *n)
{
	int rc = 0;
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&a->mu);
	size_t cnt = col_hmap_count(a->procs), k = 0, it = 0;
	if (cnt > 0) {
		struct col_proc_info *v = malloc(cnt * sizeof *v);
		if (v == NULL) {
			rc = -ENOMEM;
		} else {
			struct proc *p;
			while ((p = col_hmap_next(a->procs, &it, NULL, NULL)) != NULL) {
				v[k] = p->info;
				v[k].connected = now_mono - p->last_seen_mono <= COL_CONNECTED_NS;
				k++;
			}
			*out = v;
			*n = k;
		}
	}
	pthread_mutex_unlock(&a->mu);
	if (*out)
		qsort(*out, *n, sizeof **out, proc_cmp);
	return rc;
}

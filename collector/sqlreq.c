/*
 * sqlreq.c - pending statements per (pid, req_id) and N+1 detection
 * (sqlreq.h).
 *
 * Groups sit in one hash map keyed by (pid, req_id) and on two
 * doubly-linked lists ordered by last activity: one of every group (for the
 * TTL and the global bound) and one per process (for the per-process
 * bound and pid reuse). Activity moves a group to the tails, so the heads
 * are always the least recently active and expiring is O(1) per group.
 */
#include "config.h"
#include "sqlreq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "hmap.h"

/* A fingerprint's count within one request. */
struct col_rs_shape {
	uint64_t fp;
	uint32_t execs;       /* executions: prepares excluded */
	uint8_t used;
	uint8_t session;
	const char *sql;      /* into a kept statement, or `own` */
	char *own;
};

struct col_pend_proc {
	uint32_t pid;         /* the map's key points here */
	uint64_t start;       /* HELLO start time; 0: unknown */
	size_t kept;
	struct col_reqsql *head, *tail;
	char service[COL_SERVICE_MAX];
};

struct col_pending {
	struct col_pending_opts o;
	struct col_hmap *groups;  /* key[12] -> struct col_reqsql */
	struct col_hmap *procs;   /* pid -> struct col_pend_proc */
	struct col_reqsql *head, *tail;
	size_t kept;
	uint64_t ngroups, expired, lost;
};

/* ---- one request's statements ---- */

static uint64_t mix(uint64_t x)
{
	/* Fingerprints are hashes already, but tests and hostile senders may
	 * send small sequential values: spread them (splitmix64 finaliser). */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The slot of fp (used or the empty one where it goes). */
static struct col_rs_shape *shape_slot(struct col_rs_shape *t, uint32_t cap, uint64_t fp)
{
	uint32_t mask = cap - 1, i = (uint32_t)mix(fp) & mask;
	while (t[i].used && t[i].fp != fp)
		i = (i + 1) & mask;
	return &t[i];
}

static int shapes_grow(struct col_reqsql *r)
{
	uint32_t cap = r->shapes_cap ? r->shapes_cap * 2 : 8;
	struct col_rs_shape *t = calloc(cap, sizeof *t);
	if (t == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < r->shapes_cap; i++)
		if (r->shapes[i].used)
			*shape_slot(t, cap, r->shapes[i].fp) = r->shapes[i];
	free(r->shapes);
	r->shapes = t;
	r->shapes_cap = cap;
	return 0;
}

/* Counts s in its shape. `kept`: s stays alive with the request, so its
 * text can be pointed to; otherwise a new shape copies it. */
static void count_shape(struct col_reqsql *r, const struct col_stmt *s, int kept)
{
	if (r->shapes_cap == 0 || (r->nshapes + 1) * 2 > r->shapes_cap) {
		if (r->nshapes >= COL_REQ_MAX_SHAPES || shapes_grow(r) < 0) {
			/* Full: known shapes still count, new ones are not tracked. */
			if (r->shapes_cap == 0)
				return;
			struct col_rs_shape *e = shape_slot(r->shapes, r->shapes_cap, s->fingerprint);
			if (e->used && !s->prepare)
				e->execs++;
			return;
		}
	}
	struct col_rs_shape *e = shape_slot(r->shapes, r->shapes_cap, s->fingerprint);
	if (!e->used) {
		e->used = 1;
		e->fp = s->fingerprint;
		e->session = s->session;
		if (kept) {
			e->sql = s->sql;
		} else {
			e->own = strdup(s->sql);
			e->sql = e->own ? e->own : "";
		}
		r->nshapes++;
	} else if (e->sql[0] == '\0' && kept) {
		e->sql = s->sql;
	}
	if (!s->prepare)
		e->execs++;
}

static int n1_cmp(const void *a, const void *b)
{
	const struct col_n1 *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return x->fingerprint < y->fingerprint ? -1 : x->fingerprint > y->fingerprint;
}

size_t col_reqsql_n1(const struct col_reqsql *r, int threshold, struct col_n1 *out,
                     size_t max)
{
	struct col_n1 found[COL_REQ_MAX_SHAPES];
	size_t n = 0;
	uint32_t t = threshold > 1 ? (uint32_t)threshold : 1;
	for (uint32_t i = 0; i < r->shapes_cap && n < COL_REQ_MAX_SHAPES; i++) {
		const struct col_rs_shape *e = &r->shapes[i];
		if (!e->used || e->session || e->execs < t)
			continue;
		found[n++] = (struct col_n1){ e->fp, e->execs, e->sql };
	}
	qsort(found, n, sizeof found[0], n1_cmp);
	memcpy(out, found, (n < max ? n : max) * sizeof found[0]);
	return n;
}

struct col_stmt **col_reqsql_steal(struct col_reqsql *r, uint32_t *n)
{
	struct col_stmt **v = r->v;
	*n = r->n;
	r->v = NULL;
	r->n = r->cap = 0;
	return v;
}

void col_reqsql_free(struct col_reqsql *r)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < r->n; i++)
		col_stmt_free(r->v[i]);
	free(r->v);
	for (uint32_t i = 0; i < r->shapes_cap; i++)
		free(r->shapes[i].own);
	free(r->shapes);
	free(r);
}

/* ---- pending ---- */

static void make_key(uint8_t key[12], uint32_t pid, uint64_t req_id)
{
	memcpy(key, &pid, 4);
	memcpy(key + 4, &req_id, 8);
}

struct col_pending *col_pending_new(const struct col_pending_opts *o)
{
	struct col_pending *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	if (o)
		p->o = *o;
	if (p->o.ttl_ns <= 0)
		p->o.ttl_ns = COL_PEND_TTL_NS;
	if (p->o.max_per_req == 0)
		p->o.max_per_req = COL_REQ_MAX_STMTS;
	if (p->o.max_per_proc == 0)
		p->o.max_per_proc = COL_PEND_MAX_PER_PROC;
	if (p->o.max_total == 0)
		p->o.max_total = COL_PEND_MAX_TOTAL;
	/* Evicting other groups must always make room for one more kept
	 * statement of the current one. */
	if (p->o.max_per_proc < p->o.max_per_req + 1)
		p->o.max_per_proc = p->o.max_per_req + 1;
	if (p->o.max_total < p->o.max_per_proc)
		p->o.max_total = p->o.max_per_proc;
	p->groups = col_hmap_new();
	p->procs = col_hmap_new();
	if (p->groups == NULL || p->procs == NULL) {
		col_hmap_free(p->groups);
		col_hmap_free(p->procs);
		free(p);
		return NULL;
	}
	return p;
}

/* Unlinks g from both lists, the map and its process's count; frees the
 * process entry once it has no group left. */
static void detach(struct col_pending *p, struct col_reqsql *g)
{
	struct col_pend_proc *pp = g->proc;
	if (g->prev)
		g->prev->next = g->next;
	else
		p->head = g->next;
	if (g->next)
		g->next->prev = g->prev;
	else
		p->tail = g->prev;
	if (g->pprev)
		g->pprev->pnext = g->pnext;
	else
		pp->head = g->pnext;
	if (g->pnext)
		g->pnext->pprev = g->pprev;
	else
		pp->tail = g->pprev;
	g->prev = g->next = g->pprev = g->pnext = NULL;
	g->proc = NULL;
	col_hmap_del(p->groups, g->key, sizeof g->key);
	p->kept -= g->n;
	pp->kept -= g->n;
	p->ngroups--;
	if (pp->head == NULL) {
		col_hmap_del(p->procs, &pp->pid, sizeof pp->pid);
		free(pp);
	}
}

static void expire_group(struct col_pending *p, struct col_reqsql *g)
{
	char service[COL_SERVICE_MAX];
	memcpy(service, g->proc->service, sizeof service);
	detach(p, g);
	p->expired += g->count;
	if (p->o.expired)
		for (uint32_t i = 0; i < g->n; i++)
			p->o.expired(p->o.arg, service, g->v[i]);
	col_reqsql_free(g);
}

/* Expires every group of pp, which is freed with its last group. */
static void expire_proc(struct col_pending *p, struct col_pend_proc *pp)
{
	struct col_reqsql *g = pp->head;
	while (g != NULL) {
		struct col_reqsql *next = g->pnext;
		expire_group(p, g);
		g = next;
	}
}

void col_pending_free(struct col_pending *p)
{
	if (p == NULL)
		return;
	col_pending_expire_all(p);
	col_hmap_free(p->groups);
	col_hmap_free(p->procs);
	free(p);
}

void col_pending_hello(struct col_pending *p, uint32_t pid, uint64_t start_mono_ns)
{
	struct col_pend_proc *pp = col_hmap_get(p->procs, &pid, sizeof pid);
	if (pp == NULL || start_mono_ns == 0)
		return;
	if (pp->start != 0 && pp->start != start_mono_ns)
		expire_proc(p, pp);
	else
		pp->start = start_mono_ns;
}

static void to_tail(struct col_pending *p, struct col_reqsql *g)
{
	struct col_pend_proc *pp = g->proc;
	if (p->tail != g) {
		if (g->prev)
			g->prev->next = g->next;
		else
			p->head = g->next;
		g->next->prev = g->prev;
		g->prev = p->tail;
		g->next = NULL;
		p->tail->next = g;
		p->tail = g;
	}
	if (pp->tail != g) {
		if (g->pprev)
			g->pprev->pnext = g->pnext;
		else
			pp->head = g->pnext;
		g->pnext->pprev = g->pprev;
		g->pprev = pp->tail;
		g->pnext = NULL;
		pp->tail->pnext = g;
		pp->tail = g;
	}
}

static void copy_service(char *dst, const char *src)
{
	size_t n = strlen(src);
	if (n >= COL_SERVICE_MAX)
		n = COL_SERVICE_MAX - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The group of (pid, req_id), created (at the tails) when new. */
static struct col_reqsql *group_get(struct col_pending *p, uint32_t pid, uint64_t start,
                                    uint64_t req_id)
{
	uint8_t key[12];
	make_key(key, pid, req_id);
	struct col_reqsql *g = col_hmap_get(p->groups, key, sizeof key);
	if (g != NULL) {
		to_tail(p, g);
		return g;
	}
	struct col_pend_proc *pp = col_hmap_get(p->procs, &pid, sizeof pid);
	int new_proc = pp == NULL;
	if (new_proc) {
		pp = calloc(1, sizeof *pp);
		if (pp == NULL)
			return NULL;
		pp->pid = pid;
		pp->start = start;
		if (col_hmap_put(p->procs, &pp->pid, sizeof pp->pid, pp) < 0) {
			free(pp);
			return NULL;
		}
	}
	g = calloc(1, sizeof *g);
	if (g != NULL) {
		memcpy(g->key, key, sizeof key);
		g->req_id = req_id;
		if (col_hmap_put(p->groups, g->key, sizeof g->key, g) < 0) {
			free(g);
			g = NULL;
		}
	}
	if (g == NULL) {
		if (new_proc) {
			col_hmap_del(p->procs, &pp->pid, sizeof pp->pid);
			free(pp);
		}
		return NULL;
	}
	g->proc = pp;
	g->prev = p->tail;
	if (p->tail)
		p->tail->next = g;
	else
		p->head = g;
	p->tail = g;
	g->pprev = pp->tail;
	if (pp->tail)
		pp->tail->pnext = g;
	else
		pp->head = g;
	pp->tail = g;
	p->ngroups++;
	return g;
}

int col_pending_add(struct col_pending *p, uint32_t pid, uint64_t start_mono_ns,
                    uint64_t req_id, const char *service, struct col_stmt *s,
                    int64_t now_mono)
{
	if (req_id == 0) {
		col_stmt_free(s);
		return -EINVAL;
	}
	col_pending_expire(p, now_mono);
	col_pending_hello(p, pid, start_mono_ns);
	struct col_reqsql *g = group_get(p, pid, start_mono_ns, req_id);
	if (g == NULL) {
		p->lost++;
		col_stmt_free(s);
		return -ENOMEM;
	}
	struct col_pend_proc *pp = g->proc;
	copy_service(pp->service, service);
	g->last_mono = now_mono;
	g->count++;
	g->time_ms += s->duration_ms;

	/* Failed statements are kept past the request's own bound (they are
	 * what a user looks for), but never past the process's. */
	int keep = g->n < p->o.max_per_req || (s->failed && g->n + 1 < p->o.max_per_proc);
	if (keep && g->n == g->cap) {
		uint32_t cap = g->cap ? g->cap * 2 : 16;
		struct col_stmt **v = realloc(g->v, cap * sizeof *v);
		if (v == NULL) {
			keep = 0;
		} else {
			g->v = v;
			g->cap = cap;
		}
	}
	if (keep) {
		while (pp->kept + 1 > p->o.max_per_proc && pp->head != g)
			expire_group(p, pp->head);
		while (p->kept + 1 > p->o.max_total && p->head != g)
			expire_group(p, p->head);
	}
	count_shape(g, s, keep);
	if (!keep) {
		g->omitted++;
		col_stmt_free(s);
		return 0;
	}
	g->v[g->n++] = s;
	pp->kept++;
	p->kept++;
	return 1;
}

struct col_reqsql *col_pending_take(struct col_pending *p, uint32_t pid, uint64_t req_id)
{
	uint8_t key[12];
	if (req_id == 0)
		return NULL;
	make_key(key, pid, req_id);
	struct col_reqsql *g = col_hmap_get(p->groups, key, sizeof key);
	if (g != NULL)
		detach(p, g);
	return g;
}

size_t col_pending_expire(struct col_pending *p, int64_t now_mono)
{
	uint64_t before = p->expired;
	while (p->head != NULL && now_mono - p->head->last_mono > p->o.ttl_ns)
		expire_group(p, p->head);
	return (size_t)(p->expired - before);
}

void col_pending_expire_all(struct col_pending *p)
{
	while (p->head != NULL)
		expire_group(p, p->head);
}

void col_pending_counters(const struct col_pending *p, struct col_pending_counters *c)
{
	c->groups = p->ngroups;
	c->statements = p->kept;
	c->expired = p->expired;
	c->lost = p->lost;
}

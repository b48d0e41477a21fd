/*
 * libcopy.c - finding the real functions of the hooked client libraries:
 * the copy of a library each caller reaches (libcopy.h), with the dlclose
 * hook that ages those answers.
 */
#include "config.h"
#include "libcopy.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <sched.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

unsigned pl_copy_gen;
__thread struct pl_copy_outer pl_copy_outer;

static int (*real_dlclose)(void *);

/* Our own handles are closed with the real dlclose: through the hook they
 * would age every answer for nothing. */
void pl_copy_close_handle(void *h)
{
	if (!real_dlclose)
		*(void **)&real_dlclose = dlsym(RTLD_NEXT, "dlclose");
	if (real_dlclose)
		real_dlclose(h);
}

/* ---- walking the loaded objects ---- */

/* Held by a walk of ours (pl_dl_walk) and by a fork from its prepare
 * handler to its end: see libcopy.h. Global: every thread's walks and
 * forks share the loader's one lock it stands for. */
static int dl_walk_lock;

/* This thread's walks and fork in progress, the outermost holding
 * dl_walk_lock: a signal handler that interrupted one and forks (or walks)
 * must not wait for the lock its own thread holds, which would never be
 * released. It goes on without it, as before the lock: the loader's lock
 * is recursive, and that child, forked mid-walk, is the one this lock
 * cannot save. Counted before the lock is taken and after it is released,
 * so that a handler never waits for it while this thread holds it. */
static __thread unsigned dl_walk_depth;

static void dl_walk_hold(void)
{
	if (dl_walk_depth++ == 0) {
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		pl_spin_lock(&dl_walk_lock);
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static void dl_walk_release(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (dl_walk_depth == 1)
		pl_spin_unlock(&dl_walk_lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	dl_walk_depth--;
}

/* The thread is busy through the walk (pl_hold()): a fork by another
 * thread takes the buffer's lock, then waits in pl_dl_walk_atfork_prepare
 * for this walk to end, so a signal handler that interrupted the walk
 * must not wait for the buffer's lock in turn (a write ending a request
 * on a followed socket): its call is made, not observed. */
int pl_dl_walk(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg)
{
	pl_hold();
	dl_walk_hold();
	int r = dl_iterate_phdr(cb, arg);
	dl_walk_release();
	int saved = errno;
	pl_leave();
	errno = saved;
	return r;
}

void pl_dl_walk_atfork_prepare(void)
{
	dl_walk_hold();
}

void pl_dl_walk_atfork_parent(void)
{
	dl_walk_release();
}

/* ---- every loaded object's name ---- */

#define MAX_OBJECTS 256
#define OBJ_NAME 256

struct obj_list {
	char names[MAX_OBJECTS][OBJ_NAME];
	unsigned n;
};

static int collect_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct obj_list *l = arg;
	const char *name = info->dlpi_name;
	size_t len = name ? strlen(name) : 0;
	if (len == 0 || len >= OBJ_NAME || l->n == MAX_OBJECTS)
		return 0;
	memcpy(l->names[l->n++], name, len + 1);
	return 0;
}

/* Up to cap distinct definitions of name (other than self) in the loaded
 * objects, found through a handle on each (Python extensions load their
 * libraries RTLD_LOCAL, where RTLD_NEXT cannot see them), into out; returns
 * how many there are, counting past cap. The names are copied first:
 * dlopen is not called under dl_iterate_phdr's lock. Static scratch: 64 KiB
 * is too much for a host thread's stack, and this runs only while a symbol
 * is being resolved. */
static int all_definitions_busy;

void pl_libcopy_atfork_child(void)
{
	all_definitions_busy = 0;
	dl_walk_lock = 0;
	dl_walk_depth--; /* the prepare handler's hold */
}

static unsigned all_definitions(const char *name, const void *self, void **out, unsigned cap)
{
	static struct obj_list objs;
	pl_spin_lock(&all_definitions_busy);
	objs.n = 0;
	pl_dl_walk(collect_object, &objs);
	unsigned found = 0;
	for (unsigned i = 0; i < objs.n; i++) {
		void *h = dlopen(objs.names[i], RTLD_LAZY | RTLD_NOLOAD);
		if (!h)
			continue;
		void *g = dlsym(h, name);
		pl_copy_close_handle(h);
		if (!g || g == self)
			continue;
		unsigned k = 0;
		while (k < found && k < cap && out[k] != g)
			k++;
		if (k < found && k < cap)
			continue; /* seen: a dependency of an earlier object */
		if (found < cap)
			out[found] = g;
		found++;
	}
	pl_spin_unlock(&all_definitions_busy);
	return found;
}

/* ---- the copy a caller reaches ---- */

/* The object mapping an address: its name and mapped range. */
struct caller {
	uintptr_t ra;
	uintptr_t lo, hi, bias;
	char name[OBJ_NAME];
	int found;
};

static int find_caller(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct caller *c = arg;
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	int in = 0;
	for (unsigned i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *p = &info->dlpi_phdr[i];
		if (p->p_type != PT_LOAD)
			continue;
		uintptr_t a = info->dlpi_addr + p->p_vaddr;
		if (c->ra - a < p->p_memsz)
			in = 1;
		if (a < lo)
			lo = a;
		if (a + p->p_memsz > hi)
			hi = a + p->p_memsz;
	}
	if (!in)
		return 0;
	const char *name = info->dlpi_name ? info->dlpi_name : "";
	size_t len = strlen(name);
	if (len >= OBJ_NAME)
		len = 0; /* unnamed for us: not reopened */
	memcpy(c->name, name, len);
	c->name[len] = '\0';
	c->lo = lo;
	c->hi = hi;
	c->bias = info->dlpi_addr;
	c->found = 1;
	return 1;
}

/* The mapped range [*lo, *hi) of the object holding addr: 1, or 0 when no
 * loaded object holds it. Takes the loader's lock (dl_iterate_phdr): for
 * callers that cache the answer. Preserves errno. */
PL_COLD int pl_object_range(const void *addr, uintptr_t *lo, uintptr_t *hi)
{
	int saved = errno;
	struct caller c = { .ra = (uintptr_t)addr };
	pl_dl_walk(find_caller, &c);
	if (c.found) {
		*lo = c.lo;
		*hi = c.hi;
	}
	errno = saved;
	return c.found;
}

/* Fills out[0..n) from the object that defines first (the copy), each
 * checked to lie in that very object (not a dependency's). 0 when the
 * object cannot be opened again, or lacks a required function. A copy in
 * the main program is never an answer: its callers bind to it before us. */
static int from_copy(struct pl_copy_lib *l, void *first, void **out)
{
	struct caller cp = { .ra = (uintptr_t)first };
	pl_dl_walk(find_caller, &cp);
	if (!cp.found || !cp.name[0])
		return 0;
	void *h = dlopen(cp.name, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return 0;
	int ok = dlsym(h, l->names[0]) == first; /* the same object, not a namesake */
	out[0] = first;
	for (unsigned i = 1; ok && i < l->n; i++) {
		void *f = dlsym(h, l->names[i]);
		if ((uintptr_t)f - cp.lo >= cp.hi - cp.lo)
			f = NULL;
		out[i] = f;
		ok = f || i >= l->nreq;
	}
	pl_copy_close_handle(h);
	return ok;
}

/* The global scope, where the dynamic linker binds each name on its own:
 * every function as dlsym(RTLD_NEXT) finds it, so a library interposed on
 * some of them (another preload wrapping PQexec, a test stub) is reached
 * as it would be without us. 0 when a required one is missing. */
static int from_global(struct pl_copy_lib *l, void *first, void **out)
{
	out[0] = first;
	for (unsigned i = 1; i < l->n; i++) {
		void *f = dlsym(RTLD_NEXT, l->names[i]);
		if (l->self && f == l->self[i])
			f = NULL;
		out[i] = f;
		if (!f && i < l->nreq)
			return 0;
	}
	return 1;
}

/* The caller object's own dependencies: dlsym on a handle of it searches
 * the object and its dependencies, as its unresolved references do after
 * the global scope. The main program (no name) has only the global scope. */
static int from_caller(struct pl_copy_lib *l, const struct caller *c, void **out)
{
	if (!c->found || !c->name[0])
		return 0;
	void *h = dlopen(c->name, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return 0;
	struct link_map *lm = NULL;
	void *first = NULL;
	/* The handle must be the caller itself (not a namesake in another
	 * namespace). */
	if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_addr == c->bias)
		first = dlsym(h, l->names[0]);
	pl_copy_close_handle(h);
	if (!first || (l->self && first == l->self[0]))
		return 0;
	return from_copy(l, first, out);
}

/* Resolves for the caller c into out: 1 when found in the global scope,
 * 2 from the caller's own dependencies, 3 as the only copy loaded, 0 when
 * the copy cannot be determined. */
static int resolve(struct pl_copy_lib *l, const struct caller *c, void **out)
{
	void *first = dlsym(RTLD_NEXT, l->names[0]);
	if (first && (!l->self || first != l->self[0]) && from_global(l, first, out))
		return 1;
	if (from_caller(l, c, out))
		return 2;
	void *defs[2];
	if (all_definitions(l->names[0], l->self ? l->self[0] : NULL, defs, 2) == 1 &&
	    from_copy(l, defs[0], out))
		return 3;
	return 0;
}

/* Under l->lock. */
static void site_write(struct pl_copy_site *s, uintptr_t lo, uintptr_t len, void *const *fns,
                       unsigned gen)
{
	unsigned q = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&s->seq, q + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&s->lo, lo, __ATOMIC_RELAXED);
	__atomic_store_n(&s->len, len, __ATOMIC_RELAXED);
	__atomic_store_n(&s->fns, fns, __ATOMIC_RELAXED);
	__atomic_store_n(&s->gen, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&s->seq, q + 2, __ATOMIC_RELEASE);
}

/* The stored copy equal to fns, stored now if new; NULL when the table is
 * full. Copies are never rewritten: a reader may still hold one. Under
 * l->lock. */
static void *const *copy_store(struct pl_copy_lib *l, void *const *fns)
{
	for (unsigned k = 0; k < l->ncopies; k++)
		if (memcmp(l->copies[k], fns, l->n * sizeof *fns) == 0)
			return l->copies[k];
	if (l->ncopies == PL_COPY_COPIES)
		return NULL;
	memcpy(l->copies[l->ncopies], fns, l->n * sizeof *fns);
	return l->copies[l->ncopies++];
}

/* An answer not cached: a lock held by another thread's resolution, or a
 * process that went through more copies than the tables hold. */
static __thread void *uncached[PL_COPY_MAXFN];

PL_COLD void *const *pl_copy_slow(struct pl_copy_lib *l, uintptr_t ra)
{
	void *tmp[PL_COPY_MAXFN];
	int saved = errno;
	unsigned gen = __atomic_load_n(&pl_copy_gen, __ATOMIC_ACQUIRE);
	void *const *f = NULL;
	if (l->first.gen == gen && ra - l->first.lo < __atomic_load_n(&l->first.len, __ATOMIC_ACQUIRE))
		f = l->first.fns; /* raced with its writing */
	unsigned nsites = __atomic_load_n(&l->nsites, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < nsites && !f; i++)
		f = pl_copy_site_get(&l->site[i], ra);
	if (f) {
		errno = saved;
		return f;
	}

	struct caller c = { .ra = ra };
	pl_dl_walk(find_caller, &c);
	if (c.found && (uintptr_t)pl_copy_slow - c.lo < c.hi - c.lo) {
		/* Called from our own hook, through a tail call in the library:
		 * the outer hook's copy, never cached (no site for us). */
		errno = saved;
		return pl_copy_outer.lib == l ? pl_copy_outer.fns : NULL;
	}
	int locked = pl_spin_trylock(&l->lock);
	int how = resolve(l, &c, tmp);
	if (!how) {
		pl_debug("%s: no copy for a caller in %s: not called", l->what,
		         c.found ? (c.name[0] ? c.name : "the main program") : "no object");
	} else if (locked) {
		/* Cache it, with the generation read before resolving: a
		 * dlclose meanwhile leaves it dead. Dead sites are reused. A
		 * global-scope answer, while no caller found a copy of its own,
		 * holds for every caller: it covers every address. */
		void *const *fns = copy_store(l, tmp);
		if (how != 1)
			l->percaller = 1;
		int everyone = how == 1 && !l->percaller;
		uintptr_t lo = everyone ? 0 : c.lo, len = everyone ? UINTPTR_MAX : c.hi - c.lo;
		unsigned n = l->nsites, slot = n;
		for (unsigned i = 0; i < n && slot == n; i++)
			if (l->site[i].gen != gen)
				slot = i;
		if (!fns || (!everyone && !c.found)) {
			/* not cached: the copies are full, or no object to key on */
		} else if (l->first.len == 0) {
			l->first.lo = lo;
			l->first.fns = fns;
			l->first.gen = gen;
			__atomic_store_n(&l->first.len, len, __ATOMIC_RELEASE);
		} else if (slot < PL_COPY_SITES) {
			site_write(&l->site[slot], lo, len, fns, gen);
			if (slot == n)
				__atomic_store_n(&l->nsites, n + 1, __ATOMIC_RELEASE);
		}
		if (fns)
			f = fns;
		if (how != 1)
			pl_debug("%s: a caller in %s reaches the copy at %p (%s)", l->what,
			         c.name[0] ? c.name : "the main program", tmp[0],
			         how == 2 ? "its own dependency" : "the only copy");
	}
	if (locked)
		pl_spin_unlock(&l->lock);
	if (!f && how) {
		memcpy(uncached, tmp, l->n * sizeof *tmp);
		f = uncached;
	}
	errno = saved;
	return f;
}

/* dlclose may unmap a copy: every answer is aged, before the real call (no
 * answer is cached while it runs) and after (whatever was cached is dead).
 * No lock is held across it. */
EXPORT int dlclose(void *handle)
{
	if (!real_dlclose)
		*(void **)&real_dlclose = dlsym(RTLD_NEXT, "dlclose");
	if (!real_dlclose)
		return -1;
	__atomic_add_fetch(&pl_copy_gen, 1, __ATOMIC_ACQ_REL);
	int rc = real_dlclose(handle);
	int saved = errno;
	__atomic_add_fetch(&pl_copy_gen, 1, __ATOMIC_ACQ_REL);
	errno = saved;
	return rc;
}

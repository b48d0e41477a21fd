/*
 * libcopy.h - which copy of a hooked client library a caller reaches.
 *
 * A process may hold two copies of one client library: two differently
 * named copies of libsqlite3, say, each loaded RTLD_LOCAL by its own module.
 * Without us, each module's calls bind to its own copy; with us, they all
 * bind to our one hook, so the hook must call the copy its caller would have
 * reached, never another one (a statement of one copy stepped by the other's
 * code crashes or corrupts it).
 *
 * The hook passes its return address. The copy is resolved the way the
 * dynamic linker binds a caller's reference: the global scope first
 * (dlsym(RTLD_NEXT): the main program's dependencies and RTLD_GLOBAL
 * libraries), then the caller object's own dependencies (dlsym on a handle
 * of the object containing the return address). A hook reached from the
 * library itself through a tail call has its return address in our outer
 * hook: it takes that hook's copy (pl_copy_outer). When no copy is found
 * (a caller that reached us through a tail call of its own, JIT code), the
 * one copy loaded is used when there is exactly one; with several, none is
 * (the hook returns its library's failure rather than call a wrong copy).
 * In the global scope each name is found on its own, as the linker binds
 * it (so a library interposed on some names is still reached); from a
 * caller's own dependencies, every function of one answer comes from the
 * same object as the first name, so accessors and hooked calls never mix
 * copies.
 *
 * Answers are cached per caller object (its mapped address range) in a small
 * fixed table, read lock-free (a sequence count per entry); filling it takes
 * a spin lock with trylock, and a thread that finds it busy resolves without
 * caching. The first answer is checked inline (a range test and a
 * generation test); when the library was found in the global scope it
 * covers every address, as it does for every caller then.
 * dlclose (hooked, libcopy.c) ages every entry (pl_copy_gen): an unloaded
 * copy's functions are never called, and an object mapped later at the
 * same addresses is resolved afresh. No lock is held across the real
 * dlclose, so a destructor or constructor calling back into a hook or into
 * dlclose never deadlocks.
 */
#ifndef AP_LIBCOPY_H
#define AP_LIBCOPY_H

#include <link.h>
#include <stdint.h>

#include "pl.h"

#define PL_COPY_MAXFN 24  /* functions of one library resolved together */
#define PL_COPY_SITES 32  /* caller objects remembered per library */
#define PL_COPY_COPIES 8  /* distinct copies remembered per library */

/* One caller object's answer: callers in [lo, lo + len) use fns, while
 * pl_copy_gen is still gen. */
struct pl_copy_site {
	unsigned seq; /* odd while being written */
	unsigned gen;
	uintptr_t lo, len;
	void *const *fns;
};

/* Bumped by every dlclose, before and after the real one: a site of an
 * older generation is dead, and so is one filled while a dlclose ran. */
extern unsigned pl_copy_gen;

/* The first answer cached, checked inline by every call: written once (len
 * last, with release), never rewritten, so it needs no sequence count. A
 * dlclose leaves it dead for good; later answers live in the sites. */
struct pl_copy_first {
	uintptr_t len; /* 0: not written yet */
	uintptr_t lo;
	void *const *fns;
	unsigned gen;
};

/* A hooked library: its names (static, set by the hook module), then the
 * tables libcopy.c fills (zero-initialised). */
struct pl_copy_lib {
	const char *what;            /* "libsqlite3", for APIPROF_DEBUG */
	const char *const *names;    /* n names; names[0] identifies a copy */
	const void *const *self;     /* n of our hooks (or NULL): never an answer */
	unsigned n;                  /* <= PL_COPY_MAXFN */
	unsigned nreq;               /* names[0..nreq) are in every copy: a
	                                copy without one is not an answer, so
	                                hooks need not test them */
	struct pl_copy_first first;
	struct pl_copy_site site[PL_COPY_SITES];
	unsigned nsites;
	void *copies[PL_COPY_COPIES][PL_COPY_MAXFN];
	unsigned ncopies;
	int lock;                    /* fills only, taken with trylock */
	int percaller;               /* a caller found its own copy: never
	                                again one site for every address */
};

/* The slow path of pl_copy_fns: the other sites, then a resolution, cached
 * when the lock is free and the tables have room, else returned in a
 * thread-local buffer that the thread's next uncached resolution
 * overwrites. NULL when no copy can be determined. Preserves errno. */
void *const *pl_copy_slow(struct pl_copy_lib *l, uintptr_t ra);

/* Site s's answer for a caller at ra, read under its sequence count; NULL
 * when it does not cover ra or is dead. */
static inline void *const *pl_copy_site_get(const struct pl_copy_site *s, uintptr_t ra)
{
	unsigned q = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
	uintptr_t lo = __atomic_load_n(&s->lo, __ATOMIC_RELAXED);
	uintptr_t len = __atomic_load_n(&s->len, __ATOMIC_RELAXED);
	void *const *f = __atomic_load_n(&s->fns, __ATOMIC_RELAXED);
	unsigned g = __atomic_load_n(&s->gen, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (PL_LIKELY(ra - lo < len && g == __atomic_load_n(&pl_copy_gen, __ATOMIC_RELAXED) &&
	              !(q & 1) && __atomic_load_n(&s->seq, __ATOMIC_RELAXED) == q))
		return f;
	return NULL;
}

/* The functions (indexed as l->names) of the copy a caller at return
 * address ra reaches; NULL when it cannot be determined, in which case the
 * hook must not call any copy. A function the copy lacks (past nreq) is
 * NULL. The result stays valid until a dlclose of the library. Preserves
 * errno. */
static inline void *const *pl_copy_fns(struct pl_copy_lib *l, const void *ra)
{
	uintptr_t len = __atomic_load_n(&l->first.len, __ATOMIC_ACQUIRE);
	if (PL_LIKELY((uintptr_t)ra - l->first.lo < len &&
	              l->first.gen == __atomic_load_n(&pl_copy_gen, __ATOMIC_RELAXED)))
		return l->first.fns;
	return pl_copy_slow(l, (uintptr_t)ra);
}

/* dl_iterate_phdr(cb, arg) for the preload's own walks of the loaded
 * objects: each of them goes through here. glibc (2.36) resets the
 * loader's dl_load_lock and dl_load_tls_lock in a fork child, but not
 * dl_load_write_lock, which dl_iterate_phdr holds while it runs: a fork
 * while another thread was inside it leaves the child's first
 * dl_iterate_phdr waiting for good (a child's first SQL call, resolving
 * its real function: forklocks.sh). So our walks take a lock that the
 * fork's prepare handler takes too (pl_dl_walk_atfork_*): a fork waits
 * for a walk of ours to end, and none starts until it is done. cb must
 * take no lock of the preload's. Not for signal handlers; but a fork (or
 * a walk) in a handler that interrupted a walk of its own thread, or that
 * thread's fork, goes on without the lock rather than wait for it. The
 * thread is busy meanwhile (pl_hold()): a fork waiting here holds the
 * event buffer's lock, which a handler's observed call could wait for. */
int pl_dl_walk(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg);

/* The mapped range [*lo, *hi) of the loaded object holding addr: 1, or 0
 * when none holds it. Slow (the loader's lock): cache what it answers, and
 * age that with pl_copy_gen. Preserves errno. */
int pl_object_range(const void *addr, uintptr_t *lo, uintptr_t *hi);

/* The copy that the hook now in a real call handed to it. A library that
 * calls its own exported functions through a tail call (libmariadb's
 * mysql_query jumps to mysql_real_query) reaches a hook whose return
 * address is in the outer hook, in this library, where no copy can be
 * told from the address: that hook takes this one. Thread-local, set by
 * PL_COPY_ENTER around the real call, with pl_db_depth. */
struct pl_copy_outer {
	const struct pl_copy_lib *lib;
	void *const *fns;
};
extern __thread struct pl_copy_outer pl_copy_outer;

/* Around a hook's real call: once per scope (a declaration). */
#define PL_COPY_ENTER(l, f) \
	struct pl_copy_outer pl_outer_saved_ = pl_copy_outer; \
	pl_copy_outer = (struct pl_copy_outer){ (l), (f) }; \
	pl_db_depth++
#define PL_COPY_LEAVE() \
	pl_db_depth--; \
	pl_copy_outer = pl_outer_saved_

/* The four hooked libraries (hook_pq.c, hook_mysql.c, hook_sqlite.c,
 * hook_ssl.c), for gotpatch.c: their names and our hooks. */
extern struct pl_copy_lib *const pl_copy_lib_pq, *const pl_copy_lib_mysql,
	*const pl_copy_lib_sqlite, *const pl_copy_lib_ssl;

/* Closes a handle of our own with the real dlclose (through the hook it
 * would age every cached answer for nothing). */
void pl_copy_close_handle(void *h);

#endif /* AP_LIBCOPY_H */

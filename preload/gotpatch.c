/*
 * gotpatch.c - reaching our hooks from objects that bound past them.
 *
 * An object dlopen()ed with RTLD_DEEPBIND (PHP loads every extension so)
 * binds its references to its own dependencies before the global scope:
 * pdo_pgsql.so calls libpq's PQexec straight, never our exported hook, and
 * none of its statements is captured. We do not hook dlopen (the caller of
 * a relative dlopen would become us, and its RUNPATH is searched), so the
 * objects that bypass us are found afterwards and, in each, the GOT slots
 * of exactly our hooked functions are rewritten to our hooks: what the
 * object would have bound to without RTLD_DEEPBIND.
 *
 * When: before anything else, a process's scan must come before the
 * first statement of its first request, or that request's statements are
 * lost. PHP loads its extensions at start, then serves: php-fpm's master
 * (Apache's prefork mod_php too) forks the workers, php -S accepts itself.
 * So a scan runs
 *   - in the fork prepare handler (pl_got_patch_before_fork, init.c): the
 *     child inherits the patched GOTs, and this module's bookkeeping with
 *     them, so a php-fpm worker, forked at start or later (pm = dynamic,
 *     ondemand, respawns after pm.max_requests), has nothing left to do;
 *   - at a process's first accept() call, before the real accept (the
 *     hooks test one flag, reset in each fork child): php -S's first
 *     connection, and any child whose prepare scan was skipped (below);
 *   - on the shipper thread (ship.c): when it starts, then at every
 *     wake-up, about every 100 ms, for the objects dlopen()ed later.
 * A call with nothing loaded or unloaded since the last scan costs one
 * dl_iterate_phdr() call stopped at the first object (its dlpi_adds and
 * dlpi_subs counters). The callers are on different threads, so a scan
 * (and that check) holds scan_lock, taken with trylock: a caller that
 * finds it taken returns at once (the fork handler: waiting there could
 * deadlock with a holder that waits for a loader lock the forking thread
 * holds, a fork from a constructor) or, at the first accept, waits at
 * most FIRST_ACCEPT_WAIT_NS for the other scan, which patches the same
 * objects. A scan is never nested in the preload's own work on its thread
 * (pl_enter(): a fork or accept from a signal handler that interrupted
 * it), where a lock that work holds could never be released.
 *
 * In the fork handler it runs first, holding no lock: glibc takes the
 * malloc and stdio locks after the prepare handlers (the dlsym errors'
 * malloc is fine), and our own prepare handlers take theirs after it
 * (pl_dl_walk's last: the scan's walks take and release it before);
 * the scan's own lock and handles are released before it returns, and a
 * child forked while the shipper thread was in a scan's middle starts
 * this module afresh (pl_got_patch_atfork_child). mprotect of RELRO
 * pages is a plain system call. It runs only while the process has never
 * had a second thread (__libc_single_threaded; php-fpm's and Apache
 * prefork's masters have none), else the child's first accept does it:
 * the scan's dlopen() waits for the loader's lock, and in a threaded
 * process another thread may hold that lock while it waits for something
 * the forking thread holds (a host mutex a constructor takes; on glibc
 * 2.28 to 2.35, the lock prepare handlers run under, which dlclose takes:
 * glibc bug 24595). fork() itself never waits for the loader's lock.
 *
 * A scan looks at the objects it has
 * not seen (by load address and name; after an unload, all of them again:
 * patched slots hold our hooks and are left alone, so a rescan is
 * harmless), each held by a handle of its own (dlopen RTLD_NOLOAD) while
 * it is read, so a dlclose elsewhere cannot unmap it meanwhile. Skipped:
 * the main program (it binds in the global scope, where we come first),
 * our own library, objects other namespaces hold, and every object that
 * defines a hooked library's identifying function itself (libpq, libssl,
 * ... : a hooked library's own GOT is never touched).
 *
 * In every other object, each JUMP_SLOT and GLOB_DAT relocation (x86-64;
 * elsewhere this module is a no-op) of an undefined symbol named as one of
 * our hooks is looked at. Its slot is patched only when
 *   - it holds the same-named function exported by a loaded copy of the
 *     hooked library (dladdr: that name at that address, in an object that
 *     defines the library's identifying function): the object bound past
 *     us; or it still holds a lazy-binding stub (an address inside the
 *     object itself), the global scope binds the name to our hook (so an
 *     object that is not DEEPBIND would bind to us anyway) and the object's
 *     own scope (dlsym on its handle: where a DEEPBIND lazy binding looks
 *     first) finds such a function. PHP loads extensions
 *     RTLD_LAZY|RTLD_DEEPBIND: its calls not made yet are still stubs;
 *   - and our hook, called from this object, would call exactly that
 *     function (libcopy.h resolves the global scope first: a DEEPBIND
 *     object whose own copy differs from the global one is left alone,
 *     rather than its calls sent to another copy).
 * Anything else (our hook already, an interposer's function, a function
 * of another object) is left as it is.
 *
 * The write is one compare-and-swap of an aligned pointer: a thread
 * calling through the slot meanwhile reaches either function, both
 * correct, and a lazy binding that wrote the slot first wins (its slot is
 * then not patched, until the next scan of that object, if any). A slot
 * on a RELRO page (made read-only by the loader after relocation) is made
 * writable for the write and read-only again after it; a failed mprotect
 * leaves the slot alone.
 *
 * What it leaves: the statements an object dlopen()ed after the process
 * began serving (after its first accept, or in a fork child after the
 * fork) runs before the shipper's next wake-up (about 100 ms) bypass us;
 * mysqlnd (PHP's mysqli and pdo_mysql) never calls libmysqlclient at all.
 */
#include "config.h"
#include "libcopy.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int pl_got_accept_seen;

#if defined(__x86_64__) && defined(__linux__) && defined(R_X86_64_JUMP_SLOT)

#define MAX_OBJ 512
#define OBJ_NAME 256
#define MAX_RW 4

/* What a scan needs of one object, copied under the loader's lock (no
 * dlopen or dladdr is called under it: they take the other loader lock). */
struct obj {
	uintptr_t addr; /* dlpi_addr */
	uintptr_t lo, hi; /* mapped range */
	uintptr_t dyn;  /* PT_DYNAMIC, relocated */
	uintptr_t ro_lo, ro_hi; /* the pages PT_GNU_RELRO made read-only */
	uintptr_t rw_lo[MAX_RW], rw_hi[MAX_RW]; /* writable PT_LOADs */
	unsigned nrw;
	uint64_t key;
	char name[OBJ_NAME];
};

/* Under scan_lock. Static: too big for a thread's stack. */
static struct obj objs[MAX_OBJ];
static unsigned nobjs;
static uint64_t done[MAX_OBJ]; /* keys of the objects scanned */
static unsigned ndone;
static unsigned long long seen_adds, seen_subs;
static int seen_any;
static uintptr_t self_lo, self_hi;
static uintptr_t page_size;
static int scan_lock; /* taken with trylock only: see the top */

/* A first accept that finds another scan running waits this long at most:
 * two threads' first connections at once, or a shipper started early. */
#define FIRST_ACCEPT_WAIT_NS (50 * 1000000ull)

void pl_got_patch_atfork_child(void)
{
	/* Forked while another thread (the shipper) was in a scan's middle:
	 * its lock stays taken here and its bookkeeping is half done. The
	 * slots it patched are inherited; a rescan leaves them alone. */
	if (__atomic_load_n(&scan_lock, __ATOMIC_RELAXED)) {
		seen_any = 0;
		ndone = 0;
		__atomic_store_n(&scan_lock, 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&pl_got_accept_seen, 0, __ATOMIC_RELAXED);
}

static uint64_t obj_key(uintptr_t addr, const char *name)
{
	uint64_t h = 1469598103934665603ULL ^ addr;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

static int is_done(uint64_t key)
{
	for (unsigned i = 0; i < ndone; i++)
		if (done[i] == key)
			return 1;
	return 0;
}

static void mark_done(uint64_t key)
{
	if (ndone < MAX_OBJ)
		done[ndone++] = key;
}

struct counters {
	unsigned long long adds, subs;
	int ok;
};

static int read_counters(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct counters *c = arg;
	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
		c->adds = info->dlpi_adds;
		c->subs = info->dlpi_subs;
		c->ok = 1;
	}
	return 1; /* the first object carries them */
}

static int collect(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	const char *name = info->dlpi_name;
	size_t len = name ? strlen(name) : 0;
	if (len == 0 || len >= OBJ_NAME || nobjs == MAX_OBJ)
		return 0; /* the main program; a name we cannot reopen */
	uint64_t key = obj_key(info->dlpi_addr, name);
	if (is_done(key))
		return 0;
	struct obj *o = &objs[nobjs];
	memset(o, 0, offsetof(struct obj, name));
	o->addr = info->dlpi_addr;
	o->lo = UINTPTR_MAX;
	o->key = key;
	for (unsigned i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *p = &info->dlpi_phdr[i];
		uintptr_t a = info->dlpi_addr + p->p_vaddr;
		if (p->p_type == PT_LOAD) {
			if (a < o->lo)
				o->lo = a;
			if (a + p->p_memsz > o->hi)
				o->hi = a + p->p_memsz;
			if ((p->p_flags & PF_W) && o->nrw < MAX_RW) {
				o->rw_lo[o->nrw] = a;
				o->rw_hi[o->nrw++] = a + p->p_memsz;
			}
		} else if (p->p_type == PT_DYNAMIC) {
			o->dyn = a;
		} else if (p->p_type == PT_GNU_RELRO) {
			/* The loader protects whole pages, its end rounded down. */
			o->ro_lo = a & ~(page_size - 1);
			o->ro_hi = (a + p->p_memsz) & ~(page_size - 1);
		}
	}
	if (!o->dyn || o->lo >= o->hi)
		return 0;
	memcpy(o->name, name, len + 1);
	nobjs++;
	return 0;
}

/* A d_ptr of the dynamic section: relocated in place by the loader on most
 * systems, not on some; anything outside the object is refused (0). */
static uintptr_t dyn_ptr(const struct obj *o, uintptr_t v)
{
	if (v - o->lo < o->hi - o->lo)
		return v;
	v += o->addr;
	return v - o->lo < o->hi - o->lo ? v : 0;
}

/* Whether f is the function names[i] of a loaded copy of l: dladdr finds
 * that name at that address, in an object defining l's identifying
 * function itself. */
static int is_copy_function(const struct pl_copy_lib *l, unsigned i, void *f)
{
	Dl_info di;
	struct link_map *lm = NULL;
	if (!dladdr1(f, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm || !di.dli_sname ||
	    di.dli_saddr != f || strcmp(di.dli_sname, l->names[i]) != 0 || !di.dli_fname)
		return 0;
	uintptr_t lo, hi;
	if (!pl_object_range(f, &lo, &hi))
		return 0;
	void *h = dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return 0;
	struct link_map *hl = NULL;
	int ok = dlinfo(h, RTLD_DI_LINKMAP, &hl) == 0 && hl && hl->l_addr == lm->l_addr;
	if (ok) {
		uintptr_t first = (uintptr_t)dlsym(h, l->names[0]);
		ok = first - lo < hi - lo;
	}
	pl_copy_close_handle(h);
	return ok;
}

/* Whether slot lies in a writable segment of o, or in its RELRO pages
 * (*ro set). */
static int slot_writable(const struct obj *o, uintptr_t slot, int *ro)
{
	*ro = slot - o->ro_lo < o->ro_hi - o->ro_lo;
	if (*ro)
		return 1;
	for (unsigned k = 0; k < o->nrw; k++)
		if (slot - o->rw_lo[k] < o->rw_hi[k] - o->rw_lo[k])
			return 1;
	return 0;
}

/* One relocation of o (handle h) for the hook names[i] of l, its slot at
 * slot: patched when o bound past our hook (see the top). 1 when patched. */
static int patch_slot(const struct obj *o, void *h, struct pl_copy_lib *l, unsigned i,
                      void **slot, int jump_slot)
{
	void *hook = (void *)l->self[i];
	if ((uintptr_t)hook - self_lo >= self_hi - self_lo)
		return 0; /* another definition interposed on ours: not ours to hand out */
	void *cur = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (cur == hook || !cur)
		return 0;
	void *want = cur;
	if ((uintptr_t)cur - o->lo < o->hi - o->lo) {
		/* A lazy-binding stub of o's own PLT (nothing else of o is a
		 * hooked library's function). */
		if (!jump_slot || dlsym(RTLD_DEFAULT, l->names[i]) != hook)
			return 0;
		want = dlsym(h, l->names[i]);
		if (!want)
			return 0;
	}
	if (!is_copy_function(l, i, want))
		return 0;
	/* Our hook, called from o, must call exactly this function. */
	void *const *fns = pl_copy_fns(l, slot);
	if (!fns || fns[i] != want)
		return 0;
	int ro;
	if (((uintptr_t)slot & (sizeof(void *) - 1)) || !slot_writable(o, (uintptr_t)slot, &ro))
		return 0;
	void *page = (void *)((uintptr_t)slot & ~(page_size - 1));
	if (ro && mprotect(page, page_size, PROT_READ | PROT_WRITE) != 0)
		return 0;
	int ok = __atomic_compare_exchange_n(slot, &cur, hook, 0, __ATOMIC_ACQ_REL,
	                                     __ATOMIC_ACQUIRE);
	if (ro)
		mprotect(page, page_size, PROT_READ);
	return ok;
}

/* The hooked library whose hook is called name, with its index; NULL when
 * name is none of our hooks. */
static struct pl_copy_lib *hooked(const char *name, unsigned *idx)
{
	struct pl_copy_lib *l;
	if (name[0] == 'P' && name[1] == 'Q')
		l = pl_copy_lib_pq;
	else if (strncmp(name, "sqlite3_", 8) == 0)
		l = pl_copy_lib_sqlite;
	else if (strncmp(name, "mysql_", 6) == 0)
		l = pl_copy_lib_mysql;
	else if (strncmp(name, "SSL_", 4) == 0)
		l = pl_copy_lib_ssl;
	else
		return NULL;
	for (unsigned i = 0; i < l->n; i++)
		if (l->self && l->self[i] && strcmp(l->names[i], name) == 0) {
			*idx = i;
			return l;
		}
	return NULL;
}

/* Patches o's relocations in rel[0..n) (RELA); with h NULL, only counts
 * those of our hooks' names. */
static unsigned patch_relocs(const struct obj *o, void *h, const ElfW(Rela) *rel, size_t n,
                             const ElfW(Sym) *symtab, const char *strtab, size_t strsz)
{
	unsigned patched = 0;
	for (size_t k = 0; k < n; k++) {
		unsigned long type = ELF64_R_TYPE(rel[k].r_info);
		unsigned long sym = ELF64_R_SYM(rel[k].r_info);
		if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) || sym == 0)
			continue;
		const ElfW(Sym) *s = &symtab[sym];
		if (s->st_shndx != SHN_UNDEF || s->st_name >= strsz)
			continue;
		unsigned i;
		struct pl_copy_lib *l = hooked(strtab + s->st_name, &i);
		if (!l)
			continue;
		uintptr_t slot = o->addr + rel[k].r_offset;
		if (slot - o->lo >= o->hi - o->lo)
			continue;
		if (!h) {
			patched++;
		} else if (patch_slot(o, h, l, i, (void **)slot, type == R_X86_64_JUMP_SLOT)) {
			patched++;
			pl_debug("%s: %s now reaches our hook", o->name, l->names[i]);
		}
	}
	return patched;
}

/* o's relocations (h NULL: counts those of our hooks' names). */
static unsigned patch_object(const struct obj *o, void *h)
{
	uintptr_t symtab = 0, strtab = 0, jmprel = 0, rela = 0;
	size_t strsz = 0, pltrelsz = 0, relasz = 0, relaent = sizeof(ElfW(Rela));
	long pltrel = DT_RELA;
	for (const ElfW(Dyn) *d = (const ElfW(Dyn) *)o->dyn; d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_SYMTAB: symtab = dyn_ptr(o, d->d_un.d_ptr); break;
		case DT_STRTAB: strtab = dyn_ptr(o, d->d_un.d_ptr); break;
		case DT_STRSZ: strsz = d->d_un.d_val; break;
		case DT_JMPREL: jmprel = dyn_ptr(o, d->d_un.d_ptr); break;
		case DT_PLTRELSZ: pltrelsz = d->d_un.d_val; break;
		case DT_PLTREL: pltrel = (long)d->d_un.d_val; break;
		case DT_RELA: rela = dyn_ptr(o, d->d_un.d_ptr); break;
		case DT_RELASZ: relasz = d->d_un.d_val; break;
		case DT_RELAENT: relaent = d->d_un.d_val; break;
		default: break;
		}
	}
	if (!symtab || !strtab || relaent != sizeof(ElfW(Rela)))
		return 0;
	const ElfW(Sym) *sy = (const ElfW(Sym) *)symtab;
	const char *st = (const char *)strtab;
	unsigned n = 0;
	if (jmprel && pltrel == DT_RELA)
		n += patch_relocs(o, h, (const ElfW(Rela) *)jmprel, pltrelsz / sizeof(ElfW(Rela)), sy,
		                  st, strsz);
	if (rela)
		n += patch_relocs(o, h, (const ElfW(Rela) *)rela, relasz / sizeof(ElfW(Rela)), sy,
		                  st, strsz);
	return n;
}

/* One object, held by handle h (checked to be o itself): the slots
 * patched. Most objects reference none of our hooks: only those that do
 * are asked whether they are a hooked library. */
static unsigned scan_object(const struct obj *o, void *h)
{
	if (!patch_object(o, NULL))
		return 0;
	const struct pl_copy_lib *libs[] = { pl_copy_lib_pq, pl_copy_lib_mysql, pl_copy_lib_sqlite,
	                                     pl_copy_lib_ssl };
	for (unsigned k = 0; k < sizeof libs / sizeof *libs; k++) {
		uintptr_t f = (uintptr_t)dlsym(h, libs[k]->names[0]);
		if (f && f - o->lo < o->hi - o->lo)
			return 0; /* a hooked library itself */
	}
	return patch_object(o, h);
}

/* The scan itself (see the top), scan_lock held. */
static void scan_locked(const char *why)
{
	struct counters c = { 0, 0, 0 };
	pl_dl_walk(read_counters, &c);
	if (!c.ok || (seen_any && c.adds == seen_adds && c.subs == seen_subs))
		return;
	if (!page_size) {
		long p = sysconf(_SC_PAGESIZE);
		if (p <= 0 || !pl_object_range((const void *)scan_locked, &self_lo, &self_hi))
			return;
		page_size = (uintptr_t)p;
	}
	if (seen_any && c.subs != seen_subs)
		ndone = 0; /* something was unloaded: its address may hold another */
	seen_adds = c.adds;
	seen_subs = c.subs;
	seen_any = 1;
	nobjs = 0;
	uint64_t t0 = pl_now_ns();
	pl_dl_walk(collect, NULL);
	unsigned patched = 0;
	for (unsigned k = 0; k < nobjs; k++) {
		const struct obj *o = &objs[k];
		mark_done(o->key);
		if ((uintptr_t)scan_locked - o->lo < o->hi - o->lo)
			continue; /* ourselves */
		void *h = dlopen(o->name, RTLD_LAZY | RTLD_NOLOAD);
		if (!h)
			continue; /* the vDSO; gone since; another namespace's */
		struct link_map *lm = NULL;
		/* The object itself (not a namesake in another namespace), with
		 * the dynamic section read under the loader's lock. */
		if (dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_addr == o->addr &&
		    (uintptr_t)lm->l_ld == o->dyn)
			patched += scan_object(o, h);
		pl_copy_close_handle(h);
	}
	pl_debug("GOT scan (%s): %u objects, %u slots patched, %llu us", why, nobjs, patched,
	         (unsigned long long)((pl_now_ns() - t0) / 1000));
}

/* A scan unless another is running: then at once (wait_ns 0) or when it
 * ended, or wait_ns passed. Preserves errno. */
static void scan(const char *why, uint64_t wait_ns)
{
	int saved = errno;
	if (!pl_spin_trylock(&scan_lock)) {
		if (!wait_ns)
			goto out;
		uint64_t until = pl_now_ns() + wait_ns;
		do {
			if (pl_now_ns() >= until)
				goto out;
			sched_yield();
		} while (!pl_spin_trylock(&scan_lock));
	}
	scan_locked(why);
	pl_spin_unlock(&scan_lock);
out:
	errno = saved;
}

void pl_got_patch_scan(void)
{
	scan("shipper", 0);
}

/* Whether the process never had a second thread (see the top):
 * __libc_single_threaded, glibc 2.32 on; weak: an older glibc has none,
 * and then the fork handler never scans. */
extern char __libc_single_threaded __attribute__((weak));

static int fork_scan_safe(void)
{
	return &__libc_single_threaded && __libc_single_threaded;
}

void pl_got_patch_before_fork(void)
{
	if (!fork_scan_safe())
		return;
	int saved = errno;
	if (pl_enter()) {
		scan("before fork", 0);
		pl_leave();
	}
	errno = saved;
}

PL_COLD void pl_got_patch_first_accept(void)
{
	__atomic_store_n(&pl_got_accept_seen, 1, __ATOMIC_RELAXED);
	if (pl_cfg.disabled)
		return;
	int saved = errno;
	if (pl_enter()) {
		scan("first accept", FIRST_ACCEPT_WAIT_NS);
		pl_leave();
	}
	errno = saved;
}

#else

void pl_got_patch_scan(void)
{
}

void pl_got_patch_before_fork(void)
{
}

PL_COLD void pl_got_patch_first_accept(void)
{
	__atomic_store_n(&pl_got_accept_seen, 1, __ATOMIC_RELAXED);
}

void pl_got_patch_atfork_child(void)
{
	__atomic_store_n(&pl_got_accept_seen, 0, __ATOMIC_RELAXED);
}

#endif

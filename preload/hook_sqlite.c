/*
 * hook_sqlite.c - statements through libsqlite3.
 *
 * One execution runs from the first sqlite3_step after a prepare or reset
 * until SQLITE_DONE, an error other than SQLITE_BUSY (which the caller may
 * retry), a reset or a finalize (SPEC section 3): Python's
 * sqlite3 module caches prepared statements and re-runs them after
 * sqlite3_reset, so a prepare is not an execution. A failed prepare is a
 * failed statement. sqlite3_exec is one statement, its inner prepare/step/
 * finalize calls passing straight through (sq_depth). The application's
 * own calls made from inside a real call (a user function, a progress
 * handler) are its statements, each recorded (from_library below).
 *
 * Executions in progress are kept in a small open-addressed table keyed by
 * the statement pointer, under a spin lock taken once per step; a statement
 * that does not fit is simply not timed.
 */
#include "config.h"
#include "libcopy.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

#define SQLITE_OK 0
#define SQLITE_BUSY 5
#define SQLITE_ROW 100
#define SQLITE_DONE 101
#define SQLITE_MISUSE 21

/* The functions used, indexed into what pl_copy_fns returns: the copy of
 * libsqlite3 the caller reaches (libcopy.h; a process may hold two). */
enum { SQ_prepare_v2, SQ_step, SQ_reset, SQ_finalize, SQ_exec, SQ_sql, SQ_db_handle,
       SQ_errmsg, SQ_changes, SQ_total_changes, SQ_REQUIRED, /* in every libsqlite3 since 3.3.9 (2007) */
       SQ_stmt_readonly = SQ_REQUIRED, SQ_prepare, SQ_prepare_v3, SQ_prepare16,
       SQ_prepare16_v2, SQ_prepare16_v3, SQ_N };
typedef int (*sq_prepare_v2_fn)(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
typedef int (*sq_prepare_fn)(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
typedef int (*sq_prepare_v3_fn)(sqlite3 *, const char *, int, unsigned, sqlite3_stmt **,
                                const char **);
typedef int (*sq_prepare16_fn)(sqlite3 *, const void *, int, sqlite3_stmt **, const void **);
typedef int (*sq_prepare16_v2_fn)(sqlite3 *, const void *, int, sqlite3_stmt **, const void **);
typedef int (*sq_prepare16_v3_fn)(sqlite3 *, const void *, int, unsigned, sqlite3_stmt **,
                                  const void **);
typedef int (*sq_step_fn)(sqlite3_stmt *);
typedef int (*sq_reset_fn)(sqlite3_stmt *);
typedef int (*sq_finalize_fn)(sqlite3_stmt *);
typedef int (*sq_exec_fn)(sqlite3 *, const char *, int (*)(void *, int, char **, char **),
                          void *, char **);
typedef const char *(*sq_sql_fn)(sqlite3_stmt *);
typedef sqlite3 *(*sq_db_handle_fn)(sqlite3_stmt *);
typedef const char *(*sq_errmsg_fn)(sqlite3 *);
typedef int (*sq_changes_fn)(sqlite3 *);
typedef int (*sq_total_changes_fn)(sqlite3 *);
typedef int (*sq_stmt_readonly_fn)(sqlite3_stmt *);

/* f's function `name` (NULL when that copy lacks it). */
#define SQF(f, name) ((sq_##name##_fn)(f)[SQ_##name])

static const char *const sq_names[SQ_N] = {
	"sqlite3_prepare_v2", "sqlite3_step", "sqlite3_reset", "sqlite3_finalize",
	"sqlite3_exec", "sqlite3_sql", "sqlite3_db_handle", "sqlite3_errmsg",
	"sqlite3_changes", "sqlite3_total_changes", "sqlite3_stmt_readonly", "sqlite3_prepare", "sqlite3_prepare_v3",
	"sqlite3_prepare16", "sqlite3_prepare16_v2", "sqlite3_prepare16_v3",
};
EXPORT int sqlite3_prepare_v2(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
EXPORT int sqlite3_prepare(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
EXPORT int sqlite3_prepare_v3(sqlite3 *, const char *, int, unsigned, sqlite3_stmt **,
                              const char **);
EXPORT int sqlite3_prepare16(sqlite3 *, const void *, int, sqlite3_stmt **, const void **);
EXPORT int sqlite3_prepare16_v2(sqlite3 *, const void *, int, sqlite3_stmt **, const void **);
EXPORT int sqlite3_prepare16_v3(sqlite3 *, const void *, int, unsigned, sqlite3_stmt **,
                                const void **);
EXPORT int sqlite3_step(sqlite3_stmt *);
EXPORT int sqlite3_reset(sqlite3_stmt *);
EXPORT int sqlite3_finalize(sqlite3_stmt *);
EXPORT int sqlite3_exec(sqlite3 *, const char *, int (*)(void *, int, char **, char **),
                        void *, char **);
_Static_assert(SQ_N <= PL_COPY_MAXFN, "PL_COPY_MAXFN too small");
static const void *const sq_self[SQ_N] = {
	[SQ_prepare_v2] = (const void *)sqlite3_prepare_v2, [SQ_step] = (const void *)sqlite3_step,
	[SQ_reset] = (const void *)sqlite3_reset, [SQ_finalize] = (const void *)sqlite3_finalize,
	[SQ_exec] = (const void *)sqlite3_exec, [SQ_prepare] = (const void *)sqlite3_prepare,
	[SQ_prepare_v3] = (const void *)sqlite3_prepare_v3,
	[SQ_prepare16] = (const void *)sqlite3_prepare16,
	[SQ_prepare16_v2] = (const void *)sqlite3_prepare16_v2,
	[SQ_prepare16_v3] = (const void *)sqlite3_prepare16_v3,
};
static struct pl_copy_lib sq_lib = { .what = "libsqlite3", .names = sq_names, .self = sq_self,
                                     .n = SQ_N, .nreq = SQ_REQUIRED };
struct pl_copy_lib *const pl_copy_lib_sqlite = &sq_lib; /* gotpatch.c */

/* The caller's copy: in each exported hook itself, so the return address is
 * its caller's. NULL: none can be determined, call nothing. */
#define SQ_FNS() pl_copy_fns(&sq_lib, __builtin_return_address(0))

/* The accessors emit() needs, all in f's copy (all but one required). */
static int have_accessors(void *const *f)
{
	return f[SQ_stmt_readonly] != NULL;
}

/* ---- the library's own calls, and the application's from its callbacks ---- */

/* SQLite's own nesting, not pl_db_depth: the libpq statements a user
 * function or progress handler runs are recorded too (libpq's hooks pass
 * through while pl_db_depth is up). Initial-exec TLS. */
static __thread int sq_depth;

/* A hook entered while sq_depth is up runs inside one of our real
 * calls. Either the library called itself through its PLT (sqlite3_exec's
 * prepare, step and finalize; a step's automatic reset; ANALYZE loading its
 * tables): that passes straight through, else one exec was three
 * statements. Or the application did, from a callback the library made
 * meanwhile (a function of sqlite3_create_function, a progress handler, an
 * authorizer, a collation): those statements are its own, each recorded
 * (they passed through and were lost). Told apart by the caller's return
 * address: inside the copy, or inside us (a tail call), it is the library.
 * Only nested calls ask; the objects' ranges are cached per thread (no
 * lock), aged by dlclose (pl_copy_gen), found again with the loader's lock
 * on a miss. */
#define RANGES 4
static __thread struct sq_range {
	const void *key; /* an address in the object */
	uintptr_t lo, len;
	unsigned gen;
} ranges[RANGES];
static __thread unsigned ranges_next;

/* Whether ra lies in the object holding key (0 when none holds it). */
static int in_object(const void *key, uintptr_t ra)
{
	unsigned gen = __atomic_load_n(&pl_copy_gen, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < RANGES; i++)
		if (ranges[i].key == key && ranges[i].gen == gen)
			return ra - ranges[i].lo < ranges[i].len;
	uintptr_t lo, hi;
	if (!pl_object_range(key, &lo, &hi))
		return 0;
	ranges[ranges_next++ % RANGES] = (struct sq_range){ key, lo, hi - lo, gen };
	return ra - lo < hi - lo;
}

/* A hook called from f's copy itself, or from us. Preserves errno. */
static __attribute__((noinline)) int from_library(void *const *f, const void *ra)
{
	return in_object(f[SQ_step], (uintptr_t)ra) || in_object((const void *)in_object, (uintptr_t)ra);
}

/* In a hook's own body: called by the library inside one of our real calls
 * (pass straight through), not by the application. */
#define SQ_NESTED(f) (sq_depth && from_library((f), __builtin_return_address(0)))

/* ---- executions in progress ---- */

#define EXEC_SLOTS 1024 /* power of two */
static struct exec_slot {
	sqlite3_stmt *stmt;
	struct pl_stmt st;
	uint64_t rows;
	int busy_rc; /* the last step said SQLITE_BUSY (this code): may be retried */
} execs[EXEC_SLOTS];
static int execs_lock;

static void xlock(void)
{
	while (__atomic_exchange_n(&execs_lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void xunlock(void)
{
	__atomic_store_n(&execs_lock, 0, __ATOMIC_RELEASE);
}

void pl_sqlite_atfork_child(void)
{
	execs_lock = 0;
}

static unsigned slot_of(const sqlite3_stmt *s)
{
	uintptr_t p = (uintptr_t)s;
	return (unsigned)((p >> 4) ^ (p >> 14)) & (EXEC_SLOTS - 1);
}

/* Linear probing over at most 16 slots: under the lock. */
static struct exec_slot *exec_find(const sqlite3_stmt *s)
{
	unsigned h = slot_of(s);
	for (unsigned i = 0; i < 16; i++) {
		struct exec_slot *e = &execs[(h + i) & (EXEC_SLOTS - 1)];
		if (e->stmt == s)
			return e;
	}
	return NULL;
}

static struct exec_slot *exec_claim(sqlite3_stmt *s)
{
	unsigned h = slot_of(s);
	for (unsigned i = 0; i < 16; i++) {
		struct exec_slot *e = &execs[(h + i) & (EXEC_SLOTS - 1)];
		if (e->stmt == NULL) {
			e->stmt = s;
			return e;
		}
	}
	return NULL;
}

/* Removes s's execution, if any, into *out. */
static int exec_take(sqlite3_stmt *s, struct exec_slot *out)
{
	xlock();
	struct exec_slot *e = exec_find(s);
	if (e) {
		*out = *e;
		e->stmt = NULL;
	}
	xunlock();
	return e != NULL;
}

static void emit(void *const *f, sqlite3_stmt *s, const struct exec_slot *e, int rc)
{
	if (!have_accessors(f))
		return;
	struct pl_stmt_result res = { 0 };
	char code[16];
	sqlite3 *db = SQF(f, db_handle)(s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW || rc == SQLITE_OK) {
		/* Rows a query returned, or rows a write changed. */
		res.rows = SQF(f, stmt_readonly)(s) ? e->rows : (uint64_t)SQF(f, changes)(db);
		res.rows_known = 1;
	} else {
		res.failed = 1;
		snprintf(code, sizeof code, "%d", rc & 0xff);
		res.code = code;
		res.message = SQF(f, errmsg)(db);
	}
	const char *text = SQF(f, sql)(s);
	pl_stmt_end(&e->st, AP_DB_SQLITE, text, text ? strlen(text) : 0, &res);
}

EXPORT int sqlite3_step(sqlite3_stmt *s)
{
	void *const *f = SQ_FNS();
	if (PL_UNLIKELY(!f))
		return SQLITE_MISUSE;
	if (pl_cfg.disabled || !s || SQ_NESTED(f))
		return SQF(f, step)(s);
	int saved = errno;
	xlock();
	struct exec_slot *e = exec_find(s);
	if (!e && (e = exec_claim(s)) != NULL) {
		e->rows = 0;
		e->busy_rc = 0;
		xunlock();
		pl_stmt_begin(&e->st); /* outside the lock: it may take others */
	} else {
		xunlock();
	}
	errno = saved;

	sq_depth++;
	int rc = SQF(f, step)(s);
	sq_depth--;

	saved = errno;
	if (rc == SQLITE_ROW || (rc & 0xff) == SQLITE_BUSY) {
		/* SQLITE_BUSY: the caller may step again, and that retry goes on
		 * with this execution (sqlite3_step's contract); ending it here
		 * made a loop retrying 3 times 4 statements, 3 of them failed.
		 * One given up after it ends as failed at its reset or finalize. */
		xlock();
		struct exec_slot *r = exec_find(s);
		if (r) {
			r->rows += rc == SQLITE_ROW;
			r->busy_rc = rc == SQLITE_ROW ? 0 : rc;
		}
		xunlock();
	} else {
		struct exec_slot done;
		if (exec_take(s, &done))
			emit(f, s, &done, rc);
	}
	errno = saved;
	return rc;
}

/* A reset or finalize in the middle of an execution ends it (a query whose
 * caller stopped fetching early). Not inlined: it would give the hooks a
 * frame they need only here. */
static __attribute__((noinline)) void end_early(void *const *f, sqlite3_stmt *s)
{
	struct exec_slot done;
	int saved = errno;
	if (s && exec_take(s, &done))
		emit(f, s, &done, done.busy_rc ? done.busy_rc : SQLITE_OK);
	errno = saved;
}

EXPORT int sqlite3_reset(sqlite3_stmt *s)
{
	void *const *f = SQ_FNS();
	if (PL_UNLIKELY(!f))
		return SQLITE_MISUSE;
	if (!SQ_NESTED(f))
		end_early(f, s);
	return SQF(f, reset)(s);
}

EXPORT int sqlite3_finalize(sqlite3_stmt *s)
{
	void *const *f = SQ_FNS();
	if (PL_UNLIKELY(!f))
		return SQLITE_MISUSE;
	if (!SQ_NESTED(f))
		end_early(f, s);
	return SQF(f, finalize)(s);
}

/* A failed prepare is a failed statement (the text never reached a
 * statement object, so report what the caller passed). */
static void prepare_failed(void *const *f, sqlite3 *db, const char *sql, int nbyte, int rc,
                           const struct pl_stmt *st)
{
	if (!have_accessors(f))
		return;
	struct pl_stmt_result res = { .failed = 1 };
	char code[16];
	snprintf(code, sizeof code, "%d", rc & 0xff);
	res.code = code;
	res.message = SQF(f, errmsg)(db);
	size_t len = sql ? (nbyte >= 0 ? strnlen(sql, (size_t)nbyte) : strlen(sql)) : 0;
	pl_stmt_end(st, AP_DB_SQLITE, sql, len, &res);
}

/* The UTF-16 text (native byte order, as sqlite3_prepare16* take it) of a
 * failed prepare as UTF-8 in out[0..cap): nbyte < 0 reads to the first
 * U+0000, else at most nbyte bytes (SQLite stops at a U+0000 too). Cut
 * between characters when out is full; an unpaired surrogate becomes
 * U+FFFD. Returns the length; *cut set when text was left out for want of
 * room. Units are read with memcpy: the caller's pointer need not be
 * aligned. */
static size_t utf16_to_utf8(const void *sql, int nbyte, char *out, size_t cap, int *cut)
{
	const unsigned char *p = sql;
	size_t units = nbyte < 0 ? SIZE_MAX : (size_t)nbyte / 2, o = 0;
	for (size_t i = 0; p && i < units; i++) {
		uint16_t u;
		memcpy(&u, p + 2 * i, 2);
		if (u == 0)
			break;
		uint32_t c = u;
		if (u >= 0xd800 && u <= 0xdbff && i + 1 < units) {
			uint16_t lo;
			memcpy(&lo, p + 2 * (i + 1), 2);
			if (lo >= 0xdc00 && lo <= 0xdfff) {
				c = 0x10000 + (((uint32_t)u - 0xd800) << 10) + (lo - 0xdc00);
				i++;
			}
		}
		if (c >= 0xd800 && c <= 0xdfff)
			c = 0xfffd;
		unsigned char b[4];
		size_t n;
		if (c < 0x80) {
			b[0] = (unsigned char)c;
			n = 1;
		} else if (c < 0x800) {
			b[0] = (unsigned char)(0xc0 | c >> 6);
			b[1] = (unsigned char)(0x80 | (c & 0x3f));
			n = 2;
		} else if (c < 0x10000) {
			b[0] = (unsigned char)(0xe0 | c >> 12);
			b[1] = (unsigned char)(0x80 | (c >> 6 & 0x3f));
			b[2] = (unsigned char)(0x80 | (c & 0x3f));
			n = 3;
		} else {
			b[0] = (unsigned char)(0xf0 | c >> 18);
			b[1] = (unsigned char)(0x80 | (c >> 12 & 0x3f));
			b[2] = (unsigned char)(0x80 | (c >> 6 & 0x3f));
			b[3] = (unsigned char)(0x80 | (c & 0x3f));
			n = 4;
		}
		if (o + n > cap) {
			*cut = 1;
			break;
		}
		memcpy(out + o, b, n);
		o += n;
	}
	return o;
}

/* A failed sqlite3_prepare16* (Qt's SQLite driver prepares with them): the
 * same, its text made UTF-8. On the host thread's stack, a little more than
 * APIPROF_MAX_SQL_BYTES; a text cut there is marked truncated, as the
 * other raw texts held in a buffer are (normalising may shrink the cut
 * text below the limit: a long literal, and what followed it, lost). */
static void prepare16_failed(void *const *f, sqlite3 *db, const void *sql, int nbyte, int rc,
                             const struct pl_stmt *st)
{
	char text[pl_cfg.max_sql_bytes + 64];
	int cut = 0;
	size_t len = utf16_to_utf8(sql, nbyte, text, sizeof text, &cut);
	struct pl_stmt marked = *st;
	marked.truncated |= (uint8_t)cut;
	prepare_failed(f, db, text, (int)len, rc, &marked);
}

/* f is the caller's copy (from the hook itself, for its return address). */
#define PREPARE_BODY(f, which, call) PREPARE_BODY_AS(f, which, call, prepare_failed)
#define PREPARE_BODY_AS(f, which, call, failed) \
	do { \
		if (PL_UNLIKELY(!(f) || !(f)[SQ_##which])) \
			return SQLITE_MISUSE; \
		if (pl_cfg.disabled || SQ_NESTED(f)) \
			return call; \
		struct pl_stmt st; \
		pl_stmt_begin(&st); \
		sq_depth++; \
		int rc = call; \
		sq_depth--; \
		if (rc != SQLITE_OK) { \
			int saved = errno; \
			failed(f, db, sql, nbyte, rc, &st); \
			errno = saved; \
		} \
		return rc; \
	} while (0)

EXPORT int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int nbyte, sqlite3_stmt **out,
                              const char **tail)
{
	void *const *f = SQ_FNS();
	PREPARE_BODY(f, prepare_v2, SQF(f, prepare_v2)(db, sql, nbyte, out, tail));
}

EXPORT int sqlite3_prepare(sqlite3 *db, const char *sql, int nbyte, sqlite3_stmt **out,
                           const char **tail)
{
	void *const *f = SQ_FNS();
	PREPARE_BODY(f, prepare, SQF(f, prepare)(db, sql, nbyte, out, tail));
}

EXPORT int sqlite3_prepare_v3(sqlite3 *db, const char *sql, int nbyte, unsigned flags,
                              sqlite3_stmt **out, const char **tail)
{
	void *const *f = SQ_FNS();
	PREPARE_BODY(f, prepare_v3, SQF(f, prepare_v3)(db, sql, nbyte, flags, out, tail));
}

EXPORT int sqlite3_prepare16(sqlite3 *db, const void *sql, int nbyte, sqlite3_stmt **out,
                             const void **tail)
{
	void *const *f = SQ_FNS();
	PREPARE_BODY_AS(f, prepare16, SQF(f, prepare16)(db, sql, nbyte, out, tail),
	                prepare16_failed);
}

EXPORT int sqlite3_prepare16_v2(sqlite3 *db, const void *sql, int nbyte, sqlite3_stmt **out,
                                const void **tail)
{
	void *const *f = SQ_FNS();
	PREPARE_BODY_AS(f, prepare16_v2, SQF(f, prepare16_v2)(db, sql, nbyte, out, tail),
	                prepare16_failed);
}

EXPORT int sqlite3_prepare16_v3(sqlite3 *db, const void *sql, int nbyte, unsigned flags,
                                sqlite3_stmt **out, const void **tail)
{
	void *const *f = SQ_FNS();
	PREPARE_BODY_AS(f, prepare16_v3, SQF(f, prepare16_v3)(db, sql, nbyte, flags, out, tail),
	                prepare16_failed);
}

/* The caller's callback of one sqlite3_exec, called through exec_cb: the
 * statements it runs are the application's own, each a statement (they
 * passed straight through, sq_depth being up, and were lost), and the
 * rows it is handed are the rows the exec returned. */
struct exec_call {
	int (*cb)(void *, int, char **, char **);
	void *arg;
	void *const *f;
	sqlite3 *db;
	uint64_t rows;       /* callback calls: rows returned */
	int64_t cb_changes;  /* rows the callback's own statements changed */
};

static int exec_cb(void *p, int n, char **values, char **names)
{
	struct exec_call *x = p;
	int depth = sq_depth;
	int before = SQF(x->f, total_changes)(x->db);
	x->rows++;
	sq_depth = 0;
	int rc = x->cb(x->arg, n, values, names);
	sq_depth = depth;
	x->cb_changes += SQF(x->f, total_changes)(x->db) - before;
	return rc;
}

EXPORT int sqlite3_exec(sqlite3 *db, const char *sql,
                        int (*cb)(void *, int, char **, char **), void *arg, char **err)
{
	void *const *f = SQ_FNS();
	if (PL_UNLIKELY(!f))
		return SQLITE_MISUSE;
	if (pl_cfg.disabled || !sql || SQ_NESTED(f))
		return SQF(f, exec)(db, sql, cb, arg, err);
	struct pl_stmt st;
	pl_stmt_begin(&st);
	struct exec_call x = { cb, arg, f, db, 0, 0 };
	/* Rows changed: sqlite3_changes() alone is the last write's, perhaps
	 * one made long before a SELECT. */
	int before = db ? SQF(f, total_changes)(db) : 0;
	sq_depth++;
	int rc = SQF(f, exec)(db, sql, cb ? exec_cb : NULL, cb ? (void *)&x : arg, err);
	sq_depth--;
	int saved = errno;
	if (have_accessors(f)) {
		struct pl_stmt_result res = { 0 };
		char code[16];
		if (rc != SQLITE_OK) {
			res.failed = 1;
			snprintf(code, sizeof code, "%d", rc & 0xff);
			res.code = code;
			res.message = SQF(f, errmsg)(db);
		} else {
			int64_t changed = (int64_t)SQF(f, total_changes)(db) - before - x.cb_changes;
			res.rows = x.rows + (changed > 0 ? (uint64_t)changed : 0);
			res.rows_known = 1;
		}
		pl_stmt_end(&st, AP_DB_SQLITE, sql, strlen(sql), &res);
	}
	errno = saved;
	return rc;
}

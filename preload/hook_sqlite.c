/*
 * hook_sqlite.c - statements through libsqlite3.
 *
 * One execution runs from the first sqlite3_step after a prepare or reset
 * until SQLITE_DONE, an error, a reset or a finalize (SPEC section 3): Python's
 * sqlite3 module caches prepared statements and re-runs them after
 * sqlite3_reset, so a prepare is not an execution. A failed prepare is a
 * failed statement. sqlite3_exec is one statement, its inner prepare/step/
 * finalize calls passing straight through (pl_db_depth).
 *
 * Executions in progress are kept in a small open-addressed table keyed by
 * the statement pointer, under a spin lock taken once per step; a statement
 * that does not fit is simply not timed.
 */
#include "config.h"
#include "pl.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

#define SQLITE_OK 0
#define SQLITE_ROW 100
#define SQLITE_DONE 101

static struct {
	int (*prepare)(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
	int (*prepare_v2)(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
	int (*prepare_v3)(sqlite3 *, const char *, int, unsigned, sqlite3_stmt **, const char **);
	int (*step)(sqlite3_stmt *);
	int (*reset)(sqlite3_stmt *);
	int (*finalize)(sqlite3_stmt *);
	int (*exec)(sqlite3 *, const char *, int (*)(void *, int, char **, char **), void *,
	            char **);
	const char *(*sql)(sqlite3_stmt *);
	sqlite3 *(*db_handle)(sqlite3_stmt *);
	const char *(*errmsg)(sqlite3 *);
	int (*changes)(sqlite3 *);
	int (*stmt_readonly)(sqlite3_stmt *);
} sq;

#define RESOLVE(field, name, self) \
	(sq.field ? 1 : (*(void **)&sq.field = pl_sym(name, (const void *)(self))) != NULL)

static int resolve_accessors(void)
{
	return RESOLVE(sql, "sqlite3_sql", NULL) && RESOLVE(db_handle, "sqlite3_db_handle", NULL) &&
	       RESOLVE(errmsg, "sqlite3_errmsg", NULL) && RESOLVE(changes, "sqlite3_changes", NULL) &&
	       RESOLVE(stmt_readonly, "sqlite3_stmt_readonly", NULL);
}

/* ---- executions in progress ---- */

#define EXEC_SLOTS 1024 /* power of two */
static struct exec_slot {
	sqlite3_stmt *stmt;
	struct pl_stmt st;
	uint64_t rows;
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

static void emit(sqlite3_stmt *s, const struct exec_slot *e, int rc)
{
	if (!resolve_accessors())
		return;
	struct pl_stmt_result res = { 0 };
	char code[16];
	sqlite3 *db = sq.db_handle(s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW || rc == SQLITE_OK) {
		/* Rows a query returned, or rows a write changed. */
		res.rows = sq.stmt_readonly(s) ? e->rows : (uint64_t)sq.changes(db);
		res.rows_known = 1;
	} else {
		res.failed = 1;
		snprintf(code, sizeof code, "%d", rc & 0xff);
		res.code = code;
		res.message = sq.errmsg(db);
	}
	const char *text = sq.sql(s);
	pl_stmt_end(&e->st, AP_DB_SQLITE, text, text ? strlen(text) : 0, &res);
}

EXPORT int sqlite3_step(sqlite3_stmt *s)
{
	if (!RESOLVE(step, "sqlite3_step", sqlite3_step))
		return 21; /* SQLITE_MISUSE */
	if (pl_db_depth || pl_cfg.disabled || !s)
		return sq.step(s);
	int saved = errno;
	xlock();
	struct exec_slot *e = exec_find(s);
	if (!e && (e = exec_claim(s)) != NULL) {
		e->rows = 0;
		xunlock();
		pl_stmt_begin(&e->st); /* outside the lock: it may take others */
	} else {
		xunlock();
	}
	errno = saved;

	pl_db_depth++;
	int rc = sq.step(s);
	pl_db_depth--;

	saved = errno;
	if (rc == SQLITE_ROW) {
		xlock();
		struct exec_slot *r = exec_find(s);
		if (r)
			r->rows++;
		xunlock();
	} else {
		struct exec_slot done;
		if (exec_take(s, &done))
			emit(s, &done, rc);
	}
	errno = saved;
	return rc;
}

/* A reset or finalize in the middle of an execution ends it (a query whose
 * caller stopped fetching early). */
static void end_early(sqlite3_stmt *s)
{
	struct exec_slot done;
	int saved = errno;
	if (s && exec_take(s, &done))
		emit(s, &done, SQLITE_OK);
	errno = saved;
}

EXPORT int sqlite3_reset(sqlite3_stmt *s)
{
	if (!RESOLVE(reset, "sqlite3_reset", sqlite3_reset))
		return 21;
	if (!pl_db_depth)
		end_early(s);
	return sq.reset(s);
}

EXPORT int sqlite3_finalize(sqlite3_stmt *s)
{
	if (!RESOLVE(finalize, "sqlite3_finalize", sqlite3_finalize))
		return 21;
	if (!pl_db_depth)
		end_early(s);
	return sq.finalize(s);
}

/* A failed prepare is a failed statement (the text never reached a
 * statement object, so report what the caller passed). */
static void prepare_failed(sqlite3 *db, const char *sql, int nbyte, int rc,
                           const struct pl_stmt *st)
{
	if (!resolve_accessors())
		return;
	struct pl_stmt_result res = { .failed = 1 };
	char code[16];
	snprintf(code, sizeof code, "%d", rc & 0xff);
	res.code = code;
	res.message = sq.errmsg(db);
	size_t len = sql ? (nbyte >= 0 ? strnlen(sql, (size_t)nbyte) : strlen(sql)) : 0;
	pl_stmt_end(st, AP_DB_SQLITE, sql, len, &res);
}

#define PREPARE_BODY(call) \
	do { \
		if (pl_db_depth || pl_cfg.disabled) \
			return call; \
		struct pl_stmt st; \
		pl_stmt_begin(&st); \
		pl_db_depth++; \
		int rc = call; \
		pl_db_depth--; \
		if (rc != SQLITE_OK) { \
			int saved = errno; \
			prepare_failed(db, sql, nbyte, rc, &st); \
			errno = saved; \
		} \
		return rc; \
	} while (0)

EXPORT int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int nbyte, sqlite3_stmt **out,
                              const char **tail)
{
	if (!RESOLVE(prepare_v2, "sqlite3_prepare_v2", sqlite3_prepare_v2))
		return 21;
	PREPARE_BODY(sq.prepare_v2(db, sql, nbyte, out, tail));
}

EXPORT int sqlite3_prepare(sqlite3 *db, const char *sql, int nbyte, sqlite3_stmt **out,
                           const char **tail)
{
	if (!RESOLVE(prepare, "sqlite3_prepare", sqlite3_prepare))
		return 21;
	PREPARE_BODY(sq.prepare(db, sql, nbyte, out, tail));
}

EXPORT int sqlite3_prepare_v3(sqlite3 *db, const char *sql, int nbyte, unsigned flags,
                              sqlite3_stmt **out, const char **tail)
{
	if (!RESOLVE(prepare_v3, "sqlite3_prepare_v3", sqlite3_prepare_v3))
		return 21;
	PREPARE_BODY(sq.prepare_v3(db, sql, nbyte, flags, out, tail));
}

EXPORT int sqlite3_exec(sqlite3 *db, const char *sql,
                        int (*cb)(void *, int, char **, char **), void *arg, char **err)
{
	if (!RESOLVE(exec, "sqlite3_exec", sqlite3_exec))
		return 21;
	if (pl_db_depth || pl_cfg.disabled || !sql)
		return sq.exec(db, sql, cb, arg, err);
	struct pl_stmt st;
	pl_stmt_begin(&st);
	pl_db_depth++;
	int rc = sq.exec(db, sql, cb, arg, err);
	pl_db_depth--;
	int saved = errno;
	if (resolve_accessors()) {
		struct pl_stmt_result res = { 0 };
		char code[16];
		if (rc != SQLITE_OK) {
			res.failed = 1;
			snprintf(code, sizeof code, "%d", rc & 0xff);
			res.code = code;
			res.message = sq.errmsg(db);
		} else {
			res.rows = (uint64_t)sq.changes(db);
			res.rows_known = 1;
		}
		pl_stmt_end(&st, AP_DB_SQLITE, sql, strlen(sql), &res);
	}
	errno = saved;
	return rc;
}

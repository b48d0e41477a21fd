/*
 * deepbind_mod.c - a module of tests/servers/deepbind.c, built by
 * tests/integration/sqlite.sh with -DTABLE='"lazy_t"' (linked -z lazy) and
 * -DTABLE='"now_t"' (-z now), linked against the system libsqlite3.
 *
 * deepbind_run(db) runs three statements on db through the hooked
 * functions: CREATE TABLE (sqlite3_exec), INSERT and SELECT count(*)
 * (sqlite3_prepare_v2, sqlite3_step, sqlite3_finalize). 0, or -1 when one
 * failed. deepbind_prepare_fn() is what this module's reference to
 * sqlite3_prepare_v2 is bound to (its GLOB_DAT slot): libsqlite3's
 * function, or our hook once the slot is patched.
 */
#include <stddef.h>

#include <sqlite3.h>

#ifndef TABLE
#error "build with -DTABLE='\"lazy_t\"'"
#endif

static int one(sqlite3 *db, const char *sql, int want)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == want ? 0 : -1;
}

__attribute__((visibility("default"))) int deepbind_run(sqlite3 *db)
{
	if (sqlite3_exec(db, "CREATE TABLE " TABLE " (x INTEGER)", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	if (one(db, "INSERT INTO " TABLE " VALUES (1)", SQLITE_DONE) < 0)
		return -1;
	return one(db, "SELECT count(*) FROM " TABLE, SQLITE_ROW);
}

__attribute__((visibility("default"))) void *deepbind_prepare_fn(void)
{
	return (void *)&sqlite3_prepare_v2;
}

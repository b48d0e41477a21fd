/*
 * twosqlite_mod.c - a module of tests/servers/twocopies.c, built by
 * tests/integration/twosqlite.sh at test time, once per copy of libsqlite3:
 * -DCOPY='"A"' -DTABLE='"ta"', linked against its own copy (libcopyA.so.0,
 * a renamed copy of the system library).
 *
 * Its constructor installs a log callback in its copy (SQLITE_CONFIG_LOG is
 * per copy, and only allowed before the copy is initialised): the syntax
 * error of each run is logged by the copy that really prepared it, so the
 * output shows "log A" in module A's lines only when module A's statements
 * ran in copy A.
 *
 * twocopies_run(dir, out, cap) runs, on the database dir/COPY.db, through
 * the hooked functions, six statements: CREATE TABLE IF NOT EXISTS
 * (sqlite3_exec), three INSERTs of one prepared statement (sqlite3_step,
 * sqlite3_reset), a SELECT reading them back, and a prepare that fails; it
 * writes one line describing the results into out. Returns 0, or -1 when something other than the
 * expected failure failed (the line says what).
 */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#ifndef COPY
#error "build with -DCOPY='\"A\"' -DTABLE='\"ta\"'"
#endif

static char logged[256];

static void log_cb(void *arg, int code, const char *msg)
{
	(void)arg;
	size_t n = strlen(logged);
	snprintf(logged + n, sizeof logged - n, "[log %s %d %s]", COPY, code, msg);
}

__attribute__((constructor)) static void twosqlite_init(void)
{
	sqlite3_config(SQLITE_CONFIG_LOG, log_cb, NULL);
}

__attribute__((visibility("default"))) int twocopies_run(const char *dir, char *out,
                                                         size_t cap)
{
	char dbpath[4096];
	snprintf(dbpath, sizeof dbpath, "%s/%s.db", dir, COPY);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc;
	logged[0] = '\0';
	if (sqlite3_open(dbpath, &db) != SQLITE_OK) {
		snprintf(out, cap, "%s: open failed", COPY);
		return -1;
	}
	rc = sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS " TABLE " (k INTEGER PRIMARY KEY, v TEXT)",
	                  NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	rc = sqlite3_prepare_v2(db, "INSERT INTO " TABLE " (v) VALUES (?)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	for (int i = 0; i < 3; i++) {
		char v[32];
		snprintf(v, sizeof v, "%s%d", COPY, i);
		sqlite3_bind_text(st, 1, v, -1, SQLITE_TRANSIENT);
		if ((rc = sqlite3_step(st)) != SQLITE_DONE)
			goto fail;
		if ((rc = sqlite3_reset(st)) != SQLITE_OK)
			goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = sqlite3_prepare_v2(db, "SELECT count(*), group_concat(v, '') FROM " TABLE, -1, &st,
	                        NULL);
	if (rc != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		goto fail;
	int rows = sqlite3_column_int(st, 0);
	const unsigned char *all = sqlite3_column_text(st, 1);
	char vals[64];
	snprintf(vals, sizeof vals, "%.12s...", all ? (const char *)all : "");
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	/* The expected failure: logged by the copy that prepared it. */
	int bad = sqlite3_prepare_v2(db, "SELEC oops FROM " TABLE, -1, &st, NULL);
	snprintf(out, cap, "%s: %s rows %d values %s; bad prepare %d (%s) %s", COPY,
	         sqlite3_libversion(), rows, vals, bad, sqlite3_errmsg(db), logged);
	sqlite3_close(db);
	return 0;
fail:
	snprintf(out, cap, "%s: rc %d: %s", COPY, rc, sqlite3_errmsg(db));
	if (st)
		sqlite3_finalize(st);
	sqlite3_close(db);
	return -1;
}

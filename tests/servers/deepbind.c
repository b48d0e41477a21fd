/*
 * deepbind - modules loaded RTLD_DEEPBIND, as PHP loads its extensions,
 * for tests/integration/sqlite.sh.
 *
 * Usage: deepbind LAZY.so NOW.so
 *
 * Runs "SELECT 1" itself (linked against libsqlite3, through the global
 * scope: our hook), dlopen()s LAZY.so with RTLD_LAZY | RTLD_DEEPBIND and
 * NOW.so with RTLD_NOW | RTLD_DEEPBIND (each tests/servers/deepbind_mod.c,
 * linked against libsqlite3: their references bind to it before the global
 * scope, past our hooks), waits 300 ms (the preload's shipper scans the
 * loaded objects meanwhile), then runs each module's deepbind_run() on one
 * in-memory database. Exit 0 when every statement succeeded.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <time.h>

#include <sqlite3.h>

typedef int (*run_fn)(sqlite3 *);

static run_fn load(const char *path, int mode)
{
	void *h = dlopen(path, mode | RTLD_DEEPBIND);
	run_fn f = h ? (run_fn)dlsym(h, "deepbind_run") : NULL;
	if (!f)
		fprintf(stderr, "deepbind: %s\n", dlerror());
	return f;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: deepbind LAZY.so NOW.so\n");
		return 2;
	}
	sqlite3 *db = NULL;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    sqlite3_exec(db, "SELECT 1", NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "deepbind: sqlite3 failed\n");
		return 1;
	}
	run_fn lazy = load(argv[1], RTLD_LAZY), now = load(argv[2], RTLD_NOW);
	if (!lazy || !now)
		return 2;
	struct timespec wait = { 0, 300 * 1000000L };
	nanosleep(&wait, NULL);
	int bad = lazy(db) < 0;
	bad |= now(db) < 0;
	sqlite3_close(db);
	if (bad)
		fprintf(stderr, "deepbind: a statement failed\n");
	return bad;
}

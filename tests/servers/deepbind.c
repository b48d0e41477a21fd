/*
 * deepbind - modules loaded RTLD_DEEPBIND, as PHP loads its extensions,
 * for tests/integration/sqlite.sh.
 *
 * Usage: deepbind [-f] LAZY.so NOW.so
 *
 * Runs "SELECT 1" itself (linked against libsqlite3, through the global
 * scope: our hook), dlopen()s LAZY.so with RTLD_LAZY | RTLD_DEEPBIND and
 * NOW.so with RTLD_NOW | RTLD_DEEPBIND (each tests/servers/deepbind_mod.c,
 * linked against libsqlite3: their references bind to it before the global
 * scope, past our hooks), waits 300 ms (the preload's shipper scans the
 * loaded objects meanwhile), then runs each module's deepbind_run() on one
 * in-memory database. Exit 0 when every statement succeeded.
 *
 * With -f, as php-fpm's master: no statement and no wait; the modules
 * loaded, it forks at once. No shipper thread has run in either process
 * (neither has recorded anything), so only the fork handler's scan can
 * have patched the modules: the child checks, before any statement, that
 * each module's reference to sqlite3_prepare_v2 is the global scope's
 * (our hook; exit 3 if not), runs the statements and exits; the exit
 * status is the child's.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* Each module's statements on one in-memory database: 0 when all
 * succeeded. */
static int run_both(run_fn lazy, run_fn now)
{
	sqlite3 *db = NULL;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		return 1;
	int bad = lazy(db) < 0;
	bad |= now(db) < 0;
	sqlite3_close(db);
	if (bad)
		fprintf(stderr, "deepbind: a statement failed\n");
	return bad;
}

int main(int argc, char **argv)
{
	int fork_first = argc == 4 && strcmp(argv[1], "-f") == 0;
	if (argc != 3 && !fork_first) {
		fprintf(stderr, "usage: deepbind [-f] LAZY.so NOW.so\n");
		return 2;
	}
	if (fork_first) {
		run_fn lazy = load(argv[2], RTLD_LAZY), now = load(argv[3], RTLD_NOW);
		if (!lazy || !now)
			return 2;
		pid_t pid = fork();
		if (pid < 0) {
			perror("deepbind: fork");
			return 2;
		}
		if (pid == 0) {
			void *hook = dlsym(RTLD_DEFAULT, "sqlite3_prepare_v2");
			for (int i = 2; i < 4; i++) {
				void *h = dlopen(argv[i], RTLD_LAZY | RTLD_NOLOAD);
				void *(*fn)(void) = h ? (void *(*)(void))dlsym(h, "deepbind_prepare_fn") : NULL;
				if (!fn || fn() != hook) {
					fprintf(stderr, "deepbind: %s reaches sqlite3_prepare_v2 at %p, not %p\n",
					        argv[i], fn ? fn() : NULL, hook);
					return 3;
				}
			}
			return run_both(lazy, now);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
			return 2;
		return WEXITSTATUS(status);
	}
	sqlite3 *db = NULL;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    sqlite3_exec(db, "SELECT 1", NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "deepbind: sqlite3 failed\n");
		return 1;
	}
	sqlite3_close(db);
	run_fn lazy = load(argv[1], RTLD_LAZY), now = load(argv[2], RTLD_NOW);
	if (!lazy || !now)
		return 2;
	struct timespec wait = { 0, 300 * 1000000L };
	nanosleep(&wait, NULL);
	return run_both(lazy, now);
}

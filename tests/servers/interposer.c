/*
 * interposer.c - a library interposed on one function of each hooked
 * client library, as a host may preload one (a tracer, a test stub, a
 * connection pooler wrapping PQexec alone), for
 * tests/integration/interpose.sh.
 *
 * Built twice by tests/Makefile.am, each defining one function per library
 * and nothing else of it:
 *   interposer_first.so  (-DINTERPOSE_FIRST) the first name of each
 *                        library's table in the preload (preload/hook_*.c):
 *                        sqlite3_prepare_v2, PQexec, mysql_query, the name
 *                        whose definition the preload identifies a copy by
 *   interposer_later.so  (-DINTERPOSE_LATER) a later name of each
 *                        table: sqlite3_prepare_v3, PQexecParams,
 *                        mysql_real_query
 * Each definition appends the line "NAME<TAB>SQL" (the SQL cut at 200
 * bytes) to the file named by $INTERPOSER_LOG, when set, then calls the
 * next definition (dlsym(RTLD_NEXT): the preload's hook or the library
 * itself, whichever follows in the global scope) with the same arguments
 * and returns its result unchanged, errno included. No client library
 * header is needed: the handles are opaque.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
typedef unsigned int Oid;
typedef struct st_mysql MYSQL;

/* Appends "name<TAB>sql" (len bytes of sql at most, 200 at most) to
 * $INTERPOSER_LOG; one write with O_APPEND, so lines never interleave.
 * Failures are ignored: the test finds the line missing. Preserves errno. */
static void note(const char *name, const char *sql, size_t len)
{
	int saved = errno;
	const char *path = getenv("INTERPOSER_LOG");
	if (path) {
		char line[256];
		size_t n = strlen(name), m = sql ? strnlen(sql, len < 200 ? len : 200) : 0;
		memcpy(line, name, n);
		line[n++] = '\t';
		memcpy(line + n, sql, m);
		n += m;
		line[n++] = '\n';
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0) {
			if (write(fd, line, n) < 0) {
				/* ignored: see above */
			}
			close(fd);
		}
	}
	errno = saved;
}

/* next: the definition after ours, looked up once. */
#define NEXT(fn) \
	static __typeof__(fn) *next; \
	if (!next) \
		*(void **)&next = dlsym(RTLD_NEXT, #fn)

#if defined(INTERPOSE_FIRST) == defined(INTERPOSE_LATER)
#error "build with -DINTERPOSE_FIRST or -DINTERPOSE_LATER"
#elif defined(INTERPOSE_FIRST)

EXPORT int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int nbyte, sqlite3_stmt **out,
                              const char **tail);
EXPORT int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int nbyte, sqlite3_stmt **out,
                              const char **tail)
{
	NEXT(sqlite3_prepare_v2);
	note("sqlite3_prepare_v2", sql, nbyte < 0 ? SIZE_MAX : (size_t)nbyte);
	return next(db, sql, nbyte, out, tail);
}

EXPORT PGresult *PQexec(PGconn *conn, const char *query);
EXPORT PGresult *PQexec(PGconn *conn, const char *query)
{
	NEXT(PQexec);
	note("PQexec", query, SIZE_MAX);
	return next(conn, query);
}

EXPORT int mysql_query(MYSQL *m, const char *query);
EXPORT int mysql_query(MYSQL *m, const char *query)
{
	NEXT(mysql_query);
	note("mysql_query", query, SIZE_MAX);
	return next(m, query);
}

#else

EXPORT int sqlite3_prepare_v3(sqlite3 *db, const char *sql, int nbyte, unsigned flags,
                              sqlite3_stmt **out, const char **tail);
EXPORT int sqlite3_prepare_v3(sqlite3 *db, const char *sql, int nbyte, unsigned flags,
                              sqlite3_stmt **out, const char **tail)
{
	NEXT(sqlite3_prepare_v3);
	note("sqlite3_prepare_v3", sql, nbyte < 0 ? SIZE_MAX : (size_t)nbyte);
	return next(db, sql, nbyte, flags, out, tail);
}

EXPORT PGresult *PQexecParams(PGconn *conn, const char *command, int n, const Oid *types,
                              const char *const *values, const int *lengths, const int *formats,
                              int result_format);
EXPORT PGresult *PQexecParams(PGconn *conn, const char *command, int n, const Oid *types,
                              const char *const *values, const int *lengths, const int *formats,
                              int result_format)
{
	NEXT(PQexecParams);
	note("PQexecParams", command, SIZE_MAX);
	return next(conn, command, n, types, values, lengths, formats, result_format);
}

EXPORT int mysql_real_query(MYSQL *m, const char *query, unsigned long len);
EXPORT int mysql_real_query(MYSQL *m, const char *query, unsigned long len)
{
	NEXT(mysql_real_query);
	note("mysql_real_query", query, len);
	return next(m, query, len);
}

#endif

/*
 * pq17shim.c - a stand-in for libpq 17's close functions, for a libpq
 * older than 17 (Debian 12 ships 15), loaded by sqlclients.c with
 * RTLD_GLOBAL before its first libpq call only when the running libpq
 * lacks them: PQsendClosePrepared/Portal and PQclosePrepared/Portal.
 *
 * Each sends the matching Describe instead of a Close (the real
 * library's own describe, found through its handle: never through a
 * preloaded hook), which answers the same way on the wire a close does:
 * in pipeline mode one PGRES_COMMAND_OK result then NULL; synchronously
 * one PGRES_COMMAND_OK result. So the preload's hook of the close, found
 * by dlsym(RTLD_NEXT) here as it would be in libpq 17, is exercised on a
 * connection whose command order is the real one. The statement or
 * portal must exist (a describe of a missing one fails; a close does not).
 */
#include <dlfcn.h>
#include <stddef.h>

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

/* The running libpq's own definition of name, or NULL. */
static void *real(const char *name)
{
	void *h = dlopen("libpq.so.5", RTLD_NOLOAD | RTLD_LAZY);
	return h ? dlsym(h, name) : NULL;
}

int PQsendClosePrepared(PGconn *conn, const char *name)
{
	int (*f)(PGconn *, const char *) = (int (*)(PGconn *, const char *))real("PQsendDescribePrepared");
	return f ? f(conn, name) : 0;
}

int PQsendClosePortal(PGconn *conn, const char *name)
{
	int (*f)(PGconn *, const char *) = (int (*)(PGconn *, const char *))real("PQsendDescribePortal");
	return f ? f(conn, name) : 0;
}

PGresult *PQclosePrepared(PGconn *conn, const char *name)
{
	PGresult *(*f)(PGconn *, const char *) =
	        (PGresult * (*)(PGconn *, const char *)) real("PQdescribePrepared");
	return f ? f(conn, name) : NULL;
}

PGresult *PQclosePortal(PGconn *conn, const char *name)
{
	PGresult *(*f)(PGconn *, const char *) =
	        (PGresult * (*)(PGconn *, const char *)) real("PQdescribePortal");
	return f ? f(conn, name) : NULL;
}

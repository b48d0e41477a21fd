/*
 * fakepq.c - a stand-in for libpq on one magic connection, for the
 * in-process measurement of tests/bench/pqbench.c (--fake).
 *
 * A statement's round trip to a server costs tens of microseconds of which
 * most is the kernel's, and varies from run to run by more than the
 * preload adds, so timing the hook around real statements mostly measures
 * that noise. Preloaded after libapiprof.so
 * (LD_PRELOAD=libapiprof.so:libfakepq.so), this library is what the
 * preload's dlsym(RTLD_NEXT) resolves PQexec and the result accessors to:
 * on FAKEPQ_CONN, PQexec returns FAKEPQ_RESULT at once, a result of one
 * row (PGRES_TUPLES_OK), so "through the hook" minus "straight to this
 * function" is the hook's own cost: timing, normalising, fingerprinting,
 * encoding and buffering the statement. Any other connection or result is
 * passed to the next definition (the real libpq), so the rest of the
 * process works as usual.
 *
 * Unlike the real PQexec, this one does not call PQsendQuery and
 * PQgetResult through its PLT, so the preload's pass-through of those inner
 * calls (about 100 instructions per statement, see the callgrind part) is
 * not in this figure.
 *
 * Build: gcc -O2 -shared -fPIC -o libfakepq.so fakepq.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

#include "fakepq.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

enum { PGRES_TUPLES_OK = 2 }; /* libpq's stable ABI */

static PGresult *(*next_exec)(PGconn *, const char *);
static int (*next_result_status)(const PGresult *);
static int (*next_ntuples)(const PGresult *);
static char *(*next_cmd_tuples)(PGresult *);
static char *(*next_error_field)(const PGresult *, int);
static void (*next_clear)(PGresult *);

#define NEXT(p, name) \
	do { \
		if (!(p)) \
			*(void **)&(p) = dlsym(RTLD_NEXT, name); \
	} while (0)

EXPORT PGresult *PQexec(PGconn *conn, const char *query)
{
	if (conn == FAKEPQ_CONN)
		return FAKEPQ_RESULT;
	NEXT(next_exec, "PQexec");
	return next_exec(conn, query);
}

EXPORT int PQresultStatus(const PGresult *r)
{
	if (r == FAKEPQ_RESULT)
		return PGRES_TUPLES_OK;
	NEXT(next_result_status, "PQresultStatus");
	return next_result_status(r);
}

EXPORT int PQntuples(const PGresult *r)
{
	if (r == FAKEPQ_RESULT)
		return 1;
	NEXT(next_ntuples, "PQntuples");
	return next_ntuples(r);
}

EXPORT char *PQcmdTuples(PGresult *r)
{
	if (r == FAKEPQ_RESULT)
		return (char *)"";
	NEXT(next_cmd_tuples, "PQcmdTuples");
	return next_cmd_tuples(r);
}

EXPORT char *PQresultErrorField(const PGresult *r, int field)
{
	if (r == FAKEPQ_RESULT)
		return NULL;
	NEXT(next_error_field, "PQresultErrorField");
	return next_error_field(r, field);
}

EXPORT void PQclear(PGresult *r)
{
	if (r == FAKEPQ_RESULT)
		return;
	NEXT(next_clear, "PQclear");
	next_clear(r);
}

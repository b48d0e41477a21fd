/*
 * twopq_mod.c - a module of tests/servers/twocopies.c, built by
 * tests/integration/twopq.sh at test time, once per copy of libpq:
 * -DCOPY='"A"' -DTABLE='"pa"', linked against its own copy (libpA.so.5, a
 * renamed copy of the system library in which the message "number of
 * parameters must be between" reads "mustAbe": twolib.sh marks each copy).
 *
 * twocopies_run(conninfo, out, cap) connects, then runs through the hooked
 * functions seven statements: CREATE TABLE IF NOT EXISTS (PQexec), three
 * INSERTs (PQexecParams), a PQprepare and a PQexecPrepared counting the
 * rows, a PQsendQuery read with PQgetResult; then a PQexecParams with
 * 70,000 parameters, which libpq refuses itself, with its copy's message:
 * the line shows which copy ran the module's call. PQfinish at the end.
 * Returns 0, or -1 when something else failed (the line says what).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#ifndef COPY
#error "build with -DCOPY='\"A\"' -DTABLE='\"pa\"'"
#endif

static int ok(PGresult *r, ExecStatusType want, char *why, size_t cap)
{
	int good = r && PQresultStatus(r) == want;
	if (!good)
		snprintf(why, cap, "%s", r ? PQresultErrorMessage(r) : "no result");
	PQclear(r);
	return good;
}

__attribute__((visibility("default"))) int twocopies_run(const char *conninfo, char *out,
                                                         size_t cap)
{
	char why[256] = "";
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(out, cap, "%s: connect: %s", COPY, PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	if (!ok(PQexec(c, "CREATE TABLE IF NOT EXISTS " TABLE " (k serial PRIMARY KEY, v text)"),
	        PGRES_COMMAND_OK, why, sizeof why))
		goto fail;
	for (int i = 0; i < 3; i++) {
		char v[16];
		snprintf(v, sizeof v, "%s%d", COPY, i);
		const char *vals[1] = { v };
		if (!ok(PQexecParams(c, "INSERT INTO " TABLE " (v) VALUES ($1)", 1, NULL, vals, NULL,
		                     NULL, 0),
		        PGRES_COMMAND_OK, why, sizeof why))
			goto fail;
	}
	if (!ok(PQprepare(c, "count_" TABLE, "SELECT count(*) FROM " TABLE, 0, NULL),
	        PGRES_COMMAND_OK, why, sizeof why))
		goto fail;
	PGresult *r = PQexecPrepared(c, "count_" TABLE, 0, NULL, NULL, NULL, 0);
	int rows = r && PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
	PQclear(r);
	if (!PQsendQuery(c, "SELECT 42")) {
		snprintf(why, sizeof why, "%s", PQerrorMessage(c));
		goto fail;
	}
	int answer = -1;
	while ((r = PQgetResult(c)) != NULL) {
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			answer = atoi(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	/* The copy's own message, marked with its letter. */
	r = PQexecParams(c, "SELECT 1", 70000, NULL, NULL, NULL, NULL, 0);
	char msg[160];
	snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
	msg[strcspn(msg, "\n")] = '\0';
	PQclear(r);
	snprintf(out, cap, "%s: rows %d, async %d, refused: %s", COPY, rows, answer, msg);
	PQfinish(c);
	return 0;
fail:
	snprintf(out, cap, "%s: %s", COPY, why);
	PQfinish(c);
	return -1;
}

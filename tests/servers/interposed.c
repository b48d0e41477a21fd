/*
 * interposed - a program linked against libsqlite3 and libpq, calling them
 * straight (both in the global scope), for tests/integration/interpose.sh,
 * which runs it under a library interposed on one of their functions
 * (tests/servers/interposer.c), with and without the preload, and
 * compares what it prints.
 *
 * Usage:
 *   interposed sqlite DB       on DB, which holds the empty table
 *                              ipx (k INTEGER PRIMARY KEY, v TEXT): seven
 *                              statements, each prepared, stepped to its
 *                              end and finalized; the 1st, 3rd, 5th and
 *                              7th prepared with sqlite3_prepare_v2, the
 *                              others with sqlite3_prepare_v3
 *   interposed pq CONNINFO     seven statements on a temporary table ipx
 *                              (gone with the session: every run starts
 *                              alike): the 1st, 3rd, 5th and 7th through
 *                              PQexec, the others through PQexecParams
 * Every statement names the table ipx; the program runs no other. Prints
 * one line per statement: its number, the function that ran it, and what
 * came back (the rows read, the changes, or the error). Exit 0 when every
 * statement succeeded, 1 when one failed (its line says how), 2 when the
 * database could not be opened or the usage is wrong.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#define NSTMT 7

/* Appends a then b to the string in buf (cap bytes), cut to fit. */
static void append(char *buf, size_t cap, const char *a, const char *b)
{
	size_t n = strlen(buf);
	snprintf(buf + n, cap - n, "%s%s", a, b);
}

/* ---- libsqlite3 ---- */

static const char *const sq_sql[NSTMT] = {
	"INSERT INTO ipx (v) VALUES ('a')",
	"INSERT INTO ipx (v) VALUES ('b')",
	"INSERT INTO ipx (v) VALUES ('c')",
	"SELECT count(*), group_concat(v, ',') FROM ipx",
	"UPDATE ipx SET v = upper(v) WHERE v <> 'b'",
	"SELECT k, v FROM ipx ORDER BY k",
	"DELETE FROM ipx WHERE v = 'b'",
};

/* Runs statement i on db and prints its line; 0, or -1 when it failed. */
static int sq_run(sqlite3 *db, int i)
{
	const char *how = i % 2 ? "sqlite3_prepare_v3" : "sqlite3_prepare_v2";
	sqlite3_stmt *st = NULL;
	int rc = i % 2 ? sqlite3_prepare_v3(db, sq_sql[i], -1, 0, &st, NULL)
	               : sqlite3_prepare_v2(db, sq_sql[i], -1, &st, NULL);
	if (rc != SQLITE_OK || !st) {
		printf("%d %s: prepare failed (%d): %s\n", i + 1, how, rc, sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return -1;
	}
	char rows[512] = "";
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int c = 0; c < sqlite3_column_count(st); c++) {
			const unsigned char *v = sqlite3_column_text(st, c);
			append(rows, sizeof rows, c ? "|" : " [", v ? (const char *)v : "NULL");
		}
		append(rows, sizeof rows, "]", "");
	}
	if (rc != SQLITE_DONE) {
		printf("%d %s: step failed (%d): %s\n", i + 1, how, rc, sqlite3_errmsg(db));
		sqlite3_finalize(st);
		return -1;
	}
	printf("%d %s: done, %d changes%s\n", i + 1, how,
	       sqlite3_stmt_readonly(st) ? 0 : sqlite3_changes(db), rows);
	return sqlite3_finalize(st) == SQLITE_OK ? 0 : -1;
}

static int run_sqlite(const char *path)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		fprintf(stderr, "interposed: %s: %s\n", path, db ? sqlite3_errmsg(db) : "no memory");
		sqlite3_close(db);
		return 2;
	}
	int bad = 0;
	for (int i = 0; i < NSTMT; i++)
		bad |= sq_run(db, i);
	sqlite3_close(db);
	return bad ? 1 : 0;
}

/* ---- libpq ---- */

static const char *const pq_sql[NSTMT] = {
	"CREATE TEMPORARY TABLE ipx (k serial PRIMARY KEY, v text)",
	"INSERT INTO ipx (v) VALUES ($1)",
	"INSERT INTO ipx (v) VALUES ('b')",
	"SELECT count(*), string_agg(v, ',' ORDER BY k) FROM ipx WHERE v > $1",
	"UPDATE ipx SET v = upper(v) WHERE v <> 'b'",
	"SELECT k, v FROM ipx WHERE k > $1 ORDER BY k",
	"DELETE FROM ipx WHERE v = 'b'",
};
static const char *const pq_param[NSTMT] = { NULL, "a", NULL, "", NULL, "0", NULL };

/* Runs statement i on conn and prints its line; 0, or -1 when it failed. */
static int pq_run(PGconn *conn, int i)
{
	const char *how = i % 2 ? "PQexecParams" : "PQexec";
	PGresult *r = i % 2 ? PQexecParams(conn, pq_sql[i], 1, NULL, &pq_param[i], NULL, NULL, 0)
	                    : PQexec(conn, pq_sql[i]);
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		printf("%d %s: failed (%s): %s", i + 1, how, r ? PQresStatus(s) : "no result",
		       r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
		PQclear(r);
		return -1;
	}
	char rows[512] = "";
	for (int t = 0; t < PQntuples(r); t++) {
		for (int c = 0; c < PQnfields(r); c++)
			append(rows, sizeof rows, c ? "|" : " [", PQgetvalue(r, t, c));
		append(rows, sizeof rows, "]", "");
	}
	printf("%d %s: %s %s%s\n", i + 1, how, PQresStatus(s), PQcmdStatus(r), rows);
	PQclear(r);
	return 0;
}

static int run_pq(const char *conninfo)
{
	PGconn *conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "interposed: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return 2;
	}
	int bad = 0;
	for (int i = 0; i < NSTMT; i++)
		bad |= pq_run(conn, i);
	PQfinish(conn);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "sqlite") == 0)
		return run_sqlite(argv[2]);
	if (argc == 3 && strcmp(argv[1], "pq") == 0)
		return run_pq(argv[2]);
	fprintf(stderr, "usage: interposed sqlite DB | interposed pq CONNINFO\n");
	return 2;
}

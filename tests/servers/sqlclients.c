/*
 * sqlclients.c - client-library usage that the SQL hooks must follow
 * exactly, run under the preload by tests/integration/sqlclients.sh (no
 * HTTP: every statement counts for the service alone, in
 * /api/v1/queries). Built at test time (no MySQL header is needed:
 * mysql_decls.h).
 *
 *   sqlclients pq CONNINFO SHIM
 *     1. Pipeline mode (libpq 14; psycopg 3's executemany): three INSERTs
 *        (PQsendQueryParams), a SELECT count(*), PQsendPrepare of an
 *        UPDATE, PQsendDescribePrepared of it (a command, not a
 *        statement), its PQsendQueryPrepared, one PQpipelineSync; every
 *        result read, NULLs and the sync result included.
 *     2. A pipeline whose first statement fails (division by zero): the
 *        second is aborted (PGRES_PIPELINE_ABORTED).
 *     3. A statement whose final NULL is never read before the next
 *        command: PQsendQuery, its one result, then PQexec (which drains
 *        the NULL itself); and PQsendQuery, its result, then another
 *        PQsendQuery.
 *     4. libpq 17's closes (SHIM, pq17shim.so, stands in for them with a
 *        libpq older than 17): a pipeline of a SELECT, PQsendClosePortal,
 *        PQsendClosePrepared and a failing SELECT; then a statement whose
 *        NULL is not read before a synchronous PQclosePrepared.
 *   sqlclients my HOST PORT USER PASSWORD DB
 *     An INSERT through mysql_query and an UPDATE through
 *     mysql_send_query + mysql_read_query_result, neither followed by
 *     mysql_store_result (C callers, Perl's DBD::MariaDB), each followed
 *     by 500 ms of other work, then a SELECT read by mysql_store_result.
 *     Multi-statement queries (CLIENT_MULTI_STATEMENTS), each result read
 *     by mysql_store_result and mysql_next_result: an INSERT, a SELECT
 *     and an INSERT of a duplicate key (the third fails), then an UPDATE
 *     and a SELECT (both succeed).
 *     Prepared SELECTs (mysql2, DBD::mysql): one executed twice, each
 *     read by mysql_stmt_store_result (3 rows); one read by
 *     mysql_stmt_fetch, then 500 ms of other work before its close.
 *     Then libmariadb's non-blocking API on two more connections,
 *     interleaved: mysql_real_query_start of a 200 ms SELECT on one, of a
 *     100 ms SELECT on the other, an SQLite statement meanwhile, then
 *     both driven by poll and _cont, and their results read by
 *     mysql_store_result_start/_cont.
 *   sqlclients sq PATH CONNINFO
 *     SQLite in memory: sqlite3_exec of a SELECT whose callback runs an
 *     UPDATE (prepare, step, finalize) for each of the 3 rows it is
 *     handed: the UPDATEs are the application's statements; then a
 *     DELETE of those 3 rows and an exec of a SELECT returning none (its
 *     rows are the rows it returned, not the DELETE's 3 changes).
 *     Then, in a database file at PATH with two connections, an INSERT
 *     that meets SQLITE_BUSY (the other holds an exclusive transaction)
 *     and is stepped again, as sqlite3_step allows, until it is done
 *     (the third retry, once the other committed), and another INSERT
 *     given up after two SQLITE_BUSY (reset, finalized).
 *     Between them, SQL the application runs inside SQLite's own calls: a
 *     user function lookup(x) (sqlite3_create_function) that runs a
 *     SELECT on its own connection and an sqlite3_exec on another, called
 *     for each of 3 rows; and a progress handler that runs a SELECT on the
 *     other connection and one on PostgreSQL (CONNINFO) the first time it
 *     is called, during an exec.
 *
 * Exits 0 when every call returned what it should (the same with and
 * without the preload), else prints what differed and exits 1.
 */
#include <dlfcn.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "mysql_decls.h"

/* The "other work" after a statement that must not be timed into it:
 * sqlclients.sh requires each such statement under this long, which a
 * statement timed through it cannot be, however loaded the machine. */
#define OTHER_WORK_US 500000

int mysql_send_query(MYSQL *, const char *, unsigned long);
char mysql_read_query_result(MYSQL *);
/* libmariadb's non-blocking API */
#define MYSQL_OPT_NONBLOCK 6000
#define MYSQL_WAIT_READ 1
#define MYSQL_WAIT_WRITE 2
#define MYSQL_WAIT_TIMEOUT 8
int mysql_options(MYSQL *, int, const void *);
int mysql_real_query_start(int *, MYSQL *, const char *, unsigned long);
int mysql_real_query_cont(int *, MYSQL *, int);
int mysql_store_result_start(MYSQL_RES **, MYSQL *);
int mysql_store_result_cont(MYSQL_RES **, MYSQL *, int);
int mysql_get_socket(MYSQL *);
/* multi-statement queries */
#define CLIENT_MULTI_STATEMENTS (1UL << 16)
int mysql_next_result(MYSQL *);

static int bad;

static void expect(int ok, const char *what)
{
	if (!ok) {
		printf("sqlclients: %s\n", what);
		bad = 1;
	}
}

/* Reads one command's results up to its NULL: the statuses in order, as
 * one string of letters (T tuples, C command, E error, A aborted). */
static void results(PGconn *c, const char *want, const char *what)
{
	char got[16] = "";
	size_t n = 0;
	PGresult *r;
	while ((r = PQgetResult(c)) != NULL) {
		ExecStatusType st = PQresultStatus(r);
		char k = st == PGRES_TUPLES_OK ? 'T' : st == PGRES_COMMAND_OK ? 'C'
		       : st == PGRES_FATAL_ERROR ? 'E' : st == PGRES_PIPELINE_ABORTED ? 'A' : '?';
		if (n + 1 < sizeof got)
			got[n++] = k;
		got[n] = '\0';
		PQclear(r);
	}
	if (strcmp(got, want) != 0) {
		printf("sqlclients: %s: results %s, expected %s (%s)\n", what, got, want,
		       PQerrorMessage(c));
		bad = 1;
	}
}

static void sync_result(PGconn *c, const char *what)
{
	PGresult *r = PQgetResult(c);
	expect(r && PQresultStatus(r) == PGRES_PIPELINE_SYNC, what);
	PQclear(r);
}

/* The sync result ending a pipeline, then out of pipeline mode. */
static void leave_pipeline(PGconn *c, const char *what)
{
	sync_result(c, what);
	expect(PQexitPipelineMode(c), what);
}

/* Sends a query and reads its one result, not the NULL after it. */
static void send_unread(PGconn *c, const char *sql, const char *what)
{
	expect(PQsendQuery(c, sql), what);
	PGresult *r = PQgetResult(c);
	expect(r && PQresultStatus(r) == PGRES_TUPLES_OK, what);
	PQclear(r);
}


/* libpq 17's close functions, called as a program built against libpq 17
 * calls them: the preload's hooks when preloaded. An older libpq lacks
 * them: then the test's stand-in (pq17shim.c, at `shim`) defines them, in
 * the global scope, before the first libpq call. */
static int (*send_close_prepared)(PGconn *, const char *);
static int (*send_close_portal)(PGconn *, const char *);
static PGresult *(*close_prepared)(PGconn *, const char *);

static int find_closes(const char *shim)
{
	void *pq = dlopen("libpq.so.5", RTLD_NOLOAD | RTLD_LAZY);
	if (!(pq && dlsym(pq, "PQsendClosePrepared")) && !dlopen(shim, RTLD_NOW | RTLD_GLOBAL)) {
		printf("sqlclients: libpq has no PQsendClosePrepared, and %s: %s\n", shim, dlerror());
		return 0;
	}
	*(void **)&send_close_prepared = dlsym(RTLD_DEFAULT, "PQsendClosePrepared");
	*(void **)&send_close_portal = dlsym(RTLD_DEFAULT, "PQsendClosePortal");
	*(void **)&close_prepared = dlsym(RTLD_DEFAULT, "PQclosePrepared");
	return send_close_prepared && send_close_portal && close_prepared;
}

/* 4. libpq 17's closes: in a pipeline between two statements (the second
 * fails), and a synchronous one after a result whose NULL was not read. */
static void pq_closes(PGconn *c)
{
	expect(PQenterPipelineMode(c), "PQenterPipelineMode 4");
	expect(PQsendQueryParams(c, "SELECT 4 AS before_close", 0, NULL, NULL, NULL, NULL, 0),
	       "send before_close");
	expect(send_close_portal(c, ""), "PQsendClosePortal");
	expect(send_close_prepared(c, "bump"), "PQsendClosePrepared");
	expect(PQsendQueryParams(c, "SELECT 1/0 AS after_close", 0, NULL, NULL, NULL, NULL, 0),
	       "send after_close");
	expect(PQpipelineSync(c), "PQpipelineSync 4");
	results(c, "T", "before_close");
	results(c, "C", "close portal");
	results(c, "C", "close prepared");
	results(c, "E", "after_close");
	leave_pipeline(c, "pipeline 4");
	send_unread(c, "SELECT 'unread-c' AS left_c", "left_c");
	PGresult *r = close_prepared(c, "bump");
	expect(r && PQresultStatus(r) == PGRES_COMMAND_OK, "PQclosePrepared");
	PQclear(r);
}

static int run_pq(const char *conninfo, const char *shim)
{
	if (!find_closes(shim))
		return 1;
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		printf("sqlclients: connect: %s", PQerrorMessage(c));
		return 1;
	}

	/* 1. A pipeline of six statements and a describe. */
	expect(PQenterPipelineMode(c), "PQenterPipelineMode");
	for (int i = 1; i <= 3; i++) {
		char v[8];
		snprintf(v, sizeof v, "%d", i);
		const char *vals[1] = { v };
		expect(PQsendQueryParams(c, "INSERT INTO pl (id, v) VALUES ($1, 0)", 1, NULL, vals,
		                         NULL, NULL, 0), "send INSERT");
	}
	expect(PQsendQueryParams(c, "SELECT count(*) FROM pl", 0, NULL, NULL, NULL, NULL, 0),
	       "send SELECT");
	expect(PQsendPrepare(c, "bump", "UPDATE pl SET v = v + 7 WHERE id = $1", 1, NULL),
	       "PQsendPrepare");
	expect(PQsendDescribePrepared(c, "bump"), "PQsendDescribePrepared");
	const char *two[1] = { "2" };
	expect(PQsendQueryPrepared(c, "bump", 1, two, NULL, NULL, 0), "PQsendQueryPrepared");
	expect(PQpipelineSync(c), "PQpipelineSync");
	for (int i = 0; i < 3; i++)
		results(c, "C", "pipelined INSERT");
	results(c, "T", "pipelined SELECT");
	results(c, "C", "pipelined prepare");
	results(c, "C", "pipelined describe");
	results(c, "C", "pipelined execution");
	sync_result(c, "pipeline 1 sync");

	/* 2. An aborted pipeline. */
	expect(PQsendQueryParams(c, "SELECT 1/0 AS boom", 0, NULL, NULL, NULL, NULL, 0),
	       "send boom");
	expect(PQsendQueryParams(c, "SELECT 2 AS skipped", 0, NULL, NULL, NULL, NULL, 0),
	       "send skipped");
	expect(PQpipelineSync(c), "PQpipelineSync 2");
	results(c, "E", "boom");
	results(c, "A", "skipped");
	leave_pipeline(c, "pipeline 2");

	/* 3. Final NULLs never read by the caller. */
	send_unread(c, "SELECT 'unread-a' AS left_a", "left_a");
	PGresult *r = PQexec(c, "SELECT 'exec' AS drained_by_exec");
	expect(r && PQresultStatus(r) == PGRES_TUPLES_OK, "PQexec after left_a");
	PQclear(r);
	send_unread(c, "SELECT 'unread-b' AS left_b", "left_b");
	/* The connection is idle once the last result is read: the next send
	 * is allowed, and libpq drops the unread NULL. */
	while (PQisBusy(c))
		PQconsumeInput(c);
	expect(PQsendQuery(c, "SELECT 'after' AS after_b"), "send after_b");
	results(c, "T", "after_b");

	pq_closes(c);

	PQfinish(c);
	return bad;
}

/* Waits for what a suspended non-blocking call needs (status), returns
 * what happened, for its _cont. */
static int my_wait(MYSQL *m, int status)
{
	struct pollfd p = { .fd = mysql_get_socket(m),
	                    .events = (short)((status & MYSQL_WAIT_READ ? POLLIN : 0) |
	                                      (status & MYSQL_WAIT_WRITE ? POLLOUT : 0)) };
	int r = 0;
	if (poll(&p, 1, 5000) > 0) {
		r |= p.revents & (POLLIN | POLLHUP | POLLERR) ? MYSQL_WAIT_READ : 0;
		r |= p.revents & POLLOUT ? MYSQL_WAIT_WRITE : 0;
	}
	return r ? r : MYSQL_WAIT_TIMEOUT;
}

static void my_nonblocking(char **a)
{
	MYSQL *m[2];
	const char *q[2] = { "SELECT SLEEP(0.2) AS nb_one", "SELECT SLEEP(0.1) AS nb_two" };
	int st[2], rc[2];
	sqlite3 *lite = NULL;
	for (int i = 0; i < 2; i++) {
		m[i] = mysql_init(NULL);
		if (!m[i] || !mysql_real_connect(m[i], a[0], a[2], a[3], a[4], (unsigned)atoi(a[1]),
		                                 NULL, 0) ||
		    mysql_options(m[i], MYSQL_OPT_NONBLOCK, NULL) != 0) {
			printf("sqlclients: non-blocking connection %d: %s\n", i,
			       m[i] ? mysql_error(m[i]) : "no handle");
			bad = 1;
			return;
		}
	}
	for (int i = 0; i < 2; i++)
		st[i] = mysql_real_query_start(&rc[i], m[i], q[i], strlen(q[i]));
	expect(st[0] && st[1], "both non-blocking queries wait for the server");
	expect(sqlite3_open(":memory:", &lite) == SQLITE_OK &&
	       sqlite3_exec(lite, "SELECT 'meanwhile' AS nb_between", NULL, NULL, NULL) ==
	               SQLITE_OK, "SQLite meanwhile");
	sqlite3_close(lite);
	while (st[0] || st[1])
		for (int i = 0; i < 2; i++)
			if (st[i])
				st[i] = mysql_real_query_cont(&rc[i], m[i], my_wait(m[i], st[i]));
	for (int i = 0; i < 2; i++) {
		expect(rc[i] == 0, "non-blocking query");
		MYSQL_RES *res = NULL;
		int s2 = mysql_store_result_start(&res, m[i]);
		while (s2)
			s2 = mysql_store_result_cont(&res, m[i], my_wait(m[i], s2));
		expect(res != NULL, "non-blocking result");
		if (res)
			mysql_free_result(res);
		mysql_close(m[i]);
	}
}

/* One multi-statement query: its results read in turn (mysql_store_result
 * of each, mysql_next_result between them); `want` is what each
 * mysql_next_result returns in turn, 0 or 1 (an error) or -1. */
static void my_batch(MYSQL *m, const char *q, const int *want, int n, const char *what)
{
	expect(mysql_query(m, q) == 0, what);
	for (int i = 0;; i++) {
		MYSQL_RES *res = mysql_store_result(m);
		if (res)
			mysql_free_result(res);
		if (i == n)
			break;
		int rc = mysql_next_result(m);
		if ((rc > 0 ? 1 : rc) != want[i]) {
			printf("sqlclients: %s: mysql_next_result %d said %d, expected %d (%s)\n", what,
			       i + 1, rc, want[i], mysql_error(m));
			bad = 1;
		}
		if (rc != 0)
			break;
	}
}

/* Multi-statement queries (CLIENT_MULTI_STATEMENTS): one whose third
 * statement fails (a duplicate key), one that succeeds. */
static void my_multi(char **a)
{
	MYSQL *m = mysql_init(NULL);
	if (!m || !mysql_real_connect(m, a[0], a[2], a[3], a[4], (unsigned)atoi(a[1]), NULL,
	                              CLIENT_MULTI_STATEMENTS)) {
		printf("sqlclients: multi-statement connection: %s\n", m ? mysql_error(m) : "no handle");
		bad = 1;
		return;
	}
	static const int fails[] = { 0, 1 }, succeeds[] = { 0, -1 };
	my_batch(m, "INSERT INTO ml (id, v) VALUES (2, 0); SELECT v FROM ml WHERE id <= 2; "
	            "INSERT INTO ml (id, v) VALUES (2, 0)", fails, 2, "batch failing third");
	expect(mysql_errno(m) == 1062, "the batch's error is the duplicate key");
	my_batch(m, "UPDATE ml SET v = 5 WHERE id = 2; SELECT v FROM ml WHERE id >= 1 -- ok",
	         succeeds, 2, "batch succeeding");
	mysql_close(m);
}

/* Prepared SELECTs read the way Ruby's mysql2 and Perl's DBD::mysql
 * (mysql_server_prepare=1) read them: mysql_stmt_execute, then
 * mysql_stmt_store_result, twice; and one read unbuffered by
 * mysql_stmt_fetch, then 500 ms of other work before its close. */
static void my_stmt(MYSQL *m)
{
	const char *q = "SELECT 1 AS stored UNION ALL SELECT 2 UNION ALL SELECT 3";
	MYSQL_STMT *s = mysql_stmt_init(m);
	expect(s && mysql_stmt_prepare(s, q, strlen(q)) == 0, "mysql_stmt_prepare");
	for (int i = 0; s && i < 2; i++) {
		expect(mysql_stmt_execute(s) == 0, "mysql_stmt_execute");
		expect(mysql_stmt_store_result(s) == 0, "mysql_stmt_store_result");
		expect(mysql_stmt_num_rows(s) == 3, "the execution's 3 rows");
		mysql_stmt_free_result(s);
	}
	if (s)
		mysql_stmt_close(s);
	q = "SELECT 1 AS fetched UNION ALL SELECT 2";
	s = mysql_stmt_init(m);
	expect(s && mysql_stmt_prepare(s, q, strlen(q)) == 0, "mysql_stmt_prepare (fetched)");
	if (!s)
		return;
	expect(mysql_stmt_execute(s) == 0, "mysql_stmt_execute (fetched)");
	int n = 0;
	while (n < 5 && mysql_stmt_fetch(s) == 0)
		n++;
	expect(n == 2, "2 rows fetched unbuffered");
	usleep(OTHER_WORK_US);
	mysql_stmt_close(s);
}

static int run_my(char **a)
{
	MYSQL *m = mysql_init(NULL);
	if (!mysql_real_connect(m, a[0], a[2], a[3], a[4], (unsigned)atoi(a[1]), NULL, 0)) {
		printf("sqlclients: mysql connect: %s\n", mysql_error(m));
		return 1;
	}
	expect(mysql_query(m, "INSERT INTO ml (id, v) VALUES (1, 0)") == 0, "INSERT");
	expect(mysql_field_count(m) == 0 && mysql_affected_rows(m) == 1, "INSERT's result");
	usleep(OTHER_WORK_US);
	const char *u = "UPDATE ml SET v = v + 1 WHERE id = 1";
	expect(mysql_send_query(m, u, strlen(u)) == 0, "mysql_send_query");
	expect(mysql_read_query_result(m) == 0, "mysql_read_query_result");
	expect(mysql_affected_rows(m) == 1, "UPDATE's result");
	usleep(OTHER_WORK_US);
	expect(mysql_query(m, "SELECT v FROM ml WHERE id = 1") == 0, "SELECT");
	MYSQL_RES *res = mysql_store_result(m);
	MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
	expect(row && row[0] && strcmp(row[0], "1") == 0, "SELECT's row");
	if (res)
		mysql_free_result(res);
	my_stmt(m);
	mysql_close(m);
	my_multi(a);
	my_nonblocking(a);
	return bad;
}

static sqlite3 *sq;

/* For each row of the exec's SELECT, one UPDATE of the application's. */
static int bump_row(void *count, int n, char **values, char **names)
{
	(void)names;
	sqlite3_stmt *s = NULL;
	int ok = n == 1 && values[0] &&
	         sqlite3_prepare_v2(sq, "UPDATE st SET x = x + 10 WHERE x = ?", -1, &s, NULL) ==
	                 SQLITE_OK &&
	         sqlite3_bind_int(s, 1, atoi(values[0])) == SQLITE_OK &&
	         sqlite3_step(s) == SQLITE_DONE;
	sqlite3_finalize(s);
	++*(int *)count;
	return ok ? 0 : 1;
}

/* Two executions meeting SQLITE_BUSY: one retried until done, one given up. */
static void sq_busy(const char *path)
{
	sqlite3 *a = NULL, *b = NULL;
	sqlite3_stmt *s1 = NULL, *s2 = NULL;
	unlink(path);
	if (sqlite3_open(path, &a) != SQLITE_OK || sqlite3_open(path, &b) != SQLITE_OK ||
	    sqlite3_exec(a, "CREATE TABLE bt (x int)", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(b, "INSERT INTO bt VALUES (1) -- retried", -1, &s1, NULL) !=
	            SQLITE_OK ||
	    sqlite3_prepare_v2(b, "INSERT INTO bt VALUES (2) -- given up", -1, &s2, NULL) !=
	            SQLITE_OK) {
		printf("sqlclients: busy setup: %s\n", a ? sqlite3_errmsg(a) : "no database");
		bad = 1;
		goto out;
	}
	expect(sqlite3_exec(a, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK, "BEGIN EXCLUSIVE");
	int rc, tries = 0;
	while ((rc = sqlite3_step(s1)) == SQLITE_BUSY && tries < 10) {
		if (++tries == 3)
			expect(sqlite3_exec(a, "COMMIT", NULL, NULL, NULL) == SQLITE_OK, "COMMIT");
	}
	expect(rc == SQLITE_DONE && tries == 3, "the retried INSERT is done at the third retry");
	expect(sqlite3_exec(a, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK,
	       "BEGIN EXCLUSIVE again");
	expect(sqlite3_step(s2) == SQLITE_BUSY && sqlite3_step(s2) == SQLITE_BUSY,
	       "the other INSERT is busy twice");
	sqlite3_reset(s2);
	expect(sqlite3_exec(a, "COMMIT", NULL, NULL, NULL) == SQLITE_OK, "COMMIT again");
out:
	sqlite3_finalize(s1);
	sqlite3_finalize(s2);
	sqlite3_close(a);
	sqlite3_close(b);
}

/* The user function lookup(x), whose body runs SQL: a SELECT on the
 * connection that called it (prepare, step, finalize) and an sqlite3_exec
 * on the other one (its user data). */
static void lookup_fn(sqlite3_context *ctx, int n, sqlite3_value **v)
{
	sqlite3 *other = sqlite3_user_data(ctx);
	sqlite3_stmt *s = NULL;
	int count = -1;
	if (n == 1 &&
	    sqlite3_prepare_v2(sq, "SELECT count(*) FROM ut WHERE x <= ?", -1, &s, NULL) ==
	            SQLITE_OK &&
	    sqlite3_bind_int(s, 1, sqlite3_value_int(v[0])) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		count = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (count < 0 ||
	    sqlite3_exec(other, "SELECT 'udf' AS in_udf_exec", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_result_error(ctx, "lookup failed", -1);
		return;
	}
	sqlite3_result_int(ctx, count);
}

/* A progress handler that, the first time it is called, runs a SELECT on
 * the other connection (prepare, step, finalize) and one on PostgreSQL
 * (PQexec). */
static int progress_runs;
static PGconn *progress_pg;

static int progress_fn(void *p)
{
	sqlite3 *other = p;
	sqlite3_stmt *s = NULL;
	if (progress_runs++ != 0)
		return 0;
	if (sqlite3_prepare_v2(other, "SELECT 'tick' AS in_progress", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW)
		bad = 1;
	sqlite3_finalize(s);
	PGresult *r = PQexec(progress_pg, "SELECT 'tick' AS in_progress_pg");
	expect(r && PQresultStatus(r) == PGRES_TUPLES_OK, "PQexec in a progress handler");
	PQclear(r);
	return 0;
}

/* SQL run by the application from inside SQLite's own calls. */
static void sq_nested(const char *conninfo)
{
	sqlite3 *other = NULL;
	sqlite3_stmt *s = NULL;
	progress_pg = PQconnectdb(conninfo);
	if (PQstatus(progress_pg) != CONNECTION_OK || sqlite3_open(":memory:", &sq) != SQLITE_OK || sqlite3_open(":memory:", &other) != SQLITE_OK ||
	    sqlite3_exec(sq, "CREATE TABLE ut (x int); INSERT INTO ut VALUES (1), (2), (3)", NULL,
	                 NULL, NULL) != SQLITE_OK ||
	    sqlite3_create_function(sq, "lookup", 1, SQLITE_UTF8, other, lookup_fn, NULL, NULL) !=
	            SQLITE_OK ||
	    sqlite3_prepare_v2(sq, "SELECT lookup(x) AS looked FROM ut ORDER BY x", -1, &s, NULL) !=
	            SQLITE_OK) {
		printf("sqlclients: nested setup: %s\n", sq ? sqlite3_errmsg(sq) : "no database");
		bad = 1;
		goto out;
	}
	int rc, got = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		expect(sqlite3_column_int(s, 0) == ++got, "lookup(x) counts the rows up to x");
	expect(rc == SQLITE_DONE && got == 3, "SELECT lookup(x) returns 3 rows");
	sqlite3_progress_handler(sq, 1, progress_fn, other);
	expect(sqlite3_exec(sq, "SELECT count(*) AS counted FROM ut", NULL, NULL, NULL) == SQLITE_OK,
	       "exec under a progress handler");
	sqlite3_progress_handler(sq, 0, NULL, NULL);
	expect(progress_runs > 0, "the progress handler ran");
out:
	sqlite3_finalize(s);
	sqlite3_close(sq);
	sqlite3_close(other);
	PQfinish(progress_pg);
}

static int run_sq(const char *path, const char *conninfo)
{
	if (sqlite3_open(":memory:", &sq) != SQLITE_OK) {
		printf("sqlclients: sqlite3_open failed\n");
		return 1;
	}
	expect(sqlite3_exec(sq, "CREATE TABLE st (x int); INSERT INTO st VALUES (1), (2), (3)",
	                    NULL, NULL, NULL) == SQLITE_OK, "exec CREATE, INSERT");
	int rows = 0;
	expect(sqlite3_exec(sq, "SELECT x FROM st", bump_row, &rows, NULL) == SQLITE_OK &&
	       rows == 3, "exec SELECT with UPDATEs in its callback");
	expect(sqlite3_exec(sq, "DELETE FROM st WHERE x > 10", NULL, NULL, NULL) == SQLITE_OK &&
	       sqlite3_changes(sq) == 3, "exec DELETE");
	rows = 0;
	expect(sqlite3_exec(sq, "SELECT x FROM st WHERE x < 0", bump_row, &rows, NULL) ==
	       SQLITE_OK && rows == 0, "exec SELECT of no row");
	sqlite3_close(sq);
	sq_nested(conninfo);
	sq_busy(path);
	return bad;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "pq") == 0)
		return run_pq(argv[2], argv[3]);
	if (argc == 7 && strcmp(argv[1], "my") == 0)
		return run_my(argv + 2);
	if (argc == 4 && strcmp(argv[1], "sq") == 0)
		return run_sq(argv[2], argv[3]);
	fprintf(stderr, "usage: sqlclients pq CONNINFO SHIM | my HOST PORT USER PASSWORD DB | sq PATH CONNINFO\n");
	return 2;
}

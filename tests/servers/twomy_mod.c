/*
 * twomy_mod.c - a module of tests/servers/twocopies.c, built by
 * tests/integration/twomysql.sh at test time, once per copy of libmariadb:
 * -DCOPY='"A"' -DTABLE='"ma"', linked against its own copy
 * (libmariadA.so.3, a renamed copy of the system library in which the
 * message "Commands out of sync; you" reads "syncA you": twolib.sh marks
 * each copy). No MySQL header is needed (none may be installed): the few
 * functions are declared in mysql_decls.h, their handles opaque.
 *
 * twocopies_run("HOST:PORT:USER:PASSWORD:DB", out, cap) connects, then runs
 * through the hooked functions ten statements: a mysql_stmt_execute of a
 * statement never prepared, which the copy's mysql_stmt_execute refuses
 * itself (out of sync) with its copy's message (the line shows which copy
 * ran the module's call); CREATE TABLE IF NOT EXISTS (mysql_query), three INSERTs
 * (mysql_real_query), a SELECT counting them (mysql_query,
 * mysql_store_result), the same through the statement API
 * (mysql_stmt_prepare, mysql_stmt_execute), then "SELECT 1" left unread and
 * "SELECT 2", which the library refuses (out of sync: found through the
 * connection's own method table, so the same message whichever copy's
 * mysql_query ran).
 * Returns 0, or -1 when something else failed (the line says what).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef COPY
#error "build with -DCOPY='\"A\"' -DTABLE='\"ma\"'"
#endif

#include "mysql_decls.h"

/* Before the module is unloaded: the library's own state (its client
 * plugins) freed, so that a leak checker sees nothing left behind. */
__attribute__((visibility("default"))) void twocopies_end(void)
{
	mysql_server_end();
}

__attribute__((visibility("default"))) int twocopies_run(const char *arg, char *out, size_t cap)
{
	char buf[512], *f[5];
	snprintf(buf, sizeof buf, "%s", arg);
	f[0] = buf;
	for (int i = 1; i < 5; i++) {
		char *colon = f[i - 1] ? strchr(f[i - 1], ':') : NULL;
		f[i] = colon ? colon + 1 : NULL;
		if (colon)
			*colon = '\0';
	}
	if (!f[4]) {
		snprintf(out, cap, "%s: ARG is HOST:PORT:USER:PASSWORD:DB", COPY);
		return -1;
	}
	MYSQL *m = mysql_init(NULL);
	if (!m || !mysql_real_connect(m, f[0], f[2], f[3], f[4], (unsigned)atoi(f[1]), NULL, 0)) {
		snprintf(out, cap, "%s: connect: %s", COPY, m ? mysql_error(m) : "no memory");
		if (m)
			mysql_close(m);
		return -1;
	}
	/* The copy's own message, marked with its letter. */
	MYSQL_STMT *u = mysql_stmt_init(m);
	int unprepared = u ? mysql_stmt_execute(u) : 0;
	char umsg[160];
	snprintf(umsg, sizeof umsg, "%s", u ? mysql_stmt_error(u) : "no memory");
	if (u)
		mysql_stmt_close(u);
	if (mysql_query(m, "CREATE TABLE IF NOT EXISTS " TABLE
	                   " (k int AUTO_INCREMENT PRIMARY KEY, v text)") != 0)
		goto fail;
	for (int i = 0; i < 3; i++) {
		char q[128];
		int n = snprintf(q, sizeof q, "INSERT INTO " TABLE " (v) VALUES ('%s%d')", COPY, i);
		if (mysql_real_query(m, q, (unsigned long)n) != 0)
			goto fail;
	}
	if (mysql_query(m, "SELECT count(*) FROM " TABLE) != 0)
		goto fail;
	MYSQL_RES *r = mysql_store_result(m);
	MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
	int rows = row && row[0] ? atoi(row[0]) : -1;
	if (r)
		mysql_free_result(r);
	MYSQL_STMT *s = mysql_stmt_init(m);
	const char *sq = "SELECT count(*) FROM " TABLE;
	if (!s || mysql_stmt_prepare(s, sq, strlen(sq)) != 0 || mysql_stmt_execute(s) != 0) {
		snprintf(out, cap, "%s: statement: %s", COPY, s ? mysql_stmt_error(s) : "no memory");
		if (s)
			mysql_stmt_close(s);
		mysql_close(m);
		return -1;
	}
	mysql_stmt_close(s);
	if (mysql_query(m, "SELECT 1") != 0)
		goto fail;
	int refused = mysql_query(m, "SELECT 2");
	char msg[160];
	snprintf(msg, sizeof msg, "%u %s", mysql_errno(m), mysql_error(m));
	r = mysql_store_result(m); /* SELECT 1's rows */
	if (r)
		mysql_free_result(r);
	snprintf(out, cap, "%s: rows %d, refused %d: %s; unprepared %d: %s", COPY, rows,
	         refused != 0, msg, unprepared != 0, umsg);
	mysql_close(m);
	return 0;
fail:
	snprintf(out, cap, "%s: %u %s", COPY, mysql_errno(m), mysql_error(m));
	mysql_close(m);
	return -1;
}

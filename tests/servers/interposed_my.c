/*
 * interposed_my - tests/servers/interposed.c for the MariaDB client
 * library, built by tests/integration/interpose.sh at test time against
 * the system libmariadb.so.3 (no MySQL header or development package is
 * needed: mysql_decls.h declares the few functions, their handles opaque).
 *
 * Usage: interposed_my HOST:PORT:USER:PASSWORD:DB
 * Seven statements on a temporary table ipx (gone with the session: every
 * run starts alike): the 1st, 3rd, 5th and 7th through mysql_query, the
 * others through mysql_real_query, each result read with
 * mysql_store_result. Every statement names the table ipx; the program
 * runs no other. Prints one line per statement, as interposed does; exit
 * 0 when every statement succeeded, 1 when one failed (its line says how),
 * 2 when the connection failed or the usage is wrong.
 */
#include <stdio.h>
#include <string.h>

#include "mysql_decls.h"

#define NSTMT 7

static const char *const my_sql[NSTMT] = {
	"CREATE TEMPORARY TABLE ipx (k INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(8))",
	"INSERT INTO ipx (v) VALUES ('a')",
	"INSERT INTO ipx (v) VALUES ('b')",
	"SELECT count(*), group_concat(v ORDER BY k) FROM ipx",
	"UPDATE ipx SET v = concat(v, v) WHERE v <> 'b'",
	"SELECT k, v FROM ipx ORDER BY k",
	"DELETE FROM ipx WHERE v = 'b'",
};

/* Appends a then b to the string in buf (cap bytes), cut to fit. */
static void append(char *buf, size_t cap, const char *a, const char *b)
{
	size_t n = strlen(buf);
	snprintf(buf + n, cap - n, "%s%s", a, b);
}

/* Runs statement i on m and prints its line; 0, or -1 when it failed. */
static int my_run(MYSQL *m, int i)
{
	const char *how = i % 2 ? "mysql_real_query" : "mysql_query";
	int rc = i % 2 ? mysql_real_query(m, my_sql[i], strlen(my_sql[i])) : mysql_query(m, my_sql[i]);
	MYSQL_RES *res = rc == 0 ? mysql_store_result(m) : NULL;
	if (rc != 0 || (!res && mysql_field_count(m) != 0)) {
		printf("%d %s: failed (%u): %s\n", i + 1, how, mysql_errno(m), mysql_error(m));
		return -1;
	}
	char rows[512] = "";
	MYSQL_ROW row;
	while (res && (row = mysql_fetch_row(res)) != NULL) {
		for (unsigned c = 0; c < mysql_num_fields(res); c++)
			append(rows, sizeof rows, c ? "|" : " [", row[c] ? row[c] : "NULL");
		append(rows, sizeof rows, "]", "");
	}
	printf("%d %s: done, %llu affected%s\n", i + 1, how, res ? 0ULL : mysql_affected_rows(m),
	       rows);
	mysql_free_result(res);
	return 0;
}

int main(int argc, char **argv)
{
	char buf[1024], *f[5];
	if (argc != 2 || strlen(argv[1]) >= sizeof buf) {
		fprintf(stderr, "usage: interposed_my HOST:PORT:USER:PASSWORD:DB\n");
		return 2;
	}
	strcpy(buf, argv[1]);
	char *p = buf;
	for (int k = 0; k < 5; k++) {
		f[k] = p;
		p = k < 4 ? strchr(p, ':') : NULL;
		if (k < 4 && !p) {
			fprintf(stderr, "usage: interposed_my HOST:PORT:USER:PASSWORD:DB\n");
			return 2;
		}
		if (p)
			*p++ = '\0';
	}
	MYSQL *m = mysql_init(NULL);
	unsigned port = 0;
	sscanf(f[1], "%u", &port);
	if (!m || !mysql_real_connect(m, f[0], f[2], f[3], f[4], port, NULL, 0)) {
		fprintf(stderr, "interposed_my: %s\n", m ? mysql_error(m) : "no memory");
		mysql_close(m);
		return 2;
	}
	int bad = 0;
	for (int i = 0; i < NSTMT; i++)
		bad |= my_run(m, i);
	mysql_close(m);
	mysql_server_end();
	return bad ? 1 : 0;
}

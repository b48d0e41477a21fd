/*
 * pqbench.c - what the preload adds to a libpq statement, for part 6 of
 * scripts/bench.sh.
 *
 * usage: pqbench --conninfo STR --setup
 *        pqbench --conninfo STR --sql NAME --n N [--warm W]
 *        pqbench --fake PATH/libfakepq.so --sql NAME [--n N] [--rounds R]
 *                [--pause-ms P]
 *        pqbench --normalize NAME [--n N] [--rounds R]
 *        pqbench --list
 *
 * --setup creates and fills table t (1000 rows) for the statements below.
 *
 * --sql runs W warm-up statements (default 200), then N times
 * PQexec(conn, STATEMENT) + PQclear on one connection, each result checked
 * (PGRES_TUPLES_OK, exactly one row: a failing statement would measure the
 * error path). Output, one line:
 *   pqbench sql=NAME n=N cpu_ns=... user_us=... sys_us=... wall_ns=...
 * cpu_ns is CLOCK_PROCESS_CPUTIME_ID over the N statements: user + system
 * CPU of every thread of this process (the preload's shipper thread
 * included), never the server's, which is another process. Run it plain and
 * with LD_PRELOAD=libapiprof.so: the difference divided by N is what the
 * preload costs per statement, database time excluded. Under callgrind, two
 * values of N give the instructions per statement with start-up cancelled.
 *
 * --fake measures the same without a server, in one process, as
 * tests/bench/hookbench.c does for socket calls: with
 * LD_PRELOAD=libapiprof.so:libfakepq.so, PQexec(FAKEPQ_CONN, STATEMENT)
 * timed two ways in alternating rounds of N calls (default 21 rounds of
 * 5000): *base* straight to libfakepq.so's PQexec (dlsym on its handle),
 * *hooked* through the symbol the program sees (the preload's hook when it
 * is preloaded, else libfakepq.so's again: that run is the noise floor).
 * Each round is followed by a pause of P ms (default 150, longer than the
 * shipper's 100 ms tick) so that the preload's buffer is drained and no
 * statement is dropped for want of room, which would skip its encoding (a
 * round of 5000 records of a few hundred bytes fits the default buffer's
 * half, 2 MiB, with room to spare).
 * Each round also times the text work alone, as --normalize does, so that
 * both figures come from the same moments of a shared machine. Prints the
 * medians of ns per call, of the per-round difference and of the text work:
 *   pqbench fake sql=NAME bytes=B base_ns=... hooked_ns=... added_ns=...
 *           normalize_ns=...
 *
 * --normalize times, in this process and without libpq, what the preload's
 * pl_stmt_end() does to a statement's text with the default settings:
 * ap_sql_normalize_fp() (PostgreSQL dialect, literals stripped, into a
 * 4097-byte buffer, the shape fingerprinted as it is written). Prints the
 * median ns per statement over R rounds of N (default 15 of 200000):
 *   pqbench normalize=NAME bytes=B ns=... shape="..."
 *
 * Statements (NAME):
 *   select1  SELECT 1
 *   where    SELECT id, title FROM t WHERE id = 42 AND name = 'x'
 *   orm      the same look-up as an ORM (Django) spells it: quoted,
 *            qualified columns, ORDER BY and LIMIT (153 bytes)
 *
 * Build: gcc -O2 -I BUILD -I SRC/shared pqbench.c SRC/shared/sql.c \
 *        $(pkg-config --cflags --libs libpq) -ldl
 * (config.h comes from the build directory); libfakepq.so from fakepq.c.
 */
#define _GNU_SOURCE
#include "config.h"
#include "ap_sql.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <libpq-fe.h>

#include "fakepq.h"

static const struct stmt {
	const char *name;
	const char *sql;
} stmts[] = {
	{ "select1", "SELECT 1" },
	{ "where", "SELECT id, title FROM t WHERE id = 42 AND name = 'x'" },
	{ "orm", "SELECT \"t\".\"id\", \"t\".\"title\", \"t\".\"name\", \"t\".\"author_id\", "
	         "\"t\".\"pages\" FROM \"t\" WHERE (\"t\".\"id\" = 42 AND \"t\".\"name\" = 'x') "
	         "ORDER BY \"t\".\"id\" ASC LIMIT 21" },
};
#define NSTMTS (sizeof stmts / sizeof stmts[0])

static const char setup_sql[] =
	"DROP TABLE IF EXISTS t;"
	"CREATE TABLE t (id int PRIMARY KEY, title text NOT NULL, name text NOT NULL,"
	" author_id int NOT NULL, pages int NOT NULL);"
	"INSERT INTO t SELECT i, 'Title ' || i, CASE WHEN i = 42 THEN 'x' ELSE 'n' || i END,"
	" i % 10, i * 3 FROM generate_series(1, 1000) AS i;"
	"ANALYZE t;";

static volatile uint64_t sink;

static const struct stmt *find_stmt(const char *name)
{
	for (size_t i = 0; i < NSTMTS; i++)
		if (strcmp(stmts[i].name, name) == 0)
			return &stmts[i];
	fprintf(stderr, "pqbench: unknown statement '%s' (--list names them)\n", name);
	exit(2);
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long tv_us(struct timeval tv)
{
	return tv.tv_sec * 1000000L + tv.tv_usec;
}

static void usage(void)
{
	fprintf(stderr, "usage: pqbench --conninfo STR --setup\n"
	                "       pqbench --conninfo STR --sql NAME --n N [--warm W]\n"
	                "       pqbench --fake PATH/libfakepq.so --sql NAME [--n N] [--rounds R]"
	                " [--pause-ms P]\n"
	                "       pqbench --normalize NAME [--n N] [--rounds R]\n"
	                "       pqbench --list\n");
	exit(2);
}

static long count_arg(const char *opt, const char *v)
{
	char *end;
	long n = v ? strtol(v, &end, 10) : -1;
	if (!v || *end || n < 0) {
		fprintf(stderr, "pqbench: %s needs a count\n", opt);
		exit(2);
	}
	return n;
}

static PGconn *connect_db(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pqbench: cannot connect (%s): %s", conninfo, PQerrorMessage(c));
		exit(1);
	}
	return c;
}

/* One statement; exits unless it returned exactly one row. */
static void exec_one(PGconn *c, const struct stmt *s)
{
	PGresult *r = PQexec(c, s->sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		fprintf(stderr, "pqbench: %s: %s, %d rows: %s", s->name,
		        PQresStatus(PQresultStatus(r)), PQntuples(r), PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
}

static int run_sql(const char *conninfo, const struct stmt *s, long n, long warm)
{
	PGconn *c = connect_db(conninfo);
	for (long i = 0; i < warm; i++)
		exec_one(c, s);
	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	uint64_t c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_ns(CLOCK_MONOTONIC);
	for (long i = 0; i < n; i++)
		exec_one(c, s);
	uint64_t c1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), w1 = clock_ns(CLOCK_MONOTONIC);
	getrusage(RUSAGE_SELF, &ru1);
	PQfinish(c);
	printf("pqbench sql=%s n=%ld cpu_ns=%llu user_us=%ld sys_us=%ld wall_ns=%llu\n",
	       s->name, n, (unsigned long long)(c1 - c0), tv_us(ru1.ru_utime) - tv_us(ru0.ru_utime),
	       tv_us(ru1.ru_stime) - tv_us(ru0.ru_stime), (unsigned long long)(w1 - w0));
	return 0;
}

static int setup(const char *conninfo)
{
	PGconn *c = connect_db(conninfo);
	PGresult *r = PQexec(c, setup_sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "pqbench: setup failed: %s", PQerrorMessage(c));
		return 1;
	}
	PQclear(r);
	for (size_t i = 0; i < NSTMTS; i++)
		exec_one(c, &stmts[i]);
	PQfinish(c);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, long n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The text work of pl_stmt_end() with the default settings (sqlcap.c). */
static uint64_t shape(const struct stmt *s, size_t len, char *out, size_t cap)
{
	int truncated;
	uint64_t fp;
	(void)ap_sql_normalize_fp(s->sql, len, AP_SQL_PG, 0, out, cap, &truncated, &fp);
	return fp + (uint64_t)truncated;
}

/* ns per statement of n shape() calls. */
static double run_shape(const struct stmt *s, long n)
{
	char out[AP_SQL_MAX_DEFAULT + 1];
	size_t len = strlen(s->sql);
	uint64_t acc = 0, t0 = clock_ns(CLOCK_MONOTONIC);
	for (long i = 0; i < n; i++)
		acc += shape(s, len, out, sizeof out);
	double t = (double)(clock_ns(CLOCK_MONOTONIC) - t0) / (double)n;
	sink += acc;
	return t;
}

static int normalize(const struct stmt *s, long n, long rounds)
{
	char out[AP_SQL_MAX_DEFAULT + 1];
	size_t len = strlen(s->sql);
	double v[rounds];
	run_shape(s, n / 10 + 1);
	for (long r = 0; r < rounds; r++)
		v[r] = run_shape(s, n);
	double med = median(v, rounds);
	shape(s, len, out, sizeof out);
	printf("pqbench normalize=%s bytes=%zu ns=%.1f shape=\"%s\"\n", s->name, len, med, out);
	return 0;
}

typedef PGresult *(*exec_fn)(PGconn *, const char *);

/* Read through volatile so that the compiler cannot turn either indirect
 * call into a direct one, and so treat the two paths differently. */
static exec_fn volatile fn_base, fn_hooked;

/* ns per call of n calls of f; exits if a call did not return the fake
 * result (the hook must hand back what libpq returned). */
static double run_exec(exec_fn f, const char *sql, long n)
{
	uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
	long bad = 0;
	for (long i = 0; i < n; i++)
		bad += f(FAKEPQ_CONN, sql) != FAKEPQ_RESULT;
	double t = (double)(clock_ns(CLOCK_MONOTONIC) - t0) / (double)n;
	if (bad) {
		fprintf(stderr, "pqbench: PQexec did not return libfakepq.so's result\n");
		exit(1);
	}
	return t;
}

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static int fake(const char *path, const struct stmt *s, long n, long rounds, long pause)
{
	void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	fn_base = h ? (exec_fn)dlsym(h, "PQexec") : NULL;
	fn_hooked = (exec_fn)dlsym(RTLD_DEFAULT, "PQexec");
	if (!fn_base || !fn_hooked || PQresultStatus(FAKEPQ_RESULT) != PGRES_TUPLES_OK) {
		fprintf(stderr, "pqbench: %s is not preloaded (LD_PRELOAD=[libapiprof.so:]%s)\n",
		        path, path);
		return 1;
	}
	double b[rounds], k[rounds], d[rounds], z[rounds];
	/* Warm both paths (lazy binding, the preload's first-event set-up). */
	run_exec(fn_base, s->sql, n / 10 + 1);
	run_exec(fn_hooked, s->sql, n / 10 + 1);
	run_shape(s, n / 10 + 1);
	pause_ms(pause);
	for (long r = 0; r < rounds; r++) {
		/* Alternate the order so drift in the machine's speed does not
		 * favour one side. */
		if (r % 2) {
			z[r] = run_shape(s, n);
			k[r] = run_exec(fn_hooked, s->sql, n);
			b[r] = run_exec(fn_base, s->sql, n);
		} else {
			b[r] = run_exec(fn_base, s->sql, n);
			k[r] = run_exec(fn_hooked, s->sql, n);
			z[r] = run_shape(s, n);
		}
		d[r] = k[r] - b[r];
		pause_ms(pause);
	}
	double mb = median(b, rounds), mk = median(k, rounds), md = median(d, rounds);
	printf("pqbench fake sql=%s bytes=%zu base_ns=%.2f hooked_ns=%.2f added_ns=%.2f"
	       " normalize_ns=%.2f n=%ld rounds=%ld calls=%ld\n",
	       s->name, strlen(s->sql), mb, mk, md, median(z, rounds), n, rounds,
	       rounds * n + n / 10 + 1);
	return 0;
}

int main(int argc, char **argv)
{
	const char *conninfo = NULL, *sql = NULL, *norm = NULL, *fake_path = NULL;
	long n = -1, warm = 200, rounds = -1, pause = 150;
	int do_setup = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--conninfo") == 0 && v)
			conninfo = argv[++i];
		else if (strcmp(a, "--sql") == 0 && v)
			sql = argv[++i];
		else if (strcmp(a, "--fake") == 0 && v)
			fake_path = argv[++i];
		else if (strcmp(a, "--pause-ms") == 0)
			pause = count_arg(a, argv[++i]);
		else if (strcmp(a, "--normalize") == 0 && v)
			norm = argv[++i];
		else if (strcmp(a, "--n") == 0)
			n = count_arg(a, argv[++i]);
		else if (strcmp(a, "--warm") == 0)
			warm = count_arg(a, argv[++i]);
		else if (strcmp(a, "--rounds") == 0) {
			rounds = count_arg(a, argv[++i]);
			if (rounds < 1)
				usage();
		}
		else if (strcmp(a, "--setup") == 0)
			do_setup = 1;
		else if (strcmp(a, "--list") == 0) {
			for (size_t k = 0; k < NSTMTS; k++)
				printf("%s\t%s\n", stmts[k].name, stmts[k].sql);
			return 0;
		} else
			usage();
	}
	if (norm) {
		return normalize(find_stmt(norm), n > 0 ? n : 200000, rounds > 0 ? rounds : 15);
	}
	if (fake_path) {
		if (!sql)
			usage();
		return fake(fake_path, find_stmt(sql), n > 0 ? n : 5000, rounds > 0 ? rounds : 21, pause);
	}
	if (!conninfo)
		usage();
	if (do_setup)
		return setup(conninfo);
	if (!sql || n < 0)
		usage();
	return run_sql(conninfo, find_stmt(sql), n, warm);
}

/*
 * pq_server - a small HTTP/1.1 server calling libpq directly, for the SQL
 * integration test (tests/integration/pq.sh).
 *
 * One thread per HTTP connection; each thread opens its own PostgreSQL
 * connection when its first request needs one (PQconnectdb runs no hooked
 * statement) and closes it (PQfinish) with the HTTP connection. Keep-alive
 * requests on one HTTP connection therefore share one database session,
 * which is what makes "prepare once per connection" observable.
 *
 * Every route runs a fixed list of statements, each through a different
 * libpq entry point (counts as the SPEC defines them):
 *   GET /params        1: PQexecParams, one parameter
 *   GET /prepared      PQprepare ("get_item") on the first /prepared of the
 *                      database session (a statement of its own), then
 *                      PQexecPrepared: 2 the first time, 1 afterwards
 *   GET /async         1: PQsendQuery of a statement sleeping 150 ms, then
 *                      PQconsumeInput/PQisBusy/poll and PQgetResult until NULL
 *   GET /async-params  1: PQsendQueryParams, two parameters, then PQgetResult
 *                      until NULL (no waiting loop: PQgetResult blocks)
 *   GET /long          1: PQsendQuery of a 1,800-byte SELECT (longer than the
 *                      1 KiB the preload holds while a statement is in flight)
 *   GET /fail          1: PQexec on a missing table (SQLSTATE 42P01); 500
 *   GET /exec          1: PQexec, literals in the statement text
 *   GET /txn           9: three times PQexec("BEGIN"), PQexecParams(INSERT),
 *                      PQexec("COMMIT"): the INSERT's shape repeats 3 times
 *                      (an N+1 at threshold 3), BEGIN and COMMIT too (never N+1)
 *   GET /late          1: PQsendQuery of a 50 ms sleep, answered at once; its
 *                      results are read (PQisBusy/poll, PQgetResult until
 *                      NULL) after the response is sent: a statement that
 *                      outlives its request
 *   anything else      404, no statement
 * A route whose statement fails unexpectedly answers 500 and says why on
 * stderr.
 *
 * The database must have: CREATE TABLE items (id int PRIMARY KEY, name text)
 * with rows for ids 1..3, and CREATE TABLE log (id serial, note text).
 *
 * Usage: pq_server --port N --conninfo "host=... port=... dbname=... user=..."
 * Listens on 127.0.0.1:N (0: any free port) and prints "listening on PORT" on
 * stdout once it accepts connections.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "serve.h"

#define HEAD_MAX 16384

static const char *conninfo = "";

struct conn {
	int fd;
	PGconn *db;
	int prepared; /* "get_item" is prepared on db */
	int late;     /* /late's statement is to be read after the response */
	size_t len;
	char buf[HEAD_MAX];
};

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int respond(struct conn *c, int status, const char *body, int keep)
{
	const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found"
	                   : status == 400 ? "Bad Request" : "Internal Server Error";
	char head[256];
	int n = snprintf(head, sizeof head,
	                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
	                 status, reason, strlen(body), keep ? "" : "Connection: close\r\n");
	if (send_all(c->fd, head, (size_t)n) < 0 || send_all(c->fd, body, strlen(body)) < 0)
		return -1;
	return 0;
}

static PGconn *db(struct conn *c)
{
	if (c->db && PQstatus(c->db) == CONNECTION_OK)
		return c->db;
	if (c->db)
		PQfinish(c->db);
	c->prepared = 0;
	c->db = PQconnectdb(conninfo);
	if (PQstatus(c->db) != CONNECTION_OK) {
		fprintf(stderr, "pq_server: connect: %s", PQerrorMessage(c->db));
		PQfinish(c->db);
		c->db = NULL;
	}
	return c->db;
}

/* 1 when r is a success (rows or a command), else logs and returns 0. */
static int ok(PGresult *r, const char *what)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return 1;
	fprintf(stderr, "pq_server: %s: %s", what, r ? PQresultErrorMessage(r) : "no result\n");
	return 0;
}

/* Reads every result of the statement just sent, until PQgetResult gives
 * NULL. With wait = 1, never blocks in PQgetResult: waits on the socket
 * while PQisBusy, as an event loop (or psycopg2's wait callback) does. */
static int drain(PGconn *d, int wait, const char *what)
{
	int good = 1, n = 0;
	for (;;) {
		if (wait) {
			while (PQisBusy(d)) {
				struct pollfd p = { .fd = PQsocket(d), .events = POLLIN };
				if (poll(&p, 1, 10000) <= 0 || !PQconsumeInput(d)) {
					fprintf(stderr, "pq_server: %s: %s", what, PQerrorMessage(d));
					return 0;
				}
			}
		}
		PGresult *r = PQgetResult(d);
		if (!r)
			break;
		good &= ok(r, what);
		n++;
		PQclear(r);
	}
	return good && n == 1;
}

/* Returns the HTTP status; *body is set to a static string. */
static int route(struct conn *c, const char *path, const char **body)
{
	PGconn *d;
	PGresult *r;
	int good;

	*body = "not found\n";
	if (strcmp(path, "/params") != 0 && strcmp(path, "/prepared") != 0 &&
	    strcmp(path, "/async") != 0 && strcmp(path, "/async-params") != 0 &&
	    strcmp(path, "/fail") != 0 && strcmp(path, "/long") != 0 && strcmp(path, "/exec") != 0 && strcmp(path, "/txn") != 0 &&
	    strcmp(path, "/late") != 0)
		return 404;
	*body = "database unavailable\n";
	if (!(d = db(c)))
		return 500;
	*body = "ok\n";

	if (strcmp(path, "/params") == 0) {
		const char *v[1] = { "2" };
		r = PQexecParams(d, "SELECT id, name FROM items WHERE id = $1", 1, NULL, v, NULL,
		                 NULL, 0);
		good = ok(r, "params") && PQntuples(r) == 1;
		PQclear(r);
	} else if (strcmp(path, "/prepared") == 0) {
		good = 1;
		if (!c->prepared) {
			r = PQprepare(d, "get_item", "SELECT name FROM items WHERE id = $1", 1, NULL);
			good = ok(r, "prepare");
			PQclear(r);
			c->prepared = good;
		}
		if (good) {
			const char *v[1] = { "3" };
			r = PQexecPrepared(d, "get_item", 1, v, NULL, NULL, 0);
			good = ok(r, "execute prepared") && PQntuples(r) == 1;
			PQclear(r);
		}
	} else if (strcmp(path, "/async") == 0) {
		good = PQsendQuery(d, "SELECT pg_sleep(0.15), count(*) FROM items "
		                      "WHERE name <> 'Async Secret 2718' AND id < 58270163") &&
		       drain(d, 1, "async");
	} else if (strcmp(path, "/async-params") == 0) {
		const char *v[2] = { "1", "Param Secret 3141" };
		good = PQsendQueryParams(d, "SELECT id FROM items WHERE id = $1 OR name = $2", 2, NULL,
		                         v, NULL, NULL, 0) &&
		       drain(d, 0, "async-params");
	} else if (strcmp(path, "/long") == 0) {
		static char sql[2048];
		if (!sql[0]) {
			/* aliases of letters only: the test finds no digit in shapes */
			size_t n = (size_t)snprintf(sql, sizeof sql, "SELECT 0 AS caa");
			for (int i = 1; i < 150; i++)
				n += (size_t)snprintf(sql + n, sizeof sql - n, ", %d AS c%c%c", i,
				                      'a' + i / 26, 'a' + i % 26);
		}
		good = PQsendQuery(d, sql) && drain(d, 1, "long");
	} else if (strcmp(path, "/late") == 0) {
		good = c->late = PQsendQuery(d, "SELECT pg_sleep(0.05) AS late");
	} else if (strcmp(path, "/fail") == 0) {
		r = PQexec(d, "SELECT name FROM no_such_table WHERE id = 66049172");
		good = PQresultStatus(r) == PGRES_FATAL_ERROR &&
		       strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42P01") == 0;
		if (!good)
			fprintf(stderr, "pq_server: fail: not the expected error\n");
		PQclear(r);
		*body = "database error\n";
		return 500;
	} else if (strcmp(path, "/exec") == 0) {
		r = PQexec(d, "SELECT id, name FROM items WHERE name = 'Exec Secret 8128' "
		              "OR id IN (27182818, 31415926, 1)");
		good = ok(r, "exec") && PQntuples(r) == 1;
		PQclear(r);
	} else { /* /txn */
		good = 1;
		for (int i = 0; i < 3 && good; i++) {
			const char *v[1] = { "Txn Secret 1618" };
			r = PQexec(d, "BEGIN");
			good = ok(r, "begin");
			PQclear(r);
			r = PQexecParams(d, "INSERT INTO log (note) VALUES ($1)", 1, NULL, v, NULL, NULL, 0);
			good = good && ok(r, "insert");
			PQclear(r);
			r = PQexec(d, "COMMIT");
			good = good && ok(r, "commit");
			PQclear(r);
		}
	}
	if (!good) {
		*body = "unexpected database result\n";
		return 500;
	}
	return 200;
}

/* One connection, on a thread of its own (SERVE_THREADS). */
static void serve(int fd, void *unused)
{
	(void)unused;
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return;
	c->fd = fd;
	for (;;) {
		char *end;
		while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
			if (c->len == sizeof c->buf)
				goto done;
			ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				goto done;
			c->len += (size_t)n;
		}
		size_t head_len = (size_t)(end - c->buf) + 4;
		char method[16], target[1024], version[16];
		char line[1200];
		size_t ll = (size_t)((char *)memchr(c->buf, '\r', head_len) - c->buf);
		if (ll >= sizeof line)
			goto done;
		memcpy(line, c->buf, ll);
		line[ll] = '\0';
		if (sscanf(line, "%15s %1023s %15s", method, target, version) != 3)
			goto done;
		int keep = strcmp(version, "HTTP/1.1") == 0;
		size_t body_len = 0;
		for (char *h = c->buf; h < c->buf + head_len;) {
			char *nl = memchr(h, '\n', (size_t)(c->buf + head_len - h));
			if (!nl)
				break;
			if (strncasecmp(h, "Content-Length:", 15) == 0)
				body_len = strtoul(h + 15, NULL, 10);
			else if (strncasecmp(h, "Connection:", 11) == 0) {
				const char *v = h + 11;
				while (*v == ' ')
					v++;
				if (strncasecmp(v, "close", 5) == 0)
					keep = 0;
				else if (strncasecmp(v, "keep-alive", 10) == 0)
					keep = 1;
			}
			h = nl + 1;
		}
		/* Discard the body (no route reads one). */
		memmove(c->buf, c->buf + head_len, c->len - head_len);
		c->len -= head_len;
		while (body_len > 0) {
			if (c->len > 0) {
				size_t k = c->len < body_len ? c->len : body_len;
				memmove(c->buf, c->buf + k, c->len - k);
				c->len -= k;
				body_len -= k;
				continue;
			}
			ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
			if (n <= 0)
				goto done;
			c->len = (size_t)n;
		}
		char *q = strchr(target, '?');
		if (q)
			*q = '\0';
		const char *body;
		int status = strcmp(method, "GET") == 0 ? route(c, target, &body)
		                                         : (body = "GET only\n", 400);
		int sent = respond(c, status, body, keep);
		if (c->late) {
			c->late = 0;
			if (!drain(c->db, 1, "late"))
				goto done;
		}
		if (sent < 0 || !keep)
			goto done;
	}
done:
	if (c->db)
		PQfinish(c->db);
	free(c);
}

int main(int argc, char **argv)
{
	int port = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (strcmp(argv[i], "--conninfo") == 0 && i + 1 < argc)
			conninfo = argv[++i];
		else {
			fprintf(stderr, "usage: pq_server --port N --conninfo CONNINFO\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	serve_run("pq_server", port, 128, SERVE_THREADS, serve, NULL);
	return 1;
}

/*
 * fuzz_api.c - libFuzzer harness for the HTTP API's parameters
 * (collector/api.c and the query layer behind it, collector/query.c).
 *
 * The API is run as the daemon runs it: libmicrohttpd on a loopback port
 * over a real database, with the ingest and store threads, and 200
 * requests (with statements, N+1s, errors) sent to its socket first. Each input is
 * one GET: its first byte picks the endpoint, the rest is the query string
 * (or, for /api/v1/requests/{id}, the id), with the bytes a request line
 * cannot carry percent-encoded and everything else, '%', '&', '=' and
 * broken escapes included, sent as is. The property: no parameter, however
 * malformed, gets a 5xx (SPEC 5: a bad parameter is a 400); anything but
 * 200, 400 or 404 is a failure too.
 *
 * An input whose first byte is 'P' is a POST /api/v1/aggregate instead
 * (SPEC 5), with the requests it then closes: a method (POST mostly, or a
 * near miss: GET, PUT, HEAD, "post"), a path (the endpoint's, or one with
 * a trailing slash or segment), a query string, a body (sized or chunked),
 * then up to 16 requests (durations, statuses, methods, paths, statements,
 * N+1s) sent to the ingest socket first, dated in windows that have ended
 * and are still open. The windows last 1 ms here (the daemon's shortest is
 * 3 s), so every input has ended windows to close without waiting. The
 * properties: the endpoint's POST answers 200 with exactly
 * {"summaries": N, "regressions": M}, the counts the windows' counters
 * moved by, at most one summary per request sent since the last close;
 * a second POST at once closes nothing (idempotent); any other method is a
 * 405 naming POST in Allow, any other path a 404, each with an error.
 */
#include "config.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ap_config.h"
#include "ap_wire.h"
#include "agg.h"
#include "api.h"
#include "col.h"
#include "ingest.h"
#include "query.h"
#include "metrics.h"
#include "regress.h"
#include "store.h"
#include "timeseries.h"
#include "windows.h"

static struct ap_config cfg;
static struct col_agg *agg;
static struct col_ingest *in;
static struct col_store *store;
static struct col_query *query;
static struct col_api *api;
static struct col_metrics *metrics;
static struct col_windows *windows;
static struct col_tseries *tseries;
static char dir[80], dbpath[128], sockpath[128];
static struct sockaddr_in addr;
static int conn = -1;
static int ingest_fd = -1;        /* connected to the ingest socket */
static size_t pending_requests;   /* sent since the last close */

static int64_t hello_mono;        /* our HELLO's start time */

#define WINDOW_NS 1000000LL       /* 1 ms: see the top */

static void fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_api: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

static void populate(void);

/* The temp dir goes at exit (libFuzzer exits through exit() when its time
 * is up); the daemon's threads may still run, which unlinking allows. */
static void cleanup(void)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char p[160];
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", dbpath, sfx[i]);
		unlink(p);
	}
	unlink(sockpath);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512], url[300];
	const char *tmp = getenv("TMPDIR");
	/* The socket's path must fit sun_path (108 bytes): else /tmp. */
	if ((size_t)snprintf(dir, sizeof dir, "%s/fuzz_api.XXXXXX", tmp && *tmp ? tmp : "/tmp") >=
	    sizeof dir)
		snprintf(dir, sizeof dir, "/tmp/fuzz_api.XXXXXX");
	if (mkdtemp(dir) == NULL)
		fail("mkdtemp", strerror(errno));
	snprintf(dbpath, sizeof dbpath, "%s/t.db", dir);
	snprintf(sockpath, sizeof sockpath, "%s/s.sock", dir);
	atexit(cleanup);
	/* One request suffices for a regression: aggregate's inputs send a
	 * few requests, not the default 20 an endpoint a window. */
	if (ap_config_init(&cfg) != 0 ||
	    ap_config_set(&cfg, "host_name", "h1", err, sizeof err) != 0 ||
	    ap_config_set(&cfg, "regression_min_requests", "1", err, sizeof err) != 0)
		fail("config", NULL);
	agg = col_agg_new(cfg.max_routes);
	metrics = col_metrics_new(&cfg);
	in = col_ingest_new(&cfg, agg);
	if (metrics == NULL || in == NULL ||
	    col_ingest_listen(in, sockpath, 0600, (gid_t)-1, err, sizeof err) != 0)
		fail("ingest", err);
	col_ingest_set_metrics(in, metrics);
	struct col_store_opts so = { .path = dbpath, .host = "h1", .retention_days = 7,
	                             .max_rows_per_s = 1000 };
	store = col_store_open(&so, err, sizeof err);
	if (store == NULL || col_store_load(store, agg, err, sizeof err) != 0)
		fail("store", err);
	query = col_query_open(dbpath, "h1", 2, err, sizeof err);
	if (query == NULL)
		fail("query", err);
	/* Windows of WINDOW_NS; the closing thread waits a day before its
	 * first close, so only POST /api/v1/aggregate (and populate()) close
	 * them and the counters move by what each answer says. */
	struct col_windows_opts wo = { .db_path = dbpath, .host = "h1",
	                               .window_ns = WINDOW_NS,
	                               .grace_ns = 86400 * COL_NS_PER_S,
	                               .rules = col_reg_rules_of(&cfg),
	                               .metrics = metrics };
	windows = col_windows_open(&wo, err, sizeof err);
	tseries = col_tseries_new(col_clock_real_ns());
	if (windows == NULL || tseries == NULL)
		fail("windows", err);
	col_ingest_attach(in, windows, tseries);
	col_store_set_tseries(store, tseries);
	if (col_windows_start(windows, err, sizeof err) != 0 ||
	    col_store_start(store, agg, err, sizeof err) != 0 ||
	    col_ingest_start(in, store, err, sizeof err) != 0)
		fail("start", err);
	int fd = col_api_listen("127.0.0.1:0", url, sizeof url, err, sizeof err);
	if (fd < 0)
		fail("listen", err);
	socklen_t al = sizeof addr;
	if (getsockname(fd, (struct sockaddr *)&addr, &al) != 0)
		fail("getsockname", strerror(errno));
	struct col_api_ctx ctx = { .cfg = &cfg, .agg = agg, .query = query, .ingest = in,
	                           .store = store, .socket_path = sockpath, .db_path = dbpath,
	                           .start_mono_ns = col_clock_mono_ns(),
	                           .start_real_ns = col_clock_real_ns(), .metrics = metrics,
	                           .timeseries = tseries, .windows = windows };
	api = col_api_start(fd, &ctx, err, sizeof err);
	if (api == NULL)
		fail("api", err);
	populate();
	return 0;
}

#define STR(x) { x, sizeof(x) - 1 }

/* Sends the ingest socket a few processes' worth of traffic - requests
 * with statements, an N+1, a 500, a SQL error, an abort - so that the
 * listing, detail and statistics handlers have rows to filter and format,
 * and waits until the store has them. */
static void populate(void)
{
	static uint8_t b[AP_WIRE_MAX_DATAGRAM];
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un su = { .sun_family = AF_UNIX };
	snprintf(su.sun_path, sizeof su.sun_path, "%s", sockpath);
	if (fd < 0 || connect(fd, (struct sockaddr *)&su, sizeof su) != 0)
		fail("connect to the ingest socket", strerror(errno));
	int64_t mono = col_clock_mono_ns();
	hello_mono = mono;
	struct ap_batch_hdr h = { 1, (uint32_t)getpid(), col_clock_real_ns() - mono };
	struct ap_rec_hello he = { (uint32_t)getpid(), 1, (uint64_t)mono, STR("fz"), STR("/bin/fz") };
	static const char *const paths[] = { "/users/1", "/users/2", "/orders", "/a/b/c", "/search" };
	static const char *const methods[] = { "GET", "POST", "DELETE", "BREW" };
	static const uint16_t statuses[] = { 200, 201, 404, 500, 0 };
	uint64_t id = 1;
	for (int batch = 0; batch < 20; batch++) {
		size_t n = ap_wire_put_batch_hdr(b, sizeof b, &h);
		n += ap_wire_put_hello(b + n, sizeof b - n, &he);
		for (int i = 0; i < 10; i++, id++) {
			uint64_t t0 = (uint64_t)mono - 1000000000ull + id * 4000ull;
			int k = (int)(id % 5);
			for (int q = 0; q < (k == 2 ? 4 : 1); q++) {
				struct ap_rec_sql sq = { id, t0 + 1000, t0 + 200000, 1, 0x1234 + (uint64_t)k,
				                         1, (uint8_t)(1 + k % 3), k == 3 ? AP_SQLF_ERROR : 0,
				                         STR("23505"), STR("duplicate key value"),
				                         STR("SELECT * FROM t WHERE id = ?") };
				if (k != 3)
					sq.error_code.len = sq.error_message.len = 0;
				n += ap_wire_put_sql(b + n, sizeof b - n, &sq);
			}
			struct ap_rec_request rq = { id, t0, t0 + 3000000ull * (uint64_t)(k + 1), 100, 200, 1,
			                             statuses[k], k == 4 ? AP_REQF_ABORTED : 0,
			                             { methods[id % 4], (uint16_t)strlen(methods[id % 4]) },
			                             { paths[k], (uint16_t)strlen(paths[k]) },
			                             STR("boom") };
			if (statuses[k] < 500)
				rq.message.len = 0;
			n += ap_wire_put_request(b + n, sizeof b - n, &rq);
		}
		if (send(fd, b, n, 0) != (ssize_t)n)
			fail("send to the ingest socket", strerror(errno));
	}
	close(fd);
	for (int i = 0; i < 100; i++) {
		struct col_ingest_counters ic;
		struct col_store_counters sc;
		col_ingest_counters(in, &ic);
		col_store_counters(store, &sc);
		if (ic.requests >= 200 && sc.rows_written >= 200) {
			/* close their windows, for /summaries and /regressions */
			if (col_windows_close(windows, col_clock_real_ns(), NULL, NULL) != 0)
				fail("col_windows_close", NULL);
			return;
		}
		usleep(50000);
	}
	fail("the populated requests were not stored", NULL);
}

static int connect_api(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail("socket", strerror(errno));
	struct timeval tv = { 10, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
		fail("connect", strerror(errno));
	return fd;
}

static char resp[1 << 22];

/* Sends req on the kept-alive connection and returns the response's status
 * (0 when the server closed the connection without an answer); the
 * response is in resp, its body at *body (*blen bytes). */
static int resent; /* requests sent again by roundtrip() (no answer the first time) */

static int roundtrip(const char *req, size_t len, const char **body, size_t *blen)
{
	/* A HEAD's answer has a Content-Length but no body. */
	int head = strncmp(req, "HEAD ", 5) == 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (conn < 0)
			conn = connect_api();
		if (send(conn, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
			close(conn);
			conn = -1;
			continue;
		}
		size_t got = 0;
		char *hend = NULL;
		long clen = -1;
		for (;;) {
			if (got == sizeof resp - 1)
				fail("response too large", NULL);
			ssize_t n = recv(conn, resp + got, sizeof resp - 1 - got, 0);
			/* libFuzzer's SIGALRM (each second, for -timeout) ends a
			 * recv() on a socket with SO_RCVTIMEO with EINTR, which
			 * read as the server closing: a POST was sent twice. */
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
			resp[got] = '\0';
			if (hend == NULL && (hend = strstr(resp, "\r\n\r\n")) != NULL) {
				char *cl = strcasestr(resp, "\r\nContent-Length:");
				clen = cl && cl < hend ? strtol(cl + 17, NULL, 10) : -1;
			}
			if (hend && (head || (clen >= 0 &&
			                      got >= (size_t)(hend + 4 - resp) + (size_t)clen)))
				break;
		}
		if (hend == NULL) { /* closed before answering: retry once */
			close(conn);
			conn = -1;
			if (got == 0) {
				resent++;
				continue;
			}
			fail("malformed response", resp);
		}
		int status = 0;
		if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
			fail("no status line", resp);
		*body = hend + 4;
		*blen = got - (size_t)(hend + 4 - resp);
		/* One answer per request: anything more would be read as the
		 * next request's. */
		char extra;
		if (clen >= 0 && !head && (got > (size_t)(hend + 4 - resp) + (size_t)clen ||
		                          recv(conn, &extra, 1, MSG_PEEK | MSG_DONTWAIT) > 0))
			fail("bytes after the response", resp);
		if (clen < 0 || head || strcasestr(resp, "\r\nConnection: close") != NULL) {
			close(conn);
			conn = -1;
		}
		return status;
	}
	return 0;
}

static const char *const endpoints[] = {
	"/api/v1/requests?", "/api/v1/endpoints?", "/api/v1/queries?",
	"/api/v1/n-plus-one?", "/api/v1/errors?", "/api/v1/status?",
	"/api/v1/requests/", "/healthz?", "/api/v1/profile?", "/api/v1/timeseries?",
	"/api/v1/summaries?", "/api/v1/regressions?", "/metrics?",
};


/* Writes d[0..n) into a request target at out (3 * n bytes at most): the
 * bytes a request line cannot carry percent-encoded, everything else ('%',
 * '&', '=', broken escapes) as is. Returns the bytes written. */
static size_t put_target(char *out, const uint8_t *d, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = d[i];
		if (c <= 0x20 || c >= 0x7f || c == '#') {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	return o;
}

/* ---- POST /api/v1/aggregate ---- */

static const char *const agg_methods[] = { "POST", "POST", "POST", "POST",
                                           "GET", "PUT", "HEAD", "post" };
static const char *const agg_paths[] = { "/api/v1/aggregate", "/api/v1/aggregate",
                                         "/api/v1/aggregate/", "/api/v1/aggregate/x" };
static const char *const rq_paths[] = {
	"/users/1", "/orders", "/", "/a/b/c", "/items/550e8400-e29b-41d4-a716-446655440000",
	"/search?q=1", "/x/%ff\x01\xc3\xa9\xff",
	"/long/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/1",
};
static const char *const rq_methods[] = { "GET", "POST", "DELETE", "BREW" };
static const uint16_t rq_statuses[] = { 200, 201, 404, 500, 503, 0, 599, 65535 };
static const char *const rq_sql[] = {
	"SELECT * FROM users WHERE id = ?", "UPDATE orders SET n = ? WHERE id = ?",
	"SELECT '\xc3\xa9\xff\x01\"\\\\' FROM t", "",
};

/* Sends the requests the input describes (8 bytes each, at most 16) to
 * the ingest socket, each dated in one of the last 8 windows that have
 * ended and are still open, and waits until the ingest thread has handled
 * them. Returns how many were sent. */
static size_t agg_send(const uint8_t *d, size_t n)
{
	static uint8_t b[AP_WIRE_MAX_DATAGRAM];
	static uint64_t next_id = 1000000;
	size_t nreq = n / 8 > 16 ? 16 : n / 8;
	if (nreq == 0)
		return 0;
	if (ingest_fd < 0) {
		struct sockaddr_un su = { .sun_family = AF_UNIX };
		snprintf(su.sun_path, sizeof su.sun_path, "%s", sockpath);
		ingest_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (ingest_fd < 0 || connect(ingest_fd, (struct sockaddr *)&su, sizeof su) != 0)
			fail("connect to the ingest socket", strerror(errno));
	}
	/* The windows that have ended and are open: [closed_until, cur). */
	struct col_windows_counters wc;
	int64_t now, cur;
	for (;;) {
		col_windows_counters(windows, &wc);
		now = col_clock_real_ns();
		cur = col_windows_start_of(now, WINDOW_NS);
		if (cur > wc.closed_until_ns)
			break;
		usleep(200);
	}
	int64_t ended = (cur - wc.closed_until_ns) / WINDOW_NS;
	if (ended > 8)
		ended = 8;
	int64_t mono = col_clock_mono_ns();
	struct ap_batch_hdr h = { 2, (uint32_t)getpid(), now - mono };
	struct ap_rec_hello he = { (uint32_t)getpid(), 1, (uint64_t)hello_mono, STR("fz"),
	                           STR("/bin/fz") };
	size_t o = ap_wire_put_batch_hdr(b, sizeof b, &h);
	o += ap_wire_put_hello(b + o, sizeof b - o, &he);
	for (size_t i = 0; i < nreq; i++) {
		const uint8_t *r = d + 8 * i;
		uint64_t id = next_id++;
		int64_t win = cur - WINDOW_NS * (1 + r[0] % ended);
		/* Within its window, by the first byte again. */
		uint64_t t0 = (uint64_t)(win + (r[0] * 3901) % WINDOW_NS - h.wall_minus_mono_ns);
		uint64_t mant = (uint64_t)r[2] | (uint64_t)r[3] << 8;
		uint64_t t1 = r[4] >= 0xf0 ? t0 - mant : t0 + (mant << (r[4] % 41));
		unsigned nsql = r[5] & 15;
		for (unsigned q = 0; q < nsql; q++) {
			const char *sql = rq_sql[(r[5] >> 4) & 3];
			struct ap_rec_sql sq = { id, t0 + q, t0 + q + ((uint64_t)r[7] << (r[7] % 24)), q,
			                         0x5000 + ((r[5] >> 4) & 3), 1, (uint8_t)(1 + r[6] % 3),
			                         (r[5] & 0x40) ? AP_SQLF_ERROR : 0,
			                         STR("23505"), STR("duplicate key value"),
			                         { sql, (uint16_t)strlen(sql) } };
			if (!(r[5] & 0x40))
				sq.error_code.len = sq.error_message.len = 0;
			o += ap_wire_put_sql(b + o, sizeof b - o, &sq);
		}
		const char *m = rq_methods[(r[1] >> 3) & 3], *p = rq_paths[r[1] & 7];
		struct ap_rec_request rq = { id, t0, t1, r[6], (uint64_t)r[6] << 20, 1,
		                             rq_statuses[(r[1] >> 5) & 7],
		                             (r[6] & 0x80) ? AP_REQF_ABORTED : 0,
		                             { m, (uint16_t)strlen(m) }, { p, (uint16_t)strlen(p) },
		                             STR("<h1>boom</h1>\n") };
		o += ap_wire_put_request(b + o, sizeof b - o, &rq);
	}
	struct col_ingest_counters before, ic;
	col_ingest_counters(in, &before);
	/* Then one byte, counted when the ingest thread has done the rest. */
	if (send(ingest_fd, b, o, 0) != (ssize_t)o || send(ingest_fd, "x", 1, 0) != 1)
		fail("send to the ingest socket", strerror(errno));
	for (int i = 0;; i++) {
		col_ingest_counters(in, &ic);
		if (ic.datagrams >= before.datagrams + 2)
			break;
		if (i == 100000)
			fail("the ingest thread did not take the requests", NULL);
		usleep(20);
	}
	return nreq;
}

/* The answer to a POST /api/v1/aggregate that must succeed: checked, and
 * its two counts. */
static void agg_check_ok(int status, const char *body, size_t blen, const char *req,
                         json_int_t *ns, json_int_t *nr)
{
	if (status != 200)
		fail("POST /api/v1/aggregate did not answer 200", req);
	json_error_t jerr;
	json_t *j = json_loadb(body, blen, 0, &jerr);
	if (j == NULL)
		fail("an aggregate answer that is not valid JSON", jerr.text);
	json_t *s = json_object_get(j, "summaries"), *r = json_object_get(j, "regressions");
	if (!json_is_object(j) || json_object_size(j) != 2 || !json_is_integer(s) ||
	    !json_is_integer(r) || json_integer_value(s) < 0 || json_integer_value(r) < 0)
		fail("an aggregate answer that is not {\"summaries\": N, \"regressions\": M}", body);
	*ns = json_integer_value(s);
	*nr = json_integer_value(r);
	json_decref(j);
}

/* A field of the input at *i: a length byte, then as many bytes as there
 * are, up to it. Returns its length, *p its bytes, and moves *i past it. */
static size_t take_field(const uint8_t *data, size_t size, size_t *i, const uint8_t **p)
{
	size_t n = *i < size ? data[(*i)++] : 0;
	if (n > size - *i)
		n = size - *i;
	*p = data + *i;
	*i += n;
	return n;
}

static void agg_one(const uint8_t *data, size_t size)
{
	static char req[16384];
	if (size < 2)
		return;
	uint8_t shape = data[1];
	const char *method = agg_methods[shape & 7], *path = agg_paths[(shape >> 3) & 3];
	int chunked = (shape & 0x20) != 0;
	size_t i = 2;
	const uint8_t *q, *body;
	size_t qlen = take_field(data, size, &i, &q);
	size_t blen = take_field(data, size, &i, &body);
	size_t sent = agg_send(data + i, size - i);
	pending_requests += sent;

	size_t o = (size_t)snprintf(req, sizeof req, "%s %s", method, path);
	if (qlen > 0)
		req[o++] = '?';
	o += put_target(req + o, q, qlen);
	o += (size_t)snprintf(req + o, sizeof req - o, " HTTP/1.1\r\nHost: 127.0.0.1\r\n%s",
	                      (shape & 0x40) ? "Content-Type: application/json\r\n" : "");
	if (chunked) {
		/* In two chunks (the second may be empty: then the last). */
		size_t half = blen / 2;
		o += (size_t)snprintf(req + o, sizeof req - o, "Transfer-Encoding: chunked\r\n\r\n");
		if (half > 0) {
			o += (size_t)snprintf(req + o, sizeof req - o, "%zx\r\n", half);
			memcpy(req + o, body, half);
			o += half;
			o += (size_t)snprintf(req + o, sizeof req - o, "\r\n");
		}
		if (blen - half > 0) {
			o += (size_t)snprintf(req + o, sizeof req - o, "%zx\r\n", blen - half);
			memcpy(req + o, body + half, blen - half);
			o += blen - half;
			o += (size_t)snprintf(req + o, sizeof req - o, "\r\n");
		}
		o += (size_t)snprintf(req + o, sizeof req - o, "0\r\n\r\n");
	} else {
		o += (size_t)snprintf(req + o, sizeof req - o, "Content-Length: %zu\r\n\r\n", blen);
		memcpy(req + o, body, blen);
		o += blen;
	}
	struct col_windows_counters before, after;
	col_windows_counters(windows, &before);
	const char *rbody = NULL;
	size_t rlen = 0;
	int resent0 = resent;
	int status = roundtrip(req, o, &rbody, &rlen);
	if (getenv("FUZZ_API_TRACE"))
		fprintf(stderr, "fuzz_api: %d %.*s (%zu requests)\n", status,
		        (int)(strchr(req, '\r') - req), req, sent);
	if (status == 0)
		fail("no response", req);
	char *hend = strstr(resp, "\r\n\r\n");
	char *ct = strcasestr(resp, "\r\nContent-Type:");
	if (ct == NULL || ct > hend || strncasecmp(ct + 15, " application/json", 17) != 0)
		fail("an aggregate answer that is not application/json", req);
	int exact = (shape & 0x10) == 0; /* the endpoint's own path */
	int head = strcmp(method, "HEAD") == 0;
	if (!exact || strcmp(method, "POST") != 0) {
		if (status != (exact ? 405 : 404))
			fail(exact ? "another method than POST on /api/v1/aggregate is not a 405"
			           : "a path beside /api/v1/aggregate is not a 404", req);
		if (exact) {
			char *al = strcasestr(resp, "\r\nAllow:");
			if (al == NULL || al > hend || strstr(al, "POST") == NULL)
				fail("a 405 without Allow: POST", req);
		}
		if (!head) {
			json_t *j = json_loadb(rbody, rlen, 0, NULL);
			if (!json_is_string(json_object_get(j, "error")))
				fail("an error response without an error message", req);
			json_decref(j);
		}
		col_windows_counters(windows, &after);
		if (after.windows_closed != before.windows_closed)
			fail("windows closed by a request that is not the endpoint's POST", req);
		return;
	}
	json_int_t ns, nr;
	agg_check_ok(status, rbody, rlen, req, &ns, &nr);
	col_windows_counters(windows, &after);
	if ((uint64_t)ns != after.summaries_written - before.summaries_written ||
	    (uint64_t)nr != after.regressions - before.regressions) {
		fprintf(stderr, "fuzz_api: summaries %lld, written %llu; regressions %lld, counted %llu;"
		        " sent again: %d\n", (long long)ns,
		        (unsigned long long)(after.summaries_written - before.summaries_written),
		        (long long)nr, (unsigned long long)(after.regressions - before.regressions),
		        resent - resent0);
		fail("the aggregate answer's counts are not what the windows wrote", rbody);
	}
	if ((size_t)ns > pending_requests)
		fail("more summaries than requests sent since the last close", rbody);
	pending_requests = 0;
	/* Idempotent: at once again, nothing new to write. */
	static const char again[] = "POST /api/v1/aggregate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                            "Content-Length: 0\r\n\r\n";
	status = roundtrip(again, sizeof again - 1, &rbody, &rlen);
	agg_check_ok(status, rbody, rlen, again, &ns, &nr);
	if (ns != 0 || nr != 0)
		fail("a second POST /api/v1/aggregate wrote again", rbody);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char req[16384];
	if (size < 1 || size > 2000)
		return 0;
	if (data[0] == 'P') {
		agg_one(data, size);
		return 0;
	}
	size_t ne = sizeof endpoints / sizeof endpoints[0];
	const char *ep = endpoints[data[0] % ne];
	size_t o = (size_t)snprintf(req, sizeof req, "GET %s", ep);
	o += put_target(req + o, data + 1, size - 1);
	o += (size_t)snprintf(req + o, sizeof req - o,
	                      " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	const char *body = NULL;
	size_t blen = 0;
	int status = roundtrip(req, o, &body, &blen);
	if (getenv("FUZZ_API_TRACE"))
		fprintf(stderr, "fuzz_api: %d %.*s\n", status, (int)(strchr(req, '\r') - req), req);
	if (status == 0)
		fail("no response", req);
	if (status != 200 && status != 400 && status != 404)
		fail("unexpected status (a malformed parameter must be a 400)", req);
	/* Every answer says what it is; every API answer is JSON. */
	char *hend = strstr(resp, "\r\n\r\n");
	char *ct = strcasestr(resp, "\r\nContent-Type:");
	if (ct == NULL || ct > hend)
		fail("a response without Content-Type", req);
	if (strncmp(ep, "/healthz", 8) != 0 && strncmp(ep, "/metrics", 8) != 0) {
		if (strncasecmp(ct + 15, " application/json", 17) != 0)
			fail("an API response that is not application/json", req);
		json_error_t jerr;
		json_t *j = json_loadb(body, blen, 0, &jerr);
		if (j == NULL)
			fail("an API response that is not valid JSON", jerr.text);
		if (status != 200 && !json_is_string(json_object_get(j, "error")))
			fail("an error response without an error message", req);
		json_decref(j);
	}
	return 0;
}

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
	if (ap_config_init(&cfg) != 0 ||
	    ap_config_set(&cfg, "host_name", "h1", err, sizeof err) != 0)
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
	struct col_windows_opts wo = { .db_path = dbpath, .host = "h1",
	                               .window_ns = col_windows_size_ns(cfg.aggregation_window_minutes),
	                               .grace_ns = -1, .rules = col_reg_rules_of(&cfg),
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
			uint64_t t0 = (uint64_t)mono - 1000000000ull + id * 1000000ull;
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
			int64_t win = col_windows_size_ns(cfg.aggregation_window_minutes);
			if (col_windows_close(windows, col_clock_real_ns() + 2 * win, NULL, NULL) != 0)
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
static int roundtrip(const char *req, size_t len, const char **body, size_t *blen)
{
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
			if (n <= 0)
				break;
			got += (size_t)n;
			resp[got] = '\0';
			if (hend == NULL && (hend = strstr(resp, "\r\n\r\n")) != NULL) {
				char *cl = strcasestr(resp, "\r\nContent-Length:");
				clen = cl && cl < hend ? strtol(cl + 17, NULL, 10) : -1;
			}
			if (hend && clen >= 0 && got >= (size_t)(hend + 4 - resp) + (size_t)clen)
				break;
		}
		if (hend == NULL) { /* closed before answering: retry once */
			close(conn);
			conn = -1;
			if (got == 0)
				continue;
			fail("malformed response", resp);
		}
		int status = 0;
		if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
			fail("no status line", resp);
		*body = hend + 4;
		*blen = got - (size_t)(hend + 4 - resp);
		if (clen < 0 || strcasestr(resp, "\r\nConnection: close") != NULL) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char req[16384];
	if (size < 1 || size > 2000)
		return 0;
	size_t ne = sizeof endpoints / sizeof endpoints[0];
	const char *ep = endpoints[data[0] % ne];
	size_t o = (size_t)snprintf(req, sizeof req, "GET %s", ep);
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 1; i < size; i++) {
		unsigned char c = data[i];
		if (c <= 0x20 || c >= 0x7f || c == '#') {
			req[o++] = '%';
			req[o++] = hex[c >> 4];
			req[o++] = hex[c & 15];
		} else {
			req[o++] = (char)c;
		}
	}
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

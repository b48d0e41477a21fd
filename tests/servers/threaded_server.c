/*
 * threaded_server - a small HTTP/1.1 server for the integration tests.
 *
 * It mimics the thread model of gunicorn's gthread worker and Apache's event
 * MPM, the hardest case for per-connection state in the preload: one acceptor
 * thread owns the listening socket and every idle keep-alive connection (it
 * polls them), and a pool of worker threads serves one request at a time. A
 * connection goes back to the acceptor after each request, and the next
 * request on it is handed to the NEXT worker in turn, so successive requests
 * on one connection are always served by different threads; a connection is
 * closed by yet another worker than the one that wrote its last response. The
 * preload therefore cannot keep connection state per thread.
 *
 * System calls used on client sockets, on purpose: accept4, recv (headers),
 * read (bodies), writev, send, write, sendfile, close.
 *
 * Routes:
 *   GET  /hello           "hello\n" (one writev)
 *   GET  /users/<n>       a small JSON document (two send()s: headers, body)
 *   GET  /slow?ms=N       sleeps N ms (at most 10 s), then answers
 *   GET  /error           500 with a short body
 *   GET  /echo-error      500 whose body echoes the request's query string
 *                         and Authorization header, as careless error pages
 *                         do (the preload must scrub them)
 *   POST /post            reads the Content-Length body (Expect: 100-continue
 *                         honoured) and answers with its size
 *   GET  /file            the --file PATH with sendfile(); 404 without --file
 *   GET  /chunked         a chunked response, one write() per chunk
 *   anything else         404
 * HEAD is accepted on every GET route: same headers, no body.
 *
 * Usage: threaded_server [--port N] [--file PATH] [--threads N] [--verbose]
 * Listens on 127.0.0.1:N (0: any free port) and prints "listening on PORT"
 * on stdout once it accepts connections. --verbose logs one line per request
 * and per close on stderr, with the worker that handled it:
 *   conn=C req=R worker=W METHOD PATH STATUS
 *   conn=C close worker=W
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

#define TS_MAX_WORKERS 64
#define TS_MAX_CONNS 1024
#define TS_HEAD_MAX 16384       /* request line + headers */
#define TS_BODY_CHUNK 65536

struct ts_conn {
	int fd;
	unsigned long id;
	unsigned long nreq;     /* requests served so far */
	unsigned next_worker;   /* who serves the next request on it */
	int close_pending;      /* the job is "close it", not "serve it" */
	size_t len;             /* bytes buffered in head (pipelined input) */
	char head[TS_HEAD_MAX];
	struct ts_conn *next;   /* queue link */
};

struct ts_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ts_conn *first, *last;
};

static struct ts_queue ts_workq[TS_MAX_WORKERS];
static unsigned ts_nworkers = 4;
static int ts_verbose;
static const char *ts_file;

/* Connections waiting in the acceptor's poll set; workers hand them back
 * through ts_idle_new and a wake-up pipe. */
static pthread_mutex_t ts_idle_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ts_conn *ts_idle_new;
static int ts_wake[2];

static void ts_log(const char *fmt, ...)
{
	if (!ts_verbose)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	/* one write per line so that threads' lines never interleave */
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

static void ts_queue_push(struct ts_queue *q, struct ts_conn *c)
{
	c->next = NULL;
	pthread_mutex_lock(&q->mu);
	if (q->last)
		q->last->next = c;
	else
		q->first = c;
	q->last = c;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

static struct ts_conn *ts_queue_pop(struct ts_queue *q)
{
	pthread_mutex_lock(&q->mu);
	while (!q->first)
		pthread_cond_wait(&q->cv, &q->mu);
	struct ts_conn *c = q->first;
	q->first = c->next;
	if (!q->first)
		q->last = NULL;
	pthread_mutex_unlock(&q->mu);
	return c;
}

/* Hands the connection to the next worker in its rotation. */
static void ts_dispatch(struct ts_conn *c)
{
	unsigned w = c->next_worker;
	c->next_worker = (w + 1) % ts_nworkers;
	ts_queue_push(&ts_workq[w], c);
}

static void ts_back_to_idle(struct ts_conn *c)
{
	pthread_mutex_lock(&ts_idle_mu);
	c->next = ts_idle_new;
	ts_idle_new = c;
	pthread_mutex_unlock(&ts_idle_mu);
	char b = 1;
	ssize_t w = write(ts_wake[1], &b, 1);
	(void)w;
}

/* Writes all of buf with send(); 0 or -1 when the peer went away. */
static int ts_send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* writev() of two buffers, finishing with send() after a short write. */
static int ts_writev2(int fd, const char *a, size_t alen, const char *b, size_t blen)
{
	struct iovec iov[2] = {
		{ .iov_base = (void *)a, .iov_len = alen },
		{ .iov_base = (void *)b, .iov_len = blen },
	};
	ssize_t n;
	do
		n = writev(fd, iov, blen ? 2 : 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	size_t done = (size_t)n;
	if (done < alen)
		return ts_send_all(fd, a + done, alen - done) ||
		       ts_send_all(fd, b, blen) ? -1 : 0;
	done -= alen;
	return ts_send_all(fd, b + done, blen - done);
}

static void ts_date(char *out, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static const char *ts_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 500: return "Internal Server Error";
	default:  return "Unknown";
	}
}

/* Formats a status line and the common headers. body_len < 0 means chunked. */
static int ts_headers(char *out, size_t len, int status, const char *ctype,
                      long long body_len, int keep_alive)
{
	char date[64];
	ts_date(date, sizeof date);
	char framing[64];
	if (body_len < 0)
		snprintf(framing, sizeof framing, "Transfer-Encoding: chunked");
	else
		snprintf(framing, sizeof framing, "Content-Length: %lld", body_len);
	return snprintf(out, len,
	                "HTTP/1.1 %d %s\r\n"
	                "Server: apiprof-threaded-test\r\n"
	                "Date: %s\r\n"
	                "Content-Type: %s\r\n"
	                "%s\r\n"
	                "Connection: %s\r\n"
	                "\r\n",
	                status, ts_reason(status), date, ctype, framing,
	                keep_alive ? "keep-alive" : "close");
}

/* A parsed request head. Pointers point into conn->head. */
struct ts_req {
	char method[16];
	char target[1024];
	int http10;
	long long content_length;   /* -1: none */
	int chunked_body;
	int conn_close;
	int conn_keep_alive;
	int expect_continue;
	char authorization[256];    /* the header's value, "" when absent */
	size_t head_len;            /* bytes of request line + headers */
};

static int ts_header_is(const char *line, size_t len, const char *name, const char **value)
{
	size_t n = strlen(name);
	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return 0;
	const char *v = line + n + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	*value = v;
	return 1;
}

/* Parses the head in c->head[0..end). Returns 0 or -1 on a malformed head. */
static int ts_parse(struct ts_conn *c, size_t end, struct ts_req *r)
{
	memset(r, 0, sizeof *r);
	r->content_length = -1;
	r->head_len = end;
	const char *p = c->head, *stop = c->head + end;
	const char *eol = memmem(p, (size_t)(stop - p), "\r\n", 2);
	if (!eol)
		return -1;
	char line[1200];
	size_t ll = (size_t)(eol - p);
	if (ll >= sizeof line)
		return -1;
	memcpy(line, p, ll);
	line[ll] = 0;
	char version[16];
	if (sscanf(line, "%15s %1023s %15s", r->method, r->target, version) != 3)
		return -1;
	if (strncmp(version, "HTTP/1.", 7) != 0)
		return -1;
	r->http10 = strcmp(version, "HTTP/1.0") == 0;
	p = eol + 2;
	while (p < stop) {
		eol = memmem(p, (size_t)(stop - p), "\r\n", 2);
		if (!eol || eol == p)
			break;
		size_t hl = (size_t)(eol - p);
		const char *v;
		if (ts_header_is(p, hl, "Content-Length", &v))
			r->content_length = strtoll(v, NULL, 10);
		else if (ts_header_is(p, hl, "Transfer-Encoding", &v))
			r->chunked_body = strncasecmp(v, "chunked", 7) == 0;
		else if (ts_header_is(p, hl, "Connection", &v)) {
			if (strncasecmp(v, "close", 5) == 0)
				r->conn_close = 1;
			else if (strncasecmp(v, "keep-alive", 10) == 0)
				r->conn_keep_alive = 1;
		} else if (ts_header_is(p, hl, "Expect", &v))
			r->expect_continue = strncasecmp(v, "100-continue", 12) == 0;
		else if (ts_header_is(p, hl, "Authorization", &v))
			snprintf(r->authorization, sizeof r->authorization, "%.*s",
			         (int)(eol - v), v);
		p = eol + 2;
	}
	return 0;
}

/* Reads until the buffered input holds a whole head. Returns the head's
 * length, 0 on a clean EOF before any byte, -1 on error or overflow. */
static ssize_t ts_read_head(struct ts_conn *c)
{
	for (;;) {
		char *end = c->len >= 4 ? memmem(c->head, c->len, "\r\n\r\n", 4) : NULL;
		if (end)
			return end + 4 - c->head;
		if (c->len == sizeof c->head)
			return -1;
		ssize_t n = recv(c->fd, c->head + c->len, sizeof c->head - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 && c->len == 0)
			return 0;
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
}

/* Consumes `want` body bytes: first from the buffer, then with read().
 * Returns the number consumed (less than want when the peer went away). */
static long long ts_read_body(struct ts_conn *c, long long want)
{
	long long got = 0;
	size_t from_buf = c->len < (unsigned long long)want ? c->len : (size_t)want;
	memmove(c->head, c->head + from_buf, c->len - from_buf);
	c->len -= from_buf;
	got += (long long)from_buf;
	static __thread char scratch[TS_BODY_CHUNK];
	while (got < want) {
		size_t ask = want - got < TS_BODY_CHUNK ? (size_t)(want - got) : TS_BODY_CHUNK;
		ssize_t n = read(c->fd, scratch, ask);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

static int ts_respond_simple(int fd, int status, const char *ctype, const char *body,
                             int head_only, int keep_alive)
{
	char hdr[512];
	size_t blen = strlen(body);
	int hl = ts_headers(hdr, sizeof hdr, status, ctype, (long long)blen, keep_alive);
	return ts_writev2(fd, hdr, (size_t)hl, body, head_only ? 0 : blen);
}

static int ts_route_users(int fd, const char *id, int head_only, int keep_alive)
{
	char body[256];
	int bl = snprintf(body, sizeof body, "{\"id\": %ld, \"name\": \"user%ld\"}\n",
	                  strtol(id, NULL, 10), strtol(id, NULL, 10));
	char hdr[512];
	int hl = ts_headers(hdr, sizeof hdr, 200, "application/json", bl, keep_alive);
	if (ts_send_all(fd, hdr, (size_t)hl))
		return -1;
	return head_only ? 0 : ts_send_all(fd, body, (size_t)bl);
}

static int ts_route_file(int fd, int head_only, int keep_alive)
{
	int ffd = ts_file ? open(ts_file, O_RDONLY | O_CLOEXEC) : -1;
	struct stat st;
	if (ffd < 0 || fstat(ffd, &st) != 0) {
		if (ffd >= 0)
			close(ffd);
		return ts_respond_simple(fd, 404, "text/plain", "no file\n", head_only, keep_alive);
	}
	char hdr[512];
	int hl = ts_headers(hdr, sizeof hdr, 200, "application/octet-stream",
	                    (long long)st.st_size, keep_alive);
	int rc = ts_writev2(fd, hdr, (size_t)hl, NULL, 0);
	off_t off = 0;
	while (rc == 0 && !head_only && off < st.st_size) {
		ssize_t n = sendfile(fd, ffd, &off, (size_t)(st.st_size - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = -1;
	}
	close(ffd);
	return rc;
}

static int ts_route_chunked(int fd, int head_only, int keep_alive)
{
	char hdr[512];
	int hl = ts_headers(hdr, sizeof hdr, 200, "text/plain", -1, keep_alive);
	if (ts_send_all(fd, hdr, (size_t)hl))
		return -1;
	if (head_only)
		return 0;
	static const char *const parts[] = { "first chunk\n", "second, longer chunk of text\n", "3\n" };
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		char chunk[128];
		int n = snprintf(chunk, sizeof chunk, "%zx\r\n%s\r\n", strlen(parts[i]), parts[i]);
		if (write(fd, chunk, (size_t)n) != n)
			return -1;
	}
	return write(fd, "0\r\n\r\n", 5) == 5 ? 0 : -1;
}

/* Serves one request whose head is buffered. Returns the status sent, or -1
 * when the connection must be closed without further ado. Sets *keep. */
static int ts_serve(struct ts_conn *c, size_t head_len, int *keep, unsigned me)
{
	struct ts_req r;
	if (ts_parse(c, head_len, &r) != 0) {
		*keep = 0;
		memmove(c->head, c->head + head_len, c->len - head_len);
		c->len -= head_len;
		ts_respond_simple(c->fd, 400, "text/plain", "bad request\n", 0, 0);
		ts_log("conn=%lu req=%lu worker=%u - - 400", c->id, c->nreq, me);
		return 400;
	}
	memmove(c->head, c->head + head_len, c->len - head_len);
	c->len -= head_len;
	*keep = r.http10 ? r.conn_keep_alive : !r.conn_close;

	int head_only = strcmp(r.method, "HEAD") == 0;
	int is_get = head_only || strcmp(r.method, "GET") == 0;
	char path[1024];
	snprintf(path, sizeof path, "%s", r.target);
	char *q = strchr(path, '?');
	const char *query = "";
	if (q) {
		*q = 0;
		query = q + 1;
	}

	if (r.chunked_body) {   /* not needed by the tests: refuse rather than guess */
		*keep = 0;
		ts_respond_simple(c->fd, 400, "text/plain", "chunked bodies unsupported\n", 0, 0);
		return 400;
	}
	if (r.content_length > 0 && strcmp(path, "/post") != 0) {
		if (ts_read_body(c, r.content_length) < r.content_length)
			return -1;
	}

	int status = 200, rc = 0;
	if (strcmp(path, "/post") == 0 && strcmp(r.method, "POST") == 0) {
		long long want = r.content_length > 0 ? r.content_length : 0;
		if (r.expect_continue && want > (long long)c->len) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			if (ts_send_all(c->fd, cont, sizeof cont - 1))
				return -1;
		}
		long long got = ts_read_body(c, want);
		if (got < want)
			return -1;
		char body[64];
		snprintf(body, sizeof body, "received %lld\n", got);
		rc = ts_respond_simple(c->fd, 200, "text/plain", body, 0, *keep);
	} else if (!is_get) {
		status = 405;
		rc = ts_respond_simple(c->fd, status, "text/plain", "method not allowed\n", 0, *keep);
	} else if (strcmp(path, "/hello") == 0) {
		rc = ts_respond_simple(c->fd, 200, "text/plain", "hello\n", head_only, *keep);
	} else if (strncmp(path, "/users/", 7) == 0 && path[7]) {
		rc = ts_route_users(c->fd, path + 7, head_only, *keep);
	} else if (strcmp(path, "/slow") == 0) {
		const char *ms = strstr(query, "ms=");
		long v = ms ? strtol(ms + 3, NULL, 10) : 100;
		if (v < 0)
			v = 0;
		if (v > 10000)
			v = 10000;
		struct timespec ts = { .tv_sec = v / 1000, .tv_nsec = (v % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		char body[64];
		snprintf(body, sizeof body, "slept %ld ms\n", v);
		rc = ts_respond_simple(c->fd, 200, "text/plain", body, head_only, *keep);
	} else if (strcmp(path, "/error") == 0) {
		status = 500;
		rc = ts_respond_simple(c->fd, 500, "text/plain",
		                       "internal error: the test server failed on purpose\n",
		                       head_only, *keep);
	} else if (strcmp(path, "/echo-error") == 0) {
		status = 500;
		char body[1400]; /* no final newline: the stored message is exact */
		snprintf(body, sizeof body,
		         "internal error: GET /echo-error?%s failed with Authorization: %s",
		         query, r.authorization);
		rc = ts_respond_simple(c->fd, 500, "text/plain", body, head_only, *keep);
	} else if (strcmp(path, "/file") == 0) {
		rc = ts_route_file(c->fd, head_only, *keep);
		status = ts_file ? 200 : 404;
	} else if (strcmp(path, "/chunked") == 0) {
		rc = ts_route_chunked(c->fd, head_only, *keep);
	} else {
		status = 404;
		rc = ts_respond_simple(c->fd, 404, "text/plain", "not found\n", head_only, *keep);
	}
	ts_log("conn=%lu req=%lu worker=%u %s %s %d", c->id, c->nreq, me, r.method,
	       r.target, status);
	return rc == 0 ? status : -1;
}

static void ts_close(struct ts_conn *c, unsigned worker)
{
	ts_log("conn=%lu close worker=%u", c->id, worker);
	close(c->fd);
	free(c);
}

static void *ts_worker(void *arg)
{
	unsigned me = (unsigned)(unsigned long)arg;
	for (;;) {
		struct ts_conn *c = ts_queue_pop(&ts_workq[me]);
		if (c->close_pending) {
			ts_close(c, me);
			continue;
		}
		ssize_t hl = ts_read_head(c);
		if (hl <= 0) {           /* peer closed (or junk): close it right here */
			ts_close(c, me);
			continue;
		}
		int keep = 0;
		c->nreq++;
		int st = ts_serve(c, (size_t)hl, &keep, me);
		if (st < 0 || !keep) {
			/* The close happens on yet another thread (Apache event closes
			 * lingering connections from its listener). */
			c->close_pending = 1;
			ts_dispatch(c);
		} else if (c->len > 0) {
			ts_dispatch(c);      /* a pipelined request is already buffered */
		} else {
			ts_back_to_idle(c);
		}
	}
	return NULL;
}

/* The acceptor: accepts new connections and polls idle ones; a readable idle
 * connection is dispatched to the next worker of its rotation. */
static void ts_acceptor(int lfd)
{
	static struct ts_conn *idle[TS_MAX_CONNS];
	static struct pollfd pfd[TS_MAX_CONNS + 2];
	size_t nidle = 0;
	unsigned long next_id = 1;
	for (;;) {
		pthread_mutex_lock(&ts_idle_mu);
		while (ts_idle_new) {
			struct ts_conn *c = ts_idle_new;
			ts_idle_new = c->next;
			if (nidle < TS_MAX_CONNS)
				idle[nidle++] = c;
			else {
				c->close_pending = 1;
				ts_dispatch(c);
			}
		}
		pthread_mutex_unlock(&ts_idle_mu);

		pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = ts_wake[0], .events = POLLIN };
		for (size_t i = 0; i < nidle; i++)
			pfd[i + 2] = (struct pollfd){ .fd = idle[i]->fd, .events = POLLIN };
		int n = poll(pfd, nidle + 2, -1);
		if (n < 0)
			continue;
		if (pfd[1].revents) {
			char buf[256];
			ssize_t r = read(ts_wake[0], buf, sizeof buf);
			(void)r;
		}
		size_t keep = 0;
		for (size_t i = 0; i < nidle; i++) {
			if (pfd[i + 2].revents)
				ts_dispatch(idle[i]);
			else
				idle[keep++] = idle[i];
		}
		nidle = keep;
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			struct ts_conn *c = calloc(1, sizeof *c);
			if (!c) {
				close(fd);
				continue;
			}
			c->fd = fd;
			c->id = next_id++;
			c->next_worker = (unsigned)(c->id % ts_nworkers);
			struct timeval tv = { .tv_sec = 30 };
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
			if (nidle < TS_MAX_CONNS)
				idle[nidle++] = c;
			else
				ts_close(c, 0);
		}
	}
}

static void ts_usage(FILE *out)
{
	fprintf(out, "usage: threaded_server [--port N] [--file PATH] [--threads N] [--verbose]\n");
}

int main(int argc, char **argv)
{
	int port = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
			ts_file = argv[++i];
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			ts_nworkers = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--verbose") == 0)
			ts_verbose = 1;
		else if (strcmp(argv[i], "--help") == 0) {
			ts_usage(stdout);
			return 0;
		} else {
			ts_usage(stderr);
			return 2;
		}
	}
	if (ts_nworkers < 2 || ts_nworkers > TS_MAX_WORKERS) {
		fprintf(stderr, "threaded_server: --threads must be 2..%d\n", TS_MAX_WORKERS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	/* Its own acceptor (ts_acceptor), not serve.h's loop: idle
	 * keep-alive connections go back to it. */
	int lfd = serve_listen("threaded_server", port, 128, &port);
	if (lfd < 0)
		return 1;
	if (pipe2(ts_wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		perror("threaded_server: pipe2");
		return 1;
	}
	for (unsigned i = 0; i < ts_nworkers; i++) {
		pthread_mutex_init(&ts_workq[i].mu, NULL);
		pthread_cond_init(&ts_workq[i].cv, NULL);
		pthread_t t;
		if (pthread_create(&t, NULL, ts_worker, (void *)(unsigned long)i) != 0) {
			fprintf(stderr, "threaded_server: pthread_create failed\n");
			return 1;
		}
		pthread_detach(t);
	}
	serve_announce(port);
	ts_acceptor(lfd);
	return 0;
}

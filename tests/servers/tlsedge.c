/*
 * tlsedge.c - an OpenSSL server and its client, for the ways servers drive
 * libssl that tests/integration/tls.sh's nginx and Python do not: a
 * non-blocking socket (SSL_read wanting more, partial writes and a write
 * retried with the same buffer after SSL_ERROR_WANT_WRITE), SSL_peek before
 * SSL_read, one SSL object reused for the next connection (SSL_clear and
 * SSL_set_fd), a client that sends close_notify before the response, a
 * fork after the request was read, the response written by another
 * thread, a TLS 1.3 key update and a TLS 1.2 renegotiation between
 * requests, a plain connection on the same descriptor number after TLS
 * ones, SSL_read_ex/SSL_write_ex, a vfork() child ending in _exit(), the
 * error queue a failed SSL_sendfile leaves, SQL run by a servername
 * callback inside the SSL_read that completes the handshake, and SSL
 * objects over memory BIOs while another's handshake reads its socket or
 * an HTTPS call of the server's own (memory BIOs too) reads its answer,
 * and the error queue an SSL_read without a BIO leaves.
 *
 * usage: tlsedge CERT KEY
 * Forks its client, serves its connections one after another, and exits 0
 * when every exchange went as the client expected. Prints what the
 * server's writes met (WANT_WRITE retries, partial writes), so the test can
 * check that the cases it means were really exercised. Built by tls.sh
 * (cc ... -lssl -lcrypto -lpq).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define BIG 300000 /* a body larger than every socket buffer here */

static void die(const char *what)
{
	fprintf(stderr, "tlsedge: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* Waits as SSL_get_error(r) asks; 0 when it is not a wait. */
static int wait_for(SSL *s, int r, int *wants_write)
{
	int e = SSL_get_error(s, r);
	struct pollfd p = { .fd = SSL_get_fd(s) };
	if (e == SSL_ERROR_WANT_READ)
		p.events = POLLIN;
	else if (e == SSL_ERROR_WANT_WRITE)
		p.events = POLLOUT;
	else
		return 0;
	if (e == SSL_ERROR_WANT_WRITE && wants_write)
		(*wants_write)++;
	poll(&p, 1, 10000);
	return 1;
}

static void handshake(SSL *s, int server)
{
	for (;;) {
		int r = server ? SSL_accept(s) : SSL_connect(s);
		if (r == 1)
			return;
		if (!wait_for(s, r, NULL)) {
			fprintf(stderr, "tlsedge: %s handshake: SSL error %d, errno %d\n",
			        server ? "server" : "client", SSL_get_error(s, r), errno);
			die("handshake failed");
		}
	}
}

/* Reads one request head (no body) into buf; returns its length, 0 at
 * close_notify or EOF. `peek`: SSL_peek it first. */
static int read_head(SSL *s, char *buf, int cap, int peek)
{
	int n = 0;
	while (n == 0 || !strstr(buf, "\r\n\r\n")) {
		int r;
		if (peek) {
			char tmp[64];
			r = SSL_peek(s, tmp, sizeof tmp);
			if (r <= 0 && wait_for(s, r, NULL))
				continue;
			if (r <= 0)
				return 0;
		}
		r = SSL_read(s, buf + n, cap - 1 - n);
		if (r <= 0) {
			if (wait_for(s, r, NULL))
				continue;
			return 0;
		}
		n += r;
		buf[n] = '\0';
	}
	return n;
}

/* Writes all of p[0..n): with SSL_MODE_ENABLE_PARTIAL_WRITE a call may
 * take part of it; without, a call that wants to write is retried with the
 * same arguments. Counts both in *wants and *partials. */
static void write_all(SSL *s, const char *p, int n, int *wants, int *partials)
{
	while (n > 0) {
		int r = SSL_write(s, p, n);
		if (r > 0) {
			if (r < n && partials)
				(*partials)++;
			p += r;
			n -= r;
		} else if (!wait_for(s, r, wants)) {
			die("write failed");
		}
	}
}

static char *big_body(void)
{
	char *b = malloc(BIG);
	if (!b)
		die("malloc");
	for (int i = 0; i < BIG; i++)
		b[i] = (char)('a' + i % 26);
	return b;
}

/* A response of `len` body bytes in one write_all() call. */
static void respond(SSL *s, int len, int *wants, int *partials)
{
	static char *body;
	if (!body)
		body = big_body();
	char *msg = malloc((size_t)len + 100);
	int h = sprintf(msg, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len);
	memcpy(msg + h, body, (size_t)len);
	write_all(s, msg, h + len, wants, partials);
	free(msg);
}

/* ---- the server ---- */

static SSL_CTX *server_ctx(const char *cert, const char *key)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	if (!c || SSL_CTX_use_certificate_file(c, cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1)
		die("server context");
	SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
	return c;
}

static int accept_one(int ls)
{
	int fd = accept(ls, NULL, NULL);
	if (fd < 0)
		die("accept");
	return fd;
}

/* A TLS connection on fd, handshake done (as the server when `server`). */
static SSL *tls_on(SSL_CTX *ctx, int fd, int server)
{
	SSL *s = SSL_new(ctx);
	if (!s || SSL_set_fd(s, fd) != 1)
		die("SSL_new");
	if (!server)
		SSL_set_tlsext_host_name(s, "tlsedge");
	handshake(s, server);
	return s;
}

/* A servername callback that looks the host's certificate up in a
 * database (libpq; a NULL connection answers at once, and the preload
 * records the statement all the same). */
static int on_servername(SSL *s, int *alert, void *arg)
{
	(void)s;
	(void)alert;
	(void)arg;
	PQclear(PQexec(NULL, "SELECT cert FROM tenants WHERE host = 'tlsedge'"));
	return SSL_TLSEXT_ERR_OK;
}

static void tls_close(SSL *s, int fd)
{
	SSL_shutdown(s);
	SSL_free(s);
	close(fd);
}

/* The next connection, its handshake done and its first request head in
 * buf (dies naming `what` when there is none). */
static SSL *next_request(int ls, SSL_CTX *ctx, int *fd, char *buf, int cap, const char *what)
{
	*fd = accept_one(ls);
	SSL *s = tls_on(ctx, *fd, 1);
	if (!read_head(s, buf, cap, 0))
		die(what);
	return s;
}

/* Waits for the client's close_notify (or its close), then closes. */
static void finish(SSL *s, int fd, char *buf, int cap)
{
	read_head(s, buf, cap, 0);
	tls_close(s, fd);
}

struct thread_reply {
	SSL *s;
};

static void *reply_thread(void *arg)
{
	respond(((struct thread_reply *)arg)->s, 10, NULL, NULL);
	return NULL;
}

/* ---- an SSL object over memory BIOs (asyncio's, H2O's way) ---- */

struct mem_tls {
	SSL *s;
	BIO *in, *out;
	int fd;
};

static void mem_on(struct mem_tls *m, SSL_CTX *ctx, int fd)
{
	m->s = SSL_new(ctx);
	m->in = BIO_new(BIO_s_mem());
	m->out = BIO_new(BIO_s_mem());
	m->fd = fd;
	if (!m->s || !m->in || !m->out)
		die("membio: SSL_new");
	SSL_set_bio(m->s, m->in, m->out);
	SSL_set_accept_state(m->s);
}

/* What libssl wrote, to the socket. */
static void mem_flush(struct mem_tls *m)
{
	char b[16384];
	int n;
	while ((n = BIO_read(m->out, b, sizeof b)) > 0)
		if (write(m->fd, b, (size_t)n) != n)
			die("membio: write");
}

/* One read of the socket into the incoming BIO; 0 at its end. */
static int mem_fill(struct mem_tls *m)
{
	char b[16384];
	ssize_t r = recv(m->fd, b, sizeof b, 0);
	if (r <= 0)
		return 0;
	BIO_write(m->in, b, (int)r);
	return 1;
}

static void mem_handshake(struct mem_tls *m)
{
	for (;;) {
		int r = SSL_do_handshake(m->s);
		mem_flush(m);
		if (r == 1)
			return;
		if (SSL_get_error(m->s, r) != SSL_ERROR_WANT_READ || !mem_fill(m))
			die("membio: handshake");
	}
}

/* SSL_read of at most n bytes, the socket read only when libssl wants
 * more; 0 at close_notify or the socket's end. */
static int mem_read(struct mem_tls *m, char *buf, int n)
{
	for (;;) {
		int r = SSL_read(m->s, buf, n);
		mem_flush(m);
		if (r > 0)
			return r;
		if (SSL_get_error(m->s, r) != SSL_ERROR_WANT_READ || !mem_fill(m))
			return 0;
	}
}

/* The rest of a request head whose first n bytes are in buf. */
static void mem_head(struct mem_tls *m, char *buf, int n, int cap, const char *what)
{
	buf[n] = '\0';
	while (!strstr(buf, "\r\n\r\n")) {
		int r = mem_read(m, buf + n, cap - 1 - n);
		if (r <= 0)
			die(what);
		n += r;
		buf[n] = '\0';
	}
}

/* A 10-byte response, then the client's close_notify awaited. */
static void mem_respond_close(struct mem_tls *m, char *buf, int cap)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\naaaaaaaaaa";
	if (SSL_write(m->s, ok, sizeof ok - 1) != (int)sizeof ok - 1)
		die("membio: SSL_write");
	mem_flush(m);
	while (mem_read(m, buf, cap) > 0)
		;
	SSL_free(m->s);
	close(m->fd);
}

/* Bytes waiting in from's outgoing BIO, into to's incoming one. */
static void mem_shuttle(struct mem_tls *from, struct mem_tls *to)
{
	char b[16384];
	int n;
	while ((n = BIO_read(from->out, b, sizeof b)) > 0)
		BIO_write(to->in, b, n);
}

/* An HTTPS call of the server's own over memory BIOs, to a peer in this
 * process (no socket at all): a TLS client's SSL_read, with no socket
 * read before it, whose object must not be taken for an accepted
 * connection's. */
static void mem_outbound(SSL_CTX *ctx)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	if (!cctx)
		die("outbound: context");
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	struct mem_tls cl, up;
	mem_on(&cl, cctx, -1);
	SSL_set_connect_state(cl.s);
	mem_on(&up, ctx, -1);
	int done = 0;
	for (int i = 0; i < 20 && done != 3; i++) {
		if (SSL_do_handshake(cl.s) == 1)
			done |= 1;
		mem_shuttle(&cl, &up);
		if (SSL_do_handshake(up.s) == 1)
			done |= 2;
		mem_shuttle(&up, &cl);
	}
	static const char answer[] = "upstream";
	char got[64];
	if (done != 3 || SSL_write(up.s, answer, sizeof answer - 1) != (int)sizeof answer - 1)
		die("outbound: handshake");
	mem_shuttle(&up, &cl);
	if (SSL_read(cl.s, got, sizeof got) != (int)sizeof answer - 1)
		die("outbound: SSL_read");
	SSL_free(cl.s);
	SSL_free(up.s);
	SSL_CTX_free(cctx);
}

static void serve(int ls, SSL_CTX *ctx, SSL_CTX *ctx12, SSL_CTX *ctxsni)
{
	char buf[4096];
	int wants = 0, partials = 0;

	/* 1. non-blocking, partial writes: /nb (a big body), then /nb2 */
	int fd = accept_one(ls);
	int mid = 65536, small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &mid, sizeof mid);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	SSL *s = SSL_new(ctx);
	SSL_set_fd(s, fd);
	SSL_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE);
	handshake(s, 1);
	if (!read_head(s, buf, sizeof buf, 0))
		die("nb: no request");
	respond(s, BIG, &wants, &partials);
	printf("nb: want_write %d partial %d\n", wants, partials);
	if (!read_head(s, buf, sizeof buf, 0))
		die("nb2: no request");
	respond(s, 10, NULL, NULL);
	if (read_head(s, buf, sizeof buf, 0))
		die("nb: a third request");
	tls_close(s, fd);

	/* 2. non-blocking, whole writes retried with the same buffer: /retry */
	fd = accept_one(ls);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	s = tls_on(ctx, fd, 1);
	if (!read_head(s, buf, sizeof buf, 0))
		die("retry: no request");
	wants = partials = 0;
	respond(s, BIG, &wants, &partials);
	printf("retry: want_write %d partial %d\n", wants, partials);
	finish(s, fd, buf, sizeof buf);

	/* 3. SSL_peek before each SSL_read: /peek */
	fd = accept_one(ls);
	s = tls_on(ctx, fd, 1);
	if (!read_head(s, buf, sizeof buf, 1)) /* peeking */
		die("peek: no request");
	respond(s, 10, NULL, NULL);
	read_head(s, buf, sizeof buf, 1);

	/* 4. the same SSL object for the next connection: /reuse twice */
	SSL_shutdown(s);
	close(fd);
	for (int i = 0; i < 2; i++) {
		fd = accept_one(ls);
		if (SSL_clear(s) != 1 || SSL_set_fd(s, fd) != 1)
			die("SSL_clear");
		handshake(s, 1);
		if (!read_head(s, buf, sizeof buf, 0))
			die("reuse: no request");
		respond(s, 10, NULL, NULL);
		read_head(s, buf, sizeof buf, 0);
		SSL_shutdown(s);
		close(fd);
	}
	SSL_free(s);

	/* 5. close_notify instead of waiting for the response: /abort */
	s = next_request(ls, ctx, &fd, buf, sizeof buf, "abort: no request");
	if (read_head(s, buf, sizeof buf, 0))
		die("abort: more than close_notify");
	tls_close(s, fd);

	/* 6. a plain connection, likely on the number TLS ones had: /plain */
	fd = accept_one(ls);
	int n = 0;
	while (n == 0 || !strstr(buf, "\r\n\r\n")) {
		ssize_t r = read(fd, buf + n, sizeof buf - 1 - (size_t)n);
		if (r <= 0)
			die("plain: no request");
		n += (int)r;
		buf[n] = '\0';
	}
	static const char plain[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	if (write(fd, plain, sizeof plain - 1) != (ssize_t)sizeof plain - 1)
		die("plain: write");
	while (read(fd, buf, sizeof buf) > 0)
		;
	close(fd);

	/* 7. the request read, then a fork: the child answers, the parent
	 * closes its copy (not an abort): /fork */
	s = next_request(ls, ctx, &fd, buf, sizeof buf, "fork: no request");
	pid_t pid = fork();
	if (pid == 0) {
		respond(s, 10, NULL, NULL);
		read_head(s, buf, sizeof buf, 0);
		SSL_shutdown(s);
		_exit(0);
	}
	close(fd);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("fork: the child failed");
	SSL_free(s);

	/* 8. read on this thread, answered by another: /thread */
	s = next_request(ls, ctx, &fd, buf, sizeof buf, "thread: no request");
	pthread_t t;
	struct thread_reply tr = { s };
	if (pthread_create(&t, NULL, reply_thread, &tr) != 0)
		die("pthread_create");
	pthread_join(t, NULL);
	finish(s, fd, buf, sizeof buf);

	/* 9. TLS 1.3 key update between two requests: /keyupdate twice */
	fd = accept_one(ls);
	s = tls_on(ctx, fd, 1);
	for (int i = 0; i < 2; i++) {
		if (!read_head(s, buf, sizeof buf, 0))
			die("keyupdate: no request");
		if (SSL_key_update(s, SSL_KEY_UPDATE_REQUESTED) != 1)
			die("SSL_key_update");
		respond(s, 10, NULL, NULL);
	}
	finish(s, fd, buf, sizeof buf);

	/* 10. TLS 1.2, renegotiated between two requests: /reneg twice */
	s = next_request(ls, ctx12, &fd, buf, sizeof buf, "reneg: no request");
	respond(s, 10, NULL, NULL);
	if (SSL_renegotiate(s) != 1 || SSL_do_handshake(s) != 1)
		die("SSL_renegotiate");
	if (!read_head(s, buf, sizeof buf, 0))
		die("reneg: no second request");
	respond(s, 10, NULL, NULL);
	finish(s, fd, buf, sizeof buf);

	/* 11. SSL_read_ex and SSL_write_ex: /ex */
	fd = accept_one(ls);
	s = tls_on(ctx, fd, 1);
	size_t got = 0, put = 0;
	n = 0;
	while (n == 0 || !strstr(buf, "\r\n\r\n")) {
		if (SSL_read_ex(s, buf + n, sizeof buf - 1 - (size_t)n, &got) != 1)
			die("ex: SSL_read_ex");
		n += (int)got;
		buf[n] = '\0';
	}
	static const char ex[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nex\n";
	if (SSL_write_ex(s, ex, sizeof ex - 1, &put) != 1 || put != sizeof ex - 1)
		die("ex: SSL_write_ex");
	finish(s, fd, buf, sizeof buf);

	/* 12. a vfork() child that ends in _exit() (as an exec that failed
	 * does), then /after: the child runs on our memory, and must not take
	 * the event buffer with it */
	pid = vfork();
	if (pid == 0)
		_exit(3);
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		die("vfork");
	s = next_request(ls, ctx, &fd, buf, sizeof buf, "after: no request");
	respond(s, 10, NULL, NULL);
	finish(s, fd, buf, sizeof buf);

	/* 13. no SSL_accept: the first SSL_read completes the handshake (as
	 * gunicorn's default do_handshake_on_connect=False), and with it runs
	 * the servername callback's SQL: /sni */
	fd = accept_one(ls);
	s = SSL_new(ctxsni);
	SSL_set_fd(s, fd);
	SSL_set_accept_state(s);
	if (!read_head(s, buf, sizeof buf, 0))
		die("sni: no request");
	respond(s, 10, NULL, NULL);
	finish(s, fd, buf, sizeof buf);

	/* 14. memory BIOs: /membio read in two SSL_reads, the second served
	 * from what libssl holds (no socket read), while another
	 * connection's handshake, begun in between, was the thread's last
	 * TLS read (SSL_do_handshake, not an SSL read, leaves that note);
	 * then that connection's /membio2. Each object stays its own
	 * socket's. Before /membio2's SSL_read, with its handshake's read
	 * the thread's last, an HTTPS call of the server's own over memory
	 * BIOs reads its answer. */
	struct mem_tls ma, mc;
	mem_on(&ma, ctx, accept_one(ls));
	mem_handshake(&ma);
	mem_on(&mc, ctx, accept_one(ls));
	n = mem_read(&ma, buf, 8);
	if (n <= 0)
		die("membio: no request");
	if (!mem_fill(&mc)) /* mc's ClientHello */
		die("membio2: no ClientHello");
	if (SSL_do_handshake(mc.s) == 1)
		die("membio2: a handshake in one flight");
	mem_flush(&mc);
	mem_head(&ma, buf, n, sizeof buf, "membio: no request head");
	mem_respond_close(&ma, buf, sizeof buf);
	mem_handshake(&mc);
	/* an SSL_read on an SSL with no BIO: libssl's errors only in the
	 * queue, and no binding for it */
	SSL *none = SSL_new(ctx);
	ERR_clear_error();
	if (!none || SSL_read(none, buf, 10) > 0)
		die("membio: SSL_read without a BIO");
	unsigned long err;
	while ((err = ERR_get_error()) != 0)
		if (ERR_GET_LIB(err) != ERR_LIB_SSL) {
			fprintf(stderr, "tlsedge: SSL_read left %s\n", ERR_error_string(err, NULL));
			die("an error queue libssl did not fill");
		}
	SSL_free(none);
	mem_outbound(ctx);
	mem_head(&mc, buf, 0, sizeof buf, "membio2: no request");
	mem_respond_close(&mc, buf, sizeof buf);
}

/* ---- the client (a child process) ---- */

static int dial(int port, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
		die("connect");
	return fd;
}

/* One request for path, in two pieces 50 ms apart when `split`; the
 * response read whole (after `delay_ms`), its body length checked. */
static void exchange(SSL *s, const char *path, int want_len, int split, int delay_ms)
{
	char req[256];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: tlsedge\r\n\r\n", path);
	int first = split ? 10 : n;
	write_all(s, req, first, NULL, NULL);
	if (split) {
		usleep(50000);
		write_all(s, req + first, n - first, NULL, NULL);
	}
	if (delay_ms)
		usleep((useconds_t)delay_ms * 1000);
	static char buf[BIG + 4096];
	int got = 0, head = -1, len = -1;
	while (head < 0 || got < head + len) {
		int r = SSL_read(s, buf + got, (int)sizeof buf - 1 - got);
		if (r <= 0)
			die("client: response cut short");
		got += r;
		buf[got] = '\0';
		char *e = strstr(buf, "\r\n\r\n");
		if (head < 0 && e) {
			head = (int)(e + 4 - buf);
			char *cl = strstr(buf, "Content-Length: ");
			len = cl ? atoi(cl + 16) : 0;
		}
	}
	if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || len != want_len)
		die("client: unexpected response");
}

/* A connection of its own for `times` exchanges of path. */
static void visit(SSL_CTX *ctx, int port, const char *path, int times, int want_len, int split)
{
	int fd = dial(port, 0);
	SSL *s = tls_on(ctx, fd, 0);
	for (int i = 0; i < times; i++)
		exchange(s, path, want_len, split, 0);
	tls_close(s, fd);
}

static void client(int port)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		die("client context");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

	int fd = dial(port, 4096);
	SSL *s = tls_on(ctx, fd, 0);
	exchange(s, "/nb", BIG, 1, 300);
	exchange(s, "/nb2", 10, 0, 0);
	tls_close(s, fd);

	fd = dial(port, 4096);
	s = tls_on(ctx, fd, 0);
	exchange(s, "/retry", BIG, 0, 300);
	tls_close(s, fd);

	visit(ctx, port, "/peek", 1, 10, 1);
	visit(ctx, port, "/reuse", 1, 10, 0);
	visit(ctx, port, "/reuse", 1, 10, 0);

	fd = dial(port, 0);
	s = tls_on(ctx, fd, 0);
	static const char req[] = "GET /abort HTTP/1.1\r\nHost: tlsedge\r\n\r\n";
	write_all(s, req, sizeof req - 1, NULL, NULL);
	usleep(100000);
	tls_close(s, fd);

	fd = dial(port, 0);
	static const char plain[] = "GET /plain HTTP/1.1\r\nHost: tlsedge\r\n\r\n";
	if (write(fd, plain, sizeof plain - 1) != (ssize_t)sizeof plain - 1)
		die("client: plain write");
	char buf[256];
	ssize_t r = read(fd, buf, sizeof buf);
	if (r < 12 || strncmp(buf, "HTTP/1.1 200", 12) != 0)
		die("client: plain response");
	close(fd);

	visit(ctx, port, "/fork", 1, 10, 0);
	visit(ctx, port, "/thread", 1, 10, 0);
	visit(ctx, port, "/keyupdate", 2, 10, 0);
	SSL_CTX *ctx12 = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(ctx12, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_max_proto_version(ctx12, TLS1_2_VERSION);
	visit(ctx12, port, "/reneg", 2, 10, 0);
	visit(ctx, port, "/ex", 1, 3, 0);
	visit(ctx, port, "/after", 1, 10, 0);
	visit(ctx, port, "/sni", 1, 10, 0);

	/* 14: /membio, with a second connection's handshake begun */
	fd = dial(port, 0);
	s = tls_on(ctx, fd, 0);
	int fd2 = dial(port, 0);
	SSL *s2 = SSL_new(ctx);
	fcntl(fd2, F_SETFL, fcntl(fd2, F_GETFL) | O_NONBLOCK);
	SSL_set_fd(s2, fd2);
	if (SSL_connect(s2) == 1) /* sends the ClientHello, wants the answer */
		die("client: a handshake in one flight");
	usleep(50000); /* the ClientHello there before the request */
	exchange(s, "/membio", 10, 0, 0);
	tls_close(s, fd);
	fcntl(fd2, F_SETFL, fcntl(fd2, F_GETFL) & ~O_NONBLOCK);
	handshake(s2, 0);
	exchange(s2, "/membio2", 10, 0, 0);
	tls_close(s2, fd2);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: tlsedge CERT KEY\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN); /* close_notify to a peer already gone */
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 16) != 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) != 0)
		die("listen");
	SSL_CTX *ctx = server_ctx(argv[1], argv[2]);
	SSL_CTX *ctx12 = server_ctx(argv[1], argv[2]);
	/* SSL_sendfile without kernel TLS (here, without any BIO) fails; the
	 * thread's OpenSSL error queue must then hold libssl's errors only. */
	SSL *none = SSL_new(ctx);
	ERR_clear_error();
	if (SSL_sendfile(none, 0, 0, 10, 0) != -1)
		die("SSL_sendfile without a socket succeeded");
	unsigned long e;
	while ((e = ERR_get_error()) != 0)
		if (ERR_GET_LIB(e) != ERR_LIB_SSL) {
			fprintf(stderr, "tlsedge: SSL_sendfile left %s\n", ERR_error_string(e, NULL));
			die("an error queue libssl did not fill");
		}
	SSL_free(none);
	SSL_CTX_set_max_proto_version(ctx12, TLS1_2_VERSION);
	SSL_CTX_clear_options(ctx12, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX *ctxsni = server_ctx(argv[1], argv[2]);
	SSL_CTX_set_tlsext_servername_callback(ctxsni, on_servername);
	pid_t pid = fork();
	if (pid == 0) {
		close(ls);
		client(ntohs(a.sin_port));
		_exit(0);
	}
	serve(ls, ctx, ctx12, ctxsni);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("the client failed");
	printf("tlsedge: ok\n");
	return 0;
}

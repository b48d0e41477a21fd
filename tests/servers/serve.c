/*
 * serve.c - what the C test servers share (serve.h): the listening socket,
 * the accept loops, reading a request head and answering.
 */
#include "config.h"
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int serve_listen(const char *prog, int port, int backlog, int *bound)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, backlog) != 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) != 0) {
		fprintf(stderr, "%s: cannot listen on 127.0.0.1:%d: %s\n", prog, port,
		        strerror(errno));
		if (ls >= 0)
			close(ls);
		return -1;
	}
	if (bound)
		*bound = ntohs(sa.sin_port);
	return ls;
}

void serve_announce(int port)
{
	printf("listening on %d\n", port);
	fflush(stdout);
}

/* The next connection, or -1 when accept failed for good (reported). */
static int next_conn(int ls, const char *prog)
{
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		if (fd >= 0)
			return fd;
		switch (errno) {
		case EINTR: case ECONNABORTED: case EPROTO: case EMFILE: case ENFILE:
		case ENOBUFS: case ENOMEM:
			continue;
		}
		fprintf(stderr, "%s: accept: %s\n", prog, strerror(errno));
		return -1;
	}
}

/* Returns when accept fails for good (SERVE_ONE_AT_A_TIME). */
static void serve_one_at_a_time(int ls, const char *prog, serve_fn fn, void *arg)
{
	for (;;) {
		int fd = next_conn(ls, prog);
		if (fd < 0)
			return;
		fn(fd, arg);
		close(fd);
	}
}

struct conn_job {
	int fd;
	serve_fn fn;
	void *arg;
};

static void *conn_main(void *p)
{
	struct conn_job j = *(struct conn_job *)p;
	free(p);
	j.fn(j.fd, j.arg);
	close(j.fd);
	return NULL;
}

/* Returns when accept fails for good (SERVE_THREADS). */
static void serve_threads(int ls, const char *prog, serve_fn fn, void *arg)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int fd = next_conn(ls, prog);
		if (fd < 0) {
			pthread_attr_destroy(&attr);
			return;
		}
		struct conn_job *j = malloc(sizeof *j);
		pthread_t t;
		if (j != NULL) {
			*j = (struct conn_job){ .fd = fd, .fn = fn, .arg = arg };
			if (pthread_create(&t, &attr, conn_main, j) == 0)
				continue;
			free(j);
		}
		close(fd);
	}
}

void serve_run(const char *prog, int port, int backlog, enum serve_mode mode, serve_fn fn,
               void *arg)
{
	int ls = serve_listen(prog, port, backlog, &port);
	if (ls < 0)
		return;
	serve_announce(port);
	if (mode == SERVE_THREADS)
		serve_threads(ls, prog, fn, arg);
	else
		serve_one_at_a_time(ls, prog, fn, arg);
	close(ls);
}

long serve_read_head(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	buf[0] = '\0';
	while (len < cap - 1 && !strstr(buf, "\r\n\r\n")) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
	}
	return (long)len;
}

/* On purpose write(), not send() as pq_server and threaded_server
 * answer: these servers' answers are what exercises the preload's write()
 * hook on a socket. */
int serve_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int serve_read_all(int fd, char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int serve_reply(int fd, int status, const char *body)
{
	char buf[1024];
	size_t blen = strlen(body);
	int n = snprintf(buf, sizeof buf,
	                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n%s",
	                 status, status == 200 ? "OK" : status == 404 ? "Not Found" : "Error", blen,
	                 body);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof buf)
		return serve_write_all(fd, buf, (size_t)n);
	/* Too long for one buffer: the head (complete: it is short), then the body. */
	if (serve_write_all(fd, buf, (size_t)n - blen) < 0)
		return -1;
	return serve_write_all(fd, body, blen);
}

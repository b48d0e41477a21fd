/*
 * dup_server - an HTTP/1.1 keep-alive server that serves each accepted
 * connection under other descriptor numbers than the one accept()
 * returned, for integration/dup.sh: the preload must follow one
 * connection through its aliases (dup, dup2, fcntl F_DUPFD_CLOEXEC), end
 * it only when its last alias is closed, and not when one alias of
 * several is.
 *
 * Usage: dup_server --mode MODE [--port N]
 * Listens on 127.0.0.1:N (0: any free port) and prints "listening on PORT"
 * on stdout once it accepts connections. MODE:
 *   fork   BusyBox httpd's pattern: a forked child per connection does
 *          dup2(fd, 0), close(fd), dup2(0, 1), reads fd 0 and writes fd 1,
 *          then closes 1 and 0 and calls _exit().
 *   dup    one process: the accepted fd is duplicated (dup() for odd
 *          connections, fcntl(F_DUPFD_CLOEXEC, 40) for even ones), the
 *          original closed, and the duplicate serves the connection.
 *   split  one process: requests are read on the accepted fd and answered
 *          on a dup() of it; the second request's fd is closed after the
 *          request is read and before it is answered (its answer goes out
 *          on the duplicate); from then on the duplicate reads and writes.
 *
 * Routes (GET): /hello 200 "hello\n"; /drop closes the connection (every
 * alias) without answering; anything else 404. Responses carry
 * Content-Length and keep the connection open; the connection ends when
 * the client closes it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve.h"

#define HEAD_MAX 8192

/* A keep-alive answer to the request head in `head`. 0, or -1 for /drop
 * (nothing written) or a failed write. */
static int answer(int fd, const char *head)
{
	int status = 404;
	const char *body = "not found\n";
	if (strncmp(head, "GET /drop ", 10) == 0)
		return -1;
	if (strncmp(head, "GET /hello ", 11) == 0) {
		status = 200;
		body = "hello\n";
	}
	char out[256];
	int n = snprintf(out, sizeof out,
	                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s",
	                 status, status == 200 ? "OK" : "Not Found", strlen(body), body);
	return serve_write_all(fd, out, (size_t)n);
}

/* Serves requests read on *rfd and answered on *wfd until the client
 * closes or asks for /drop. `split_at` > 0: after reading that request,
 * *rfd is closed and the duplicate *wfd reads from then on. Closes
 * nothing else: the caller closes what remains. */
static void serve_conn(int *rfd, int *wfd, int split_at)
{
	char head[HEAD_MAX];
	for (int k = 1;; k++) {
		/* sequential clients: a read never takes the next request's bytes */
		if (serve_read_head(*rfd, head, sizeof head) < 0)
			return;
		if (k == split_at) {
			close(*rfd);
			*rfd = *wfd;
		}
		if (answer(*wfd, head) < 0)
			return;
	}
}

static void serve_fork(int fd, int lsock)
{
	pid_t pid = fork();
	if (pid != 0) {
		close(fd); /* the parent's copy; a failed fork drops the connection */
		return;
	}
	close(lsock);
	if (dup2(fd, 0) != 0 || close(fd) != 0 || dup2(0, 1) != 1)
		_exit(1);
	int r = 0, w = 1;
	serve_conn(&r, &w, 0);
	close(1);
	close(0);
	_exit(0);
}

static void serve_dup(int fd, unsigned long nconn)
{
	int d = nconn % 2 ? dup(fd) : fcntl(fd, F_DUPFD_CLOEXEC, 40);
	close(fd);
	if (d < 0)
		return;
	serve_conn(&d, &d, 0);
	close(d);
}

static void serve_split(int fd)
{
	int w = dup(fd);
	if (w < 0) {
		close(fd);
		return;
	}
	int r = fd;
	serve_conn(&r, &w, 2);
	if (r != w)
		close(r);
	close(w);
}

int main(int argc, char **argv)
{
	const char *mode = NULL;
	int port = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc)
			mode = argv[++i];
		else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = atoi(argv[++i]);
		else
			mode = NULL, i = argc;
	}
	if (!mode || (strcmp(mode, "fork") && strcmp(mode, "dup") && strcmp(mode, "split"))) {
		fprintf(stderr, "usage: dup_server --mode fork|dup|split [--port N]\n");
		return 2;
	}
	signal(SIGCHLD, SIG_IGN); /* fork mode: no zombies */
	signal(SIGPIPE, SIG_IGN);
	int bound;
	int lsock = serve_listen("dup_server", port, 64, &bound);
	if (lsock < 0)
		return 1;
	serve_announce(bound);
	for (unsigned long nconn = 1;; nconn++) {
		int fd = accept(lsock, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("dup_server: accept");
			return 1;
		}
		if (mode[0] == 'f')
			serve_fork(fd, lsock);
		else if (mode[0] == 'd')
			serve_dup(fd, nconn);
		else
			serve_split(fd);
	}
}

/*
 * hookcalls.c - the socket hooks' contract with their caller, run under
 * the preload by integration/hooks.sh: on an accepted (followed)
 * connection every hooked read or write returns what the real call
 * returned, with its errno, and touches no byte the call did not move.
 *
 *  1. errno is unchanged by a successful read, recv, write, send and
 *     writev that end a request and its response (the event is built and
 *     shipped, the shipper started, inside the hook), and by a 5xx.
 *     Duplicates of a followed socket (dup, dup2, dup3, fcntl and fcntl64
 *     F_DUPFD, F_DUPFD_CLOEXEC) return the real number with errno kept;
 *     failing ones return -1 EBADF; fcntl passes a pointer argument
 *     through (F_SETOWN_EX, then F_GETOWN_EX fills the caller's struct).
 *     getsockopt TCP_INFO on a followed socket with a request in flight
 *     (as Puma asks before serving one) fills the caller's struct and
 *     length, errno kept; on a bad fd it returns -1 EBADF. A request read on
 *     one duplicate is answered on another after the accepted fd and two
 *     more duplicates were closed (more than the preload's three numbers
 *     per connection): integration/hooks.sh checks its record (GET /dup,
 *     answered, not aborted).
 *  2. A read and a recv that fail (EAGAIN) return -1 with that errno; a
 *     MSG_PEEK recv returns the bytes and leaves them to be read; recvmsg
 *     and sendmsg given a NULL msghdr fail with EFAULT (not SIGSEGV).
 *  3. recv with MSG_TRUNC on a TCP socket discards the bytes (Linux) and
 *     may pass no buffer at all: the hook must not read one.
 *  4. recv with MSG_TRUNC on a SOCK_SEQPACKET socket returns the whole
 *     record's length, more than the buffer: the buffer sits at the end of
 *     a page before a PROT_NONE page, so reading past it is a SIGSEGV.
 *
 *  5. Exchanges whose events integration/hooks.sh checks at the collector:
 *     three pipelined requests (GET, HEAD, GET) read in two pieces, their
 *     responses in one writev and a chunked one sent a byte at a time; a
 *     100-continue then a 503 whose body is written in three pieces; a
 *     response cut by close; a 101 after which nothing is followed; a
 *     CONNECT refused (407, with a body) then accepted (200: a tunnel,
 *     nothing in it followed); a
 *     sendfile body followed by another request; a request body spliced
 *     to a pipe and a response body spliced from one, then a request
 *     answered in step; a request answered
 *     after a vfork() child closed its connection (and every fd, with
 *     close_range) before _exit, as Python's subprocess does; two
 *     requests served by a worker process on a socket passed to it over
 *     a Unix socket (SCM_RIGHTS), as Node's cluster module does; a
 *     helper child closing an inherited connection while the parent
 *     answers, and a child answering the request its parent read; on a
 *     socket with
 *     SO_TIMESTAMPING, a recvmsg of the error queue (which returns a copy
 *     of the sent packet, headers and response included: not request
 *     bytes) between two requests; a TCP urgent byte read with MSG_OOB
 *     (out of the stream) before a request.
 *
 *  6. `hookcalls --exit-while-serving`: a thread serves requests without
 *     pause while the main thread calls exit(), so the preload's exit
 *     flush runs beside a thread still appending events (the
 *     ThreadSanitizer stage of scripts/test.sh reports any race).
 *
 *  7. `hookcalls --signal-writes`: a SIGALRM handler, every 50 us for
 *     1.5 s, writes a response (write is async-signal-safe) on a followed
 *     connection whose requests the main thread is reading, while the
 *     main thread also answers requests on a second one: the handler
 *     interrupts the preload's work on the same connection (its lock
 *     held) or on the buffer (its lock held). The program must finish,
 *     not spin forever on a lock its own thread holds.
 *
 * Prints one "ok ..." line per check and exits 0, or prints "FAIL ..."
 * and exits 1. Without the preload every check passes too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <linux/net_tstamp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <unistd.h>

#define MAGIC_ERRNO 4242

static int failures;

static void check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok" : "FAIL", what);
	if (!ok)
		failures++;
}

/* A connected pair over a listener of `domain`/`type`: *srv is the
 * accepted end (the one the preload follows), *cli the client's. */
static void pair(int domain, int type, int *srv, int *cli)
{
	int l = socket(domain, type, 0);
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof ss);
	if (domain == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *a;
	} else {
		struct sockaddr_un *a = (struct sockaddr_un *)&ss;
		a->sun_family = AF_UNIX;
		/* abstract, unique per process */
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
		                  (size_t)snprintf(a->sun_path + 1, sizeof a->sun_path - 1,
		                                   "hookcalls-%d", (int)getpid()));
	}
	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) != 0 || listen(l, 4) != 0) {
		perror("listen");
		exit(2);
	}
	len = sizeof ss;
	getsockname(l, (struct sockaddr *)&ss, &len);
	*cli = socket(domain, type, 0);
	if (connect(*cli, (struct sockaddr *)&ss, len) != 0) {
		perror("connect");
		exit(2);
	}
	*srv = accept(l, NULL, NULL);
	if (*srv < 0) {
		perror("accept");
		exit(2);
	}
	close(l);
}

static const char req[] = "GET /hookcalls HTTP/1.1\r\nHost: x\r\n\r\n";
/* the other checks' requests, never answered */
static const char req2[] = "GET /unanswered HTTP/1.1\r\nHost: x\r\n\r\n";
static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
static const char resp5[] = "HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy";

/* 1: errno through whole exchanges, one per pair of calls. */
static void errno_kept(void)
{
	int s, c;
	char buf[256];
	pair(AF_INET, SOCK_STREAM, &s, &c);
	for (int round = 0; round < 3; round++) {
		write(c, req, sizeof req - 1);
		errno = MAGIC_ERRNO;
		ssize_t r = round == 1 ? recv(s, buf, sizeof buf, 0) : read(s, buf, sizeof buf);
		check(r == (ssize_t)sizeof req - 1 && errno == MAGIC_ERRNO,
		      round == 1 ? "recv of a request keeps errno" : "read of a request keeps errno");
		if (round == 0) {
			struct tcp_info ti;
			socklen_t len = sizeof ti;
			memset(&ti, 0xff, sizeof ti);
			errno = MAGIC_ERRNO;
			int g = getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len);
			check(g == 0 && errno == MAGIC_ERRNO && len > 0 && len <= sizeof ti &&
			      ti.tcpi_state == TCP_ESTABLISHED,
			      "getsockopt TCP_INFO of a followed socket: its struct filled, errno kept");
			errno = 0;
			len = sizeof ti;
			g = getsockopt(-1, IPPROTO_TCP, TCP_INFO, &ti, &len);
			check(g == -1 && errno == EBADF, "getsockopt of a bad fd: -1 EBADF");
		}
		const char *out = round == 2 ? resp5 : resp;
		size_t n = strlen(out);
		errno = MAGIC_ERRNO;
		if (round == 0) {
			r = write(s, out, n);
		} else if (round == 1) {
			r = send(s, out, n, 0);
		} else {
			struct iovec v[2] = { { (void *)out, 10 }, { (void *)(out + 10), n - 10 } };
			r = writev(s, v, 2);
		}
		check(r == (ssize_t)n && errno == MAGIC_ERRNO,
		      round == 0 ? "write of a response keeps errno"
		      : round == 1 ? "send of a response keeps errno"
		                   : "writev of a 5xx response keeps errno");
		read(c, buf, sizeof buf);
	}
	close(s);
	close(c);
}

/* 1b: duplicates of a followed socket, and one request across them. */
static void dups_kept(void)
{
	static const char reqd[] = "GET /dup HTTP/1.1\r\nHost: x\r\n\r\n";
	int s, c;
	char buf[256];
	pair(AF_INET, SOCK_STREAM, &s, &c);
	errno = MAGIC_ERRNO;
	int d = dup(s);
	check(d >= 0 && errno == MAGIC_ERRNO, "dup of a followed socket keeps errno");
	errno = MAGIC_ERRNO;
	int d2 = fcntl(s, F_DUPFD_CLOEXEC, 50);
	check(d2 >= 50 && errno == MAGIC_ERRNO && (fcntl(d2, F_GETFD) & FD_CLOEXEC),
	      "fcntl F_DUPFD_CLOEXEC: a close-on-exec number from 50, errno kept");
	errno = MAGIC_ERRNO;
	int d3 = fcntl64(s, F_DUPFD, 60);
	check(d3 >= 60 && errno == MAGIC_ERRNO, "fcntl64 F_DUPFD: a number from 60, errno kept");
	errno = MAGIC_ERRNO;
	int d4 = dup3(s, 98, O_CLOEXEC);
	check(d4 == 98 && errno == MAGIC_ERRNO, "dup3 onto 98 keeps errno");
	errno = MAGIC_ERRNO;
	int d5 = dup2(s, 99);
	check(d5 == 99 && errno == MAGIC_ERRNO, "dup2 onto 99 keeps errno");
	struct f_owner_ex own = { .type = F_OWNER_PID, .pid = getpid() };
	errno = MAGIC_ERRNO;
	int r = fcntl(s, F_SETOWN_EX, &own);
	memset(&own, 0xff, sizeof own);
	int r2 = fcntl(s, F_GETOWN_EX, &own);
	check(r == 0 && r2 == 0 && own.type == F_OWNER_PID && own.pid == getpid() &&
	      errno == MAGIC_ERRNO,
	      "fcntl F_SETOWN_EX then F_GETOWN_EX: the struct passed both ways, errno kept");
	errno = 0;
	r = dup2(-1, 97);
	check(r == -1 && errno == EBADF, "dup2 of a bad fd: -1 EBADF");
	errno = 0;
	r = fcntl(-1, F_DUPFD, 0);
	check(r == -1 && errno == EBADF, "fcntl F_DUPFD of a bad fd: -1 EBADF");
	write(c, reqd, sizeof reqd - 1);
	ssize_t n = read(d, buf, sizeof buf);
	check(n == (ssize_t)sizeof reqd - 1, "the request read on a duplicate");
	close(s);
	close(d5);
	close(d4);
	close(d3);
	errno = MAGIC_ERRNO;
	n = write(d2, resp, strlen(resp));
	check(n == (ssize_t)strlen(resp) && errno == MAGIC_ERRNO,
	      "its response written on another duplicate keeps errno");
	read(c, buf, sizeof buf);
	close(d);
	close(d2);
	close(c);
}

/* 2: failures and MSG_PEEK pass through. */
static void failures_and_peek(void)
{
	int s, c;
	char buf[256];
	pair(AF_INET, SOCK_STREAM, &s, &c);
	fcntl(s, F_SETFL, O_NONBLOCK);
	errno = 0;
	ssize_t r = read(s, buf, sizeof buf);
	check(r == -1 && errno == EAGAIN, "read with nothing to read: -1 EAGAIN");
	errno = 0;
	r = recv(s, buf, sizeof buf, 0);
	check(r == -1 && errno == EAGAIN, "recv with nothing to read: -1 EAGAIN");
	write(c, req2, sizeof req2 - 1);
	usleep(20000);
	r = recv(s, buf, sizeof buf, MSG_PEEK);
	check(r == (ssize_t)sizeof req2 - 1, "recv MSG_PEEK returns the bytes");
	r = recv(s, buf, sizeof buf, MSG_WAITALL | MSG_DONTWAIT);
	check(r == (ssize_t)sizeof req2 - 1 && memcmp(buf, req2, (size_t)r) == 0,
	      "the peeked bytes are read again");
	/* A NULL message header is the caller's error, reported as EFAULT:
	 * with bytes waiting (recvmsg) and without (sendmsg). */
	write(c, "x", 1);
	usleep(20000);
	errno = 0;
	r = recvmsg(s, NULL, 0);
	check(r == -1 && errno == EFAULT, "recvmsg with a NULL msghdr: -1 EFAULT");
	errno = 0;
	r = sendmsg(s, NULL, 0);
	check(r == -1 && errno == EFAULT, "sendmsg with a NULL msghdr: -1 EFAULT");
	close(s);
	close(c);
}

/* 3 and 4: MSG_TRUNC. */
static void trunc_calls(void)
{
	int s, c;
	pair(AF_INET, SOCK_STREAM, &s, &c);
	write(c, req2, sizeof req2 - 1);
	usleep(20000);
	ssize_t r = recv(s, NULL, sizeof req2 - 1, MSG_TRUNC);
	check(r == (ssize_t)sizeof req2 - 1, "TCP recv MSG_TRUNC with no buffer discards the bytes");
	close(s);
	close(c);

	long page = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || mprotect(m + page, (size_t)page, PROT_NONE) != 0) {
		perror("mmap");
		exit(2);
	}
	/* a record far longer than the buffer, all of it one request */
	char big[2 * 4096 + 64];
	memset(big, 'a', sizeof big);
	memcpy(big, "GET /", 5);
	memcpy(big + sizeof big - 13, " HTTP/1.1\r\n\r\n", 13);
	pair(AF_UNIX, SOCK_SEQPACKET, &s, &c);
	write(c, big, sizeof big);
	char *buf = m + page - 8;
	r = recv(s, buf, 8, MSG_TRUNC);
	check(r == (ssize_t)sizeof big && memcmp(buf, big, 8) == 0,
	      "SEQPACKET recv MSG_TRUNC returns the record's length, reads 8 bytes");
	close(s);
	close(c);
	munmap(m, (size_t)page * 2);
}

/* Writes all of s. */
static void put(int fd, const char *s)
{
	size_t n = strlen(s);
	if (write(fd, s, n) != (ssize_t)n) {
		perror("write");
		exit(2);
	}
}

/* Reads exactly n bytes from the server end. */
static void take(int fd, size_t n)
{
	char buf[512];
	while (n) {
		ssize_t r = read(fd, buf, n < sizeof buf ? n : sizeof buf);
		if (r <= 0) {
			perror("read");
			exit(2);
		}
		n -= (size_t)r;
	}
}

/* The client sends `req`, the server reads all of it and answers `resp`
 * (NULL: not yet). */
static void ask(int s, int c, const char *req, const char *resp)
{
	put(c, req);
	take(s, strlen(req));
	if (resp)
		put(s, resp);
}

/* 5, /passed: as Node's cluster module does, the process that accepted
 * a connection hands it over a Unix socket (SCM_RIGHTS) to a worker, a
 * child process here, which serves two requests on it; the acceptor
 * closes its copy without reading. */
static void passed_socket(void)
{
	int s, c, ipc[2];
	pair(AF_INET, SOCK_STREAM, &s, &c);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ipc) != 0) {
		perror("socketpair");
		exit(2);
	}
	pid_t worker = fork();
	if (worker == 0) {
		close(ipc[0]);
		char byte, ctl[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &byte, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
		                     .msg_controllen = sizeof ctl };
		if (recvmsg(ipc[1], &mh, 0) != 1 || !CMSG_FIRSTHDR(&mh))
			_exit(3);
		int fd;
		memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof fd);
		for (int i = 0; i < 2; i++) {
			static const char rq[] = "GET /passed HTTP/1.1\r\nHost: x\r\n\r\n";
			take(fd, sizeof rq - 1);
			put(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
		}
		close(fd);
		exit(0); /* not _exit: the preload's exit flush sends its events */
	}
	close(ipc[1]);
	char byte = 'f', ctl[CMSG_SPACE(sizeof(int))];
	memset(ctl, 0, sizeof ctl);
	struct iovec iov = { &byte, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
	                     .msg_controllen = sizeof ctl };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &s, sizeof s);
	check(sendmsg(ipc[0], &mh, 0) == 1, "an accepted socket passed to a worker");
	close(s);
	close(ipc[0]);
	for (int i = 0; i < 2; i++) {
		put(c, "GET /passed HTTP/1.1\r\nHost: x\r\n\r\n");
		take(c, 38);
	}
	int status = -1;
	check(waitpid(worker, &status, 0) == worker && status == 0,
	      "the worker served two requests on the passed socket");
	close(c);
}

/* 5, /forkclose and /forkserve: after a fork, the process that reads or
 * writes a connection owns it. A helper child that closes what it
 * inherited (and lives past the shipper's first batch) while the parent
 * answers: one request, answered, not also an abort from the child. A
 * fork-per-connection server whose parent read the request and closes its
 * copy at once, the child answering: one request, answered. */
static void forked_children(void)
{
	static const char ok0[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	int s, c, status = -1;
	pair(AF_INET, SOCK_STREAM, &s, &c);
	ask(s, c, "GET /forkclose HTTP/1.1\r\nHost: x\r\n\r\n", NULL);
	pid_t child = fork();
	if (child == 0) {
		close(s);
		usleep(300000);
		exit(0);
	}
	check(child > 0 && waitpid(child, &status, 0) == child && status == 0,
	      "a helper child closed the inherited connection");
	put(s, ok0);
	take(c, sizeof ok0 - 1);
	close(s);
	close(c);

	pair(AF_INET, SOCK_STREAM, &s, &c);
	ask(s, c, "GET /forkserve HTTP/1.1\r\nHost: x\r\n\r\n", NULL);
	child = fork();
	if (child == 0) {
		put(s, ok0);
		close(s);
		exit(0);
	}
	close(s);
	take(c, sizeof ok0 - 1);
	check(child > 0 && waitpid(child, &status, 0) == child && status == 0,
	      "a forked child answered the request its parent read");
	close(c);
}

/* 5: exchanges for the collector. */
static void exchanges(void)
{
	int s, c;
	pair(AF_INET, SOCK_STREAM, &s, &c);
	static const char pipelined[] = "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
	                                "HEAD /p2 HTTP/1.1\r\nHost: x\r\n\r\n"
	                                "GET /p3 HTTP/1.1\r\nHost: x\r\n\r\n";
	put(c, pipelined);
	take(s, 5);
	take(s, sizeof pipelined - 1 - 5);
	static const char r1[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	static const char r2[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
	struct iovec v[2] = { { (void *)r1, sizeof r1 - 1 }, { (void *)r2, sizeof r2 - 1 } };
	ssize_t w = writev(s, v, 2);
	check(w == (ssize_t)(sizeof r1 + sizeof r2 - 2), "pipelined responses in one writev");
	static const char r3[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                         "3\r\nabc\r\n0\r\n\r\n";
	for (size_t i = 0; i < sizeof r3 - 1; i++)
		send(s, r3 + i, 1, 0);

	ask(s, c, "POST /p4 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
	    "HTTP/1.1 100 Continue\r\n\r\n");
	ask(s, c, "xyz", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 14\r\n\r\ndata");
	put(s, "base ");
	put(s, "down!");

	ask(s, c, "GET /p5 HTTP/1.1\r\nHost: x\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
	close(s);
	close(c);

	/* A client that gives up after the interim 100 Continue: aborted,
	 * with no status (the interim one is not the response's). */
	pair(AF_INET, SOCK_STREAM, &s, &c);
	ask(s, c, "POST /p6 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
	    "HTTP/1.1 100 Continue\r\n\r\n");
	take(c, 25);
	close(c);
	close(s);

	pair(AF_INET, SOCK_STREAM, &s, &c);
	ask(s, c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
	ask(s, c, "GET /not-http-any-more HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	close(s);
	close(c);

	/* A forward proxy: a refused CONNECT's 407 has a body and the
	 * connection goes on; an accepted one's 200 opens a tunnel, whose
	 * bytes (a request, as a client sends through a proxy) are not this
	 * server's HTTP. */
	pair(AF_INET, SOCK_STREAM, &s, &c);
	ask(s, c, "CONNECT origin.test:80 HTTP/1.1\r\nHost: origin.test:80\r\n\r\n",
	    "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 6\r\n\r\ndenied");
	ask(s, c, "CONNECT origin.test:80 HTTP/1.1\r\nHost: origin.test:80\r\n"
	          "Proxy-Authorization: Basic eDp5\r\n\r\n",
	    "HTTP/1.1 200 Connection established\r\n\r\n");
	ask(s, c, "GET /tunneled HTTP/1.1\r\nHost: origin.test\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	close(s);
	close(c);

	pair(AF_INET, SOCK_STREAM, &s, &c);
	char path[] = "/tmp/hookcalls-XXXXXX";
	int f = mkstemp(path);
	char block[4096];
	memset(block, 'f', sizeof block);
	if (f < 0 || write(f, block, sizeof block) != (ssize_t)sizeof block) {
		perror("mkstemp");
		exit(2);
	}
	unlink(path);
	ask(s, c, "GET /file HTTP/1.1\r\nHost: x\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n");
	off_t off = 0;
	check(sendfile(s, f, &off, sizeof block) == (ssize_t)sizeof block, "sendfile of a body");
	close(f);
	ask(s, c, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	close(s);
	close(c);

	/* A request body spliced out of the socket into a pipe, and a
	 * response body spliced from a pipe into the socket: the next
	 * request on the connection is read and answered in step. */
	pair(AF_INET, SOCK_STREAM, &s, &c);
	static const char shead[] = "POST /splice HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
	put(c, shead);
	put(c, "0123456789");
	take(s, sizeof shead - 1);
	int pp[2];
	char pbuf[16];
	if (pipe(pp) != 0) {
		perror("pipe");
		exit(2);
	}
	check(splice(s, NULL, pp[1], NULL, 10, 0) == 10 && read(pp[0], pbuf, 10) == 10 &&
	      memcmp(pbuf, "0123456789", 10) == 0, "splice of a request body to a pipe");
	put(s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
	put(pp[1], "abcdefghij");
	check(splice(pp[0], NULL, s, NULL, 10, 0) == 10, "splice of a response body from a pipe");
	take(c, 49);
	ask(s, c, "GET /after-splice HTTP/1.1\r\nHost: x\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	take(c, 38);
	close(pp[0]);
	close(pp[1]);
	close(s);
	close(c);

	/* A vfork() child closing every descriptor before its exec, as
	 * Python's subprocess does while a request is being served: it runs
	 * on the parent's memory, and the parent's connection stays open. */
	pair(AF_INET, SOCK_STREAM, &s, &c);
	ask(s, c, "GET /vfork HTTP/1.1\r\nHost: x\r\n\r\n", NULL);
	pid_t child = vfork();
	if (child == 0) {
		close(s);
		close_range(3, ~0U, 0);
		_exit(0);
	}
	int status = -1;
	check(child > 0 && waitpid(child, &status, 0) == child && status == 0,
	      "a vfork child closing the connection exits 0");
	put(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	close(s);
	close(c);

	passed_socket();
	forked_children();

	pair(AF_INET, SOCK_STREAM, &s, &c);
	int ts = SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
	if (setsockopt(s, SOL_SOCKET, SO_TIMESTAMPING, &ts, sizeof ts) != 0) {
		perror("SO_TIMESTAMPING");
		exit(2);
	}
	ask(s, c, "GET /ts1 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	usleep(20000);
	char eq[512], ctl[512];
	struct iovec iov = { eq, sizeof eq };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
	                     .msg_controllen = sizeof ctl };
	check(recvmsg(s, &mh, MSG_ERRQUEUE) > 0, "recvmsg MSG_ERRQUEUE returns the sent packet");
	ask(s, c, "GET /ts2 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	close(s);
	close(c);

	pair(AF_INET, SOCK_STREAM, &s, &c);
	send(c, "!", 1, MSG_OOB);
	usleep(20000);
	char oob = 0;
	check(recv(s, &oob, 1, MSG_OOB) == 1 && oob == '!', "recv MSG_OOB reads the urgent byte");
	ask(s, c, "GET /oob HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	close(s);
	close(c);
}

/* 6: serves one request after another on the pair in `arg` until exit. */
static void *serve_forever(void *arg)
{
	const int *fds = arg;
	for (;;)
		ask(fds[0], fds[1], "GET /loop HTTP/1.1\r\nHost: x\r\n\r\n",
		    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	return NULL;
}

static int exit_while_serving(void)
{
	static int fds[2];
	pair(AF_INET, SOCK_STREAM, &fds[0], &fds[1]);
	pthread_t t;
	if (pthread_create(&t, NULL, serve_forever, fds) != 0)
		return 2;
	usleep(250000); /* past the shipper's first batches */
	exit(0);
}

/* 7: a signal handler's writes land inside the preload's work. */
static int sig_fd;
static volatile sig_atomic_t sig_writes;

static void on_alarm(int sig)
{
	(void)sig;
	int saved = errno;
	if (write(sig_fd, resp, sizeof resp - 1) > 0)
		sig_writes++;
	errno = saved;
}

static int signal_writes(void)
{
	int s, c, s2, c2;
	char buf[4096];
	pair(AF_INET, SOCK_STREAM, &s, &c);
	pair(AF_INET, SOCK_STREAM, &s2, &c2);
	fcntl(c, F_SETFL, O_NONBLOCK);
	fcntl(c2, F_SETFL, O_NONBLOCK);
	sig_fd = s;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, 50 }, { 0, 50 } };
	setitimer(ITIMER_REAL, &it, NULL);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long rounds = 0;
	do {
		/* the handler answers this one, at any moment */
		send(c, req, sizeof req - 1, 0);
		read(s, buf, sizeof buf);
		recv(c, buf, sizeof buf, 0);
		/* this one is answered here: events appended by this thread */
		send(c2, req, sizeof req - 1, 0);
		read(s2, buf, sizeof buf);
		write(s2, resp, sizeof resp - 1);
		recv(c2, buf, sizeof buf, 0);
		rounds++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 1500);
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	check(rounds > 0 && sig_writes > 0, "signal handler writes inside hooks: finished");
	printf("%ld rounds, %ld writes from the handler\n", rounds, (long)sig_writes);
	close(s);
	close(c);
	close(s2);
	close(c2);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 1 && strcmp(argv[1], "--exit-while-serving") == 0)
		return exit_while_serving();
	if (argc > 1 && strcmp(argv[1], "--signal-writes") == 0)
		return signal_writes();
	errno_kept();
	dups_kept();
	failures_and_peek();
	trunc_calls();
	exchanges();
	return failures ? 1 : 0;
}

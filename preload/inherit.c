/*
 * inherit.c - connections handed to the process across exec.
 *
 * A server started per connection never calls accept: the super-server
 * accepted for it. inetd (and systemd's StandardInput=socket, and BusyBox
 * `httpd -i`) put the connection on descriptors 0, 1 and 2; systemd's
 * Accept=yes sockets put it on 3 and say so in LISTEN_FDS, for the pid in
 * LISTEN_PID. Such a descriptor is a candidate as if accept had returned
 * it (APIPROF_PORTS applies), and the same socket on several of 0-2 is
 * one connection under several numbers (conn.c's aliases). Looked at
 * once, in the constructor: a few system calls per descriptor, before the
 * host runs.
 */
#include "config.h"
#include "pl.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LISTEN_FDS_START 3 /* sd_listen_fds(3) */
#define LISTEN_FDS_MAX 64  /* more is not a per-connection service */

/* 1 when fd is a connected stream socket that is not listening, of a
 * network family (or, when `any_family`, a Unix socket too); its fstat in
 * *st. Descriptors 0-2 must be TCP: a program's stdio is often a Unix
 * socket (journald's, libuv's pipes) that no one speaks HTTP on. */
static int connected_stream(int fd, int any_family, struct stat *st)
{
	if (fstat(fd, st) != 0 || !S_ISSOCK(st->st_mode))
		return 0;
	int type = 0, listening = 1;
	socklen_t len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
		return 0;
	len = sizeof listening;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening)
		return 0;
	struct sockaddr_storage ss;
	len = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6 &&
	    !(any_family && ss.ss_family == AF_UNIX))
		return 0;
	len = sizeof ss;
	return getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/* The number of descriptors systemd passed to this very process, 0 when
 * none (or LISTEN_PID names another: a child inherited the variables). */
static int listen_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	if (!pid || !n)
		return 0;
	char *end;
	long p = strtol(pid, &end, 10);
	if (*end || p != (long)getpid())
		return 0;
	long k = strtol(n, &end, 10);
	return *end || k < 0 || k > LISTEN_FDS_MAX ? 0 : (int)k;
}

void pl_inherit_connections(void)
{
	int saved = errno;
	(void)pl_pid(); /* cached before anything is followed, as accept does */
	int first = -1, found = 0;
	struct stat st, first_st;
	/* The crash handler not now, at load: a runtime (the JVM) installs
	 * its handlers after us and would chain to ours (crash.c). It goes in
	 * at an inherited connection's first request (conn.c). */
	pl_crash_hold(1);
	for (int fd = 0; fd <= 2; fd++) {
		if (!connected_stream(fd, 0, &st))
			continue;
		found++;
		if (first >= 0 && st.st_dev == first_st.st_dev && st.st_ino == first_st.st_ino) {
			if (pl_fd_get(first) != NULL)
				pl_conn_on_dup(first, fd);
			continue;
		}
		pl_conn_on_accept(fd);
		if (first < 0) {
			first = fd;
			first_st = st;
		}
	}
	int n = listen_fds();
	for (int fd = LISTEN_FDS_START; fd < LISTEN_FDS_START + n; fd++)
		if (connected_stream(fd, 1, &st)) {
			pl_conn_on_accept(fd);
			found++;
		}
	pl_crash_hold(0);
	if (found)
		pl_debug("%d inherited connected socket(s) followed as accepted", found);
	errno = saved;
}

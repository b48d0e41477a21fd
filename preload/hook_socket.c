/*
 * hook_socket.c - the exported hooks of the accept/read/write/close family.
 *
 * Every hook has the same shape: make sure the real function is resolved,
 * look the fd up (pl_fd_plain, or pl_fd_get for the end of a descriptor: a
 * bounds check and two loads), and for an fd we do not follow (nor one
 * followed through libssl, whose socket carries ciphertext) tail-call the
 * real function: no lock, no allocation, no
 * syscall, errno untouched. Only for accepted sockets does the cold path
 * run: call the real function, save errno, feed the bytes the call really
 * moved (its return value, never the buffer size) to the connection, restore
 * errno, return the real result. The commonest calls (read, recv, write,
 * send, writev) look the fd up first and, for an accepted socket, hand the
 * whole call to conn.c (pl_conn_recv ...) in a tail call, with the address
 * of the fd's entry, which conn.c then does not look up again; the real
 * pointer is resolved then, since the fd came through our accept hook.
 *
 * Descriptors stop being followed before the real call that frees their
 * number (close, dup2/dup3 onto them, close_range, syscall(SYS_close)):
 * another thread's accept() may return the same number the moment the
 * kernel releases it. A duplicate of a followed descriptor (dup, dup2,
 * dup3, fcntl F_DUPFD and F_DUPFD_CLOEXEC) becomes another number of its
 * connection once the real call has made it (pl_conn_on_dup).
 *
 * A hook called by a signal handler that interrupted the preload's own
 * work on the same thread only makes the real call (pl_enter() in pl.h):
 * the work it interrupted may hold the very lock it would take.
 */
#include "config.h"
#include "pl.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define EXPORT __attribute__((visibility("default")))

#define ENSURE(fn) \
	do { \
		if (PL_UNLIKELY(!pl_real.fn)) \
			pl_resolve(); \
	} while (0)

/* ---- hooks called inside the preload's work (signal handlers) ---- */

__thread struct pl_guard pl_guard;
static __thread int missed_fd[PL_MISSED_MAX];

void pl_missed(int fd)
{
	unsigned n = pl_guard.missed_n;
	if (n < PL_MISSED_MAX) {
		missed_fd[n] = fd;
		pl_guard.missed_n = n + 1;
	}
}

PL_COLD void pl_settle_missed(void)
{
	/* Busy again meanwhile: a signal arriving now notes its fd here too.
	 * One arriving between the loop's end and the reset is lost (the
	 * connection may then be misread; the host is unaffected). */
	pl_hold();
	for (unsigned i = 0; i < pl_guard.missed_n; i++) {
		int fd = missed_fd[i];
		if (pl_fd_get(fd)) {
			pl_conn_stop(fd);
			pl_ship_count_untracked();
		}
	}
	pl_guard.missed_n = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pl_guard.busy--;
}

/* ---- accept ---- */

static PL_COLD void accepted(int fd)
{
	if (fd < 0 || pl_cfg.disabled)
		return;
	int saved = errno;
	(void)pl_pid(); /* cached before anything is followed: pl_borrowed_memory() */
	/* nested in the preload's work: the connection is not followed */
	if (pl_enter()) {
		pl_conn_on_accept(fd);
		pl_leave();
	}
	errno = saved;
}

EXPORT int accept(int s, struct sockaddr *addr, socklen_t *len)
{
	ENSURE(accept);
	if (PL_UNLIKELY(!__atomic_load_n(&pl_got_accept_seen, __ATOMIC_RELAXED)))
		pl_got_patch_first_accept();
	int fd = pl_real.accept(s, addr, len);
	if (fd >= 0)
		accepted(fd);
	return fd;
}

EXPORT int accept4(int s, struct sockaddr *addr, socklen_t *len, int flags)
{
	ENSURE(accept4);
	if (PL_UNLIKELY(!__atomic_load_n(&pl_got_accept_seen, __ATOMIC_RELAXED)))
		pl_got_patch_first_accept();
	int fd = pl_real.accept4(s, addr, len, flags);
	if (fd >= 0)
		accepted(fd);
	return fd;
}

/* ---- reading ---- */

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	struct pl_conn **slot = pl_fd_read_entry(fd);
	if (PL_UNLIKELY(slot != NULL))
		return pl_conn_read(fd, buf, n, slot);
	ENSURE(read);
	return pl_real.read(fd, buf, n);
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	ENSURE(read_chk);
	if (PL_LIKELY(!pl_fd_read_plain(fd)))
		return pl_real.read_chk(fd, buf, n, buflen);
	return pl_conn_on_read(fd, buf, pl_real.read_chk(fd, buf, n, buflen));
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	ENSURE(readv);
	if (PL_LIKELY(!pl_fd_read_plain(fd)))
		return pl_real.readv(fd, iov, cnt);
	return pl_conn_on_readv(fd, iov, cnt, pl_real.readv(fd, iov, cnt));
}

/* MSG_PEEK leaves the bytes in the socket: they will be read again.
 * MSG_TRUNC makes the result say nothing about the buffer: on TCP the
 * bytes are discarded, never copied (the buffer may be NULL), and on a
 * datagram or SOCK_SEQPACKET socket the result is the whole record's
 * length, larger than the buffer. MSG_ERRQUEUE reads the socket's error
 * queue, not its stream: with SO_TIMESTAMPING, a copy of a packet the
 * server sent, headers and response included. MSG_OOB reads TCP's
 * urgent byte, which is not in the stream. None of them is fed. */
#define NOT_FED (MSG_PEEK | MSG_TRUNC | MSG_ERRQUEUE | MSG_OOB)
EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	struct pl_conn **slot = pl_fd_read_entry(fd);
	if (PL_UNLIKELY(slot != NULL) && !(flags & NOT_FED))
		return pl_conn_recv(fd, buf, n, flags, slot);
	ENSURE(recv);
	return pl_real.recv(fd, buf, n, flags);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	ENSURE(recv_chk);
	if (PL_LIKELY(!pl_fd_read_plain(fd)) || (flags & NOT_FED))
		return pl_real.recv_chk(fd, buf, n, buflen, flags);
	return pl_conn_on_read(fd, buf, pl_real.recv_chk(fd, buf, n, buflen, flags));
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
                        struct sockaddr *addr, socklen_t *alen)
{
	ENSURE(recvfrom);
	if (PL_LIKELY(!pl_fd_read_plain(fd)) || (flags & NOT_FED))
		return pl_real.recvfrom(fd, buf, n, flags, addr, alen);
	return pl_conn_on_read(fd, buf, pl_real.recvfrom(fd, buf, n, flags, addr, alen));
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                              struct sockaddr *addr, socklen_t *alen)
{
	ENSURE(recvfrom_chk);
	if (PL_LIKELY(!pl_fd_read_plain(fd)) || (flags & NOT_FED))
		return pl_real.recvfrom_chk(fd, buf, n, buflen, flags, addr, alen);
	return pl_conn_on_read(fd, buf, pl_real.recvfrom_chk(fd, buf, n, buflen, flags, addr, alen));
}

/* Descriptors passed with SCM_RIGHTS. Node's cluster module (and
 * pm2's cluster mode) accepts connections in the primary process and
 * hands each to a worker over a Unix socket: the worker never calls
 * accept. A passed stream socket that is not listening (TCP or Unix) is
 * a candidate like an accepted one; it is followed only if its first
 * bytes read are an HTTP/1.x request line, as for any accepted socket.
 * getsockopt is called only for descriptors that actually arrived. */
static PL_COLD void fds_passed(const struct msghdr *msg)
{
	if (pl_cfg.disabled)
		return;
	int saved = errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR((struct msghdr *)msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(sizeof(int)))
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *p = CMSG_DATA(cm);
		for (size_t i = 0; i < n; i++) {
			int pfd;
			memcpy(&pfd, p + i * sizeof(int), sizeof pfd);
			int type = 0, listening = 1, domain = 0;
			socklen_t len = sizeof type;
			if (getsockopt(pfd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
				continue;
			len = sizeof listening;
			if (getsockopt(pfd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening)
				continue;
			len = sizeof domain;
			if (getsockopt(pfd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 ||
			    (domain != AF_INET && domain != AF_INET6 && domain != AF_UNIX))
				continue;
			if (pl_enter()) {
				pl_conn_on_accept(pfd);
				pl_leave();
			}
		}
	}
	errno = saved;
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ENSURE(recvmsg);
	if (PL_LIKELY(!pl_fd_read_plain(fd)) || (flags & NOT_FED)) {
		ssize_t r = pl_real.recvmsg(fd, msg, flags);
		/* msg is valid when the call succeeded */
		if (PL_UNLIKELY(r >= 0 && msg->msg_controllen >= CMSG_LEN(sizeof(int))))
			fds_passed(msg);
		return r;
	}
	ssize_t r = pl_real.recvmsg(fd, msg, flags);
	if (r >= 0 && msg->msg_controllen >= CMSG_LEN(sizeof(int)))
		fds_passed(msg);
	/* msg is read only once the call moved bytes: a NULL or bad one
	 * (EFAULT) must fail as it would without us, not fault here. */
	if (r <= 0)
		return r;
	return pl_conn_on_readv(fd, msg->msg_iov, (int)msg->msg_iovlen, r);
}

/* ---- writing ---- */

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	struct pl_conn **slot = pl_fd_plain_entry(fd);
	if (PL_UNLIKELY(slot != NULL))
		return pl_conn_write(fd, buf, n, slot);
	ENSURE(write);
	return pl_real.write(fd, buf, n);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	struct pl_conn **slot = pl_fd_plain_entry(fd);
	if (PL_UNLIKELY(slot != NULL))
		return pl_conn_writev(fd, iov, cnt, slot);
	ENSURE(writev);
	return pl_real.writev(fd, iov, cnt);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	struct pl_conn **slot = pl_fd_plain_entry(fd);
	if (PL_UNLIKELY(slot != NULL))
		return pl_conn_send(fd, buf, n, flags, slot);
	ENSURE(send);
	return pl_real.send(fd, buf, n, flags);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                      const struct sockaddr *addr, socklen_t alen)
{
	ENSURE(sendto);
	if (PL_LIKELY(!pl_fd_plain(fd)))
		return pl_real.sendto(fd, buf, n, flags, addr, alen);
	return pl_conn_on_write(fd, buf, pl_real.sendto(fd, buf, n, flags, addr, alen));
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ENSURE(sendmsg);
	if (PL_LIKELY(!pl_fd_plain(fd)))
		return pl_real.sendmsg(fd, msg, flags);
	ssize_t r = pl_real.sendmsg(fd, msg, flags);
	if (r <= 0)
		return r; /* as recvmsg: msg may be NULL (EFAULT) */
	return pl_conn_on_writev(fd, msg->msg_iov, (int)msg->msg_iovlen, r);
}

static PL_COLD ssize_t sent_file(int fd, ssize_t r)
{
	if (r > 0) {
		int saved = errno;
		if (pl_enter()) {
			pl_conn_on_sendfile(fd, (size_t)r);
			pl_leave();
		} else {
			pl_missed(fd);
		}
		errno = saved;
	}
	return r;
}

EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
	ENSURE(sendfile);
	if (PL_LIKELY(!pl_fd_plain(out)))
		return pl_real.sendfile(out, in, off, n);
	return sent_file(out, pl_real.sendfile(out, in, off, n));
}

EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n)
{
	ENSURE(sendfile64);
	if (PL_LIKELY(!pl_fd_plain(out)))
		return pl_real.sendfile64(out, in, off, n);
	return sent_file(out, pl_real.sendfile64(out, in, off, n));
}

/* Bytes spliced out of a followed socket: a request body the server moves
 * into a pipe without reading it. The parser only counts body bytes, so
 * it is fed zeros, in pieces; zeros where a request line or headers are
 * due (a server splicing the whole stream) end the following of the
 * connection's requests, as any bytes that are not HTTP do. */
static PL_COLD ssize_t spliced_in(int fd, ssize_t r)
{
	static const char zeros[4096];
	for (ssize_t left = r; left > 0; left -= (ssize_t)sizeof zeros)
		pl_conn_on_read(fd, zeros, left < (ssize_t)sizeof zeros ? left : (ssize_t)sizeof zeros);
	return r;
}

/* splice() relays a body through a pipe (servers and proxies do): to the
 * socket, its bytes are counted as sendfile's are, so that the response's
 * framing stays in step; from it, as spliced_in() says. */
EXPORT ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t n, unsigned flags)
{
	ENSURE(splice);
	if (PL_LIKELY(!pl_fd_plain(out) && !pl_fd_plain(in)))
		return pl_real.splice(in, off_in, out, off_out, n, flags);
	ssize_t r = pl_real.splice(in, off_in, out, off_out, n, flags);
	if (pl_fd_plain(in))
		spliced_in(in, r);
	return sent_file(out, r);
}

/* ---- the end of a descriptor ---- */

/* fn(fd, arg) on a followed fd's connection, errno preserved: the end of
 * a descriptor, a shutdown, a duplicate. Not in a vfork() child: its
 * descriptors are its own (the parent's copies stay open, a shutdown's
 * record is the parent's to finish) while the connection's state is the
 * parent's memory. A call made inside the preload's work notes fd
 * instead (pl_missed): its connection stops being followed. */
static PL_COLD void on_followed(void (*fn)(int, int), int fd, int arg)
{
	int saved = errno;
	if (!pl_borrowed_memory()) {
		if (pl_enter()) {
			fn(fd, arg);
			pl_leave();
		} else {
			pl_missed(fd);
		}
	}
	errno = saved;
}

static void close_one(int fd, int unused)
{
	(void)unused;
	pl_conn_on_close(fd);
}

static PL_COLD void closing(int fd)
{
	on_followed(close_one, fd, 0);
}

EXPORT int shutdown(int fd, int how)
{
	ENSURE(shutdown);
	int r = pl_real.shutdown(fd, how);
	if (PL_UNLIKELY(pl_fd_get(fd) != NULL) && r == 0)
		on_followed(pl_conn_on_shutdown, fd, how);
	return r;
}

static void tcp_info_one(int fd, int unused)
{
	(void)unused;
	pl_conn_on_tcp_info(fd);
}

/* Puma reads a request on its reactor thread when its bytes were not
 * there as a pool thread looked (often a new connection's first request,
 * and a keep-alive one's after 200 ms idle), then hands it to a pool
 * thread that runs the app without reading the socket again. That thread
 * first asks for TCP_INFO (Puma's closed_socket? check, before each
 * request): then it takes the request as in flight there (conn.c). Any
 * other getsockopt passes straight through. */
EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	ENSURE(getsockopt);
	if (PL_UNLIKELY(!pl_real.getsockopt)) {
		errno = ENOSYS;
		return -1;
	}
	int r = pl_real.getsockopt(fd, level, name, val, len);
	if (PL_UNLIKELY(pl_fd_get(fd) != NULL) && r == 0 && level == IPPROTO_TCP && name == TCP_INFO)
		on_followed(tcp_info_one, fd, 0);
	return r;
}

EXPORT int close(int fd)
{
	ENSURE(close);
	if (PL_UNLIKELY(pl_fd_get(fd) != NULL))
		closing(fd);
	return pl_real.close(fd);
}

static PL_COLD void closing_range(unsigned first, unsigned last)
{
	int saved = errno;
	if (pl_borrowed_memory()) { /* as closing() */
		errno = saved;
		return;
	}
	int entered = pl_enter();
	if (last >= PL_FD_CAP)
		last = PL_FD_CAP - 1;
	for (unsigned fd = first; fd <= last; fd++) {
		if ((fd & (PL_FD_CHUNK - 1)) == 0 && !pl_fdtab[fd >> PL_FD_CHUNK_BITS]) {
			fd += PL_FD_CHUNK - 1; /* a whole unmapped chunk: nothing there */
			continue;
		}
		if (!pl_fd_get((int)fd))
			continue;
		if (entered)
			pl_conn_on_close((int)fd);
		else
			pl_missed((int)fd);
	}
	if (entered)
		pl_leave();
	errno = saved;
}

EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	ENSURE(close_range);
	if (!(flags & CLOSE_RANGE_CLOEXEC) && first < PL_FD_CAP)
		closing_range(first, last);
	if (!pl_real.close_range) {
		errno = ENOSYS;
		return -1;
	}
	return pl_real.close_range(first, last, flags);
}

/* new_fd is now a duplicate of old, a followed fd: another number of its
 * connection. Made inside the preload's work, the connection stops being
 * followed (on_followed()): bytes under the new number would go unseen. */
static PL_COLD int duplicated(int old, int new_fd)
{
	on_followed(pl_conn_on_dup, old, new_fd);
	return new_fd;
}

EXPORT int dup(int old)
{
	ENSURE(dup);
	int r = pl_real.dup(old);
	if (PL_UNLIKELY(pl_fd_get(old) != NULL) && r >= 0)
		return duplicated(old, r);
	return r;
}

/* dup2 and dup3 end what the target number had first (closing()), as
 * close does; it then becomes the duplicate. */
EXPORT int dup2(int old, int new_fd)
{
	ENSURE(dup2);
	if (PL_UNLIKELY(pl_fd_get(new_fd) != NULL) && old != new_fd)
		closing(new_fd);
	int r = pl_real.dup2(old, new_fd);
	if (PL_UNLIKELY(pl_fd_get(old) != NULL) && r >= 0 && old != new_fd)
		return duplicated(old, r);
	return r;
}

EXPORT int dup3(int old, int new_fd, int flags)
{
	ENSURE(dup3);
	if (PL_UNLIKELY(pl_fd_get(new_fd) != NULL) && old != new_fd)
		closing(new_fd);
	int r = pl_real.dup3(old, new_fd, flags);
	if (PL_UNLIKELY(pl_fd_get(old) != NULL) && r >= 0)
		return duplicated(old, r);
	return r;
}

/* fcntl's third argument is an int, a pointer or absent, depending on
 * cmd: it is read and passed on as a pointer, as glibc's own fcntl reads
 * it (the same register either way). Only F_DUPFD and F_DUPFD_CLOEXEC of
 * a followed fd do anything more. Programs built with
 * _FILE_OFFSET_BITS=64 (BusyBox) call fcntl64, the same function on
 * 64-bit systems. */
static inline int fcntl_done(int fd, int cmd, int r)
{
	if (PL_UNLIKELY(cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && r >= 0 &&
	    pl_fd_get(fd) != NULL)
		return duplicated(fd, r);
	return r;
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	ENSURE(fcntl);
	return fcntl_done(fd, cmd, pl_real.fcntl(fd, cmd, arg));
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	ENSURE(fcntl);
	/* a C library older than 2.28 has no fcntl64: its fcntl is the same */
	int (*real)(int, int, ...) = pl_real.fcntl64 ? pl_real.fcntl64 : pl_real.fcntl;
	return fcntl_done(fd, cmd, real(fd, cmd, arg));
}

/* A new socket took a number we may still think is an accepted one (its
 * close went by a path we do not see): forget the old connection. */
EXPORT int socket(int domain, int type, int protocol)
{
	ENSURE(socket);
	int fd = pl_real.socket(domain, type, protocol);
	if (PL_UNLIKELY(pl_fd_get(fd) != NULL)) {
		int saved = errno;
		if (pl_enter()) {
			pl_conn_forget(fd);
			pl_leave();
		} else {
			pl_missed(fd);
		}
		errno = saved;
	}
	return fd;
}

/* syscall(SYS_execve, ...) and syscall(SYS_execveat, ...) replace the
 * image as the exec functions do: what is buffered is handed over first,
 * with hook_exec.c's guards (pl_ship_before_exec()). Out of line and cold,
 * so that syscall()'s other numbers pay two compares for it, no spill. */
static PL_COLD void exec_syscall(void)
{
	pl_ship_before_exec();
}

/* libuv (Node) closes descriptors with syscall(SYS_close, fd); an exec may
 * be made with syscall(SYS_execve). Every other number passes straight
 * through with all six argument registers: it sits on futex paths, and we
 * cannot know how many arguments the caller passed. */
EXPORT long syscall(long number, ...)
{
	va_list ap;
	va_start(ap, number);
	long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
	long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
	va_end(ap);
	ENSURE(syscall);
	if (PL_UNLIKELY(number == SYS_close)) {
		if (pl_fd_get((int)a1))
			closing((int)a1);
	} else if (PL_UNLIKELY(number == SYS_close_range)) {
		if (!((unsigned)a3 & CLOSE_RANGE_CLOEXEC) && (unsigned long)a1 < PL_FD_CAP)
			closing_range((unsigned)a1, (unsigned)a2);
	} else if (PL_UNLIKELY(number == SYS_execve || number == SYS_execveat)) {
		exec_syscall();
	}
	return pl_real.syscall(number, a1, a2, a3, a4, a5, a6);
}

/* ---- the end of the process ----
 *
 * exit() runs our destructor, which hands the buffered events over;
 * _exit() and _Exit() end the process at once. A fork-per-connection
 * server's child (BusyBox httpd, inetd-style services) answers its one
 * request and calls _exit(): its events would be lost in its buffer. The
 * flush costs nothing in a process that never buffered an event. */
static __attribute__((noreturn)) void exit_now(void (*real)(int), int status)
{
	pl_crash_exiting();
	pl_ship_exit_now();
	if (real)
		real(status);
	for (;;) /* no real _exit resolved (never with glibc): end it ourselves */
		syscall(SYS_exit_group, status);
}

EXPORT void _exit(int status)
{
	ENSURE(exit_);
	exit_now(pl_real.exit_, status);
}

EXPORT void _Exit(int status)
{
	ENSURE(Exit);
	exit_now(pl_real.Exit, status);
}

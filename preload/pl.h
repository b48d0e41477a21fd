/*
 * pl.h - internals of libapiprof.so shared by its modules.
 *
 * Module map (one concern each):
 *   init.c        configuration (read once, in the constructor), the table of
 *                 real functions, debug logging, fork handling
 *   fdtable.c     fd -> connection table and the bounded connection pool
 *   conn.c        one accepted connection: feeds the HTTP parsers, keeps the
 *                 queue of pipelined requests, turns finished ones into events
 *   ship.c        the per-process event buffer and the shipper thread
 *   hook_socket.c the exported hooks of the accept/read/write/close family
 *   h2conn.c      HTTP/2 connections; fcgiconn.c: FastCGI ones (php-fpm)
 *   hook_exec.c   the exec family: the buffer is handed over first
 *   profile.c     per-request CPU sampling: timer, signal handler, unwinding
 *
 * Everything here is hidden (-fvisibility=hidden, exports.map): only the
 * hooked libc symbols leave the library.
 */
#ifndef AP_PL_H
#define AP_PL_H

#include <stddef.h>
#include <stdint.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "ap_fcgi.h"
#include "ap_http.h"
#include "ap_wire.h"

#define PL_LIKELY(x) __builtin_expect(!!(x), 1)
#define PL_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* Code a host may reach before ThreadSanitizer's runtime is initialised
 * (its runtime calls sigaction() through ours while it starts: see
 * hook_signal.c), or from a signal handler: built without TSan. */
#if defined(__SANITIZE_THREAD__)
#define PL_UNINSTRUMENTED __attribute__((no_sanitize("thread")))
#else
#define PL_UNINSTRUMENTED
#endif
#define PL_COLD __attribute__((cold, noinline))

/*
 * A spinlock for sections of a few dozen instructions (an event's encode,
 * a pool pop): a pthread mutex costs about 55 instructions per lock and
 * unlock pair even uncontended, on every request. A waiter yields the CPU,
 * so a holder that was preempted gets it back.
 */
void pl_spin_lock_wait(int *l);
static inline void pl_spin_lock(int *l)
{
	/* The wait is out of line: the uncontended lock, on every request,
	 * is one exchange and a test, and needs no registers saved. */
	if (PL_UNLIKELY(__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)))
		pl_spin_lock_wait(l);
}

static inline int pl_spin_trylock(int *l)
{
	return !__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE);
}

static inline void pl_spin_unlock(int *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* ---- configuration (init.c): written once by the constructor, then
 * read-only, so hooks read it without synchronisation. ---- */
#define PL_MAX_PORTS 32
struct pl_config {
	int disabled;              /* APIPROF_DISABLE=1 */
	int debug;                 /* APIPROF_DEBUG=1 */
	int capture_query;         /* APIPROF_CAPTURE_QUERY_STRING=1 */
	int capture_sql_values;    /* APIPROF_CAPTURE_SQL_VALUES=1 */
	unsigned profile_every;    /* APIPROF_PROFILE_EVERY */
	unsigned max_sql_bytes;    /* APIPROF_MAX_SQL_BYTES */
	size_t buffer_bytes;       /* APIPROF_BUFFER_KB * 1024 */
	int socket_from_env;       /* APIPROF_SOCKET was given */
	char socket_path[108];
	char service[64];
	char exe[256];
	uint16_t ports[PL_MAX_PORTS];
	unsigned n_ports;          /* 0: every port */
};
extern struct pl_config pl_cfg;

/* The real functions, resolved with dlsym(RTLD_NEXT) by pl_resolve(), which
 * every hook calls first while its pointer is still NULL (hooks can run
 * before our constructor, from other libraries' constructors). */
struct pl_real {
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	ssize_t (*sendfile64)(int, int, off_t *, size_t);
	ssize_t (*splice)(int, loff_t *, int, loff_t *, size_t, unsigned);
	int (*shutdown)(int, int);
	int (*close)(int);
	int (*close_range)(unsigned, unsigned, int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	int (*socket)(int, int, int);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	long (*syscall)(long, ...);
	void (*exit_)(int);         /* _exit */
	void (*Exit)(int);          /* _Exit */
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execv)(const char *, char *const[]);
	int (*execvp)(const char *, char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	int (*execveat)(int, const char *, char *const[], char *const[], int); /* glibc 2.34 */
	ssize_t (*read_chk)(int, void *, size_t, size_t);
	ssize_t (*recv_chk)(int, void *, size_t, size_t, int);
	ssize_t (*recvfrom_chk)(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);
	/* Also resolved by hook_signal.c itself, for calls before pl_resolve(). */
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	sighandler_t (*signal)(int, sighandler_t);       /* also bsd_signal, ssignal */
	sighandler_t (*sysv_signal)(int, sighandler_t);
	sighandler_t (*sigset)(int, sighandler_t);
};
extern struct pl_real pl_real;

/* Resolves every pointer in pl_real (idempotent, thread-safe enough: racing
 * threads store the same values). */
void pl_resolve(void);

/* APIPROF_DEBUG=1: one "apiprof[pid]: ..." line to stderr via write(2). */
void pl_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* CLOCK_MONOTONIC. Inline: twice per request. */
static inline uint64_t pl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
/* The calling thread's id, cached per thread (initial-exec TLS: the
 * library is built -ftls-model=initial-exec, so no __tls_get_addr call);
 * reset after fork. Inline: every request's event carries one. */
extern __thread uint32_t pl_tls_tid;
uint32_t pl_tid_slow(void);
static inline uint32_t pl_tid(void)
{
	uint32_t t = pl_tls_tid;
	return PL_LIKELY(t != 0) ? t : pl_tid_slow();
}
uint32_t pl_pid(void);         /* cached per process, reset after fork */
/* 1 in the child of a vfork() (or of a clone() sharing our memory, which
 * runs no fork handler) before its exec or _exit: it runs on its parent's
 * memory, so what the preload did there it would do to the parent.
 * Python's subprocess closes every descriptor (close_range) in such a
 * child, and the parent's requests in flight were recorded as aborted.
 * One getpid() system call: asked only where a followed connection would
 * end. The pid is cached from the first accept (pl_conn_on_accept) and in
 * every fork child, so while any fd is followed the answer is exact. */
int pl_borrowed_memory(void);

/* ---- hooked calls made by a signal handler (hook_socket.c) ----
 *
 * write, send and close are async-signal-safe, so a host's signal handler
 * may call them on an accepted socket while the thread it interrupted is
 * inside the preload's own work, holding that connection's lock or the
 * event buffer's: taking it again would spin forever, and the host would
 * hang. pl_guard.busy (initial-exec TLS) counts the preload's work in
 * progress on this thread. A socket hook on a followed fd enters with
 * pl_enter(), which refuses when the thread is already busy: that call is
 * then only made, not observed, and its fd is noted with pl_missed(). When the
 * outermost work ends (pl_leave()), every noted fd stops being followed
 * (its bytes went unseen; counted as an untracked connection). Best
 * effort: at most PL_MISSED_MAX fds are noted per interruption. The
 * fences keep the compiler from moving the connection's work outside
 * the busy window; they cost no instruction.
 */
#define PL_MISSED_MAX 4
/* busy: the work in progress; missed_n: the fds noted. One variable, so
 * that pl_leave() finds both from one TLS offset. */
struct pl_guard {
	unsigned busy;
	unsigned missed_n;
};
extern __thread struct pl_guard pl_guard;
/* Notes fd (async-signal-safe). */
void pl_missed(int fd);
/* Stops following the noted fds (pl_leave() only). */
void pl_settle_missed(void);

/* 1: this thread was not busy and now is, pair with pl_leave(); 0: the
 * call interrupted the preload's work (a signal handler's): do nothing but
 * pl_missed(). Inline: every observed call on a followed fd asks. */
static inline int pl_enter(void)
{
	if (PL_UNLIKELY(pl_guard.busy != 0))
		return 0;
	pl_guard.busy = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return 1;
}

/* Work that may be reached both from a hook and from inside the preload's
 * own work (SQL capture: pl_stmt_end runs from a request's end too) marks
 * the thread busy without asking. Pair with pl_leave(). */
static inline void pl_hold(void)
{
	pl_guard.busy++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* Ends what pl_enter() or pl_hold() began. May change errno (callers
 * restore it afterwards). */
static inline void pl_leave(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pl_guard.busy--;
	if (PL_UNLIKELY(pl_guard.missed_n != 0) && pl_guard.busy == 0)
		pl_settle_missed();
}

/* pl_leave() for what pl_enter() began: busy is back to the 1 it set
 * (every pl_hold() since, a signal handler's too, was paired), so it
 * goes to 0 with a store instead of a decrement and a test of the result.
 * Every hooked call on a followed fd ends with it. */
static inline void pl_leave_entered(void)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pl_guard.busy = 0;
	if (PL_UNLIKELY(pl_guard.missed_n != 0))
		pl_settle_missed();
}

/* ---- fd table and connection pool (fdtable.c) ---- */

/* The table covers fds [0, PL_FD_CAP): PL_FD_TOP chunks of PL_FD_CHUNK
 * entries, each chunk mapped on first use, so a server that raises
 * RLIMIT_NOFILE after we loaded is still covered. Higher fds are untracked. */
#define PL_FD_CHUNK_BITS 10
#define PL_FD_CHUNK (1u << PL_FD_CHUNK_BITS)
#define PL_FD_TOP 64u    /* 64 Ki fds, at most 512 KiB of table: with the
                            pool and the default buffer, the preload stays
                            within SPEC's 8 MiB (README, Memory bound) */
#define PL_FD_CAP (PL_FD_TOP * PL_FD_CHUNK)

struct pl_conn;
/* Every connection begins with this header, owned by the pool: the lock
 * survives reuse (see fdtable.c), next_free links free connections. */
struct pl_pool_hdr {
	int lock;
	int pad;
	void *next_free;
};
/* An entry is NULL (untracked), PL_CONN_IDLE (an accepted socket with no
 * HTTP message in progress: costs no memory), or a live connection. A
 * connection whose HTTP runs inside TLS is followed through the TLS
 * library's calls (hook_ssl.c), not the socket's: its entries carry
 * PL_CONN_TLS, the top bit, which no user-space address has:
 * PL_CONN_TLS_IDLE, or a live connection's address | PL_CONN_TLS.
 * PL_CONN_TLS_HELLO is an accepted socket whose first bytes were a TLS
 * handshake: nothing follows it until the TLS library reads it. Read as
 * signed, every entry the socket's hooks follow is > 1 and every other
 * one is not: one compare. */
#define PL_CONN_IDLE ((struct pl_conn *)1)
#define PL_CONN_TLS ((uintptr_t)1 << 63)
#define PL_CONN_TLS_HELLO ((struct pl_conn *)PL_CONN_TLS)
#define PL_CONN_TLS_IDLE ((struct pl_conn *)(PL_CONN_TLS | 1))
/* 1 when entry e holds no connection record (either kind). */
static inline int pl_conn_no_record(const struct pl_conn *e)
{
	return ((uintptr_t)e & ~PL_CONN_TLS) <= 1;
}

extern struct pl_conn **pl_fdtab[PL_FD_TOP];

/* Address of fd's entry when its chunk exists (no mapping), else NULL:
 * one bounds check and one load. The chunk's absence is the likely case:
 * every hooked call on any fd asks (pl_fd_get(), pl_fd_plain_entry()). */
static inline struct pl_conn **pl_fd_entry(int fd)
{
	if (PL_UNLIKELY((unsigned)fd >= PL_FD_CAP))
		return NULL;
	struct pl_conn **chunk = __atomic_load_n(&pl_fdtab[(unsigned)fd >> PL_FD_CHUNK_BITS],
	                                         __ATOMIC_ACQUIRE);
	if (PL_LIKELY(chunk == NULL))
		return NULL;
	return &chunk[(unsigned)fd & (PL_FD_CHUNK - 1)];
}

/* The fast path: one bounds check and two loads. NULL when fd is not an
 * accepted socket we follow. */
static inline struct pl_conn *pl_fd_get(int fd)
{
	struct pl_conn **slot = pl_fd_entry(fd);
	return slot ? __atomic_load_n(slot, __ATOMIC_ACQUIRE) : NULL;
}

/* The read and write hooks' look-up: non-zero when fd's socket carries
 * bytes they follow (an accepted socket, idle or with a plain HTTP
 * connection). The socket of a connection followed through libssl
 * (PL_CONN_TLS, the top bit: negative) carries only ciphertext, which
 * they pass straight through as for an untracked fd instead of finding
 * out the same inside the connection code, twice per request (nginx over
 * HTTPS: about 240 instructions a request). The end of a descriptor
 * (close, shutdown, dup2) asks pl_fd_get(): it ends TLS ones too. */
static inline int pl_fd_plain(int fd)
{
	return (intptr_t)pl_fd_get(fd) > 0;
}

/* pl_fd_plain() that gives the address of fd's entry, NULL when it is not
 * plain: the commonest hooks hand it to conn.c (pl_conn_recv() ...), which
 * then need not look fd up again after the real call (a chunk once mapped
 * stays: about 10 instructions a hooked call). */
static inline struct pl_conn **pl_fd_plain_entry(int fd)
{
	struct pl_conn **slot = pl_fd_entry(fd);
	return slot && (intptr_t)__atomic_load_n(slot, __ATOMIC_ACQUIRE) > 0 ? slot : NULL;
}

/* The socket of a connection followed through libssl that this thread
 * last read (fd + 1; 0: none since an SSL read over a BIO of the
 * program's own took it as that SSL object's socket: hook_ssl.c).
 * Initial-exec TLS, written by the read hooks only on their branch for a
 * descriptor that is not plain. */
extern __thread int pl_tls_read_fd;

/* pl_fd_plain_entry() for the read hooks: a read of a TLS connection's
 * socket is noted in pl_tls_read_fd on the way (for an untracked fd, one
 * more compare). */
static inline struct pl_conn **pl_fd_read_entry(int fd)
{
	struct pl_conn **slot = pl_fd_entry(fd);
	if (!slot)
		return NULL;
	intptr_t e = (intptr_t)__atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (PL_LIKELY(e <= 0)) {
		if (PL_UNLIKELY(e < 0))
			pl_tls_read_fd = fd + 1;
		return NULL;
	}
	return slot;
}

static inline int pl_fd_read_plain(int fd)
{
	return pl_fd_read_entry(fd) != NULL;
}

/* Address of fd's entry, mapping its chunk when `create`; NULL when fd is
 * beyond the cap or the chunk cannot be mapped. */
struct pl_conn **pl_fd_slot(int fd, int create);

/* Takes a connection from the pool (bounded: NULL when the preload's
 * connection budget is spent). It is returned locked; everything after the
 * pool header holds stale data the caller must initialise. */
struct pl_conn *pl_conn_alloc(void);
/* Returns a connection (locked by the caller) to the pool and unlocks it. */
void pl_conn_release(struct pl_conn *c);
/* 1 when more than half the pool is in use: connections between messages
 * then give their record back instead of keeping it for the next request. */
extern size_t pl_pool_in_use, pl_pool_half_budget; /* fdtable.c, atomic */
static inline int pl_conn_pool_crowded(void)
{
	return __atomic_load_n(&pl_pool_in_use, __ATOMIC_RELAXED) >
	       __atomic_load_n(&pl_pool_half_budget, __ATOMIC_RELAXED);
}
/* Every hooked call on a tracked fd takes one: inline, no call. */
static inline void pl_conn_lock(struct pl_conn *c)
{
	pl_spin_lock(&((struct pl_pool_hdr *)c)->lock);
}

static inline void pl_conn_unlock(struct pl_conn *c)
{
	pl_spin_unlock(&((struct pl_pool_hdr *)c)->lock);
}
void pl_fdtable_atfork_child(void);
size_t pl_conn_budget(void);   /* connections the pool may hold */
#define PL_CONN_POOL_BYTES (1u << 20) /* memory for live connections: 480 */

/* ---- connections (conn.c) ---- */

/* None changes errno; each is called for an fd pl_fd_get() found. */
void pl_conn_on_accept(int fd);
/* `r` is what the real read or write call returned: when positive, that
 * many bytes of buf (or of the iovecs, in order) moved and are fed to the
 * connection; otherwise nothing happens. Each returns r, so that a hook
 * ends in a tail call. */
ssize_t pl_conn_on_read(int fd, const void *buf, ssize_t r);
ssize_t pl_conn_on_readv(int fd, const struct iovec *iov, int iovcnt, ssize_t r);
ssize_t pl_conn_on_write(int fd, const void *buf, ssize_t r);
ssize_t pl_conn_on_writev(int fd, const struct iovec *iov, int iovcnt, ssize_t r);
/* The same for the commonest calls, making the real call too, so that
 * their hooks end in a tail call: for an fd whose entry pl_fd_plain_entry()
 * found at `slot`, each calls the real function with the same arguments,
 * feeds what it moved, and returns its result with its errno. */
ssize_t pl_conn_read(int fd, void *buf, size_t n, struct pl_conn **slot);
ssize_t pl_conn_recv(int fd, void *buf, size_t n, int flags, struct pl_conn **slot);
ssize_t pl_conn_write(int fd, const void *buf, size_t n, struct pl_conn **slot);
ssize_t pl_conn_send(int fd, const void *buf, size_t n, int flags, struct pl_conn **slot);
ssize_t pl_conn_writev(int fd, const struct iovec *iov, int iovcnt, struct pl_conn **slot);
void pl_conn_on_sendfile(int fd, size_t n);
/* The TLS library's calls on fd (any fd: one that is not an accepted
 * socket is left alone at the cost of one table look). `r` is what the
 * real call returned: when positive, that many plaintext bytes of buf
 * moved (for sendfile, that many file bytes were sent) and feed the
 * connection. Each returns r and preserves errno. */
ssize_t pl_conn_on_tls_read(int fd, const void *buf, ssize_t r);
ssize_t pl_conn_on_tls_write(int fd, const void *buf, ssize_t r);
ssize_t pl_conn_on_tls_sendfile(int fd, ssize_t r);
/* fd's socket is closed: an SSL object over a BIO of the program's own
 * that hook_ssl.c bound to it is bound no more. Async-signal-safe. */
void pl_tls_bio_forget(int fd);
/* The fd stops being this connection: close, dup2 onto it, close_range.
 * The connection ends (its unanswered requests aborted) when this was its
 * last number (see pl_conn_on_dup). */
void pl_conn_on_close(int fd);
/* shutdown(fd, how): SHUT_WR and SHUT_RDWR end the connection under every
 * number it has; they all stop being followed. */
void pl_conn_on_shutdown(int fd, int how);
/* A new descriptor that is not an accepted socket took this number; the
 * connection goes on under its other numbers, if any, but does not end. */
void pl_conn_forget(int fd);
/* getsockopt(fd, IPPROTO_TCP, TCP_INFO) succeeded on a followed fd: the
 * calling thread is about to serve the connection's oldest unanswered
 * request, read by another thread (Puma's reactor); once its head is
 * complete it is noted in flight on this thread too, so that the
 * statements its handler runs here are attributed to it. */
void pl_conn_on_tcp_info(int fd);
/* fd's connection can no longer be followed (bytes went unseen): every
 * number it has stops being followed, nothing is recorded. */
void pl_conn_stop(int fd);
/* new_fd, which the host just got from dup, dup2, dup3 or
 * fcntl(F_DUPFD*) of old (found by pl_fd_get()), becomes another number
 * of old's connection: the bytes read and written under any of them are
 * one stream. An idle candidate gets its record now (none: old stops
 * being followed, as when the pool is spent at a read). At most
 * PL_ALIASES numbers per connection; past them new_fd is not followed.
 * Whatever new_fd had is forgotten first. */
void pl_conn_on_dup(int old, int new_fd);
void pl_conn_atfork_prepare(void);
void pl_conn_atfork_child(void);
/* Connections handed over across exec (inetd on 0-2, systemd's
 * LISTEN_FDS): candidates as if accepted (inherit.c, constructor only). */
void pl_inherit_connections(void);
size_t pl_conn_size(void);

/* ---- one request, from its head to its event (conn.c) ---- */

#define PL_PATH_MAX 256 /* path bytes kept per request */

/* A request whose head was read and whose response has not ended: an
 * HTTP/1 connection's queue entry, or an HTTP/2 stream's. */
struct pl_pending {
	uint64_t id;
	uint64_t start_ns;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint16_t status;
	uint16_t flags;             /* enum ap_req_flags */
	uint8_t prof;               /* CPU profile session (profile.c), 0: none */
	uint8_t method_len;
	uint16_t path_len;
	char method[AP_HTTP_METHOD_MAX];
	char path[PL_PATH_MAX];
};

/* Starts r, a request whose head was just read on fd (its first
 * number): a new id, method[0..mlen) (an array of AP_HTTP_METHOD_MAX
 * bytes), the path of target[0..tlen) (an array of AP_HTTP_TARGET_MAX
 * bytes: whole blocks are read) with its query string dropped unless
 * APIPROF_CAPTURE_QUERY_STRING=1, status 0; it is in flight on this
 * thread for SQL attribution. start_ns, bytes_in and bytes_out are the
 * caller's. The HTTP/2 and FastCGI request start: it installs a pending
 * crash handler (pl_crash_pending), as an HTTP/1 request's start does. */
void pl_request_open(struct pl_pending *r, int fd, const char *method, size_t mlen,
                     const char *target, size_t tlen, int truncated);
/* r ended at end_ns: its event goes to the buffer (flags: r->flags and
 * `extra`, AP_REQF_ABORTED for an abort), its CPU profile stops, and it
 * is no longer in flight on this thread. body[0..blen): the start of a
 * 5xx response's body (at most AP_HTTP_ERRBODY_MAX bytes), scrubbed here
 * before it goes; NULL and 0 otherwise. Preserves nothing: callers inside
 * a hook restore errno. */
void pl_request_end(struct pl_pending *r, uint64_t end_ns, uint16_t extra, const char *body,
                    size_t blen);

/* ---- HTTP/2 connections (h2conn.c) ----
 *
 * A connection whose first bytes are the HTTP/2 client preface is
 * followed stream by stream: each client stream with a request head is a
 * request, which ends when the server's END_STREAM frame is written (or
 * aborts at a RST_STREAM or the connection's end). Its state (both
 * directions' frame parsers and HPACK tables, the open streams) lives
 * beside the connection record, from a pool that shares the connection
 * pool's budget. All under the connection's lock. */
struct pl_h2;
/* A fresh state, or NULL when the budget is spent. */
struct pl_h2 *pl_h2_new(void);
/* Ends what is in flight without events (profiles stopped) and gives h
 * back. */
void pl_h2_free(struct pl_h2 *h);
/* Bytes the server read (pl_h2_read) or wrote (pl_h2_write) on the
 * connection, whose first number is fd. 0, or -1 when it can no longer
 * be followed (not HTTP/2 after all, or a header block we cannot
 * decode): the caller then frees h and stops following. */
int pl_h2_read(struct pl_h2 *h, int fd, const uint8_t *p, size_t n);
int pl_h2_write(struct pl_h2 *h, const uint8_t *p, size_t n);
/* The connection ended: streams with a request head are aborted, unless
 * `shared` (another process owns them since a fork: nothing recorded).
 * h stays h2-valid but empty. */
void pl_h2_finish(struct pl_h2 *h, int shared);
/* 1 when request `id` is one of h's open streams. */
int pl_h2_in_flight(struct pl_h2 *h, uint64_t id);
/* The open stream whose request is `id`, or NULL; for the crash handler:
 * no lock taken (the crashing thread may hold it), async-signal-safe. */
const struct pl_pending *pl_h2_pending(struct pl_h2 *h, uint64_t id);
/* Pool bookkeeping across fork (atfork child: the lock). */
void pl_h2_atfork_child(void);
size_t pl_h2_size(void);

/* ---- FastCGI connections (fcgiconn.c) ----
 *
 * A connection whose first bytes are a FastCGI BEGIN_REQUEST record (a
 * php-fpm worker's, from nginx) is followed record by record, one request
 * at a time: each request whose params name its method and target is a
 * request, which ends when the server's END_REQUEST is written (aborted
 * after an ABORT_REQUEST, or at the connection's end before it). Its
 * state lives inside the connection record (conn.c's union): no memory of
 * its own. All under the connection's lock. */
struct pl_fcgi {
	struct ap_fcgi p;
	uint64_t begin_ns;          /* the current request's start */
	uint8_t open;               /* r is a request in flight */
	uint8_t aborted;            /* the client sent ABORT_REQUEST */
	struct pl_pending r;
};
void pl_fcgi_init(struct pl_fcgi *f);
/* Bytes the server read (pl_fcgi_read, on the connection whose first
 * number is fd) or wrote (pl_fcgi_write). 0, or -1 when it can no longer
 * be followed (malformed, multiplexed): the caller then calls
 * pl_fcgi_drop() and stops following. */
int pl_fcgi_read(struct pl_fcgi *f, int fd, const uint8_t *p, size_t n);
int pl_fcgi_write(struct pl_fcgi *f, const uint8_t *p, size_t n);
/* The connection ended: a request in flight is aborted, unless `shared`
 * (another process owns it since a fork: nothing recorded). */
void pl_fcgi_finish(struct pl_fcgi *f, int shared);
/* Forgets what is in flight without an event (its profile stopped). */
void pl_fcgi_drop(struct pl_fcgi *f);
/* 1 when request `id` is f's request in flight. */
int pl_fcgi_in_flight(const struct pl_fcgi *f, uint64_t id);
/* f's request in flight when it is `id`, or NULL; for the crash handler:
 * no lock taken, async-signal-safe. */
const struct pl_pending *pl_fcgi_pending(const struct pl_fcgi *f, uint64_t id);

/* The connection pool's budget (fdtable.c) is shared: takes `records`
 * record-sized units of it for something else (an HTTP/2 state), at most
 * half of it in all, records lent by pl_pool_borrow() included. 1 when
 * taken. */
int pl_pool_reserve(size_t records);
/* Gives back `records` taken by pl_pool_reserve(). */
void pl_pool_unreserve(size_t records);
/* A record of the pool lent to HTTP/2 (a block of stream slots), locked
 * as pl_conn_alloc() returns it, and counted in the same half as
 * pl_pool_reserve()'s: stream slots never take the records HTTP/1
 * connections need. NULL when that half or the pool is spent. */
struct pl_conn *pl_pool_borrow(void);
/* Gives back a record of pl_pool_borrow() (locked by the caller), and
 * unlocks it. */
void pl_pool_give_back(struct pl_conn *c);

/* ---- requests in flight per thread (conn.c), for SQL attribution ---- */

/* The request a statement starting now on this thread belongs to: its id,
 * or 0 when no request is in flight here; *ambiguous set (and 0 returned)
 * when several are (event loops), so the statement counts for the service
 * only. */
uint64_t pl_conn_current_request(int *ambiguous);
/* 1 unless the request `id`, noted in flight on this thread when it was,
 * has ended here since (or was found ended elsewhere): a statement that
 * began in it and ends after it would reach the collector after the
 * request's event, which has taken its statements already. */
int pl_conn_request_open_here(uint64_t id);

/* The crash handler's view of the same: the request in flight on this
 * thread when there is exactly one, copied into *out without locking (the
 * crashing thread may hold its connection's lock), lengths clamped, so a
 * best effort. Returns its id (0: none or several in flight); out->id is
 * 0 when its record was not found (method and path then empty).
 * Async-signal-safe. */
uint64_t pl_conn_crash_pending(struct pl_pending *out);
/* *p, from pl_conn_crash_pending(), as an aborted request event ending at
 * end_ns (flagged AP_REQF_CRASHED when `crashed`: a CRASH record will name
 * it) appended to the event buffer, which the handler then flushes: the
 * crash counts as that endpoint's error. 1 when appended; 0 when p is no
 * request, or the buffer is busy (this thread crashed inside an append)
 * or full. Async-signal-safe. */
int pl_conn_crash_abort(const struct pl_pending *p, uint64_t end_ns, int crashed);
/* For the crash handler, after pl_conn_crash_abort(): every other request
 * in flight in the process (but the one with id skip_id), answered by no
 * one now, as aborted request events ending at end_ns: the process dies
 * with their connections. Best effort: connections another thread is
 * working on this instant, HTTP/2 and FastCGI ones (a php-fpm worker has
 * one thread: its own request is pl_conn_crash_abort()'s), and ones not
 * touched since a fork are left out. Their queues are emptied, so that no event follows.
 * Returns how many were appended. Async-signal-safe. */
unsigned pl_conn_crash_abort_others(uint64_t skip_id, uint64_t end_ns);

/* For the shipper thread (never a host thread), once a second: each
 * HTTP/1 or FastCGI request in flight that started at least min_age_ns
 * before round_ns, at most `max` of them, as an AP_REC_INFLIGHT record of
 * round round_ns appended to the event buffer (ap_wire.h), so that the
 * collector can record them aborted if the process dies without a word
 * (SIGKILL). Each is appended under its connection's lock, so that its
 * REQUEST record, if it ends now, always follows it. Connections another
 * thread is working on this instant are skipped (the next round sees
 * them), as are HTTP/2 ones and, in a fork child, the ones it inherited
 * and never touched (the parent's; the parent announces its own, touched
 * since the fork or not). Returns how many were appended. */
unsigned pl_conn_announce(uint64_t round_ns, uint64_t min_age_ns, unsigned max);

/* ---- fatal signals (crash.c) ---- */

/* Installs the crash handler for SIGSEGV, SIGABRT, SIGBUS, SIGFPE and
 * SIGILL where their disposition is the default one. Once per process
 * image (later calls return at once; errno kept), when the fd table gets
 * its first chunk (just before it is published): the process's first
 * accepted connection. Between
 * pl_crash_hold(1) and pl_crash_hold(0) (the constructor, following
 * inherited connections before the runtime the process hosts installed
 * its own handlers) a call only sets pl_crash_pending (atomic), and a
 * request's start (conn.c: HTTP/1, HTTP/2 or FastCGI) calls it again
 * while that is set. */
void pl_crash_install(void);
void pl_crash_hold(int on);
/* Work a request's start does once per process, at no cost to the
 * others: a request's start tests this one word (atomic) and calls
 * pl_request_first() while it is not 0. PL_PENDING_CRASH: the crash
 * handler's install is held (above). PL_PENDING_SHIP: the shipper thread
 * is not started yet in this process (set at load and in the fork
 * child): a request that hangs from the start must be announced in
 * flight (pl_conn_announce()) although no record was appended yet. */
#define PL_PENDING_CRASH 1
#define PL_PENDING_SHIP 2
extern int pl_crash_pending;
/* The slow path of that test. p[0..n): the first bytes of an HTTP/1
 * message, which start the shipper only when they begin like a request
 * line (a process accepting another protocol starts nothing); NULL for an
 * HTTP/2 or FastCGI request. */
void pl_request_first(const char *p, size_t n);

/* 1 (atomic) once the crash handler's install is done: from then on the
 * hooks of sigaction() and the signal() family (hook_signal.c) hand the
 * five signals to the two calls below, so that the host sees the default
 * disposition where our handler is. */
extern int pl_crash_live;
#define PL_CRASH_SIGMASK ((1u << SIGSEGV) | (1u << SIGABRT) | (1u << SIGBUS) | \
                          (1u << SIGFPE) | (1u << SIGILL))
/* sigaction() for sig, with the C library's real call: where act is the
 * default, our handler is installed instead (unless a crash is being
 * reported, or in a vfork child), and *old shows the default where ours
 * was. Returns the real call's result (errno set by it). Async-signal-safe. */
int pl_crash_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
/* After a signal()-family call set sig to handler and returned prev:
 * returns prev as the host must see it (the default where it was ours),
 * and when handler is the default, puts ours in its place (a few
 * microseconds after the real call). Async-signal-safe; preserves errno. */
sighandler_t pl_crash_signal_done(int sig, sighandler_t handler, sighandler_t prev);

/* For _exit(), _Exit() and exit(): a signal the process sent itself
 * that the crash handler passed to this thread, and that it has not taken
 * yet (its handler sent it and ends the process before returning), is
 * taken now: the process dies of it, reported, as it would have without
 * us. Async-signal-safe; preserves errno. */
void pl_crash_exiting(void);

/* Forgets, in a fork child, a crash of the parent being reported, and
 * finishes an install another thread of the parent was making.
 * Async-signal-safe (sigaction only), as in the child of a threaded
 * process. */
void pl_crash_atfork_child(void);

/* ---- SQL capture common to the client-library hooks (sqlcap.c) ---- */

/* The hooks find the real functions of the copy their caller reaches in
 * libcopy.h. */

/* Our own calls into libpq (PQexec calls PQsendQuery and PQgetResult)
 * must be one statement, not three: hooks entered while this is non-zero
 * pass straight through. The MySQL hooks track their own nesting per
 * handle instead (hook_mysql.c: libmariadb's non-blocking calls suspend
 * inside them), and the SQLite hooks their own (hook_sqlite.c: the
 * application's SQL in SQLite's callbacks is recorded). Initial-exec TLS. */
extern __thread int pl_db_depth;

/* A statement being timed. */
struct pl_stmt {
	uint64_t start_ns;
	uint64_t req_id;
	uint8_t ambiguous;
	uint8_t prepare;  /* a prepare round trip (PQprepare, mysql_stmt_prepare) */
	uint8_t truncated; /* the text kept while it ran (PL_PREPARED_TEXT) was cut */
	uint32_t tid;     /* the thread it began on */
};

void pl_stmt_begin(struct pl_stmt *st);

/* What ended: rows returned or affected (rows_known 0: unknown), and for a
 * failure its code (SQLSTATE / errno / SQLite code, as text) and message. */
struct pl_stmt_result {
	uint64_t rows;
	int rows_known;
	int failed;
	const char *code;     /* NUL-terminated or NULL */
	const char *message;  /* NUL-terminated or NULL; first line kept for PG */
};

/* Normalises sql[0..len) (literals stripped unless
 * APIPROF_CAPTURE_SQL_VALUES=1), fingerprints and emits the statement.
 * Preserves errno. */
void pl_stmt_end(const struct pl_stmt *st, int db, const char *sql, size_t len,
                 const struct pl_stmt_result *res);

/* Normalised text kept for a prepared statement, so each execution can
 * carry it without normalising again. */
#define PL_PREPARED_TEXT 1024
struct pl_prepared {
	const void *owner;      /* connection or statement handle; NULL: free */
	uint64_t name_hash;     /* statement name (libpq), 0 otherwise */
	char text[PL_PREPARED_TEXT];
	uint8_t cut;            /* text holds only the first bytes */
};
void pl_prepared_put(const void *owner, uint64_t name_hash, const char *sql, size_t len);
/* Copies the text for (owner, name) into out; 0 when unknown. *cut becomes 1
 * when the text is only a prefix of the statement (kept or copied cut). */
size_t pl_prepared_get(const void *owner, uint64_t name_hash, char *out, size_t cap, int *cut);
void pl_prepared_forget(const void *owner);
uint64_t pl_hash_str(const char *s);

/* Scrubs the start of a 5xx body (quoted literals, numbers, credentials,
 * query strings: ap_sql_scrub_http_body()) into out before it leaves the
 * process; returns its length. */
size_t pl_scrub_http_body(const char *msg, size_t len, char *out, size_t cap);

/* MySQL statements stay open until their result is fetched; a request
 * ending on this thread closes them first so they precede it on the wire. */
extern __thread void *pl_mysql_open; /* the open statement's handle or NULL */
void pl_mysql_flush_open(void);
/* Inline: every request's end asks, and a process without MySQL answers
 * with one TLS load. Preserves errno. */
static inline void pl_mysql_flush_thread(void)
{
	if (PL_UNLIKELY(pl_mysql_open != NULL))
		pl_mysql_flush_open();
}

/* ---- shipping (ship.c) ---- */

/* Events go to the process's buffer: never blocking on the collector,
 * never allocating after the first one, dropped and counted when the
 * buffer is full. The first starts the shipper thread. */

/* A request event, written in place so that it is encoded once, straight
 * from the connection's queue: pl_ship_reserve() returns where to write a
 * record of `need` bytes, with AP_WIRE_PAD bytes of slack after it for
 * ap_wire_put_request_padded(), and holds the buffer's lock until
 * pl_ship_commit(need) publishes it; it returns NULL (lock not held) when
 * the record is dropped. Nothing between the two may block or take a lock. */
uint8_t *pl_ship_reserve(size_t need);
/* pl_ship_reserve() that never waits (for a signal handler: the lock may
 * be held by the very thread it interrupted): NULL, lock not held, when
 * the lock is taken (*busy then 1: trying again may succeed), the shipper
 * is not running, or there is no room (the record dropped, counted). */
uint8_t *pl_ship_try_reserve(size_t need, int *busy);
/* For the crash handler of a process whose shipper never started (its first
 * events are its crash's): maps the buffer, when not yet, so that records
 * can be appended and pl_ship_exit_now() sends them from the caller's
 * thread; no thread is started. 1 when records can be buffered.
 * Async-signal-safe (mmap is one system call). */
int pl_ship_crash_ready(void);
void pl_ship_commit(size_t need);
/* pl_ship_commit() for a record that is no event of the host's traffic
 * (an in-flight announcement): not counted in the STATS record's events,
 * which stay the requests, statements and profiles recorded. */
void pl_ship_commit_aside(size_t need);
void pl_ship_sql(const struct ap_rec_sql *r);
void pl_ship_profile(const struct ap_rec_profile *r);
void pl_ship_count_untracked(void);
/* The process ends without exit()'s destructors (_exit, _Exit, or a fatal
 * signal: crash.c): hands over what is buffered, as the exit flush does,
 * within its budget. Nothing in a process that never shipped, nor in a
 * vfork() child, nor when the buffer's lock is held (a crash inside an
 * append). Async-signal-safe; preserves errno. */
void pl_ship_exit_now(void);
/* An exec may replace the process image (hook_exec.c): hands over what is
 * buffered and the counters, from the caller's thread, within a few
 * milliseconds (SHIP_EXEC_BUDGET), never blocking: non-blocking sends,
 * bounded waits for the buffer's lock and for a half the shipper is
 * sending. The buffer stays usable, for an exec that fails. Nothing (one
 * load) in a process that never buffered an event; nothing in a vfork()
 * child, nor from a signal handler that interrupted the preload's work.
 * Async-signal-safe; preserves errno. */
void pl_ship_before_exec(void);
/* Fork (init.c): the prepare handler takes the buffer's lock unless this
 * thread is busy (pl_guard.busy: a signal handler that interrupted the
 * preload's work forks, and this thread may hold the lock itself), and
 * keeps the thread busy until the parent's or child's handler; the
 * parent's releases the lock only when the prepare took it. Every holder
 * of the lock on a thread that runs signal handlers is busy meanwhile. */
void pl_ship_atfork_prepare(void);
void pl_ship_atfork_parent(void);
void pl_ship_atfork_child(void);

/* ---- CPU profiles (profile.c) ---- */

/* Requests left before the next every-Nth profile (APIPROF_PROFILE_EVERY)
 * of the process. Process-wide, not per thread: a server that starts a
 * thread per connection (Python's ThreadingHTTPServer) would otherwise
 * never reach the Nth request on any thread. Armed with the setting in the
 * constructor and in the fork child (profile.c). */
extern int32_t pl_prof_left;
/* Whether the request whose headers just completed on this thread is to be
 * profiled: header set (X-Apiprof-Profile: 1), or the process's every-Nth
 * countdown reached 0. One atomic decrement, no syscall; inline since every
 * request asks. The thread that takes it to 0 re-arms it: threads that
 * race past 0 meanwhile are not profiled (a few counts lost under
 * concurrency, never an extra profile). In a build without the profiler,
 * pl_prof_begin() then declines. */
static inline int pl_prof_want(int header)
{
	if (header)
		return 1;
	unsigned every = pl_cfg.profile_every;
	if (every == 0)
		return 0;
	if (__atomic_sub_fetch(&pl_prof_left, 1, __ATOMIC_RELAXED) != 0)
		return 0;
	__atomic_store_n(&pl_prof_left, (int32_t)every, __ATOMIC_RELAXED);
	return 1;
}
/* Arms the countdown (constructor, fork child). */
void pl_prof_arm(void);
/* Starts sampling this thread for request req_id; returns a session
 * number (> 0) to hand to pl_prof_end(), or 0 when none started (every
 * session busy, one already live on this thread, no free real-time signal,
 * no libdw at build time). Preserves errno. Not async-signal-safe. */
int pl_prof_begin(uint64_t req_id, int header, const char *method, size_t mlen,
                  const char *path, size_t plen);
/* The request ended (on any thread): stop sampling. Preserves errno. */
void pl_prof_end(int session, uint64_t req_id);
/* Shipper thread: unwinds and folds buffered samples, ships the stacks of
 * ended sessions. pl_prof_live() is 1 while a session needs draining. */
void pl_prof_work(void);
int pl_prof_live(void);
void pl_prof_atfork_child(void);
/* The profiler's sampling signal: 0 before the first profile, -1 when
 * profiling stood down (or never could), else the signal. hook_signal.c
 * reads it (atomic) before it calls pl_prof_signal_set(). */
extern int pl_prof_signo;
/* The host is setting sig's disposition (hook_signal.c, before the real
 * call): action is the new SA_SIGINFO handler, or NULL for any other
 * disposition. If sig is the sampling signal and action not our handler,
 * profiling stands down for the process and every live session's timer
 * is disarmed, here, before the host's handler can be in place: a sample
 * would otherwise reach it (or, at SIG_DFL, kill the host) until the
 * shipper's next check. Async-signal-safe (but for its APIPROF_DEBUG
 * line, formatted with vsnprintf); preserves errno. */
void pl_prof_signal_set(int sig, void (*action)(int, siginfo_t *, void *));

/* ---- fork children of threaded hosts ----
 * Only the forking thread survives a fork: a spin lock another thread held
 * at that moment would stay taken in the child, and the child's first
 * statement would spin on it forever. These clear the SQL capture's locks
 * (init.c's atfork child handler; nothing else runs in the child yet). */
void pl_sqlcap_atfork_child(void);  /* sqlcap.c: prepared statements' texts */
void pl_pq_atfork_child(void);      /* hook_pq.c: async statements */
void pl_sqlite_atfork_child(void);  /* hook_sqlite.c: executions */
void pl_libcopy_atfork_child(void); /* libcopy.c: the definitions scan */
void pl_dl_walk_atfork_prepare(void); /* libcopy.c: pl_dl_walk(); the last prepare handler */
void pl_dl_walk_atfork_parent(void);
/* gotpatch.c: the objects loaded since the last scan that bound past our
 * SQL and TLS hooks (RTLD_DEEPBIND) get those GOT slots pointed at our
 * hooks; one load-counter read when nothing was loaded. Any thread (one
 * scan at a time: a caller finding another running does not wait, but
 * for the first accept, briefly). Preserve errno; not async-signal-safe. */
void pl_got_patch_scan(void);        /* the shipper thread */
void pl_got_patch_before_fork(void); /* init.c's prepare handler */
/* accept and accept4 call pl_got_patch_first_accept() while
 * pl_got_accept_seen is 0 (this process has not called them yet; reset in
 * each fork child), before the real call: PHP's first request. */
extern int pl_got_accept_seen;
void pl_got_patch_first_accept(void);
void pl_got_patch_atfork_child(void); /* forked in a scan's middle: all again */

#endif /* AP_PL_H */

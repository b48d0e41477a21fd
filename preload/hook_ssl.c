/*
 * hook_ssl.c - HTTP inside TLS, through OpenSSL's libssl.
 *
 * A server that terminates TLS itself reads and writes ciphertext on its
 * accepted socket; the HTTP is what it passes to SSL_read and SSL_write.
 * The socket hooks notice a connection whose first byte is a TLS
 * handshake and leave it to the calls here (conn.c: PL_CONN_TLS), which
 * feed the plaintext to the same parsers, keyed by the socket the SSL
 * object reads (SSL_get_rfd) and writes (SSL_get_wfd). A TLS object over
 * a socket that was not accepted (a client's: libpq with sslmode, an
 * HTTPS call the server makes) is left alone.
 *
 * An SSL object over a BIO of the program's own has no socket to ask
 * (SSL_get_rfd() is -1): a memory BIO the program fills from the socket
 * before it calls SSL_read (Python's asyncio, H2O), or a BIO whose read
 * callback reads the socket inside SSL_read (Apache's mod_ssl, HAProxy).
 * Either way the socket read last on the thread before the SSL read
 * returns is that object's: the read hooks note the TLS socket they read
 * (pl_tls_read_fd), and an SSL read over such a BIO binds its object to
 * it, once, and takes the note; an object of the program's own TLS
 * client (an HTTPS call it makes, as aiohttp's over asyncio's memory
 * BIOs) neither binds nor takes it. The binding holds one object per socket
 * and one socket per object, until the socket is closed or the object
 * reads another socket first; writes use it. SSL_do_handshake binds the
 * same way, without moving anything: uvloop's TLS (its sslproto, over
 * ssl.MemoryBIO) feeds the ClientHello and calls it at once, as asyncio
 * does, but defers the first SSL read after the handshake completes to a
 * later callback of the loop iteration, after the reads of other
 * sockets, so that read's note named another connection's socket (whose
 * requests were then lost or given this one's bytes). Bound at the
 * handshake, the object is its socket's already, and the other socket
 * its own object's (bio_taken): the late read keeps the binding.
 * An object bound to a socket that is still a TLS connection's moves only
 * to a socket read inside its own SSL call: a note from before the call
 * may be another connection's when the call returns what libssl already
 * held.
 *
 * Only libssl's public calls are hooked: SSL_read, SSL_read_ex, SSL_write,
 * SSL_write_ex, SSL_sendfile (kTLS), SSL_do_handshake (to bind, above),
 * and for TLS 1.3 0-RTT the
 * SSL_read_early_data that reads a request sent with the handshake and
 * the SSL_write_early_data that answers it before the handshake ends
 * (nginx's `ssl_early_data on`). Those two call SSL_read_ex/SSL_write_ex
 * inside; through the PLT (Debian) that inner call reaches our hook,
 * which passes it through (pl_db_depth), while a libssl linked
 * -Bsymbolic-functions (Ubuntu's default) binds it inside libssl, where
 * only these outer hooks see the bytes. A program that carries its own
 * copy of OpenSSL linked in statically (Node.js) never calls them. Which
 * copy of libssl a caller reaches is resolved as for the client libraries
 * (libcopy.h): a process may hold two.
 */
#include "config.h"
#include "libcopy.h"

#include <stdint.h>
#include <sys/types.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct ssl_st SSL;

enum { TL_read, TL_write, TL_get_rfd, TL_get_wfd, TL_REQUIRED, /* in every libssl */
       TL_read_ex = TL_REQUIRED, TL_write_ex, /* OpenSSL >= 1.1.1 */
       TL_read_early_data, TL_write_early_data,
       TL_sendfile,                           /* OpenSSL >= 3.0 */
       TL_do_handshake,                       /* in every libssl */
       TL_is_server,                          /* OpenSSL >= 1.0.2 */
       TL_get_rbio,
       TL_N };
typedef int (*tl_read_fn)(SSL *, void *, int);
typedef int (*tl_write_fn)(SSL *, const void *, int);
typedef int (*tl_get_rfd_fn)(const SSL *);
typedef int (*tl_get_wfd_fn)(const SSL *);
typedef int (*tl_read_ex_fn)(SSL *, void *, size_t, size_t *);
typedef int (*tl_write_ex_fn)(SSL *, const void *, size_t, size_t *);
typedef int (*tl_read_early_data_fn)(SSL *, void *, size_t, size_t *);
typedef int (*tl_write_early_data_fn)(SSL *, const void *, size_t, size_t *);
typedef ssize_t (*tl_sendfile_fn)(SSL *, int, off_t, size_t, int);
typedef int (*tl_do_handshake_fn)(SSL *);
typedef int (*tl_is_server_fn)(const SSL *);
typedef void *(*tl_get_rbio_fn)(const SSL *);

/* f's function `name` (NULL when that copy lacks it). */
#define TLF(f, name) ((tl_##name##_fn)(f)[TL_##name])

static const char *const tl_names[TL_N] = {
	"SSL_read", "SSL_write", "SSL_get_rfd", "SSL_get_wfd",
	"SSL_read_ex", "SSL_write_ex", "SSL_read_early_data", "SSL_write_early_data",
	"SSL_sendfile", "SSL_do_handshake", "SSL_is_server", "SSL_get_rbio",
};
EXPORT int SSL_read(SSL *, void *, int);
EXPORT int SSL_write(SSL *, const void *, int);
EXPORT int SSL_read_ex(SSL *, void *, size_t, size_t *);
EXPORT int SSL_write_ex(SSL *, const void *, size_t, size_t *);
EXPORT int SSL_read_early_data(SSL *, void *, size_t, size_t *);
EXPORT int SSL_write_early_data(SSL *, const void *, size_t, size_t *);
EXPORT ssize_t SSL_sendfile(SSL *, int, off_t, size_t, int);
EXPORT int SSL_do_handshake(SSL *);
_Static_assert(TL_N <= PL_COPY_MAXFN, "PL_COPY_MAXFN too small");
static const void *const tl_self[TL_N] = {
	[TL_read] = (const void *)SSL_read, [TL_write] = (const void *)SSL_write,
	[TL_read_ex] = (const void *)SSL_read_ex, [TL_write_ex] = (const void *)SSL_write_ex,
	[TL_read_early_data] = (const void *)SSL_read_early_data,
	[TL_write_early_data] = (const void *)SSL_write_early_data,
	[TL_sendfile] = (const void *)SSL_sendfile,
	[TL_do_handshake] = (const void *)SSL_do_handshake,
};
static struct pl_copy_lib tl_lib = { .what = "libssl", .names = tl_names, .self = tl_self,
                                     .n = TL_N, .nreq = TL_REQUIRED };
struct pl_copy_lib *const pl_copy_lib_ssl = &tl_lib; /* gotpatch.c */

/* The caller's copy: in each exported hook itself, so the return address is
 * its caller's. NULL: none can be determined, call nothing. */
#define TL_FNS() pl_copy_fns(&tl_lib, __builtin_return_address(0))

/*
 * This thread's real libssl calls in progress under these hooks
 * (initial-exec TLS). Not pl_db_depth, which would tell the client
 * libraries' hooks to pass through: inside SSL_read, libssl calls back
 * into the host (a servername, ALPN or certificate callback, while a read
 * completes the handshake, as for gunicorn's default
 * do_handshake_on_connect=False), and SQL the host runs there (a
 * tenant's certificate looked up in PostgreSQL) must be recorded.
 */
static __thread int tl_depth;

/* Around a hook's real call: as PL_COPY_ENTER()/PL_COPY_LEAVE() (the copy
 * a libssl tail call into another hook takes), with tl_depth. */
#define TL_ENTER(f) \
	struct pl_copy_outer tl_outer_saved_ = pl_copy_outer; \
	pl_copy_outer = (struct pl_copy_outer){ &tl_lib, (f) }; \
	tl_depth++
#define TL_LEAVE() \
	tl_depth--; \
	pl_copy_outer = tl_outer_saved_

__thread int pl_tls_read_fd;

/*
 * SSL objects over BIOs of the program's own, bound to their sockets:
 * open addressing over BIO_PROBE slots from the object's address's hash,
 * each slot one word, address << 16 | fd (user addresses are below 2^48,
 * fds below PL_FD_CAP = 2^16), 0: free. Lock-free (any thread may read or
 * write an object): a binding is made once a connection, looked up at each
 * SSL call on such an object, and cleared when a new TLS connection
 * begins on its socket or the socket is closed, by a scan of the table
 * (8 KiB, once a connection, and only in a process that bound one: a TLS
 * handshake costs a thousand times more). A binding per followed
 * connection at most: beyond BIO_SLOTS (more than the connection pool
 * holds records) or a full probe run, an object stays unbound and its
 * connection is not followed. Atomic.
 */
#define BIO_SLOTS 1024u
#define BIO_PROBE 16u
static uint64_t bio_slot[BIO_SLOTS];
static int bio_used; /* a binding was ever made here (a fork child's too) */
_Static_assert(PL_FD_CAP <= 1u << 16, "a slot holds an fd in 16 bits");

static inline unsigned bio_hash(uintptr_t a)
{
	return (unsigned)(((uint64_t)a * 0x9e3779b97f4a7c15ull) >> 54) & (BIO_SLOTS - 1);
}

/* The socket object s is bound to, or -1. */
static int bio_lookup(const SSL *s)
{
	uintptr_t a = (uintptr_t)s;
	for (unsigned i = 0, h = bio_hash(a); i < BIO_PROBE; i++) {
		uint64_t v = __atomic_load_n(&bio_slot[(h + i) & (BIO_SLOTS - 1)], __ATOMIC_ACQUIRE);
		if (v != 0 && (v >> 16) == a)
			return (int)(v & 0xffff);
	}
	return -1;
}

/* Whether another object than s is bound to socket fd. */
static int bio_taken(uintptr_t a, int fd)
{
	for (unsigned i = 0; i < BIO_SLOTS; i++) {
		uint64_t v = __atomic_load_n(&bio_slot[i], __ATOMIC_ACQUIRE);
		if (v != 0 && (int)(v & 0xffff) == fd && (v >> 16) != a)
			return 1;
	}
	return 0;
}

/* Binds object s to socket fd, the TLS socket this thread read last
 * (`inside` s's SSL read), and returns the socket s is bound to: fd, or
 * the one it was bound to before when fd is another object's or not a TLS
 * connection's socket, or was read before the call while s's socket is
 * still a TLS connection's; -1: none. */
static PL_COLD int bio_bind(SSL *s, int fd, int inside)
{
	uintptr_t a = (uintptr_t)s;
	int was = bio_lookup(s);
	if (was == fd)
		return fd;
	if ((was >= 0 && !inside && (intptr_t)pl_fd_get(was) < 0) ||
	    (unsigned)fd >= PL_FD_CAP || (intptr_t)pl_fd_get(fd) >= 0 || (a >> 48) != 0 ||
	    bio_taken(a, fd))
		return was;
	__atomic_store_n(&bio_used, 1, __ATOMIC_RELAXED);
	uint64_t want = (uint64_t)a << 16 | (unsigned)fd;
	unsigned h = bio_hash(a);
	/* s's own slot (rebound: it read another socket first), else a free one */
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < BIO_PROBE; i++) {
			uint64_t *sl = &bio_slot[(h + i) & (BIO_SLOTS - 1)];
			uint64_t v = __atomic_load_n(sl, __ATOMIC_ACQUIRE);
			if (pass == 0 ? v == 0 || (v >> 16) != a : v != 0)
				continue;
			if (__atomic_compare_exchange_n(sl, &v, want, 0, __ATOMIC_ACQ_REL,
			                                __ATOMIC_ACQUIRE))
				return fd;
		}
	}
	return -1; /* no room: not followed */
}

void pl_tls_bio_forget(int fd)
{
	if (PL_LIKELY(!__atomic_load_n(&bio_used, __ATOMIC_RELAXED)))
		return;
	for (unsigned i = 0; i < BIO_SLOTS; i++) {
		uint64_t v = __atomic_load_n(&bio_slot[i], __ATOMIC_ACQUIRE);
		if (v != 0 && (int)(v & 0xffff) == fd)
			__atomic_compare_exchange_n(&bio_slot[i], &v, 0, 0, __ATOMIC_ACQ_REL,
			                            __ATOMIC_RELAXED);
	}
}

/* The socket whose connection an SSL read on s carried (`moved`: it
 * returned bytes): the one its BIO reads, or for a BIO of the program's
 * own the one it is bound to, bound first to the TLS socket the thread
 * read since the last such call, if any (that read was this object's:
 * made for it before the call, `before` (pl_tls_read_fd then, taken by
 * the hook), or inside it). -1: none. */
/* The note of the TLS socket this thread read last, taken (cleared) as an
 * SSL read or handshake step begins: what read_fd() then gets as `before`. */
static inline int take_note(void)
{
	int noted = pl_tls_read_fd;
	pl_tls_read_fd = 0;
	return noted;
}

static int read_fd(void *const *f, SSL *s, int moved, int before)
{
	int inside = pl_tls_read_fd;
	int noted = inside ? inside : before;
	if (!moved && !noted)
		return -1;
	pl_tls_read_fd = 0;
	/* no BIO (a failed read): SSL_get_rfd() would push "passed a null
	 * parameter" onto the host's OpenSSL error queue */
	if (TLF(f, get_rbio) && !TLF(f, get_rbio)(s)) {
		pl_tls_read_fd = noted; /* not this object's */
		return -1;
	}
	int fd = TLF(f, get_rfd)(s);
	if (fd >= 0)
		return fd;
	if (noted && TLF(f, is_server) && !TLF(f, is_server)(s)) {
		pl_tls_read_fd = noted; /* a client's: the note is a server object's */
		return -1;
	}
	return noted ? bio_bind(s, noted - 1, inside != 0) : bio_lookup(s);
}

/* The socket an SSL write on s carried. */
static int write_fd(void *const *f, SSL *s)
{
	int fd = TLF(f, get_wfd)(s);
	return fd >= 0 ? fd : bio_lookup(s);
}

/* Whether a call's plaintext is followed: not when the preload is off, nor
 * inside a client library's call (libpq reading its own TLS connection)
 * or inside another of these hooks (a libssl that calls its own exported
 * functions through the PLT, as SSL_read_early_data calls SSL_read_ex,
 * would feed the same bytes twice). */
static inline int followed(void)
{
	return !pl_db_depth && !tl_depth && !pl_cfg.disabled;
}

EXPORT int SSL_read(SSL *s, void *buf, int num)
{
	void *const *f = TL_FNS();
	if (PL_UNLIKELY(!f))
		return -1;
	if (!followed())
		return TLF(f, read)(s, buf, num);
	TL_ENTER(f);
	int before = take_note();
	int r = TLF(f, read)(s, buf, num);
	TL_LEAVE();
	int fd = read_fd(f, s, r > 0, before);
	if (r > 0)
		pl_conn_on_tls_read(fd, buf, r);
	return r;
}

EXPORT int SSL_write(SSL *s, const void *buf, int num)
{
	void *const *f = TL_FNS();
	if (PL_UNLIKELY(!f))
		return -1;
	if (!followed())
		return TLF(f, write)(s, buf, num);
	TL_ENTER(f);
	int r = TLF(f, write)(s, buf, num);
	TL_LEAVE();
	if (r > 0)
		pl_conn_on_tls_write(write_fd(f, s), buf, r);
	return r;
}

/*
 * The calls that report what moved through a size_t pointer, all one
 * shape: `int SSL_<name>(SSL *, buf, size_t num, size_t *moved)`, whose
 * result 1 means *moved bytes of buf moved (fed to `feed`, on the socket
 * read_fd() or write_fd() finds, as `reading`); 0 when the copy lacks the function. SSL_read_ex and
 * SSL_write_ex; SSL_read_early_data (1 is SSL_READ_EARLY_DATA_SUCCESS; 2,
 * FINISH, moved nothing: the rest comes by SSL_read) and
 * SSL_write_early_data.
 */
#define TL_EX_HOOK(name, buf_t, feed, reading) \
	EXPORT int SSL_##name(SSL *s, buf_t buf, size_t num, size_t *moved) \
	{ \
		void *const *f = TL_FNS(); \
		if (PL_UNLIKELY(!f || !TLF(f, name))) \
			return 0; \
		if (!followed()) \
			return TLF(f, name)(s, buf, num, moved); \
		TL_ENTER(f); \
		int before_ = reading ? take_note() : 0; \
		int r = TLF(f, name)(s, buf, num, moved); \
		TL_LEAVE(); \
		if (reading) { \
			int fd_ = read_fd(f, s, r == 1 && moved, before_); \
			if (r == 1 && moved) \
				feed(fd_, buf, (ssize_t)*moved); \
		} else if (r == 1 && moved) { \
			feed(write_fd(f, s), buf, (ssize_t)*moved); \
		} \
		return r; \
	}

TL_EX_HOOK(read_ex, void *, pl_conn_on_tls_read, 1)
TL_EX_HOOK(write_ex, const void *, pl_conn_on_tls_write, 0)
TL_EX_HOOK(read_early_data, void *, pl_conn_on_tls_read, 1)
TL_EX_HOOK(write_early_data, const void *, pl_conn_on_tls_write, 0)

EXPORT ssize_t SSL_sendfile(SSL *s, int fd, off_t offset, size_t size, int flags)
{
	void *const *f = TL_FNS();
	if (PL_UNLIKELY(!f || !TLF(f, sendfile)))
		return -1;
	if (!followed())
		return TLF(f, sendfile)(s, fd, offset, size, flags);
	TL_ENTER(f);
	ssize_t r = TLF(f, sendfile)(s, fd, offset, size, flags);
	TL_LEAVE();
	/* Only once bytes moved, as the others: SSL_get_wfd() of an SSL with
	 * no BIO (an SSL_sendfile that failed for it) pushes "passed a null
	 * parameter" onto the thread's OpenSSL error queue, which the host
	 * then reads as its own. */
	if (r > 0)
		pl_conn_on_tls_sendfile(TLF(f, get_wfd)(s), r);
	return r;
}

/* A handshake step moves no plaintext; over a BIO of the program's own it
 * binds the object to the TLS socket the thread read since the last SSL
 * read (its ClientHello: see the top of this file), as read_fd() does. */
EXPORT int SSL_do_handshake(SSL *s)
{
	void *const *f = TL_FNS();
	if (PL_UNLIKELY(!f || !TLF(f, do_handshake)))
		return -1;
	if (!followed())
		return TLF(f, do_handshake)(s);
	TL_ENTER(f);
	int before = take_note();
	int r = TLF(f, do_handshake)(s);
	TL_LEAVE();
	read_fd(f, s, 0, before);
	return r;
}

/*
 * hook_ssl.c - HTTP inside TLS, through OpenSSL's libssl.
 *
 * A server that terminates TLS itself reads and writes ciphertext on its
 * accepted socket; the HTTP is what it passes to SSL_read and SSL_write.
 * The socket hooks notice a connection whose first byte is a TLS
 * handshake and leave it to the calls here (conn.c: PL_CONN_TLS), which
 * feed the plaintext to the same parsers, keyed by the socket the SSL
 * object reads (SSL_get_rfd) and writes (SSL_get_wfd). A TLS object over
 * anything else (a memory BIO, as asyncio's, returns -1) or over a socket
 * that was not accepted (a client's: libpq with sslmode, an HTTPS call the
 * server makes) is left alone.
 *
 * Only libssl's public calls are hooked: SSL_read, SSL_read_ex, SSL_write,
 * SSL_write_ex, SSL_sendfile (kTLS), and for TLS 1.3 0-RTT the
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

#include <sys/types.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct ssl_st SSL;

enum { TL_read, TL_write, TL_get_rfd, TL_get_wfd, TL_REQUIRED, /* in every libssl */
       TL_read_ex = TL_REQUIRED, TL_write_ex, /* OpenSSL >= 1.1.1 */
       TL_read_early_data, TL_write_early_data,
       TL_sendfile,                           /* OpenSSL >= 3.0 */
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

/* f's function `name` (NULL when that copy lacks it). */
#define TLF(f, name) ((tl_##name##_fn)(f)[TL_##name])

static const char *const tl_names[TL_N] = {
	"SSL_read", "SSL_write", "SSL_get_rfd", "SSL_get_wfd",
	"SSL_read_ex", "SSL_write_ex", "SSL_read_early_data", "SSL_write_early_data",
	"SSL_sendfile",
};
EXPORT int SSL_read(SSL *, void *, int);
EXPORT int SSL_write(SSL *, const void *, int);
EXPORT int SSL_read_ex(SSL *, void *, size_t, size_t *);
EXPORT int SSL_write_ex(SSL *, const void *, size_t, size_t *);
EXPORT int SSL_read_early_data(SSL *, void *, size_t, size_t *);
EXPORT int SSL_write_early_data(SSL *, const void *, size_t, size_t *);
EXPORT ssize_t SSL_sendfile(SSL *, int, off_t, size_t, int);
_Static_assert(TL_N <= PL_COPY_MAXFN, "PL_COPY_MAXFN too small");
static const void *const tl_self[TL_N] = {
	[TL_read] = (const void *)SSL_read, [TL_write] = (const void *)SSL_write,
	[TL_read_ex] = (const void *)SSL_read_ex, [TL_write_ex] = (const void *)SSL_write_ex,
	[TL_read_early_data] = (const void *)SSL_read_early_data,
	[TL_write_early_data] = (const void *)SSL_write_early_data,
	[TL_sendfile] = (const void *)SSL_sendfile,
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
	int r = TLF(f, read)(s, buf, num);
	TL_LEAVE();
	if (r > 0)
		pl_conn_on_tls_read(TLF(f, get_rfd)(s), buf, r);
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
		pl_conn_on_tls_write(TLF(f, get_wfd)(s), buf, r);
	return r;
}

/*
 * The calls that report what moved through a size_t pointer, all one
 * shape: `int SSL_<name>(SSL *, buf, size_t num, size_t *moved)`, whose
 * result 1 means *moved bytes of buf moved (fed to `feed`, on the socket
 * `getfd` names); 0 when the copy lacks the function. SSL_read_ex and
 * SSL_write_ex; SSL_read_early_data (1 is SSL_READ_EARLY_DATA_SUCCESS; 2,
 * FINISH, moved nothing: the rest comes by SSL_read) and
 * SSL_write_early_data.
 */
#define TL_EX_HOOK(name, buf_t, feed, getfd) \
	EXPORT int SSL_##name(SSL *s, buf_t buf, size_t num, size_t *moved) \
	{ \
		void *const *f = TL_FNS(); \
		if (PL_UNLIKELY(!f || !TLF(f, name))) \
			return 0; \
		if (!followed()) \
			return TLF(f, name)(s, buf, num, moved); \
		TL_ENTER(f); \
		int r = TLF(f, name)(s, buf, num, moved); \
		TL_LEAVE(); \
		if (r == 1 && moved) \
			feed(TLF(f, getfd)(s), buf, (ssize_t)*moved); \
		return r; \
	}

TL_EX_HOOK(read_ex, void *, pl_conn_on_tls_read, get_rfd)
TL_EX_HOOK(write_ex, const void *, pl_conn_on_tls_write, get_wfd)
TL_EX_HOOK(read_early_data, void *, pl_conn_on_tls_read, get_rfd)
TL_EX_HOOK(write_early_data, const void *, pl_conn_on_tls_write, get_wfd)

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

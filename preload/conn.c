/*
 * conn.c - one accepted connection: from the bytes the host read and wrote
 * to request events.
 *
 * A connection record exists only while an HTTP message is in progress on
 * it; between messages the fd's table entry is PL_CONN_IDLE and costs no
 * memory, so thousands of idle keep-alive connections do not exhaust the
 * pool. Requests parsed but not yet answered wait in a small FIFO
 * (pipelining); the response parser always answers the oldest one.
 *
 * Locking: the table entry decides which connection an fd has. A hook loads
 * the entry, locks the connection, and checks the entry still points to it
 * (close may have detached it meanwhile); detaching is an atomic exchange
 * on the entry. Successive requests of one connection may come from
 * different threads (gunicorn gthread, Apache event), so nothing here is
 * thread-local.
 *
 * Aliases: dup, dup2, dup3 and fcntl(F_DUPFD) of a followed fd make the new
 * number another name of the same connection (BusyBox httpd reads fd 0 and
 * writes fd 1, both dup2'd from the accepted socket). Only a record can be
 * shared, so an idle candidate gets its record at the dup. Every table
 * entry pointing to a record is a reference to it, listed in its fds[]
 * (changed under its lock): whoever takes an entry away from the record
 * (an exchange or a successful compare-exchange) drops that reference, and
 * the one dropping the last gives the record back. The connection ends
 * (conn_finish()) when its last alias is closed, or on a shutdown of any.
 * An aliased record stays attached while idle: a record given back would
 * leave its aliases with no shared identity.
 */
#include "config.h"
#include "pl.h"
#include "ap_copy.h"
#include "ap_h2.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define PL_PIPELINE 4   /* requests awaiting their responses */
#define PL_ALIASES 3    /* numbers one connection may have at once
                           (BusyBox needs 2: the accepted one, then 0
                           and 1); a dup beyond them is not followed.
                           More would make the record 64 bytes larger. */

struct pl_conn {
	struct pl_pool_hdr hdr;     /* must come first (fdtable.c) */
	uint32_t fork_gen;          /* pl_fork_gen when this process last
	                               read or wrote it (conn_own()) */
	uint8_t nfds;               /* entries of fds[] in use, >= 1 */
	uint8_t in_msg;             /* a request's bytes are being parsed */
	uint8_t req_dead;           /* no more requests will be parsed */
	uint8_t resp_started;       /* ap_http_resp_begin done for the front */
	uint8_t qhead, qcount;
	/* Every number whose table entry points here (tracked fds are below
	 * PL_FD_CAP, so 16 bits hold them: the list fits in what was
	 * padding). fds[0] is the one requests are noted under (th_reqs). */
	uint16_t fds[PL_ALIASES];
	uint64_t cur_start_ns;
	uint64_t cur_in;
	struct pl_pending *cur;     /* the queue entry of the request being
	                               parsed, until it is answered; else NULL */
	union {
		struct { /* HTTP/1 */
			struct ap_http_req rq;
			struct ap_http_resp rs;
			struct pl_pending q[PL_PIPELINE];
		};
		struct pl_h2 *h2;   /* req_dead == REQ_H2: HTTP/2 (h2conn.c) */
		struct pl_fcgi fcgi; /* req_dead == REQ_FCGI: FastCGI (fcgiconn.c) */
	};
};
_Static_assert(PL_FD_CAP <= 65536, "pl_conn.fds holds tracked fds in 16 bits");
/* FastCGI's state must not make every record larger. */
_Static_assert(sizeof(struct pl_fcgi) <=
               sizeof(struct ap_http_req) + sizeof(struct ap_http_resp) +
               PL_PIPELINE * sizeof(struct pl_pending),
               "FastCGI's state fits in what HTTP/1 takes");

/* req_dead's value for an HTTP/2 connection: no HTTP/1 request is parsed,
 * the union holds the h2 state, and in_msg stays 1 so that the record is
 * kept between streams (its HPACK tables live as long as the connection). */
#define REQ_H2 2
/* req_dead's value for a FastCGI connection: the same, the union holding
 * the FastCGI state (one request at a time, never in q[], so qcount stays
 * 0). Every value from REQ_H2 up is a protocol of its own: what ends or
 * drops a connection asks one question for both. */
#define REQ_FCGI 3

/* Requests whose head (request line and headers) this thread read and
 * whose response has not yet completed here: SQL statements on this
 * thread belong to the one request, when there is exactly one. A request
 * whose head is still incomplete (a slow client, one that stalls after
 * its request line) is not noted: no handler runs for it yet, and on an
 * event loop it would leave every other request's statements to the
 * service alone. Entries are checked against their
 * connection before use, since a response may complete on another thread
 * (gunicorn gthread) or the connection may close. Initial-exec TLS.
 * `lost`: requests read here but forgotten, the list being full (an
 * event loop that reads many HTTP/2 streams at once), and not seen ending
 * since: they may still be in flight, so while any is, no statement is
 * given to a request (it might be one of them). Each request that ends
 * here unnoted, or noted but found ended elsewhere, takes one off. */
#define PL_THREAD_REQS 4
static __thread struct {
	int fd[PL_THREAD_REQS];
	uint64_t id[PL_THREAD_REQS];
	unsigned n;
	unsigned lost;
} th_reqs;

static void thread_drop_at(unsigned i);
static int conn_queues(const struct pl_conn *c, uint64_t id);
static inline struct pl_conn *record_of(struct pl_conn *e);

/* 1 when the request `id`, noted under fd, is over for certain: fd has no
 * record, or its record does not queue it. Asked from a hook that holds
 * the lock of `held` (NULL: of none that matters); another record is only
 * tried, and one locked elsewhere counts as still in flight. */
static int noted_over(int fd, uint64_t id, struct pl_conn *held)
{
	struct pl_conn **slot = pl_fd_entry(fd);
	struct pl_conn *e = slot ? __atomic_load_n(slot, __ATOMIC_ACQUIRE) : NULL;
	if (pl_conn_no_record(e))
		return 1;
	struct pl_conn *c = record_of(e);
	if (c == held)
		return !conn_queues(c, id);
	struct pl_pool_hdr *h = (struct pl_pool_hdr *)c;
	if (!pl_spin_trylock(&h->lock))
		return 0;
	int over = __atomic_load_n(slot, __ATOMIC_ACQUIRE) == e && !conn_queues(c, id);
	pl_spin_unlock(&h->lock);
	return over;
}

/* The list is full: first drop the requests that are over (ended on
 * other threads: a thread that reads requests that others answer would
 * otherwise fill its list with them, take every later one for a
 * forgotten one, and attribute nothing ever after); if none is, forget
 * the oldest, but not that it may still be in flight. */
static __attribute__((noinline)) void thread_make_room(struct pl_conn *held)
{
	for (unsigned i = 0; i < th_reqs.n;) {
		if (noted_over(th_reqs.fd[i], th_reqs.id[i], held))
			thread_drop_at(i);
		else
			i++;
	}
	if (th_reqs.n < PL_THREAD_REQS)
		return;
	memmove(&th_reqs.fd[0], &th_reqs.fd[1], sizeof th_reqs.fd[0] * (PL_THREAD_REQS - 1));
	memmove(&th_reqs.id[0], &th_reqs.id[1], sizeof th_reqs.id[0] * (PL_THREAD_REQS - 1));
	th_reqs.n--;
	th_reqs.lost++;
}

/* `held`: the connection whose lock the caller holds, or NULL. */
static inline __attribute__((always_inline)) void thread_adopt(int fd, uint64_t id,
                                                               struct pl_conn *held)
{
	if (PL_UNLIKELY(th_reqs.n == PL_THREAD_REQS))
		thread_make_room(held);
	th_reqs.fd[th_reqs.n] = fd;
	th_reqs.id[th_reqs.n] = id;
	th_reqs.n++;
}

static void thread_drop_at(unsigned i)
{
	th_reqs.n--;
	th_reqs.fd[i] = th_reqs.fd[th_reqs.n];
	th_reqs.id[i] = th_reqs.id[th_reqs.n];
}

static __attribute__((noinline)) void thread_release_scan(uint64_t id, const struct pl_conn *c)
{
	for (unsigned i = 0; i < th_reqs.n; i++)
		if (th_reqs.id[i] == id) {
			thread_drop_at(i);
			return;
		}
	/* An HTTP/1 request answered or closed before its head was complete
	 * (a 431, a client gone), or whose head the parser refused (the
	 * server's 400 answers it; in_msg is 0 then): no thread noted it.
	 * Only the request being parsed can be one. */
	if (c && c->cur && c->cur->id == id && ap_http_req_in_head(&c->rq))
		return;
	/* not noted here: one forgotten, if any was (or one read by another
	 * thread: then a forgotten one is taken for ended a little early) */
	if (th_reqs.lost)
		th_reqs.lost--;
}

/* The request ended: it stops being in flight on this thread. Usually it
 * is the thread's only one. `c`: its HTTP/1 connection (locked), or NULL. */
static inline void thread_release(uint64_t id, const struct pl_conn *c)
{
	if (PL_LIKELY(th_reqs.n == 1 && th_reqs.id[0] == id))
		th_reqs.n = 0;
	else
		thread_release_scan(id, c);
}

/* Bumped before every fork. After a fork, parent and child both hold the
 * connections that existed; the one that reads or writes a connection
 * from then on owns it (conn_own()). A close by a process that has not
 * touched it since the fork is not an abort: the parent of a
 * fork-per-connection server closing its copy, or a helper child (a
 * daemon, a subprocess before its exec) closing what it inherited while
 * the parent goes on serving. */
static uint32_t pl_fork_gen;
/* pl_fork_gen when this process was born of a fork (0: not a child). A
 * connection last touched at an older generation is its parent's (the
 * child never read or wrote it); one touched since by this process, or
 * by it before it forked (a request whose handler runs a subprocess), is
 * this process's to announce (pl_conn_announce()). */
static uint32_t born_gen;
/* Request ids, unique within a process. */
static uint64_t next_req_id;

size_t pl_conn_size(void)
{
	return (sizeof(struct pl_conn) + 63) & ~(size_t)63;
}

/* Lazily read clock, for conn_finish(): one read for every request a
 * close ends. */
static uint64_t now_of(uint64_t *now)
{
	if (*now == 0)
		*now = pl_now_ns();
	return *now;
}

/* ---- attaching connections to fds ---- */

/* This process reads or writes c (locked): it owns it from now on. One
 * load and a compare on every hooked call of a followed connection. */
static inline void conn_own(struct pl_conn *c)
{
	uint32_t gen = __atomic_load_n(&pl_fork_gen, __ATOMIC_RELAXED);
	if (PL_UNLIKELY(c->fork_gen != gen))
		c->fork_gen = gen;
}

static struct pl_conn *conn_new(int fd)
{
	struct pl_conn *c = pl_conn_alloc();
	if (!c)
		return NULL;
	c->nfds = 1;
	c->fds[0] = (uint16_t)fd;
	c->fork_gen = __atomic_load_n(&pl_fork_gen, __ATOMIC_RELAXED);
	c->in_msg = c->req_dead = c->resp_started = 0;
	c->cur = NULL;
	c->qhead = c->qcount = 0;
	ap_http_req_init(&c->rq);
	ap_http_resp_init(&c->rs);
	return c;
}

/* c (locked) stops being HTTP/2 or FastCGI: its state goes back, what
 * was in flight is dropped without events, and no request is parsed any
 * more. */
static __attribute__((noinline)) void proto_drop(struct pl_conn *c)
{
	uint8_t kind = c->req_dead;
	/* Marked first: the crash handler reads a record unlocked, and
	 * pl_h2_free() may unmap the state. */
	__atomic_store_n(&c->req_dead, 1, __ATOMIC_RELEASE);
	c->in_msg = 0;
	if (kind == REQ_H2)
		pl_h2_free(c->h2);
	else
		pl_fcgi_drop(&c->fcgi);
}

/* Every record goes back through here: an HTTP/2 one gives its state back
 * first. */
static void conn_release(struct pl_conn *c)
{
	if (PL_UNLIKELY(c->req_dead >= REQ_H2))
		proto_drop(c);
	pl_conn_release(c);
}

/* The new record n (locked) serves a connection that began with the
 * HTTP/2 preface. 0, or -1 when no HTTP/2 state is left (n is unchanged). */
static __attribute__((noinline)) int conn_become_h2(struct pl_conn *n)
{
	struct pl_h2 *h = pl_h2_new();
	if (!h)
		return -1;
	n->h2 = h;
	n->req_dead = REQ_H2;
	n->in_msg = 1;
	return 0;
}

/* The new record n (locked) serves a connection that began with a
 * FastCGI BEGIN_REQUEST record (php-fpm's, from nginx). Its state lives in
 * the record, so this cannot fail. */
static __attribute__((noinline, cold)) void conn_become_fcgi(struct pl_conn *n)
{
	pl_fcgi_init(&n->fcgi);
	n->req_dead = REQ_FCGI;
	n->in_msg = 1;
}

/* Which calls follow a connection: the socket's (0) or, for HTTP inside
 * TLS, the TLS library's (PL_CONN_TLS). An entry names its connection as
 * tagged(c, via); the functions below take `via` as a constant, so that
 * the socket's path compiles as if there were no tag. */
typedef uintptr_t conn_via;
#define VIA_SOCKET ((conn_via)0)
#define VIA_TLS ((conn_via)PL_CONN_TLS)

static inline struct pl_conn *tagged(struct pl_conn *c, conn_via via)
{
	return (struct pl_conn *)((uintptr_t)c | via);
}

/* The record an entry e names (!pl_conn_no_record(e)). */
static inline struct pl_conn *record_of(struct pl_conn *e)
{
	return (struct pl_conn *)((uintptr_t)e & ~PL_CONN_TLS);
}

/* The way entry e (one with a record) is followed. */
static inline conn_via via_of(const struct pl_conn *e)
{
	return (uintptr_t)e & PL_CONN_TLS;
}

/* The first byte of a TLS connection: a handshake record (ClientHello). No
 * HTTP/1.x request begins with it. */
#define TLS_HANDSHAKE 0x16

/*
 * Length of a PROXY protocol header (HAProxy's; version 1, text, or 2,
 * binary) whole at the start of p[0..n), else 0. A load balancer that
 * passes TCP through (HAProxy in TCP mode, AWS NLB, Envoy) sends one before
 * the client's first byte, so that a server with `proxy_protocol` on its
 * listener (nginx, Apache's RemoteIPProxyProtocol) learns the client's
 * address: its HTTP or TLS handshake follows. Servers read the header
 * whole (nginx peeks, then reads exactly its length), so one split across
 * reads is not recognised.
 */
static size_t proxy_header_len(const unsigned char *p, size_t n)
{
	static const unsigned char v2sig[12] = { '\r', '\n', '\r', '\n', 0, '\r', '\n',
	                                         'Q', 'U', 'I', 'T', '\n' };
	if (n >= 16 && memcmp(p, v2sig, sizeof v2sig) == 0 && (p[12] >> 4) == 2) {
		size_t len = 16 + ((size_t)p[14] << 8 | p[15]);
		return len <= n ? len : 0;
	}
	/* "PROXY TCP4 src dst sport dport\r\n", at most 107 bytes */
	if (n >= 8 && memcmp(p, "PROXY ", 6) == 0) {
		size_t max = n < 107 ? n : 107;
		for (size_t i = 6; i + 1 < max; i++)
			if (p[i] == '\r' && p[i + 1] == '\n')
				return i + 2;
	}
	return 0;
}

static void on_read_after_proxy(int fd, const unsigned char *p, size_t n);

/* conn_acquire() past its first look: the entry is idle (attach a new
 * connection when `create`), a TLS handshake (for VIA_TLS, the same), the
 * other kind's, or changed under us. `first`: the bytes read (firstn of
 * them, firstn > 0), for a socket read, else NULL: a TLS handshake on an idle entry
 * turns it into PL_CONN_TLS_HELLO, for the TLS library's calls to pick up;
 * a PROXY protocol header is skipped, and what follows it in the same read
 * is read again without it (NULL returned: the caller feeds nothing). */
static __attribute__((noinline)) struct pl_conn *
conn_acquire_slow(int fd, int create, struct pl_conn **slot, conn_via via,
                  const unsigned char *first, size_t firstn)
{
	struct pl_conn *const idle = tagged(PL_CONN_IDLE, via);
	for (int tries = 0; tries < 8; tries++) {
		struct pl_conn *e = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
		if (!e)
			return NULL;
		/* TLS takes over an accepted socket it reads: one whose handshake
		 * the socket's hooks saw, or did not (read some other way). */
		if (e == idle || (via == VIA_TLS && (e == PL_CONN_TLS_HELLO || e == PL_CONN_IDLE))) {
			if (!create)
				return NULL;
			if (via == VIA_SOCKET && first && *first == TLS_HANDSHAKE) {
				struct pl_conn *expect = e;
				__atomic_compare_exchange_n(slot, &expect, PL_CONN_TLS_HELLO, 0,
				                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
				/* a new TLS connection on fd: no SSL object of an
				 * earlier one's is bound to it now (its end may have
				 * gone unseen: a shutdown first), and its ClientHello
				 * is the thread's last TLS read (hook_ssl.c) */
				pl_tls_bio_forget(fd);
				pl_tls_read_fd = fd + 1;
				return NULL;
			}
			if (via == VIA_SOCKET && first && (*first == 'P' || *first == '\r')) {
				size_t h = proxy_header_len(first, firstn);
				if (h) {
					if (h < firstn)
						on_read_after_proxy(fd, first + h, firstn - h);
					return NULL;
				}
			}
			struct pl_conn *n = conn_new(fd);
			/* HTTP/2 with prior knowledge (h2c), or inside TLS after
			 * ALPN chose h2: the connection begins with the preface.
			 * "PRI " at least: a read of "P" alone may be a POST's. */
			if (n && first && *first == 'P' && firstn >= 4 && ap_h2_is_preface(first, firstn) &&
			    conn_become_h2(n) != 0) {
				pl_debug("fd %d: HTTP/2, but no HTTP/2 state is left: not followed", fd);
				pl_conn_release(n);
				n = NULL;
			}
			/* FastCGI (a php-fpm worker's connection from nginx): its
			 * first record is a BEGIN_REQUEST, and no HTTP/1 request
			 * begins with byte 1 */
			if (n && via == VIA_SOCKET && first && PL_UNLIKELY(*first == AP_FCGI_VERSION) &&
			    ap_fcgi_is_begin(first, firstn))
				conn_become_fcgi(n);
			if (!n) {
				struct pl_conn *expect = e;
				if (__atomic_compare_exchange_n(slot, &expect, NULL, 0,
				                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
					pl_ship_count_untracked();
				return NULL;
			}
			struct pl_conn *expect = e;
			if (__atomic_compare_exchange_n(slot, &expect, tagged(n, via), 0,
			                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				return n;
			conn_release(n);
			continue;
		}
		if (pl_conn_no_record(e) || via_of(e) != via)
			return NULL; /* the other kind's */
		struct pl_conn *c = record_of(e);
		pl_conn_lock(c);
		if (__atomic_load_n(slot, __ATOMIC_ACQUIRE) == e) {
			conn_own(c);
			return c;
		}
		pl_conn_unlock(c);
	}
	return NULL;
}

/* Returns fd's connection followed `via`, locked; when the entry is idle
 * and `create`, attaches a new one. NULL when fd is not followed this way
 * (or the pool is spent, in which case fd stops being followed). `slot`:
 * fd's entry. `first` and firstn: see conn_acquire_slow(). Inline for the
 * usual case, a keep-alive connection that already has its record: for
 * VIA_SOCKET, one compare as if there were no tags. */
static inline __attribute__((always_inline)) struct pl_conn *
conn_acquire_at(struct pl_conn **slot, int fd, int create, conn_via via,
                const unsigned char *first, size_t firstn)
{
	struct pl_conn *e = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	int followed = via == VIA_SOCKET ? (intptr_t)e > 1 : (uintptr_t)e > (uintptr_t)PL_CONN_TLS_IDLE;
	if (PL_LIKELY(followed)) {
		/* untagged: for VIA_SOCKET, nothing to do */
		struct pl_conn *c = (struct pl_conn *)((uintptr_t)e ^ via);
		pl_conn_lock(c);
		if (PL_LIKELY(__atomic_load_n(slot, __ATOMIC_ACQUIRE) == e)) {
			conn_own(c);
			return c;
		}
		pl_conn_unlock(c);
	}
	return conn_acquire_slow(fd, create, slot, via, first, firstn);
}

/* conn_acquire_at() for fd's entry, looked up here; *slotp becomes it. */
static inline __attribute__((always_inline)) struct pl_conn *
conn_acquire(int fd, int create, struct pl_conn ***slotp, conn_via via,
             const unsigned char *first, size_t firstn)
{
	struct pl_conn **slot = pl_fd_entry(fd);
	if (!slot)
		return NULL;
	*slotp = slot;
	return conn_acquire_at(slot, fd, create, via, first, firstn);
}

/* fd's connection, locked, as conn_acquire() finds it whichever way it
 * is followed, but not owned by this process (conn_own()): a dup or a
 * shutdown is not reading or writing, and a shutdown by a process that
 * has not touched the connection since a fork must not make its requests
 * its own. *ep: fd's entry (the record, tagged as it is followed). An
 * idle candidate gets a new record when `create`; an entry left to TLS
 * with no record yet (PL_CONN_TLS_HELLO, PL_CONN_TLS_IDLE) gives NULL. */
static struct pl_conn *conn_lock_fd(int fd, int create, struct pl_conn **ep)
{
	struct pl_conn **slot = pl_fd_entry(fd);
	if (!slot)
		return NULL;
	for (int tries = 0; tries < 8; tries++) {
		struct pl_conn *e = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
		if (e == PL_CONN_IDLE && create) {
			*ep = conn_acquire_slow(fd, 1, slot, VIA_SOCKET, NULL, 0); /* a new record */
			return *ep;
		}
		if (pl_conn_no_record(e))
			return NULL;
		struct pl_conn *c = record_of(e);
		pl_conn_lock(c);
		if (__atomic_load_n(slot, __ATOMIC_ACQUIRE) == e) {
			*ep = e;
			return c;
		}
		pl_conn_unlock(c);
	}
	return NULL;
}

/* Detaches whatever fd had; returns the connection (locked) if it had one,
 * followed either way. */
static struct pl_conn *conn_detach(int fd)
{
	struct pl_conn **slot = pl_fd_entry(fd);
	if (!slot)
		return NULL;
	struct pl_conn *e = __atomic_exchange_n(slot, NULL, __ATOMIC_ACQ_REL);
	if (pl_conn_no_record(e))
		return NULL;
	struct pl_conn *c = record_of(e);
	pl_conn_lock(c);
	return c;
}

/* fd's entry no longer points to c (locked): its reference is dropped.
 * Returns how many aliases remain; at 0 the caller owns c alone. */
static unsigned conn_unalias(struct pl_conn *c, int fd)
{
	for (unsigned i = 0; i < c->nfds; i++)
		if (c->fds[i] == fd) {
			/* the last takes its place: fds[0] stays an open number */
			c->fds[i] = c->fds[--c->nfds];
			break;
		}
	return c->nfds;
}

/* conn_unalias(), then c goes back to the pool if that was its last
 * reference, else is unlocked: an entry forgotten with no more to say. */
static void conn_drop_ref(struct pl_conn *c, int fd)
{
	if (conn_unalias(c, fd) == 0)
		conn_release(c);
	else
		pl_conn_unlock(c);
}

/* Takes c (locked) away from every entry still pointing to it; gives it
 * back to the pool if no reference is left (an entry detached meanwhile
 * by a close is its closer's to drop), else unlocks it. */
static void conn_unalias_all(struct pl_conn *c)
{
	for (unsigned i = 0; i < c->nfds;) {
		struct pl_conn **slot = pl_fd_entry(c->fds[i]);
		/* every alias is followed the same way: c, tagged or not */
		struct pl_conn *e = slot ? __atomic_load_n(slot, __ATOMIC_ACQUIRE) : NULL;
		if (!pl_conn_no_record(e) && record_of(e) == c &&
		    __atomic_compare_exchange_n(slot, &e, NULL, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			conn_unalias(c, c->fds[i]); /* fds[i] now holds another */
		else
			i++;
	}
	if (c->nfds == 0)
		conn_release(c);
	else
		pl_conn_unlock(c);
}

/* conn_put() for a connection with nothing in progress that must give
 * its record back. An aliased one keeps it unless it is no longer
 * followed: its aliases share the connection only through the record. */
static __attribute__((noinline)) void conn_put_back(struct pl_conn **slot, struct pl_conn *c,
                                                    conn_via via)
{
	if (PL_UNLIKELY(c->nfds > 1)) {
		if (c->req_dead)
			conn_unalias_all(c);
		else
			pl_conn_unlock(c);
		return;
	}
	struct pl_conn *expect = tagged(c, via);
	if (__atomic_compare_exchange_n(slot, &expect, c->req_dead ? NULL : tagged(PL_CONN_IDLE, via),
	                                0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		conn_release(c);
	else
		pl_conn_unlock(c);
}

/* Ends a hook's work on c (locked), found at `slot`. A connection with
 * nothing in progress keeps its record for the next keep-alive request
 * (no allocation per request) unless the pool is crowded: then it goes
 * back and the fd to idle, so idle connections never starve busy ones. One
 * that can no longer be followed is dropped from the table. Inline: it
 * ends every hooked call. */
static inline __attribute__((always_inline)) void conn_put(struct pl_conn **slot, struct pl_conn *c,
                                                          conn_via via)
{
	if (c->qcount == 0 && !c->in_msg && !c->resp_started &&
	    PL_UNLIKELY(c->req_dead || pl_conn_pool_crowded()))
		conn_put_back(slot, c, via);
	else
		pl_conn_unlock(c);
}

/* ---- events ---- */

/* Appends r's record to the buffer, encoded once, straight into it.
 * `msg`: the scrubbed start of a 5xx body, or NULL and 0. The record is
 * described only after the reservation, so that the inlined encoder reads
 * each field where it is instead of from a copy kept across the call. */
/* The wire record of r, ended at end_ns by thread tid with `flags`;
 * `msg`: the scrubbed start of a 5xx body, or NULL and 0. */
static inline __attribute__((always_inline)) struct ap_rec_request
request_record(const struct pl_pending *r, uint64_t end_ns, uint32_t tid, uint16_t flags,
               const char *msg, size_t mlen)
{
	return (struct ap_rec_request){
		.req_id = r->id,
		.start_ns = r->start_ns,
		.end_ns = end_ns,
		.bytes_in = r->bytes_in,
		.bytes_out = r->bytes_out,
		.tid = tid,
		.status = r->status,
		.flags = flags,
		.method = { r->method, r->method_len },
		.path = { r->path, r->path_len },
		.message = { msg, (uint16_t)mlen },
	};
}

static inline __attribute__((always_inline)) void
ship_request(const struct pl_pending *r, uint64_t end_ns, uint16_t flags, const char *msg,
             size_t mlen)
{
	uint32_t tid = pl_tid();
	uint8_t *out = pl_ship_reserve(ap_wire_request_size_of(r->method_len, r->path_len, mlen));
	if (!out)
		return;
	struct ap_rec_request ev = request_record(r, end_ns, tid, flags, msg, mlen);
	_Static_assert(sizeof r->method >= 16 && sizeof r->path >= 32,
	               "ap_wire_put_request_padded() reads 16 and 32 bytes");
	pl_ship_commit(ap_wire_put_request_padded(out, &ev));
}

/* ship_request() for a 5xx response: its body's start goes along,
 * scrubbed. Out of line: its buffer stays off emit()'s frame. */
static __attribute__((noinline)) void ship_request_5xx(const struct pl_conn *c,
                                                       const struct pl_pending *r,
                                                       uint64_t end_ns, uint16_t flags)
{
	char msg[AP_HTTP_ERRBODY_MAX];
	size_t mlen = pl_scrub_http_body(c->rs.errbody, c->rs.errbody_len, msg, sizeof msg);
	ship_request(r, end_ns, flags, msg, mlen);
}

/* What every request's end does before its event: its statements must
 * reach the wire before it does, and it is no longer in flight here.
 * `c`: its HTTP/1 connection (locked, r still queued), or NULL. */
static inline __attribute__((always_inline)) void request_ending(struct pl_pending *r,
                                                                 const struct pl_conn *c)
{
	pl_mysql_flush_thread();
	thread_release(r->id, c);
	if (PL_UNLIKELY(r->prof)) {
		pl_prof_end(r->prof, r->id);
		r->prof = 0;
	}
}

void pl_request_end(struct pl_pending *r, uint64_t end_ns, uint16_t extra, const char *body,
                    size_t blen)
{
	request_ending(r, NULL);
	uint16_t flags = (uint16_t)(r->flags | extra);
	if (r->status >= 500 && !(extra & AP_REQF_ABORTED) && blen) {
		char msg[AP_HTTP_ERRBODY_MAX];
		size_t mlen = pl_scrub_http_body(body, blen, msg, sizeof msg);
		ship_request(r, end_ns, flags, msg, mlen);
	} else {
		ship_request(r, end_ns, flags, NULL, 0);
	}
}

/* r, of c (locked), ended at end_ns: its event. Inline in the response
 * loop (and in conn_finish()): as a call it cost that loop 9 instructions
 * a request more, its six register saves among them. */
static inline __attribute__((always_inline)) void
emit(struct pl_conn *c, struct pl_pending *r, uint64_t end_ns, uint16_t extra_flags)
{
	request_ending(r, c);
	uint16_t flags = (uint16_t)(r->flags | extra_flags);
	if (PL_UNLIKELY(r->status >= 500) && !(extra_flags & AP_REQF_ABORTED))
		ship_request_5xx(c, r, end_ns, flags);
	else
		ship_request(r, end_ns, flags, NULL, 0);
}

static struct pl_pending *q_front(struct pl_conn *c)
{
	return &c->q[c->qhead];
}

/* The k-th request of c's queue, from its front (k < c->qcount). */
static inline const struct pl_pending *q_at(const struct pl_conn *c, unsigned k)
{
	return &c->q[(c->qhead + k) % PL_PIPELINE];
}

static void q_pop(struct pl_conn *c)
{
	if (c->cur == q_front(c))
		c->cur = NULL; /* answered: later body bytes are counted nowhere */
	c->qhead = (uint8_t)((c->qhead + 1) % PL_PIPELINE);
	c->qcount--;
}

/*
 * Index in t[0..n) of the first byte that ends the path: '?' or '#', or
 * only '#' when the query string is kept; n if there is none. t is the
 * parser's target array, AP_HTTP_TARGET_MAX bytes, so the 16-byte loads
 * that pass n stay inside it (what they see there is masked off). glibc's
 * memchr costs about 18 instructions a call, and this replaces two.
 */
static size_t path_end(const char *t, size_t n, int keep_query)
{
	_Static_assert(AP_HTTP_TARGET_MAX % 16 == 0, "path_end reads whole 16-byte blocks");
#ifdef __SSE2__
	/* the second stop byte, from a table: building it costs 8 instructions */
	static const char stops[2][16] __attribute__((aligned(16))) = {
		{ '?', '?', '?', '?', '?', '?', '?', '?', '?', '?', '?', '?', '?', '?', '?', '?' },
		{ '#', '#', '#', '#', '#', '#', '#', '#', '#', '#', '#', '#', '#', '#', '#', '#' },
	};
	const __m128i hash = _mm_set1_epi8('#');
	const __m128i stop = _mm_load_si128((const __m128i *)stops[keep_query != 0]);
	for (size_t i = 0; i < n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(t + i));
		unsigned m = (unsigned)_mm_movemask_epi8(
			_mm_or_si128(_mm_cmpeq_epi8(v, hash), _mm_cmpeq_epi8(v, stop)));
		if (m) {
			size_t k = i + (unsigned)__builtin_ctz(m);
			return k < n ? k : n;
		}
	}
	return n;
#else
	const char *h = memchr(t, '#', n);
	size_t end = h ? (size_t)(h - t) : n;
	const char *q = keep_query ? NULL : memchr(t, '?', end);
	return q ? (size_t)(q - t) : end;
#endif
}

/* What r's response answers (enum ap_http_answers): a response to HEAD has
 * no body, nor has a 2xx to CONNECT, after which the connection is a
 * tunnel. */
static inline __attribute__((always_inline)) int answers_of(const struct pl_pending *r)
{
	uint32_t m;
	memcpy(&m, r->method, 4);
	if (r->method_len == 4 && memcmp(&m, "HEAD", 4) == 0)
		return AP_HTTP_ANSWERS_HEAD;
	if (PL_UNLIKELY(r->method_len == 7) && memcmp(r->method, "CONNECT", 7) == 0)
		return AP_HTTP_ANSWERS_CONNECT;
	return AP_HTTP_ANSWERS_OTHER;
}

/* pl_request_open() but the noting, inline in q_push(): an HTTP/1 request
 * is noted in flight on its thread once its head is complete. */
static inline __attribute__((always_inline)) void
request_fill(struct pl_pending *r, const char *method, size_t mlen, const char *t, size_t n,
             int truncated)
{
	uint64_t id = __atomic_add_fetch(&next_req_id, 1, __ATOMIC_RELAXED);
	r->id = id;
	/* whole fixed-size arrays: one or two moves instead of a memcpy call */
	memcpy(r->method, method, sizeof r->method);

	/* The query string (and any fragment) never leaves the process unless
	 * APIPROF_CAPTURE_QUERY_STRING=1: it may hold tokens and personal data. */
	int keep = pl_cfg.capture_query;
	size_t cut = path_end(t, n, keep);
	uint16_t flags = keep ? AP_REQF_QUERY_KEPT : 0;
	if (truncated && cut == n)
		flags |= AP_REQF_TARGET_TRUNCATED;
	if (cut > PL_PATH_MAX) {
		cut = PL_PATH_MAX;
		flags |= AP_REQF_TARGET_TRUNCATED;
	}
	/* t has AP_HTTP_TARGET_MAX readable bytes, r->path PL_PATH_MAX >= 32 */
	ap_copy_padded(r->path, t, cut, AP_HTTP_TARGET_MAX);
	r->status = 0;
	r->flags = flags;
	r->prof = 0;
	r->method_len = (uint8_t)mlen;
	r->path_len = (uint16_t)cut;
}

void pl_request_open(struct pl_pending *r, int fd, const char *method, size_t mlen,
                     const char *target, size_t tlen, int truncated)
{
	request_fill(r, method, mlen, target, tlen, truncated);
	thread_adopt(fd, r->id, NULL);
	/* an inherited HTTP/2 or FastCGI connection's first request (crash.c),
	 * or the process's first (ship.c) */
	if (PL_UNLIKELY(__atomic_load_n(&pl_crash_pending, __ATOMIC_RELAXED)))
		pl_request_first(NULL, 0);
}

/* The request line is complete: queue the request. Inline in
 * feed_request(): the call cost 6 instructions a request more. */
static inline __attribute__((always_inline)) void q_push(struct pl_conn *c)
{
	if (PL_UNLIKELY(c->qcount == PL_PIPELINE)) {
		/* Deeper pipelining than we follow: responses could no longer be
		 * matched to requests, so stop parsing this connection's requests. */
		c->req_dead = 1;
		c->cur = NULL;
		return;
	}
	_Static_assert((PL_PIPELINE & (PL_PIPELINE - 1)) == 0, "a power of two");
	unsigned back = ((unsigned)c->qhead + c->qcount) & (PL_PIPELINE - 1);
	c->qcount++;
	struct pl_pending *r = c->q + back;
	r->start_ns = c->cur_start_ns;
	r->bytes_in = c->cur_in;
	r->bytes_out = 0;
	request_fill(r, c->rq.method, c->rq.method_len, c->rq.target, c->rq.target_len,
	             c->rq.target_truncated);
	c->cur = r;
}

/* Inline in its two callers: a call's register saves cost as much as a
 * keep-alive request's bookkeeping here. */
static inline __attribute__((always_inline)) void
feed_request(struct pl_conn *c, const char *p, size_t n)
{
	while (!c->req_dead) {
		if (!c->in_msg) {
			if (n == 0)
				return;
			c->in_msg = 1;
			c->cur = NULL;
			c->cur_in = 0;
			/* read here, once per request: a cache for pipelined
			 * requests would keep a register busy in the usual case */
			c->cur_start_ns = pl_now_ns();
			/* an inherited connection's first request (crash.c), or
			 * the process's first (ship.c) */
			if (PL_UNLIKELY(__atomic_load_n(&pl_crash_pending, __ATOMIC_RELAXED)))
				pl_request_first(p, n);
		}
		enum ap_http_ev ev;
		/* a whole head in one call (HEAD_DONE), when it is in p */
		size_t used = ap_http_req_feed_head(&c->rq, p, n, &ev);
		p += used;
		n -= used;
		c->cur_in += used;
		/* Body bytes read after the request was queued are its own; once it
		 * has been answered they are counted nowhere. */
		if (c->cur)
			c->cur->bytes_in += used;
		/* Tests in the order of a bodyless request's events, cheaper than
		 * the switch's jump table. HEAD_DONE is START_LINE and then
		 * HEADERS_DONE, from one call. */
		if (ev == AP_HTTP_HEAD_DONE || ev == AP_HTTP_HEADERS_DONE) {
			if (ev == AP_HTTP_HEAD_DONE)
				q_push(c);
			if (c->cur) {
				struct pl_pending *r = c->cur;
				/* its head is complete: in flight on this thread */
				thread_adopt(c->fds[0], r->id, c);
				if (c->rq.profile)
					r->flags |= AP_REQF_PROFILE;
				/* The serving thread's CPU is sampled from here to the
				 * end of the response. */
				if (pl_prof_want(c->rq.profile))
					r->prof = (uint8_t)pl_prof_begin(r->id, c->rq.profile, r->method,
					                                 r->method_len, r->path, r->path_len);
			}
			if (ap_http_req_end_bodyless(&c->rq)) {
				c->in_msg = 0; /* its MSG_DONE, without another call */
				if (n == 0)
					return;
			}
		} else if (ev == AP_HTTP_START_LINE) {
			q_push(c);
		} else if (ev == AP_HTTP_NEED_MORE) {
			return;
		} else if (ev == AP_HTTP_MSG_DONE) {
			c->in_msg = 0;
		} else {
			/* AP_HTTP_ERROR. Not HTTP/1.x (or framing we cannot follow):
			 * requests already queued still get their responses; nothing
			 * more is parsed. */
			c->req_dead = 1;
			c->in_msg = 0;
			break;
		}
	}
	/* Bytes read after a head or body we could not follow belong to the
	 * request it is, while unanswered: bytes_in is what the server read
	 * until its response ended (Tomcat reads a head with a malformed
	 * header line whole, then answers 400). */
	if (c->req_dead == 1) {
		if (c->cur)
			c->cur->bytes_in += n;
		return;
	}
	/* req_dead: conn_put() stops following one that fails */
	if (PL_UNLIKELY(c->req_dead == REQ_H2) && pl_h2_read(c->h2, c->fds[0], (const uint8_t *)p, n) < 0)
		proto_drop(c);
	else if (PL_UNLIKELY(c->req_dead == REQ_FCGI) &&
	         pl_fcgi_read(&c->fcgi, c->fds[0], (const uint8_t *)p, n) < 0)
		proto_drop(c);
}

/* A 1xx but 101: an interim response (100 Continue, 103 Early Hints), never
 * the request's status, also when the connection ends before the final one
 * (as over HTTP/2, where a stream's status is its first final one). */
static inline int interim_status(int status)
{
	return status >= 100 && status < 200 && status != 101;
}

/* Returns 0 normally, -1 when the connection must stop being followed
 * (101 Switching Protocols, a 2xx to CONNECT, or a response we cannot parse). */
static inline __attribute__((always_inline)) int
feed_response(struct pl_conn *c, const char *p, size_t n)
{
	if (PL_UNLIKELY(c->qcount == 0)) {
		/* HTTP/2 and FastCGI here, where an HTTP/1 response costs
		 * nothing more: it always has a request to answer. Two
		 * tests, each as HTTP/2's alone was: one test and a shared
		 * call for both compiled HTTP/1's response loop (nginx's
		 * writev) with 2 more instructions per request. */
		if (PL_UNLIKELY(c->req_dead == REQ_H2) &&
		    pl_h2_write(c->h2, (const uint8_t *)p, n) < 0) {
			proto_drop(c);
			return -1;
		}
		if (PL_UNLIKELY(c->req_dead == REQ_FCGI) &&
		    pl_fcgi_write(&c->fcgi, (const uint8_t *)p, n) < 0) {
			proto_drop(c);
			return -1;
		}
		/* Bytes with no request to answer (a greeting, or a reply to a
		 * request line we never saw complete, such as nginx's 414): not
		 * a request. */
		return 0;
	}
	do {
		struct pl_pending *r = q_front(c);
		if (!c->resp_started) {
			if (n == 0)
				return 0;
			ap_http_resp_begin(&c->rs, answers_of(r));
			c->resp_started = 1;
		}
		enum ap_http_ev ev;
		size_t used = ap_http_resp_feed_to_end(&c->rs, p, n, &ev);
		p += used;
		n -= used;
		r->bytes_out += used;
		switch (ev) {
		case AP_HTTP_MSG_DONE:
			c->resp_started = 0;
			if (interim_status(c->rs.status))
				break; /* interim (100 Continue): the final one follows */
			r->status = c->rs.status;
			emit(c, r, pl_now_ns(), 0);
			q_pop(c);
			if (PL_UNLIKELY(ap_http_resp_tunnels(&c->rs)))
				return -1; /* no longer HTTP: a 101, or a CONNECT's 2xx */
			break;
		case AP_HTTP_ERROR:
			return -1;
		default: /* NEED_MORE: ap_http_resp_feed_to_end() reports nothing else */
			return 0;
		}
	} while (c->qcount);
	return 0;
}

/* The connection ends (close or shutdown for writing): a response running
 * until close is complete, every other unanswered request is aborted. */
static void conn_finish(struct pl_conn *c)
{
	uint64_t now = 0;
	int shared = c->fork_gen != __atomic_load_n(&pl_fork_gen, __ATOMIC_RELAXED);
	while (c->qcount) {
		struct pl_pending *r = q_front(c);
		if (c->resp_started && ap_http_resp_status_seen(&c->rs) &&
		    !interim_status(c->rs.status))
			r->status = c->rs.status;
		if (!shared) {
			int complete = c->resp_started && ap_http_resp_eof(&c->rs);
			emit(c, r, now_of(&now), complete ? 0 : AP_REQF_ABORTED);
		}
		c->resp_started = 0;
		q_pop(c);
	}
	if (PL_UNLIKELY(c->req_dead >= REQ_H2)) {
		if (c->req_dead == REQ_H2)
			pl_h2_finish(c->h2, shared);
		else
			pl_fcgi_finish(&c->fcgi, shared);
		proto_drop(c);
	}
	c->in_msg = 0;
}

/* ---- entry points from the hooks ---- */

void pl_conn_on_accept(int fd)
{
	if (pl_cfg.n_ports) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
			return;
		unsigned port;
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		else
			return;
		unsigned i;
		for (i = 0; i < pl_cfg.n_ports && pl_cfg.ports[i] != port; i++)
			;
		if (i == pl_cfg.n_ports)
			return;
	}
	struct pl_conn **slot = pl_fd_slot(fd, 1);
	if (!slot)
		return;
	struct pl_conn *old = __atomic_exchange_n(slot, PL_CONN_IDLE, __ATOMIC_ACQ_REL);
	if (!pl_conn_no_record(old)) {
		/* We missed this number's close (a raw syscall): forget quietly. */
		struct pl_conn *c = record_of(old);
		pl_conn_lock(c);
		conn_drop_ref(c, fd);
	}
}

void pl_conn_forget(int fd)
{
	struct pl_conn *c = conn_detach(fd);
	if (c)
		conn_drop_ref(c, fd);
}

/* The bytes of a read on fd, whose entry is at `slot`. */
static inline __attribute__((always_inline)) void
on_read_at(struct pl_conn **slot, int fd, const void *buf, size_t n, conn_via via)
{
	struct pl_conn *c = conn_acquire_at(slot, fd, 1, via, buf, n);
	if (!c)
		return;
	feed_request(c, buf, n);
	conn_put(slot, c, via);
}

static inline __attribute__((always_inline)) void
on_read(int fd, const void *buf, size_t n, conn_via via)
{
	struct pl_conn **slot = pl_fd_entry(fd);
	if (slot)
		on_read_at(slot, fd, buf, n, via);
}

/* The rest of a socket read after its PROXY protocol header
 * (conn_acquire_slow()), read as if it came alone. */
static __attribute__((noinline)) void on_read_after_proxy(int fd, const unsigned char *p, size_t n)
{
	on_read(fd, p, n, VIA_SOCKET);
}

static inline __attribute__((always_inline)) void
on_readv(int fd, const struct iovec *iov, int iovcnt, size_t n)
{
	struct pl_conn **slot;
	struct pl_conn *c = conn_acquire(fd, 1, &slot, VIA_SOCKET, NULL, 0);
	if (!c)
		return;
	for (int i = 0; i < iovcnt && n; i++) {
		size_t take = iov[i].iov_len < n ? iov[i].iov_len : n;
		feed_request(c, iov[i].iov_base, take);
		n -= take;
	}
	conn_put(slot, c, VIA_SOCKET);
}

/* c (locked), found at `slot` followed `via`, can no longer be followed:
 * every alias stops, silently. */
static void stop_following(struct pl_conn **slot, struct pl_conn *c, conn_via via)
{
	if (PL_UNLIKELY(c->req_dead >= REQ_H2))
		proto_drop(c);
	for (unsigned i = 0; i < c->qcount; i++) {
		const struct pl_pending *r = q_at(c, i);
		if (r->prof)
			pl_prof_end(r->prof, r->id);
	}
	c->qcount = 0;
	c->cur = NULL;
	if (PL_UNLIKELY(c->nfds > 1)) {
		c->in_msg = c->resp_started = 0;
		c->req_dead = 1;
		conn_unalias_all(c);
		return;
	}
	struct pl_conn *expect = tagged(c, via);
	if (__atomic_compare_exchange_n(slot, &expect, NULL, 0,
	                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		conn_release(c);
	else
		pl_conn_unlock(c);
}

/* The bytes of a write on fd, whose entry is at `slot`. */
static inline __attribute__((always_inline)) void
on_write_at(struct pl_conn **slot, int fd, const void *buf, size_t n, conn_via via)
{
	struct pl_conn *c = conn_acquire_at(slot, fd, 0, via, NULL, 0);
	if (!c)
		return;
	if (feed_response(c, buf, n) < 0)
		stop_following(slot, c, via);
	else
		conn_put(slot, c, via);
}

static inline __attribute__((always_inline)) void
on_write(int fd, const void *buf, size_t n, conn_via via)
{
	struct pl_conn **slot = pl_fd_entry(fd);
	if (slot)
		on_write_at(slot, fd, buf, n, via);
}

static inline __attribute__((always_inline)) void
on_writev_at(struct pl_conn **slot, int fd, const struct iovec *iov, int iovcnt, size_t n)
{
	struct pl_conn *c = conn_acquire_at(slot, fd, 0, VIA_SOCKET, NULL, 0);
	if (!c)
		return;
	/* n > 0 bytes moved, so iovcnt > 0; the loop ends by n unless the host
	 * changed the iovecs meanwhile */
	for (const struct iovec *v = iov; iovcnt-- > 0; v++) {
		size_t take = v->iov_len < n ? v->iov_len : n;
		if (feed_response(c, v->iov_base, take) < 0) {
			stop_following(slot, c, VIA_SOCKET);
			return;
		}
		n -= take;
		if (n == 0)
			break;
	}
	conn_put(slot, c, VIA_SOCKET);
}

/* The hooks' entry points: the bytes a call moved (r > 0) feed the
 * connection, with errno saved here rather than in the hook, so that the
 * work shares this one frame. Each fed_*() is inlined into the entry
 * points of its direction. A call made by a signal handler that
 * interrupted the preload's work on this thread feeds nothing: fd is
 * noted, and stops being followed once that work ends (pl_enter()). */
#define FEED_MOVED(r, fd, work) \
	do { \
		if ((r) > 0) { \
			int saved_ = errno; \
			if (PL_LIKELY(pl_enter())) { \
				work; \
				pl_leave_entered(); \
			} else { \
				pl_missed(fd); \
			} \
			errno = saved_; \
		} \
		return (r); \
	} while (0)

ssize_t pl_conn_on_read(int fd, const void *buf, ssize_t r)
{
	FEED_MOVED(r, fd, on_read(fd, buf, (size_t)r, VIA_SOCKET));
}

ssize_t pl_conn_on_readv(int fd, const struct iovec *iov, int iovcnt, ssize_t r)
{
	FEED_MOVED(r, fd, on_readv(fd, iov, iovcnt, (size_t)r));
}

ssize_t pl_conn_on_write(int fd, const void *buf, ssize_t r)
{
	FEED_MOVED(r, fd, on_write(fd, buf, (size_t)r, VIA_SOCKET));
}

ssize_t pl_conn_on_writev(int fd, const struct iovec *iov, int iovcnt, ssize_t r)
{
	struct pl_conn **slot = pl_fd_entry(fd);
	if (!slot)
		return r;
	FEED_MOVED(r, fd, on_writev_at(slot, fd, iov, iovcnt, (size_t)r));
}

/* The calls servers make most, made here rather than in the hook: the
 * hook is then a tail call, and the arguments wait out the real call in
 * this frame's registers instead of the hook's stack. pl_real is resolved:
 * fd was accepted through our accept hook, which resolved every pointer
 * first. */
static inline __attribute__((always_inline)) ssize_t
fed_read(struct pl_conn **slot, int fd, const void *buf, ssize_t r)
{
	FEED_MOVED(r, fd, on_read_at(slot, fd, buf, (size_t)r, VIA_SOCKET));
}

static inline __attribute__((always_inline)) ssize_t
fed_write(struct pl_conn **slot, int fd, const void *buf, ssize_t r)
{
	FEED_MOVED(r, fd, on_write_at(slot, fd, buf, (size_t)r, VIA_SOCKET));
}

ssize_t pl_conn_read(int fd, void *buf, size_t n, struct pl_conn **slot)
{
	return fed_read(slot, fd, buf, pl_real.read(fd, buf, n));
}

ssize_t pl_conn_recv(int fd, void *buf, size_t n, int flags, struct pl_conn **slot)
{
	return fed_read(slot, fd, buf, pl_real.recv(fd, buf, n, flags));
}

ssize_t pl_conn_write(int fd, const void *buf, size_t n, struct pl_conn **slot)
{
	return fed_write(slot, fd, buf, pl_real.write(fd, buf, n));
}

ssize_t pl_conn_send(int fd, const void *buf, size_t n, int flags, struct pl_conn **slot)
{
	return fed_write(slot, fd, buf, pl_real.send(fd, buf, n, flags));
}

ssize_t pl_conn_writev(int fd, const struct iovec *iov, int iovcnt, struct pl_conn **slot)
{
	ssize_t r = pl_real.writev(fd, iov, iovcnt);
	FEED_MOVED(r, fd, on_writev_at(slot, fd, iov, iovcnt, (size_t)r));
}

/* sendfile() bytes are body bytes we never see: the parser only counts
 * them (in chunked data or Content-Length state it does not look at body
 * content), so feed it zeros. */
static void on_sendfile(int fd, size_t n, conn_via via)
{
	static const char zeros[4096];
	struct pl_conn **slot;
	struct pl_conn *c = conn_acquire(fd, 0, &slot, via, NULL, 0);
	if (!c)
		return;
	while (n) {
		size_t take = n < sizeof zeros ? n : sizeof zeros;
		if (feed_response(c, zeros, take) < 0) {
			stop_following(slot, c, via);
			return;
		}
		n -= take;
	}
	conn_put(slot, c, via);
}

void pl_conn_on_sendfile(int fd, size_t n)
{
	on_sendfile(fd, n, VIA_SOCKET);
}

/* The TLS library's calls (hook_ssl.c): plaintext, on fd's connection when
 * its socket began with a TLS handshake. Out of the socket's way: its
 * hooks see only the ciphertext and take the entry for untracked. */
ssize_t pl_conn_on_tls_read(int fd, const void *buf, ssize_t r)
{
	if (pl_fd_get(fd) == NULL)
		return r; /* not accepted: a TLS client's connection (libpq's, say) */
	FEED_MOVED(r, fd, on_read(fd, buf, (size_t)r, VIA_TLS));
}

ssize_t pl_conn_on_tls_write(int fd, const void *buf, ssize_t r)
{
	if (pl_fd_get(fd) == NULL)
		return r;
	FEED_MOVED(r, fd, on_write(fd, buf, (size_t)r, VIA_TLS));
}

ssize_t pl_conn_on_tls_sendfile(int fd, ssize_t r)
{
	if (pl_fd_get(fd) == NULL)
		return r;
	FEED_MOVED(r, fd, on_sendfile(fd, (size_t)r, VIA_TLS));
}

void pl_conn_on_close(int fd)
{
	pl_tls_bio_forget(fd);
	struct pl_conn *c = conn_detach(fd);
	if (!c)
		return;
	if (PL_UNLIKELY(conn_unalias(c, fd) != 0)) {
		/* another number still serves the connection */
		pl_conn_unlock(c);
		return;
	}
	conn_finish(c);
	conn_release(c);
}

void pl_conn_on_shutdown(int fd, int how)
{
	if (how != SHUT_WR && how != SHUT_RDWR)
		return;
	/* Nothing more can be written: the connection is over for us, under
	 * every number, even though its fds stay open until close. */
	struct pl_conn *e;
	struct pl_conn *c = conn_lock_fd(fd, 0, &e);
	if (!c) {
		pl_conn_forget(fd); /* idle, or changed under us */
		return;
	}
	conn_finish(c);
	c->req_dead = 1;
	conn_unalias_all(c);
}

void pl_conn_on_tcp_info(int fd)
{
	struct pl_conn *e;
	struct pl_conn *c = conn_lock_fd(fd, 0, &e);
	if (!c)
		return;
	/* HTTP/1 only (an HTTP/2 or FastCGI connection's requests are not
	 * served one after the other), the oldest unanswered request, once
	 * its head is complete: what the pool thread is about to serve. */
	if (c->req_dead < REQ_H2 && c->qcount > 0) {
		const struct pl_pending *r = q_at(c, 0);
		if (r != c->cur || !ap_http_req_in_head(&c->rq)) {
			unsigned i = 0;
			while (i < th_reqs.n && th_reqs.id[i] != r->id)
				i++;
			if (i == th_reqs.n)
				thread_adopt(fd, r->id, c);
		}
	}
	pl_conn_unlock(c);
}

void pl_conn_stop(int fd)
{
	struct pl_conn *e;
	struct pl_conn *c = conn_lock_fd(fd, 0, &e);
	if (c)
		stop_following(pl_fd_entry(fd), c, via_of(e));
	else
		pl_conn_forget(fd);
}

void pl_conn_on_dup(int old, int new_fd)
{
	struct pl_conn **nslot = pl_fd_slot(new_fd, 1);
	if (!nslot)
		return;
	/* Whatever the new number had is stale: the kernel just gave it to
	 * the duplicate (dup2 and dup3 ended what they replaced already). */
	pl_conn_forget(new_fd);
	struct pl_conn *e;
	struct pl_conn *c = conn_lock_fd(old, 1, &e);
	if (!c)
		return;
	if (c->nfds == PL_ALIASES) {
		pl_debug("fd %d: more than %d numbers for one connection; %d not followed",
		         old, PL_ALIASES, new_fd);
		pl_conn_unlock(c);
		return;
	}
	c->fds[c->nfds++] = (uint16_t)new_fd;
	/* the same entry: followed the same way (through TLS or not) */
	struct pl_conn *prev = __atomic_exchange_n(nslot, e, __ATOMIC_ACQ_REL);
	pl_conn_unlock(c);
	if (!pl_conn_no_record(prev) && record_of(prev) != c) {
		/* an accept of this number raced with us (it cannot, unless
		 * the host closed the duplicate meanwhile): drop its reference */
		struct pl_conn *p = record_of(prev);
		pl_conn_lock(p);
		conn_drop_ref(p, new_fd);
	}
}

/* 1 when c (locked) has the request `id` waiting for its response. */
static int conn_queues(const struct pl_conn *c, uint64_t id)
{
	int found = 0;
	if (PL_UNLIKELY(c->req_dead == REQ_H2))
		found = pl_h2_in_flight(c->h2, id);
	else if (PL_UNLIKELY(c->req_dead == REQ_FCGI))
		found = pl_fcgi_in_flight(&c->fcgi, id);
	for (unsigned i = 0; i < c->qcount && !found; i++)
		found = q_at(c, i)->id == id;
	return found;
}

/* 1 when the request `id` is still queued on fd's connection. */
static int still_in_flight(int fd, uint64_t id)
{
	struct pl_conn **slot;
	struct pl_conn *e = pl_fd_get(fd);
	struct pl_conn *c = !pl_conn_no_record(e) && via_of(e) == VIA_TLS
		? conn_acquire(fd, 0, &slot, VIA_TLS, NULL, 0)
		: conn_acquire(fd, 0, &slot, VIA_SOCKET, NULL, 0);
	if (!c)
		return 0;
	int found = conn_queues(c, id);
	pl_conn_unlock(c);
	return found;
}

uint64_t pl_conn_current_request(int *ambiguous)
{
	*ambiguous = 0;
	for (unsigned i = 0; i < th_reqs.n;) {
		if (still_in_flight(th_reqs.fd[i], th_reqs.id[i])) {
			i++;
			continue;
		}
		/* It ended on another thread: so, likely, did the forgotten
		 * ones, whose ends this thread will not see either. */
		thread_drop_at(i);
		if (th_reqs.lost)
			th_reqs.lost--;
	}
	if (th_reqs.n + th_reqs.lost > 1)
		*ambiguous = 1;
	return th_reqs.n == 1 && th_reqs.lost == 0 ? th_reqs.id[0] : 0;
}

int pl_conn_request_open_here(uint64_t id)
{
	/* forgotten ones (lost) may include it, still in flight */
	if (th_reqs.lost)
		return 1;
	for (unsigned i = 0; i < th_reqs.n; i++)
		if (th_reqs.id[i] == id)
			return 1;
	return 0;
}

void pl_conn_atfork_prepare(void)
{
	__atomic_add_fetch(&pl_fork_gen, 1, __ATOMIC_RELAXED);
}

static void crash_claims_reset(void);

void pl_conn_atfork_child(void)
{
	/* The parent's connections are the child's only once it reads or
	 * writes them (conn_own()). */
	th_reqs.n = 0;
	th_reqs.lost = 0;
	born_gen = __atomic_load_n(&pl_fork_gen, __ATOMIC_RELAXED);
	crash_claims_reset();
}

/* For the crash handler: no lock taken, only copies (pl.h). */
uint64_t pl_conn_crash_pending(struct pl_pending *out)
{
	out->id = 0;
	out->method_len = 0;
	out->path_len = 0;
	if (th_reqs.n != 1 || th_reqs.lost)
		return 0;
	uint64_t id = th_reqs.id[0];
	struct pl_conn *e = pl_fd_get(th_reqs.fd[0]);
	if (pl_conn_no_record(e))
		return id;
	struct pl_conn *c = record_of(e);
	const struct pl_pending *p = NULL;
	uint8_t kind = __atomic_load_n(&c->req_dead, __ATOMIC_ACQUIRE);
	if (kind == REQ_H2) {
		p = pl_h2_pending(c->h2, id);
	} else if (kind == REQ_FCGI) {
		p = pl_fcgi_pending(&c->fcgi, id);
	} else {
		for (unsigned i = 0; i < c->qcount && i < PL_PIPELINE; i++) {
			const struct pl_pending *q = q_at(c, i);
			if (q->id == id) {
				p = q;
				break;
			}
		}
	}
	if (p) {
		memcpy(out, p, sizeof *out);
		if (out->id != id) { /* reused meanwhile */
			out->id = 0;
			out->method_len = 0;
			out->path_len = 0;
		}
		if (out->method_len > sizeof out->method)
			out->method_len = sizeof out->method;
		if (out->path_len > sizeof out->path)
			out->path_len = sizeof out->path;
	}
	return id;
}

/*
 * The ids of the requests crash handlers recorded, so that none is recorded
 * twice when two threads crash at once: one thread's own request may also
 * be found by the other's walk of the table, between the first's copy of it
 * and its removal. Full, it records regardless. The lock is taken only here,
 * by handlers, for a scan of at most CRASH_CLAIMS ids.
 */
#define CRASH_CLAIMS 256
static struct {
	int lock;
	unsigned n;
	uint64_t id[CRASH_CLAIMS];
} crash_claims;

/* A fork child's: its parent's handlers may have held the lock. */
static void crash_claims_reset(void)
{
	crash_claims.lock = 0;
	crash_claims.n = 0;
}

/* 1 when request id may be recorded now (no handler did yet): it is then
 * claimed. */
static int crash_claim(uint64_t id)
{
	for (unsigned spins = 0; !pl_spin_trylock(&crash_claims.lock); spins++)
		if (spins == 1000)
			return 1; /* a handler stuck in here: better twice than never */
	int fresh = 1;
	for (unsigned i = 0; i < crash_claims.n && fresh; i++)
		fresh = crash_claims.id[i] != id;
	if (fresh && crash_claims.n < CRASH_CLAIMS)
		crash_claims.id[crash_claims.n++] = id;
	pl_spin_unlock(&crash_claims.lock);
	return fresh;
}

/* p's aborted event, ending at end_ns, with `flags` (AP_REQF_ABORTED
 * among them), appended to the buffer; while its lock is held elsewhere,
 * tried again at most *tries more times (a yield each), the count going
 * down. 1 when appended (or already recorded by another handler). */
static int crash_record(const struct pl_pending *p, uint64_t end_ns, uint16_t flags,
                        unsigned *tries)
{
	if (!crash_claim(p->id))
		return 1;
	struct ap_rec_request ev = request_record(p, end_ns > p->start_ns ? end_ns : p->start_ns,
	                                          pl_tid(), flags, NULL, 0);
	size_t need = ap_wire_request_size_of(p->method_len, p->path_len, 0);
	uint8_t *out;
	int busy, done = 1;
	/* Busy while the buffer's lock may be held (pl_ship_atfork_prepare):
	 * a host's signal handler may fork meanwhile. Not pl_leave(), which
	 * may take a connection's lock the crashed thread holds. */
	pl_hold();
	while (!(out = pl_ship_try_reserve(need, &busy))) {
		if (!busy || *tries == 0) {
			done = 0;
			break;
		}
		--*tries;
		sched_yield();
	}
	if (out)
		pl_ship_commit(ap_wire_put_request(out, need, &ev));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pl_guard.busy--;
	return done;
}

int pl_conn_crash_abort(const struct pl_pending *p, uint64_t end_ns, int crashed)
{
	if (p->id == 0 || p->method_len == 0 || p->start_ns == 0)
		return 0;
	uint16_t flags = (uint16_t)(p->flags | AP_REQF_ABORTED | (crashed ? AP_REQF_CRASHED : 0));
	/* no second try: this thread may have crashed inside an append */
	unsigned tries = 0;
	return crash_record(p, end_ns, flags, &tries);
}

/* How often in all the walk below tries an append again while the
 * buffer's lock is held: by another thread, for the few instructions of
 * its own append, or by this one (crashed inside an append), for good. A
 * yield each: a few ms at most. */
#define CRASH_WALK_TRIES 64

/* The fd table walks' step (the crash walk, the shipper's announcements):
 * entry i of chunk t's record, locked, if it has one, its lock is free
 * this instant, and the entry is still that record under its first
 * number (aliases name it too: each record is visited once). Else NULL,
 * nothing held. Async-signal-safe. */
static struct pl_conn *walk_trylock(struct pl_conn **chunk, unsigned t, unsigned i)
{
	struct pl_conn *e = __atomic_load_n(&chunk[i], __ATOMIC_ACQUIRE);
	if (pl_conn_no_record(e))
		return NULL;
	struct pl_conn *c = record_of(e);
	if (!pl_spin_trylock(&((struct pl_pool_hdr *)c)->lock))
		return NULL;
	if (__atomic_load_n(&chunk[i], __ATOMIC_ACQUIRE) == e && c->fds[0] == t * PL_FD_CHUNK + i)
		return c;
	pl_conn_unlock(c);
	return NULL;
}

unsigned pl_conn_crash_abort_others(uint64_t skip_id, uint64_t end_ns)
{
	unsigned n = 0, tries = CRASH_WALK_TRIES;
	uint32_t gen = __atomic_load_n(&pl_fork_gen, __ATOMIC_RELAXED);
	for (unsigned t = 0; t < PL_FD_TOP; t++) {
		struct pl_conn **chunk = __atomic_load_n(&pl_fdtab[t], __ATOMIC_ACQUIRE);
		if (!chunk)
			continue;
		for (unsigned i = 0; i < PL_FD_CHUNK; i++) {
			/* A connection some thread is working on is left alone: its
			 * state is that thread's until it lets go, which it may never
			 * do (this thread, crashed inside a hook). */
			struct pl_conn *c = walk_trylock(chunk, t, i);
			if (!c)
				continue;
			/* Owned by this process since the last fork (conn_finish()'s
			 * rule), and HTTP/1. */
			if (c->fork_gen == gen && c->req_dead < REQ_H2) {
				for (unsigned k = 0; k < c->qcount && k < PL_PIPELINE; k++) {
					const struct pl_pending *r = q_at(c, k);
					if (r->id == skip_id || r->id == 0)
						continue;
					uint16_t flags = (uint16_t)(r->flags | AP_REQF_ABORTED);
					n += (unsigned)crash_record(r, end_ns, flags, &tries);
				}
				/* Answered now by nobody: a thread still writing its
				 * response before the process dies makes no second event. */
				c->qcount = 0;
				c->cur = NULL;
				c->resp_started = 0;
			}
			pl_conn_unlock(c);
		}
	}
	return n;
}

/* p's announcement of round round_ns, appended (c's lock held). */
static int announce_one(const struct pl_pending *p, uint64_t round_ns)
{
	struct ap_rec_inflight a = {
		.round_ns = round_ns, .req_id = p->id, .start_ns = p->start_ns,
		.bytes_in = p->bytes_in, .req_flags = p->flags,
		.method = { p->method, p->method_len },
		.path = { p->path, p->path_len },
	};
	size_t need = ap_wire_inflight_size(&a);
	uint8_t *out = pl_ship_reserve(need);
	if (!out)
		return 0; /* dropped, counted */
	pl_ship_commit_aside(ap_wire_put_inflight(out, need, &a));
	return 1;
}

static int announce_due(const struct pl_pending *p, uint64_t round_ns, uint64_t min_age_ns)
{
	return p->id != 0 && p->method_len != 0 && p->start_ns != 0 &&
	       round_ns > p->start_ns && round_ns - p->start_ns >= min_age_ns;
}

unsigned pl_conn_announce(uint64_t round_ns, uint64_t min_age_ns, unsigned max)
{
	unsigned n = 0;
	uint32_t gen = __atomic_load_n(&pl_fork_gen, __ATOMIC_RELAXED);
	for (unsigned t = 0; t < PL_FD_TOP && n < max; t++) {
		struct pl_conn **chunk = __atomic_load_n(&pl_fdtab[t], __ATOMIC_ACQUIRE);
		if (!chunk)
			continue;
		for (unsigned i = 0; i < PL_FD_CHUNK && n < max; i++) {
			/* Never wait for a host thread: it has the connection for a
			 * moment, and the next round comes in a second. */
			struct pl_conn *c = walk_trylock(chunk, t, i);
			if (!c)
				continue;
			/* The crash walk's rules (pl_conn_crash_abort_others()),
			 * but for a fork: a request whose handler forked (a
			 * subprocess it waits for, the kind that hangs) is not
			 * touched again until it answers, yet is still ours;
			 * only what a child inherited and never touched is not. */
			if (c->fork_gen - born_gen <= gen - born_gen) {
				if (c->req_dead < REQ_H2) {
					for (unsigned k = 0; k < c->qcount && k < PL_PIPELINE && n < max; k++) {
						const struct pl_pending *r = q_at(c, k);
						if (announce_due(r, round_ns, min_age_ns))
							n += (unsigned)announce_one(r, round_ns);
					}
				} else if (c->req_dead == REQ_FCGI && c->fcgi.open &&
				           announce_due(&c->fcgi.r, round_ns, min_age_ns)) {
					n += (unsigned)announce_one(&c->fcgi.r, round_ns);
				}
			}
			pl_conn_unlock(c);
		}
	}
	return n;
}

/*
 * ship.c - the per-process event buffer and the shipper thread.
 *
 * Hooks append encoded records to the active half of a buffer under a
 * spinlock held for one memcpy-sized encode. A shipper thread, started on the
 * first event of each process (so processes that serve no HTTP start
 * nothing), wakes every SHIP_TICK, swaps the halves and sends the full one
 * to the collector in datagrams of at most AP_WIRE_MAX_DATAGRAM bytes, each
 * beginning with the batch header and this process's HELLO record. Sends go
 * through an unconnected AF_UNIX datagram socket with MSG_NOSIGNAL: a
 * missing or restarted collector costs one failed sendto(), whose records
 * go back into the buffer (give_back), a slow one a short wait of the
 * shipper thread (never of a host thread) and then EAGAIN, whose records
 * are dropped and counted. While the collector is absent, records stay in
 * the buffer (until it is full) and the thread probes with a heartbeat
 * every SHIP_PROBE, so delivery resumes within a second of the
 * collector's return.
 *
 * Memory: the two halves together are pl_cfg.buffer_bytes, mapped on the
 * first event; nothing else here grows.
 */
#include "config.h"
#include "pl.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SHIP_TICK_NS (100 * 1000000ull)       /* flush interval */
#define SHIP_PROF_TICK_NS (20 * 1000000ull)   /* while a CPU profile is live */
#define SHIP_HEARTBEAT_NS (1000 * 1000000ull) /* STATS while connected */
#define SHIP_PROBE_NS (250 * 1000000ull)      /* retry while absent */
#define SHIP_SEND_WAIT_US 50000               /* shipper thread only */
#define SHIP_EXIT_BUDGET_NS (100 * 1000000ull) /* the exit flush, at most */
#define SHIP_EXEC_BUDGET_NS (5 * 1000000ull)  /* the exec flush, at most */
/* Requests in flight this long are announced (AP_REC_INFLIGHT), once a
 * round, at most SHIP_ANNOUNCE_MAX a round: the collector records them
 * aborted if the process is then killed without a word (SIGKILL). */
#define SHIP_ANNOUNCE_NS (1000 * 1000000ull)  /* a round */
#define SHIP_ANNOUNCE_AGE_NS (1000 * 1000000ull)
#define SHIP_ANNOUNCE_MAX 64

/* Record bytes per datagram, leaving room for the batch header and HELLO. */
#define SHIP_ROOM (AP_WIRE_MAX_DATAGRAM - 1024)
/* Every datagram but the last of a half the appends filled holds more
 * than SHIP_ROOM / 2 bytes (records are far smaller), so this bounds a
 * half at 32 MiB: init.c caps APIPROF_BUFFER_KB at 65536. Not quite an
 * invariant: a half give_back() joined has the last datagram given back,
 * which may be short, before the first appended meanwhile, one such per
 * give_back() without a delivery in between (a collector restarting in a
 * loop). Both ship_reserve_slow() and give_back() test the bound, so the
 * cost is records dropped (counted) before the half is full, never a cut
 * past the array. */
#define SHIP_MAX_CUTS 1024

enum ship_state { SHIP_OFF = 0, SHIP_STARTING, SHIP_ON, SHIP_FAILED };

/* Per-process state, global because every hook of every thread feeds the
 * same buffer; reset in the fork child. */
static struct {
	int lock;                      /* pl_spin_*: guards active/active_len/counters */
	int state;                     /* enum ship_state, atomic */
	uint8_t *half[2];
	size_t half_cap;
	int active_idx;
	size_t active_len;
	/* Where each half's datagrams start: the writer starts a new one when
	 * a record would push the current one past SHIP_ROOM, so the shipper
	 * never has to walk the records to split them. */
	size_t cuts[2][SHIP_MAX_CUTS];
	unsigned ncuts[2];
	/* A record whose end (active_len + its size) is within this needs no
	 * new datagram and fits with AP_WIRE_PAD to spare: the appender's one
	 * test. 0 sends every append to ship_reserve_slow(), which sets it;
	 * whoever moves active_len other than by an append, or clears the
	 * cuts, zeroes it. */
	size_t fast_end;
	/* Set by the exit flush, under the lock: from then on appends drop
	 * (counted) and the shipper takes no batch, so the half, cuts and
	 * ncuts the flush sends after unlocking are its own. */
	int closed;
	/* The counters and active_len are read without the lock by the
	 * shipper (STATS, its "anything to send?" test): every access is
	 * __atomic. Writers under the lock use a relaxed store of the value
	 * read (a plain mov on x86, no locked instruction on the fast path);
	 * dropped also grows outside the lock, so always by an atomic add. */
	uint64_t events;               /* records accepted into the buffer */
	uint64_t dropped;              /* records lost: buffer full, send failed */
	uint64_t untracked;            /* connections beyond the pool */
	uint64_t start_mono_ns;
	uint32_t seq;
	int sending;                   /* the shipper, or the exec flush, holds a
	                                  taken half: set under the lock as it takes
	                                  one, cleared once it is sent or counted
	                                  dropped (atomic); no half is taken while
	                                  it is set */
	/* The exit flush's deadline (0: none): past it, the shipper sends no
	 * more of its half and counts the rest dropped, so that the flush's
	 * last STATS, sent after it, counts everything lost (atomic). */
	uint64_t stop_ns;
	/* In-flight announcements (the shipper's; reset in the fork child):
	 * how many the last round appended, and whether any round of this
	 * process did (then its exit or exec says FINAL: atomic, read by the
	 * exit flush). */
	unsigned ann_last;
	int ann_ever;
} ship;

void pl_ship_count_untracked(void)
{
	__atomic_add_fetch(&ship.untracked, 1, __ATOMIC_RELAXED);
}

/* ---- sending (shipper thread, and the exit flush) ---- */

static const char *collector_path(void)
{
	static const char run_sock[] = "/run/apiprof/apiprof.sock";
	static const char tmp_sock[] = "/tmp/apiprof.sock";
	if (pl_cfg.socket_from_env)
		return pl_cfg.socket_path;
	struct stat st;
	return stat(run_sock, &st) == 0 ? run_sock : tmp_sock;
}

static size_t put_prefix(uint8_t *out, size_t cap)
{
	struct timespec wall, mono;
	clock_gettime(CLOCK_REALTIME, &wall);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	struct ap_batch_hdr h = {
		/* the shipper and the exit flush can both be sending */
		.seq = __atomic_fetch_add(&ship.seq, 1, __ATOMIC_RELAXED),
		.pid = pl_pid(),
		.wall_minus_mono_ns = ((int64_t)wall.tv_sec - mono.tv_sec) * 1000000000 +
		                      (wall.tv_nsec - mono.tv_nsec),
	};
	size_t n = ap_wire_put_batch_hdr(out, cap, &h);
	struct ap_rec_hello hello = {
		.pid = pl_pid(),
		.ppid = (uint32_t)getppid(),
		.start_mono_ns = ship.start_mono_ns,
		.service = { pl_cfg.service, (uint16_t)strlen(pl_cfg.service) },
		.exe = { pl_cfg.exe, (uint16_t)strlen(pl_cfg.exe) },
	};
	n += ap_wire_put_hello(out + n, cap - n, &hello);
	return n;
}

/* Sends one datagram: prefix + recs[0..len). Returns 0 or -errno.
 * `flags` is MSG_DONTWAIT on a host thread; the shipper's own socket waits
 * up to SHIP_SEND_WAIT for room instead, since Linux queues only
 * net.unix.max_dgram_qlen datagrams per receiver (10 on some hosts) and a
 * burst would otherwise be dropped while the collector is merely busy. */
static int send_datagram(int sock, const uint8_t *recs, size_t len, int flags)
{
	uint8_t prefix[AP_WIRE_BATCH_HDR + AP_WIRE_REC_HDR + 32 + sizeof pl_cfg.service +
	               sizeof pl_cfg.exe];
	size_t plen = put_prefix(prefix, sizeof prefix);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = collector_path();
	memcpy(sa.sun_path, path, strnlen(path, sizeof sa.sun_path - 1));
	struct iovec iov[2] = { { prefix, plen }, { (void *)recs, len } };
	struct msghdr mh = {
		.msg_name = &sa, .msg_namelen = sizeof sa,
		.msg_iov = iov, .msg_iovlen = len ? 2 : 1,
	};
	ssize_t r = pl_real.sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
	return r < 0 ? -errno : 0;
}

static size_t count_records(const uint8_t *p, size_t len)
{
	size_t n = 0, off = 0;
	uint16_t type;
	const uint8_t *payload;
	uint32_t plen;
	while (ap_wire_next_rec(p, len, &off, &type, &payload, &plen) == 1)
		n++;
	return n;
}

/* Sends buf[0..len) (whole records) in datagrams starting at cuts[]
 * (cuts[0] == 0), giving up once the monotonic clock passes deadline_ns
 * (0: no deadline). Returns 0 when all went, else the -errno of the first
 * failure (-ETIMEDOUT past the deadline); records not sent are counted as
 * dropped, unless `failed` is given: then the index of the cut whose
 * datagram failed is stored there, and the caller counts. With
 * MSG_DONTWAIT and a deadline (the exec flush, on a host thread), a full
 * queue is retried every SHIP_RETRY until the deadline: the host's thread
 * sleeps, never blocks in a send. */
#define SHIP_RETRY_NS 100000
static int send_records(int sock, const uint8_t *buf, size_t len,
                        const size_t *cuts, unsigned ncuts, int flags, uint64_t deadline_ns,
                        unsigned *failed)
{
	for (unsigned i = 0; i < ncuts; i++) {
		size_t off = cuts[i];
		size_t end = i + 1 < ncuts ? cuts[i + 1] : len;
		uint64_t dl = deadline_ns ? deadline_ns : __atomic_load_n(&ship.stop_ns, __ATOMIC_ACQUIRE);
		int r;
		for (;;) {
			r = dl && pl_now_ns() > dl ? -ETIMEDOUT
			                           : send_datagram(sock, buf + off, end - off, flags);
			if ((r != -EAGAIN && r != -ENOBUFS) || !(flags & MSG_DONTWAIT) || !deadline_ns)
				break;
			struct timespec ts = { 0, SHIP_RETRY_NS };
			nanosleep(&ts, NULL);
		}
		if (r < 0) {
			if (failed)
				*failed = i;
			else
				__atomic_add_fetch(&ship.dropped, count_records(buf + off, len - off),
				                   __ATOMIC_RELAXED);
			return r;
		}
	}
	return 0;
}

/* A STATS record; with `final`, from the exit and exec flushes, followed
 * by an AP_INFLF_FINAL announcement when this process ever announced a
 * request in flight: it goes on knowingly (exit, exec), so the requests
 * the collector holds as announced must not become aborted ones when it
 * finds the pid gone. In the same datagram as the last STATS, the send
 * that waits longest. */
static void send_heartbeat(int sock, int *up, int flags, int final)
{
	uint8_t rec[128];
	struct ap_rec_stats st = {
		.events = __atomic_load_n(&ship.events, __ATOMIC_RELAXED),
		.dropped = __atomic_load_n(&ship.dropped, __ATOMIC_RELAXED),
		.untracked_conns = __atomic_load_n(&ship.untracked, __ATOMIC_RELAXED),
	};
	size_t n = ap_wire_put_stats(rec, sizeof rec, &st);
	if (final && __atomic_load_n(&ship.ann_ever, __ATOMIC_ACQUIRE)) {
		struct ap_rec_inflight fin = { .round_ns = pl_now_ns(), .flags = AP_INFLF_FINAL };
		n += ap_wire_put_inflight(rec + n, sizeof rec - n, &fin);
	}
	int r = send_datagram(sock, rec, n, flags);
	if ((r == 0) != *up)
		pl_debug("collector at %s %s", collector_path(),
		         r == 0 ? "reached" : "unreachable");
	*up = r == 0;
}

/* Lock held: swaps the halves and returns the filled one's length (0:
 * nothing) and index. The half taken is the taker's until it clears
 * `sending`, which says so from the moment it is taken (under the lock, so
 * the exit flush never sees a half taken and not yet marked). Nothing is
 * taken while another taker holds a half (the shipper while the exec
 * flush sends one, and the reverse): the halves are two. */
static size_t take_locked(int *idx)
{
	size_t len = ship.closed || __atomic_load_n(&ship.sending, __ATOMIC_RELAXED)
	                     ? 0
	                     : ship.active_len;
	*idx = ship.active_idx;
	if (len) {
		__atomic_store_n(&ship.sending, 1, __ATOMIC_RELEASE);
		ship.active_idx ^= 1;
		__atomic_store_n(&ship.active_len, 0, __ATOMIC_RELAXED);
		ship.ncuts[ship.active_idx] = 0;
		ship.fast_end = 0;
	}
	return len;
}

/* The shipper's take (see take_locked()). */
static size_t take_batch(int *idx)
{
	pl_spin_lock(&ship.lock);
	size_t len = take_locked(idx);
	pl_spin_unlock(&ship.lock);
	return len;
}

/*
 * The shipper found the collector gone (its socket removed, or nobody
 * bound to it: a restart) while sending its half idx (len bytes), whose
 * datagrams from cut `from` on did not go. Rather than lose them (about
 * one tick of events per busy process at every collector restart), they
 * go back into the buffer, ahead of the records appended since the half
 * was taken, and are sent first once a probe finds a collector again.
 * The half is the shipper's (`sending` is set): the unsent records move
 * to its start without the lock; under it, the records appended meanwhile
 * (a few: a send to a missing socket fails at once) are copied behind
 * them, and this half becomes the one the hooks fill. They are counted
 * dropped instead when the two do not fit in one half, when more than a
 * datagram's worth was appended meanwhile (the copy would hold the lock
 * too long), or when the exit flush has closed the buffer.
 */
static void give_back(int idx, unsigned from, size_t len)
{
	size_t base = ship.cuts[idx][from];
	size_t n = len - base;
	unsigned nc = ship.ncuts[idx] - from;
	if (base) {
		memmove(ship.half[idx], ship.half[idx] + base, n);
		for (unsigned j = 0; j < nc; j++)
			ship.cuts[idx][j] = ship.cuts[idx][from + j] - base;
		ship.ncuts[idx] = nc;
	}
	pl_spin_lock(&ship.lock);
	int a = ship.active_idx;
	size_t alen = ship.active_len;
	unsigned anc = ship.ncuts[a];
	int ok = !ship.closed && alen <= SHIP_ROOM && n + alen <= ship.half_cap &&
	         nc + anc <= SHIP_MAX_CUTS;
	if (ok) {
		memcpy(ship.half[idx] + n, ship.half[a], alen);
		for (unsigned j = 0; j < anc; j++)
			ship.cuts[idx][nc + j] = ship.cuts[a][j] + n;
		ship.ncuts[idx] = nc + anc;
		ship.ncuts[a] = 0;
		ship.active_idx = idx;
		__atomic_store_n(&ship.active_len, n + alen, __ATOMIC_RELAXED);
		ship.fast_end = 0;
	}
	pl_spin_unlock(&ship.lock);
	if (!ok)
		__atomic_add_fetch(&ship.dropped, count_records(ship.half[idx], n), __ATOMIC_RELAXED);
}

/*
 * One round of in-flight announcements (pl_conn_announce()), into the
 * buffer this wake-up sends. A round with none after one with some says
 * so (req_id 0), so that the collector's set empties. Costs a walk of
 * the fd table's chunks (a load per entry) once a second, nothing on the
 * request path.
 */
static void announce(uint64_t now)
{
	unsigned n = pl_conn_announce(now, SHIP_ANNOUNCE_AGE_NS, SHIP_ANNOUNCE_MAX);
	if (n == 0 && ship.ann_last > 0) {
		struct ap_rec_inflight none = { .round_ns = now };
		size_t need = ap_wire_inflight_size(&none);
		uint8_t *out = pl_ship_reserve(need);
		if (out)
			pl_ship_commit_aside(ap_wire_put_inflight(out, need, &none));
	}
	if (n > 0)
		__atomic_store_n(&ship.ann_ever, 1, __ATOMIC_RELEASE);
	ship.ann_last = n;
}

/* The socket is opened per wake-up rather than kept: a host that closes
 * every descriptor it does not know (daemons do, after our thread started)
 * must never make us send events into one of its own files. */
static void *shipper_main(void *arg)
{
	(void)arg;
	int up = 0;
	uint64_t next_beat = 0, next_announce = 0;
	/* Objects that bound past our hooks (RTLD_DEEPBIND) get their GOT
	 * patched (gotpatch.c): at once, then at every wake-up, one counter
	 * read when nothing was loaded. */
	pl_got_patch_scan();
	for (;;) {
		/* A live CPU profile's sample ring fills in PROF_RING ms of the
		 * sampled thread's CPU time: drain it more often. */
		struct timespec tick = { 0, (long)(pl_prof_live() ? SHIP_PROF_TICK_NS : SHIP_TICK_NS) };
		nanosleep(&tick, NULL);
		pl_prof_work();
		pl_got_patch_scan();
		uint64_t now = pl_now_ns();
		/* Only while the collector is there: a round buffered through an
		 * outage would be stale when it arrives. */
		if (up && now >= next_announce) {
			announce(now);
			next_announce = now + SHIP_ANNOUNCE_NS;
		}
		int beat = now >= next_beat;
		if (!beat && (!up || __atomic_load_n(&ship.active_len, __ATOMIC_RELAXED) == 0))
			continue;
		int sock = pl_real.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (sock < 0)
			continue;
		struct timeval wait = { 0, SHIP_SEND_WAIT_US };
		setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
		if (beat) {
			send_heartbeat(sock, &up, 0, 0);
			next_beat = now + (up ? SHIP_HEARTBEAT_NS : SHIP_PROBE_NS);
		}
		int idx;
		size_t len = up ? take_batch(&idx) : 0;
		if (len) {
			unsigned failed = 0;
			int r = send_records(sock, ship.half[idx], len, ship.cuts[idx], ship.ncuts[idx],
			                     0, 0, &failed);
			if (r == -ENOENT || r == -ECONNREFUSED) {
				give_back(idx, failed, len);
			} else if (r < 0) {
				size_t off = ship.cuts[idx][failed];
				__atomic_add_fetch(&ship.dropped, count_records(ship.half[idx] + off, len - off),
				                   __ATOMIC_RELAXED);
			}
			__atomic_store_n(&ship.sending, 0, __ATOMIC_RELEASE);
			/* EAGAIN: the collector is busy (records counted lost); anything
			 * else means it is gone: buffer until a probe finds it again. */
			if (r < 0 && r != -EAGAIN && r != -ENOBUFS) {
				up = 0;
				next_beat = now + SHIP_PROBE_NS;
			}
		}
		pl_real.close(sock);
	}
	return NULL;
}

/* The buffer empty, no half taken, not closed, no event counted: a fork
 * child's start (pl_ship_atfork_child, which zeroes the other counters). */
static void reset_buffer(void)
{
	ship.active_idx = 0;
	ship.active_len = 0;
	ship.ncuts[0] = ship.ncuts[1] = 0;
	ship.fast_end = 0;
	ship.closed = 0;
	/* The parent's shipper may have been sending (it does so without the
	 * lock): the exit flush would wait out its budget for a thread that is
	 * not here, then send nothing. */
	ship.sending = 0;
	ship.stop_ns = 0;
	ship.events = 0;
}

/* ship_start()'s first half, state SHIP_STARTING (ours): maps the buffer
 * unless a fork kept it. 0, with state SHIP_FAILED, when it cannot.
 * Resets the buffer again first (nothing else touches it before
 * SHIP_ON): in the child of a fork from a signal handler, the append,
 * take or flush the handler interrupted (pl_ship_atfork_prepare) resumes
 * after the child handler's reset, on the parent's values it had read: an
 * append's commit counted the record and moved active_len in the child
 * too, though the record is the parent's to send. (Not `dropped`, which
 * a thread that gave up waiting for this start counts meanwhile.) */
static PL_COLD int map_buffer(void)
{
	reset_buffer();
	if (!ship.half[0]) {
		void *m = mmap(NULL, pl_cfg.buffer_bytes, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED) {
			__atomic_store_n(&ship.state, SHIP_FAILED, __ATOMIC_RELEASE);
			return 0;
		}
		ship.half[0] = m;
	}
	/* Derived from half[0] on every start, not only when it is mapped: a
	 * fork by another thread between the stores above and these would
	 * leave a child that keeps the mapping with no second half. */
	ship.half_cap = pl_cfg.buffer_bytes / 2;
	ship.half[1] = ship.half[0] + ship.half_cap;
	ship.start_mono_ns = pl_now_ns();
	return 1;
}

/* Maps the buffer and starts the thread; returns 1 when events can be
 * buffered. Runs once per process. Threads racing the first one (a server's
 * first requests often end together) yield until it is done, for at most
 * SHIP_START_WAIT: an mmap and a pthread_create take about 0.1 ms, but on
 * a loaded machine the starting thread can lose its CPU for milliseconds
 * (5 ms lost events in tests under load), and dropping their events would
 * lose a process's first requests. Once per process, and only for threads
 * that race the first event. */
#if defined(__SANITIZE_THREAD__)
/* A ThreadSanitizer build (scripts/test.sh) starts the thread 5-15 times
 * slower: threaded.sh lost first requests with 50 ms on a loaded machine. */
#define SHIP_START_WAIT_NS (500 * 1000000ull)
#else
#define SHIP_START_WAIT_NS (50 * 1000000ull)
#endif
static PL_COLD int ship_start(void)
{
	int expect = SHIP_OFF;
	if (!__atomic_compare_exchange_n(&ship.state, &expect, SHIP_STARTING, 0,
	                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		if (expect == SHIP_STARTING) {
			int saved = errno;
			uint64_t until = pl_now_ns() + SHIP_START_WAIT_NS;
			while ((expect = __atomic_load_n(&ship.state, __ATOMIC_ACQUIRE)) == SHIP_STARTING &&
			       pl_now_ns() < until)
				sched_yield();
			errno = saved;
		}
		return expect == SHIP_ON;
	}
	int saved = errno;
	if (!map_buffer()) {
		errno = saved;
		return 0;
	}
	/* The thread must never run the host's signal handlers (nginx's
	 * SIGHUP/SIGQUIT): it inherits a mask blocking everything. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024); /* libdw unwinds here */
	int rc = pthread_create(&t, &attr, shipper_main, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	__atomic_store_n(&ship.state, rc == 0 ? SHIP_ON : SHIP_FAILED, __ATOMIC_RELEASE);
	pl_debug(rc == 0 ? "shipper started, buffer %zu KiB" : "cannot start shipper (%zu KiB)",
	         pl_cfg.buffer_bytes / 1024);
	errno = saved;
	return rc == 0;
}

void pl_request_first(const char *p, size_t n)
{
	int pending = __atomic_load_n(&pl_crash_pending, __ATOMIC_RELAXED);
	if (pending & PL_PENDING_CRASH)
		pl_crash_install();
	/* A request line starts with a method token: "GET ", "PRI " (the
	 * HTTP/2 preface). A TLS record, PostgreSQL's startup packet or a
	 * FastCGI record (whose requests come here with p NULL) does not. */
	if (!(pending & PL_PENDING_SHIP) || (p && (n == 0 || p[0] < 'A' || p[0] > 'Z')))
		return;
	__atomic_and_fetch(&pl_crash_pending, ~PL_PENDING_SHIP, __ATOMIC_RELAXED);
	if (__atomic_load_n(&ship.state, __ATOMIC_ACQUIRE) == SHIP_OFF)
		ship_start();
}

/* ship_reserve() past its one test, lock held: the record starts a new
 * datagram, or the half is full (drop it), or fast_end is stale. */
static __attribute__((noinline)) uint8_t *ship_reserve_slow(size_t need, size_t slack)
{
	int i = ship.active_idx;
	unsigned nc = ship.ncuts[i];
	int cut = nc == 0 || ship.active_len + need - ship.cuts[i][nc - 1] > SHIP_ROOM;
	if (ship.active_len + need + slack <= ship.half_cap && (!cut || nc < SHIP_MAX_CUTS) &&
	    !ship.closed) {
		if (cut)
			ship.cuts[i][ship.ncuts[i]++] = ship.active_len;
		size_t room_end = ship.cuts[i][ship.ncuts[i] - 1] + SHIP_ROOM;
		size_t cap_end = ship.half_cap - AP_WIRE_PAD;
		ship.fast_end = room_end < cap_end ? room_end : cap_end;
		return ship.half[i] + ship.active_len;
	}
	__atomic_add_fetch(&ship.dropped, 1, __ATOMIC_RELAXED);
	pl_spin_unlock(&ship.lock);
	return NULL;
}

/* ship_reserve() when the shipper is not running yet or the lock is
 * taken: start it (or drop the record), wait for the lock. */
static __attribute__((noinline)) uint8_t *ship_reserve_wait(size_t need, size_t slack)
{
	if (__atomic_load_n(&ship.state, __ATOMIC_ACQUIRE) != SHIP_ON && !ship_start()) {
		__atomic_add_fetch(&ship.dropped, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	pl_spin_lock(&ship.lock);
	if (ship.active_len + need <= ship.fast_end)
		return ship.half[ship.active_idx] + ship.active_len;
	return ship_reserve_slow(need, slack);
}

/* Starts appending one record of `need` bytes, with `slack` (at most
 * AP_WIRE_PAD) writable bytes after it for an encoder that writes past its
 * end: returns where to write it, with the buffer's lock held until
 * ship_commit(); NULL when the record is dropped (counted; the lock is not
 * held). With `busy` (for a signal handler, which must not wait for a lock
 * its own thread may hold) a shipper not running or a lock taken return
 * NULL at once, counting nothing, *busy set for the lock; without (NULL, a
 * constant) it waits. Inline into each caller; what is not the usual case
 * (shipper running, lock free, room in the datagram) is in tail calls, so
 * the usual case saves no registers. */
static inline __attribute__((always_inline)) uint8_t *ship_reserve(size_t need, size_t slack,
                                                                   int *busy)
{
	if (PL_LIKELY(__atomic_load_n(&ship.state, __ATOMIC_ACQUIRE) == SHIP_ON &&
	              pl_spin_trylock(&ship.lock))) {
		if (PL_LIKELY(ship.active_len + need <= ship.fast_end))
			return ship.half[ship.active_idx] + ship.active_len;
		return ship_reserve_slow(need, slack);
	}
	if (!busy)
		return ship_reserve_wait(need, slack);
	*busy = __atomic_load_n(&ship.state, __ATOMIC_ACQUIRE) == SHIP_ON;
	return NULL;
}

/* Publishes the `n` bytes written at what ship_reserve() returned and
 * releases the lock. */
static inline __attribute__((always_inline)) void ship_commit(size_t n)
{
	__atomic_store_n(&ship.active_len, ship.active_len + n, __ATOMIC_RELAXED);
	__atomic_store_n(&ship.events, ship.events + 1, __ATOMIC_RELAXED);
	pl_spin_unlock(&ship.lock);
}

uint8_t *pl_ship_reserve(size_t need)
{
	return ship_reserve(need, AP_WIRE_PAD, NULL);
}

uint8_t *pl_ship_try_reserve(size_t need, int *busy)
{
	*busy = 0;
	return ship_reserve(need, 0, busy);
}

void pl_ship_commit(size_t n)
{
	ship_commit(n);
}

void pl_ship_commit_aside(size_t n)
{
	__atomic_store_n(&ship.active_len, ship.active_len + n, __ATOMIC_RELAXED);
	pl_spin_unlock(&ship.lock);
}

typedef size_t (*put_fn)(uint8_t *out, size_t cap, const void *rec);

/* Appends one encoded record of `need` bytes. Inlined into each
 * pl_ship_* so that `put` is a direct call. */
static inline __attribute__((always_inline)) void ship_append(size_t need, put_fn put, const void *rec)
{
	uint8_t *out = ship_reserve(need, 0, NULL);
	if (out)
		ship_commit(put(out, need, rec));
}

static size_t put_sql(uint8_t *out, size_t cap, const void *rec)
{
	return ap_wire_put_sql(out, cap, rec);
}

void pl_ship_sql(const struct ap_rec_sql *r)
{
	ship_append(ap_wire_sql_size(r), put_sql, r);
}

static size_t put_profile(uint8_t *out, size_t cap, const void *rec)
{
	return ap_wire_put_profile(out, cap, rec);
}

void pl_ship_profile(const struct ap_rec_profile *r)
{
	ship_append(ap_wire_profile_size(r), put_profile, r);
}

/* Until the shipper holds no half, or the monotonic clock passes `until`. */
static void wait_while_sending(uint64_t until)
{
	while (__atomic_load_n(&ship.sending, __ATOMIC_ACQUIRE) && pl_now_ns() < until) {
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
}

/*
 * At exit, hand over what is buffered, then a last STATS record, so that
 * gunicorn and nginx workers that exit gracefully, and short-lived
 * programs that run a burst of statements, lose nothing or at least count
 * what they lost. A burst can be many datagrams while the collector's
 * queue holds only net.unix.max_dgram_qlen of them, so the sends wait for
 * room as the shipper's do, within SHIP_EXIT_BUDGET in all. A half the
 * shipper is sending meanwhile is sent up to the same deadline (stop_ns),
 * and what it has not sent by then is counted dropped before the last
 * STATS goes: the flush waits for it (it can be blocked in one send for
 * SHIP_SEND_WAIT), and for the buffer's lock as long, since a shipper
 * taking a half holds it for a moment. Otherwise the exit could kill the
 * shipper in the middle of its half, whose unsent records then were
 * neither delivered nor counted (a burst program under a slow collector:
 * 92 of 100,000 statements). A collector that is absent fails each send
 * at once; only one that is alive but not reading can delay the exit: by
 * at most the budget, the shipper's last send (SHIP_SEND_WAIT) and the
 * last STATS record's own wait (2 x SHIP_SEND_WAIT): 260 ms.
 */
__attribute__((destructor)) static void ship_exit_flush(void)
{
	pl_crash_exiting();
	if (__atomic_load_n(&ship.state, __ATOMIC_ACQUIRE) != SHIP_ON)
		return;
	int saved = errno;
	uint64_t deadline = pl_now_ns() + SHIP_EXIT_BUDGET_NS;
	uint64_t settle = deadline + SHIP_SEND_WAIT_US * 1000ull + 10 * 1000000ull;
	__atomic_store_n(&ship.stop_ns, deadline, __ATOMIC_RELEASE);
	wait_while_sending(settle);
	/* Bounded: the holder may be this very thread, interrupted inside an
	 * append by a signal handler that exits. Busy while the lock is ours
	 * (pl_ship_atfork_prepare); not pl_leave(), which may take a
	 * connection's lock, and a crash (crash.c) may have left one taken. */
	pl_hold();
	int locked;
	while (!(locked = pl_spin_trylock(&ship.lock)) && pl_now_ns() < settle) {
		struct timespec us = { 0, 100000 };
		nanosleep(&us, NULL);
	}
	if (!locked) {
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		pl_guard.busy--;
		errno = saved;
		return;
	}
	size_t len = ship.active_len;
	int i = ship.active_idx;
	unsigned nc = ship.ncuts[i];
	__atomic_store_n(&ship.active_len, 0, __ATOMIC_RELAXED);
	ship.fast_end = 0;
	/* Threads still serving (exit() does not stop them) would append to
	 * this half, over what is being sent, with cuts that no longer match
	 * it: they drop their records instead. */
	ship.closed = 1;
	pl_spin_unlock(&ship.lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pl_guard.busy--;
	int sock = pl_real.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		errno = saved;
		return;
	}
	struct timeval wait = { 0, SHIP_SEND_WAIT_US / 2 };
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
	if (len)
		send_records(sock, ship.half[i], len, ship.cuts[i], nc, 0, deadline, NULL);
	/* A half the shipper took between the wait above and the lock. */
	wait_while_sending(settle);
	/* The last STATS carries the counts of what was lost, so that nothing
	 * is lost unseen: it gets a wait of its own after the budget, long
	 * enough for a collector that is slow (a sanitizer build, a loaded
	 * machine) to make room: with 25 ms, about one exit in six under a
	 * stalling collector lost it, and with it the count of its drops. */
	wait.tv_usec = SHIP_SEND_WAIT_US * 2;
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
	int up = 1;
	send_heartbeat(sock, &up, 0, 1);
	pl_real.close(sock);
	errno = saved;
}

int pl_ship_crash_ready(void)
{
	int expect = SHIP_OFF;
	if (!__atomic_compare_exchange_n(&ship.state, &expect, SHIP_STARTING, 0,
	                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return expect == SHIP_ON;
	int saved = errno;
	int ok = map_buffer();
	errno = saved;
	if (ok) /* no thread: pl_ship_exit_now() sends from the caller's */
		__atomic_store_n(&ship.state, SHIP_ON, __ATOMIC_RELEASE);
	return ok;
}

void pl_ship_exit_now(void)
{
	if (__atomic_load_n(&ship.state, __ATOMIC_ACQUIRE) != SHIP_ON)
		return;
	/* A vfork() child's _exit (after a failed exec) would close the
	 * parent's buffer: the memory is the parent's. */
	int saved = errno;
	int borrowed = pl_borrowed_memory();
	errno = saved;
	if (!borrowed)
		ship_exit_flush();
}

/*
 * Before an exec: the buffer and the shipper thread do not survive a
 * successful one, so what was buffered since the shipper's last send (up
 * to SHIP_TICK of events) is handed over now, from the exec'ing thread,
 * then a STATS record with the counters, which die too (the collector
 * keeps a replaced image's drops: the new image's HELLO has another
 * start time). The exec may fail and the process go on serving: nothing
 * is closed, the active half is taken as the shipper takes it and the
 * shipper goes on with the other one afterwards.
 *
 * Never blocks the host: every send is MSG_DONTWAIT, a full collector
 * queue is retried only within SHIP_EXEC_BUDGET, and so are the waits for
 * the buffer's lock (an appending thread holds it for an encode) and for
 * a half the shipper is sending (its thread dies with the exec, the rest
 * of its half with it): past the budget the records go as far as they
 * went and the rest is counted dropped; a lock or a shipper's half still
 * held then leaves the buffer as it is (the exec, if it fails, changes
 * nothing). With an absent collector every send fails at once (counted).
 */
static void exec_flush(void)
{
	uint64_t deadline = pl_now_ns() + SHIP_EXEC_BUDGET_NS;
	int idx = 0;
	size_t len = 0;
	for (;;) {
		int sending = __atomic_load_n(&ship.sending, __ATOMIC_ACQUIRE);
		if (!sending && pl_spin_trylock(&ship.lock)) {
			int taken = !__atomic_load_n(&ship.sending, __ATOMIC_RELAXED);
			if (taken)
				len = take_locked(&idx);
			pl_spin_unlock(&ship.lock);
			if (taken)
				break;
		}
		if (pl_now_ns() >= deadline) {
			pl_debug("exec: the buffer stayed busy, not flushed");
			return;
		}
		/* A lock is held for an encode; a half is sent in microseconds
		 * unless the collector's queue is full. */
		if (sending) {
			struct timespec ts = { 0, SHIP_RETRY_NS };
			nanosleep(&ts, NULL);
		} else {
			sched_yield();
		}
	}
	int sock = pl_real.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock >= 0 && len)
		send_records(sock, ship.half[idx], len, ship.cuts[idx], ship.ncuts[idx], MSG_DONTWAIT,
		             deadline, NULL);
	else if (len)
		__atomic_add_fetch(&ship.dropped, count_records(ship.half[idx], len),
		                   __ATOMIC_RELAXED);
	if (len)
		__atomic_store_n(&ship.sending, 0, __ATOMIC_RELEASE);
	if (sock < 0)
		return;
	int up = 1;
	send_heartbeat(sock, &up, MSG_DONTWAIT, 1);
	pl_real.close(sock);
	pl_debug("exec: %zu bytes of events handed over", len);
}

void pl_ship_before_exec(void)
{
	if (__atomic_load_n(&ship.state, __ATOMIC_ACQUIRE) != SHIP_ON)
		return;
	int saved = errno;
	/* A vfork() child's exec (posix_spawn's does not come here): the
	 * buffer is its parent's, still serving. And an exec from a signal
	 * handler that interrupted the preload's work on this thread, which
	 * may hold the buffer's lock: the trylock would fail for the whole
	 * budget. */
	if (!pl_borrowed_memory() && pl_enter()) {
		exec_flush();
		pl_leave();
	}
	errno = saved;
}

/*
 * The fork handlers. On a host thread, the buffer's lock is held only
 * inside the preload's work (pl_guard.busy: pl_enter() in the hooks and the
 * exec flush, pl_hold() in the SQL capture, the crash handler's append
 * and the exit flush; the shipper thread blocks every signal). A fork
 * from a signal handler that interrupted that work may come while its own
 * thread holds the lock, which it would wait for forever: such a fork
 * (pl_guard.busy set) takes no lock. The child starts afresh without it (and
 * again when it starts shipping: map_buffer), and the parent's
 * interrupted append goes on when the handler returns, the lock still its
 * own. Otherwise the lock is taken, so that no thread is inside an append
 * at the fork. As libcopy.c's dl_walk_depth does for its lock, but with
 * no mark of the holder's own: pl_guard.busy is set anyway, and the appends
 * stay as they were.
 *
 * The thread is busy from here to the parent's or the child's handler: a
 * signal handler that runs during the fork (glibc blocks no signal while
 * the fork handlers run) and writes to a followed socket leaves it
 * unobserved instead of waiting for the lock taken here, and a fork from
 * it takes none. So the lock was taken here when the parent finds the
 * thread busy only by this fork.
 */
void pl_ship_atfork_prepare(void)
{
	if (pl_guard.busy == 0)
		pl_spin_lock(&ship.lock);
	pl_hold();
}

void pl_ship_atfork_parent(void)
{
	if (pl_guard.busy == 1)
		pl_spin_unlock(&ship.lock);
	pl_leave();
}

void pl_ship_atfork_child(void)
{
	/* The shipper thread does not exist here; the parent ships the records
	 * it buffered. Keep the mapping (copy-on-write), start afresh. */
	ship.lock = 0;
	ship.state = SHIP_OFF;
	reset_buffer();
	ship.dropped = ship.untracked = 0;
	ship.seq = 0;
	/* The parent's announcements are the parent's pid's; the child's
	 * shipper starts at its first request (pl_request_first()). */
	ship.ann_last = 0;
	ship.ann_ever = 0;
	__atomic_or_fetch(&pl_crash_pending, PL_PENDING_SHIP, __ATOMIC_RELAXED);
	/* The prepare handler's pl_hold(); an fd noted meanwhile is settled
	 * by the thread's next pl_leave() (not here: the other modules' locks
	 * are not all reset yet). */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pl_guard.busy--;
}

/*
 * inflight.h - requests preloaded processes announced in flight
 * (AP_REC_INFLIGHT, ap_wire.h), kept per process until they end, and
 * handed back when their process is found gone with them still
 * unanswered: it was killed without a word (SIGKILL, the OOM killer,
 * uWSGI's --harakiri), and each is then an aborted request.
 *
 * A process's set is its latest round: a record of a newer round replaces
 * it, a REQUEST record with the same id takes an entry out
 * (col_inflight_done), a FINAL record (exit, exec) or a HELLO of another
 * process image under the pid (col_inflight_hello) forgets it, and so
 * does a round older than COL_INFLIGHT_STALE_NS while the process lives
 * (its empty round was lost). col_inflight_reap() probes each process
 * with entries: one gone (no such pid, a zombie, or another process's
 * start time under it) on two probes at least COL_INFLIGHT_GRACE_NS
 * apart has its entries handed to the caller, so that the records the
 * process sent before it died, still queued in the socket when it was
 * first found gone, are read first and take theirs out.
 *
 * Bounds: COL_INFLIGHT_MAX_PROCS processes, COL_INFLIGHT_PER_PROC
 * entries each, paths cut at COL_INFLIGHT_PATH_MAX bytes: at most about
 * 2 MiB in all; announcements beyond are dropped (counted).
 *
 * One thread (the ingest thread) at a time; no locks.
 */
#ifndef COL_INFLIGHT_H
#define COL_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "ap_wire.h"

#define COL_INFLIGHT_MAX_PROCS 1024
#define COL_INFLIGHT_PER_PROC 64      /* the preload's SHIP_ANNOUNCE_MAX */
#define COL_INFLIGHT_MAX_REQS 4096    /* entries in all */
#define COL_INFLIGHT_PATH_MAX 320     /* the preload sends <= 256 */
#define COL_INFLIGHT_GRACE_NS 500000000LL
#define COL_INFLIGHT_STALE_NS 10000000000LL

/* One announced request. Strings are not NUL-terminated. */
struct col_inflight_req {
	uint64_t req_id;
	uint64_t start_ns;        /* the sender's CLOCK_MONOTONIC */
	uint64_t bytes_in;
	uint16_t req_flags;       /* enum ap_req_flags */
	uint8_t mlen;
	uint16_t plen;
	char method[16];
	char path[COL_INFLIGHT_PATH_MAX];
};

/* Whether pid is alive: -1 gone, 0 alive (start time unknown), 1 alive
 * with its start time (any process-unique value; /proc/PID/stat's
 * starttime for col_inflight_proc_probe) in *start. */
typedef int (*col_inflight_probe_fn)(uint32_t pid, uint64_t *start);

/* The real probe: kill(pid, 0) says ESRCH, or /proc/PID/stat (when
 * readable: hidepid may hide it) says zombie (of one thread: a leader
 * whose main thread alone ended lives on): gone; else alive, with
 * starttime when readable. */
int col_inflight_proc_probe(uint32_t pid, uint64_t *start);

struct col_inflight;

/* A new, empty set using probe (NULL: col_inflight_proc_probe). NULL when
 * out of memory. */
struct col_inflight *col_inflight_new(col_inflight_probe_fn probe);
/* NULL is a no-op. */
void col_inflight_free(struct col_inflight *f);

/* An announcement r from pid (the kernel's; 0, a sender outside our pid
 * namespace, is ignored), whose datagram's HELLO said
 * hello_start (0: none) and batch header wall_minus_mono, received at
 * now_mono (ours). The process's start time is probed when it gets its
 * first entry. */
void col_inflight_note(struct col_inflight *f, uint32_t pid, uint64_t hello_start,
                       const struct ap_rec_inflight *r, int64_t wall_minus_mono, int64_t now_mono);
/* pid's request req_id ended (its REQUEST record came). 1 when it was
 * held. */
int col_inflight_done(struct col_inflight *f, uint32_t pid, uint64_t req_id);
/* A HELLO of pid with start_mono (its image's): another image than the
 * one that announced forgets the set. */
void col_inflight_hello(struct col_inflight *f, uint32_t pid, uint64_t start_mono);

/* Called for each request of a process found gone; end_ns (the sender's
 * clock) is its last round's time: the request ran at least that long. */
typedef void (*col_inflight_emit_fn)(void *arg, uint32_t pid, const struct col_inflight_req *q,
                                     uint64_t end_ns, int64_t wall_minus_mono);

/* Probes the processes with entries (above); returns how many requests
 * were handed to emit. Call about once a second. */
size_t col_inflight_reap(struct col_inflight *f, int64_t now_mono, col_inflight_emit_fn emit,
                         void *arg);

struct col_inflight_counters {
	uint64_t pending;         /* entries now */
	uint64_t processes;       /* processes with a set now */
	uint64_t killed;          /* requests handed to emit, in all */
	uint64_t refused;         /* announcements beyond the bounds */
};
void col_inflight_counters(const struct col_inflight *f, struct col_inflight_counters *c);

#endif /* COL_INFLIGHT_H */

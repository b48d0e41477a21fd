/*
 * ingest.h - the collector's Unix datagram socket and the thread that reads
 * it: every datagram is attributed to the pid and uid the kernel reports
 * for its sender (SO_PASSCRED), decoded (ap_wire.h), and its records are
 * counted in the aggregate and, for requests, queued to the store.
 *
 * SQL: a statement counts for its service (totals, its shape) when it
 * arrives. One that names a request waits (sqlreq.h) for that request's
 * record, which takes it: the request then gets sql_count, sql_time_ms,
 * its N+1 findings (n_plus_one_threshold, prepares and session statements
 * excluded) and, when stored, its statement list. Errors go to the error
 * groups (findings.h): HTTP >= 500, aborted, and failed statements under
 * their request's route, or service-level for statements of no request
 * (req_id 0, ambiguous, or expired while waiting).
 *
 * Bad input (garbage, truncated, unknown protocol version, oversized) is
 * counted and dropped, never fatal; unknown record types are skipped.
 *
 * The socket file: senders send by path, so when it is removed while the
 * collector runs (a /tmp cleaner, a careless rm), the reading thread binds
 * a new socket there within about a second (same mode and group), logs a
 * warning and counts it (socket_recreated); a path taken over by another
 * file is left alone and logged once.
 */
#ifndef COL_INGEST_H
#define COL_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ap_config;
struct col_agg;
struct col_store;
struct col_ingest;
struct col_tseries;
struct col_windows;

#define COL_SOCKET_DIR "/run/apiprof"
#define COL_SOCKET_RUN "/run/apiprof/apiprof.sock"
#define COL_SOCKET_TMP "/tmp/apiprof.sock"
#define COL_RCVBUF_WANTED (8 << 20)
#define COL_PROC_IDLE_NS (600 * 1000000000LL) /* forget silent processes */
/* Forget a process silent this long that has exited: thousands of
 * short-lived senders a minute (CGI-style) would otherwise each stay in
 * the table and /api/v1/status for COL_PROC_IDLE_NS. Its dropped events
 * stay counted for its service (col_agg_dropped). */
#define COL_PROC_GONE_NS (10 * 1000000000LL)
/* Crash reports written to the log a minute: any local process may send
 * CRASH records, thousands a datagram, and each would be a log line (the
 * rest are still counted and shown in /api/v1/errors). */
#define COL_INGEST_CRASH_LOG_PER_MIN 10
/* Symbolising a crash report reads the ELF files of its modules (about a
 * millisecond): done for the reports logged, and for the first report of
 * an error group, at most this many a minute beyond those. The rest are
 * named by module and offset only (microseconds), and their group keeps
 * its message; a new group's first such message ends with
 * COL_INGEST_CRASH_UNSYMBOLISED, until a report that is logged, or a
 * later report symbolised from a later minute's budget (such a group
 * counts as new, col_findings_error_known), replaces it. */
#define COL_INGEST_CRASH_NEW_PER_MIN 60
#define COL_INGEST_CRASH_UNSYMBOLISED "(not symbolised: too many crash reports that minute)"

/* The default socket path: COL_SOCKET_RUN when COL_SOCKET_DIR exists or
 * can be created (mode 0755) and is writable by us (root), else
 * COL_SOCKET_TMP. Writes it into out (NUL-terminated). */
void col_ingest_default_path(char *out, size_t outlen);

/* A new ingest context using cfg (routes, ignored paths, slow threshold)
 * and agg, which must outlive it. Raw rows are not stored until
 * col_ingest_start() names a store. NULL when out of memory. */
struct col_ingest *col_ingest_new(const struct ap_config *cfg, struct col_agg *agg);

/* Creates and binds the socket at path: refuses (-EADDRINUSE, err "socket
 * PATH is in use by another collector (pid unknown)") when a live socket
 * answers there, removes a stale one, refuses to replace a file that is
 * not a socket. Then SO_PASSCRED, the largest receive buffer allowed (8 MiB
 * with SO_RCVBUFFORCE, else SO_RCVBUF up to the system's maximum), mode
 * (e.g. 0666) and group gid (-1 to leave it). Returns 0 or a negative errno
 * with err filled. */
int col_ingest_listen(struct col_ingest *in, const char *path, mode_t mode, gid_t gid,
                      char *err, size_t errlen);

/* Counts every request and statement in m (metrics.h) too, from now on;
 * call before col_ingest_start(). m must outlive the ingest thread. */
struct col_metrics;
void col_ingest_set_metrics(struct col_ingest *in, struct col_metrics *m);

/* Hands request rows to store (NULL: none) from now on, as
 * col_ingest_start() does; for callers of col_ingest_process() without the
 * thread (tests). store must outlive its use. */
void col_ingest_set_store(struct col_ingest *in, struct col_store *store);

/* The bound socket's path ("" before col_ingest_listen). */
const char *col_ingest_path(const struct col_ingest *in);

/* Also counts every request in windows' summary windows and both
 * requests and statements in ts's 10-second buckets (either may be NULL).
 * Call before col_ingest_start(); both must outlive the ingest thread. */
void col_ingest_attach(struct col_ingest *in, struct col_windows *windows,
                       struct col_tseries *ts);

/* Starts the reading thread, handing raw rows to store (NULL: none are
 * stored), which must outlive it. 0 or a negative errno with err filled. */
int col_ingest_start(struct col_ingest *in, struct col_store *store,
                     char *err, size_t errlen);

/* Stops accepting (unlinks the socket path, so senders by path get an
 * error from now on), reads every datagram already queued in the socket,
 * handing rows to the store without dropping, and joins the thread.
 * Idempotent; harmless when never started. */
void col_ingest_stop(struct col_ingest *in);

/* Stops if needed, closes the socket (unlinking its path if still ours) and
 * frees. NULL is a no-op. */
void col_ingest_free(struct col_ingest *in);

/* Handles one datagram as if received from (pid, uid) at the given clocks.
 * Used by the reading thread, and by tests and fuzzers directly; call from
 * one thread at a time. */
void col_ingest_process(struct col_ingest *in, const uint8_t *buf, size_t len,
                        uint32_t pid, uint32_t uid, int64_t now_mono, int64_t now_real);

/* Records, as aborted requests flagged AP_REQF_KILLED, the requests that
 * processes found gone had announced in flight and not ended
 * (inflight.h): they were killed without a word. The reading thread calls
 * it every second; tests call it directly (one thread at a time, as
 * col_ingest_process()). */
void col_ingest_reap(struct col_ingest *in, int64_t now_mono, int64_t now_real);

struct col_ingest_counters {
	uint64_t datagrams;       /* received, good or bad */
	uint64_t bytes;
	uint64_t datagrams_bad;   /* dropped whole: the sum of the next four */
	uint64_t bad_magic;       /* not our protocol */
	uint64_t bad_version;     /* unknown protocol version */
	uint64_t truncated;       /* header cut short, or larger than 64 KiB */
	uint64_t no_credentials;  /* the kernel gave no sender pid (impossible with SO_PASSCRED) */
	uint64_t records;         /* records decoded */
	uint64_t records_bad;     /* records cut short or malformed, or misdated */
	uint64_t records_misdated;/* of those: dated more than retention_days ago or a day ahead */
	uint64_t records_unknown; /* unknown types, skipped */
	uint64_t requests;        /* request records counted */
	uint64_t requests_ignored;/* ignored_paths */
	uint64_t statements;      /* SQL records counted */
	uint64_t statements_unattributed; /* req_id 0 or ambiguous: service only */
	uint64_t statements_expired;      /* waited in vain for their request */
	uint64_t statements_lost; /* out of memory */
	uint64_t statements_pending;      /* waiting now (kept ones) */
	uint64_t groups_pending;  /* requests with statements waiting now */
	uint64_t socket_recreated;/* times the socket file was removed and bound again */
	uint64_t crashes_symbolised;   /* crash reports named with their modules' files */
	uint64_t crashes_unsymbolised; /* named by module only (COL_INGEST_CRASH_NEW_PER_MIN) */
	uint64_t requests_killed; /* aborted requests made of announcements (col_ingest_reap) */
	uint64_t inflight_pending;/* requests announced in flight, held now */
};

/* Reads the counters (each atomically). Thread-safe. */
void col_ingest_counters(const struct col_ingest *in, struct col_ingest_counters *c);

#endif /* COL_INGEST_H */

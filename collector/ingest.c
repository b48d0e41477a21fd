/*
 * ingest.c - the datagram socket and its reading thread (ingest.h).
 *
 * The thread waits in poll() on the socket and an eventfd that asks it to
 * stop, and reads with recvmmsg() in batches of up to INGEST_VLEN
 * datagrams, each with its SCM_CREDENTIALS. Decoding and classification
 * (path cleaning, ignored paths, route templating, method) happen here,
 * outside the aggregate's lock; the aggregate is locked once per record.
 */
#include "config.h"
#include "ingest.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agg.h"
#include "ap_crash.h"
#include "ap_config.h"
#include "ap_route.h"
#include "ap_sql.h"
#include "ap_wire.h"
#include "col.h"
#include "crash.h"
#include "findings.h"
#include "inflight.h"
#include "log.h"
#include "metrics.h"
#include "profile.h"
#include "sqlreq.h"
#include "stmt.h"
#include "store.h"
#include "timeseries.h"
#include "windows.h"

#define INGEST_VLEN 16
/* How far ahead of our clock a record may be dated (misdated()). */
#define INGEST_MAX_AHEAD_NS (86400 * COL_NS_PER_S)
#define PATH_BUF 4096                 /* longest path kept (after %-escaping) */
#define PRUNE_EVERY_NS (5 * COL_NS_PER_S)
#define REAP_EVERY_NS (1 * COL_NS_PER_S)  /* processes gone with requests in flight */
#define POLL_MS 1000
#define PATH_CHECK_NS (1 * COL_NS_PER_S)  /* is the socket file still there? */
#define COL_MIN_DGRAM_QLEN 128
#define ROW_MAX_N1 64                 /* N+1 findings stored per request */
#define MESSAGE_BUF 1024              /* a 5xx body prefix (the preload sends <= 200) */

/* Crashes awaiting their CRASH record at once (struct col_ingest). */
#define COL_CRASHED_SLOTS 16

struct col_ingest {
	const struct ap_config *cfg;
	struct col_agg *agg;
	struct col_store *store;
	struct col_windows *windows;   /* may be NULL */
	struct col_tseries *tseries;   /* may be NULL */
	struct col_metrics *metrics; /* NULL: none */

	int fd;                   /* the socket, -1 before listen */
	int evfd;                 /* stop request */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;                /* of the socket file we bound, to unlink */
	ino_t ino;                /*   only our own */
	int bound;
	mode_t mode;              /* to bind it again when it is removed */
	gid_t gid;
	pthread_mutex_t path_mu;  /* bound, stopping, dev, ino, fd swaps */
	int stopping;             /* no new binding once stop unlinked the path */
	int path_lost;            /* logged that the path is not ours */

	pthread_t thread;
	int running;
	int draining;             /* read by the ingest thread only */

	struct col_pending *pend;     /* the ingest thread's */
	struct col_inflight *infl;    /* the ingest thread's */
	/* Requests flagged AP_REQF_CRASHED whose CRASH record has not come
	 * yet (ingest thread only): pid, id and stored row, one per process,
	 * for the CRASH record that follows each. Several processes may crash
	 * at once (prefork workers fed the same poison request), their
	 * datagrams interleaved; the oldest slot goes when all are taken. */
	struct crashed { uint32_t pid; uint64_t req; int64_t example; } crashed[COL_CRASHED_SLOTS];
	unsigned crashed_next;

	uint64_t c_datagrams, c_bytes, c_bad, c_magic, c_version, c_trunc, c_nocred,
	         c_records, c_rec_bad, c_rec_unknown, c_requests, c_ignored,
	         c_sql, c_sql_unattr, c_sql_lost, c_rebound, c_misdated, c_crash_sym,
	         c_crash_plain, c_killed, c_infl_pending;
	int misdated_logged;      /* ingest thread only */
	int pid0_logged;          /* ingest thread only */
	/* crash reports logged this minute (ingest thread only) */
	struct col_log_budget crash_log;
	struct col_log_budget crash_new; /* symbolised reports of new error groups */
	/* copies of the pending counters, for other threads */
	uint64_t g_expired, g_pend_stmts, g_pend_groups, g_pend_lost;
};

#define CNT_ADD(in, f, v) __atomic_fetch_add(&(in)->f, (v), __ATOMIC_RELAXED)
#define CNT_GET(in, f) __atomic_load_n(&(in)->f, __ATOMIC_RELAXED)
#define CNT_SET(in, f, v) __atomic_store_n(&(in)->f, (v), __ATOMIC_RELAXED)

/* Counts a failed statement that belongs to no request (or whose request
 * never came) as a service-level error. */
static void service_error(struct col_ingest *in, const char *service, const struct col_stmt *s)
{
	if (!s->failed)
		return;
	char type[COL_ERR_TYPE_MAX];
	col_sql_error_type(s->db, s->error_code, type, sizeof type);
	col_findings_error(col_agg_findings(in->agg), service, NULL, NULL, type,
	                   s->error_message, s->ts_ns, 0);
}

static void on_expired(void *arg, const char *service, const struct col_stmt *s)
{
	service_error(arg, service, s);
}

static void sync_inflight(struct col_ingest *in)
{
	struct col_inflight_counters c;
	col_inflight_counters(in->infl, &c);
	CNT_SET(in, c_infl_pending, c.pending);
}

static void sync_pending(struct col_ingest *in)
{
	struct col_pending_counters pc;
	col_pending_counters(in->pend, &pc);
	CNT_SET(in, g_expired, pc.expired);
	CNT_SET(in, g_pend_stmts, pc.statements);
	CNT_SET(in, g_pend_groups, pc.groups);
	CNT_SET(in, g_pend_lost, pc.lost);
}

void col_ingest_default_path(char *out, size_t outlen)
{
	struct stat st;
	if ((mkdir(COL_SOCKET_DIR, 0755) == 0 || errno == EEXIST) &&
	    stat(COL_SOCKET_DIR, &st) == 0 && S_ISDIR(st.st_mode) &&
	    access(COL_SOCKET_DIR, W_OK | X_OK) == 0)
		snprintf(out, outlen, "%s", COL_SOCKET_RUN);
	else
		snprintf(out, outlen, "%s", COL_SOCKET_TMP);
}

struct col_ingest *col_ingest_new(const struct ap_config *cfg, struct col_agg *agg)
{
	struct col_ingest *in = calloc(1, sizeof *in);
	if (in == NULL)
		return NULL;
	in->cfg = cfg;
	in->agg = agg;
	in->fd = -1;
	in->crash_log = (struct col_log_budget){
		.per_min = COL_INGEST_CRASH_LOG_PER_MIN, .level = COL_LOG_WARN,
		.held_fmt = "%llu more crash reports were not logged",
		.full_fmt = "more than %d crash reports in a minute: the rest are not logged"
		            " until the minute ends (all are in /api/v1/errors)" };
	in->crash_new = (struct col_log_budget){
		.per_min = COL_INGEST_CRASH_NEW_PER_MIN, .level = COL_LOG_WARN,
		.held_fmt = "%llu more crash reports of new error groups were not symbolised",
		.full_fmt = "more than %d crash reports of new error groups in a minute: the"
		            " rest are named by module only until the minute ends (their"
		            " messages say so; /api/v1/status ingest.crashes_unsymbolised)" };
	pthread_mutex_init(&in->path_mu, NULL);
	struct col_pending_opts po = { .expired = on_expired, .arg = in };
	in->pend = col_pending_new(&po);
	in->infl = col_inflight_new(NULL);
	in->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (in->evfd < 0 || in->pend == NULL || in->infl == NULL) {
		if (in->evfd >= 0)
			close(in->evfd);
		col_pending_free(in->pend);
		col_inflight_free(in->infl);
		free(in);
		return NULL;
	}
	return in;
}

void col_ingest_attach(struct col_ingest *in, struct col_windows *windows,
                       struct col_tseries *ts)
{
	in->windows = windows;
	in->tseries = ts;
}

void col_ingest_set_metrics(struct col_ingest *in, struct col_metrics *m)
{
	in->metrics = m;
}

void col_ingest_set_store(struct col_ingest *in, struct col_store *store)
{
	in->store = store;
}

const char *col_ingest_path(const struct col_ingest *in)
{
	return in->path;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Whatever is at path must go before we bind: nothing (fine), a stale
 * socket of a collector that died (removed), or a live one (refused). A
 * datagram connect() tells them apart without sending anything. */
static int clear_path(const struct sockaddr_un *sa, char *err, size_t errlen)
{
	const char *path = sa->sun_path;
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		int e = errno;
		set_err(err, errlen, "socket %s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISSOCK(st.st_mode)) {
		set_err(err, errlen, "socket %s: exists and is not a socket; not replacing it", path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		set_err(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
	int e = errno;
	close(fd);
	if (rc == 0) {
		set_err(err, errlen, "socket %s is in use by another collector (pid unknown)", path);
		return -EADDRINUSE;
	}
	switch (e) {
	case ECONNREFUSED: /* nobody bound: a stale file */
		if (unlink(path) < 0 && errno != ENOENT) {
			e = errno;
			set_err(err, errlen, "socket %s: removing the stale socket: %s", path,
			        strerror(e));
			return -e;
		}
		col_log(COL_LOG_INFO, "removed stale socket %s", path);
		return 0;
	case ENOENT:
		return 0;
	case EPROTOTYPE: /* alive, but a stream socket: not a collector */
		set_err(err, errlen, "socket %s is in use by another program", path);
		return -EADDRINUSE;
	default:
		set_err(err, errlen, "socket %s: %s", path, strerror(e));
		return -e;
	}
}

/* The kernel also caps a datagram socket's queue at net.unix.max_dgram_qlen
 * datagrams, whatever the buffer size: past it, non-blocking senders get
 * EAGAIN and the preload drops. Some systems ship 10, too few for bursts. */
static void warn_qlen(void)
{
	FILE *f = fopen("/proc/sys/net/unix/max_dgram_qlen", "r");
	long q = -1;
	if (f == NULL)
		return;
	if (fscanf(f, "%ld", &q) != 1)
		q = -1;
	fclose(f);
	if (q >= 0 && q < COL_MIN_DGRAM_QLEN)
		col_log(COL_LOG_WARN, "net.unix.max_dgram_qlen is %ld: senders drop events once"
		        " %ld datagrams wait; raise it for bursty traffic"
		        " (sysctl -w net.unix.max_dgram_qlen=1024)", q, q);
}

/* Creates a datagram socket bound at sa's path with SO_PASSCRED, the
 * largest receive buffer allowed, mode and group gid (-1: leave it), and
 * fills *dev and *ino with the socket file's identity. Returns the
 * descriptor, or a negative errno with err filled and nothing left behind
 * (the file it bound is removed again). The path must be free. */
static int bind_socket(const struct sockaddr_un *sa, mode_t mode, gid_t gid, dev_t *dev,
                       ino_t *ino, char *err, size_t errlen)
{
	const char *path = sa->sun_path;
	int rc;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = -errno;
		set_err(err, errlen, "socket: %s", strerror(-rc));
		return rc;
	}
	if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
		rc = -errno;
		if (rc == -EADDRINUSE)
			set_err(err, errlen, "socket %s is in use by another collector (pid unknown)",
			        path);
		else
			set_err(err, errlen, "socket %s: %s", path, strerror(-rc));
		close(fd);
		return rc;
	}
	struct stat st;
	if (stat(path, &st) == 0) {
		*dev = st.st_dev;
		*ino = st.st_ino;
	}

	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
		rc = -errno;
		set_err(err, errlen, "socket %s: SO_PASSCRED: %s", path, strerror(-rc));
		goto fail;
	}
	/* Bursts from many processes land here while we are busy: a big
	 * buffer is the cheapest insurance against drops. SO_RCVBUFFORCE
	 * passes net.core.rmem_max with CAP_NET_ADMIN; without it SO_RCVBUF is
	 * capped there by the kernel. */
	int want = COL_RCVBUF_WANTED, got = 0;
	socklen_t gl = sizeof got;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
	getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);
	col_log(COL_LOG_DEBUG, "socket %s: receive buffer %d bytes", path, got);

	if (chmod(path, mode) < 0) {
		rc = -errno;
		set_err(err, errlen, "socket %s: chmod %03o: %s", path, (unsigned)mode,
		        strerror(-rc));
		goto fail;
	}
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) {
		rc = -errno;
		set_err(err, errlen, "socket %s: chown to group %u: %s", path, (unsigned)gid,
		        strerror(-rc));
		goto fail;
	}
	return fd;
fail:
	unlink(path);
	close(fd);
	return rc;
}

int col_ingest_listen(struct col_ingest *in, const char *path, mode_t mode, gid_t gid,
                      char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		set_err(err, errlen, "socket %s: path longer than %zu bytes", path,
		        sizeof sa.sun_path - 1);
		return -ENAMETOOLONG;
	}
	if (path[0] == '\0') {
		set_err(err, errlen, "socket: empty path");
		return -EINVAL;
	}
	strcpy(sa.sun_path, path);
	int rc = clear_path(&sa, err, errlen);
	if (rc < 0)
		return rc;
	int fd = bind_socket(&sa, mode, gid, &in->dev, &in->ino, err, errlen);
	if (fd < 0)
		return fd;
	warn_qlen();
	in->fd = fd;
	in->bound = 1;
	in->mode = mode;
	in->gid = gid;
	strcpy(in->path, path);
	return 0;
}

/* The ingest thread, about once a second: when the socket file is gone
 * (removed by a /tmp cleaner or by hand), senders, which send by path,
 * lose every event, so bind a new socket there (same mode and group) and
 * read the old one empty before closing it; nobody can reach it any more.
 * A path now held by another file is left alone, logged once. Under
 * path_mu, so col_ingest_stop() never sees a socket appear after its
 * unlink. */
struct rx;
static void read_all(struct col_ingest *in, struct rx *rx, int sock, int until_empty);
static void keep_path(struct col_ingest *in, struct rx *rx)
{
	pthread_mutex_lock(&in->path_mu);
	if (!in->bound || in->stopping)
		goto out;
	struct stat st;
	if (lstat(in->path, &st) == 0) {
		if (st.st_dev == in->dev && st.st_ino == in->ino) {
			in->path_lost = 0;
		} else if (!in->path_lost) {
			col_log(COL_LOG_WARN, "socket %s: replaced by another file; new events"
			        " sent there do not reach this collector", in->path);
			in->path_lost = 1;
		}
		goto out;
	}
	if (errno != ENOENT)
		goto out;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, in->path);
	char err[256];
	dev_t dev = 0;
	ino_t ino = 0;
	int fd = bind_socket(&sa, in->mode, in->gid, &dev, &ino, err, sizeof err);
	if (fd < 0) {
		if (!in->path_lost)
			col_log(COL_LOG_ERROR, "socket %s was removed; re-creating it failed: %s",
			        in->path, err);
		in->path_lost = 1;
		goto out;
	}
	int old = in->fd;
	in->fd = fd;
	in->dev = dev;
	in->ino = ino;
	in->path_lost = 0;
	CNT_ADD(in, c_rebound, 1);
	col_log(COL_LOG_WARN, "socket %s was removed while in use; created it again",
	        in->path);
	read_all(in, rx, old, 1);
	close(old);
out:
	pthread_mutex_unlock(&in->path_mu);
}

/* ---- decoding ---- */

/* 1 (counted, and logged the first time) when a record dated ts_ns, by
 * the sender's clocks, began more than retention_days before now_real or
 * more than INGEST_MAX_AHEAD_NS after it, by ours. Any local process may
 * send, and such dates would make minutes, windows and (PostgreSQL) daily
 * partitions that retention never deletes. A preloaded process sends what
 * it buffered during a collector outage when the collector returns, so
 * its records can be as old as the outage: the bound is retention's,
 * beyond which they would be deleted anyway. */
static int misdated(struct col_ingest *in, uint32_t pid, const char *what, int64_t ts_ns,
                    int64_t now_real)
{
	int64_t past = (int64_t)in->cfg->retention_days * 86400 * COL_NS_PER_S;
	if (ts_ns >= now_real - past && ts_ns <= now_real + INGEST_MAX_AHEAD_NS)
		return 0;
	CNT_ADD(in, c_rec_bad, 1);
	CNT_ADD(in, c_misdated, 1);
	if (!in->misdated_logged) {
		in->misdated_logged = 1;
		char at[COL_TIME_BUF], now[COL_TIME_BUF];
		col_time_format(ts_ns, at, sizeof at);
		col_time_format(now_real, now, sizeof now);
		col_log(COL_LOG_WARN, "refused a %s record of pid %u dated %s (now %s): more than"
		        " retention_days (%d) old or a day ahead; such records are counted in"
		        " /api/v1/status ingest.records_misdated, and not logged again",
		        what, (unsigned)pid, at, now, in->cfg->retention_days);
	}
	return 1;
}

static void on_hello(struct col_ingest *in, uint32_t pid, const struct ap_rec_hello *h)
{
	char service[COL_SERVICE_MAX], exe[COL_EXE_MAX];
	col_clean_text(h->service.p, h->service.len, service, sizeof service);
	col_clean_text(h->exe.p, h->exe.len, exe, sizeof exe);
	/* First: statements of a previous process under this pid expire
	 * under the service it had. */
	col_pending_hello(in->pend, pid, h->start_mono_ns);
	sync_pending(in);
	col_inflight_hello(in->infl, pid, h->start_mono_ns);
	col_agg_hello(in->agg, pid, h->ppid, h->start_mono_ns, service, exe);
}

static void on_sql(struct col_ingest *in, uint32_t pid, const struct ap_batch_hdr *h,
                   const struct ap_rec_sql *r, uint64_t hello_start, int64_t now_mono,
                   int64_t now_real)
{
	if (misdated(in, pid, "SQL", (int64_t)(r->start_ns + (uint64_t)h->wall_minus_mono_ns),
	             now_real))
		return;
	CNT_ADD(in, c_sql, 1);
	struct col_stmt *s = col_stmt_new(r, h->wall_minus_mono_ns,
	                                  in->cfg->slow_query_threshold_ms);
	if (s == NULL) {
		CNT_ADD(in, c_sql_lost, 1);
		return;
	}
	char service[COL_SERVICE_MAX];
	col_agg_sql(in->agg, pid, s, service, sizeof service);
	if (in->tseries)
		col_tseries_sql(in->tseries, service, s->ts_ns, s->duration_ms);
	col_metrics_sql(in->metrics, service, s);
	if (r->req_id == 0 || (r->flags & AP_SQLF_AMBIGUOUS)) {
		CNT_ADD(in, c_sql_unattr, 1);
		service_error(in, service, s);
		col_stmt_free(s);
		return;
	}
	col_pending_add(in->pend, pid, hello_start, r->req_id, service, s, now_mono);
	sync_pending(in);
}

/* The error groups and N+1 patterns of one request, with its statements;
 * example is the id its stored row will have (0: not stored). */
static void request_findings(struct col_ingest *in, const char *service, const char *method,
                             const char *route, int64_t ts_ns, const struct ap_rec_request *r,
                             const char *message, struct col_stmt *const *stmts,
                             uint32_t nstmts, const struct col_n1 *n1, size_t nn1,
                             int64_t example)
{
	struct col_findings *f = col_agg_findings(in->agg);
	for (size_t i = 0; i < nn1; i++)
		col_findings_n1(f, service, method, route, n1[i].fingerprint, n1[i].sql,
		                n1[i].count, ts_ns, example);
	if (r->flags & AP_REQF_CRASHED) {
		/* its error group is the signal's (on_crash) */
	} else if (r->flags & AP_REQF_ABORTED) {
		col_findings_error(f, service, method, route, COL_ABORTED_TYPE,
		                   (r->flags & AP_REQF_KILLED) ? COL_KILLED_MESSAGE
		                                               : COL_ABORTED_MESSAGE,
		                   ts_ns, example);
	} else if (r->status >= 500) {
		char type[16];
		snprintf(type, sizeof type, "HTTP %u", (unsigned)r->status);
		col_findings_error(f, service, method, route, type, message, ts_ns, example);
	}
	for (uint32_t i = 0; i < nstmts; i++) {
		const struct col_stmt *s = stmts[i];
		if (!s->failed)
			continue;
		char type[COL_ERR_TYPE_MAX];
		col_sql_error_type(s->db, s->error_code, type, sizeof type);
		col_findings_error(f, service, method, route, type, s->error_message, s->ts_ns,
		                   example);
	}
}

/* Gives the row copies of the N+1 findings (their texts may live in rs). */
static void row_n1(struct col_row *row, const struct col_n1 *n1, size_t nn1)
{
	if (nn1 == 0)
		return;
	row->n1 = calloc(nn1, sizeof *row->n1);
	if (row->n1 == NULL)
		return;
	for (size_t i = 0; i < nn1; i++) {
		row->n1[i].fingerprint = n1[i].fingerprint;
		row->n1[i].count = n1[i].count;
		row->n1[i].sql = strdup(n1[i].sql);
		if (row->n1[i].sql == NULL)
			break;
		row->nn1 = (uint32_t)i + 1;
	}
}

/* pid's request req_id, stored as `example`, was the one its crash ended:
 * kept for its CRASH record (one slot per process). */
static void crashed_note(struct col_ingest *in, uint32_t pid, uint64_t req_id, int64_t example)
{
	struct crashed *slot = NULL;
	for (unsigned i = 0; i < COL_CRASHED_SLOTS && !slot; i++)
		if (in->crashed[i].pid == pid)
			slot = &in->crashed[i];
	for (unsigned i = 0; i < COL_CRASHED_SLOTS && !slot; i++)
		if (in->crashed[i].pid == 0)
			slot = &in->crashed[i];
	if (!slot)
		slot = &in->crashed[in->crashed_next++ % COL_CRASHED_SLOTS];
	*slot = (struct crashed){ pid, req_id, example };
}

/* The example noted for pid's crash of request req_id (0: none), and its
 * slot freed: a process's crash is reported once. */
static int64_t crashed_take(struct col_ingest *in, uint32_t pid, uint64_t req_id)
{
	for (unsigned i = 0; i < COL_CRASHED_SLOTS; i++) {
		struct crashed *c = &in->crashed[i];
		if (c->pid != pid)
			continue;
		int64_t example = req_id != 0 && c->req == req_id ? c->example : 0;
		*c = (struct crashed){ 0, 0, 0 };
		return example;
	}
	return 0;
}

/* Folds each run of ASCII white space (a body's line breaks, CRLF, tabs) in
 * s[0..n) to one space and drops it at both ends, in place; returns the new
 * length. A 5xx body is mostly HTML or JSON ending in a newline, and
 * col_clean_text() would make every line break a '?', which reads like a
 * scrubbed value. */
static size_t fold_space(char *s, size_t n)
{
	size_t o = 0;
	int pending = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
			pending = o > 0;
			continue;
		}
		if (pending)
			s[o++] = ' ';
		pending = 0;
		s[o++] = c;
	}
	return o;
}

static void on_request(struct col_ingest *in, uint32_t pid, const struct ap_batch_hdr *h,
                       const struct ap_rec_request *r, int64_t now_real)
{
	/* Its statements, whatever becomes of the request. */
	struct col_reqsql *rs = col_pending_take(in->pend, pid, r->req_id);
	if (rs != NULL)
		sync_pending(in);
	/* Times are the sender's CLOCK_MONOTONIC; its batch header carries
	 * the offset to wall time read when the batch was sent. */
	int64_t ts_ns = (int64_t)(r->start_ns + (uint64_t)h->wall_minus_mono_ns);
	if (misdated(in, pid, "request", ts_ns, now_real)) {
		col_reqsql_free(rs);
		return;
	}
	char path[PATH_BUF];
	size_t plen = col_clean_path(r->path.p, r->path.len, path, sizeof path);
	if (ap_config_path_ignored(in->cfg, path, plen)) {
		/* Its statements counted for the service on arrival. */
		CNT_ADD(in, c_ignored, 1);
		col_reqsql_free(rs);
		return;
	}
	CNT_ADD(in, c_requests, 1);
	char route[AP_ROUTE_MAX];
	ap_route_of(in->cfg->route_set, path, plen, route, sizeof route);
	const char *method = col_method_name(col_method_of(r->method.p, r->method.len));

	struct col_obs o = { 0 };
	int aborted = (r->flags & AP_REQF_ABORTED) != 0;
	int crashed = aborted && (r->flags & AP_REQF_CRASHED);
	o.duration_ms = r->end_ns > r->start_ns ? (double)(r->end_ns - r->start_ns) / 1e6 : 0;
	o.error = r->status >= 500 || aborted;
	o.slow = o.duration_ms >= in->cfg->slow_request_threshold_ms;

	struct col_n1 n1[ROW_MAX_N1];
	size_t nn1 = 0;
	int sql_failed = 0;
	if (rs != NULL) {
		o.sql_count = rs->count;
		o.sql_time_ms = rs->time_ms;
		nn1 = col_reqsql_n1(rs, in->cfg->n_plus_one_threshold, n1, ROW_MAX_N1);
		if (nn1 > ROW_MAX_N1)
			nn1 = ROW_MAX_N1;
		o.n_plus_one = nn1 > 0;
		for (uint32_t i = 0; i < rs->n && !sql_failed; i++)
			sql_failed = rs->v[i]->failed;
	}

	char service[COL_SERVICE_MAX];
	col_agg_request(in->agg, pid, method, route, ts_ns, &o, service, sizeof service);
	if (in->windows) {
		uint64_t fps[ROW_MAX_N1];
		const char *sqls[ROW_MAX_N1];
		for (size_t i = 0; i < nn1; i++) {
			fps[i] = n1[i].fingerprint;
			sqls[i] = n1[i].sql;
		}
		col_windows_request(in->windows, service, method, route, ts_ns, &o, fps, sqls, nn1);
	}
	if (in->tseries)
		col_tseries_request(in->tseries, service, ts_ns, o.duration_ms);
	col_metrics_request(in->metrics, service, method, route, r->status,
	                    !aborted ? 0 : crashed ? COL_METRICS_CRASHED : COL_METRICS_ABORTED,
	                    o.duration_ms / 1000.0, r->bytes_in, r->bytes_out, o.n_plus_one);

	char message[MESSAGE_BUF] = "";
	if (r->status >= 500 && r->message.len) {
		/* The preload scrubbed it already; scrub again in case the sender
		 * is an older or foreign one (scrubbed text passes unchanged in
		 * practice, and never grows). */
		char scrubbed[MESSAGE_BUF];
		size_t sn = ap_sql_scrub_http_body(r->message.p, r->message.len, scrubbed,
		                                   sizeof scrubbed);
		sn = fold_space(scrubbed, sn);
		col_clean_text(scrubbed, sn, message, sizeof message);
	}

	/* Slow, failed, N+1 and SQL-failure requests are always stored: the
	 * findings point at them as examples. */
	struct col_row *row = NULL;
	int64_t example = 0;
	if (in->store != NULL &&
	    col_store_admit(in->store, o.slow || o.error || o.n_plus_one || sql_failed, now_real))
		row = col_row_new(service, path, route);
	struct col_stmt *const *stmts = rs ? rs->v : NULL;
	uint32_t nstmts = rs ? rs->n : 0;
	if (row != NULL) {
		/* Every pushed row gets an id of ours, so that SQLite never picks
		 * one we hand out later. */
		row->id = col_store_next_id(in->store);
		row->ts_ns = ts_ns;
		row->pid = pid;
		row->tid = r->tid;
		row->status = r->status;
		row->duration_ms = o.duration_ms;
		row->bytes_in = r->bytes_in;
		row->bytes_out = r->bytes_out;
		row->sql_count = o.sql_count;
		row->sql_time_ms = o.sql_time_ms;
		row->slow = (uint8_t)o.slow;
		row->error = (uint8_t)o.error;
		row->aborted = (uint8_t)aborted;
		row->n_plus_one = (uint8_t)o.n_plus_one;
		row->method = method;
		if (message[0])
			row->message = strdup(message);
		else if (r->flags & AP_REQF_KILLED)
			row->message = strdup(COL_KILLED_MESSAGE);
		row_n1(row, n1, nn1);
		if (rs != NULL) {
			/* The statements (and the N+1 texts in n1) stay alive
			 * until the push below hands the row over. */
			row->stmts = col_reqsql_steal(rs, &row->nstmts);
			stmts = row->stmts;
			nstmts = row->nstmts;
		}
		/* An example only if it will be queued, whole: its statements
		 * and bytes fit (the ingest thread is the only producer). */
		if (in->draining ||
		    col_store_has_room(in->store, row->nstmts, col_row_bytes(row)))
			example = row->id;
	}
	request_findings(in, service, method, route, ts_ns, r, message, stmts, nstmts, n1, nn1,
	                 example);
	if (crashed) {
		/* Its CRASH record comes next from that process: the example
		 * of the signal's error group. */
		crashed_note(in, pid, r->req_id, example);
	}
	if (row != NULL)
		col_store_push(in->store, row, in->draining);
	col_reqsql_free(rs);
}

/* A fatal signal: an error group of the request it interrupted (or of the
 * service), named after the signal, with the symbolised stack as its
 * message; the full backtrace goes to the log, at most
 * COL_INGEST_CRASH_LOG_PER_MIN a minute (any local process may send them,
 * hundreds a datagram). Symbolising reads ELF files (about a millisecond a
 * report, a thousand times a request record's cost), so it is bounded too:
 * COL_INGEST_CRASH_NEW_PER_MIN. */
static void on_crash(struct col_ingest *in, uint32_t pid, const struct ap_batch_hdr *h,
                     const struct ap_rec_crash *c, int64_t now_mono, int64_t now_real)
{
	if (misdated(in, pid, "crash", (int64_t)(c->time_ns + (uint64_t)h->wall_minus_mono_ns),
	             now_real)) {
		crashed_take(in, pid, c->req_id);
		return;
	}
	char service[COL_SERVICE_MAX];
	col_clean_text(c->service.p, c->service.len, service, sizeof service);
	if (service[0] == '\0')
		snprintf(service, sizeof service, "%s", COL_UNKNOWN_SERVICE);
	const char *method = NULL, *rp = NULL;
	char route[AP_ROUTE_MAX];
	if (c->path.len > 0) {
		char path[PATH_BUF];
		size_t plen = col_clean_path(c->path.p, c->path.len, path, sizeof path);
		ap_route_of(in->cfg->route_set, path, plen, route, sizeof route);
		method = col_method_name(col_method_of(c->method.p, c->method.len));
		rp = route;
	}
	const char *type = ap_crash_signame(c->signo);
	struct col_findings *f = col_agg_findings(in->agg);
	/* Symbolising reads the modules' files (about a millisecond): done
	 * for the reports that are logged, and for the first of an error
	 * group (its message), a bounded number a minute each. The rest are
	 * named by module only, and their group keeps its message. */
	int logged = col_log_budget_take(&in->crash_log, now_mono);
	int files = logged || (!col_findings_error_known(f, service, method, rp, type) &&
	                       col_log_budget_take(&in->crash_new, now_mono));
	char msg[COL_CRASH_MESSAGE_MAX];
	char *detail = logged ? malloc(COL_CRASH_DETAIL_MAX) : NULL;
	size_t detlen = detail ? COL_CRASH_DETAIL_MAX : 0;
	if (files) {
		col_crash_describe(c, pid, msg, sizeof msg, detail, detlen);
		CNT_ADD(in, c_crash_sym, 1);
	} else {
		col_crash_describe_modules(c, pid, msg, sizeof msg, NULL, 0);
		size_t k = strlen(msg);
		snprintf(msg + k, sizeof msg - k, " %s", COL_INGEST_CRASH_UNSYMBOLISED);
		CNT_ADD(in, c_crash_plain, 1);
	}
	int64_t ts = (int64_t)(c->time_ns + (uint64_t)h->wall_minus_mono_ns);
	int64_t example = crashed_take(in, pid, c->req_id); /* the aborted request it ended */
	if (files)
		col_findings_error(f, service, method, rp, type, msg, ts, example);
	else
		col_findings_error_keep(f, service, method, rp, type, msg, ts, example);
	col_metrics_error(in->metrics, service, rp, type);
	if (logged)
		col_log(COL_LOG_WARN, "crash of pid %u (service %s)%s%s%s%s: %s", (unsigned)pid,
		        service, rp ? " during " : "", rp ? method : "", rp ? " " : "",
		        rp ? rp : "", detail ? detail : msg);
	free(detail);
}

/* One folded stack of a profiled request: attributed like its request
 * (path cleaned, ignored paths skipped, route templated). */
static void on_profile(struct col_ingest *in, uint32_t pid, const struct ap_rec_profile *r)
{
	char path[PATH_BUF];
	size_t plen = col_clean_path(r->path.p, r->path.len, path, sizeof path);
	if (ap_config_path_ignored(in->cfg, path, plen))
		return;
	char route[AP_ROUTE_MAX];
	ap_route_of(in->cfg->route_set, path, plen, route, sizeof route);
	const char *method = col_method_name(col_method_of(r->method.p, r->method.len));
	char service[COL_SERVICE_MAX];
	col_agg_profile_key(in->agg, pid, route, service, sizeof service);
	/* The text goes into folded output (text/plain, read on terminals and
	 * by flamegraph.pl): cleaned like every other string from the wire,
	 * so no newline, NUL, escape sequence or invalid UTF-8 gets there. */
	char stack[65536];
	size_t n = col_clean_text(r->stack.p, r->stack.len, stack, sizeof stack);
	col_prof_add(col_agg_profiles(in->agg), service, method, route,
	             ((uint64_t)pid << 40) ^ r->req_id, stack, n, r->count);

}

void col_ingest_process(struct col_ingest *in, const uint8_t *buf, size_t len,
                        uint32_t pid, uint32_t uid, int64_t now_mono, int64_t now_real)
{
	struct ap_batch_hdr h;
	CNT_ADD(in, c_datagrams, 1);
	CNT_ADD(in, c_bytes, len);
	int off = ap_wire_get_batch_hdr(buf, len, &h);
	if (off < 0) {
		CNT_ADD(in, c_bad, 1);
		if (off == -EPROTO)
			CNT_ADD(in, c_magic, 1);
		else if (off == -EPROTONOSUPPORT)
			CNT_ADD(in, c_version, 1);
		else
			CNT_ADD(in, c_trunc, 1);
		return;
	}
	col_agg_datagram(in->agg, pid, uid, now_mono, now_real);
	size_t pos = (size_t)off;
	uint16_t type;
	const uint8_t *p;
	uint32_t plen;
	int rc;
	uint64_t hello_start = 0; /* of this datagram's HELLO, for its statements */
	while ((rc = ap_wire_next_rec(buf, len, &pos, &type, &p, &plen)) == 1) {
		CNT_ADD(in, c_records, 1);
		switch (type) {
		case AP_REC_HELLO: {
			struct ap_rec_hello hello;
			if (ap_wire_get_hello(p, plen, &hello) < 0) {
				CNT_ADD(in, c_rec_bad, 1);
			} else {
				on_hello(in, pid, &hello);
				hello_start = hello.start_mono_ns;
			}
			break;
		}
		case AP_REC_SQL: {
			struct ap_rec_sql sql;
			if (ap_wire_get_sql(p, plen, &sql) < 0)
				CNT_ADD(in, c_rec_bad, 1);
			else
				on_sql(in, pid, &h, &sql, hello_start, now_mono, now_real);
			break;
		}
		case AP_REC_REQUEST: {
			struct ap_rec_request req;
			if (ap_wire_get_request(p, plen, &req) < 0) {
				CNT_ADD(in, c_rec_bad, 1);
			} else {
				/* Only the collector makes these (col_ingest_reap). */
				req.flags &= (uint16_t)~AP_REQF_KILLED;
				on_request(in, pid, &h, &req, now_real);
				if (col_inflight_done(in->infl, pid, req.req_id))
					sync_inflight(in);
			}
			break;
		}
		case AP_REC_INFLIGHT: {
			struct ap_rec_inflight a;
			if (ap_wire_get_inflight(p, plen, &a) < 0) {
				CNT_ADD(in, c_rec_bad, 1);
			} else {
				col_inflight_note(in->infl, pid, hello_start, &a, h.wall_minus_mono_ns,
				                  now_mono);
				sync_inflight(in);
			}
			break;
		}
		case AP_REC_PROFILE: {
			struct ap_rec_profile prof;
			if (ap_wire_get_profile(p, plen, &prof) < 0)
				CNT_ADD(in, c_rec_bad, 1);
			else
				on_profile(in, pid, &prof);
			break;
		}
		case AP_REC_STATS: {
			struct ap_rec_stats s;
			if (ap_wire_get_stats(p, plen, &s) < 0)
				CNT_ADD(in, c_rec_bad, 1);
			else
				col_agg_proc_stats(in->agg, pid, s.events, s.dropped, s.untracked_conns);
			break;
		}
		case AP_REC_CRASH: {
			struct ap_rec_crash cr;
			if (ap_wire_get_crash(p, plen, &cr) < 0)
				CNT_ADD(in, c_rec_bad, 1);
			else
				on_crash(in, pid, &h, &cr, now_mono, now_real);
			break;
		}
		default:
			CNT_ADD(in, c_rec_unknown, 1);
			break;
		}
	}
	if (rc < 0) /* the rest of the datagram is unreadable */
		CNT_ADD(in, c_rec_bad, 1);
}

/* A request of a process found gone (col_inflight_reap()): aborted, and
 * flagged as the collector's. */
struct reap_ctx {
	struct col_ingest *in;
	int64_t now_real;
};

static void on_killed(void *arg, uint32_t pid, const struct col_inflight_req *q, uint64_t end_ns,
                      int64_t wall_minus_mono)
{
	struct reap_ctx *ctx = arg;
	struct ap_batch_hdr h = { .pid = pid, .wall_minus_mono_ns = wall_minus_mono };
	struct ap_rec_request r = {
		.req_id = q->req_id, .start_ns = q->start_ns, .end_ns = end_ns,
		.bytes_in = q->bytes_in, .status = 0,
		.flags = (uint16_t)((q->req_flags & ~AP_REQF_CRASHED) | AP_REQF_ABORTED |
		                    AP_REQF_KILLED),
		.method = { q->method, q->mlen }, .path = { q->path, q->plen },
		.message = { "", 0 },
	};
	CNT_ADD(ctx->in, c_killed, 1);
	on_request(ctx->in, pid, &h, &r, ctx->now_real);
}

void col_ingest_reap(struct col_ingest *in, int64_t now_mono, int64_t now_real)
{
	struct reap_ctx ctx = { in, now_real };
	size_t n = col_inflight_reap(in->infl, now_mono, on_killed, &ctx);
	if (n)
		col_log(COL_LOG_INFO, "%zu request(s) in flight in processes that died without"
		        " reporting them (SIGKILL?) recorded as aborted", n);
	sync_inflight(in);
}

/* ---- the thread ---- */

struct rx {
	struct mmsghdr msgs[INGEST_VLEN];
	struct iovec iov[INGEST_VLEN];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct ucred))];
	} ctl[INGEST_VLEN];
	uint8_t data[INGEST_VLEN][AP_WIRE_MAX_DATAGRAM];
};

/* Reads datagrams from sock until it is empty (or, unless until_empty,
 * until a stop is requested). */
static void read_all(struct col_ingest *in, struct rx *rx, int sock, int until_empty)
{
	for (;;) {
		for (int i = 0; i < INGEST_VLEN; i++) {
			rx->iov[i] = (struct iovec){ rx->data[i], sizeof rx->data[i] };
			rx->msgs[i].msg_hdr = (struct msghdr){
				.msg_iov = &rx->iov[i],
				.msg_iovlen = 1,
				.msg_control = rx->ctl[i].buf,
				.msg_controllen = sizeof rx->ctl[i].buf,
			};
			rx->msgs[i].msg_len = 0;
		}
		int n = recvmmsg(sock, rx->msgs, INGEST_VLEN, MSG_DONTWAIT | MSG_CMSG_CLOEXEC, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				col_log(COL_LOG_WARN, "socket %s: recvmmsg: %s", in->path, strerror(errno));
			return;
		}
		int64_t now_mono = col_clock_mono_ns(), now_real = col_clock_real_ns();
		for (int i = 0; i < n; i++) {
			struct msghdr *mh = &rx->msgs[i].msg_hdr;
			const struct ucred *cred = NULL;
			struct ucred uc;
			for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
				if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
				    c->cmsg_len >= CMSG_LEN(sizeof uc)) {
					memcpy(&uc, CMSG_DATA(c), sizeof uc);
					cred = &uc;
				}
				/* A sender may pass descriptors; never keep them. */
				if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
					size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
					for (size_t k = 0; k < nfd; k++) {
						int fd;
						memcpy(&fd, CMSG_DATA(c) + k * sizeof fd, sizeof fd);
						close(fd);
					}
				}
			}
			if (mh->msg_flags & MSG_TRUNC) {
				CNT_ADD(in, c_datagrams, 1);
				CNT_ADD(in, c_bad, 1);
				CNT_ADD(in, c_trunc, 1);
				continue;
			}
			if (cred == NULL) {
				CNT_ADD(in, c_datagrams, 1);
				CNT_ADD(in, c_bad, 1);
				CNT_ADD(in, c_nocred, 1);
				continue;
			}
			if (cred->pid == 0 && !in->pid0_logged) {
				/* The kernel translates a sender's pid into our pid
				 * namespace, 0 when it is outside it. */
				in->pid0_logged = 1;
				col_log(COL_LOG_WARN, "a sender (uid %u) runs in a pid namespace this"
				        " collector cannot see (another container): its pid reads"
				        " as 0, and every such process shows as one process, pid 0;"
				        " run the collector in the servers' pid namespace (the same"
				        " container, or docker run --pid=host)", (unsigned)cred->uid);
			}
			col_ingest_process(in, rx->data[i], rx->msgs[i].msg_len, (uint32_t)cred->pid,
			                   (uint32_t)cred->uid, now_mono, now_real);
		}
		if (until_empty)
			continue; /* until EAGAIN: every queued datagram */
		if (n < INGEST_VLEN)
			return; /* the socket is (very likely) empty */
		/* A stop request is noticed even under a flood. */
		struct pollfd p = { in->evfd, POLLIN, 0 };
		if (poll(&p, 1, 0) > 0 && (p.revents & POLLIN))
			return;
	}
}

/* 0 when no process has this pid any more (kill() says ESRCH; the
 * kernel gave us the pid as seen in our own pid namespace). EPERM means it
 * exists under another user. */
static int pid_alive(uint32_t pid)
{
	int e = errno;
	int gone = pid == 0 || pid > INT32_MAX || (kill((pid_t)pid, 0) < 0 && errno == ESRCH);
	errno = e;
	return !gone;
}

static void *ingest_main(void *arg)
{
	struct col_ingest *in = arg;
	struct rx *rx = malloc(sizeof *rx);
	if (rx == NULL) {
		col_log(COL_LOG_ERROR, "ingest: out of memory; nothing will be received");
		return NULL;
	}
	int64_t next_prune = col_clock_mono_ns() + PRUNE_EVERY_NS;
	int64_t next_reap = col_clock_mono_ns() + REAP_EVERY_NS;
	int64_t next_path_check = col_clock_mono_ns() + PATH_CHECK_NS;
	for (;;) {
		struct pollfd p[2] = { { in->fd, POLLIN, 0 }, { in->evfd, POLLIN, 0 } };
		int n = poll(p, 2, POLL_MS);
		if (n < 0 && errno != EINTR) {
			col_log(COL_LOG_ERROR, "ingest: poll: %s", strerror(errno));
			break;
		}
		if (n > 0 && (p[1].revents & POLLIN))
			break;
		if (n > 0 && (p[0].revents & POLLIN))
			read_all(in, rx, in->fd, 0);
		int64_t now = col_clock_mono_ns();
		if (now >= next_path_check) {
			keep_path(in, rx);
			next_path_check = now + PATH_CHECK_NS;
		}
		if (col_pending_expire(in->pend, now) > 0)
			sync_pending(in);
		if (now >= next_reap) {
			col_ingest_reap(in, now, col_clock_real_ns());
			next_reap = now + REAP_EVERY_NS;
		}
		if (now >= next_prune) {
			size_t gone = col_agg_prune(in->agg, now, COL_PROC_IDLE_NS, COL_PROC_GONE_NS,
			                            pid_alive);
			if (gone)
				col_log(COL_LOG_DEBUG, "forgot %zu processes (exited, or silent for"
				        " 10 minutes)", gone);
			next_prune = now + PRUNE_EVERY_NS;
		}
	}
	/* Stopping: the path is gone, so read what is already queued, letting
	 * the store make room rather than dropping. */
	in->draining = 1;
	read_all(in, rx, in->fd, 1);
	free(rx);
	/* Requests still waiting for their record will not get it from us:
	 * count their statements' errors now, while the store still runs. */
	col_pending_expire_all(in->pend);
	sync_pending(in);
	return NULL;
}

int col_ingest_start(struct col_ingest *in, struct col_store *store,
                     char *err, size_t errlen)
{
	if (in->fd < 0) {
		set_err(err, errlen, "ingest: no socket");
		return -EBADF;
	}
	in->store = store;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&in->thread, NULL, ingest_main, in);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		set_err(err, errlen, "starting the ingest thread: %s", strerror(rc));
		return -rc;
	}
	in->running = 1;
	return 0;
}

/* Unlinks the socket path if it is still the file we bound (a new
 * collector may have replaced it after we were told to stop). */
static void unlink_ours(struct col_ingest *in)
{
	struct stat st;
	pthread_mutex_lock(&in->path_mu);
	in->stopping = 1;
	if (in->bound && stat(in->path, &st) == 0 && st.st_dev == in->dev &&
	    st.st_ino == in->ino)
		unlink(in->path);
	in->bound = 0;
	pthread_mutex_unlock(&in->path_mu);
}

void col_ingest_stop(struct col_ingest *in)
{
	if (in == NULL)
		return;
	unlink_ours(in);
	if (!in->running)
		return;
	uint64_t one = 1;
	if (write(in->evfd, &one, sizeof one) < 0)
		col_log(COL_LOG_WARN, "ingest: stop request: %s", strerror(errno));
	pthread_join(in->thread, NULL);
	in->running = 0;
}

void col_ingest_free(struct col_ingest *in)
{
	if (in == NULL)
		return;
	col_ingest_stop(in);
	if (in->fd >= 0)
		close(in->fd);
	close(in->evfd);
	col_pending_free(in->pend);
	col_inflight_free(in->infl);
	pthread_mutex_destroy(&in->path_mu);
	free(in);
}

void col_ingest_counters(const struct col_ingest *in, struct col_ingest_counters *c)
{
	c->datagrams = CNT_GET(in, c_datagrams);
	c->bytes = CNT_GET(in, c_bytes);
	c->datagrams_bad = CNT_GET(in, c_bad);
	c->bad_magic = CNT_GET(in, c_magic);
	c->bad_version = CNT_GET(in, c_version);
	c->truncated = CNT_GET(in, c_trunc);
	c->no_credentials = CNT_GET(in, c_nocred);
	c->records = CNT_GET(in, c_records);
	c->records_bad = CNT_GET(in, c_rec_bad);
	c->records_unknown = CNT_GET(in, c_rec_unknown);
	c->requests = CNT_GET(in, c_requests);
	c->requests_ignored = CNT_GET(in, c_ignored);
	c->statements = CNT_GET(in, c_sql);
	c->statements_unattributed = CNT_GET(in, c_sql_unattr);
	c->statements_expired = CNT_GET(in, g_expired);
	c->statements_lost = CNT_GET(in, c_sql_lost) + CNT_GET(in, g_pend_lost);
	c->statements_pending = CNT_GET(in, g_pend_stmts);
	c->groups_pending = CNT_GET(in, g_pend_groups);
	c->socket_recreated = CNT_GET(in, c_rebound);
	c->records_misdated = CNT_GET(in, c_misdated);
	c->crashes_symbolised = CNT_GET(in, c_crash_sym);
	c->crashes_unsymbolised = CNT_GET(in, c_crash_plain);
	c->requests_killed = CNT_GET(in, c_killed);
	c->inflight_pending = CNT_GET(in, c_infl_pending);
}

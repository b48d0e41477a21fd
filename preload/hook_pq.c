/*
 * hook_pq.c - statements through libpq.
 *
 * Synchronous calls (PQexec, PQexecParams, PQprepare, PQexecPrepared) are
 * timed around the real call. Asynchronous ones (PQsendQuery*, used by
 * psycopg2 with a wait callback, and by event-driven C code) are timed from
 * the send to the NULL PQgetResult that ends them, per connection. libpq's
 * PQexec calls PQsendQuery and PQgetResult itself, through its PLT, so
 * through us: pl_db_depth makes those inner calls pass straight through.
 *
 * No libpq header is needed: the few types are opaque pointers and the
 * enum values below are libpq's stable ABI.
 */
#include "config.h"
#include "libcopy.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
typedef unsigned int Oid;

enum { PGRES_COMMAND_OK = 1, PGRES_TUPLES_OK = 2, PGRES_BAD_RESPONSE = 5,
       PGRES_NONFATAL_ERROR = 6, PGRES_FATAL_ERROR = 7, PGRES_SINGLE_TUPLE = 9,
       PGRES_PIPELINE_SYNC = 10, PGRES_PIPELINE_ABORTED = 11 };
enum { PQ_PIPELINE_OFF = 0 };
#define PG_DIAG_SQLSTATE 'C'
#define PG_DIAG_MESSAGE_PRIMARY 'M'

/* The functions used, indexed into what pl_copy_fns returns: the copy of
 * libpq the caller reaches (libcopy.h; a process may hold two), found on
 * first use from each calling object, since libpq may be loaded after us,
 * and RTLD_LOCAL by Python. All are in every libpq since 8.0. */
enum { PQ_exec, PQ_exec_params, PQ_prepare, PQ_exec_prepared, PQ_send_query,
       PQ_send_query_params, PQ_send_query_prepared, PQ_get_result, PQ_finish,
       PQ_result_status, PQ_ntuples, PQ_cmd_tuples, PQ_error_field, PQ_error_message,
       PQ_send_prepare, PQ_send_describe_prepared, PQ_send_describe_portal,
       PQ_REQUIRED, /* in every libpq since 8.2 */
       PQ_pipeline_status = PQ_REQUIRED, PQ_enter_pipeline_mode, /* libpq 14 */
       PQ_send_close_prepared, PQ_send_close_portal, /* libpq 17 */
       PQ_N };
typedef PGresult *(*pq_exec_fn)(PGconn *, const char *);
typedef PGresult *(*pq_exec_params_fn)(PGconn *, const char *, int, const Oid *,
                                       const char *const *, const int *, const int *, int);
typedef PGresult *(*pq_prepare_fn)(PGconn *, const char *, const char *, int, const Oid *);
typedef PGresult *(*pq_exec_prepared_fn)(PGconn *, const char *, int, const char *const *,
                                         const int *, const int *, int);
typedef int (*pq_send_query_fn)(PGconn *, const char *);
typedef int (*pq_send_query_params_fn)(PGconn *, const char *, int, const Oid *,
                                       const char *const *, const int *, const int *, int);
typedef int (*pq_send_query_prepared_fn)(PGconn *, const char *, int, const char *const *,
                                         const int *, const int *, int);
typedef PGresult *(*pq_get_result_fn)(PGconn *);
typedef void (*pq_finish_fn)(PGconn *);
typedef int (*pq_result_status_fn)(const PGresult *);
typedef int (*pq_ntuples_fn)(const PGresult *);
typedef char *(*pq_cmd_tuples_fn)(PGresult *);
typedef char *(*pq_error_field_fn)(const PGresult *, int);
typedef char *(*pq_error_message_fn)(const PGconn *);
typedef int (*pq_send_prepare_fn)(PGconn *, const char *, const char *, int, const Oid *);
typedef int (*pq_send_describe_prepared_fn)(PGconn *, const char *);
typedef int (*pq_send_describe_portal_fn)(PGconn *, const char *);
typedef int (*pq_pipeline_status_fn)(const PGconn *);
typedef int (*pq_enter_pipeline_mode_fn)(PGconn *);
typedef int (*pq_send_close_prepared_fn)(PGconn *, const char *);
typedef int (*pq_send_close_portal_fn)(PGconn *, const char *);

/* f's function `name`. */
#define PQF(f, name) ((pq_##name##_fn)(f)[PQ_##name])

static const char *const pq_names[PQ_N] = {
	"PQexec", "PQexecParams", "PQprepare", "PQexecPrepared", "PQsendQuery",
	"PQsendQueryParams", "PQsendQueryPrepared", "PQgetResult", "PQfinish",
	"PQresultStatus", "PQntuples", "PQcmdTuples", "PQresultErrorField", "PQerrorMessage",
	"PQsendPrepare", "PQsendDescribePrepared", "PQsendDescribePortal", "PQpipelineStatus",
	"PQenterPipelineMode", "PQsendClosePrepared", "PQsendClosePortal",
};
EXPORT PGresult *PQexec(PGconn *, const char *);
EXPORT PGresult *PQexecParams(PGconn *, const char *, int, const Oid *, const char *const *,
                              const int *, const int *, int);
EXPORT PGresult *PQprepare(PGconn *, const char *, const char *, int, const Oid *);
EXPORT PGresult *PQexecPrepared(PGconn *, const char *, int, const char *const *, const int *,
                                const int *, int);
EXPORT int PQsendQuery(PGconn *, const char *);
EXPORT int PQsendQueryParams(PGconn *, const char *, int, const Oid *, const char *const *,
                             const int *, const int *, int);
EXPORT int PQsendQueryPrepared(PGconn *, const char *, int, const char *const *, const int *,
                               const int *, int);
EXPORT PGresult *PQgetResult(PGconn *);
EXPORT void PQfinish(PGconn *);
EXPORT int PQsendPrepare(PGconn *, const char *, const char *, int, const Oid *);
EXPORT int PQsendDescribePrepared(PGconn *, const char *);
EXPORT int PQsendDescribePortal(PGconn *, const char *);
EXPORT int PQenterPipelineMode(PGconn *);
EXPORT int PQsendClosePrepared(PGconn *, const char *);
EXPORT int PQsendClosePortal(PGconn *, const char *);
_Static_assert(PQ_N <= PL_COPY_MAXFN, "PL_COPY_MAXFN too small");
static const void *const pq_self[PQ_N] = {
	[PQ_exec] = (const void *)PQexec, [PQ_exec_params] = (const void *)PQexecParams,
	[PQ_prepare] = (const void *)PQprepare, [PQ_exec_prepared] = (const void *)PQexecPrepared,
	[PQ_send_query] = (const void *)PQsendQuery,
	[PQ_send_query_params] = (const void *)PQsendQueryParams,
	[PQ_send_query_prepared] = (const void *)PQsendQueryPrepared,
	[PQ_get_result] = (const void *)PQgetResult, [PQ_finish] = (const void *)PQfinish,
	[PQ_send_prepare] = (const void *)PQsendPrepare,
	[PQ_send_describe_prepared] = (const void *)PQsendDescribePrepared,
	[PQ_send_describe_portal] = (const void *)PQsendDescribePortal,
	[PQ_enter_pipeline_mode] = (const void *)PQenterPipelineMode,
	[PQ_send_close_prepared] = (const void *)PQsendClosePrepared,
	[PQ_send_close_portal] = (const void *)PQsendClosePortal,
};
static struct pl_copy_lib pq_lib = { .what = "libpq", .names = pq_names, .self = pq_self,
                                     .n = PQ_N, .nreq = PQ_REQUIRED };
struct pl_copy_lib *const pl_copy_lib_pq = &pq_lib; /* gotpatch.c */

/* The caller's copy: in each exported hook itself, so the return address is
 * its caller's. NULL: none can be determined, call nothing. */
#define PQ_FNS() pl_copy_fns(&pq_lib, __builtin_return_address(0))

/* Reads rows or the error out of one result. */
static void read_result(void *const *f, PGconn *conn, PGresult *r, struct pl_stmt_result *out)
{
	if (!r) {
		out->failed = 1;
		out->message = PQF(f, error_message)(conn);
		return;
	}
	int st = PQF(f, result_status)(r);
	if (st == PGRES_TUPLES_OK || st == PGRES_SINGLE_TUPLE) {
		out->rows += (uint64_t)PQF(f, ntuples)(r);
		out->rows_known = 1;
	} else if (st == PGRES_COMMAND_OK) {
		const char *t = PQF(f, cmd_tuples)(r);
		if (t && *t) {
			out->rows += strtoull(t, NULL, 10);
			out->rows_known = 1;
		}
	} else if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE ||
	           st == PGRES_PIPELINE_ABORTED) {
		out->failed = 1;
		out->code = PQF(f, error_field)(r, PG_DIAG_SQLSTATE);
		out->message = PQF(f, error_field)(r, PG_DIAG_MESSAGE_PRIMARY);
	}
}

/* ---- synchronous calls ---- */

static PGresult *finish_sync(void *const *f, PGconn *conn, struct pl_stmt *st, PGresult *r,
                             const char *sql, size_t len)
{
	int saved = errno;
	struct pl_stmt_result res = { 0 };
	read_result(f, conn, r, &res);
	pl_stmt_end(st, AP_DB_POSTGRES, sql, len, &res);
	errno = saved;
	return r;
}

EXPORT PGresult *PQexec(PGconn *conn, const char *query)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return NULL;
	if (pl_db_depth || pl_cfg.disabled || !query)
		return PQF(f, exec)(conn, query);
	struct pl_stmt st;
	pl_stmt_begin(&st);
	PL_COPY_ENTER(&pq_lib, f);
	PGresult *r = PQF(f, exec)(conn, query);
	PL_COPY_LEAVE();
	return finish_sync(f, conn, &st, r, query, strlen(query));
}

EXPORT PGresult *PQexecParams(PGconn *conn, const char *command, int n, const Oid *types,
                              const char *const *values, const int *lengths,
                              const int *formats, int result_format)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return NULL;
	if (pl_db_depth || pl_cfg.disabled || !command)
		return PQF(f, exec_params)(conn, command, n, types, values, lengths, formats,
		                           result_format);
	struct pl_stmt st;
	pl_stmt_begin(&st);
	PL_COPY_ENTER(&pq_lib, f);
	PGresult *r = PQF(f, exec_params)(conn, command, n, types, values, lengths, formats,
	                                  result_format);
	PL_COPY_LEAVE();
	return finish_sync(f, conn, &st, r, command, strlen(command));
}

EXPORT PGresult *PQprepare(PGconn *conn, const char *name, const char *query, int n,
                           const Oid *types)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return NULL;
	if (pl_db_depth || pl_cfg.disabled || !query)
		return PQF(f, prepare)(conn, name, query, n, types);
	struct pl_stmt st;
	pl_stmt_begin(&st);
	st.prepare = 1;
	PL_COPY_ENTER(&pq_lib, f);
	PGresult *r = PQF(f, prepare)(conn, name, query, n, types);
	PL_COPY_LEAVE();
	int saved = errno;
	pl_prepared_put(conn, pl_hash_str(name ? name : ""), query, strlen(query));
	errno = saved;
	return finish_sync(f, conn, &st, r, query, strlen(query));
}

/* An execution carries the text its statement was prepared with. */
static size_t prepared_text(PGconn *conn, const char *name, char *out, size_t cap,
                            struct pl_stmt *st)
{
	int cut;
	size_t n = pl_prepared_get(conn, pl_hash_str(name ? name : ""), out, cap, &cut);
	st->truncated |= (uint8_t)cut;
	if (n == 0) {
		/* Prepared before we saw it (or evicted): name it at least. The
		 * name is an identifier the application chose, not a value. */
		n = (size_t)snprintf(out, cap, "EXECUTE %s", name && *name ? name : "\"\"");
		if (n >= cap)
			n = cap - 1;
	}
	return n;
}

EXPORT PGresult *PQexecPrepared(PGconn *conn, const char *name, int n,
                                const char *const *values, const int *lengths,
                                const int *formats, int result_format)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return NULL;
	if (pl_db_depth || pl_cfg.disabled)
		return PQF(f, exec_prepared)(conn, name, n, values, lengths, formats, result_format);
	struct pl_stmt st;
	pl_stmt_begin(&st);
	PL_COPY_ENTER(&pq_lib, f);
	PGresult *r = PQF(f, exec_prepared)(conn, name, n, values, lengths, formats, result_format);
	PL_COPY_LEAVE();
	int saved = errno;
	char text[PL_PREPARED_TEXT];
	size_t len = prepared_text(conn, name, text, sizeof text, &st);
	errno = saved;
	return finish_sync(f, conn, &st, r, text, len);
}

/* ---- asynchronous calls ---- */

/* Commands sent and not yet ended by their NULL PQgetResult. Outside
 * pipeline mode a connection has at most one. In pipeline mode (libpq 14;
 * psycopg 3's executemany) it has several: their results come back in the
 * order sent, each command's ended by one NULL, and each PQpipelineSync
 * answered by a PGRES_PIPELINE_SYNC result that no NULL follows. So each
 * connection numbers its commands as they are sent (`sent`) and as their
 * NULLs come back (`done`): the results read belong to command `done`.
 * Every command that yields results is numbered, statements or not
 * (PQsendDescribePrepared), so that no statement is ever paired with
 * another command's results. One statement per connection only (the
 * newest, its results given the oldest's) gave a pipeline of four
 * statements one statement, with the wrong text, rows and error.
 *
 * The statements wait in a pool shared by all connections: one sent when
 * it is full is not recorded, and the numbering stays right. A connection
 * leaves its table when nothing of it is outstanding. Small tables under a
 * spin lock: only the async calls take it (PQgetResult only while a
 * connection is in the table). */
#define ASYNC_CONNS 64
#define ASYNC_STMTS 128
static struct async_conn {
	PGconn *conn; /* NULL: free */
	uint32_t sent, done;
} async_conns[ASYNC_CONNS];
static struct async_stmt {
	PGconn *conn; /* NULL: free */
	uint32_t seq; /* the connection's command number */
	struct pl_stmt st;
	struct pl_stmt_result res;
	char code[8];
	char message[160];
	size_t len;
	char text[PL_PREPARED_TEXT];
} async_tab[ASYNC_STMTS];
static unsigned async_nconns; /* connections in async_conns */
static int async_lock;

static void alock(void)
{
	while (__atomic_exchange_n(&async_lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void aunlock(void)
{
	__atomic_store_n(&async_lock, 0, __ATOMIC_RELEASE);
}

/* The statements in flight are the parent's connections' (the child's
 * copies of them are not its own to end): only the lock is cleared. */
void pl_pq_atfork_child(void)
{
	async_lock = 0;
}

/* Under the lock: conn's entry (NULL: a free one), or NULL. */
static struct async_conn *conn_find(const PGconn *conn)
{
	for (unsigned i = 0; i < ASYNC_CONNS; i++)
		if (async_conns[i].conn == conn)
			return &async_conns[i];
	return NULL;
}

static void conn_free(struct async_conn *c)
{
	c->conn = NULL;
	__atomic_store_n(&async_nconns, async_nconns - 1, __ATOMIC_RELAXED);
}

/* Under the lock: command seq of conn, any statement of conn (any = 1), or
 * a free entry (conn NULL); NULL when there is none. */
static struct async_stmt *stmt_find(const PGconn *conn, uint32_t seq, int any)
{
	for (unsigned i = 0; i < ASYNC_STMTS; i++)
		if (async_tab[i].conn == conn && (any || !conn || async_tab[i].seq == seq))
			return &async_tab[i];
	return NULL;
}

/* Emits a statement taken out of the pool (outside the lock). */
static void async_emit(struct async_stmt *done)
{
	if (done->res.failed) {
		done->res.code = done->code;
		done->res.message = done->message;
	}
	pl_stmt_end(&done->st, AP_DB_POSTGRES, done->text, done->len, &done->res);
}

/* A command sent outside pipeline mode proves that the ones before it are
 * over, though their NULL was never read (a caller that stopped after the
 * last result): their statements end now, and the numbering restarts. */
static void end_stale(PGconn *conn)
{
	for (;;) {
		struct async_stmt done;
		int found = 0;
		alock();
		struct async_conn *c = conn_find(conn);
		if (c) {
			struct async_stmt *a = stmt_find(conn, 0, 1);
			if (a) {
				done = *a;
				a->conn = NULL;
				found = 1;
			} else {
				conn_free(c);
			}
		}
		aunlock();
		if (!found)
			return;
		async_emit(&done);
	}
}

/* After a command was sent on conn: numbers it, and holds st (NULL: not a
 * statement) with its text until its NULL PQgetResult. */
static void async_sent(void *const *f, PGconn *conn, const struct pl_stmt *st,
                       const char *text, size_t len)
{
	if (!f[PQ_pipeline_status] || PQF(f, pipeline_status)(conn) == PQ_PIPELINE_OFF)
		end_stale(conn);
	alock();
	struct async_conn *c = conn_find(conn);
	if (!c && (c = conn_find(NULL)) != NULL) {
		c->conn = conn;
		c->sent = c->done = 0;
		__atomic_store_n(&async_nconns, async_nconns + 1, __ATOMIC_RELAXED);
	}
	struct async_stmt *a = c && st ? stmt_find(NULL, 0, 0) : NULL;
	if (a) {
		a->conn = conn;
		a->seq = c->sent;
		a->st = *st;
		memset(&a->res, 0, sizeof a->res);
		if (len >= sizeof a->text) {
			len = sizeof a->text - 1;
			a->st.truncated = 1; /* marked, not silently cut */
		}
		memcpy(a->text, text, len);
		a->text[len] = '\0';
		a->len = len;
	}
	if (c)
		c->sent++;
	aunlock();
}

static void copy_cstr(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strnlen(src, cap - 1) : 0;
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

/* After a send returned ok: the statement waits for its results, or, when
 * the send failed, it is a failed statement now. Preserves errno. */
static void send_returned(void *const *f, PGconn *conn, struct pl_stmt *st, int ok,
                          const char *text, size_t len)
{
	int saved = errno;
	if (ok)
		async_sent(f, conn, st, text, len);
	else
		finish_sync(f, conn, st, NULL, text, len);
	errno = saved;
}

EXPORT int PQsendQuery(PGconn *conn, const char *query)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return 0;
	if (pl_db_depth || pl_cfg.disabled || !query)
		return PQF(f, send_query)(conn, query);
	struct pl_stmt st;
	pl_stmt_begin(&st);
	PL_COPY_ENTER(&pq_lib, f);
	int ok = PQF(f, send_query)(conn, query);
	PL_COPY_LEAVE();
	send_returned(f, conn, &st, ok, query, strlen(query));
	return ok;
}

EXPORT int PQsendQueryParams(PGconn *conn, const char *command, int n, const Oid *types,
                             const char *const *values, const int *lengths,
                             const int *formats, int result_format)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return 0;
	if (pl_db_depth || pl_cfg.disabled || !command)
		return PQF(f, send_query_params)(conn, command, n, types, values, lengths,
		                                 formats, result_format);
	struct pl_stmt st;
	pl_stmt_begin(&st);
	PL_COPY_ENTER(&pq_lib, f);
	int ok = PQF(f, send_query_params)(conn, command, n, types, values, lengths, formats,
	                                   result_format);
	PL_COPY_LEAVE();
	send_returned(f, conn, &st, ok, command, strlen(command));
	return ok;
}

EXPORT int PQsendQueryPrepared(PGconn *conn, const char *name, int n,
                               const char *const *values, const int *lengths,
                               const int *formats, int result_format)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return 0;
	if (pl_db_depth || pl_cfg.disabled)
		return PQF(f, send_query_prepared)(conn, name, n, values, lengths, formats, result_format);
	struct pl_stmt st;
	pl_stmt_begin(&st);
	PL_COPY_ENTER(&pq_lib, f);
	int ok = PQF(f, send_query_prepared)(conn, name, n, values, lengths, formats, result_format);
	PL_COPY_LEAVE();
	int saved = errno;
	char text[PL_PREPARED_TEXT];
	size_t len = prepared_text(conn, name, text, sizeof text, &st);
	errno = saved;
	send_returned(f, conn, &st, ok, text, len);
	return ok;
}

/* The asynchronous PQprepare (psycopg 3 prepares this way): a prepare
 * statement like PQprepare's, whose text later executions carry. */
EXPORT int PQsendPrepare(PGconn *conn, const char *name, const char *query, int n,
                         const Oid *types)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return 0;
	if (pl_db_depth || pl_cfg.disabled || !query)
		return PQF(f, send_prepare)(conn, name, query, n, types);
	struct pl_stmt st;
	pl_stmt_begin(&st);
	st.prepare = 1;
	PL_COPY_ENTER(&pq_lib, f);
	int ok = PQF(f, send_prepare)(conn, name, query, n, types);
	PL_COPY_LEAVE();
	int saved = errno;
	pl_prepared_put(conn, pl_hash_str(name ? name : ""), query, strlen(query));
	errno = saved;
	send_returned(f, conn, &st, ok, query, strlen(query));
	return ok;
}

/* Not statements, but their results and NULL take a place in the
 * connection's order (pipeline mode): a describe or close the real call
 * `ok`ed (PQsendDescribePrepared/Portal, PQsendClosePrepared/Portal) is
 * noted as a place with no statement. Returns ok. */
static int describe_sent(void *const *f, PGconn *conn, int ok)
{
	if (ok && !pl_db_depth && !pl_cfg.disabled)
		send_returned(f, conn, NULL, ok, NULL, 0);
	return ok;
}

EXPORT int PQsendDescribePrepared(PGconn *conn, const char *name)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return 0;
	return describe_sent(f, conn, PQF(f, send_describe_prepared)(conn, name));
}

EXPORT int PQsendDescribePortal(PGconn *conn, const char *name)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return 0;
	return describe_sent(f, conn, PQF(f, send_describe_portal)(conn, name));
}

/* libpq 17's closes (psycopg 3 deallocates with them), not statements as
 * describes are not: protocol messages, not SQL. Unhooked, a close in a
 * pipeline had its result and NULL read as the next command's, and every
 * later statement of the pipeline took its predecessor's rows and error.
 * A libpq without them (older than 17): fail as a missing function would,
 * without calling anything. The synchronous PQclosePrepared/Portal need
 * no hook: their inner PQgetResult calls reach ours and keep the order. */
EXPORT int PQsendClosePrepared(PGconn *conn, const char *name)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f || !f[PQ_send_close_prepared]))
		return 0;
	return describe_sent(f, conn, PQF(f, send_close_prepared)(conn, name));
}

EXPORT int PQsendClosePortal(PGconn *conn, const char *name)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f || !f[PQ_send_close_portal]))
		return 0;
	return describe_sent(f, conn, PQF(f, send_close_portal)(conn, name));
}

/* Entering pipeline mode (allowed once the connection is idle, its last
 * NULL perhaps unread) ends what came before, as a send does outside it:
 * else the pipeline's first NULL would end the earlier statement. */
EXPORT int PQenterPipelineMode(PGconn *conn)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f || !f[PQ_enter_pipeline_mode]))
		return 0;
	int ok = PQF(f, enter_pipeline_mode)(conn);
	if (ok && conn && !pl_cfg.disabled) {
		int saved = errno;
		end_stale(conn);
		errno = saved;
	}
	return ok;
}

/* Every PQgetResult, ours inside PQexec included: PQexec drains what an
 * earlier command left unread, and that NULL ends its statement. */
EXPORT PGresult *PQgetResult(PGconn *conn)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return NULL;
	PGresult *r = PQF(f, get_result)(conn);
	if (pl_cfg.disabled || !conn || !__atomic_load_n(&async_nconns, __ATOMIC_RELAXED))
		return r;
	int saved = errno;
	struct async_stmt done;
	int finished = 0;
	alock();
	struct async_conn *c = conn_find(conn);
	if (c && r) {
		/* Keep what the NULL will need: the result itself is the
		 * caller's to clear before then. A sync point belongs to no
		 * command. */
		struct async_stmt *a = stmt_find(conn, c->done, 0);
		if (a && PQF(f, result_status)(r) != PGRES_PIPELINE_SYNC) {
			struct pl_stmt_result one = { 0 };
			read_result(f, conn, r, &one);
			a->res.rows += one.rows;
			a->res.rows_known |= one.rows_known;
			if (one.failed && !a->res.failed) {
				a->res.failed = 1;
				copy_cstr(a->code, sizeof a->code, one.code);
				copy_cstr(a->message, sizeof a->message, one.message);
			}
		}
	} else if (c) {
		struct async_stmt *a = stmt_find(conn, c->done, 0);
		if (a) {
			done = *a;
			a->conn = NULL;
			finished = 1;
		}
		if (++c->done == c->sent)
			conn_free(c);
	}
	aunlock();
	if (finished)
		async_emit(&done);
	errno = saved;
	return r;
}

/* A connection's statements and prepared texts die with it (a new
 * connection may get the same address). */
EXPORT void PQfinish(PGconn *conn)
{
	void *const *f = PQ_FNS();
	if (PL_UNLIKELY(!f))
		return;
	if (conn) {
		alock();
		struct async_conn *c = conn_find(conn);
		if (c) {
			struct async_stmt *a;
			while ((a = stmt_find(conn, 0, 1)) != NULL)
				a->conn = NULL;
			conn_free(c);
		}
		aunlock();
		pl_prepared_forget(conn);
	}
	PQF(f, finish)(conn);
}

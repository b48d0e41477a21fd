/*
 * hook_mysql.c - statements through libmysqlclient / libmariadb.
 *
 * A MySQL statement is the query call plus the mysql_store_result() or
 * mysql_use_result() that follows it on the same handle (mysqlclient calls
 * mysql_real_query then mysql_store_result: the rows are read there). So a
 * query stays open on its thread until its result is fetched, another
 * statement starts on that thread, the handle closes, or an HTTP request
 * ends on the thread (pl_mysql_flush_thread): whichever comes first ends it.
 *
 * A multi-statement query (CLIENT_MULTI_STATEMENTS: "INSERT ...; SELECT
 * ...") is one statement, as one sqlite3_exec of several is: it stays open
 * across its results (mysql_next_result) until the last is read or one
 * fails. Its rows are all its results' together, and a later statement's
 * error is its error (it was recorded as a success, with the first
 * result's rows only).
 *
 * Prepared statements: mysql_stmt_prepare is a round trip and a statement of
 * its own; each mysql_stmt_execute is another, carrying the prepared text.
 * An execution with a result set stays open, as a query does, until its
 * mysql_stmt_store_result (its rows: mysql_stmt_num_rows) or its first
 * mysql_stmt_fetch (unbuffered: rows unknown).
 *
 * The library's symbols are versioned (libmysqlclient_21, libmariadb_3);
 * our unversioned definitions bind to callers' versioned references, and
 * pl_copy_fns finds the real ones. No MySQL header is needed: the handles are
 * opaque pointers, and my_bool/bool returns are one byte.
 */
#include "config.h"
#include "libcopy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct st_mysql MYSQL;
typedef struct st_mysql_res MYSQL_RES;
typedef struct st_mysql_stmt MYSQL_STMT;
typedef unsigned long long my_ulonglong;

/* The functions used, indexed into what pl_copy_fns returns: the copy of
 * the client library the caller reaches (libcopy.h; a process may hold
 * two), found on first use from each calling object. The statement API's
 * functions are in every libmysqlclient since 4.1 and every libmariadb. */
enum { MY_query, MY_real_query, MY_send_query, MY_read_query_result, MY_store_result,
       MY_use_result, MY_stmt_prepare, MY_stmt_execute, MY_stmt_close, MY_close, MY_err_no,
       MY_error, MY_affected_rows, MY_num_rows, MY_field_count, MY_stmt_errno,
       MY_stmt_error, MY_stmt_affected_rows, MY_more_results, MY_next_result,
       MY_stmt_field_count, MY_stmt_num_rows, MY_stmt_store_result, MY_stmt_fetch, MY_N };
typedef int (*my_query_fn)(MYSQL *, const char *);
typedef int (*my_real_query_fn)(MYSQL *, const char *, unsigned long);
typedef int (*my_send_query_fn)(MYSQL *, const char *, unsigned long);
typedef unsigned char (*my_read_query_result_fn)(MYSQL *);
typedef MYSQL_RES *(*my_store_result_fn)(MYSQL *);
typedef MYSQL_RES *(*my_use_result_fn)(MYSQL *);
typedef int (*my_stmt_prepare_fn)(MYSQL_STMT *, const char *, unsigned long);
typedef int (*my_stmt_execute_fn)(MYSQL_STMT *);
typedef unsigned char (*my_stmt_close_fn)(MYSQL_STMT *);
typedef void (*my_close_fn)(MYSQL *);
typedef unsigned int (*my_err_no_fn)(MYSQL *);
typedef const char *(*my_error_fn)(MYSQL *);
typedef my_ulonglong (*my_affected_rows_fn)(MYSQL *);
typedef my_ulonglong (*my_num_rows_fn)(MYSQL_RES *);
typedef unsigned int (*my_field_count_fn)(MYSQL *);
typedef unsigned int (*my_stmt_errno_fn)(MYSQL_STMT *);
typedef const char *(*my_stmt_error_fn)(MYSQL_STMT *);
typedef my_ulonglong (*my_stmt_affected_rows_fn)(MYSQL_STMT *);
typedef unsigned char (*my_more_results_fn)(MYSQL *);
typedef int (*my_next_result_fn)(MYSQL *);
typedef unsigned int (*my_stmt_field_count_fn)(MYSQL_STMT *);
typedef my_ulonglong (*my_stmt_num_rows_fn)(MYSQL_STMT *);
typedef int (*my_stmt_store_result_fn)(MYSQL_STMT *);
typedef int (*my_stmt_fetch_fn)(MYSQL_STMT *);

/* f's function `name`. */
#define MYF(f, name) ((my_##name##_fn)(f)[MY_##name])

static const char *const my_names[MY_N] = {
	"mysql_query", "mysql_real_query", "mysql_send_query", "mysql_read_query_result",
	"mysql_store_result", "mysql_use_result", "mysql_stmt_prepare", "mysql_stmt_execute",
	"mysql_stmt_close", "mysql_close", "mysql_errno", "mysql_error", "mysql_affected_rows",
	"mysql_num_rows", "mysql_field_count", "mysql_stmt_errno", "mysql_stmt_error",
	"mysql_stmt_affected_rows", "mysql_more_results", "mysql_next_result",
	"mysql_stmt_field_count", "mysql_stmt_num_rows", "mysql_stmt_store_result",
	"mysql_stmt_fetch",
};
EXPORT int mysql_query(MYSQL *, const char *);
EXPORT int mysql_real_query(MYSQL *, const char *, unsigned long);
EXPORT int mysql_send_query(MYSQL *, const char *, unsigned long);
EXPORT unsigned char mysql_read_query_result(MYSQL *);
EXPORT MYSQL_RES *mysql_store_result(MYSQL *);
EXPORT MYSQL_RES *mysql_use_result(MYSQL *);
EXPORT int mysql_stmt_prepare(MYSQL_STMT *, const char *, unsigned long);
EXPORT int mysql_stmt_execute(MYSQL_STMT *);
EXPORT unsigned char mysql_stmt_close(MYSQL_STMT *);
EXPORT void mysql_close(MYSQL *);
EXPORT int mysql_next_result(MYSQL *);
EXPORT int mysql_stmt_store_result(MYSQL_STMT *);
EXPORT int mysql_stmt_fetch(MYSQL_STMT *);
_Static_assert(MY_N <= PL_COPY_MAXFN, "PL_COPY_MAXFN too small");
static const void *const my_self[MY_N] = {
	[MY_query] = (const void *)mysql_query, [MY_real_query] = (const void *)mysql_real_query,
	[MY_send_query] = (const void *)mysql_send_query,
	[MY_read_query_result] = (const void *)mysql_read_query_result,
	[MY_store_result] = (const void *)mysql_store_result,
	[MY_use_result] = (const void *)mysql_use_result,
	[MY_stmt_prepare] = (const void *)mysql_stmt_prepare,
	[MY_stmt_execute] = (const void *)mysql_stmt_execute,
	[MY_stmt_close] = (const void *)mysql_stmt_close, [MY_close] = (const void *)mysql_close,
	[MY_next_result] = (const void *)mysql_next_result,
	[MY_stmt_store_result] = (const void *)mysql_stmt_store_result,
	[MY_stmt_fetch] = (const void *)mysql_stmt_fetch,
};
/* mysql_query is the first name: the one a copy is recognised by (the
 * versioned libraries define it at their default version). */
static struct pl_copy_lib my_lib = { .what = "libmysqlclient", .names = my_names,
                                     .self = my_self, .n = MY_N, .nreq = MY_N };
struct pl_copy_lib *const pl_copy_lib_mysql = &my_lib; /* gotpatch.c */

/* The caller's copy: in each exported hook itself, so the return address is
 * its caller's. NULL: none can be determined, call nothing. */
#define MY_FNS() pl_copy_fns(&my_lib, __builtin_return_address(0))

/* The handle (MYSQL or MYSQL_STMT) whose hooked call is in progress on
 * this thread: the library's own calls on it (mysql_query jumping to
 * mysql_real_query, mariadb_stmt_execute_direct calling
 * mysql_stmt_prepare) pass straight through. Per handle, and not
 * pl_db_depth, because libmariadb's non-blocking API (mysql_real_query_start
 * and _cont) runs the call in a coroutine that suspends inside our hook
 * and returns to the application: a thread-wide depth stayed raised
 * meanwhile, and the thread's other statements (another connection's,
 * SQLite's, libpq's) passed through unrecorded. Interleaved suspended
 * calls may leave another handle here: that costs at most a nested call
 * recorded on its own, never a statement lost. */
static __thread const void *my_in;

/* Around a hook's real call: once per scope (a declaration). */
#define MY_ENTER(f, h) \
	struct pl_copy_outer my_outer_saved_ = pl_copy_outer; \
	pl_copy_outer = (struct pl_copy_outer){ &my_lib, (f) }; \
	my_in = (h)
#define MY_LEAVE(h) \
	if (my_in == (h)) \
		my_in = NULL; \
	pl_copy_outer = my_outer_saved_

/* What ending the open statement needs of the copy that ran it. */
struct my_acc {
	my_err_no_fn err_no;
	my_error_fn error;
	my_affected_rows_fn affected_rows;
	my_num_rows_fn num_rows;
	my_field_count_fn field_count;
	my_more_results_fn more_results;
	/* An execution's (open_q.stmt): */
	my_stmt_num_rows_fn stmt_num_rows;
	my_stmt_errno_fn stmt_errno;
	my_stmt_error_fn stmt_error;
};

/* The statement open on this thread (initial-exec TLS): its handle is
 * pl_mysql_open (pl.h, non-NULL while one is open), the rest is here. Its
 * text is normalised when it ends, so keep a bounded raw copy meanwhile. */
__thread void *pl_mysql_open;
static __thread struct {
	struct my_acc acc; /* copied: the copy's answer may be thread-local */
	struct pl_stmt st;
	unsigned long len;
	/* A multi-statement query's results read so far: */
	unsigned nres;      /* how many */
	uint64_t rows;      /* their rows */
	uint8_t rows_known; /* every one's rows counted */
	uint8_t between;    /* the last was read: waiting for mysql_next_result */
	/* A mysql_stmt_execute with a result set: the handle is a MYSQL_STMT,
	 * and its rows are counted by mysql_stmt_store_result. */
	uint8_t stmt;
	char text[PL_PREPARED_TEXT];
} open_q;

static void fill_error(const struct my_acc *acc, MYSQL *h, struct pl_stmt_result *res,
                       char *code, size_t cap)
{
	unsigned e = acc->err_no(h);
	if (e) {
		res->failed = 1;
		snprintf(code, cap, "%u", e);
		res->code = code;
		res->message = acc->error(h);
	}
}

/* Emits the open statement (already closed: pl_mysql_open NULL) with res,
 * its last result's (`own`: res has that result's rows), plus the rows of
 * a multi-statement query's earlier results. */
static void emit_open(struct pl_stmt_result *res, int own)
{
	if (open_q.nres) {
		res->rows = (own && res->rows_known ? res->rows : 0) + open_q.rows;
		res->rows_known = open_q.rows_known && (!own || res->rows_known);
	}
	pl_stmt_end(&open_q.st, AP_DB_MYSQL, open_q.text, open_q.len, res);
}

/* Ends an open execution (open_q.stmt): `stored` by mysql_stmt_store_result
 * returning `rc`, its rows counted (its error, when it failed); otherwise
 * its rows are unknown (read by mysql_stmt_fetch unbuffered, or never). */
static void end_stmt_open(int stored, int rc)
{
	MYSQL_STMT *s = pl_mysql_open;
	pl_mysql_open = NULL;
	struct pl_stmt_result res = { 0 };
	char code[16];
	if (stored && rc == 0) {
		res.rows = open_q.acc.stmt_num_rows(s);
		res.rows_known = 1;
	} else if (stored) {
		res.failed = 1;
		snprintf(code, sizeof code, "%u", open_q.acc.stmt_errno(s));
		res.code = code;
		res.message = open_q.acc.stmt_error(s);
	}
	pl_stmt_end(&open_q.st, AP_DB_MYSQL, open_q.text, open_q.len, &res);
}

/* Ends the open statement; rows from `result` when one was fetched. A
 * multi-statement query with more results to come stays open, this
 * result counted, unless `flush` (it ends now, with what was read). */
static void end_open(MYSQL_RES *result, int fetched, int flush)
{
	if (!pl_mysql_open)
		return;
	if (open_q.stmt) {
		end_stmt_open(0, 0);
		return;
	}
	MYSQL *h = pl_mysql_open;
	pl_mysql_open = NULL;
	struct pl_stmt_result res = { 0 };
	char code[16];
	const struct my_acc *acc = &open_q.acc;
	if (open_q.between) {
		/* Between two results, the last one counted: a fetch of it
		 * (mysqlclient calls mysql_store_result after every result,
		 * with a set or not) changes nothing; a flush ends it. */
		if (flush)
			emit_open(&res, 0);
		else
			pl_mysql_open = h;
		return;
	}
	if (result) {
		res.rows = acc->num_rows(result); /* 0 so far for use_result */
		res.rows_known = 1;
	} else if (!fetched || acc->field_count(h) == 0) {
		res.rows = acc->affected_rows(h);
		res.rows_known = res.rows != (my_ulonglong)-1;
	}
	if (fetched && !result)
		fill_error(acc, h, &res, code, sizeof code);
	if (!res.failed && !flush && acc->more_results(h)) {
		open_q.nres++;
		open_q.rows += res.rows_known ? res.rows : 0;
		open_q.rows_known &= res.rows_known;
		open_q.between = 1;
		pl_mysql_open = h;
		return;
	}
	emit_open(&res, !res.failed);
}

void pl_mysql_flush_open(void)
{
	int saved = errno;
	end_open(NULL, 0, 1);
	errno = saved;
}

/* A statement answered without a result set (INSERT, UPDATE, SET...) is
 * finished: nothing more of it will be read. Many callers never call
 * mysql_store_result for it (C code, Perl's DBD::MariaDB, which asks
 * mysql_field_count first), so waiting for one timed the statement until
 * the thread's next statement or the end of its request: an UPDATE then
 * 300 ms of other work took 300 ms. A result set waits for its fetch. */
static void answered_ok(MYSQL *h)
{
	if (open_q.acc.field_count(h) == 0)
		end_open(NULL, 0, 0);
}

/* Opens the thread's statement on `handle` (a MYSQL, or a MYSQL_STMT when
 * `stmt`), read with `acc`: st, with text q[0..len) (cut to what open_q
 * keeps, and marked so, never silently). */
static void open_begin(void *handle, const struct my_acc *acc, int stmt,
                       const struct pl_stmt *st, const char *q, size_t len)
{
	pl_mysql_open = handle;
	open_q.acc = *acc;
	open_q.nres = 0;
	open_q.rows = 0;
	open_q.rows_known = 1;
	open_q.between = 0;
	open_q.stmt = (uint8_t)stmt;
	open_q.st = *st;
	open_q.len = len < sizeof open_q.text ? len : sizeof open_q.text - 1;
	if (len >= sizeof open_q.text)
		open_q.st.truncated = 1;
	memcpy(open_q.text, q, open_q.len);
}

/* After a query call returned `rc` (0 = sent, and answered when
 * `answered`; mysql_send_query's answer is read later): a failure is a
 * finished statement; success without a result set too (answered_ok);
 * a result set waits for its fetch. */
static void query_returned(void *const *f, MYSQL *h, const struct pl_stmt *st,
                           const char *q, unsigned long len, int rc, int answered)
{
	/* Another call completed in between (non-blocking calls on two
	 * handles, interleaved): its statement ends first, never overwritten. */
	pl_mysql_flush_thread();
	open_begin(h, &(struct my_acc){ MYF(f, err_no), MYF(f, error), MYF(f, affected_rows),
	                                 MYF(f, num_rows), MYF(f, field_count),
	                                 MYF(f, more_results), NULL, NULL, NULL },
	           0, st, q, len);
	if (rc != 0) {
		struct pl_stmt_result res = { 0 };
		char code[16];
		pl_mysql_open = NULL;
		fill_error(&open_q.acc, h, &res, code, sizeof code);
		res.failed = 1;
		pl_stmt_end(&open_q.st, AP_DB_MYSQL, open_q.text, open_q.len, &res);
	} else if (answered) {
		answered_ok(h);
	}
}

EXPORT int mysql_real_query(MYSQL *h, const char *q, unsigned long len)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return 1;
	if (my_in == h || pl_cfg.disabled || !q)
		return MYF(f, real_query)(h, q, len);
	pl_mysql_flush_thread();
	struct pl_stmt st;
	pl_stmt_begin(&st);
	MY_ENTER(f, h);
	int rc = MYF(f, real_query)(h, q, len);
	MY_LEAVE(h);
	int saved = errno;
	query_returned(f, h, &st, q, len, rc, 1);
	errno = saved;
	return rc;
}

EXPORT int mysql_query(MYSQL *h, const char *q)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return 1;
	if (my_in == h || pl_cfg.disabled || !q)
		return MYF(f, query)(h, q);
	pl_mysql_flush_thread();
	struct pl_stmt st;
	pl_stmt_begin(&st);
	MY_ENTER(f, h);
	int rc = MYF(f, query)(h, q);
	MY_LEAVE(h);
	int saved = errno;
	query_returned(f, h, &st, q, strlen(q), rc, 1);
	errno = saved;
	return rc;
}

/* mysql_send_query + mysql_read_query_result: the statement opens at the
 * send and is answered at the read. */
EXPORT int mysql_send_query(MYSQL *h, const char *q, unsigned long len)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return 1;
	if (my_in == h || pl_cfg.disabled || !q)
		return MYF(f, send_query)(h, q, len);
	pl_mysql_flush_thread();
	struct pl_stmt st;
	pl_stmt_begin(&st);
	MY_ENTER(f, h);
	int rc = MYF(f, send_query)(h, q, len);
	MY_LEAVE(h);
	int saved = errno;
	query_returned(f, h, &st, q, len, rc, 0);
	errno = saved;
	return rc;
}

EXPORT unsigned char mysql_read_query_result(MYSQL *h)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return 1;
	if (my_in == h)
		return MYF(f, read_query_result)(h);
	MY_ENTER(f, h);
	unsigned char rc = MYF(f, read_query_result)(h);
	MY_LEAVE(h);
	if (rc && pl_mysql_open == h) {
		int saved = errno;
		struct pl_stmt_result res = { .failed = 1 };
		char code[16];
		pl_mysql_open = NULL;
		fill_error(&open_q.acc, h, &res, code, sizeof code);
		pl_stmt_end(&open_q.st, AP_DB_MYSQL, open_q.text, open_q.len, &res);
		errno = saved;
	} else if (!rc && pl_mysql_open == h) {
		int saved = errno;
		answered_ok(h);
		errno = saved;
	}
	return rc;
}

EXPORT MYSQL_RES *mysql_store_result(MYSQL *h)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return NULL;
	if (my_in == h)
		return MYF(f, store_result)(h);
	MY_ENTER(f, h);
	MYSQL_RES *r = MYF(f, store_result)(h);
	MY_LEAVE(h);
	if (pl_mysql_open == h) {
		int saved = errno;
		end_open(r, 1, 0);
		errno = saved;
	}
	return r;
}

EXPORT MYSQL_RES *mysql_use_result(MYSQL *h)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return NULL;
	if (my_in == h)
		return MYF(f, use_result)(h);
	MY_ENTER(f, h);
	MYSQL_RES *r = MYF(f, use_result)(h);
	MY_LEAVE(h);
	if (pl_mysql_open == h) {
		int saved = errno;
		/* Rows stream later, row by row: the count is not known here. */
		end_open(NULL, 1, 0);
		errno = saved;
	}
	return r;
}

/* The next result of a multi-statement query: 0 (read: its rows count
 * once fetched, or now when it has no result set), -1 (no more: the query
 * ends) or an error, the query's error. */
EXPORT int mysql_next_result(MYSQL *h)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return 1;
	if (my_in == h)
		return MYF(f, next_result)(h);
	MY_ENTER(f, h);
	int rc = MYF(f, next_result)(h);
	MY_LEAVE(h);
	if (pl_mysql_open == h) {
		int saved = errno;
		open_q.between = 0;
		if (rc == 0) {
			answered_ok(h);
		} else {
			struct pl_stmt_result res = { 0 };
			char code[16];
			pl_mysql_open = NULL;
			if (rc > 0) {
				fill_error(&open_q.acc, h, &res, code, sizeof code);
				res.failed = 1;
			}
			emit_open(&res, 0);
		}
		errno = saved;
	}
	return rc;
}

EXPORT void mysql_close(MYSQL *h)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return;
	/* (An open execution's statement handle is not h: it ends with its
	 * rows unknown at the thread's next statement, needing nothing of h.) */
	if (pl_mysql_open == h)
		pl_mysql_flush_thread();
	MYF(f, close)(h);
}

EXPORT int mysql_stmt_prepare(MYSQL_STMT *s, const char *q, unsigned long len)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return 1;
	if (my_in == s || pl_cfg.disabled || !q)
		return MYF(f, stmt_prepare)(s, q, len);
	pl_mysql_flush_thread();
	struct pl_stmt st;
	pl_stmt_begin(&st);
	st.prepare = 1;
	MY_ENTER(f, s);
	int rc = MYF(f, stmt_prepare)(s, q, len);
	MY_LEAVE(s);
	int saved = errno;
	pl_prepared_put(s, 0, q, len);
	struct pl_stmt_result res = { 0 };
	char code[16];
	if (rc != 0) {
		res.failed = 1;
		snprintf(code, sizeof code, "%u", MYF(f, stmt_errno)(s));
		res.code = code;
		res.message = MYF(f, stmt_error)(s);
	}
	pl_stmt_end(&st, AP_DB_MYSQL, q, len, &res);
	errno = saved;
	return rc;
}

EXPORT int mysql_stmt_execute(MYSQL_STMT *s)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return 1;
	if (my_in == s || pl_cfg.disabled)
		return MYF(f, stmt_execute)(s);
	pl_mysql_flush_thread();
	struct pl_stmt st;
	pl_stmt_begin(&st);
	MY_ENTER(f, s);
	int rc = MYF(f, stmt_execute)(s);
	MY_LEAVE(s);
	int saved = errno;
	char text[PL_PREPARED_TEXT];
	int cut;
	size_t len = pl_prepared_get(s, 0, text, sizeof text, &cut);
	st.truncated = (uint8_t)cut;
	if (len == 0)
		len = (size_t)snprintf(text, sizeof text, "EXECUTE ?");
	struct pl_stmt_result res = { 0 };
	char code[16];
	if (rc != 0) {
		res.failed = 1;
		snprintf(code, sizeof code, "%u", MYF(f, stmt_errno)(s));
		res.code = code;
		res.message = MYF(f, stmt_error)(s);
	} else if (MYF(f, stmt_field_count)(s) > 0) {
		/* A result set (a SELECT): mysql_stmt_affected_rows does not
		 * count its rows until they are read (Ruby's mysql2, Perl's
		 * DBD::mysql with mysql_server_prepare call
		 * mysql_stmt_store_result next), so it stays open until then, as
		 * a query does until mysql_store_result; or until its first
		 * mysql_stmt_fetch (rows unbuffered: unknown), the handle's
		 * close, the thread's next statement or its request's end. */
		open_begin(s, &(struct my_acc){ .stmt_num_rows = MYF(f, stmt_num_rows),
		                                .stmt_errno = MYF(f, stmt_errno),
		                                .stmt_error = MYF(f, stmt_error) },
		           1, &st, text, len);
		errno = saved;
		return rc;
	} else {
		res.rows = MYF(f, stmt_affected_rows)(s);
		res.rows_known = res.rows != (my_ulonglong)-1;
	}
	pl_stmt_end(&st, AP_DB_MYSQL, text, len, &res);
	errno = saved;
	return rc;
}

EXPORT int mysql_stmt_store_result(MYSQL_STMT *s)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return 1;
	if (my_in == s || pl_mysql_open != s)
		return MYF(f, stmt_store_result)(s);
	MY_ENTER(f, s);
	int rc = MYF(f, stmt_store_result)(s);
	MY_LEAVE(s);
	if (pl_mysql_open == s) {
		int saved = errno;
		end_stmt_open(1, rc);
		errno = saved;
	}
	return rc;
}

/* Called once per row: one comparison unless an execution is open. */
EXPORT int mysql_stmt_fetch(MYSQL_STMT *s)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return 1;
	if (PL_UNLIKELY(pl_mysql_open == s) && my_in != s) {
		int saved = errno;
		end_stmt_open(0, 0);
		errno = saved;
	}
	return MYF(f, stmt_fetch)(s);
}

EXPORT unsigned char mysql_stmt_close(MYSQL_STMT *s)
{
	void *const *f = MY_FNS();
	if (PL_UNLIKELY(!f))
		return 1;
	if (pl_mysql_open == s)
		pl_mysql_flush_thread();
	pl_prepared_forget(s);
	return MYF(f, stmt_close)(s);
}

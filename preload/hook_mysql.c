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
 * Prepared statements: mysql_stmt_prepare is a round trip and a statement of
 * its own; each mysql_stmt_execute is another, carrying the prepared text.
 *
 * The library's symbols are versioned (libmysqlclient_21, libmariadb_3);
 * our unversioned definitions bind to callers' versioned references, and
 * pl_sym finds the real ones. No MySQL header is needed: the handles are
 * opaque pointers, and my_bool/bool returns are one byte.
 */
#include "config.h"
#include "pl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef struct st_mysql MYSQL;
typedef struct st_mysql_res MYSQL_RES;
typedef struct st_mysql_stmt MYSQL_STMT;
typedef unsigned long long my_ulonglong;

static struct {
	int (*query)(MYSQL *, const char *);
	int (*real_query)(MYSQL *, const char *, unsigned long);
	int (*send_query)(MYSQL *, const char *, unsigned long);
	unsigned char (*read_query_result)(MYSQL *);
	MYSQL_RES *(*store_result)(MYSQL *);
	MYSQL_RES *(*use_result)(MYSQL *);
	int (*stmt_prepare)(MYSQL_STMT *, const char *, unsigned long);
	int (*stmt_execute)(MYSQL_STMT *);
	unsigned char (*stmt_close)(MYSQL_STMT *);
	void (*close)(MYSQL *);
	unsigned int (*err_no)(MYSQL *);
	const char *(*error)(MYSQL *);
	my_ulonglong (*affected_rows)(MYSQL *);
	my_ulonglong (*num_rows)(MYSQL_RES *);
	unsigned int (*field_count)(MYSQL *);
	unsigned int (*stmt_errno)(MYSQL_STMT *);
	const char *(*stmt_error)(MYSQL_STMT *);
	my_ulonglong (*stmt_affected_rows)(MYSQL_STMT *);
} my;

#define RESOLVE(field, name, self) \
	(my.field ? 1 : (*(void **)&my.field = pl_sym(name, (const void *)(self))) != NULL)

static int resolve_accessors(void)
{
	return RESOLVE(err_no, "mysql_errno", NULL) && RESOLVE(error, "mysql_error", NULL) &&
	       RESOLVE(affected_rows, "mysql_affected_rows", NULL) &&
	       RESOLVE(num_rows, "mysql_num_rows", NULL) &&
	       RESOLVE(field_count, "mysql_field_count", NULL);
}

/* The statement open on this thread (initial-exec TLS). Its text is
 * normalised when it ends, so keep a bounded raw copy meanwhile. */
static __thread struct {
	MYSQL *handle;
	struct pl_stmt st;
	unsigned long len;
	char text[PL_PREPARED_TEXT];
} open_q;

static void fill_error(MYSQL *h, struct pl_stmt_result *res, char *code, size_t cap)
{
	unsigned e = my.err_no(h);
	if (e) {
		res->failed = 1;
		snprintf(code, cap, "%u", e);
		res->code = code;
		res->message = my.error(h);
	}
}

/* Ends the open statement; rows from `result` when one was fetched. */
static void end_open(MYSQL_RES *result, int fetched)
{
	if (!open_q.handle)
		return;
	MYSQL *h = open_q.handle;
	open_q.handle = NULL;
	struct pl_stmt_result res = { 0 };
	char code[16];
	if (resolve_accessors()) {
		if (result) {
			res.rows = my.num_rows(result); /* 0 so far for use_result */
			res.rows_known = 1;
		} else if (!fetched || my.field_count(h) == 0) {
			res.rows = my.affected_rows(h);
			res.rows_known = res.rows != (my_ulonglong)-1;
		}
		if (fetched && !result)
			fill_error(h, &res, code, sizeof code);
	}
	pl_stmt_end(&open_q.st, AP_DB_MYSQL, open_q.text, open_q.len, &res);
}

void pl_mysql_flush_thread(void)
{
	if (PL_UNLIKELY(open_q.handle != NULL)) {
		int saved = errno;
		end_open(NULL, 0);
		errno = saved;
	}
}

/* After a query call returned `rc` (0 = sent and answered): a failure is a
 * finished statement; success waits for its result. */
static void query_returned(MYSQL *h, const struct pl_stmt *st, const char *q,
                           unsigned long len, int rc)
{
	open_q.handle = h;
	open_q.st = *st;
	open_q.len = len < sizeof open_q.text ? len : sizeof open_q.text - 1;
	open_q.st.truncated = len >= sizeof open_q.text; /* marked, not silently cut */
	memcpy(open_q.text, q, open_q.len);
	if (rc != 0) {
		struct pl_stmt_result res = { 0 };
		char code[16];
		open_q.handle = NULL;
		if (resolve_accessors())
			fill_error(h, &res, code, sizeof code);
		res.failed = 1;
		pl_stmt_end(&open_q.st, AP_DB_MYSQL, open_q.text, open_q.len, &res);
	}
}

EXPORT int mysql_real_query(MYSQL *h, const char *q, unsigned long len)
{
	if (!RESOLVE(real_query, "mysql_real_query", mysql_real_query))
		return 1;
	if (pl_db_depth || pl_cfg.disabled || !q)
		return my.real_query(h, q, len);
	pl_mysql_flush_thread();
	struct pl_stmt st;
	pl_stmt_begin(&st);
	pl_db_depth++;
	int rc = my.real_query(h, q, len);
	pl_db_depth--;
	int saved = errno;
	query_returned(h, &st, q, len, rc);
	errno = saved;
	return rc;
}

EXPORT int mysql_query(MYSQL *h, const char *q)
{
	if (!RESOLVE(query, "mysql_query", mysql_query))
		return 1;
	if (pl_db_depth || pl_cfg.disabled || !q)
		return my.query(h, q);
	pl_mysql_flush_thread();
	struct pl_stmt st;
	pl_stmt_begin(&st);
	pl_db_depth++;
	int rc = my.query(h, q);
	pl_db_depth--;
	int saved = errno;
	query_returned(h, &st, q, strlen(q), rc);
	errno = saved;
	return rc;
}

/* mysql_send_query + mysql_read_query_result: the statement opens at the
 * send and is answered at the read. */
EXPORT int mysql_send_query(MYSQL *h, const char *q, unsigned long len)
{
	if (!RESOLVE(send_query, "mysql_send_query", mysql_send_query))
		return 1;
	if (pl_db_depth || pl_cfg.disabled || !q)
		return my.send_query(h, q, len);
	pl_mysql_flush_thread();
	struct pl_stmt st;
	pl_stmt_begin(&st);
	pl_db_depth++;
	int rc = my.send_query(h, q, len);
	pl_db_depth--;
	int saved = errno;
	query_returned(h, &st, q, len, rc);
	errno = saved;
	return rc;
}

EXPORT unsigned char mysql_read_query_result(MYSQL *h)
{
	if (!RESOLVE(read_query_result, "mysql_read_query_result", mysql_read_query_result))
		return 1;
	pl_db_depth++;
	unsigned char rc = my.read_query_result(h);
	pl_db_depth--;
	if (rc && open_q.handle == h && !pl_db_depth) {
		int saved = errno;
		struct pl_stmt_result res = { .failed = 1 };
		char code[16];
		open_q.handle = NULL;
		if (resolve_accessors())
			fill_error(h, &res, code, sizeof code);
		pl_stmt_end(&open_q.st, AP_DB_MYSQL, open_q.text, open_q.len, &res);
		errno = saved;
	}
	return rc;
}

EXPORT MYSQL_RES *mysql_store_result(MYSQL *h)
{
	if (!RESOLVE(store_result, "mysql_store_result", mysql_store_result))
		return NULL;
	pl_db_depth++;
	MYSQL_RES *r = my.store_result(h);
	pl_db_depth--;
	if (open_q.handle == h && !pl_db_depth) {
		int saved = errno;
		end_open(r, 1);
		errno = saved;
	}
	return r;
}

EXPORT MYSQL_RES *mysql_use_result(MYSQL *h)
{
	if (!RESOLVE(use_result, "mysql_use_result", mysql_use_result))
		return NULL;
	pl_db_depth++;
	MYSQL_RES *r = my.use_result(h);
	pl_db_depth--;
	if (open_q.handle == h && !pl_db_depth) {
		int saved = errno;
		/* Rows stream later, row by row: the count is not known here. */
		end_open(NULL, 1);
		errno = saved;
	}
	return r;
}

EXPORT void mysql_close(MYSQL *h)
{
	if (!RESOLVE(close, "mysql_close", mysql_close))
		return;
	if (open_q.handle == h)
		pl_mysql_flush_thread();
	my.close(h);
}

EXPORT int mysql_stmt_prepare(MYSQL_STMT *s, const char *q, unsigned long len)
{
	if (!RESOLVE(stmt_prepare, "mysql_stmt_prepare", mysql_stmt_prepare))
		return 1;
	if (pl_db_depth || pl_cfg.disabled || !q)
		return my.stmt_prepare(s, q, len);
	pl_mysql_flush_thread();
	struct pl_stmt st;
	pl_stmt_begin(&st);
	st.prepare = 1;
	pl_db_depth++;
	int rc = my.stmt_prepare(s, q, len);
	pl_db_depth--;
	int saved = errno;
	pl_prepared_put(s, 0, q, len);
	struct pl_stmt_result res = { 0 };
	char code[16];
	if (rc != 0 && RESOLVE(stmt_errno, "mysql_stmt_errno", NULL) &&
	    RESOLVE(stmt_error, "mysql_stmt_error", NULL)) {
		res.failed = 1;
		snprintf(code, sizeof code, "%u", my.stmt_errno(s));
		res.code = code;
		res.message = my.stmt_error(s);
	}
	pl_stmt_end(&st, AP_DB_MYSQL, q, len, &res);
	errno = saved;
	return rc;
}

EXPORT int mysql_stmt_execute(MYSQL_STMT *s)
{
	if (!RESOLVE(stmt_execute, "mysql_stmt_execute", mysql_stmt_execute))
		return 1;
	if (pl_db_depth || pl_cfg.disabled)
		return my.stmt_execute(s);
	pl_mysql_flush_thread();
	struct pl_stmt st;
	pl_stmt_begin(&st);
	pl_db_depth++;
	int rc = my.stmt_execute(s);
	pl_db_depth--;
	int saved = errno;
	char text[PL_PREPARED_TEXT];
	int cut;
	size_t len = pl_prepared_get(s, 0, text, sizeof text, &cut);
	st.truncated = (uint8_t)cut;
	if (len == 0)
		len = (size_t)snprintf(text, sizeof text, "EXECUTE ?");
	struct pl_stmt_result res = { 0 };
	char code[16];
	if (RESOLVE(stmt_errno, "mysql_stmt_errno", NULL) &&
	    RESOLVE(stmt_error, "mysql_stmt_error", NULL) &&
	    RESOLVE(stmt_affected_rows, "mysql_stmt_affected_rows", NULL)) {
		if (rc != 0) {
			res.failed = 1;
			snprintf(code, sizeof code, "%u", my.stmt_errno(s));
			res.code = code;
			res.message = my.stmt_error(s);
		} else {
			res.rows = my.stmt_affected_rows(s);
			res.rows_known = res.rows != (my_ulonglong)-1;
		}
	}
	pl_stmt_end(&st, AP_DB_MYSQL, text, len, &res);
	errno = saved;
	return rc;
}

EXPORT unsigned char mysql_stmt_close(MYSQL_STMT *s)
{
	if (!RESOLVE(stmt_close, "mysql_stmt_close", mysql_stmt_close))
		return 1;
	pl_prepared_forget(s);
	return my.stmt_close(s);
}

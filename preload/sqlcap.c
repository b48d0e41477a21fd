/*
 * sqlcap.c - what the libpq, MySQL and SQLite hooks share (their real
 * functions are found by libcopy.c): timing and attributing a statement,
 * stripping its literals and handing it to the shipper, and a small table
 * of prepared statements' texts.
 */
#include "config.h"
#include "pl.h"
#include "ap_sql.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

__thread int pl_db_depth;

/* ---- statements ---- */

void pl_stmt_begin(struct pl_stmt *st)
{
	int saved = errno;
	int ambiguous;
	/* busy while it may hold a connection's lock (pl_hold() in pl.h) */
	pl_hold();
	st->req_id = pl_conn_current_request(&ambiguous);
	pl_leave();
	st->tid = pl_tid();
	st->ambiguous = (uint8_t)ambiguous;
	st->prepare = 0;
	st->truncated = 0;
	st->start_ns = pl_now_ns();
	errno = saved;
}

static int dialect_of(int db)
{
	return db == AP_DB_MYSQL ? AP_SQL_MYSQL : db == AP_DB_SQLITE ? AP_SQL_SQLITE : AP_SQL_PG;
}

size_t pl_scrub_http_body(const char *msg, size_t len, char *out, size_t cap)
{
	return ap_sql_scrub_http_body(msg, len, out, cap);
}

void pl_stmt_end(const struct pl_stmt *st, int db, const char *sql, size_t len,
                 const struct pl_stmt_result *res)
{
	int saved = errno;
	uint64_t end = pl_now_ns();
	/* On the host thread's stack: statements are bounded by
	 * APIPROF_MAX_SQL_BYTES (at most 16 KiB, see init.c). */
	char text[pl_cfg.max_sql_bytes + 1];
	int truncated = 0;
	unsigned flags = pl_cfg.capture_sql_values ? AP_SQL_KEEP_VALUES : 0;
	uint64_t fp;
	/* (a NULL sql is an empty statement to the normaliser) */
	size_t tlen = ap_sql_normalize_fp(sql, len, dialect_of(db), flags, text, sizeof text,
	                                  &truncated, &fp);
	if (flags & AP_SQL_KEEP_VALUES) {
		/* The fingerprint names the shape, never the values: with values
		 * kept, every statement would be its own shape and no N+1 would
		 * ever be found (ap_sql.h). */
		char shape[pl_cfg.max_sql_bytes + 1];
		(void)ap_sql_normalize_fp(sql, len, dialect_of(db), 0, shape, sizeof shape,
		                          NULL, &fp);
	}

	char code[16] = "";
	char msg[256];
	size_t mlen = 0;
	if (res->failed) {
		if (res->code) {
			size_t n = strnlen(res->code, sizeof code - 1);
			memcpy(code, res->code, n);
			code[n] = '\0';
		}
		if (res->message) {
			/* PostgreSQL's DETAIL and HINT lines quote values: primary
			 * message only, without the "ERROR:  " tag PQerrorMessage
			 * puts first. The other clients' messages are one line. */
			const char *m = res->message;
			size_t n = strlen(m), off = 0;
			if (db == AP_DB_POSTGRES)
				n = ap_sql_pg_primary(m, n, &off);
			else
				n = strcspn(m, "\n");
			mlen = ap_sql_scrub_message(m + off, n, msg, sizeof msg);
		}
	}

	/* A statement that outlived its request (an asynchronous one sent
	 * in it whose last result is read after the response ended: a task
	 * the handler did not wait for) would arrive after the request took
	 * its statements, and wait there until it expires: it counts for the
	 * service only, as one that belongs to no request. Known only on the
	 * thread that noted the request. */
	uint64_t req_id = st->req_id;
	if (req_id && st->tid == pl_tid() && !pl_conn_request_open_here(req_id))
		req_id = 0;
	struct ap_rec_sql rec = {
		.req_id = req_id,
		.start_ns = st->start_ns,
		.end_ns = end,
		.rows = res->rows_known ? res->rows : 0,
		.fingerprint = fp,
		.tid = pl_tid(),
		.db = (uint8_t)db,
		.flags = (uint8_t)((res->failed ? AP_SQLF_ERROR : 0) |
		                   (truncated || st->truncated ? AP_SQLF_TRUNCATED : 0) |
		                   (st->prepare ? AP_SQLF_PREPARE : 0) |
		                   (st->ambiguous ? AP_SQLF_AMBIGUOUS : 0) |
		                   (pl_cfg.capture_sql_values ? AP_SQLF_VALUES_KEPT : 0) |
		                   (res->rows_known ? 0 : AP_SQLF_ROWS_UNKNOWN)),
		.error_code = { code, (uint16_t)strlen(code) },
		.error_message = { msg, (uint16_t)mlen },
		.sql = { text, (uint16_t)tlen },
	};
	/* busy while it holds the buffer's lock (pl_hold() in pl.h) */
	pl_hold();
	pl_ship_sql(&rec);
	pl_leave();
	errno = saved;
}

/* ---- prepared statements' texts ---- */

/* A fixed table, overwritten round-robin: a statement prepared long ago and
 * evicted executes as "EXECUTE name" rather than costing memory. Guarded by
 * a spin lock: only prepares and executions of prepared statements take it. */
#define PREPARED_SLOTS 256
static struct pl_prepared prepared[PREPARED_SLOTS];
static unsigned prepared_next;
static int prepared_lock;

static void plock(void)
{
	while (__atomic_exchange_n(&prepared_lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void punlock(void)
{
	__atomic_store_n(&prepared_lock, 0, __ATOMIC_RELEASE);
}

void pl_sqlcap_atfork_child(void)
{
	prepared_lock = 0;
}

uint64_t pl_hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; s && *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

void pl_prepared_put(const void *owner, uint64_t name_hash, const char *sql, size_t len)
{
	plock();
	struct pl_prepared *slot = NULL;
	for (unsigned i = 0; i < PREPARED_SLOTS && !slot; i++)
		if (prepared[i].owner == owner && prepared[i].name_hash == name_hash)
			slot = &prepared[i];
	if (!slot)
		slot = &prepared[prepared_next++ % PREPARED_SLOTS];
	slot->owner = owner;
	slot->name_hash = name_hash;
	slot->cut = len >= sizeof slot->text;
	if (slot->cut)
		len = sizeof slot->text - 1;
	memcpy(slot->text, sql, len);
	slot->text[len] = '\0';
	punlock();
}

size_t pl_prepared_get(const void *owner, uint64_t name_hash, char *out, size_t cap, int *cut)
{
	size_t n = 0;
	*cut = 0;
	plock();
	for (unsigned i = 0; i < PREPARED_SLOTS; i++)
		if (prepared[i].owner == owner && prepared[i].name_hash == name_hash) {
			n = strnlen(prepared[i].text, sizeof prepared[i].text);
			*cut = prepared[i].cut;
			if (n >= cap) {
				n = cap - 1;
				*cut = 1;
			}
			memcpy(out, prepared[i].text, n);
			out[n] = '\0';
			break;
		}
	punlock();
	return n;
}

void pl_prepared_forget(const void *owner)
{
	plock();
	for (unsigned i = 0; i < PREPARED_SLOTS; i++)
		if (prepared[i].owner == owner)
			prepared[i].owner = NULL;
	punlock();
}

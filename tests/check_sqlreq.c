/*
 * check_sqlreq.c - statements as the collector keeps them (collector/
 * stmt.h) and their attachment to requests (collector/sqlreq.h): cleaning
 * and classification, pending groups per (pid, req_id), N+1 detection at
 * the threshold boundaries, and every way a pending group expires.
 */
#include "config.h"
#include "check_suites.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ap_wire.h"
#include "sqlreq.h"
#include "stmt.h"

#define MS 1000000ULL
#define WALL_OFF (1795335300LL * 1000000000LL) /* mono 0 = 2026-11-22T08:15:00Z */

/* A statement as if decoded from the wire. */
static struct col_stmt *mk(const char *sql, uint64_t fp, uint8_t flags, uint64_t start_ms,
                           uint64_t dur_ms)
{
	struct ap_rec_sql r = {
		.req_id = 1, .start_ns = start_ms * MS, .end_ns = (start_ms + dur_ms) * MS,
		.rows = 3, .fingerprint = fp, .tid = 9, .db = AP_DB_POSTGRES, .flags = flags,
		.error_code = { "", 0 }, .error_message = { "", 0 },
		.sql = { sql, (uint16_t)strlen(sql) },
	};
	if (flags & AP_SQLF_ERROR) {
		r.error_code = (struct ap_str){ "42P01", 5 };
		r.error_message = (struct ap_str){ "relation \"t\" does not exist", 27 };
	}
	struct col_stmt *s = col_stmt_new(&r, WALL_OFF, 100);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* ---- stmt ---- */

START_TEST(test_stmt_new)
{
	static const char sql[] = "SELECT * FROM t WHERE a = ?\n\x01\xff";
	static const char code[] = "42 P01\"x";
	struct ap_rec_sql r = {
		.req_id = 5, .start_ns = 10 * MS, .end_ns = 110 * MS, .rows = 7,
		.fingerprint = 0xfedcba9876543210ULL, .db = AP_DB_MYSQL,
		.flags = AP_SQLF_ERROR | AP_SQLF_ROWS_UNKNOWN | AP_SQLF_PREPARE,
		.error_code = { code, sizeof code - 1 },
		.error_message = { "bad\tthing", 9 },
		.sql = { sql, sizeof sql - 1 },
	};
	struct col_stmt *s = col_stmt_new(&r, WALL_OFF, 100);
	ck_assert_ptr_nonnull(s);
	/* Control bytes and invalid UTF-8 become '?': JSON- and SQL-safe. */
	ck_assert_str_eq(s->sql, "SELECT * FROM t WHERE a = ????");
	ck_assert_str_eq(s->error_code, "42?P01?x");
	ck_assert_str_eq(s->error_message, "bad?thing");
	ck_assert_int_eq(s->ts_ns, WALL_OFF + 10 * (int64_t)MS);
	ck_assert(s->duration_ms == 100);
	ck_assert_int_eq(s->slow, 1); /* at the threshold */
	ck_assert_int_eq(s->failed, 1);
	ck_assert_int_eq(s->prepare, 1);
	ck_assert_int_eq(s->rows_known, 0);
	ck_assert_int_eq(s->db, AP_DB_MYSQL);
	col_stmt_free(s);

	/* An end before the start is a zero duration; a long code is cut. */
	r.end_ns = 1;
	r.flags = 0;
	r.error_code = (struct ap_str){ "0123456789ABCDEFGHIJ", 20 };
	s = col_stmt_new(&r, WALL_OFF, 100);
	ck_assert(s->duration_ms == 0);
	ck_assert_int_eq(s->slow, 0);
	ck_assert_int_eq(s->failed, 0);
	ck_assert_int_eq(s->rows_known, 1);
	ck_assert_uint_eq(strlen(s->error_code), COL_ERR_CODE_MAX - 1);
	col_stmt_free(s);
	col_stmt_free(NULL);
}
END_TEST

START_TEST(test_stmt_names)
{
	char buf[COL_ERR_TYPE_MAX], hex[COL_FP_HEX];
	ck_assert_str_eq(col_sql_db_name(AP_DB_POSTGRES), "postgresql");
	ck_assert_str_eq(col_sql_db_name(AP_DB_MYSQL), "mysql");
	ck_assert_str_eq(col_sql_db_name(AP_DB_SQLITE), "sqlite");
	ck_assert_str_eq(col_sql_db_name(0), "unknown");
	ck_assert_str_eq(col_sql_db_name(99), "unknown");
	ck_assert_int_eq(col_sql_db_lookup("mysql"), AP_DB_MYSQL);
	ck_assert_int_eq(col_sql_db_lookup("unknown"), -1);
	ck_assert_str_eq(col_sql_error_type(AP_DB_POSTGRES, "42P01", buf, sizeof buf),
	                 "SQLSTATE 42P01");
	ck_assert_str_eq(col_sql_error_type(AP_DB_MYSQL, "1146", buf, sizeof buf), "MySQL 1146");
	ck_assert_str_eq(col_sql_error_type(AP_DB_SQLITE, "1", buf, sizeof buf), "SQLite 1");
	ck_assert_str_eq(col_sql_error_type(AP_DB_SQLITE, "", buf, sizeof buf), "SQLite unknown");
	ck_assert_str_eq(col_sql_error_type(7, "x", buf, sizeof buf), "SQL x");
	ck_assert_str_eq(col_fp_hex(0, hex), "0000000000000000");
	ck_assert_str_eq(col_fp_hex(0xfedcba9876543210ULL, hex), "fedcba9876543210");
	uint64_t fp;
	ck_assert_int_eq(col_fp_parse("FEDCBA9876543210", &fp), 0);
	ck_assert(fp == 0xfedcba9876543210ULL);
	ck_assert_int_eq(col_fp_parse("1f", &fp), 0);
	ck_assert(fp == 0x1f);
	ck_assert_int_eq(col_fp_parse("", &fp), -EINVAL);
	ck_assert_int_eq(col_fp_parse("0123456789abcdef0", &fp), -EINVAL);
	ck_assert_int_eq(col_fp_parse("12g", &fp), -EINVAL);
}
END_TEST

START_TEST(test_stmt_session)
{
	static const struct { const char *sql; int session; } cases[] = {
		{ "BEGIN", 1 },
		{ "begin immediate", 1 },
		{ "START TRANSACTION", 1 },
		{ "start  transaction read only", 1 },
		{ "START SLAVE", 0 },
		{ "COMMIT", 1 },
		{ "END", 1 },
		{ "ROLLBACK TO SAVEPOINT s1", 1 },
		{ "SAVEPOINT s1", 1 },
		{ "RELEASE SAVEPOINT s1", 1 },
		{ "SET autocommit = ?", 1 },
		{ "SET TIME ZONE ?", 1 },
		{ "SHOW TRANSACTION ISOLATION LEVEL", 1 },
		{ "  /* c */ -- x\n set search_path = ?", 1 },
		{ "SELECT * FROM t", 0 },
		{ "SELECT begin FROM t", 0 },
		{ "BEGINNING", 0 },
		{ "UPDATE t SET a = ?", 0 },
		{ "INSERT INTO settings VALUES (?)", 0 },
		{ "", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct col_stmt *s = mk(cases[i].sql, 1, 0, 0, 1);
		ck_assert_msg(s->session == cases[i].session, "%s: %d", cases[i].sql, s->session);
		col_stmt_free(s);
	}
}
END_TEST

/* ---- attachment and N+1 ---- */

static struct col_pending *pend;
static int nexpired;
static char last_service[64];

static void on_expired(void *arg, const char *service, const struct col_stmt *s)
{
	(void)arg;
	(void)s;
	nexpired++;
	snprintf(last_service, sizeof last_service, "%s", service);
}

static void setup(void)
{
	struct col_pending_opts o = { .expired = on_expired };
	nexpired = 0;
	last_service[0] = '\0';
	pend = col_pending_new(&o);
	ck_assert_ptr_nonnull(pend);
}

static void teardown(void)
{
	col_pending_free(pend);
}

static int add(uint32_t pid, uint64_t req, const char *sql, uint64_t fp, uint8_t flags,
               int64_t now)
{
	return col_pending_add(pend, pid, 0, req, "svc", mk(sql, fp, flags, 0, 2), now);
}

START_TEST(test_attach)
{
	ck_assert_int_eq(add(10, 1, "SELECT ?", 11, 0, 0), 1);
	ck_assert_int_eq(add(10, 2, "SELECT 2", 22, 0, 0), 1);  /* another request */
	ck_assert_int_eq(add(11, 1, "SELECT 3", 33, 0, 0), 1);  /* another process */
	ck_assert_int_eq(add(10, 1, "UPDATE t", 44, 0, 0), 1);
	ck_assert_int_eq(add(10, 0, "SELECT ?", 11, 0, 0), -EINVAL); /* req_id 0: none */
	struct col_pending_counters c;
	col_pending_counters(pend, &c);
	ck_assert_uint_eq(c.groups, 3);
	ck_assert_uint_eq(c.statements, 4);

	struct col_reqsql *r = col_pending_take(pend, 10, 1);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->count, 2);
	ck_assert_uint_eq(r->n, 2);
	ck_assert(r->time_ms == 4);
	ck_assert_str_eq(r->v[0]->sql, "SELECT ?"); /* in arrival order */
	ck_assert_str_eq(r->v[1]->sql, "UPDATE t");
	ck_assert_ptr_null(col_pending_take(pend, 10, 1)); /* taken once */
	ck_assert_ptr_null(col_pending_take(pend, 12, 1));
	ck_assert_ptr_null(col_pending_take(pend, 10, 0));
	uint32_t n;
	struct col_stmt **v = col_reqsql_steal(r, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(r->n, 0);
	ck_assert_uint_eq(r->count, 2); /* counts stay */
	col_reqsql_free(r);
	for (uint32_t i = 0; i < n; i++)
		col_stmt_free(v[i]);
	free(v);
	col_pending_counters(pend, &c);
	ck_assert_uint_eq(c.groups, 2);
	ck_assert_uint_eq(c.statements, 2);
	ck_assert_uint_eq(c.expired, 0);
	col_reqsql_free(NULL);
}
END_TEST

/* The N+1 findings of `reps` executions of one shape, threshold t. */
static size_t n1_of(int reps, int t, uint8_t flags, const char *sql)
{
	for (int i = 0; i < reps; i++)
		add(1, 7, sql, 0xabc, flags, 0);
	struct col_reqsql *r = col_pending_take(pend, 1, 7);
	ck_assert_ptr_nonnull(r);
	struct col_n1 out[4];
	size_t n = col_reqsql_n1(r, t, out, 4);
	if (n > 0) {
		ck_assert(out[0].fingerprint == 0xabc);
		ck_assert_uint_eq(out[0].count, (uint32_t)reps);
		ck_assert_str_eq(out[0].sql, sql);
	}
	col_reqsql_free(r);
	return n;
}

START_TEST(test_n1_threshold)
{
	/* Threshold t: t executions are an N+1, t - 1 are not. */
	for (int t = 2; t <= 4; t++) {
		ck_assert_uint_eq(n1_of(t - 1, t, 0, "SELECT * FROM b WHERE id = ?"), 0);
		ck_assert_uint_eq(n1_of(t, t, 0, "SELECT * FROM b WHERE id = ?"), 1);
		ck_assert_uint_eq(n1_of(t + 1, t, 0, "SELECT * FROM b WHERE id = ?"), 1);
	}
}
END_TEST

START_TEST(test_n1_exclusions)
{
	/* Session and transaction statements never are. */
	ck_assert_uint_eq(n1_of(10, 3, 0, "SET autocommit = ?"), 0);
	ck_assert_uint_eq(n1_of(10, 3, 0, "SAVEPOINT s"), 0);
	ck_assert_uint_eq(n1_of(10, 3, 0, "BEGIN"), 0);
	/* Prepares are not executions. */
	ck_assert_uint_eq(n1_of(10, 3, AP_SQLF_PREPARE, "SELECT ?"), 0);
	/* Two prepares and two executions of one shape: 2 < 3. */
	add(1, 7, "SELECT $1", 5, AP_SQLF_PREPARE, 0);
	add(1, 7, "SELECT $1", 5, AP_SQLF_PREPARE, 0);
	add(1, 7, "SELECT $1", 5, 0, 0);
	add(1, 7, "SELECT $1", 5, 0, 0);
	struct col_reqsql *r = col_pending_take(pend, 1, 7);
	struct col_n1 out[4];
	ck_assert_uint_eq(col_reqsql_n1(r, 3, out, 4), 0);
	ck_assert_uint_eq(r->count, 4); /* but all four are statements */
	col_reqsql_free(r);
	/* Failed statements still count as executions. */
	ck_assert_uint_eq(n1_of(3, 3, AP_SQLF_ERROR, "SELECT * FROM missing WHERE id = ?"), 1);
}
END_TEST

START_TEST(test_n1_two_shapes)
{
	/* Interleaved: a 4-times shape, a 3-times one, a twice one, a session
	 * statement 5 times. */
	for (int i = 0; i < 5; i++) {
		add(1, 9, "BEGIN", 1, 0, 0);
		if (i < 4)
			add(1, 9, "SELECT * FROM author WHERE id = ?", 0x20, 0, 0);
		if (i < 3)
			add(1, 9, "SELECT * FROM tag WHERE id = ?", 0x10, 0, 0);
		if (i < 2)
			add(1, 9, "SELECT * FROM x", 0x30, 0, 0);
	}
	struct col_reqsql *r = col_pending_take(pend, 1, 9);
	ck_assert_uint_eq(r->count, 14);
	struct col_n1 out[4];
	ck_assert_uint_eq(col_reqsql_n1(r, 3, out, 4), 2);
	ck_assert(out[0].fingerprint == 0x20 && out[0].count == 4); /* most repeated first */
	ck_assert_str_eq(out[0].sql, "SELECT * FROM author WHERE id = ?");
	ck_assert(out[1].fingerprint == 0x10 && out[1].count == 3);
	/* Only `max` written, every finding counted. */
	ck_assert_uint_eq(col_reqsql_n1(r, 3, out, 1), 2);
	ck_assert_uint_eq(col_reqsql_n1(r, 2, out, 4), 3);
	col_reqsql_free(r);
}
END_TEST

START_TEST(test_request_bound)
{
	col_pending_free(pend);
	struct col_pending_opts o = { .max_per_req = 5, .expired = on_expired };
	pend = col_pending_new(&o);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(add(1, 1, "SELECT * FROM b WHERE id = ?", 0x77, 0, 0), i < 5);
	/* A failed statement is kept past the request's bound. */
	ck_assert_int_eq(add(1, 1, "SELECT * FROM nope", 0x78, AP_SQLF_ERROR, 0), 1);
	/* A shape first seen past the bound still counts for N+1, with its
	 * text. */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(add(1, 1, "SELECT * FROM late WHERE id = ?", 0x79, 0, 0), 0);
	struct col_reqsql *r = col_pending_take(pend, 1, 1);
	ck_assert_uint_eq(r->count, 12);
	ck_assert_uint_eq(r->n, 6);
	ck_assert_uint_eq(r->omitted, 6);
	ck_assert(r->v[5]->failed);
	struct col_n1 out[4];
	ck_assert_uint_eq(col_reqsql_n1(r, 3, out, 4), 2);
	ck_assert(out[0].fingerprint == 0x77 && out[0].count == 8);
	ck_assert(out[1].fingerprint == 0x79 && out[1].count == 3);
	ck_assert_str_eq(out[1].sql, "SELECT * FROM late WHERE id = ?");
	col_reqsql_free(r);
}
END_TEST

START_TEST(test_shape_bound)
{
	/* Past COL_REQ_MAX_SHAPES distinct shapes, new ones are not tracked
	 * (known ones still count). */
	col_pending_free(pend);
	struct col_pending_opts o = { .max_per_req = 5000, .max_per_proc = 6000 };
	pend = col_pending_new(&o);
	for (uint64_t i = 1; i <= COL_REQ_MAX_SHAPES + 10; i++)
		add(1, 1, "SELECT ?", i, 0, 0);
	for (int k = 0; k < 3; k++) {
		add(1, 1, "SELECT ?", 1, 0, 0);                      /* known */
		add(1, 1, "SELECT ?", COL_REQ_MAX_SHAPES + 5, 0, 0); /* untracked */
	}
	struct col_reqsql *r = col_pending_take(pend, 1, 1);
	struct col_n1 out[4];
	ck_assert_uint_eq(col_reqsql_n1(r, 3, out, 4), 1);
	ck_assert(out[0].fingerprint == 1 && out[0].count == 4);
	col_reqsql_free(r);
}
END_TEST

START_TEST(test_expire_ttl)
{
	int64_t s = 1000000000LL;
	add(1, 1, "SELECT 1", 1, 0, 0);
	add(1, 2, "SELECT 2", 2, 0, 10 * s);
	add(1, 1, "SELECT 1", 1, 0, 20 * s); /* activity keeps request 1 alive */
	ck_assert_uint_eq(col_pending_expire(pend, 40 * s), 0); /* 2: idle exactly 30 s */
	ck_assert_uint_eq(col_pending_expire(pend, 40 * s + 1), 1); /* past it */
	ck_assert_int_eq(nexpired, 1);
	ck_assert_str_eq(last_service, "svc");
	ck_assert_uint_eq(col_pending_expire(pend, 50 * s), 0);
	ck_assert_uint_eq(col_pending_expire(pend, 50 * s + 1), 2);
	struct col_pending_counters c;
	col_pending_counters(pend, &c);
	ck_assert_uint_eq(c.groups, 0);
	ck_assert_uint_eq(c.statements, 0);
	ck_assert_uint_eq(c.expired, 3);
	ck_assert_ptr_null(col_pending_take(pend, 1, 1));
	/* Adding expires what is due first. */
	add(2, 1, "SELECT 1", 1, 0, 100 * s);
	add(2, 2, "SELECT 1", 1, 0, 200 * s);
	ck_assert_ptr_null(col_pending_take(pend, 2, 1));
	struct col_reqsql *r = col_pending_take(pend, 2, 2);
	ck_assert_ptr_nonnull(r);
	col_reqsql_free(r);
}
END_TEST

START_TEST(test_expire_bounds)
{
	col_pending_free(pend);
	struct col_pending_opts o = { .max_per_req = 10, .max_per_proc = 30, .max_total = 50,
	                              .expired = on_expired };
	pend = col_pending_new(&o);
	/* Process 1: requests 1..3 with 10 statements each, its bound. */
	for (uint64_t q = 1; q <= 3; q++)
		for (int i = 0; i < 10; i++)
			add(1, q, "SELECT ?", q, 0, (int64_t)q);
	ck_assert_int_eq(nexpired, 0);
	/* Activity makes 1 the most recent (the statement is only counted:
	 * its request's list is full), so request 4's first statement evicts
	 * request 2, the least recently active. */
	ck_assert_int_eq(add(1, 1, "SELECT ?", 1, 0, 5), 0);
	ck_assert_int_eq(nexpired, 0);
	ck_assert_int_eq(add(1, 4, "SELECT ?", 4, 0, 6), 1);
	ck_assert_int_eq(nexpired, 10);
	ck_assert_ptr_null(col_pending_take(pend, 1, 2));
	struct col_reqsql *r = col_pending_take(pend, 1, 1);
	ck_assert_uint_eq(r->count, 11);
	ck_assert_uint_eq(r->n, 10); /* its own bound: the 11th only counted */
	col_reqsql_free(r);
	/* All processes together: 50. */
	for (uint32_t pid = 2; pid <= 6; pid++)
		for (int i = 0; i < 10; i++)
			add(pid, 1, "SELECT ?", pid, 0, 10 + pid);
	/* process 1 request 3 (10) + 5 x 10 = 60 > 50: the oldest went. */
	struct col_pending_counters c;
	col_pending_counters(pend, &c);
	ck_assert_uint_le(c.statements, 50);
	ck_assert_ptr_null(col_pending_take(pend, 1, 3));
	r = col_pending_take(pend, 6, 1);
	ck_assert_uint_eq(r->n, 10);
	col_reqsql_free(r);
}
END_TEST

START_TEST(test_expire_pid_reuse)
{
	col_pending_add(pend, 50, 111, 1, "old", mk("SELECT 1", 1, 0, 0, 1), 0);
	col_pending_add(pend, 50, 111, 2, "old", mk("SELECT 1", 1, 0, 0, 1), 0);
	col_pending_hello(pend, 50, 111); /* the same process */
	ck_assert_int_eq(nexpired, 0);
	col_pending_hello(pend, 51, 999); /* another pid: nothing */
	ck_assert_int_eq(nexpired, 0);
	col_pending_hello(pend, 50, 222); /* a new process under the pid */
	ck_assert_int_eq(nexpired, 2);
	ck_assert_str_eq(last_service, "old");
	ck_assert_ptr_null(col_pending_take(pend, 50, 1));
	/* The new start time also shows with the statements themselves. */
	col_pending_add(pend, 50, 222, 1, "new", mk("SELECT 1", 1, 0, 0, 1), 0);
	col_pending_add(pend, 50, 333, 1, "newer", mk("SELECT 2", 2, 0, 0, 1), 0);
	ck_assert_int_eq(nexpired, 3);
	struct col_reqsql *r = col_pending_take(pend, 50, 1);
	ck_assert_uint_eq(r->count, 1);
	ck_assert_str_eq(r->v[0]->sql, "SELECT 2");
	col_reqsql_free(r);
	/* Freeing expires what is left. */
	col_pending_add(pend, 60, 0, 1, "x", mk("SELECT 1", 1, 0, 0, 1), 0);
	col_pending_free(pend);
	pend = NULL;
	ck_assert_int_eq(nexpired, 4);
}
END_TEST

Suite *sqlreq_suite(void)
{
	Suite *s = suite_create("sqlreq");
	TCase *tc = tcase_create("stmt");
	tcase_add_test(tc, test_stmt_new);
	tcase_add_test(tc, test_stmt_names);
	tcase_add_test(tc, test_stmt_session);
	suite_add_tcase(s, tc);
	tc = tcase_create("pending");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_attach);
	tcase_add_test(tc, test_n1_threshold);
	tcase_add_test(tc, test_n1_exclusions);
	tcase_add_test(tc, test_n1_two_shapes);
	tcase_add_test(tc, test_request_bound);
	tcase_add_test(tc, test_shape_bound);
	tcase_add_test(tc, test_expire_ttl);
	tcase_add_test(tc, test_expire_bounds);
	tcase_add_test(tc, test_expire_pid_reuse);
	suite_add_tcase(s, tc);
	return s;
}

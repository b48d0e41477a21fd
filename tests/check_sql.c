/*
 * check_sql.c - statement shapes, fingerprints, classification and error
 * message and HTTP body scrubbing (shared/sql.c).
 *
 * Every normalisation in this file reads its input from the very end of a
 * heap buffer of exactly the input's length and writes into a heap buffer
 * followed by guard bytes, so AddressSanitizer (and, without it, the guard
 * check) catches a read past `len` or a write past `outcap`. Table cases
 * are also normalised a second time: a shape must be its own shape.
 *
 * Standalone, from a configured build directory (for config.h), with
 * SRC the source tree:
 *   gcc -std=gnu11 -O2 -DSTANDALONE -I. -I$SRC/shared -I$SRC/tests \
 *       $SRC/tests/check_sql.c $SRC/shared/sql.c \
 *       $(pkg-config --cflags --libs check) -o check_sql
 *   ./check_sql          # the suite (add -fsanitize=address,undefined)
 *   ./check_sql bench    # ns per statement, best of 25 runs
 */
#include "config.h"
#include "check_suites.h"
#include "ap_sql.h"
#include "sql_ref.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Check's ck_assert_* costs a write per call; the loops use this. */
#define CHECK(cond) \
	do { \
		if (!(cond)) \
			ck_abort_msg("assertion failed: %s", #cond); \
	} while (0)

#define NCASES(t) ((int)(sizeof(t) / sizeof((t)[0])))
#define GUARD 32
#define BIG 8192

#define PG AP_SQL_PG
#define MY AP_SQL_MYSQL
#define LITE AP_SQL_SQLITE
#define KEEP AP_SQL_KEEP_VALUES

/* 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i], need, min, cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			need = 1, min = 0x80, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			need = 2, min = 0x800, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			need = 3, min = 0x10000, cp = c & 0x07;
		else
			return 0;
		if (n - i <= need)
			return 0;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += need + 1;
	}
	return 1;
}

/*
 * Normalises in[0..len) into out (BIG bytes) with capacity cap, checking
 * the buffer contract: nothing read past len (ASan), nothing written past
 * cap (guard), NUL-terminated, no NUL inside, return value = strlen; and
 * that the fingerprint computed on the way is that of the shape written,
 * by ap_sql_fingerprint() and by the reference (sql_ref.h).
 */
static size_t norm_cap(int d, unsigned fl, const char *in, size_t len,
                       size_t cap, char *out, int *tr)
{
	char *src = malloc(len ? len : 1);
	char *dst = malloc(cap + GUARD);
	size_t n;
	int t = -1;

	CHECK(src && dst);
	memcpy(src, in, len);
	memset(dst, 0xA5, cap + GUARD);
	uint64_t fp = 0;
	n = ap_sql_normalize_fp(src, len, (enum ap_sql_dialect)d, fl, dst, cap, &t, &fp);
	CHECK(t == 0 || t == 1);
	CHECK(fp == ap_sql_fingerprint(cap ? dst : "", n));
	CHECK(fp == ref_fingerprint(cap ? dst : "", n));
	for (size_t k = cap; k < cap + GUARD; k++)
		CHECK((unsigned char)dst[k] == 0xA5);
	if (cap == 0) {
		CHECK(n == 0);
		out[0] = 0;
	} else {
		CHECK(n < cap);
		CHECK(dst[n] == 0);
		CHECK(memchr(dst, 0, n) == NULL);
		memcpy(out, dst, n + 1);
	}
	if (tr)
		*tr = t;
	free(src);
	free(dst);
	return n;
}

static const char *norm(int d, unsigned fl, const char *in, size_t len)
{
	static char out[BIG];
	int tr;
	norm_cap(d, fl, in, len, BIG, out, &tr);
	CHECK(tr == 0);
	return out;
}

static const char *dname(int d)
{
	return d == PG ? "pg" : d == MY ? "mysql" : "sqlite";
}

/* --- normalisation tables --------------------------------------------------- */

struct ncase {
	int d;
	unsigned fl;
	const char *in, *want;
};

/* Inputs with NUL bytes carry their length. */
struct hcase {
	int d;
	unsigned fl;
	const char *in;
	size_t len;
	const char *want;
};
#define L(s) s, sizeof(s) - 1

static const struct ncase pg_cases[] = {
	{ PG, 0, "SELECT * FROM users WHERE id = 42", "SELECT * FROM users WHERE id = ?" },
	{ PG, 0, "select name from users where name = 'bob'",
	  "select name from users where name = ?" },
	/* doubled quotes */
	{ PG, 0, "SELECT 'it''s', 'a''''b', ''", "SELECT ?, ?, ?" },
	/* standard_conforming_strings: a backslash is a backslash */
	{ PG, 0, "SELECT 'C:\\path\\', 'next'", "SELECT ?, ?" },
	/* E'' strings escape */
	{ PG, 0, "SELECT E'it\\'s', e'\\\\', E'a''b' FROM t", "SELECT ?, ?, ? FROM t" },
	{ PG, 0, "SELECT E'\\''", "SELECT ?" },
	{ PG, 0, "SELECT E'\\\\' || 'x' FROM t", "SELECT ? || ? FROM t" },
	{ PG, 0, "SELECT U&'d\\0061t\\+000061', U&\"d\\0061t\" FROM t",
	  "SELECT ?, U&\"d\\0061t\" FROM t" },
	/* dollar quotes: ' and $ inside, tags, nesting */
	{ PG, 0, "SELECT $$it's a $ sign$$, $$$$", "SELECT ?, ?" },
	{ PG, 0, "SELECT $fn$ BEGIN RETURN $$x$$ || 'y'; END $fn$ AS body",
	  "SELECT ? AS body" },
	{ PG, 0, "SELECT $a$ $b$ nested $b$ $a$, $a$x$a$", "SELECT ?, ?" },
	{ PG, 0, "DO $body$ DECLARE n int := 5; BEGIN RAISE NOTICE 'x'; END $body$",
	  "DO ?" },
	/* placeholders stay */
	{ PG, 0, "SELECT $1, $2::int FROM t WHERE a = $10",
	  "SELECT $1, $2::int FROM t WHERE a = $10" },
	/* quoted identifiers stay, digits and all */
	{ PG, 0, "SELECT \"Col 1\", \"a\"\"b\", \"t\".\"x2\" FROM \"My Table\"",
	  "SELECT \"Col 1\", \"a\"\"b\", \"t\".\"x2\" FROM \"My Table\"" },
	{ PG, 0, "SELECT \"abc\" FROM t WHERE \"x\" = 'abc'",
	  "SELECT \"abc\" FROM t WHERE \"x\" = ?" },
	/* comments, with quotes inside; quotes with comment markers inside */
	{ PG, 0, "SELECT /* it's a comment */ 1 -- with 'quote'\nFROM t", "SELECT ? FROM t" },
	{ PG, 0, "/* a /* nested */ still comment */ SELECT 1", "SELECT ?" },
	{ PG, 0, "SELECT '-- not a comment', '/* nor this */', 'x' -- real\n",
	  "SELECT ?, ?, ?" },
	{ PG, 0, "SELECT a/**/FROM t", "SELECT a FROM t" },
	{ PG, 0, "SELECT /*+ IndexScan(t) */ a FROM t", "SELECT a FROM t" },
	{ PG, 0, "SELECT a FROM t /*traceparent='00-4bf92f3577b34da6-00'*/",
	  "SELECT a FROM t" },
	/* identifiers with digits */
	{ PG, 0, "SELECT t1.col_2, x3y, _9 FROM t1 JOIN t22 ON t1.id = t22.t1_id",
	  "SELECT t1.col_2, x3y, _9 FROM t1 JOIN t22 ON t1.id = t22.t1_id" },
	/* numbers */
	{ PG, 0, "SELECT 1, 1.5, .5, 5., 1e10, 1.5E-3, 2e+7, 0x1F, 0o17, 0b101, 1_000_000",
	  "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?" },
	{ PG, 0, "SELECT 123abc", "SELECT ?abc" },
	/* signs */
	{ PG, 0, "SELECT * FROM t WHERE a = -5 AND b = -.5 AND c = +3 AND d=-1",
	  "SELECT * FROM t WHERE a = ? AND b = ? AND c = ? AND d=?" },
	{ PG, 0, "SELECT -1, a -1, a - 1, a-1, (-2), f(x, -3), 1 - -4",
	  "SELECT ?, a -?, a - ?, a-?, (?), f(x, ?), ? - ?" },
	{ PG, 0, "SELECT * FROM t WHERE x BETWEEN -10 AND -1 LIMIT 5 OFFSET 10",
	  "SELECT * FROM t WHERE x BETWEEN ? AND ? LIMIT ? OFFSET ?" },
	{ PG, 0, "SELECT CASE WHEN a THEN -1 ELSE -2 END", "SELECT CASE WHEN a THEN ? ELSE ? END" },
	/* IN lists */
	{ PG, 0, "SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (?)" },
	{ PG, 0, "SELECT * FROM t WHERE id NOT IN ('a','b') AND y IN ( $1 , $2 )",
	  "SELECT * FROM t WHERE id NOT IN (?) AND y IN (?)" },
	{ PG, 0, "SELECT * FROM t WHERE x IN (-1, +2, -3.5, NULL)",
	  "SELECT * FROM t WHERE x IN (?)" },
	{ PG, 0, "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE k = 1)",
	  "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE k = ?)" },
	{ PG, 0, "SELECT * FROM t WHERE id IN (1, x, 3)", "SELECT * FROM t WHERE id IN (?, x, ?)" },
	{ PG, 0, "SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4))",
	  "SELECT * FROM t WHERE (a, b) IN ((?, ?), (?, ?))" },
	{ PG, 0, "SELECT * FROM t WHERE id IN ()", "SELECT * FROM t WHERE id IN ()" },
	{ PG, 0, "SELECT * FROM t WHERE id IN (1::int, 2::int)",
	  "SELECT * FROM t WHERE id IN (?::int, ?::int)" },
	{ PG, 0, "SELECT 'a' IN ('a') FROM t WHERE id IN (1) -- trailing",
	  "SELECT ? IN (?) FROM t WHERE id IN (?)" },
	/* ARRAY[...] lists */
	{ PG, 0, "SELECT * FROM t WHERE id = ANY(ARRAY[1, 2, 3]) AND a[1] = 2",
	  "SELECT * FROM t WHERE id = ANY(ARRAY[?]) AND a[?] = ?" },
	{ PG, 0, "SELECT ARRAY[[1,2],[3,4]], arr[1:-1]", "SELECT ARRAY[[?,?],[?,?]], arr[?:?]" },
	{ PG, 0, "SELECT * FROM t WHERE data ? 'key' AND data ?| array['a', 'b']",
	  "SELECT * FROM t WHERE data ? ? AND data ?| array[?]" },
	/* VALUES */
	{ PG, 0, "INSERT INTO t (a, b) VALUES (1, 'x')", "INSERT INTO t (a, b) VALUES (?)" },
	{ PG, 0, "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, NULL), (DEFAULT, TRUE)",
	  "INSERT INTO t (a, b) VALUES (?)" },
	{ PG, 0, "INSERT INTO t (a, b) VALUES (1, now()), (2, now()), (3,now()) RETURNING id",
	  "INSERT INTO t (a, b) VALUES (?, now()), (?,now()) RETURNING id" },
	{ PG, 0, "INSERT INTO t VALUES (1, lower('A')), (2, lower('B'))",
	  "INSERT INTO t VALUES (?, lower(?))" },
	{ PG, 0, "INSERT INTO t VALUES (1, now()), (2, 3), (4, now())",
	  "INSERT INTO t VALUES (?, now()), (?, ?), (?, now())" },
	{ PG, 0, "VALUES (1, 2), (3, 4)", "VALUES (?)" },
	{ PG, 0, "INSERT INTO t VALUES ($1, $2), ($3, $4) ON CONFLICT (a) DO NOTHING",
	  "INSERT INTO t VALUES (?) ON CONFLICT (a) DO NOTHING" },
	{ PG, 0, "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, s)",
	  "SELECT * FROM (VALUES (?)) AS v(n, s)" },
	/* a column called value is not a VALUES outside MySQL */
	{ PG, 0, "SELECT value (1) FROM t", "SELECT value (?) FROM t" },
	/* unicode */
	{ PG, 0, "SELECT 'héllo wörld', '日本語' FROM \"tàble\" WHERE ñame = 'ü'",
	  "SELECT ?, ? FROM \"tàble\" WHERE ñame = ?" },
	/* whitespace and semicolons */
	{ PG, 0, "  \n\tSELECT\n\t *\r\n FROM   t  ;  \n", "SELECT * FROM t" },
	{ PG, 0, "SELECT 1;;", "SELECT ?" },
	{ PG, 0, "SELECT 1 ; SELECT 2;", "SELECT ?; SELECT ?" },
	{ PG, 0, "", "" },
	{ PG, 0, " \t\n ", "" },
	{ PG, 0, "-- only a comment", "" },
	{ PG, 0, ";", "" },
	/* typed literals, casts */
	{ PG, 0, "SELECT '1'::int, x::text, CAST(2 AS bigint)",
	  "SELECT ?::int, x::text, CAST(? AS bigint)" },
	{ PG, 0, "SELECT interval '1 day', DATE '2024-01-01', TIMESTAMP '2024-01-01 00:00'",
	  "SELECT interval ?, DATE ?, TIMESTAMP ?" },
	{ PG, 0, "SELECT B'0101', X'1F', N'name', b'1' FROM t", "SELECT ?, ?, ?, ? FROM t" },
	{ PG, 0, "SELECT a FROM t WHERE b LIKE 'abc%' ESCAPE '\\'",
	  "SELECT a FROM t WHERE b LIKE ? ESCAPE ?" },
	{ PG, 0, "UPDATE t SET a = 1, b = 'x' WHERE id = 3",
	  "UPDATE t SET a = ?, b = ? WHERE id = ?" },
	{ PG, 0, "SELECT a$b, $1a FROM t", "SELECT a$b, $1a FROM t" },
	/* a DEALLOCATE's generated name is a value: one shape for all */
	{ PG, 0, "DEALLOCATE dbdpg_p4242_17", "DEALLOCATE ?" },
	{ PG, 0, "deallocate prepare _pg3_3;", "deallocate prepare ?" },
	{ PG, 0, "/* app */ DEALLOCATE \"S_1\"", "DEALLOCATE ?" },
	{ PG, 0, "DEALLOCATE ALL", "DEALLOCATE ALL" },
	{ PG, 0, "DEALLOCATE PREPARE ALL", "DEALLOCATE PREPARE ALL" },
	{ PG, 0, "SELECT deallocate, a1 FROM t", "SELECT deallocate, a1 FROM t" },
};

static const struct ncase my_cases[] = {
	{ MY, 0, "SELECT * FROM `users` WHERE `name` = \"bob\" AND id = 1",
	  "SELECT * FROM `users` WHERE `name` = ? AND id = ?" },
	{ MY, 0, "SELECT 'it\\'s', \"say \\\"hi\\\"\", 'a''b', \"a\"\"b\"", "SELECT ?, ?, ?, ?" },
	{ MY, 0, "SELECT 'ends with backslash\\\\', 'next'", "SELECT ?, ?" },
	{ MY, 0, "SELECT `t1`.`col 2`, `a``b` FROM `db`.`t1`",
	  "SELECT `t1`.`col 2`, `a``b` FROM `db`.`t1`" },
	/* comments: #, -- needs a blank after it, no nesting */
	{ MY, 0, "SELECT 1 # comment 'x'\nFROM t -- another\n", "SELECT ? FROM t" },
	{ MY, 0, "SELECT 1--1", "SELECT ?-?" },
	{ MY, 0, "SELECT 1 --1", "SELECT ? -?" },
	{ MY, 0, "SELECT 1 --\tcomment\nFROM t", "SELECT ? FROM t" },
	{ MY, 0, "SELECT 1 --", "SELECT ?" },
	{ MY, 0, "/* a /* b */ c */ SELECT 1", "c */ SELECT ?" },
	/* executable comments are SQL; hints are comments */
	{ MY, 0, "/*!40101 SET NAMES utf8mb4 */", "SET NAMES utf8mb4" },
	{ MY, 0, "SELECT /*!40001 SQL_NO_CACHE */ * FROM t", "SELECT SQL_NO_CACHE * FROM t" },
	{ MY, 0, "SELECT /*M!100100 1, */ 2", "SELECT ?, ?" },
	{ MY, 0, "SELECT /*!50000 'x' */ 1", "SELECT ? ?" },
	{ MY, 0, "SELECT /*+ BKA(t1) */ a FROM t1 /* c 'x' */", "SELECT a FROM t1" },
	/* literal forms */
	{ MY, 0, "SELECT _utf8mb4'abc', _binary'\\0x' FROM t", "SELECT _utf8mb4?, _binary? FROM t" },
	{ MY, 0, "SELECT 0x1F, X'1F', x'ab', b'0101', 0b11, N'x', n'it\\'s'",
	  "SELECT ?, ?, ?, ?, ?, ?, ?" },
	/* identifiers may start with digits */
	{ MY, 0, "SELECT * FROM 1st_table, 2t WHERE 123abc = 1e5",
	  "SELECT * FROM 1st_table, 2t WHERE 123abc = ?" },
	{ MY, 0, "SELECT 123abc", "SELECT 123abc" },
	/* variables */
	{ MY, 0, "SET @x = 5, @@session.sql_mode = 'ANSI'",
	  "SET @x = ?, @@session.sql_mode = ?" },
	{ MY, 0, "SELECT * FROM t WHERE a IN (@a, @b)", "SELECT * FROM t WHERE a IN (?)" },
	/* lists */
	{ MY, 0, "INSERT IGNORE INTO t (a) VALUE (1), (2)", "INSERT IGNORE INTO t (a) VALUE (?)" },
	{ MY, 0, "INSERT INTO t (a, b) VALUES (1, 2) ON DUPLICATE KEY UPDATE a = VALUES(a), b = VALUES(b)",
	  "INSERT INTO t (a, b) VALUES (?) ON DUPLICATE KEY UPDATE a = VALUES(a), b = VALUES(b)" },
	{ MY, 0, "SELECT * FROM t WHERE id IN (1,2,3) LIMIT 10, 20",
	  "SELECT * FROM t WHERE id IN (?) LIMIT ?, ?" },
	{ MY, 0, "SELECT a FROM t WHERE b = ? AND c IN (?, ?, ?)",
	  "SELECT a FROM t WHERE b = ? AND c IN (?)" },
	{ MY, 0, "SELECT \"a /* b\", '-- c', `e -- f`", "SELECT ?, ?, `e -- f`" },
	{ MY, 0, "SELECT $1, $x FROM t", "SELECT $1, $x FROM t" },
	{ MY, 0, "SELECT value FROM t WHERE value IN (1)", "SELECT value FROM t WHERE value IN (?)" },
	{ MY, 0, "SELECT 'héllo', `tàble`, ñame FROM t", "SELECT ?, `tàble`, ñame FROM t" },
	/* a PostgreSQL dollar quote means nothing here */
	{ MY, 0, "SELECT $$", "SELECT $$" },
	{ MY, 0, "DEALLOCATE PREPARE stmt7", "DEALLOCATE PREPARE ?" },
};

static const struct ncase lite_cases[] = {
	{ LITE, 0, "SELECT [col 1], \"col 2\", `col 3` FROM [t]",
	  "SELECT [col 1], \"col 2\", `col 3` FROM [t]" },
	{ LITE, 0, "SELECT * FROM t WHERE a = ? AND b = ?1 AND c = ?23 AND d = :name "
	           "AND e = @p AND f = $v AND g = :1",
	  "SELECT * FROM t WHERE a = ? AND b = ?1 AND c = ?23 AND d = :name "
	  "AND e = @p AND f = $v AND g = :1" },
	{ LITE, 0, "SELECT X'0102', x'ff', 'it''s', 'C:\\'", "SELECT ?, ?, ?, ?" },
	{ LITE, 0, "INSERT INTO t VALUES (?, ?), (?, ?)", "INSERT INTO t VALUES (?)" },
	{ LITE, 0, "INSERT OR REPLACE INTO t (a) VALUES (:a)",
	  "INSERT OR REPLACE INTO t (a) VALUES (?)" },
	{ LITE, 0, "SELECT * FROM t WHERE a IN (:a, :b, ?3)", "SELECT * FROM t WHERE a IN (?)" },
	{ LITE, 0, "SELECT \"a\" FROM t WHERE b = -1", "SELECT \"a\" FROM t WHERE b = ?" },
	{ LITE, 0, "SELECT a FROM t LIMIT -1 OFFSET 5", "SELECT a FROM t LIMIT ? OFFSET ?" },
	/* no E'' strings in SQLite: E is a word, then a string */
	{ LITE, 0, "SELECT E'x'", "SELECT E?" },
	{ LITE, 0, "SELECT * FROM t WHERE a = 'x' -- c\n AND b = 2 /* d */",
	  "SELECT * FROM t WHERE a = ? AND b = ?" },
	{ LITE, 0, "SELECT * FROM t /* /* */ WHERE a = 1", "SELECT * FROM t WHERE a = ?" },
	{ LITE, 0, "SELECT 'ü', \"ñ\" FROM [日本]", "SELECT ?, \"ñ\" FROM [日本]" },
};

static const struct ncase keep_cases[] = {
	{ PG, KEEP, "SELECT  'a  b' , 1 -- c\n FROM t WHERE x IN (1, 2)",
	  "SELECT 'a  b' , 1 FROM t WHERE x IN (1, 2)" },
	{ PG, KEEP, "INSERT INTO t VALUES (1, 'x'), (2, 'y');",
	  "INSERT INTO t VALUES (1, 'x'), (2, 'y')" },
	{ PG, KEEP, "SELECT E'a\\'b', $$x$$, x = -5, ARRAY[1,2]",
	  "SELECT E'a\\'b', $$x$$, x = -5, ARRAY[1,2]" },
	{ PG, KEEP, "SELECT '日本' /* x */ FROM \"t\"", "SELECT '日本' FROM \"t\"" },
	{ MY, KEEP, "SELECT \"str\", 0x1F # c\n", "SELECT \"str\", 0x1F" },
	{ LITE, KEEP, "SELECT X'01',\n\n 2", "SELECT X'01', 2" },
	{ PG, KEEP, "DEALLOCATE a12", "DEALLOCATE a12" },
};

/* Unterminated tokens, NUL bytes, invalid UTF-8, lone punctuation. */
static const struct hcase hostile_cases[] = {
	{ PG, 0, L("SELECT 'abc"), "SELECT ?" },
	{ PG, 0, L("SELECT 'abc''"), "SELECT ?" },
	{ PG, 0, L("SELECT E'abc\\'"), "SELECT ?" },
	{ MY, 0, L("SELECT 'abc\\"), "SELECT ?" },
	{ MY, 0, L("SELECT \"abc\\\""), "SELECT ?" },
	/* an unterminated identifier would keep the values it swallowed */
	{ PG, 0, L("SELECT \"abc FROM t WHERE x = 'secret'"), "SELECT ?" },
	{ LITE, 0, L("SELECT [abc FROM t WHERE x = 'secret'"), "SELECT ?" },
	{ MY, 0, L("SELECT `abc FROM t WHERE x = 'secret'"), "SELECT ?" },
	{ PG, 0, L("SELECT 1 /* abc 'x"), "SELECT ?" },
	{ PG, 0, L("SELECT 1 /* a /* b */ 'x'"), "SELECT ?" },
	{ PG, 0, L("SELECT 1 -- abc"), "SELECT ?" },
	{ PG, 0, L("SELECT $a$ abc"), "SELECT ?" },
	{ PG, 0, L("SELECT $$ abc $"), "SELECT ?" },
	{ PG, 0, L("SELECT $a abc"), "SELECT $a abc" },
	{ MY, 0, L("SELECT /*! 1 "), "SELECT ?" },
	{ PG, 0, L("SELECT 'a\0b', 1\0FROM t WHERE \"x\0y\" = 2"),
	  "SELECT ?, ? FROM t WHERE \"x y\" = ?" },
	{ PG, 0, L("\0\0\0"), "" },
	{ PG, KEEP, L("SELECT 'a\0b'"), "SELECT 'a b'" },
	{ PG, 0, L("SELECT \xff\xfe, '\xc3' FROM t\x80"), "SELECT \xff\xfe, ? FROM t\x80" },
	{ PG, 0, L("SELECT * FROM t WHERE a IN (1, 2"), "SELECT * FROM t WHERE a IN (?" },
	{ PG, 0, L("SELECT * FROM t WHERE a IN ("), "SELECT * FROM t WHERE a IN (" },
	{ PG, 0, L("INSERT INTO t VALUES (1), (2"), "INSERT INTO t VALUES (?), (?" },
	{ PG, 0, L("INSERT INTO t VALUES (1),"), "INSERT INTO t VALUES (?)," },
	{ PG, 0, L("INSERT INTO t VALUES (1), ;"), "INSERT INTO t VALUES (?)," },
	{ PG, 0, L("INSERT INTO t VALUES (1), (2;"), "INSERT INTO t VALUES (?), (?" },
	{ PG, 0, L("(((((((("), "((((((((" },
	{ PG, 0, L(")))]]]"), ")))]]]" },
	{ PG, 0, L("'"), "?" },
	{ PG, 0, L("\""), "?" },
	{ PG, 0, L("$$"), "?" },
	{ PG, 0, L("/*"), "" },
	{ PG, 0, L("--"), "" },
	{ PG, 0, L("E'"), "?" },
	{ PG, 0, L("U&'"), "?" },
	{ PG, 0, L("X'"), "?" },
	{ PG, 0, L("-"), "-" },
	{ PG, 0, L("."), "." },
	{ PG, 0, L("1."), "?" },
	{ PG, 0, L("0x"), "?x" },
	{ MY, 0, L("0x"), "0x" },
	{ PG, 0, L("1e"), "?e" },
	{ PG, 0, L("1e+"), "?e+" },
	{ PG, 0, L("?"), "?" },
	{ PG, 0, L("$"), "$" },
	{ LITE, 0, L(":"), ":" },
	{ MY, 0, L("@@"), "@@" },
	{ MY, 0, L("/*!"), "" },
	{ MY, 0, L("*/ 1"), "*/ ?" },
	{ PG, 0, L("VALUES"), "VALUES" },
	{ PG, 0, L("VALUES ("), "VALUES (" },
	{ PG, 0, L("VALUES (1) , , (1)"), "VALUES (?) , , (?)" },
	{ PG, 0, L("IN IN (IN (1))"), "IN IN (IN (?))" },
	{ PG, 0, L("ARRAY[1, 2)"), "ARRAY[?, ?)" },
};

static void run_case(const struct ncase *c, int idx)
{
	size_t len = strlen(c->in);
	const char *got = norm(c->d, c->fl, c->in, len);
	ck_assert_msg(strcmp(got, c->want) == 0,
	              "%s case %d: %s\n  got: [%s]\n want: [%s]", dname(c->d), idx,
	              c->in, got, c->want);
	/* a shape is its own shape */
	char again[BIG];
	strcpy(again, got);
	got = norm(c->d, c->fl, again, strlen(again));
	ck_assert_msg(strcmp(got, again) == 0, "%s case %d not idempotent:\n"
	              " once: [%s]\ntwice: [%s]", dname(c->d), idx, again, got);
}

START_TEST(test_pg) { run_case(&pg_cases[_i], _i); }
END_TEST
START_TEST(test_mysql) { run_case(&my_cases[_i], _i); }
END_TEST
START_TEST(test_sqlite) { run_case(&lite_cases[_i], _i); }
END_TEST
START_TEST(test_keep_values) { run_case(&keep_cases[_i], _i); }
END_TEST

START_TEST(test_hostile)
{
	const struct hcase *c = &hostile_cases[_i];
	const char *got = norm(c->d, c->fl, c->in, c->len);
	ck_assert_msg(strcmp(got, c->want) == 0, "%s hostile case %d\n  got: [%s]\n want: [%s]",
	              dname(c->d), _i, got, c->want);
}
END_TEST

/* The same input, three dialects: what " and # mean differs. */
START_TEST(test_dialects_differ)
{
	const char *q = "SELECT \"a\", 'b' FROM t # c";
	ck_assert_str_eq(norm(PG, 0, q, strlen(q)), "SELECT \"a\", ? FROM t # c");
	ck_assert_str_eq(norm(MY, 0, q, strlen(q)), "SELECT ?, ? FROM t");
	ck_assert_str_eq(norm(LITE, 0, q, strlen(q)), "SELECT \"a\", ? FROM t # c");
	q = "SELECT 'a\\', 1"; /* 'a\' is complete except in MySQL */
	ck_assert_str_eq(norm(PG, 0, q, strlen(q)), "SELECT ?, ?");
	ck_assert_str_eq(norm(LITE, 0, q, strlen(q)), "SELECT ?, ?");
	ck_assert_str_eq(norm(MY, 0, q, strlen(q)), "SELECT ?");
	q = "SELECT [a] FROM t";
	ck_assert_str_eq(norm(PG, 0, q, strlen(q)), "SELECT [a] FROM t");
	ck_assert_str_eq(norm(LITE, 0, q, strlen(q)), "SELECT [a] FROM t");
	q = "SELECT a[1]";
	ck_assert_str_eq(norm(PG, 0, q, strlen(q)), "SELECT a[?]");
	ck_assert_str_eq(norm(LITE, 0, q, strlen(q)), "SELECT a[1]");
	/* an unknown dialect is PostgreSQL */
	ck_assert_str_eq(norm(0, 0, "SELECT \"a\"", 10), "SELECT \"a\"");
	ck_assert_str_eq(norm(99, 0, "SELECT $$x$$", 12), "SELECT ?");
}
END_TEST

/* IN lists of 1..5 items, and VALUES of 1..5 rows: one shape each. */
START_TEST(test_list_lengths_one_shape)
{
	static const char *const items[] = { "1", "'two'", "-3", "$4", "NULL" };
	char q[512], first[BIG];
	for (int d = PG; d <= LITE; d++) {
		for (int n = 1; n <= 5; n++) {
			int o = snprintf(q, sizeof q, "SELECT * FROM t WHERE id IN (");
			for (int k = 0; k < n; k++)
				o += snprintf(q + o, sizeof q - o, "%s%s", k ? ", " : "",
				              d == PG ? items[k] : k == 3 ? "?" : items[k]);
			snprintf(q + o, sizeof q - o, ")");
			const char *got = norm(d, 0, q, strlen(q));
			ck_assert_str_eq(got, "SELECT * FROM t WHERE id IN (?)");
		}
		for (int n = 1; n <= 5; n++) {
			int o = snprintf(q, sizeof q, "INSERT INTO t (a, b) VALUES ");
			for (int k = 0; k < n; k++)
				o += snprintf(q + o, sizeof q - o, "%s(%d, 'v%d')", k ? ", " : "",
				              k, k);
			const char *got = norm(d, 0, q, strlen(q));
			if (n == 1)
				strcpy(first, got);
			ck_assert_str_eq(got, "INSERT INTO t (a, b) VALUES (?)");
			ck_assert_uint_eq(ap_sql_fingerprint(got, strlen(got)),
			                  ap_sql_fingerprint(first, strlen(first)));
		}
	}
}
END_TEST

/* --- truncation ------------------------------------------------------------- */

static const struct {
	int d;
	const char *q;
} trunc_cases[] = {
	{ PG, "SELECT 'x', \"tàble\", ñame, 日本, \"𝄞\" FROM t WHERE id IN (1,2) AND v = 'é' "
	      "AND ü = 1;" },
	{ PG, "INSERT INTO t VALUES (1, now()), (2, now()), (3, 'x')" },
	{ MY, "SELECT /*!40001 SQL_NO_CACHE */ `日本`, \"x\", @v FROM t -- c\n" },
	{ LITE, "SELECT [ключ], :a, 'ß' FROM 表 WHERE a IN (?, ?)" },
	{ PG, "  SELECT 1 ; ; " },
};

/* At every capacity from 0 to past the full length: within bounds, a
 * prefix of the full shape, cut at most one character short, valid UTF-8,
 * and marked truncated exactly when something was left out. */
START_TEST(test_truncation_every_cap)
{
	const char *q = trunc_cases[_i].q;
	int d = trunc_cases[_i].d;
	char full[BIG], out[BIG];
	int tr;
	size_t fn = norm_cap(d, 0, q, strlen(q), BIG, full, &tr);
	CHECK(tr == 0);
	CHECK(utf8_valid((const unsigned char *)full, fn));
	for (size_t cap = 0; cap <= fn + 2; cap++) {
		size_t n = norm_cap(d, 0, q, strlen(q), cap, out, &tr);
		ck_assert_msg(memcmp(out, full, n) == 0, "cap %zu: not a prefix", cap);
		ck_assert_msg(utf8_valid((const unsigned char *)out, n),
		              "cap %zu: invalid UTF-8 [%s]", cap, out);
		if (cap == 0) {
			ck_assert_int_eq(tr, fn > 0);
			continue;
		}
		ck_assert_msg(tr == (fn > cap - 1), "cap %zu: truncated %d, full %zu", cap, tr, fn);
		if (tr)
			ck_assert_msg(n + 3 >= cap - 1, "cap %zu: cut too early at %zu", cap, n);
		else
			ck_assert_uint_eq(n, fn);
	}
}
END_TEST

/* A NULL out with capacity 0 is allowed. */
START_TEST(test_cap_zero_null)
{
	int tr = -1;
	ck_assert_uint_eq(ap_sql_normalize("SELECT 1", 8, PG, 0, NULL, 0, &tr), 0);
	ck_assert_int_eq(tr, 1);
	ck_assert_uint_eq(ap_sql_normalize("", 0, PG, 0, NULL, 0, &tr), 0);
	ck_assert_int_eq(tr, 0);
	char out[4];
	ck_assert_uint_eq(ap_sql_normalize(NULL, 5, PG, 0, out, sizeof out, NULL), 0);
	ck_assert_str_eq(out, "");
	/* exactly fitting is not truncated; trailing `;` does not count */
	ck_assert_uint_eq(ap_sql_normalize("SELECT 1;", 9, PG, 0, out, 0, &tr), 0);
	char o9[9];
	ck_assert_uint_eq(ap_sql_normalize("SELECT 1;", 9, PG, 0, o9, sizeof o9, &tr), 8);
	ck_assert_int_eq(tr, 0);
	ck_assert_str_eq(o9, "SELECT ?");
}
END_TEST

/* --- large inputs ------------------------------------------------------------ */

#define MB (1024 * 1024)

static char *repeat(const char *head, const char *unit, const char *tail, size_t *len)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	size_t n = (MB - hl - tl) / ul, o = 0;
	char *s = malloc(hl + n * ul + tl);
	CHECK(s);
	memcpy(s, head, hl), o = hl;
	for (size_t k = 0; k < n; k++, o += ul)
		memcpy(s + o, unit, ul);
	memcpy(s + o, tail, tl), o += tl;
	*len = o;
	return s;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const struct {
	int d;
	const char *head, *unit, *tail, *want; /* want NULL: only truncated */
} big_cases[] = {
	{ PG, "SELECT * FROM t WHERE id IN (", "123456, ", "7)", "SELECT * FROM t WHERE id IN (?)" },
	{ PG, "INSERT INTO t (a, b) VALUES ", "(1, 'x'), ", "(2, 'y')", "INSERT INTO t (a, b) VALUES (?)" },
	{ PG, "INSERT INTO t (a, b) VALUES ", "(1, now()), ", "(2, now())",
	  "INSERT INTO t (a, b) VALUES (?, now())" },
	{ MY, "INSERT INTO t VALUES ", "(1,\"a\\\"b\"),", "(2,'c')", "INSERT INTO t VALUES (?)" },
	{ PG, "SELECT '", "abc ", "'", "SELECT ?" },
	{ PG, "SELECT '", "ab''", "", "SELECT ?" },
	{ PG, "SELECT $$", "$ ' ", "$$ FROM t", "SELECT ? FROM t" },
	{ PG, "SELECT 1 ", "/* ", "", "SELECT ?" },
	{ PG, "SELECT 1 ", "-- x\n", "", "SELECT ?" },
	{ PG, "SELECT ", "    ", "1", "SELECT ?" },
	{ PG, "SELECT ", "12345678", "", "SELECT ?" },
	{ PG, "", "(", "", NULL },
	{ PG, "", "IN (", "", NULL },
	{ PG, "VALUES ", "(1), ", "(2)", "VALUES (?)" },
	{ PG, "", "VALUES (1), ", "", NULL },
	{ PG, "SELECT ", "a, ", "b", NULL },
	{ LITE, "SELECT ", "[x", "", "SELECT ?" },
	{ MY, "", "/*!1 a ", "", NULL },
};

START_TEST(test_one_megabyte)
{
	size_t len;
	char out[BIG];
	int tr;
	char *q = repeat(big_cases[_i].head, big_cases[_i].unit, big_cases[_i].tail, &len);
	double t0 = now_s();
	size_t n = norm_cap(big_cases[_i].d, 0, q, len, AP_SQL_MAX_DEFAULT, out, &tr);
	double dt = now_s() - t0;
	if (big_cases[_i].want) {
		ck_assert_str_eq(out, big_cases[_i].want);
		ck_assert_int_eq(tr, 0);
	} else {
		ck_assert_int_eq(tr, 1);
		ck_assert_uint_ge(n, AP_SQL_MAX_DEFAULT - 4);
	}
	/* linear: a megabyte in well under a second, sanitizers included */
	ck_assert_msg(dt < 1.0, "case %d: %.3f s for 1 MB", _i, dt);
	/* and with values kept */
	norm_cap(big_cases[_i].d, KEEP, q, len, AP_SQL_MAX_DEFAULT, out, &tr);
	free(q);
}
END_TEST

/* --- fuzzing ------------------------------------------------------------------ */

static uint32_t xorshift(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/*
 * Random bytes, biased towards the ones the lexer cares about, in every
 * dialect and mode at random capacities: the buffer contract holds, the
 * shape at a small capacity is a prefix of the shape at a large one, and
 * the other entry points survive the same bytes.
 */
START_TEST(test_fuzz_random_bytes)
{
	static const char alphabet[] = "'\"`[]()$?:@#-/*+.,;\\ \n\t0123456789eExXbBuUN&!M_aZ\xc3\xa9\xff\x80";
	enum { ROUNDS = 20000, MAXLEN = 300 };
	char in[MAXLEN], big[BIG], small[BIG], tab[64], msg[BIG];
	uint32_t rng = 0x9e3779b9u;

	for (int r = 0; r < ROUNDS; r++) {
		size_t len = xorshift(&rng) % MAXLEN;
		for (size_t k = 0; k < len; k++) {
			uint32_t x = xorshift(&rng);
			in[k] = x % 4 == 0 ? (char)(x >> 8) : alphabet[(x >> 8) % (sizeof alphabet - 1)];
		}
		int d = PG + (int)(xorshift(&rng) % 3);
		unsigned fl = xorshift(&rng) % 4 == 0 ? KEEP : 0;
		int tr1, tr2;
		size_t bn = norm_cap(d, fl, in, len, BIG, big, &tr1);
		CHECK(tr1 == 0);
		size_t cap = xorshift(&rng) % (bn + 2);
		size_t sn = norm_cap(d, fl, in, len, cap, small, &tr2);
		CHECK(sn <= bn && memcmp(small, big, sn) == 0);
		CHECK(tr2 == (cap == 0 ? bn > 0 : bn > cap - 1));

		(void)ap_sql_fingerprint(in, len);
		(void)ap_sql_operation(in, len);
		(void)ap_sql_is_session(in, len);
		size_t tn = ap_sql_table(big, bn, tab, sizeof tab);
		CHECK(tn < sizeof tab && strlen(tab) == tn);

		char *src = malloc(len ? len : 1);
		memcpy(src, in, len);
		size_t mcap = 1 + xorshift(&rng) % 64;
		memset(msg, 0xA5, mcap + GUARD);
		size_t mn = ap_sql_scrub_message(src, len, msg, mcap);
		CHECK(mn < mcap && msg[mn] == 0 && memchr(msg, 0, mn) == NULL);
		for (size_t k = mcap; k < mcap + GUARD; k++)
			CHECK((unsigned char)msg[k] == 0xA5);
		size_t off;
		size_t pn = ap_sql_pg_primary(src, len, &off);
		CHECK(off <= len && pn <= len - off);
		free(src);
	}
}
END_TEST

/* Appends a random token of a statement to b, where literals, numbers and
 * comments carry markers that must never survive normalisation and
 * identifiers never do. */
static size_t gen_token(uint32_t *rng, int d, char *b, size_t o)
{
	static const char *const common[] = {
		"SELECT", "FROM", "WHERE", "IN", "VALUES", "NOT", "AND", "ARRAY", "(",
		")", ",", "=", "<>", "-", "+", "*", "t1", "col_2", "users", "x", "e",
		"E", "N", "b", "U", "_utf8mb4", "NULL", "DEFAULT", "::", ".", ";", "[",
		"]", "?", "$1", "@v", ":n", "value", "LIMIT",
	};
	static const char *const lits_pg[] = {
		"'SECRET'", "'SE''CRET'", "E'SE\\'CRET'", "E'SECRET\\\\'", "$$SE'CRET$$",
		"$q$SECRET $$ $q$", "U&'SECRET'", "X'SECRET'", "B'SECRET'", "'SE\\'",
		"'SECRET\\'", "N'SECRET'",
	};
	static const char *const lits_my[] = {
		"'SECRET'", "'SE\\'CRET'", "\"SE\\\"CRET\"", "\"SE\"\"CRET\"", "'SECRET\\\\'",
		"_utf8mb4'SECRET'", "X'SECRET'", "'SE''CRET'", "n'SECRET'",
	};
	static const char *const lits_lite[] = {
		"'SECRET'", "'SE''CRET'", "X'SECRET'", "'SECRET\\'",
	};
	static const char *const nums[] = {
		"97531", "-97531", "97531.5", ".97531", "97531e3", "-97531.5E-2",
		"0x97531", "+97531", "97_531",
	};
	static const char *const comments_pg[] = {
		" /* SECRET */", " -- SECRET\n", " /* a /* SECRET */ SECRET */", " /*+ SECRET */",
	};
	static const char *const comments_my[] = {
		" /* SECRET */", " -- SECRET\n", " # SECRET\n", " /*+ SECRET */",
	};
	static const char *const comments_lite[] = {
		" /* SECRET */", " -- SECRET\n", " /* /* SECRET */", " /*+ SECRET */",
	};
	const char *tok;
	uint32_t x = xorshift(rng), k = (x >> 8);
	switch (x % 8) {
	case 0:
	case 1:
		if (d == PG)
			tok = lits_pg[k % (sizeof lits_pg / sizeof *lits_pg)];
		else if (d == MY)
			tok = lits_my[k % (sizeof lits_my / sizeof *lits_my)];
		else
			tok = lits_lite[k % (sizeof lits_lite / sizeof *lits_lite)];
		break;
	case 2:
		tok = nums[k % (sizeof nums / sizeof *nums)];
		break;
	case 3:
		tok = d == MY ? comments_my[k % 4] : d == PG ? comments_pg[k % 4] :
		      comments_lite[k % 4];
		break;
	default:
		tok = common[k % (sizeof common / sizeof *common)];
		/* SQLite's [ident] would keep what it swallows, rightly */
		if (d == LITE && (*tok == '[' || *tok == ']'))
			tok = *tok == '[' ? "(" : ")";
		break;
	}
	size_t n = strlen(tok);
	memcpy(b + o, tok, n);
	o += n;
	b[o++] = (x >> 20) % 3 ? ' ' : '\n';
	return o;
}

/*
 * Statements built from literals and comments holding markers: whatever
 * the mix, no marker reaches the shape (outside KEEP_VALUES, where they
 * must), and a shape is its own shape.
 */
START_TEST(test_fuzz_no_value_leaks)
{
	enum { ROUNDS = 5000 };
	static char q[4096], out[BIG];
	char again[BIG];
	uint32_t rng = 12345;
	int kept = 0;

	for (int r = 0; r < ROUNDS; r++) {
		int d = PG + r % 3;
		size_t o = 0, ntok = 1 + xorshift(&rng) % 40;
		for (size_t k = 0; k < ntok; k++)
			o = gen_token(&rng, d, q, o);
		int tr;
		norm_cap(d, 0, q, o, BIG, out, &tr);
		ck_assert_msg(!strstr(out, "SECRET") && !strstr(out, "97") && !strstr(out, "531"),
		              "%s leak:\n  in: %.*s\n out: %s", dname(d), (int)o, q, out);
		strcpy(again, out);
		const char *twice = norm(d, 0, again, strlen(again));
		ck_assert_msg(strcmp(twice, again) == 0, "%s not idempotent:\n in: %.*s\n"
		              " once: %s\ntwice: %s", dname(d), (int)o, q, again, twice);
		norm_cap(d, KEEP, q, o, BIG, out, &tr);
		kept += strstr(out, "SECRET") != NULL;
	}
	ck_assert_int_gt(kept, ROUNDS / 2);
}
END_TEST

/* --- fingerprint ---------------------------------------------------------------- */

static uint64_t fp_of(int d, const char *q)
{
	const char *n = norm(d, 0, q, strlen(q));
	return ap_sql_fingerprint(n, strlen(n));
}

START_TEST(test_fingerprint_fnv1a)
{
	/* FNV-1a 64 reference values: the empty string and "a" */
	ck_assert_uint_eq(ap_sql_fingerprint("", 0), 0xcbf29ce484222325ULL);
	ck_assert_uint_eq(ap_sql_fingerprint("a", 1), 0xaf63dc4c8601ec8cULL);
	ck_assert_uint_eq(ap_sql_fingerprint("A", 1), 0xaf63dc4c8601ec8cULL);
	ck_assert_uint_eq(ap_sql_fingerprint(NULL, 3), 0xcbf29ce484222325ULL);
}
END_TEST

/*
 * Golden values: a change here changes every stored shape's identity.
 * Cross-checked with an independent implementation of the rule: FNV-1a 64
 * of the text as hashed, e.g. `select*from t where id=?` for the first two
 * and `insert into "Users"(a,b)values(?)` for the third.
 */
static const struct {
	const char *norm;
	uint64_t fp;
} golden[] = {
	{ "SELECT * FROM t WHERE id = ?", 0x21b6c00e69fbb54fULL },
	{ "select * from t where id=?", 0x21b6c00e69fbb54fULL },
	{ "INSERT INTO \"Users\" (a, b) VALUES (?)", 0xecce6edc1d362238ULL },
	{ "BEGIN", 0x9a848d5e6672b3deULL },
	{ "SELECT `T`.a FROM `T`", 0x7d0476e53b3e9638ULL },
	{ "UPDATE t SET a = $1 WHERE id IN (?)", 0xfc713ef204e3709eULL },
};

START_TEST(test_fingerprint_golden)
{
	uint64_t got = ap_sql_fingerprint(golden[_i].norm, strlen(golden[_i].norm));
	ck_assert_msg(got == golden[_i].fp, "[%s]: 0x%016llxULL", golden[_i].norm,
	              (unsigned long long)got);
}
END_TEST

START_TEST(test_fingerprint_shapes)
{
	/* keywords and unquoted names are case-insensitive, values vanish */
	ck_assert_uint_eq(fp_of(PG, "select * from t where id = 1"),
	                  fp_of(PG, "SELECT * FROM t WHERE id = 2"));
	ck_assert_uint_eq(fp_of(PG, "SELECT * FROM T WHERE name = 'x'"),
	                  fp_of(PG, "select *\n  from t\n where name = 'it''s'  ;"));
	ck_assert_uint_eq(fp_of(PG, "SELECT * FROM t WHERE a=1"),
	                  fp_of(PG, "SELECT * FROM t WHERE a = -1"));
	ck_assert_uint_eq(fp_of(MY, "SELECT * FROM t WHERE a IN (1,2)"),
	                  fp_of(MY, "SELECT * FROM t WHERE a IN ( \"x\" ) # c"));
	/* different tables, columns, quoted case, structure: different */
	ck_assert_uint_ne(fp_of(PG, "SELECT * FROM t WHERE id = 1"),
	                  fp_of(PG, "SELECT * FROM u WHERE id = 1"));
	ck_assert_uint_ne(fp_of(PG, "SELECT a FROM t"), fp_of(PG, "SELECT b FROM t"));
	ck_assert_uint_ne(fp_of(PG, "SELECT \"A\" FROM t"), fp_of(PG, "SELECT \"a\" FROM t"));
	ck_assert_uint_ne(fp_of(PG, "SELECT a b FROM t"), fp_of(PG, "SELECT ab FROM t"));
	ck_assert_uint_ne(fp_of(PG, "SELECT a FROM t WHERE id = $1"),
	                  fp_of(PG, "SELECT a FROM t WHERE id = $2"));
	ck_assert_uint_ne(fp_of(PG, "SELECT 1"), fp_of(PG, "SELECT 1, 2"));
	/* case inside quotes kept: a quoted space too */
	ck_assert_uint_ne(ap_sql_fingerprint("\"a b\"", 5), ap_sql_fingerprint("\"ab\"", 4));
	ck_assert_uint_ne(ap_sql_fingerprint("'A'", 3), ap_sql_fingerprint("'a'", 3));
}
END_TEST

/* --- classification ---------------------------------------------------------------- */

static const struct {
	const char *q;
	enum ap_sql_op op;
} op_cases[] = {
	{ "SELECT 1", AP_SQL_OP_SELECT },
	{ "  (SELECT 1) UNION (SELECT 2)", AP_SQL_OP_SELECT },
	{ "/* c */ select 1", AP_SQL_OP_SELECT },
	{ "-- c\nSELECT 1", AP_SQL_OP_SELECT },
	{ "VALUES (?)", AP_SQL_OP_SELECT },
	{ "TABLE t", AP_SQL_OP_SELECT },
	{ "WITH a AS (SELECT ?) SELECT * FROM a", AP_SQL_OP_SELECT },
	{ "with a as (select ?) insert into t select * from a", AP_SQL_OP_INSERT },
	{ "WITH RECURSIVE a(n) AS (SELECT ? UNION ALL SELECT n+? FROM a) SELECT * FROM a",
	  AP_SQL_OP_SELECT },
	{ "WITH d AS (DELETE FROM t RETURNING *) INSERT INTO log SELECT * FROM d", AP_SQL_OP_INSERT },
	{ "WITH u AS (SELECT ?) UPDATE t SET a = ?", AP_SQL_OP_UPDATE },
	{ "WITH u AS MATERIALIZED (SELECT ?), v AS (SELECT ?) DELETE FROM t", AP_SQL_OP_DELETE },
	{ "WITH x AS (SELECT ')' AS p) DELETE FROM t", AP_SQL_OP_DELETE },
	{ "WITH x AS (SELECT \")\" FROM t) UPDATE t SET a = ?", AP_SQL_OP_UPDATE },
	{ "WITH", AP_SQL_OP_SELECT },
	{ "WITH x AS (SELECT ?) REPLACE INTO t SELECT * FROM x", AP_SQL_OP_INSERT },
	{ "INSERT INTO t VALUES (?)", AP_SQL_OP_INSERT },
	{ "insert ignore into t values (?)", AP_SQL_OP_INSERT },
	{ "REPLACE INTO t VALUES (?)", AP_SQL_OP_INSERT },
	{ "UPDATE t SET a=?", AP_SQL_OP_UPDATE },
	{ "DELETE FROM t", AP_SQL_OP_DELETE },
	{ "CREATE TABLE t (a int)", AP_SQL_OP_DDL },
	{ "create index i on t (a)", AP_SQL_OP_DDL },
	{ "ALTER TABLE t ADD b int", AP_SQL_OP_DDL },
	{ "DROP TABLE t", AP_SQL_OP_DDL },
	{ "TRUNCATE t", AP_SQL_OP_DDL },
	{ "RENAME TABLE a TO b", AP_SQL_OP_DDL },
	{ "COMMENT ON TABLE t IS ?", AP_SQL_OP_DDL },
	{ "COMMENT ?", AP_SQL_OP_OTHER },
	{ "BEGIN", AP_SQL_OP_OTHER },
	{ "SET a = ?", AP_SQL_OP_OTHER },
	{ "SHOW TABLES", AP_SQL_OP_OTHER },
	{ "EXPLAIN SELECT ?", AP_SQL_OP_OTHER },
	{ "PRAGMA foreign_keys", AP_SQL_OP_OTHER },
	{ "CALL p()", AP_SQL_OP_OTHER },
	{ "MERGE INTO t USING s ON ? WHEN MATCHED THEN DELETE", AP_SQL_OP_OTHER },
	{ "COPY t FROM STDIN", AP_SQL_OP_OTHER },
	{ "", AP_SQL_OP_OTHER },
	{ "?", AP_SQL_OP_OTHER },
	{ "selectx", AP_SQL_OP_OTHER },
	{ "(((", AP_SQL_OP_OTHER },
	{ "/* unterminated", AP_SQL_OP_OTHER },
};

START_TEST(test_operation)
{
	const char *q = op_cases[_i].q;
	enum ap_sql_op got = ap_sql_operation(q, strlen(q));
	ck_assert_msg(got == op_cases[_i].op, "[%s]: got %s, want %s", q, ap_sql_op_name(got),
	              ap_sql_op_name(op_cases[_i].op));
}
END_TEST

START_TEST(test_op_names)
{
	ck_assert_str_eq(ap_sql_op_name(AP_SQL_OP_SELECT), "select");
	ck_assert_str_eq(ap_sql_op_name(AP_SQL_OP_INSERT), "insert");
	ck_assert_str_eq(ap_sql_op_name(AP_SQL_OP_UPDATE), "update");
	ck_assert_str_eq(ap_sql_op_name(AP_SQL_OP_DELETE), "delete");
	ck_assert_str_eq(ap_sql_op_name(AP_SQL_OP_DDL), "ddl");
	ck_assert_str_eq(ap_sql_op_name(AP_SQL_OP_OTHER), "other");
	ck_assert_str_eq(ap_sql_op_name((enum ap_sql_op)42), "other");
	/* the operation survives normalisation */
	const char *n = norm(MY, 0, "/*!40101 INSERT */ INTO t VALUES (1)", 36);
	ck_assert_int_eq(ap_sql_operation(n, strlen(n)), AP_SQL_OP_INSERT);
}
END_TEST

static const struct {
	const char *q;
	int session;
} session_cases[] = {
	{ "BEGIN", 1 }, { "begin transaction", 1 }, { "BEGIN IMMEDIATE", 1 },
	{ "START TRANSACTION", 1 }, { "start transaction read only", 1 },
	{ "START  /* c */ TRANSACTION", 1 }, { "COMMIT", 1 }, { "commit;", 1 },
	{ "END", 1 }, { "ROLLBACK", 1 }, { "ROLLBACK TO SAVEPOINT s1", 1 },
	{ "rollback to s1", 1 }, { "ABORT", 1 }, { "SAVEPOINT s1", 1 },
	{ "RELEASE SAVEPOINT s1", 1 }, { "SET autocommit = ?", 1 }, { "SET NAMES utf8", 1 },
	{ "SET TIME ZONE ?", 1 }, { "set search_path = public", 1 },
	{ "SHOW TRANSACTION ISOLATION LEVEL", 1 }, { "RESET ALL", 1 }, { "DISCARD ALL", 1 },
	{ "USE db", 1 }, { "/* c */ COMMIT", 1 }, { "  -- c\n  BEGIN", 1 },
	{ "SELECT ?", 0 }, { "UPDATE t SET a = ?", 0 }, { "START SLAVE", 0 }, { "START", 0 },
	{ "BEGINNING", 0 }, { "INSERT INTO t VALUES (?) -- BEGIN", 0 }, { "", 0 },
	{ "SETTINGS", 0 }, { "WITH a AS (SELECT ?) SELECT ?", 0 },
	{ "CREATE TABLE t (a int)", 0 }, { "PRAGMA foreign_keys = ON", 0 },
	{ "(BEGIN)", 0 },
};

START_TEST(test_session)
{
	const char *q = session_cases[_i].q;
	ck_assert_msg(ap_sql_is_session(q, strlen(q)) == session_cases[_i].session, "[%s]", q);
}
END_TEST

static const struct {
	const char *q, *table;
} table_cases[] = {
	{ "INSERT INTO t (a) VALUES (?)", "t" },
	{ "insert into public.users values (?)", "public.users" },
	{ "INSERT INTO \"Users\" (a) VALUES (?)", "Users" },
	{ "INSERT INTO \"my schema\".\"my \"\"t\"\"\" VALUES (?)", "my schema.my \"t\"" },
	{ "INSERT INTO `db`.`t` VALUES (?)", "db.t" },
	{ "INSERT INTO `a``b` VALUES (?)", "a`b" },
	{ "INSERT IGNORE INTO t VALUES (?)", "t" },
	{ "INSERT LOW_PRIORITY IGNORE INTO t VALUES (?)", "t" },
	{ "INSERT t VALUES (?)", "t" },
	{ "INSERT OR REPLACE INTO t VALUES (?)", "t" },
	{ "INSERT OR IGNORE INTO [my t] VALUES (?)", "my t" },
	{ "REPLACE INTO t VALUES (?)", "t" },
	{ "REPLACE t VALUES (?)", "t" },
	{ "INSERT INTO t(a) VALUES (?)", "t" },
	{ "/* c */ INSERT INTO tàble VALUES (?)", "tàble" },
	{ "UPDATE t SET a = ?", "t" },
	{ "UPDATE ONLY public.t SET a = ?", "public.t" },
	{ "UPDATE LOW_PRIORITY IGNORE t SET a = ?", "t" },
	{ "UPDATE OR ROLLBACK t SET a = ?", "t" },
	{ "update `t1` join t2 on ? set a = ?", "t1" },
	{ "DELETE FROM t WHERE id = ?", "t" },
	{ "DELETE FROM ONLY t", "t" },
	{ "DELETE LOW_PRIORITY QUICK IGNORE FROM t", "t" },
	{ "DELETE t1 FROM t1 JOIN t2 ON ?", "t1" },
	{ "DELETE FROM quick", "quick" },
	{ "delete from s.\"T\" where a = ?", "s.T" },
	{ "WITH x AS (SELECT ?) INSERT INTO log SELECT * FROM x", "log" },
	{ "WITH d AS (DELETE FROM t RETURNING *) INSERT INTO log SELECT * FROM d", "log" },
	{ "SELECT * FROM t", "" },
	{ "INSERT INTO", "" },
	{ "INSERT INTO (SELECT ?)", "" },
	{ "INSERT INTO \"unterminated", "" },
	{ "CREATE TABLE t (a int)", "" },
	{ "DELETE", "" },
	{ "", "" },
	{ "INSERT INTO t.", "t" },
};

START_TEST(test_table)
{
	char out[AP_SQL_TABLE_MAX];
	const char *q = table_cases[_i].q;
	memset(out, 'x', sizeof out);
	size_t n = ap_sql_table(q, strlen(q), out, sizeof out);
	ck_assert_msg(strcmp(out, table_cases[_i].table) == 0, "[%s]: got [%s]", q, out);
	ck_assert_uint_eq(n, strlen(out));
}
END_TEST

START_TEST(test_table_cap)
{
	char out[16 + GUARD];
	const char *q = "INSERT INTO abcdefg VALUES (?)";
	memset(out, 0xA5, sizeof out);
	ck_assert_uint_eq(ap_sql_table(q, strlen(q), out, 8), 7);
	ck_assert_str_eq(out, "abcdefg");
	ck_assert_uint_eq(ap_sql_table(q, strlen(q), out, 7), 0);
	ck_assert_str_eq(out, "");
	q = "INSERT INTO \"abc\".\"defg\" VALUES (?)";
	ck_assert_uint_eq(ap_sql_table(q, strlen(q), out, 8), 0);
	ck_assert_uint_eq(ap_sql_table(q, strlen(q), out, 9), 8);
	ck_assert_str_eq(out, "abc.defg");
	for (size_t k = 9; k < sizeof out; k++)
		CHECK((unsigned char)out[k] == 0xA5);
	ck_assert_uint_eq(ap_sql_table(q, strlen(q), NULL, 0), 0);
	ck_assert_uint_eq(ap_sql_table(NULL, 4, out, 8), 0);
	/* normalise, then label: the collector's order */
	const char *n = norm(MY, 0, "INSERT INTO `shop`.`orders` (id) VALUES (1), (2)", 48);
	ck_assert_uint_eq(ap_sql_table(n, strlen(n), out, 16), 11);
	ck_assert_str_eq(out, "shop.orders");
}
END_TEST

/* --- error messages -------------------------------------------------------------- */

static const struct {
	const char *in, *want;
} scrub_cases[] = {
	/* PostgreSQL: identifiers in double quotes stay, values go */
	{ "duplicate key value violates unique constraint \"users_name_key\"",
	  "duplicate key value violates unique constraint \"users_name_key\"" },
	{ "relation \"public.t1\" does not exist", "relation \"public.t1\" does not exist" },
	{ "column \"x2\" of relation \"t\" does not exist", "column \"x2\" of relation \"t\" does not exist" },
	{ "null value in column \"email\" of relation \"users\" violates not-null constraint",
	  "null value in column \"email\" of relation \"users\" violates not-null constraint" },
	{ "insert or update on table \"a\" violates foreign key constraint \"a_b_fkey\"",
	  "insert or update on table \"a\" violates foreign key constraint \"a_b_fkey\"" },
	{ "invalid input syntax for type integer: \"abc\"", "invalid input syntax for type integer: ?" },
	{ "value \"99999999999\" is out of range for type integer",
	  "value ? is out of range for type integer" },
	{ "value too long for type character varying(10)", "value too long for type character varying(?)" },
	{ "syntax error at or near \"secret\"", "syntax error at or near ?" },
	{ "invalid input value for enum mood: \"happy\"", "invalid input value for enum mood: ?" },
	{ "date/time field value out of range: \"2024-13-45\"", "date/time field value out of range: ?" },
	{ "canceling statement due to statement timeout", "canceling statement due to statement timeout" },
	/* MySQL: values in single quotes, unescaped */
	{ "Duplicate entry 'alice@example.com' for key 'users.email'",
	  "Duplicate entry ? for key 'users.email'" },
	{ "Duplicate entry 'O'Brien-42' for key 'PRIMARY'", "Duplicate entry ? for key 'PRIMARY'" },
	{ "Table 'app.missing' doesn't exist", "Table 'app.missing' doesn't exist" },
	{ "Unknown column 'secret_col' in 'where clause'", "Unknown column 'secret_col' in ?" },
	{ "Incorrect integer value: 'abc' for column 'age' at row 1",
	  "Incorrect integer value: ? for column 'age' at row ?" },
	{ "Data too long for column 'name' at row 3", "Data too long for column 'name' at row ?" },
	{ "You have an error in your SQL syntax; check the manual near 'WHERE x = 'secret'' at line 1",
	  "You have an error in your SQL syntax; check the manual near ??" },
	{ "Cannot add or update a child row: a foreign key constraint fails (`db`.`t`, CONSTRAINT "
	  "`fk` FOREIGN KEY (`a`) REFERENCES `p` (`id`))",
	  "Cannot add or update a child row: a foreign key constraint fails (`db`.`t`, CONSTRAINT "
	  "`fk` FOREIGN KEY (`a`) REFERENCES `p` (`id`))" },
	{ "Access denied for user 'bob'@'10.0.0.1'", "Access denied for user 'bob'@?" },
	/* SQLite */
	{ "UNIQUE constraint failed: users.email", "UNIQUE constraint failed: users.email" },
	{ "no such table: main.t2", "no such table: main.t2" },
	{ "near \"SELEC\": syntax error", "near ?: syntax error" },
	/* HTTP 5xx bodies */
	{ "Internal Server Error: user 12345 not found (id=550e8400-e29b-41d4-a716-446655440000, "
	  "token deadbeef1234)",
	  "Internal Server Error: user ? not found (id=?, token ?)" },
	{ "{\"error\": \"boom\", \"code\": 500}", "{?: ?, ?: ?}" },
	{ "File \"/app/views.py\", line 42, in view", "File ?, line ?, in view" },
	{ "price -5.25 and +3, x-1", "price ? and ?, x-?" },
	{ "utf8mb4_general_ci t1 x86_64 deadbeef", "utf8mb4_general_ci t1 x86_64 deadbeef" },
	{ "unterminated 'secret", "unterminated ?" },
	{ "can't connect", "can't connect" },
	{ "ünïcode 'välue' 42€", "ünïcode ? ?€" },
	{ "", "" },
};

START_TEST(test_scrub)
{
	char out[512];
	const char *in = scrub_cases[_i].in;
	size_t n = ap_sql_scrub_message(in, strlen(in), out, sizeof out);
	ck_assert_msg(strcmp(out, scrub_cases[_i].want) == 0, "[%s]\n  got: [%s]\n want: [%s]", in,
	              out, scrub_cases[_i].want);
	ck_assert_uint_eq(n, strlen(out));
}
END_TEST

typedef size_t (*scrub_fn)(const char *, size_t, char *, size_t);

/* Every capacity from 1 to past the full output: a prefix of it, cut on a
 * UTF-8 boundary at most 3 bytes short, nothing written past cap. */
static void check_scrub_caps(scrub_fn scrub, const char *in, const char *want)
{
	char full[256], out[256 + GUARD];
	size_t fn = scrub(in, strlen(in), full, sizeof full);
	ck_assert_str_eq(full, want);
	for (size_t cap = 1; cap <= fn + 2; cap++) {
		memset(out, 0xA5, sizeof out);
		size_t n = scrub(in, strlen(in), out, cap);
		CHECK(n < cap && out[n] == 0 && memcmp(out, full, n) == 0);
		CHECK(utf8_valid((const unsigned char *)out, n));
		CHECK(fn <= cap - 1 ? n == fn : n + 3 >= cap - 1);
		for (size_t k = cap; k < sizeof out; k++)
			CHECK((unsigned char)out[k] == 0xA5);
	}
	ck_assert_uint_eq(scrub(in, strlen(in), NULL, 0), 0);
}

START_TEST(test_scrub_bounds)
{
	char out[64];
	check_scrub_caps(ap_sql_scrub_message,
	                 "Duplicate entry 'ü€𝄞' for key 'tàble.ключ' at row 42 日本語",
	                 "Duplicate entry ? for key 'tàble.ключ' at row ? 日本語");
	static const char nul[] = "a\0b 'x\0y' 1";
	ck_assert_uint_eq(ap_sql_scrub_message(nul, sizeof nul - 1, out, 64), 7);
	ck_assert_str_eq(out, "a b ? ?");
}
END_TEST

/* 5xx bodies that echo the request: credentials and query strings go too. */
static const struct {
	const char *in, *want;
} http_cases[] = {
	/* authorization schemes */
	{ "Authorization failed: Bearer eyJhbGciOi.eyJzdWIi.SflKxw", "Authorization failed: Bearer ?" },
	{ "bad credentials basic dXNlcjpodW50ZXIy== for bob", "bad credentials basic ? for bob" },
	{ "got BEARER\tS3cr3tTok, retry", "got BEARER\t?, retry" },
	{ "Token abcDEF, Digest username", "Token ?, Digest ?" },
	{ "Bearer", "Bearer" },
	{ "Bearer ", "Bearer " },
	/* key=value */
	{ "login failed password=hunter2 user=bob", "login failed password=? user=bob" },
	{ "session_id=abc;theme=dark", "session_id=?;theme=dark" },
	{ "access_token=xyzzy&page=next", "access_token=?&page=next" },
	{ "API_KEY = plugh, x", "API_KEY = ?, x" },
	{ "passwd:=swordfish", "passwd:=?" },
	{ "secret='in quotes' secret=\"dq\"", "secret=? secret=?" },
	{ "x-api-key: k3y-value extra words\nnext line", "x-api-key: ?\nnext line" },
	{ "Cookie: sid=abc; csrftoken=def\r\nHost: example", "Cookie: ?\r\nHost: example" },
	{ "Authorization: Bearer tok1 <br>after", "Authorization: ?<br>after" },
	{ "PHPSESSID=deadbeef", "PHPSESSID=?" },
	{ "monkey=banana", "monkey=?" }, /* a false match costs a word */
	{ "<input name=\"csrf_token\" value=\"abc\">", "<input name=? value=?>" },
	{ "{\"password\": \"hunter2\", \"user\": \"bob\"}", "{?: ?, ?: ?}" },
	{ "{token: abc, x: 1}", "{token: ?" },
	{ "token=", "token=" },
	{ "password: ", "password: " },
	{ "user=bob name: alice", "user=bob name: alice" },
	/* a URL's user information */
	{ "could not connect to postgresql://app:s3cr3t@db.internal:5432/app",
	  "could not connect to postgresql://?@db.internal:?/app" },
	{ "redis://:pw@cache/0 and http://host/a@b", "redis://?@cache/? and http://host/a@b" },
	{ "ftp://@x", "ftp://@x" },
	{ "see http://example.com/", "see http://example.com/" },
	/* query strings */
	{ "GET /orders?id=1&token=abc failed", "GET /orders? failed" },
	{ "see https://example.com/cb?code=xyz#frag.", "see https://example.com/cb?#frag." },
	{ "url \"/a?b=c\"", "url ?" },
	{ "/search?q=tea<br>", "/search?<br>" },
	{ "WHERE id=? AND name = ?", "WHERE id=? AND name = ?" },
	{ "why? because", "why? because" },
	{ "what?? ok", "what?? ok" },
	{ "end?", "end?" },
	/* and the message rules still apply */
	{ "user 12345 not found", "user ? not found" },
	{ "", "" },
};

START_TEST(test_scrub_http)
{
	char out[512], again[512];
	const char *in = http_cases[_i].in;
	size_t n = ap_sql_scrub_http_body(in, strlen(in), out, sizeof out);
	ck_assert_msg(strcmp(out, http_cases[_i].want) == 0, "[%s]\n  got: [%s]\n want: [%s]", in,
	              out, http_cases[_i].want);
	ck_assert_uint_eq(n, strlen(out));
	/* the collector scrubs what the preload scrubbed: no change */
	ap_sql_scrub_http_body(out, n, again, sizeof again);
	ck_assert_str_eq(again, out);
}
END_TEST

/* A database message holds no credential syntax: the HTTP rules leave the
 * message rules' output alone. */
START_TEST(test_scrub_http_superset)
{
	char a[512], b[512];
	const char *in = scrub_cases[_i].in;
	ap_sql_scrub_message(in, strlen(in), a, sizeof a);
	ap_sql_scrub_http_body(in, strlen(in), b, sizeof b);
	ck_assert_str_eq(a, b);
}
END_TEST

START_TEST(test_scrub_http_bounds)
{
	char out[8];
	check_scrub_caps(ap_sql_scrub_http_body,
	                 "Bearer ü€𝄞 for /päth?ключ=1 password=日本語 rest 42",
	                 "Bearer ? for /päth? password=? rest ?");
	ck_assert_uint_eq(ap_sql_scrub_http_body(NULL, 5, out, 8), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_pg_primary)
{
	static const struct {
		const char *in, *want;
	} c[] = {
		{ "ERROR:  relation \"t\" does not exist\nLINE 1: SELECT * FROM t\n      ^\n",
		  "relation \"t\" does not exist" },
		{ "duplicate key value violates unique constraint \"k\"\n"
		  "DETAIL:  Key (name)=(writer 1) already exists.\n",
		  "duplicate key value violates unique constraint \"k\"" },
		{ "FATAL:  password authentication failed for user \"x\"\r\n",
		  "password authentication failed for user \"x\"" },
		{ "WARNING:  there is no transaction in progress", "there is no transaction in progress" },
		{ "no newline", "no newline" },
		{ "\nDETAIL: x", "" },
		{ "ERROR:", "" },
		{ "", "" },
	};
	for (int k = 0; k < NCASES(c); k++) {
		size_t off = 99, n = ap_sql_pg_primary(c[k].in, strlen(c[k].in), &off);
		ck_assert_msg(n == strlen(c[k].want) && memcmp(c[k].in + off, c[k].want, n) == 0,
		              "case %d: got [%.*s]", k, (int)n, c[k].in + off);
	}
	/* primary, then scrub: the preload's order */
	const char *m = "ERROR:  invalid input syntax for type integer: \"4x2\"\n"
	                "LINE 1: SELECT * FROM t WHERE id = '4x2'\n";
	size_t off, n = ap_sql_pg_primary(m, strlen(m), &off);
	char out[128];
	ap_sql_scrub_message(m + off, n, out, sizeof out);
	ck_assert_str_eq(out, "invalid input syntax for type integer: ?");
}
END_TEST

/* --- suite ------------------------------------------------------------------------ */

Suite *sql_suite(void)
{
	Suite *s = suite_create("sql");
	TCase *tc = tcase_create("normalize");
	tcase_add_loop_test(tc, test_pg, 0, NCASES(pg_cases));
	tcase_add_loop_test(tc, test_mysql, 0, NCASES(my_cases));
	tcase_add_loop_test(tc, test_sqlite, 0, NCASES(lite_cases));
	tcase_add_loop_test(tc, test_keep_values, 0, NCASES(keep_cases));
	tcase_add_loop_test(tc, test_hostile, 0, NCASES(hostile_cases));
	tcase_add_test(tc, test_dialects_differ);
	tcase_add_test(tc, test_list_lengths_one_shape);
	tcase_add_loop_test(tc, test_truncation_every_cap, 0, NCASES(trunc_cases));
	tcase_add_test(tc, test_cap_zero_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("large");
	tcase_set_timeout(tc, 60); /* megabytes under sanitizers */
	tcase_add_loop_test(tc, test_one_megabyte, 0, NCASES(big_cases));
	tcase_add_test(tc, test_fuzz_random_bytes);
	tcase_add_test(tc, test_fuzz_no_value_leaks);
	suite_add_tcase(s, tc);

	tc = tcase_create("fingerprint");
	tcase_add_test(tc, test_fingerprint_fnv1a);
	tcase_add_loop_test(tc, test_fingerprint_golden, 0, NCASES(golden));
	tcase_add_test(tc, test_fingerprint_shapes);
	suite_add_tcase(s, tc);

	tc = tcase_create("classify");
	tcase_add_loop_test(tc, test_operation, 0, NCASES(op_cases));
	tcase_add_test(tc, test_op_names);
	tcase_add_loop_test(tc, test_session, 0, NCASES(session_cases));
	tcase_add_loop_test(tc, test_table, 0, NCASES(table_cases));
	tcase_add_test(tc, test_table_cap);
	suite_add_tcase(s, tc);

	tc = tcase_create("messages");
	tcase_add_loop_test(tc, test_scrub, 0, NCASES(scrub_cases));
	tcase_add_test(tc, test_scrub_bounds);
	tcase_add_loop_test(tc, test_scrub_http, 0, NCASES(http_cases));
	tcase_add_loop_test(tc, test_scrub_http_superset, 0, NCASES(scrub_cases));
	tcase_add_test(tc, test_scrub_http_bounds);
	tcase_add_test(tc, test_pg_primary);
	suite_add_tcase(s, tc);
	return s;
}

#ifdef STANDALONE
/* ns per normalisation (+ fingerprint) of a ~200-byte statement. */
static void bench(void)
{
	static const char *const qs[] = {
		("SELECT u.id, u.name, u.email, p.title FROM users u JOIN posts p ON "
		 "p.user_id = u.id WHERE u.id = 42 AND p.created_at > '2024-01-01 00:00:00' "
		 "AND p.status IN ('draft', 'published', 'archived') ORDER BY p.created_at DESC LIMIT 20"),
		("SELECT \"blog_entry\".\"id\", \"blog_entry\".\"headline\", \"blog_entry\".\"body_text\", "
		 "\"blog_entry\".\"pub_date\" FROM \"blog_entry\" WHERE \"blog_entry\".\"blog_id\" = 17 "
		 "ORDER BY \"blog_entry\".\"pub_date\" DESC"),
		("INSERT INTO orders (customer_id, product_id, quantity, price, note) VALUES "
		 "(1001, 77, 3, 19.99, 'gift wrap'), (1001, 78, 1, 5.25, ''), (1002, 77, 2, 19.99, 'x')"),
	};
	enum { N = 100000, TRIALS = 25 };
	char out[AP_SQL_MAX_DEFAULT];
	/* the minimum over trials: other processes only ever add time */
	for (int k = 0; k < NCASES(qs); k++) {
		size_t len = strlen(qs[k]), n = 0;
		int tr;
		uint64_t acc = 0;
		double best_n = 1e9, best_f = 1e9;
		for (int t = 0; t < TRIALS; t++) {
			double t0 = now_s();
			for (int r = 0; r < N; r++)
				acc += n = ap_sql_normalize(qs[k], len, AP_SQL_PG, 0, out, sizeof out, &tr);
			double t1 = now_s();
			for (int r = 0; r < N; r++)
				acc += ap_sql_fingerprint(out, n);
			double t2 = now_s();
			best_n = (t1 - t0) < best_n ? (t1 - t0) : best_n;
			best_f = (t2 - t1) < best_f ? (t2 - t1) : best_f;
		}
		printf("%3zu bytes: normalize %.0f ns (%.2f ns/byte), fingerprint %.0f ns\n  -> %s%s\n",
		       len, best_n / N * 1e9, best_n / N * 1e9 / len, best_f / N * 1e9, out,
		       acc == 42 ? " " : "");
	}
}

/* Runs this suite alone (see the file's header); `bench` benchmarks. */
int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "bench") == 0) {
		bench();
		return EXIT_SUCCESS;
	}
	SRunner *sr = srunner_create(sql_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif

/*
 * ap_sql.h - SQL statement shapes: normalise, fingerprint, classify, and
 * scrub error messages (SPEC 3, SQL; SPEC 4 n_plus_one_threshold; SPEC 6
 * apiprof_db_queries_total and apiprof_db_table_operations_total).
 *
 * The preload runs ap_sql_normalize() inside the host's libpq / libmysql /
 * libsqlite3 call on every statement, so everything here is a single pass
 * over caller buffers: no allocation, no locks, no global state, no libc
 * calls beyond memchr, memcmp, memcpy and strlen. Every function is thread-safe and
 * async-signal-safe, reads at most `len` bytes of its input (NUL bytes
 * inside are ordinary bytes, not terminators) and writes at most `cap`
 * bytes of its output. The collector uses the same functions on the
 * normalised text it receives (classification, table labels), so both
 * sides agree on what a shape is.
 *
 * The normaliser is a lexer, not a parser: it knows how each dialect
 * quotes, comments and spells numbers and placeholders, and nothing about
 * grammar beyond the few keywords named below. Whatever the input (invalid
 * SQL, unterminated quotes, invalid UTF-8, megabytes of it) it terminates
 * in time linear in the input and never leaves a literal value in the
 * output unless asked to: an unterminated string literal swallows the rest
 * of the statement as one `?`.
 */
#ifndef AP_SQL_H
#define AP_SQL_H

#include <stddef.h>
#include <stdint.h>

#define AP_SQL_MAX_DEFAULT 4096   /* APIPROF_MAX_SQL_BYTES default, incl. NUL */
#define AP_SQL_TABLE_MAX 128      /* a table label buffer that always suffices
                                     for sane names, incl. the NUL */

/* How the statement's text is lexed. The values equal enum ap_sql_db in
 * ap_wire.h (AP_DB_POSTGRES...), so a record's db byte converts directly. */
enum ap_sql_dialect {
	AP_SQL_PG = 1,     /* PostgreSQL, standard_conforming_strings = on */
	AP_SQL_MYSQL = 2,  /* MySQL / MariaDB, default sql_mode (no ANSI_QUOTES,
	                      no NO_BACKSLASH_ESCAPES) */
	AP_SQL_SQLITE = 3,
};

/* Flags of ap_sql_normalize(). */
#define AP_SQL_KEEP_VALUES 0x1u /* APIPROF_CAPTURE_SQL_VALUES=1: literals are
                                   copied verbatim and lists are not
                                   collapsed; comments and whitespace are
                                   still normalised */

/*
 * Writes the normalised shape of sql[0..len) to out as a NUL-terminated
 * string and returns its length (excluding the NUL); out never contains a
 * NUL byte before its terminator. Bytes of out after the terminator (up to
 * outcap) may have been overwritten: they are scratch. *truncated (may be
 * NULL) is set to 1 when the shape did not fit in outcap - 1 bytes, else 0
 * (trailing `;` and whitespace, which are dropped anyway, never count). A
 * cut shape ends on a UTF-8 character boundary (when the input was valid
 * UTF-8) and is a prefix of the full shape. outcap 0 writes nothing (out
 * may then be NULL) and returns 0; sql NULL is an empty statement; an
 * unknown dialect is lexed as AP_SQL_PG.
 *
 * Rules, in the order the lexer applies them:
 *  - Comments are removed and count as whitespace (block-comment markers
 *    are written `/ *` and `* /` here to keep this comment open): `-- ...`
 *    to end of line (in MySQL only when `--` is followed by whitespace, a
 *    control byte or the end, as the server requires; `1--1` there is
 *    1 - -1), `# ...` to end of line in MySQL, `/ * ... * /` block comments (nested in
 *    PostgreSQL, as its lexer nests them), optimiser hints `/ *+ ... * /`
 *    included: hints and sqlcommenter tags must not split shapes. MySQL and
 *    MariaDB executable comments `/ *!NNNNN ... * /` and `/ *M!NNNNNN ... * /`
 *    are run by the server, so their markers are dropped and their
 *    contents are lexed as SQL (`SELECT / *!40001 SQL_NO_CACHE * / 1` gives
 *    `SELECT SQL_NO_CACHE ?`).
 *  - Runs of whitespace (NUL bytes included) become one space; leading and
 *    trailing whitespace, whitespace before a `;`, runs of `;` beyond the
 *    first and trailing `;` are removed.
 *  - String literals become `?`: '...' with '' doubling everywhere and
 *    backslash escapes in MySQL only; PostgreSQL E'...' (backslash
 *    escapes), U&'...', $$...$$ and $tag$...$tag$; N'...', X'...', B'...'
 *    prefixed forms (the prefix goes with the value); MySQL "..." strings.
 *    A MySQL charset introducer stays: `_utf8mb4'x'` gives `_utf8mb4?`.
 *  - Numbers become `?`: integers, decimals, exponents, 0x / 0b / 0o
 *    forms, `_` digit separators. Digits inside identifiers stay (`t1`,
 *    `col_2`); in MySQL a word that starts with digits but is not a number
 *    (`1st_table`) is an identifier, as the server reads it. A `-` or `+`
 *    directly before a number is folded into it when what precedes is the
 *    start of a statement, an operator, `(`, `[`, `,`, or one of the
 *    keywords SELECT, WHERE, AND, OR, NOT, ON, IS, BY, WHEN, THEN, ELSE,
 *    LIKE, ILIKE, LIMIT, OFFSET, RETURN, BETWEEN (`x = -5` and `x = 5` give
 *    one shape; `a -5`, a subtraction, stays `a -?`).
 *  - Placeholders stay as written: `?`, `?NNN`, `$1`, and in SQLite
 *    `:name`, `@name`, `$name`; MySQL `@var` / `@@var` user and system
 *    variables also stay.
 *  - Identifiers stay as written, keywords keep their case: "ident"
 *    (PostgreSQL, SQLite) and `ident` (all) verbatim with their quotes,
 *    [ident] in SQLite. An unterminated quoted identifier swallowed the
 *    rest of the statement, values included, so it becomes `?` instead.
 *    Known limit: SQLite takes a "..." that names no column as a string
 *    literal (a legacy misfeature some applications rely on); lexically
 *    it is an identifier, and it is kept. One exception, PostgreSQL and
 *    MySQL: the name a statement that begins `DEALLOCATE [PREPARE]` names
 *    (a word other than ALL, or a quoted identifier) becomes `?`: drivers
 *    generate one per prepared statement, and each would be a shape.
 *  - Lists: a parenthesised list that holds only literals, placeholders
 *    (`IN ($1, $2)` too), NULL, TRUE, FALSE or DEFAULT becomes `(?)` after IN and VALUES (and
 *    MySQL's VALUE), and an ARRAY[...] of them becomes ARRAY[?], so the
 *    shape does not depend on the list's length. After VALUES, each further
 *    row that normalises to the same text as the first is dropped:
 *    `VALUES (1, 'a'), (2, 'b')` and `VALUES (?, now()), (?, now())` give
 *    `VALUES (?)` and `VALUES (?, now())` (rows are compared as
 *    normalised text, so `(?,now())` differs from `(?, now())`). A list
 *    holding anything else (an expression, a sub-select, row
 *    constructors, a cast) is kept item by item; once a row differs from
 *    the first, the rest of that VALUES clause is kept row by row.
 *
 * Cost: one pass, fingerprint included (ap_sql_normalize_fp), about 40
 * instructions per input byte, per-statement costs included, for a 52-byte
 * WHERE look-up and a 153-byte ORM one with every name quoted (x86-64,
 * gcc -O2, 2026-12-07; 63 and 73 with the fingerprint as a second pass). A list that
 * turns out not to collapse, or a VALUES row that turns out to differ, is
 * lexed again from its start, so no byte is lexed more than four times.
 * sql must not alias out.
 */
size_t ap_sql_normalize(const char *sql, size_t len,
                        enum ap_sql_dialect dialect, unsigned flags,
                        char *out, size_t outcap, int *truncated);

/*
 * ap_sql_normalize() that also sets *fp (may be NULL) to
 * ap_sql_fingerprint(out, returned length), computed as the shape is
 * written rather than in a second pass over it: what the preload calls on
 * every statement. With AP_SQL_KEEP_VALUES that is the fingerprint of the
 * text with its values, which is not the statement's (see below).
 */
size_t ap_sql_normalize_fp(const char *sql, size_t len,
                           enum ap_sql_dialect dialect, unsigned flags,
                           char *out, size_t outcap, int *truncated, uint64_t *fp);

/*
 * 64-bit FNV-1a of a normalised statement, identifying its shape. Stable
 * across runs, machines and versions (tests pin golden values). Computed
 * over the text with ASCII letters lowercased outside quotes ("...", `...`,
 * '...') and with whitespace ignored except a single space between two
 * word characters (letters, digits, _, $, ?, quotes, bytes >= 0x80): so
 * `select * from t where id = ?` and `SELECT * FROM t WHERE id=?` share a
 * fingerprint, `"T"` and `"t"` do not.
 *
 * The fingerprint is of the shape, so with AP_SQL_KEEP_VALUES the caller
 * fingerprints a second normalisation made without that flag; otherwise
 * every value would make its own shape and no N+1 would ever be found.
 */
uint64_t ap_sql_fingerprint(const char *norm, size_t len);

enum ap_sql_op {
	AP_SQL_OP_OTHER = 0,
	AP_SQL_OP_SELECT,
	AP_SQL_OP_INSERT,
	AP_SQL_OP_UPDATE,
	AP_SQL_OP_DELETE,
	AP_SQL_OP_DDL,
};

/*
 * The statement's operation, from its first keyword after whitespace,
 * comments and opening parentheses: SELECT, VALUES, TABLE -> SELECT;
 * INSERT, REPLACE -> INSERT; UPDATE; DELETE; CREATE, ALTER, DROP, TRUNCATE,
 * RENAME, COMMENT ON -> DDL; anything else (EXPLAIN, CALL, SET, BEGIN,
 * COPY, PRAGMA, MERGE, ...) -> OTHER. WITH ... is the first of SELECT,
 * INSERT, REPLACE, UPDATE, DELETE found outside parentheses after the
 * common table expressions, or SELECT when there is none.
 * Meant for normalised text; raw text works too, except that a MySQL
 * `/ *!... * /` executable comment is skipped there as a comment.
 */
enum ap_sql_op ap_sql_operation(const char *norm, size_t len);

/* The `operation` label of apiprof_db_queries_total: "select", "insert",
 * "update", "delete", "ddl" or "other" (static strings). */
const char *ap_sql_op_name(enum ap_sql_op op);

/*
 * 1 when the statement is transaction control or session state, which
 * counts as a statement but never as an N+1: BEGIN, START TRANSACTION,
 * COMMIT, END, ROLLBACK (ROLLBACK TO SAVEPOINT included), ABORT, SAVEPOINT,
 * RELEASE, SET, SHOW, RESET, DISCARD, USE. Case-insensitive, after leading
 * whitespace and comments.
 */
int ap_sql_is_session(const char *norm, size_t len);

/*
 * The table a write names, for apiprof_db_table_operations_total:
 * INSERT [LOW_PRIORITY|DELAYED|HIGH_PRIORITY] [IGNORE] [INTO] t,
 * INSERT OR REPLACE/IGNORE/... INTO t (SQLite), REPLACE [INTO] t,
 * UPDATE [LOW_PRIORITY] [IGNORE] [ONLY] [OR ...] t,
 * DELETE [LOW_PRIORITY] [QUICK] [IGNORE] FROM [ONLY] t, MySQL's
 * multi-table DELETE t1[, ...] FROM ... (t1), and each of these after
 * WITH .... A qualified name keeps its qualifier (`public.t`); quotes are
 * removed (`"my ""t"""` gives `my "t"`, `db`.`t` gives db.t); the case is
 * kept as written. Writes the name NUL-terminated to out and returns its
 * length; returns 0 (out[0] = NUL when cap > 0) for other statements, when
 * no name follows, or when the name does not fit in cap - 1 bytes (a cut
 * name would be a wrong label).
 */
size_t ap_sql_table(const char *norm, size_t len, char *out, size_t cap);

/*
 * Scrubs an error message - a database's (PostgreSQL primary message,
 * MySQL, SQLite) or the start of an HTTP 5xx body - of the values it may
 * quote, with the same never-leak bias as ap_sql_normalize(), writing it
 * NUL-terminated to out and returning its length. Output longer than
 * cap - 1 bytes is cut on a UTF-8 character boundary; cap 0 writes
 * nothing (out may be NULL). Call ap_sql_pg_primary() first for a
 * PostgreSQL message.
 *  - A '...' or "..." string becomes `?`, unless the word right before it
 *    names a database object (relation, table, column, constraint, index,
 *    key, schema, database, sequence, view, type, function, trigger, role,
 *    user, ...): servers quote identifiers and values alike (PostgreSQL
 *    writes `column "x"` but also `invalid input syntax for type integer:
 *    "abc"`; MySQL writes `Duplicate entry 'abc' for key 'users.name'`), and
 *    the word before is what tells them apart. So the MySQL 1062 message
 *    becomes `Duplicate entry ? for key 'users.name'` and PostgreSQL's
 *    `duplicate key value violates unique constraint "users_name_key"`
 *    stays whole. A quote closes only where it is not followed by a letter
 *    or digit, since MySQL quotes values without escaping them
 *    (`'O'Brien'` is one string); an unterminated string swallows the
 *    rest. A quote right after a letter or digit is an apostrophe
 *    (`doesn't`). `...` (MySQL identifiers) stays.
 *  - Numbers become `?` (a sign before one is folded in), as does any word
 *    starting with a digit (`550e8400`), a UUID, and a hex word of 8 or
 *    more characters containing a digit (hashes, ids). Words containing
 *    digits otherwise stay (`t1`, `utf8mb4`).
 *  - Everything else is copied; NUL bytes become spaces.
 */
size_t ap_sql_scrub_message(const char *msg, size_t len, char *out, size_t cap);

/*
 * ap_sql_scrub_message() for the start of an HTTP 5xx body, which may echo
 * the request: its credentials and query strings are removed as well.
 * Same output contract (NUL-terminated, cut on a UTF-8 boundary, cap 0
 * writes nothing). Every removed value becomes one `?`, like a literal:
 *  - Authorization schemes: the word after `Bearer`, `Basic`, `Digest`,
 *    `Negotiate` or `Token` (any case) and blanks (`Bearer ?`).
 *  - Credential keys: a word containing token, pass, pwd, secret, key,
 *    sess, cookie, auth, credential or signature (any case: access_token,
 *    x-api-key, PHPSESSID, Authorization), followed by `=` or `:`, loses
 *    its unquoted value: after `=` up to a blank or one of & ; , ' " < > )
 *    ] } ` (`api_key=?&page=?`); after `:` to the end of the line or a `<`,
 *    as a header's value runs (`Authorization: ?`, `Cookie: ?`). A quoted
 *    value is a string, which the message rules make `?` anyway.
 *  - A URL's user information: what lies between `://` and the last `@`
 *    before the next / # blank or quote (`postgresql://app:pw@db/x`
 *    gives `postgresql://?@db/x`).
 *  - Query strings: a `?` right after a path character (letter, digit,
 *    / . - _ ~ %) and followed by anything but a blank, a quote, < > ` #
 *    or `?`, together with what follows up to one of those, becomes one
 *    `?` (`/orders?id=1&token=x` gives `/orders?`). A SQL placeholder
 *    (`id = ?`, `id=?`) is not a query string.
 * The bias is the normaliser's: a false match removes harmless words
 * (`Basic authentication` gives `Basic ?`), never the other way round.
 * No opt-in keeps them: APIPROF_CAPTURE_QUERY_STRING governs paths only.
 * The output is never longer than the input, and the collector applies it
 * again to what it receives (in case the sender did not): on scrubbed text
 * that changes nothing in practice, and at worst removes a little more.
 */
size_t ap_sql_scrub_http_body(const char *msg, size_t len, char *out, size_t cap);

/*
 * PostgreSQL's primary message within msg[0..len): skips a leading
 * severity tag (`ERROR:`, `FATAL:`, `PANIC:`, `WARNING:` and the spaces
 * after it, as PQerrorMessage() writes it) and ends before the first
 * newline, so DETAIL, HINT, CONTEXT and `LINE n:` lines (which quote
 * values and statement text) are dropped; trailing spaces and CR are
 * removed. Returns the length and sets *off to where it starts.
 */
size_t ap_sql_pg_primary(const char *msg, size_t len, size_t *off);

#endif /* AP_SQL_H */

/*
 * fuzz_sql.c - libFuzzer harness for the SQL normaliser and its companions
 * (shared/sql.c): every dialect with and without AP_SQL_KEEP_VALUES, the
 * fingerprint, operation, session and table classifiers, the PostgreSQL
 * primary-message cut, scrub_message and scrub_http_body.
 *
 * The first input byte picks a small output capacity, so truncation paths
 * run as often as full ones; checked beyond memory safety: the contracts in
 * ap_sql.h (NUL-terminated output with no NUL inside, lengths within cap,
 * a cut shape is a prefix of the full one, the truncated flag agrees), and
 * the fingerprint ap_sql_normalize_fp() computes as it writes equals the
 * one of two passes: ap_sql_fingerprint() of the shape, and
 * ref_fingerprint() (../sql_ref.h), the two-pass loop as it was before.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ap_sql.h"
#include "../sql_ref.h"

static void fail(const char *what, int dialect, unsigned flags)
{
	fprintf(stderr, "fuzz_sql: %s (dialect %d, flags %u)\n", what, dialect, flags);
	abort();
}

/* Output buffers on the heap, sized exactly, so ASan sees any overrun. */
static size_t checked(const char *out, size_t n, size_t cap, const char *what,
                      int d, unsigned f)
{
	if (cap == 0) {
		if (n != 0)
			fail(what, d, f);
		return 0;
	}
	if (n >= cap || out[n] != '\0' || memchr(out, '\0', n) != NULL)
		fail(what, d, f);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	size_t small = data[0] % 48;
	const char *sql = (const char *)data + 1;
	size_t len = size - 1;
	/* Room for every shape: literals shrink to '?' and whitespace to one
	 * space, so a shape is about as long as its statement; four times is
	 * a margin, and a shape truncated even then is reported. */
	size_t bigcap = 4 * len + 64;
	char *full = malloc(bigcap), *cut = malloc(small ? small : 1);
	char *copy = malloc(len ? len : 1);
	if (full == NULL || cut == NULL || copy == NULL)
		goto out;
	memcpy(copy, sql, len);

	for (int d = AP_SQL_PG; d <= AP_SQL_SQLITE + 1; d++) { /* +1: unknown dialect */
		for (unsigned f = 0; f <= AP_SQL_KEEP_VALUES; f++) {
			int tr = -1;
			uint64_t fp = 0;
			size_t n = ap_sql_normalize_fp(copy, len, (enum ap_sql_dialect)d, f,
			                               full, bigcap, &tr, &fp);
			checked(full, n, bigcap, "normalize: bad output", d, f);
			if (fp != ap_sql_fingerprint(full, n) || fp != ref_fingerprint(full, n))
				fail("normalize_fp: one-pass fingerprint differs", d, f);
			if (tr != 0)
				fail("normalize: truncated with room to spare", d, f);
			int tr2 = -1;
			uint64_t fp2 = 0;
			size_t m = ap_sql_normalize_fp(copy, len, (enum ap_sql_dialect)d, f,
			                               small ? cut : NULL, small, &tr2, &fp2);
			checked(cut, m, small, "normalize (small): bad output", d, f);
			if (fp2 != ref_fingerprint(small ? cut : "", m))
				fail("normalize_fp (small): one-pass fingerprint differs", d, f);
			if (ap_sql_normalize(copy, len, (enum ap_sql_dialect)d, f, full, bigcap,
			                     NULL) != n)
				fail("normalize and normalize_fp differ", d, f);
			if (small && (m > n || memcmp(cut, full, m) != 0))
				fail("normalize: a cut shape is not a prefix of the full one", d, f);
			if (small && tr2 != (n > small - 1))
				fail("normalize: truncated flag wrong", d, f);
			(void)ap_sql_fingerprint(full, n);
			if (ap_sql_fingerprint(full, n) != ap_sql_fingerprint(full, n))
				fail("fingerprint not deterministic", d, f);
			enum ap_sql_op op = ap_sql_operation(full, n);
			if (ap_sql_op_name(op) == NULL)
				fail("operation without a name", d, f);
			(void)ap_sql_is_session(full, n);
			char table[AP_SQL_TABLE_MAX];
			size_t t = ap_sql_table(full, n, table, sizeof table);
			checked(table, t, sizeof table, "table: bad output", d, f);
			if (small) {
				t = ap_sql_table(full, n, cut, small);
				checked(cut, t, small, "table (small): bad output", d, f);
			}
		}
	}

	/* The raw text through the classifiers, as the collector may see it. */
	(void)ap_sql_operation(copy, len);
	(void)ap_sql_is_session(copy, len);
	(void)ap_sql_fingerprint(copy, len);

	size_t off = (size_t)-1;
	size_t pl = ap_sql_pg_primary(copy, len, &off);
	if (off > len || pl > len - off)
		fail("pg_primary: outside the message", 0, 0);
	size_t sn = ap_sql_scrub_message(copy + off, pl, full, bigcap);
	checked(full, sn, bigcap, "scrub_message: bad output", 0, 0);
	sn = ap_sql_scrub_message(copy, len, full, bigcap);
	checked(full, sn, bigcap, "scrub_message: bad output", 0, 0);
	sn = ap_sql_scrub_message(copy, len, small ? cut : NULL, small);
	checked(cut, sn, small, "scrub_message (small): bad output", 0, 0);

	/* The 5xx body scrubber: a cut output is a prefix of the full one, and
	 * scrubbing again (the collector does) never makes it longer. */
	sn = ap_sql_scrub_http_body(copy, len, full, bigcap);
	checked(full, sn, bigcap, "scrub_http_body: bad output", 0, 0);
	size_t hn = ap_sql_scrub_http_body(copy, len, small ? cut : NULL, small);
	checked(cut, hn, small, "scrub_http_body (small): bad output", 0, 0);
	if (small && (hn > sn || memcmp(cut, full, hn) != 0))
		fail("scrub_http_body: a cut output is not a prefix of the full one", 0, 0);
	char *again = malloc(sn + 1);
	if (again != NULL) {
		size_t an = ap_sql_scrub_http_body(full, sn, again, sn + 1);
		checked(again, an, sn + 1, "scrub_http_body (again): bad output", 0, 0);
		free(again);
	}
out:
	free(full);
	free(cut);
	free(copy);
	return 0;
}

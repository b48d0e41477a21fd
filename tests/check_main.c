/* Runs every unit suite, or those named in AP_CHECK_SUITES; exits non-zero
 * if any test failed.
 *
 * AP_CHECK_SUITES: suite names separated by commas or spaces ("store,windows").
 * scripts/test.sh's ThreadSanitizer stage runs only the suites that start
 * threads this way. A name that is no suite is an error (exit 2), so a typo
 * never passes by running nothing. Unset or empty: every suite.
 *
 * A test case without a timeout of its own gets 30 s, not Check's 4 s
 * (CK_DEFAULT_TIMEOUT, when set, still decides): the timeout is there to
 * stop a hang, and under `make -j2 check` beside the fuzzers' clang builds
 * a case that takes 1 s of CPU (profile's stack_bytes_bounded) was seen to
 * take more than 4 s. */
#include "config.h"
#include "check_suites.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
	const char *name;
	Suite *(*make)(void);
} suites[] = {
	{ "wire", wire_suite },           { "http", http_suite },
	{ "route", route_suite },         { "config", config_suite },
	{ "sketch", sketch_suite },       { "agg", agg_suite },
	{ "colutil", colutil_suite },     { "ingest", ingest_suite },
	{ "store", store_suite },         { "sql", sql_suite },
	{ "sqlreq", sqlreq_suite },       { "sqlagg", sqlagg_suite },
	{ "sqlstore", sqlstore_suite },   { "sqlingest", sqlingest_suite },
	{ "regress", regress_suite },     { "windows", windows_suite },
	{ "metrics", metrics_suite },     { "crash", crash_suite },
	{ "profile", profile_suite },     { "h2", h2_suite },
	{ "hpack", hpack_suite },         { "fcgi", fcgi_suite },
};
#define NSUITES (sizeof suites / sizeof suites[0])

/* Marks in want[] the suites LIST names; 0, or -1 after naming on stderr
 * a name that is no suite. */
static int pick(const char *list, int *want)
{
	const char *p = list;
	while (*p) {
		size_t len = strcspn(p, ", ");
		if (len > 0) {
			size_t i;
			for (i = 0; i < NSUITES; i++)
				if (strlen(suites[i].name) == len && memcmp(suites[i].name, p, len) == 0)
					break;
			if (i == NSUITES) {
				fprintf(stderr, "check_unit: AP_CHECK_SUITES: no suite '%.*s'\n", (int)len, p);
				return -1;
			}
			want[i] = 1;
		}
		p += len;
		p += strspn(p, ", ");
	}
	return 0;
}

int log_capture_start(const char *path)
{
	fflush(stderr);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	int saved = dup(2);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fd, 2), 0);
	close(fd);
	return saved;
}

void log_capture_end(int saved, const char *path, char *buf, size_t len)
{
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
}

int count_in(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

int main(void)
{
	int want[NSUITES];
	const char *list = getenv("AP_CHECK_SUITES");
	/* Before the suites are made: tcase_create() reads it. */
	setenv("CK_DEFAULT_TIMEOUT", "30", 0);
	int all = !list || !*list;
	memset(want, 0, sizeof want);
	if (!all && pick(list, want) != 0)
		return 2;

	SRunner *sr = NULL;
	for (size_t i = 0; i < NSUITES; i++) {
		if (!all && !want[i])
			continue;
		if (!sr)
			sr = srunner_create(suites[i].make());
		else
			srunner_add_suite(sr, suites[i].make());
	}
	if (!sr) {
		fprintf(stderr, "check_unit: AP_CHECK_SUITES names no suite\n");
		return 2;
	}
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

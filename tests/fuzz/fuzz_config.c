/*
 * fuzz_config.c - libFuzzer harness for the configuration parser
 * (shared/config.c): the input is a config file, loaded on top of the
 * defaults through ap_config_load() (it reads files, so the input is
 * written to one), then every value is checked against what the parser
 * promises, and a few paths (and the input itself) are matched against
 * ignored_paths and templated with the routes it set (shared/route.c),
 * into output buffers of exact sizes, so ASan sees any overrun.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ap_config.h"
#include "ap_route.h"

static char path[4096];

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_config: %s\n", what);
	abort();
}

static void cleanup(void)
{
	unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof path, "%s/fuzz_config.%ld.conf", tmp && *tmp ? tmp : "/tmp",
	         (long)getpid());
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A config file is a few lines; huge inputs only slow the fuzzer. */
	if (size > 4096)
		return 0;
	FILE *f = fopen(path, "w");
	if (f == NULL)
		fail("cannot write the temp file");
	if (size && fwrite(data, 1, size, f) != size)
		fail("short write");
	fclose(f);

	struct ap_config c;
	if (ap_config_init(&c) != 0)
		fail("ap_config_init");
	char err[256];
	err[0] = '\0';
	int rc = ap_config_load(&c, path, err, sizeof err);
	if (rc != 0 && err[0] == '\0')
		fail("an error without a message");
	if (rc != 0 && memchr(err, '\0', sizeof err) == NULL)
		fail("error message not terminated");
	/* Whatever happened, the values are the documented valid ones: a
	 * failed load keeps the previous value of the failing key. */
	if (!(c.aggregation_window_minutes >= 0.05) || c.n_plus_one_threshold < 2 ||
	    !(c.regression_response_time_factor > 1) ||
	    !(c.regression_error_rate_delta >= 0 && c.regression_error_rate_delta <= 1) ||
	    c.regression_min_requests < 1 || c.max_routes < 1 || c.retention_days < 1 ||
	    c.retention_days > AP_CONFIG_MAX_RETENTION_DAYS ||
	    c.max_stored_requests_per_second < 0 || c.route_set == NULL ||
	    c.n_latency_buckets > AP_CONFIG_MAX_BUCKETS || c.webhook_url == NULL ||
	    c.metric_namespace == NULL || c.http == NULL || c.db == NULL)
		fail("a value outside its documented range");
	for (size_t i = 1; i < c.n_latency_buckets; i++)
		if (!(c.latency_buckets[i] > c.latency_buckets[i - 1]))
			fail("latency_buckets not increasing");
	static const char *const paths[] = { "/", "/favicon.ico", "/api/v1/x?y=1", "" };
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		(void)ap_config_path_ignored(&c, paths[i], strlen(paths[i]));
	(void)ap_config_path_ignored(&c, (const char *)data, size);
	static const size_t caps[] = { 1, 2, 9, 64, AP_ROUTE_MAX };
	for (size_t i = 0; i <= sizeof paths / sizeof paths[0]; i++) {
		const char *p = i < sizeof paths / sizeof paths[0] ? paths[i] : (const char *)data;
		size_t len = i < sizeof paths / sizeof paths[0] ? strlen(p) : size;
		for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
			char *out = malloc(caps[k]);
			if (out == NULL)
				continue;
			size_t n = ap_route_of(c.route_set, p, len, out, caps[k]);
			if (n >= caps[k] || out[n] != '\0')
				fail("ap_route_of: a route past its buffer or not terminated");
			free(out);
		}
	}
	ap_config_free(&c);
	return 0;
}

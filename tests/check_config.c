/* Unit tests for shared/config.c: the collector's configuration (SPEC 4). */
#include "config.h"
#include "ap_config.h"
#include "check_suites.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct ap_config cfg;
static char err[512];
static char tmp_path[64];

static void setup(void)
{
	ck_assert_int_eq(ap_config_init(&cfg), 0);
	err[0] = '\0';
	tmp_path[0] = '\0';
}

static void teardown(void)
{
	ap_config_free(&cfg);
	if (tmp_path[0])
		unlink(tmp_path);
}

/* Writes `text` to a fresh temporary file; its path is in tmp_path. */
static const char *write_file(const char *text)
{
	if (tmp_path[0])
		unlink(tmp_path);
	strcpy(tmp_path, "/tmp/apiprof-cfg-XXXXXX");
	int fd = mkstemp(tmp_path);
	ck_assert_int_ge(fd, 0);
	size_t n = strlen(text);
	ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
	close(fd);
	return tmp_path;
}

static int load(const char *text)
{
	return ap_config_load(&cfg, write_file(text), err, sizeof(err));
}

/* err must be exactly "PATH:LINE: " followed by `rest`'s prefix. */
static void assert_err_at(unsigned line, const char *rest)
{
	char want[256];
	snprintf(want, sizeof(want), "%s:%u: %s", tmp_path, line, rest);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "error '%s', expected '%s...'",
	              err, want);
}

START_TEST(test_defaults)
{
	ck_assert_double_eq(cfg.slow_request_threshold_ms, 1000);
	ck_assert_double_eq(cfg.slow_query_threshold_ms, 100);
	ck_assert_double_eq(cfg.aggregation_window_minutes, 60);
	ck_assert_uint_eq(cfg.n_ignored, 1);
	ck_assert_int_eq(cfg.ignored[0].is_regex, 0);
	ck_assert_str_eq(cfg.ignored[0].prefix, "/favicon.ico");
	ck_assert_int_eq(cfg.n_plus_one_threshold, 3);
	ck_assert_double_eq(cfg.regression_response_time_factor, 2.0);
	ck_assert_double_eq(cfg.regression_error_rate_delta, 0.1);
	ck_assert_int_eq(cfg.regression_min_requests, 20);
	ck_assert_str_eq(cfg.webhook_url, "");
	static const double b[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
	ck_assert_uint_eq(cfg.n_latency_buckets, sizeof(b) / sizeof(b[0]));
	for (size_t i = 0; i < cfg.n_latency_buckets; i++)
		ck_assert_double_eq(cfg.latency_buckets[i], b[i]);
	ck_assert_str_eq(cfg.metric_namespace, "");
	ck_assert_str_eq(cfg.routes, "");
	ck_assert_ptr_nonnull(cfg.route_set);
	ck_assert_int_eq(cfg.max_routes, 1000);
	ck_assert_int_eq(cfg.retention_days, 7);
	ck_assert_int_eq(cfg.max_stored_requests_per_second, 1000);
	ck_assert_str_eq(cfg.auth_token, "");
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	ck_assert_str_eq(cfg.host_name, host[0] ? host : "localhost");
	ck_assert_ptr_null(cfg.socket);
	ck_assert_str_eq(cfg.http, "127.0.0.1:9747");
	ck_assert_str_eq(cfg.db, "./apiprof.db");

	/* The empty default route set routes with the automatic rules. */
	char out[AP_ROUTE_MAX];
	ap_route_of(cfg.route_set, "/a/1", 4, out, sizeof(out));
	ck_assert_str_eq(out, "/a/{id}");
}
END_TEST

START_TEST(test_free_is_idempotent)
{
	struct ap_config z;
	memset(&z, 0, sizeof(z));
	ap_config_free(&z);
	ap_config_free(&z);
	ap_config_free(NULL);
	ap_config_free(&cfg);
	ap_config_free(&cfg); /* teardown frees a third time */
}
END_TEST

struct kv {
	const char *key, *value;
};

/* A metric_namespace of the longest length allowed (126). */
#define NS126 \
	"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn" \
	"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn" \
	"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"

static const struct kv good[] = {
	{ "slow_request_threshold_ms", "250" },
	{ "slow_request_threshold_ms", "0" },
	{ "slow_request_threshold_ms", "12.5" },
	{ "slow_query_threshold_ms", "0.5" },
	{ "slow_query_threshold_ms", "1e3" },
	{ "aggregation_window_minutes", "0.05" },
	{ "aggregation_window_minutes", "1440" },
	{ "ignored_paths", "" },
	{ "ignored_paths", "/healthz, /metrics,~^/static/.*\\.css$" },
	{ "ignored_paths", "~^/(api|v1)/[a-z]+/[0-9]+$,~^/static/.*\\.(css|js)$,~^/a{10}x?[]a]*$" },
	{ "n_plus_one_threshold", "2" },
	{ "n_plus_one_threshold", "+10" },
	{ "regression_response_time_factor", "1.01" },
	{ "regression_error_rate_delta", "0" },
	{ "regression_error_rate_delta", "1" },
	{ "regression_min_requests", "1" },
	{ "webhook_url", "" },
	{ "webhook_url", "https://hooks.slack.com/services/T0/B0/x#y" },
	{ "webhook_url", "http://127.0.0.1:8080/hook" },
	{ "latency_buckets", "0.1" },
	{ "latency_buckets", " 0.001 , 0.01,1e-1,1,100 " },
	{ "metric_namespace", "" },
	{ "metric_namespace", "myapp" },
	{ "metric_namespace", "_my_app_2" },
	{ "metric_namespace", NS126 },
	{ "routes", "" },
	{ "routes", "/api/users/{id}/posts, /v1/{x}" },
	{ "max_routes", "1" },
	{ "retention_days", "365" },
	{ "retention_days", "36500" },
	{ "max_stored_requests_per_second", "0" },
	{ "auth_token", "s3cr3t token" },
	{ "host_name", "web-01.example.com" },
	{ "socket", "/tmp/x.sock" },
	{ "http", "0.0.0.0:80" },
	{ "http", "localhost:65535" },
	{ "http", "[::1]:1" },
	{ "db", "postgresql://apiprof@db:5432/apiprof" },
	{ "db", "/var/lib/apiprof/apiprof.db" },
};

START_TEST(test_good_values)
{
	const struct kv *t = &good[_i];
	int rc = ap_config_set(&cfg, t->key, t->value, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s = '%s' rejected: %s", t->key, t->value, err);
}
END_TEST

static const struct kv bad[] = {
	{ "slow_request_threshold_ms", "" },
	{ "slow_request_threshold_ms", "abc" },
	{ "slow_request_threshold_ms", "10ms" },
	{ "slow_request_threshold_ms", "-1" },
	{ "slow_request_threshold_ms", " 5" },
	{ "slow_request_threshold_ms", "nan" },
	{ "slow_request_threshold_ms", "inf" },
	{ "slow_request_threshold_ms", "1e999" },
	{ "slow_query_threshold_ms", "-0.5" },
	{ "slow_query_threshold_ms", "1,5" },
	{ "aggregation_window_minutes", "0.049" },
	{ "aggregation_window_minutes", "0" },
	{ "aggregation_window_minutes", "1e12" },
	{ "ignored_paths", "favicon.ico" },
	{ "ignored_paths", "/a,,/b" },
	{ "ignored_paths", "/a," },
	{ "ignored_paths", "~" },
	{ "ignored_paths", "~(unclosed" },
	{ "ignored_paths", "/ok,~[z-a]" },
	/* Found by tests/fuzz/fuzz_config: regcomp() copies repeated atoms,
	 * so these asked for 2^60 and 99^4 nodes and ate all memory. */
	{ "ignored_paths", "~^/a++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++$" },
	{ "ignored_paths", "~((((a{99}){99}){99}){99})" },
	{ "ignored_paths", "~(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))" },
	{ "n_plus_one_threshold", "1" },
	{ "n_plus_one_threshold", "2.5" },
	{ "n_plus_one_threshold", "99999999999" },
	{ "n_plus_one_threshold", "3 4" },
	{ "regression_response_time_factor", "1" },
	{ "regression_response_time_factor", "0.5" },
	{ "regression_error_rate_delta", "-0.01" },
	{ "regression_error_rate_delta", "1.01" },
	{ "regression_min_requests", "0" },
	{ "regression_min_requests", "-3" },
	{ "webhook_url", "ftp://example.com/x" },
	{ "webhook_url", "file:///etc/passwd" },
	{ "webhook_url", "https://" },
	{ "webhook_url", "example.com/hook" },
	{ "webhook_url", "https://exa mple.com/" },
	{ "latency_buckets", "" },
	{ "latency_buckets", "0.1,0.1" },
	{ "latency_buckets", "0.2,0.1" },
	{ "latency_buckets", "0,1" },
	{ "latency_buckets", "-1,1" },
	{ "latency_buckets", "0.1,,1" },
	{ "latency_buckets", "0.1,x" },
	{ "latency_buckets", "0.1,inf" },
	{ "metric_namespace", "1app" },
	{ "metric_namespace", "my-app" },
	{ "metric_namespace", "my app" },
	/* Colons are for recording rules: promtool check metrics refuses them
	 * in an exporter's names (SPEC 6). */
	{ "metric_namespace", "my:app" },
	{ "metric_namespace", ":app" },
	/* The collector's /metrics gave nnn...napiprof_http_requests_total,
	 * its prefix cut at 127 bytes, without the underscore. */
	{ "metric_namespace", NS126 "n" },
	{ "routes", "api/users" },
	{ "routes", "/a/x{id}" },
	{ "routes", "/a,,/b" },
	{ "max_routes", "0" },
	{ "max_routes", "ten" },
	{ "retention_days", "0" },
	{ "retention_days", "7d" },
	{ "retention_days", "36501" },
	{ "retention_days", "2147483647" },
	{ "max_stored_requests_per_second", "-1" },
	{ "host_name", "" },
	{ "socket", "" },
	{ "socket", "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock" },
	{ "http", "" },
	{ "http", "9747" },
	{ "http", ":9747" },
	{ "http", "127.0.0.1:" },
	{ "http", "127.0.0.1:0" },
	{ "http", "127.0.0.1:65536" },
	{ "http", "127.0.0.1:http" },
	{ "http", "127.0.0.1:-80" },
	{ "http", "::1:9747" },
	{ "http", "local host:80" },
	{ "db", "" },
};

START_TEST(test_bad_values)
{
	const struct kv *t = &bad[_i];
	/* Snapshot the struct's bytes: a rejected value must change nothing. */
	struct ap_config before;
	memcpy(&before, &cfg, sizeof(cfg));
	int rc = ap_config_set(&cfg, t->key, t->value, err, sizeof(err));
	ck_assert_msg(rc == -EINVAL, "%s = '%s' gave %d", t->key, t->value, rc);
	char want[128];
	snprintf(want, sizeof(want), "%s: ", t->key);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "message '%s' lacks '%s'", err, want);
	ck_assert_int_eq(memcmp(&before, &cfg, sizeof(cfg)), 0);
}
END_TEST

START_TEST(test_set_values)
{
	ck_assert_int_eq(ap_config_set(&cfg, "slow_request_threshold_ms", "250.5", err, sizeof(err)), 0);
	ck_assert_double_eq(cfg.slow_request_threshold_ms, 250.5);
	ck_assert_int_eq(ap_config_set(&cfg, "aggregation_window_minutes", "0.05", err, sizeof(err)), 0);
	ck_assert_double_eq(cfg.aggregation_window_minutes, 0.05);
	ck_assert_int_eq(ap_config_set(&cfg, "n_plus_one_threshold", "5", err, sizeof(err)), 0);
	ck_assert_int_eq(cfg.n_plus_one_threshold, 5);
	ck_assert_int_eq(ap_config_set(&cfg, "max_stored_requests_per_second", "0", err, sizeof(err)), 0);
	ck_assert_int_eq(cfg.max_stored_requests_per_second, 0);
	ck_assert_int_eq(ap_config_set(&cfg, "metric_namespace", "shop", err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.metric_namespace, "shop");
	ck_assert_int_eq(ap_config_set(&cfg, "socket", "/tmp/a.sock", err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.socket, "/tmp/a.sock");
	ck_assert_int_eq(ap_config_set(&cfg, "latency_buckets", "0.5, 1, 2", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.n_latency_buckets, 3);
	ck_assert_double_eq(cfg.latency_buckets[0], 0.5);
	ck_assert_double_eq(cfg.latency_buckets[2], 2);

	/* routes keeps the text and compiles it. */
	ck_assert_int_eq(ap_config_set(&cfg, "routes", "/u/{user}", err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.routes, "/u/{user}");
	char out[AP_ROUTE_MAX];
	ap_route_of(cfg.route_set, "/u/bob", 6, out, sizeof(out));
	ck_assert_str_eq(out, "/u/{user}");
	/* A bad list keeps the compiled set and its text. */
	struct ap_route_set *prev = cfg.route_set;
	ck_assert_int_eq(ap_config_set(&cfg, "routes", "/ok,bad", err, sizeof(err)), -EINVAL);
	ck_assert_ptr_eq(cfg.route_set, prev);
	ck_assert_str_eq(cfg.routes, "/u/{user}");
	ck_assert_ptr_nonnull(strstr(err, "bad"));
	/* Back to empty: a set still exists. */
	ck_assert_int_eq(ap_config_set(&cfg, "routes", "", err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(cfg.route_set);
	ap_route_of(cfg.route_set, "/u/bob", 6, out, sizeof(out));
	ck_assert_str_eq(out, "/u/bob");
}
END_TEST

START_TEST(test_error_messages)
{
	ck_assert_int_eq(ap_config_set(&cfg, "max_routes", "abc", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "max_routes: expected a positive integer, got 'abc'");
	ck_assert_int_eq(ap_config_set(&cfg, "foo", "1", err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "unknown key 'foo'");
	/* Keys are case-sensitive. */
	ck_assert_int_eq(ap_config_set(&cfg, "Max_Routes", "1", err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(ap_config_set(&cfg, "ignored_paths", "~a(", err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "ignored_paths: bad regex 'a('"));
	/* Small and absent buffers are fine. */
	ck_assert_int_eq(ap_config_set(&cfg, "max_routes", "x", err, 5), -EINVAL);
	ck_assert_str_eq(err, "max_");
	ck_assert_int_eq(ap_config_set(&cfg, "max_routes", "x", NULL, 0), -EINVAL);
	ck_assert_int_eq(ap_config_set(&cfg, "max_routes", NULL, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(ap_config_set(&cfg, NULL, "1", err, sizeof(err)), -ENOENT);
}
END_TEST

START_TEST(test_bucket_limit)
{
	char list[AP_CONFIG_MAX_BUCKETS * 8 + 16] = "";
	for (int i = 1; i <= AP_CONFIG_MAX_BUCKETS; i++) {
		char one[16];
		snprintf(one, sizeof(one), "%s%d", i > 1 ? "," : "", i);
		strcat(list, one);
	}
	ck_assert_int_eq(ap_config_set(&cfg, "latency_buckets", list, err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.n_latency_buckets, AP_CONFIG_MAX_BUCKETS);
	ck_assert_double_eq(cfg.latency_buckets[AP_CONFIG_MAX_BUCKETS - 1], AP_CONFIG_MAX_BUCKETS);
	strcat(list, ",1000");
	ck_assert_int_eq(ap_config_set(&cfg, "latency_buckets", list, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "latency_buckets: at most"));
	ck_assert_uint_eq(cfg.n_latency_buckets, AP_CONFIG_MAX_BUCKETS);
}
END_TEST

START_TEST(test_load_file)
{
	int rc = load("# apiprof collector\n"
	              "\n"
	              "   \t\n"
	              "slow_request_threshold_ms = 500   # half a second\n"
	              "\tmax_routes=50\r\n"
	              "  # indented comment = ignored\n"
	              "webhook_url = https://example.com/hook#anchor\n"
	              "auth_token =   abc#def \n"
	              "routes = /a/{x}, /b/{y}\n"
	              "metric_namespace =\n"
	              "max_routes = 60\n"
	              "db = /tmp/x.db"); /* no final newline */
	ck_assert_msg(rc == 0, "load failed: %s", err);
	ck_assert_double_eq(cfg.slow_request_threshold_ms, 500);
	ck_assert_int_eq(cfg.max_routes, 60); /* the later line wins */
	ck_assert_str_eq(cfg.webhook_url, "https://example.com/hook#anchor");
	ck_assert_str_eq(cfg.auth_token, "abc#def");
	ck_assert_str_eq(cfg.routes, "/a/{x}, /b/{y}");
	ck_assert_str_eq(cfg.metric_namespace, "");
	ck_assert_str_eq(cfg.db, "/tmp/x.db");
	/* Untouched keys keep their defaults. */
	ck_assert_int_eq(cfg.retention_days, 7);
	ck_assert_str_eq(cfg.http, "127.0.0.1:9747");

	/* An empty file and a comment-only file are fine; a BOM is skipped. */
	ck_assert_int_eq(load(""), 0);
	ck_assert_int_eq(load("# nothing\n#\n"), 0);
	ck_assert_int_eq(load("\xEF\xBB\xBFretention_days = 3\n"), 0);
	ck_assert_int_eq(cfg.retention_days, 3);
}
END_TEST

START_TEST(test_load_errors)
{
	ck_assert_int_eq(load("max_routes = 10\n\nmax_routes = abc\nretention_days = 1\n"), -EINVAL);
	assert_err_at(3, "max_routes: expected a positive integer, got 'abc'");
	ck_assert_int_eq(cfg.max_routes, 10); /* the lines before the error applied */
	ck_assert_int_eq(cfg.retention_days, 7); /* the ones after it did not */

	ck_assert_int_eq(load("# c\nfoo = 1\n"), -ENOENT);
	assert_err_at(2, "unknown key 'foo'");

	ck_assert_int_eq(load("max_routes = 10\njust some words\n"), -EINVAL);
	assert_err_at(2, "expected 'key = value'");

	ck_assert_int_eq(load(" = 5\n"), -EINVAL);
	assert_err_at(1, "expected a key");

	/* A '#' glued to the value is not a comment, so this value is bad. */
	ck_assert_int_eq(load("\n\n\n\nretention_days = 7#days\n"), -EINVAL);
	assert_err_at(5, "retention_days: ");

	/* Whitespace in the key is not trimmed away inside it. */
	ck_assert_int_eq(load("max routes = 1\n"), -ENOENT);
	assert_err_at(1, "unknown key 'max routes'");

	ck_assert_int_eq(load("latency_buckets = 1, 0.5\n"), -EINVAL);
	assert_err_at(1, "latency_buckets: ");

	ck_assert_int_eq(load("ignored_paths = /x, ~(\n"), -EINVAL);
	assert_err_at(1, "ignored_paths: bad regex");

	ck_assert_int_eq(load("routes = /a/{b\n"), -EINVAL);
	assert_err_at(1, "routes: ");

	/* A NUL byte inside a line. */
	const char nul[] = "max_routes = 1\0 0\n";
	write_file("");
	FILE *f = fopen(tmp_path, "w");
	fwrite(nul, 1, sizeof(nul) - 1, f);
	fclose(f);
	ck_assert_int_eq(ap_config_load(&cfg, tmp_path, err, sizeof(err)), -EINVAL);
	assert_err_at(1, "NUL");
}
END_TEST

/* Files that are no configuration: a line past AP_CONFIG_MAX_LINE, a file
 * past AP_CONFIG_MAX_FILE, /dev/zero (one endless line). Each is refused
 * (-EFBIG, saying why) after reading at most the limit: getline() grew its
 * line without bound, and `--config /dev/zero` took GiBs within seconds.
 * The regular files come first, so that without the limits the test fails
 * on them before it reaches /dev/zero. */
START_TEST(test_load_limits)
{
	size_t big = AP_CONFIG_MAX_LINE + 10;
	char *text = malloc(big + 1);
	ck_assert_ptr_nonnull(text);
	memset(text, 'x', big);
	text[big] = '\0';
	ck_assert_int_eq(load(text), -EFBIG);
	assert_err_at(1, "line longer than 1048576 bytes");
	free(text);

	/* comment lines of 1 KiB, past 16 MiB in all */
	size_t line = 1024, lines = AP_CONFIG_MAX_FILE / line + 2;
	write_file("");
	FILE *f = fopen(tmp_path, "w");
	ck_assert_ptr_nonnull(f);
	char one[1024];
	memset(one, ' ', sizeof one);
	one[0] = '#';
	one[sizeof one - 1] = '\n';
	for (size_t i = 0; i < lines; i++)
		ck_assert_uint_eq(fwrite(one, 1, sizeof one, f), sizeof one);
	fclose(f);
	ck_assert_int_eq(ap_config_load(&cfg, tmp_path, err, sizeof(err)), -EFBIG);
	assert_err_at((unsigned)(AP_CONFIG_MAX_FILE / line + 1), "longer than 16777216 bytes");

	ck_assert_int_eq(ap_config_load(&cfg, "/dev/zero", err, sizeof(err)), -EFBIG);
	ck_assert_str_eq(err, "/dev/zero:1: line longer than 1048576 bytes: not a configuration file");
	ck_assert_int_eq(cfg.max_routes, 1000);
}
END_TEST

START_TEST(test_missing_file)
{
	const char *p = "/nonexistent/apiprof.conf";
	ck_assert_int_eq(ap_config_load(&cfg, p, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "/nonexistent/apiprof.conf: No such file or directory");
	/* A directory cannot be read as a file. */
	ck_assert_int_lt(ap_config_load(&cfg, "/", err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "/: "));
	ck_assert_int_eq(cfg.max_routes, 1000);
}
END_TEST

START_TEST(test_flags_override_file)
{
	ck_assert_int_eq(load("max_routes = 5\nhttp = 0.0.0.0:8000\n"), 0);
	/* The collector applies its flags afterwards through ap_config_set. */
	ck_assert_int_eq(ap_config_set(&cfg, "http", "127.0.0.1:9999", err, sizeof(err)), 0);
	ck_assert_int_eq(ap_config_set(&cfg, "db", "/tmp/flag.db", err, sizeof(err)), 0);
	ck_assert_str_eq(cfg.http, "127.0.0.1:9999");
	ck_assert_str_eq(cfg.db, "/tmp/flag.db");
	ck_assert_int_eq(cfg.max_routes, 5);
	/* and are validated identically. */
	ck_assert_int_eq(ap_config_set(&cfg, "http", "127.0.0.1:99999", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(cfg.http, "127.0.0.1:9999");
}
END_TEST

static int ignored(const char *path)
{
	return ap_config_path_ignored(&cfg, path, strlen(path));
}

START_TEST(test_ignored_paths)
{
	/* Default: /favicon.ico only. */
	ck_assert_int_eq(ignored("/favicon.ico"), 1);
	ck_assert_int_eq(ignored("/favicon.ico?v=2"), 1);
	ck_assert_int_eq(ignored("/favicon"), 0);
	ck_assert_int_eq(ignored("/"), 0);
	ck_assert_int_eq(ignored(""), 0);

	ck_assert_int_eq(ap_config_set(&cfg, "ignored_paths",
	                               " /healthz , ~^/static/.*\\.(css|js)$ ,~/internal/[0-9]+$",
	                               err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.n_ignored, 3);
	ck_assert_int_eq(cfg.ignored[1].is_regex, 1);
	ck_assert_int_eq(ignored("/healthz"), 1);
	ck_assert_int_eq(ignored("/healthz/ready"), 1); /* a prefix */
	ck_assert_int_eq(ignored("/health"), 0);
	ck_assert_int_eq(ignored("/api/healthz"), 0);
	ck_assert_int_eq(ignored("/favicon.ico"), 0); /* replaced, not added */
	ck_assert_int_eq(ignored("/static/app.css"), 1);
	ck_assert_int_eq(ignored("/static/app.css?v=3"), 1); /* '$' before the query */
	ck_assert_int_eq(ignored("/static/app.png"), 0);
	ck_assert_int_eq(ignored("/x/static/app.js"), 0);
	ck_assert_int_eq(ignored("/a/internal/42"), 1);
	ck_assert_int_eq(ignored("/a/internal/42/x"), 0);
	/* The query string is not matched against. */
	ck_assert_int_eq(ignored("/api?next=/healthz"), 0);
	ck_assert_int_eq(ignored("/api?f=/internal/1"), 0);
	/* The length is respected: no NUL needed after the path. */
	ck_assert_int_eq(ap_config_path_ignored(&cfg, "/healthzXYZ", 4), 0);
	ck_assert_int_eq(ap_config_path_ignored(&cfg, "/static/a.cssXYZ", 13), 1);

	/* An empty value ignores nothing. */
	ck_assert_int_eq(ap_config_set(&cfg, "ignored_paths", "", err, sizeof(err)), 0);
	ck_assert_uint_eq(cfg.n_ignored, 0);
	ck_assert_int_eq(ignored("/favicon.ico"), 0);
}
END_TEST

START_TEST(test_ignored_long_path)
{
	size_t n = 100000;
	char *p = malloc(n); /* not NUL-terminated on purpose */
	memcpy(p, "/long/", 6);
	memset(p + 6, 'x', n - 6);
	p[n - 1] = 'y';
	/* Only the first 2 KiB are matched: all x there, so the anchored
	 * regex matches although the whole path ends in 'y'. */
	ck_assert_int_eq(ap_config_set(&cfg, "ignored_paths", "~^/long/x+$", err, sizeof(err)), 0);
	ck_assert_int_eq(ap_config_path_ignored(&cfg, p, n), 1);
	p[100] = 'z';
	ck_assert_int_eq(ap_config_path_ignored(&cfg, p, n), 0);
	p[100] = 'x';

	ck_assert_int_eq(ap_config_set(&cfg, "ignored_paths", "~y", err, sizeof(err)), 0);
	ck_assert_int_eq(ap_config_path_ignored(&cfg, p, n), 0); /* 'y' past 2 KiB */
	p[2048] = 'y';
	ck_assert_int_eq(ap_config_path_ignored(&cfg, p, n), 0);
	p[2047] = 'y'; /* the last byte tested */
	ck_assert_int_eq(ap_config_path_ignored(&cfg, p, n), 1);
	/* Prefixes are compared on the whole path. */
	ck_assert_int_eq(ap_config_set(&cfg, "ignored_paths", "/long/", err, sizeof(err)), 0);
	ck_assert_int_eq(ap_config_path_ignored(&cfg, p, n), 1);
	free(p);
}
END_TEST

Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("values");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_free_is_idempotent);
	tcase_add_loop_test(tc, test_good_values, 0, (int)(sizeof(good) / sizeof(good[0])));
	tcase_add_loop_test(tc, test_bad_values, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_set_values);
	tcase_add_test(tc, test_error_messages);
	tcase_add_test(tc, test_bucket_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_load_file);
	tcase_add_test(tc, test_load_errors);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_load_limits);
	tcase_add_test(tc, test_flags_override_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("ignored");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ignored_paths);
	tcase_add_test(tc, test_ignored_long_path);
	suite_add_tcase(s, tc);
	return s;
}

#ifdef STANDALONE
int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif

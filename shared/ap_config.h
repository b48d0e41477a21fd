/*
 * ap_config.h - the collector's configuration (SPEC section 4).
 *
 * A config file is `key = value` lines; `#` starts a comment (whole line or
 * after whitespace), blank lines are ignored, whitespace around key and
 * value is trimmed. Unknown keys and bad values are errors naming the key
 * and the line ("FILE:LINE: key: message"). Command-line flags are applied
 * after the file through the same ap_config_set(), so a flag overrides the
 * file and is validated identically.
 *
 * Ownership: the struct owns every string and compiled object in it;
 * ap_config_free() releases them. Immutable (and so thread-safe to read)
 * once loading is done.
 */
#ifndef AP_CONFIG_H
#define AP_CONFIG_H

#include <stddef.h>
#include <regex.h>

#include "ap_route.h"

#define AP_CONFIG_MAX_BUCKETS 64
/* metric_namespace's longest value (the collector's prefix buffer). */
#define AP_CONFIG_MAX_NAMESPACE 126
/* retention_days at most (100 years): in nanoseconds it must fit an
 * int64 with room to subtract it from now. */
#define AP_CONFIG_MAX_RETENTION_DAYS 36500

struct ap_ignored {               /* one ignored_paths entry */
	char *prefix;                 /* set for a prefix entry */
	regex_t re;                   /* valid when is_regex (POSIX ERE) */
	int is_regex;
};

struct ap_config {
	double slow_request_threshold_ms;        /* 1000 */
	double slow_query_threshold_ms;          /* 100 */
	double aggregation_window_minutes;       /* 60, >= 0.05 */
	struct ap_ignored *ignored;              /* "/favicon.ico" */
	size_t n_ignored;
	int n_plus_one_threshold;                /* 3, >= 2 */
	double regression_response_time_factor;  /* 2.0, > 1 */
	double regression_error_rate_delta;      /* 0.1, in [0, 1] */
	int regression_min_requests;             /* 20, >= 1 */
	char *webhook_url;                       /* "" */
	double latency_buckets[AP_CONFIG_MAX_BUCKETS]; /* seconds, increasing */
	size_t n_latency_buckets;
	char *metric_namespace;                  /* "" or [a-zA-Z_][a-zA-Z0-9_]*, at most
	                                            AP_CONFIG_MAX_NAMESPACE bytes */
	char *routes;                            /* "" : the raw template list */
	struct ap_route_set *route_set;          /* compiled routes, never NULL */
	int max_routes;                          /* 1000, >= 1 */
	int retention_days;                      /* 7, 1..AP_CONFIG_MAX_RETENTION_DAYS */
	int max_stored_requests_per_second;      /* 1000, >= 0 */
	char *auth_token;                        /* "" */
	char *host_name;                         /* gethostname() */
	char *socket;                            /* NULL: choose the default */
	char *http;                              /* "127.0.0.1:9747" */
	char *db;                                /* "./apiprof.db" */
};

/* Fills defaults. Returns 0 or -ENOMEM. */
int ap_config_init(struct ap_config *c);
void ap_config_free(struct ap_config *c); /* safe on a zeroed struct */

/* Sets one key from its text value, replacing the previous value. Returns 0,
 * or -EINVAL with err filled ("key: why", e.g. "max_routes: expected a
 * positive integer, got 'abc'"), or -ENOENT for an unknown key ("unknown key
 * 'foo'"). On error the previous value is kept. */
int ap_config_set(struct ap_config *c, const char *key, const char *value,
                  char *err, size_t errlen);

/* Loads a file on top of the current values. Returns 0, or a negative errno
 * with err filled as "PATH:LINE: key: message" (or "PATH: strerror" when it
 * cannot be read). Stops at the first error. A line longer than
 * AP_CONFIG_MAX_LINE bytes, or a file longer than AP_CONFIG_MAX_FILE, is an
 * error (-EFBIG) read no further: `--config /dev/zero` must not take the
 * machine's memory. */
#define AP_CONFIG_MAX_LINE (1024 * 1024)
#define AP_CONFIG_MAX_FILE (16 * 1024 * 1024)
int ap_config_load(struct ap_config *c, const char *path, char *err, size_t errlen);

/* 1 when the path (up to `?`) matches an ignored_paths entry. */
int ap_config_path_ignored(const struct ap_config *c, const char *path, size_t len);

#endif /* AP_CONFIG_H */

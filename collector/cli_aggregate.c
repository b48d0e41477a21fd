/*
 * cli_aggregate.c - `apiprof aggregate [--url URL]` (SPEC section 7): asks
 * the collector to close every summary window that has ended
 * (POST /api/v1/aggregate) and prints what that wrote:
 *
 *   aggregated: 3 summaries, 1 regression
 *
 * Exit codes as the other subcommands: 0 ok, 2 usage, 3 the collector could
 * not be asked (unreachable, refused, or not a collector's answer), 1 when
 * the collector could not write the summaries.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli.h"

#define MAX_ANSWER (1u << 20)

struct buf {
	char *data;
	size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t k = size * n;
	if (b->len + k > MAX_ANSWER)
		return 0;
	char *d = realloc(b->data, b->len + k + 1);
	if (d == NULL)
		return 0;
	memcpy(d + b->len, p, k);
	b->data = d;
	b->len += k;
	d[b->len] = '\0';
	return k;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: apiprof aggregate [--url URL]\n"
	        "\n"
	        "Close every summary window of the collector that has ended (no grace\n"
	        "period), write its per-endpoint summaries and run regression detection,\n"
	        "as the collector does by itself a little after each window ends.\n"
	        "Running it again writes nothing twice.\n"
	        "\n"
	        "  --url URL   the collector (default $APIPROF_URL, else http://127.0.0.1:9747)\n");
}

int cli_aggregate(int argc, char **argv)
{
	const char *base = getenv("APIPROF_URL");
	if (!base || !*base)
		base = "http://127.0.0.1:9747";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--url") == 0 && i + 1 < argc) {
			base = argv[++i];
			continue;
		}
		if (strncmp(a, "--url=", 6) == 0) {
			base = a + 6;
			continue;
		}
		fprintf(stderr, "apiprof aggregate: %s '%s'\n",
		        strcmp(a, "--url") == 0 ? "missing value for" : cli_bad_arg_kind(a), a);
		usage(stderr);
		return 2;
	}
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	char *url = malloc(blen + 32);
	if (url == NULL)
		return 1;
	snprintf(url, blen + 32, "%.*s/api/v1/aggregate", (int)blen, base);

	int rc = 3;
	struct buf b = { NULL, 0 };
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	json_t *doc = NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *h = curl_easy_init();
	if (h == NULL) {
		fprintf(stderr, "apiprof: cannot initialise libcurl\n");
		rc = 1;
		goto out;
	}
	const char *token = getenv("APIPROF_TOKEN");
	if (token && *token) {
		size_t len = strlen(token) + 32;
		char *auth = malloc(len);
		if (auth) {
			snprintf(auth, len, "Authorization: Bearer %s", token);
			hdrs = curl_slist_append(hdrs, auth);
			free(auth);
		}
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "apiprof/" PACKAGE_VERSION);
	CURLcode res = curl_easy_perform(h);
	if (res != CURLE_OK) {
		fprintf(stderr, "apiprof: cannot reach the collector at %.*s: %s\n", (int)blen, base,
		        errbuf[0] ? errbuf : curl_easy_strerror(res));
		goto out;
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	doc = b.data ? json_loadb(b.data, b.len, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(doc, "error"));
	if (status == 401 || status == 403) {
		fprintf(stderr, "apiprof: the collector at %.*s refused the request (HTTP %ld): %s\n",
		        (int)blen, base, status, token && *token ? "is APIPROF_TOKEN its auth_token?"
		                                                : "set APIPROF_TOKEN to its auth_token");
		goto out;
	}
	if (status == 500) {
		fprintf(stderr, "apiprof aggregate: the collector failed: %s\n", msg ? msg : "HTTP 500");
		rc = 1;
		goto out;
	}
	json_t *ns = json_object_get(doc, "summaries"), *nr = json_object_get(doc, "regressions");
	if (status != 200 || !json_is_integer(ns) || !json_is_integer(nr)) {
		fprintf(stderr, "apiprof: %.*s answered HTTP %ld to POST /api/v1/aggregate%s%s\n",
		        (int)blen, base, status, msg ? ": " : " (is it an apiprof collector?)",
		        msg ? msg : "");
		goto out;
	}
	long long s = json_integer_value(ns), r = json_integer_value(nr);
	printf("aggregated: %lld summar%s, %lld regression%s\n", s, s == 1 ? "y" : "ies", r,
	       r == 1 ? "" : "s");
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	json_decref(doc);
	free(b.data);
	free(url);
	curl_slist_free_all(hdrs);
	if (h)
		curl_easy_cleanup(h);
	curl_global_cleanup();
	return rc;
}

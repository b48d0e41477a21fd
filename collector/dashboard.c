/*
 * dashboard.c - serves the embedded dashboard (dashboard.h).
 */
#include "config.h"
#include "dashboard.h"

#include <string.h>

const struct col_dash_asset *col_dashboard_find(const char *url)
{
	if (url == NULL)
		return NULL;
	if (strcmp(url, "/index.html") == 0)
		url = "/";
	for (const struct col_dash_asset *a = col_dash_assets; a->url; a++)
		if (strcmp(a->url, url) == 0)
			return a;
	return NULL;
}

/* 1 when the If-None-Match header lists etag (or is "*"). */
static int etag_matches(struct MHD_Connection *c, const char *etag)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	                                            MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (h == NULL)
		return 0;
	if (strcmp(h, "*") == 0)
		return 1;
	size_t n = strlen(etag);
	for (const char *p = strstr(h, etag); p; p = strstr(p + 1, etag)) {
		char after = p[n];
		if (after == '\0' || after == ',' || after == ' ')
			return 1;
	}
	return 0;
}

static void add_headers(struct MHD_Response *r, const struct col_dash_asset *a)
{
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
	MHD_add_response_header(r, "Content-Security-Policy", COL_DASH_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	/* Revalidate every time: a new collector binary brings a new page. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, a->etag);
}

enum MHD_Result col_dashboard_serve(struct MHD_Connection *c,
                                    const struct col_dash_asset *a, const char *method,
                                    int authorized)
{
	static const char not_allowed[] = "{\"error\":\"method not allowed\"}";
	struct MHD_Response *r;
	unsigned status;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		r = MHD_create_response_from_buffer(sizeof not_allowed - 1, (void *)not_allowed,
		                                    MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			return MHD_NO;
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (!authorized) {
		/* The page itself, as a 401: a browser renders it, and its
		 * script asks for the token (the files it loads are served
		 * without). No 304: a cached page must not pass for allowed. */
		r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			return MHD_NO;
		add_headers(r, a);
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
		status = MHD_HTTP_UNAUTHORIZED;
	} else if (etag_matches(c, a->etag)) {
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			return MHD_NO;
		add_headers(r, a);
		status = MHD_HTTP_NOT_MODIFIED;
	} else {
		r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			return MHD_NO;
		add_headers(r, a);
		status = MHD_HTTP_OK;
	}
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

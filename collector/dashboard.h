/*
 * dashboard.h - the HTML dashboard at GET / (SPEC section 5).
 *
 * The page, its stylesheet and its script live in collector/dashboard/ and
 * are compiled into the binary (collector/dashboard/embed.sh writes
 * dashboard_assets.c at build time): the page always matches the API of the
 * binary serving it, and nothing has to be installed or found at run time.
 *
 * A browser cannot send an Authorization header when it navigates to a
 * URL. So with an auth_token set, GET / without the token answers 401, as
 * every endpoint does (SPEC 5), but with the page as the body, which the
 * browser renders; the script and stylesheet it loads hold no data and
 * are served without the token. The script asks for the token and sends
 * it with every API call; the API itself stays closed without it.
 *
 * Every asset is sent with a Content-Security-Policy that allows scripts,
 * styles and connections from the collector itself only (no inline script
 * or style, no eval, no frames), X-Content-Type-Options: nosniff, and an
 * ETag; a matching If-None-Match gets 304.
 */
#ifndef COL_DASHBOARD_H
#define COL_DASHBOARD_H

#include <stddef.h>
#include <microhttpd.h>

/* One embedded file. The table col_dash_assets ends with a NULL url. */
struct col_dash_asset {
	const char *url;               /* "/", "/dashboard.js", ... */
	const char *type;              /* Content-Type */
	const unsigned char *data;     /* static; NUL-terminated for convenience */
	size_t len;                    /* bytes, without that NUL */
	const char *etag;              /* quoted, from the file's CRC and size */
};

extern const struct col_dash_asset col_dash_assets[];

/* The Content-Security-Policy sent with every asset. */
#define COL_DASH_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; " \
	"frame-ancestors 'none'"

/* The asset served at url (the path only, no query), or NULL. */
const struct col_dash_asset *col_dashboard_find(const char *url);

/* Queues the response for an asset: 200 (or 304) for GET and HEAD, 405
 * otherwise; with authorized 0, a GET or HEAD gets 401 and the asset
 * (the page, for a browser to render: it then asks for the token).
 * Thread-safe (the assets are read-only). */
enum MHD_Result col_dashboard_serve(struct MHD_Connection *c,
                                    const struct col_dash_asset *a, const char *method,
                                    int authorized);

#endif /* COL_DASHBOARD_H */

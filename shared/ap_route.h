/*
 * ap_route.h - turn a request path into a low-cardinality route (SPEC 4).
 *
 * The path is the request target up to `?` or `#`, not percent-decoded,
 * split on `/`; an empty last segment is kept (a trailing slash stays).
 * Configured templates win: a template matches a path with the same number
 * of segments whose literal segments are equal and whose `{name}` segments
 * are any non-empty segment; the route is then the template text itself,
 * and the first matching template in configuration order wins. Otherwise a
 * segment becomes `{id}` when it is all digits, a UUID (8-4-4-4-12 hex), hex
 * of 12 or more characters, or 16 or more characters of [A-Za-z0-9_-]
 * containing a digit; other segments stay as they are.
 *
 * The max_routes cap is not applied here (it needs per-service state): the
 * collector maps routes beyond it to AP_ROUTE_OTHER.
 */
#ifndef AP_ROUTE_H
#define AP_ROUTE_H

#include <stddef.h>

#define AP_ROUTE_OTHER "{other}"
#define AP_ROUTE_MAX 512 /* longest route produced, incl. the NUL */

struct ap_route_set; /* compiled configured templates; immutable once built */

/* Compiles a comma-separated list of templates (whitespace around entries is
 * ignored; empty spec gives an empty set). Each must start with `/`; `{...}`
 * must span a whole segment. Returns NULL and fills err on a bad template
 * (or NULL on out-of-memory with err "out of memory"). Caller frees with
 * ap_route_set_free(). Thread-safe to use concurrently once built. */
struct ap_route_set *ap_route_set_new(const char *spec, char *err, size_t errlen);
void ap_route_set_free(struct ap_route_set *set); /* NULL is a no-op */

/* Writes the route of path[0..len) into out as a NUL-terminated string and
 * returns its length; set may be NULL (no templates). When the route would
 * not fit in outlen it is cut at a segment boundary that fits and the
 * return value is still its (cut) length. */
size_t ap_route_of(const struct ap_route_set *set, const char *path, size_t len,
                   char *out, size_t outlen);

/* 1 when segment s[0..len) would become {id} by the automatic rules. */
int ap_route_segment_is_id(const char *s, size_t len);

#endif /* AP_ROUTE_H */

/*
 * fcgiconn.c - one FastCGI connection (php-fpm's workers): from its
 * records to request events.
 *
 * conn.c hands an accepted connection over here when its first bytes are
 * a FastCGI BEGIN_REQUEST record (no HTTP request begins with byte 1).
 * Both directions go through shared/fcgi.c; a request whose params named
 * its method and target becomes a struct pl_pending, as an HTTP/1 request
 * does, and conn.c's pl_request_end() sends its event:
 *
 *   start      the read that completed its BEGIN_REQUEST record's header
 *   method     REQUEST_METHOD; path: REQUEST_URI, else SCRIPT_NAME and
 *              PATH_INFO, query string dropped as for HTTP
 *   status     the CGI head's Status:, else 302 with a Location:, else 200
 *   bytes_in   FCGI_STDIN content (the request body); bytes_out: FCGI_STDOUT
 *              content after the CGI head (the response body)
 *   end        the write that finished its END_REQUEST record; aborted
 *              when the client sent ABORT_REQUEST, or when the connection
 *              ends before END_REQUEST
 *
 * The request is in flight on the thread that read its params from then
 * to its END_REQUEST: php-fpm runs the script in between, on that thread,
 * so its SQL is the request's.
 *
 * The state lives inside the connection record (struct pl_fcgi, pl.h): no
 * memory of its own. All under the connection's lock.
 */
#include "config.h"
#include "pl.h"

#include <string.h>

_Static_assert(AP_FCGI_METHOD_MAX == AP_HTTP_METHOD_MAX,
               "pl_request_open() reads a method array of AP_HTTP_METHOD_MAX bytes");
_Static_assert(AP_FCGI_TARGET_MAX >= AP_HTTP_TARGET_MAX,
               "pl_request_open() reads a target array of AP_HTTP_TARGET_MAX bytes");
_Static_assert(AP_FCGI_ERRBODY_MAX <= AP_HTTP_ERRBODY_MAX, "pl_request_end()'s body bound");

void pl_fcgi_init(struct pl_fcgi *f)
{
	ap_fcgi_init(&f->p);
	f->open = 0;
	f->aborted = 0;
	f->begin_ns = 0;
}

/* Its params are read: the request starts (or is not recorded, when they
 * gave no method or target). */
static void request_opens(struct pl_fcgi *f, int fd)
{
	const struct ap_fcgi *p = &f->p;
	if (p->method_len == 0 || p->target_len == 0) {
		pl_debug("fd %d: FastCGI request with no REQUEST_METHOD or target; not recorded", fd);
		return;
	}
	pl_request_open(&f->r, fd, p->method, p->method_len, p->target, p->target_len,
	                p->target_truncated);
	f->r.start_ns = f->begin_ns;
	f->r.bytes_in = 0;
	f->r.bytes_out = 0;
	f->open = 1;
	if (p->profile)
		f->r.flags |= AP_REQF_PROFILE;
	if (pl_prof_want(p->profile))
		f->r.prof = (uint8_t)pl_prof_begin(f->r.id, p->profile, f->r.method, f->r.method_len,
		                                   f->r.path, f->r.path_len);
}

/* The request in progress ends at end_ns (extra: AP_REQF_ABORTED or 0). */
static void request_ends(struct pl_fcgi *f, uint64_t end_ns, uint16_t extra)
{
	const struct ap_fcgi *p = &f->p;
	f->open = 0;
	f->r.bytes_in = p->bytes_in;
	f->r.bytes_out = p->bytes_out;
	if (f->aborted)
		extra |= AP_REQF_ABORTED;
	pl_request_end(&f->r, end_ns, extra, p->errbody, p->errbody_len);
}

int pl_fcgi_read(struct pl_fcgi *f, int fd, const uint8_t *p, size_t n)
{
	while (n) {
		enum ap_fcgi_ev ev;
		size_t used = ap_fcgi_feed_in(&f->p, p, n, &ev);
		p += used;
		n -= used;
		switch (ev) {
		case AP_FCGI_BEGIN:
			f->begin_ns = pl_now_ns();
			f->aborted = 0;
			break;
		case AP_FCGI_PARAMS_DONE:
			request_opens(f, fd);
			break;
		case AP_FCGI_ABORT:
			f->aborted = 1;
			break;
		case AP_FCGI_ERROR:
			pl_debug("fd %d: not FastCGI we follow (malformed, multiplexed or not a "
			         "responder); no longer followed", fd);
			return -1;
		default:
			break;
		}
	}
	return 0;
}

int pl_fcgi_write(struct pl_fcgi *f, const uint8_t *p, size_t n)
{
	while (n) {
		enum ap_fcgi_ev ev;
		size_t used = ap_fcgi_feed_out(&f->p, p, n, &ev);
		p += used;
		n -= used;
		if (ev == AP_FCGI_HEAD_DONE && f->open) {
			f->r.status = f->p.status;
		} else if (ev == AP_FCGI_END && f->open) {
			f->r.status = f->p.status;
			request_ends(f, pl_now_ns(), 0);
		} else if (ev == AP_FCGI_ERROR) {
			pl_debug("FastCGI response not followed; connection no longer followed");
			return -1;
		}
	}
	return 0;
}

void pl_fcgi_finish(struct pl_fcgi *f, int shared)
{
	if (!f->open)
		return;
	if (shared) {
		/* another process owns it since a fork: nothing recorded here */
		f->open = 0;
		return;
	}
	/* a status its head gave already stays the request's (HEAD_DONE), as
	 * for HTTP */
	request_ends(f, pl_now_ns(), AP_REQF_ABORTED);
}

void pl_fcgi_drop(struct pl_fcgi *f)
{
	if (f->open && f->r.prof)
		pl_prof_end(f->r.prof, f->r.id);
	f->open = 0;
}

int pl_fcgi_in_flight(const struct pl_fcgi *f, uint64_t id)
{
	return f->open && f->r.id == id;
}

const struct pl_pending *pl_fcgi_pending(const struct pl_fcgi *f, uint64_t id)
{
	return f->open && f->r.id == id ? &f->r : NULL;
}

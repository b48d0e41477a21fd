/*
 * fcgi.c - FastCGI record framing and the parts of a request the profiler
 * keeps (see ap_fcgi.h for the contract).
 *
 * Each direction is a record framer (header, content, padding) feeding
 * per-type content handlers: FCGI_PARAMS into the name-value pair parser,
 * FCGI_STDIN into a count, FCGI_STDOUT into the CGI head parser and then a
 * count. Integers on the wire are read byte by byte, big-endian.
 */
#include "config.h"
#include "ap_fcgi.h"

#include <string.h>

enum { DIR_HDR = 0, DIR_CONTENT, DIR_PAD };

/* What the next FCGI_PARAMS byte is. */
enum { PS_NLEN = 0, PS_VLEN, PS_NAME, PS_VALUE };

/* Where a value goes. */
enum { SLOT_SKIP = 0, SLOT_METHOD, SLOT_URI, SLOT_SCRIPT, SLOT_PINFO, SLOT_PROFILE };

/* Where in the CGI head. */
enum { HS_LSTART = 0, HS_CR, HS_NAME, HS_VALUE, HS_BODY };
enum { HK_NONE = 0, HK_STATUS, HK_LOCATION };

void ap_fcgi_init(struct ap_fcgi *p)
{
	memset(p, 0, sizeof *p);
}

/* A new request's per-request state (BEGIN_REQUEST). */
static void request_reset(struct ap_fcgi *p)
{
	p->keep_conn = p->profile = 0;
	p->status = 0;
	p->method_len = 0;
	p->target_truncated = 0;
	p->target_len = 0;
	p->errbody_len = 0;
	p->bytes_in = p->bytes_out = 0;
	p->params_done = p->have_uri = 0;
	p->ps = PS_NLEN;
	p->plen_n = 0;
	p->slot = SLOT_SKIP;
	p->method_over = 0;
	p->script_len = p->pinfo_len = 0;
	p->parts_cut = 0;
	p->prof_val[0] = p->prof_val[1] = 0;
	p->hs = HS_LSTART;
	p->hname_n = 0;
	p->hkind = HK_NONE;
	p->st_digits = 0;
	p->st_val = 0;
	p->location = 0;
}

uint16_t ap_fcgi_status(const struct ap_fcgi *p)
{
	if (p->st_digits == 3 && p->st_val >= 100)
		return p->st_val;
	return p->location ? 302 : 200;
}

/* ---- FCGI_PARAMS ---- */

static int name_is(const struct ap_fcgi *p, const char *want)
{
	size_t n = strlen(want);
	return p->nlen == n && memcmp(p->name, want, n) == 0;
}

/* The current pair's name is read: choose where its value goes. Only
 * the wanted names get a slot; every other value is skipped unread. */
static void name_done(struct ap_fcgi *p)
{
	p->slot = SLOT_SKIP;
	if (p->nlen > AP_FCGI_NAME_KEEP)
		return;
	if (name_is(p, "REQUEST_METHOD")) {
		p->slot = SLOT_METHOD;
		p->method_len = 0;
		p->method_over = 0;
	} else if (name_is(p, "REQUEST_URI")) {
		p->slot = SLOT_URI;
		p->have_uri = 1;
		p->target_len = 0;
		p->target_truncated = 0;
	} else if (name_is(p, "SCRIPT_NAME")) {
		p->slot = SLOT_SCRIPT;
		p->script_len = 0;
	} else if (name_is(p, "PATH_INFO")) {
		p->slot = SLOT_PINFO;
		p->pinfo_len = 0;
	} else if (name_is(p, "HTTP_X_APIPROF_PROFILE")) {
		p->slot = SLOT_PROFILE;
	}
}

/* The current pair's value is read whole. */
static void value_done(struct ap_fcgi *p)
{
	if (p->slot == SLOT_PROFILE)
		p->profile = p->vlen == 1 && p->prof_val[0] == '1';
	p->slot = SLOT_SKIP;
	p->ps = PS_NLEN;
}

/* Appends b[0..n) to dst (cap bytes, *len used); 1 when some did not fit. */
static int keep(char *dst, size_t cap, uint16_t *len, const uint8_t *b, size_t n)
{
	size_t room = cap - *len;
	size_t take = n < room ? n : room;
	memcpy(dst + *len, b, take);
	*len = (uint16_t)(*len + take);
	return take < n;
}

static void value_bytes(struct ap_fcgi *p, const uint8_t *b, size_t n)
{
	uint16_t l;
	switch (p->slot) {
	case SLOT_METHOD:
		l = p->method_len;
		if (keep(p->method, AP_FCGI_METHOD_MAX - 1, &l, b, n))
			p->method_over = 1;
		p->method_len = (uint8_t)l;
		break;
	case SLOT_URI:
		if (keep(p->target, AP_FCGI_TARGET_MAX, &p->target_len, b, n))
			p->target_truncated = 1;
		break;
	case SLOT_SCRIPT:
		p->parts_cut |= (uint8_t)keep(p->script, AP_FCGI_PART_MAX, &p->script_len, b, n);
		break;
	case SLOT_PINFO:
		p->parts_cut |= (uint8_t)keep(p->pinfo, AP_FCGI_PART_MAX, &p->pinfo_len, b, n);
		break;
	case SLOT_PROFILE:
		for (size_t i = 0; i < n && p->got + i < sizeof p->prof_val; i++)
			p->prof_val[p->got + i] = b[i];
		break;
	default:
		break;
	}
}

/* After a length: pairs whose name or value is empty complete without
 * another byte. */
static void pair_settle(struct ap_fcgi *p)
{
	if (p->ps == PS_NAME && p->got == p->nlen) {
		name_done(p);
		p->ps = PS_VALUE;
		p->got = 0;
	}
	if (p->ps == PS_VALUE && p->got == p->vlen)
		value_done(p);
}

/* FCGI_PARAMS content b[0..n): the name-value pair stream, which runs on
 * across records. */
static void params_feed(struct ap_fcgi *p, const uint8_t *b, size_t n)
{
	while (n) {
		if (p->ps == PS_NLEN || p->ps == PS_VLEN) {
			uint8_t c = *b++;
			n--;
			uint32_t len;
			if (p->plen_n == 0 && !(c & 0x80)) {
				len = c;
			} else {
				p->plen = p->plen_n == 0 ? (uint32_t)(c & 0x7f) : p->plen << 8 | c;
				if (++p->plen_n < 4)
					continue;
				p->plen_n = 0;
				len = p->plen;
			}
			if (p->ps == PS_NLEN) {
				p->nlen = len;
				p->ps = PS_VLEN;
			} else {
				p->vlen = len;
				p->got = 0;
				p->ps = PS_NAME;
				pair_settle(p);
			}
			continue;
		}
		uint32_t want = (p->ps == PS_NAME ? p->nlen : p->vlen) - p->got;
		size_t take = n < want ? n : want;
		if (p->ps == PS_NAME) {
			for (size_t i = 0; i < take && p->got + i < AP_FCGI_NAME_KEEP; i++)
				p->name[p->got + i] = (char)b[i];
		} else {
			value_bytes(p, b, take);
		}
		p->got += (uint32_t)take;
		b += take;
		n -= take;
		pair_settle(p);
	}
}

/* The params ended: the target is REQUEST_URI, else SCRIPT_NAME and
 * PATH_INFO. 0, or -1 when they ended inside a pair. */
static int params_end(struct ap_fcgi *p)
{
	if (p->ps != PS_NLEN || p->plen_n != 0)
		return -1;
	p->params_done = 1;
	if (p->method_over)
		p->method_len = 0;
	if (!p->have_uri) {
		p->target_len = 0;
		p->target_truncated = p->parts_cut;
		if (keep(p->target, AP_FCGI_TARGET_MAX, &p->target_len, (const uint8_t *)p->script,
		         p->script_len) ||
		    keep(p->target, AP_FCGI_TARGET_MAX, &p->target_len, (const uint8_t *)p->pinfo,
		         p->pinfo_len))
			p->target_truncated = 1;
	}
	return 0;
}

/* ---- the CGI head on FCGI_STDOUT ---- */

static void head_match(struct ap_fcgi *p)
{
	p->hkind = HK_NONE;
	if (p->hname_n == 6 && memcmp(p->hname, "status", 6) == 0)
		p->hkind = HK_STATUS;
	else if (p->hname_n == 8 && memcmp(p->hname, "location", 8) == 0)
		p->hkind = HK_LOCATION;
	if (p->hkind == HK_LOCATION)
		p->location = 1;
	if (p->hkind == HK_STATUS) {
		p->st_digits = 0;
		p->st_val = 0;
	}
}

/* Head bytes of b[0..n), up to the end of the head; returns how many were
 * consumed, and 1 in *done when the head ended there. Header values are
 * looked at as they pass, never kept. */
static size_t head_feed(struct ap_fcgi *p, const uint8_t *b, size_t n, int *done)
{
	*done = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = b[i];
		switch (p->hs) {
		case HS_LSTART:
			if (c == '\n') {
				*done = 1;
				return i + 1;
			}
			if (c == '\r') {
				p->hs = HS_CR;
				break;
			}
			p->hs = HS_NAME;
			p->hname_n = 0;
			/* fall through */
		case HS_NAME:
			if (c == ':') {
				head_match(p);
				p->hs = HS_VALUE;
			} else if (c == '\n') {
				p->hs = HS_LSTART; /* a line with no colon: ignored */
			} else if (p->hname_n < sizeof p->hname) {
				p->hname[p->hname_n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			}
			break;
		case HS_CR:
			if (c == '\n') {
				*done = 1;
				return i + 1;
			}
			p->hs = HS_VALUE; /* a stray CR: the rest of the line is ignored */
			p->hkind = HK_NONE;
			break;
		case HS_VALUE:
			if (c == '\n') {
				p->hs = HS_LSTART;
			} else if (p->hkind == HK_STATUS) {
				if ((c == ' ' || c == '\t') && p->st_digits == 0)
					break;
				if (c >= '0' && c <= '9' && p->st_digits < 3) {
					p->st_val = (uint16_t)(p->st_val * 10 + (c - '0'));
					p->st_digits++;
				} else if (c >= '0' && c <= '9') {
					p->st_digits = 4; /* too many digits: no status */
				} else if (p->st_digits < 3) {
					p->st_digits = 4; /* not a number */
				} else {
					p->hkind = HK_NONE; /* the reason phrase */
				}
			}
			break;
		default:
			break;
		}
	}
	return n;
}

/* STDOUT content b[0..n) of the request in progress. Returns how many
 * were consumed: all, or up to the head's end (*ev HEAD_DONE). */
static size_t stdout_feed(struct ap_fcgi *p, const uint8_t *b, size_t n, enum ap_fcgi_ev *ev)
{
	if (p->hs != HS_BODY) {
		int done;
		size_t used = head_feed(p, b, n, &done);
		if (done) {
			p->hs = HS_BODY;
			p->status = ap_fcgi_status(p);
			*ev = AP_FCGI_HEAD_DONE;
		}
		return used;
	}
	if (p->errbody_len < AP_FCGI_ERRBODY_MAX)
		keep(p->errbody, AP_FCGI_ERRBODY_MAX, &p->errbody_len, b, n);
	p->bytes_out += n;
	return n;
}

/* ---- record framing ---- */

static size_t fail(struct ap_fcgi *p, enum ap_fcgi_ev *ev)
{
	p->error = 1;
	*ev = AP_FCGI_ERROR;
	return 0;
}

/* A record's header is complete in d->hdr: check it against the request
 * in progress. `in`: the client's direction. 0, or -1: not followed. */
static int record_begins(struct ap_fcgi *p, struct ap_fcgi_dir *d, int in, enum ap_fcgi_ev *ev)
{
	const uint8_t *h = d->hdr;
	uint8_t type = h[1];
	uint16_t id = (uint16_t)(h[2] << 8 | h[3]);
	if (h[0] != AP_FCGI_VERSION || type < AP_FCGI_BEGIN_REQUEST || type > AP_FCGI_UNKNOWN_TYPE)
		return -1;
	d->type = type;
	d->left = (uint16_t)(h[4] << 8 | h[5]);
	d->pad = h[6];
	d->small_n = 0;
	d->ours = 0;
	if (id == 0)
		return 0; /* management (GET_VALUES): skipped */
	int client_type = type == AP_FCGI_BEGIN_REQUEST || type == AP_FCGI_ABORT_REQUEST ||
	                  type == AP_FCGI_PARAMS || type == AP_FCGI_STDIN || type == AP_FCGI_DATA;
	int server_type = type == AP_FCGI_END_REQUEST || type == AP_FCGI_STDOUT ||
	                  type == AP_FCGI_STDERR;
	if (in ? !client_type : !server_type)
		return -1;
	if (type == AP_FCGI_BEGIN_REQUEST) {
		/* a second request at once: multiplexing */
		if (p->active || d->left != 8)
			return -1;
		request_reset(p);
		p->active = 1;
		p->req_id = id;
		d->ours = 1;
		*ev = AP_FCGI_BEGIN;
		return 0;
	}
	if (id != p->req_id)
		return -1; /* another request's: multiplexing */
	if (!p->active) {
		/* The ended request's: its body's rest, which the server may
		 * read after answering; nothing more of it is recorded. */
		return in ? 0 : -1;
	}
	d->ours = 1;
	if (type == AP_FCGI_END_REQUEST && d->left != 8)
		return -1;
	if (type == AP_FCGI_PARAMS && d->left == 0) {
		if (p->params_done || params_end(p) != 0)
			return -1;
		*ev = AP_FCGI_PARAMS_DONE;
	} else if (type == AP_FCGI_PARAMS && p->params_done) {
		return -1;
	}
	return 0;
}

/* The current record's content is complete (d->left reached 0, the
 * padding may follow). */
static int record_ends(struct ap_fcgi *p, struct ap_fcgi_dir *d, enum ap_fcgi_ev *ev)
{
	if (!d->ours)
		return 0;
	switch (d->type) {
	case AP_FCGI_BEGIN_REQUEST: {
		unsigned role = (unsigned)d->small[0] << 8 | d->small[1];
		if (role != AP_FCGI_RESPONDER)
			return -1;
		p->keep_conn = d->small[2] & AP_FCGI_KEEP_CONN;
		break;
	}
	case AP_FCGI_ABORT_REQUEST:
		*ev = AP_FCGI_ABORT;
		break;
	case AP_FCGI_END_REQUEST:
		p->active = 0;
		if (p->hs != HS_BODY)
			p->status = ap_fcgi_status(p);
		*ev = AP_FCGI_END;
		break;
	default:
		break;
	}
	return 0;
}

/* Content bytes b[0..n) of the current record (n <= d->left); returns how
 * many were consumed (fewer at a HEAD_DONE). */
static size_t content(struct ap_fcgi *p, struct ap_fcgi_dir *d, const uint8_t *b, size_t n,
                      enum ap_fcgi_ev *ev)
{
	if (!d->ours)
		return n;
	switch (d->type) {
	case AP_FCGI_BEGIN_REQUEST:
	case AP_FCGI_END_REQUEST:
		for (size_t i = 0; i < n && d->small_n < sizeof d->small; i++)
			d->small[d->small_n++] = b[i];
		return n;
	case AP_FCGI_PARAMS:
		params_feed(p, b, n);
		return n;
	case AP_FCGI_STDIN:
		p->bytes_in += n;
		return n;
	case AP_FCGI_STDOUT:
		return stdout_feed(p, b, n, ev);
	default:
		return n;
	}
}

/* The record's content is all read: record_ends(), whose event (if any:
 * a head ending the content has its END_REQUEST later) replaces *ev, then
 * its padding or the next header. 0, or -1 for the caller to fail(). */
static int content_done(struct ap_fcgi *p, struct ap_fcgi_dir *d, enum ap_fcgi_ev *ev)
{
	enum ap_fcgi_ev ev2 = AP_FCGI_NEED_MORE;
	if (record_ends(p, d, &ev2) != 0)
		return -1;
	if (ev2 != AP_FCGI_NEED_MORE)
		*ev = ev2;
	d->state = d->pad ? DIR_PAD : DIR_HDR;
	return 0;
}

static size_t feed(struct ap_fcgi *p, struct ap_fcgi_dir *d, int in, const uint8_t *buf,
                   size_t len, enum ap_fcgi_ev *ev)
{
	*ev = AP_FCGI_NEED_MORE;
	if (p->error)
		return fail(p, ev);
	size_t i = 0;
	while (i < len) {
		if (d->state == DIR_HDR) {
			size_t take = AP_FCGI_HEADER_LEN - d->hlen;
			if (take > len - i)
				take = len - i;
			memcpy(d->hdr + d->hlen, buf + i, take);
			d->hlen = (uint8_t)(d->hlen + take);
			i += take;
			if (d->hlen < AP_FCGI_HEADER_LEN)
				break;
			d->hlen = 0;
			if (record_begins(p, d, in, ev) != 0)
				return fail(p, ev);
			d->state = DIR_CONTENT;
			/* an empty record (a stream's end) is whole already */
			if (d->left == 0 && content_done(p, d, ev) != 0)
				return fail(p, ev);
			if (*ev != AP_FCGI_NEED_MORE)
				return i;
			continue;
		}
		if (d->state == DIR_CONTENT) {
			size_t n = len - i < d->left ? len - i : d->left;
			size_t used = content(p, d, buf + i, n, ev);
			d->left = (uint16_t)(d->left - used);
			i += used;
			if (d->left == 0 && content_done(p, d, ev) != 0)
				return fail(p, ev);
			if (*ev != AP_FCGI_NEED_MORE)
				return i;
			continue;
		}
		/* DIR_PAD */
		size_t n = len - i < d->pad ? len - i : d->pad;
		d->pad = (uint8_t)(d->pad - n);
		i += n;
		if (d->pad == 0)
			d->state = DIR_HDR;
	}
	return i;
}

size_t ap_fcgi_feed_in(struct ap_fcgi *p, const uint8_t *buf, size_t len, enum ap_fcgi_ev *ev)
{
	return feed(p, &p->in, 1, buf, len, ev);
}

size_t ap_fcgi_feed_out(struct ap_fcgi *p, const uint8_t *buf, size_t len, enum ap_fcgi_ev *ev)
{
	return feed(p, &p->out, 0, buf, len, ev);
}

/*
 * crash_wire.c - encode and decode the CRASH record (ap_crash.h). Kept out
 * of wire.c, whose encoders sit on the hot path of every request; the same
 * byte-by-byte little-endian rules apply.
 */
#include "config.h"
#include "ap_crash.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

struct cw {
	uint8_t *p;
	size_t cap, off;
	int bad;
};

static void cw_bytes(struct cw *w, const void *src, size_t n)
{
	if (w->bad || n > w->cap - w->off) {
		w->bad = 1;
		return;
	}
	if (n > 0)
		memcpy(w->p + w->off, src, n);
	w->off += n;
}

static void cw_uint(struct cw *w, uint64_t v, unsigned nbytes)
{
	uint8_t b[8];
	for (unsigned i = 0; i < nbytes; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	cw_bytes(w, b, nbytes);
}

static void cw_str(struct cw *w, struct ap_str s)
{
	cw_uint(w, s.len, 2);
	cw_bytes(w, s.p, s.len);
}

size_t ap_wire_put_crash(uint8_t *out, size_t cap, const struct ap_rec_crash *r)
{
	struct cw w = { out, cap, 0, 0 };
	if (r->nregs > AP_CRASH_MAX_REGS || r->nframes > AP_CRASH_MAX_FRAMES ||
	    r->nmods > AP_CRASH_MAX_MODULES)
		return 0;
	cw_uint(&w, AP_REC_CRASH, 2);
	cw_uint(&w, 0, 2);
	size_t len_at = w.off;
	cw_uint(&w, 0, 4);
	cw_uint(&w, r->signo, 4);
	cw_uint(&w, (uint32_t)r->code, 4);
	cw_uint(&w, r->tid, 4);
	cw_uint(&w, r->time_ns, 8);
	cw_uint(&w, r->fault_addr, 8);
	cw_uint(&w, r->req_id, 8);
	cw_str(&w, r->service);
	cw_str(&w, r->method);
	cw_str(&w, r->path);
	cw_uint(&w, r->nregs, 2);
	for (unsigned i = 0; i < r->nregs; i++)
		cw_uint(&w, r->regs[i], 8);
	cw_uint(&w, r->nframes, 2);
	for (unsigned i = 0; i < r->nframes; i++)
		cw_uint(&w, r->frames[i], 8);
	cw_uint(&w, r->nmods, 2);
	for (unsigned i = 0; i < r->nmods; i++) {
		cw_uint(&w, r->mods[i].base, 8);
		cw_uint(&w, r->mods[i].text_start, 8);
		cw_uint(&w, r->mods[i].text_end, 8);
		cw_str(&w, r->mods[i].path);
	}
	cw_uint(&w, r->stack_addr, 8);
	cw_uint(&w, r->stack_len, 4);
	cw_bytes(&w, r->stack, r->stack_len);
	if (w.bad)
		return 0;
	uint32_t plen = (uint32_t)(w.off - len_at - 4);
	for (unsigned i = 0; i < 4; i++)
		out[len_at + i] = (uint8_t)(plen >> (8 * i));
	return w.off;
}

struct cr {
	const uint8_t *p;
	size_t len, off;
	int bad;
};

static uint64_t cr_uint(struct cr *r, unsigned nbytes)
{
	if (r->bad || nbytes > r->len - r->off) {
		r->bad = 1;
		return 0;
	}
	uint64_t v = 0;
	for (unsigned i = 0; i < nbytes; i++)
		v |= (uint64_t)r->p[r->off + i] << (8 * i);
	r->off += nbytes;
	return v;
}

static struct ap_str cr_str(struct cr *r)
{
	struct ap_str s = { "", 0 };
	uint16_t n = (uint16_t)cr_uint(r, 2);
	if (r->bad || n > r->len - r->off) {
		r->bad = 1;
		return s;
	}
	s.p = (const char *)r->p + r->off;
	s.len = n;
	r->off += n;
	return s;
}

int ap_wire_get_crash(const uint8_t *p, uint32_t len, struct ap_rec_crash *c)
{
	struct cr r = { p, len, 0, 0 };
	memset(c, 0, sizeof *c);
	c->signo = (uint32_t)cr_uint(&r, 4);
	c->code = (int32_t)(uint32_t)cr_uint(&r, 4);
	c->tid = (uint32_t)cr_uint(&r, 4);
	c->time_ns = cr_uint(&r, 8);
	c->fault_addr = cr_uint(&r, 8);
	c->req_id = cr_uint(&r, 8);
	c->service = cr_str(&r);
	c->method = cr_str(&r);
	c->path = cr_str(&r);
	c->nregs = (uint16_t)cr_uint(&r, 2);
	if (c->nregs > AP_CRASH_MAX_REGS)
		return -EBADMSG;
	for (unsigned i = 0; i < c->nregs; i++)
		c->regs[i] = cr_uint(&r, 8);
	c->nframes = (uint16_t)cr_uint(&r, 2);
	if (c->nframes > AP_CRASH_MAX_FRAMES)
		return -EBADMSG;
	for (unsigned i = 0; i < c->nframes; i++)
		c->frames[i] = cr_uint(&r, 8);
	c->nmods = (uint16_t)cr_uint(&r, 2);
	if (c->nmods > AP_CRASH_MAX_MODULES)
		return -EBADMSG;
	size_t mods_at = r.off;
	for (unsigned i = 0; i < c->nmods && !r.bad; i++) {
		for (int k = 0; k < 3; k++) /* base, text_start, text_end */
			cr_uint(&r, 8);
		cr_str(&r);
	}
	if (r.bad)
		return -EBADMSG;
	c->mods_p = p + mods_at;
	c->mods_len = (uint32_t)(r.off - mods_at);
	c->stack_addr = cr_uint(&r, 8);
	c->stack_len = (uint32_t)cr_uint(&r, 4);
	if (r.bad || c->stack_len > r.len - r.off)
		return -EBADMSG;
	c->stack = p + r.off;
	return 0;
}

int ap_crash_next_module(const struct ap_rec_crash *c, uint32_t *off,
                         struct ap_crash_module *m)
{
	if (*off >= c->mods_len)
		return 0;
	struct cr r = { c->mods_p, c->mods_len, *off, 0 };
	m->base = cr_uint(&r, 8);
	m->text_start = cr_uint(&r, 8);
	m->text_end = cr_uint(&r, 8);
	m->path = cr_str(&r);
	if (r.bad)
		return -EBADMSG;
	*off = (uint32_t)r.off;
	return 1;
}

const char *ap_crash_signame(uint32_t signo)
{
	switch (signo) {
	case SIGSEGV:
		return "SIGSEGV";
	case SIGABRT:
		return "SIGABRT";
	case SIGBUS:
		return "SIGBUS";
	case SIGFPE:
		return "SIGFPE";
	case SIGILL:
		return "SIGILL";
	default:
		return "signal";
	}
}

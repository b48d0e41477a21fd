/*
 * fuzz_wire.c - libFuzzer harness for the wire decoder (shared/wire.c) and
 * the collector's datagram handling behind it (collector/ingest.c).
 *
 * Any local process may send any datagram to the collector's socket, so
 * every input is a datagram: decoded record by record through the public
 * decoders, shared/crash_wire.c's too (whose contract is checked: offsets
 * advance, strings, modules and stack copies stay inside the buffer), then handed whole to col_ingest_process(), which
 * routes, aggregates and attributes it as the daemon does. The first byte
 * of the input picks the sender's pid among a few, so records of several
 * "processes" interleave; a prefix of valid batch header is written over
 * the datagram when the second byte says so, so the fuzzer spends its time
 * past the magic check.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ap_config.h"
#include "ap_crash.h"
#include "ap_wire.h"
#include "agg.h"
#include "ingest.h"

static struct ap_config cfg;
static struct col_agg *agg;
static struct col_ingest *in;
static int64_t mono = 1000000000;
/* The wall clock minus mono, the collector's and (in a fixed header) the
 * sender's: records dated near mono are within the collector's bounds
 * (ingest.c, misdated()), so the fuzzer reaches what follows them. */
#define WALL_OFF 1700000000000000000LL

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_wire: %s\n", what);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (ap_config_init(&cfg) != 0)
		fail("ap_config_init");
	agg = col_agg_new(cfg.max_routes);
	in = agg ? col_ingest_new(&cfg, agg) : NULL;
	if (in == NULL)
		fail("col_ingest_new");
	return 0;
}

static void in_buf_n(const uint8_t *buf, size_t len, const void *p, size_t n)
{
	if (n && ((const uint8_t *)p < buf || (const uint8_t *)p + n > buf + len))
		fail("decoded string outside the datagram");
}

/* Checks a record's three strings (a hello's two: an empty third). */
static void in_buf3(const uint8_t *buf, size_t len, struct ap_str a, struct ap_str b,
                    struct ap_str c)
{
	in_buf_n(buf, len, a.p, a.len);
	in_buf_n(buf, len, b.p, b.len);
	in_buf_n(buf, len, c.p, c.len);
}

/* Returns 1 when the datagram holds a CRASH record that decodes. */
static int decode(const uint8_t *buf, size_t len)
{
	int crash = 0;
	struct ap_batch_hdr h;
	int off0 = ap_wire_get_batch_hdr(buf, len, &h);
	if (off0 < 0)
		return 0;
	if ((size_t)off0 > len)
		fail("batch header offset past the end");
	size_t off = (size_t)off0;
	for (;;) {
		uint16_t type;
		const uint8_t *p;
		uint32_t plen;
		size_t before = off;
		int rc = ap_wire_next_rec(buf, len, &off, &type, &p, &plen);
		if (rc <= 0)
			break;
		if (off <= before || off > len || p < buf || p + plen > buf + len)
			fail("record iteration out of bounds or not advancing");
		union {
			struct ap_rec_hello h;
			struct ap_rec_request r;
			struct ap_rec_stats s;
			struct ap_rec_sql q;
			struct ap_rec_profile pr;
			struct ap_rec_inflight a;
			struct ap_rec_crash c;
		} u;
		switch (type) {
		case AP_REC_HELLO:
			if (ap_wire_get_hello(p, plen, &u.h) == 0)
				in_buf3(p, plen, u.h.service, u.h.exe, (struct ap_str){ NULL, 0 });
			break;
		case AP_REC_REQUEST:
			if (ap_wire_get_request(p, plen, &u.r) == 0)
				in_buf3(p, plen, u.r.method, u.r.path, u.r.message);
			break;
		case AP_REC_STATS:
			ap_wire_get_stats(p, plen, &u.s);
			break;
		case AP_REC_SQL:
			if (ap_wire_get_sql(p, plen, &u.q) == 0)
				in_buf3(p, plen, u.q.error_code, u.q.error_message, u.q.sql);
			break;
		case AP_REC_PROFILE:
			if (ap_wire_get_profile(p, plen, &u.pr) == 0)
				in_buf3(p, plen, u.pr.method, u.pr.path, u.pr.stack);
			break;
		case AP_REC_INFLIGHT:
			if (ap_wire_get_inflight(p, plen, &u.a) == 0)
				in_buf3(p, plen, u.a.method, u.a.path, (struct ap_str){ NULL, 0 });
			break;
		case AP_REC_CRASH:
			if (ap_wire_get_crash(p, plen, &u.c) == 0) {
				crash = 1;
				in_buf3(p, plen, u.c.service, u.c.method, u.c.path);
				in_buf_n(p, plen, u.c.stack, u.c.stack_len);
				in_buf_n(p, plen, u.c.mods_p, u.c.mods_len);
				if (u.c.nregs > AP_CRASH_MAX_REGS || u.c.nframes > AP_CRASH_MAX_FRAMES)
					fail("crash: a count past its array");
				struct ap_crash_module m;
				uint32_t moff = 0;
				int mods = 0, mrc;
				while ((mrc = ap_crash_next_module(&u.c, &moff, &m)) == 1) {
					in_buf_n(p, plen, m.path.p, m.path.len);
					if (moff > u.c.mods_len || ++mods > AP_CRASH_MAX_MODULES)
						fail("crash: modules past their bytes or count");
				}
				(void)ap_crash_signame(u.c.signo);
			}
			break;
		}
	}
	return crash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > AP_WIRE_MAX_DATAGRAM + 2)
		return 0;
	uint32_t pid = 100 + (data[0] & 7);
	int fix = data[1] & 1;
	size -= 2;
	/* A private copy, so reads past the datagram are caught by ASan. */
	uint8_t *buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 2, size);
	if (fix && size >= AP_WIRE_BATCH_HDR) {
		struct ap_batch_hdr h = { .seq = 1, .pid = pid, .wall_minus_mono_ns = WALL_OFF };
		ap_wire_put_batch_hdr(buf, size, &h);
	}
	/* A minute passes before a datagram with crash reports: the
	 * collector symbolises a bounded number a minute (ingest.h,
	 * COL_INGEST_CRASH_NEW_PER_MIN), and every such input should reach
	 * the unwinder with its registers and stack, not only the first
	 * few of each minute. */
	mono += decode(buf, size) ? 61 * 1000000000LL : 1000000;
	col_ingest_process(in, buf, size, pid, 1000, mono, mono + WALL_OFF);
	/* Requests announced in flight by senders 100..107, probed as the
	 * collector does (kill(pid, 0), /proc): those of a pid that is gone
	 * are recorded as aborted, through the request path. */
	col_ingest_reap(in, mono, mono + WALL_OFF);
	free(buf);
	return 0;
}

/*
 * ap_crash.h - the CRASH record of the wire protocol (ap_wire.h): a fatal
 * signal of a preloaded process, with what the collector needs to
 * symbolise and unwind it (preload/crash.c writes it, collector/crash.c
 * reads it).
 *
 * Payload (little-endian, appended fields only, like every record):
 *   u32 signo, i32 si_code, u32 tid, u64 time_ns (CLOCK_MONOTONIC),
 *   u64 fault_addr (si_addr), u64 req_id (the request in flight on the
 *   crashing thread, 0: none or several),
 *   str service, str method, str path (of that request; may be empty),
 *   u16 nregs, nregs x u64: registers in DWARF order (x86-64: rax, rdx,
 *       rcx, rbx, rsi, rdi, rbp, rsp, r8..r15, rip),
 *   u16 nframes, nframes x u64: raw return addresses found in the handler
 *       (frame 0 is the faulting pc; the rest follow frame pointers and
 *       may stop early where code has none),
 *   u16 nmods, nmods x { u64 base, u64 text_start, u64 text_end, str path }:
 *       each ELF file with an executable mapping, base being where its
 *       file offset 0 is mapped,
 *   u64 stack_addr, u32 stack_len, stack_len bytes: a copy of the stack
 *       from the stack pointer up, for unwinding with DWARF CFI later.
 *
 * Encoding is async-signal-safe (no allocation, no locks).
 */
#ifndef AP_CRASH_H
#define AP_CRASH_H

#include <stddef.h>
#include <stdint.h>

#include "ap_wire.h"

#define AP_CRASH_MAX_REGS 17
#define AP_CRASH_MAX_FRAMES 64
#define AP_CRASH_MAX_MODULES 512
#define AP_CRASH_DWARF_SP 7     /* x86-64 DWARF register numbers */
#define AP_CRASH_DWARF_PC 16

struct ap_crash_module {
	uint64_t base, text_start, text_end;
	struct ap_str path;
};

struct ap_rec_crash {
	uint32_t signo;
	int32_t code;
	uint32_t tid;
	uint64_t time_ns;
	uint64_t fault_addr;
	uint64_t req_id;
	struct ap_str service, method, path;
	uint16_t nregs;
	uint64_t regs[AP_CRASH_MAX_REGS];
	uint16_t nframes;
	uint64_t frames[AP_CRASH_MAX_FRAMES];
	uint16_t nmods;
	const struct ap_crash_module *mods;  /* encoding: the modules */
	const uint8_t *mods_p;               /* decoding: their encoded bytes */
	uint32_t mods_len;
	uint64_t stack_addr;
	const uint8_t *stack;
	uint32_t stack_len;
};

/* Encodes r (r->mods, r->nmods modules) as a whole record, header included.
 * Returns the bytes written, or 0 when cap is too small. */
size_t ap_wire_put_crash(uint8_t *out, size_t cap, const struct ap_rec_crash *r);

/* Decodes a CRASH payload; strings and the stack point into p. 0, or
 * -EBADMSG when it is cut short or a count exceeds its maximum. */
int ap_wire_get_crash(const uint8_t *p, uint32_t len, struct ap_rec_crash *r);

/* Iterates the decoded modules: start with *off = 0; returns 1 and fills
 * m, 0 at the end, -EBADMSG when malformed. */
int ap_crash_next_module(const struct ap_rec_crash *r, uint32_t *off,
                         struct ap_crash_module *m);

/* The signal's name ("SIGSEGV") for the five we catch, else "signal". */
const char *ap_crash_signame(uint32_t signo);

#endif /* AP_CRASH_H */

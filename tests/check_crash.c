/*
 * check_crash.c - the CRASH record (shared/ap_crash.h): golden bytes of
 * the fixed part, a round trip with modules and stack, truncation and
 * over-long counts rejected; and collector/crash.h's description of a
 * record whose frames can be named by module only.
 */
#include "config.h"
#include "check_suites.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ap_crash.h"
#include "crash.h"

#ifdef HAVE_LIBDW
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#endif

static const struct ap_crash_module MODS[] = {
	{ 0x555500000000, 0x555500001000, 0x555500005000, { "/usr/bin/app", 12 } },
	{ 0x7f0000000000, 0x7f0000028000, 0x7f00001a0000, { "/lib/libc.so.6", 14 } },
};
static const uint8_t STACK[24] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };

static void fill(struct ap_rec_crash *r)
{
	memset(r, 0, sizeof *r);
	r->signo = SIGSEGV;
	r->code = SEGV_MAPERR;
	r->tid = 77;
	r->time_ns = 123456789;
	r->fault_addr = 0;
	r->req_id = 5;
	r->service = (struct ap_str){ "api", 3 };
	r->method = (struct ap_str){ "GET", 3 };
	r->path = (struct ap_str){ "/crash/9", 8 };
	r->nregs = AP_CRASH_MAX_REGS;
	for (unsigned i = 0; i < r->nregs; i++)
		r->regs[i] = 0x1000 + i;
	r->nframes = 3;
	r->frames[0] = 0x555500001234;   /* in app's text */
	r->frames[1] = 0x7f0000030000;   /* in libc's text */
	r->frames[2] = 0x1;              /* nowhere */
	r->mods = MODS;
	r->nmods = 2;
	r->stack_addr = 0x7ffd0000;
	r->stack = STACK;
	r->stack_len = sizeof STACK;
}

START_TEST(round_trip)
{
	struct ap_rec_crash r, d;
	fill(&r);
	uint8_t buf[4096];
	size_t n = ap_wire_put_crash(buf, sizeof buf, &r);
	ck_assert_uint_gt(n, 0);
	/* Record header: type 5, reserved, then the payload length. */
	static const uint8_t golden[] = { 5, 0, 0, 0 };
	ck_assert_mem_eq(buf, golden, sizeof golden);
	uint32_t plen = buf[4] | buf[5] << 8 | buf[6] << 16 | (uint32_t)buf[7] << 24;
	ck_assert_uint_eq(plen, n - AP_WIRE_REC_HDR);
	/* signo 11, si_code 1, tid 77 little-endian */
	static const uint8_t head[] = { 11, 0, 0, 0, 1, 0, 0, 0, 77, 0, 0, 0 };
	ck_assert_mem_eq(buf + 8, head, sizeof head);

	ck_assert_int_eq(ap_wire_get_crash(buf + 8, plen, &d), 0);
	ck_assert_uint_eq(d.signo, SIGSEGV);
	ck_assert_int_eq(d.code, SEGV_MAPERR);
	ck_assert_uint_eq(d.tid, 77);
	ck_assert_uint_eq(d.time_ns, 123456789);
	ck_assert_uint_eq(d.req_id, 5);
	ck_assert_int_eq(d.path.len, 8);
	ck_assert_mem_eq(d.path.p, "/crash/9", 8);
	ck_assert_uint_eq(d.nregs, AP_CRASH_MAX_REGS);
	ck_assert_uint_eq(d.regs[16], 0x1010);
	ck_assert_uint_eq(d.nframes, 3);
	ck_assert_uint_eq(d.frames[1], 0x7f0000030000);
	ck_assert_uint_eq(d.nmods, 2);
	uint32_t off = 0;
	struct ap_crash_module m;
	ck_assert_int_eq(ap_crash_next_module(&d, &off, &m), 1);
	ck_assert_uint_eq(m.base, 0x555500000000);
	ck_assert_int_eq(m.path.len, 12);
	ck_assert_int_eq(ap_crash_next_module(&d, &off, &m), 1);
	ck_assert_mem_eq(m.path.p, "/lib/libc.so.6", 14);
	ck_assert_uint_eq(m.text_end, 0x7f00001a0000);
	ck_assert_int_eq(ap_crash_next_module(&d, &off, &m), 0);
	ck_assert_uint_eq(d.stack_addr, 0x7ffd0000);
	ck_assert_uint_eq(d.stack_len, sizeof STACK);
	ck_assert_mem_eq(d.stack, STACK, sizeof STACK);

	/* Every truncation is refused, never read past. */
	for (uint32_t cut = 0; cut < plen; cut++)
		ck_assert_int_eq(ap_wire_get_crash(buf + 8, cut, &d), -EBADMSG);
	/* Too small a buffer: nothing. */
	ck_assert_uint_eq(ap_wire_put_crash(buf, n - 1, &r), 0);
	/* Counts beyond their maximum. */
	r.nframes = AP_CRASH_MAX_FRAMES + 1;
	ck_assert_uint_eq(ap_wire_put_crash(buf, sizeof buf, &r), 0);
}
END_TEST

START_TEST(names)
{
	ck_assert_str_eq(ap_crash_signame(SIGSEGV), "SIGSEGV");
	ck_assert_str_eq(ap_crash_signame(SIGABRT), "SIGABRT");
	ck_assert_str_eq(ap_crash_signame(SIGBUS), "SIGBUS");
	ck_assert_str_eq(ap_crash_signame(SIGFPE), "SIGFPE");
	ck_assert_str_eq(ap_crash_signame(SIGILL), "SIGILL");
	ck_assert_str_eq(ap_crash_signame(SIGTERM), "signal");
	ck_assert_str_eq(col_crash_code_name(SIGSEGV, SEGV_ACCERR), "SEGV_ACCERR");
	ck_assert_str_eq(col_crash_code_name(SIGABRT, SI_TKILL), "SI_TKILL");
	ck_assert_str_eq(col_crash_code_name(SIGFPE, FPE_INTDIV), "FPE_INTDIV");
	ck_assert_ptr_null(col_crash_code_name(SIGSEGV, 99));
}
END_TEST

/* Files that do not exist: frames are named by the module table alone. */
START_TEST(describe_without_files)
{
	struct ap_rec_crash r, d;
	fill(&r);
	r.stack_len = 0; /* nothing to unwind: the preload's frames are used */
	uint8_t buf[4096];
	size_t n = ap_wire_put_crash(buf, sizeof buf, &r);
	ck_assert_int_eq(ap_wire_get_crash(buf + 8, (uint32_t)(n - 8), &d), 0);
	char msg[COL_CRASH_MESSAGE_MAX], detail[COL_CRASH_DETAIL_MAX];
	col_crash_describe(&d, 4242, msg, sizeof msg, detail, sizeof detail);
	ck_assert_str_eq(msg, "SIGSEGV (SEGV_MAPERR) in ? (app) <- ? (libc.so.6) <- ?");
	ck_assert_msg(strstr(detail, "at address 0x0, thread 77, 3 frames") != NULL, "%s", detail);
	ck_assert_msg(strstr(detail, "#0 0x0000555500001234 ? (+0x1234) [app]") != NULL, "%s", detail);
	/* A small buffer is cut, still terminated. */
	char small[12];
	col_crash_describe(&d, 4242, small, sizeof small, NULL, 0);
	ck_assert_str_eq(small, "SIGSEGV (SE");
	/* No frames at all. */
	d.nframes = 0;
	col_crash_describe(&d, 4242, msg, sizeof msg, NULL, 0);
	ck_assert_str_eq(msg, "SIGSEGV (SEGV_MAPERR) (no stack)");
}
END_TEST

/* A module path is the sender's text: its name reaches the log (a
 * terminal) and the message cleaned of ESC, BEL and C1 CSI. */
START_TEST(describe_hostile_module)
{
	static const struct ap_crash_module mods[] = {
		{ 0x555500000000, 0x555500001000, 0x555500005000,
		  { "/x/\x1b]0;pwn\x07" "a\xc2\x9b" "2J", 16 } },
	};
	struct ap_rec_crash r, d;
	fill(&r);
	r.stack_len = 0;
	r.mods = mods;
	r.nmods = 1;
	uint8_t buf[4096];
	size_t n = ap_wire_put_crash(buf, sizeof buf, &r);
	ck_assert_int_eq(ap_wire_get_crash(buf + 8, (uint32_t)(n - 8), &d), 0);
	char msg[COL_CRASH_MESSAGE_MAX], detail[COL_CRASH_DETAIL_MAX];
	col_crash_describe(&d, 4242, msg, sizeof msg, detail, sizeof detail);
	ck_assert_msg(strstr(msg, "in ? (?]0;pwn?a?2J)") != NULL, "%s", msg);
	ck_assert_msg(strstr(detail, "[?]0;pwn?a?2J]") != NULL, "%s", detail);
	ck_assert_ptr_null(strchr(detail, '\x1b'));
}
END_TEST

/* A module path is the sender's: a FIFO there (nobody writing) made the
 * collector's open() of it block, and the ingest thread with it, for
 * good. Only regular files are read. */
START_TEST(describe_fifo_module)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/check_crash_fifo.%d", (int)getpid());
	unlink(path);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	struct ap_crash_module mods[1] = {
		{ 0x555500000000, 0x555500001000, 0x555500005000, { path, strlen(path) } },
	};
	struct ap_rec_crash r, d;
	fill(&r);
	r.mods = mods;
	r.nmods = 1;
	uint8_t buf[4096];
	size_t n = ap_wire_put_crash(buf, sizeof buf, &r);
	ck_assert_int_eq(ap_wire_get_crash(buf + 8, (uint32_t)(n - 8), &d), 0);
	char msg[COL_CRASH_MESSAGE_MAX];
	col_crash_describe(&d, 4242, msg, sizeof msg, NULL, 0);
	unlink(path);
	ck_assert_msg(strncmp(msg, "SIGSEGV (SEGV_MAPERR) in ", 25) == 0, "%s", msg);
}
END_TEST

#ifdef HAVE_LIBDW
/* The .gnu_debuglink name of the ELF file at path, into out, and the
 * file offset of the last byte of its build ID (*bid_at, 0 when none);
 * 0, or -1 without a debuglink. */
static int elf_facts(const char *path, char *out, size_t outlen, long *bid_at)
{
	int rc = -1;
	*bid_at = 0;
	elf_version(EV_CURRENT);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf *e = fd >= 0 ? elf_begin(fd, ELF_C_READ, NULL) : NULL;
	size_t shstrndx;
	if (e != NULL && elf_getshdrstrndx(e, &shstrndx) == 0) {
		for (Elf_Scn *scn = elf_nextscn(e, NULL); scn; scn = elf_nextscn(e, scn)) {
			GElf_Shdr sh;
			const char *name;
			Elf_Data *data;
			if (gelf_getshdr(scn, &sh) == NULL ||
			    (name = elf_strptr(e, shstrndx, sh.sh_name)) == NULL)
				continue;
			if (strcmp(name, ".note.gnu.build-id") == 0 && sh.sh_size > 0)
				*bid_at = (long)(sh.sh_offset + sh.sh_size - 1);
			if (strcmp(name, ".gnu_debuglink") != 0 ||
			    (data = elf_getdata(scn, NULL)) == NULL || data->d_size == 0)
				continue;
			size_t n = strnlen(data->d_buf, data->d_size);
			if (n > 0 && n < outlen) {
				memcpy(out, data->d_buf, n);
				out[n] = '\0';
				rc = 0;
			}
		}
	}
	if (e != NULL)
		elf_end(e);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* A module is a file the sender chose, and so is the .gnu_debuglink name
 * it carries: the standard search for separate debug files opened that
 * name in the module's directory, and a FIFO there blocked the ingest
 * thread. Here a copy of libc (stripped, with a debuglink, on Debian),
 * its build ID changed so that no installed debug file (libc6-dbg)
 * matches it, sits beside a FIFO of that name; its frame is still named,
 * from .dynsym. */
START_TEST(describe_debuglink_fifo)
{
	Dl_info di;
	ck_assert_int_ne(dladdr((void *)getpid, &di), 0);
	char link[256];
	long bid_at;
	if (elf_facts(di.dli_fname, link, sizeof link, &bid_at) < 0)
		return; /* libc has no debuglink here: nothing to test */
	char dir[] = "/tmp/check_crash.XXXXXX", copy[512], fifo[512];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(copy, sizeof copy, "%s/libc-copy.so", dir);
	snprintf(fifo, sizeof fifo, "%s/%s", dir, link);
	FILE *in = fopen(di.dli_fname, "rb"), *out = fopen(copy, "wb");
	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	char chunk[65536];
	size_t k;
	long at = 0;
	while ((k = fread(chunk, 1, sizeof chunk, in)) > 0) {
		if (bid_at > 0 && bid_at >= at && bid_at < at + (long)k)
			chunk[bid_at - at] ^= 0x5a;
		ck_assert_uint_eq(fwrite(chunk, 1, k, out), k);
		at += (long)k;
	}
	fclose(in);
	ck_assert_int_eq(fclose(out), 0);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	uint64_t base = (uintptr_t)di.dli_fbase, pc = (uintptr_t)getpid;
	struct ap_crash_module mods[1] = {
		{ base, base, base + 0x10000000, { copy, strlen(copy) } },
	};
	struct ap_rec_crash r, d;
	fill(&r);
	r.mods = mods;
	r.nmods = 1;
	r.stack_len = 0; /* the preload's frames, named by libdw */
	r.nframes = 1;
	r.frames[0] = pc;
	uint8_t buf[8192];
	size_t n = ap_wire_put_crash(buf, sizeof buf, &r);
	ck_assert_int_eq(ap_wire_get_crash(buf + 8, (uint32_t)(n - 8), &d), 0);
	char msg[COL_CRASH_MESSAGE_MAX];
	col_crash_describe(&d, 4242, msg, sizeof msg, NULL, 0);
	unlink(fifo);
	unlink(copy);
	rmdir(dir);
	ck_assert_msg(strstr(msg, "getpid") != NULL, "%s", msg);
}
END_TEST

/* The stack copy's address and the registers are the sender's: a stack
 * pointer just below 2^64 with the copy at address 0 made the unwinder's
 * bounds check (addr - stack_addr + 8 <= stack_len) wrap, and it read
 * the 8 bytes before the copy as the caller's return address. Here
 * those bytes hold a pc in libc, which must not become a frame. */
START_TEST(describe_stack_wrap)
{
	Dl_info di;
	ck_assert_int_ne(dladdr((void *)getpid, &di), 0);
	struct ap_crash_module mods[1] = {
		{ (uintptr_t)di.dli_fbase, (uintptr_t)di.dli_fbase,
		  (uintptr_t)di.dli_fbase + 0x10000000, { di.dli_fname, strlen(di.dli_fname) } },
	};
	struct ap_rec_crash r, d;
	fill(&r);
	r.mods = mods;
	r.nmods = 1;
	r.nframes = 0;
	uint8_t buf[8192];
	size_t n = ap_wire_put_crash(buf, sizeof buf, &r);
	ck_assert_uint_gt(n, 0);
	ck_assert_int_eq(ap_wire_get_crash(buf + 8, (uint32_t)(n - 8), &d), 0);
	/* At getpid's entry the return address is at the stack pointer. */
	d.regs[AP_CRASH_DWARF_PC] = (uintptr_t)getpid;
	d.regs[AP_CRASH_DWARF_SP] = UINT64_MAX - 7;
	uint64_t mem[3] = { (uintptr_t)abort + 1, 0, 0 };
	d.stack_addr = 0;
	d.stack = (const uint8_t *)&mem[1];
	d.stack_len = 16;
	char msg[COL_CRASH_MESSAGE_MAX];
	col_crash_describe(&d, (uint32_t)getpid(), msg, sizeof msg, NULL, 0);
	ck_assert_msg(strstr(msg, " <- ") == NULL, "read outside the stack copy: %s", msg);
}
END_TEST
#endif

Suite *crash_suite(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("record");
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, names);
	tcase_add_test(tc, describe_without_files);
	tcase_add_test(tc, describe_hostile_module);
	tcase_add_test(tc, describe_fifo_module);
#ifdef HAVE_LIBDW
	tcase_add_test(tc, describe_stack_wrap);
	tcase_add_test(tc, describe_debuglink_fifo);
#endif
	suite_add_tcase(s, tc);
	return s;
}

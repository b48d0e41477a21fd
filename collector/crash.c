/*
 * crash.c - unwinding and symbolising crash records (crash.h).
 *
 * With libdw: a Dwfl session per crash, one module reported per entry of
 * the module table (dwfl_report_elf at the address of the file's offset 0,
 * so libdw derives the load bias from the program headers), a "process"
 * whose only thread has the registers of the crash and whose memory is the
 * stack copy, then dwfl_getthread_frames() unwinds with the modules' CFI
 * (.eh_frame / .debug_frame) and dwfl_module_addrinfo() names each pc.
 */
#include "config.h"
#include "crash.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ap_crash.h"
#include "col.h"

#ifdef HAVE_LIBDW
#include <elfutils/libdwfl.h>
#include <dwarf.h>
#endif

#define MAX_FRAMES AP_CRASH_MAX_FRAMES

struct frame {
	uint64_t pc;
	int activation;          /* the pc itself faulted (frame 0), not a return address */
	char func[160];          /* "" when unknown */
	char module[128];        /* basename, "" when unknown */
	uint64_t off;            /* offset in func, or in the module */
	int has_func;
};

const char *col_crash_code_name(uint32_t signo, int32_t code)
{
	switch (code) {
	case SI_USER:
		return "SI_USER";
	case SI_TKILL:
		return "SI_TKILL";
	case SI_QUEUE:
		return "SI_QUEUE";
	default:
		break;
	}
	switch (signo) {
	case SIGSEGV:
		return code == SEGV_MAPERR ? "SEGV_MAPERR" : code == SEGV_ACCERR ? "SEGV_ACCERR" : NULL;
	case SIGBUS:
		return code == BUS_ADRALN ? "BUS_ADRALN" : code == BUS_ADRERR ? "BUS_ADRERR" :
		       code == BUS_OBJERR ? "BUS_OBJERR" : NULL;
	case SIGFPE:
		return code == FPE_INTDIV ? "FPE_INTDIV" : code == FPE_INTOVF ? "FPE_INTOVF" :
		       code == FPE_FLTDIV ? "FPE_FLTDIV" : code == FPE_FLTINV ? "FPE_FLTINV" : NULL;
	case SIGILL:
		return code == ILL_ILLOPC ? "ILL_ILLOPC" : code == ILL_ILLOPN ? "ILL_ILLOPN" :
		       code == ILL_PRVOPC ? "ILL_PRVOPC" : NULL;
	default:
		return NULL;
	}
}

static const char *base_name(const char *p, size_t len, char *out, size_t outlen)
{
	size_t s = len;
	while (s > 0 && p[s - 1] != '/')
		s--;
	/* The path is the sender's: cleaned, as it ends up in the log (a
	 * terminal, the journal) and in error messages. */
	col_clean_text(p + s, len - s, out, outlen);
	return out;
}

/* Names frames by module and offset from the module table alone. */
static void name_by_module(const struct ap_rec_crash *r, struct frame *f)
{
	uint32_t off = 0;
	struct ap_crash_module m;
	while (ap_crash_next_module(r, &off, &m) == 1) {
		if (f->pc >= m.text_start && f->pc < m.text_end) {
			base_name(m.path.p, m.path.len, f->module, sizeof f->module);
			f->off = f->pc - m.base;
			return;
		}
	}
}

#ifdef HAVE_LIBDW
struct uw {
	const struct ap_rec_crash *r;
	pid_t pid;
	int threads;
	struct frame *frames;
	size_t n;
};

static pid_t uw_next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	struct uw *u = arg;
	if (u->threads++ > 0)
		return 0;
	*thread_argp = u;
	return u->pid;
}

static bool uw_memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct uw *u = arg;
	const struct ap_rec_crash *r = u->r;
	/* Both are the sender's: addr - stack_addr + 8 could wrap. */
	uint64_t off = addr - r->stack_addr;
	if (addr >= r->stack_addr && off < r->stack_len && r->stack_len - off >= 8) {
		memcpy(result, r->stack + off, 8);
		return true;
	}
	return false;
}

static bool uw_set_initial_registers(Dwfl_Thread *thread, void *arg)
{
	struct uw *u = arg;
	Dwarf_Word regs[AP_CRASH_MAX_REGS];
	for (unsigned i = 0; i < u->r->nregs; i++)
		regs[i] = u->r->regs[i];
	if (!dwfl_thread_state_registers(thread, 0, u->r->nregs, regs))
		return false;
	dwfl_thread_state_register_pc(thread, u->r->regs[AP_CRASH_DWARF_PC]);
	return true;
}

static int uw_frame(Dwfl_Frame *state, void *arg)
{
	struct uw *u = arg;
	Dwarf_Addr pc;
	bool activation;
	if (!dwfl_frame_pc(state, &pc, &activation) || pc == 0)
		return DWARF_CB_ABORT;
	struct frame *f = &u->frames[u->n++];
	memset(f, 0, sizeof *f);
	f->pc = pc;
	f->activation = activation;
	return u->n < MAX_FRAMES ? DWARF_CB_OK : DWARF_CB_ABORT;
}

/* Separate debug files by build ID only (/usr/lib/debug/.build-id/, where
 * Debian's -dbgsym packages put them). The standard search also follows
 * the .gnu_debuglink name that the module, a file the sender chose, carries
 * into the module's own directory: a FIFO named there blocked the ingest
 * thread in open(). */
static const Dwfl_Callbacks dw_callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = dwfl_build_id_find_debuginfo,
};

static const Dwfl_Thread_Callbacks uw_callbacks = {
	.next_thread = uw_next_thread,
	.memory_read = uw_memory_read,
	.set_initial_registers = uw_set_initial_registers,
};

/* Reports the modules; returns the session or NULL. */
static Dwfl *dw_open(const struct ap_rec_crash *r)
{
	Dwfl *d = dwfl_begin(&dw_callbacks);
	if (d == NULL)
		return NULL;
	dwfl_report_begin(d);
	uint32_t off = 0;
	struct ap_crash_module m;
	char path[1024], name[128];
	while (ap_crash_next_module(r, &off, &m) == 1) {
		if (m.path.len >= sizeof path)
			continue;
		memcpy(path, m.path.p, m.path.len);
		path[m.path.len] = '\0';
		base_name(m.path.p, m.path.len, name, sizeof name);
		/* A module that cannot be opened (gone, another mount
		 * namespace) is skipped: its frames stay unnamed. The path is
		 * the sender's: open() of a FIFO would block this thread for
		 * good, so only a regular file is read (O_NONBLOCK changes
		 * nothing for those). libdw takes the fd when it succeeds. */
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		struct stat st;
		if (fd < 0)
			continue;
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
		    dwfl_report_elf(d, name, path, fd, m.base, false) == NULL)
			close(fd);
	}
	dwfl_report_end(d, NULL, NULL);
	return d;
}

static size_t dw_unwind(Dwfl *d, const struct ap_rec_crash *r, uint32_t pid, struct frame *fr)
{
	if (r->nregs < AP_CRASH_MAX_REGS || r->stack_len == 0)
		return 0;
	struct uw u = { .r = r, .pid = pid > 0 ? (pid_t)pid : 1, .frames = fr };
	if (!dwfl_attach_state(d, NULL, u.pid, &uw_callbacks, &u))
		return 0;
	dwfl_getthread_frames(d, u.pid, uw_frame, &u);
	return u.n;
}

static void dw_name(Dwfl *d, struct frame *f)
{
	/* A return address points after its call: look the call up. */
	Dwarf_Addr pc = f->activation ? f->pc : f->pc - 1;
	Dwfl_Module *m = dwfl_addrmodule(d, pc);
	if (m == NULL)
		return;
	const char *mname = dwfl_module_info(m, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	if (mname != NULL) /* ours (base_name), cleaned already */
		snprintf(f->module, sizeof f->module, "%s", mname);
	GElf_Off off = 0;
	GElf_Sym sym;
	const char *fn = dwfl_module_addrinfo(m, pc, &off, &sym, NULL, NULL, NULL);
	if (fn != NULL) {
		/* Symbols of a file the sender named: cleaned like its text. */
		col_clean_text(fn, strlen(fn), f->func, sizeof f->func);
		f->off = off + (f->activation ? 0 : 1);
		f->has_func = 1;
	} else {
		Dwarf_Addr start = 0;
		dwfl_module_info(m, NULL, &start, NULL, NULL, NULL, NULL, NULL);
		f->off = f->pc - start;
	}
}
#endif /* HAVE_LIBDW */

struct text {
	char *p;
	size_t cap, n;
};

__attribute__((format(printf, 2, 3)))
static void text_add(struct text *t, const char *fmt, ...)
{
	if (t->p == NULL || t->cap == 0 || t->n >= t->cap - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
	va_end(ap);
	if (k > 0)
		t->n = (size_t)k < t->cap - t->n ? t->n + (size_t)k : t->cap - 1;
}

/* files: read the modules' ELF files (unwind with their CFI, name with
 * their symbols); 0: the preload's frames, named by module only. */
static void describe(const struct ap_rec_crash *r, uint32_t pid, int files, char *msg,
                     size_t msglen, char *detail, size_t detlen)
{
	struct frame *fr = calloc(MAX_FRAMES, sizeof *fr);
	size_t n = 0;
	const char *how = "raw frames";
#ifdef HAVE_LIBDW
	Dwfl *d = fr && files ? dw_open(r) : NULL;
	if (d != NULL) {
		n = dw_unwind(d, r, pid, fr);
		how = "DWARF CFI";
	}
#else
	(void)files;
#endif
	/* Unwinding found less than the frame pointers did: use those. */
	if (fr != NULL && n < 2 && r->nframes > n) {
		n = 0;
		for (unsigned i = 0; i < r->nframes && i < MAX_FRAMES; i++) {
			memset(&fr[n], 0, sizeof fr[n]);
			fr[n].pc = r->frames[i];
			fr[n].activation = i == 0;
			n++;
		}
		how = "frame pointers";
	}
	for (size_t i = 0; i < n; i++) {
#ifdef HAVE_LIBDW
		if (d != NULL)
			dw_name(d, &fr[i]);
#endif
		if (fr[i].module[0] == '\0')
			name_by_module(r, &fr[i]);
	}

	const char *sig = ap_crash_signame(r->signo);
	const char *code = col_crash_code_name(r->signo, r->code);
	struct text m = { msg, msglen, 0 };
	if (msg != NULL && msglen > 0)
		msg[0] = '\0';
	text_add(&m, "%s", sig);
	if (code != NULL)
		text_add(&m, " (%s)", code);
	for (size_t i = 0; i < n; i++) {
		const char *name = fr[i].has_func ? fr[i].func : NULL;
		text_add(&m, "%s", i == 0 ? " in " : " <- ");
		if (name != NULL)
			text_add(&m, "%s", name);
		else if (fr[i].module[0])
			text_add(&m, "? (%s)", fr[i].module);
		else
			text_add(&m, "?");
	}
	if (n == 0)
		text_add(&m, " (no stack)");

	struct text t = { detail, detlen, 0 };
	if (detail != NULL && detlen > 0)
		detail[0] = '\0';
	text_add(&t, "%s", sig);
	if (code != NULL)
		text_add(&t, " (%s)", code);
	if (r->code > 0) /* si_addr means something for faults only */
		text_add(&t, " at address 0x%llx", (unsigned long long)r->fault_addr);
	text_add(&t, ", thread %u, %zu frames (%s):", r->tid, n, how);
	for (size_t i = 0; i < n; i++) {
		text_add(&t, "\n  #%zu 0x%016llx ", i, (unsigned long long)fr[i].pc);
		if (fr[i].has_func)
			text_add(&t, "%s+0x%llx", fr[i].func, (unsigned long long)fr[i].off);
		else if (fr[i].module[0])
			text_add(&t, "? (+0x%llx)", (unsigned long long)fr[i].off);
		else
			text_add(&t, "?");
		if (fr[i].module[0])
			text_add(&t, " [%s]", fr[i].module);
	}
#ifdef HAVE_LIBDW
	if (d != NULL)
		dwfl_end(d);
#endif
	free(fr);
}

void col_crash_describe(const struct ap_rec_crash *r, uint32_t pid, char *msg, size_t msglen,
                        char *detail, size_t detlen)
{
	describe(r, pid, 1, msg, msglen, detail, detlen);
}

void col_crash_describe_modules(const struct ap_rec_crash *r, uint32_t pid, char *msg,
                                size_t msglen, char *detail, size_t detlen)
{
	describe(r, pid, 0, msg, msglen, detail, detlen);
}

/*
 * crash.c - fatal signals of the host: SIGSEGV, SIGABRT, SIGBUS, SIGFPE and
 * SIGILL become a CRASH record (ap_crash.h) for the collector, and then
 * the host dies exactly as it would have without us.
 *
 * Installed when the process first accepts a connection (pl_fd_slot()
 * making the fd table's first chunk), not by the constructor (for a
 * connection inherited across exec, which the constructor follows: at its
 * first request, HTTP/1, HTTP/2 or FastCGI, conn.c), and only
 * where the disposition is then the default one: runtimes such as V8 and
 * the JVM use SIGSEGV for normal operation and install their own handlers
 * at startup, before they serve. Had ours been there, they would keep it
 * as their "previous handler" and call it for a fault that is not theirs:
 * HotSpot then takes the fault as handled by it, and the fatal-error
 * report (hs_err_pid*.log) and abort() it makes when the previous
 * disposition was the default were lost (the process died of the SIGSEGV
 * instead).
 *
 * Once installed, ours is the default as the host sees it: sigaction() and
 * the signal() family are hooked (hook_signal.c -> pl_crash_sigaction()).
 * A handler the host installs later replaces ours, and finds the default
 * as the one it replaced (never ours, to call for a fault that is not
 * its own); the host putting the default back (Node's SIGSEGV handler and
 * Python's faulthandler do, before raising the signal again to die of it)
 * puts ours back in its place, and a query shows the default. A handler
 * that still calls ours (found by a raw system call) gets what the
 * default disposition would have done, and no report: we stand down
 * whenever we are no longer the installed handler.
 *
 * The handler is async-signal-safe: sigaction, clock_gettime, open, read,
 * close, socket, setsockopt, sendto, sendmsg, tgkill, nanosleep and memory
 * copies into static buffers. It first adds the request the crashing
 * thread was serving to the event buffer, as aborted (pl_conn_crash_abort),
 * and sends what the buffer holds (pl_ship_exit_now(): also the requests
 * finished before the crash); both are skipped when the crashing thread
 * holds the buffer's lock, and the sends are within the exit flush's
 * 100 ms budget. It reads /proc/self/maps for the module table (each ELF file
 * with an executable mapping and where it is mapped) and the bounds of the
 * stack, copies up to CRASH_STACK bytes of the stack from the stack
 * pointer, walks frame pointers as far as they go, and sends one datagram.
 * The collector unwinds the copy with DWARF CFI and symbolises. Only the
 * first crash of a process is reported: a second thread crashing during
 * the report waits for it (at most CRASH_WAIT), since our handler stays in
 * place until the report is sent, and then dies. Then the previous
 * (default) disposition is restored: a hardware fault re-executes and
 * dumps core as before; a signal that was sent (kill, raise, abort), an
 * asynchronous SIGBUS (BUS_MCEERR_AO) or the kernel's SI_KERNEL one, is
 * sent again.
 *
 * Reported only by processes that accepted a connection: processes that
 * serve no HTTP are left alone (SPEC 3).
 */
#include "config.h"
#include "pl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "ap_crash.h"

#define CRASH_STACK (16 * 1024)       /* bytes of stack copied */
#define CRASH_MAPS_BUF 8192
#define CRASH_PATH_MAX 256
#define CRASH_MODULES 160

static const int crash_sigs[] = { SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL };
#define NSIGS (sizeof crash_sigs / sizeof crash_sigs[0])
/* The default disposition ours stands for, as the host last set or saw it
 * (its flags and mask; the handler is always SIG_DFL): what restore() puts
 * back, and what a query shows where ours is installed. Written by
 * install_handlers() and by a host's call that puts the default back; a
 * torn copy of two racing calls mixes only the flags and masks of two
 * default dispositions. */
static struct sigaction crash_prev[NSIGS];
/* The thread reporting the process's crash (0: none yet), and 1 once it
 * is done (atomic). */
static uint32_t crash_tid;
static int crash_done;
/* How long a second thread crashing during the report waits for it: more
 * than the report takes at most (the exit flush's budget and the report's
 * own 200 ms, with a full collector queue). */
#define CRASH_WAIT_NS (600 * 1000000ull)

/* Static, because the handler may run on a small alternate stack. */
static struct {
	struct ap_crash_module mods[CRASH_MODULES];
	char paths[CRASH_MODULES][CRASH_PATH_MAX];
	int exec[CRASH_MODULES];
	unsigned nmods;
	uint64_t stack_lo, stack_hi;      /* the mapping holding the stack pointer */
	char buf[CRASH_MAPS_BUF];
	char line[512];
	uint8_t stack[CRASH_STACK];
	uint8_t dgram[AP_WIRE_MAX_DATAGRAM];
	struct ap_crash_module out[CRASH_MODULES];
	/* the reporting thread's request's method and path (crash_requests()) */
	struct {
		char method[AP_HTTP_METHOD_MAX];
		char path[PL_PATH_MAX];
		uint8_t method_len;
		uint16_t path_len;
	} req;
} cs;

static PL_UNINSTRUMENTED int sig_index(int sig)
{
	for (unsigned i = 0; i < NSIGS; i++)
		if (crash_sigs[i] == sig)
			return (int)i;
	return -1;
}

/* The C library's sigaction(), never our hook: ours must not be shown as
 * the default to ourselves. Resolved by the constructor, long before any
 * install (the fd table's first chunk comes from an accept). */
static PL_UNINSTRUMENTED int real_sigaction(int sig, const struct sigaction *act,
                                            struct sigaction *old)
{
	return pl_real.sigaction(sig, act, old);
}

static PL_UNINSTRUMENTED int is_ours(const struct sigaction *sa);

static uint64_t hex(const char **p)
{
	uint64_t v = 0;
	for (;; (*p)++) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v * 16 + (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uint64_t)(c - 'a' + 10);
		else
			return v;
	}
}

/* One /proc/self/maps line: "start-end perms offset dev inode   path". */
static void maps_line(const char *l, uint64_t sp)
{
	const char *p = l;
	uint64_t start = hex(&p);
	if (*p++ != '-')
		return;
	uint64_t end = hex(&p);
	if (*p++ != ' ')
		return;
	int r = p[0] == 'r', x = p[2] == 'x';
	p += 5;
	uint64_t off = hex(&p);
	/* Only a readable one: a thread that overflowed its stack has its
	 * stack pointer in the guard page below it (the handler then runs on
	 * an alternate stack), and copying from there faulted in the handler,
	 * which killed the process before the report was sent. */
	if (r && sp >= start && sp < end) {
		cs.stack_lo = start;
		cs.stack_hi = end;
	}
	/* dev, inode, then the path after spaces */
	for (int f = 0; f < 2 && *p; f++) {
		while (*p == ' ')
			p++;
		while (*p && *p != ' ')
			p++;
	}
	while (*p == ' ')
		p++;
	if (*p != '/')
		return;
	size_t plen = strlen(p);
	if (plen >= CRASH_PATH_MAX)
		return;
	if (off == 0 && cs.nmods < CRASH_MODULES) {
		unsigned i = cs.nmods++;
		memcpy(cs.paths[i], p, plen + 1);
		cs.mods[i].base = start;
		cs.mods[i].text_start = cs.mods[i].text_end = 0;
		cs.mods[i].path.p = cs.paths[i];
		cs.mods[i].path.len = (uint16_t)plen;
		cs.exec[i] = 0;
	}
	if (x) {
		/* Its file's offset-0 mapping came before it (maps is sorted by
		 * address and the loader maps the ELF header first). */
		for (unsigned i = cs.nmods; i-- > 0;) {
			if (cs.mods[i].path.len == plen && memcmp(cs.paths[i], p, plen) == 0) {
				if (!cs.exec[i] || start < cs.mods[i].text_start)
					cs.mods[i].text_start = start;
				if (end > cs.mods[i].text_end)
					cs.mods[i].text_end = end;
				cs.exec[i] = 1;
				break;
			}
		}
	}
}

static void read_maps(uint64_t sp)
{
	cs.nmods = 0;
	cs.stack_lo = cs.stack_hi = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size_t ll = 0;
	for (;;) {
		ssize_t n = pl_real.read(fd, cs.buf, sizeof cs.buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			char c = cs.buf[i];
			if (c == '\n') {
				cs.line[ll] = '\0';
				maps_line(cs.line, sp);
				ll = 0;
			} else if (ll < sizeof cs.line - 1) {
				cs.line[ll++] = c;
			}
		}
	}
	pl_real.close(fd);
}

/* Reads the module table and copies the stack from sp up, within its
 * mapping, at most CRASH_STACK bytes, to cs.stack. Returns the bytes
 * copied: 0 for no sp, or one in no readable mapping. */
static uint32_t copy_stack(uint64_t sp)
{
	read_maps(sp);
	if (sp == 0 || cs.stack_hi <= sp)
		return 0;
	uint64_t n = cs.stack_hi - sp;
	if (n > CRASH_STACK)
		n = CRASH_STACK;
	memcpy(cs.stack, (const void *)(uintptr_t)sp, n);
	return (uint32_t)n;
}

static size_t str_len(const char *s, size_t max)
{
	size_t n = 0;
	while (n < max && s[n])
		n++;
	return n;
}

#if defined(__x86_64__)
/* The kernel's signal frame on x86-64 (arch/x86/include/asm/sigframe.h):
 * the return address (the restorer), the kernel's struct ucontext (flags,
 * link, stack_t, sigcontext, a 64-bit mask: 304 bytes, laid out as glibc's
 * ucontext_t up to its mask), then the siginfo. */
#define KERNEL_UC_SIZE 304

/* 1 when the kernel's frame holding outer, whose siginfo says signo, is
 * for signal sig. The kernel writes the siginfo only for an SA_SIGINFO
 * handler (else signo is whatever the stack held); then the context tells:
 * a system call that sent sig (kill(), tgkill(): the signal is their
 * second or third argument, which the kernel leaves in its register, and
 * the instruction before pc is `syscall`), or the trap it records: a page
 * fault or a general protection fault for SIGSEGV and SIGBUS, a divide
 * error or an x87/SIMD exception for SIGFPE, an invalid opcode for SIGILL.
 * pc lies in a module's text, which starts at text_start. */
static int frame_of(int sig, int signo, const ucontext_t *outer, uint64_t pc, uint64_t text_start)
{
	if (signo >= 1 && signo <= 64)
		return signo == sig;
	const greg_t *g = outer->uc_mcontext.gregs;
	const uint8_t *ins = (const uint8_t *)(uintptr_t)pc;
	/* pc's page is mapped (code ran there): read the two bytes before
	 * it only within that page. */
	if (pc >= text_start + 2 && (pc & 4095) >= 2 && ins[-2] == 0x0f && ins[-1] == 0x05)
		return g[REG_RSI] == sig || g[REG_RDX] == sig;
	long trap = (long)g[REG_TRAPNO];
	switch (sig) {
	case SIGSEGV:
	case SIGBUS:
		return trap == 14 || trap == 13; /* #PF, #GP */
	case SIGFPE:
		return trap == 0 || trap == 16 || trap == 19; /* #DE, #MF, #XM */
	case SIGILL:
		return trap == 6; /* #UD */
	default:
		return 0;
	}
}

/* A fatal signal raised again from inside a handler of the host's for the
 * same signal (Python's faulthandler: SA_NODEFER, so raise() delivers it
 * at once, on its alternate stack) interrupts that handler, not the
 * fault: the context worth reporting is the one the host's handler got,
 * in the kernel's frame for it, above the interrupted stack pointer. Found
 * by the restorer's address (as in the frame the kernel made for us at
 * uc) in the copy of the stack from there (stack_addr, stack_len), and
 * taken only if the frame is for the same signal (frame_of()) and its pc
 * lies in an executable module. NULL when there is none: a signal
 * sent from ordinary code, or one the host's handler raised while it
 * blocked it (Node: delivered when the handler returns, in the faulting
 * context already). */
static const ucontext_t *host_frame(int sig, const siginfo_t *si, const ucontext_t *uc,
                                    uint64_t stack_addr, uint32_t stack_len)
{
	uintptr_t u = (uintptr_t)uc;
	if (si->si_code > 0 || (uintptr_t)si != u + KERNEL_UC_SIZE)
		return NULL; /* not the layout assumed: look no further */
	uint64_t restorer; /* our frame's return address, just below uc */
	memcpy(&restorer, (const void *)(u - 8), 8);
	uint64_t need = 8 + KERNEL_UC_SIZE + sizeof(int);
	for (uint64_t off = 0; off + need <= stack_len; off += 8) {
		uint64_t w, a = stack_addr + off;
		memcpy(&w, cs.stack + off, 8);
		if (w != restorer)
			continue;
		/* Or a stale copy of it (a struct sigaction some call left in
		 * what is now a frame's padding): a real frame has the kernel's
		 * flags (UC_FP_XSTATE and two others), no link, and points to its
		 * saved FPU state, which the kernel puts just above the frame. */
		const ucontext_t *outer = (const ucontext_t *)(uintptr_t)(a + 8);
		int signo;
		memcpy(&signo, cs.stack + off + 8 + KERNEL_UC_SIZE, sizeof signo);
		uintptr_t fpu = (uintptr_t)outer->uc_mcontext.fpregs;
		if (outer->uc_flags > 7 || outer->uc_link != NULL ||
		    fpu <= a + 8 + KERNEL_UC_SIZE || fpu > a + 4096)
			continue;
		uint64_t pc = (uint64_t)outer->uc_mcontext.gregs[REG_RIP];
		for (unsigned i = 0; i < cs.nmods; i++)
			if (cs.exec[i] && pc >= cs.mods[i].text_start && pc < cs.mods[i].text_end)
				/* else a handler of another signal: its
				 * interruption is no crash */
				return frame_of(sig, signo, outer, pc, cs.mods[i].text_start) ? outer
				                                                                : NULL;
		return NULL;
	}
	return NULL;
}
#endif

/* The report of signal sig on this thread, serving request req_id (see
 * pl_conn_crash_pending()), whose method and path crash_requests() left
 * in cs.req. */
static void report(int sig, const siginfo_t *si, const ucontext_t *uc, uint64_t req_id)
{
	static struct ap_rec_crash r;
	memset(&r, 0, sizeof r);
	struct timespec wall, mono;
	clock_gettime(CLOCK_REALTIME, &wall);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	r.signo = (uint32_t)sig;
	r.code = si->si_code;
	r.tid = (uint32_t)syscall(SYS_gettid);
	r.time_ns = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
	r.fault_addr = (uint64_t)(uintptr_t)si->si_addr;
	r.req_id = req_id;
	r.service.p = pl_cfg.service;
	r.service.len = (uint16_t)str_len(pl_cfg.service, sizeof pl_cfg.service);
	r.method.p = cs.req.method;
	r.method.len = cs.req.method_len;
	r.path.p = cs.req.path;
	r.path.len = cs.req.path_len;

	uint64_t sp = 0, pc = 0, fp = 0;
	uint64_t copied = 0; /* the stack pointer cs.stack was copied from */
	uint32_t copied_len = 0;
#if defined(__x86_64__)
	/* Raised again inside a handler of the host's: the context that
	 * handler got, if it is in the copy of this one's stack. */
	if (uc != NULL) {
		copied = (uint64_t)uc->uc_mcontext.gregs[REG_RSP];
		copied_len = copy_stack(copied);
		const ucontext_t *outer = host_frame(sig, si, uc, copied, copied_len);
		if (outer != NULL)
			uc = outer;
	}
	if (uc != NULL) {
		static const int dwarf_to_greg[AP_CRASH_MAX_REGS] = {
			REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI, REG_RBP, REG_RSP,
			REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15,
			REG_RIP,
		};
		for (unsigned i = 0; i < AP_CRASH_MAX_REGS; i++)
			r.regs[i] = (uint64_t)uc->uc_mcontext.gregs[dwarf_to_greg[i]];
		r.nregs = AP_CRASH_MAX_REGS;
		sp = r.regs[AP_CRASH_DWARF_SP];
		pc = r.regs[AP_CRASH_DWARF_PC];
		fp = r.regs[6];
	}
#endif
	if (sp == 0 || sp != copied) /* also reads the module table */
		copied_len = copy_stack(sp);
	if (copied_len > 0) {
		r.stack_addr = sp;
		r.stack = cs.stack;
		r.stack_len = copied_len;
	}
	/* Raw frames: the pc, then frame pointers while they stay inside the
	 * copy and go up. Code without frame pointers ends this early; the
	 * collector's CFI unwinding does not depend on it. */
	if (pc != 0)
		r.frames[r.nframes++] = pc;
	/* fp is any value rbp held (code without frame pointers uses it as
	 * a general register): fp + 16 may wrap, so compare offsets. */
	while (r.stack_len >= 16 && r.nframes < AP_CRASH_MAX_FRAMES &&
	       fp >= r.stack_addr && fp - r.stack_addr <= r.stack_len - 16 && (fp & 7) == 0) {
		uint64_t next, ret;
		memcpy(&next, cs.stack + (fp - r.stack_addr), 8);
		memcpy(&ret, cs.stack + (fp - r.stack_addr) + 8, 8);
		if (ret == 0)
			break;
		r.frames[r.nframes++] = ret;
		if (next <= fp)
			break;
		fp = next;
	}
	unsigned n = 0;
	for (unsigned i = 0; i < cs.nmods; i++)
		if (cs.exec[i])
			cs.out[n++] = cs.mods[i];
	r.mods = cs.out;
	r.nmods = (uint16_t)n;

	/* The datagram: a batch header and the record; less stack if needed. */
	int64_t off = ((int64_t)wall.tv_sec - mono.tv_sec) * 1000000000 +
	              (wall.tv_nsec - mono.tv_nsec);
	struct ap_batch_hdr h = { .seq = 0, .pid = pl_pid(), .wall_minus_mono_ns = off };
	size_t len = ap_wire_put_batch_hdr(cs.dgram, sizeof cs.dgram, &h), rl = 0;
	while ((rl = ap_wire_put_crash(cs.dgram + len, sizeof cs.dgram - len, &r)) == 0) {
		if (r.stack_len > 0)
			r.stack_len = r.stack_len > 4096 ? r.stack_len - 4096 : 0;
		else if (r.nmods > 0)
			r.nmods /= 2;
		else
			return;
	}
	len += rl;

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = pl_cfg.socket_path;
	struct stat st;
	if (!pl_cfg.socket_from_env)
		path = stat("/run/apiprof/apiprof.sock", &st) == 0 ? "/run/apiprof/apiprof.sock"
		                                                   : "/tmp/apiprof.sock";
	memcpy(sa.sun_path, path, str_len(path, sizeof sa.sun_path - 1));
	int s = pl_real.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	/* A busy collector: wait a little; the process is dying anyway. */
	for (int tries = 0; tries < 40; tries++) {
		ssize_t k = pl_real.sendto(s, cs.dgram, len, MSG_DONTWAIT | MSG_NOSIGNAL,
		                           (const struct sockaddr *)&sa, sizeof sa);
		if (k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS))
			break;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	pl_real.close(s);
}

/* 1 once the process accepted a connection (its fd table has a chunk). */
static int served_http(void)
{
	for (unsigned i = 0; i < PL_FD_TOP; i++)
		if (__atomic_load_n(&pl_fdtab[i], __ATOMIC_RELAXED) != NULL)
			return 1;
	return 0;
}

/* Puts back what was there before us (the default): it runs once we
 * return. */
static void restore(int sig)
{
	int i = sig_index(sig);
	struct sigaction dfl;
	if (i >= 0) {
		dfl = crash_prev[i];
	} else {
		memset(&dfl, 0, sizeof dfl);
		sigemptyset(&dfl.sa_mask);
	}
	dfl.sa_handler = SIG_DFL;
	real_sigaction(sig, &dfl, NULL);
}

/* Until the reporting thread is done, or CRASH_WAIT. */
static void wait_report(void)
{
	uint64_t until = pl_now_ns() + CRASH_WAIT_NS;
	while (!__atomic_load_n(&crash_done, __ATOMIC_ACQUIRE) && pl_now_ns() < until) {
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
}

/*
 * The requests that die with the process. The one this thread was serving
 * is an aborted request of its endpoint (flagged crashed when `reporting`:
 * the crash is its error group), and so are those other threads were
 * serving, or this one's event loop was: their connections close with it.
 * Returns this thread's request's id (0: none, or several), and leaves its
 * method and path in cs.req for the report when `reporting`. Out of line:
 * its copy of the request (over 300 bytes) is off on_crash()'s frame,
 * which a host's small alternate signal stack must hold through the
 * report (a 3.5 KiB one lost the report with it there).
 */
static __attribute__((noinline)) uint64_t crash_requests(int reporting)
{
	struct pl_pending req;
	uint64_t req_id = pl_conn_crash_pending(&req);
	pl_ship_crash_ready(); /* a process dying before its first event */
	uint64_t now = pl_now_ns();
	pl_conn_crash_abort(&req, now, reporting);
	pl_conn_crash_abort_others(req_id, now);
	if (reporting) {
		memcpy(cs.req.method, req.method, req.method_len);
		cs.req.method_len = req.method_len;
		memcpy(cs.req.path, req.path, req.path_len);
		cs.req.path_len = req.path_len;
	}
	return req_id;
}

/* The thread that last put a crash signal's default back (ours went in
 * its place), and when (pl_now_ns()): pl_crash_sigaction() and
 * pl_crash_signal_done() write them, on_crash() reads them. Atomic. */
static uint32_t restorer_tid;
static uint64_t restorer_ns;
/* How recent that must be for a signal the process sent itself to be
 * taken as that thread's (a handler's few system calls take microseconds). */
#define RESTORER_NS (1000 * 1000000ull)
/* How long the thread that got it waits for that thread to take it. */
#define RESTORER_WAIT_NS (200 * 1000000ull)

/* The thread pass_to_restorer() passed a signal to, until it takes it
 * (0: none), and that signal. Atomic. */
static uint32_t passed_tid;
static int passed_sig;

static PL_UNINSTRUMENTED void note_restorer(void)
{
	__atomic_store_n(&restorer_ns, pl_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&restorer_tid, (uint32_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
}

/* A handler of the host's that ends a fault by putting the default back
 * and calling kill(getpid(), sig) (Apache httpd's sig_coredump) sends a
 * process-directed signal: the kernel hands it to a thread that does not
 * block it, never the faulting one (inside that handler, it blocks it).
 * Reported from there, the crash would be that thread's request and
 * stack. So a signal of the process's own, on a thread other than the one
 * that just put the default back, is passed on to that thread, where it
 * is delivered when the host's handler returns, in the faulting context.
 * 1 when passed on and taken there (the caller returns, once that
 * report is done). */
static int pass_to_restorer(int sig, const siginfo_t *si, uint32_t tid)
{
	if (si == NULL || si->si_code != SI_USER || si->si_pid != (pid_t)syscall(SYS_getpid))
		return 0;
	uint32_t r = __atomic_load_n(&restorer_tid, __ATOMIC_ACQUIRE);
	if (r == 0 || r == tid ||
	    pl_now_ns() - __atomic_load_n(&restorer_ns, __ATOMIC_RELAXED) > RESTORER_NS)
		return 0;
	__atomic_store_n(&restorer_tid, 0, __ATOMIC_RELAXED); /* once */
	__atomic_store_n(&passed_sig, sig, __ATOMIC_RELAXED);
	__atomic_store_n(&passed_tid, r, __ATOMIC_RELEASE);
	if (syscall(SYS_tgkill, (pid_t)syscall(SYS_getpid), (pid_t)r, sig) != 0) {
		__atomic_store_n(&passed_tid, 0, __ATOMIC_RELAXED);
		return 0; /* that thread is gone */
	}
	/* It takes it when its handler returns: microseconds. One that never
	 * returns (it waits to be killed) would leave the process running,
	 * as the signal would not have: then it is reported here, as before. */
	uint64_t until = pl_now_ns() + RESTORER_WAIT_NS;
	while (__atomic_load_n(&crash_tid, __ATOMIC_ACQUIRE) == 0 && pl_now_ns() < until) {
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
	if (__atomic_load_n(&crash_tid, __ATOMIC_ACQUIRE) == 0)
		return 0;
	/* Taken: the process dies once that report is sent. Not back into
	 * the host's code meanwhile, where the call this thread was in fails
	 * with EINTR (poll(), epoll_wait(): not restarted), which a host
	 * killed by the signal never saw, and may exit on. Unless it was
	 * interrupted in our own work, perhaps holding the event buffer's
	 * lock, which that report's flush waits for. */
	if (pl_guard.busy != 0)
		return 1;
	wait_report();
	struct timespec ms = { 0, 10 * 1000000 }; /* for the reporter to die */
	nanosleep(&ms, NULL);
	return 1;
}

/* A host's handler that sent the signal may end the process itself
 * before it returns (kill(getpid(), sig), then _exit() after a pause):
 * the thread the kernel handed the signal to would have died of it at
 * once, but ours passed it back to this thread and waits for it to take
 * it, so the process exited with the handler's status instead, not
 * killed by the signal. It takes it now, where it is still ours to
 * report. */
void pl_crash_exiting(void)
{
	uint32_t t = __atomic_load_n(&passed_tid, __ATOMIC_ACQUIRE);
	if (PL_LIKELY(t == 0) || t != (uint32_t)syscall(SYS_gettid))
		return;
	int saved = errno, sig = __atomic_load_n(&passed_sig, __ATOMIC_RELAXED);
	struct sigaction cur;
	if (real_sigaction(sig, NULL, &cur) == 0 && is_ours(&cur)) {
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, sig);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* delivered here */
	}
	errno = saved;
}

static void on_crash(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	struct sigaction cur;
	int ours = real_sigaction(sig, NULL, &cur) == 0 && is_ours(&cur);
	/* A vfork() child before its exec runs in its parent's memory: all
	 * the handler would record or mark there (requests, the event buffer,
	 * which thread reports) is its parent's, still serving. It dies
	 * unreported. */
	int http = served_http() && !pl_borrowed_memory();
	uint32_t tid = (uint32_t)syscall(SYS_gettid), first = 0;
	if (__atomic_load_n(&passed_tid, __ATOMIC_ACQUIRE) == tid)
		__atomic_store_n(&passed_tid, 0, __ATOMIC_RELAXED); /* taken */
	if (ours && http && pass_to_restorer(sig, si, tid)) {
		errno = saved;
		return;
	}
	/* The first thread to crash reports; it leaves our handler in place
	 * until it is done, so that another thread crashing meanwhile (a
	 * fault restored to the default would kill the process at once, the
	 * report and the flush unsent) comes here and waits for it. */
	int reporting = ours && http &&
	                __atomic_compare_exchange_n(&crash_tid, &first, tid, 0, __ATOMIC_ACQ_REL,
	                                            __ATOMIC_ACQUIRE);
	if (!reporting && !(ours && first != 0))
		restore(sig);
	if (http) {
		/* The requests in flight die with the process; then what it
		 * finished before, still in the event buffer (the shipper sends
		 * every SHIP_TICK), goes as exit() would send it, then the crash
		 * itself. Also when a host's handler chained to us: the process
		 * dies all the same. */
		uint64_t req_id = crash_requests(reporting);
		if (!reporting && ours && first != 0 && first != tid)
			wait_report(); /* another thread's; not this one's, interrupted */
		pl_ship_exit_now();
		if (reporting) {
			report(sig, si, uc, req_id);
			__atomic_store_n(&crash_done, 1, __ATOMIC_RELEASE);
		}
	}
	if (reporting || (ours && first != 0))
		restore(sig);
	/* A fault re-executes its instruction; a sent signal must be sent
	 * again (it is blocked until we return), and so must what the kernel
	 * sends with no instruction to repeat, after which the process,
	 * killed by default, went on running: a memory error found in a page
	 * the process maps ("action optional", with early kill), and
	 * SI_KERNEL, which force_sigsegv() gives when a signal's frame cannot
	 * be written (that signal is lost). SI_KERNEL also comes with a
	 * general protection fault, which would repeat: the signal sent
	 * instead kills the same way. */
	if (si == NULL || si->si_code <= 0 || si->si_code == SI_KERNEL ||
	    (sig == SIGBUS && si->si_code == BUS_MCEERR_AO))
		syscall(SYS_tgkill, (pid_t)syscall(SYS_getpid), (pid_t)syscall(SYS_gettid), sig);
	errno = saved;
}

/* 1 while the constructor follows inherited connections (single-threaded:
 * no thread of the host's exists yet). */
static int held;
int pl_crash_pending = PL_PENDING_SHIP;

/* The install: not yet, under way (from the first sigaction to the last,
 * a few microseconds on the installing thread), done. Atomic: two threads
 * may accept at once. */
enum { INSTALL_NONE, INSTALL_BUSY, INSTALL_DONE };
static int install_state;
int pl_crash_live;

static PL_UNINSTRUMENTED int is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_crash;
}

static PL_UNINSTRUMENTED void our_action(struct sigaction *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sa_sigaction = on_crash;
	sa->sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa->sa_mask);
}

/* Our handler where the disposition is the default. Only sigaction:
 * async-signal-safe, for a fork child of a threaded process. Ours, where
 * a previous call put it, is left as it is (SA_SIGINFO), so that calling
 * this again finishes an install cut short. Through the global name, as
 * another interposer of the host's would see it (crash.sh's
 * forkinstall.so does): pl_crash_live is not yet set, so our own hook
 * passes these calls straight through. */
static void install_handlers(void)
{
	for (unsigned i = 0; i < NSIGS; i++) {
		struct sigaction old;
		if (sigaction(crash_sigs[i], NULL, &old) != 0)
			continue;
		if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
			continue; /* the host's (or ignored, or ours): leave it */
		crash_prev[i] = old;
		struct sigaction sa;
		our_action(&sa);
		sigaction(crash_sigs[i], &sa, NULL);
	}
}

void pl_crash_atfork_child(void)
{
	/* A fork while another thread was reporting a crash: that thread is
	 * not in the child, whose crashes are its own to report. */
	crash_tid = 0;
	crash_done = 0;
	restorer_tid = 0; /* a thread of the parent's */
	passed_tid = 0;
	/* A fork while another thread was installing the handlers: that
	 * thread is not in the child either, which would keep only those it
	 * had put in so far. Its parent ends up with all of them, and so
	 * does the child. (pl_fd_slot() installs before the fd table's first
	 * chunk is seen: a child with a chunk never has an install still to
	 * come, but one pending for a first request.) */
	if (__atomic_load_n(&install_state, __ATOMIC_RELAXED) == INSTALL_BUSY) {
		int saved = errno;
		install_handlers();
		__atomic_store_n(&install_state, INSTALL_DONE, __ATOMIC_RELAXED);
		__atomic_store_n(&pl_crash_live, 1, __ATOMIC_RELEASE);
		errno = saved;
	} else if (__atomic_load_n(&install_state, __ATOMIC_RELAXED) == INSTALL_DONE) {
		/* forked between the install's end and its hooks' start */
		__atomic_store_n(&pl_crash_live, 1, __ATOMIC_RELEASE);
	}
}

void pl_crash_hold(int on)
{
	held = on;
}

void pl_crash_install(void)
{
	if (held) {
		__atomic_or_fetch(&pl_crash_pending, PL_PENDING_CRASH, __ATOMIC_RELAXED);
		return;
	}
	if (__atomic_load_n(&pl_crash_pending, __ATOMIC_RELAXED) & PL_PENDING_CRASH)
		__atomic_and_fetch(&pl_crash_pending, ~PL_PENDING_CRASH, __ATOMIC_RELAXED);
	int expect = INSTALL_NONE;
	if (__atomic_load_n(&install_state, __ATOMIC_RELAXED) != INSTALL_NONE ||
	    !__atomic_compare_exchange_n(&install_state, &expect, INSTALL_BUSY, 0,
	                                 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return;
	int saved = errno;
	install_handlers();
	__atomic_store_n(&install_state, INSTALL_DONE, __ATOMIC_RELEASE);
	__atomic_store_n(&pl_crash_live, 1, __ATOMIC_RELEASE);
	pl_debug("crash handler installed where the disposition was the default");
	errno = saved;
}

/* Where the host's call leaves the default, ours goes in its place: not
 * in a vfork() child (its parent's memory: crash_prev would be the
 * parent's), nor once a crash is being reported (then the default is
 * meant: restore() has put it back, or is about to, for the process to
 * die of the signal). */
static PL_UNINSTRUMENTED int keep_ours(void)
{
	return __atomic_load_n(&crash_tid, __ATOMIC_ACQUIRE) == 0 && !pl_borrowed_memory();
}

PL_UNINSTRUMENTED int pl_crash_sigaction(int sig, const struct sigaction *act,
                                         struct sigaction *old)
{
	int i = sig_index(sig);
	if (i < 0)
		return real_sigaction(sig, act, old);
	struct sigaction mine, prev;
	const struct sigaction *put = act;
	int dfl = act != NULL && act->sa_handler == SIG_DFL && keep_ours();
	if (dfl) {
		our_action(&mine);
		put = &mine;
	}
	if (real_sigaction(sig, put, &prev) != 0)
		return -1; /* errno from the real call; nothing changed */
	if (old != NULL)
		*old = is_ours(&prev) ? crash_prev[i] : prev;
	if (dfl) {
		crash_prev[i] = *act;
		note_restorer();
	}
	return 0;
}

PL_UNINSTRUMENTED sighandler_t pl_crash_signal_done(int sig, sighandler_t handler,
                                                   sighandler_t prev)
{
	int i = sig_index(sig);
	if (i < 0 || prev == SIG_ERR)
		return prev;
	if (prev == (sighandler_t)(void (*)(void))on_crash)
		prev = SIG_DFL;
	if (handler == SIG_DFL && keep_ours()) {
		int saved = errno;
		struct sigaction mine, dfl;
		if (real_sigaction(sig, NULL, &dfl) == 0 && dfl.sa_handler == SIG_DFL &&
		    !(dfl.sa_flags & SA_SIGINFO)) {
			our_action(&mine);
			if (real_sigaction(sig, &mine, NULL) == 0) {
				crash_prev[i] = dfl;
				note_restorer();
			}
		}
		errno = saved;
	}
	return prev;
}

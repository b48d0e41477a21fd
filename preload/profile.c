/*
 * profile.c - per-request CPU sampling (SPEC section 3, "CPU samples").
 *
 * A request chosen for profiling (every APIPROF_PROFILE_EVERY-th request a
 * thread reads, or one carrying "X-Apiprof-Profile: 1") gets a session: a
 * POSIX timer on the serving thread's CPU-time clock (CLOCK_THREAD_CPUTIME_ID)
 * firing every PROF_PERIOD_NS of that thread's CPU time, delivered with
 * SIGEV_THREAD_ID to that thread alone, as a real-time signal nobody else in
 * the process handles (the highest one still at SIG_DFL). The timer is the thread's own, created
 * at its first profile; it is armed when the request's headers are complete
 * and disarmed when its response ends.
 *
 * Unwinding: copy, then unwind later. The signal handler copies the
 * interrupted context's registers and the top PROF_STACK bytes of its stack
 * (from the interrupted stack pointer up, never past the thread's stack top)
 * into a preallocated ring of its session. That is a memcpy and a few
 * loads: async-signal-safe by construction, with no lock, no allocation and
 * no dependence on what the interrupted code was doing (inside malloc, the
 * dynamic loader, or another unwinder). The shipper thread (ship.c) drains
 * the rings every PROF_DRAIN_NS while a session is live, and unwinds each
 * sample with elfutils' libdw (dwfl_getthread_frames over the copied
 * registers and stack), which follows the DWARF CFI of .eh_frame/.debug_frame,
 * so frames built without frame pointers (libc, libm, -O2 code) unwind right.
 * Unwinding in the handler (libunwind's unw_init_local) was rejected: it
 * calls dl_iterate_phdr, which takes the loader's lock, from a signal
 * handler, and libunwind.so.8 exports _Unwind_* symbols that would replace
 * libgcc's for a C++ host once our library pulled it in.
 *
 * Symbols: libdw reports the modules from /proc/self/maps and resolves
 * addresses with each file's .symtab (static and non-exported functions of
 * a PIE included) or .dynsym, caching per module; a small direct-mapped
 * cache of pc -> name sits in front. No separate debuginfo files are looked
 * up (and so never debuginfod). libdw is dlopen()ed RTLD_LOCAL on the
 * shipper thread the first time a sample needs it: processes that never
 * profile never load it, and it cannot interpose any symbol of the host.
 *
 * Each session's samples are folded ("outer;...;inner") and counted on the
 * shipper thread, then shipped as AP_REC_PROFILE records, one per distinct
 * stack, once the request has ended and its ring is drained.
 *
 * Memory: PROF_SLOTS sessions of PROF_RING samples, one mapping made at the
 * first profiled request (783 KiB); libdw's module tables (malloc, on
 * the shipper thread) grow with the number of modules mapped.
 *
 * Fork: timers are not inherited; the child frees every slot and builds its
 * own libdw state (the parent's could be mid-update).
 */
#include "config.h"
#include "pl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#if HAVE_LIBDW && defined(__x86_64__) && defined(__linux__)
#define PROF_ENABLED 1
#include <elfutils/libdwfl.h>
#include <dwarf.h>
#else
#define PROF_ENABLED 0
#endif

int32_t pl_prof_left;

void pl_prof_arm(void)
{
	__atomic_store_n(&pl_prof_left, (int32_t)pl_cfg.profile_every, __ATOMIC_RELAXED);
}

#if PROF_ENABLED

#define PROF_SLOTS 2                 /* sessions live at once, per process
                                        (< 128: conn.c keeps one in 7 bits) */
#define PROF_RING 48                 /* samples buffered per session: 48 ms of
                                        CPU, the shipper drains every 20 ms */
#define PROF_STACK 8192              /* stack bytes copied per sample */
#define PROF_REGS 17                 /* x86-64 DWARF registers 0-16 (16: rip) */
#define PROF_PERIOD_NS 1000000L      /* 1 kHz of the thread's CPU time */
#define PROF_MAX_AGE_NS (30ull * 1000000000ull) /* a session never outlives this */
#define PROF_DEPTH 64                /* frames kept per stack */
#define PROF_STACKS 256              /* distinct stacks kept per session */
#define PROF_FOLD_MAX 4096           /* bytes of one folded stack */
#define PROF_PATH_MAX 256

enum { SLOT_FREE = 0, SLOT_ARMING, SLOT_ACTIVE, SLOT_DONE };

struct prof_sample {
	uint64_t regs[PROF_REGS];
	uint64_t sp;
	uint32_t stack_len;
	uint32_t tid;
	uint32_t weight;           /* 1 + the timer's overruns */
	uint8_t stack[PROF_STACK];
};

struct prof_slot {
	int state;                 /* SLOT_*, atomic */
	int busy;                  /* handlers running on this slot, atomic */
	uint32_t tid;              /* the sampled thread */
	uint32_t gen;              /* bumped per session */
	timer_t timer;
	int have_timer;
	uint64_t req_id;
	uint64_t begin_ns;
	uint64_t stack_lo, stack_hi; /* the sampled thread's stack */
	uint16_t flags;            /* enum ap_prof_flags */
	uint8_t method_len;
	uint16_t path_len;
	char method[AP_HTTP_METHOD_MAX];
	char path[PROF_PATH_MAX];
	uint32_t head;             /* written by the handler (release) */
	uint32_t tail;             /* written by the shipper (release) */
	uint32_t lost;             /* ring full */
	struct prof_sample ring[PROF_RING];
};

static struct prof_slot *slots;  /* PROF_SLOTS of them, mapped once */
/* 0: not installed yet; -1: unavailable. Global for hook_signal.c's
 * check, which must not call into instrumented code (pl.h). */
int pl_prof_signo;
static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;

/* The session sampling this thread (initial-exec TLS, read by the handler),
 * and the thread's stack bounds, looked up once per thread. */
static __thread struct prof_slot *th_slot;
static __thread uint32_t th_gen;
static __thread uint64_t th_stack_lo, th_stack_hi;
/* The thread's CPU-time timer, created at its first profile and kept,
 * disarmed between profiles: arming and disarming are two system calls per
 * profiled request where create/arm/delete were three, and timer_create
 * and timer_delete are the dearer ones (CPU time on the development VM:
 * 4.4-5.4 us for the three, 3.4-3.8 us for the two). A thread-exit destructor deletes it. A session
 * ended on another thread disarms it from there (timer ids are
 * process-wide). */
static __thread timer_t th_timer;
static __thread int th_timer_ok;    /* 1: th_timer exists; -1: never here */
static pthread_key_t timer_key;
static pthread_once_t timer_key_once = PTHREAD_ONCE_INIT;

/* ---- the signal handler: copies, nothing more ---- */

/* The copy reads other frames' bytes: never instrumented (ASan would
 * see redzones). */
__attribute__((no_sanitize_address))
static void prof_handler(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	int saved = errno;
	struct prof_slot *s = th_slot;
	if (s == NULL)
		goto out;
	/* busy before state, both sequentially consistent: the shipper,
	 * which stores DONE and then reads busy, either sees us busy or we
	 * see DONE. */
	__atomic_add_fetch(&s->busy, 1, __ATOMIC_SEQ_CST);
	uint32_t tid = pl_tid();
	if (__atomic_load_n(&s->state, __ATOMIC_SEQ_CST) != SLOT_ACTIVE || s->tid != tid ||
	    s->gen != th_gen)
		goto done;
	uint32_t head = s->head;
	if (head - __atomic_load_n(&s->tail, __ATOMIC_ACQUIRE) >= PROF_RING) {
		s->lost++;
		goto done;
	}
	struct prof_sample *p = &s->ring[head % PROF_RING];
	const greg_t *g = ((ucontext_t *)uctx)->uc_mcontext.gregs;
	/* DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip. */
	static const int map[PROF_REGS] = {
		REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI, REG_RBP, REG_RSP,
		REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP,
	};
	for (int i = 0; i < PROF_REGS; i++)
		p->regs[i] = (uint64_t)g[map[i]];
	uint64_t sp = (uint64_t)g[REG_RSP];
	p->sp = sp;
	p->tid = tid;
	/* CPU-time timers are checked at the scheduler tick (often 250 Hz), so
	 * one signal may stand for several expirations: weigh the sample by
	 * them, and each count stays about PROF_PERIOD_NS of CPU. */
	int over = si && si->si_code == SI_TIMER ? si->si_overrun : 0;
	p->weight = 1 + (uint32_t)(over < 0 ? 0 : over > 1000 ? 1000 : over);
	p->stack_len = 0;
	/* Only a stack pointer inside the thread's own stack is copied from:
	 * code running on a sigaltstack or a coroutine stack gets its leaf pc. */
	if (sp >= s->stack_lo && sp < s->stack_hi) {
		uint64_t n = s->stack_hi - sp;
		if (n > PROF_STACK)
			n = PROF_STACK;
		memcpy(p->stack, (const void *)sp, n);
		p->stack_len = (uint32_t)n;
	}
	__atomic_store_n(&s->head, head + 1, __ATOMIC_RELEASE);
done:
	__atomic_sub_fetch(&s->busy, 1, __ATOMIC_SEQ_CST);
out:
	errno = saved;
}

/* Picks the highest real-time signal nobody handles and installs our
 * handler on it. Runs once per process (under setup_lock). */
static PL_COLD int install_handler(void)
{
	for (int sig = SIGRTMAX - 1; sig >= SIGRTMIN + 2; sig--) {
		struct sigaction old;
		if (sigaction(sig, NULL, &old) != 0)
			continue;
		if (old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO))
			continue;
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_sigaction = prof_handler;
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
		sigfillset(&sa.sa_mask);
		if (sigaction(sig, &sa, NULL) != 0)
			continue;
		pl_debug("profiler: sampling with signal %d", sig);
		return sig;
	}
	pl_debug("profiler: no free real-time signal, profiling off");
	return -1;
}

/* 1 while our handler still owns the signal: a host that installs its own
 * handler on it later wins, and profiling stands down. */
static int handler_still_ours(int sig)
{
	struct sigaction cur;
	if (sigaction(sig, NULL, &cur) != 0)
		return 0;
	return (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == prof_handler;
}

static PL_COLD int setup(void)
{
	pthread_mutex_lock(&setup_lock);
	if (slots == NULL) {
		void *m = mmap(NULL, sizeof(struct prof_slot) * PROF_SLOTS, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m != MAP_FAILED)
			__atomic_store_n(&slots, (struct prof_slot *)m, __ATOMIC_RELEASE);
		else
			__atomic_store_n(&pl_prof_signo, -1, __ATOMIC_RELEASE);
	}
	/* atomic: the shipper reads it (pl_prof_work) without this lock */
	if (__atomic_load_n(&pl_prof_signo, __ATOMIC_ACQUIRE) == 0)
		__atomic_store_n(&pl_prof_signo, install_handler(), __ATOMIC_RELEASE);
	int ok = __atomic_load_n(&pl_prof_signo, __ATOMIC_ACQUIRE) > 0;
	pthread_mutex_unlock(&setup_lock);
	return ok;
}

static void thread_stack(void)
{
	pthread_attr_t a;
	void *addr;
	size_t size;
	th_stack_hi = 1; /* looked up, even if it fails */
	if (pthread_getattr_np(pthread_self(), &a) != 0)
		return;
	if (pthread_attr_getstack(&a, &addr, &size) == 0) {
		th_stack_lo = (uint64_t)(uintptr_t)addr;
		th_stack_hi = th_stack_lo + size;
	}
	pthread_attr_destroy(&a);
}

static void timer_at_exit(void *unused)
{
	if (th_timer_ok > 0) {
		th_timer_ok = 0;
		timer_delete(th_timer);
	}
}

static void timer_key_make(void)
{
	if (pthread_key_create(&timer_key, timer_at_exit) != 0)
		timer_key = (pthread_key_t)-1;
}

static PL_COLD int thread_timer(void)
{
	if (th_timer_ok < 0)
		return 0;
	/* A thread that blocks the signal may be reading it with sigwait() or
	 * a signalfd: our samples would reach the host. Never profile there
	 * (asked once per thread). */
	sigset_t cur;
	if (pthread_sigmask(SIG_BLOCK, NULL, &cur) != 0 || sigismember(&cur, pl_prof_signo)) {
		th_timer_ok = -1;
		return 0;
	}
	pthread_once(&timer_key_once, timer_key_make);
	if (timer_key == (pthread_key_t)-1)
		return 0;
	struct sigevent sev;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = pl_prof_signo;
	sev._sigev_un._tid = (pid_t)pl_tid();
	if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &th_timer) != 0)
		return 0;
	/* Any non-NULL value: the destructor runs at this thread's exit. */
	if (pthread_setspecific(timer_key, &th_timer) != 0) {
		timer_delete(th_timer);
		return 0;
	}
	th_timer_ok = 1;
	return 1;
}

static void signal_lost(int sig);

int pl_prof_begin(uint64_t req_id, int header, const char *method, size_t mlen,
                  const char *path, size_t plen)
{
	if (__atomic_load_n(&pl_prof_signo, __ATOMIC_ACQUIRE) < 0)
		return 0;
	int saved = errno;
	int slot_no = 0;
	if (th_slot != NULL &&
	    __atomic_load_n(&th_slot->state, __ATOMIC_ACQUIRE) == SLOT_ACTIVE &&
	    th_slot->tid == pl_tid() && th_slot->gen == th_gen)
		goto out; /* one session per thread: an event loop's other requests wait */
	if (__atomic_load_n(&slots, __ATOMIC_ACQUIRE) == NULL ||
	    __atomic_load_n(&pl_prof_signo, __ATOMIC_ACQUIRE) == 0) {
		if (!setup())
			goto out;
	}
	int sig = __atomic_load_n(&pl_prof_signo, __ATOMIC_ACQUIRE);
	if (sig <= 0)
		goto out; /* the shipper found it lost meanwhile */
	/* At most once a second: a sigaction() per profiled request would be
	 * a quarter of a profile's fixed cost. (The shipper checks too, at
	 * each pass: pl_prof_work.) */
	static uint64_t checked_ns;
	uint64_t now = pl_now_ns();
	if (now - __atomic_load_n(&checked_ns, __ATOMIC_RELAXED) > 1000000000ull &&
	    (__atomic_store_n(&checked_ns, now, __ATOMIC_RELAXED), !handler_still_ours(sig))) {
		signal_lost(sig);
		goto out;
	}
	struct prof_slot *s = NULL;
	int i;
	for (i = 0; i < PROF_SLOTS; i++) {
		int expect = SLOT_FREE;
		if (__atomic_compare_exchange_n(&slots[i].state, &expect, SLOT_ARMING, 0,
		                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			s = &slots[i];
			break;
		}
	}
	if (s == NULL)
		goto out; /* every slot busy: this request goes unprofiled */
	if (th_stack_hi == 0)
		thread_stack();
	s->tid = pl_tid();
	s->gen++;
	s->req_id = req_id;
	/* atomic: the shipper's age check (pl_prof_work) may still be reading
	 * the previous session's value */
	__atomic_store_n(&s->begin_ns, now, __ATOMIC_RELAXED);
	s->stack_lo = th_stack_lo;
	s->stack_hi = th_stack_hi;
	s->flags = header ? AP_PROFF_HEADER : 0;
	s->method_len = (uint8_t)(mlen < sizeof s->method ? mlen : sizeof s->method);
	memcpy(s->method, method, s->method_len);
	s->path_len = (uint16_t)(plen < sizeof s->path ? plen : sizeof s->path);
	memcpy(s->path, path, s->path_len);
	/* Atomic, as begin_ns: pl_prof_end() frees a slot that took no sample
	 * at once, so the shipper may still be looking at it (pl_prof_work) from
	 * the previous session, whose head and tail were 0 too. It then reads
	 * either those zeros or this session's samples, which go to this slot's
	 * fold all the same. */
	__atomic_store_n(&s->head, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->tail, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->lost, 0, __ATOMIC_RELAXED);
	s->have_timer = 0;
	th_gen = s->gen;
	th_slot = s;
	if (th_timer_ok <= 0 && !thread_timer()) {
		__atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_RELEASE);
		goto out;
	}
	s->timer = th_timer;
	s->have_timer = 1;
	__atomic_store_n(&s->state, SLOT_ACTIVE, __ATOMIC_SEQ_CST);
	static const struct itimerspec its = {
		.it_interval = { 0, PROF_PERIOD_NS },
		.it_value = { 0, PROF_PERIOD_NS },
	};
	if (timer_settime(th_timer, 0, &its, NULL) != 0) {
		s->have_timer = 0;
		__atomic_store_n(&s->state, SLOT_DONE, __ATOMIC_RELEASE);
		goto out;
	}
	/* The shipper may have found the signal lost and stopped this session
	 * between its ACTIVE above and the arming, with no timer yet to stop
	 * (pl_prof_work): a timer left running would send a signal that is no
	 * longer ours (by default, death). It stores -1 before it looks at the
	 * slots, so either it saw ACTIVE only after our arming and stopped the
	 * timer, or we see -1 here. (th_timer, this thread's own: the slot may
	 * be another session's by now.) */
	if (__atomic_load_n(&pl_prof_signo, __ATOMIC_SEQ_CST) < 0) {
		static const struct itimerspec off;
		timer_settime(th_timer, 0, &off, NULL);
	}
	slot_no = i + 1;
out:
	errno = saved;
	return slot_no;
}

/* Stops sampling a session (any thread may: timer ids are process-wide). */
static void slot_stop(struct prof_slot *s)
{
	static const struct itimerspec off;
	if (s->have_timer) {
		timer_settime(s->timer, 0, &off, NULL);
		s->have_timer = 0;
	}
	__atomic_store_n(&s->state, SLOT_DONE, __ATOMIC_SEQ_CST);
}

void pl_prof_end(int slot_no, uint64_t req_id)
{
	if (slot_no <= 0 || slot_no > PROF_SLOTS || slots == NULL)
		return;
	int saved = errno;
	struct prof_slot *s = &slots[slot_no - 1];
	int expect = SLOT_ACTIVE;
	if (s->req_id == req_id &&
	    __atomic_compare_exchange_n(&s->state, &expect, SLOT_ARMING, 0,
	                                __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE)) {
		/* Most requests chosen are shorter than one sampling period and
		 * took no sample: their slot is free again at once, rather than
		 * after the shipper's next pass, so a busy server keeps profiling
		 * every Nth request. A handler past its state check (busy) or a
		 * sample taken sends the slot to the shipper. */
		if (__atomic_load_n(&s->busy, __ATOMIC_SEQ_CST) == 0 &&
		    __atomic_load_n(&s->head, __ATOMIC_SEQ_CST) == 0) {
			static const struct itimerspec off;
			if (s->have_timer)
				timer_settime(s->timer, 0, &off, NULL);
			s->have_timer = 0;
			__atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_SEQ_CST);
		} else {
			slot_stop(s);
		}
	}
	if (th_slot == s)
		th_slot = NULL;
	errno = saved;
}

int pl_prof_live(void)
{
	struct prof_slot *sl = __atomic_load_n(&slots, __ATOMIC_ACQUIRE);
	if (sl == NULL)
		return 0;
	for (int i = 0; i < PROF_SLOTS; i++)
		if (__atomic_load_n(&sl[i].state, __ATOMIC_ACQUIRE) != SLOT_FREE)
			return 1;
	return 0;
}

/* ---- the shipper side: libdw, unwinding, folding ---- */

static struct {
	void *h;
	int failed;
	Dwfl *(*begin)(const Dwfl_Callbacks *);
	void (*end)(Dwfl *);
	int (*report_begin_add)(Dwfl *);
	int (*report_end)(Dwfl *, int (*)(Dwfl_Module *, void *, const char *, Dwarf_Addr, void *), void *);
	int (*proc_report)(Dwfl *, pid_t);
	int (*proc_find_elf)(Dwfl_Module *, void **, const char *, Dwarf_Addr, char **, Elf **);
	bool (*attach_state)(Dwfl *, Elf *, pid_t, const Dwfl_Thread_Callbacks *, void *);
	bool (*state_registers)(Dwfl_Thread *, int, unsigned, const Dwarf_Word *);
	int (*getthread_frames)(Dwfl *, pid_t, int (*)(Dwfl_Frame *, void *), void *);
	bool (*frame_pc)(Dwfl_Frame *, Dwarf_Addr *, bool *);
	Dwfl_Module *(*addrmodule)(Dwfl *, Dwarf_Addr);
	const char *(*addrname)(Dwfl_Module *, GElf_Addr);
	const char *(*module_info)(Dwfl_Module *, void ***, Dwarf_Addr *, Dwarf_Addr *,
	                           Dwarf_Addr *, Dwarf_Addr *, const char **, const char **);
	Dwfl *dwfl;
	uint32_t dwfl_pid;
	uint64_t last_report_ns;
	const struct prof_sample *cur;  /* the sample being unwound */
} dw;

static int no_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
                        Dwarf_Addr base, const char *file_name,
                        const char *debuglink_file, GElf_Word debuglink_crc,
                        char **debuginfo_file_name)
{
	return -1;
}

static int dw_find_elf(Dwfl_Module *mod, void **userdata, const char *modname,
                       Dwarf_Addr base, char **file_name, Elf **elfp)
{
	return dw.proc_find_elf(mod, userdata, modname, base, file_name, elfp);
}

static const Dwfl_Callbacks dw_callbacks = {
	.find_elf = dw_find_elf,
	.find_debuginfo = no_debuginfo,
};

static pid_t dw_next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	if (*thread_argp != NULL || dw.cur == NULL)
		return 0;
	*thread_argp = (void *)dw.cur;
	return (pid_t)dw.cur->tid;
}

static bool dw_memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	const struct prof_sample *p = dw.cur;
	/* addr comes from unwinding, i.e. from whatever the stack held: near
	 * 2^64, addr + 8 would wrap and pass a check written as a sum. */
	if (p == NULL || addr < p->sp || addr - p->sp >= p->stack_len ||
	    p->stack_len - (addr - p->sp) < sizeof *result)
		return false;
	memcpy(result, p->stack + (addr - p->sp), sizeof *result);
	return true;
}

static bool dw_set_regs(Dwfl_Thread *thread, void *thread_arg)
{
	const struct prof_sample *p = thread_arg;
	return dw.state_registers(thread, 0, PROF_REGS, p->regs);
}

static const Dwfl_Thread_Callbacks dw_thread_callbacks = {
	.next_thread = dw_next_thread,
	.memory_read = dw_memory_read,
	.set_initial_registers = dw_set_regs,
};

#define DW_SYM(field, name) \
	do { \
		*(void **)&dw.field = dlsym(dw.h, name); \
		if (!dw.field) \
			goto fail; \
	} while (0)

static int dw_load(void)
{
	if (dw.h)
		return 1;
	if (dw.failed)
		return 0;
	dw.h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!dw.h)
		goto fail;
	DW_SYM(begin, "dwfl_begin");
	DW_SYM(end, "dwfl_end");
	DW_SYM(report_begin_add, "dwfl_report_begin_add");
	DW_SYM(report_end, "dwfl_report_end");
	DW_SYM(proc_report, "dwfl_linux_proc_report");
	DW_SYM(proc_find_elf, "dwfl_linux_proc_find_elf");
	DW_SYM(attach_state, "dwfl_attach_state");
	DW_SYM(state_registers, "dwfl_thread_state_registers");
	DW_SYM(getthread_frames, "dwfl_getthread_frames");
	DW_SYM(frame_pc, "dwfl_frame_pc");
	DW_SYM(addrmodule, "dwfl_addrmodule");
	DW_SYM(addrname, "dwfl_module_addrname");
	DW_SYM(module_info, "dwfl_module_info");
	return 1;
fail:
	pl_debug("profiler: cannot load libdw.so.1 (install libdw1): stacks not unwound");
	dw.failed = 1;
	if (dw.h)
		dlclose(dw.h);
	dw.h = NULL;
	return 0;
}

/* Reports the process's modules again (new ones appear after dlopen);
 * known ones keep their tables. */
static void dw_report(void)
{
	dw.report_begin_add(dw.dwfl);
	dw.proc_report(dw.dwfl, (pid_t)pl_pid());
	dw.report_end(dw.dwfl, NULL, NULL);
	dw.last_report_ns = pl_now_ns();
}

static int dw_ready(void)
{
	if (dw.dwfl && dw.dwfl_pid == pl_pid())
		return 1;
	if (!dw_load())
		return 0;
	dw.dwfl = dw.begin(&dw_callbacks);
	if (!dw.dwfl)
		return 0;
	dw.dwfl_pid = pl_pid();
	dw_report();
	if (!dw.attach_state(dw.dwfl, NULL, (pid_t)dw.dwfl_pid, &dw_thread_callbacks, NULL)) {
		dw.end(dw.dwfl);
		dw.dwfl = NULL;
		return 0;
	}
	return 1;
}

struct frames {
	uint64_t pc[PROF_DEPTH];
	int n;
	int truncated;
};

static int frame_cb(Dwfl_Frame *f, void *arg)
{
	struct frames *fr = arg;
	Dwarf_Addr pc;
	bool activation;
	if (!dw.frame_pc(f, &pc, &activation))
		return DWARF_CB_ABORT;
	if (fr->n == PROF_DEPTH) {
		fr->truncated = 1;
		return DWARF_CB_ABORT;
	}
	/* A return address points after the call: look up the call itself. */
	fr->pc[fr->n++] = activation ? pc : pc - 1;
	return DWARF_CB_OK;
}

/* pc -> name, direct-mapped; names are owned by libdw's modules, which
 * report_begin_add keeps. */
#define NAME_CACHE 2048
static struct {
	uint64_t pc;
	const char *name;
} name_cache[NAME_CACHE];

static const char *basename_of(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static const char *symbolise(uint64_t pc, char *tmp, size_t tmplen)
{
	size_t h = (size_t)((pc * 0x9E3779B97F4A7C15ull) >> 53) % NAME_CACHE;
	if (name_cache[h].pc == pc && name_cache[h].name)
		return name_cache[h].name;
	Dwfl_Module *m = dw.addrmodule(dw.dwfl, pc);
	if (m == NULL && pl_now_ns() - dw.last_report_ns > 1000000000ull) {
		dw_report(); /* a library loaded since: at most once a second */
		m = dw.addrmodule(dw.dwfl, pc);
	}
	const char *name = m ? dw.addrname(m, pc) : NULL;
	if (name && *name) {
		name_cache[h].pc = pc;
		name_cache[h].name = name;
		return name;
	}
	/* No symbol: the module's name, so the frame still folds together. */
	const char *mname = m ? dw.module_info(m, NULL, NULL, NULL, NULL, NULL, NULL, NULL) : NULL;
	if (mname)
		snprintf(tmp, tmplen, "[%s]", basename_of(mname));
	else
		snprintf(tmp, tmplen, "[unknown]");
	return tmp;
}

struct fold_set {
	uint32_t n;
	uint32_t other;   /* samples past PROF_STACKS distinct stacks */
	struct {
		uint64_t hash;
		uint32_t count;
		uint16_t flags;
		char *text;
	} e[PROF_STACKS];
};

/* Per slot, the shipper's folding state for the session being drained. */
static struct fold_set *folds[PROF_SLOTS];

static void fold_add(struct fold_set *fs, const char *text, size_t len, uint16_t flags,
                     uint32_t weight)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)text[i]) * 1099511628211ull;
	for (uint32_t i = 0; i < fs->n; i++)
		if (fs->e[i].hash == h && strcmp(fs->e[i].text, text) == 0) {
			fs->e[i].count += weight;
			return;
		}
	if (fs->n == PROF_STACKS) {
		fs->other += weight;
		return;
	}
	char *t = malloc(len + 1);
	if (t == NULL) {
		fs->other += weight;
		return;
	}
	memcpy(t, text, len + 1);
	fs->e[fs->n].hash = h;
	fs->e[fs->n].count = weight;
	fs->e[fs->n].flags = flags;
	fs->e[fs->n].text = t;
	fs->n++;
}

/* Unwinds, symbolises and folds one sample into fs. */
static void fold_sample(struct fold_set *fs, const struct prof_sample *p)
{
	struct frames fr = { .n = 0 };
	dw.cur = p;
	dw.getthread_frames(dw.dwfl, (pid_t)p->tid, frame_cb, &fr);
	dw.cur = NULL;
	if (fr.n == 0) /* not even the pc: unwinding refused the thread */
		fr.pc[fr.n++] = p->regs[16];
	char text[PROF_FOLD_MAX];
	size_t len = 0;
	int truncated = fr.truncated;
	for (int i = fr.n - 1; i >= 0; i--) {
		char tmp[128];
		const char *name = symbolise(fr.pc[i], tmp, sizeof tmp);
		size_t nl = strlen(name);
		if (len + nl + 2 > sizeof text) {
			truncated = 1;
			break;
		}
		if (len)
			text[len++] = ';';
		/* ';' separates frames and ' ' ends the stack in folded text. */
		for (size_t k = 0; k < nl; k++)
			text[len++] = name[k] == ';' || name[k] == ' ' ? '_' : name[k];
	}
	text[len] = '\0';
	fold_add(fs, text, len, truncated ? AP_PROFF_TRUNCATED : 0, p->weight);
}

static void ship_folds(struct prof_slot *s, struct fold_set *fs)
{
	for (uint32_t i = 0; i < fs->n; i++) {
		struct ap_rec_profile r = {
			.req_id = s->req_id,
			.tid = s->tid,
			.count = fs->e[i].count,
			.flags = (uint16_t)(s->flags | fs->e[i].flags),
			.method = { s->method, s->method_len },
			.path = { s->path, s->path_len },
			.stack = { fs->e[i].text, (uint16_t)strlen(fs->e[i].text) },
		};
		pl_ship_profile(&r);
		free(fs->e[i].text);
	}
	if (fs->other) {
		struct ap_rec_profile r = {
			.req_id = s->req_id, .tid = s->tid, .count = fs->other,
			.flags = (uint16_t)(s->flags | AP_PROFF_TRUNCATED),
			.method = { s->method, s->method_len },
			.path = { s->path, s->path_len },
			.stack = { "[other]", 7 },
		};
		pl_ship_profile(&r);
	}
	if (s->lost)
		pl_debug("profiler: request %llu lost %u samples (ring full)",
		         (unsigned long long)s->req_id, s->lost);
	fs->n = 0;
	fs->other = 0;
}

/* Stops a live session on behalf of the shipper or of a host's sigaction()
 * (any thread): 1 if this call stopped it, 0 if it was not live or its
 * request ended meanwhile. The slot then waits, DONE, for the shipper to
 * drain and ship it. */
static int slot_stop_live(struct prof_slot *s)
{
	int expect = SLOT_ACTIVE;
	if (!__atomic_compare_exchange_n(&s->state, &expect, SLOT_ARMING, 0,
	                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return 0;
	slot_stop(s);
	return 1;
}

/* The sampling signal is no longer ours: profiling stands down for the
 * process. Stored before any slot is looked at (SEQ_CST): pl_prof_begin()
 * relies on it to stop a timer it arms after the caller's look. */
static void signal_lost(int sig)
{
	pl_debug("profiler: signal %d taken over by the host, profiling off", sig);
	__atomic_store_n(&pl_prof_signo, -1, __ATOMIC_SEQ_CST);
}

void pl_prof_signal_set(int sig, void (*action)(int, siginfo_t *, void *))
{
	if (sig <= 0 || sig != __atomic_load_n(&pl_prof_signo, __ATOMIC_ACQUIRE) ||
	    action == prof_handler)
		return; /* not the sampling signal (any more), or our own handler */
	int saved = errno;
	signal_lost(sig);
	struct prof_slot *sl = __atomic_load_n(&slots, __ATOMIC_ACQUIRE);
	if (sl != NULL)
		for (int i = 0; i < PROF_SLOTS; i++)
			slot_stop_live(&sl[i]);
	errno = saved;
}

void pl_prof_work(void)
{
	struct prof_slot *sl = __atomic_load_n(&slots, __ATOMIC_ACQUIRE);
	if (sl == NULL)
		return;
	/* The host took the signal over, or put its default back, in a way
	 * the sigaction() hooks did not see (a raw rt_sigaction system call,
	 * a host linked before us): stop sampling now, on this thread, rather
	 * than at the next profile's start (at most once a second there),
	 * since a timer still armed then would kill the process (a real-time
	 * signal's default action). */
	int sig = __atomic_load_n(&pl_prof_signo, __ATOMIC_ACQUIRE);
	if (sig > 0 && !handler_still_ours(sig)) {
		signal_lost(sig);
		sig = -1;
	}
	/* Also on later passes: a profile that was starting as the signal
	 * was found lost may have armed its timer after this loop. (With no
	 * signal from the start, no session is ever live.) */
	int stolen = sig < 0;
	for (int i = 0; i < PROF_SLOTS; i++) {
		struct prof_slot *s = &sl[i];
		int st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		if (st != SLOT_ACTIVE && st != SLOT_DONE)
			continue;
		/* The session may end, and a new one take the slot, at any time
		 * (pl_prof_end() frees a slot that took no sample at once): begin_ns
		 * is read before the clock, so that a newer session's start cannot
		 * make the age wrap around, and the slot counts as ours to stop only
		 * if the state changes from the ACTIVE seen here. */
		uint64_t begun = __atomic_load_n(&s->begin_ns, __ATOMIC_RELAXED);
		if (st == SLOT_ACTIVE && (stolen || pl_now_ns() - begun > PROF_MAX_AGE_NS)) {
			/* Its end was never seen (the connection stopped being
			 * followed), or the signal is no longer ours: stop
			 * sampling. */
			if (!slot_stop_live(s))
				continue; /* ended meanwhile: seen again next pass */
			st = SLOT_DONE;
		}
		if (folds[i] == NULL) {
			folds[i] = calloc(1, sizeof *folds[i]);
			if (folds[i] == NULL)
				continue;
		}
		int ready = dw_ready();
		uint32_t head = __atomic_load_n(&s->head, __ATOMIC_ACQUIRE);
		for (uint32_t t = __atomic_load_n(&s->tail, __ATOMIC_RELAXED); t != head; t++) {
			if (ready)
				fold_sample(folds[i], &s->ring[t % PROF_RING]);
			__atomic_store_n(&s->tail, t + 1, __ATOMIC_RELEASE);
		}
		if (st == SLOT_DONE && __atomic_load_n(&s->busy, __ATOMIC_SEQ_CST) == 0 &&
		    __atomic_load_n(&s->head, __ATOMIC_ACQUIRE) ==
		            __atomic_load_n(&s->tail, __ATOMIC_RELAXED)) {
			ship_folds(s, folds[i]);
			__atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_RELEASE);
		}
	}
}

void pl_prof_atfork_child(void)
{
	/* Another thread of the parent may have held it. */
	pthread_mutex_init(&setup_lock, NULL);
	/* POSIX timers are not inherited; the parent's sessions are its own. */
	th_slot = NULL;
	th_timer_ok = 0;
	pl_prof_arm();
	if (slots)
		for (int i = 0; i < PROF_SLOTS; i++) {
			slots[i].state = SLOT_FREE;
			slots[i].busy = 0;
			slots[i].have_timer = 0;
		}
	for (int i = 0; i < PROF_SLOTS; i++)
		if (folds[i]) {
			for (uint32_t k = 0; k < folds[i]->n; k++)
				free(folds[i]->e[k].text);
			folds[i]->n = folds[i]->other = 0;
		}
	/* The parent's libdw state may have been mid-update: leave it, and
	 * build a new one for this pid when needed. */
	dw.dwfl = NULL;
	dw.cur = NULL;
	memset(name_cache, 0, sizeof name_cache);
}

#else /* !PROF_ENABLED: configure found no libdw headers */

int pl_prof_signo; /* never set: no sampling signal */

int pl_prof_begin(uint64_t req_id, int header, const char *method, size_t mlen,
                  const char *path, size_t plen)
{
	return 0;
}

void pl_prof_end(int slot_no, uint64_t req_id)
{
}

int pl_prof_live(void)
{
	return 0;
}

void pl_prof_work(void)
{
}

void pl_prof_atfork_child(void)
{
	pl_prof_arm();
}

void pl_prof_signal_set(int sig, void (*action)(int, siginfo_t *, void *))
{
}

#endif

/*
 * hook_signal.c - the calls that set a signal's disposition, watched for
 * the one signal the CPU profiler samples with (profile.c) and for the
 * five the crash handler catches (crash.c).
 *
 * The profiler takes the highest real-time signal nobody handles when it
 * first profiles. A host may claim that signal later, with its own handler
 * or by putting the default back (some daemons reset every signal). From
 * then on a profiled request's armed timer would deliver samples to the
 * host's handler, or kill the host (a real-time signal's default action).
 * The shipper thread notices at its next pass, 20-100 ms later; these hooks
 * make it happen before the host's call: pl_prof_signal_set() disarms every
 * live timer, then the real call is made with the caller's arguments,
 * untouched, and its result and errno returned.
 *
 * SIGSEGV, SIGABRT, SIGBUS, SIGFPE and SIGILL, once the crash handler is
 * installed (pl_crash_live), go to crash.c, which shows the host the
 * default disposition where our handler is, and keeps ours where the host
 * puts the default back: a runtime's handler that ends by restoring the
 * default and raising the signal again (Node's, Python's faulthandler)
 * then dies through ours, reported, and a handler installed later never
 * finds ours as the one to chain to.
 *
 * Every entry point glibc exports is hooked: signal(), bsd_signal(),
 * ssignal(), sysv_signal() and sigset() reach the kernel through glibc's
 * internal __sigaction, never through an interposable name (as the exec
 * family does, hook_exec.c). A raw rt_sigaction system call (syscall(), or
 * a statically linked runtime) is not seen here: the shipper's check is
 * the backstop for the profiler's signal; for the crash signals such a
 * call replaces ours as it would without us.
 *
 * Cost: a load and a compare or two per call, and these are rare calls
 * (start-up, or a handler's own re-installation). All are
 * async-signal-safe as the real calls are: a host may call them from a
 * signal handler.
 */
#include "config.h"
#include "pl.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>

#define EXPORT __attribute__((visibility("default")))

/* ThreadSanitizer's runtime (scripts/test.sh's TSan stage preloads it
 * before us) installs its own fatal-signal handlers while it initialises,
 * through the next sigaction() after its own: ours. Instrumented code run
 * then crashes (its thread state does not exist yet), so nothing on the way
 * from these hooks to the real call may be instrumented: the hooks are
 * built without TSan, resolve the real functions themselves (pl_resolve()
 * is instrumented), and call into profile.c only for the sampling signal,
 * which exists only once profiling ran, long after. */
#define UNINSTRUMENTED PL_UNINSTRUMENTED

/* The real function for slot, looked up once (racing threads store the
 * same value); NULL only if the C library lacks it. */
static UNINSTRUMENTED void *real(void **slot, const char *name)
{
	void *fn = __atomic_load_n(slot, __ATOMIC_RELAXED);
	if (PL_UNLIKELY(fn == NULL)) {
		fn = dlsym(RTLD_NEXT, name);
		__atomic_store_n(slot, fn, __ATOMIC_RELAXED);
	}
	return fn;
}
#define REAL(fn) real((void **)&pl_real.fn, #fn)

/* 1 when sig is the profiler's sampling signal. */
static UNINSTRUMENTED int sampling(int sig)
{
	int prof = __atomic_load_n(&pl_prof_signo, __ATOMIC_ACQUIRE);
	return PL_UNLIKELY(prof > 0 && sig == prof);
}

/* 1 when sig is one of the crash handler's and its install is done. */
static UNINSTRUMENTED int crash_watched(int sig)
{
	return (unsigned)sig < 32 && (PL_CRASH_SIGMASK >> sig & 1) &&
	       __atomic_load_n(&pl_crash_live, __ATOMIC_ACQUIRE);
}

/* The hooks' bodies, called directly by the aliases too, not through the
 * exported names, which another interposer may hold. */
static UNINSTRUMENTED int set_action(int sig, const struct sigaction *act, struct sigaction *old)
{
	int (*fn)(int, const struct sigaction *, struct sigaction *) = REAL(sigaction);
	if (PL_UNLIKELY(fn == NULL)) { /* never with glibc */
		errno = ENOSYS;
		return -1;
	}
	if (act != NULL && sampling(sig))
		pl_prof_signal_set(sig, (act->sa_flags & SA_SIGINFO) ? act->sa_sigaction : NULL);
	if (crash_watched(sig))
		return pl_crash_sigaction(sig, act, old);
	return fn(sig, act, old);
}

/* A disposition given as a plain handler (SIG_DFL, SIG_IGN, or a
 * one-argument function) is never the profiler's SA_SIGINFO handler.
 * SIG_ERR is refused by the real call: nothing changes. fn NULL: a C
 * library without the call (never glibc). */
static UNINSTRUMENTED sighandler_t set_handler(sighandler_t (*fn)(int, sighandler_t), int sig,
                                               sighandler_t handler)
{
	if (PL_UNLIKELY(fn == NULL)) {
		errno = ENOSYS;
		return SIG_ERR;
	}
	if (handler != SIG_ERR && sampling(sig))
		pl_prof_signal_set(sig, NULL);
	sighandler_t prev = fn(sig, handler);
	if (crash_watched(sig))
		return pl_crash_signal_done(sig, handler, prev);
	return prev;
}

EXPORT UNINSTRUMENTED int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return set_action(sig, act, old);
}

int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);
EXPORT UNINSTRUMENTED int __sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return set_action(sig, act, old);
}

/* signal() and glibc's two aliases of it (the same code, BSD semantics). */
EXPORT UNINSTRUMENTED sighandler_t signal(int sig, sighandler_t handler)
{
	return set_handler(REAL(signal), sig, handler);
}

EXPORT UNINSTRUMENTED sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return set_handler(REAL(signal), sig, handler);
}

EXPORT UNINSTRUMENTED sighandler_t ssignal(int sig, sighandler_t handler)
{
	return set_handler(REAL(signal), sig, handler);
}

EXPORT UNINSTRUMENTED sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	return set_handler(REAL(sysv_signal), sig, handler);
}

sighandler_t __sysv_signal(int sig, sighandler_t handler);
EXPORT UNINSTRUMENTED sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
	return set_handler(REAL(sysv_signal), sig, handler);
}

EXPORT UNINSTRUMENTED sighandler_t sigset(int sig, sighandler_t handler)
{
	sighandler_t (*fn)(int, sighandler_t) = REAL(sigset);
	if (handler == SIG_HOLD && fn != NULL) { /* only blocks the signal */
		sighandler_t prev = fn(sig, handler);
		return crash_watched(sig) ? pl_crash_signal_done(sig, handler, prev) : prev;
	}
	return set_handler(fn, sig, handler);
}

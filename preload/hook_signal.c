/*
 * hook_signal.c - the calls that set a signal's disposition, watched for
 * the one signal the CPU profiler samples with (profile.c).
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
 * Every entry point glibc exports is hooked: signal(), bsd_signal(),
 * ssignal(), sysv_signal() and sigset() reach the kernel through glibc's
 * internal __sigaction, never through an interposable name (as the exec
 * family does, hook_exec.c). A raw rt_sigaction system call (syscall(), or
 * a statically linked runtime) is not seen here: the shipper's check is
 * the backstop for those.
 *
 * Cost: a load and a compare per call, and these are rare calls (start-up,
 * or a handler's own re-installation). All are async-signal-safe as the
 * real calls are: a host may call them from a signal handler.
 */
#include "config.h"
#include "pl.h"

#include <errno.h>
#include <signal.h>

#define EXPORT __attribute__((visibility("default")))

#define ENSURE(fn) \
	do { \
		if (PL_UNLIKELY(!pl_real.fn)) \
			pl_resolve(); \
	} while (0)

/* Fail as a libc without the call would (never with glibc). */
#define NO_REAL(fn, fail) \
	do { \
		if (PL_UNLIKELY(!pl_real.fn)) { \
			errno = ENOSYS; \
			return fail; \
		} \
	} while (0)

/* The hooks' bodies, called directly by the aliases too, not through the
 * exported names, which another interposer may hold. */
static int set_action(int sig, const struct sigaction *act, struct sigaction *old)
{
	ENSURE(sigaction);
	NO_REAL(sigaction, -1);
	if (act != NULL)
		pl_prof_signal_set(sig, (act->sa_flags & SA_SIGINFO) ? act->sa_sigaction : NULL);
	return pl_real.sigaction(sig, act, old);
}

/* A disposition given as a plain handler (SIG_DFL, SIG_IGN, or a
 * one-argument function) is never the profiler's SA_SIGINFO handler.
 * SIG_ERR is refused by the real call: nothing changes. */
static sighandler_t set_handler(sighandler_t (*real)(int, sighandler_t), int sig,
                                sighandler_t handler)
{
	if (handler != SIG_ERR)
		pl_prof_signal_set(sig, NULL);
	return real(sig, handler);
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return set_action(sig, act, old);
}

int __sigaction(int sig, const struct sigaction *act, struct sigaction *old);
EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return set_action(sig, act, old);
}

/* signal() and glibc's two aliases of it (the same code, BSD semantics). */
static sighandler_t set_bsd(int sig, sighandler_t handler)
{
	ENSURE(signal);
	NO_REAL(signal, SIG_ERR);
	return set_handler(pl_real.signal, sig, handler);
}

EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	return set_bsd(sig, handler);
}

EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
	return set_bsd(sig, handler);
}

EXPORT sighandler_t ssignal(int sig, sighandler_t handler)
{
	return set_bsd(sig, handler);
}

static sighandler_t set_sysv(int sig, sighandler_t handler)
{
	ENSURE(sysv_signal);
	NO_REAL(sysv_signal, SIG_ERR);
	return set_handler(pl_real.sysv_signal, sig, handler);
}

EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler)
{
	return set_sysv(sig, handler);
}

sighandler_t __sysv_signal(int sig, sighandler_t handler);
EXPORT sighandler_t __sysv_signal(int sig, sighandler_t handler)
{
	return set_sysv(sig, handler);
}

EXPORT sighandler_t sigset(int sig, sighandler_t handler)
{
	ENSURE(sigset);
	NO_REAL(sigset, SIG_ERR);
	if (handler == SIG_HOLD) /* only blocks the signal */
		return pl_real.sigset(sig, handler);
	return set_handler(pl_real.sigset, sig, handler);
}

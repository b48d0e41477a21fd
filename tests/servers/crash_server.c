/*
 * crash_server - an HTTP/1.1 server that dies on purpose, for the crash
 * tracking test (tests/integration/crash.sh). One thread per connection,
 * one request per connection (Connection: close).
 *
 * Routes:
 *   GET /ok         200 "ok"
 *   GET /crash      SIGSEGV: a NULL store three calls deep
 *                   (crash_handler -> crash_deeper -> crash_store_null)
 *   GET /abort      SIGABRT through abort() (crash_abort_route)
 *   GET /fpe        SIGFPE: an integer division by zero (crash_divide)
 *   GET /ill        SIGILL: an undefined instruction (crash_trap)
 *   GET /bus        SIGBUS: a read past the end of a truncated mapped file
 *                   (crash_bus_read)
 *   GET /overflow   SIGSEGV: this thread's stack overflows (crash_recurse),
 *                   with an alternate signal stack (sigaltstack) for the
 *                   handler
 *   GET /double     SIGSEGV in this thread (crash_handler), and 20 ms later
 *                   in a second one (crash_second): a second crash while
 *                   the first is reported, when that takes longer (the
 *                   test stops the collector)
 *   GET /forkcrash  SIGSEGV in this thread (crash_handler), and 20 ms later
 *                   a second thread forks (the test stops the collector,
 *                   so the first crash is still being reported); the child
 *                   crashes on its own 1 s later (crash_in_child), after
 *                   its parent died: a crash of its own, to be reported
 *   GET /badfp      SIGSEGV with a frame pointer register of -16 (any
 *                   value, in code that uses rbp as a general register):
 *                   the preload's frame-pointer walk must not follow it
 *   GET /mceao      SIGBUS as the kernel sends it for a memory error in a
 *                   mapped page found asynchronously (BUS_MCEERR_AO, sent
 *                   to itself with rt_tgsigqueueinfo): not a fault that
 *                   repeats; the default action kills the process. Should
 *                   it survive, it answers "survived" and exits 3.
 *   GET /sikernel   the same with the SIGSEGV the kernel sends when it
 *                   cannot write a signal's frame (force_sigsegv(): code
 *                   SI_KERNEL, no instruction to repeat)
 *   GET /drop       closes the connection without answering (aborted)
 *   GET /hang       writes "hanging" on stderr and never answers (its
 *                   thread sleeps): a request other threads' crash ends
 *   GET /forkhang   writes "forkhanging" on stderr and waits for a child
 *                   it forks (a subprocess, as a handler runs one) that
 *                   closes its copy of the connection and exits 5 s later;
 *                   never answers
 *   GET /exit       writes "exiting" on stderr and calls exit(0) without
 *                   answering: a clean exit, other threads' requests (a
 *                   /hang) still in flight
 *   GET /sigstate   "SIGSEGV=X SIGABRT=X SIGFPE=X" where X is default,
 *                   ignored or handler: the dispositions as the server sees
 *                   them
 *
 * Usage: crash_server --port N [--own-handler | --chain | --hotspot | --reraise | --coredump | --coredump-exit | --coredump-poll]
 *   --own-handler  installs its own SIGSEGV handler in main(), which writes
 *                  "own handler: SIGSEGV" on stderr and exits 42
 *   --chain        installs, as it starts serving its first request (when
 *                  the preload's handler is in place), a SIGSEGV handler
 *                  that writes "chained handler" and then calls the
 *                  handler that was there before it (the way Node chains),
 *                  or, when that was the default, restores it and returns
 *   --hotspot      installs a SIGSEGV handler in main(), before it serves,
 *                  the way the JVM's (HotSpot's) does: it keeps the
 *                  handler that was there (not the default or ignored) as
 *                  the one to chain to, and for a fault not its own calls
 *                  it and takes the fault as handled; with none, it writes
 *                  "hotspot: fatal error SIGSEGV" on stderr (HotSpot's
 *                  hs_err report) and calls abort()
 *   --reraise      installs a SIGSEGV handler in main(), before it serves,
 *                  that writes "reraise handler", puts the default back
 *                  with signal() and raises the signal again (the way
 *                  Node's and Python's faulthandler end)
 *   --coredump     the same, as Apache httpd's sig_coredump does it: the
 *                  default back, then kill(getpid(), sig), a signal the
 *                  kernel hands to another thread (the faulting one blocks
 *                  it in the handler)
 *   --coredump-exit  the same, and then the handler waits 100 ms and
 *                  calls _exit(3) (the kill()ed process dies of the
 *                  signal first, on the thread the kernel handed it to)
 *   --coredump-poll  the same as --coredump, with a thread waiting in
 *                  poll() that writes "poll: <error>" and exits 1 should
 *                  poll() fail (EINTR), and the main thread blocking
 *                  SIGSEGV: that thread is the one the kernel hands the
 *                  kill()ed signal to
 * Prints "listening on PORT" once it accepts.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

static struct sigaction chained_prev;
static int chain_late;
static pthread_once_t chain_once = PTHREAD_ONCE_INIT;
static struct sigaction hotspot_prev;
static int hotspot_chains;

static void own_handler(int sig)
{
	static const char m[] = "own handler: SIGSEGV\n";
	(void)!write(2, m, sizeof m - 1);
	_exit(42);
}

static void chain_handler(int sig, siginfo_t *si, void *uc)
{
	static const char m[] = "chained handler\n";
	(void)!write(2, m, sizeof m - 1);
	if (chained_prev.sa_flags & SA_SIGINFO)
		chained_prev.sa_sigaction(sig, si, uc);
	else if (chained_prev.sa_handler != SIG_DFL && chained_prev.sa_handler != SIG_IGN)
		chained_prev.sa_handler(sig);
	else
		sigaction(sig, &chained_prev, NULL); /* the fault repeats, by default */
}

static void chain_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = chain_handler;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, &chained_prev);
}

static void reraise_handler(int sig)
{
	static const char m[] = "reraise handler\n";
	(void)!write(2, m, sizeof m - 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int coredump_exit;

static void coredump_handler(int sig)
{
	static const char m[] = "coredump handler\n";
	(void)!write(2, m, sizeof m - 1);
	signal(sig, SIG_DFL);
	kill(getpid(), sig);
	if (coredump_exit) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		_exit(3);
	}
}

/* HotSpot's JVM_handle_linux_signal for a fault that is not the JVM's:
 * PosixSignals::chained_handler(), then VMError::report_and_die(). */
static void hotspot_handler(int sig, siginfo_t *si, void *uc)
{
	if (hotspot_chains) {
		if (hotspot_prev.sa_flags & SA_SIGINFO)
			hotspot_prev.sa_sigaction(sig, si, uc);
		else
			hotspot_prev.sa_handler(sig);
		return; /* handled by the chained handler */
	}
	static const char m[] = "hotspot: fatal error SIGSEGV\n";
	(void)!write(2, m, sizeof m - 1);
	abort();
}

static void hotspot_install(void)
{
	struct sigaction old, sa;
	sigaction(SIGSEGV, NULL, &old);
	if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)) {
		hotspot_prev = old;
		hotspot_chains = 1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = hotspot_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGSEGV, &sa, NULL);
}

__attribute__((noinline)) void crash_store_null(volatile int *p)
{
	*p = 42;
}

__attribute__((noinline)) void crash_deeper(int depth)
{
	crash_store_null(depth > 100 ? (volatile int *)&depth : NULL);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
}

__attribute__((noinline)) void crash_handler(void)
{
	crash_deeper(1);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) int crash_recurse(int depth)
{
	volatile char frame[512];
	frame[0] = (char)depth;
	return crash_recurse(depth + 1) + frame[0];
}

static volatile int first_crashing;

/* 20 ms after the first thread started to crash. */
static void after_first_crash(void)
{
	while (!first_crashing)
		sched_yield();
	struct timespec ms20 = { 0, 20 * 1000 * 1000 };
	nanosleep(&ms20, NULL);
}

/* /double's second thread: crashes 20 ms after the first one started to. */
__attribute__((noinline)) void *crash_second(void *unused)
{
	(void)unused;
	after_first_crash();
	crash_deeper(1);
	return NULL;
}

__attribute__((noinline)) void crash_in_child(void)
{
	struct timespec s1 = { 1, 0 };
	nanosleep(&s1, NULL);
	crash_deeper(1);
	_exit(0);
}

/* /forkcrash's second thread: forks 20 ms after the first one started to
 * crash. */
static void *fork_second(void *unused)
{
	(void)unused;
	after_first_crash();
	if (fork() == 0)
		crash_in_child();
	return NULL;
}

__attribute__((noinline)) void crash_abort_route(void)
{
	abort();
}

__attribute__((noinline)) int crash_divide(volatile int d)
{
	return 1000 / d;
}

__attribute__((noinline)) void crash_trap(void)
{
	__builtin_trap();
}

__attribute__((noinline)) void crash_bad_fp(void)
{
#if defined(__x86_64__)
	/* The process dies here: rbp need not be restored. */
	__asm__ volatile("movq $-16, %%rbp\n\tmovl $0, 0" ::: "rbp", "memory");
#endif
	*(volatile int *)0 = 0;
}

__attribute__((noinline)) int crash_bus_read(void)
{
	char path[] = "/tmp/crash_server.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, 4096) != 0)
		return -1;
	unlink(path);
	volatile char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || ftruncate(fd, 0) != 0)
		return -1;
	return p[100];
}

static const char *disposition(int sig)
{
	struct sigaction sa;
	if (sigaction(sig, NULL, &sa) != 0)
		return "?";
	if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL)
		return "default";
	if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN)
		return "ignored";
	return "handler";
}

static int coredump_poll;

/* --coredump-poll: the thread a signal sent to the process goes to. */
static void *poll_thread(void *unused)
{
	(void)unused;
	if (poll(NULL, 0, -1) < 0) {
		fprintf(stderr, "poll: %s\n", strerror(errno));
		exit(1);
	}
	return NULL;
}

/* One request on a thread of its own (SERVE_THREADS); named in the crash
 * tests' expected frames. */
static void serve(int fd, void *unused)
{
	(void)unused;
	if (coredump_poll) { /* blocked by the main thread it came from */
		sigset_t segv;
		sigemptyset(&segv);
		sigaddset(&segv, SIGSEGV);
		pthread_sigmask(SIG_UNBLOCK, &segv, NULL);
	}
	char req[4096];
	char method[16] = "", path[1024] = "";
	if (serve_read_head(fd, req, sizeof req) < 0 ||
	    sscanf(req, "%15s %1023s", method, path) != 2)
		return;
	if (chain_late)
		pthread_once(&chain_once, chain_install);
	if (strcmp(path, "/ok") == 0) {
		serve_reply(fd, 200, "ok\n");
	} else if (strcmp(path, "/crash") == 0) {
		crash_handler();
		serve_reply(fd, 200, "survived\n");
	} else if (strcmp(path, "/overflow") == 0) {
		static char alt[64 * 1024];
		stack_t ss = { .ss_sp = alt, .ss_size = sizeof alt };
		char b[32];
		if (sigaltstack(&ss, NULL) == 0)
			snprintf(b, sizeof b, "%d\n", crash_recurse(0));
		serve_reply(fd, 500, "no alternate stack\n");
	} else if (strcmp(path, "/double") == 0 || strcmp(path, "/forkcrash") == 0) {
		pthread_t t;
		if (pthread_create(&t, NULL, path[1] == 'd' ? crash_second : fork_second, NULL) == 0) {
			first_crashing = 1;
			crash_handler();
		}
		serve_reply(fd, 500, "no thread\n");
	} else if (strcmp(path, "/abort") == 0) {
		crash_abort_route();
	} else if (strcmp(path, "/fpe") == 0) {
		char b[32];
		snprintf(b, sizeof b, "%d\n", crash_divide(0));
		serve_reply(fd, 200, b);
	} else if (strcmp(path, "/ill") == 0) {
		crash_trap();
	} else if (strcmp(path, "/bus") == 0) {
		char b[32];
		snprintf(b, sizeof b, "%d\n", crash_bus_read());
		serve_reply(fd, 200, b);
	} else if (strcmp(path, "/mceao") == 0 || strcmp(path, "/sikernel") == 0) {
		int bus = path[1] == 'm';
		siginfo_t si;
		memset(&si, 0, sizeof si);
		si.si_signo = bus ? SIGBUS : SIGSEGV;
		si.si_code = bus ? BUS_MCEERR_AO : SI_KERNEL;
		si.si_addr = bus ? (void *)4096 : NULL;
		syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), si.si_signo, &si);
		serve_reply(fd, 200, "survived\n");
		_exit(3);
	} else if (strcmp(path, "/badfp") == 0) {
		crash_bad_fp();
	} else if (strcmp(path, "/drop") == 0) {
		/* no answer */
	} else if (strcmp(path, "/hang") == 0) {
		static const char m[] = "hanging\n";
		(void)!write(2, m, sizeof m - 1);
		for (;;)
			pause();
	} else if (strcmp(path, "/forkhang") == 0) {
		static const char m[] = "forkhanging\n";
		(void)!write(2, m, sizeof m - 1);
		pid_t child = fork();
		if (child == 0) {
			close(fd);
			sleep(5);
			_exit(0);
		}
		if (child > 0)
			while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
				;
		for (;;)
			pause();
	} else if (strcmp(path, "/exit") == 0) {
		static const char m[] = "exiting\n";
		(void)!write(2, m, sizeof m - 1);
		exit(0);
	} else if (strcmp(path, "/sigstate") == 0) {
		char b[128];
		snprintf(b, sizeof b, "SIGSEGV=%s SIGABRT=%s SIGFPE=%s\n", disposition(SIGSEGV),
		         disposition(SIGABRT), disposition(SIGFPE));
		serve_reply(fd, 200, b);
	} else {
		serve_reply(fd, 404, "not found\n");
	}
}

int main(int argc, char **argv)
{
	int port = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
			port = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--own-handler") == 0) {
			signal(SIGSEGV, own_handler);
		} else if (strcmp(argv[i], "--chain") == 0) {
			chain_late = 1;
		} else if (strcmp(argv[i], "--hotspot") == 0) {
			hotspot_install();
		} else if (strcmp(argv[i], "--reraise") == 0) {
			signal(SIGSEGV, reraise_handler);
		} else if (strcmp(argv[i], "--coredump") == 0) {
			signal(SIGSEGV, coredump_handler);
		} else if (strcmp(argv[i], "--coredump-exit") == 0) {
			coredump_exit = 1;
			signal(SIGSEGV, coredump_handler);
		} else if (strcmp(argv[i], "--coredump-poll") == 0) {
			coredump_poll = 1;
			signal(SIGSEGV, coredump_handler);
		} else {
			fprintf(stderr, "usage: crash_server --port N [--own-handler | --chain | --hotspot | --reraise | --coredump | --coredump-exit | --coredump-poll]\n");
			return 2;
		}
	}
	if (coredump_poll) {
		pthread_t t;
		sigset_t segv;
		if (pthread_create(&t, NULL, poll_thread, NULL) != 0)
			return 1;
		sigemptyset(&segv);
		sigaddset(&segv, SIGSEGV);
		pthread_sigmask(SIG_BLOCK, &segv, NULL);
	}
	serve_run("crash_server", port, 64, SERVE_THREADS, serve, NULL);
	return 1;
}

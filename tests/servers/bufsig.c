/*
 * bufsig.c - a test interposer on mmap and memcpy, preloaded before
 * libapiprof.so by integration/forklocks.sh: every memcpy into the
 * preload's event buffer raises SIGUSR1 once the bytes are copied, so a
 * signal handler runs, at a point a test can choose, while that thread
 * holds the buffer's lock (the preload copies a request's path of more
 * than 32 bytes into its record with memcpy). The buffer is the process's
 * first private anonymous read-write mapping of exactly APIPROF_BUFFER_KB
 * KiB (environment; the test sets an unusual size), made through mmap()
 * (the preload's, through its PLT). Only in the process that made it: a
 * fork child keeps the mapping, and raises nothing.
 *
 * With BUFSIG_FORK=1 (environment), a fork prepare handler of its own
 * raises SIGUSR2. Preloaded after libapiprof.so, whose constructor then
 * runs later and registers its handlers after this one, it runs after
 * the preload's prepare handler, inside the fork: the preload holds the
 * buffer's lock then.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uintptr_t buf_start, buf_len; /* written once, before any copy into it */
static pid_t buf_pid;

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static void *(*real)(void *, size_t, int, int, int, off_t);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "mmap");
	void *m = real(addr, len, prot, flags, fd, off);
	const char *kb = getenv("APIPROF_BUFFER_KB");
	if (m != MAP_FAILED && kb && !__atomic_load_n(&buf_len, __ATOMIC_ACQUIRE) &&
	    len == strtoul(kb, NULL, 10) * 1024 && prot == (PROT_READ | PROT_WRITE) &&
	    flags == (MAP_PRIVATE | MAP_ANONYMOUS)) {
		buf_start = (uintptr_t)m;
		buf_pid = getpid();
		__atomic_store_n(&buf_len, len, __ATOMIC_RELEASE);
	}
	return m;
}

/* memmove is libc's: a memcpy that compiles into a call to itself must be
 * avoided, and memmove copies the same bytes. */
void *memcpy(void *dst, const void *src, size_t n)
{
	memmove(dst, src, n);
	uintptr_t len = __atomic_load_n(&buf_len, __ATOMIC_ACQUIRE);
	if (len && (uintptr_t)dst - buf_start < len && getpid() == buf_pid)
		raise(SIGUSR1);
	return dst;
}

static void raise_usr2(void)
{
	raise(SIGUSR2);
}

__attribute__((constructor)) static void bufsig_init(void)
{
	const char *f = getenv("BUFSIG_FORK");
	if (f && strcmp(f, "1") == 0)
		pthread_atfork(raise_usr2, NULL, NULL);
}

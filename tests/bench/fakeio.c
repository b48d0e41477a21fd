/*
 * fakeio.c - a stand-in for libc's read/write/recv on one magic fd, for
 * tests/bench/hookbench.c.
 *
 * A system call costs 50-500 ns and varies by more than the ~1 ns a hook
 * adds, so timing hooks around real calls mostly measures the kernel's
 * noise. Preloaded after libapiprof.so
 * (LD_PRELOAD=libapiprof.so:libfakeio.so), this library is what the
 * preload's dlsym(RTLD_NEXT) resolves to: on FAKEIO_FD it returns at once
 * without entering the kernel, so "through the hook" minus "straight to
 * this function" is the hook's own cost. Every other fd is passed to the
 * next definition (libc), so the rest of the process works as usual.
 *
 * Build: gcc -O2 -shared -fPIC -o libfakeio.so fakeio.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "fakeio.h"

#define EXPORT __attribute__((visibility("default")))

static ssize_t (*next_read)(int, void *, size_t);
static ssize_t (*next_write)(int, const void *, size_t);
static ssize_t (*next_recv)(int, void *, size_t, int);

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	if (fd == FAKEIO_FD)
		return 0;
	if (!next_read)
		*(void **)&next_read = dlsym(RTLD_NEXT, "read");
	return next_read(fd, buf, n);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	if (fd == FAKEIO_FD)
		return (ssize_t)n;
	if (!next_write)
		*(void **)&next_write = dlsym(RTLD_NEXT, "write");
	return next_write(fd, buf, n);
}

/* What the kernel answers for recv() on a file that is not a socket. */
EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	if (fd == FAKEIO_FD) {
		errno = ENOTSOCK;
		return -1;
	}
	if (!next_recv)
		*(void **)&next_recv = dlsym(RTLD_NEXT, "recv");
	return next_recv(fd, buf, n, flags);
}

/*
 * hook_exec.c - the exec family: what the process buffered is handed over
 * before an exec replaces its image (pl_ship_before_exec()), then the real
 * call is made with the caller's arguments, untouched, and its result and
 * errno returned.
 *
 * Each entry point is hooked: glibc's execl, execlp, execle, execv,
 * execvp, execvpe, fexecve and execveat reach execve (or the system call)
 * through internal symbols, never through an interposable one (checked on
 * glibc 2.36: a hooked execve saw none of them). The variadic execl,
 * execlp and execle build their argument vector as glibc does and call
 * the real execve, or execvp for execlp's search of PATH. posix_spawn()
 * and system() exec in their child (a CLONE_VM one, on its parent's
 * memory) through internal symbols too: they never come here. A vfork()
 * child that calls one of these runs on its parent's memory:
 * pl_ship_before_exec() leaves the buffer alone there.
 * syscall(SYS_execve) and syscall(SYS_execveat) come to hook_socket.c's
 * syscall() hook, which calls pl_ship_before_exec() too.
 *
 * An exec that fails returns: the records sent are gone from the buffer,
 * the rest stays, the shipper goes on.
 */
#include "config.h"
#include "pl.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

extern char **environ;

#define ENSURE(fn) \
	do { \
		if (PL_UNLIKELY(!pl_real.fn)) \
			pl_resolve(); \
	} while (0)

/* A real function glibc lacks (execveat before 2.34): fail as a kernel
 * without the call would. */
#define NO_REAL(fn) \
	do { \
		if (PL_UNLIKELY(!pl_real.fn)) { \
			errno = ENOSYS; \
			return -1; \
		} \
	} while (0)

/* execve and execvp for the variadic hooks too: called directly, not
 * through the exported names, which another interposer may hold. */
static int exec_ve(const char *path, char *const argv[], char *const envp[])
{
	ENSURE(execve);
	NO_REAL(execve);
	pl_ship_before_exec();
	return pl_real.execve(path, argv, envp);
}

static int exec_vp(const char *file, char *const argv[])
{
	ENSURE(execvp);
	NO_REAL(execvp);
	pl_ship_before_exec();
	return pl_real.execvp(file, argv);
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	return exec_ve(path, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
	ENSURE(execv);
	NO_REAL(execv);
	pl_ship_before_exec();
	return pl_real.execv(path, argv);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return exec_vp(file, argv);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	ENSURE(execvpe);
	NO_REAL(execvpe);
	pl_ship_before_exec();
	return pl_real.execvpe(file, argv, envp);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	ENSURE(fexecve);
	NO_REAL(fexecve);
	pl_ship_before_exec();
	return pl_real.fexecve(fd, argv, envp);
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                    int flags)
{
	ENSURE(execveat);
	NO_REAL(execveat);
	pl_ship_before_exec();
	return pl_real.execveat(dirfd, path, argv, envp, flags);
}

/*
 * The variadic ones, as glibc's posix/execl.c, execlp.c and execle.c:
 * count the arguments up to the NULL (more than INT_MAX: E2BIG, returned
 * from the caller), copy them into an array `argv` on the caller's stack,
 * then take the environment after the NULL (execle, with_env 1) or
 * environ. Declares argv and envp in the caller's scope.
 */
#define ARGV_FROM_VA(last, argv, envp, with_env) \
	ptrdiff_t argc_; \
	{ \
		va_list ap_; \
		va_start(ap_, last); \
		for (argc_ = 1; va_arg(ap_, const char *) != NULL; argc_++) { \
			if (argc_ == INT_MAX) { \
				va_end(ap_); \
				errno = E2BIG; \
				return -1; \
			} \
		} \
		va_end(ap_); \
	} \
	char *argv[argc_ + 1]; \
	char **envp; \
	{ \
		va_list ap_; \
		va_start(ap_, last); \
		argv[0] = (char *)(last); \
		for (ptrdiff_t i_ = 1; i_ <= argc_; i_++) \
			argv[i_] = va_arg(ap_, char *); \
		envp = (with_env) ? va_arg(ap_, char **) : environ; \
		va_end(ap_); \
	}

EXPORT int execl(const char *path, const char *arg, ...)
{
	ARGV_FROM_VA(arg, argv, envp, 0);
	return exec_ve(path, argv, envp);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	ARGV_FROM_VA(arg, argv, envp, 0);
	(void)envp; /* execvp's is environ */
	return exec_vp(file, argv);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	ARGV_FROM_VA(arg, argv, envp, 1);
	return exec_ve(path, argv, envp);
}

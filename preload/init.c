/*
 * init.c - configuration, real functions, debug output and fork handling.
 *
 * Configuration is read once, in the constructor: nginx rewrites its
 * environment (and its argv area) after start, and workers run as another
 * user, so nothing here may be looked up lazily later.
 */
#include "config.h"
#include "pl.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Global by necessity: hooks are free functions called by the host, and the
 * configuration is immutable after the constructor. */
struct pl_config pl_cfg;
struct pl_real pl_real;

/* Initial-exec TLS (the library is built -ftls-model=initial-exec): a
 * hooked call must not take the global-dynamic path through
 * __tls_get_addr, which costs 2-3x more and can allocate. */
__thread uint32_t pl_tls_tid;
/* Bumped in the fork child so every thread-local cache of the parent's
 * thread ids is seen as stale. */
static uint32_t cached_pid;

#define RESOLVE(field, name) \
	do { \
		if (!pl_real.field) \
			*(void **)&pl_real.field = dlsym(RTLD_NEXT, name); \
	} while (0)

/*
 * accept and accept4 last, after a release fence: a descriptor is followed
 * only once our accept hook has seen it, and the read/write hooks then call
 * the real functions without checking them (conn.c's pl_conn_read ...). A
 * thread that finds pl_real.accept set, while another is still resolving,
 * must find every other pointer set too.
 */
void pl_resolve(void)
{
	RESOLVE(read, "read");
	RESOLVE(readv, "readv");
	RESOLVE(recv, "recv");
	RESOLVE(recvfrom, "recvfrom");
	RESOLVE(recvmsg, "recvmsg");
	RESOLVE(write, "write");
	RESOLVE(writev, "writev");
	RESOLVE(send, "send");
	RESOLVE(sendto, "sendto");
	RESOLVE(sendmsg, "sendmsg");
	RESOLVE(sendfile, "sendfile");
	RESOLVE(sendfile64, "sendfile64");
	RESOLVE(splice, "splice");
	RESOLVE(shutdown, "shutdown");
	RESOLVE(close, "close");
	RESOLVE(close_range, "close_range");
	RESOLVE(dup, "dup");
	RESOLVE(dup2, "dup2");
	RESOLVE(dup3, "dup3");
	RESOLVE(fcntl, "fcntl");
	RESOLVE(fcntl64, "fcntl64");
	RESOLVE(socket, "socket");
	RESOLVE(getsockopt, "getsockopt");
	RESOLVE(syscall, "syscall");
	RESOLVE(exit_, "_exit");
	RESOLVE(Exit, "_Exit");
	RESOLVE(execve, "execve");
	RESOLVE(execv, "execv");
	RESOLVE(execvp, "execvp");
	RESOLVE(execvpe, "execvpe");
	RESOLVE(fexecve, "fexecve");
	RESOLVE(execveat, "execveat");
	RESOLVE(read_chk, "__read_chk");
	RESOLVE(recv_chk, "__recv_chk");
	RESOLVE(recvfrom_chk, "__recvfrom_chk");
	/* hook_signal.c looks these up itself when called before us (by a
	 * sanitizer's runtime); here for a first call from a signal handler,
	 * where dlsym() would not be safe. */
	RESOLVE(sigaction, "sigaction");
	RESOLVE(signal, "signal");
	RESOLVE(sysv_signal, "sysv_signal");
	RESOLVE(sigset, "sigset");
	__atomic_thread_fence(__ATOMIC_RELEASE);
	RESOLVE(accept, "accept");
	RESOLVE(accept4, "accept4");
}

void pl_debug(const char *fmt, ...)
{
	if (!pl_cfg.debug)
		return;
	int saved = errno;
	char line[512];
	int n = snprintf(line, sizeof line, "apiprof[%u]: ", (unsigned)getpid());
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	ssize_t (*w)(int, const void *, size_t) = pl_real.write ? pl_real.write : write;
	(void)!w(2, line, len);
	errno = saved;
}

/* pl_spin_lock() found the lock taken: wait for it. A waiter yields the
 * CPU, so a holder that was preempted gets it back. */
PL_COLD void pl_spin_lock_wait(int *l)
{
	do {
		while (__atomic_load_n(l, __ATOMIC_RELAXED))
			sched_yield();
	} while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE));
}

PL_COLD uint32_t pl_tid_slow(void)
{
	pl_tls_tid = (uint32_t)syscall(SYS_gettid);
	return pl_tls_tid;
}

/* Atomic (relaxed): the shipper thread and the exit flush, on the main
 * thread, can both be the first to ask. */
uint32_t pl_pid(void)
{
	uint32_t pid = __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);
	if (PL_UNLIKELY(pid == 0)) {
		pid = (uint32_t)getpid();
		__atomic_store_n(&cached_pid, pid, __ATOMIC_RELAXED);
	}
	return pid;
}

int pl_borrowed_memory(void)
{
	uint32_t pid = __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);
	return pid != 0 && (uint32_t)getpid() != pid;
}

/* ---- environment ---- */

static int env_flag(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] == '1' && v[1] == '\0';
}

static unsigned long env_ulong(const char *name, unsigned long def, unsigned long max)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno || *end || v[0] == '-' || n > max) {
		pl_debug("ignoring %s=%s: expected an integer 0..%lu", name, v, max);
		return def;
	}
	return n;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void read_ports(void)
{
	const char *v = getenv("APIPROF_PORTS");
	if (!v || !*v)
		return;
	while (*v && pl_cfg.n_ports < PL_MAX_PORTS) {
		char *end;
		unsigned long p = strtoul(v, &end, 10);
		if (end == v || p == 0 || p > 65535) {
			pl_debug("APIPROF_PORTS: bad entry near '%s', ignored", v);
			while (*v && *v != ',')
				v++;
		} else {
			pl_cfg.ports[pl_cfg.n_ports++] = (uint16_t)p;
			v = end;
		}
		while (*v == ',' || *v == ' ')
			v++;
	}
}

static void read_config(void)
{
	pl_cfg.debug = env_flag("APIPROF_DEBUG");
	pl_cfg.disabled = env_flag("APIPROF_DISABLE");
	/* The collector never profiles itself (its API traffic and its own
	 * database calls would feed back into it), even when started with the
	 * preload inherited from a shell or a unit's environment. */
	if (strcmp(program_invocation_short_name, "apiprof-collector") == 0 ||
	    strcmp(program_invocation_short_name, "lt-apiprof-collector") == 0 ||
	    dlsym(RTLD_DEFAULT, "apiprof_collector_self") != NULL) /* renamed copies too */
		pl_cfg.disabled = 1;
	pl_cfg.capture_query = env_flag("APIPROF_CAPTURE_QUERY_STRING");
	pl_cfg.capture_sql_values = env_flag("APIPROF_CAPTURE_SQL_VALUES");
	pl_cfg.profile_every = (unsigned)env_ulong("APIPROF_PROFILE_EVERY", 20, 1000000);
	pl_prof_arm();
	/* Statements are normalised on the host thread's stack: 16 KiB at most. */
	pl_cfg.max_sql_bytes = (unsigned)env_ulong("APIPROF_MAX_SQL_BYTES", 4096, 16384);
	if (pl_cfg.max_sql_bytes < 16)
		pl_cfg.max_sql_bytes = 16;
	/* 64 KiB floor: one full datagram must fit in half the buffer. */
	unsigned long kb = env_ulong("APIPROF_BUFFER_KB", 4096, 65536);
	if (kb < 128)
		kb = 128;
	pl_cfg.buffer_bytes = kb * 1024;

	const char *sock = getenv("APIPROF_SOCKET");
	if (sock && *sock) {
		pl_cfg.socket_from_env = 1;
		copy_str(pl_cfg.socket_path, sizeof pl_cfg.socket_path, sock);
	}
	const char *svc = getenv("APIPROF_SERVICE");
	copy_str(pl_cfg.service, sizeof pl_cfg.service,
	         svc && *svc ? svc : program_invocation_short_name);
	ssize_t n = readlink("/proc/self/exe", pl_cfg.exe, sizeof pl_cfg.exe - 1);
	pl_cfg.exe[n > 0 ? n : 0] = '\0';
	read_ports();
}

/* ---- fork ---- */

static void atfork_prepare(void)
{
	/* First, with none of our locks held: the child inherits the patched
	 * GOTs (php-fpm's master forks its workers after loading PHP's
	 * extensions, which would bypass our hooks until each worker's own
	 * shipper scanned them, after its first request). */
	pl_got_patch_before_fork();
	/* The buffer's lock, unless a signal handler forks inside this
	 * thread's own work; the thread is busy from here to the parent's or
	 * child's handler (ship.c). */
	pl_ship_atfork_prepare();
	pl_conn_atfork_prepare();
	/* Last: a walk holding it takes no other lock of ours, so a fork
	 * holding the others waits here only for that walk to end. */
	pl_dl_walk_atfork_prepare();
}

static void atfork_parent(void)
{
	pl_dl_walk_atfork_parent();
	pl_ship_atfork_parent();
}

static void atfork_child(void)
{
	/* Known at once, not lazily: the child holds the parent's followed
	 * connections, and pl_borrowed_memory() needs it to tell a vfork()
	 * child of this one from this one. */
	cached_pid = (uint32_t)getpid();
	pl_tls_tid = 0;
	pl_fdtable_atfork_child();
	pl_h2_atfork_child();
	pl_conn_atfork_child();
	pl_ship_atfork_child();
	pl_prof_atfork_child();
	pl_sqlcap_atfork_child();
	pl_pq_atfork_child();
	pl_sqlite_atfork_child();
	pl_libcopy_atfork_child();
	pl_got_patch_atfork_child();
	pl_crash_atfork_child();
}

__attribute__((constructor)) static void pl_init(void)
{
	int saved = errno;
	pl_resolve();
	read_config();
	if (!pl_cfg.disabled) {
		pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
		pl_inherit_connections();
	}
	pl_debug("loaded into %s (service %s)%s", pl_cfg.exe, pl_cfg.service,
	         pl_cfg.disabled ? ", disabled by APIPROF_DISABLE" : "");
	errno = saved;
}

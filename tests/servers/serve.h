/*
 * serve.h - the listening socket and accept loops the C test servers share
 * (tests/servers: serve.c is built into each, tests/Makefile.am).
 *
 * Every server listens on 127.0.0.1:PORT (0: any free port) and prints
 * "listening on PORT" on stdout once it accepts connections: the
 * integration tests wait for that line (ap_wait_log) to learn the port.
 * The simple ones (one request per connection) also share reading the
 * request head and answering. The functions called on a connection are
 * separate frames of their own: the crash and profile tests name the
 * servers' own frames around them.
 */
#ifndef AP_TEST_SERVE_H
#define AP_TEST_SERVE_H

#include <stddef.h>

/* Opens a close-on-exec TCP socket listening on 127.0.0.1:port with
 * SO_REUSEADDR and the given backlog; *bound (may be NULL) gets the port
 * bound. The socket, or -1 with "PROG: cannot listen on 127.0.0.1:PORT:
 * REASON" on stderr. Prints nothing on stdout: see serve_announce(). */
int serve_listen(const char *prog, int port, int backlog, int *bound);

/* Prints "listening on PORT" on stdout and flushes it (call once the
 * server is ready for connections). */
void serve_announce(int port);

/* A connection's handler: reads requests from fd and answers them. It
 * does not close fd (the loop does, after it returns). */
typedef void (*serve_fn)(int fd, void *arg);

enum serve_mode {
	SERVE_ONE_AT_A_TIME,       /* fn(fd, arg) on the accepting thread */
	SERVE_THREADS,             /* each connection on a detached thread of its
	                              own (fn must be thread-safe; a connection
	                              whose thread cannot start is closed) */
};

/* A simple server's whole life: serve_listen(), serve_announce(), then
 * accepts connections for ever, each served by fn(fd, arg) and then
 * closed. Returns only when it cannot go on (no socket, or accept failing
 * for a reason that does not go away: EINTR, ECONNABORTED, fd or memory
 * exhaustion are retried), with a message on stderr; main then exits 1.
 * Call it as a statement, not `return serve_run(...)`: as a tail call,
 * main's frame would be gone from the stacks the profile tests check. */
void serve_run(const char *prog, int port, int backlog, enum serve_mode mode, serve_fn fn,
              void *arg);

/* Reads a request head from fd into buf (cap >= 2, NUL-terminated) until
 * its blank line or until buf is full. Its length, or -1 when the peer
 * stopped (or read failed) first. */
long serve_read_head(int fd, char *buf, size_t cap);

/* Answers with an HTTP/1.1 response: status (reason "OK", "Not Found" or
 * "Error"), Content-Type text/plain, Connection: close and body; one
 * write() unless the body is long. 0, or -1 when a write failed. */
int serve_reply(int fd, int status, const char *body);

/* Writes all n bytes of p to fd with write(), retrying on EINTR. 0, or -1
 * when a write failed. */
int serve_write_all(int fd, const char *p, size_t n);

/* Reads exactly n bytes from fd into p with read(), retrying on EINTR. 0,
 * or -1 when the peer stopped first or a read failed. Both are
 * async-signal-safe (the fork tests call them from signal handlers). */
int serve_read_all(int fd, char *p, size_t n);

#endif /* AP_TEST_SERVE_H */

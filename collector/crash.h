/*
 * crash.h - turning a CRASH record (shared/ap_crash.h) into words: the
 * stack unwound with DWARF CFI from the registers and the stack copy the
 * preload sent, and symbolised with the ELF files of its module table
 * (.symtab, else .dynsym), through libdw when the build has it. Without
 * libdw (or when unwinding finds nothing) the preload's frame-pointer
 * frames are used and named by module only.
 *
 * The modules are read from this machine's files at the paths the process
 * had: right when the collector runs beside the crashed process (the
 * usual case), wrong when the binary was replaced since.
 *
 * Thread-safe (no shared state); col_crash_describe() may take some
 * milliseconds per call (about 1.1 ms for a crash_server report of 4
 * modules and 7 frames).
 */
#ifndef COL_CRASH_H
#define COL_CRASH_H

#include <stddef.h>
#include <stdint.h>

struct ap_rec_crash;

#define COL_CRASH_MESSAGE_MAX 480
#define COL_CRASH_DETAIL_MAX 8192

/* Writes the one-line message of the /api/v1/errors row into msg
 * ("SIGSEGV (SEGV_MAPERR) in crash_route <- serve <- main"; function names
 * only, innermost first, "?" where no symbol is known, no addresses) and,
 * when detail is not NULL, a multi-line backtrace for the log with
 * modules, offsets and addresses. Both NUL-terminated and cut to fit. */
void col_crash_describe(const struct ap_rec_crash *r, uint32_t pid, char *msg, size_t msglen,
                        char *detail, size_t detlen);

/* The same from the record alone, reading no file: the preload's
 * frame-pointer frames named by module and offset ("? (libc.so.6)"), in
 * microseconds where col_crash_describe() takes about a millisecond. */
void col_crash_describe_modules(const struct ap_rec_crash *r, uint32_t pid, char *msg,
                                size_t msglen, char *detail, size_t detlen);

/* The name of a si_code for the signal ("SEGV_MAPERR", "SI_USER"...), or
 * NULL when unknown. Static string. */
const char *col_crash_code_name(uint32_t signo, int32_t code);

#endif /* COL_CRASH_H */

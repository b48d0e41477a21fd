/*
 * fakepq.h - the connection tests/bench/fakepq.c answers without a server,
 * and the result it answers with. Neither is ever dereferenced: they are
 * addresses no real PGconn or PGresult can have (odd, in the first page).
 */
#ifndef AP_BENCH_FAKEPQ_H
#define AP_BENCH_FAKEPQ_H

#define FAKEPQ_CONN ((PGconn *)(uintptr_t)0x777)
#define FAKEPQ_RESULT ((PGresult *)(uintptr_t)0x779)

#endif /* AP_BENCH_FAKEPQ_H */

/*
 * fakeio.h - the descriptor tests/bench/fakeio.c answers without a system
 * call. It is never opened: any number works that the benchmark does not
 * use otherwise, below 1024 so it shares the preload's first fd-table
 * chunk with the process's real descriptors (as in a server).
 */
#ifndef AP_BENCH_FAKEIO_H
#define AP_BENCH_FAKEIO_H

#define FAKEIO_FD 777

#endif /* AP_BENCH_FAKEIO_H */

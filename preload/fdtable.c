/*
 * fdtable.c - the fd -> connection table and the connection pool.
 *
 * The table is two-level: a static top array of chunk pointers, each chunk
 * (PL_FD_CHUNK entries) mapped with mmap the first time an accepted fd falls
 * in its range. The fast path (pl_fd_get in pl.h) is a bounds check and two
 * loads; nothing here runs for descriptors that never came from accept().
 *
 * Connections live in a pool carved from mmap'd blocks and never returned to
 * the system: a hook that raced with a close may still hold a pointer to a
 * released connection, and it must find valid memory there (it then sees,
 * under the connection's lock, that the table no longer points to it).
 * The pool is bounded by PL_CONN_POOL_BYTES; past it, new connections are
 * simply not tracked (and counted).
 */
#include "config.h"
#include "pl.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

/* Global by necessity: the hooks index it by fd. */
struct pl_conn **pl_fdtab[PL_FD_TOP];

/* Serialises chunk creation and the pool's free list; only taken on
 * accept and on a connection's first/last message, never on the fast path. */
static int table_lock;

struct pl_conn **pl_fd_slot(int fd, int create)
{
	if ((unsigned)fd >= PL_FD_CAP)
		return NULL;
	unsigned top = (unsigned)fd >> PL_FD_CHUNK_BITS;
	struct pl_conn **chunk = __atomic_load_n(&pl_fdtab[top], __ATOMIC_ACQUIRE);
	if (!chunk && create) {
		/* The process serves: now, after the runtimes it hosts installed
		 * their handlers (crash.c says why not sooner), and before the
		 * chunk is seen: a fork child of another thread then finds the
		 * install under way (or done), never still to come. */
		pl_crash_install();
		pl_spin_lock(&table_lock);
		chunk = pl_fdtab[top];
		if (!chunk) {
			void *m = mmap(NULL, PL_FD_CHUNK * sizeof(struct pl_conn *),
			               PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (m != MAP_FAILED) {
				chunk = m;
				__atomic_store_n(&pl_fdtab[top], chunk, __ATOMIC_RELEASE);
			}
		}
		pl_spin_unlock(&table_lock);
	}
	return chunk ? &chunk[(unsigned)fd & (PL_FD_CHUNK - 1)] : NULL;
}

/* ---- the pool ---- */

#define pool_item pl_pool_hdr

#define POOL_BLOCK 32      /* connections mapped at a time */

static struct pool_item *free_list;
static size_t pool_count;  /* connections ever carved, <= budget */
/* Budget taken by pl_pool_reserve() (HTTP/2 states), in records: with
 * pool_count, never above the budget; with pool_borrowed, never above
 * half. */
static size_t pool_reserved;
/* Records of the pool lent to HTTP/2 (pl_pool_borrow()): part of
 * pool_count, and of HTTP/2's half. */
static size_t pool_borrowed;
size_t pl_pool_in_use; /* connections handed out, atomic */
/* pl_conn_budget() / 2, stored with every block carved (before any
 * connection of it is handed out; atomic, as readers take no lock):
 * pl_conn_pool_crowded() runs at the end of every request, and this spares
 * it two calls and a division. */
size_t pl_pool_half_budget;
/* Every block carved, so the fork child can clear locks held by threads
 * that do not exist in it. */
#define MAX_BLOCKS 1024
static char *blocks[MAX_BLOCKS];
static size_t n_blocks;

size_t pl_conn_budget(void)
{
	return PL_CONN_POOL_BYTES / pl_conn_size();
}

static void pool_grow(void)
{
	size_t sz = pl_conn_size();
	__atomic_store_n(&pl_pool_half_budget, pl_conn_budget() / 2, __ATOMIC_RELAXED);
	if (pool_count + pool_reserved + POOL_BLOCK > pl_conn_budget() || n_blocks == MAX_BLOCKS)
		return;
	char *m = mmap(NULL, sz * POOL_BLOCK, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return;
	for (size_t i = 0; i < POOL_BLOCK; i++) {
		struct pool_item *it = (struct pool_item *)(m + i * sz);
		it->next_free = free_list;
		free_list = it;
	}
	blocks[n_blocks++] = m;
	pool_count += POOL_BLOCK;
}

int pl_pool_reserve(size_t records)
{
	size_t budget = pl_conn_budget();
	pl_spin_lock(&table_lock);
	int ok = pool_reserved + pool_borrowed + records <= budget / 2 &&
	         pool_count + pool_reserved + records <= budget;
	if (ok)
		pool_reserved += records;
	pl_spin_unlock(&table_lock);
	return ok;
}

struct pl_conn *pl_conn_alloc(void)
{
	pl_spin_lock(&table_lock);
	if (!free_list)
		pool_grow();
	struct pool_item *it = free_list;
	if (it)
		free_list = (struct pool_item *)it->next_free;
	pl_spin_unlock(&table_lock);
	if (!it)
		return NULL;
	__atomic_add_fetch(&pl_pool_in_use, 1, __ATOMIC_RELAXED);
	/* A hook that raced with this connection's previous life may hold the
	 * lock for a moment: take it before touching anything. */
	pl_spin_lock(&it->lock);
	return (struct pl_conn *)it;
}

void pl_pool_unreserve(size_t records)
{
	pl_spin_lock(&table_lock);
	pool_reserved -= records;
	pl_spin_unlock(&table_lock);
}

struct pl_conn *pl_pool_borrow(void)
{
	size_t half = pl_conn_budget() / 2;
	pl_spin_lock(&table_lock);
	int ok = pool_reserved + pool_borrowed < half;
	if (ok)
		pool_borrowed++;
	pl_spin_unlock(&table_lock);
	if (!ok)
		return NULL;
	struct pl_conn *c = pl_conn_alloc();
	if (!c) {
		pl_spin_lock(&table_lock);
		pool_borrowed--;
		pl_spin_unlock(&table_lock);
	}
	return c;
}

void pl_pool_give_back(struct pl_conn *c)
{
	pl_spin_lock(&table_lock);
	pool_borrowed--;
	pl_spin_unlock(&table_lock);
	pl_conn_release(c);
}

void pl_conn_release(struct pl_conn *c)
{
	struct pool_item *it = (struct pool_item *)c;
	__atomic_sub_fetch(&pl_pool_in_use, 1, __ATOMIC_RELAXED);
	pl_spin_lock(&table_lock);
	it->next_free = free_list;
	free_list = it;
	pl_spin_unlock(&table_lock);
	pl_spin_unlock(&it->lock);
}

void pl_fdtable_atfork_child(void)
{
	/* Only the forking thread survives: no lock can be legitimately held. */
	table_lock = 0;
	size_t sz = pl_conn_size();
	for (size_t b = 0; b < n_blocks; b++)
		for (size_t i = 0; i < POOL_BLOCK; i++)
			((struct pool_item *)(blocks[b] + i * sz))->lock = 0;
}

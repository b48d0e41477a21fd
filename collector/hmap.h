/*
 * hmap.h - a hash table from byte-string keys to pointers, used for every
 * lookup table of the collector (endpoints, services, routes, processes).
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones, so lookups stay short after many deletions).
 *
 * Ownership: the map does NOT copy keys. The caller keeps each key's bytes
 * alive and unchanged while the entry exists; the usual way is to point the
 * key into the value itself (an endpoint's name, a process's pid field).
 * Values are the caller's too: col_hmap_free() frees neither.
 *
 * Not thread-safe: the owner of a map serialises access to it.
 */
#ifndef COL_HMAP_H
#define COL_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct col_hmap;

/* An empty map, or NULL when out of memory. */
struct col_hmap *col_hmap_new(void);
/* Frees the table (not keys or values). NULL is a no-op. */
void col_hmap_free(struct col_hmap *m);

/* The value stored under key[0..klen), or NULL. */
void *col_hmap_get(const struct col_hmap *m, const void *key, size_t klen);

/* Stores val (not NULL) under key, replacing any previous entry (whose key
 * pointer is then replaced by this one). Returns 0, or -ENOMEM with the map
 * unchanged. */
int col_hmap_put(struct col_hmap *m, const void *key, size_t klen, void *val);

/* Removes the entry and returns its value, or NULL when there was none. */
void *col_hmap_del(struct col_hmap *m, const void *key, size_t klen);

size_t col_hmap_count(const struct col_hmap *m);

/* Iterates: start with *it = 0; returns the next value (and its key when
 * key/klen are not NULL) or NULL at the end. The map must not be changed
 * during an iteration. */
void *col_hmap_next(const struct col_hmap *m, size_t *it,
                    const void **key, size_t *klen);

#endif /* COL_HMAP_H */

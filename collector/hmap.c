/*
 * hmap.c - open-addressing hash table (hmap.h).
 */
#include "config.h"
#include "hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	const void *key; /* NULL: empty */
	size_t klen;
	uint64_t hash;
	void *val;
};

struct col_hmap {
	struct slot *s;
	size_t cap; /* a power of two */
	size_t n;
};

#define INITIAL_CAP 16

/* FNV-1a: keys are short (names, pids), so a byte loop is as fast as
 * anything cleverer, and it has no alignment requirements. */
static uint64_t hash_bytes(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct col_hmap *col_hmap_new(void)
{
	struct col_hmap *m = calloc(1, sizeof *m);
	if (m == NULL)
		return NULL;
	m->s = calloc(INITIAL_CAP, sizeof *m->s);
	if (m->s == NULL) {
		free(m);
		return NULL;
	}
	m->cap = INITIAL_CAP;
	return m;
}

void col_hmap_free(struct col_hmap *m)
{
	if (m == NULL)
		return;
	free(m->s);
	free(m);
}

size_t col_hmap_count(const struct col_hmap *m)
{
	return m->n;
}

static size_t find(const struct col_hmap *m, const void *key, size_t klen,
                   uint64_t h)
{
	size_t mask = m->cap - 1, i = (size_t)h & mask;
	while (m->s[i].key != NULL) {
		if (m->s[i].hash == h && m->s[i].klen == klen &&
		    memcmp(m->s[i].key, key, klen) == 0)
			return i;
		i = (i + 1) & mask;
	}
	return i; /* the empty slot where it would go */
}

void *col_hmap_get(const struct col_hmap *m, const void *key, size_t klen)
{
	size_t i = find(m, key, klen, hash_bytes(key, klen));
	return m->s[i].key ? m->s[i].val : NULL;
}

static int grow(struct col_hmap *m)
{
	size_t ncap = m->cap * 2;
	struct slot *ns = calloc(ncap, sizeof *ns);
	if (ns == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->s[i].key == NULL)
			continue;
		size_t j = (size_t)m->s[i].hash & (ncap - 1);
		while (ns[j].key != NULL)
			j = (j + 1) & (ncap - 1);
		ns[j] = m->s[i];
	}
	free(m->s);
	m->s = ns;
	m->cap = ncap;
	return 0;
}

int col_hmap_put(struct col_hmap *m, const void *key, size_t klen, void *val)
{
	uint64_t h = hash_bytes(key, klen);
	size_t i = find(m, key, klen, h);
	if (m->s[i].key != NULL) {
		m->s[i].key = key;
		m->s[i].val = val;
		return 0;
	}
	/* Keep the load factor under 3/4. */
	if ((m->n + 1) * 4 > m->cap * 3) {
		if (grow(m) < 0)
			return -ENOMEM;
		i = find(m, key, klen, h);
	}
	m->s[i] = (struct slot){ key, klen, h, val };
	m->n++;
	return 0;
}

void *col_hmap_del(struct col_hmap *m, const void *key, size_t klen)
{
	size_t mask = m->cap - 1;
	size_t i = find(m, key, klen, hash_bytes(key, klen));
	if (m->s[i].key == NULL)
		return NULL;
	void *val = m->s[i].val;
	/* Backward shift: move later entries of the probe run into the hole
	 * unless their home slot lies cyclically in (hole, j]. */
	size_t hole = i, j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (m->s[j].key == NULL)
			break;
		size_t home = (size_t)m->s[j].hash & mask;
		int stays = hole <= j ? (home > hole && home <= j)
		                      : (home > hole || home <= j);
		if (stays)
			continue;
		m->s[hole] = m->s[j];
		hole = j;
	}
	m->s[hole].key = NULL;
	m->s[hole].val = NULL;
	m->n--;
	return val;
}

void *col_hmap_next(const struct col_hmap *m, size_t *it,
                    const void **key, size_t *klen)
{
	while (*it < m->cap) {
		const struct slot *sl = &m->s[(*it)++];
		if (sl->key == NULL)
			continue;
		if (key)
			*key = sl->key;
		if (klen)
			*klen = sl->klen;
		return sl->val;
	}
	return NULL;
}

/*
 * ap_hpack.h - a streaming HPACK (RFC 7541) decoder that keeps only what a
 * profiler needs from HTTP/2 header blocks: :method, :path and :status.
 *
 * HTTP/2 compresses header blocks against a dynamic table that both ends
 * of a connection keep in step, so a decoder that missed one insertion
 * reads every later indexed field wrong. This one mirrors the peer
 * encoder's table without holding it: every entry's name and value
 * lengths (for eviction) and a kind, and a copy of the value only for the
 * three names of interest. Memory is fixed (no allocation), whatever the
 * peer sends.
 *
 * Correctness does not depend on the mirror being complete. An index
 * names an entry by its age (1 = newest dynamic entry, after the 61
 * static ones), so counting insertions exactly is enough to find which
 * insertion a reference means. When the mirror no longer holds that
 * insertion (fewer slots than the peer's table has entries, or a value
 * copy pushed out of the bounded arena), the field's value is reported
 * lost, never wrong.
 *
 * Streaming: a header block may arrive in many HEADERS/CONTINUATION
 * fragments and each fragment in many reads; ap_hpack_feed() takes any
 * split, down to one byte at a time, with the same results. Strings that
 * are not of interest are skipped (Huffman-coded ones decoded only far
 * enough to count their decoded length, which the table's size
 * accounting needs) and never stored.
 *
 * The struct is plain data (no pointers): it can be zeroed by
 * ap_hpack_init(), copied and embedded. Not thread-safe: one decoder per
 * direction of a connection, used under the connection's lock.
 */
#ifndef AP_HPACK_H
#define AP_HPACK_H

#include <stddef.h>
#include <stdint.h>

#include "ap_http.h" /* AP_HTTP_METHOD_MAX */

#define AP_HPACK_PATH_MAX 512     /* bytes of :path kept, incl. a NUL */
#define AP_HPACK_DEFAULT_TABLE 4096 /* SETTINGS_HEADER_TABLE_SIZE's initial value */
#define AP_HPACK_SLOTS 128        /* dynamic entries mirrored (a 4096-byte
                                     table holds at most 4096/32 = 128) */
#define AP_HPACK_ARENA 2048       /* bytes of kept values (:method, :path,
                                     :status entries) in the mirror */
#define AP_HPACK_NAME_SCRATCH 16  /* longest literal name compared */

/* What a field's name is, as far as this decoder cares. */
enum ap_hpack_kind {
	AP_HPACK_OTHER = 0,
	AP_HPACK_METHOD = 1,  /* ":method" */
	AP_HPACK_PATH = 2,    /* ":path" */
	AP_HPACK_STATUS = 3,  /* ":status" */
};

/* One mirrored dynamic-table entry. Private. */
struct ap_hpack_entry {
	uint32_t name_len;    /* decoded lengths, for the size accounting */
	uint32_t value_len;
	uint16_t arena_off;   /* where the kept copy of the value starts */
	uint16_t kept_len;    /* bytes of it kept (<= value_len) */
	uint8_t kind;         /* enum ap_hpack_kind */
	uint8_t kept;         /* 1: arena holds the copy; 0: lost or none */
	uint8_t pad[2];
};

struct ap_hpack {
	/* ---- results of the current header block, valid from
	 * ap_hpack_block_begin() to the next one; each is set by the field
	 * that carries it (the first one when a block repeats it) ---- */
	char method[AP_HTTP_METHOD_MAX];  /* not NUL-terminated */
	uint8_t method_len;               /* 0: no :method field */
	uint8_t method_lost;              /* present, but its value was lost */
	char path[AP_HPACK_PATH_MAX];     /* not NUL-terminated */
	uint16_t path_len;                /* bytes kept in path */
	uint8_t path_seen;                /* a :path field was in the block */
	uint8_t path_truncated;           /* the real :path was longer */
	uint8_t path_lost;                /* present, but its value was lost */
	uint16_t status;                  /* :status as a number, 0: none, or
	                                     not three digits */

	/* ---- private ---- */
	uint32_t limit;          /* SETTINGS_HEADER_TABLE_SIZE in force */
	uint32_t max_size;       /* the table's current maximum size */
	uint32_t size;           /* sum of mirrored entries' sizes */
	uint64_t inserted;       /* insertions since init (never wraps) */
	uint32_t oldest;         /* entries in the table = inserted - oldest,
	                            as an age: see hpack.c */
	uint16_t arena_head, arena_used;
	uint8_t error;           /* sticky */
	/* the field being read, across feeds */
	uint8_t state, sub, kind, huff, huff_bits_n, name_kind, rep;
	uint32_t huff_bits;
	uint64_t num;            /* integer being read */
	uint32_t str_left;       /* encoded bytes of the string left */
	uint32_t str_len;        /* decoded bytes of it so far */
	uint32_t name_len;       /* decoded length of the field's name */
	uint32_t index;          /* the field's index, 0: literal name */
	char name[AP_HPACK_NAME_SCRATCH];
	char value[AP_HPACK_PATH_MAX]; /* the value being kept */
	struct ap_hpack_entry slot[AP_HPACK_SLOTS];
	char arena[AP_HPACK_ARENA];
};

/* A fresh decoder: empty dynamic table, limit AP_HPACK_DEFAULT_TABLE. */
void ap_hpack_init(struct ap_hpack *h);

/* The decoding end's SETTINGS_HEADER_TABLE_SIZE changed to `limit` (the
 * server's own SETTINGS for the request decoder, the client's for the
 * response decoder). The table's maximum becomes `limit` until the
 * encoder sends a dynamic table size update; entries beyond it are
 * evicted. */
void ap_hpack_set_limit(struct ap_hpack *h, uint32_t limit);

/* A header block begins: clears the results above. */
void ap_hpack_block_begin(struct ap_hpack *h);

/* Decodes the next n bytes of the current header block (any split).
 * Returns 0, or -1 when the block is not valid HPACK (an index beyond the
 * table, an integer overflow, a bad Huffman padding, a size update beyond
 * the limit or after a field): sticky, every later call fails too, and
 * the connection can no longer be followed. */
int ap_hpack_feed(struct ap_hpack *h, const uint8_t *p, size_t n);

/* The header block ended (END_HEADERS). 0 when it ended between fields;
 * -1 (sticky error) when a field was cut short. */
int ap_hpack_block_end(struct ap_hpack *h);

#endif /* AP_HPACK_H */

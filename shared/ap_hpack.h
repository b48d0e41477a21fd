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
 * accounting needs) and never stored. The decoded lengths of the last
 * AP_HPACK_LEN_CACHE such strings (each of at most
 * AP_HPACK_LEN_CACHE_BYTES, fed whole) are remembered with their encoded
 * bytes, so a server that sends the same literal with every response
 * (nginx's server, content-type and, within a second, date) has it
 * counted by a comparison instead of a decoding.
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
#define AP_HPACK_NAME_SCRATCH 24  /* longest literal name compared */
#define AP_HPACK_LEN_CACHE 4      /* Huffman strings whose decoded length
                                     is remembered */
#define AP_HPACK_LEN_CACHE_BYTES 42 /* the longest of them, encoded (a
                                     date is 22 bytes) */

/* What a field's name is, as far as this decoder cares. */
enum ap_hpack_kind {
	AP_HPACK_OTHER = 0,
	AP_HPACK_METHOD = 1,  /* ":method" */
	AP_HPACK_PATH = 2,    /* ":path" */
	AP_HPACK_STATUS = 3,  /* ":status" */
	AP_HPACK_PROFILE = 4, /* "x-apiprof-profile" (SPEC: a request carrying
	                         X-Apiprof-Profile: 1 is profiled) */
};

/* One mirrored dynamic-table entry. Private. 12 bytes: the decoder embeds
 * AP_HPACK_SLOTS of them. */
struct ap_hpack_entry {
	uint32_t size;        /* name_len + value_len + 32, decoded lengths */
	uint16_t name_len;    /* for a later literal naming it; 0xffff: longer
	                         (the size of a new entry naming it is unknown) */
	uint16_t arena_off;   /* where the kept copy of the value starts */
	uint16_t kept_len;    /* bytes of it kept (<= the value's length) */
	uint8_t kind;         /* enum ap_hpack_kind */
	uint8_t flags;        /* HP_KEPT, HP_TRUNC (hpack.c) */
};

/* One remembered Huffman string. Private. */
struct ap_hpack_len_cache {
	uint32_t used;        /* h->lc_tick when last used; 0: never */
	uint8_t enc_len;      /* bytes[0..enc_len) are the string; 0: empty */
	uint8_t dec_len;      /* its decoded length */
	uint8_t bytes[AP_HPACK_LEN_CACHE_BYTES];
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
	uint8_t profile;                  /* x-apiprof-profile: 1 */

	/* ---- private ---- */
	uint64_t inserted;       /* insertions since init (never wraps): the
	                            newest entry is insertion inserted - 1 */
	uint32_t limit;          /* SETTINGS_HEADER_TABLE_SIZE in force */
	uint32_t max_size;       /* the table's current maximum size */
	uint32_t size;           /* sum of the table's entries' sizes */
	uint32_t count;          /* entries in the table (see hpack.c) */
	uint32_t unmirrored;     /* sum of the sizes of the count - SLOTS
	                            oldest entries, no longer in slot[] */
	uint16_t arena_head, arena_used; /* kept copies: a byte ring */
	uint8_t error;           /* sticky */
	uint8_t mode;            /* HP_EXACT, HP_BLIND, HP_LOST (hpack.c) */
	uint8_t fields;          /* a field was decoded in this block */
	uint8_t unknown;         /* a reference of unknown kind in this block */
	uint8_t status_seen;     /* a :status field was in this block */
	/* the field being read, across feeds */
	uint8_t state, rep, target, sub, huff, name_kind, int_shift, pad0;
	uint32_t huff_code;      /* the Huffman decoder's state (hpack.c) */
	uint32_t num;            /* integer being read */
	uint32_t str_left;       /* encoded bytes of the string left */
	uint32_t str_len;        /* decoded bytes of it so far (saturates) */
	uint32_t name_len;       /* decoded length of the field's name,
	                            HP_NAME_UNKNOWN: not known */
	uint32_t str_total;      /* encoded bytes of the string */
	uint32_t lc_tick;        /* uses of len_cache[] (wraps harmlessly) */
	char value[AP_HPACK_PATH_MAX];   /* first bytes of a value of interest,
	                            or of a literal name (the first
	                            AP_HPACK_NAME_SCRATCH) */
	struct ap_hpack_len_cache len_cache[AP_HPACK_LEN_CACHE];
	struct ap_hpack_entry slot[AP_HPACK_SLOTS]; /* by insertion % SLOTS */
	char arena[AP_HPACK_ARENA];
};

/* A fresh decoder: empty dynamic table, limit AP_HPACK_DEFAULT_TABLE. */
void ap_hpack_init(struct ap_hpack *h);

/* The decoding end's SETTINGS_HEADER_TABLE_SIZE changed to `limit` (the
 * server's own SETTINGS for the request decoder, the client's for the
 * response decoder). Size updates beyond `limit` are errors from then on.
 * A smaller limit than the table's maximum becomes the maximum at once
 * (entries beyond it are evicted; the encoder must follow with an update
 * no larger); a larger one changes nothing until the encoder sends an
 * update, since the encoder's table keeps its size until then (RFC 7541
 * 4.2, 6.3). */
void ap_hpack_set_limit(struct ap_hpack *h, uint32_t limit);

/* A header block begins: clears the results above. When the previous
 * block was cut inside a field (ap_hpack_block_end() not called, or its
 * -1 ignored), the decoder enters its sticky error: that field may have
 * been an insertion the table no longer reflects. */
void ap_hpack_block_begin(struct ap_hpack *h);

/* Decodes the next n bytes of the current header block (any split).
 * Returns 0, or -1 when the block is not valid HPACK (an index beyond the
 * table, an integer overflow, a bad Huffman padding, a size update beyond
 * the limit or after a field): sticky, every later call fails too, and
 * the connection can no longer be followed. */
int ap_hpack_feed(struct ap_hpack *h, const uint8_t *p, size_t n);

/* The header block ended (END_HEADERS). 0 when it ended between fields;
 * -1 (sticky error) when a field was cut short.
 *
 * The results are final once it returns 0: a field the mirror could not
 * tell the name of (an entry older than the AP_HPACK_SLOTS last
 * insertions, only possible with a limit above 4096) may have been
 * :method or :path, so when the block carried none otherwise, method_lost
 * and path_seen + path_lost are set. A :method longer than
 * AP_HTTP_METHOD_MAX - 1 bytes is reported lost as well (the HTTP/1
 * parser keeps no such method either); a :status that is not three
 * digits leaves status 0. */
int ap_hpack_block_end(struct ap_hpack *h);

/* The dynamic table's size (RFC 7541 4.1) as the encoder's own, for tests
 * and debugging; SIZE_MAX when the mirror no longer knows it exactly (see
 * hpack.c: only past AP_HPACK_SLOTS entries). */
size_t ap_hpack_table_size(const struct ap_hpack *h);

#endif /* AP_HPACK_H */

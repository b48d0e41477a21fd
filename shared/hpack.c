/*
 * hpack.c - streaming HPACK (RFC 7541) decoding that mirrors the peer
 * encoder's dynamic table and keeps only :method, :path and :status
 * (ap_hpack.h).
 *
 * The mirror. Entries are numbered by insertion (h->inserted counts them);
 * index 62 is always insertion inserted - 1, index 62 + a insertion
 * inserted - 1 - a, whatever was evicted, so counting insertions exactly is
 * what makes a reference resolvable. slot[] holds the last AP_HPACK_SLOTS
 * insertions (slot[n % SLOTS] = insertion n): each one's size, name length,
 * kind, and for :method, :path and :status entries a copy of the value in
 * the arena, a byte ring filled in insertion order. Entries leave the table
 * oldest first and their copies the arena oldest first, so the copies always
 * lie in one run [head - used, head) of the ring, in insertion order; a new
 * copy that does not fit drops the oldest ones (their entries report lost).
 *
 * Exactness. To tell an index beyond the table (an error) from one in it,
 * and to evict as the encoder does, the decoder needs each entry's size; a
 * table of at most 4096 bytes has at most 128 entries and slot[] holds them
 * all (HP_EXACT, the normal case). A larger SETTINGS_HEADER_TABLE_SIZE can
 * hold more: the entries pushed out of slot[] are kept only as a sum of
 * sizes (h->unmirrored), exact as long as evictions take all of them or
 * none. When an eviction would take only some, the table's size is no
 * longer known (HP_BLIND): insertions are still counted, slot[] still
 * resolves the last 128, only errors are no longer detected exactly. A new
 * entry naming an entry whose name length is not known (one past slot[])
 * has an unknown size, so whether it was inserted at all is unknown
 * (HP_LOST): every dynamic reference is then reported lost. Both end when
 * the table is certainly empty (a size update below 32, an entry larger
 * than the table), which makes the mirror exact again.
 *
 * Huffman strings are decoded with the canonical-code tables below (the
 * RFC 7541 code is canonical: codes of one length are consecutive, in
 * symbol order), 1 KiB instead of a tree or a 16 KiB state machine: a
 * symbol at a time from a 64-bit window where 8 bytes are at hand, bit by
 * bit elsewhere (string_bytes()). A header block is a few hundred bytes,
 * and this runs once per HTTP/2 request, not on the HTTP/1 path.
 *
 * No allocation, no recursion, no syscalls; nothing keeps a pointer to the
 * caller's bytes, and no loop reads past the n it was given.
 */
#include "config.h"
#include "ap_hpack.h"

#include <string.h>

enum { HP_EXACT = 0, HP_BLIND = 1, HP_LOST = 2 };

/* struct ap_hpack_entry flags */
#define HP_KEPT 1  /* the arena holds the value's copy */
#define HP_TRUNC 2 /* the value was longer than the copy */

#define HP_NAME_UNKNOWN UINT32_MAX /* h->name_len: not known */
#define HP_KIND_UNKNOWN 5          /* h->name_kind: not known */
#define HP_ENTRY_OVERHEAD 32       /* RFC 7541 4.1 */

/* h->state: what the next byte is */
enum {
	S_FIELD = 0, /* the first byte of a field representation */
	S_INT,       /* a continuation byte of an integer */
	S_STRHDR,    /* a string's first byte (H bit, length prefix) */
	S_STR,       /* a string's bytes */
};

/* h->rep: the field representation being read */
enum { R_INDEXED, R_INCREMENTAL, R_NOT_INDEXED, R_SIZE_UPDATE };

/* h->target: what the integer being read is */
enum { T_INDEX, T_SIZE, T_STRLEN };

/* h->sub: which string is being read */
enum { SUB_NAME, SUB_VALUE };

/* --- Huffman code (RFC 7541 Appendix B), canonical form ---------------------
 * For each code length L (5..30): hp_first[L] is the first code of that
 * length, hp_count[L] how many there are, hp_base[L] the position of the
 * first one in the symbols sorted by (length, symbol); hp_sym[] is that
 * order. EOS (256) is last (position 256), so it is not in hp_sym[].
 * Generated from the RFC's table (checked in tests/check_hpack.c, which
 * encodes with the table as the RFC prints it). */
static const uint32_t hp_first[31] = {
	0x00000000, 0x00000000, 0x00000000, 0x00000000,
	0x00000000, 0x00000000, 0x00000014, 0x0000005c,
	0x000000f8, 0x00000000, 0x000003f8, 0x000007fa,
	0x00000ffa, 0x00001ff8, 0x00003ffc, 0x00007ffc,
	0x00000000, 0x00000000, 0x00000000, 0x0007fff0,
	0x000fffe6, 0x001fffdc, 0x003fffd2, 0x007fffd8,
	0x00ffffea, 0x01ffffec, 0x03ffffe0, 0x07ffffde,
	0x0fffffe2, 0x00000000, 0x3ffffffc,
};
static const uint8_t hp_count[31] = {
	0, 0, 0, 0, 0, 10, 26, 32, 6, 0, 5, 3, 2, 6, 2, 3,
	0, 0, 0, 3, 8, 13, 26, 29, 12, 4, 15, 19, 29, 0, 4,
};
static const uint16_t hp_base[31] = {
	0, 0, 0, 0, 0, 0, 10, 36, 68, 0, 74, 79, 82, 84, 90, 92,
	0, 0, 0, 95, 98, 106, 119, 145, 174, 186, 190, 205, 224, 0, 253,
};
/* hp_limit[L]: the first 30-bit value (a code left-aligned in 30 bits)
 * past every code of length <= L; a code's length is the first L whose
 * limit is above the next 30 bits (canonical codes sort by length). */
static const uint32_t hp_limit[31] = {
	0x00000000, 0x00000000, 0x00000000, 0x00000000,
	0x00000000, 0x14000000, 0x2e000000, 0x3e000000,
	0x3f800000, 0x3f800000, 0x3fd00000, 0x3fe80000,
	0x3ff00000, 0x3ffc0000, 0x3ffe0000, 0x3fff8000,
	0x3fff8000, 0x3fff8000, 0x3fff8000, 0x3fff9800,
	0x3fffb800, 0x3fffd200, 0x3fffec00, 0x3ffffa80,
	0x3ffffd80, 0x3ffffe00, 0x3ffffef0, 0x3fffff88,
	0x3ffffffc, 0x3ffffffc, 0x40000000,
};
#define HP_EOS_POS 256
static const uint8_t hp_sym[256] = {
	0x30, 0x31, 0x32, 0x61, 0x63, 0x65, 0x69, 0x6f, 0x73, 0x74, 0x20, 0x25,
	0x2d, 0x2e, 0x2f, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3d, 0x41,
	0x5f, 0x62, 0x64, 0x66, 0x67, 0x68, 0x6c, 0x6d, 0x6e, 0x70, 0x72, 0x75,
	0x3a, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c,
	0x4d, 0x4e, 0x4f, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x59,
	0x6a, 0x6b, 0x71, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x26, 0x2a, 0x2c, 0x3b,
	0x58, 0x5a, 0x21, 0x22, 0x28, 0x29, 0x3f, 0x27, 0x2b, 0x7c, 0x23, 0x3e,
	0x00, 0x24, 0x40, 0x5b, 0x5d, 0x7e, 0x5e, 0x7d, 0x3c, 0x60, 0x7b, 0x5c,
	0xc3, 0xd0, 0x80, 0x82, 0x83, 0xa2, 0xb8, 0xc2, 0xe0, 0xe2, 0x99, 0xa1,
	0xa7, 0xac, 0xb0, 0xb1, 0xb3, 0xd1, 0xd8, 0xd9, 0xe3, 0xe5, 0xe6, 0x81,
	0x84, 0x85, 0x86, 0x88, 0x92, 0x9a, 0x9c, 0xa0, 0xa3, 0xa4, 0xa9, 0xaa,
	0xad, 0xb2, 0xb5, 0xb9, 0xba, 0xbb, 0xbd, 0xbe, 0xc4, 0xc6, 0xe4, 0xe8,
	0xe9, 0x01, 0x87, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8f, 0x93, 0x95, 0x96,
	0x97, 0x98, 0x9b, 0x9d, 0x9e, 0xa5, 0xa6, 0xa8, 0xae, 0xaf, 0xb4, 0xb6,
	0xb7, 0xbc, 0xbf, 0xc5, 0xe7, 0xef, 0x09, 0x8e, 0x90, 0x91, 0x94, 0x9f,
	0xab, 0xce, 0xd7, 0xe1, 0xec, 0xed, 0xc7, 0xcf, 0xea, 0xeb, 0xc0, 0xc1,
	0xc8, 0xc9, 0xca, 0xcd, 0xd2, 0xd5, 0xda, 0xdb, 0xee, 0xf0, 0xf2, 0xf3,
	0xff, 0xcb, 0xcc, 0xd3, 0xd4, 0xd6, 0xdd, 0xde, 0xdf, 0xf1, 0xf4, 0xf5,
	0xf6, 0xf7, 0xf8, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0x02, 0x03, 0x04, 0x05,
	0x06, 0x07, 0x08, 0x0b, 0x0c, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14,
	0x15, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x7f, 0xdc,
	0xf9, 0x0a, 0x0d, 0x16,
};

/* hp_short[b]: the symbol a code of 8 bits or fewer that begins the byte b
 * stands for, and its length (sym | len << 8); 0 when the code is longer.
 * The 74 commonest symbols (letters, digits, "/-.=_:") have such codes.
 * Generated from the tables above. */
static const uint16_t hp_short[256] = {
	0x0530, 0x0530, 0x0530, 0x0530, 0x0530, 0x0530, 0x0530, 0x0530,
	0x0531, 0x0531, 0x0531, 0x0531, 0x0531, 0x0531, 0x0531, 0x0531,
	0x0532, 0x0532, 0x0532, 0x0532, 0x0532, 0x0532, 0x0532, 0x0532,
	0x0561, 0x0561, 0x0561, 0x0561, 0x0561, 0x0561, 0x0561, 0x0561,
	0x0563, 0x0563, 0x0563, 0x0563, 0x0563, 0x0563, 0x0563, 0x0563,
	0x0565, 0x0565, 0x0565, 0x0565, 0x0565, 0x0565, 0x0565, 0x0565,
	0x0569, 0x0569, 0x0569, 0x0569, 0x0569, 0x0569, 0x0569, 0x0569,
	0x056f, 0x056f, 0x056f, 0x056f, 0x056f, 0x056f, 0x056f, 0x056f,
	0x0573, 0x0573, 0x0573, 0x0573, 0x0573, 0x0573, 0x0573, 0x0573,
	0x0574, 0x0574, 0x0574, 0x0574, 0x0574, 0x0574, 0x0574, 0x0574,
	0x0620, 0x0620, 0x0620, 0x0620, 0x0625, 0x0625, 0x0625, 0x0625,
	0x062d, 0x062d, 0x062d, 0x062d, 0x062e, 0x062e, 0x062e, 0x062e,
	0x062f, 0x062f, 0x062f, 0x062f, 0x0633, 0x0633, 0x0633, 0x0633,
	0x0634, 0x0634, 0x0634, 0x0634, 0x0635, 0x0635, 0x0635, 0x0635,
	0x0636, 0x0636, 0x0636, 0x0636, 0x0637, 0x0637, 0x0637, 0x0637,
	0x0638, 0x0638, 0x0638, 0x0638, 0x0639, 0x0639, 0x0639, 0x0639,
	0x063d, 0x063d, 0x063d, 0x063d, 0x0641, 0x0641, 0x0641, 0x0641,
	0x065f, 0x065f, 0x065f, 0x065f, 0x0662, 0x0662, 0x0662, 0x0662,
	0x0664, 0x0664, 0x0664, 0x0664, 0x0666, 0x0666, 0x0666, 0x0666,
	0x0667, 0x0667, 0x0667, 0x0667, 0x0668, 0x0668, 0x0668, 0x0668,
	0x066c, 0x066c, 0x066c, 0x066c, 0x066d, 0x066d, 0x066d, 0x066d,
	0x066e, 0x066e, 0x066e, 0x066e, 0x0670, 0x0670, 0x0670, 0x0670,
	0x0672, 0x0672, 0x0672, 0x0672, 0x0675, 0x0675, 0x0675, 0x0675,
	0x073a, 0x073a, 0x0742, 0x0742, 0x0743, 0x0743, 0x0744, 0x0744,
	0x0745, 0x0745, 0x0746, 0x0746, 0x0747, 0x0747, 0x0748, 0x0748,
	0x0749, 0x0749, 0x074a, 0x074a, 0x074b, 0x074b, 0x074c, 0x074c,
	0x074d, 0x074d, 0x074e, 0x074e, 0x074f, 0x074f, 0x0750, 0x0750,
	0x0751, 0x0751, 0x0752, 0x0752, 0x0753, 0x0753, 0x0754, 0x0754,
	0x0755, 0x0755, 0x0756, 0x0756, 0x0757, 0x0757, 0x0759, 0x0759,
	0x076a, 0x076a, 0x076b, 0x076b, 0x0771, 0x0771, 0x0776, 0x0776,
	0x0777, 0x0777, 0x0778, 0x0778, 0x0779, 0x0779, 0x077a, 0x077a,
	0x0826, 0x082a, 0x082c, 0x083b, 0x0858, 0x085a, 0x0000, 0x0000,
};

/* --- static table (RFC 7541 Appendix A) -------------------------------------
 * Each name's length (a literal naming it makes an entry of that size) and
 * kind; values only where the kind is of interest. */
struct hp_static {
	uint8_t name_len;
	uint8_t kind;
	uint8_t value_len;
	char value[12];
};
#define N(name) { sizeof(name) - 1, AP_HPACK_OTHER, 0, "" }
#define V(name, kind, value) { sizeof(name) - 1, kind, sizeof(value) - 1, value }
static const struct hp_static hp_static[62] = {
	{ 0, 0, 0, "" }, /* index 0 is not an entry */
	N(":authority"),
	V(":method", AP_HPACK_METHOD, "GET"),
	V(":method", AP_HPACK_METHOD, "POST"),
	V(":path", AP_HPACK_PATH, "/"),
	V(":path", AP_HPACK_PATH, "/index.html"),
	N(":scheme"), N(":scheme"),
	V(":status", AP_HPACK_STATUS, "200"),
	V(":status", AP_HPACK_STATUS, "204"),
	V(":status", AP_HPACK_STATUS, "206"),
	V(":status", AP_HPACK_STATUS, "304"),
	V(":status", AP_HPACK_STATUS, "400"),
	V(":status", AP_HPACK_STATUS, "404"),
	V(":status", AP_HPACK_STATUS, "500"),
	N("accept-charset"), N("accept-encoding"), N("accept-language"),
	N("accept-ranges"), N("accept"), N("access-control-allow-origin"),
	N("age"), N("allow"), N("authorization"), N("cache-control"),
	N("content-disposition"), N("content-encoding"), N("content-language"),
	N("content-length"), N("content-location"), N("content-range"),
	N("content-type"), N("cookie"), N("date"), N("etag"), N("expect"),
	N("expires"), N("from"), N("host"), N("if-match"),
	N("if-modified-since"), N("if-none-match"), N("if-range"),
	N("if-unmodified-since"), N("last-modified"), N("link"), N("location"),
	N("max-forwards"), N("proxy-authenticate"), N("proxy-authorization"),
	N("range"), N("referer"), N("refresh"), N("retry-after"), N("server"),
	N("set-cookie"), N("strict-transport-security"), N("transfer-encoding"),
	N("user-agent"), N("vary"), N("via"), N("www-authenticate"),
};
#undef N
#undef V
#define HP_STATIC_N 61

_Static_assert(sizeof(struct ap_hpack_entry) == 12, "slot[] is 128 of these");
_Static_assert(sizeof(struct ap_hpack) <= 5 * 1024, "embedded twice per HTTP/2 connection");
_Static_assert(AP_HPACK_ARENA <= 65535 && AP_HPACK_PATH_MAX <= 65535,
               "arena offsets and kept lengths are 16 bits");
_Static_assert(AP_HPACK_NAME_SCRATCH >= 17, "room for \"x-apiprof-profile\"");

/* How many bytes of a value of this kind are kept: a :method longer than
 * the HTTP/1 parser keeps is reported lost, a longer :path truncated, a
 * :status other than three bytes is no status. */
static uint32_t keep_cap(unsigned kind)
{
	switch (kind) {
	case AP_HPACK_METHOD: return AP_HTTP_METHOD_MAX - 1;
	case AP_HPACK_PATH: return AP_HPACK_PATH_MAX - 1;
	case AP_HPACK_STATUS: return 3;
	case AP_HPACK_PROFILE: return 2; /* "1", and one more: "10" is not */
	default: return 0;
	}
}

/* --- results ------------------------------------------------------------- */

/* A field of `kind` with value v (len bytes kept, trunc: it was longer;
 * lost: not known at all) is in the block: the first of each kind sets the
 * results. */
static void report(struct ap_hpack *h, unsigned kind, const char *v, uint32_t len,
                   int trunc, int lost)
{
	switch (kind) {
	case AP_HPACK_METHOD:
		if (h->method_len || h->method_lost)
			return;
		/* a method the HTTP/1 parser could not keep whole is no method */
		if (lost || trunc || len == 0 || len > AP_HTTP_METHOD_MAX - 1) {
			h->method_lost = 1;
			return;
		}
		memcpy(h->method, v, len);
		h->method_len = (uint8_t)len;
		return;
	case AP_HPACK_PATH:
		if (h->path_seen)
			return;
		h->path_seen = 1;
		if (lost) {
			h->path_lost = 1;
			return;
		}
		if (len > AP_HPACK_PATH_MAX - 1) {
			len = AP_HPACK_PATH_MAX - 1;
			trunc = 1;
		}
		memcpy(h->path, v, len);
		h->path_len = (uint16_t)len;
		h->path_truncated = (uint8_t)(trunc != 0);
		return;
	case AP_HPACK_STATUS:
		if (h->status_seen)
			return;
		h->status_seen = 1;
		if (lost || trunc || len != 3)
			return;
		if (v[0] < '0' || v[0] > '9' || v[1] < '0' || v[1] > '9' || v[2] < '0' || v[2] > '9')
			return;
		h->status = (uint16_t)((v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0'));
		return;
	case AP_HPACK_PROFILE:
		if (!lost && !trunc && len == 1 && v[0] == '1')
			h->profile = 1;
		return;
	case HP_KIND_UNKNOWN:
		h->unknown = 1;
		return;
	default:
		return;
	}
}

/* --- the arena of kept copies ------------------------------------------------ */

/* The entry leaves the mirror: its copy, the oldest in the arena, goes. */
static void drop_copy(struct ap_hpack *h, struct ap_hpack_entry *e)
{
	if (e->flags & HP_KEPT) {
		h->arena_used = (uint16_t)(h->arena_used - e->kept_len);
		e->flags &= (uint8_t)~HP_KEPT;
	}
}

/* The mirrored entries, oldest first: insertions inserted - live .. inserted - 1. */
static uint32_t live_slots(const struct ap_hpack *h)
{
	return h->count < AP_HPACK_SLOTS ? h->count : AP_HPACK_SLOTS;
}

static struct ap_hpack_entry *slot_of(struct ap_hpack *h, uint64_t insertion)
{
	return &h->slot[insertion % AP_HPACK_SLOTS];
}

/* Copies h->value[0..len) into the arena for e, the entry being inserted,
 * dropping the oldest copies while it does not fit. */
static void keep_copy(struct ap_hpack *h, struct ap_hpack_entry *e, uint32_t len)
{
	uint64_t ins = h->inserted - live_slots(h);
	while ((uint32_t)(AP_HPACK_ARENA - h->arena_used) < len && ins < h->inserted)
		drop_copy(h, slot_of(h, ins++));
	if ((uint32_t)(AP_HPACK_ARENA - h->arena_used) < len) /* impossible: len < ARENA */
		return;
	e->arena_off = h->arena_head;
	for (uint32_t i = 0; i < len; i++) {
		h->arena[h->arena_head] = h->value[i];
		h->arena_head = (uint16_t)((h->arena_head + 1) % AP_HPACK_ARENA);
	}
	h->arena_used = (uint16_t)(h->arena_used + len);
	e->kept_len = (uint16_t)len;
	e->flags |= HP_KEPT;
}

/* Reports a mirrored entry's value (copied out of the ring into h->value). */
static void report_entry(struct ap_hpack *h, const struct ap_hpack_entry *e)
{
	if (e->kind == AP_HPACK_OTHER)
		return;
	if (!(e->flags & HP_KEPT)) {
		report(h, e->kind, NULL, 0, 0, 1);
		return;
	}
	for (uint32_t i = 0; i < e->kept_len; i++)
		h->value[i] = h->arena[(e->arena_off + i) % AP_HPACK_ARENA];
	report(h, e->kind, h->value, e->kept_len, (e->flags & HP_TRUNC) != 0, 0);
}

/* --- the table ------------------------------------------------------------- */

/* The table is certainly empty: the mirror is exact again. */
static void clear_table(struct ap_hpack *h)
{
	h->count = 0;
	h->size = 0;
	h->unmirrored = 0;
	h->arena_used = 0;
	h->mode = HP_EXACT;
}

/* Evicts oldest entries until the table's size is at most target (RFC 7541
 * 4.3, 4.4). */
static void evict_to(struct ap_hpack *h, uint32_t target)
{
	if (target < HP_ENTRY_OVERHEAD) { /* no entry fits: all go, in every mode */
		clear_table(h);
		return;
	}
	if (h->mode != HP_EXACT)
		return;
	while (h->size > target) {
		if (h->count > AP_HPACK_SLOTS) {
			/* The oldest are known only by their sum. All of them go
			 * if even the newest of them (>= 32 bytes) does not fit
			 * beside the mirrored ones; otherwise how many go is not
			 * known. */
			if (h->size - h->unmirrored + HP_ENTRY_OVERHEAD > target) {
				h->size -= h->unmirrored;
				h->unmirrored = 0;
				h->count = AP_HPACK_SLOTS;
				continue;
			}
			h->mode = HP_BLIND;
			h->count = AP_HPACK_SLOTS;
			return;
		}
		struct ap_hpack_entry *e = slot_of(h, h->inserted - h->count);
		drop_copy(h, e);
		h->size -= e->size;
		h->count--;
	}
}

/* Inserts the field just decoded (name h->name_len bytes, value h->str_len,
 * its first bytes in h->value) as the newest entry. */
static void insert(struct ap_hpack *h)
{
	uint64_t value_len = h->str_len;
	if (h->name_len == HP_NAME_UNKNOWN) {
		/* whether it fits, hence whether it was inserted, is unknown,
		 * unless even its value does not fit */
		if (value_len + HP_ENTRY_OVERHEAD > h->max_size)
			clear_table(h);
		else {
			clear_table(h);
			h->mode = HP_LOST;
		}
		return;
	}
	uint64_t esize = h->name_len + value_len + HP_ENTRY_OVERHEAD;
	if (esize > h->max_size) { /* 4.4: empties the table, not added */
		clear_table(h);
		return;
	}
	if (h->mode == HP_LOST)
		return;
	evict_to(h, (uint32_t)(h->max_size - esize));

	struct ap_hpack_entry *e = slot_of(h, h->inserted);
	if (h->count >= AP_HPACK_SLOTS) { /* e holds a live entry, leaving slot[] */
		drop_copy(h, e);
		if (h->mode == HP_EXACT)
			h->unmirrored += e->size;
	}
	e->size = (uint32_t)esize;
	e->name_len = h->name_len < 0xffff ? (uint16_t)h->name_len : 0xffff;
	e->kind = h->name_kind == HP_KIND_UNKNOWN ? AP_HPACK_OTHER : h->name_kind;
	e->flags = 0;
	e->kept_len = 0;
	if (e->kind != AP_HPACK_OTHER) {
		uint32_t cap = keep_cap(e->kind);
		if (h->str_len > cap)
			e->flags |= HP_TRUNC;
		/* when slot[] is full, keep_copy()'s oldest is e itself, whose
		 * flags are already clear */
		keep_copy(h, e, h->str_len < cap ? h->str_len : cap);
	}
	h->inserted++;
	if (h->mode == HP_EXACT || h->count < AP_HPACK_SLOTS)
		h->count++;
	if (h->mode == HP_EXACT)
		h->size += (uint32_t)esize;
}

/* What index refers to: -1 not an entry (an error), 0 a static entry,
 * 1 a mirrored entry (*ep), 2 an entry the mirror cannot tell. */
static int resolve(struct ap_hpack *h, uint32_t index, struct ap_hpack_entry **ep)
{
	if (index == 0)
		return -1;
	if (index <= HP_STATIC_N)
		return 0;
	uint32_t age = index - HP_STATIC_N - 1;
	if (h->mode == HP_EXACT) {
		if (age >= h->count)
			return -1;
	} else if (age >= h->max_size / HP_ENTRY_OVERHEAD ||
	           (h->mode == HP_BLIND && age >= h->inserted)) {
		return -1; /* beyond any table of this size, or any insertion */
	}
	if (h->mode == HP_LOST || age >= live_slots(h))
		return 2;
	*ep = slot_of(h, h->inserted - 1 - age);
	return 1;
}

/* --- fields ------------------------------------------------------------------ */

static int indexed_field(struct ap_hpack *h, uint32_t index)
{
	struct ap_hpack_entry *e = NULL;
	switch (resolve(h, index, &e)) {
	case 0: {
		const struct hp_static *s = &hp_static[index];
		if (s->kind != AP_HPACK_OTHER)
			report(h, s->kind, s->value, s->value_len, 0, 0);
		return 0;
	}
	case 1:
		report_entry(h, e);
		return 0;
	case 2:
		h->unknown = 1;
		return 0;
	default:
		return -1;
	}
}

/* A literal's name is entry `index`: its kind and length. */
static int indexed_name(struct ap_hpack *h, uint32_t index)
{
	struct ap_hpack_entry *e = NULL;
	switch (resolve(h, index, &e)) {
	case 0:
		h->name_kind = hp_static[index].kind;
		h->name_len = hp_static[index].name_len;
		return 0;
	case 1:
		h->name_kind = e->kind;
		h->name_len = e->name_len == 0xffff ? HP_NAME_UNKNOWN : e->name_len;
		return 0;
	case 2:
		h->name_kind = HP_KIND_UNKNOWN;
		h->name_len = HP_NAME_UNKNOWN;
		return 0;
	default:
		return -1;
	}
}

/* h->huff: how the string's bytes are taken */
enum { HUFF_NO = 0, HUFF_YES = 1, HUFF_SKIP = 2 };

/* A Huffman-coded value whose text and decoded length nobody needs:
 * not :method, :path or :status, and not going into the table (a literal
 * without indexing, or one too large for it: nginx sets its table's size
 * to 0 and still sends "with incremental indexing"). Its bytes are
 * skipped undecoded, and its padding unchecked: decoding it costs about
 * 100 instructions a byte, most of an HTTP/2 response's cost here. */
static int value_unneeded(const struct ap_hpack *h)
{
	if (h->sub != SUB_VALUE || h->name_kind != AP_HPACK_OTHER)
		return 0;
	return h->rep != R_INCREMENTAL ||
	       (h->name_len != HP_NAME_UNKNOWN &&
	        (uint64_t)h->name_len + HP_ENTRY_OVERHEAD > h->max_size);
}

static void string_begin(struct ap_hpack *h, uint32_t len)
{
	if (h->huff == HUFF_YES && value_unneeded(h))
		h->huff = HUFF_SKIP;
	h->str_left = len;
	h->str_len = 0;
	h->huff_code = 0;
	h->huff_len = 0;
	h->state = S_STR;
}

/* The string just read ends: check its Huffman padding (5.2: at most 7
 * bits, all ones), then go on with the value or finish the field. */
static int string_end(struct ap_hpack *h)
{
	if (h->huff == HUFF_YES && (h->huff_len > 7 || h->huff_code != (1u << h->huff_len) - 1))
		return -1;
	if (h->sub == SUB_NAME) {
		h->name_len = h->str_len;
		h->name_kind = AP_HPACK_OTHER;
		if (h->str_len == 7 && memcmp(h->name, ":method", 7) == 0)
			h->name_kind = AP_HPACK_METHOD;
		else if (h->str_len == 5 && memcmp(h->name, ":path", 5) == 0)
			h->name_kind = AP_HPACK_PATH;
		else if (h->str_len == 7 && memcmp(h->name, ":status", 7) == 0)
			h->name_kind = AP_HPACK_STATUS;
		else if (h->str_len == 17 && memcmp(h->name, "x-apiprof-profile", 17) == 0)
			h->name_kind = AP_HPACK_PROFILE;
		h->sub = SUB_VALUE;
		h->state = S_STRHDR;
		return 0;
	}
	uint32_t cap = keep_cap(h->name_kind);
	report(h, h->name_kind, h->value, h->str_len < cap ? h->str_len : cap, h->str_len > cap, 0);
	if (h->rep == R_INCREMENTAL)
		insert(h);
	h->state = S_FIELD;
	return 0;
}

/* The integer being read is v. */
static int int_done(struct ap_hpack *h, uint32_t v)
{
	switch (h->target) {
	case T_SIZE:
		if (v > h->limit) /* 6.3 */
			return -1;
		h->max_size = v;
		evict_to(h, v);
		h->state = S_FIELD;
		return 0;
	case T_INDEX:
		if (h->rep == R_INDEXED) {
			h->state = S_FIELD;
			return indexed_field(h, v);
		}
		if (v == 0) {
			h->sub = SUB_NAME;
		} else {
			if (indexed_name(h, v) < 0)
				return -1;
			h->sub = SUB_VALUE;
		}
		h->state = S_STRHDR;
		return 0;
	default: /* T_STRLEN */
		string_begin(h, v);
		return v == 0 ? string_end(h) : 0;
	}
}

/* An integer with an n-bit prefix (5.1) starts in byte b. */
static int int_begin(struct ap_hpack *h, uint8_t b, unsigned n, unsigned target)
{
	uint32_t mask = (1u << n) - 1;
	h->target = (uint8_t)target;
	if ((b & mask) < mask)
		return int_done(h, b & mask);
	h->num = mask;
	h->int_shift = 0;
	h->state = S_INT;
	return 0;
}

static int int_next(struct ap_hpack *h, uint8_t b)
{
	if (h->int_shift > 28) /* a sixth continuation byte: beyond 2^32 */
		return -1;
	uint64_t v = h->num + ((uint64_t)(b & 0x7f) << h->int_shift);
	if (v > UINT32_MAX)
		return -1;
	h->num = (uint32_t)v;
	h->int_shift = (uint8_t)(h->int_shift + 7);
	return (b & 0x80) ? 0 : int_done(h, h->num);
}

static int field_begin(struct ap_hpack *h, uint8_t b)
{
	if ((b & 0xe0) == 0x20) { /* 6.3: only before the block's first field */
		if (h->fields)
			return -1;
		h->rep = R_SIZE_UPDATE;
		return int_begin(h, b, 5, T_SIZE);
	}
	h->fields = 1;
	if (b & 0x80) {
		h->rep = R_INDEXED;
		return int_begin(h, b, 7, T_INDEX);
	}
	if (b & 0x40) {
		h->rep = R_INCREMENTAL;
		return int_begin(h, b, 6, T_INDEX);
	}
	h->rep = R_NOT_INDEXED; /* without indexing (0000) or never (0001) */
	return int_begin(h, b, 4, T_INDEX);
}

/* Keeps and counts one decoded byte. */
#define HP_OUT(sym) \
	do { \
		if (out < cap) \
			keep[out] = (char)(sym); \
		if (out < UINT32_MAX) \
			out++; \
	} while (0)

/* n bytes of the current string: decoded (Huffman or not), the first cap
 * bytes kept in keep, all counted in h->str_len (saturating).
 *
 * Huffman: at a symbol boundary, the next (up to) 8 bytes of the string go
 * into a 64-bit window, zero-filled after them, and every symbol whose
 * code ends within those bytes is decoded 30 bits at a time (hp_limit[]
 * gives the length): the code is prefix-free, so the fill cannot change a
 * code that ends before it. What is left, a code cut by the end of a feed
 * and the padding (at most 7 ones: no code is all ones that short), goes
 * bit by bit, which is where a symbol split across feeds resumes. Both
 * read the same prefix code, so the results do not depend on the split. */
static int string_bytes(struct ap_hpack *h, const uint8_t *p, size_t n, char *keep, uint32_t cap)
{
	uint32_t out = h->str_len;
	if (!h->huff) {
		if (out < cap)
			memcpy(keep + out, p, cap - out < n ? cap - out : n);
		h->str_len = n > UINT32_MAX - out ? UINT32_MAX : out + (uint32_t)n;
		return 0;
	}
	uint32_t code = h->huff_code;
	unsigned len = h->huff_len;
	unsigned skip = 0; /* leading bits of p[i] already decoded */
	size_t i = 0;
	while (i < n) {
		if (len == 0) {
			/* Up to 8 bytes in a window, zeros after them: a code
			 * found there that ends within the bytes is the real one
			 * (the code is prefix-free); one that would end past them
			 * is left to the next window, or to the bit-by-bit loop
			 * (a code split across feeds, the padding). */
			unsigned have = n - i < 8 ? (unsigned)(n - i) : 8;
			uint64_t w = 0;
			for (unsigned k = 0; k < have; k++)
				w = w << 8 | p[i + k];
			w <<= 8 * (8 - have);
			unsigned bits = 8 * have, used = skip;
			while (used + 5 <= bits) {
				uint32_t top = (uint32_t)((w << used) >> 34);
				unsigned e = hp_short[top >> 22], l = e >> 8;
				if (l == 0) {
					l = 9;
					while (top >= hp_limit[l])
						l++;
				}
				if (used + l > bits)
					break;
				if (e == 0) {
					uint32_t pos = hp_base[l] + (top >> (30 - l)) - hp_first[l];
					if (pos == HP_EOS_POS) /* 5.2: EOS in a string */
						return -1;
					e = hp_sym[pos];
				}
				HP_OUT(e & 0xff);
				used += l;
			}
			if (used > skip) {
				i += used / 8;
				skip = used % 8;
				continue;
			}
			/* nothing complete in the window: this byte bit by bit */
		}
		for (int bit = 7 - (int)skip; bit >= 0; bit--) {
			code = code << 1 | ((p[i] >> bit) & 1);
			len++;
			uint32_t d = code - hp_first[len];
			if (d < hp_count[len]) {
				uint32_t pos = hp_base[len] + d;
				if (pos == HP_EOS_POS)
					return -1;
				HP_OUT(hp_sym[pos]);
				code = 0;
				len = 0;
			} else if (len == 30) { /* impossible: the code is complete */
				return -1;
			}
		}
		skip = 0;
		i++;
	}
	h->huff_code = code;
	h->huff_len = (uint8_t)len;
	h->str_len = out;
	return 0;
}
#undef HP_OUT

/* --- the interface ------------------------------------------------------------ */

void ap_hpack_init(struct ap_hpack *h)
{
	memset(h, 0, sizeof *h);
	h->limit = AP_HPACK_DEFAULT_TABLE;
	h->max_size = AP_HPACK_DEFAULT_TABLE;
	h->state = S_FIELD;
}

void ap_hpack_set_limit(struct ap_hpack *h, uint32_t limit)
{
	h->limit = limit;
	/* A larger limit only allows the encoder a larger table: its table
	 * keeps its size until it sends an update (6.3). A smaller one
	 * binds it at once (it must follow with an update no larger). */
	if (h->max_size > limit) {
		h->max_size = limit;
		evict_to(h, limit);
	}
}

void ap_hpack_block_begin(struct ap_hpack *h)
{
	h->method_len = 0;
	h->method_lost = 0;
	h->path_len = 0;
	h->path_seen = 0;
	h->path_truncated = 0;
	h->path_lost = 0;
	h->status = 0;
	h->status_seen = 0;
	h->profile = 0;
	h->fields = 0;
	h->unknown = 0;
	/* the previous block was cut inside a field: that field may have been
	 * an insertion, so the table can no longer be followed */
	if (h->state != S_FIELD)
		h->error = 1;
}

int ap_hpack_feed(struct ap_hpack *h, const uint8_t *p, size_t n)
{
	size_t i = 0;
	if (h->error)
		return -1;
	while (i < n) {
		int rc = 0;
		switch (h->state) {
		case S_FIELD:
			rc = field_begin(h, p[i++]);
			break;
		case S_INT:
			rc = int_next(h, p[i++]);
			break;
		case S_STRHDR:
			h->huff = (p[i] & 0x80) ? HUFF_YES : HUFF_NO;
			rc = int_begin(h, p[i++], 7, T_STRLEN);
			break;
		default: { /* S_STR */
			size_t take = n - i < h->str_left ? n - i : h->str_left;
			if (h->huff == HUFF_SKIP)
				;
			else if (h->sub == SUB_NAME)
				rc = string_bytes(h, p + i, take, h->name, AP_HPACK_NAME_SCRATCH);
			else
				rc = string_bytes(h, p + i, take, h->value, keep_cap(h->name_kind));
			i += take;
			h->str_left -= (uint32_t)take;
			if (rc == 0 && h->str_left == 0)
				rc = string_end(h);
			break;
		}
		}
		if (rc < 0) {
			h->error = 1;
			return -1;
		}
	}
	return 0;
}

int ap_hpack_block_end(struct ap_hpack *h)
{
	if (h->state != S_FIELD)
		h->error = 1;
	if (h->error)
		return -1;
	/* a reference the mirror could not resolve may have been either */
	if (h->unknown) {
		if (!h->method_len)
			h->method_lost = 1;
		if (!h->path_seen) {
			h->path_seen = 1;
			h->path_lost = 1;
		}
	}
	return 0;
}

size_t ap_hpack_table_size(const struct ap_hpack *h)
{
	return h->mode == HP_EXACT ? h->size : SIZE_MAX;
}

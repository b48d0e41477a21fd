/*
 * sql_ref.h - the reference fingerprint for check_sql.c and
 * fuzz/fuzz_sql.c: ap_sql_fingerprint() as a second pass over the shape,
 * byte by byte, as it was before the normaliser learnt to compute it as
 * it writes (ap_sql_normalize_fp). The one-pass value must equal it.
 * Written again here, not called, so that a change to shared/sql.c cannot
 * move both sides at once.
 */
#ifndef AP_SQL_REF_H
#define AP_SQL_REF_H

#include <stddef.h>
#include <stdint.h>

#define REF_SP(c) ((c) == ' ' || ((c) >= '\t' && (c) <= '\r') || (c) == 0)
#define REF_Q(c) ((c) == '"' || (c) == '`' || (c) == '\'')
#define REF_WORD(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || \
                     ((c) >= '0' && (c) <= '9') || (c) == '_' || (c) == '$' || \
                     (c) >= 0x80 || (c) == '?' || REF_Q(c))

static inline uint64_t ref_fingerprint(const char *norm, size_t len)
{
	const unsigned char *s = (const unsigned char *)norm;
	uint64_t h = 0xcbf29ce484222325ULL;
	unsigned char prev = 0;
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		if (REF_SP(c)) {
			size_t j = i;
			while (j < len && REF_SP(s[j]))
				j++;
			if (j < len && REF_WORD(prev) && REF_WORD(s[j]))
				h = (h ^ ' ') * 0x100000001b3ULL;
			i = j;
		} else if (REF_Q(c)) {
			size_t j = i + 1;
			h = (h ^ c) * 0x100000001b3ULL;
			while (j < len && s[j] != c)
				h = (h ^ s[j++]) * 0x100000001b3ULL;
			if (j < len)
				h = (h ^ c) * 0x100000001b3ULL;
			prev = c;
			i = j + 1;
		} else {
			prev = c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
			h = (h ^ prev) * 0x100000001b3ULL;
			i++;
		}
	}
	return h;
}

#endif

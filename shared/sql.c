/*
 * sql.c - SQL statement shapes (ap_sql.h).
 *
 * ap_sql_normalize() is a hand-written lexer with one token of memory (the
 * kind of the last significant token and, for words, which of a few
 * keywords it was). Two rules need more than that, and both are done by
 * speculating and replaying instead of buffering:
 *  - list collapse: at the `(` after IN / VALUES (or `[` after ARRAY) the
 *    lexer state is saved and the following tokens are consumed without
 *    output while they are values and commas; at the closing bracket `?`
 *    and the bracket are written. Any other token restores the saved state
 *    and the list is lexed again, this time token by token.
 *  - VALUES row dedupe: the first row is written; at each `, (` after it
 *    the state is saved and the next row is lexed in compare mode, where
 *    output bytes are matched against the first row instead of written.
 *    A row that matches to its last byte is dropped; a mismatch restores
 *    the state and turns dedupe off for the rest of the clause.
 * Neither writes output it later takes back, so a truncated shape is
 * always a prefix of the full one and lexing can stop at the first byte
 * that does not fit. Saved states are plain struct copies.
 *
 * The fingerprint is computed as bytes are written (st.fh and the few
 * bytes of ap_sql_fingerprint()'s own state), so a replay restores it
 * with the output. The loop writes the common tokens itself (words,
 * quoted names, values, one-byte punctuation), hashing each in the loop
 * that scans it; the rest go through token() and emit(), whose put() and
 * span() hash byte by byte.
 */
#include "config.h"
#include "ap_sql.h"

#include <string.h>

/* --- byte classes -------------------------------------------------------- */

#define C_IDS 0x01   /* starts an identifier: letter, _, byte >= 0x80 */
#define C_ID 0x02    /* continues one: the above, digits, $ */
#define C_DIG 0x04
#define C_HEX 0x08
#define C_SP 0x10    /* whitespace, and NUL (treated as whitespace) */
#define C_CMT 0x20   /* may start or end a comment: - / # * */
#define C_FPW 0x40   /* a word character to the fingerprint: C_ID, ? and the
                        three quotes (ap_sql.h) */

#define CL_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define CL_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define CL(c) \
	((CL_ALPHA(c) || (c) == '_' || (c) >= 0x80 ? C_IDS | C_ID : 0) | \
	 (CL_DIGIT(c) ? C_ID | C_DIG | C_HEX : 0) | \
	 ((c) == '$' ? C_ID : 0) | \
	 (((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F') ? C_HEX : 0) | \
	 ((c) == ' ' || ((c) >= '\t' && (c) <= '\r') || (c) == 0 ? C_SP : 0) | \
	 ((c) == '-' || (c) == '/' || (c) == '#' || (c) == '*' ? C_CMT : 0) | \
	 (CL_ALPHA(c) || (c) == '_' || (c) >= 0x80 || CL_DIGIT(c) || (c) == '$' || \
	  (c) == '?' || (c) == '"' || (c) == '`' || (c) == '\'' ? C_FPW : 0))
#define CL4(c) CL(c), CL((c) + 1), CL((c) + 2), CL((c) + 3)
#define CL16(c) CL4(c), CL4((c) + 4), CL4((c) + 8), CL4((c) + 12)
#define CL64(c) CL16(c), CL16((c) + 16), CL16((c) + 32), CL16((c) + 48)

static const unsigned char cls[256] = {
	CL64(0), CL64(64), CL64(128), CL64(192)
};

#define IS(c, m) (cls[(unsigned char)(c)] & (m))

static inline unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Case-insensitive compare of w[0..n) with the lower-case word kw. */
static int word_is(const unsigned char *w, size_t n, const char *kw)
{
	size_t k;
	for (k = 0; k < n; k++)
		if (kw[k] == 0 || lower(w[k]) != (unsigned char)kw[k])
			return 0;
	return kw[n] == 0;
}

/* --- fingerprint tables ---------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static inline int wordish(unsigned char c)
{
	return IS(c, C_FPW);
}

/* For the fingerprint: an ordinary byte outside quotes, lowercased; 0 for
 * the bytes that need a decision (whitespace, NUL, the three quotes). */
#define FPC(c) \
	((c) == '"' || (c) == '`' || (c) == '\'' || (c) == ' ' || \
	 ((c) >= '\t' && (c) <= '\r') || (c) == 0 ? 0 : \
	 (c) >= 'A' && (c) <= 'Z' ? (c) | 0x20 : (c))
#define FPC4(c) FPC(c), FPC((c) + 1), FPC((c) + 2), FPC((c) + 3)
#define FPC16(c) FPC4(c), FPC4((c) + 4), FPC4((c) + 8), FPC4((c) + 12)
#define FPC64(c) FPC16(c), FPC16((c) + 16), FPC16((c) + 32), FPC16((c) + 48)

static const unsigned char fp_plain[256] = {
	FPC64(0), FPC64(64), FPC64(128), FPC64(192)
};

/* A word byte (C_ID) lowercased, as the fingerprint hashes it; 0 for any
 * other byte. One look-up both ends a word and gives its hash input, so
 * the normaliser's word loop scans and fingerprints in one. */
#define FPW(c) (CL(c) & C_ID ? (CL_ALPHA(c) ? (c) | 0x20 : (c)) : 0)
#define FPW4(c) FPW(c), FPW((c) + 1), FPW((c) + 2), FPW((c) + 3)
#define FPW16(c) FPW4(c), FPW4((c) + 4), FPW4((c) + 8), FPW4((c) + 12)
#define FPW64(c) FPW16(c), FPW16((c) + 16), FPW16((c) + 32), FPW16((c) + 48)

static const unsigned char fp_word[256] = {
	FPW64(0), FPW64(64), FPW64(128), FPW64(192)
};

/* --- normaliser state ---------------------------------------------------- */

enum kind {        /* the last significant token */
	K_START,   /* nothing yet, or after `;` */
	K_OP,      /* an operator character */
	K_OPEN,    /* ( or [ */
	K_COMMA,
	K_DOT,
	K_WORD,    /* identifier or keyword */
	K_VALUE,   /* literal, placeholder, quoted identifier, ) or ] */
};

/* The one-byte tokens the normaliser's loop writes itself, and the kind
 * each leaves: those token() would pass to emit() as TK_COMMA, TK_DOT,
 * TK_OPEN, TK_CLOSE or TK_OP with no rule attached (no comment, sign,
 * placeholder, cast or quote can start with them). `[` is not here: SQLite
 * quotes names with it. */
static const unsigned char punct[256] = {
	[','] = K_COMMA, ['.'] = K_DOT, ['('] = K_OPEN, [')'] = K_VALUE,
	[']'] = K_VALUE, ['='] = K_OP, ['<'] = K_OP, ['>'] = K_OP, ['!'] = K_OP,
	['|'] = K_OP, ['%'] = K_OP, ['^'] = K_OP, ['~'] = K_OP, ['&'] = K_OP,
	['{'] = K_OP, ['}'] = K_OP,
};

enum tag {         /* what a word was, when it matters */
	T_NONE,
	T_IN,      /* IN: a ( after it may start a collapsible list */
	T_VALUES,  /* VALUES, MySQL VALUE */
	T_ARRAY,   /* ARRAY: a [ after it may start a collapsible list */
	T_LIT,     /* NULL TRUE FALSE DEFAULT: values inside a list */
	T_OPERAND, /* a keyword after which -5 is a negative number */
};

enum vstate {      /* VALUES row dedupe */
	V_NONE,
	V_ROW0,    /* inside the first row */
	V_AFTER,   /* after a row; a `,` may start another */
	V_SEP,     /* consumed that `,`, waiting for `(` */
	V_ROWK,    /* inside a later row, comparing */
};

#define P_SPACE 1
#define P_SEMI 2

/* Everything a replay must restore. */
struct st {
	size_t i;          /* next input byte */
	size_t n;          /* output bytes written */
	size_t cmp;        /* compare mode: next byte of the first row */
	size_t row0_start; /* first row in out[]: from its `(` ... */
	size_t row0_end;   /* ... to just after its `)` */
	unsigned depth;    /* parenthesis depth */
	unsigned row_depth;/* depth outside the current VALUES row */
	size_t wpos;       /* the last word, when kind is K_WORD: its start */
	unsigned char wlen;/* and length, capped (longer words are no keyword) */
	unsigned char pend;/* P_SEMI | P_SPACE before the next token */
	unsigned char kind;
	unsigned char list;  /* collapsing a list: its closing bracket, or 0 */
	unsigned char items; /* the list had at least one value */
	unsigned char vstate;
	unsigned char comparing;
	unsigned char exec_cmt; /* inside a MySQL / *! ... * / comment */
	unsigned char dealloc;  /* D_*: a DEALLOCATE's name may come next */
	/* ap_sql_fingerprint() of out[0..n), kept as bytes are written so
	 * that the shape is not read a second time; part of the state so
	 * that a replay restores it with n. */
	unsigned char fq;    /* the quote out[] leaves open, or 0 */
	unsigned char fword; /* the last byte outside quotes was wordish() */
	unsigned char fsp;   /* whitespace was written after it */
	uint64_t fh;
};

struct lx {
	const unsigned char *s;
	size_t len;
	char *out;
	size_t lim;        /* bytes we may write before the NUL */
	int dialect;
	int keep;
	int full;          /* output did not fit: stop */
	int mismatch;      /* compare mode saw a difference */
	struct st st;
	struct st list_snap, row_snap;
};

/* Undoes a partial UTF-8 character at the end of out[0..*n) when `next`,
 * the byte that did not fit, continues it. Looks back at most 3 bytes so
 * that invalid input (long runs of continuation bytes) cannot eat the
 * output. */
static void cut_utf8(const char *out, size_t *n, unsigned char next)
{
	size_t m = *n, k;
	if ((next & 0xC0) != 0x80)
		return;
	for (k = 0; k < 3 && m > 0; k++) {
		unsigned char b = (unsigned char)out[m - 1];
		m--;
		if ((b & 0xC0) != 0x80) {
			if (b >= 0xC0)
				*n = m; /* the lead byte of a cut character */
			return;
		}
	}
}

/* Feeds one written byte to the fingerprint: ap_sql_fingerprint()'s loop
 * turned inside out (a space waits for the byte after it to decide). */
static inline void fp_byte(struct st *st, unsigned char c)
{
	unsigned char m;
	if (st->fq) {
		st->fh = (st->fh ^ c) * FNV_PRIME;
		if (c == st->fq)
			st->fq = 0;
		return;
	}
	m = fp_plain[c];
	if (!m && IS(c, C_SP)) {
		st->fsp = 1;
		return;
	}
	if (st->fsp) {
		st->fsp = 0;
		if (st->fword && wordish(c))
			st->fh = (st->fh ^ ' ') * FNV_PRIME;
	}
	if (m) {
		st->fh = (st->fh ^ m) * FNV_PRIME;
		st->fword = wordish(c) != 0;
	} else { /* a quote opens */
		st->fh = (st->fh ^ c) * FNV_PRIME;
		st->fq = c;
		st->fword = 1;
	}
}

static void fp_bytes(struct st *st, const unsigned char *p, size_t n)
{
	size_t k;
	for (k = 0; k < n; k++)
		fp_byte(st, p[k]);
}

static inline void put(struct lx *x, unsigned char c)
{
	if (c == 0)
		c = ' ';
	if (x->st.comparing) {
		if (x->st.cmp < x->st.row0_end &&
		    (unsigned char)x->out[x->st.cmp] == c)
			x->st.cmp++;
		else
			x->mismatch = 1;
		return;
	}
	if (x->full)
		return;
	if (x->st.n < x->lim) {
		x->out[x->st.n++] = (char)c;
		fp_byte(&x->st, c);
		return;
	}
	x->full = 1;
	cut_utf8(x->out, &x->st.n, c);
}

/* Writes the pending `;` and space before a token. */
static void lead_slow(struct lx *x)
{
	if (x->st.pend & P_SEMI)
		put(x, ';');
	if ((x->st.pend & P_SPACE) && x->st.n > 0)
		put(x, ' ');
	x->st.pend = 0;
}

static inline void lead(struct lx *x)
{
	if (x->st.pend)
		lead_slow(x);
}

/*
 * Copies s[a..b) verbatim and fingerprints it unless fp is 0. nul_free:
 * the span is known to hold no NUL.
 * Most tokens are short words: with room on both sides they are copied as
 * one 16-byte block (bytes past the token are scratch, overwritten later
 * or left after the NUL), which is most of the normaliser's speed.
 */
static void span_to(struct lx *x, size_t a, size_t b, int nul_free, int fp)
{
	size_t l = b - a, n;
	lead(x);
	n = x->st.n;
	if (nul_free && !x->st.comparing && !x->full && l <= x->lim - n) {
		if (l <= 16 && x->len - a >= 16 && x->lim - n >= 16)
			memcpy(x->out + n, x->s + a, 16);
		else
			memcpy(x->out + n, x->s + a, l);
		x->st.n = n + l;
		if (fp)
			fp_bytes(&x->st, x->s + a, l);
		return;
	}
	/* put() fingerprints what it writes: a caller that passed fp 0 sets
	 * the hash itself afterwards */
	for (; a < b && !x->full && !x->mismatch; a++)
		put(x, x->s[a]);
}

static inline void span(struct lx *x, size_t a, size_t b, int nul_free)
{
	span_to(x, a, b, nul_free, 1);
}

/* --- scanners: each returns the end of its token ------------------------- */

/* A quoted run starting at s[i] == q: doubled quotes stay inside, and with
 * bs a backslash escapes the next byte. Returns the end; an unterminated
 * run ends at len and sets *open (may be NULL). */
static size_t scan_quoted(const unsigned char *s, size_t len, size_t i,
                          unsigned char q, int bs, int *open)
{
	size_t j = i + 1;
	for (;;) {
		if (bs) {
			while (j < len && s[j] != q && s[j] != '\\')
				j++;
		} else {
			/* most literals are short: a few bytes by hand before
			 * paying for memchr()'s call and set-up */
			size_t k = len - j < 16 ? len : j + 16;
			while (j < k && s[j] != q)
				j++;
			if (j == k && j < len) {
				const unsigned char *p = memchr(s + j, q, len - j);
				j = p ? (size_t)(p - s) : len;
			}
		}
		if (j >= len)
			break;
		if (s[j] == '\\') {
			j += 2;
			continue;
		}
		if (j + 1 < len && s[j + 1] == q) {
			j += 2;
			continue;
		}
		return j + 1;
	}
	if (open)
		*open = 1;
	return len;
}

/* Numbers: 0x.., 0b.., 0o.., digits with _ separators, a fraction, an
 * exponent. s[i] is a digit or a `.` followed by one. */
static size_t scan_number(const unsigned char *s, size_t len, size_t i)
{
	size_t j = i;
	if (s[j] == '0' && j + 2 < len) {
		unsigned char p = lower(s[j + 1]), d = s[j + 2];
		if (p == 'x' && IS(d, C_HEX)) {
			for (j += 2; j < len && (IS(s[j], C_HEX) || s[j] == '_'); j++)
				;
			return j;
		}
		if ((p == 'b' && (d == '0' || d == '1')) ||
		    (p == 'o' && d >= '0' && d <= '7')) {
			for (j += 2; j < len && (IS(s[j], C_DIG) || s[j] == '_'); j++)
				;
			return j;
		}
	}
	while (j < len && (IS(s[j], C_DIG) ||
	                   (s[j] == '_' && j + 1 < len && IS(s[j + 1], C_DIG))))
		j++;
	if (j < len && s[j] == '.') {
		j++;
		while (j < len && IS(s[j], C_DIG))
			j++;
	}
	if (j < len && lower(s[j]) == 'e') {
		size_t k = j + 1;
		if (k < len && (s[k] == '+' || s[k] == '-'))
			k++;
		if (k < len && IS(s[k], C_DIG)) {
			for (j = k; j < len && IS(s[j], C_DIG); j++)
				;
		}
	}
	return j;
}

static size_t scan_digits(const unsigned char *s, size_t len, size_t i)
{
	while (i < len && IS(s[i], C_DIG))
		i++;
	return i;
}

static size_t scan_word(const unsigned char *s, size_t len, size_t i)
{
	while (i < len && IS(s[i], C_ID))
		i++;
	return i;
}

/* PostgreSQL dollar quote at s[i] == '$': the end of the whole literal,
 * or 0 when this `$` does not open one. */
static size_t scan_dollar(const unsigned char *s, size_t len, size_t i)
{
	size_t j = i + 1, tl;
	if (j < len && s[j] != '$') {
		if (!IS(s[j], C_IDS))
			return 0;
		while (j < len && IS(s[j], C_IDS | C_DIG))
			j++;
		if (j >= len || s[j] != '$')
			return 0;
	}
	if (j >= len)
		return 0;
	tl = j - i + 1; /* the tag with both dollars */
	for (j++; j < len;) {
		const unsigned char *p = memchr(s + j, '$', len - j);
		if (!p)
			break;
		j = (size_t)(p - s);
		if (len - j >= tl && memcmp(s + j, s + i, tl) == 0)
			return j + tl;
		j++;
	}
	return len;
}

static size_t skip_block_comment(const struct lx *x, size_t i)
{
	const unsigned char *s = x->s;
	size_t len = x->len, j = i + 2;
	unsigned depth = 1;
	while (j < len) {
		if (s[j] == '*' && j + 1 < len && s[j + 1] == '/') {
			j += 2;
			if (--depth == 0)
				return j;
		} else if (s[j] == '/' && j + 1 < len && s[j + 1] == '*' &&
		           x->dialect == AP_SQL_PG) {
			depth++;
			j += 2;
		} else {
			j++;
		}
	}
	return len;
}

static size_t skip_line(const unsigned char *s, size_t len, size_t i)
{
	const unsigned char *p = memchr(s + i, '\n', len - i);
	return p ? (size_t)(p - s) + 1 : len;
}

/* A keyword of up to 7 letters packed into an integer, lower case first
 * letter in the low byte; GCC and Clang fold these to constants. */
#define KB(s, k) ((uint64_t)(sizeof(s) > (k) + 1 ? (unsigned char)(s)[k] : 0) << (8 * (k)))
#define KW(s) (KB(s, 0) | KB(s, 1) | KB(s, 2) | KB(s, 3) | KB(s, 4) | KB(s, 5) | KB(s, 6))

/* Called for every word, so one pass to pack it and a few compares. */
static enum tag word_tag(const unsigned char *w, size_t n, int dialect)
{
	uint64_t key = 0;
	size_t k;
	if (n < 2 || n > 7)
		return T_NONE;
	for (k = 0; k < n; k++) {
		if (!CL_ALPHA(w[k]))
			return T_NONE;
		key |= (uint64_t)(w[k] | 0x20) << (8 * k);
	}
	switch (n) {
	case 2:
		if (key == KW("in"))
			return T_IN;
		if (key == KW("or") || key == KW("on") || key == KW("is") ||
		    key == KW("by"))
			return T_OPERAND;
		break;
	case 3:
		if (key == KW("and") || key == KW("not"))
			return T_OPERAND;
		break;
	case 4:
		if (key == KW("null") || key == KW("true"))
			return T_LIT;
		if (key == KW("when") || key == KW("then") || key == KW("else") ||
		    key == KW("like"))
			return T_OPERAND;
		break;
	case 5:
		if (key == KW("false"))
			return T_LIT;
		if (key == KW("array"))
			return T_ARRAY;
		/* only MySQL has INSERT ... VALUE (...); elsewhere `value`
		 * is a common column name */
		if (key == KW("value") && dialect == AP_SQL_MYSQL)
			return T_VALUES;
		if (key == KW("where") || key == KW("limit") || key == KW("ilike"))
			return T_OPERAND;
		break;
	case 6:
		if (key == KW("values"))
			return T_VALUES;
		if (key == KW("select") || key == KW("offset") || key == KW("return"))
			return T_OPERAND;
		break;
	case 7:
		if (key == KW("default"))
			return T_LIT;
		if (key == KW("between"))
			return T_OPERAND;
		break;
	}
	return T_NONE;
}

/* --- tokens -------------------------------------------------------------- */

enum tk {
	TK_VALUE,   /* literal: `?` unless keeping values */
	TK_PARAM,   /* placeholder: verbatim, a value inside lists */
	TK_WORD,
	TK_QIDENT,  /* quoted identifier, may hold any byte */
	TK_OPEN,
	TK_CLOSE,
	TK_COMMA,
	TK_SEMI,
	TK_DOT,
	TK_OP,
};

/* Handles `)` / `]` once written: depth and VALUES bookkeeping. */
static void closed(struct lx *x)
{
	struct st *st = &x->st;
	if (st->depth > 0)
		st->depth--;
	st->kind = K_VALUE;
	if (st->vstate == V_ROW0 && st->depth == st->row_depth) {
		st->row0_end = st->n;
		st->vstate = V_AFTER;
	} else if (st->vstate == V_ROWK && st->depth == st->row_depth) {
		if (!x->mismatch && st->cmp == st->row0_end) {
			/* the row repeats the first one: drop it */
			size_t i = st->i;
			*st = x->row_snap;
			st->i = i;
			st->vstate = V_AFTER;
		} else {
			x->mismatch = 1;
		}
	}
}

/* The tag of the last token: T_NONE unless it was a word. Computed only
 * where a rule asks, which is rarely. */
static enum tag last_tag(const struct lx *x)
{
	if (x->st.kind != K_WORD)
		return T_NONE;
	return word_tag(x->s + x->st.wpos, x->st.wlen, x->dialect);
}

/* st.dealloc: the statement began DEALLOCATE, or DEALLOCATE PREPARE. */
enum { D_NONE, D_VERB, D_PREPARE };

/*
 * `DEALLOCATE [PREPARE] name`: the name is written as `?`, as a value.
 * Drivers generate one per prepared statement (DBD::Pg's dbdpg_p<pid>_<n>,
 * Rails' a<n>, psycopg's _pg3_<n>), so kept as written each would be a
 * shape of its own, without bound; pg_stat_statements does the same from
 * PostgreSQL 17. Called for a word s[i..j) that starts the statement or
 * follows such a start (st.n == 0 or st.dealloc); returns 1 when it wrote
 * the `?` for it, 0 when the word is to be written as usual. Never with
 * AP_SQL_KEEP_VALUES, which keeps everything as written.
 */
static int dealloc_word(struct lx *x, size_t i, size_t j)
{
	struct st *st = &x->st;
	unsigned char d = st->dealloc;
	st->dealloc = D_NONE;
	if (x->keep || x->dialect == AP_SQL_SQLITE)
		return 0;
	if (d == D_NONE) {
		if (st->n == 0 && word_is(x->s + i, j - i, "deallocate"))
			st->dealloc = D_VERB;
		return 0;
	}
	if (d == D_VERB && word_is(x->s + i, j - i, "prepare")) {
		st->dealloc = D_PREPARE;
		return 0;
	}
	if (word_is(x->s + i, j - i, "all"))
		return 0;
	lead(x);
	put(x, '?');
	st->kind = K_VALUE;
	st->i = j;
	return 1;
}

/* Emits (or, inside a collapsing list, swallows) the token s[i..end). */
static void emit(struct lx *x, enum tk t, size_t end)
{
	struct st *st = &x->st;
	size_t i = st->i;
	unsigned char c = x->s[i];

	if (st->list) {
		if (t == TK_VALUE || t == TK_PARAM ||
		    (t == TK_WORD && word_tag(x->s + i, end - i, x->dialect) == T_LIT)) {
			st->items = 1;
			st->kind = K_VALUE;
			st->i = end;
			return;
		}
		if (t == TK_COMMA) {
			st->kind = K_COMMA;
			st->i = end;
			return;
		}
		if (t == TK_CLOSE && c == st->list) {
			st->pend = 0;
			if (st->items) {
				lead(x);
				put(x, '?');
			}
			put(x, c);
			st->list = 0;
			st->i = end;
			if (c == ')')
				closed(x);
			else
				st->kind = K_VALUE;
			return;
		}
		/* not a list of values: lex it again, token by token */
		*st = x->list_snap;
		return;
	}

	if (__builtin_expect(st->dealloc != D_NONE, 0) && t != TK_WORD) {
		/* DEALLOCATE "name": the quoted name too */
		int named = t == TK_QIDENT && !x->keep;
		st->dealloc = D_NONE;
		if (named) {
			lead(x);
			put(x, '?');
			st->kind = K_VALUE;
			st->i = end;
			return;
		}
	}
	switch (t) {
	case TK_VALUE:
		if (x->keep) {
			span(x, i, end, 0);
		} else {
			lead(x);
			put(x, '?');
		}
		st->kind = K_VALUE;
		break;
	case TK_PARAM:
		span(x, i, end, 1);
		st->kind = K_VALUE;
		break;
	case TK_QIDENT:
		span(x, i, end, memchr(x->s + i, 0, end - i) == NULL);
		st->kind = K_VALUE;
		break;
	case TK_WORD:
		if ((st->n == 0 || st->dealloc) && dealloc_word(x, i, end))
			return;
		span(x, i, end, 1);
		st->kind = K_WORD;
		st->wpos = i;
		st->wlen = end - i < 255 ? (unsigned char)(end - i) : 255;
		st->i = end;
		return;
	case TK_OPEN: {
		int listy = 0;
		lead(x);
		if (!x->keep) {
			enum tag tag = last_tag(x);
			if (c == '(' && tag == T_VALUES && st->vstate == V_NONE) {
				st->row0_start = st->n;
				st->row_depth = st->depth;
				st->vstate = V_ROW0;
			}
			listy = (c == '(' && (tag == T_IN || tag == T_VALUES)) ||
			        (c == '[' && tag == T_ARRAY);
			if (c == '(' && st->vstate == V_ROWK && st->depth == st->row_depth)
				listy = 1; /* a later row opens */
		}
		put(x, c);
		st->depth += c == '(';
		st->kind = K_OPEN;
		st->i = end;
		if (listy) {
			x->list_snap = *st;
			st->list = c == '(' ? ')' : ']';
			st->items = 0;
		}
		return;
	}
	case TK_CLOSE:
		lead(x);
		put(x, c);
		st->i = end;
		if (c == ')')
			closed(x);
		else
			st->kind = K_VALUE;
		return;
	case TK_COMMA:
		lead(x);
		put(x, c);
		st->kind = K_COMMA;
		break;
	case TK_SEMI:
		if (st->vstate == V_ROWK) {
			x->mismatch = 1; /* a row cannot hold a `;` */
			return;
		}
		st->pend = P_SEMI;
		st->kind = K_START;
		st->vstate = V_NONE;
		st->depth = 0;
		break;
	case TK_DOT:
		lead(x);
		put(x, c);
		st->kind = K_DOT;
		break;
	case TK_OP:
		if (end - i == 1) { /* all but `::` */
			lead(x);
			put(x, c);
		} else {
			span(x, i, end, 0);
		}
		st->kind = K_OP;
		break;
	}
	st->i = end;
}

/* May a sign at the current position fold into the number after it? */
static int sign_folds(const struct lx *x)
{
	switch (x->st.kind) {
	case K_START:
	case K_OP:
	case K_OPEN:
	case K_COMMA:
		return 1;
	case K_WORD:
		return last_tag(x) == T_OPERAND;
	}
	return 0;
}

/* Lexes the significant token at st.i and emits it. */
static void token(struct lx *x)
{
	const unsigned char *s = x->s;
	size_t len = x->len, i = x->st.i, j;
	unsigned char c = s[i], d = i + 1 < len ? s[i + 1] : 0;
	int dialect = x->dialect;

	if (IS(c, C_IDS)) {
		j = scan_word(s, len, i);
		if (j < len && s[j] == '\'') {
			unsigned char p = lower(c);
			if (j - i == 1 &&
			    ((p == 'e' && dialect == AP_SQL_PG) ||
			     ((p == 'b' || p == 'n') && dialect != AP_SQL_SQLITE) ||
			     p == 'x')) {
				int bs = p == 'e' || dialect == AP_SQL_MYSQL;
				emit(x, TK_VALUE, scan_quoted(s, len, j, '\'', bs, NULL));
				return;
			}
		}
		if (j - i == 1 && lower(c) == 'u' && dialect == AP_SQL_PG &&
		    j + 1 < len && s[j] == '&' && s[j + 1] == '\'') {
			emit(x, TK_VALUE, scan_quoted(s, len, j + 1, '\'', 0, NULL));
			return;
		}
		emit(x, TK_WORD, j);
		return;
	}
	if (IS(c, C_DIG) || (c == '.' && IS(d, C_DIG) &&
	                     !((x->st.kind == K_WORD || x->st.kind == K_VALUE) &&
	                       !x->st.pend))) {
		j = scan_number(s, len, i);
		if (dialect == AP_SQL_MYSQL && c != '.') {
			/* MySQL identifiers may start with digits */
			size_t w = scan_word(s, len, i);
			if (w > j) {
				emit(x, TK_WORD, w);
				return;
			}
		}
		emit(x, TK_VALUE, j);
		return;
	}
	switch (c) {
	case '\'':
		emit(x, TK_VALUE, scan_quoted(s, len, i, c, dialect == AP_SQL_MYSQL, NULL));
		return;
	case '"':
		if (dialect == AP_SQL_MYSQL) {
			emit(x, TK_VALUE, scan_quoted(s, len, i, c, 1, NULL));
			return;
		}
		/* fall through */
	case '`': {
		/* an unterminated identifier swallowed the rest, values and
		 * all: it is not kept */
		int open = 0;
		j = scan_quoted(s, len, i, c, 0, &open);
		emit(x, open ? TK_VALUE : TK_QIDENT, j);
		return;
	}
	case '[':
		if (dialect == AP_SQL_SQLITE) {
			const unsigned char *p = memchr(s + i, ']', len - i);
			emit(x, p ? TK_QIDENT : TK_VALUE, p ? (size_t)(p - s) + 1 : len);
		} else {
			emit(x, TK_OPEN, i + 1);
		}
		return;
	case '(':
		emit(x, TK_OPEN, i + 1);
		return;
	case ')':
	case ']':
		emit(x, TK_CLOSE, i + 1);
		return;
	case ',':
		emit(x, TK_COMMA, i + 1);
		return;
	case ';':
		emit(x, TK_SEMI, i + 1);
		return;
	case '.':
		emit(x, TK_DOT, i + 1);
		return;
	case '-':
	case '+':
		if ((IS(d, C_DIG) || (d == '.' && i + 2 < len && IS(s[i + 2], C_DIG))) &&
		    sign_folds(x)) {
			emit(x, TK_VALUE, scan_number(s, len, i + 1));
			return;
		}
		break;
	case '?':
		emit(x, TK_PARAM, scan_digits(s, len, i + 1));
		return;
	case '$':
		if (dialect == AP_SQL_PG && (j = scan_dollar(s, len, i)) != 0) {
			emit(x, TK_VALUE, j);
			return;
		}
		if (IS(d, C_DIG)) {
			emit(x, TK_PARAM, scan_digits(s, len, i + 1));
			return;
		}
		if (IS(d, C_IDS) && dialect != AP_SQL_PG) {
			/* SQLite $name; a MySQL identifier starting with $ */
			emit(x, dialect == AP_SQL_SQLITE ? TK_PARAM : TK_WORD,
			     scan_word(s, len, i + 1));
			return;
		}
		break;
	case ':':
		if (dialect == AP_SQL_SQLITE && IS(d, C_ID)) {
			emit(x, TK_PARAM, scan_word(s, len, i + 1));
			return;
		}
		if (d == ':') { /* a cast: keep `::` together */
			emit(x, TK_OP, i + 2);
			return;
		}
		break;
	case '@':
		if (dialect != AP_SQL_PG) {
			j = i + 1;
			if (dialect == AP_SQL_MYSQL && d == '@')
				j++;
			if (j < len && IS(s[j], C_ID)) {
				emit(x, TK_PARAM, scan_word(s, len, j));
				return;
			}
		}
		break;
	}
	emit(x, TK_OP, i + 1);
}

/* --- ap_sql_normalize ----------------------------------------------------- */

/* A later VALUES row differs from the first: lex it again for output and
 * keep the rest of the clause row by row. */
static void row_fail(struct lx *x)
{
	x->st = x->row_snap;
	x->st.vstate = V_NONE;
	x->mismatch = 0;
}

/*
 * For the tokens the loop writes itself. fp_lead(): the fingerprint h
 * after what lead() is about to write (a pending `;`, a space) and a first
 * byte that is wordish() (w) or not, as fp_byte() would make it.
 */
static inline uint64_t fp_lead(const struct st *st, uint64_t h, int w)
{
	if (st->pend & P_SEMI)
		return (h ^ ';') * FNV_PRIME; /* nothing wordish before it now */
	if (w && st->fword && (st->fsp || ((st->pend & P_SPACE) && st->n > 0)))
		return (h ^ ' ') * FNV_PRIME;
	return h;
}

/*
 * Writes what lead() would and s[a..b), a token holding no NUL, and makes
 * h (fp_lead() and the token's bytes, hashed by the caller as it scanned
 * them) the fingerprint; word: the token ends wordish(). A token of up to
 * 16 bytes is copied as one block (bytes past it are scratch), or by hand
 * near the end of the input, where memcpy() would be a call.
 */
static inline void put_token(struct lx *x, size_t a, size_t b, uint64_t h, int word)
{
	size_t n = x->st.n, k;
	if (b - a <= 16 && x->lim - n >= 18) {
		if (x->st.pend & P_SEMI)
			x->out[n++] = ';';
		if ((x->st.pend & P_SPACE) && n > 0)
			x->out[n++] = ' ';
		x->st.pend = 0;
		if (x->len - a >= 16) {
			memcpy(x->out + n, x->s + a, 16);
		} else {
			for (k = 0; k < b - a; k++)
				x->out[n + k] = (char)x->s[a + k];
		}
		x->st.n = n + (b - a);
	} else {
		span_to(x, a, b, 1, 0);
	}
	/* (when out[] filled up, the hash is redone at the end) */
	x->st.fh = h;
	x->st.fword = (unsigned char)word;
	x->st.fsp = 0;
}

size_t ap_sql_normalize_fp(const char *sql, size_t len,
                           enum ap_sql_dialect dialect, unsigned flags,
                           char *out, size_t outcap, int *truncated, uint64_t *fp)
{
	struct lx x;
	const unsigned char *s = (const unsigned char *)sql;

	memset(&x.st, 0, sizeof x.st);
	x.st.fh = FNV_OFFSET;
	x.s = s;
	x.len = sql ? len : 0;
	len = x.len;
	x.out = out;
	x.lim = outcap ? outcap - 1 : 0;
	x.dialect = dialect == AP_SQL_MYSQL || dialect == AP_SQL_SQLITE ?
	            (int)dialect : AP_SQL_PG;
	x.keep = (flags & AP_SQL_KEEP_VALUES) != 0;
	x.full = 0;
	x.mismatch = 0;

	for (;;) {
		size_t i = x.st.i;
		unsigned char c;

		if (x.full)
			break;
		if (x.mismatch) {
			row_fail(&x);
			continue;
		}
		if (i >= len) {
			if (x.st.vstate == V_SEP || x.st.vstate == V_ROWK) {
				row_fail(&x);
				continue;
			}
			if (x.st.list && x.st.items) { /* unterminated list */
				x.st.pend = 0;
				lead(&x);
				put(&x, '?');
			}
			break;
		}
		c = s[i];
		if (IS(c, C_SP)) {
			do
				i++;
			while (i < len && IS(s[i], C_SP));
			x.st.i = i;
			x.st.pend |= P_SPACE;
			continue;
		}
		if (IS(c, C_IDS) && !x.st.list && x.st.vstate == V_NONE) {
			/* the common token, inline: a word not followed by a
			 * quote (which could make it a literal's prefix), scanned
			 * and fingerprinted in one loop (fp_word); the hash is
			 * kept only when the word is written here as it is */
			size_t j = i, n = x.st.n;
			uint64_t h = fp_lead(&x.st, x.st.fh, 1);
			unsigned char m;
			while (j < len && (m = fp_word[s[j]]) != 0) {
				h = (h ^ m) * FNV_PRIME;
				j++;
			}
			if (j >= len || (s[j] != '\'' && s[j] != '&')) {
				/* dealloc_word() acts only on `deallocate` (10
				 * letters) first, or on what follows it */
				if (__builtin_expect((n == 0 && j - i == 10) || x.st.dealloc, 0) &&
				    dealloc_word(&x, i, j))
					continue;
				/* not comparing (that is V_ROWK), not full (we
				 * would have stopped): put_token() checks room */
				if (x.st.fq) {
					/* inside a quote the fingerprint does
					 * not lowercase: bytes as they are */
					span(&x, i, j, 1);
				} else {
					put_token(&x, i, j, h, 1);
				}
				x.st.kind = K_WORD;
				x.st.wpos = i;
				x.st.wlen = j - i < 255 ? (unsigned char)(j - i) : 255;
				x.st.i = j;
				continue;
			}
		}
		if ((c == '"' || c == '`') && !x.st.list && x.st.vstate == V_NONE &&
		    !x.st.dealloc && !x.st.fq &&
		    !(c == '"' && x.dialect == AP_SQL_MYSQL)) {
			/* a quoted identifier (ORMs quote every name), inline
			 * like a word: scanned and fingerprinted in one loop,
			 * every byte as it is (a doubled quote closes and
			 * reopens, to the fingerprint too). One holding a NUL
			 * (written as a space) or left open (a value) goes the
			 * long way, through token(). */
			size_t j = i + 1;
			uint64_t h = fp_lead(&x.st, x.st.fh, 1);
			h = (h ^ c) * FNV_PRIME;
			for (; j < len; j++) {
				unsigned char b = s[j];
				if (b == c) {
					if (j + 1 < len && s[j + 1] == c) {
						h = (h ^ c) * FNV_PRIME;
						h = (h ^ c) * FNV_PRIME;
						j++;
						continue;
					}
					break;
				}
				if (b == 0)
					break;
				h = (h ^ b) * FNV_PRIME;
			}
			if (j < len && s[j] == c) {
				h = (h ^ c) * FNV_PRIME;
				j++;
				put_token(&x, i, j, h, 1);
				x.st.kind = K_VALUE;
				x.st.i = j;
				continue;
			}
		}
		if (punct[c] && !x.st.list && x.st.vstate == V_NONE && !x.st.dealloc &&
		    !x.st.fq &&
		    !(c == '.' && i + 1 < len && IS(s[i + 1], C_DIG)) &&
		    !(c == '(' && x.st.kind == K_WORD)) {
			/* a one-byte token that needs no rule (punct[]), inline.
			 * Not wordish(), so a space before it never counts to
			 * the fingerprint. Excluded: a `.` that may start a
			 * number, and a `(` after a word, which may open a list
			 * (IN, VALUES). */
			put_token(&x, i, i + 1, (fp_lead(&x.st, x.st.fh, 0) ^ c) * FNV_PRIME, 0);
			x.st.kind = punct[c];
			if (c == '(')
				x.st.depth++;
			else if (c == ')' && x.st.depth > 0)
				x.st.depth--;
			x.st.i = i + 1;
			continue;
		}
		if ((IS(c, C_DIG) || c == '\'') && !x.keep && x.dialect != AP_SQL_MYSQL &&
		    !x.st.list && x.st.vstate == V_NONE && !x.st.dealloc && !x.st.fq &&
		    x.lim - x.st.n >= 3) {
			/* a number or a string literal, inline: written as `?`
			 * (token() would do the same through emit(); MySQL,
			 * where digits may start a name and backslashes escape,
			 * goes that way). `?` is wordish(): a space before it
			 * counts when the byte before that was too. */
			size_t n = x.st.n;
			x.st.fh = (fp_lead(&x.st, x.st.fh, 1) ^ '?') * FNV_PRIME;
			if (x.st.pend & P_SEMI)
				out[n++] = ';';
			if ((x.st.pend & P_SPACE) && n > 0)
				out[n++] = ' ';
			out[n++] = '?';
			x.st.n = n;
			x.st.fword = 1;
			x.st.fsp = 0;
			x.st.pend = 0;
			x.st.kind = K_VALUE;
			x.st.i = c == '\'' ? scan_quoted(s, len, i, c, 0, NULL) : scan_number(s, len, i);
			continue;
		}
		if (IS(c, C_CMT)) {
			if (c == '-' && i + 1 < len && s[i + 1] == '-' &&
			    (x.dialect != AP_SQL_MYSQL || i + 2 >= len || s[i + 2] <= ' ')) {
				x.st.i = skip_line(s, len, i + 2);
				x.st.pend |= P_SPACE;
				continue;
			}
			if (c == '#' && x.dialect == AP_SQL_MYSQL) {
				x.st.i = skip_line(s, len, i + 1);
				x.st.pend |= P_SPACE;
				continue;
			}
			if (c == '/' && i + 1 < len && s[i + 1] == '*') {
				size_t j = i + 2;
				if (x.dialect == AP_SQL_MYSQL) {
					if (j < len && s[j] == 'M')
						j++;
					if (j < len && s[j] == '!') {
						x.st.i = scan_digits(s, len, j + 1);
						x.st.exec_cmt = 1;
						x.st.pend |= P_SPACE;
						continue;
					}
				}
				x.st.i = skip_block_comment(&x, i);
				x.st.pend |= P_SPACE;
				continue;
			}
			if (c == '*' && x.st.exec_cmt && i + 1 < len && s[i + 1] == '/') {
				x.st.i = i + 2;
				x.st.exec_cmt = 0;
				x.st.pend |= P_SPACE;
				continue;
			}
		}

		if (x.st.vstate == V_AFTER) {
			if (c == ',') {
				x.row_snap = x.st;
				x.st.vstate = V_SEP;
				x.st.i = i + 1;
				continue;
			}
			x.st.vstate = V_NONE;
		} else if (x.st.vstate == V_SEP) {
			if (c != '(') {
				row_fail(&x);
				continue;
			}
			x.st.pend = 0;
			x.st.comparing = 1;
			x.st.cmp = x.st.row0_start;
			x.st.vstate = V_ROWK;
			x.st.row_depth = x.st.depth;
			x.st.kind = K_COMMA;
		}
		token(&x);
	}

	if (outcap)
		out[x.st.n] = 0;
	if (truncated)
		*truncated = x.full;
	if (fp) {
		/* a cut shape may have lost the end of a character (cut_utf8)
		 * after it was hashed: rare enough to hash it again */
		*fp = x.full ? ap_sql_fingerprint(out, x.st.n) : x.st.fh;
	}
	return x.st.n;
}

size_t ap_sql_normalize(const char *sql, size_t len,
                        enum ap_sql_dialect dialect, unsigned flags,
                        char *out, size_t outcap, int *truncated)
{
	return ap_sql_normalize_fp(sql, len, dialect, flags, out, outcap, truncated, NULL);
}

/* --- fingerprint ---------------------------------------------------------- */

/* The definition, and the second pass ap_sql_normalize_fp() does only for
 * a cut shape; the collector's callers hash whole texts. One table look-up
 * per ordinary byte, which is nearly every byte. */
uint64_t ap_sql_fingerprint(const char *norm, size_t len)
{
	const unsigned char *s = (const unsigned char *)norm;
	uint64_t h = FNV_OFFSET;
	unsigned char prev = 0;
	size_t i = 0;

	if (!norm)
		len = 0;
	while (i < len) {
		unsigned char c = s[i], m = fp_plain[c];
		if (m) {
			h = (h ^ m) * FNV_PRIME;
			prev = m;
			i++;
		} else if (IS(c, C_SP)) {
			size_t j = i;
			while (j < len && IS(s[j], C_SP))
				j++;
			if (j < len && wordish(prev) && wordish(s[j]))
				h = (h ^ ' ') * FNV_PRIME;
			i = j;
		} else {
			/* a quote: its contents verbatim, through the closing quote
			 * (a doubled quote reopens at once, on the next round) */
			h = (h ^ c) * FNV_PRIME;
			size_t j = i + 1;
			while (j < len && s[j] != c) {
				h = (h ^ s[j]) * FNV_PRIME;
				j++;
			}
			if (j < len)
				h = (h ^ c) * FNV_PRIME;
			prev = c;
			i = j + 1;
		}
	}
	return h;
}

/* --- classification -------------------------------------------------------- */

/* Skips whitespace, comments and, with parens, opening parentheses. */
static size_t skip_noise(const unsigned char *s, size_t len, size_t i, int parens)
{
	while (i < len) {
		unsigned char c = s[i];
		if (IS(c, C_SP) || (parens && c == '(')) {
			i++;
		} else if (c == '-' && i + 1 < len && s[i + 1] == '-') {
			i = skip_line(s, len, i + 2);
		} else if (c == '#') {
			i = skip_line(s, len, i + 1);
		} else if (c == '/' && i + 1 < len && s[i + 1] == '*') {
			size_t j = i + 2;
			while (j + 1 < len && !(s[j] == '*' && s[j + 1] == '/'))
				j++;
			i = j + 1 < len ? j + 2 : len;
		} else {
			break;
		}
	}
	return i;
}

/* The operation a statement verb names, or -1 when it names none. */
static int verb_op(const unsigned char *w, size_t n)
{
	if (word_is(w, n, "select") || word_is(w, n, "values") ||
	    word_is(w, n, "table"))
		return AP_SQL_OP_SELECT;
	if (word_is(w, n, "insert") || word_is(w, n, "replace"))
		return AP_SQL_OP_INSERT;
	if (word_is(w, n, "update"))
		return AP_SQL_OP_UPDATE;
	if (word_is(w, n, "delete"))
		return AP_SQL_OP_DELETE;
	return -1;
}

/*
 * Finds the statement's main verb: returns its operation and sets [*vs,
 * *ve) to the verb word (empty for WITH without one, and for statements
 * without a word).
 */
static enum ap_sql_op main_verb(const unsigned char *s, size_t len,
                                size_t *vs, size_t *ve)
{
	size_t i = skip_noise(s, len, 0, 1), e = scan_word(s, len, i);
	unsigned depth = 0;
	int op;

	*vs = *ve = i;
	if (e == i)
		return AP_SQL_OP_OTHER;
	*ve = e;
	op = verb_op(s + i, e - i);
	if (op >= 0)
		return (enum ap_sql_op)op;
	if (word_is(s + i, e - i, "create") || word_is(s + i, e - i, "alter") ||
	    word_is(s + i, e - i, "drop") || word_is(s + i, e - i, "truncate") ||
	    word_is(s + i, e - i, "rename"))
		return AP_SQL_OP_DDL;
	if (word_is(s + i, e - i, "comment")) {
		size_t a = skip_noise(s, len, e, 0), b = scan_word(s, len, a);
		return word_is(s + a, b - a, "on") ? AP_SQL_OP_DDL : AP_SQL_OP_OTHER;
	}
	if (!word_is(s + i, e - i, "with"))
		return AP_SQL_OP_OTHER;

	/* WITH: the first verb outside the common table expressions */
	for (i = e; i < len;) {
		unsigned char c = s[i];
		if (c == '\'' || c == '"' || c == '`') {
			i = scan_quoted(s, len, i, c, 0, NULL);
		} else if (c == '(') {
			depth++;
			i++;
		} else if (c == ')') {
			depth -= depth > 0;
			i++;
		} else if (IS(c, C_IDS)) {
			e = scan_word(s, len, i);
			if (depth == 0 && (op = verb_op(s + i, e - i)) >= 0 &&
			    !word_is(s + i, e - i, "values") &&
			    !word_is(s + i, e - i, "table")) {
				*vs = i;
				*ve = e;
				return (enum ap_sql_op)op;
			}
			i = e;
		} else if (c == '-' || c == '/' || c == '#') {
			size_t j = skip_noise(s, len, i, 0);
			i = j > i ? j : i + 1;
		} else {
			i++;
		}
	}
	*vs = *ve = len;
	return AP_SQL_OP_SELECT;
}

enum ap_sql_op ap_sql_operation(const char *norm, size_t len)
{
	size_t vs, ve;
	if (!norm)
		return AP_SQL_OP_OTHER;
	return main_verb((const unsigned char *)norm, len, &vs, &ve);
}

const char *ap_sql_op_name(enum ap_sql_op op)
{
	switch (op) {
	case AP_SQL_OP_SELECT: return "select";
	case AP_SQL_OP_INSERT: return "insert";
	case AP_SQL_OP_UPDATE: return "update";
	case AP_SQL_OP_DELETE: return "delete";
	case AP_SQL_OP_DDL: return "ddl";
	case AP_SQL_OP_OTHER: break;
	}
	return "other";
}

int ap_sql_is_session(const char *norm, size_t len)
{
	static const char *const words[] = {
		"begin", "commit", "end", "rollback", "abort", "savepoint",
		"release", "set", "show", "reset", "discard", "use", NULL
	};
	const unsigned char *s = (const unsigned char *)norm;
	size_t i, e, k;

	if (!norm)
		return 0;
	i = skip_noise(s, len, 0, 0);
	e = scan_word(s, len, i);
	for (k = 0; words[k]; k++)
		if (word_is(s + i, e - i, words[k]))
			return 1;
	if (word_is(s + i, e - i, "start")) {
		size_t a = skip_noise(s, len, e, 0), b = scan_word(s, len, a);
		return word_is(s + a, b - a, "transaction");
	}
	return 0;
}

/* --- table of a write ------------------------------------------------------ */

static int in_list(const unsigned char *w, size_t n, const char *const *list)
{
	for (; *list; list++)
		if (word_is(w, n, *list))
			return 1;
	return 0;
}

/* Copies the possibly qualified, possibly quoted name at s[i] to out
 * without its quotes. 0 when there is none or it does not fit. */
static size_t read_name(const unsigned char *s, size_t len, size_t i,
                        char *out, size_t cap)
{
	size_t o = 0;
	for (;;) {
		unsigned char c = i < len ? s[i] : 0;
		if (c == '"' || c == '`' || c == '[') {
			unsigned char q = c == '[' ? ']' : c;
			size_t j = i + 1;
			for (;;) {
				if (j >= len)
					return 0; /* unterminated */
				if (s[j] == q) {
					if (q != ']' && j + 1 < len && s[j + 1] == q)
						j++; /* doubled: one quote */
					else
						break;
				}
				if (o + 1 >= cap)
					return 0;
				out[o++] = (char)s[j++];
			}
			i = j + 1;
		} else if (IS(c, C_IDS)) {
			size_t e = scan_word(s, len, i);
			if (e - i >= cap || o + (e - i) >= cap)
				return 0;
			memcpy(out + o, s + i, e - i);
			o += e - i;
			i = e;
		} else {
			break;
		}
		if (i + 1 < len && s[i] == '.' &&
		    (IS(s[i + 1], C_IDS) || s[i + 1] == '"' || s[i + 1] == '`' ||
		     s[i + 1] == '[')) {
			if (o + 1 >= cap)
				return 0;
			out[o++] = '.';
			i++;
			continue;
		}
		break;
	}
	if (cap)
		out[o] = 0;
	return o;
}

size_t ap_sql_table(const char *norm, size_t len, char *out, size_t cap)
{
	static const char *const ins_mods[] = {
		"low_priority", "delayed", "high_priority", "ignore", NULL
	};
	static const char *const upd_mods[] = {
		"low_priority", "ignore", "only", NULL
	};
	static const char *const del_mods[] = {
		"low_priority", "quick", "ignore", NULL
	};
	const unsigned char *s = (const unsigned char *)norm;
	const char *const *mods;
	const char *intro;  /* the word after which the name comes */
	size_t i, e, n = 0;
	int k;
	enum ap_sql_op op;

	if (cap)
		out[0] = 0;
	if (!norm || !cap)
		return 0;
	op = main_verb(s, len, &i, &e);
	switch (op) {
	case AP_SQL_OP_INSERT: mods = ins_mods; intro = "into"; break;
	case AP_SQL_OP_UPDATE: mods = upd_mods; intro = NULL; break;
	case AP_SQL_OP_DELETE: mods = del_mods; intro = "from"; break;
	default: return 0;
	}
	i = e;
	for (k = 0; k < 8; k++) { /* bounded: modifiers are few */
		size_t a = skip_noise(s, len, i, 0), b = scan_word(s, len, a);
		i = a;
		if (b == a)
			break;
		if (word_is(s + a, b - a, "or")) { /* SQLite INSERT OR REPLACE */
			size_t c2 = skip_noise(s, len, b, 0);
			i = scan_word(s, len, c2);
			continue;
		}
		if (intro && word_is(s + a, b - a, intro)) {
			i = skip_noise(s, len, b, 0);
			b = scan_word(s, len, i);
			if (word_is(s + i, b - i, "only"))
				i = skip_noise(s, len, b, 0);
			break;
		}
		if (!in_list(s + a, b - a, mods))
			break;
		i = b;
	}
	if (i < len)
		n = read_name(s, len, i, out, cap);
	if (n == 0)
		out[0] = 0;
	return n;
}

/* --- error messages ---------------------------------------------------------- */

struct sink {
	char *out;
	size_t lim, n;
	int full;
};

static void sput(struct sink *k, unsigned char c)
{
	if (c == 0)
		c = ' ';
	if (k->full)
		return;
	if (k->n < k->lim) {
		k->out[k->n++] = (char)c;
		return;
	}
	k->full = 1;
	cut_utf8(k->out, &k->n, c);
}

/* Words after which servers quote an identifier rather than a value. */
static const char *const obj_words[] = {
	"relation", "table", "column", "constraint", "index", "key",
	"sequence", "view", "schema", "database", "role", "user", "function",
	"procedure", "routine", "type", "trigger", "extension", "domain",
	"collation", "tablespace", "operator", "statement", "cursor",
	"savepoint", "portal", "channel", "publication", "subscription",
	"server", "policy", "rule", "aggregate", "attribute", "partition",
	"variable", "event", "engine", NULL
};

static int is_uuid(const unsigned char *s, size_t len, size_t i)
{
	size_t k;
	if (len - i < 36 || (len - i > 36 && IS(s[i + 36], C_ID)))
		return 0;
	for (k = 0; k < 36; k++) {
		if (k == 8 || k == 13 || k == 18 || k == 23) {
			if (s[i + k] != '-')
				return 0;
		} else if (!IS(s[i + k], C_HEX)) {
			return 0;
		}
	}
	return 1;
}

static int is_hex_id(const unsigned char *w, size_t n)
{
	size_t k;
	int digit = 0;
	if (n < 8)
		return 0;
	for (k = 0; k < n; k++) {
		if (!IS(w[k], C_HEX))
			return 0;
		digit |= IS(w[k], C_DIG) != 0;
	}
	return digit;
}

static int is_alnum(unsigned char c)
{
	return CL_ALPHA(c) || CL_DIGIT(c);
}

/* --- HTTP bodies: credentials and query strings ----------------------------- */

/* Stems that make a key a credential's name (matched anywhere in the key,
 * case-insensitively: access_token, x-api-key, PHPSESSID, passwd). */
static const char *const cred_stems[] = {
	"token", "pass", "pwd", "secret", "key", "sess", "cookie", "auth",
	"credential", "signature", NULL
};

/* Authorization schemes whose next word is the credential. */
static const char *const auth_schemes[] = {
	"bearer", "basic", "digest", "negotiate", "token", NULL
};

static int has_stem(const unsigned char *w, size_t n, const char *const *stems)
{
	size_t a, k, m;
	for (k = 0; stems[k]; k++) {
		m = strlen(stems[k]);
		for (a = 0; a + m <= n; a++) {
			size_t b = 0;
			while (b < m && lower(w[a + b]) == (unsigned char)stems[k][b])
				b++;
			if (b == m)
				return 1;
		}
	}
	return 0;
}

static int is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Ends the value of `key=value`, of a scheme's credential (token68 and
 * the like) and of a query string. */
static int ends_eq_value(unsigned char c)
{
	return IS(c, C_SP) || c == '&' || c == ';' || c == ',' || c == '"' ||
	       c == '\'' || c == '<' || c == '>' || c == ')' || c == '}' ||
	       c == ']' || c == '`';
}

static int ends_query(unsigned char c)
{
	return IS(c, C_SP) || c == '"' || c == '\'' || c == '<' || c == '>' ||
	       c == '`' || c == '#';
}

static int url_char(unsigned char c)
{
	return is_alnum(c) || c == '/' || c == '.' || c == '-' || c == '_' ||
	       c == '~' || c == '%';
}

/*
 * The credential that follows the word s[ws..we), if any: for a scheme
 * (`Bearer xyz`) the next word, for a credential key (`token=xyz`,
 * `password: xyz`) its unquoted value (quoted values are strings, which
 * the message rules scrub anyway). Sets *vs to where the value starts and
 * returns where it ends, or returns 0 when no rule applies. An `=` value
 * ends at a blank or a delimiter (& ; , quotes, brackets); a `:` value
 * runs to the end of the line (a header's value: `Cookie: a=1; b=2`).
 */
static size_t secret_after(const unsigned char *s, size_t len, size_t ws,
                           size_t we, size_t *vs)
{
	size_t k = we, e;
	if (in_list(s + ws, we - ws, auth_schemes) && k < len && is_blank(s[k])) {
		while (k < len && is_blank(s[k]))
			k++;
		for (e = k; e < len && !ends_eq_value(s[e]); e++)
			;
		if (e > k && s[k] != '?') {
			*vs = k;
			return e;
		}
	}
	if (!has_stem(s + ws, we - ws, cred_stems))
		return 0;
	for (k = we; k < len && is_blank(s[k]); k++)
		;
	if (k >= len || (s[k] != '=' && s[k] != ':'))
		return 0;
	int colon = s[k] == ':';
	k++;
	if (colon && k < len && s[k] == '=') /* := */
		k++;
	while (k < len && is_blank(s[k]))
		k++;
	if (k >= len || s[k] == '"' || s[k] == '\'')
		return 0;
	if (colon)
		for (e = k; e < len && s[e] != '\n' && s[e] != '\r' && s[e] != '<'; e++)
			;
	else
		for (e = k; e < len && !ends_eq_value(s[e]); e++)
			;
	if (e == k)
		return 0;
	*vs = k;
	return e;
}

static size_t scrub(const char *msg, size_t len, char *out, size_t cap, int http)
{
	const unsigned char *s = (const unsigned char *)msg;
	struct sink k = { out, cap ? cap - 1 : 0, 0, 0 };
	size_t i = 0, ws = 0, we = 0;
	int after_word = 0; /* only blanks since the word s[ws..we) */

	if (!msg)
		len = 0;
	while (i < len && !k.full) {
		unsigned char c = s[i];
		size_t j;

		/* a URL's user:password@ (postgresql://app:pw@db/app) */
		if (http && c == ':' && i + 2 < len && s[i + 1] == '/' && s[i + 2] == '/') {
			size_t at = 0;
			/* not stopping at `?`: scrubbed user information is one */
			for (j = i + 3; j < len && !ends_query(s[j]) && s[j] != '/'; j++)
				if (s[j] == '@')
					at = j;
			if (at > i + 3) {
				sput(&k, ':');
				sput(&k, '/');
				sput(&k, '/');
				sput(&k, '?');
				i = at;
				after_word = 0;
				continue;
			}
		}
		/* a query string: `?` right after a path, followed by its text */
		if (http && c == '?' && i > 0 && url_char(s[i - 1]) && i + 1 < len &&
		    !ends_query(s[i + 1]) && s[i + 1] != '?') {
			for (j = i + 1; j < len && !ends_query(s[j]); j++)
				;
			sput(&k, '?');
			i = j;
			after_word = 0;
			continue;
		}
		/* a quote right after a letter is an apostrophe (doesn't) */
		if ((c == '\'' || c == '"') && !(i > 0 && is_alnum(s[i - 1]))) {
			int keep = after_word && in_list(s + ws, we - ws, obj_words);
			for (j = i + 1; j < len; j++)
				if (s[j] == c && (j + 1 >= len || !is_alnum(s[j + 1])))
					break;
			if (j >= len) {
				sput(&k, '?'); /* unterminated: never kept */
				break;
			}
			if (keep) {
				for (; i <= j; i++)
					sput(&k, s[i]);
			} else {
				sput(&k, '?');
			}
			i = j + 1;
			after_word = 0;
			continue;
		}
		if (c == '`') {
			const unsigned char *p = memchr(s + i + 1, '`', len - i - 1);
			if (!p) {
				sput(&k, '?');
				break;
			}
			for (j = (size_t)(p - s); i <= j; i++)
				sput(&k, s[i]);
			after_word = 0;
			continue;
		}
		if (IS(c, C_HEX) && is_uuid(s, len, i)) {
			sput(&k, '?');
			i += 36;
			after_word = 0;
			continue;
		}
		if (IS(c, C_DIG) ||
		    ((c == '-' || c == '+') && i + 1 < len && IS(s[i + 1], C_DIG) &&
		     (i == 0 || !is_alnum(s[i - 1])))) {
			for (j = i + 1; j < len && (is_alnum(s[j]) || s[j] == '_' ||
			                            (s[j] == '.' && j + 1 < len &&
			                             IS(s[j + 1], C_DIG))); j++)
				;
			sput(&k, '?');
			i = j;
			after_word = 0;
			continue;
		}
		if (IS(c, C_IDS)) {
			size_t vs, ve;
			j = scan_word(s, len, i);
			if (http && (ve = secret_after(s, len, i, j, &vs)) != 0) {
				for (; i < vs; i++)
					sput(&k, s[i]);
				sput(&k, '?');
				i = ve;
				after_word = 0;
				continue;
			}
			if (is_hex_id(s + i, j - i)) {
				sput(&k, '?');
				after_word = 0;
			} else {
				for (ws = i; i < j; i++)
					sput(&k, s[i]);
				we = j;
				after_word = 1;
			}
			i = j;
			continue;
		}
		if (c != ' ' && c != '\t')
			after_word = 0;
		sput(&k, c);
		i++;
	}
	if (cap)
		out[k.n] = 0;
	return k.n;
}

size_t ap_sql_scrub_message(const char *msg, size_t len, char *out, size_t cap)
{
	return scrub(msg, len, out, cap, 0);
}

size_t ap_sql_scrub_http_body(const char *msg, size_t len, char *out, size_t cap)
{
	return scrub(msg, len, out, cap, 1);
}

size_t ap_sql_pg_primary(const char *msg, size_t len, size_t *off)
{
	static const char *const tags[] = {
		"ERROR:", "FATAL:", "PANIC:", "WARNING:", NULL
	};
	const unsigned char *s = (const unsigned char *)msg, *p;
	size_t i = 0, e, k;

	if (!msg)
		len = 0;
	for (k = 0; tags[k]; k++) {
		size_t tl = strlen(tags[k]);
		if (len >= tl && memcmp(s, tags[k], tl) == 0) {
			for (i = tl; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
				;
			break;
		}
	}
	p = i < len ? memchr(s + i, '\n', len - i) : NULL;
	e = p ? (size_t)(p - s) : len;
	while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r'))
		e--;
	if (off)
		*off = i;
	return e - i;
}

/* Unit tests for shared/fcgi.c: FastCGI requests as php-fpm reads them and
 * responses as it writes them. Every case is a conversation (the bytes the
 * server read, then wrote, in turn) and the events it must give, as text;
 * each is fed whole, one byte at a time, and in seeded random splits, and
 * must give the same events. */
#include "config.h"
#include "check_suites.h"
#include "ap_fcgi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building records ---- */

struct buf {
	uint8_t b[16384];
	size_t n;
};

/* A record: header (version 1), content, `pad` padding bytes. */
static void rec(struct buf *o, uint8_t type, uint16_t id, const void *c, size_t len, uint8_t pad)
{
	uint8_t *h = o->b + o->n;
	h[0] = AP_FCGI_VERSION;
	h[1] = type;
	h[2] = (uint8_t)(id >> 8);
	h[3] = (uint8_t)id;
	h[4] = (uint8_t)(len >> 8);
	h[5] = (uint8_t)len;
	h[6] = pad;
	h[7] = 0;
	memcpy(h + 8, c, len);
	memset(h + 8 + len, 0xee, pad);
	o->n += 8 + len + pad;
}

static void begin(struct buf *o, uint16_t id, uint16_t role, uint8_t flags)
{
	uint8_t c[8] = { (uint8_t)(role >> 8), (uint8_t)role, flags, 0, 0, 0, 0, 0 };
	rec(o, AP_FCGI_BEGIN_REQUEST, id, c, 8, 0);
}

static size_t put_len(uint8_t *p, size_t len, int long_form)
{
	if (len < 128 && !long_form) {
		p[0] = (uint8_t)len;
		return 1;
	}
	p[0] = (uint8_t)(0x80 | (len >> 24));
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	return 4;
}

/* A name-value pair appended to a params stream (lengths in 4 bytes when
 * long_form or when 128 or more). */
static void nv(struct buf *o, const char *name, const char *value, int long_form)
{
	size_t nl = strlen(name), vl = strlen(value);
	o->n += put_len(o->b + o->n, nl, long_form);
	o->n += put_len(o->b + o->n, vl, long_form);
	memcpy(o->b + o->n, name, nl);
	o->n += nl;
	memcpy(o->b + o->n, value, vl);
	o->n += vl;
}

/* A params stream as PARAMS records of at most `chunk` bytes, then the
 * empty one. */
static void params(struct buf *o, uint16_t id, const struct buf *s, size_t chunk, uint8_t pad)
{
	for (size_t i = 0; i < s->n; i += chunk) {
		size_t n = s->n - i < chunk ? s->n - i : chunk;
		rec(o, AP_FCGI_PARAMS, id, s->b + i, n, pad);
	}
	rec(o, AP_FCGI_PARAMS, id, "", 0, 0);
}

static void end_request(struct buf *o, uint16_t id)
{
	static const uint8_t c[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
	rec(o, AP_FCGI_END_REQUEST, id, c, 8, 0);
}

/* ---- feeding ---- */

/* Events as text: "B1" BEGIN of request 1, "P GET /x" params done (method
 * and target, "!" when cut), "A" abort, "H404" head done, "E404 3/12"
 * END (status, bytes in/out), "X" error (and nothing after it). */
static void trace(char *t, size_t cap, const struct ap_fcgi *p, enum ap_fcgi_ev ev)
{
	size_t n = strlen(t);
	switch (ev) {
	case AP_FCGI_BEGIN:
		snprintf(t + n, cap - n, "B%u ", p->req_id);
		break;
	case AP_FCGI_PARAMS_DONE:
		snprintf(t + n, cap - n, "P %.*s %.*s%s%s ", p->method_len, p->method, p->target_len,
		         p->target, p->target_truncated ? "!" : "", p->profile ? " prof" : "");
		break;
	case AP_FCGI_ABORT:
		snprintf(t + n, cap - n, "A ");
		break;
	case AP_FCGI_HEAD_DONE:
		snprintf(t + n, cap - n, "H%u ", p->status);
		break;
	case AP_FCGI_END:
		snprintf(t + n, cap - n, "E%u %llu/%llu ", p->status, (unsigned long long)p->bytes_in,
		         (unsigned long long)p->bytes_out);
		break;
	case AP_FCGI_ERROR:
		snprintf(t + n, cap - n, "X ");
		break;
	default:
		break;
	}
}

/* A conversation: what the server read (in) and wrote, in turn. */
struct step {
	int in;
	struct buf *b;
};

/* Feeds b[0..n) in pieces of split(): 0 whole, 1 byte by byte, else
 * random sizes from `seed`. Returns 0, or -1 after an error. */
static int feed_dir(struct ap_fcgi *p, int in, const uint8_t *b, size_t n, int mode,
                    unsigned *seed, char *t, size_t cap)
{
	size_t i = 0;
	while (i < n) {
		size_t piece = mode == 0 ? n - i : mode == 1 ? 1 : 1 + (size_t)rand_r(seed) % 23;
		if (piece > n - i)
			piece = n - i;
		const uint8_t *q = b + i;
		size_t left = piece;
		do {
			enum ap_fcgi_ev ev;
			size_t used = in ? ap_fcgi_feed_in(p, q, left, &ev) : ap_fcgi_feed_out(p, q, left, &ev);
			ck_assert_uint_le(used, left);
			trace(t, cap, p, ev);
			if (ev == AP_FCGI_ERROR)
				return -1;
			if (ev == AP_FCGI_NEED_MORE)
				ck_assert_uint_eq(used, left);
			q += used;
			left -= used;
		} while (left);
		i += piece;
	}
	return 0;
}

static void run(const struct step *steps, size_t nsteps, const char *want)
{
	for (int mode = 0; mode < 6; mode++) {
		struct ap_fcgi p;
		ap_fcgi_init(&p);
		char t[2048] = "";
		unsigned seed = (unsigned)mode * 7919u + 1;
		for (size_t s = 0; s < nsteps; s++)
			if (feed_dir(&p, steps[s].in, steps[s].b->b, steps[s].b->n, mode, &seed, t,
			             sizeof t) != 0)
				break;
		ck_assert_msg(strcmp(t, want) == 0, "mode %d: got \"%s\", want \"%s\"", mode, t, want);
	}
}

/* nginx's usual params for GET uri, with cookies and credentials */
static void usual_params(struct buf *s, const char *method, const char *uri)
{
	nv(s, "SCRIPT_FILENAME", "/srv/www/index.php", 0);
	nv(s, "QUERY_STRING", "token=secret-q", 0);
	nv(s, "REQUEST_METHOD", method, 0);
	nv(s, "CONTENT_TYPE", "", 0);
	nv(s, "SCRIPT_NAME", "/index.php", 0);
	nv(s, "REQUEST_URI", uri, 0);
	nv(s, "HTTP_COOKIE", "session=secret-cookie", 0);
	nv(s, "HTTP_AUTHORIZATION", "Bearer secret-bearer", 0);
}

START_TEST(test_get_200)
{
	static struct buf in, out, s;
	in.n = out.n = s.n = 0;
	usual_params(&s, "GET", "/users/42?token=x");
	begin(&in, 1, AP_FCGI_RESPONDER, 0);
	params(&in, 1, &s, 65535, 0);
	rec(&in, AP_FCGI_STDIN, 1, "", 0, 0);
	const char *resp = "X-Powered-By: PHP/8.2\r\nContent-type: text/html; charset=UTF-8\r\n\r\nhello";
	rec(&out, AP_FCGI_STDOUT, 1, resp, strlen(resp), 3);
	rec(&out, AP_FCGI_STDOUT, 1, "", 0, 0);
	end_request(&out, 1);
	struct step st[] = { { 1, &in }, { 0, &out } };
	run(st, 2, "B1 P GET /users/42?token=x H200 E200 0/5 ");
}
END_TEST

START_TEST(test_status_location_body)
{
	static struct buf in, out, s, out2, out3;
	in.n = out.n = s.n = out2.n = out3.n = 0;
	usual_params(&s, "POST", "/form");
	begin(&in, 1, AP_FCGI_RESPONDER, AP_FCGI_KEEP_CONN);
	params(&in, 1, &s, 10, 2); /* pairs split across records, padded */
	rec(&in, AP_FCGI_STDIN, 1, "a=1&b=2", 7, 1);
	rec(&in, AP_FCGI_STDIN, 1, "&c", 2, 0);
	rec(&in, AP_FCGI_STDIN, 1, "", 0, 0);
	const char *r1 = "Status: 404 Not Found\r\nContent-type: text/html\r\n\r\nnope";
	rec(&out, AP_FCGI_STDOUT, 1, r1, strlen(r1), 0);
	rec(&out, AP_FCGI_STDERR, 1, "PHP Warning", 11, 5);
	end_request(&out, 1);
	struct buf in2 = { .n = 0 }, s2 = { .n = 0 };
	nv(&s2, "REQUEST_METHOD", "GET", 0);
	nv(&s2, "REQUEST_URI", "/old", 0);
	begin(&in2, 1, AP_FCGI_RESPONDER, AP_FCGI_KEEP_CONN);
	params(&in2, 1, &s2, 100, 0);
	/* a header split across STDOUT records, LF line ends */
	rec(&out2, AP_FCGI_STDOUT, 1, "Locat", 5, 0);
	rec(&out2, AP_FCGI_STDOUT, 1, "ion: /new\n\n", 11, 0);
	end_request(&out2, 1);
	struct buf in3 = { .n = 0 };
	begin(&in3, 1, AP_FCGI_RESPONDER, AP_FCGI_KEEP_CONN);
	params(&in3, 1, &s2, 100, 0);
	const char *r3 = "status:500\r\n\r\nFatal error: boom";
	rec(&out3, AP_FCGI_STDOUT, 1, r3, strlen(r3), 0);
	end_request(&out3, 1);
	struct step st[] = { { 1, &in }, { 0, &out }, { 1, &in2 }, { 0, &out2 },
		             { 1, &in3 }, { 0, &out3 } };
	run(st, 6, "B1 P POST /form H404 E404 9/4 B1 P GET /old H302 E302 0/0 "
	           "B1 P GET /old H500 E500 0/17 ");
	/* the 5xx's body start is kept */
	struct ap_fcgi p;
	ap_fcgi_init(&p);
	char t[512] = "";
	unsigned seed = 1;
	feed_dir(&p, 1, in3.b, in3.n, 0, &seed, t, sizeof t);
	feed_dir(&p, 0, out3.b, out3.n, 0, &seed, t, sizeof t);
	ck_assert_uint_eq(p.errbody_len, 17);
	ck_assert(memcmp(p.errbody, "Fatal error: boom", 17) == 0);
}
END_TEST

START_TEST(test_script_name_long_lengths)
{
	static struct buf in, out, s;
	in.n = out.n = s.n = 0;
	char big[300];
	memset(big, 'v', sizeof big - 1);
	big[sizeof big - 1] = 0;
	nv(&s, "HTTP_USER_AGENT", big, 0); /* 4-byte value length */
	nv(&s, "REQUEST_METHOD", "DELETE", 1); /* 4-byte lengths, short values */
	nv(&s, "PATH_INFO", "/items/7", 1);
	nv(&s, "SCRIPT_NAME", "/api.php", 0);
	nv(&s, "EMPTY", "", 0);
	nv(&s, "", "no name", 0);
	nv(&s, "HTTP_X_APIPROF_PROFILE", "1", 0);
	begin(&in, 3, AP_FCGI_RESPONDER, 0);
	params(&in, 3, &s, 7, 0);
	rec(&in, AP_FCGI_ABORT_REQUEST, 3, "", 0, 0);
	rec(&out, AP_FCGI_STDOUT, 3, "Status: 204\r\n\r\n", 15, 0);
	end_request(&out, 3);
	struct step st[] = { { 1, &in }, { 0, &out } };
	run(st, 2, "B3 P DELETE /api.php/items/7 prof A H204 E204 0/0 ");
}
END_TEST

START_TEST(test_management_and_leftover_stdin)
{
	/* GET_VALUES on id 0, answered on id 0; then a request whose body's
	 * rest the server reads after its END_REQUEST */
	static struct buf in, out, in2, s;
	in.n = out.n = in2.n = s.n = 0;
	struct buf q = { .n = 0 };
	nv(&q, "FCGI_MPXS_CONNS", "", 0);
	rec(&in, AP_FCGI_GET_VALUES, 0, q.b, q.n, 0);
	nv(&s, "REQUEST_METHOD", "PUT", 0);
	nv(&s, "REQUEST_URI", "/x", 0);
	begin(&in, 1, AP_FCGI_RESPONDER, 0);
	params(&in, 1, &s, 100, 0);
	rec(&in, AP_FCGI_STDIN, 1, "abc", 3, 0);
	rec(&out, AP_FCGI_GET_VALUES_RESULT, 0, "\x0f\x01" "FCGI_MPXS_CONNS0", 18, 6);
	rec(&out, AP_FCGI_STDOUT, 1, "\r\n", 2, 0);
	end_request(&out, 1);
	rec(&in2, AP_FCGI_STDIN, 1, "defg", 4, 0);
	rec(&in2, AP_FCGI_STDIN, 1, "", 0, 0);
	struct step st[] = { { 1, &in }, { 0, &out }, { 1, &in2 } };
	run(st, 3, "B1 P PUT /x H200 E200 3/0 ");
}
END_TEST

/* Each malformed input must end in "X" after the events listed. */
START_TEST(test_malformed)
{
	struct buf in, s;
	struct step st[] = { { 1, &in } };
	s.n = 0;
	nv(&s, "REQUEST_METHOD", "GET", 0);
	nv(&s, "REQUEST_URI", "/", 0);

	in.n = 0; /* bad version */
	begin(&in, 1, AP_FCGI_RESPONDER, 0);
	in.b[0] = 2;
	run(st, 1, "X ");

	in.n = 0; /* a role other than RESPONDER (AUTHORIZER) */
	begin(&in, 1, 2, 0);
	run(st, 1, "B1 X ");

	in.n = 0; /* BEGIN_REQUEST of the wrong size */
	rec(&in, AP_FCGI_BEGIN_REQUEST, 1, "\0\1\0\0\0\0\0\0\0", 9, 0);
	run(st, 1, "X ");

	in.n = 0; /* multiplexing: a second request while one is in progress */
	begin(&in, 1, AP_FCGI_RESPONDER, AP_FCGI_KEEP_CONN);
	params(&in, 1, &s, 100, 0);
	begin(&in, 2, AP_FCGI_RESPONDER, AP_FCGI_KEEP_CONN);
	run(st, 1, "B1 P GET / X ");

	in.n = 0; /* a record for another request */
	begin(&in, 1, AP_FCGI_RESPONDER, 0);
	rec(&in, AP_FCGI_PARAMS, 2, s.b, s.n, 0);
	run(st, 1, "B1 X ");

	in.n = 0; /* a server's record type from the client */
	begin(&in, 1, AP_FCGI_RESPONDER, 0);
	rec(&in, AP_FCGI_STDOUT, 1, "x", 1, 0);
	run(st, 1, "B1 X ");

	in.n = 0; /* params ending inside a pair */
	begin(&in, 1, AP_FCGI_RESPONDER, 0);
	rec(&in, AP_FCGI_PARAMS, 1, s.b, s.n - 1, 0);
	rec(&in, AP_FCGI_PARAMS, 1, "", 0, 0);
	run(st, 1, "B1 X ");

	in.n = 0; /* an unknown type */
	rec(&in, 12, 1, "", 0, 0);
	run(st, 1, "X ");

	in.n = 0; /* HTTP */
	memcpy(in.b, "GET / HTTP/1.1\r\n\r\n", 18);
	in.n = 18;
	run(st, 1, "X ");

	/* the server's side: END_REQUEST of the wrong size, and an error is
	 * sticky (nothing is reported after it) */
	struct buf out = { .n = 0 }, req = { .n = 0 };
	begin(&req, 1, AP_FCGI_RESPONDER, 0);
	params(&req, 1, &s, 100, 0);
	rec(&out, AP_FCGI_END_REQUEST, 1, "\0\0\0\0\0", 5, 0);
	end_request(&out, 1);
	struct step st2[] = { { 1, &req }, { 0, &out } };
	run(st2, 2, "B1 P GET / X ");
	struct ap_fcgi p;
	ap_fcgi_init(&p);
	enum ap_fcgi_ev ev;
	ck_assert_uint_eq(ap_fcgi_feed_in(&p, (const uint8_t *)"GET / HT", 8, &ev), 0);
	ck_assert_int_eq(ev, AP_FCGI_ERROR);
	ck_assert_uint_eq(ap_fcgi_feed_in(&p, req.b, req.n, &ev), 0);
	ck_assert_int_eq(ev, AP_FCGI_ERROR);
	ck_assert_uint_eq(ap_fcgi_feed_out(&p, out.b + 16, 16, &ev), 0);
	ck_assert_int_eq(ev, AP_FCGI_ERROR);
}
END_TEST

/* Nothing but the wanted values is ever copied: cookies, credentials and
 * query strings in other params leave no byte in the parser's state. */
START_TEST(test_values_not_retained)
{
	static struct buf in, s;
	in.n = s.n = 0;
	usual_params(&s, "GET", "/a");
	nv(&s, "HTTP_X_API_KEY", "secret-key", 1);
	begin(&in, 1, AP_FCGI_RESPONDER, 0);
	params(&in, 1, &s, 5, 0);
	for (int mode = 0; mode < 3; mode++) {
		struct ap_fcgi p;
		ap_fcgi_init(&p);
		char t[512] = "";
		unsigned seed = 3;
		ck_assert_int_eq(feed_dir(&p, 1, in.b, in.n, mode, &seed, t, sizeof t), 0);
		ck_assert_str_eq(t, "B1 P GET /a ");
		ck_assert_ptr_null(memmem(&p, sizeof p, "secret", 6));
	}
}
END_TEST

START_TEST(test_bounds)
{
	/* a REQUEST_URI longer than kept is cut and flagged; an over-long
	 * method is no method; the query string is kept whole for the caller
	 * to drop (as for HTTP) */
	static struct buf in, s;
	in.n = s.n = 0;
	char uri[700];
	memset(uri, 'u', sizeof uri - 1);
	uri[0] = '/';
	uri[sizeof uri - 1] = 0;
	nv(&s, "REQUEST_METHOD", "AVERYLONGMETHODNAME", 0);
	nv(&s, "REQUEST_URI", uri, 0);
	begin(&in, 1, AP_FCGI_RESPONDER, 0);
	params(&in, 1, &s, 64, 0);
	struct ap_fcgi p;
	ap_fcgi_init(&p);
	char t[2048] = "";
	unsigned seed = 1;
	ck_assert_int_eq(feed_dir(&p, 1, in.b, in.n, 1, &seed, t, sizeof t), 0);
	ck_assert_uint_eq(p.method_len, 0);
	ck_assert_uint_eq(p.target_len, AP_FCGI_TARGET_MAX);
	ck_assert_uint_eq(p.target_truncated, 1);

	in.n = s.n = 0;
	nv(&s, "REQUEST_METHOD", "GET", 0);
	nv(&s, "REQUEST_URI", "/search?q=private#frag", 0);
	begin(&in, 1, AP_FCGI_RESPONDER, 0);
	params(&in, 1, &s, 64, 0);
	ap_fcgi_init(&p);
	t[0] = 0;
	ck_assert_int_eq(feed_dir(&p, 1, in.b, in.n, 0, &seed, t, sizeof t), 0);
	ck_assert_str_eq(t, "B1 P GET /search?q=private#frag ");
}
END_TEST

START_TEST(test_is_begin)
{
	ck_assert(ap_fcgi_is_begin((const uint8_t *)"\1\1\0\1", 4));
	ck_assert(!ap_fcgi_is_begin((const uint8_t *)"\1", 1));
	ck_assert(!ap_fcgi_is_begin((const uint8_t *)"\1\11\0\0", 4)); /* GET_VALUES */
	ck_assert(!ap_fcgi_is_begin((const uint8_t *)"GET /", 5));
	ck_assert(!ap_fcgi_is_begin((const uint8_t *)"PRI *", 5));
}
END_TEST

Suite *fcgi_suite(void)
{
	Suite *s = suite_create("fcgi");
	TCase *tc = tcase_create("fcgi");
	tcase_add_test(tc, test_get_200);
	tcase_add_test(tc, test_status_location_body);
	tcase_add_test(tc, test_script_name_long_lengths);
	tcase_add_test(tc, test_management_and_leftover_stdin);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_values_not_retained);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_is_begin);
	suite_add_tcase(s, tc);
	return s;
}

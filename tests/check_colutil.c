/*
 * check_colutil.c - the collector's small helpers (collector/col.h): API
 * time parsing and formatting, cleaning of wire strings, HTTP methods.
 */
#include "config.h"
#include "check_suites.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "col.h"
#include "jw.h"

#include <jansson.h>
#include <stdlib.h>

static const struct {
	const char *in;
	int64_t ns;
} good_times[] = {
	{ "0", 0 },
	{ "1763799302", 1763799302LL * COL_NS_PER_S },
	{ "1763799302.25", 1763799302LL * COL_NS_PER_S + 250000000 },
	{ "1763799302.1234567891", 1763799302LL * COL_NS_PER_S + 123456789 },
	{ "1970-01-01T00:00:00Z", 0 },
	{ "2026-11-22T08:15:02Z", 1795335302LL * COL_NS_PER_S },
	{ "2026-11-22T08:15:02.123Z", 1795335302LL * COL_NS_PER_S + 123000000 },
	{ "2026-11-22t08:15:02z", 1795335302LL * COL_NS_PER_S },
	{ "2026-11-22 08:15:02Z", 1795335302LL * COL_NS_PER_S },
	{ "2026-11-22T09:15:02+01:00", 1795335302LL * COL_NS_PER_S },
	{ "2026-11-22T03:45:02.5-04:30", 1795335302LL * COL_NS_PER_S + 500000000 },
	{ "2024-02-29T00:00:00Z", 1709164800LL * COL_NS_PER_S },
	{ "2000-03-01T00:00:00Z", 951868800LL * COL_NS_PER_S },
	{ "2262-04-11T23:47:15Z", 9223372035LL * COL_NS_PER_S },
};

static const char *const bad_times[] = {
	"", " ", "abc", "-1", "1e9", "12a", "1.", ".5", "+5", "0x10",
	"2026-11-22", "2026-11-22T08:15:02", "2026-11-22T08:15Z",
	"2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
	"2026-11-22T24:00:00Z", "2026-11-22T08:60:00Z", "2026-11-22T08:15:02.Z",
	"2026-11-22T08:15:02+1:00", "2026-11-22T08:15:02+01:60", "2026-11-22T08:15:02Zjunk",
	"1969-12-31T23:59:59Z", "2300-01-01T00:00:00Z", "99999999999",
};

START_TEST(test_time_parse)
{
	for (size_t i = 0; i < sizeof good_times / sizeof good_times[0]; i++) {
		int64_t ns = -1;
		ck_assert_msg(col_time_parse(good_times[i].in, &ns) == 0, "refused '%s'",
		              good_times[i].in);
		ck_assert_msg(ns == good_times[i].ns, "'%s': %lld != %lld", good_times[i].in,
		              (long long)ns, (long long)good_times[i].ns);
	}
	for (size_t i = 0; i < sizeof bad_times / sizeof bad_times[0]; i++) {
		int64_t ns = 42;
		ck_assert_msg(col_time_parse(bad_times[i], &ns) == -EINVAL, "accepted '%s'",
		              bad_times[i]);
		ck_assert_int_eq(ns, 42);
	}
	int64_t ns;
	ck_assert_int_eq(col_time_parse(NULL, &ns), -EINVAL);
}
END_TEST

START_TEST(test_time_format)
{
	char buf[COL_TIME_BUF];
	ck_assert_uint_eq(col_time_format(1795335302LL * COL_NS_PER_S + 123999999, buf, sizeof buf), 24);
	ck_assert_str_eq(buf, "2026-11-22T08:15:02.123Z");
	col_time_format(0, buf, sizeof buf);
	ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
	col_time_format(-1, buf, sizeof buf); /* truncation goes down, not to .000 of 1970 */
	ck_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
	ck_assert_uint_eq(col_time_format(0, buf, 10), 0);
	/* Round trip through the parser. */
	int64_t ns;
	col_time_format(1795335302LL * COL_NS_PER_S + 5000000, buf, sizeof buf);
	ck_assert_int_eq(col_time_parse(buf, &ns), 0);
	ck_assert_int_eq(ns, 1795335302LL * COL_NS_PER_S + 5000000);
}
END_TEST

START_TEST(test_clean_path)
{
	char out[64];
	ck_assert_uint_eq(col_clean_path("/a/b?x=1", 8, out, sizeof out), 8);
	ck_assert_str_eq(out, "/a/b?x=1");
	col_clean_path("/a b\n\x80\xff", 7, out, sizeof out);
	ck_assert_str_eq(out, "/a%20b%0A%80%FF");
	col_clean_path("/a\0b", 4, out, sizeof out);
	ck_assert_str_eq(out, "/a%00b");
	/* Never a cut escape. */
	ck_assert_uint_eq(col_clean_path("/a\n", 3, out, 5), 2);
	ck_assert_str_eq(out, "/a");
	ck_assert_uint_eq(col_clean_path("/abc", 4, out, 1), 0);
	ck_assert_str_eq(out, "");
	/* Absolute-form targets: the path the server serves. */
	ck_assert_uint_eq(col_clean_path("http://127.0.0.1:8080/hello", 27, out, sizeof out), 6);
	ck_assert_str_eq(out, "/hello");
	col_clean_path("HTTPS://example.com/a/b?x=1", 27, out, sizeof out);
	ck_assert_str_eq(out, "/a/b?x=1");
	ck_assert_uint_eq(col_clean_path("http://example.com", 18, out, sizeof out), 1);
	ck_assert_str_eq(out, "/");
	col_clean_path("http://h?x=1", 12, out, sizeof out);
	ck_assert_str_eq(out, "/?x=1");
	col_clean_path("http:/a", 7, out, sizeof out); /* not absolute-form */
	ck_assert_str_eq(out, "http:/a");
	col_clean_path("ftp://h/a", 9, out, sizeof out);
	ck_assert_str_eq(out, "ftp://h/a");
	ck_assert_uint_eq(col_clean_path("http://h", 8, out, 1), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_clean_text)
{
	char out[64];
	col_clean_text("api-\xc3\xa9t\xc3\xa9", 9, out, sizeof out); /* valid UTF-8 kept */
	ck_assert_str_eq(out, "api-\xc3\xa9t\xc3\xa9");
	col_clean_text("a\tb\x7f" "c\xff" "d\xc3", 8, out, sizeof out);
	ck_assert_str_eq(out, "a?b?c?d?");
	col_clean_text("\xc0\xaf\xed\xa0\x80", 5, out, sizeof out); /* overlong, surrogate */
	ck_assert_str_eq(out, "?????");
	/* C1 controls (U+009B is CSI to a UTF-8 terminal) go; U+00A0 stays. */
	col_clean_text("\xc2\x9b" "31m\xc2\x80\xc2\x9f\xc2\xa0", 11, out, sizeof out);
	ck_assert_str_eq(out, "?31m??\xc2\xa0");
	/* A multi-byte character is never cut in two. */
	ck_assert_uint_eq(col_clean_text("ab\xc3\xa9", 4, out, 4), 2);
	ck_assert_str_eq(out, "ab");
}
END_TEST

START_TEST(test_text_width)
{
	ck_assert_uint_eq(col_text_width(""), 0);
	ck_assert_uint_eq(col_text_width("/api/v1"), 7);
	/* two bytes, one column */
	ck_assert_uint_eq(col_text_width("/caf\xc3\xa9"), 5);
	/* e + combining acute accent: one column */
	ck_assert_uint_eq(col_text_width("/cafe\xcc\x81"), 5);
	/* two CJK ideographs, three bytes and two columns each */
	ck_assert_uint_eq(col_text_width("/\xe6\x97\xa5\xe6\x9c\xac"), 5);
	/* an emoji (U+1F600) is wide too */
	ck_assert_uint_eq(col_text_width("\xf0\x9f\x98\x80"), 2);
	/* an invalid byte counts one, as the '?' it would be cleaned to */
	ck_assert_uint_eq(col_text_width("a\xff" "b"), 3);
}
END_TEST

START_TEST(test_methods)
{
	ck_assert_int_eq(col_method_of("GET", 3), COL_METHOD_GET);
	ck_assert_int_eq(col_method_of("PATCH", 5), COL_METHOD_PATCH);
	ck_assert_int_eq(col_method_of("get", 3), COL_METHOD_OTHER);
	ck_assert_int_eq(col_method_of("PROPFIND", 8), COL_METHOD_OTHER);
	ck_assert_int_eq(col_method_of("GETX", 4), COL_METHOD_OTHER);
	ck_assert_int_eq(col_method_of("GE", 2), COL_METHOD_OTHER);
	ck_assert_int_eq(col_method_of("", 0), COL_METHOD_OTHER);
	ck_assert_str_eq(col_method_name(COL_METHOD_DELETE), "DELETE");
	ck_assert_str_eq(col_method_name(-1), "OTHER");
	ck_assert_str_eq(col_method_name(99), "OTHER");
	ck_assert_int_eq(col_method_lookup("post"), COL_METHOD_POST);
	ck_assert_int_eq(col_method_lookup("Other"), COL_METHOD_OTHER);
	ck_assert_int_eq(col_method_lookup("FOO"), -1);
}
END_TEST

static char *jw_doc(void (*fn)(struct jw *))
{
	struct jw w;
	jw_init(&w);
	fn(&w);
	return jw_finish(&w, NULL);
}

static void doc_numbers(struct jw *w)
{
	jw_arr(w);
	jw_real(w, 25.5, 3);
	jw_real(w, 1, 3);
	jw_real(w, 0, 3);
	jw_real(w, 0.0004, 3);
	jw_real(w, 0.0005, 3);
	jw_real(w, 108.0726, 3);
	jw_real(w, -2.25, 3);
	jw_real(w, 1e7, 3);
	jw_real(w, 1.0 / 3, 6);
	jw_real(w, NAN, 3);
	jw_real(w, 1e300, 3);
	jw_int(w, -42);
	jw_uint(w, UINT64_MAX);
	jw_bool(w, 1);
	jw_bool(w, 0);
	jw_null(w);
	jw_arr_end(w);
}

/* Found by tests/fuzz/fuzz_json: %.15g rounds DBL_MAX up to
 * 1.79769313486232e+308, which overflows a double: jansson refused the
 * document. */
static void doc_huge(struct jw *w)
{
	jw_arr(w);
	jw_real(w, DBL_MAX, 3);
	jw_real(w, -DBL_MAX, 6);
	jw_real(w, 1.7976931348623e308, 3);
	jw_arr_end(w);
}

static void doc_nested(struct jw *w)
{
	jw_obj(w);
	jw_key(w, "s");
	jw_str(w, "q\"b\\c\n\x01\x7f \xc3\xa9 \xff end");
	jw_key(w, "empty");
	jw_obj(w);
	jw_obj_end(w);
	jw_key(w, "list");
	jw_arr(w);
	jw_obj(w);
	jw_key(w, "a");
	jw_str(w, NULL);
	jw_obj_end(w);
	jw_arr(w);
	jw_arr_end(w);
	jw_arr_end(w);
	jw_obj_end(w);
}

static void doc_unbalanced(struct jw *w)
{
	jw_obj(w);
	jw_key(w, "x");
	jw_arr(w);
}

START_TEST(test_json_writer)
{
	char *s = jw_doc(doc_numbers);
	ck_assert_str_eq(s, "[25.5,1.0,0.0,0.0,0.001,108.073,-2.25,10000000.0,0.333333,0.0,"
	                    "1e+300,-42,9223372036854775807,true,false,null]");
	free(s);
	s = jw_doc(doc_huge);
	ck_assert_str_eq(s, "[1.7976931348623157e+308,-1.7976931348623157e+308,1.7976931348623e+308]");
	free(s);
	s = jw_doc(doc_nested);
	ck_assert_str_eq(s, "{\"s\":\"q\\\"b\\\\c\\u000a\\u0001\\u007f \xc3\xa9 ? end\","
	                    "\"empty\":{},\"list\":[{\"a\":\"\"},[]]}");
	/* What it writes is JSON that a real parser accepts. */
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);
	ck_assert_msg(j != NULL, "%s", e.text);
	ck_assert_str_eq(json_string_value(json_object_get(j, "s")),
	                 "q\"b\\c\n\x01\x7f \xc3\xa9 ? end");
	json_decref(j);
	free(s);
	ck_assert_ptr_null(jw_doc(doc_unbalanced));
}
END_TEST

Suite *colutil_suite(void)
{
	Suite *s = suite_create("colutil");
	TCase *tc = tcase_create("helpers");
	tcase_add_test(tc, test_time_parse);
	tcase_add_test(tc, test_time_format);
	tcase_add_test(tc, test_clean_path);
	tcase_add_test(tc, test_clean_text);
	tcase_add_test(tc, test_text_width);
	tcase_add_test(tc, test_methods);
	tcase_add_test(tc, test_json_writer);
	suite_add_tcase(s, tc);
	return s;
}

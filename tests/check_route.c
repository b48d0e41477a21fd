/* Unit tests for shared/route.c: path -> route (SPEC section 4). */
#include "config.h"
#include "ap_route.h"
#include "check_suites.h"

#include <stdlib.h>
#include <string.h>

/* Route of a NUL-terminated path with templates `spec` (NULL: none). */
static const char *route(const char *spec, const char *path)
{
	static char out[AP_ROUTE_MAX];
	struct ap_route_set *set = NULL;
	if (spec != NULL) {
		char err[256];
		set = ap_route_set_new(spec, err, sizeof(err));
		ck_assert_msg(set != NULL, "templates '%s' rejected: %s", spec, err);
	}
	size_t n = ap_route_of(set, path, strlen(path), out, sizeof(out));
	ck_assert_uint_eq(n, strlen(out));
	ap_route_set_free(set);
	return out;
}

struct rcase {
	const char *path, *route;
};

/* SPEC section 4's table, verbatim. */
static const struct rcase spec_table[] = {
	{ "/api/users/42/posts", "/api/users/{id}/posts" },
	{ "/books/17/", "/books/{id}/" },
	{ "/v1/orders/550e8400-e29b-41d4-a716-446655440000", "/v1/orders/{id}" },
	{ "/files/3f2a9c1d8e7b", "/files/{id}" },
	{ "/t/Zk3Hq9LmPx2RtY7vWc", "/t/{id}" },
	{ "/api/v2/items", "/api/v2/items" },
	{ "/static/app.css", "/static/app.css" },
	{ "/search?q=42", "/search" },
	{ "/", "/" },
};

START_TEST(test_spec_table)
{
	const struct rcase *rc = &spec_table[_i];
	ck_assert_str_eq(route(NULL, rc->path), rc->route);
	/* An empty set behaves as no set. */
	ck_assert_str_eq(route("", rc->path), rc->route);
}
END_TEST

/* Boundaries of the automatic rules. */
static const struct rcase auto_table[] = {
	/* all digits, any length */
	{ "/a/0", "/a/{id}" },
	{ "/a/12345678901234567890123", "/a/{id}" },
	{ "/a/-1", "/a/-1" },
	{ "/a/1.5", "/a/1.5" },
	/* hex: 11 vs 12 characters */
	{ "/h/3f2a9c1d8e7", "/h/3f2a9c1d8e7" },
	{ "/h/3f2a9c1d8e7b", "/h/{id}" },
	{ "/h/3F2A9C1D8E7B", "/h/{id}" },
	{ "/h/deadbeefcafe", "/h/{id}" },       /* hex without a digit */
	{ "/h/deadbeefcaf", "/h/deadbeefcaf" },
	{ "/h/3f2a9c1d8e7g", "/h/3f2a9c1d8e7g" }, /* 14 chars, not hex, < 16 */
	/* tokens: 15 vs 16 characters, with and without a digit */
	{ "/t/Zk3Hq9LmPx2RtYv", "/t/Zk3Hq9LmPx2RtYv" },   /* 15 with digits */
	{ "/t/Zk3Hq9LmPx2RtYvW", "/t/{id}" },             /* 16 with digits */
	{ "/t/abcdefghijklmnop", "/t/abcdefghijklmnop" }, /* 16 no digit */
	{ "/t/abcdefghijklmnopqrstuvwxyz", "/t/abcdefghijklmnopqrstuvwxyz" },
	{ "/t/abc_def-ghi_jkl1", "/t/{id}" },             /* '_' and '-' count */
	{ "/t/abc.def-ghi_jkl1", "/t/abc.def-ghi_jkl1" }, /* '.' does not */
	{ "/t/user-profile-settings", "/t/user-profile-settings" },
	/* UUIDs, either case; malformed ones stay */
	{ "/u/550E8400-E29B-41D4-A716-446655440000", "/u/{id}" },
	{ "/u/550e8400-E29B-41d4-a716-446655440000", "/u/{id}" },
	{ "/u/abcdefab-abcd-abcd-abcd-abcdefabcdef", "/u/{id}" }, /* no digit */
	{ "/u/abcdefab-abcd-abcd-abcd-abcdefabcdeg", "/u/abcdefab-abcd-abcd-abcd-abcdefabcdeg" },
	{ "/u/abcdefabc-abc-abcd-abcd-abcdefabcdef", "/u/abcdefabc-abc-abcd-abcd-abcdefabcdef" },
	/* structure */
	{ "", "" },
	{ "//", "//" },
	{ "/a//b", "/a//b" },
	{ "/42", "/{id}" },
	{ "/42/", "/{id}/" },
	{ "/users/42/", "/users/{id}/" },
	{ "/users/", "/users/" },
	{ "/1/2/3", "/{id}/{id}/{id}" },
	{ "/search?q=42&page=3", "/search" },
	{ "/page#42", "/page" },
	{ "/page/42#frag/99", "/page/{id}" },
	{ "/a/7?x=/8", "/a/{id}" },
	{ "?q=1", "" },
	{ "/%41%42/12", "/%41%42/{id}" },          /* not percent-decoded */
	{ "*", "*" },                              /* OPTIONS * */
	{ "/{id}", "/{id}" },
};

START_TEST(test_auto_rules)
{
	const struct rcase *rc = &auto_table[_i];
	ck_assert_msg(strcmp(route(NULL, rc->path), rc->route) == 0,
	              "'%s' gave '%s', expected '%s'", rc->path, route(NULL, rc->path),
	              rc->route);
}
END_TEST

START_TEST(test_segment_is_id)
{
	ck_assert_int_eq(ap_route_segment_is_id("", 0), 0);
	ck_assert_int_eq(ap_route_segment_is_id("7", 1), 1);
	ck_assert_int_eq(ap_route_segment_is_id("12ab", 2), 1); /* length respected */
	ck_assert_int_eq(ap_route_segment_is_id("abcdef012345", 11), 0);
	ck_assert_int_eq(ap_route_segment_is_id("abcdef012345", 12), 1);
	ck_assert_int_eq(ap_route_segment_is_id("items", 5), 0);
	ck_assert_int_eq(ap_route_segment_is_id("4\0002", 3), 0);
	ck_assert_int_eq(ap_route_segment_is_id("\xff\xfe" "0123456789abcdef", 18), 0);
}
END_TEST

START_TEST(test_templates_win)
{
	/* A template keeps a segment the automatic rules would rewrite, and
	 * the output is the template's own text. */
	ck_assert_str_eq(route("/api/users/{user}/posts", "/api/users/42/posts"),
	                 "/api/users/{user}/posts");
	ck_assert_str_eq(route("/api/users/{user}/posts", "/api/users/alice/posts"),
	                 "/api/users/{user}/posts");
	ck_assert_str_eq(route("/files/3f2a9c1d8e7b", "/files/3f2a9c1d8e7b"),
	                 "/files/3f2a9c1d8e7b");
	/* Not matching: automatic rules apply. */
	ck_assert_str_eq(route("/api/users/{user}/posts", "/api/users/42/comments"),
	                 "/api/users/{id}/comments");
	/* {name} needs a non-empty segment. */
	ck_assert_str_eq(route("/api/users/{user}/posts", "/api/users//posts"),
	                 "/api/users//posts");
	/* Literal segments compare exactly (case-sensitive). */
	ck_assert_str_eq(route("/API/{x}", "/api/abc"), "/api/abc");
	/* Query string is dropped before matching. */
	ck_assert_str_eq(route("/p/{slug}", "/p/hello-world?ref=1"), "/p/{slug}");
	ck_assert_str_eq(route("/p/{slug}", "/p/hello#top"), "/p/{slug}");
	/* Whitespace around entries is ignored. */
	ck_assert_str_eq(route("  /a/{x} ,\t/b/{y}  ", "/b/q"), "/b/{y}");
	/* The root template. */
	ck_assert_str_eq(route("/", "/"), "/");
	ck_assert_str_eq(route("/{page}", "/about"), "/{page}");
	ck_assert_str_eq(route("/{page}", "/"), "/");
}
END_TEST

START_TEST(test_first_template_wins)
{
	const char *spec = "/a/{x}/c, /a/b/{y}, /a/b/c";
	ck_assert_str_eq(route(spec, "/a/b/c"), "/a/{x}/c");
	ck_assert_str_eq(route(spec, "/a/z/c"), "/a/{x}/c");
	ck_assert_str_eq(route(spec, "/a/b/z"), "/a/b/{y}");
	ck_assert_str_eq(route("/a/b/c,/a/{x}/c", "/a/b/c"), "/a/b/c");
	ck_assert_str_eq(route("/a/b/c,/a/{x}/c", "/a/q/c"), "/a/{x}/c");
}
END_TEST

START_TEST(test_template_segment_count)
{
	const char *spec = "/users/{id}";
	ck_assert_str_eq(route(spec, "/users/alice"), "/users/{id}");
	ck_assert_str_eq(route(spec, "/users/alice/posts"), "/users/alice/posts");
	ck_assert_str_eq(route(spec, "/users"), "/users");
	/* A trailing slash is one more (empty) segment. */
	ck_assert_str_eq(route(spec, "/users/alice/"), "/users/alice/");
	ck_assert_str_eq(route("/users/{id}/", "/users/alice/"), "/users/{id}/");
	ck_assert_str_eq(route("/users/{id}/", "/users/alice"), "/users/alice");
	/* A path not starting with '/' never matches a template. */
	ck_assert_str_eq(route("/{x}", "abc"), "abc");
}
END_TEST

static const char *const bad_templates[] = {
	"api/users",          /* must start with '/' */
	"/a/x{id}",           /* {name} not spanning the segment */
	"/a/{id}x",
	"/a/{i{d}",
	"/a/{id",
	"/a/id}",
	"/a/{}",              /* no name */
	"/a,,/b",             /* empty entry */
	"/a,",
	",/a",
	"/a?x=1",             /* can never match */
	"/a#b",
	"/a b",
	"/a/\x01",
};

START_TEST(test_bad_templates)
{
	char err[256] = "";
	struct ap_route_set *set = ap_route_set_new(bad_templates[_i], err, sizeof(err));
	ck_assert_msg(set == NULL, "'%s' accepted", bad_templates[_i]);
	ck_assert_msg(err[0] != '\0', "no message for '%s'", bad_templates[_i]);
}
END_TEST

START_TEST(test_template_messages)
{
	char err[256];
	ck_assert_ptr_null(ap_route_set_new("/ok, nope", err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "nope"));
	ck_assert_ptr_nonnull(strstr(err, "'/'"));

	/* Longer than a route can be. */
	char big[AP_ROUTE_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	ck_assert_ptr_null(ap_route_set_new(big, err, sizeof(err)));
	big[AP_ROUTE_MAX - 1] = '\0'; /* 511 bytes: fits */
	struct ap_route_set *set = ap_route_set_new(big, err, sizeof(err));
	ck_assert_ptr_nonnull(set);
	ap_route_set_free(set);

	/* Tiny or absent error buffers are fine. */
	ck_assert_ptr_null(ap_route_set_new("x", err, 1));
	ck_assert_str_eq(err, "");
	ck_assert_ptr_null(ap_route_set_new("x", NULL, 0));

	/* Blank and NULL specs are empty sets. */
	set = ap_route_set_new("  \t ", err, sizeof(err));
	ck_assert_ptr_nonnull(set);
	ap_route_set_free(set);
	set = ap_route_set_new(NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(set);
	ap_route_set_free(set);
	ap_route_set_free(NULL);
}
END_TEST

START_TEST(test_long_path_cut)
{
	/* 300 segments of "seg": 1200 bytes, longer than any route. */
	size_t n = 300 * 4;
	char *path = malloc(n + 1);
	for (size_t i = 0; i < n; i += 4)
		memcpy(path + i, "/seg", 4);
	path[n] = '\0';
	char out[AP_ROUTE_MAX];
	size_t len = ap_route_of(NULL, path, n, out, sizeof(out));
	ck_assert_uint_eq(len, strlen(out));
	ck_assert_uint_lt(len, sizeof(out));
	ck_assert_uint_eq(len, 508); /* 127 whole "/seg" */
	ck_assert_int_eq(memcmp(out, path, len), 0);

	/* Rewritten segments count at their rewritten length. */
	for (size_t i = 0; i < n; i += 4)
		memcpy(path + i, "/123", 4);
	len = ap_route_of(NULL, path, n, out, sizeof(out));
	ck_assert_uint_eq(len, 102 * 5); /* 102 whole "/{id}" */
	free(path);
}
END_TEST

START_TEST(test_cut_at_segment_boundary)
{
	char out[32];
	const char *p = "/alpha/beta/gamma";
	/* 16 bytes hold 15 characters: "/alpha/beta" (11) fits, "/gamma" not. */
	ck_assert_uint_eq(ap_route_of(NULL, p, strlen(p), out, 16), 11);
	ck_assert_str_eq(out, "/alpha/beta");
	ck_assert_uint_eq(ap_route_of(NULL, p, strlen(p), out, 12), 11);
	ck_assert_uint_eq(ap_route_of(NULL, p, strlen(p), out, 11), 6);
	ck_assert_str_eq(out, "/alpha");
	ck_assert_uint_eq(ap_route_of(NULL, p, strlen(p), out, 6), 0);
	ck_assert_str_eq(out, "");
	ck_assert_uint_eq(ap_route_of(NULL, p, strlen(p), out, 1), 0);
	ck_assert_str_eq(out, "");
	/* outlen 0: nothing written at all. */
	out[0] = 'x';
	ck_assert_uint_eq(ap_route_of(NULL, p, strlen(p), out, 0), 0);
	ck_assert_int_eq(out[0], 'x');
	/* Exactly fitting. */
	ck_assert_uint_eq(ap_route_of(NULL, p, strlen(p), out, 18), 17);
	ck_assert_str_eq(out, p);
	/* A template's text is cut the same way. */
	struct ap_route_set *set = ap_route_set_new("/alpha/{b}/gamma", NULL, 0);
	ck_assert_uint_eq(ap_route_of(set, p, strlen(p), out, 12), 10);
	ck_assert_str_eq(out, "/alpha/{b}");
	ap_route_set_free(set);
}
END_TEST

START_TEST(test_any_bytes)
{
	/* Binary input: NUL ends the path, other bytes are kept as they are. */
	char out[AP_ROUTE_MAX];
	const char bin[] = "/a/\xff\x80/12\0/34";
	size_t len = ap_route_of(NULL, bin, sizeof(bin) - 1, out, sizeof(out));
	ck_assert_uint_eq(len, strlen(out));
	ck_assert_str_eq(out, "/a/\xff\x80/{id}");

	/* Every byte value in every position, through a set, stays in bounds. */
	struct ap_route_set *set = ap_route_set_new("/{a}/{b}", NULL, 0);
	for (int c = 0; c < 256; c++) {
		char p[8] = { '/', (char)c, '/', (char)c, (char)c, '/', (char)c, '9' };
		for (size_t n = 0; n <= sizeof(p); n++) {
			char *heap = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
			memcpy(heap, p, n);
			len = ap_route_of(set, heap, n, out, sizeof(out));
			ck_assert_uint_eq(len, strlen(out));
			free(heap);
		}
	}
	ap_route_set_free(set);

	/* A NULL path with length 0. */
	ck_assert_uint_eq(ap_route_of(NULL, NULL, 0, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

Suite *route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("auto");
	tcase_add_loop_test(tc, test_spec_table, 0,
	                    (int)(sizeof(spec_table) / sizeof(spec_table[0])));
	tcase_add_loop_test(tc, test_auto_rules, 0,
	                    (int)(sizeof(auto_table) / sizeof(auto_table[0])));
	tcase_add_test(tc, test_segment_is_id);
	suite_add_tcase(s, tc);

	tc = tcase_create("templates");
	tcase_add_test(tc, test_templates_win);
	tcase_add_test(tc, test_first_template_wins);
	tcase_add_test(tc, test_template_segment_count);
	tcase_add_loop_test(tc, test_bad_templates, 0,
	                    (int)(sizeof(bad_templates) / sizeof(bad_templates[0])));
	tcase_add_test(tc, test_template_messages);
	suite_add_tcase(s, tc);

	tc = tcase_create("bounds");
	tcase_add_test(tc, test_long_path_cut);
	tcase_add_test(tc, test_cut_at_segment_boundary);
	tcase_add_test(tc, test_any_bytes);
	suite_add_tcase(s, tc);
	return s;
}

#ifdef STANDALONE
int main(void)
{
	SRunner *sr = srunner_create(route_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif

/*
 * fuzz_json.c - libFuzzer harness for the API's streaming JSON writer
 * (collector/jw.c), which writes every string that came from a sender
 * (paths, services, SQL, error messages) into the large API responses.
 *
 * The input is cut at NUL bytes into strings, written as keys' values in
 * an object, inside arrays nested by the first byte, with integers and
 * reals made from the input's bytes (NaN and infinities included). The
 * document must parse with jansson, and each string that is valid UTF-8
 * must come back unchanged (jw keeps valid UTF-8 and escapes quotes,
 * backslashes and control characters; invalid bytes become '?').
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"

#define MAX_STRINGS 64

static void fail(const char *what, const char *doc)
{
	fprintf(stderr, "fuzz_json: %s\n%s\n", what, doc ? doc : "");
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	int depth = data[0] % 4;
	char *copy = malloc(size);
	if (copy == NULL)
		return 0;
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';

	const char *strs[MAX_STRINGS];
	size_t ns = 0;
	for (size_t i = 0; i < size - 1 && ns < MAX_STRINGS; i += strlen(copy + i) + 1)
		strs[ns++] = copy + i;

	struct jw w;
	jw_init(&w);
	for (int d = 0; d < depth; d++)
		jw_arr(&w);
	jw_obj(&w);
	jw_key(&w, "strings");
	jw_arr(&w);
	for (size_t i = 0; i < ns; i++)
		jw_str(&w, strs[i]);
	jw_str(&w, NULL);
	jw_arr_end(&w);
	jw_key(&w, "numbers");
	jw_arr(&w);
	for (size_t i = 0; i + 8 <= size; i += 8) {
		uint64_t u;
		double x;
		memcpy(&u, data + i, 8);
		memcpy(&x, data + i, 8);
		jw_int(&w, (int64_t)u);
		jw_uint(&w, u);
		jw_real(&w, x, 3);
		jw_real(&w, x, 6);
	}
	jw_real(&w, NAN, 3);
	jw_real(&w, -INFINITY, 6);
	jw_bool(&w, data[0] & 1);
	jw_null(&w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	for (int d = 0; d < depth; d++)
		jw_arr_end(&w);
	size_t len = 0;
	char *doc = jw_finish(&w, &len);
	if (doc == NULL)
		fail("jw_finish failed", NULL);
	if (strlen(doc) != len)
		fail("length differs from the document's", doc);

	json_error_t err;
	json_t *root = json_loadb(doc, len, 0, &err);
	if (root == NULL)
		fail(err.text, doc);
	json_t *o = root;
	for (int d = 0; d < depth; d++)
		o = json_array_get(o, 0);
	json_t *arr = json_object_get(o, "strings");
	if (!json_is_array(arr) || json_array_size(arr) != ns + 1)
		fail("wrong number of strings", doc);
	for (size_t i = 0; i < ns; i++) {
		json_t *valid = json_string(strs[i]); /* NULL: not valid UTF-8 */
		const char *got = json_string_value(json_array_get(arr, i));
		if (got == NULL)
			fail("a string is not a string", doc);
		if (valid != NULL && strcmp(got, strs[i]) != 0)
			fail("a valid UTF-8 string changed", doc);
		json_decref(valid);
	}
	json_t *nums = json_object_get(o, "numbers");
	for (size_t i = 0; i < json_array_size(nums); i++) {
		json_t *v = json_array_get(nums, i);
		if (!json_is_number(v) && !json_is_boolean(v) && !json_is_null(v))
			fail("not a number", doc);
	}
	json_decref(root);
	free(doc);
	free(copy);
	return 0;
}

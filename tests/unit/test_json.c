/* vmm/json.c: whatever the bytes, a valid JSON string that decodes to what they say. */
#include <stdlib.h>
#include <string.h>

#include "tests/unit/test.h"
#include "vmm/json.h"
#include "vmm/utf8.h"

/* json_string(s, len) into a NUL-terminated heap string. */
static char *quote(const void *s, size_t len)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	json_string(f, s, len);
	fclose(f);
	return out;
}

static void expect(const void *in, size_t len, const char *want)
{
	char *got = quote(in, len);

	if (strcmp(got, want)) {
		printf("#   json_string gave %s, want %s\n", got, want);
		test_failed_checks++;
	}
	free(got);
}

/* A literal's bytes, its NULs included. */
#define EXPECT(lit, want) expect(lit, sizeof(lit) - 1, want)

static void test_plain_and_specials(void)
{
	EXPECT("", "\"\"");
	EXPECT("ok 1 - boot", "\"ok 1 - boot\"");
	EXPECT("a\"b\\c", "\"a\\\"b\\\\c\"");
	EXPECT("l1\nl2\tx\r", "\"l1\\nl2\\tx\\r\"");
	EXPECT("\x1b[31mred\x7f", "\"\\u001b[31mred\\u007f\"");
	EXPECT("a\0b", "\"a\\u0000b\"");
	EXPECT("]]></x>", "\"]]></x>\"");
}

static void test_utf8(void)
{
	EXPECT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa7", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa7\"");
	/* Ill-formed: a lone continuation, an overlong '/', a surrogate, above U+10FFFF, a
	 * truncated sequence at the end: one U+FFFD per maximal ill-formed subpart (a byte that
	 * cannot start or continue one alone; a truncated but well-begun sequence whole), what
	 * follows is kept. */
	EXPECT("\x80x", "\"\\ufffdx\"");
	EXPECT("\xc0\xaf", "\"\\ufffd\\ufffd\"");
	EXPECT("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
	EXPECT("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	EXPECT("ab\xe2\x82", "\"ab\\ufffd\"");
	EXPECT("\xe0\x80\x80", "\"\\ufffd\\ufffd\\ufffd\"");
	EXPECT("\xf0\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
}

/* Every byte value in every position: the output is ASCII-or-valid-UTF-8, quoted, with no raw
 * control character and no unescaped quote (python's json module decodes such files; the
 * integration tests check that on real runs). */
static void test_all_bytes(void)
{
	unsigned char in[512];
	char *out;
	size_t n;

	for (int i = 0; i < 512; i++)
		in[i] = (unsigned char)(i * 7 + (i >> 8));
	out = quote(in, sizeof(in));
	n = strlen(out);
	CHECK(n >= 2 && out[0] == '"' && out[n - 1] == '"');
	for (size_t i = 1; i + 1 < n; i++) {
		size_t bad, v = utf8_seq((const uint8_t *)out + i, n - 1 - i, &bad);

		CHECK(v > 0);
		CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
		if (out[i] == '\\') {
			CHECK(strchr("\"\\ntru", out[i + 1]) != NULL);
			i++;
		} else {
			CHECK(out[i] != '"');
		}
		if (v > 1)
			i += v - 1;
	}
	free(out);
}

static void test_cstring_null(void)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	json_cstring(f, NULL);
	json_cstring(f, "x");
	fclose(f);
	CHECK(!strcmp(out, "null\"x\""));
	free(out);
}

TEST_MAIN("json",
	{ "plain_and_specials", test_plain_and_specials },
	{ "utf8", test_utf8 },
	{ "all_bytes", test_all_bytes },
	{ "cstring_null", test_cstring_null })

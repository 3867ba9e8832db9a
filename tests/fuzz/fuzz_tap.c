/* libFuzzer target: the TAP/KTAP reader (ci/tap.c) and the JUnit report (ci/junit.c, ci/xml.c)
 * on whatever a hostile guest prints.
 *
 *   [0]    bit 0: end the output with tap_end (else the report is written mid-stream);
 *          bit 1: the run failed (one more testcase, the input's first 64 bytes as log tail)
 *   rest   lines, split at '\n' (any other byte, NULs included, stays in its line); line i
 *          completes at i ms
 *
 * Checked beyond the sanitizers: the result tree is well formed (a parent comes after its
 * descendants and is shallower, the descendants are a range ending at the parent), and the
 * report's counts equal the testcases, failures and errors it holds, and every '<' in it opens
 * or closes one of its elements (all text is escaped).
 * Built with TAP_MAX_RESULTS lowered (fuzz.mk) so that the cap is reached often and an input
 * stays fast. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ci/junit.h"
#include "ci/tap.h"

#define FUZZ_ASSERT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_tap: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

enum { T_XML, T_SUITES, T_SUITES_END, T_SUITE, T_SUITE_END, T_CASE, T_CASE_END, T_FAILURE,
       T_FAILURE_END, T_ERROR, T_ERROR_END, T_SKIPPED, T_NTAGS };

static const char *const tags[T_NTAGS] = {
	"<?xml ", "<testsuites ", "</testsuites>", "<testsuite ", "</testsuite>", "<testcase ",
	"</testcase>", "<failure ", "</failure>", "<error ", "</error>", "<skipped ",
};

/* Counts each tag in one pass; false when a '<' starts none of them (markup from the input). */
static bool count_tags(const char *s, size_t n, unsigned *count)
{
	memset(count, 0, T_NTAGS * sizeof(*count));
	for (size_t i = 0; i < n; i++) {
		size_t k;

		if (s[i] != '<')
			continue;
		for (k = 0; k < T_NTAGS; k++)
			if (n - i >= strlen(tags[k]) && !strncmp(s + i, tags[k], strlen(tags[k])))
				break;
		if (k == T_NTAGS)
			return false;
		count[k]++;
	}
	return true;
}

static unsigned attr(const char *s, const char *name)
{
	const char *p = strstr(s, name);

	FUZZ_ASSERT(p);
	return (unsigned)strtoul(p + strlen(name), NULL, 10);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct junit_run run = {
		.name = "fuzz", .hostname = "h", .timestamp = "2024-01-01T00:00:00", .seconds = 1,
	};
	struct tap_counts c;
	struct tap *t;
	const char *p, *end;
	uint64_t ns = 0;
	char *xml = NULL;
	size_t xml_len = 0;
	FILE *f;

	if (!size || tap_create(&t))
		return 0;
	p = (const char *)data + 1;
	end = (const char *)data + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		tap_line(t, p, len, ns += 1000000);
		p += len + 1;
	}
	if (data[0] & 1)
		tap_end(t, ns + 1);
	if (data[0] & 2) {
		run.failure = "the guest exited with status 1";
		run.log_tail = (const char *)data;
		run.log_tail_len = size < 64 ? size : 64;
	}

	for (size_t i = 0; i < tap_nresults(t); i++) {
		const struct tap_result *r = tap_result(t, i);

		FUZZ_ASSERT(r->first <= i && r->depth < TAP_MAX_DEPTH);
		FUZZ_ASSERT(r->name_len <= TAP_NAME_MAX && r->reason_len <= TAP_NAME_MAX);
		FUZZ_ASSERT(r->excerpt_len <= TAP_EXCERPT_MAX + 64);
		if (r->parent != TAP_NONE) {
			const struct tap_result *q = tap_result(t, r->parent);

			FUZZ_ASSERT(r->parent > i && q->depth < r->depth && q->first <= i);
		}
		for (size_t j = r->first; j < i; j++)
			FUZZ_ASSERT(tap_result(t, j)->depth > r->depth);
	}

	f = open_memstream(&xml, &xml_len);
	FUZZ_ASSERT(f);
	FUZZ_ASSERT(junit_write(f, t, &run) == 0);
	fclose(f);
	tap_counts(t, &c);
	{
		unsigned n[T_NTAGS];
		const char *root = strstr(xml, "<testsuites ");

		FUZZ_ASSERT(count_tags(xml, xml_len, n));
		FUZZ_ASSERT(n[T_XML] == 1 && n[T_SUITES] == 1 && n[T_SUITES_END] == 1);
		FUZZ_ASSERT(n[T_SUITE] == n[T_SUITE_END] && n[T_SUITE] >= 1);
		FUZZ_ASSERT(root);
		FUZZ_ASSERT(attr(root, " tests=\"") == n[T_CASE]);
		FUZZ_ASSERT(attr(root, " failures=\"") == n[T_FAILURE]);
		FUZZ_ASSERT(attr(root, " errors=\"") == n[T_ERROR]);
		if (tap_found(t))
			FUZZ_ASSERT(n[T_CASE] == c.tests + (run.failure != NULL));
	}
	free(xml);
	tap_free(t);
	return 0;
}

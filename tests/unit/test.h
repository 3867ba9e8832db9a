/* A minimal unit-test harness: TEST() functions run in order, each printing one TAP line. */
#ifndef MICA_TEST_H
#define MICA_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

extern int test_failed_checks;
extern const char *test_skipped; /* set by TEST_SKIP: why the current test could not run */

/* Ends the current test as skipped (reported "ok ... # SKIP why", counted apart). */
#define TEST_SKIP(why) do { test_skipped = (why); return; } while (0)

#define CHECK(cond) do { \
	if (!(cond)) { \
		printf("#   %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
		test_failed_checks++; \
	} \
} while (0)

#define CHECK_EQ(a, b) do { \
	unsigned long long _a = (unsigned long long)(a), _b = (unsigned long long)(b); \
	if (_a != _b) { \
		printf("#   %s:%d: %s == %s: 0x%llx != 0x%llx\n", __FILE__, __LINE__, #a, #b, _a, _b); \
		test_failed_checks++; \
	} \
} while (0)

/* Runs every test; prints "ok N - name" or "not ok N - name"; returns the exit status. */
static inline int run_tests(const char *suite, const struct test_case *tests, int n)
{
	int failed = 0;

	printf("1..%d\n", n);
	for (int i = 0; i < n; i++) {
		int before = test_failed_checks;

		test_skipped = NULL;
		tests[i].fn();
		if (test_failed_checks != before)
			failed++;
		printf("%s %d - %s: %s%s%s\n", test_failed_checks != before ? "not ok" : "ok", i + 1,
		       suite, tests[i].name, test_skipped ? " # SKIP " : "", test_skipped ? test_skipped : "");
	}
	return failed ? 1 : 0;
}

#define TEST_MAIN(suite, ...) \
	int test_failed_checks; \
	const char *test_skipped; \
	int main(void) { \
		static const struct test_case t[] = { __VA_ARGS__ }; \
		return run_tests(suite, t, (int)(sizeof(t) / sizeof(t[0]))); \
	}

#define T(fn) { #fn, fn }

#endif

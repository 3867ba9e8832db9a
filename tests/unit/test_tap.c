/* ci/tap.c, the TAP/KTAP reader, on what guests really print: the test guest's TAP 13, KUnit's
 * KTAP on a kernel console (printk prefixes, two levels of nesting), the kselftest runner's
 * "# "-nested TAP, the KTAP spec's own two-space example; and on what a hostile guest can
 * print: results a plan promised and the run never brought, "Bail out!", "# ok" comments that
 * are not results, directives, CRLF, huge and binary lines, more results than are kept. */
#include <stdint.h>

#include "ci/tap.h"
#include "tests/unit/test.h"

#define MS 1000000ull

/* Feeds text line by line, line i completed at (i + 1) ms; returns the next line's ns. */
static uint64_t feed_from(struct tap *t, const char *text, uint64_t ns)
{
	const char *p = text;

	while (*p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		ns += MS;
		tap_line(t, p, len, ns);
		p += len + (e != NULL);
	}
	return ns;
}

static struct tap *read_all(const char *text, bool end)
{
	struct tap *t;
	uint64_t ns;

	if (tap_create(&t))
		abort();
	ns = feed_from(t, text, 0);
	if (end)
		tap_end(t, ns + MS);
	return t;
}

/* The index of the result named `name` (the first one), or -1. */
static long find(const struct tap *t, const char *name)
{
	for (size_t i = 0; i < tap_nresults(t); i++) {
		const struct tap_result *r = tap_result(t, i);

		if (r->name_len == strlen(name) && !memcmp(r->name, name, r->name_len))
			return (long)i;
	}
	return -1;
}

static bool eq(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && !memcmp(s, lit, len);
}

static bool has(const char *s, size_t len, const char *needle)
{
	return memmem(s, len, needle, strlen(needle)) != NULL;
}

#define CHECK_COUNTS(t, nt, nf, ne, ns) do { \
	struct tap_counts _c; \
	tap_counts(t, &_c); \
	CHECK_EQ(_c.tests, nt); \
	CHECK_EQ(_c.failures, nf); \
	CHECK_EQ(_c.errors, ne); \
	CHECK_EQ(_c.skipped, ns); \
} while (0)

/* The test guest's output: lines of a real run (`mica run --kernel build/guest/mica-testguest
 * --rng`), shortened, and one failure in the guest's format (guest/main.c), the summary line
 * as it says it. */
static const char guest[] =
	"TAP version 13\n"
	"# mica-testguest: 1 cpu(s), 255 MiB RAM (252 MiB free), tsc 2095998 kHz (cpuid 0x40000010)\n"
	"# cmdline: \n"
	"1..6\n"
	"# serial: THRE interrupt on vector 0x40, IIR 0xc2\n"
	"ok 1 - serial\n"
	"# rtc: 2026-12-07 17:50:17 (status B 0x2: BCD, 24h)\n"
	"# rtc: seconds advanced 17 -> 18 after 823 ms\n"
	"ok 2 - rtc\n"
	"ok 3 - virtio_blk # SKIP no virtio-blk device (mica --disk IMG)\n"
	"# virtio_rng: 192 requests (mmio, EVENT_IDX, queue size 256, 16 per kick), 12 kicks (0 suppressed), 4 used interrupts\n"
	"ok 4 - virtio_rng\n"
	"ok 5 - virtio_console_out # SKIP no virtio-console device (mica --console virtio)\n"
	"# virtio_reset: rng (mmio): InterruptStatus 0x1 before reset\n"
	"not ok 6 - virtio_reset # InterruptStatus 0x1 after reset, want 0\n"
	"# mica-testguest: 3 passed, 1 failed (2 skipped)\n";

static void test_guest_tap13(void)
{
	struct tap *t = read_all(guest, true);
	const struct tap_result *r;
	long i;

	CHECK(tap_found(t));
	CHECK_EQ(tap_nresults(t), 6);
	CHECK_COUNTS(t, 6, 1, 0, 2);
	i = find(t, "virtio_reset");
	CHECK(i == 5);
	if (i >= 0) {
		r = tap_result(t, (size_t)i);
		CHECK_EQ(r->status, TAP_FAIL);
		CHECK_EQ(r->number, 6);
		CHECK_EQ(r->depth, 0);
		CHECK_EQ(r->parent, TAP_NONE);
		CHECK(eq(r->reason, r->reason_len, "InterruptStatus 0x1 after reset, want 0"));
		/* its own output: the lines since the previous result, not the result line itself */
		CHECK(eq(r->excerpt, r->excerpt_len,
			 "# virtio_reset: rng (mmio): InterruptStatus 0x1 before reset\n"));
		CHECK_EQ(r->time_ns, 2 * MS);
	}
	i = find(t, "virtio_blk");
	CHECK(i == 2);
	if (i >= 0) {
		r = tap_result(t, (size_t)i);
		CHECK_EQ(r->status, TAP_SKIP);
		CHECK(eq(r->reason, r->reason_len, "no virtio-blk device (mica --disk IMG)"));
		CHECK_EQ(r->excerpt_len, 0);
	}
	/* the first result's time runs from the plan, the header at its level */
	CHECK_EQ(tap_result(t, 0)->time_ns, 2 * MS);
	tap_free(t);
}

/* KUnit on the console (Documentation/dev-tools/kunit: the example suite), with printk time
 * stamps; a parameterized test nests a second level; a second suite follows. */
static const char kunit[] =
	"[    0.512345] KTAP version 1\n"
	"[    0.512350] 1..2\n"
	"[    0.512400]     KTAP version 1\n"
	"[    0.512401]     # Subtest: example\n"
	"[    0.512402]     # module: kunit_example_test\n"
	"[    0.512403]     1..4\n"
	"[    0.512500]     # example_simple_test: initializing\n"
	"[    0.512600]     ok 1 example_simple_test\n"
	"[    0.512700]     # example_failing_test: EXPECTATION FAILED at lib/kunit/kunit-example-test.c:30\r\n"
	"[    0.512701]     Expected 1 + 1 == 3, but\n"
	"[    0.512702]         1 + 1 == 2 (0x2)\n"
	"[    0.512703]     not ok 2 example_failing_test\n"
	"[    0.512800]     ok 3 example_skip_test # SKIP this test should be skipped\n"
	"[    0.512900]         KTAP version 1\n"
	"[    0.512901]         # Subtest: example_params_test\n"
	"[    0.513000]         ok 1 example value 3 # SKIP unsupported param value 3\n"
	"[    0.513100]         ok 2 example value 2\n"
	"[    0.513200]         not ok 3 example value 1\n"
	"[    0.513300]     # example_params_test: pass:1 fail:1 skip:1 total:3\n"
	"[    0.513301]     not ok 4 example_params_test\n"
	"[    0.513400] # example: pass:1 fail:2 skip:1 total:4\n"
	"[    0.513401] not ok 1 example\n"
	"[    0.514000]     KTAP version 1\n"
	"[    0.514001]     # Subtest: other\n"
	"[    0.514002]     1..1\n"
	"[    0.514003][    T1]     ok 1 other_test\n"
	"[    0.514004] ok 2 other\n";

static void test_kunit_nested(void)
{
	struct tap *t = read_all(kunit, true);
	long ex = find(t, "example"), params = find(t, "example_params_test");
	long fail = find(t, "example_failing_test"), v1 = find(t, "example value 1");
	long other = find(t, "other"), ot = find(t, "other_test");

	CHECK_EQ(tap_nresults(t), 10);
	/* 7 leaves; the parents failed with failing children: no testcase of their own */
	CHECK_COUNTS(t, 7, 2, 0, 2);
	CHECK(ex >= 0 && params >= 0 && fail >= 0 && v1 >= 0 && other >= 0 && ot >= 0);
	if (ex < 0 || params < 0 || fail < 0 || v1 < 0 || other < 0 || ot < 0)
		goto out;
	CHECK_EQ(tap_result(t, (size_t)ex)->depth, 0);
	CHECK_EQ(tap_result(t, (size_t)ex)->parent, TAP_NONE);
	CHECK_EQ(tap_result(t, (size_t)ex)->first, 0);
	CHECK(tap_result(t, (size_t)ex)->bad_below);
	CHECK_EQ(tap_result(t, (size_t)params)->depth, 1);
	CHECK_EQ(tap_result(t, (size_t)params)->parent, (uint32_t)ex);
	CHECK_EQ(tap_result(t, (size_t)v1)->depth, 2);
	CHECK_EQ(tap_result(t, (size_t)v1)->parent, (uint32_t)params);
	CHECK_EQ(tap_result(t, (size_t)fail)->parent, (uint32_t)ex);
	CHECK_EQ(tap_result(t, (size_t)ot)->parent, (uint32_t)other);
	CHECK_EQ(tap_result(t, (size_t)other)->first, (uint32_t)ex + 1);
	CHECK_EQ(tap_case_of(t, (size_t)ex), TAP_CASE_NONE);
	CHECK_EQ(tap_case_of(t, (size_t)params), TAP_CASE_NONE);
	CHECK_EQ(tap_case_of(t, (size_t)v1), TAP_CASE_FAIL);
	CHECK_EQ(tap_case_of(t, (size_t)find(t, "example value 3")), TAP_CASE_SKIP);
	{
		const struct tap_result *r = tap_result(t, (size_t)fail);

		/* printk prefixes and the CR gone, the test's own lines only */
		CHECK(eq(r->excerpt, r->excerpt_len,
			"    # example_failing_test: EXPECTATION FAILED at lib/kunit/kunit-example-test.c:30\n"
			"    Expected 1 + 1 == 3, but\n"
			"        1 + 1 == 2 (0x2)\n"));
		CHECK(!has(r->excerpt, r->excerpt_len, "initializing"));
		CHECK(!has(r->excerpt, r->excerpt_len, "["));
	}
	/* the suite's time: from its parent level's plan (line 2) to its line (22) */
	CHECK_EQ(tap_result(t, (size_t)ex)->time_ns, 20 * MS);
	/* a parameter's time: from the previous result at its level */
	CHECK_EQ(tap_result(t, (size_t)find(t, "example value 2"))->time_ns, MS);
out:
	tap_free(t);
}

/* The kselftest runner (Documentation/dev-tools/kselftest: run_kselftest.sh's output): each
 * test's own TAP nested with "# ", comments around it, one test bailing out. */
static const char kselftest[] =
	"TAP version 13\n"
	"1..2\n"
	"# timeout set to 45\n"
	"# selftests: size: get_size\n"
	"# ok 1 a comment, not a result: no header at its depth yet\n"
	"# TAP version 13\n"
	"# 1..1\n"
	"# # Testing system size.\n"
	"# ok 1 get runtime memory use\n"
	"# # Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0\n"
	"ok 1 selftests: size: get_size\n"
	"# ok 2 after its parent: a comment again\n"
	"# timeout set to 45\n"
	"# selftests: breakpoints: step_after_suspend_test\n"
	"# TAP version 13\n"
	"# 1..4\n"
	"# ok 1 CPU 0\n"
	"# Bail out! Failed to suspend\n"
	"# # Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0\n"
	"not ok 2 selftests: breakpoints: step_after_suspend_test # exit=1\n";

static void test_kselftest_nested(void)
{
	struct tap *t = read_all(kselftest, true);
	long size = find(t, "selftests: size: get_size"), mem = find(t, "get runtime memory use");
	long bp = find(t, "selftests: breakpoints: step_after_suspend_test");

	/* 2 + 1 + the CPU 0 pass + 3 errors the bail-out left */
	CHECK_EQ(tap_nresults(t), 7);
	CHECK_COUNTS(t, 5, 0, 3, 0);
	CHECK(size >= 0 && mem >= 0 && bp >= 0);
	CHECK_EQ(find(t, "a comment, not a result: no header at its depth yet"), -1);
	CHECK_EQ(find(t, "after its parent: a comment again"), -1);
	if (size < 0 || mem < 0 || bp < 0)
		goto out;
	CHECK_EQ(tap_result(t, (size_t)mem)->depth, 1);
	CHECK_EQ(tap_result(t, (size_t)mem)->parent, (uint32_t)size);
	CHECK_EQ(tap_case_of(t, (size_t)size), TAP_CASE_NONE);
	{
		const struct tap_result *b = tap_result(t, (size_t)bp);

		CHECK_EQ(b->status, TAP_FAIL);
		CHECK(eq(b->reason, b->reason_len, "exit=1"));
		CHECK(b->bad_below);
		CHECK_EQ(tap_case_of(t, (size_t)bp), TAP_CASE_NONE);
	}
	for (size_t i = (size_t)size + 1; i < (size_t)bp; i++) {
		const struct tap_result *r = tap_result(t, i);

		CHECK_EQ(r->parent, (uint32_t)bp);
		if (i > (size_t)size + 1) {
			CHECK_EQ(r->status, TAP_ERROR);
			CHECK_EQ(r->number, i - (size_t)size);
			CHECK(has(r->reason, r->reason_len, "Bail out! Failed to suspend"));
		}
	}
out:
	tap_free(t);
}

/* The KTAP specification's example (Documentation/dev-tools/ktap.rst): two spaces a level. */
static const char ktap_spec[] =
	"KTAP version 1\n"
	"1..1\n"
	"  KTAP version 1\n"
	"  1..3\n"
	"    KTAP version 1\n"
	"    1..1\n"
	"    # test_1: initializing test_1\n"
	"    ok 1 test_1\n"
	"  ok 1 example_test_1\n"
	"    KTAP version 1\n"
	"    1..2\n"
	"    ok 1 test_1 # SKIP test_1 skipped\n"
	"    ok 2 test_2\n"
	"  ok 2 example_test_2\n"
	"    KTAP version 1\n"
	"    1..3\n"
	"    ok 1 test_1\n"
	"    # test_2: FAIL\n"
	"    not ok 2 test_2\n"
	"    ok 3 test_3 # SKIP test_3 skipped\n"
	"  not ok 3 example_test_3\n"
	"not ok 1 main_test\n";

static void test_ktap_spec_two_spaces(void)
{
	struct tap *t = read_all(ktap_spec, true);
	long main_test = find(t, "main_test"), e3 = find(t, "example_test_3");

	CHECK_EQ(tap_nresults(t), 10);
	CHECK_COUNTS(t, 6, 1, 0, 2);
	CHECK(main_test == 9 && e3 == 8);
	if (main_test == 9 && e3 == 8) {
		CHECK_EQ(tap_result(t, 9)->first, 0);
		CHECK_EQ(tap_result(t, 8)->parent, 9);
		CHECK_EQ(tap_result(t, 7)->parent, 8);
		CHECK_EQ(tap_result(t, 7)->depth, 2);
		CHECK_EQ(tap_result(t, 0)->parent, 1);
	}
	tap_free(t);
}

/* The run ended inside a plan (a panic in the middle of a KUnit suite): what was promised
 * becomes errors carrying the last lines, and the suite left without its result gets one. */
static void test_plan_cut_short(void)
{
	struct tap *t = read_all("KTAP version 1\n"
				 "1..2\n"
				 "    KTAP version 1\n"
				 "    # Subtest: s1\n"
				 "    1..3\n"
				 "    ok 1 a\n"
				 "BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
				 "Kernel panic - not syncing: Fatal exception\n", true);
	long s1 = find(t, "s1");

	/* a; s1's tests 2 and 3; s1 itself (named by its Subtest line); the top-level test 2 */
	CHECK_EQ(tap_nresults(t), 5);
	CHECK_COUNTS(t, 4, 0, 3, 0);
	CHECK(s1 == 3);
	if (s1 == 3) {
		const struct tap_result *r = tap_result(t, 1), *top = tap_result(t, 4);

		CHECK_EQ(r->status, TAP_ERROR);
		CHECK_EQ(r->number, 2);
		CHECK_EQ(r->parent, 3);
		CHECK(has(r->reason, r->reason_len, "no result: the run ended"));
		CHECK(has(r->excerpt, r->excerpt_len, "Kernel panic - not syncing"));
		CHECK_EQ(tap_result(t, 2)->number, 3);
		CHECK_EQ(tap_result(t, 3)->status, TAP_ERROR);
		CHECK_EQ(tap_result(t, 3)->first, 0);
		CHECK_EQ(top->status, TAP_ERROR);
		CHECK_EQ(top->number, 2);
		CHECK_EQ(top->depth, 0);
		CHECK_EQ(tap_case_of(t, 3), TAP_CASE_NONE);
		CHECK_EQ(tap_case_of(t, 4), TAP_CASE_ERROR);
	}
	/* a second tap_end and later lines change nothing */
	tap_end(t, 100 * MS);
	tap_line(t, "ok 3 late", 9, 101 * MS);
	CHECK_EQ(tap_nresults(t), 5);
	tap_free(t);

	/* a plan fulfilled: no error at the end; a trailing plan (TAP allows it) too */
	t = read_all("1..2\nok 1 a\nok 2 b\n", true);
	CHECK_COUNTS(t, 2, 0, 0, 0);
	tap_free(t);
	t = read_all("ok 1 a\nok 2 b\n1..2\n", true);
	CHECK_COUNTS(t, 2, 0, 0, 0);
	tap_free(t);
	/* a plan without any result line: not found (the run gets one testcase), errors kept */
	t = read_all("1..3\n", true);
	CHECK(!tap_found(t));
	tap_free(t);
}

/* The test guest's exception handler: the test fails, the run bails out; the rest of the plan
 * is errors, and nothing after "Bail out!" counts. */
static void test_bail_out(void)
{
	struct tap *t = read_all("TAP version 13\n1..4\n"
				 "ok 1 - a\n"
				 "not ok 2 - b # exception 14 #PF at rip 0x1234\n"
				 "Bail out! exception 14 #PF at rip 0x1234\n"
				 "ok 3 - c\n", true);
	const struct tap_result *r;

	CHECK_EQ(tap_nresults(t), 4);
	CHECK_COUNTS(t, 4, 1, 2, 0);
	r = tap_result(t, 1);
	CHECK(eq(r->reason, r->reason_len, "exception 14 #PF at rip 0x1234"));
	r = tap_result(t, 2);
	CHECK_EQ(r->status, TAP_ERROR);
	CHECK_EQ(r->number, 3);
	CHECK(eq(r->reason, r->reason_len, "Bail out! exception 14 #PF at rip 0x1234"));
	CHECK_EQ(find(t, "c"), -1);
	tap_free(t);
}

/* Lines that look like results but are not at an open level: comments, indented output. */
static void test_stray_results(void)
{
	struct tap *t = read_all("TAP version 13\n1..1\n"
				 "# ok 1 looks like a nested result\n"
				 "#ok 2 nor this\n"
				 "    ok 3 indented output, no header at that indentation\n"
				 "# # ok 4 two levels down\n"
				 "okay 5 not a result\n"
				 "ok\n"
				 "1..x\n", true);

	/* the bare "ok" is a result (no number: numbered after the last) */
	CHECK_EQ(tap_nresults(t), 1);
	CHECK_COUNTS(t, 1, 0, 0, 0);
	CHECK_EQ(tap_result(t, 0)->number, 1);
	CHECK_EQ(tap_result(t, 0)->name_len, 0);
	tap_free(t);

	/* output before any TAP at all: nothing found */
	t = read_all("Linux version 6.1\n# ok 1 x\n    ok 2 y\n", true);
	CHECK(!tap_found(t));
	CHECK_EQ(tap_nresults(t), 0);
	tap_free(t);
}

static void test_directives(void)
{
	struct tap *t = read_all("1..7\n"
				 "not ok 1 a # TODO not done yet\n"
				 "ok 2 b # TODO bonus\n"
				 "ok 3 c # XFAIL expected to fail\n"
				 "not ok 4 d # skipped: no device\n"
				 "ok 5 - e \\# not a directive # Skip\n"
				 "not ok 6 f#not a comment either\n"
				 "not ok 7 g # TIMEOUT 45 seconds\n", true);
	static const struct { const char *name; enum tap_status st; const char *reason; } want[] = {
		{ "a", TAP_TODO, "not done yet" }, { "b", TAP_PASS, "bonus" },
		{ "c", TAP_XFAIL, "expected to fail" }, { "d", TAP_SKIP, "no device" },
		{ "e \\# not a directive", TAP_SKIP, "" }, { "f#not a comment either", TAP_FAIL, "" },
		{ "g", TAP_FAIL, "TIMEOUT 45 seconds" },
	};

	CHECK_EQ(tap_nresults(t), 7);
	CHECK_COUNTS(t, 7, 2, 0, 3);
	for (size_t i = 0; i < 7 && i < tap_nresults(t); i++) {
		const struct tap_result *r = tap_result(t, i);

		CHECK(r->name_len == strlen(want[i].name) && !memcmp(r->name, want[i].name, r->name_len));
		CHECK_EQ(r->status, want[i].st);
		CHECK(r->reason_len == strlen(want[i].reason) &&
		      !memcmp(r->reason, want[i].reason, r->reason_len));
	}
	tap_free(t);

	t = read_all("1..0 # SKIP no KVM here\n", true);
	{
		size_t len = 0;
		const char *why = tap_skip_all(t, &len);

		CHECK(!tap_found(t));
		CHECK(why && eq(why, len, "no KVM here"));
	}
	tap_free(t);
}

static void test_crlf(void)
{
	struct tap *t = read_all("TAP version 13\r\n1..2\r\nok 1 a\r\nnot ok 2 b # why\r\r\n", true);

	CHECK_COUNTS(t, 2, 1, 0, 0);
	CHECK(tap_result(t, 0)->name_len == 1 && tap_result(t, 0)->name[0] == 'a');
	CHECK(eq(tap_result(t, 1)->reason, tap_result(t, 1)->reason_len, "why"));
	tap_free(t);
}

/* Huge lines, NULs and binary in names and excerpts; a long failing test's excerpt keeps
 * its last lines within bounds. */
static void test_huge_and_binary(void)
{
	static char big[70000];
	struct tap *t;
	const struct tap_result *r;
	uint64_t ns;

	if (tap_create(&t))
		abort();
	ns = feed_from(t, "1..3\n", 0);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7919 >> 3);
	tap_line(t, big, sizeof(big), ns += MS);           /* binary output */
	memcpy(big, "ok 1 ", 5);
	tap_line(t, big, sizeof(big), ns += MS);           /* a result with a 70 KB binary name */
	for (int i = 0; i < 1000; i++) {
		char line[64];
		int n = snprintf(line, sizeof(line), "log line %d", i);

		tap_line(t, line, (size_t)n, ns += MS);
	}
	tap_line(t, "x\0y", 3, ns += MS);
	tap_line(t, "not ok 2 \0nul # reason\0with nul", 31, ns += MS);
	memcpy(big, "not ok 3 ", 9);
	tap_line(t, big, 2000, ns += MS);                  /* a long line inside a result */
	tap_end(t, ns + MS);

	CHECK_EQ(tap_nresults(t), 3);
	CHECK_COUNTS(t, 3, 2, 0, 0);
	r = tap_result(t, 0);
	CHECK_EQ(r->name_len, TAP_NAME_MAX);
	r = tap_result(t, 1);
	CHECK(r->name_len == 4 && !memcmp(r->name, "\0nul", 4)); /* strlen would stop at the NUL */
	CHECK(r->reason_len == 15 && !memcmp(r->reason, "reason\0with nul", 15));
	CHECK(r->excerpt_len <= TAP_EXCERPT_MAX + 64);
	CHECK(has(r->excerpt, r->excerpt_len, "earlier lines not kept]\n"));
	CHECK(has(r->excerpt, r->excerpt_len, "log line 999\nx\0y\n"));
	CHECK(!has(r->excerpt, r->excerpt_len, "log line 900\n"));
	r = tap_result(t, 2);
	CHECK(r->reason_len <= TAP_NAME_MAX && r->name_len <= TAP_NAME_MAX);
	tap_free(t);

	/* a long line in an excerpt is cut and says so */
	if (tap_create(&t))
		abort();
	memset(big, 'z', 5000);
	tap_line(t, big, 5000, MS);
	tap_line(t, "not ok 1 long", 13, 2 * MS);
	r = tap_result(t, 0);
	CHECK(r && has(r->excerpt, r->excerpt_len, " [... 3976 more bytes]\n"));
	CHECK(r && r->excerpt_len == TAP_LINE_KEEP + 23);
	tap_free(t);
}

/* More results than are kept: the rest are counted (one testcase, failed when any failed). */
static void test_cap(void)
{
	struct tap *t;
	struct tap_dropped d;
	char line[64];
	uint64_t ns = 0;

	if (tap_create(&t))
		abort();
	for (unsigned i = 1; i <= TAP_MAX_RESULTS + 10; i++) {
		int n = snprintf(line, sizeof(line), "%s %u t%u", i == TAP_MAX_RESULTS + 5 ? "not ok" : "ok", i, i);

		tap_line(t, line, (size_t)n, ns += 1000);
	}
	tap_line(t, "ok 100011 t # SKIP", 18, ns += 1000);
	tap_end(t, ns);
	CHECK_EQ(tap_nresults(t), TAP_MAX_RESULTS);
	tap_dropped(t, &d);
	CHECK_EQ(d.results, 11);
	CHECK_EQ(d.failures, 1);
	CHECK_EQ(d.skipped, 1);
	CHECK_COUNTS(t, TAP_MAX_RESULTS + 1, 1, 0, 0);
	tap_free(t);

	/* a plan of billions never fulfilled: bounded time and memory */
	if (tap_create(&t))
		abort();
	tap_line(t, "1..4000000000", 13, 1);
	tap_line(t, "ok 1 a", 6, 2);
	tap_end(t, 3);
	CHECK_EQ(tap_nresults(t), TAP_MAX_RESULTS);
	tap_dropped(t, &d);
	CHECK_EQ(d.results, 4000000000ull - TAP_MAX_RESULTS);
	CHECK_EQ(d.errors, d.results);
	tap_free(t);
}

/* Failures printing a lot: once the stored text reaches its budget, excerpts are left out
 * (saying so) and names cut short, but every result is still kept. */
static void test_text_budget(void)
{
	static char line[TAP_LINE_KEEP];
	struct tap *t;
	uint64_t ns = 0;
	unsigned n = TAP_TEXT_BUDGET / TAP_EXCERPT_MAX + 20;
	const struct tap_result *r;

	if (tap_create(&t))
		abort();
	memset(line, 'x', sizeof(line));
	for (unsigned i = 0; i < n; i++) {
		char res[TAP_NAME_MAX + 64];
		int len = snprintf(res, sizeof(res), "not ok %u %0*u", i + 1, TAP_NAME_MAX, i);

		for (int k = 0; k < 8; k++)
			tap_line(t, line, sizeof(line) - 8, ns += 1);
		tap_line(t, res, (size_t)len, ns += 1);
	}
	tap_end(t, ns);
	CHECK_EQ(tap_nresults(t), n);
	CHECK_COUNTS(t, n, n, 0, 0);
	r = tap_result(t, 0);
	CHECK(r->excerpt_len > TAP_EXCERPT_MAX - TAP_LINE_KEEP && r->name_len == TAP_NAME_MAX);
	r = tap_result(t, n - 1);
	CHECK(has(r->excerpt, r->excerpt_len, "not kept"));
	CHECK(r->excerpt_len < 100);
	CHECK_EQ(r->name_len, TAP_NAME_MIN);
	tap_free(t);
}

/* Deep nesting: lines nested deeper than TAP_MAX_DEPTH are text; nesting as deep as read
 * works, and each result is scanned a bounded number of times. */
static void test_deep(void)
{
	struct tap *t;
	char line[256];
	uint64_t ns = 0;

	if (tap_create(&t))
		abort();
	for (unsigned d = 0; d < TAP_MAX_DEPTH + 2; d++) {
		int n = snprintf(line, sizeof(line), "%*sKTAP version 1", (int)(2 * d), "");

		tap_line(t, line, (size_t)n, ns += 1);
	}
	for (unsigned d = TAP_MAX_DEPTH + 2; d-- > 0;) {
		int n = snprintf(line, sizeof(line), "%*sok 1 level%u", (int)(2 * d), "", d);

		tap_line(t, line, (size_t)n, ns += 1);
	}
	tap_end(t, ns);
	CHECK_EQ(tap_nresults(t), TAP_MAX_DEPTH);
	for (size_t i = 0; i + 1 < tap_nresults(t); i++)
		CHECK_EQ(tap_result(t, i)->parent, i + 1);
	CHECK_COUNTS(t, 1, 0, 0, 0);
	tap_free(t);
}

TEST_MAIN("tap",
	T(test_guest_tap13),
	T(test_kunit_nested),
	T(test_kselftest_nested),
	T(test_ktap_spec_two_spaces),
	T(test_plan_cut_short),
	T(test_bail_out),
	T(test_stray_results),
	T(test_directives),
	T(test_crlf),
	T(test_huge_and_binary),
	T(test_cap),
	T(test_text_budget),
	T(test_deep))

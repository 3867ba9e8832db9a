/* ci/xml.c and ci/junit.c: the one escaping function on hostile bytes (entities, control
 * characters, every kind of ill-formed UTF-8, "]]>"), and the JUnit report of the runs
 * test_tap reads: counts on every element equal to the testcases beneath (checked by parsing
 * the output back), suites and classnames from the nesting, failures with their excerpts, the
 * run's own testcase, write errors. With JUNIT_OUT=DIR set, each report is also written to
 * DIR/NAME.xml (tests/integration/junit_check.py reads them). */
#include <errno.h>
#include <stdint.h>

#include "ci/junit.h"
#include "ci/tap.h"
#include "ci/xml.h"
#include "tests/unit/test.h"

#define MS 1000000ull

static char *escape(const void *s, size_t len, size_t *out_len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (!f)
		abort();
	xml_write_text(f, s, len);
	fclose(f);
	*out_len = n;
	return buf;
}

/* The escaped form of len bytes of s is exactly want. */
static bool escapes_to(const char *s, size_t len, const char *want)
{
	size_t n;
	char *out = escape(s, len, &n);
	bool ok = n == strlen(want) && !memcmp(out, want, n);

	if (!ok)
		printf("#   escaped: '%.*s', want '%s'\n", (int)n, out, want);
	free(out);
	return ok;
}

#define ESC(lit, want) escapes_to(lit, sizeof(lit) - 1, want)
#define FFFD "\xef\xbf\xbd"

static void test_escape_markup(void)
{
	CHECK(ESC("plain text, 100%", "plain text, 100%"));
	CHECK(ESC("a&b<c>d\"e'f", "a&amp;b&lt;c&gt;d&quot;e&apos;f"));
	CHECK(ESC("]]>", "]]&gt;"));
	CHECK(ESC("<![CDATA[x]]>", "&lt;![CDATA[x]]&gt;"));
	CHECK(ESC("&amp;", "&amp;amp;"));
	CHECK(ESC("tab\tlf\ncr\r", "tab\tlf\ncr&#13;"));
	CHECK(ESC("\0\x01\x08\x0b\x0c\x1b[31m\x1f\x7f", FFFD FFFD FFFD FFFD FFFD FFFD "[31m" FFFD "\x7f"));
	CHECK(ESC("", ""));
}

static void test_escape_utf8(void)
{
	/* well-formed: 2, 3 and 4 bytes, the edges of each range, U+FFFD itself */
	CHECK(ESC("\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
	CHECK(ESC("\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
		  "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"));
	CHECK(ESC(FFFD, FFFD));
	/* not XML characters */
	CHECK(ESC("\xef\xbf\xbe|\xef\xbf\xbf", FFFD "|" FFFD));
	/* stray continuation bytes, impossible leads */
	CHECK(ESC("\x80|\xbf|\xfe|\xff|\xf5\x80", FFFD "|" FFFD "|" FFFD "|" FFFD "|" FFFD FFFD));
	/* overlongs: "/" as 2, 3 and 4 bytes */
	CHECK(ESC("\xc0\xaf|\xe0\x80\xaf|\xf0\x80\x80\xaf", FFFD FFFD "|" FFFD FFFD FFFD "|" FFFD FFFD FFFD FFFD));
	/* surrogates, beyond U+10FFFF */
	CHECK(ESC("\xed\xa0\x80|\xed\xbf\xbf|\xf4\x90\x80\x80", FFFD FFFD FFFD "|" FFFD FFFD FFFD "|" FFFD FFFD FFFD FFFD));
	/* cut short: one U+FFFD per maximal ill-formed subpart, the next byte read afresh */
	CHECK(ESC("\xe2\x82", FFFD));
	CHECK(ESC("\xe2\x82<", FFFD "&lt;"));
	CHECK(ESC("\xf0\x9f\x98", FFFD));
	CHECK(ESC("\xf0\x9f\x98\xc3\xa9", FFFD "\xc3\xa9"));
	CHECK(ESC("\xc3", FFFD));
}

/* What any output must be: well-formed UTF-8 of XML characters without raw markup. */
static bool xml_clean(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		uint32_t cp;
		size_t l;

		if (c == '<' || c == '>' || c == '"' || c == '\'' || c == '\r')
			return false;
		if (c == '&') {
			static const char *const ents[] = { "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#13;" };
			bool ok = false;

			for (size_t e = 0; e < 6; e++)
				ok |= n - i >= strlen(ents[e]) && !memcmp(s + i, ents[e], strlen(ents[e]));
			if (!ok)
				return false;
			i++;
			continue;
		}
		if (c < 0x80) {
			if (c < 0x20 && c != '\t' && c != '\n')
				return false;
			i++;
			continue;
		}
		l = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
		if (!l || c > 0xf4 || i + l > n)
			return false;
		cp = c & (0x7f >> l);
		for (size_t k = 1; k < l; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
			return false;
		i += l;
	}
	return true;
}

static void test_escape_random(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint8_t buf[64];

	CHECK(!xml_clean((const uint8_t *)"\xc0\xaf", 2)); /* the checker can fail */
	for (int round = 0; round < 20000; round++) {
		size_t n = round % sizeof(buf), len;
		char *out;

		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* bias towards the interesting bytes */
			buf[i] = (x & 3) == 0 ? (uint8_t)(0x80 | (x >> 8 & 0x7f)) :
				 (x & 3) == 1 ? (uint8_t)(0xe0 | (x >> 8 & 0x1f)) : (uint8_t)(x >> 8);
		}
		out = escape(buf, n, &len);
		if (!xml_clean((const uint8_t *)out, len)) {
			CHECK(!"escaped output is clean XML text");
			free(out);
			return;
		}
		free(out);
	}
}

/* ---- reports ---- */

static struct tap *read_all(const char *text, bool end)
{
	struct tap *t;
	const char *p = text;
	uint64_t ns = 0;

	if (tap_create(&t))
		abort();
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		tap_line(t, p, len, ns += MS);
		p += len + (e != NULL);
	}
	if (end)
		tap_end(t, ns + MS);
	return t;
}

static const struct junit_run base_run = {
	.name = "mica run build/guest/mica-testguest", .hostname = "ci-7",
	.timestamp = "2024-05-01T12:00:00", .seconds = 1.5,
};

static char *report(const char *file, const struct tap *t, const struct junit_run *run)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	const char *dir = getenv("JUNIT_OUT");

	if (!f)
		abort();
	CHECK_EQ(junit_write(f, t, run), 0);
	fclose(f);
	if (dir) {
		char path[512];
		FILE *o;

		snprintf(path, sizeof(path), "%s/%s.xml", dir, file);
		o = fopen(path, "w");
		if (o) {
			fwrite(buf, 1, n, o);
			fclose(o);
		}
	}
	return buf;
}

static unsigned attr_u(const char *tag, const char *end, const char *name)
{
	char key[32];
	const char *p;

	snprintf(key, sizeof(key), " %s=\"", name);
	p = memmem(tag, (size_t)(end - tag), key, strlen(key));
	return p ? (unsigned)strtoul(p + strlen(key), NULL, 10) : ~0u;
}

static unsigned count_in(const char *from, const char *to, const char *what)
{
	unsigned n = 0;

	for (const char *p = from; (p = memmem(p, (size_t)(to - p), what, strlen(what))); p++)
		n++;
	return n;
}

/* Parses the report back (all text is escaped, so every '<' is markup): the counts of each
 * testsuite equal its testcases, failures, errors and skips, the root's equal their sums and
 * the expected totals; returns the number of suites, or -1. */
static int check_report(const char *xml, unsigned tests, unsigned failures, unsigned errors,
			unsigned skipped)
{
	const char *root = strstr(xml, "<testsuites "), *rend, *p;
	unsigned sum[4] = { 0 };
	int suites = 0;

	if (strncmp(xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", 39) || !root)
		return -1;
	rend = strchr(root, '>');
	for (p = rend; (p = strstr(p, "<testsuite ")); suites++) {
		const char *tend = strchr(p, '>'), *close = strstr(p, "</testsuite>");
		unsigned c[4] = {
			count_in(tend, close, "<testcase "), count_in(tend, close, "<failure "),
			count_in(tend, close, "<error "), count_in(tend, close, "<skipped "),
		};

		if (!close || attr_u(p, tend, "tests") != c[0] || attr_u(p, tend, "failures") != c[1] ||
		    attr_u(p, tend, "errors") != c[2] || attr_u(p, tend, "skipped") != c[3]) {
			printf("#   suite %d: %.*s holds %u %u %u %u\n", suites, (int)(tend - p), p,
			       c[0], c[1], c[2], c[3]);
			return -1;
		}
		for (int i = 0; i < 4; i++)
			sum[i] += c[i];
		p = close;
	}
	if (attr_u(root, rend, "tests") != sum[0] || attr_u(root, rend, "failures") != sum[1] ||
	    attr_u(root, rend, "errors") != sum[2] || strstr(rend, "</testsuites>\n") == NULL)
		return -1;
	if (sum[0] != tests || sum[1] != failures || sum[2] != errors || sum[3] != skipped) {
		printf("#   totals %u %u %u %u, want %u %u %u %u\n", sum[0], sum[1], sum[2], sum[3],
		       tests, failures, errors, skipped);
		return -1;
	}
	return suites;
}

static bool contains(const char *xml, const char *s)
{
	bool ok = strstr(xml, s) != NULL;

	if (!ok)
		printf("#   not in the report: %s\n", s);
	return ok;
}

static const char guest[] =
	"TAP version 13\n"
	"# mica-testguest: 1 cpu(s), 255 MiB RAM (252 MiB free), tsc 2095998 kHz (cpuid 0x40000010)\n"
	"1..4\n"
	"ok 1 - serial\n"
	"ok 2 - virtio_blk # SKIP no virtio-blk device (mica --disk IMG)\n"
	"# virtio_reset: rng (mmio): InterruptStatus 0x1 before reset\n"
	"not ok 3 - virtio_reset # InterruptStatus 0x1 after reset, want 0\n"
	"ok 4 - virtio_rng\n"
	"# mica-testguest: 2 passed, 1 failed (1 skipped)\n";

static void test_report_guest(void)
{
	struct tap *t = read_all(guest, true);
	struct tap_counts c;
	char *xml = report("guest", t, &base_run);

	tap_counts(t, &c);
	CHECK_EQ(check_report(xml, 4, 1, 0, 1), 1);
	CHECK(c.tests == 4 && c.failures == 1 && c.errors == 0 && c.skipped == 1);
	CHECK(contains(xml, "<testsuites name=\"mica run build/guest/mica-testguest\" tests=\"4\" "
			    "failures=\"1\" errors=\"0\" time=\"1.500\">\n"));
	CHECK(contains(xml, "<testsuite name=\"mica run build/guest/mica-testguest\" tests=\"4\" "
			    "failures=\"1\" errors=\"0\" skipped=\"1\" id=\"0\" "
			    "timestamp=\"2024-05-01T12:00:00\" hostname=\"ci-7\" time=\"1.500\">\n"));
	CHECK(contains(xml, "<testcase classname=\"mica run build/guest/mica-testguest\" "
			    "name=\"serial\" time=\"0.001\"/>\n"));
	CHECK(contains(xml, "name=\"virtio_blk\" time=\"0.001\">\n      <skipped message=\"no "
			    "virtio-blk device (mica --disk IMG)\"/>\n    </testcase>\n"));
	CHECK(contains(xml, "name=\"virtio_reset\" time=\"0.002\">\n      <failure message="
			    "\"InterruptStatus 0x1 after reset, want 0\" type=\"not ok\"># virtio_reset: "
			    "rng (mmio): InterruptStatus 0x1 before reset\n</failure>\n    </testcase>\n"));
	free(xml);

	/* the run failed too (the guest's exit status): one more testcase, "run" */
	{
		struct junit_run run = base_run;

		run.failure = "the guest exited with status 1";
		run.log_tail = "last <line>\n";
		run.log_tail_len = 12;
		xml = report("guest-failed", t, &run);
		CHECK_EQ(check_report(xml, 5, 2, 0, 1), 1);
		CHECK(contains(xml, "name=\"run\" time=\"1.500\">\n      <failure message=\"the guest "
				    "exited with status 1\" type=\"run\">last &lt;line&gt;\n</failure>"));
		free(xml);
	}
	tap_free(t);
}

static const char kunit[] =
	"[    0.512345] KTAP version 1\n"
	"[    0.512350] 1..2\n"
	"[    0.512400]     KTAP version 1\n"
	"[    0.512401]     # Subtest: example\n"
	"[    0.512403]     1..4\n"
	"[    0.512600]     ok 1 example_simple_test\n"
	"[    0.512700]     # example_failing_test: EXPECTATION FAILED at lib/kunit/kunit-example-test.c:30\n"
	"[    0.512701]     Expected 1 + 1 == 3, but\n"
	"[    0.512703]     not ok 2 example_failing_test\n"
	"[    0.512800]     ok 3 example_skip_test # SKIP this test should be skipped\n"
	"[    0.512900]         KTAP version 1\n"
	"[    0.512901]         # Subtest: example_params_test\n"
	"[    0.513000]         ok 1 example value 3 # SKIP unsupported param value 3\n"
	"[    0.513100]         ok 2 example value 2\n"
	"[    0.513200]         not ok 3 example value 1\n"
	"[    0.513301]     not ok 4 example_params_test\n"
	"[    0.513401] not ok 1 example\n"
	"[    0.514000]     KTAP version 1\n"
	"[    0.514001]     # Subtest: other\n"
	"[    0.514002]     1..2\n"
	"[    0.514003]     ok 1 other_test\n"
	"[    0.514003]     ok 2 other_test2\n"
	"[    0.514004] not ok 2 other # failed to clean up\n";

static void test_report_kunit(void)
{
	struct tap *t = read_all(kunit, true);
	struct tap_counts c;
	char *xml = report("kunit", t, &base_run);

	tap_counts(t, &c);
	/* example: 6 leaves; other: 2 leaves and itself (failed, no failing child) */
	CHECK_EQ(check_report(xml, 9, 3, 0, 2), 2);
	CHECK(c.tests == 9 && c.failures == 3 && c.errors == 0 && c.skipped == 2);
	CHECK(contains(xml, "<testsuite name=\"example\" tests=\"6\" failures=\"2\" errors=\"0\" "
			    "skipped=\"2\" id=\"0\""));
	CHECK(contains(xml, "<testcase classname=\"example\" name=\"example_failing_test\" "
			    "time=\"0.003\">\n      <failure message=\"not ok\" type=\"not ok\">    # "
			    "example_failing_test: EXPECTATION FAILED at lib/kunit/kunit-example-test.c:30\n"
			    "    Expected 1 + 1 == 3, but\n</failure>"));
	CHECK(contains(xml, "<testcase classname=\"example.example_params_test\" name=\"example "
			    "value 1\" time=\"0.001\">\n      <failure"));
	CHECK(contains(xml, "<testsuite name=\"other\" tests=\"3\" failures=\"1\" errors=\"0\" "
			    "skipped=\"0\" id=\"1\""));
	CHECK(contains(xml, "<testcase classname=\"other\" name=\"other\" time=\"0.006\">\n      "
			    "<failure message=\"failed to clean up\" type=\"not ok\">"));
	/* no testcase for a parent whose children tell its failure */
	CHECK(!strstr(xml, "name=\"example_params_test\""));
	CHECK(!strstr(xml, "name=\"example\" time"));
	free(xml);
	tap_free(t);
}

/* The run ended inside a nested plan: errors for what never came, a suite for the parent that
 * never printed its line. */
static void test_report_cut_short(void)
{
	struct tap *t = read_all("KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: s1\n"
				 "    1..3\n    ok 1 a\nKernel panic - not syncing: Fatal exception\n", true);
	char *xml = report("cut-short", t, &base_run);

	CHECK_EQ(check_report(xml, 4, 0, 3, 0), 2);
	CHECK(contains(xml, "<testcase classname=\"s1\" name=\"test 2\" time=\"0.002\">\n      <error "
			    "message=\"no result: the run ended\" type=\"no result\">Kernel panic - not "
			    "syncing: Fatal exception\n</error>"));
	CHECK(contains(xml, "<testcase classname=\"mica run build/guest/mica-testguest\" "
			    "name=\"test 2\""));
	free(xml);
	tap_free(t);
}

/* No TAP at all: one testcase for the whole run, passed, failed or skipped. */
static void test_report_without_tap(void)
{
	struct junit_run run = base_run;
	struct tap *t;
	char *xml;

	xml = report("no-tap-pass", NULL, &run);
	CHECK_EQ(check_report(xml, 1, 0, 0, 0), 1);
	CHECK(contains(xml, "<testcase classname=\"mica run build/guest/mica-testguest\" "
			    "name=\"run\" time=\"1.500\"/>\n"));
	free(xml);

	run.failure = "a --fail-on pattern matched: \"Oops\"";
	run.log_tail = "BUG: Oops <]]> \x01\xff\n";
	run.log_tail_len = strlen(run.log_tail);
	t = read_all("Linux version 6.1\n# ok 1 not a result\n", true);
	xml = report("no-tap-fail", t, &run);
	CHECK_EQ(check_report(xml, 1, 1, 0, 0), 1);
	CHECK(contains(xml, "<failure message=\"a --fail-on pattern matched: &quot;Oops&quot;\" "
			    "type=\"run\">BUG: Oops &lt;]]&gt; " FFFD FFFD "\n</failure>"));
	free(xml);
	tap_free(t);

	run.failure = NULL;
	t = read_all("1..0 # SKIP no KVM here\n", true);
	xml = report("no-tap-skip", t, &run);
	CHECK_EQ(check_report(xml, 1, 0, 0, 1), 1);
	CHECK(contains(xml, "<skipped message=\"no KVM here\"/>"));
	free(xml);
	tap_free(t);
}

/* Hostile names, reasons and excerpts: every string escaped, the document stays well formed. */
static void test_report_hostile(void)
{
	static const char lines[] =
		"1..3\n"
		"noise \x01\x02 \xc0\xaf \xed\xa0\x80 ]]> <!-- --> &entity; \"quoted\" 'single'\n"
		"not ok 1 \"><testcase name=\"injected\"/><x y=' # ]]></failure>&amp;\n"
		"ok 2 \xf4\x90\x80\x80\xef\xbf\xbe # SKIP <script>\n"
		"ok 3 \r\r\n";
	struct tap *t = read_all(lines, true);
	struct junit_run run = base_run;
	char *xml;

	run.name = "name \"with\" <markup> & \x1b[1m";
	run.hostname = "h'\x7f";
	xml = report("hostile", t, &run);
	CHECK_EQ(check_report(xml, 3, 1, 0, 1), 1);
	CHECK(!strstr(xml, "injected\"/>"));
	CHECK(contains(xml, "name=\"&quot;&gt;&lt;testcase name=&quot;injected&quot;/&gt;&lt;x "
			    "y=&apos;\""));
	CHECK(contains(xml, "message=\"]]&gt;&lt;/failure&gt;&amp;amp;\""));
	CHECK(contains(xml, ">noise " FFFD FFFD " " FFFD FFFD " " FFFD FFFD FFFD " ]]&gt; &lt;!-- "
			    "--&gt; &amp;entity; &quot;quoted&quot; &apos;single&apos;\n</failure>"));
	CHECK(contains(xml, "name=\"" FFFD FFFD FFFD FFFD FFFD "\""));
	CHECK(contains(xml, "<testsuite name=\"name &quot;with&quot; &lt;markup&gt; &amp; " FFFD
			    "[1m\""));
	free(xml);
	tap_free(t);
}

/* Results beyond the cap: one testcase says how many, failed when any of them failed. */
static void test_report_dropped(void)
{
	struct tap *t;
	char line[64], *xml;

	if (tap_create(&t))
		abort();
	for (unsigned i = 1; i <= TAP_MAX_RESULTS + 3; i++) {
		int n = snprintf(line, sizeof(line), "%s %u t", i == TAP_MAX_RESULTS + 2 ? "not ok" : "ok", i);

		tap_line(t, line, (size_t)n, i);
	}
	tap_end(t, TAP_MAX_RESULTS + 4);
	xml = report("dropped", t, &base_run);
	CHECK_EQ(check_report(xml, TAP_MAX_RESULTS + 1, 1, 0, 0), 1);
	CHECK(contains(xml, "name=\"results not kept\" time=\"0.000\">\n      <failure message=\"3 "
			    "results beyond the first 100000 were read but not kept: 1 failed, 0 "
			    "without a result, 0 skipped\" type=\"not ok\"/>"));
	free(xml);
	tap_free(t);
}

static void test_write_error(void)
{
	FILE *f = fopen("/dev/full", "w");
	struct tap *t = read_all(guest, true);

	if (!f)
		TEST_SKIP("no /dev/full");
	setvbuf(f, NULL, _IOFBF, 1 << 20); /* everything fails at the final flush */
	CHECK_EQ(junit_write(f, t, &base_run), -EIO);
	fclose(f);
	tap_free(t);
}

TEST_MAIN("junit",
	T(test_escape_markup),
	T(test_escape_utf8),
	T(test_escape_random),
	T(test_report_guest),
	T(test_report_kunit),
	T(test_report_cut_short),
	T(test_report_without_tap),
	T(test_report_hostile),
	T(test_report_dropped),
	T(test_write_error))

/* The JUnit XML report (see junit.h). Two passes per suite: its counts, then its testcases;
 * every string goes through xml_write_text. */
#include "ci/junit.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "ci/xml.h"

static void text(FILE *f, const char *s)
{
	if (s)
		xml_write_text(f, s, strlen(s));
}

static void attr(FILE *f, const char *key, const char *s, size_t len)
{
	fprintf(f, " %s=\"", key);
	xml_write_text(f, s, len);
	fputc('"', f);
}

static void attr_str(FILE *f, const char *key, const char *s)
{
	attr(f, key, s ? s : "", s ? strlen(s) : 0);
}

static void attr_ns(FILE *f, const char *key, uint64_t ns)
{
	fprintf(f, " %s=\"%" PRIu64 ".%03" PRIu64 "\"", key, ns / 1000000000u,
		ns / 1000000u % 1000u);
}

static void attr_seconds(FILE *f, const char *key, double s)
{
	if (!(s >= 0))          /* negative or NaN */
		s = 0;
	if (s > 1e12)
		s = 1e12;
	fprintf(f, " %s=\"%.3f\"", key, s);
}

static void attr_counts(FILE *f, const struct tap_counts *c, bool skipped)
{
	fprintf(f, " tests=\"%u\" failures=\"%u\" errors=\"%u\"", c->tests, c->failures, c->errors);
	if (skipped)
		fprintf(f, " skipped=\"%u\"", c->skipped);
}

static void count(struct tap_counts *c, enum tap_case k)
{
	if (k == TAP_CASE_NONE)
		return;
	c->tests++;
	c->failures += k == TAP_CASE_FAIL;
	c->errors += k == TAP_CASE_ERROR;
	c->skipped += k == TAP_CASE_SKIP;
}

static void name_of(FILE *f, const struct tap_result *r)
{
	if (r->name_len)
		xml_write_text(f, r->name, r->name_len);
	else
		fprintf(f, "test %" PRIu64, r->number);
}

static void suite_open(FILE *f, const char *name, size_t len, const struct tap_counts *c,
		       unsigned id, const struct junit_run *run)
{
	fputs("  <testsuite", f);
	attr(f, "name", name, len);
	attr_counts(f, c, true);
	fprintf(f, " id=\"%u\"", id);
	if (run->timestamp)
		attr_str(f, "timestamp", run->timestamp);
	if (run->hostname)
		attr_str(f, "hostname", run->hostname);
}

/* The testcase of result i; `root` is the top-level result whose suite holds it, or
 * TAP_NONE in the run's suite. */
static void testcase(FILE *f, const struct tap *t, size_t i, size_t root,
		     const struct junit_run *run)
{
	const struct tap_result *r = tap_result(t, i);
	enum tap_case k = tap_case_of(t, i);
	uint32_t chain[TAP_MAX_DEPTH];
	unsigned n = 0;

	fputs("    <testcase classname=\"", f);
	if (root == TAP_NONE) {
		text(f, run->name);
	} else {
		name_of(f, tap_result(t, root));
		/* The ancestors between the root and r, outermost first. */
		for (uint32_t p = r->parent; i != root && p != TAP_NONE && p != root && n < TAP_MAX_DEPTH;
		     p = tap_result(t, p)->parent)
			chain[n++] = p;
		while (n--) {
			fputc('.', f);
			name_of(f, tap_result(t, chain[n]));
		}
	}
	fputs("\" name=\"", f);
	name_of(f, r);
	fputc('"', f);
	attr_ns(f, "time", r->time_ns);
	if (k == TAP_CASE_PASS) {
		fputs("/>\n", f);
		return;
	}
	fputs(">\n      ", f);
	if (k == TAP_CASE_SKIP) {
		fputs("<skipped message=\"", f);
		if (r->status == TAP_TODO)
			fputs(r->reason_len ? "TODO: " : "TODO", f);
		xml_write_text(f, r->reason, r->reason_len);
		fputs("\"/>", f);
	} else {
		const char *el = k == TAP_CASE_FAIL ? "failure" : "error";

		fprintf(f, "<%s message=\"", el);
		if (r->reason_len)
			xml_write_text(f, r->reason, r->reason_len);
		else
			fputs(k == TAP_CASE_FAIL ? "not ok" : "no result", f);
		fprintf(f, "\" type=\"%s\">", k == TAP_CASE_FAIL ? "not ok" : "no result");
		xml_write_text(f, r->excerpt, r->excerpt_len);
		fprintf(f, "</%s>", el);
	}
	fputs("\n    </testcase>\n", f);
}

static void run_testcase(FILE *f, const struct junit_run *run, bool skip_all, const char *skip,
			 size_t skip_len)
{
	fputs("    <testcase classname=\"", f);
	text(f, run->name);
	fputs("\" name=\"run\"", f);
	attr_seconds(f, "time", run->seconds);
	if (run->failure) {
		fputs(">\n      <failure", f);
		attr_str(f, "message", run->failure);
		fputs(" type=\"run\">", f);
		if (run->log_tail)
			xml_write_text(f, run->log_tail, run->log_tail_len);
		fputs("</failure>\n    </testcase>\n", f);
	} else if (skip_all) {
		fputs(">\n      <skipped", f);
		attr(f, "message", skip, skip_len);
		fputs("/>\n    </testcase>\n", f);
	} else {
		fputs("/>\n", f);
	}
}

static void dropped_testcase(FILE *f, const struct tap_dropped *d, const struct junit_run *run)
{
	fputs("    <testcase classname=\"", f);
	text(f, run->name);
	fputs("\" name=\"results not kept\" time=\"0.000\"", f);
	if (!d->failures && !d->errors) {
		fputs("/>\n", f);
		return;
	}
	fprintf(f, ">\n      <failure message=\"%" PRIu64 " results beyond the first %u were read "
		"but not kept: %" PRIu64 " failed, %" PRIu64 " without a result, %" PRIu64
		" skipped\" type=\"not ok\"/>\n    </testcase>\n", d->results, TAP_MAX_RESULTS,
		d->failures, d->errors, d->skipped);
}

static bool is_root(const struct tap_result *r)
{
	return r->parent == TAP_NONE;
}

int junit_write(FILE *f, const struct tap *t, const struct junit_run *run)
{
	const char *name = run->name ? run->name : "";
	bool tap = tap_found(t), skip_all = false;
	struct tap_counts total = { 0 }, c0 = { 0 };
	struct tap_dropped dr = { 0 };
	const char *skip = NULL;
	size_t n = tap ? tap_nresults(t) : 0, skip_len = 0;
	unsigned id = 0;

	if (tap) {
		tap_counts(t, &total);
		tap_dropped(t, &dr);
	} else if (t) {
		skip = tap_skip_all(t, &skip_len);
		skip_all = skip != NULL;
	}
	/* The run suite: top-level leaves, the results not kept, the run's own testcase. */
	for (size_t i = 0; i < n; i++) {
		const struct tap_result *r = tap_result(t, i);

		if (is_root(r) && r->first == i)
			count(&c0, tap_case_of(t, i));
	}
	if (dr.results)
		count(&c0, dr.failures || dr.errors ? TAP_CASE_FAIL : TAP_CASE_PASS);
	if (!tap || run->failure) {
		enum tap_case k = run->failure ? TAP_CASE_FAIL : skip_all ? TAP_CASE_SKIP : TAP_CASE_PASS;

		count(&c0, k);
		count(&total, k);
	}

	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites", f);
	attr_str(f, "name", name);
	attr_counts(f, &total, false);
	attr_seconds(f, "time", run->seconds);
	fputs(">\n", f);

	if (c0.tests) {
		suite_open(f, name, strlen(name), &c0, id++, run);
		attr_seconds(f, "time", run->seconds);
		fputs(">\n", f);
		for (size_t i = 0; i < n; i++) {
			const struct tap_result *r = tap_result(t, i);

			if (is_root(r) && r->first == i && tap_case_of(t, i) != TAP_CASE_NONE)
				testcase(f, t, i, TAP_NONE, run);
		}
		if (dr.results)
			dropped_testcase(f, &dr, run);
		if (!tap || run->failure)
			run_testcase(f, run, skip_all, skip, skip_len);
		fputs("  </testsuite>\n", f);
	}

	/* A suite per top-level result with children: its descendants are [first, i). */
	for (size_t i = 0; i < n; i++) {
		const struct tap_result *r = tap_result(t, i);
		struct tap_counts c = { 0 };

		if (!is_root(r) || r->first == i)
			continue;
		for (size_t j = r->first; j <= i; j++)
			count(&c, tap_case_of(t, j));
		if (!c.tests)
			continue;
		suite_open(f, r->name, r->name_len, &c, id++, run);
		attr_ns(f, "time", r->time_ns);
		fputs(">\n", f);
		for (size_t j = r->first; j <= i; j++)
			if (tap_case_of(t, j) != TAP_CASE_NONE)
				testcase(f, t, j, i, run);
		fputs("  </testsuite>\n", f);
	}
	fputs("</testsuites>\n", f);
	return fflush(f) || ferror(f) ? -EIO : 0;
}

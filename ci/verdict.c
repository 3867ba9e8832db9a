#include "ci/verdict.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ci/junit.h"
#include "ci/tap.h"
#include "vmm/json.h"
#include "vmm/log.h"
#include "vmm/util.h"

/* A line of the guest's for a terminal: control characters as '?', cut at max bytes. */
static void printable(char *out, size_t size, const char *line, size_t len)
{
	size_t n = MIN(len, size - 1);

	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)line[i] < 0x20 || line[i] == 0x7f ? '?' : line[i];
	out[n] = '\0';
}

static bool crash_reason(const char *reason)
{
	return !strcmp(reason, "crash") || !strcmp(reason, "triple-fault") ||
	       !strcmp(reason, "vmm-error");
}

void verdict_decide(struct verdict *v, const struct verdict_run *r, struct monitor *m,
		    int status, const char *reason)
{
	struct patterns *ps = m ? monitor_patterns(m) : NULL;
	struct pattern *fail = NULL, *missing = NULL;

	reason = reason ? reason : "unknown";
	for (int i = 0; ps && i < ps->n; i++) {
		struct pattern *p = &ps->p[i];

		if (p->kind == CI_FAIL_ON && p->matched && (!fail || p->ns < fail->ns))
			fail = p;
		if (p->kind == CI_EXPECT && !p->matched && !missing)
			missing = p;
	}
	v->status = status;
	v->why[0] = '\0';
	v->rule = VERDICT_PASSED;
	if (fail) {
		v->rule = VERDICT_FAIL_PATTERN;
		char line[200];

		printable(line, sizeof(line), fail->line, fail->line_len);
		v->status = EXIT_FAIL_PATTERN;
		snprintf(v->why, sizeof(v->why), "--fail-on %s%s%s matched at %.3f s: %s",
			 fail->source == fail->regex ? "'" : "", fail->source,
			 fail->source == fail->regex ? "'" : "", fail->ns / 1e9, line);
	} else if (!strcmp(reason, "timeout")) {
		v->rule = VERDICT_TIMEOUT;
		snprintf(v->why, sizeof(v->why), "--timeout %g s expired", r->timeout_s);
	} else if (crash_reason(reason)) {
		v->rule = VERDICT_CRASH;
		snprintf(v->why, sizeof(v->why), "the guest crashed (%s)", reason);
	} else if (!strcmp(reason, "signal")) {
		v->rule = VERDICT_SIGNAL;
		snprintf(v->why, sizeof(v->why), "mica was stopped by a signal (status %d)", status);
	} else if (status) {
		v->rule = VERDICT_STATUS;
		/* The reason only where it says more than "it reported this status". */
		if (!strcmp(reason, "guest-status"))
			snprintf(v->why, sizeof(v->why), "%s ended with status %d", r->subject, status);
		else
			snprintf(v->why, sizeof(v->why), "%s ended with status %d (%s)", r->subject,
				 status, reason);
	} else if (missing) {
		v->rule = VERDICT_EXPECT_MISSING;
		v->status = EXIT_EXPECT_MISSING;
		snprintf(v->why, sizeof(v->why), "--expect '%s' never appeared in the output",
			 missing->source);
	}
	v->passed = v->rule == VERDICT_PASSED;
}

void verdict_report(const struct verdict *v, struct monitor *m)
{
	struct patterns *ps = m ? monitor_patterns(m) : NULL;

	if (v->passed)
		return;
	if (v->status == EXIT_FAIL_PATTERN || v->status == EXIT_EXPECT_MISSING) {
		pr_err("%s", v->why);
		return;
	}
	/* The run failed for another reason, said elsewhere: the patterns still missing too. */
	for (int i = 0; ps && i < ps->n; i++)
		if (ps->p[i].kind == CI_EXPECT && !ps->p[i].matched)
			pr_err("--expect '%s' never appeared in the output", ps->p[i].source);
}

static const char *kind_name(enum ci_pattern_kind k)
{
	return k == CI_EXPECT ? "expect" : k == CI_FAIL_ON ? "fail_on" : "end_on";
}

void verdict_write_json(void *opaque, FILE *f)
{
	const struct verdict_json *j = opaque;
	struct patterns *ps = j->m ? monitor_patterns(j->m) : NULL;
	struct tap *tap = j->m ? monitor_tap_results(j->m) : NULL;

	fprintf(f, "  \"outcome\": \"%s\",\n  \"why\": ", j->v->passed ? "pass" : "fail");
	if (j->v->passed)
		fputs("null", f);
	else
		json_cstring(f, j->v->why);
	fputs(",\n  \"patterns\": [", f);
	for (int i = 0; ps && i < ps->n; i++) {
		const struct pattern *p = &ps->p[i];

		fprintf(f, "%s\n    { \"kind\": \"%s\", \"pattern\": ", i ? "," : "", kind_name(p->kind));
		json_cstring(f, p->source);
		fputs(", \"regex\": ", f);
		json_cstring(f, p->regex);
		fprintf(f, ", \"matched\": %s", p->matched ? "true" : "false");
		if (p->matched) {
			fprintf(f, ", \"seconds\": %.6f, \"line\": ", p->ns / 1e9);
			json_string(f, p->line, p->line_len);
		}
		fputs(" }", f);
	}
	fprintf(f, "%s],\n  \"tests\": ", ps && ps->n ? "\n  " : "");
	if (tap && tap_found(tap)) {
		struct tap_counts c;

		tap_counts(tap, &c);
		fprintf(f, "{ \"total\": %u, \"failures\": %u, \"errors\": %u, \"skipped\": %u }",
			c.tests, c.failures, c.errors, c.skipped);
	} else {
		fputs("null", f);
	}
	fputs(",\n  \"serial_log\": ", f);
	json_cstring(f, j->r->ci->serial_log);
	fputs(",\n  \"junit\": ", f);
	json_cstring(f, j->r->ci->junit);
	fprintf(f, ",\n  \"serial_log_errors\": %llu,\n",
		(unsigned long long)(j->m ? monitor_log_errors(j->m) : 0));
}

int verdict_write_junit(const struct verdict *v, const struct verdict_run *r, struct monitor *m,
			FILE *f)
{
	struct tap *tap = m ? monitor_tap_results(m) : NULL;
	char stamp[32] = "", *tail = malloc(MONITOR_TAIL_BYTES);
	time_t t = (time_t)r->start_time;
	struct tm tm;
	int err;
	struct junit_run run = {
		.name = r->name,
		.hostname = r->hostname,
		.timestamp = stamp,
		.seconds = (r->end_ns - r->start_ns) / 1e9,
		.failure = v->passed ? NULL : v->why,
		.log_tail = tail,
	};

	if (!tail)
		return -ENOMEM;
	if (gmtime_r(&t, &tm))
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	run.log_tail_len = m ? monitor_tail(m, tail, MONITOR_TAIL_BYTES) : 0;
	/* A non-zero status that failed tests explain (a test runner's) needs no testcase of its
	 * own; every other failure of the run does. */
	if (v->rule == VERDICT_STATUS && tap && tap_found(tap)) {
		struct tap_counts c;

		tap_counts(tap, &c);
		if (c.failures || c.errors)
			run.failure = NULL;
	}
	err = junit_write(f, tap, &run);
	free(tail);
	return err;
}

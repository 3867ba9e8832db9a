/* How a run is judged, once the VM has stopped: from the status mica would exit with anyway
 * (the guest's, or mica sandbox's CMD's; 124 on --timeout, 125 on a crash) and the VM's exit
 * reason, with what the monitor saw. The first rule that applies decides:
 *   1. a --fail-on pattern matched                      EXIT_FAIL_PATTERN (123)
 *   2. the run ended otherwise than well (timeout, crash, the guest's or CMD's non-zero
 *      status, mica killed by a signal)                 that status
 *   3. an --expect pattern never appeared               EXIT_EXPECT_MISSING (122)
 *   4. passed                                           0 (--end-on ends a run with 0)
 * The verdict is said once on stderr (one line per failed rule's pattern), and written to
 * --json's members and --junit's report. */
#ifndef MICA_CI_VERDICT_H
#define MICA_CI_VERDICT_H

#include <stdbool.h>
#include <stdio.h>

#include "ci/ci.h"
#include "ci/monitor.h"

enum verdict_rule {
	VERDICT_PASSED, VERDICT_FAIL_PATTERN, VERDICT_TIMEOUT, VERDICT_CRASH, VERDICT_SIGNAL,
	VERDICT_STATUS, VERDICT_EXPECT_MISSING,
};

struct verdict {
	int status;                   /* what mica exits with */
	bool passed;
	enum verdict_rule rule;       /* which rule decided */
	char why[768];                /* one line, "" when passed */
};

/* What identifies the run in reports. */
struct verdict_run {
	const struct ci_opts *ci;
	const char *name;             /* "mica run KERNEL", "mica sandbox CMD ARGS..." */
	const char *subject;          /* who ends well or not: "the guest", "CMD" */
	uint64_t start_ns, end_ns;    /* CLOCK_MONOTONIC */
	double timeout_s;             /* --timeout, for the message */
	long long start_time;         /* the wall-clock start, in seconds since the epoch */
	const char *hostname;         /* taken at set-up: uname is not among the loop's calls */
};

/* Decides (monitor_finish() done; m may be NULL when nothing was watched). */
void verdict_decide(struct verdict *v, const struct verdict_run *r, struct monitor *m,
		    int status, const char *reason);
/* The patterns that failed the run, one line each on stderr. */
void verdict_report(const struct verdict *v, struct monitor *m);
/* --json's members (a stats_members writer; opaque: a struct verdict_json). */
struct verdict_json {
	const struct verdict *v;
	const struct verdict_run *r;
	struct monitor *m;
};
void verdict_write_json(void *opaque, FILE *f);
/* The JUnit report to f; 0 or -EIO. */
int verdict_write_junit(const struct verdict *v, const struct verdict_run *r, struct monitor *m,
			FILE *f);

#endif

/* A JUnit XML report of a run, as CI systems read it (Jenkins' junit-10.xsd, the Ant format
 * GitLab and the GitHub test reporters read too):
 *
 *   <testsuites name tests failures errors time>
 *     <testsuite name tests failures errors skipped time timestamp hostname id>
 *       <testcase classname name time> [<failure message type>excerpt</failure>
 *                                      | <error message type>excerpt</error>
 *                                      | <skipped message/>] </testcase>
 *
 * With TAP (tap_found): one testcase per result as tap_case_of() says. The top-level results
 * without children share the first suite, named run->name; each top-level result with
 * children is a suite of its own, named by it, holding its descendants flattened (classname
 * "suite.sub...", name the leaf's) and itself when it failed and no descendant did. Results
 * beyond TAP_MAX_RESULTS are one testcase ("results not kept"), failed when any of them
 * failed; run->failure adds a testcase "run" with it and the log tail.
 * Without TAP (t NULL or nothing found): one suite with one testcase "run": passed, failed
 * (run->failure, the log tail as text) or skipped (a top-level "1..0 # SKIP").
 * The counts of every element are those of the testcases beneath it. The testsuites element
 * has no skipped attribute: junit-10.xsd has none there. */
#ifndef MICA_CI_JUNIT_H
#define MICA_CI_JUNIT_H

#include <stddef.h>
#include <stdio.h>

#include "ci/tap.h"

struct junit_run {
	const char *name;      /* the run's suite name, e.g. "mica run build/guest/mica-testguest" */
	const char *hostname;
	const char *timestamp; /* the start, ISO 8601 without a zone ("2024-05-01T12:00:00", UTC):
				* the Ant schema's pattern */
	double seconds;        /* the whole run */
	const char *failure;   /* NULL: the run itself passed; else why it failed */
	const char *log_tail;  /* the last lines of the guest's output, for the run's testcase */
	size_t log_tail_len;
};

/* Writes the report to f; 0 or -EIO (a write failed). t may be NULL. */
int junit_write(FILE *f, const struct tap *t, const struct junit_run *run);

#endif

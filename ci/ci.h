/* ci/: what a CI step gets from a run of mica (`mica run`, `mica sandbox`).
 *
 * The guest's output is watched on its way out (ci/monitor.h): each stream (the serial port,
 * the console, the sandbox's stdout and stderr) is cut into lines, and each line is
 *   - also written to --serial-log FILE, whole lines in one write each batch, so the file holds
 *     every completed line even when mica is killed (--timestamps: seconds since mica started);
 *   - matched against the --expect, --fail-on and --end-on patterns (ci/patterns.h): a fail
 *     pattern or an end pattern ends the run, an expected one must appear before it ends;
 *   - read as TAP or KTAP for --junit (ci/tap.h).
 * When the VM has stopped, the verdict (ci/verdict.h) turns how it ended and what matched into
 * mica's exit status, the run's members of --json, and the JUnit report (ci/junit.h).
 *
 * ci/ knows nothing of the VM: the composition root (cmd/main.c) taps the output queues into the
 * monitor, gives it a way to stop the VM, and tells the verdict how the VM ended. Every string
 * from the guest or the user reaches JSON through vmm/json.h and XML through ci/xml.h. */
#ifndef MICA_CI_H
#define MICA_CI_H

#include <stdbool.h>

/* mica's exit status when the run was judged failed by a pattern (beside the guest's own
 * status, EXIT_TIMEOUT 124, EXIT_CRASH 125 and EXIT_USAGE 2 of vmm/vm.h). */
#define EXIT_FAIL_PATTERN   123  /* a --fail-on pattern matched */
#define EXIT_EXPECT_MISSING 122  /* the guest ended well, but an --expect pattern never appeared */

enum ci_pattern_kind { CI_EXPECT, CI_FAIL_ON, CI_END_ON };

#define CI_MAX_PATTERNS 32

/* The CI options of `mica run` and `mica sandbox`, as given (cmd/cli.c parses them for both). */
struct ci_opts {
	const char *serial_log;          /* --serial-log FILE */
	bool timestamps;                 /* --timestamps */
	const char *junit;               /* --junit FILE */
	struct {
		enum ci_pattern_kind kind;
		const char *source;      /* a POSIX extended regular expression, or a preset */
	} patterns[CI_MAX_PATTERNS];
	int npatterns;
};

/* Whether anything is asked of the monitor. */
static inline bool ci_watching(const struct ci_opts *o)
{
	return o->serial_log || o->junit || o->npatterns;
}

#endif

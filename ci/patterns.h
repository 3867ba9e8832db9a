/* --expect, --fail-on and --end-on: POSIX extended regular expressions (regex(7)) matched
 * against each line of the guest's output, without its line end. `--fail-on kernel` is the
 * preset for a Linux kernel in trouble (PATTERN_KERNEL_PRESET). */
#ifndef MICA_CI_PATTERNS_H
#define MICA_CI_PATTERNS_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ci/ci.h"
#include "vmm/err.h"

/* What a kernel prints when it panics, oopses, hits a BUG() or WARN(), when KASAN or UBSAN
 * report, on a general protection fault, and when the hung-task watchdog fires. */
#define PATTERN_KERNEL_PRESET \
	"Kernel panic|Oops[: ]|BUG:|WARNING: CPU|KASAN|UBSAN|general protection fault|" \
	"hung_task|blocked for more than [0-9]+ seconds"

#define PATTERN_LINE_MAX 512  /* what is kept of the line that matched */

struct pattern {
	enum ci_pattern_kind kind;
	const char *source;           /* as the user gave it ("kernel" for the preset) */
	const char *regex;            /* what was compiled */
	regex_t re;
	/* Its first match; written under the monitor's lock, read after the run. */
	bool matched;
	uint64_t ns;                  /* since mica started */
	size_t line_len;
	char line[PATTERN_LINE_MAX];
};

struct patterns {
	struct pattern p[CI_MAX_PATTERNS];
	int n;
};

/* Compiles o's patterns. Returns 0, or -EINVAL with e naming the pattern and the mistake. */
int patterns_compile(struct patterns *ps, const struct ci_opts *o, struct err *e);
void patterns_free(struct patterns *ps);

/* Matches a line (any bytes; a NUL ends what regexec sees, as in a C string) against every
 * pattern, recording first matches at ns. Returns the first pattern of each kind that matched
 * this line for the first time ever, by kind (NULL: none). */
void patterns_match(struct patterns *ps, const char *line, size_t len, uint64_t ns,
		    struct pattern *first[3]);

/* A pattern as the user wrote it, for messages: "--fail-on 'Oops'", "--fail-on kernel". */
const char *pattern_option(enum ci_pattern_kind kind);

#endif

/* A streaming reader of the test results a guest prints: TAP 13/14 and KTAP 1, nested the
 * ways the kernel nests them (indentation: 4 spaces a level from KUnit, 2 in the KTAP spec;
 * "# " a level from the kselftest runner), on a console that may add printk time prefixes
 * ("[    1.234567] ", with a caller id too) and CRs.
 *
 * Lines are fed one at a time as they complete; the reader keeps each result (name, number,
 * status, directive reason, time, and for a failure the lines the test printed) and the tree
 * the nesting forms. A line's nesting prefix is its leading blanks and "# " pairs; a level is
 * opened by a header (a version line, a plan or a "# Subtest:" line) whose prefix extends the
 * prefix of the open level above it, and closed by a result at that level above. A result
 * counts only at the prefix of an open level, so "# ok 1" in a comment, or indented output
 * without a header, is text. A nested result comes before its parent's line: when a result at
 * depth d arrives, the results at depth d+1 and deeper since the last result at depth <= d
 * become its descendants. When a level closes, results its plan promised and never came, and
 * a parent for results left without one, become errors saying why.
 *
 * Everything is bounded whatever the guest prints: the last TAP_RING_LINES lines (each cut at
 * TAP_LINE_KEEP bytes) feed the excerpts, an excerpt keeps at most TAP_EXCERPT_MAX bytes (its
 * last lines), the first TAP_MAX_RESULTS results are kept and the rest only counted
 * (tap_dropped), names and reasons are cut at TAP_NAME_MAX bytes, and the stored text of all
 * results together at about TAP_TEXT_BUDGET (beyond it names and reasons are cut at
 * TAP_NAME_MIN and excerpts are left out, saying so). A line costs time linear in its length
 * (times TAP_MAX_DEPTH at most); each result is scanned once per ancestor.
 * Single-threaded: the caller serializes every call. */
#ifndef MICA_CI_TAP_H
#define MICA_CI_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAP_MAX_DEPTH   16        /* nesting levels read; deeper lines are text */
#define TAP_PREFIX_MAX  64        /* bytes of nesting prefix read; longer: text */
#ifndef TAP_MAX_RESULTS
#define TAP_MAX_RESULTS 100000   /* (lowered for the fuzz target) */
#endif
#define TAP_RING_LINES  64
#define TAP_LINE_KEEP   1024
#define TAP_EXCERPT_MAX 8192
#define TAP_NAME_MAX    512
#define TAP_NAME_MIN    64
#define TAP_TEXT_BUDGET (16u << 20)
#define TAP_NONE        UINT32_MAX

struct tap;

int tap_create(struct tap **out);                 /* 0 or -ENOMEM */
void tap_free(struct tap *t);

/* One line of guest output (no '\n'; may hold any bytes, NULs included), completed at ns
 * (nanoseconds since the run started). */
void tap_line(struct tap *t, const char *line, size_t len, uint64_t ns);

/* The output ended at ns (the VM stopped): results a plan promised but never came, and the
 * parents of results left without one, become errors ("no result: the run ended"). Lines
 * after it are ignored. */
void tap_end(struct tap *t, uint64_t ns);

bool tap_found(const struct tap *t);              /* at least one result line was read */

/* The testcases junit_write writes from the results (not the run's own testcase). */
struct tap_counts { unsigned tests, failures, errors, skipped; };
void tap_counts(const struct tap *t, struct tap_counts *c);

enum tap_status {
	TAP_PASS,
	TAP_FAIL,
	TAP_SKIP,       /* "# SKIP", ok or not ok */
	TAP_TODO,       /* "not ok ... # TODO": a known failure, not counted as one */
	TAP_XFAIL,      /* "# XFAIL": failed as expected, a pass */
	TAP_ERROR,      /* no result came (the run ended, bailed out, or the parent came first) */
};

/* One result as kept. Strings are not NUL-terminated and may hold any bytes. */
struct tap_result {
	const char *name;       /* the description, without "- " and the directive */
	const char *reason;     /* after '#': the directive's reason, a failure's comment, or
				 * why an error has no result */
	const char *excerpt;    /* failures and errors only: what the test printed, last lines */
	uint32_t name_len, reason_len, excerpt_len;
	uint32_t parent;        /* index of the parent result, TAP_NONE at the top */
	uint32_t first;         /* the descendants are the results [first, own index) */
	uint8_t depth;
	uint8_t status;         /* enum tap_status */
	bool bad_below;         /* a descendant failed or has no result */
	uint64_t number;        /* as printed (0 when none was) */
	uint64_t time_ns;       /* since the previous result or header at its level */
};

size_t tap_nresults(const struct tap *t);
const struct tap_result *tap_result(const struct tap *t, size_t i);

/* How a result is reported: a leaf is a testcase; a parent is one only when it failed (or has
 * no result) and no descendant did, else its descendants tell. */
enum tap_case { TAP_CASE_NONE, TAP_CASE_PASS, TAP_CASE_FAIL, TAP_CASE_ERROR, TAP_CASE_SKIP };
enum tap_case tap_case_of(const struct tap *t, size_t i);

/* Results read beyond TAP_MAX_RESULTS: counted, not kept. */
struct tap_dropped { uint64_t results, failures, errors, skipped; };
void tap_dropped(const struct tap *t, struct tap_dropped *d);

/* The reason of a top-level "1..0 # SKIP reason" (the whole run skipped), or NULL. */
const char *tap_skip_all(const struct tap *t, size_t *len);

#endif

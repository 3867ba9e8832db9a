/* The command line: `mica run ...`, `mica --help`, `mica --version`. */
#ifndef MICA_CLI_H
#define MICA_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cmd/config.h"
#include "vmm/err.h"

enum cli_action { CLI_RUN, CLI_HELP, CLI_VERSION };

struct cli {
	enum cli_action action;
	struct mica_config cfg;
};

/* A config with every default (as mica run with only --kernel). */
void cli_defaults(struct cli *cli);
/* Parses argv. Returns 0, or -EINVAL with e saying what is wrong and what to do. */
int cli_parse(int argc, char **argv, struct cli *cli, struct err *e);
void cli_usage(FILE *out);
/* The values of --mem (at least min bytes; rounded up to 2 MiB), --cpus and --timeout: 0, or
 * -EINVAL with e naming the option and what to give. Shared by mica run and mica sandbox. */
int cli_parse_mem(const char *arg, uint64_t min, uint64_t *out, struct err *e);
int cli_parse_cpus(const char *arg, int *out, struct err *e);
int cli_parse_timeout(const char *arg, double *out, struct err *e);
/* The CI options (ci/ci.h), the same for mica run and mica sandbox: their getopt_long entries
 * (codes from CLI_CI_OPT_FIRST on, above the 64 each command numbers from 256), their usage
 * text, and their values into o (0, or -EINVAL with e saying what to give). */
enum {
	CLI_CI_OPT_FIRST = 256 + 64,
	CLI_OPT_SERIAL_LOG = CLI_CI_OPT_FIRST, CLI_OPT_TIMESTAMPS, CLI_OPT_EXPECT, CLI_OPT_FAIL_ON,
	CLI_OPT_END_ON, CLI_OPT_JUNIT,
};
#define CLI_CI_OPTIONS \
	{ "serial-log", required_argument, NULL, CLI_OPT_SERIAL_LOG }, \
	{ "timestamps", no_argument, NULL, CLI_OPT_TIMESTAMPS }, \
	{ "expect", required_argument, NULL, CLI_OPT_EXPECT }, \
	{ "fail-on", required_argument, NULL, CLI_OPT_FAIL_ON }, \
	{ "end-on", required_argument, NULL, CLI_OPT_END_ON }, \
	{ "junit", required_argument, NULL, CLI_OPT_JUNIT }
int cli_parse_ci(int opt, const char *arg, struct ci_opts *o, struct err *e);
/* What the CI options ask of each other, once all are read. */
int cli_check_ci(const struct ci_opts *o, struct err *e);
void cli_ci_usage(FILE *out);

/* An on|off option's value into *out; -EINVAL with e naming the option otherwise. */
int cli_parse_on_off(const char *name, const char *arg, bool *out, struct err *e);

#endif

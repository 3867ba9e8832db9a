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
/* An on|off option's value into *out; -EINVAL with e naming the option otherwise. */
int cli_parse_on_off(const char *name, const char *arg, bool *out, struct err *e);

#endif

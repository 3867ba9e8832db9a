/* The command line: `mica run ...`, `mica --help`, `mica --version`. */
#ifndef MICA_CLI_H
#define MICA_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "vmm/vm.h"

enum cli_action { CLI_RUN, CLI_HELP, CLI_VERSION };

struct cli {
	enum cli_action action;
	struct vm_config vm;
	int verbosity;
};

/* Parses argv. Returns 0, or -EINVAL with msg holding one line: what is wrong, what to do. */
int cli_parse(int argc, char **argv, struct cli *cli, char *msg, size_t msglen);
void cli_usage(FILE *out);

#endif

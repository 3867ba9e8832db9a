/* `mica sandbox [OPTIONS] [--] [CMD [ARGS...]]`: its command line, parsed into typed options
 * (cmd/sandbox_cli.c), and the step that turns them into the VM `mica run` would build
 * (cmd/sandbox.c). */
#ifndef MICA_CMD_SANDBOX_CLI_H
#define MICA_CMD_SANDBOX_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cmd/config.h"
#include "ci/ci.h"
#include "vmm/err.h"

#define SANDBOX_MAX_RW (CONFIG_MAX_SHARES - 1) /* the root share takes one */

#define SANDBOX_MAX_APPEND 512

struct sandbox_opts {
	const char *kernel;          /* --kernel; NULL: found by sandbox_find_kernel() */
	const char *modules;         /* --modules DIR */
	const char *rw[SANDBOX_MAX_RW];
	int nrw;
	uint64_t mem_size;
	int ncpus;
	double timeout_s;
	const char *log_path;        /* --log FILE: the kernel's messages */
	const char *append;          /* --append ARGS: more of the kernel's command line */
	const char *json_path;       /* --json FILE */
	struct ci_opts ci;           /* --serial-log, --expect, --junit, ... (ci/ci.h) */
	bool landlock, seccomp;
	const char *cache_dir;       /* --cache DIR (NULL: $XDG_CACHE_HOME/mica or ~/.cache/mica) */
	bool cold;                   /* --cold: boot, neither use nor make a snapshot */
	int verbosity;               /* -v: kernel messages on stderr, the init's steps */
	bool debug_no_shares;        /* --debug-no-shares: no virtio-fs device at all (the init
				      * fails at mounting the root share: a test of its failure) */
	char **argv;                 /* CMD and its arguments; argc 0: an interactive shell */
	int argc;
};

/* argv[0] is "sandbox". Returns 0, or -EINVAL with e saying what is wrong and what to do;
 * *help is set for --help. */
int sandbox_parse(int argc, char **argv, struct sandbox_opts *o, bool *help, struct err *e);
void sandbox_usage(FILE *out);

#endif

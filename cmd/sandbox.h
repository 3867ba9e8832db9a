/* `mica sandbox`: from its options (cmd/sandbox_cli.h) to the VM `mica run` builds (struct
 * mica_config): the kernel and its modules found, the job for the guest's init written, the
 * initramfs packed in memory, the host's / shared read-only and each --rw directory writable, the
 * command's stdin, stdout and stderr on console ports (or the terminal on the console), and the
 * kernel's messages out of the way. cmd/main.c runs the VM and maps how it ended with
 * sandbox_exit_status(). */
#ifndef MICA_CMD_SANDBOX_H
#define MICA_CMD_SANDBOX_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd/config.h"
#include "cmd/sandbox_cli.h"
#include "vmm/err.h"

/* What the prepared VM borrows until it has run. */
struct sandbox_run {
	uint8_t *initramfs;
	size_t initramfs_size;
	int log_fd;                    /* --log FILE or /dev/null; -1: none (stderr, -v) */
	char *cwd;
	char real_rw[SANDBOX_MAX_RW][PATH_MAX];
	char kernel[PATH_MAX + 32];
	char cmdline[256 + SANDBOX_MAX_APPEND];
	char name[256];                /* the run in reports: "mica sandbox CMD ARGS..." */
};

/* Fills c (a fresh config) for o. Returns 0, or -errno with e saying what the user must mend
 * (no kernel, a module missing, a --rw that is not a directory...). */
int sandbox_prepare(const struct sandbox_opts *o, struct mica_config *c, struct sandbox_run *r,
		    struct err *e);
void sandbox_release(struct sandbox_run *r);

/* What mica exits with, from how the VM ended: the init's report of CMD's status ("guest-status"),
 * 124 on --timeout, the status a pattern ended the run with ("fail-on", "end-on": ci/ci.h),
 * otherwise 125 (the kernel panicked or stopped before CMD ended; one line says so). */
int sandbox_exit_status(int guest_status, const char *reason, double timeout_s);

#endif

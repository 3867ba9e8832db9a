/* `mica sandbox`: from its options (cmd/sandbox_cli.h) to the VM `mica run` builds (struct
 * mica_config): the kernel and its modules found, the initramfs packed in memory (the same for
 * every job), the job for the guest's init encoded for its port (SANDBOX_PORT_JOB), the
 * host's / shared read-only and each --rw directory writable, the command's stdin, stdout and
 * stderr on console ports (or the terminal on the console), and the kernel's messages out of
 * the way. cmd/main.c runs the VM and maps how it ended with
 * sandbox_exit_status(). */
#ifndef MICA_CMD_SANDBOX_H
#define MICA_CMD_SANDBOX_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd/config.h"
#include "cmd/sandbox_cli.h"
#include "vmm/err.h"

/* What the prepared VM borrows until it has run. sandbox_prepare() sets every field (a failed
 * one leaves r for sandbox_release() all the same). */
struct sandbox_run {
	uint8_t *initramfs;
	size_t initramfs_size;
	uint8_t *job;                  /* the encoded job (sandbox/job.h): job_len bytes, malloc'd */
	size_t job_len;
	/* The job port's pipe, sized to hold the whole job: job_fd[0] is the port's input (struct
	 * config_port's in_fd: the VM reads it), job_fd[1] mica's end, written and closed by
	 * sandbox_send_job(). Each -1 once closed. */
	int job_fd[2];
	int log_fd;                    /* --log FILE or /dev/null; -1: none (stderr, -v) */
	char *cwd;
	char real_rw[SANDBOX_MAX_RW][PATH_MAX];
	char kernel[PATH_MAX + 32];
	char cmdline[256 + SANDBOX_MAX_APPEND];
	char name[256];                /* the run in reports: "mica sandbox CMD ARGS..." */
};

/* Fills c (a fresh config) for o. Returns 0, or -errno with e saying what the user must mend
 * (no kernel, a module missing, a --rw that is not a directory, a job larger than a pipe
 * takes...).
 *
 * The job is not sent yet: c's first port, SANDBOX_PORT_JOB (there in every stdio mode, first
 * so that the set of ports is the same for every job), reads a pipe that stays empty and open
 * until the caller calls sandbox_send_job(), once, when the guest may read the job. The
 * guest's init reads it only after SANDBOX_MILESTONE_READY: a cold run sends it before the VM
 * runs; the run that makes a warm sandbox's snapshot at that milestone sends it after the
 * snapshot, so that the snapshot holds nothing of it. */
int sandbox_prepare(const struct sandbox_opts *o, struct mica_config *c, struct sandbox_run *r,
		    struct err *e);
/* Writes the whole job into its pipe and closes mica's end: the guest reads the job, then the
 * end of the port's input. Never blocks (the pipe holds the whole job). Returns 0, or -errno
 * (-EBADF if it was sent already). */
int sandbox_send_job(struct sandbox_run *r);
/* The job's pipe for r->job (r->job_len bytes): job_fd[0] and a non-blocking job_fd[1], both
 * close-on-exec, the pipe raised to hold the whole job. Returns 0, or -errno with e saying
 * what to do if the job is larger than /proc/sys/fs/pipe-max-size allows. (Part of
 * sandbox_prepare; apart for the unit test.) */
int sandbox_job_pipe(struct sandbox_run *r, struct err *e);
/* Closes what is still open and frees what r holds. */
void sandbox_release(struct sandbox_run *r);

/* What mica exits with, from how the VM ended: the init's report of CMD's status ("guest-status"),
 * 124 on --timeout, the status a pattern ended the run with ("fail-on", "end-on": ci/ci.h),
 * otherwise 125 (the kernel panicked or stopped before CMD ended; one line says so). */
int sandbox_exit_status(int guest_status, const char *reason, double timeout_s);

#endif

/* The init of `mica sandbox`: PID 1 of the guest, a static binary in the initramfs
 * (sandbox/initramfs.h). It loads the modules, mounts the host's files (read-only, under a
 * tmpfs overlay, plus the writable shares), connects the standard streams, runs the job's
 * command as the caller, and reports its status to mica through the debug-exit port.
 *
 * Steps (main.c), each quiet unless the job is verbose (known from step 3 on):
 *   1. /proc, /sys and devtmpfs /dev in the initramfs;
 *   2. load /mica/modules in order (modules.c); report SANDBOX_MILESTONE_READY: up to here
 *      nothing depends on the job, a warm sandbox snapshots the guest there;
 *   3. read the job from the port SANDBOX_PORT_JOB (job_port.c);
 *   4. open the streams: the named virtio-console ports, or /dev/hvc0 as a terminal (stdio.c);
 *   5. build the new root and switch to it (root.c);
 *   6. hostname, loopback up; run the command and reap every process (run.c);
 *   7. kill what is left, close the ports, sync, write the status to port 0x501 (say.c).
 * Any failure of the init itself: one line "mica sandbox: init: WHAT: REASON" on the stderr
 * stream once it is open (before: the kernel's console, /dev/console), and status 125. */
#ifndef MICA_SANDBOX_INIT_H
#define MICA_SANDBOX_INIT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "sandbox/job.h"
#include "vmm/util.h"

#define STATUS_INIT_FAILED 125

/* say.c: where the init's own messages go (the console until stdio_open moves it). */
extern int log_fd;
extern bool verbose;

/* One line "mica sandbox: init: ..." if verbose. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "mica sandbox: init: WHAT: strerror(err)", then ends the VM with status 125. */
__attribute__((noreturn, format(printf, 2, 3))) void die(int err, const char *fmt, ...);
/* Kills every other process, syncs and ends the VM with status (port 0x501; power-off if
 * that did not end it). */
__attribute__((noreturn)) void finish(int status);
/* Tells mica the run reached point n (sandbox/milestones.h), for its --json times. */
void milestone(unsigned n);

/* mkdir -p, each new directory with mode; an existing one is fine. Returns 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

/* modules.c: loads the modules /mica/modules lists, from /lib/modules; a failure ends the run
 * (die), before the job is known. */
void load_modules(void);
/* Notes each module load_modules loaded, in order (once the job said whether to be verbose,
 * and the streams are open). */
void note_modules(void);

/* ports.c: the host's port named name, opened with flags (| O_CLOEXEC | O_NOCTTY), or -1 if it
 * is not there (yet); a port there that cannot be opened ends the run. */
int open_port(const char *name, int flags);
/* Waiting for ports (or the terminal) to appear: start, then look, and while something is
 * missing port_wait_more() (false once the time allowed is over), then end. */
struct port_wait {
	int sock;                /* kernel uevents, or -1 */
	struct timespec start;
};
void port_wait_start(struct port_wait *w);
bool port_wait_more(struct port_wait *w);
void port_wait_end(struct port_wait *w);
/* open_port, waiting for the port; its absence at the end of the wait ends the run. */
int open_port_wait(const char *name, int flags);

/* job_port.c: reads the job from the port SANDBOX_PORT_JOB to the host's end of input, decodes
 * it into j (a failure ends the run) and sets verbose from it. */
void read_job(struct sandbox_job *j);

/* stdio.c: opens the job's three streams into fds (descriptors >= 3, close-on-exec); *tty is
 * the terminal's descriptor if a stream is JOB_STDIO_TTY, else -1. */
void stdio_open(const struct sandbox_job *j, int fds[3], int *tty);
/* Closes the ports (once no process holds them): the host has their output when it returns. */
void stdio_close(void);

/* root.c: mounts the new root (overlay over the host's /, the shares, /proc, /sys, /dev...)
 * and makes it /. */
void root_setup(const struct sandbox_job *j);

/* run.c: runs the command with fds as its stdin, stdout and stderr; returns its status (exit
 * code, or 128 + signal). */
int run_command(const struct sandbox_job *j, const int fds[3], int tty);

#endif

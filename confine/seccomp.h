/* seccomp-bpf: each kind of mica thread runs under a filter that allows only the system calls
 * that kind makes once the VM runs; any other call ends mica with exit status 125 and one line
 * on stderr naming the call and the thread.
 *
 * Contract:
 *   - seccomp_setup(), once, on the main thread, before any thread that will call
 *     seccomp_enter() exists and before any such thread is created: it builds one BPF program
 *     per kind (classic BPF, compiled by seccomp.c from the tables in
 *     confine/seccomp_lists.c) and installs the SIGSYS handler. Nothing after it allocates on
 *     behalf of a filter. It also does now what glibc would do lazily on a confined thread
 *     and open a file for: the time zone (tzset) and the malloc arena limit.
 *   - seccomp_enter(kind, index), on the thread itself, at the point where that thread is done
 *     with setup and starts its guest work:
 *       loop  the main thread, in vm_run(), after the vCPU threads were created and right
 *             before the event loop runs (the main thread makes no thread after it: a filter
 *             is inherited by threads created later);
 *       vcpu  each vCPU thread, before its first KVM_RUN;
 *       io    each blk I/O pool worker, before it takes its first job (the pool starts when
 *             its device is created; a worker only waits until then). Its Landlock step
 *             (vmm/confine.h) comes later, under the filter, at its first job: the io
 *             filter allows landlock_restrict_self, which can only narrow what it may open.
 *       fs    each virtio-fs device thread, as it starts (with its device, after
 *             seccomp_setup()), before it runs its event loop; its Landlock step comes
 *             before each batch of requests, as for io.
 *     It sets no_new_privs, unblocks SIGSYS for the thread, installs that kind's filter (one
 *     seccomp(2) call, no allocation) and, if --debug-seccomp-probe named this kind, makes
 *     the probe's forbidden call. A filter cannot be removed: the thread keeps it until it ends.
 *     Without seccomp_setup() (unit tests, mica bench) or with --seccomp off it installs
 *     nothing. A failure to install is mica's own bug (seccomp_setup() checked that the kernel
 *     has filters): it prints one line and exits 125.
 *   - io_uring's kernel workers are not mica threads: they make no system calls of their own
 *     (the loop thread's io_uring_enter hands them the work), so no filter applies to them.
 *   - A forbidden call raises SIGSYS (SECCOMP_RET_TRAP); the handler writes one preformatted
 *     line with write(2) and calls _exit(125): only async-signal-safe calls, both allowed in
 *     every filter. A call from another architecture or the x32 ABI kills the process outright
 *     (SECCOMP_RET_KILL_PROCESS): mica never makes one.
 *
 * This header and its .c files include nothing of mica's: vmm/ and devices/ call in here. */
#ifndef MICA_SANDBOX_SECCOMP_H
#define MICA_SANDBOX_SECCOMP_H

#include <stdbool.h>

enum seccomp_kind {
	SECCOMP_LOOP,   /* the main thread: event loop, device backends, teardown */
	SECCOMP_VCPU,   /* a vCPU thread: KVM_RUN and the register handlers of devices */
	SECCOMP_IO,     /* a blk I/O pool worker: file reads, writes, syncs */
	SECCOMP_FS,     /* a virtio-fs device thread: its event loop and hostfs's file calls */
	SECCOMP_NKINDS,
	SECCOMP_NONE = -1,
};

/* The exit status of a forbidden call (mica's own failure, as for a crashed guest). */
#define SECCOMP_EXIT_STATUS 125

struct seccomp_opts {
	bool on;                   /* --seccomp on (default) */
	enum seccomp_kind probe;   /* --debug-seccomp-probe: this kind makes one forbidden call
				    * (personality(2)) once its filter is on; SECCOMP_NONE: none.
				    * With --seccomp off the call is made too, and succeeds. */
	bool exit_writes_file;     /* --stats-json: the loop writes the JSON at exit (through the fd
				    * opened before the run; opens only
				    * /proc/self/smaps for the memory figures) */
	bool control_socket;       /* --control: the loop removes its socket file at exit */
	bool tap;                  /* --net tap: the tap fd's offload ioctls on feature changes */
	bool slirp;                /* --net user: libslirp reads /etc/resolv.conf at runtime */
	bool port_input;           /* a console port reads a host fd (mica sandbox's stdin) */
	bool snapshots;            /* --snapshot-dir: the loop reads KVM's state and writes a
				    * snapshot file (vmm/vm_snapshot.c) */
};

/* The kind's name: "loop", "vcpu", "io", "fs". */
const char *seccomp_kind_name(enum seccomp_kind kind);
/* Parses a kind's name; returns 0 or -EINVAL. */
int seccomp_kind_parse(const char *s, enum seccomp_kind *kind);

/* Builds the filters and installs the SIGSYS handler; returns 0, or -errno when the kernel
 * has no seccomp filters (-EINVAL) or memory is short. With o->on false it only remembers
 * the probe. */
int seccomp_setup(const struct seccomp_opts *o);
/* Confines the calling thread as kind; index (>= 0) numbers it in the message (vcpu0), -1
 * for none. */
void seccomp_enter(enum seccomp_kind kind, int index);

/* The distinct system calls kind may make under o (any arguments, or some), ascending, into
 * nrs (up to max); returns how many there are. For the README's lists and the unit tests. */
int seccomp_allowed(enum seccomp_kind kind, const struct seccomp_opts *o, int *nrs, int max);

#endif

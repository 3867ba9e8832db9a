/* The guest's output, watched line by line on its way out (see ci/ci.h).
 *
 * Each output stream (an outq: the UART's, the console's, a sandbox port's) gets a
 * monitor_stream, tapped with outq_set_tap(q, monitor_tap, stream), so the monitor sees exactly
 * the bytes the reader gets, in order. Bytes are cut into lines per stream (a line longer than
 * MONITOR_LINE_MAX is cut there and goes on as a new one); a line is done at its '\n' and
 * judged then: logged, matched, read as TAP. What is left of a line when the VM stops is judged
 * by monitor_finish().
 *
 * Ending the run: the first --end-on match ends it at once; the first --fail-on match ends it
 * once the guest has been quiet for MONITOR_QUIET_MS (the kernel is still printing the oops or
 * panic that matched: its trace belongs in the log), MONITOR_GRACE_MS after the match at the
 * latest. The monitor never stops the VM itself: it calls o->stop(opaque, kind) on the event
 * loop's thread, once (an eventfd wakes the loop from the writer's thread; an ev_hook waits out
 * the quiet time).
 *
 * Threads: any thread writing to a tapped outq (vCPU threads for the UART, the loop for the
 * consoles) calls monitor_tap with that queue's lock and the device's lock held; m->lock guards
 * everything the taps touch and is a leaf. monitor_finish() and the readers run after the VM's
 * threads have stopped. */
#ifndef MICA_CI_MONITOR_H
#define MICA_CI_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ci/ci.h"
#include "ci/patterns.h"
#include "vmm/err.h"

struct evloop;
struct monitor;
struct monitor_stream;
struct tap;

#define MONITOR_LINE_MAX   4096
#define MONITOR_MAX_STREAMS 6
#define MONITOR_QUIET_MS    250
#define MONITOR_GRACE_MS    2000
#define MONITOR_TAIL_BYTES  8192  /* what is kept of the output's end, for reports */

struct monitor_opts {
	const struct ci_opts *ci;
	int log_fd;                   /* --serial-log, opened by the caller; -1: none */
	uint64_t start_ns;            /* CLOCK_MONOTONIC when mica started: times are since then */
	/* Ends the run (on the loop thread, once): kind is CI_FAIL_ON or CI_END_ON. */
	void (*stop)(void *opaque, enum ci_pattern_kind kind);
	void *opaque;
};

/* Compiles the patterns and, with --junit, starts a TAP reader. Returns 0, or -errno with e
 * set for what the user must mend (a pattern that does not compile). */
int monitor_create(const struct monitor_opts *o, struct monitor **out, struct err *e);
/* Watches the loop for the wake-up and the quiet time; before the loop runs. */
int monitor_attach(struct monitor *m, struct evloop *loop);
/* Frees m; the log fd stays the caller's. A void * to serve as vm_own()'s destructor. */
void monitor_destroy(void *m);

/* A new stream, named for the log's readers ("serial", "console", "stdout", "stderr"). At
 * set-up time; -ENOSPC past MONITOR_MAX_STREAMS. */
int monitor_stream(struct monitor *m, const char *name, struct monitor_stream **out);
/* An outq_tap_fn (vmm/outq.h): opaque is the monitor_stream. */
void monitor_tap(void *stream, const struct iovec *iov, int iovcnt, size_t len);

/* The VM has stopped at end_ns: what is left of each stream's last line is judged, the TAP
 * reader told the output ended. */
void monitor_finish(struct monitor *m, uint64_t end_ns);

/* After monitor_finish(): */
struct patterns *monitor_patterns(struct monitor *m);
struct tap *monitor_tap_results(struct monitor *m);      /* NULL without --junit */
/* The last lines of the output (at most MONITOR_TAIL_BYTES, starting at a line). */
size_t monitor_tail(struct monitor *m, char *buf, size_t size);
/* Lines or bytes the log could not take (a full disk): counted, said once. */
uint64_t monitor_log_errors(struct monitor *m);

#endif

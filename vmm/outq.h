/* mica's standard output as the guest's consoles share it (the UART, virtio-console): a bounded
 * byte queue in front of the fd that never makes a writer, or the event loop, wait for the
 * reader.
 *
 * A writer hands bytes to outq_write(v). While nothing is queued it tries one non-blocking
 * write itself (the common case costs the one syscall it always did, and no wake-up); what the
 * fd does not take at once is queued, up to the capacity, and the event loop writes the queue
 * out when the fd is writable again (EPOLLOUT, watched only while bytes wait). A writer that got
 * less than it offered hears, on the loop thread, when room is back (outq_on_space).
 *
 * How the fd is written depends on what it is, decided once by outq_create():
 *   pipe, FIFO, terminal   reopened through /proc/self/fd/N with O_NONBLOCK: a new open file
 *                          description, so the flag never leaks to the shell or to whoever
 *                          else shares the original one;
 *   socket                 send(MSG_DONTWAIT | MSG_NOSIGNAL) on the fd itself;
 *   anything else          (a regular file, a block device, /dev/null) plain writes: such
 *                          files never wait for a reader, so nothing is ever queued.
 * When the reader is gone (EPIPE, EIO from a hung-up terminal, any other write error) output is
 * discarded from then on and counted, said once at -v, and writers are never refused again.
 * (A write to a pipe without a reader also raises SIGPIPE, whatever the flags: mica ignores it
 * process-wide, cmd/main.c.)
 *
 * Threads: any thread may write (vCPU threads for the UART, the loop for virtio-console).
 * q->lock guards the ring and the fd's state; it is a leaf (writers call with their device
 * locks held) and no callback runs under it. */
#ifndef MICA_OUTQ_H
#define MICA_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/stats.h"

struct evloop;
struct outq;

/* What mica queues for its stdout: room for a burst while the reader catches up. Allocated
 * lazily by the kernel (an untouched page costs no memory). */
#define OUTQ_SIZE (256 * 1024)
/* How long the exit-time flush waits for a reader that takes nothing. */
#define OUTQ_FLUSH_IDLE_MS 2000

/* Called on the event loop thread, with no outq lock held. */
typedef void (*outq_space_fn)(void *opaque);

/* A queue of capacity bytes (rounded up to a power of two) for fd, drained by loop. The fd
 * stays the caller's: outq_destroy() closes only what outq_create() opened. */
int outq_create(struct evloop *loop, int fd, size_t capacity, struct outq **out);
/* The same for another of mica's output fds: name ("stderr", a static string) stands for
 * "stdout" in its messages and in its --stats-json entry. */
int outq_create_named(struct evloop *loop, int fd, size_t capacity, const char *name,
		      struct outq **out);
/* Frees the queue, dropping what is still queued (outq_flush() first to keep it). Takes a
 * void * to serve as a destructor for vm_own(). */
void outq_destroy(void *q);

/* Takes a prefix of the bytes given: all of them, unless the queue is full (then what fits;
 * the rest is the caller's to keep or drop, and the caller's space callback will run once
 * there is room). Once the reader is gone, takes everything and discards it. */
size_t outq_write(struct outq *q, const void *buf, size_t len);
size_t outq_writev(struct outq *q, const struct iovec *iov, int iovcnt);

/* Registers fn(opaque) to run when room is back after a write was cut short. At set-up time
 * only, before the event loop runs; -ENOSPC when the table is full. */
int outq_on_space(struct outq *q, outq_space_fn fn, void *opaque);
/* Undoes outq_on_space() for opaque (set-up time: a constructor that fails after it). */
void outq_off_space(struct outq *q, void *opaque);

/* Writes out what is queued, waiting for the reader (the loop has stopped): gives up, dropping
 * the rest, after idle_ms without progress (idle_ms < 0: waits as long as the reader is there).
 * Returns 0, -ETIMEDOUT or, with the reader gone, -EPIPE. */
int outq_flush(struct outq *q, int idle_ms);

/* Sees every byte the queue takes from its writers, in the order the reader gets them (the
 * guest's output on its way out: --serial-log, --expect, ... in ci/monitor.h): fn(opaque, iov,
 * iovcnt, len) gets the first len bytes of what one writer offered. Called under the queue's
 * lock, from the writer's thread: fn takes only leaf locks and never calls back into the queue.
 * Set-up time only, one tap per queue. */
typedef void (*outq_tap_fn)(void *opaque, const struct iovec *iov, int iovcnt, size_t len);
void outq_set_tap(struct outq *q, outq_tap_fn fn, void *opaque);

/* Bytes queued, not yet written. */
size_t outq_queued(struct outq *q);

/* --stats-json's "stdout" entry (a stats_fn). */
int outq_stats(void *q, struct stat_value *out, int max);

/* A new open file description of fd (accmode O_RDONLY or O_WRONLY) with O_NONBLOCK, through
 * /proc/self/fd/N, so that the flag never reaches whoever shares fd's own description (the
 * shell, the rest of a pipeline). For pipes, FIFOs and terminals (virtio-console's input ports
 * read theirs this way). Returns the new fd or -errno: -ENXIO for a FIFO nobody reads. */
int fd_reopen_nonblock(int fd, int accmode);

#endif

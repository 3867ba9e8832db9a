/* The I/O backend of virtio-blk: batched asynchronous file I/O whose completions arrive on the
 * event loop.
 *
 * Two implementations behind one interface: io_uring (liburing; one ring per device, its
 * eventfd watched by the loop) and, when io_uring_queue_init fails or MICA_BLK_NO_URING=1, a
 * small pool of worker threads doing preadv/pwritev2/fdatasync/fallocate, completions handed
 * back through an eventfd.
 *
 * Requests are the caller's, preallocated: the backend never allocates per request. Apart from
 * the worker threads, every call is made by one thread at a time (the device lock serializes
 * them); the `ready` callback runs on the event-loop thread with no lock held and is expected to
 * take the caller's lock and call blk_io_reap(). */
#ifndef MICA_BLK_IO_H
#define MICA_BLK_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/err.h"

struct evloop;
struct blk_io;

enum blk_io_op {
	BLK_IO_READ,      /* preadv into iov */
	BLK_IO_WRITE,     /* pwritev2 from iov, with rw_flags (RWF_DSYNC for writethrough) */
	BLK_IO_FSYNC,     /* fdatasync */
	BLK_IO_FALLOCATE, /* one fallocate per range, then fdatasync if sync_after */
};

struct blk_io_range {
	uint64_t off, len;
	int mode;         /* FALLOC_FL_* */
};

/* Most operations one request turns into (io_uring SQEs): the ranges plus a trailing fsync.
 * 16: virtio-blk's 8 write-zeroes ranges, each as punch-hole plus allocate where the file
 * system cannot zero a range in place. */
#define BLK_IO_MAX_RANGES 16
#define BLK_IO_MAX_OPS (BLK_IO_MAX_RANGES + 1)

struct blk_io_req {
	/* Set by the caller before blk_io_queue(). */
	enum blk_io_op op;
	int fd;
	uint64_t off;                /* READ/WRITE: file offset */
	struct iovec *iov;           /* READ/WRITE: the caller's array (the backend advances it
				      * over short transfers) */
	int niov;
	uint64_t len;                /* READ/WRITE: total bytes of iov */
	int rw_flags;                /* WRITE: RWF_* */
	const struct blk_io_range *ranges; /* FALLOCATE */
	int nranges;
	bool sync_after;             /* FALLOCATE: make the result durable */
	/* Set by the backend when the request completes: 0 or -errno (a transfer that ends
	 * early, at the end of the file, is -EIO). */
	int res;
	/* Backend-private. */
	int pending;
	struct blk_io_req *next;
};

typedef void (*blk_io_ready_fn)(void *opaque);
typedef void (*blk_io_done_fn)(void *arg, struct blk_io_req *r);

/* Creates the backend for up to `depth` requests in flight and watches its eventfd on loop;
 * `ready` runs (loop thread) when completions wait to be reaped. Returns 0, or -errno with
 * e set. */
int blk_io_create(struct blk_io **out, struct evloop *loop, unsigned depth, blk_io_ready_fn ready,
		  void *opaque, struct err *e);
/* Waits for everything in flight (done is called for each), stops the workers, unwatches. */
void blk_io_destroy(struct blk_io *io, blk_io_done_fn done, void *arg);
/* "io_uring" or "threads". */
const char *blk_io_backend(const struct blk_io *io);

/* Whether a request of nops operations fits now (else retry after a reap). */
bool blk_io_has_room(const struct blk_io *io, unsigned nops);
/* Prepares a request; nothing reaches the kernel or the workers before blk_io_submit_reap(). */
void blk_io_queue(struct blk_io *io, struct blk_io_req *r);
/* Hands every queued request over at once (one io_uring_submit, or one wake-up of the pool),
 * then calls done for every request already complete (a read served from the page cache
 * completes within the submission) without a trip through the event loop; returns how many. */
unsigned blk_io_submit_reap(struct blk_io *io, blk_io_done_fn done, void *arg);
/* Calls done for every completed request; returns how many. */
unsigned blk_io_reap(struct blk_io *io, blk_io_done_fn done, void *arg);
/* Submits what is queued and waits until nothing is in flight, calling done for each. */
void blk_io_drain(struct blk_io *io, blk_io_done_fn done, void *arg);

#endif

/* virtio-blk (device ID 2) over a raw image file or block device: options, constructor and
 * per-device counters. The I/O itself is in blk_io.c. */
#ifndef MICA_VIRTIO_BLK_H
#define MICA_VIRTIO_BLK_H

#include <limits.h>
#include <linux/virtio_blk.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmm/err.h"

struct virtio_dev;
struct virtio_env;

enum blk_cache {
	BLK_CACHE_WRITEBACK,    /* page cache; the guest flushes (the default) */
	BLK_CACHE_WRITETHROUGH, /* every completed write is durable (RWF_DSYNC) */
	BLK_CACHE_NONE,         /* O_DIRECT; the guest flushes */
};

struct blk_opts {
	char path[PATH_MAX];
	bool ro;
	enum blk_cache cache;
	char serial[VIRTIO_BLK_ID_BYTES + 1]; /* NUL-terminated; "" when not given */
	unsigned num_queues;      /* request queues (one per vCPU); not an option: the VM's */
};

/* Parses PATH[,ro][,cache=writeback|writethrough|none][,serial=STR] (",," in PATH stands for
 * one comma). Returns 0, or -EINVAL with e saying what is wrong (no "--disk" prefix). */
int blk_parse_opts(const char *spec, struct blk_opts *o, struct err *e);

/* Opens and locks the image and creates the device, not yet attached (devices/virtio/attach.h).
 * Returns 0, or -errno with e saying why. */
int virtio_blk_create(const struct virtio_env *env, const struct blk_opts *o,
		      struct virtio_dev **out, struct err *e);
/* The same on an image the caller opened with blk_image_open() (cmd/main.c opens every file
 * of the command line before it touches KVM). The device takes the image over, on failure too
 * (the image is closed then). */
struct blk_image;
int virtio_blk_create_on(const struct virtio_env *env, const struct blk_opts *o,
			 struct blk_image *img, struct virtio_dev **out, struct err *e);

/* What the device did, for statistics. Requests that failed are counted once, under the first
 * reason found. */
struct virtio_blk_stats {
	atomic_ulong reads, writes, flushes, get_ids, discards, write_zeroes;
	atomic_ulong bytes_read, bytes_written;
	atomic_ulong batches;          /* submissions to the backend (one per notify batch) */
	atomic_ulong merged;           /* reads and writes merged into the one before them */
	atomic_ulong err_header;       /* shorter than the 16-byte header */
	atomic_ulong err_direction;    /* data in the wrong direction for the type */
	atomic_ulong err_length;       /* not whole sectors (or not whole discard ranges) */
	atomic_ulong err_range;        /* beyond the end of the disk */
	atomic_ulong err_segments;     /* above seg_max segments, or size_max (if negotiated) */
	atomic_ulong err_read_only;    /* a write, discard or write-zeroes to a read-only disk */
	atomic_ulong err_limits;       /* discard / write-zeroes beyond the config limits */
	atomic_ulong err_flags;        /* reserved or unsupported discard / write-zeroes flags */
	atomic_ulong unsupported;      /* unknown request type */
	atomic_ulong io_errors;        /* the host I/O failed */
	atomic_ulong no_status;        /* no status byte: a protocol violation, request dropped */
};

/* The counters of a virtio-blk device (benchmarks and tests; --stats-json gets them through
 * the device's stats op). */
const struct virtio_blk_stats *virtio_blk_stats(const struct virtio_dev *dev);
/* "io_uring" or "threads". */
const char *virtio_blk_backend(const struct virtio_dev *dev);

#endif

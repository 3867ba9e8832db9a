/* virtio-blk's parts, shared by its files: blk.c (requests, the device), blk_wz.c (how
 * WRITE_ZEROES zeroes on file systems that cannot). Everything here is guarded by the device
 * lock (dev->lock, devices/virtio/virtio.h), like the rest of the device. */
#ifndef MICA_VIRTIO_BLK_DEV_H
#define MICA_VIRTIO_BLK_DEV_H

#include <linux/virtio_blk.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/blk_image.h"
#include "devices/virtio/blk_io.h"
#include "devices/virtio/virtio.h"

#define SECTOR             512ULL
#define BLK_QUEUE_SIZE     256
#define BLK_SEG_MAX        126          /* data segments per request (seg_max) */
#define BLK_SIZE_MAX       (1U << 20)   /* bytes per data segment (size_max) */
#define BLK_MERGE_MAX      (4U << 20)   /* bytes of one merged read or write */
#define BLK_DWZ_MAX_SEG    8            /* ranges per discard / write-zeroes request */
#define BLK_DWZ_MAX_SECTORS (1U << 22)  /* 2 GiB per discard / write-zeroes range */
#define BLK_DISCARD_ALIGN  8            /* sectors: 4 KiB, the usual file system block */
#define IO_ERRORS_LOGGED   10

#define WZ_CHUNK           (64U << 10)  /* bytes of b->zeros: one iovec of a zero write */

_Static_assert(2 * BLK_DWZ_MAX_SEG <= BLK_IO_MAX_RANGES, "punch + allocate per range must fit");

/* How WRITE_ZEROES without UNMAP zeroes a range while keeping it allocated. Learned from the
 * image's file system, once, on the first EOPNOTSUPP, and never undone: tmpfs cannot
 * FALLOC_FL_ZERO_RANGE but punches holes (then fallocate re-allocates the range); 9p does
 * neither, and gets plain writes from a shared read-only zero mapping. */
enum wz_method { WZ_ZERO_RANGE, WZ_PUNCH_ALLOCATE, WZ_WRITE };

#define HDR_SIZE sizeof(struct virtio_blk_outhdr)
#define DWZ_SIZE sizeof(struct virtio_blk_discard_write_zeroes)

struct blk_slot {
	struct blk_io_req io;
	struct blk_slot *next_free;
	struct blk_slot *merged;     /* the requests merged into this one, in queue order; each
				      * one's io is unused (this one's iov holds all the data) */
	uint8_t *status;             /* the request's last device-writable byte */
	uint32_t used;               /* bytes written into the guest on success, status included */
	uint64_t bytes;              /* data bytes transferred, for statistics */
	uint32_t type;
	uint16_t head;
	uint8_t q;
	struct blk_io_range ranges[BLK_IO_MAX_RANGES];
	struct iovec iov[BLK_SEG_MAX];
	/* WRITE_ZEROES without UNMAP: the guest's ranges, and how far they are done. */
	struct blk_io_range wz[BLK_DWZ_MAX_SEG];
	uint8_t nwz;
	uint8_t wz_method;           /* enum wz_method this request now uses */
	uint8_t wz_next;             /* WZ_WRITE: the range being written */
	uint64_t wz_done;            /* WZ_WRITE: bytes of it written */
	uint64_t wz_chunk;           /* WZ_WRITE: bytes of the write in flight */
};

struct blk_queue {
	struct blk_slot *free;
	bool throttled;              /* stopped popping for want of a slot or backend room */
	bool completed;              /* pushed used entries not yet signalled */
};

struct virtio_blk {
	struct virtio_dev vdev;
	struct virtio_dev_ops ops;   /* per device: num_queues and RO vary */
	struct virtio_blk_config config;
	struct virtio_blk_config config_init; /* the driver may change only wce */
	uint8_t wce;                 /* 1: writeback (the guest flushes), 0: writethrough */
	struct blk_image img;
	bool ro;
	char serial[VIRTIO_BLK_ID_BYTES];
	char *path;
	struct blk_io *io;
	struct blk_slot *slots;
	struct blk_queue queues[VIRTIO_MAX_QUEUES];
	struct virtq_req req;
	/* While a queue is processed: the last read or write, held back from the backend so
	 * that the requests continuing it can be merged into it; the tail of its merged list. */
	struct blk_slot *pending, **pending_tail;
	struct virtio_blk_stats stats;
	unsigned long io_errors_logged;
	enum wz_method wz_method;
	const void *zeros;           /* WZ_CHUNK read-only zero bytes, mapped on first use */
	bool resubmit;               /* a completion queued its request's next step */
};

#define STAT(b, field, n) atomic_fetch_add_explicit(&(b)->stats.field, (n), memory_order_relaxed)

enum { REQ_DONE, REQ_QUEUED, REQ_BROKEN };

/* cache=none: the descriptor a prepared read or write goes through (blk.c). */
int blk_pick_fd(const struct virtio_blk *b, const struct blk_slot *s);

/* blk_wz.c: turns a write-zeroes request's ranges into its method's next backend operation. */
void blk_wz_prepare(struct virtio_blk *b, struct blk_slot *s);
/* A write-zeroes step completed: true when the request goes on (queued again, b->resubmit
 * set), after EOPNOTSUPP with the next method or with its next write. */
bool blk_wz_continue(struct virtio_blk *b, struct blk_slot *s);
/* Releases what the write-zeroes fallback mapped. */
void blk_wz_cleanup(struct virtio_blk *b);

/* blk_snap.c: the model's part of a snapshot (virtio_dev_ops save and restore). */
struct snap_writer;
struct snap_cursor;
struct err;
int blk_snap_save(struct virtio_dev *dev, struct snap_writer *w, struct err *e);
int blk_snap_restore(struct virtio_dev *dev, struct snap_cursor *c, struct err *e);

#endif

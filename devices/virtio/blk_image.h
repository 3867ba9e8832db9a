/* A disk image as virtio-blk sees it: the open descriptors, their lock, the size in sectors.
 * Raw images (a regular file or a block device) today; image formats will plug in here. */
#ifndef MICA_VIRTIO_BLK_IMAGE_H
#define MICA_VIRTIO_BLK_IMAGE_H

#include <stdint.h>

#include "devices/virtio/blk.h"
#include "vmm/err.h"

struct blk_image {
	int fd;                  /* O_DIRECT with cache=none */
	int fd_buffered;         /* cache=none: for requests O_DIRECT cannot take; else -1 */
	uint32_t dio_align;      /* cache=none: the alignment O_DIRECT needs */
	uint64_t capacity;       /* whole 512-byte sectors */
	uint64_t size;           /* bytes, as the image was sized at open */
};

/* A snapshot's identity stamp of an image: CRC-32C of its first and of its last
 * BLK_STAMP_BYTES (the whole image when smaller). See blk_snap.c for why. */
#define BLK_STAMP_BYTES (64U << 10)

/* Opens o->path as o asks (read-only or not, cache mode), takes its lock (shared for a
 * read-only disk, exclusive otherwise: two VMs never write one image) and sizes it. Returns
 * 0, or -errno with e saying what is wrong with the image. On failure nothing stays open. */
int blk_image_open(struct blk_image *img, const struct blk_opts *o, struct err *e);
/* Closes the descriptors (which releases the lock); safe on a failed or closed image. */
void blk_image_close(struct blk_image *img);
/* Reads the stamp of the image as it is now into stamp[0] (head) and stamp[1] (tail).
 * Returns 0 or -errno. */
int blk_image_stamp(const struct blk_image *img, uint32_t stamp[2]);

#endif

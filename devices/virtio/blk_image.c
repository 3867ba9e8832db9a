#include "devices/virtio/blk_image.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/snapshot.h"
#include "vmm/util.h"

#define SECTOR 512ULL

static int open_locked(struct blk_image *img, const struct blk_opts *o, struct err *e)
{
	int flags = (o->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	struct stat st;
	off_t size;

	img->fd = open(o->path, flags | (o->cache == BLK_CACHE_NONE ? O_DIRECT : 0));
	if (img->fd < 0 && errno == EINVAL && o->cache == BLK_CACHE_NONE)
		return err_set(e, -EINVAL, "image %s: its file system does not support O_DIRECT "
			       "(cache=none); use cache=writeback or writethrough", o->path);
	if (img->fd < 0 && !o->ro && (errno == EACCES || errno == EROFS || errno == EPERM))
		return err_set(e, -errno, "cannot open image %s for writing: %s (add ,ro for a "
			       "read-only disk)", o->path, strerror(errno));
	if (img->fd < 0)
		return err_set(e, -errno, "cannot open image %s: %s", o->path, strerror(errno));
	if (fstat(img->fd, &st) < 0)
		return err_set(e, -errno, "cannot stat image %s: %s", o->path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return err_set(e, -EINVAL, "image %s is not a regular file or a block device",
			       o->path);
	/* Shared for a read-only disk, exclusive for a writable one: two VMs never write one image
	 * (nor does one read it while another writes). */
	if (flock(img->fd, (o->ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return err_set(e, -EBUSY, "image %s is in use by another process (locked)",
				       o->path);
		return err_set(e, -errno, "cannot lock image %s: %s", o->path, strerror(errno));
	}
	/* A block device's size comes from seeking to its end, as a file's does. */
	size = lseek(img->fd, 0, SEEK_END);
	if (size < 0)
		return err_set(e, -errno, "cannot size image %s: %s", o->path, strerror(errno));
	/* Capacity counts whole sectors: the tail of an image whose size is not a multiple of
	 * 512 bytes is unreachable for the guest (neither read nor written). */
	img->capacity = (uint64_t)size / SECTOR;
	img->size = (uint64_t)size;
	if (o->cache == BLK_CACHE_NONE) {
		struct statx sx;

		img->dio_align = 4096; /* when the kernel does not say: enough for any device */
		if (statx(img->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
		    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align)
			img->dio_align = MAX(sx.stx_dio_offset_align, sx.stx_dio_mem_align);
		img->fd_buffered = open(o->path, flags);
		if (img->fd_buffered < 0)
			return err_set(e, -errno, "cannot open image %s: %s", o->path,
				       strerror(errno));
	}
	return 0;
}

int blk_image_open(struct blk_image *img, const struct blk_opts *o, struct err *e)
{
	int err;

	img->fd = img->fd_buffered = -1;
	err = open_locked(img, o, e);
	if (err)
		blk_image_close(img);
	return err;
}

void blk_image_close(struct blk_image *img)
{
	if (img->fd_buffered >= 0)
		close(img->fd_buffered);
	if (img->fd >= 0)
		close(img->fd); /* releases the lock */
	img->fd = img->fd_buffered = -1;
}

/* CRC-32C of bytes [off, off + len) of the image. */
static int crc_range(int fd, uint8_t *buf, uint64_t off, uint64_t len, uint32_t *crc)
{
	*crc = 0;
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* shorter than it was sized: it changed under us */
		*crc = snap_crc32c(*crc, buf, (size_t)n);
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int blk_image_stamp(const struct blk_image *img, uint32_t stamp[2])
{
	/* cache=none: the buffered descriptor takes any buffer and offset. */
	int fd = img->fd_buffered >= 0 ? img->fd_buffered : img->fd;
	uint64_t len = MIN(img->size, (uint64_t)BLK_STAMP_BYTES);
	uint8_t *buf = malloc(BLK_STAMP_BYTES);
	int err;

	if (!buf)
		return -ENOMEM;
	err = crc_range(fd, buf, 0, len, &stamp[0]);
	if (!err)
		err = crc_range(fd, buf, img->size - len, len, &stamp[1]);
	free(buf);
	return err;
}

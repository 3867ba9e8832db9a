#include "devices/virtio/blk_image.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* WRITE_ZEROES without UNMAP must leave the range zeroed and allocated, on whatever file
 * system the image lives. The method is learned from the file system, once, on the first
 * EOPNOTSUPP, and never undone: fallocate(ZERO_RANGE); where that is missing (tmpfs),
 * punch-hole then allocate; where both are (9p, ramfs), writes from a shared read-only zero
 * mapping. The failing request is redone with the next method, so the guest never sees UNSUPP
 * for a feature it was offered. */
#include <errno.h>
#include <linux/falloc.h>
#include <sys/mman.h>

#include "devices/virtio/blk_dev.h"
#include "vmm/log.h"
#include "vmm/util.h"

/* The backend operation of the request's method: fallocate ranges (ZERO_RANGE; or punch-hole
 * then allocate), or the next write of zeroes. An UNMAP range is a punched hole while the file
 * system can punch. */
void blk_wz_prepare(struct virtio_blk *b, struct blk_slot *s)
{
	int n = 0;

	s->io = (struct blk_io_req){ .fd = b->img.fd, .sync_after = !b->wce };
	if (s->wz_method == WZ_WRITE) {
		const struct blk_io_range *r = &s->wz[s->wz_next];
		uint64_t len = MIN(r->len - s->wz_done, (uint64_t)BLK_SEG_MAX * WZ_CHUNK);

		for (uint64_t at = 0; at < len; at += WZ_CHUNK)
			s->iov[n++] = (struct iovec){ (void *)b->zeros, MIN(WZ_CHUNK, len - at) };
		s->io.op = BLK_IO_WRITE;
		s->io.off = r->off + s->wz_done;
		s->io.iov = s->iov;
		s->io.niov = n;
		s->io.len = len;
		s->io.rw_flags = b->wce ? 0 : RWF_DSYNC;
		s->io.fd = blk_pick_fd(b, s);
		s->wz_chunk = len;
		return;
	}
	for (int i = 0; i < s->nwz; i++) {
		const struct blk_io_range *r = &s->wz[i];

		if (s->wz_method == WZ_ZERO_RANGE || (r->mode & FALLOC_FL_PUNCH_HOLE)) {
			s->ranges[n++] = *r;
		} else {
			s->ranges[n++] = (struct blk_io_range){ r->off, r->len,
								FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE };
			s->ranges[n++] = (struct blk_io_range){ r->off, r->len, 0 };
		}
	}
	s->io.op = BLK_IO_FALLOCATE;
	s->io.ranges = s->ranges;
	s->io.nranges = n;
}

bool blk_wz_continue(struct virtio_blk *b, struct blk_slot *s)
{
	static const char *const method_name[] = { "fallocate zero-range", "punch-hole + allocate",
						   "writes of zeroes" };

	if (!s->nwz || !virtio_dev_ok(&b->vdev) || !b->vdev.vqs[s->q].ready)
		return false;
	if (s->io.res == -EOPNOTSUPP && s->wz_method < WZ_WRITE) {
		if (b->wz_method <= s->wz_method) {
			b->wz_method = s->wz_method + 1;
			pr_debug("virtio-blk %s: write-zeroes by %s", b->path, method_name[b->wz_method]);
		}
		if (b->wz_method == WZ_WRITE && !b->zeros) {
			void *z = mmap(NULL, WZ_CHUNK, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (z == MAP_FAILED)
				return false;
			b->zeros = z;
		}
		s->wz_method = (uint8_t)b->wz_method;
		s->wz_next = 0;
		s->wz_done = 0;
	} else if (!s->io.res && s->wz_method == WZ_WRITE) {
		s->wz_done += s->wz_chunk;
		if (s->wz_done == s->wz[s->wz_next].len) {
			s->wz_next++;
			s->wz_done = 0;
		}
		if (s->wz_next == s->nwz)
			return false;
	} else {
		return false;
	}
	blk_wz_prepare(b, s);
	blk_io_queue(b->io, &s->io);
	b->resubmit = true;
	return true;
}

void blk_wz_cleanup(struct virtio_blk *b)
{
	if (b->zeros)
		munmap((void *)b->zeros, WZ_CHUNK);
	b->zeros = NULL;
}

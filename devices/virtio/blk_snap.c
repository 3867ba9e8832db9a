/* virtio-blk's part of a snapshot, after the virtio core's (status, features, config bytes,
 * queues): what the guest sees of the disk beyond that, and which disk it was.
 *
 * The snapshot's RAM holds the guest's page cache and its file systems' in-memory state of the
 * disk; restored onto other bytes, the guest would write that state over them. So a restore
 * checks the disk is the one the snapshot was taken with:
 *   - its size, to the byte (a guest never expects its disk to shrink or grow under it);
 *   - an identity stamp: CRC-32C of the image's first and last BLK_STAMP_BYTES, read when the
 *     snapshot is saved (after the drain: every completed write is in) and again at restore.
 *     That is where partition tables (MBR, both GPT headers) and file system superblocks with
 *     their UUIDs live, so another image of the same size is refused, at the cost of reading
 *     128 KiB. It depends on nothing but the bytes: a copy of the image (cp, a fresh copy of a
 *     golden image for each restore) is accepted, wherever it lives and whatever its mtime.
 *     It is a sample, not a proof: it misses a change made since the snapshot elsewhere in
 *     the image (the source VM writing on after the snapshot, or a restored VM run before
 *     restoring again), which only a full read could see. Host identities (st_dev, st_ino, the
 *     path, the mtime) were rejected: they refuse a faithful copy and accept a rewritten file.
 *   - the read-only flag and the serial (GET_ID), as the command line gave them.
 * The write cache state (WCE: the driver may turn it off, or activate forces it off for a
 * driver without FLUSH) is the one thing a driver changes, and is restored.
 *
 * Everything read is hostile (a crafted file) and checked before it is used. */
#include <errno.h>
#include <string.h>

#include "devices/virtio/blk_dev.h"
#include "snapshot/snapshot.h"
#include "vmm/err.h"
#include "vmm/util.h"

#define BLK_SNAP_FORMAT 1

/* "64 MiB", or the bytes when it is not whole MiB. */
static const char *size_str(uint64_t size, char *buf, size_t len)
{
	if (size && size % MiB == 0)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(size / MiB));
	else
		snprintf(buf, len, "%llu bytes", (unsigned long long)size);
	return buf;
}

int blk_snap_save(struct virtio_dev *dev, struct snap_writer *w, struct err *e)
{
	struct virtio_blk *b = container_of(dev, struct virtio_blk, vdev);
	uint32_t stamp[2];
	int err = blk_image_stamp(&b->img, stamp);

	if (err)
		return err_set(e, err, "snapshot: virtio-blk: cannot read image %s: %s", b->path,
			       strerror(-err));
	snap_put_u32(w, BLK_SNAP_FORMAT);
	snap_put_u64(w, b->img.size);
	snap_put_u32(w, stamp[0]);
	snap_put_u32(w, stamp[1]);
	snap_put_u8(w, b->ro);
	snap_put(w, b->serial, sizeof(b->serial));
	snap_put_u8(w, b->wce);
	return 0;
}

int blk_snap_restore(struct virtio_dev *dev, struct snap_cursor *c, struct err *e)
{
	struct virtio_blk *b = container_of(dev, struct virtio_blk, vdev);
	char serial[VIRTIO_BLK_ID_BYTES], s1[32], s2[32];
	uint32_t format, stamp[2], now[2];
	uint64_t size;
	uint8_t ro, wce;
	int err;

	format = snap_get_u32(c);
	size = snap_get_u64(c);
	stamp[0] = snap_get_u32(c);
	stamp[1] = snap_get_u32(c);
	ro = snap_get_u8(c);
	snap_get(c, serial, sizeof(serial));
	wce = snap_get_u8(c);
	if (c->err)
		return err_set(e, -EINVAL, "snapshot: virtio-blk: its state is cut short");
	if (format != BLK_SNAP_FORMAT)
		return err_set(e, -EINVAL, "snapshot: virtio-blk: unknown state format %u", format);
	if (size != b->img.size)
		return err_set(e, -EINVAL, "snapshot: virtio-blk: the image is %s, the snapshot's "
			       "was %s", size_str(b->img.size, s1, sizeof(s1)),
			       size_str(size, s2, sizeof(s2)));
	if (ro > 1 || wce > 1)
		return err_set(e, -EINVAL, "snapshot: virtio-blk: invalid flags");
	if (ro != b->ro)
		return err_set(e, -EINVAL, "snapshot: virtio-blk: the disk was %s in the snapshot, "
			       "it is %s now", ro ? "read-only" : "writable",
			       b->ro ? "read-only" : "writable");
	if (memcmp(serial, b->serial, sizeof(serial)))
		return err_set(e, -EINVAL, "snapshot: virtio-blk: the disk's serial differs from "
			       "the snapshot's");
	/* Without CONFIG_WCE the driver cannot change it: the option's value, or off (a driver
	 * without FLUSH, see blk_activate). */
	if (wce != b->config_init.wce && wce &&
	    !virtio_has_feature(dev, VIRTIO_BLK_F_CONFIG_WCE))
		return err_set(e, -EINVAL, "snapshot: virtio-blk: a write cache state the driver "
			       "could not have set");
	err = blk_image_stamp(&b->img, now);
	if (err)
		return err_set(e, err, "snapshot: virtio-blk: cannot read image %s: %s", b->path,
			       strerror(-err));
	if (now[0] != stamp[0] || now[1] != stamp[1])
		return err_set(e, -EINVAL, "snapshot: virtio-blk: image %s is not the disk the "
			       "snapshot was taken with (its first or last %u KiB differ)", b->path,
			       BLK_STAMP_BYTES >> 10);
	b->wce = wce;
	/* The config bytes the core restored are the file's: only wce is the driver's. */
	b->config = b->config_init;
	b->config.wce = wce;
	/* Requests the guest had posted but the device not yet taken (a kick still unread in the
	 * old process, a queue stopped for want of room) are served once the loop runs. */
	for (int q = 0; q < b->ops.num_queues; q++)
		if (virtio_queue_live(dev, q))
			virtio_queue_kick(dev, q);
	return 0;
}

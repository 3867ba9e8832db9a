/* virtio-blk (device ID 2) over a raw image: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES on
 * up to VIRTIO_MAX_QUEUES request queues.
 *
 * A request is a 16-byte device-readable header, data, and a final device-writable status
 * byte; it is parsed by byte offsets (the header may share a descriptor with data). Reads and
 * writes go straight between the image and the guest's buffers (no copy) through blk_io: every
 * request of one notification is prepared, then handed over with one submission; completions
 * come back on the event loop, which writes the status bytes, pushes the used entries and
 * interrupts at most once per queue per batch.
 *
 * Reads (or writes) of one batch that continue one another are merged into one backend
 * operation (up to BLK_SEG_MAX iovecs and BLK_MERGE_MAX bytes), as QEMU does: one syscall and
 * one completion where a sequential stream would have made several, and the whole run signalled
 * at once. Each merged request keeps its own slot and completes with the merged result.
 *
 * Each queue has queue-size request slots, allocated once, holding the iovec array and the
 * fallocate ranges: nothing is allocated per request. A queue that runs out of slots (a driver
 * may re-post descriptors still in flight) or of backend room stops popping and resumes when
 * completions come back.
 *
 * Reset waits for everything in flight (the kernel may still be writing into buffers the guest
 * is about to reuse) and writes nothing back.
 *
 * Options are parsed in blk_opts.c, the image opened and locked in blk_image.c, and the
 * write-zeroes fallbacks live in blk_wz.c. */
#include "devices/virtio/blk_dev.h"

#include <endian.h>
#include <errno.h>
#include <linux/falloc.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/util.h"

/* ---- requests ---- */

/* The last device-writable byte of the chain (writable buffers come last), or NULL. */
static uint8_t *status_byte(const struct virtq_req *req)
{
	for (int i = req->nsegs - 1; i >= 0 && req->segs[i].write; i--)
		if (req->segs[i].len)
			return (uint8_t *)req->segs[i].hva + req->segs[i].len - 1;
	return NULL;
}

/* Bytes [skip, skip + len) of the readable (or writable) part of req as iovecs. Returns how
 * many, or -1 beyond seg_max segments or a segment longer than seg_limit. */
static int build_iov(const struct virtq_req *req, bool writable, uint64_t skip, uint64_t len,
		     struct iovec *iov, uint64_t seg_limit)
{
	int n = 0;

	for (int i = 0; i < req->nsegs && len; i++) {
		const struct virtq_seg *sg = &req->segs[i];
		uint64_t l = sg->len;

		if (sg->write != writable)
			continue;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		l = MIN(l - skip, len);
		if (n == BLK_SEG_MAX || l > seg_limit)
			return -1;
		iov[n++] = (struct iovec){ (uint8_t *)sg->hva + skip, (size_t)l };
		skip = 0;
		len -= l;
	}
	return n;
}

static bool in_disk(const struct virtio_blk *b, uint64_t sector, uint64_t nsectors)
{
	return sector <= b->img.capacity && nsectors <= b->img.capacity - sector;
}

/* Completes a request on the spot: status byte, used entry (signalled by the caller). */
static int finish(struct virtio_blk *b, int q, const struct virtq_req *req, uint8_t *status,
		  uint8_t st, uint32_t used, atomic_ulong *counter)
{
	if (counter)
		atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
	*status = st;
	virtio_push(&b->vdev, q, req->head, used);
	b->queues[q].completed = true;
	return REQ_DONE;
}

#define IOERR(counter) finish(b, q, req, status, VIRTIO_BLK_S_IOERR, 1, &b->stats.counter)

static struct blk_slot *slot_get(struct virtio_blk *b, int q, const struct virtq_req *req,
				 uint8_t *status, uint32_t type)
{
	struct blk_queue *bq = &b->queues[q];
	struct blk_slot *s = bq->free;

	bq->free = s->next_free;
	s->status = status;
	s->head = req->head;
	s->q = (uint8_t)q;
	s->type = type;
	s->used = 1;
	s->bytes = 0;
	s->nwz = 0;
	s->merged = NULL;
	memset(&s->io, 0, sizeof(s->io));
	s->io.fd = b->img.fd;
	return s;
}

static void slot_put(struct virtio_blk *b, struct blk_slot *s)
{
	struct blk_queue *bq = &b->queues[s->q];

	s->next_free = bq->free;
	bq->free = s;
}

/* Puts a slot and those merged into it. */
static void slot_put_all(struct virtio_blk *b, struct blk_slot *s)
{
	while (s) {
		struct blk_slot *next = s->merged;

		slot_put(b, s);
		s = next;
	}
}

/* Hands the held-back read or write to the backend. */
static void pending_flush(struct virtio_blk *b)
{
	if (b->pending) {
		blk_io_queue(b->io, &b->pending->io);
		b->pending = NULL;
	}
}

/* Queues a request, after the one held back: the backend sees them in the queue's order. */
static void slot_queue(struct virtio_blk *b, struct blk_slot *s)
{
	pending_flush(b);
	blk_io_queue(b->io, &s->io);
}

/* Merges a prepared read or write into the held-back one when it continues it (same
 * operation, descriptor and flags; the next byte of the image), else holds it back in its
 * place. A merged request's iovecs are copied after the pending one's. */
static void slot_hold(struct virtio_blk *b, struct blk_slot *s)
{
	struct blk_slot *p = b->pending;

	if (p && p->io.op == s->io.op && p->io.fd == s->io.fd && p->io.rw_flags == s->io.rw_flags &&
	    p->io.off + p->io.len == s->io.off && p->io.niov + s->io.niov <= BLK_SEG_MAX &&
	    p->io.len + s->io.len <= BLK_MERGE_MAX) {
		memcpy(p->iov + p->io.niov, s->iov, sizeof(s->iov[0]) * (size_t)s->io.niov);
		p->io.niov += s->io.niov;
		p->io.len += s->io.len;
		*b->pending_tail = s;
		b->pending_tail = &s->merged;
		STAT(b, merged, 1);
		return;
	}
	pending_flush(b);
	b->pending = s;
	b->pending_tail = &s->merged;
}

/* cache=none: O_DIRECT takes only aligned offsets, lengths and buffers; the rest goes through
 * a second, buffered descriptor of the same file (the kernel keeps the two coherent). */
int blk_pick_fd(const struct virtio_blk *b, const struct blk_slot *s)
{
	uint64_t a = b->img.dio_align;

	if (b->img.fd_buffered < 0)
		return b->img.fd;
	if (s->io.off % a)
		return b->img.fd_buffered;
	for (int i = 0; i < s->io.niov; i++)
		if ((uintptr_t)s->iov[i].iov_base % a || s->iov[i].iov_len % a)
			return b->img.fd_buffered;
	return b->img.fd;
}

static int do_rw(struct virtio_blk *b, int q, const struct virtq_req *req, uint8_t *status,
		 bool write, uint64_t sector)
{
	uint64_t len, limit = UINT64_MAX;
	struct blk_slot *s;
	int n;

	if (write) {
		if (req->write_len != 1)
			return IOERR(err_direction);
		if (b->ro)
			return IOERR(err_read_only);
		len = req->read_len - HDR_SIZE;
	} else {
		if (req->read_len != HDR_SIZE)
			return IOERR(err_direction);
		len = req->write_len - 1;
	}
	if (len % SECTOR)
		return IOERR(err_length);
	if (!in_disk(b, sector, len / SECTOR))
		return IOERR(err_range);
	if (virtio_has_feature(&b->vdev, VIRTIO_BLK_F_SIZE_MAX))
		limit = BLK_SIZE_MAX;
	if (write)
		STAT(b, writes, 1);
	else
		STAT(b, reads, 1);
	if (!len)
		return finish(b, q, req, status, VIRTIO_BLK_S_OK, 1, NULL);
	s = slot_get(b, q, req, status, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
	n = build_iov(req, !write, write ? HDR_SIZE : 0, len, s->iov, limit);
	if (n < 0) {
		slot_put(b, s);
		return IOERR(err_segments);
	}
	s->io.op = write ? BLK_IO_WRITE : BLK_IO_READ;
	s->io.off = sector * SECTOR;
	s->io.iov = s->iov;
	s->io.niov = n;
	s->io.len = len;
	s->bytes = len;
	s->io.rw_flags = write && !b->wce ? RWF_DSYNC : 0;
	s->io.fd = blk_pick_fd(b, s);
	s->used = write ? 1 : (uint32_t)MIN(len + 1, UINT32_MAX);
	slot_hold(b, s);
	return REQ_QUEUED;
}

static int do_discard_wz(struct virtio_blk *b, int q, const struct virtq_req *req,
			 uint8_t *status, uint32_t type)
{
	bool discard = type == VIRTIO_BLK_T_DISCARD;
	uint8_t buf[HDR_SIZE + DWZ_SIZE * BLK_DWZ_MAX_SEG];
	struct blk_io_range ranges[BLK_DWZ_MAX_SEG];
	uint64_t payload, nseg;
	uint32_t allowed_flags = discard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	struct blk_slot *s;
	int nr = 0;

	if (!virtio_has_feature(&b->vdev, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
		return finish(b, q, req, status, VIRTIO_BLK_S_UNSUPP, 1, &b->stats.unsupported);
	if (req->write_len != 1)
		return IOERR(err_direction);
	if (b->ro)
		return IOERR(err_read_only);
	payload = req->read_len - HDR_SIZE;
	if (!payload || payload % DWZ_SIZE)
		return IOERR(err_length);
	nseg = payload / DWZ_SIZE;
	if (nseg > BLK_DWZ_MAX_SEG)
		return IOERR(err_limits);
	/* One copy: the guest may rewrite the ranges after we check them. */
	virtq_copy_from_readable(req, buf, HDR_SIZE + payload);
	for (uint64_t i = 0; i < nseg; i++) {
		struct virtio_blk_discard_write_zeroes d;
		uint64_t sector;
		uint32_t num, flags;

		memcpy(&d, buf + HDR_SIZE + i * DWZ_SIZE, sizeof(d));
		sector = le64toh(d.sector);
		num = le32toh(d.num_sectors);
		flags = le32toh(d.flags);
		/* Unknown flags, or unmap on a discard: UNSUPP, as the spec says. */
		if (flags & ~allowed_flags)
			return finish(b, q, req, status, VIRTIO_BLK_S_UNSUPP, 1, &b->stats.err_flags);
		if (num > BLK_DWZ_MAX_SECTORS)
			return IOERR(err_limits);
		if (!in_disk(b, sector, num))
			return IOERR(err_range);
		if (!num)
			continue;
		ranges[nr++] = (struct blk_io_range){
			.off = sector * SECTOR, .len = num * SECTOR,
			.mode = discard || (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
					? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
					: FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		};
	}
	if (discard)
		STAT(b, discards, 1);
	else
		STAT(b, write_zeroes, 1);
	if (!nr)
		return finish(b, q, req, status, VIRTIO_BLK_S_OK, 1, NULL);
	s = slot_get(b, q, req, status, type);
	if (discard) {
		memcpy(s->ranges, ranges, sizeof(ranges[0]) * (size_t)nr);
		s->io.op = BLK_IO_FALLOCATE;
		s->io.ranges = s->ranges;
		s->io.nranges = nr;
		s->io.sync_after = !b->wce;
	} else {
		memcpy(s->wz, ranges, sizeof(ranges[0]) * (size_t)nr);
		s->nwz = (uint8_t)nr;
		s->wz_method = (uint8_t)b->wz_method;
		s->wz_next = 0;
		s->wz_done = 0;
		blk_wz_prepare(b, s);
	}
	slot_queue(b, s);
	return REQ_QUEUED;
}

static int handle_request(struct virtio_blk *b, int q, struct virtq_req *req)
{
	struct virtio_blk_outhdr hdr;
	uint8_t *status = status_byte(req);
	uint32_t type;
	uint64_t sector;

	if (!status) {
		/* Nowhere to say how it went: the driver broke the protocol. The chain is not
		 * returned; the driver has to reset the device anyway. */
		STAT(b, no_status, 1);
		virtio_dev_fail(&b->vdev, "request without a device-writable status byte");
		return REQ_BROKEN;
	}
	if (req->read_len < HDR_SIZE)
		return IOERR(err_header);
	virtq_copy_from_readable(req, &hdr, HDR_SIZE);
	type = le32toh(hdr.type);
	sector = le64toh(hdr.sector);

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return do_rw(b, q, req, status, type == VIRTIO_BLK_T_OUT, sector);
	case VIRTIO_BLK_T_FLUSH: {
		struct blk_slot *s;

		if (req->read_len != HDR_SIZE || req->write_len != 1)
			return IOERR(err_direction);
		STAT(b, flushes, 1);
		s = slot_get(b, q, req, status, type);
		s->io.op = BLK_IO_FSYNC;
		slot_queue(b, s);
		return REQ_QUEUED;
	}
	case VIRTIO_BLK_T_GET_ID: {
		char id[VIRTIO_BLK_ID_BYTES];
		uint64_t n;

		if (req->read_len != HDR_SIZE)
			return IOERR(err_direction);
		STAT(b, get_ids, 1);
		memcpy(id, b->serial, sizeof(id));
		n = virtq_copy_to_writable(req, id,
					   MIN(req->write_len - 1, sizeof(id)));
		return finish(b, q, req, status, VIRTIO_BLK_S_OK, (uint32_t)n + 1, NULL);
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return do_discard_wz(b, q, req, status, type);
	default:
		return finish(b, q, req, status, VIRTIO_BLK_S_UNSUPP, 1, &b->stats.unsupported);
	}
}

/* Pops and prepares requests until the queue is empty, out of slots or backend room (one
 * more operation than a request needs: the held-back read or write), or at the budget. Returns
 * whether any reached the backend, which has them submitted by run_io(); *budget_hit says
 * whether it stopped at the budget. */
static bool pop_requests(struct virtio_blk *b, int q, bool *budget_hit)
{
	struct blk_queue *bq = &b->queues[q];
	bool queued = false;
	int n = 0;

	*budget_hit = false;
	for (;;) {
		int r;

		if (n++ == VIRTIO_BUDGET) {
			*budget_hit = true;
			break;
		}

		if (!bq->free || !blk_io_has_room(b->io, BLK_IO_MAX_OPS + 1)) {
			bq->throttled = true; /* resumed by run_io() */
			break;
		}
		if (virtio_pop(&b->vdev, q, &b->req, VIRTQ_DEV_BOTH))
			break;
		r = handle_request(b, q, &b->req);
		if (r == REQ_QUEUED)
			queued = true;
		else if (r == REQ_BROKEN)
			break;
	}
	pending_flush(b);
	if (queued)
		STAT(b, batches, 1);
	return queued;
}

static void signal_queues(struct virtio_blk *b)
{
	for (int q = 0; q < b->ops.num_queues; q++) {
		if (b->queues[q].completed) {
			b->queues[q].completed = false;
			virtio_notify_used(&b->vdev, q);
		}
	}
}

static void blk_complete(void *arg, struct blk_io_req *r);

/* Submits what is queued, completes at once what is already done (a read from the page cache
 * completes within the submission), and restarts the queues that stopped for want of room,
 * until no step queues anything new; then signals each queue that completed something, once. */
static void run_io(struct virtio_blk *b)
{
	bool queued, budget_hit;

	do {
		b->resubmit = false;
		blk_io_submit_reap(b->io, blk_complete, b);
		queued = b->resubmit;
		for (int q = 0; q < b->ops.num_queues; q++) {
			if (!b->queues[q].throttled)
				continue;
			b->queues[q].throttled = false;
			if (virtio_queue_live(&b->vdev, q)) {
				queued |= pop_requests(b, q, &budget_hit);
				if (budget_hit)
					virtio_queue_kick(&b->vdev, q);
			}
		}
	} while (queued);
	signal_queues(b);
}

static bool blk_queue_notify(struct virtio_dev *dev, int q)
{
	struct virtio_blk *b = container_of(dev, struct virtio_blk, vdev);
	bool budget_hit;

	pop_requests(b, q, &budget_hit);
	run_io(b);
	return budget_hit;
}

/* A request finished (device lock held): it and those merged into it complete. */
static void blk_complete(void *arg, struct blk_io_req *r)
{
	struct virtio_blk *b = arg;
	struct blk_slot *s = container_of(r, struct blk_slot, io);
	/* A queue the driver disabled meanwhile has no ring to push to; a device that needs a
	 * reset completes nothing. */
	bool push = virtio_queue_live(&b->vdev, s->q);
	uint8_t st = VIRTIO_BLK_S_OK;

	if (blk_wz_continue(b, s))
		return;
	if (r->res) {
		bool dwz = s->type == VIRTIO_BLK_T_DISCARD || s->type == VIRTIO_BLK_T_WRITE_ZEROES;

		if (dwz && r->res == -EOPNOTSUPP) {
			/* The file system cannot: the guest's block layer falls back or gives up. */
			st = VIRTIO_BLK_S_UNSUPP;
		} else {
			st = VIRTIO_BLK_S_IOERR;
			STAT(b, io_errors, 1);
			if (b->io_errors_logged++ < IO_ERRORS_LOGGED)
				pr_warn("virtio-blk %s: I/O error: %s", b->path, strerror(-r->res));
		}
	}
	for (struct blk_slot *m = s; m; m = m->merged) {
		if (!r->res && m->type == VIRTIO_BLK_T_IN)
			STAT(b, bytes_read, m->bytes);
		else if (!r->res && m->type == VIRTIO_BLK_T_OUT)
			STAT(b, bytes_written, m->bytes);
		if (push) {
			*m->status = st;
			virtio_push(&b->vdev, m->q, m->head, r->res ? 1 : m->used);
		}
	}
	if (push)
		b->queues[s->q].completed = true;
	slot_put_all(b, s);
}

/* A request finished after a reset or at destruction: its buffers are no longer ours. */
static void blk_forget(void *arg, struct blk_io_req *r)
{
	slot_put_all(arg, container_of(r, struct blk_slot, io));
}

/* Completions are waiting (event-loop thread, no lock held). */
static void blk_ready(void *opaque)
{
	struct virtio_blk *b = opaque;

	pthread_mutex_lock(&b->vdev.lock);
	blk_io_reap(b->io, blk_complete, b);
	run_io(b);
	pthread_mutex_unlock(&b->vdev.lock);
}

/* ---- device ops ---- */

/* The driver turned the write cache off: from now on it sends no FLUSH and takes every completed
 * write as durable, also those it wrote with the cache on and never flushed, and those still in
 * flight (prepared without RWF_DSYNC). So wait for what is in flight, completing it, and make
 * the image durable once, before the config write returns. Rare (a driver's setup, an admin's
 * echo to cache_type): the vCPU waits. */
static void blk_cache_off(struct virtio_blk *b)
{
	blk_io_drain(b->io, blk_complete, b);
	if (fdatasync(b->img.fd) < 0) {
		STAT(b, io_errors, 1);
		if (b->io_errors_logged++ < IO_ERRORS_LOGGED)
			pr_warn("virtio-blk %s: flushing as the write cache goes off: %s", b->path,
				strerror(errno));
	}
	run_io(b); /* queues that stopped for want of room go on; completions are signalled */
}

static void blk_config_written(struct virtio_dev *dev, uint32_t off, uint32_t len)
{
	struct virtio_blk *b = container_of(dev, struct virtio_blk, vdev);
	const uint32_t wce_off = offsetof(struct virtio_blk_config, wce);

	/* Only wce is writable, and only with CONFIG_WCE; the rest snaps back. */
	if (off <= wce_off && wce_off - off < len && virtio_has_feature(dev, VIRTIO_BLK_F_CONFIG_WCE)) {
		uint8_t wce = b->config.wce ? 1 : 0;

		if (b->wce && !wce)
			blk_cache_off(b);
		b->wce = wce;
	}
	b->config = b->config_init;
	b->config.wce = b->wce;
}

static void blk_activate(struct virtio_dev *dev)
{
	struct virtio_blk *b = container_of(dev, struct virtio_blk, vdev);

	/* A driver that cannot flush must get durable writes. */
	if (!virtio_has_feature(dev, VIRTIO_BLK_F_FLUSH))
		b->wce = 0;
	b->config.wce = b->wce;
}

static void blk_reset(struct virtio_dev *dev)
{
	struct virtio_blk *b = container_of(dev, struct virtio_blk, vdev);

	/* Wait for what is in flight: the guest may reuse its buffers as soon as the reset is
	 * done. The requests are forgotten, not completed: the rings are gone. */
	blk_io_drain(b->io, blk_forget, b);
	for (int q = 0; q < b->ops.num_queues; q++)
		b->queues[q].throttled = b->queues[q].completed = false;
	b->config = b->config_init;
	b->wce = b->config_init.wce;
}

/* The driver disables one queue: wait for everything in flight; the other queues' requests
 * complete as usual, this queue's are dropped (blk_complete skips a queue that is not ready). */
static void blk_queue_disable(struct virtio_dev *dev, int q)
{
	struct virtio_blk *b = container_of(dev, struct virtio_blk, vdev);

	dev->vqs[q].ready = false;
	blk_io_drain(b->io, blk_complete, b);
	b->queues[q].throttled = b->queues[q].completed = false;
	signal_queues(b);
}

/* A snapshot is about to be saved (event-loop thread, dev->lock held, vCPUs paused): every
 * request taken from a ring completes now, its status byte and used entry in guest memory
 * before this returns. The completions are reaped here, synchronously (io_uring_wait_cqe, or
 * the pool's idle condition), not through the loop, which is this very thread; a write-zeroes
 * request's later steps run within the same wait. Nothing new is popped: requests still in
 * the avail ring are the restored device's to take (blk_snap_restore kicks the queues), and a
 * queue that had stopped for want of room is kicked instead of resumed here, so the source VM
 * goes on with it once the snapshot is done. */
static void blk_drain(struct virtio_dev *dev)
{
	struct virtio_blk *b = container_of(dev, struct virtio_blk, vdev);

	blk_io_drain(b->io, blk_complete, b);
	for (int q = 0; q < b->ops.num_queues; q++) {
		if (!b->queues[q].throttled)
			continue;
		b->queues[q].throttled = false;
		virtio_queue_kick(dev, q);
	}
	signal_queues(b);
}

static int blk_stats(struct virtio_dev *dev, struct stat_value *out, int max);
static void blk_destroy(struct virtio_dev *dev);

static const struct virtio_dev_ops blk_ops_template = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = 0x010000,
	.queue_max_size = BLK_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_blk_config),
	.queue_notify = blk_queue_notify,
	.config_written = blk_config_written,
	.reset = blk_reset,
	.queue_disable = blk_queue_disable,
	.activate = blk_activate,
	.stats = blk_stats,
	.drain = blk_drain,
	.save = blk_snap_save,
	.restore = blk_snap_restore,
	.destroy = blk_destroy,
};

/* ---- construction ---- */

static void blk_free(struct virtio_blk *b)
{
	free(b->slots);
	blk_wz_cleanup(b);
	blk_image_close(&b->img);
	free(b->path);
	free(b);
}

static void blk_destroy(struct virtio_dev *dev)
{
	struct virtio_blk *b = container_of(dev, struct virtio_blk, vdev);

	blk_io_destroy(b->io, blk_forget, b);
	virtio_dev_cleanup(&b->vdev);
	blk_free(b);
}

int virtio_blk_create(const struct virtio_env *env, const struct blk_opts *o,
		      struct virtio_dev **out, struct err *e)
{
	struct blk_image img;
	int err = blk_image_open(&img, o, e);

	return err ? err : virtio_blk_create_on(env, o, &img, out, e);
}

int virtio_blk_create_on(const struct virtio_env *env, const struct blk_opts *o,
			 struct blk_image *img, struct virtio_dev **out, struct err *e)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	struct virtio_blk_config *c;
	int nq = o->num_queues < 1 ? 1 : MIN(o->num_queues, VIRTIO_MAX_QUEUES), err;
	uint64_t f;

	if (!b) {
		blk_image_close(img);
		return err_set(e, -ENOMEM, "out of memory");
	}
	/* The device owns the image from here, on failure too (blk_free closes it). */
	b->img = *img;
	img->fd = img->fd_buffered = -1;
	b->ro = o->ro;
	b->path = strdup(o->path);
	b->slots = calloc((size_t)nq * BLK_QUEUE_SIZE, sizeof(*b->slots));
	if (!b->path || !b->slots) {
		blk_free(b);
		return err_set(e, -ENOMEM, "out of memory");
	}
	memcpy(b->serial, o->serial, MIN(strlen(o->serial), sizeof(b->serial)));

	f = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
	    (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
	    (1ULL << VIRTIO_BLK_F_CONFIG_WCE) | (1ULL << VIRTIO_BLK_F_MQ);
	f |= o->ro ? 1ULL << VIRTIO_BLK_F_RO
		   : (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	b->ops = blk_ops_template;
	b->ops.features = f;
	b->ops.num_queues = (uint16_t)nq;

	c = &b->config_init;
	c->capacity = htole64(b->img.capacity);
	c->size_max = htole32(BLK_SIZE_MAX);
	c->seg_max = htole32(BLK_SEG_MAX);
	/* 512 even with O_DIRECT on a 4 KiB device: the guest's view of an image (its partition
	 * table) must not depend on the host; unaligned requests take the buffered path. */
	c->blk_size = htole32(SECTOR);
	c->wce = o->cache == BLK_CACHE_WRITETHROUGH ? 0 : 1;
	c->num_queues = htole16((uint16_t)nq);
	c->max_discard_sectors = htole32(BLK_DWZ_MAX_SECTORS);
	c->max_discard_seg = htole32(BLK_DWZ_MAX_SEG);
	c->discard_sector_alignment = htole32(BLK_DISCARD_ALIGN);
	c->max_write_zeroes_sectors = htole32(BLK_DWZ_MAX_SECTORS);
	c->max_write_zeroes_seg = htole32(BLK_DWZ_MAX_SEG);
	c->write_zeroes_may_unmap = 1;
	b->config = *c;
	b->wce = c->wce;

	for (int q = 0; q < nq; q++)
		for (int i = BLK_QUEUE_SIZE - 1; i >= 0; i--) {
			struct blk_slot *s = &b->slots[q * BLK_QUEUE_SIZE + i];

			s->q = (uint8_t)q;
			slot_put(b, s);
		}
	err = virtio_dev_init(&b->vdev, env, &b->ops, &b->config);
	if (err) {
		blk_free(b);
		return err_set(e, err, "image %s: cannot set up its queues: %s", o->path,
			       strerror(-err));
	}
	err = blk_io_create(&b->io, env->loop, BLK_QUEUE_SIZE, blk_ready, b, e);
	if (err) {
		err_prefix(e, err, "image %s", o->path);
		virtio_dev_cleanup(&b->vdev);
		blk_free(b);
		return err;
	}
	pr_debug("virtio-blk: %s: %llu sectors, %d queue(s), %s, cache=%s%s", o->path,
		 (unsigned long long)b->img.capacity, nq, blk_io_backend(b->io),
		 o->cache == BLK_CACHE_NONE ? "none" : c->wce ? "writeback" : "writethrough",
		 o->ro ? ", read-only" : "");
	*out = &b->vdev;
	return 0;
}

static int blk_stats(struct virtio_dev *dev, struct stat_value *out, int max)
{
	struct virtio_blk *b = container_of(dev, struct virtio_blk, vdev);
	const struct virtio_blk_stats *st = &b->stats;
	struct stat_value v[] = {
		{ "backend", blk_io_backend(b->io), 0 },
		{ "reads", NULL, atomic_load(&st->reads) },
		{ "writes", NULL, atomic_load(&st->writes) },
		{ "flushes", NULL, atomic_load(&st->flushes) },
		{ "discards", NULL, atomic_load(&st->discards) },
		{ "write_zeroes", NULL, atomic_load(&st->write_zeroes) },
		{ "bytes_read", NULL, atomic_load(&st->bytes_read) },
		{ "bytes_written", NULL, atomic_load(&st->bytes_written) },
		{ "batches", NULL, atomic_load(&st->batches) },
		{ "merged", NULL, atomic_load(&st->merged) },
		{ "errors", NULL, atomic_load(&st->err_header) + atomic_load(&st->err_direction) +
			atomic_load(&st->err_length) + atomic_load(&st->err_range) +
			atomic_load(&st->err_segments) + atomic_load(&st->err_read_only) +
			atomic_load(&st->err_limits) + atomic_load(&st->err_flags) },
		{ "io_errors", NULL, atomic_load(&st->io_errors) },
		{ "unsupported", NULL, atomic_load(&st->unsupported) },
	};
	int n = MIN((int)ARRAY_SIZE(v), max);

	memcpy(out, v, n * sizeof(v[0]));
	return n;
}

const struct virtio_blk_stats *virtio_blk_stats(const struct virtio_dev *dev)
{
	return &container_of(dev, struct virtio_blk, vdev)->stats;
}

const char *virtio_blk_backend(const struct virtio_dev *dev)
{
	return blk_io_backend(container_of(dev, struct virtio_blk, vdev)->io);
}

/* virtio-balloon (device ID 5): inflate and deflate queues, a stats queue, DEFLATE_ON_OOM.
 * Inflated pages are given back to the host with madvise(MADV_DONTNEED), so mica's resident
 * memory really drops; every PFN is checked against guest RAM first. The host sets the target
 * while the VM runs through the control socket: `balloon MIB`, and reads the guest's statistics
 * with `balloon-stats`. */
#include <errno.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "snapshot/snapshot.h"
#include "vmm/control.h"
#include "vmm/err.h"
#include "vmm/log.h"
#include "vmm/util.h"
#include "vmm/memory.h"

#define INFLATE_Q 0
#define DEFLATE_Q 1
#define STATS_Q   2
#define PAGE_4K   (1ULL << VIRTIO_BALLOON_PFN_SHIFT)

struct virtio_balloon {
	struct virtio_dev vdev;
	struct virtio_balloon_config config;
	struct virtq_req req;
	uint32_t target_pages;      /* the host's: a guest write to num_pages is undone */
	uint64_t inflated_pages;    /* given back to the host, net of deflation */
	uint64_t bad_pfns;          /* PFNs outside guest RAM, ignored */
	bool stats_held;            /* the driver's stats buffer, kept until we want new stats */
	uint16_t stats_head;
	uint64_t stats[VIRTIO_BALLOON_S_NR];
	bool stats_valid[VIRTIO_BALLOON_S_NR];
	unsigned stats_updates;
};

/* Releases a run of contiguous guest pages with one madvise. */
static void release(struct virtio_balloon *b, uint64_t first_pfn, uint64_t npages)
{
	void *hva = gpa_range(b->vdev.env.mem, first_pfn * PAGE_4K, npages * PAGE_4K);

	if (hva && madvise(hva, npages * PAGE_4K, MADV_DONTNEED) == 0)
		b->inflated_pages += npages;
}

static void inflate(struct virtio_balloon *b, const struct virtq_req *req)
{
	uint64_t run_start = 0, run_len = 0;

	for (int s = 0; s < req->nsegs; s++) {
		const uint8_t *p = req->segs[s].hva;

		for (uint32_t i = 0; i + 4 <= req->segs[s].len; i += 4) {
			uint32_t pfn;

			memcpy(&pfn, p + i, 4);
			if (!gpa_range(b->vdev.env.mem, (uint64_t)pfn * PAGE_4K, PAGE_4K)) {
				b->bad_pfns++;
				continue;
			}
			if (run_len && pfn == run_start + run_len) {
				run_len++;
				continue;
			}
			if (run_len)
				release(b, run_start, run_len);
			run_start = pfn;
			run_len = 1;
		}
	}
	if (run_len)
		release(b, run_start, run_len);
}

static void deflate(struct virtio_balloon *b, const struct virtq_req *req)
{
	/* Nothing to do for the memory itself (a touched page simply faults back in), but keep
	 * the count honest. */
	uint64_t n = req->read_len / 4;

	b->inflated_pages -= MIN(n, b->inflated_pages);
}

static void read_stats(struct virtio_balloon *b, const struct virtq_req *req)
{
	struct virtio_balloon_stat st;
	uint8_t buf[VIRTIO_BALLOON_S_NR * sizeof(st) * 2];
	uint64_t n = virtq_copy_from_readable(req, buf, sizeof(buf));

	for (uint64_t off = 0; off + sizeof(st) <= n; off += sizeof(st)) {
		memcpy(&st, buf + off, sizeof(st));
		if (st.tag < VIRTIO_BALLOON_S_NR) {
			b->stats[st.tag] = st.val;
			b->stats_valid[st.tag] = true;
		}
	}
	b->stats_updates++;
}

static bool balloon_queue_notify(struct virtio_dev *dev, int q)
{
	struct virtio_balloon *b = container_of(dev, struct virtio_balloon, vdev);
	int n = 0;

	if (q == STATS_Q) {
		/* The driver hands its stats buffer back; we keep it until we want fresh stats. */
		while (!b->stats_held && virtio_pop(dev, q, &b->req, VIRTQ_DEV_READS) == 0) {
			read_stats(b, &b->req);
			b->stats_held = true;
			b->stats_head = b->req.head;
		}
		return false;
	}
	while (n < VIRTIO_BUDGET && virtio_pop(dev, q, &b->req, VIRTQ_DEV_READS) == 0) {
		if (q == INFLATE_Q)
			inflate(b, &b->req);
		else
			deflate(b, &b->req);
		virtio_push(dev, q, b->req.head, 0);
		n++;
	}
	if (n)
		virtio_notify_used(dev, q);
	return n == VIRTIO_BUDGET;
}

/* The driver disables a queue: a stats buffer held from it is no longer the device's to
 * give back (its ring is gone). */
static void balloon_queue_disable(struct virtio_dev *dev, int q)
{
	struct virtio_balloon *b = container_of(dev, struct virtio_balloon, vdev);

	if (q == STATS_Q)
		b->stats_held = false;
}

static void balloon_reset(struct virtio_dev *dev)
{
	struct virtio_balloon *b = container_of(dev, struct virtio_balloon, vdev);

	b->stats_held = false;
	b->config.actual = 0;
}

/* The driver writes `actual`; everything else in the config is the host's. */
static void balloon_config_written(struct virtio_dev *dev, uint32_t off, uint32_t len)
{
	struct virtio_balloon *b = container_of(dev, struct virtio_balloon, vdev);
	uint32_t actual = b->config.actual;

	(void)off, (void)len;
	memset(&b->config, 0, sizeof(b->config));
	b->config.num_pages = b->target_pages;
	b->config.actual = actual;
}

/* ---- snapshots ---- */

#define BALLOON_SNAP_FORMAT 1

/* Beyond the core's state: the host's target, the guest's actual (the config is rebuilt from
 * both), the pages given back, and the stats buffer the device holds (its head: it stays the
 * device's in the restored VM, given back at the next `balloon-stats`), with the statistics
 * read so far. Nothing is in flight between requests: no drain. */
static int balloon_save(struct virtio_dev *dev, struct snap_writer *w, struct err *e)
{
	struct virtio_balloon *b = container_of(dev, struct virtio_balloon, vdev);

	(void)e;
	snap_put_u32(w, BALLOON_SNAP_FORMAT);
	snap_put_u32(w, b->target_pages);
	snap_put_u32(w, b->config.actual);
	snap_put_u64(w, b->inflated_pages);
	snap_put_u64(w, b->bad_pfns);
	snap_put_u8(w, b->stats_held);
	snap_put_u16(w, b->stats_head);
	snap_put_u32(w, b->stats_updates);
	for (int i = 0; i < VIRTIO_BALLOON_S_NR; i++) {
		snap_put_u8(w, b->stats_valid[i]);
		snap_put_u64(w, b->stats[i]);
	}
	return 0;
}

static int balloon_restore(struct virtio_dev *dev, struct snap_cursor *c, struct err *e)
{
	struct virtio_balloon *b = container_of(dev, struct virtio_balloon, vdev);
	uint64_t ram_pages = dev->env.mem->ram_size / PAGE_4K, inflated, bad, stats[VIRTIO_BALLOON_S_NR];
	uint32_t format, target, actual, updates;
	uint8_t held, valid[VIRTIO_BALLOON_S_NR];
	uint16_t head;

	format = snap_get_u32(c);
	target = snap_get_u32(c);
	actual = snap_get_u32(c);
	inflated = snap_get_u64(c);
	bad = snap_get_u64(c);
	held = snap_get_u8(c);
	head = snap_get_u16(c);
	updates = snap_get_u32(c);
	for (int i = 0; i < VIRTIO_BALLOON_S_NR; i++) {
		valid[i] = snap_get_u8(c);
		stats[i] = snap_get_u64(c);
	}
	if (c->err)
		return err_set(e, -EINVAL, "snapshot: virtio-balloon: its state is cut short");
	if (format != BALLOON_SNAP_FORMAT)
		return err_set(e, -EINVAL, "snapshot: virtio-balloon: unknown state format %u",
			       format);
	if (target > ram_pages || inflated > ram_pages)
		return err_set(e, -EINVAL, "snapshot: virtio-balloon: a balloon larger than the "
			       "guest's RAM");
	/* A held buffer is a head of the live stats queue's ring. */
	if (held > 1 || (held && (!virtio_queue_live(dev, STATS_Q) ||
				  head >= dev->vqs[STATS_Q].size)))
		return err_set(e, -EINVAL, "snapshot: virtio-balloon: an invalid stats buffer");
	for (int i = 0; i < VIRTIO_BALLOON_S_NR; i++)
		if (valid[i] > 1)
			return err_set(e, -EINVAL, "snapshot: virtio-balloon: invalid statistics");
	b->target_pages = target;
	memset(&b->config, 0, sizeof(b->config));
	b->config.num_pages = target;
	b->config.actual = actual;
	b->inflated_pages = inflated;
	b->bad_pfns = bad;
	b->stats_held = held;
	b->stats_head = head;
	b->stats_updates = updates;
	for (int i = 0; i < VIRTIO_BALLOON_S_NR; i++) {
		b->stats_valid[i] = valid[i];
		b->stats[i] = stats[i];
	}
	return 0;
}

static int balloon_stats(struct virtio_dev *dev, struct stat_value *out, int max);
static void balloon_destroy(struct virtio_dev *dev);

static const struct virtio_dev_ops balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.pci_class = 0x050000,
	.features = (1ULL << VIRTIO_BALLOON_F_STATS_VQ) | (1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM),
	.num_queues = 3,
	.queue_max_size = 256,
	.config_size = sizeof(struct virtio_balloon_config),
	.queue_notify = balloon_queue_notify,
	.config_written = balloon_config_written,
	.reset = balloon_reset,
	.queue_disable = balloon_queue_disable,
	.stats = balloon_stats,
	.save = balloon_save,
	.restore = balloon_restore,
	.destroy = balloon_destroy,
};

/* control: `balloon MIB` sets the target; `balloon` alone reports. */
static int cmd_balloon(void *opaque, const char *args, char *out, size_t len)
{
	struct virtio_balloon *b = opaque;
	struct virtio_dev *dev = &b->vdev;
	uint64_t mib;
	char *end;

	pthread_mutex_lock(&dev->lock);
	if (*args) {
		mib = strtoull(args, &end, 10);
		if (*end || mib * MiB > dev->env.mem->ram_size) {
			pthread_mutex_unlock(&dev->lock);
			snprintf(out, len, "give a target in MiB, at most the guest's RAM");
			return -EINVAL;
		}
		b->target_pages = (uint32_t)(mib * MiB / PAGE_4K);
		b->config.num_pages = b->target_pages;
		virtio_config_changed(dev);
	}
	snprintf(out, len, "target %llu MiB, guest reports %llu MiB in the balloon, %llu MiB "
		 "released to the host",
		 (unsigned long long)b->config.num_pages * PAGE_4K / MiB,
		 (unsigned long long)b->config.actual * PAGE_4K / MiB,
		 (unsigned long long)b->inflated_pages * PAGE_4K / MiB);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

/* control: `balloon-stats` returns the latest statistics and asks the guest for new ones. */
static int cmd_balloon_stats(void *opaque, const char *args, char *out, size_t len)
{
	static const char *names[] = VIRTIO_BALLOON_S_NAMES;
	struct virtio_balloon *b = opaque;
	struct virtio_dev *dev = &b->vdev;
	size_t n;

	(void)args;
	pthread_mutex_lock(&dev->lock);
	n = snprintf(out, len, "updates %u", b->stats_updates);
	for (int i = 0; i < VIRTIO_BALLOON_S_NR && n < len; i++)
		if (b->stats_valid[i])
			n += snprintf(out + n, len - n, " %s %llu", names[i],
				      (unsigned long long)b->stats[i]);
	if (b->stats_held && virtio_dev_ok(dev)) {
		b->stats_held = false;
		virtio_push(dev, STATS_Q, b->stats_head, 0);
		virtio_notify_used(dev, STATS_Q);
	}
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static int balloon_stats(struct virtio_dev *dev, struct stat_value *out, int max)
{
	struct virtio_balloon *b = container_of(dev, struct virtio_balloon, vdev);
	struct stat_value v[] = {
		{ "inflated_pages", NULL, b->inflated_pages },
		{ "bad_pfns", NULL, b->bad_pfns },
		{ "stats_updates", NULL, b->stats_updates },
	};
	int n = MIN((int)ARRAY_SIZE(v), max);

	memcpy(out, v, n * sizeof(v[0]));
	return n;
}

static void balloon_destroy(struct virtio_dev *dev)
{
	struct virtio_balloon *b = container_of(dev, struct virtio_balloon, vdev);

	virtio_dev_cleanup(&b->vdev);
	free(b);
}

int virtio_balloon_create(const struct virtio_env *env, struct control *ctl,
			  struct virtio_dev **out)
{
	struct virtio_balloon *b = calloc(1, sizeof(*b));
	int err;

	if (!b)
		return -ENOMEM;
	err = virtio_dev_init(&b->vdev, env, &balloon_ops, &b->config);
	if (err) {
		free(b);
		return err;
	}
	/* The commands stay registered for the VM's life: the machine owns the device as long. */
	err = control_register(ctl, "balloon", "balloon [MIB]: set or show the target", cmd_balloon, b);
	if (!err)
		err = control_register(ctl, "balloon-stats", "the guest's memory statistics",
				       cmd_balloon_stats, b);
	if (err) {
		balloon_destroy(&b->vdev);
		return err;
	}
	*out = &b->vdev;
	return 0;
}

/* virtio-mmio: the register block of the OASIS virtio spec (4.2.2, and 4.2.4 for legacy).
 * Queue notifications go to an ioeventfd with the queue index as datamatch, so they wake the
 * event loop without ever exiting to mica's vCPU threads; interrupts go out through an irqfd
 * on the slot's GSI.
 *
 * Every register access runs under the device lock, start to end: a selector (QueueSel,
 * DeviceFeaturesSel, DriverFeaturesSel) is read once under it, checked, and used, so another
 * vCPU writing the selector meanwhile cannot make one access see two values. */
#include "devices/virtio/mmio.h"

#include <errno.h>
#include <linux/virtio_mmio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/virtio.h"
#include "snapshot/snapshot.h"
#include "vmm/err.h"
#include "vmm/bus.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/machine.h"

#define MMIO_MAGIC  0x74726976 /* "virt" */
#define MMIO_VENDOR 0x6163696d /* "mica" */
static const uint8_t slot_gsi[] = VIRTIO_MMIO_GSIS;
#define MMIO_MAX_SLOTS (sizeof(slot_gsi) / sizeof(slot_gsi[0]))

/* The transport's register file; guarded by dev->lock like the rest of the device. */
struct virtio_mmio {
	struct virtio_dev *dev;
	struct machine *machine;
	uint64_t base;
	uint32_t gsi;
	bool legacy;
	int irqfd;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel;
	uint32_t guest_page_size;                /* legacy */
	uint32_t queue_align[VIRTIO_MAX_QUEUES]; /* legacy */
	uint32_t queue_pfn[VIRTIO_MAX_QUEUES];   /* legacy */
	bool notify_registered[VIRTIO_MAX_QUEUES];
};

static void mmio_interrupt(struct virtio_dev *dev, int queue)
{
	struct virtio_mmio *m = dev->transport_priv;
	uint64_t one = 1;

	(void)queue;
	if (write(m->irqfd, &one, sizeof(one)) < 0)
		pr_debug("%s: irqfd write failed: %s", dev->ops->name, strerror(errno));
}

static void mmio_destroy(struct virtio_dev *dev)
{
	struct virtio_mmio *m = dev->transport_priv;

	if (m->irqfd >= 0)
		close(m->irqfd);
	free(m);
	dev->transport_priv = NULL;
}

static const struct virtio_transport_ops mmio_transport_ops = {
	.interrupt = mmio_interrupt,
	.destroy = mmio_destroy,
};

/* ---- registers (dev->lock held) ---- */

static uint32_t reg_read(struct virtio_mmio *m, uint64_t off)
{
	struct virtio_dev *dev = m->dev;
	uint32_t q = m->queue_sel;            /* read once: see the comment at the top */
	bool valid = q < dev->ops->num_queues;

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE: return MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION: return m->legacy ? 1 : 2;
	case VIRTIO_MMIO_DEVICE_ID: return dev->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID: return MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES: {
		uint32_t sel = m->device_features_sel;

		return sel < 2 ? (uint32_t)(virtio_offered_features(dev) >> (32 * sel)) : 0;
	}
	case VIRTIO_MMIO_QUEUE_NUM_MAX: return valid ? dev->ops->queue_max_size : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS: return dev->isr;
	case VIRTIO_MMIO_STATUS: return dev->status;
	}
	if (m->legacy)
		return off == VIRTIO_MMIO_QUEUE_PFN && valid ? m->queue_pfn[q] : 0;
	switch (off) {
	case VIRTIO_MMIO_QUEUE_READY: return valid ? dev->vqs[q].ready : 0;
	case VIRTIO_MMIO_CONFIG_GENERATION: return dev->config_generation;
	/* No shared memory regions: whatever SHMSel says, the region's length (and base) read -1,
	 * the spec's "no such region" (a driver that looks, as virtio-fs for its DAX window,
	 * would otherwise see a region of length 0 at address 0 and fail its probe). */
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		return 0xffffffff;
	}
	return 0;
}

/* Transport state a reset clears (the spec leaves the selectors alone; mica clears them, as a
 * driver must not rely on either). */
static void transport_reset(struct virtio_mmio *m)
{
	memset(m->queue_pfn, 0, sizeof(m->queue_pfn));
	m->queue_sel = m->device_features_sel = m->driver_features_sel = 0;
}

static void reg_write(struct virtio_mmio *m, uint64_t off, uint32_t v)
{
	struct virtio_dev *dev = m->dev;
	uint32_t q = m->queue_sel;            /* read once: see the comment at the top */

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL: m->device_features_sel = v; return;
	case VIRTIO_MMIO_DRIVER_FEATURES: virtio_set_driver_features(dev, m->driver_features_sel, v); return;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL: m->driver_features_sel = v; return;
	case VIRTIO_MMIO_QUEUE_SEL: m->queue_sel = v; return;
	case VIRTIO_MMIO_QUEUE_NUM: virtio_queue_set_size(dev, q, v); return;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Only reached when no ioeventfd matched: a queue index out of range (ignored), or
		 * an ioeventfd that could not be registered. */
		virtio_queue_notify_userspace(dev, v);
		return;
	case VIRTIO_MMIO_INTERRUPT_ACK: dev->isr &= ~v; return;
	case VIRTIO_MMIO_STATUS:
		if (v == 0)
			transport_reset(m);
		virtio_write_status(dev, (uint8_t)v);
		return;
	}
	if (q >= dev->ops->num_queues)
		return;
	if (m->legacy) {
		switch (off) {
		case VIRTIO_MMIO_GUEST_PAGE_SIZE: m->guest_page_size = v; break;
		case VIRTIO_MMIO_QUEUE_ALIGN: m->queue_align[q] = v; break;
		case VIRTIO_MMIO_QUEUE_PFN:
			if (!v) {
				virtio_queue_set_ready(dev, q, false);
				m->queue_pfn[q] = 0;
			} else if (!dev->vqs[q].ready) {
				/* Legacy rings sit in one block at QueuePFN: descriptors, avail ring,
				 * then (aligned) used. */
				uint64_t page = m->guest_page_size ? m->guest_page_size : 4096;

				m->queue_pfn[q] = v;
				virtio_queue_set_legacy(dev, q, v * page,
							m->queue_align[q] ? m->queue_align[q] : 4096);
			}
			break;
		}
		return;
	}
	switch (off) {
	case VIRTIO_MMIO_QUEUE_READY: virtio_queue_set_ready(dev, q, v & 1); break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW: case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW: case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
	case VIRTIO_MMIO_QUEUE_USED_LOW: case VIRTIO_MMIO_QUEUE_USED_HIGH: {
		/* Descriptor, avail and used rings in that order, 16 bytes apart: low word, then
		 * high word. */
		enum virtio_ring ring = (enum virtio_ring)((off - VIRTIO_MMIO_QUEUE_DESC_LOW) / 16);
		bool high = off & 4;

		virtio_queue_set_addr(dev, q, ring, high ? (uint64_t)v << 32 : v,
				      high ? ~0xffffffffULL : 0xffffffffULL);
		break;
	}
	}
}

/* ---- the bus ---- */

static void mmio_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct virtio_mmio *m = opaque;
	uint64_t v = 0; /* as wide as any access: an 8-byte read copies out no stack bytes */

	pthread_mutex_lock(&m->dev->lock);
	if (off >= VIRTIO_MMIO_CONFIG)
		virtio_config_read(m->dev, off - VIRTIO_MMIO_CONFIG, data, len);
	else if (len == 4 && !(off & 3))
		v = reg_read(m, off);
	pthread_mutex_unlock(&m->dev->lock);
	/* Registers are 32-bit; other widths read as zero. */
	if (off < VIRTIO_MMIO_CONFIG)
		memcpy(data, &v, len);
}

static void mmio_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct virtio_mmio *m = opaque;
	uint32_t v;

	pthread_mutex_lock(&m->dev->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		virtio_config_write(m->dev, off - VIRTIO_MMIO_CONFIG, data, len);
	} else if (len == 4 && !(off & 3)) {
		memcpy(&v, data, 4);
		reg_write(m, off, v);
	}
	pthread_mutex_unlock(&m->dev->lock);
}

static const struct bus_ops mmio_bus_ops = { .read = mmio_read, .write = mmio_write };

/* ---- snapshots ----
 *
 * The register file, then the virtio core with its model, all under dev->lock. Everything
 * derived from the slot (base, GSI, the notify ioeventfds, the irqfd) is fixed at attach and
 * so already in place in a device created from the same options. An interrupt already
 * signalled on the irqfd is the interrupt controller's state, not the device's. */

static int mmio_save(void *opaque, struct snap_writer *w, struct err *e)
{
	struct virtio_mmio *m = opaque;
	struct virtio_dev *dev = m->dev;
	int err;

	pthread_mutex_lock(&dev->lock);
	virtio_dev_drain(dev);
	snap_put_u8(w, m->legacy);
	snap_put_u32(w, m->device_features_sel);
	snap_put_u32(w, m->driver_features_sel);
	snap_put_u32(w, m->queue_sel);
	snap_put_u32(w, m->guest_page_size);
	for (int q = 0; q < dev->ops->num_queues; q++) {
		snap_put_u32(w, m->queue_align[q]);
		snap_put_u32(w, m->queue_pfn[q]);
	}
	err = virtio_dev_save(dev, w, e);
	pthread_mutex_unlock(&dev->lock);
	return err;
}

static int mmio_restore(void *opaque, struct snap_cursor *c, struct err *e)
{
	struct virtio_mmio *m = opaque;
	struct virtio_dev *dev = m->dev;
	uint32_t align[VIRTIO_MAX_QUEUES], pfn[VIRTIO_MAX_QUEUES], dsel, gsel, qsel, page;
	uint8_t legacy = snap_get_u8(c);
	int err;

	dsel = snap_get_u32(c);
	gsel = snap_get_u32(c);
	qsel = snap_get_u32(c);
	page = snap_get_u32(c);
	for (int q = 0; q < dev->ops->num_queues; q++) {
		align[q] = snap_get_u32(c);
		pfn[q] = snap_get_u32(c);
	}
	if (c->err)
		return err_set(e, -EBADMSG, "snapshot: virtio-mmio %s: section truncated",
			       dev->ops->name);
	if (legacy != m->legacy)
		return err_set(e, -EINVAL, "snapshot: virtio-mmio %s: saved a %s device, this is "
			       "a %s one", dev->ops->name, legacy ? "legacy" : "modern",
			       m->legacy ? "legacy" : "modern");
	for (int q = 0; q < dev->ops->num_queues; q++)
		if (!m->legacy && (align[q] || pfn[q]))
			return err_set(e, -EINVAL, "snapshot: virtio-mmio %s: legacy queue registers "
				       "on a modern device", dev->ops->name);
	pthread_mutex_lock(&dev->lock);
	/* Selectors, page size and alignment: any value the guest can write (each access checks
	 * what it reads; the rings were checked when the queue was enabled, and are again by
	 * virtio_dev_restore). */
	m->device_features_sel = dsel;
	m->driver_features_sel = gsel;
	m->queue_sel = qsel;
	m->guest_page_size = page;
	for (int q = 0; q < dev->ops->num_queues; q++) {
		m->queue_align[q] = align[q];
		m->queue_pfn[q] = pfn[q];
	}
	err = virtio_dev_restore(dev, c, e);
	pthread_mutex_unlock(&dev->lock);
	if (!err && snap_cursor_end(c))
		err = err_set(e, -EBADMSG, "snapshot: virtio-mmio %s: section of another length",
			      dev->ops->name);
	return err;
}

static const struct snap_ops mmio_snap_ops = {
	.name = "virtio-mmio", .version = 1, .save = mmio_save, .restore = mmio_restore,
};

/* ---- set-up ---- */

static int next_slot(const struct machine *mach, unsigned *slot)
{
	*slot = 0;
	for (int i = 0; i < mach->nplatform_devs; i++)
		if (!strcmp(mach->platform_devs[i].compatible, "virtio,mmio"))
			(*slot)++;
	return *slot < MMIO_MAX_SLOTS ? 0 : -ENOSPC;
}

int virtio_mmio_attach(struct machine *mach, struct virtio_dev *dev, bool legacy)
{
	struct virtio_mmio *m;
	unsigned slot;
	int err = next_slot(mach, &slot);

	if (err)
		return err;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->dev = dev;
	m->machine = mach;
	m->legacy = legacy;
	m->base = VIRTIO_MMIO_BASE + slot * VIRTIO_MMIO_SLOT_SIZE;
	m->gsi = slot_gsi[slot];
	m->irqfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	dev->transport = &mmio_transport_ops;
	dev->transport_priv = m;
	dev->legacy = legacy;
	if (m->irqfd < 0)
		return -errno;
	err = machine_irqfd(mach, m->irqfd, m->gsi, true);
	for (int q = 0; q < dev->ops->num_queues && !err; q++) {
		struct machine_ioeventfd io = {
			.fd = virtio_kick_fd(dev, q), .addr = m->base + VIRTIO_MMIO_QUEUE_NOTIFY,
			.len = 4, .datamatch = true, .data = q,
		};

		err = machine_ioeventfd(mach, &io, true);
		m->notify_registered[q] = !err;
	}
	if (!err)
		err = bus_register(mach->mmio, m->base, VIRTIO_MMIO_SLOT_SIZE, &mmio_bus_ops, m,
				   dev->ops->name);
	if (!err)
		err = machine_add_platform_dev(mach, &(struct machine_platform_dev){
			.compatible = "virtio,mmio", .base = m->base, .size = VIRTIO_MMIO_SLOT_SIZE,
			.gsi = m->gsi });
	if (!err)
		err = machine_add_state(mach, m, &mmio_snap_ops);
	return err;
}

/* virtio-mmio: the register block of the OASIS virtio spec (4.2.2, and 4.2.4 for legacy).
 * Queue notifications go to an ioeventfd with the queue index as datamatch, so they wake the
 * event loop without ever exiting to mica's vCPU threads; interrupts go out through an irqfd
 * on the slot's GSI. */
#include "devices/virtio/mmio.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/virtio_mmio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/virtio/virtio.h"
#include "vmm/bus.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define MMIO_MAGIC  0x74726976 /* "virt" */
#define MMIO_VENDOR 0x6163696d /* "mica" */
static const uint8_t slot_gsi[] = VIRTIO_MMIO_GSIS;
#define MMIO_MAX_SLOTS (sizeof(slot_gsi) / sizeof(slot_gsi[0]))

struct virtio_mmio {
	struct virtio_dev *dev;
	struct vm *vm;
	uint64_t base;
	uint32_t gsi;
	bool legacy;
	int irqfd;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel;
	uint32_t guest_page_size;        /* legacy */
	uint32_t queue_align[VIRTIO_MAX_QUEUES]; /* legacy */
	uint32_t queue_pfn[VIRTIO_MAX_QUEUES];   /* legacy */
	struct virtio_kick notify[VIRTIO_MAX_QUEUES];
};

static void mmio_interrupt(struct virtio_dev *dev, int queue)
{
	struct virtio_mmio *m = dev->transport_priv;
	uint64_t one = 1;

	(void)queue;
	if (write(m->irqfd, &one, sizeof(one)) < 0)
		pr_debug("%s: irqfd write failed: %s", dev->ops->name, strerror(errno));
}

static const struct virtio_transport_ops mmio_transport_ops = {
	.interrupt = mmio_interrupt,
};

static bool queue_selected(const struct virtio_mmio *m)
{
	return m->queue_sel < m->dev->ops->num_queues;
}

static uint32_t mmio_reg_read(struct virtio_mmio *m, uint64_t off)
{
	struct virtio_dev *dev = m->dev;
	struct virtq *vq = queue_selected(m) ? &dev->vqs[m->queue_sel] : NULL;
	uint32_t v = 0;

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE: return MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION: return m->legacy ? 1 : 2;
	case VIRTIO_MMIO_DEVICE_ID: return dev->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID: return MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return m->device_features_sel < 2
			       ? (uint32_t)(virtio_offered_features(dev) >> (32 * m->device_features_sel))
			       : 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return vq ? dev->ops->queue_max_size : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return atomic_load(&dev->isr);
	case VIRTIO_MMIO_STATUS:
		return virtio_get_status(dev);
	}
	pthread_mutex_lock(&dev->lock);
	if (m->legacy) {
		if (off == VIRTIO_MMIO_QUEUE_PFN && vq)
			v = m->queue_pfn[m->queue_sel];
	} else {
		switch (off) {
		case VIRTIO_MMIO_QUEUE_READY:
			v = vq ? vq->ready : 0;
			break;
		case VIRTIO_MMIO_CONFIG_GENERATION:
			v = dev->config_generation;
			break;
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return v;
}

/* Legacy rings sit in one block at QueuePFN: descriptors, avail ring, then (aligned) used. */
static void legacy_set_pfn(struct virtio_mmio *m, int q, uint32_t pfn)
{
	struct virtio_dev *dev = m->dev;
	struct virtq *vq = &dev->vqs[q];
	uint64_t num = dev->queue_size[q], align = m->queue_align[q] ? m->queue_align[q] : 4096;

	if (!pfn) {
		virtio_queue_set_ready(dev, q, false);
		pthread_mutex_lock(&dev->lock);
		m->queue_pfn[q] = 0;
		pthread_mutex_unlock(&dev->lock);
		return;
	}
	pthread_mutex_lock(&dev->lock);
	m->queue_pfn[q] = pfn;
	vq->desc_gpa = (uint64_t)pfn * (m->guest_page_size ? m->guest_page_size : 4096);
	vq->avail_gpa = vq->desc_gpa + 16 * num;
	/* align must be a power of two for the rounding below; a bad one makes the rings fail
	 * validation rather than land somewhere unintended. */
	if (align & (align - 1))
		align = 1;
	vq->used_gpa = ALIGN_UP(vq->avail_gpa + 6 + 2 * num, align);
	pthread_mutex_unlock(&dev->lock);
	virtio_queue_set_ready(dev, q, true);
}

static void set_queue_addr(struct virtio_mmio *m, uint64_t *addr, bool high, uint32_t v)
{
	pthread_mutex_lock(&m->dev->lock);
	/* The driver must not move a live queue; such writes are dropped. */
	if (!m->dev->vqs[m->queue_sel].ready)
		*addr = high ? (*addr & 0xffffffffULL) | ((uint64_t)v << 32)
			     : (*addr & ~0xffffffffULL) | v;
	pthread_mutex_unlock(&m->dev->lock);
}

static void mmio_reg_write(struct virtio_mmio *m, uint64_t off, uint32_t v)
{
	struct virtio_dev *dev = m->dev;
	int q = m->queue_sel;
	struct virtq *vq = queue_selected(m) ? &dev->vqs[q] : NULL;

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		m->device_features_sel = v;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		virtio_set_driver_features(dev, m->driver_features_sel, v);
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		m->driver_features_sel = v;
		return;
	case VIRTIO_MMIO_QUEUE_SEL:
		m->queue_sel = v;
		return;
	case VIRTIO_MMIO_QUEUE_NUM:
		pthread_mutex_lock(&dev->lock);
		if (vq && !vq->ready && v && v <= dev->ops->queue_max_size && !(v & (v - 1)))
			dev->queue_size[q] = v;
		pthread_mutex_unlock(&dev->lock);
		return;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Only reached when no ioeventfd matched: a queue index out of range (ignored), or
		 * an ioeventfd that could not be registered. */
		if (v < dev->ops->num_queues)
			atomic_fetch_add(&dev->stats.notifies_userspace, 1);
		virtio_queue_notified(dev, (int)v);
		return;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		atomic_fetch_and(&dev->isr, ~v);
		return;
	case VIRTIO_MMIO_STATUS:
		if (v == 0) {
			/* A legacy reset also forgets the queue pages. */
			pthread_mutex_lock(&dev->lock);
			memset(m->queue_pfn, 0, sizeof(m->queue_pfn));
			pthread_mutex_unlock(&dev->lock);
			m->queue_sel = m->device_features_sel = m->driver_features_sel = 0;
		}
		virtio_set_status(dev, (uint8_t)v);
		return;
	}
	if (!vq)
		return;
	if (m->legacy) {
		switch (off) {
		case VIRTIO_MMIO_GUEST_PAGE_SIZE:
			m->guest_page_size = v;
			break;
		case VIRTIO_MMIO_QUEUE_ALIGN:
			m->queue_align[q] = v;
			break;
		case VIRTIO_MMIO_QUEUE_PFN:
			legacy_set_pfn(m, q, v);
			break;
		}
		return;
	}
	switch (off) {
	case VIRTIO_MMIO_QUEUE_READY:
		virtio_queue_set_ready(dev, q, v & 1);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:  set_queue_addr(m, &vq->desc_gpa, false, v); break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH: set_queue_addr(m, &vq->desc_gpa, true, v); break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:  set_queue_addr(m, &vq->avail_gpa, false, v); break;
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH: set_queue_addr(m, &vq->avail_gpa, true, v); break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:  set_queue_addr(m, &vq->used_gpa, false, v); break;
	case VIRTIO_MMIO_QUEUE_USED_HIGH: set_queue_addr(m, &vq->used_gpa, true, v); break;
	}
}

static void mmio_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct virtio_mmio *m = opaque;

	if (off >= VIRTIO_MMIO_CONFIG) {
		virtio_config_read(m->dev, off - VIRTIO_MMIO_CONFIG, data, len);
		return;
	}
	/* Registers are 32-bit; other widths read as zero. */
	if (len != 4 || (off & 3)) {
		memset(data, 0, len);
		return;
	}
	*(uint32_t *)data = mmio_reg_read(m, off);
}

static void mmio_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct virtio_mmio *m = opaque;

	if (off >= VIRTIO_MMIO_CONFIG) {
		virtio_config_write(m->dev, off - VIRTIO_MMIO_CONFIG, data, len);
		return;
	}
	if (len == 4 && !(off & 3))
		mmio_reg_write(m, off, *(const uint32_t *)data);
}

static const struct bus_ops mmio_bus_ops = { .read = mmio_read, .write = mmio_write };

static int setup_notify(struct virtio_mmio *m, int q)
{
	struct kvm_ioeventfd io = {
		.datamatch = q,
		.addr = m->base + VIRTIO_MMIO_QUEUE_NOTIFY,
		.len = 4,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
	};
	int err = virtio_kick_init(&m->notify[q], m->dev, q);

	if (err)
		return err;
	io.fd = m->notify[q].h.fd;
	return ioctl(m->vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

static void virtio_mmio_destroy(void *opaque)
{
	struct virtio_mmio *m = opaque;

	for (int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		virtio_kick_close(&m->notify[q]);
	if (m->irqfd >= 0)
		close(m->irqfd);
	free(m);
}

int virtio_mmio_attach(struct vm *vm, struct virtio_dev *dev, bool legacy)
{
	struct kvm_irqfd irqfd = { 0 };
	struct virtio_mmio *m;
	unsigned slot = 0;
	int err;

	for (int i = 0; i < vm->nplatform_devs; i++)
		if (!strcmp(vm->platform_devs[i].compatible, "virtio,mmio"))
			slot++;
	if (slot >= MMIO_MAX_SLOTS || vm->nplatform_devs >= VM_MAX_PLATFORM_DEVS)
		return -ENOSPC;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->dev = dev;
	m->vm = vm;
	m->legacy = legacy;
	m->base = VIRTIO_MMIO_BASE + slot * VIRTIO_MMIO_SLOT_SIZE;
	m->gsi = slot_gsi[slot];
	m->irqfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	err = vm_add_device(vm, m, virtio_mmio_destroy);
	if (err) {
		free(m);
		return err;
	}
	if (m->irqfd < 0)
		return -errno;
	irqfd.fd = m->irqfd;
	irqfd.gsi = m->gsi;
	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return -errno;
	dev->transport = &mmio_transport_ops;
	dev->transport_priv = m;
	dev->legacy = legacy;
	for (int q = 0; q < dev->ops->num_queues; q++) {
		err = setup_notify(m, q);
		if (err)
			return err;
	}
	err = bus_register(&vm->mmio, m->base, VIRTIO_MMIO_SLOT_SIZE, &mmio_bus_ops, m,
			   dev->ops->name);
	if (err)
		return err;
	vm->platform_devs[vm->nplatform_devs++] = (struct vm_platform_dev){
		.compatible = "virtio,mmio", .base = m->base, .size = VIRTIO_MMIO_SLOT_SIZE,
		.gsi = m->gsi };
	return 0;
}

/* virtio-pci ("Virtio Over PCI Bus", virtio 1.0 section 4.1).
 *
 * BAR 4 (64-bit memory) holds every modern structure, BAR 0 (transitional devices only) the
 * legacy 0.9.5 register block:
 *   0x0000 common config   0x1000 ISR   0x2000 device config   0x3000 notify (4 bytes a queue)
 *   0x4000 MSI-X table     0x5000 MSI-X PBA
 * Each queue's notify address is a zero-length ioeventfd (KVM's fast MMIO path: no instruction
 * decode, no exit to mica) or, where KVM lacks that, a 2-byte datamatch ioeventfd. */
#include "devices/virtio/virtio_pci.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/pci_regs.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/msix.h"
#include "devices/pci.h"
#include "devices/virtio/virtio.h"
#include "vmm/log.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define VPCI_VENDOR     0x1af4
#define VPCI_MODERN_BAR 4
#define VPCI_LEGACY_BAR 0
#define VPCI_COMMON     0x0000
#define VPCI_ISR        0x1000
#define VPCI_DEVCFG     0x2000
#define VPCI_NOTIFY     0x3000
#define VPCI_MSIX_TABLE 0x4000
#define VPCI_MSIX_PBA   0x5000
#define VPCI_BAR_SIZE   0x8000
#define VPCI_REGION     0x1000
#define VPCI_NOTIFY_MULT 4
#define VPCI_LEGACY_BAR_SIZE 0x100

struct vpci_notify {
	struct virtio_kick kick;
	uint64_t mmio_addr;   /* where the modern ioeventfd is registered, 0 if not */
	uint64_t pio_addr;    /* where the legacy one is, 0 if not */
};

struct virtio_pci {
	struct virtio_dev *dev;
	struct vm *vm;
	struct pci_dev pdev;
	struct msix msix;
	bool transitional;
	uint8_t pci_cfg_cap;            /* offset of the VIRTIO_PCI_CAP_PCI_CFG window */
	uint32_t dfselect, gfselect;
	uint16_t queue_sel;
	uint16_t config_vector;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];
	uint32_t legacy_pfn[VIRTIO_MAX_QUEUES];
	struct vpci_notify notify[VIRTIO_MAX_QUEUES];
};

/* ---- interrupts ---- */

static void vpci_interrupt(struct virtio_dev *dev, int queue)
{
	struct virtio_pci *vp = dev->transport_priv;

	if (msix_enabled(&vp->msix)) {
		uint16_t v = queue < 0 ? vp->config_vector : vp->queue_vector[queue];

		if (v != VIRTIO_MSI_NO_VECTOR)
			msix_notify(&vp->msix, v);
		return;
	}
	/* INTx is level-triggered: it stays up until the driver reads the ISR. */
	pci_set_intx(&vp->pdev, 1);
}

static const struct virtio_transport_ops vpci_transport_ops = {
	.interrupt = vpci_interrupt,
};

static uint8_t isr_read_clear(struct virtio_pci *vp)
{
	uint8_t v = atomic_exchange(&vp->dev->isr, 0);

	pci_set_intx(&vp->pdev, 0);
	return v;
}

static uint16_t valid_vector(struct virtio_pci *vp, uint16_t v)
{
	return v < vp->msix.nvec ? v : VIRTIO_MSI_NO_VECTOR;
}

static void transport_reset(struct virtio_pci *vp)
{
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	for (int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		vp->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
		vp->legacy_pfn[q] = 0;
	}
	vp->queue_sel = 0;
	vp->dfselect = vp->gfselect = 0;
}

/* ---- modern common configuration ---- */

static void common_snapshot(struct virtio_pci *vp, struct virtio_pci_common_cfg *c)
{
	struct virtio_dev *dev = vp->dev;
	uint16_t q = vp->queue_sel;
	bool valid = q < dev->ops->num_queues;

	memset(c, 0, sizeof(*c));
	c->device_feature_select = vp->dfselect;
	c->device_feature = vp->dfselect < 2 ? (uint32_t)(virtio_offered_features(dev) >> (32 * vp->dfselect)) : 0;
	c->guest_feature_select = vp->gfselect;
	pthread_mutex_lock(&dev->lock);
	c->guest_feature = vp->gfselect < 2 ? (uint32_t)(dev->driver_features >> (32 * vp->gfselect)) : 0;
	c->msix_config = vp->config_vector;
	c->num_queues = dev->ops->num_queues;
	c->device_status = dev->status;
	c->config_generation = (uint8_t)dev->config_generation;
	c->queue_select = q;
	if (valid) {
		const struct virtq *vq = &dev->vqs[q];

		c->queue_size = dev->queue_size[q];
		c->queue_msix_vector = vp->queue_vector[q];
		c->queue_enable = vq->ready;
		c->queue_notify_off = q;
		c->queue_desc_lo = (uint32_t)vq->desc_gpa;
		c->queue_desc_hi = (uint32_t)(vq->desc_gpa >> 32);
		c->queue_avail_lo = (uint32_t)vq->avail_gpa;
		c->queue_avail_hi = (uint32_t)(vq->avail_gpa >> 32);
		c->queue_used_lo = (uint32_t)vq->used_gpa;
		c->queue_used_hi = (uint32_t)(vq->used_gpa >> 32);
	} else {
		c->queue_msix_vector = VIRTIO_MSI_NO_VECTOR;
	}
	pthread_mutex_unlock(&dev->lock);
}

static void queue_addr_write(struct virtio_pci *vp, uint64_t *addr, int half, uint64_t v, uint32_t len)
{
	struct virtio_dev *dev = vp->dev;

	pthread_mutex_lock(&dev->lock);
	/* The driver must not move a live queue; such writes are dropped. */
	if (!dev->vqs[vp->queue_sel].ready) {
		if (len == 8)
			*addr = v;
		else if (half)
			*addr = (*addr & 0xffffffffULL) | (v << 32);
		else
			*addr = (*addr & ~0xffffffffULL) | (uint32_t)v;
	}
	pthread_mutex_unlock(&dev->lock);
}

static void common_write(struct virtio_pci *vp, uint64_t off, uint64_t v, uint32_t len)
{
	struct virtio_dev *dev = vp->dev;
	uint16_t q = vp->queue_sel;
	bool valid = q < dev->ops->num_queues;
	struct virtq *vq = valid ? &dev->vqs[q] : NULL;

	dev->legacy = false;
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT: if (len == 4) vp->dfselect = v; return;
	case VIRTIO_PCI_COMMON_GFSELECT: if (len == 4) vp->gfselect = v; return;
	case VIRTIO_PCI_COMMON_GF:
		if (len == 4)
			virtio_set_driver_features(dev, vp->gfselect, (uint32_t)v);
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		if (len == 2)
			vp->config_vector = valid_vector(vp, v);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		if (len != 1)
			return;
		if (v == 0)
			transport_reset(vp);
		virtio_set_status(dev, v);
		if (v == 0)
			pci_set_intx(&vp->pdev, 0);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT: if (len == 2) vp->queue_sel = v; return;
	}
	if (!vq)
		return; /* a queue that does not exist: nothing to set */
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		pthread_mutex_lock(&dev->lock);
		/* Only before the queue is enabled, and only a power of two up to the maximum. */
		if (len == 2 && !vq->ready && v && v <= dev->ops->queue_max_size && !(v & (v - 1)))
			dev->queue_size[q] = v;
		pthread_mutex_unlock(&dev->lock);
		return;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (len == 2)
			vp->queue_vector[q] = valid_vector(vp, v);
		return;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (len == 2 && v == 1)
			virtio_queue_set_ready(dev, q, true);
		return;
	case VIRTIO_PCI_COMMON_Q_DESCLO: case VIRTIO_PCI_COMMON_Q_DESCHI:
		queue_addr_write(vp, &vq->desc_gpa, off == VIRTIO_PCI_COMMON_Q_DESCHI, v, len);
		return;
	case VIRTIO_PCI_COMMON_Q_AVAILLO: case VIRTIO_PCI_COMMON_Q_AVAILHI:
		queue_addr_write(vp, &vq->avail_gpa, off == VIRTIO_PCI_COMMON_Q_AVAILHI, v, len);
		return;
	case VIRTIO_PCI_COMMON_Q_USEDLO: case VIRTIO_PCI_COMMON_Q_USEDHI:
		queue_addr_write(vp, &vq->used_gpa, off == VIRTIO_PCI_COMMON_Q_USEDHI, v, len);
		return;
	}
	/* Everything else (device_feature, num_queues, config_generation, queue_notify_off) is
	 * read-only: the write is dropped. */
}

/* ---- BAR 4 ---- */

static void modern_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	uint64_t v = 0;

	if (off < VPCI_COMMON + VPCI_REGION) {
		struct virtio_pci_common_cfg c;

		common_snapshot(vp, &c);
		if (off + len <= sizeof(c))
			memcpy(&v, (uint8_t *)&c + off, len);
	} else if (off < VPCI_ISR + VPCI_REGION) {
		v = off == VPCI_ISR ? isr_read_clear(vp) : 0;
	} else if (off < VPCI_DEVCFG + VPCI_REGION) {
		virtio_config_read(vp->dev, off - VPCI_DEVCFG, &v, len);
	} else if (off >= VPCI_MSIX_TABLE && off < VPCI_MSIX_TABLE + VPCI_REGION) {
		msix_table_read(&vp->msix, off - VPCI_MSIX_TABLE, &v, len);
	} else if (off >= VPCI_MSIX_PBA && off < VPCI_MSIX_PBA + VPCI_REGION) {
		msix_pba_read(&vp->msix, off - VPCI_MSIX_PBA, &v, len);
	}
	memcpy(data, &v, len);
}

static void modern_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	uint64_t v = 0;

	memcpy(&v, data, len);
	if (off < VPCI_COMMON + VPCI_REGION) {
		common_write(vp, off, v, len);
	} else if (off >= VPCI_DEVCFG && off < VPCI_DEVCFG + VPCI_REGION) {
		virtio_config_write(vp->dev, off - VPCI_DEVCFG, data, len);
	} else if (off >= VPCI_NOTIFY && off < VPCI_NOTIFY + VPCI_REGION) {
		/* Only when no ioeventfd caught it: a queue out of range (ignored), or none was
		 * registered. */
		uint64_t q = (off - VPCI_NOTIFY) / VPCI_NOTIFY_MULT;

		if (q < vp->dev->ops->num_queues)
			atomic_fetch_add(&vp->dev->stats.notifies_userspace, 1);
		virtio_queue_notified(vp->dev, (int)q);
	} else if (off >= VPCI_MSIX_TABLE && off < VPCI_MSIX_TABLE + VPCI_REGION) {
		msix_table_write(&vp->msix, off - VPCI_MSIX_TABLE, data, len);
	}
}

static const struct bus_ops modern_ops = { .read = modern_read, .write = modern_write };

/* ---- BAR 0: the legacy register block (transitional devices) ---- */

static uint32_t legacy_config_off(struct virtio_pci *vp)
{
	return msix_enabled(&vp->msix) ? 24 : 20;
}

static void legacy_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *dev = vp->dev;
	uint32_t cfg = legacy_config_off(vp), v = 0;
	uint16_t q = vp->queue_sel;

	dev->legacy = true;
	if (off >= cfg) {
		virtio_config_read(dev, off - cfg, data, len);
		return;
	}
	switch (off) {
	case VIRTIO_PCI_HOST_FEATURES: v = (uint32_t)virtio_offered_features(dev); break;
	case VIRTIO_PCI_GUEST_FEATURES: v = (uint32_t)dev->driver_features; break;
	case VIRTIO_PCI_QUEUE_PFN: v = q < dev->ops->num_queues ? vp->legacy_pfn[q] : 0; break;
	case VIRTIO_PCI_QUEUE_NUM: v = q < dev->ops->num_queues ? dev->ops->queue_max_size : 0; break;
	case VIRTIO_PCI_QUEUE_SEL: v = q; break;
	case VIRTIO_PCI_STATUS: v = virtio_get_status(dev); break;
	case VIRTIO_PCI_ISR: v = isr_read_clear(vp); break;
	case VIRTIO_MSI_CONFIG_VECTOR: v = vp->config_vector; break;
	case VIRTIO_MSI_QUEUE_VECTOR:
		v = q < dev->ops->num_queues ? vp->queue_vector[q] : VIRTIO_MSI_NO_VECTOR;
		break;
	}
	memcpy(data, &v, len);
}

static void legacy_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *dev = vp->dev;
	uint32_t cfg = legacy_config_off(vp), v = 0;
	uint16_t q = vp->queue_sel;
	bool valid = q < dev->ops->num_queues;

	dev->legacy = true;
	if (off >= cfg) {
		virtio_config_write(dev, off - cfg, data, len);
		return;
	}
	memcpy(&v, data, len);
	switch (off) {
	case VIRTIO_PCI_GUEST_FEATURES:
		virtio_set_driver_features(dev, 0, v);
		break;
	case VIRTIO_PCI_QUEUE_PFN:
		if (!valid)
			break;
		if (!v) {
			virtio_queue_set_ready(dev, q, false);
			vp->legacy_pfn[q] = 0;
			break;
		}
		pthread_mutex_lock(&dev->lock);
		if (!dev->vqs[q].ready) {
			uint64_t num = dev->queue_size[q], base = (uint64_t)v << VIRTIO_PCI_QUEUE_ADDR_SHIFT;

			vp->legacy_pfn[q] = v;
			dev->vqs[q].desc_gpa = base;
			dev->vqs[q].avail_gpa = base + 16 * num;
			dev->vqs[q].used_gpa = ALIGN_UP(base + 16 * num + 6 + 2 * num, VIRTIO_PCI_VRING_ALIGN);
		}
		pthread_mutex_unlock(&dev->lock);
		virtio_queue_set_ready(dev, q, true);
		break;
	case VIRTIO_PCI_QUEUE_SEL:
		vp->queue_sel = v;
		break;
	case VIRTIO_PCI_QUEUE_NOTIFY:
		if (v < dev->ops->num_queues)
			atomic_fetch_add(&dev->stats.notifies_userspace, 1);
		virtio_queue_notified(dev, v);
		break;
	case VIRTIO_PCI_STATUS:
		if ((v & 0xff) == 0)
			transport_reset(vp);
		virtio_set_status(dev, v);
		if ((v & 0xff) == 0)
			pci_set_intx(&vp->pdev, 0);
		break;
	case VIRTIO_MSI_CONFIG_VECTOR:
		vp->config_vector = valid_vector(vp, v);
		break;
	case VIRTIO_MSI_QUEUE_VECTOR:
		if (valid)
			vp->queue_vector[q] = valid_vector(vp, v);
		break;
	}
}

static const struct bus_ops legacy_ops = { .read = legacy_read, .write = legacy_write };

/* ---- notifications ---- */

static int ioeventfd(struct virtio_pci *vp, struct vpci_notify *n, uint64_t addr, bool pio, bool assign)
{
	struct kvm_ioeventfd io = { .addr = addr, .fd = n->kick.h.fd };

	if (pio || !vp->vm->caps.ioeventfd_no_length) {
		/* The driver writes the queue index (16 bits) to the notify address. */
		io.len = 2;
		io.datamatch = n->kick.queue;
		io.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (pio ? KVM_IOEVENTFD_FLAG_PIO : 0);
	}
	/* len 0 otherwise: any write there, KVM's fast MMIO path. */
	if (!assign)
		io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	return ioctl(vp->vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

/* BARs move when the guest reprograms them: the notify ioeventfds follow. */
static void vpci_bar_mapped(struct pci_dev *pdev, int bar, uint64_t addr, bool mapped)
{
	struct virtio_pci *vp = pdev->priv;

	for (int q = 0; q < vp->dev->ops->num_queues; q++) {
		struct vpci_notify *n = &vp->notify[q];
		bool pio = bar == VPCI_LEGACY_BAR;
		uint64_t *where = pio ? &n->pio_addr : &n->mmio_addr;
		uint64_t at = pio ? addr + VIRTIO_PCI_QUEUE_NOTIFY : addr + VPCI_NOTIFY + q * VPCI_NOTIFY_MULT;

		if (*where) {
			ioeventfd(vp, n, *where, pio, false);
			*where = 0;
		}
		if (mapped && ioeventfd(vp, n, at, pio, true) == 0)
			*where = at;
	}
}

/* ---- config space: the MSI-X control word and the VIRTIO_PCI_CAP_PCI_CFG window ---- */

static bool vpci_cfg_read(struct pci_dev *pdev, uint32_t off, uint32_t len, uint32_t *val)
{
	struct virtio_pci *vp = pdev->priv;
	uint32_t data = vp->pci_cfg_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);
	struct virtio_pci_cap cap;

	if (!vp->pci_cfg_cap || off != data)
		return false;
	/* A read of pci_cfg_data reads the BAR at the window's offset, with the window's length. */
	memcpy(&cap, &pdev->cfg[vp->pci_cfg_cap], sizeof(cap));
	*val = 0;
	if (cap.bar == VPCI_MODERN_BAR && (cap.length == 1 || cap.length == 2 || cap.length == 4) &&
	    cap.length <= len && cap.offset < VPCI_BAR_SIZE && !(cap.offset % cap.length))
		modern_read(vp, cap.offset, val, cap.length);
	return true;
}

static void vpci_cfg_written(struct pci_dev *pdev, uint32_t off, uint32_t len, uint32_t val)
{
	struct virtio_pci *vp = pdev->priv;
	uint32_t data = vp->pci_cfg_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);
	struct virtio_pci_cap cap;

	msix_cfg_written(&vp->msix, off, len);
	if (!vp->pci_cfg_cap || off != data)
		return;
	memcpy(&cap, &pdev->cfg[vp->pci_cfg_cap], sizeof(cap));
	if (cap.bar == VPCI_MODERN_BAR && (cap.length == 1 || cap.length == 2 || cap.length == 4) &&
	    cap.length <= len && cap.offset < VPCI_BAR_SIZE && !(cap.offset % cap.length))
		modern_write(vp, cap.offset, &val, cap.length);
}

static const struct pci_dev_ops vpci_pci_ops = {
	.cfg_read = vpci_cfg_read,
	.cfg_written = vpci_cfg_written,
	.bar_mapped = vpci_bar_mapped,
};

/* ---- set-up ---- */

static void add_cap(struct virtio_pci *vp, uint8_t type, uint32_t offset, uint32_t length,
		    uint8_t caplen)
{
	struct pci_dev *p = &vp->pdev;
	uint8_t at = pci_add_cap(p, PCI_CAP_ID_VNDR, caplen);
	struct virtio_pci_cap cap = {
		.cap_vndr = PCI_CAP_ID_VNDR, .cap_next = p->cfg[at + 1], .cap_len = caplen,
		.cfg_type = type, .bar = VPCI_MODERN_BAR, .offset = offset, .length = length,
	};

	memcpy(&p->cfg[at], &cap, sizeof(cap));
	if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
		uint32_t mult = VPCI_NOTIFY_MULT;

		memcpy(&p->cfg[at + sizeof(cap)], &mult, 4);
	} else if (type == VIRTIO_PCI_CAP_PCI_CFG) {
		/* The driver picks bar, offset and length of the window. */
		memset(&p->wmask[at + offsetof(struct virtio_pci_cap, bar)], 0xff, 1);
		memset(&p->wmask[at + offsetof(struct virtio_pci_cap, offset)], 0xff, 8);
		memset(&p->wmask[at + sizeof(cap)], 0xff, 4);
		vp->pci_cfg_cap = at;
	}
}

static uint32_t class_of(uint32_t id)
{
	switch (id) {
	case VIRTIO_ID_NET: return 0x020000;
	case VIRTIO_ID_BLOCK: return 0x010000;
	case VIRTIO_ID_CONSOLE: return 0x078000;
	case VIRTIO_ID_BALLOON: return 0x050000;
	default: return 0x00ff00;
	}
}

static void vpci_destroy(void *opaque)
{
	struct virtio_pci *vp = opaque;

	for (int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		virtio_kick_close(&vp->notify[q].kick);
	msix_destroy(&vp->msix);
	free(vp);
}

int virtio_pci_attach(struct vm *vm, struct virtio_dev *dev, bool transitional)
{
	uint32_t id = dev->ops->device_id;
	uint16_t nvec = dev->ops->num_queues + 1; /* one per queue and one for config changes */
	struct virtio_pci *vp = calloc(1, sizeof(*vp));
	int err;

	if (!vp)
		return -ENOMEM;
	err = vm_add_device(vm, vp, vpci_destroy);
	if (err) {
		free(vp);
		return err;
	}
	vp->dev = dev;
	vp->vm = vm;
	vp->transitional = transitional;
	transport_reset(vp);
	dev->transport = &vpci_transport_ops;
	dev->transport_priv = vp;
	dev->legacy = false;
	if (transitional)
		pci_dev_init(&vp->pdev, vm, VPCI_VENDOR, 0x1000 + id - 1, class_of(id), 0, VPCI_VENDOR, id,
			     &vpci_pci_ops, vp);
	else
		pci_dev_init(&vp->pdev, vm, VPCI_VENDOR, 0x1040 + id, class_of(id), 1, VPCI_VENDOR, 0x1100,
			     &vpci_pci_ops, vp);
	for (int q = 0; q < dev->ops->num_queues; q++) {
		err = virtio_kick_init(&vp->notify[q].kick, dev, q);
		if (err)
			return err;
	}
	err = msix_init(&vp->msix, &vp->pdev, vm, nvec, VPCI_MODERN_BAR, VPCI_MSIX_TABLE, VPCI_MSIX_PBA);
	if (err)
		return err;
	add_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VPCI_COMMON, sizeof(struct virtio_pci_common_cfg),
		sizeof(struct virtio_pci_cap));
	add_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VPCI_ISR, 1, sizeof(struct virtio_pci_cap));
	add_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VPCI_DEVCFG, MAX(dev->ops->config_size, 4u),
		sizeof(struct virtio_pci_cap));
	add_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VPCI_NOTIFY, dev->ops->num_queues * VPCI_NOTIFY_MULT,
		sizeof(struct virtio_pci_notify_cap));
	add_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, sizeof(struct virtio_pci_cfg_cap));
	pci_add_bar(&vp->pdev, VPCI_MODERN_BAR, VPCI_BAR_SIZE, false, true, &modern_ops, vp);
	if (transitional)
		pci_add_bar(&vp->pdev, VPCI_LEGACY_BAR, VPCI_LEGACY_BAR_SIZE, true, false, &legacy_ops, vp);
	return pci_register(vm, &vp->pdev);
}

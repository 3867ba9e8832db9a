/* virtio-pci's modern common configuration (virtio 1.0, 4.1.4.3), at BAR 4 + 0. Called with
 * dev->lock held for the whole access: queue_select and the feature selects are read once and
 * every field of one access comes from the same, checked, queue. */
#include <linux/virtio_pci.h>
#include <string.h>

#include "devices/virtio/pci_transport.h"

/* The whole structure as the driver would see it now; a read copies the bytes it asks for. */
static void snapshot(struct virtio_pci *vp, struct virtio_pci_common_cfg *c)
{
	struct virtio_dev *dev = vp->dev;
	uint16_t q = vp->queue_sel;
	uint32_t dsel = vp->dfselect, gsel = vp->gfselect;

	memset(c, 0, sizeof(*c));
	c->device_feature_select = dsel;
	c->device_feature = dsel < 2 ? (uint32_t)(virtio_offered_features(dev) >> (32 * dsel)) : 0;
	c->guest_feature_select = gsel;
	c->guest_feature = gsel < 2 ? (uint32_t)(dev->driver_features >> (32 * gsel)) : 0;
	c->msix_config = vp->config_vector;
	c->num_queues = dev->ops->num_queues;
	c->device_status = dev->status;
	c->config_generation = (uint8_t)dev->config_generation;
	c->queue_select = q;
	if (q < dev->ops->num_queues) {
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
}

void vpci_common_read(struct virtio_pci *vp, uint64_t off, void *data, uint32_t len)
{
	struct virtio_pci_common_cfg c;

	snapshot(vp, &c);
	if (off + len <= sizeof(c))
		memcpy(data, (uint8_t *)&c + off, len);
	else
		memset(data, 0, len);
}

/* A ring address: a 32-bit half, or (len 8, at the low half) the whole of it. Any other access
 * is dropped, as for every field: an 8-byte one at the high half would straddle two fields. */
static void ring_addr(struct virtio_dev *dev, uint16_t q, enum virtio_ring ring, bool high,
		      uint64_t v, uint32_t len)
{
	if (len == 8 && !high)
		virtio_queue_set_addr(dev, q, ring, v, ~0ULL);
	else if (len == 4 && high)
		virtio_queue_set_addr(dev, q, ring, v << 32, ~0xffffffffULL);
	else if (len == 4)
		virtio_queue_set_addr(dev, q, ring, v, 0xffffffffULL);
}

void vpci_common_write(struct virtio_pci *vp, uint64_t off, uint64_t v, uint32_t len)
{
	struct virtio_dev *dev = vp->dev;
	uint16_t q = vp->queue_sel;

	/* The driver speaks the modern interface: 64 feature bits, VERSION_1 required. */
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
			vp->config_vector = vpci_valid_vector(vp, v);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		if (len == 1)
			vpci_write_status(vp, v);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT: if (len == 2) vp->queue_sel = v; return;
	}
	if (q >= dev->ops->num_queues)
		return; /* a queue that does not exist: nothing to set */
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if (len == 2)
			virtio_queue_set_size(dev, q, v);
		return;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (len == 2)
			vp->queue_vector[q] = vpci_valid_vector(vp, v);
		return;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (len == 2 && v == 1)
			virtio_queue_set_ready(dev, q, true);
		return;
	case VIRTIO_PCI_COMMON_Q_DESCLO: case VIRTIO_PCI_COMMON_Q_DESCHI:
		ring_addr(dev, q, VIRTIO_RING_DESC, off == VIRTIO_PCI_COMMON_Q_DESCHI, v, len);
		return;
	case VIRTIO_PCI_COMMON_Q_AVAILLO: case VIRTIO_PCI_COMMON_Q_AVAILHI:
		ring_addr(dev, q, VIRTIO_RING_AVAIL, off == VIRTIO_PCI_COMMON_Q_AVAILHI, v, len);
		return;
	case VIRTIO_PCI_COMMON_Q_USEDLO: case VIRTIO_PCI_COMMON_Q_USEDHI:
		ring_addr(dev, q, VIRTIO_RING_USED, off == VIRTIO_PCI_COMMON_Q_USEDHI, v, len);
		return;
	}
	/* Everything else (device_feature, num_queues, config_generation, queue_notify_off) is
	 * read-only: the write is dropped. */
}

/* virtio-pci's legacy interface (virtio 0.9.5): the I/O BAR 0 of a transitional device.
 *
 *   0 host features   4 guest features   8 queue PFN   12 queue size (read-only)
 *   14 queue select   16 queue notify    18 status     19 ISR (read clears)
 *   20 config vector  22 queue vector    (MSI-X enabled only)   then the device config
 *
 * Each access runs under dev->lock from start to end (queue select read once). */
#include <linux/virtio_pci.h>
#include <string.h>

#include "devices/virtio/pci_transport.h"
#include "vmm/util.h"

static uint32_t config_off(struct virtio_pci *vp)
{
	return msix_enabled(&vp->msix) ? 24 : 20;
}

static uint32_t reg_read(struct virtio_pci *vp, uint64_t off)
{
	struct virtio_dev *dev = vp->dev;
	uint16_t q = vp->queue_sel;
	bool valid = q < dev->ops->num_queues;

	switch (off) {
	case VIRTIO_PCI_HOST_FEATURES: return (uint32_t)virtio_offered_features(dev);
	case VIRTIO_PCI_GUEST_FEATURES: return (uint32_t)dev->driver_features;
	case VIRTIO_PCI_QUEUE_PFN: return valid ? vp->legacy_pfn[q] : 0;
	case VIRTIO_PCI_QUEUE_NUM: return valid ? dev->ops->queue_max_size : 0;
	case VIRTIO_PCI_QUEUE_SEL: return q;
	case VIRTIO_PCI_STATUS: return dev->status;
	case VIRTIO_PCI_ISR: return vpci_isr_read_clear(vp);
	case VIRTIO_MSI_CONFIG_VECTOR: return vp->config_vector;
	case VIRTIO_MSI_QUEUE_VECTOR: return valid ? vp->queue_vector[q] : VIRTIO_MSI_NO_VECTOR;
	}
	return 0;
}

static void reg_write(struct virtio_pci *vp, uint64_t off, uint32_t v)
{
	struct virtio_dev *dev = vp->dev;
	uint16_t q = vp->queue_sel;
	bool valid = q < dev->ops->num_queues;

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
		} else if (!dev->vqs[q].ready) {
			vp->legacy_pfn[q] = v;
			virtio_queue_set_legacy(dev, q, (uint64_t)v << VIRTIO_PCI_QUEUE_ADDR_SHIFT,
						VIRTIO_PCI_VRING_ALIGN);
		}
		break;
	case VIRTIO_PCI_QUEUE_SEL:
		vp->queue_sel = v;
		break;
	case VIRTIO_PCI_QUEUE_NOTIFY:
		virtio_queue_notify_userspace(dev, v);
		break;
	case VIRTIO_PCI_STATUS:
		vpci_write_status(vp, v);
		break;
	case VIRTIO_MSI_CONFIG_VECTOR:
		vp->config_vector = vpci_valid_vector(vp, v);
		break;
	case VIRTIO_MSI_QUEUE_VECTOR:
		if (valid)
			vp->queue_vector[q] = vpci_valid_vector(vp, v);
		break;
	}
}

/* One access to BAR 0 (I/O: at most 4 bytes). */
static void legacy_access(struct virtio_pci *vp, uint64_t off, void *data, uint32_t len,
			  bool write)
{
	struct virtio_dev *dev = vp->dev;
	uint32_t cfg, v = 0;

	pthread_mutex_lock(&dev->lock);
	/* The driver speaks the legacy interface: 32 feature bits, no VERSION_1. */
	dev->legacy = true;
	cfg = config_off(vp);
	if (off >= cfg && write) {
		virtio_config_write(dev, off - cfg, data, len);
	} else if (off >= cfg) {
		virtio_config_read(dev, off - cfg, data, len);
	} else if (write) {
		memcpy(&v, data, MIN(len, 4u));
		reg_write(vp, off, v);
	} else {
		v = reg_read(vp, off);
		memcpy(data, &v, MIN(len, 4u));
	}
	pthread_mutex_unlock(&dev->lock);
}

static void legacy_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	legacy_access(opaque, off, data, len, false);
}

static void legacy_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	legacy_access(opaque, off, (void *)data, len, true);
}

const struct bus_ops vpci_legacy_ops = { .read = legacy_read, .write = legacy_write };

/* virtio-pci ("Virtio Over PCI Bus", virtio 1.0 section 4.1): set-up, BAR 4, interrupts and
 * notifications. The common configuration is in pci_common.c, the legacy BAR in pci_legacy.c.
 *
 * BAR 4 (64-bit memory) holds every modern structure, BAR 0 (transitional devices only) the
 * legacy 0.9.5 register block:
 *   0x0000 common config   0x1000 ISR   0x2000 device config   0x3000 notify (4 bytes a queue)
 *   0x4000 MSI-X table     0x5000 MSI-X PBA
 * Each queue's notify address is a zero-length ioeventfd (KVM's fast MMIO path: no instruction
 * decode, no exit to mica) or, where KVM lacks that, a 2-byte datamatch ioeventfd. */
#include "devices/virtio/virtio_pci.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/pci_transport.h"
#include "snapshot/snapshot.h"
#include "vmm/err.h"
#include "vmm/log.h"
#include "vmm/machine.h"
#include "vmm/util.h"

/* ---- interrupts (dev->lock held) ---- */

static void vpci_interrupt(struct virtio_dev *dev, int queue)
{
	struct virtio_pci *vp = dev->transport_priv;

	if (msix_enabled(&vp->msix)) {
		uint16_t v = queue < 0 ? vp->config_vector : vp->queue_vector[queue];

		if (v != VIRTIO_MSI_NO_VECTOR)
			msix_notify(&vp->msix, v);
		return;
	}
	/* INTx is level-triggered: it stays up until the driver reads the ISR. Raising it and
	 * the ISR read that lowers it both hold dev->lock, so neither can slip between the
	 * other's two steps. */
	pci_set_intx(&vp->pdev, 1);
}

uint8_t vpci_isr_read_clear(struct virtio_pci *vp)
{
	uint8_t v = virtio_isr_read_clear(vp->dev);

	pci_set_intx(&vp->pdev, 0);
	return v;
}

uint16_t vpci_valid_vector(struct virtio_pci *vp, uint16_t v)
{
	return v < vp->msix.nvec ? v : VIRTIO_MSI_NO_VECTOR;
}

void vpci_write_status(struct virtio_pci *vp, uint8_t status)
{
	if (status == 0) {
		vp->config_vector = VIRTIO_MSI_NO_VECTOR;
		for (int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
			vp->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
			vp->legacy_pfn[q] = 0;
		}
		vp->queue_sel = 0;
		vp->dfselect = vp->gfselect = 0;
	}
	virtio_write_status(vp->dev, status);
	if (status == 0)
		pci_set_intx(&vp->pdev, 0);
}

/* ---- BAR 4 ---- */

static bool in_region(uint64_t off, uint32_t len, uint64_t start)
{
	return off >= start && off - start < VPCI_REGION && len <= VPCI_REGION - (off - start);
}

static void modern_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *dev = vp->dev;
	uint64_t v = 0;

	/* The MSI-X structures have their own lock; everything else is the device's. */
	if (in_region(off, len, VPCI_MSIX_TABLE)) {
		msix_table_read(&vp->msix, off - VPCI_MSIX_TABLE, &v, len);
	} else if (in_region(off, len, VPCI_MSIX_PBA)) {
		msix_pba_read(&vp->msix, off - VPCI_MSIX_PBA, &v, len);
	} else {
		pthread_mutex_lock(&dev->lock);
		if (in_region(off, len, VPCI_COMMON))
			vpci_common_read(vp, off - VPCI_COMMON, &v, len);
		else if (off == VPCI_ISR)
			v = vpci_isr_read_clear(vp);
		else if (in_region(off, len, VPCI_DEVCFG))
			virtio_config_read(dev, off - VPCI_DEVCFG, &v, len);
		pthread_mutex_unlock(&dev->lock);
	}
	memcpy(data, &v, len);
}

static void modern_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *dev = vp->dev;
	uint64_t v = 0;

	memcpy(&v, data, len);
	if (in_region(off, len, VPCI_MSIX_TABLE)) {
		msix_table_write(&vp->msix, off - VPCI_MSIX_TABLE, data, len);
		return;
	}
	pthread_mutex_lock(&dev->lock);
	if (in_region(off, len, VPCI_COMMON))
		vpci_common_write(vp, off - VPCI_COMMON, v, len);
	else if (in_region(off, len, VPCI_DEVCFG))
		virtio_config_write(dev, off - VPCI_DEVCFG, data, len);
	else if (in_region(off, len, VPCI_NOTIFY))
		/* Only when no ioeventfd caught it: a queue out of range (ignored), or none was
		 * registered. */
		virtio_queue_notify_userspace(dev, (off - VPCI_NOTIFY) / VPCI_NOTIFY_MULT);
	pthread_mutex_unlock(&dev->lock);
}

static const struct bus_ops modern_ops = { .read = modern_read, .write = modern_write };

/* ---- notifications ---- */

static int ioeventfd(struct virtio_pci *vp, int q, uint64_t addr, bool pio, bool assign)
{
	struct machine_ioeventfd io = { .fd = virtio_kick_fd(vp->dev, q), .addr = addr, .pio = pio };

	if (pio || !vp->machine->ioeventfd_no_length) {
		/* The driver writes the queue index (16 bits) to the notify address. */
		io.len = 2;
		io.datamatch = true;
		io.data = q;
	}
	/* len 0 otherwise: any write there, KVM's fast MMIO path. */
	return machine_ioeventfd(vp->machine, &io, assign);
}

/* BARs move when the guest reprograms them: the notify ioeventfds follow (PCI bus lock held). */
static void vpci_bar_mapped(struct pci_dev *pdev, int bar, uint64_t addr, bool mapped)
{
	struct virtio_pci *vp = pdev->priv;

	if (bar != VPCI_MODERN_BAR && bar != VPCI_LEGACY_BAR)
		return;
	for (int q = 0; q < vp->dev->ops->num_queues; q++) {
		struct vpci_notify *n = &vp->notify[q];
		bool pio = bar == VPCI_LEGACY_BAR;
		uint64_t *where = pio ? &n->pio_addr : &n->mmio_addr;
		uint64_t at = pio ? addr + VIRTIO_PCI_QUEUE_NOTIFY : addr + VPCI_NOTIFY + q * VPCI_NOTIFY_MULT;

		if (*where) {
			ioeventfd(vp, q, *where, pio, false);
			*where = 0;
		}
		if (mapped && ioeventfd(vp, q, at, pio, true) == 0)
			*where = at;
	}
}

/* ---- config space: the MSI-X control word and the VIRTIO_PCI_CAP_PCI_CFG window ---- */

/* Whether a config access at off is to the window's data; if so, the window's target. */
static bool cfg_window(struct virtio_pci *vp, uint32_t off, struct virtio_pci_cap *cap)
{
	uint32_t data = vp->pci_cfg_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);

	if (!vp->pci_cfg_cap || off != data)
		return false;
	memcpy(cap, &vp->pdev.cfg[vp->pci_cfg_cap], sizeof(*cap));
	return true;
}

static bool window_ok(const struct virtio_pci_cap *cap, uint32_t len)
{
	return cap->bar == VPCI_MODERN_BAR && (cap->length == 1 || cap->length == 2 ||
	       cap->length == 4) && cap->length <= len && cap->offset < VPCI_BAR_SIZE &&
	       !(cap->offset % cap->length);
}

static bool vpci_cfg_read(struct pci_dev *pdev, uint32_t off, uint32_t len, uint32_t *val)
{
	struct virtio_pci *vp = pdev->priv;
	struct virtio_pci_cap cap;

	if (!cfg_window(vp, off, &cap))
		return false;
	/* A read of pci_cfg_data reads the BAR at the window's offset, with the window's length. */
	*val = 0;
	if (window_ok(&cap, len))
		modern_read(vp, cap.offset, val, cap.length);
	return true;
}

static void vpci_cfg_written(struct pci_dev *pdev, uint32_t off, uint32_t len, uint32_t val)
{
	struct virtio_pci *vp = pdev->priv;
	struct virtio_pci_cap cap;
	bool msix_was = msix_enabled(&vp->msix);

	msix_cfg_written(&vp->msix, off, len);
	if (msix_enabled(&vp->msix) != msix_was) {
		/* INTx is the ISR's while MSI-X is off, and silent while it is on: an interrupt
		 * raised with MSI-X on (no vector, say) must reach a driver that falls back to
		 * INTx. Under dev->lock, after the change: an interrupt being raised meanwhile
		 * has either seen the new state or is reconciled here. */
		pthread_mutex_lock(&vp->dev->lock);
		pci_set_intx(&vp->pdev, !msix_enabled(&vp->msix) && vp->dev->isr);
		pthread_mutex_unlock(&vp->dev->lock);
	}
	if (cfg_window(vp, off, &cap) && window_ok(&cap, len))
		modern_write(vp, cap.offset, &val, cap.length);
}

static const struct pci_dev_ops vpci_pci_ops = {
	.cfg_read = vpci_cfg_read,
	.cfg_written = vpci_cfg_written,
	.bar_mapped = vpci_bar_mapped,
};

/* ---- snapshots ----
 *
 * One section per device: its PCI function (pci_dev_save: config space and BARs), then under
 * dev->lock the MSI-X table, the transport's register file and the virtio core with its model.
 * A restore puts the BARs back first (the notify ioeventfds follow them through
 * vpci_bar_mapped), then the MSI-X table (routes), the registers, the device (virtio_dev_restore,
 * which may activate the model), and last the INTx level the ISR implies. */

static int vpci_save(void *opaque, struct snap_writer *w, struct err *e)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *dev = vp->dev;
	int err;

	pci_dev_save(&vp->pdev, w);
	pthread_mutex_lock(&dev->lock);
	virtio_dev_drain(dev);
	msix_save(&vp->msix, w);
	snap_put_u8(w, vp->transitional);
	snap_put_u8(w, dev->legacy);
	snap_put_u32(w, vp->dfselect);
	snap_put_u32(w, vp->gfselect);
	snap_put_u16(w, vp->queue_sel);
	snap_put_u16(w, vp->config_vector);
	for (int q = 0; q < dev->ops->num_queues; q++) {
		snap_put_u16(w, vp->queue_vector[q]);
		snap_put_u32(w, vp->legacy_pfn[q]);
	}
	err = virtio_dev_save(dev, w, e);
	pthread_mutex_unlock(&dev->lock);
	return err;
}

/* The register file, checked whole before it is used (dev->lock held). */
static int regs_restore(struct virtio_pci *vp, struct snap_cursor *c, struct err *e)
{
	struct virtio_dev *dev = vp->dev;
	const char *name = dev->ops->name;
	uint16_t vec[VIRTIO_MAX_QUEUES], config_vector;
	uint32_t pfn[VIRTIO_MAX_QUEUES], dfselect, gfselect;
	uint8_t transitional = snap_get_u8(c), legacy = snap_get_u8(c);
	uint16_t queue_sel;

	dfselect = snap_get_u32(c);
	gfselect = snap_get_u32(c);
	queue_sel = snap_get_u16(c);
	config_vector = snap_get_u16(c);
	for (int q = 0; q < dev->ops->num_queues; q++) {
		vec[q] = snap_get_u16(c);
		pfn[q] = snap_get_u32(c);
	}
	if (c->err)
		return err_set(e, -EBADMSG, "snapshot: virtio-pci %s: section truncated", name);
	if (transitional != vp->transitional)
		return err_set(e, -EINVAL, "snapshot: virtio-pci %s: saved %s transitional device",
			       name, transitional ? "a" : "not a");
	if (legacy > 1 || (legacy && !vp->transitional))
		return err_set(e, -EINVAL, "snapshot: virtio-pci %s: legacy interface on a device "
			       "without one", name);
	if (vpci_valid_vector(vp, config_vector) != config_vector)
		return err_set(e, -EINVAL, "snapshot: virtio-pci %s: config vector %u beyond the "
			       "MSI-X table", name, config_vector);
	for (int q = 0; q < dev->ops->num_queues; q++) {
		if (vpci_valid_vector(vp, vec[q]) != vec[q])
			return err_set(e, -EINVAL, "snapshot: virtio-pci %s: queue %d's vector %u "
				       "beyond the MSI-X table", name, q, vec[q]);
		if (pfn[q] && !vp->transitional)
			return err_set(e, -EINVAL, "snapshot: virtio-pci %s: legacy queue address on "
				       "a device without a legacy interface", name);
	}
	/* Selectors: any value the guest can write (each access checks the one it reads). */
	vp->dfselect = dfselect;
	vp->gfselect = gfselect;
	vp->queue_sel = queue_sel;
	vp->config_vector = config_vector;
	for (int q = 0; q < dev->ops->num_queues; q++) {
		vp->queue_vector[q] = vec[q];
		vp->legacy_pfn[q] = pfn[q];
	}
	dev->legacy = legacy;
	return 0;
}

static int vpci_restore(void *opaque, struct snap_cursor *c, struct err *e)
{
	struct virtio_pci *vp = opaque;
	struct virtio_dev *dev = vp->dev;
	char who[64];
	int err;

	snprintf(who, sizeof(who), "virtio-pci %s", dev->ops->name);
	err = pci_dev_restore(&vp->pdev, c, who, e);
	if (err)
		return err;
	pthread_mutex_lock(&dev->lock);
	err = msix_restore(&vp->msix, c, who, e);
	if (!err)
		err = regs_restore(vp, c, e);
	if (!err)
		err = virtio_dev_restore(dev, c, e);
	/* INTx belongs to the ISR while MSI-X is off (as vpci_cfg_written reconciles it). */
	if (!err)
		pci_set_intx(&vp->pdev, !msix_enabled(&vp->msix) && dev->isr);
	pthread_mutex_unlock(&dev->lock);
	if (!err && snap_cursor_end(c))
		err = err_set(e, -EBADMSG, "snapshot: %s: section of another length", who);
	return err;
}

static const struct snap_ops vpci_snap_ops = {
	.name = "virtio-pci", .version = 1, .save = vpci_save, .restore = vpci_restore,
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

static void vpci_destroy(struct virtio_dev *dev)
{
	struct virtio_pci *vp = dev->transport_priv;

	msix_destroy(&vp->msix);
	free(vp);
	dev->transport_priv = NULL;
}

static const struct virtio_transport_ops vpci_transport_ops = {
	.interrupt = vpci_interrupt,
	.destroy = vpci_destroy,
};

int virtio_pci_attach(struct pci_bus *bus, struct machine *m, struct virtio_dev *dev,
		      bool transitional)
{
	uint32_t id = dev->ops->device_id;
	uint32_t class = dev->ops->pci_class ? dev->ops->pci_class : 0x00ff00;
	uint16_t nvec = dev->ops->num_queues + 1; /* one per queue and one for config changes */
	struct virtio_pci *vp = calloc(1, sizeof(*vp));
	int err;

	if (!vp)
		return -ENOMEM;
	vp->dev = dev;
	vp->machine = m;
	vp->transitional = transitional;
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	for (int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vp->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
	dev->transport = &vpci_transport_ops;
	dev->transport_priv = vp;
	dev->legacy = false;
	if (transitional)
		pci_dev_init(&vp->pdev, bus, VPCI_VENDOR, 0x1000 + id - 1, class, 0,
			     VPCI_VENDOR, id, &vpci_pci_ops, vp);
	else
		pci_dev_init(&vp->pdev, bus, VPCI_VENDOR, 0x1040 + id, class, 1,
			     VPCI_VENDOR, 0x1100, &vpci_pci_ops, vp);
	err = msix_init(&vp->msix, &vp->pdev, m, nvec, VPCI_MODERN_BAR, VPCI_MSIX_TABLE, VPCI_MSIX_PBA);
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
		pci_add_bar(&vp->pdev, VPCI_LEGACY_BAR, VPCI_LEGACY_BAR_SIZE, true, false,
			    &vpci_legacy_ops, vp);
	err = pci_register(&vp->pdev);
	return err ? err : machine_add_state(m, vp, &vpci_snap_ops);
}

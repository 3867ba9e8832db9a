/* virtio-pci's parts, shared by its three files: pci.c (set-up, BAR 4 dispatch, interrupts,
 * notifications, the PCI config hooks), pci_common.c (the modern common configuration) and
 * pci_legacy.c (the legacy I/O BAR of transitional devices).
 *
 * Ownership: the register file below (selectors, vectors, legacy PFNs) is guest-visible device
 * state, guarded by dev->lock like the rest of the device; every access to it runs under that
 * lock from start to end. notify[].mmio_addr/pio_addr belong to the PCI bus lock (they change
 * only in bar_mapped, which the bus calls with it held). The MSI-X table has its own lock. */
#ifndef MICA_VIRTIO_PCI_TRANSPORT_H_PRIVATE
#define MICA_VIRTIO_PCI_TRANSPORT_H_PRIVATE

#include <stdbool.h>
#include <stdint.h>

#include "devices/msix.h"
#include "devices/pci.h"
#include "devices/virtio/virtio.h"

#define VPCI_VENDOR     0x1af4   /* Red Hat, Inc.: every virtio-pci device */
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
	uint64_t mmio_addr;   /* where the modern ioeventfd is registered, 0 if not */
	uint64_t pio_addr;    /* where the legacy one is, 0 if not */
};

struct virtio_pci {
	struct virtio_dev *dev;
	struct machine *machine;
	struct pci_dev pdev;
	struct msix msix;
	bool transitional;
	uint8_t pci_cfg_cap;            /* offset of the VIRTIO_PCI_CAP_PCI_CFG window */
	/* Under dev->lock: */
	uint32_t dfselect, gfselect;
	uint16_t queue_sel;
	uint16_t config_vector;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];
	uint32_t legacy_pfn[VIRTIO_MAX_QUEUES];
	/* Under the PCI bus lock: */
	struct vpci_notify notify[VIRTIO_MAX_QUEUES];
};

/* dev->lock held, for both interfaces: */
/* A vector the driver wrote: itself if the MSI-X table has it, else NO_VECTOR. */
uint16_t vpci_valid_vector(struct virtio_pci *vp, uint16_t v);
/* The ISR read: returns and clears it, and lowers INTx with it. */
uint8_t vpci_isr_read_clear(struct virtio_pci *vp);
/* A device status write from either interface (0 resets the transport's registers too). */
void vpci_write_status(struct virtio_pci *vp, uint8_t status);

/* pci_common.c, dev->lock held: the common configuration structure at BAR 4 + 0. */
void vpci_common_read(struct virtio_pci *vp, uint64_t off, void *data, uint32_t len);
void vpci_common_write(struct virtio_pci *vp, uint64_t off, uint64_t v, uint32_t len);

/* pci_legacy.c: BAR 0 of a transitional device (takes dev->lock itself). */
extern const struct bus_ops vpci_legacy_ops;

#endif

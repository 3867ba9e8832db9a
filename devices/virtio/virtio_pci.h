/* The virtio-pci transport: modern (virtio 1.0, device 0x1040 + ID) or transitional (device
 * 0x1000 + ID - 1, with a legacy I/O BAR beside the modern capabilities). */
#ifndef MICA_VIRTIO_PCI_H
#define MICA_VIRTIO_PCI_H

#include <stdbool.h>

struct machine;
struct pci_bus;
struct virtio_dev;

/* Puts the device on the bus, with MSI-X and an ioeventfd per queue. On failure the caller
 * frees the device (virtio_dev_free), transport included. */
int virtio_pci_attach(struct pci_bus *bus, struct machine *m, struct virtio_dev *dev,
		      bool transitional);

#endif

/* The virtio-pci transport: modern (virtio 1.0, device 0x1040 + ID) or transitional (device
 * 0x1000 + ID - 1, with a legacy I/O BAR beside the modern capabilities). */
#ifndef MICA_VIRTIO_PCI_TRANSPORT_H
#define MICA_VIRTIO_PCI_TRANSPORT_H

#include <stdbool.h>

struct vm;
struct virtio_dev;

int virtio_pci_attach(struct vm *vm, struct virtio_dev *dev, bool transitional);

#endif

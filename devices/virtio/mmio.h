/* The virtio-mmio transport (version 2, and version 1 "legacy"). */
#ifndef MICA_VIRTIO_MMIO_H
#define MICA_VIRTIO_MMIO_H

#include <stdbool.h>

struct vm;
struct virtio_dev;

/* Gives the device the next free MMIO slot (address, GSI), its registers on the bus, an
 * ioeventfd per queue and an irqfd, and lists it for the guest's device tree. */
int virtio_mmio_attach(struct vm *vm, struct virtio_dev *dev, bool legacy);

#endif

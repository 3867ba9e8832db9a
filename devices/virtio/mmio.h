/* The virtio-mmio transport (version 2, and version 1 "legacy"). */
#ifndef MICA_VIRTIO_MMIO_H
#define MICA_VIRTIO_MMIO_H

#include <stdbool.h>

struct machine;
struct virtio_dev;

/* Gives the device the next free MMIO slot (address, GSI), its registers on the bus, an
 * ioeventfd per queue and an irqfd, and lists it for the guest's device tree. On failure the
 * caller frees the device (virtio_dev_free), transport included. */
int virtio_mmio_attach(struct machine *m, struct virtio_dev *dev, bool legacy);

#endif

/* A transport for unit tests that drive a device model without a VM: it only counts the
 * interrupts the device raises. Header-only, for each test binary that needs it. */
#ifndef MICA_TEST_FAKE_TRANSPORT_H
#define MICA_TEST_FAKE_TRANSPORT_H

#include <stdlib.h>

#include "devices/virtio/virtio.h"

static int irqs[VIRTIO_MAX_QUEUES + 1]; /* [0]: config (-1), [1 + n]: queue n */

static void fake_interrupt(struct virtio_dev *dev, int queue)
{
	(void)dev;
	if (queue < -1 || queue >= VIRTIO_MAX_QUEUES)
		abort();
	irqs[queue + 1]++;
}

static const struct virtio_transport_ops fake_transport = { .interrupt = fake_interrupt };

#endif

/* One place that knows the transports: a device model is handed to the one --transport chose. */
#include <errno.h>

#include "devices.h"
#include "mmio.h"
#include "vm.h"

int virtio_attach(struct vm *vm, struct virtio_dev *dev)
{
	switch (vm->cfg.transport) {
	case TRANSPORT_MMIO:
		return virtio_mmio_attach(vm, dev, false);
	case TRANSPORT_MMIO_LEGACY:
		return virtio_mmio_attach(vm, dev, true);
	case TRANSPORT_PCI:
		break;
	}
	return -ENOTSUP;
}

/* One place that knows the transports: a device model is handed to the one --transport chose. */
#include <errno.h>

#include "devices/virtio/devices.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio_pci.h"
#include "vmm/vm.h"

int virtio_attach(struct vm *vm, struct virtio_dev *dev)
{
	return virtio_attach_to(vm, dev, vm->cfg.transport);
}

int virtio_attach_to(struct vm *vm, struct virtio_dev *dev, enum virtio_transport_kind kind)
{
	int err = -ENOTSUP;

	if (vm->nvirtio == VM_MAX_PLATFORM_DEVS)
		return -ENOSPC;
	switch (kind) {
	case TRANSPORT_MMIO:
		err = virtio_mmio_attach(vm, dev, false);
		break;
	case TRANSPORT_MMIO_LEGACY:
		err = virtio_mmio_attach(vm, dev, true);
		break;
	case TRANSPORT_PCI:
		err = virtio_pci_attach(vm, dev, false);
		break;
	case TRANSPORT_PCI_TRANSITIONAL:
		err = virtio_pci_attach(vm, dev, true);
		break;
	}
	if (!err)
		vm->virtio_devs[vm->nvirtio++] = dev;
	return err;
}

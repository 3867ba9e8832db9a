#include "devices/virtio/attach.h"

#include <errno.h>
#include <string.h>

#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"
#include "vmm/machine.h"
#include "vmm/util.h"

int virtio_transport_parse(const char *name, enum virtio_transport_kind *kind)
{
	static const struct { const char *name; enum virtio_transport_kind kind; } names[] = {
		{ "mmio", TRANSPORT_MMIO }, { "mmio-legacy", TRANSPORT_MMIO_LEGACY },
		{ "pci", TRANSPORT_PCI }, { "pci-transitional", TRANSPORT_PCI_TRANSITIONAL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (!strcmp(name, names[i].name)) {
			*kind = names[i].kind;
			return 0;
		}
	}
	return -EINVAL;
}

int virtio_attach(struct machine *m, struct pci_bus *pci, struct virtio_dev *dev,
		  enum virtio_transport_kind kind)
{
	int err = -ENOTSUP;

	switch (kind) {
	case TRANSPORT_MMIO:
	case TRANSPORT_MMIO_LEGACY:
		err = virtio_mmio_attach(m, dev, kind == TRANSPORT_MMIO_LEGACY);
		break;
	case TRANSPORT_PCI:
	case TRANSPORT_PCI_TRANSITIONAL:
		err = pci ? virtio_pci_attach(pci, m, dev, kind == TRANSPORT_PCI_TRANSITIONAL) : -ENODEV;
		break;
	}
	return err ? err : machine_own(m, dev, virtio_dev_free);
}

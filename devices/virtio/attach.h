/* The one place that knows the virtio transports: a device model is handed to one of them. */
#ifndef MICA_VIRTIO_ATTACH_H
#define MICA_VIRTIO_ATTACH_H

struct machine;
struct pci_bus;
struct virtio_dev;

enum virtio_transport_kind {
	TRANSPORT_MMIO,             /* virtio-mmio version 2 (virtio 1.0) */
	TRANSPORT_MMIO_LEGACY,      /* virtio-mmio version 1 (legacy) */
	TRANSPORT_PCI,              /* virtio-pci, modern */
	TRANSPORT_PCI_TRANSITIONAL, /* virtio-pci with a legacy I/O BAR as well */
};

/* "mmio", "mmio-legacy", "pci", "pci-transitional": 0, or -EINVAL. */
int virtio_transport_parse(const char *name, enum virtio_transport_kind *kind);

/* Puts dev on a transport of machine m (PCI ones on bus pci). On success the machine owns the
 * device and frees it at teardown; on failure the caller still does (virtio_dev_free). */
int virtio_attach(struct machine *m, struct pci_bus *pci, struct virtio_dev *dev,
		  enum virtio_transport_kind kind);

#endif

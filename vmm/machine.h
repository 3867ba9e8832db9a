/* The machine as a device sees it: the two buses it decodes on, the interrupt controller and
 * KVM's eventfd hooks, guest RAM, the event loop, a way to end the VM, and the board description
 * the guest's firmware tables are built from.
 *
 * A device (the UART, PCI, MSI-X, the virtio transports) gets a struct machine, never the VM:
 * vmm/vm.c fills one in from KVM, and unit tests and fuzz targets fill one in with fakes
 * (tests/unit/fake_machine.h), so every device can be tested without /dev/kvm. Virtio device
 * models get less still: guest RAM and the event loop (struct virtio_env), and raise interrupts
 * through their transport.
 *
 * Threads: every op may be called from any thread, vCPU or event loop, with device locks held;
 * an implementation takes only leaf locks of its own. */
#ifndef MICA_MACHINE_H
#define MICA_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

struct bus;
struct evloop;
struct guest_mem;
struct machine;
struct snap_ops;

/* A notification address: a guest write there signals fd instead of exiting to mica. */
struct machine_ioeventfd {
	int fd;
	uint64_t addr;
	uint32_t len;          /* 0: any write (KVM's fast MMIO path, no decode); else 1-8 */
	bool pio;
	bool datamatch;        /* only writes of `data` (len bytes) signal */
	uint64_t data;
};

struct machine_ops {
	/* Drives a level-triggered line of the PIC/IOAPIC (GSI 0-23). */
	int (*set_irq_line)(struct machine *m, uint32_t gsi, int level);
	/* Ties an eventfd to a GSI: each signal injects an edge (KVM_IRQFD). */
	int (*irqfd)(struct machine *m, int fd, uint32_t gsi, bool assign);
	int (*ioeventfd)(struct machine *m, const struct machine_ioeventfd *io, bool assign);
	/* A fresh GSI for an MSI route (pointing nowhere yet); returns it, or -ENOSPC. */
	int (*msi_alloc)(struct machine *m);
	/* Points an MSI GSI at (address, data). */
	int (*msi_route)(struct machine *m, uint32_t gsi, uint64_t addr, uint32_t data);
	/* Ends the VM with this status (the first request wins); reason is a short fixed word. */
	void (*request_exit)(struct machine *m, int status, const char *reason);
	/* The machine takes obj and calls destroy(obj) when it is torn down, in reverse order. */
	int (*own)(struct machine *m, void *obj, void (*destroy)(void *obj));
	/* obj holds guest-visible state that a snapshot saves and a restore brings back through
	 * ops (snapshot/snapshot.h), in the order of these calls. Set-up time only. */
	int (*add_state)(struct machine *m, void *obj, const struct snap_ops *ops);
};

/* A memory-mapped device the guest must be told about (device tree, ACPI, command line). */
struct machine_platform_dev {
	const char *compatible;
	uint64_t base;
	uint64_t size;
	uint32_t gsi;
};

#define MACHINE_MAX_PLATFORM_DEVS 16

struct machine {
	const struct machine_ops *ops;
	struct bus *pio;
	struct bus *mmio;
	struct guest_mem *mem;
	struct evloop *loop;
	bool ioeventfd_no_length;  /* zero-length MMIO ioeventfds work (KVM's fast MMIO) */

	/* The board, filled in as devices are plugged in (set-up time only, one thread), read by
	 * the firmware tables and the boot loaders. */
	struct machine_platform_dev platform_devs[MACHINE_MAX_PLATFORM_DEVS];
	int nplatform_devs;
	bool pci;                  /* a PCI host bridge with its ECAM window */
};

static inline int machine_set_irq_line(struct machine *m, uint32_t gsi, int level)
{
	return m->ops->set_irq_line(m, gsi, level);
}

static inline int machine_irqfd(struct machine *m, int fd, uint32_t gsi, bool assign)
{
	return m->ops->irqfd(m, fd, gsi, assign);
}

static inline int machine_ioeventfd(struct machine *m, const struct machine_ioeventfd *io,
				    bool assign)
{
	return m->ops->ioeventfd(m, io, assign);
}

static inline int machine_msi_alloc(struct machine *m)
{
	return m->ops->msi_alloc(m);
}

static inline int machine_msi_route(struct machine *m, uint32_t gsi, uint64_t addr, uint32_t data)
{
	return m->ops->msi_route(m, gsi, addr, data);
}

static inline void machine_request_exit(struct machine *m, int status, const char *reason)
{
	m->ops->request_exit(m, status, reason);
}

static inline int machine_own(struct machine *m, void *obj, void (*destroy)(void *obj))
{
	return m->ops->own(m, obj, destroy);
}

static inline int machine_add_state(struct machine *m, void *obj, const struct snap_ops *ops)
{
	return m->ops->add_state(m, obj, ops);
}

/* Lists a platform device for the firmware tables; -ENOSPC when the board is full. */
int machine_add_platform_dev(struct machine *m, const struct machine_platform_dev *d);

#endif

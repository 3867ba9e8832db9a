/* PCI: a host bridge on bus 0, configuration mechanism #1 (ports 0xcf8/0xcfc), an ECAM window,
 * BARs sized and moved by the guest as on real hardware, capabilities, and INTx.
 *
 * Devices get their BARs pre-assigned as firmware would (32-bit memory BARs in the window below
 * 4 GiB, 64-bit ones above RAM, I/O BARs from 0xc000) with decoding enabled; a guest may
 * reassign them. INTx of slot s, pin p (1 = INTA) goes to GSI 16 + (s + p - 1) % 4
 * (pci_intx_gsi(), which the firmware tables describe too). */
#ifndef MICA_PCI_H
#define MICA_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"

struct machine;
struct pci_bus;
struct pci_dev;

#define PCI_CFG_SIZE 4096
#define PCI_NUM_BARS 6
#define PCI_MAX_SLOTS 32
#define PCI_INTX_GSI_BASE 16
#define PCI_IO_START 0xc000

struct pci_bar {
	uint64_t size;       /* a power of two; 0: the BAR is unused */
	bool io;
	bool is64;
	uint64_t addr;       /* as last programmed */
	bool mapped;         /* registered on the bus at mapped_addr */
	uint64_t mapped_addr;
	const struct bus_ops *ops;
	void *opaque;
};

struct pci_dev_ops {
	/* Optional: a config read the device computes itself; true if it filled *val. */
	bool (*cfg_read)(struct pci_dev *pdev, uint32_t off, uint32_t len, uint32_t *val);
	/* Optional: after the generic part of a config write (capabilities react here). */
	void (*cfg_written)(struct pci_dev *pdev, uint32_t off, uint32_t len, uint32_t val);
	/* Optional: a BAR was mapped (true) at addr, or unmapped. */
	void (*bar_mapped)(struct pci_dev *pdev, int bar, uint64_t addr, bool mapped);
};

/* A device's config space and BARs are guarded by its bus's lock (devices/pci.c); its INTx
 * state by the bus's INTx lock. */
struct pci_dev {
	struct pci_bus *bus;
	const struct pci_dev_ops *ops;
	void *priv;
	int slot;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];   /* bits the guest may change in plain config registers */
	struct pci_bar bars[PCI_NUM_BARS];
	uint8_t last_cap;              /* offset of the last capability, 0 if none */
	uint8_t cap_end;               /* next free capability offset */
	uint32_t intx_gsi;
	int intx_level;                /* what the device asks for */
	bool intx_disabled;            /* the command register's INTx-disable bit */
	int intx_line;                 /* what the interrupt controller was last told */
};

/* Creates the bus (owned by the machine) with its host bridge and config-space access paths. */
int pci_bus_create(struct machine *m, struct pci_bus **out);

/* Fills the header of a type-0 device. Call pci_add_bar/pci_add_cap, then pci_register. */
void pci_dev_init(struct pci_dev *pdev, struct pci_bus *bus, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id,
		  const struct pci_dev_ops *ops, void *priv);
void pci_add_bar(struct pci_dev *pdev, int bar, uint64_t size, bool io, bool is64,
		 const struct bus_ops *ops, void *opaque);
/* Reserves len bytes of capability `id` in config space; returns its offset (0 if full). */
uint8_t pci_add_cap(struct pci_dev *pdev, uint8_t id, uint8_t len);
/* Puts the device in the next free slot of its bus, assigns its BARs and maps them. */
int pci_register(struct pci_dev *pdev);

/* The window for 64-bit BARs: from the first 1 GiB boundary at or above the end of RAM. */
void pci_mmio64_window(const struct machine *m, uint64_t *start, uint64_t *end);

/* The GSI (IOAPIC pin) that INTx pin `pin` (0 = INTA .. 3 = INTD) of `slot` is wired to: the
 * usual swizzle. The one copy of the wiring: devices/pci.c drives the line there, the ACPI _PRT
 * and the MP table tell the guest so. */
static inline uint32_t pci_intx_gsi(int slot, int pin)
{
	return PCI_INTX_GSI_BASE + (uint32_t)(slot + pin) % 4;
}

/* Drives the device's INTx line (pin A); respects the command register's INTx-disable bit.
 * Any thread; takes only the bus's INTx lock. */
void pci_set_intx(struct pci_dev *pdev, int level);

/* Snapshots of one function's guest-programmed configuration: the bytes of config space the
 * guest may write (command register, interrupt line, the writable parts of capabilities, MSI-X
 * control included) and every BAR's address. Each takes the bus lock itself (call it before
 * the device's own lock). A restore validates the BARs as a guest BAR write would leave them
 * (aligned to their size, I/O below 64 KiB, 32-bit ones below 4 GiB) and moves them as a guest
 * write does: the bus ranges and the device's bar_mapped hook (its ioeventfds) follow. It calls
 * no cfg_written hook: a capability's owner re-reads its part (msix_restore). */
struct snap_writer;
struct snap_cursor;
struct err;
void pci_dev_save(struct pci_dev *pdev, struct snap_writer *w);
int pci_dev_restore(struct pci_dev *pdev, struct snap_cursor *c, const char *who, struct err *e);

static inline uint16_t pci_cfg_read16(const struct pci_dev *p, uint32_t off)
{
	return p->cfg[off] | (uint16_t)p->cfg[off + 1] << 8;
}

static inline uint32_t pci_cfg_read32(const struct pci_dev *p, uint32_t off)
{
	return pci_cfg_read16(p, off) | (uint32_t)pci_cfg_read16(p, off + 2) << 16;
}

#endif

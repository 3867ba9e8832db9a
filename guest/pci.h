/* PCI for the test guest: bus 0 enumeration through configuration mechanism #1 (0xcf8/0xcfc)
 * and ECAM (the FDT's "pci-host-ecam-generic" node), BARs, capabilities, and page-table
 * entries for 64-bit BARs above 4 GiB (the boot tables map only the first 4 GiB). */
#ifndef GUEST_PCI_H
#define GUEST_PCI_H

#include "guest.h"

/* Config header offsets and bits (PCI Local Bus 3.0) */
#define PCI_VENDOR_ID        0x00
#define PCI_DEVICE_ID        0x02
#define PCI_COMMAND          0x04
#define PCI_STATUS           0x06
#define PCI_REVISION         0x08
#define PCI_CLASS_PROG       0x09
#define PCI_HEADER_TYPE      0x0e
#define PCI_BAR0             0x10
#define PCI_SUBSYS_VENDOR    0x2c
#define PCI_SUBSYS_ID        0x2e
#define PCI_CAP_PTR          0x34
#define PCI_INTERRUPT_LINE   0x3c
#define PCI_INTERRUPT_PIN    0x3d

#define PCI_CMD_IO           0x0001
#define PCI_CMD_MEM          0x0002
#define PCI_CMD_MASTER       0x0004
#define PCI_CMD_INTX_DISABLE 0x0400
#define PCI_STATUS_INTX      0x0008
#define PCI_STATUS_CAPS      0x0010

#define PCI_BAR_IO           0x1
#define PCI_BAR_MEM64        0x4

#define PCI_CAP_VNDR         0x09
#define PCI_CAP_MSIX         0x11
#define PCI_MSIX_CTRL        2      /* Message Control, from the capability */
#define PCI_MSIX_TABLE       4
#define PCI_MSIX_PBA         8
#define PCI_MSIX_ENABLE      0x8000
#define PCI_MSIX_MASKALL     0x4000
#define PCI_MSIX_ENTRY_SIZE  16
#define PCI_MSIX_ENTRY_CTRL  12
#define PCI_MSIX_ENTRY_MASK  0x1

#define PCI_MAX_FUNCS 32

struct pci_bar_info {
    uint64_t addr;  /* as pre-assigned (the guest keeps it) */
    uint64_t size;  /* from sizing; 0: unused */
    bool io, is64;
};

struct pci_func {
    uint8_t bus, slot, fn;
    uint16_t vendor, device, subsys_id;
    uint8_t revision, header_type, irq_line, irq_pin;
    uint32_t class_code;
    struct pci_bar_info bar[6];
    uint8_t msix_cap;   /* 0 if none */
};

/* Enumerates bus 0 once (idempotent), sizes every BAR, maps 64-bit BARs; number of functions. */
unsigned pci_probe(void);
struct pci_func *pci_func_get(unsigned i);
bool pci_have_ecam(void);
uint64_t pci_ecam_base(void);

/* Config access to a function: ECAM when the FDT lists it, else mechanism #1. */
uint32_t pci_read32(const struct pci_func *f, unsigned off);
uint16_t pci_read16(const struct pci_func *f, unsigned off);
uint8_t pci_read8(const struct pci_func *f, unsigned off);
void pci_write32(const struct pci_func *f, unsigned off, uint32_t v);
void pci_write16(const struct pci_func *f, unsigned off, uint16_t v);
void pci_write8(const struct pci_func *f, unsigned off, uint8_t v);

/* One mechanism explicitly (bus/slot/fn addressing), for the enumeration test. */
uint32_t pci_cf8_read32(unsigned bus, unsigned slot, unsigned fn, unsigned off);
void pci_cf8_write32(unsigned bus, unsigned slot, unsigned fn, unsigned off, uint32_t v);
uint32_t pci_ecam_read32(unsigned bus, unsigned slot, unsigned fn, unsigned off);
void pci_ecam_write32(unsigned bus, unsigned slot, unsigned fn, unsigned off, uint32_t v);

/* Capability walk: offset of the first capability `id` at or after list entry `from` (0 = from
 * the start), 0 if none. Bounded against loops. */
uint8_t pci_find_cap(const struct pci_func *f, uint8_t id, uint8_t from);

/* Sizes BAR i with the all-ones protocol (decode off around it, then everything restored):
 * returns the size (0 if unused) and the raw read-back words. */
uint64_t pci_size_bar(const struct pci_func *f, unsigned i, uint32_t *lo_ones, uint32_t *hi_ones);

/* Identity-maps [pa, pa + size) (uncached, 2 MiB pages) in the current page tables. */
bool pci_map_mmio(uint64_t pa, uint64_t size);

#endif

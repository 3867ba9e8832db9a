/* ACPI tables for Linux guests (see acpi.c). */
#ifndef MICA_ACPI_H
#define MICA_ACPI_H

#include <stdint.h>

#include "vmm/err.h"

struct vm;

#define ACPI_SLEEP_CONTROL_PORT 0x600
#define ACPI_SLEEP_STATUS_PORT  0x601
#define ACPI_RESET_PORT         0xcf9
#define ACPI_RESET_VALUE        0x06
#define ACPI_SLP_TYP_S5         5
#define ACPI_SLP_EN             0x20

struct acpi_info {
	uint64_t pci_mmio64_start, pci_mmio64_end; /* the 64-bit PCI window */
};

/* Writes the tables into guest memory; returns 0 and the RSDP's address, or -errno with e. */
int acpi_build(struct vm *vm, const struct acpi_info *info, uint64_t *rsdp_addr, struct err *e);

#endif

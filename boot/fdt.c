/* The boot-info flattened device tree handed to ELF guests (see docs/boot-contract.md). */
#include <errno.h>
#include <libfdt.h>
#include <stdio.h>

#include "boot/boot.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

/* Stops at the first libfdt error, keeping it. */
#define FDT_TRY(expr) do { if (!err) err = (expr); } while (0)

static int fdt_prop_u64_pairs(void *fdt, const char *name, const uint64_t *v, int n)
{
	fdt64_t cells[8];

	for (int i = 0; i < n && i < 8; i++)
		cells[i] = cpu_to_fdt64(v[i]);
	return fdt_property(fdt, name, cells, n * sizeof(cells[0]));
}

int fdt_build_bootinfo(struct vm *vm, const struct boot_config *bc, struct err *e)
{
	void *fdt = gpa_range(&vm->mem, BOOTINFO_ADDR, BOOTINFO_MAX);
	uint64_t mem[4];
	int nmem = 0, err = 0;

	if (!fdt)
		return err_set(e, -ENOMEM, "guest RAM too small for the boot information");
	for (int i = 0; i < vm->mem.nregions; i++) {
		uint64_t start = vm->mem.regions[i].gpa, size = vm->mem.regions[i].size;

		/* The first MiB holds boot structures; the guest must leave it alone. */
		if (start < HIGH_MEM_START) {
			if (size <= HIGH_MEM_START)
				continue;
			size -= HIGH_MEM_START - start;
			start = HIGH_MEM_START;
		}
		mem[nmem++] = start;
		mem[nmem++] = size;
	}

	FDT_TRY(fdt_create(fdt, BOOTINFO_MAX));
	FDT_TRY(fdt_finish_reservemap(fdt));
	FDT_TRY(fdt_begin_node(fdt, ""));
	FDT_TRY(fdt_property_u32(fdt, "#address-cells", 2));
	FDT_TRY(fdt_property_u32(fdt, "#size-cells", 2));
	FDT_TRY(fdt_property_string(fdt, "compatible", "mica,x86"));

	FDT_TRY(fdt_begin_node(fdt, "chosen"));
	FDT_TRY(fdt_property_string(fdt, "bootargs", bc->cmdline ? bc->cmdline : ""));
	FDT_TRY(fdt_end_node(fdt));

	FDT_TRY(fdt_begin_node(fdt, "memory@0"));
	FDT_TRY(fdt_property_string(fdt, "device_type", "memory"));
	FDT_TRY(fdt_prop_u64_pairs(fdt, "reg", mem, nmem));
	FDT_TRY(fdt_end_node(fdt));

	FDT_TRY(fdt_begin_node(fdt, "cpus"));
	FDT_TRY(fdt_property_u32(fdt, "#address-cells", 1));
	FDT_TRY(fdt_property_u32(fdt, "#size-cells", 0));
	for (int i = 0; i < vm->ncpus && !err; i++) {
		char name[16];

		snprintf(name, sizeof(name), "cpu@%d", i);
		FDT_TRY(fdt_begin_node(fdt, name));
		FDT_TRY(fdt_property_string(fdt, "device_type", "cpu"));
		FDT_TRY(fdt_property_u32(fdt, "reg", i)); /* APIC ID */
		FDT_TRY(fdt_end_node(fdt));
	}
	FDT_TRY(fdt_end_node(fdt));

	if (vm->machine.pci) {
		uint64_t ecam[2] = { PCI_ECAM_BASE, PCI_ECAM_BUS_SIZE };
		uint32_t bus_range[2] = { cpu_to_fdt32(0), cpu_to_fdt32(0) };
		char name[48];

		snprintf(name, sizeof(name), "pci@%llx", (unsigned long long)PCI_ECAM_BASE);
		FDT_TRY(fdt_begin_node(fdt, name));
		FDT_TRY(fdt_property_string(fdt, "compatible", "pci-host-ecam-generic"));
		FDT_TRY(fdt_property_string(fdt, "device_type", "pci"));
		FDT_TRY(fdt_prop_u64_pairs(fdt, "reg", ecam, 2));
		FDT_TRY(fdt_property(fdt, "bus-range", bus_range, sizeof(bus_range)));
		FDT_TRY(fdt_end_node(fdt));
	}

	if (bc->bench_probes) {
		uint64_t reg[2] = { BENCH_MMIO_ADDR, 4096 };
		char name[48];

		snprintf(name, sizeof(name), "bench@%llx", (unsigned long long)BENCH_MMIO_ADDR);
		FDT_TRY(fdt_begin_node(fdt, name));
		FDT_TRY(fdt_property_string(fdt, "compatible", "mica,bench"));
		FDT_TRY(fdt_prop_u64_pairs(fdt, "reg", reg, 2));
		FDT_TRY(fdt_property_u32(fdt, "mica,pio-port", BENCH_PIO_PORT));
		FDT_TRY(fdt_property_u32(fdt, "mica,eventfd-port", BENCH_EVENTFD_PORT));
		if (bc->bench_mmio_notify)
			FDT_TRY(fdt_property_u64(fdt, "mica,mmio-notify", bc->bench_mmio_notify));
		if (bc->bench_pci_notify)
			FDT_TRY(fdt_property_u64(fdt, "mica,pci-notify", bc->bench_pci_notify));
		FDT_TRY(fdt_end_node(fdt));
	}

	for (int i = 0; i < vm->machine.nplatform_devs && !err; i++) {
		const struct machine_platform_dev *d = &vm->machine.platform_devs[i];
		uint64_t reg[2] = { d->base, d->size };
		char name[48];

		snprintf(name, sizeof(name), "virtio_mmio@%llx", (unsigned long long)d->base);
		FDT_TRY(fdt_begin_node(fdt, name));
		FDT_TRY(fdt_property_string(fdt, "compatible", d->compatible));
		FDT_TRY(fdt_prop_u64_pairs(fdt, "reg", reg, 2));
		FDT_TRY(fdt_property_u32(fdt, "interrupts", d->gsi));
		FDT_TRY(fdt_end_node(fdt));
	}

	FDT_TRY(fdt_end_node(fdt));
	FDT_TRY(fdt_finish(fdt));
	if (err)
		return err_set(e, -ENOSPC, "%s", err == -FDT_ERR_NOSPACE
			       ? "the boot information is larger than 64 KiB (--cmdline too long?)"
			       : "cannot build the boot-info device tree");
	return 0;
}

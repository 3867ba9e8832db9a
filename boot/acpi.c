/* ACPI tables, built by mica for Linux guests: RSDP, XSDT, a hardware-reduced FADT, MADT (a
 * local APIC per vCPU, the IOAPIC, the LINT1 NMI), MCFG for the ECAM window, and a DSDT in AML
 * listing the UART, the PCI host bridge (with its windows and INTx routing), the ECAM window as a
 * motherboard resource, and each virtio-mmio device as LNRO0005. They live in the reserved BIOS
 * area at 0xe0000, where Linux also scans for the RSDP.
 *
 * Power: the FADT's sleep control register is port 0x600 (SLP_TYP 5 with SLP_EN powers off: the
 * VM ends with status 0) and its reset register is port 0xcf9 (value 6: the VM ends, a reset). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "boot/acpi.h"
#include "boot/aml.h"
#include "devices/pci.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define ACPI_BASE       0xe0000ULL
#define ACPI_END        0x100000ULL
#define ACPI_OEM_ID     "MICA  "
#define ACPI_OEM_TABLE  "MICAVM  "

struct __attribute__((packed)) acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
};

struct __attribute__((packed)) acpi_gas {
	uint8_t space_id;     /* 1: system I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;  /* 1: byte */
	uint64_t address;
};

/* Tables are appended one after another in guest memory. */
struct acpi_writer {
	struct vm *vm;
	uint64_t next;
	int error;
};

static uint8_t checksum(const void *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += ((const uint8_t *)p)[i];
	return (uint8_t)-sum;
}

/* Copies a finished table (header included) into guest memory; returns its address. */
static uint64_t emit(struct acpi_writer *w, void *table, size_t len, size_t align)
{
	uint64_t at = ALIGN_UP(w->next, align);
	void *dst = at + len <= ACPI_END ? gpa_range(&w->vm->mem, at, len) : NULL;

	if (!dst) {
		w->error = -ENOSPC;
		return 0;
	}
	memcpy(dst, table, len);
	w->next = at + len;
	return at;
}

static void header(struct acpi_header *h, const char *sig, size_t len, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, "MICA", 4);
	h->creator_revision = 1;
	h->checksum = 0;
}

static uint64_t emit_table(struct acpi_writer *w, void *t, size_t len, const char *sig, uint8_t rev)
{
	header(t, sig, len, rev);
	((struct acpi_header *)t)->checksum = checksum(t, len);
	return emit(w, t, len, 8);
}

/* ---- DSDT ---- */

static void dsdt_uart(struct aml *a)
{
	aml_device(a, "COM1");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0501");
	aml_name_decl(a, "_UID");
	aml_integer(a, 1);
	aml_name_decl(a, "_CRS");
	aml_resources(a);
	aml_res_io(a, UART_COM1_PORT, 8);
	aml_res_irq_noflags(a, UART_COM1_IRQ);
	aml_end(a);
	aml_end(a);
}

static void dsdt_rtc(struct aml *a)
{
	aml_device(a, "RTC_");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0B00");
	aml_name_decl(a, "_CRS");
	aml_resources(a);
	aml_res_io(a, RTC_PORT, 2);
	aml_res_irq_noflags(a, 8);
	aml_end(a);
	aml_end(a);
}

static void dsdt_pci(struct aml *a, const struct acpi_info *info)
{
	aml_device(a, "PCI0");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0A08");
	aml_name_decl(a, "_CID");
	aml_eisaid(a, "PNP0A03");
	aml_name_decl(a, "_SEG");
	aml_integer(a, 0);
	aml_name_decl(a, "_BBN");
	aml_integer(a, 0);
	aml_name_decl(a, "_UID");
	aml_integer(a, 0);
	aml_name_decl(a, "_CRS");
	aml_resources(a);
	aml_res_bus_numbers(a, 0, 0);
	aml_res_io(a, 0xcf8, 8);
	aml_res_word_io(a, 0x0000, 0x0cf7);
	aml_res_word_io(a, 0x0d00, 0xffff);
	aml_res_dword_memory(a, PCI_MMIO32_START, PCI_MMIO32_START + PCI_MMIO32_SIZE - 1);
	aml_res_qword_memory(a, info->pci_mmio64_start, info->pci_mmio64_end - 1);
	aml_end(a);
	/* INTx of every slot but the host bridge's, pin 0 = INTA, as devices/pci.c wires it. */
	aml_name_decl(a, "_PRT");
	aml_package(a, (PCI_MAX_SLOTS - 1) * 4);
	for (int slot = 1; slot < PCI_MAX_SLOTS; slot++) {
		for (int pin = 0; pin < 4; pin++) {
			aml_package(a, 4);
			aml_integer(a, ((uint64_t)slot << 16) | 0xffff);
			aml_integer(a, pin);
			aml_integer(a, 0);
			aml_integer(a, pci_intx_gsi(slot, pin));
			aml_end(a);
		}
	}
	aml_end(a);
	aml_end(a);

	/* The ECAM window, claimed as a motherboard resource so Linux trusts the MCFG. */
	aml_device(a, "RES0");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0C02");
	aml_name_decl(a, "_CRS");
	aml_resources(a);
	aml_res_memory32_fixed(a, PCI_ECAM_BASE, PCI_ECAM_BUS_SIZE);
	aml_end(a);
	aml_end(a);
}

static void dsdt_virtio_mmio(struct aml *a, struct vm *vm)
{
	for (int i = 0, n = 0; i < vm->machine.nplatform_devs; i++) {
		const struct machine_platform_dev *d = &vm->machine.platform_devs[i];
		char name[5];

		if (strcmp(d->compatible, "virtio,mmio"))
			continue;
		snprintf(name, sizeof(name), "VR%02X", n & 0xff);
		aml_device(a, name);
		aml_name_decl(a, "_HID");
		aml_string(a, "LNRO0005");
		aml_name_decl(a, "_UID");
		aml_integer(a, n++);
		aml_name_decl(a, "_CRS");
		aml_resources(a);
		aml_res_memory32_fixed(a, d->base, d->size);
		aml_res_interrupt(a, d->gsi, 1, 0);
		aml_end(a);
		aml_end(a);
	}
}

static uint64_t build_dsdt(struct acpi_writer *w, const struct acpi_info *info)
{
	struct aml a;
	uint64_t at = 0;

	aml_init(&a);
	aml_bytes(&a, &(struct acpi_header){ 0 }, sizeof(struct acpi_header));
	aml_scope(&a, "\\_SB_");
	dsdt_uart(&a);
	dsdt_rtc(&a);
	if (w->vm->machine.pci)
		dsdt_pci(&a, info);
	dsdt_virtio_mmio(&a, w->vm);
	aml_end(&a);
	/* \_S5: the sleep type for power-off, written to the sleep control register. */
	aml_name_decl(&a, "\\_S5_");
	aml_package(&a, 2);
	aml_integer(&a, ACPI_SLP_TYP_S5);
	aml_integer(&a, 0);
	aml_end(&a);
	if (a.error)
		w->error = a.error;
	else
		at = emit_table(w, a.buf, a.len, "DSDT", 2);
	aml_free(&a);
	return at;
}

/* ---- fixed tables ---- */

static uint64_t build_fadt(struct acpi_writer *w, uint64_t dsdt)
{
	uint8_t t[276] = { 0 };
	struct acpi_gas sleep_ctl = { 1, 8, 0, 1, ACPI_SLEEP_CONTROL_PORT };
	struct acpi_gas sleep_sts = { 1, 8, 0, 1, ACPI_SLEEP_STATUS_PORT };
	struct acpi_gas reset = { 1, 8, 0, 1, ACPI_RESET_PORT };
	uint32_t flags = (1u << 20) /* HW_REDUCED_ACPI */ | (1u << 10) /* RESET_REG_SUP */ |
			 (1u << 0) /* WBINVD */;
	uint16_t boot_arch = 1u << 2; /* no VGA; and no 8042 flag: Linux then skips probing it */
	uint32_t dsdt32 = dsdt;

	memcpy(t + 40, &dsdt32, 4);
	memcpy(t + 109, &boot_arch, 2);
	memcpy(t + 112, &flags, 4);
	memcpy(t + 116, &reset, sizeof(reset));
	t[128] = ACPI_RESET_VALUE;
	t[131] = 3; /* FADT minor version: 6.3 */
	memcpy(t + 140, &dsdt, 8);
	memcpy(t + 244, &sleep_ctl, sizeof(sleep_ctl));
	memcpy(t + 256, &sleep_sts, sizeof(sleep_sts));
	memcpy(t + 268, "MICA KVM", 8); /* hypervisor vendor identity */
	return emit_table(w, t, sizeof(t), "FACP", 6);
}

static uint64_t build_madt(struct acpi_writer *w)
{
	uint8_t t[44 + 64 * 8 + 12 + 6] = { 0 };
	uint32_t lapic = LAPIC_ADDR, ioapic = IOAPIC_ADDR, flags = 1; /* PCAT_COMPAT: 8259s present */
	size_t n = 44;

	memcpy(t + 36, &lapic, 4);
	memcpy(t + 40, &flags, 4);
	for (int i = 0; i < w->vm->ncpus; i++) {
		uint8_t e[8] = { 0, 8, (uint8_t)i, (uint8_t)i, 1 /* enabled */ };

		memcpy(t + n, e, 8);
		n += 8;
	}
	{
		uint8_t e[12] = { 1, 12, 0 /* IOAPIC ID */, 0 };

		memcpy(e + 4, &ioapic, 4); /* GSI base 0 follows, already zero */
		memcpy(t + n, e, 12);
		n += 12;
	}
	{
		uint8_t e[6] = { 4, 6, 0xff /* all processors */, 0, 0, 1 /* LINT1 */ };

		memcpy(t + n, e, 6);
		n += 6;
	}
	return emit_table(w, t, n, "APIC", 5);
}

static uint64_t build_mcfg(struct acpi_writer *w)
{
	uint8_t t[44 + 16] = { 0 };
	uint64_t base = PCI_ECAM_BASE;

	memcpy(t + 44, &base, 8);
	t[44 + 10] = 0; /* start bus */
	t[44 + 11] = 0; /* end bus */
	return emit_table(w, t, sizeof(t), "MCFG", 1);
}

int acpi_build(struct vm *vm, const struct acpi_info *info, uint64_t *rsdp_addr, struct err *e)
{
	struct acpi_writer w = { .vm = vm, .next = ACPI_BASE + 64 /* the RSDP goes first */ };
	uint64_t dsdt, xsdt_addr, tables[3];
	int ntables = 0;
	uint8_t xsdt[36 + 3 * 8] = { 0 };
	uint8_t rsdp[36] = { 0 };
	uint32_t len = sizeof(rsdp);

	dsdt = build_dsdt(&w, info);
	tables[ntables++] = build_fadt(&w, dsdt);
	tables[ntables++] = build_madt(&w);
	if (vm->machine.pci)
		tables[ntables++] = build_mcfg(&w);
	memcpy(xsdt + 36, tables, ntables * 8);
	xsdt_addr = emit_table(&w, xsdt, 36 + ntables * 8, "XSDT", 1);
	if (w.error)
		return err_set(e, w.error, "the ACPI tables do not fit in the BIOS area");
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, ACPI_OEM_ID, 6);
	rsdp[15] = 2; /* ACPI 2.0+ */
	memcpy(rsdp + 20, &len, 4);
	memcpy(rsdp + 24, &xsdt_addr, 8);
	rsdp[8] = checksum(rsdp, 20);
	rsdp[32] = checksum(rsdp, 36);
	w.next = ACPI_BASE;
	*rsdp_addr = emit(&w, rsdp, sizeof(rsdp), 16);
	return w.error;
}

/* The Intel MultiProcessor table (MP spec 1.4), for Linux kernels booted with --acpi off (and
 * built with X86_MPPARSE): every vCPU; the PCI bus (bus 0) and the ISA bus; the IOAPIC; ISA IRQs
 * 0-15 on the same pins; the INTx pins of every PCI slot on the GSIs devices/pci.c drives them
 * on (pci_intx_gsi(), as the ACPI _PRT says); LINT0 = ExtINT, LINT1 = NMI. It sits at the start
 * of the EBDA, where Linux looks for it.
 *
 * Linux looks up a PCI device's interrupt by (its PCI bus number, slot, pin) among the entries
 * whose source bus is that MP bus ID: the PCI bus's ID must be its bus number, 0, so the ISA bus
 * is 1 (as firmware numbers them: PCI buses first). */
#include <errno.h>
#include <string.h>

#include "boot/boot.h"
#include "devices/pci.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define MP_APIC_VERSION   0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_IOAPIC_ID      0 /* as in the MADT; numbered apart from the local APICs */
#define MP_MAX_CPUS       64
#define MP_PCI_BUS        0
#define MP_ISA_IRQS       16
#define MP_PCI_IRQS       ((PCI_MAX_SLOTS - 1) * 4) /* INTA-D of every slot but the host bridge's */

/* Entry types and the I/O interrupt flags (polarity bits 0-1, trigger mode bits 2-3). */
enum { MP_CPU, MP_BUS, MP_IOAPIC, MP_IOINT, MP_LINT };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
#define MP_FLAGS_CONFORMING 0x0
#define MP_FLAGS_ACTIVE_LOW_LEVEL 0xf /* polarity 11: active low; trigger 11: level */

#define MP_FP_SIZE  16
#define MP_HDR_SIZE 44
#define MP_MAX_SIZE (MP_FP_SIZE + MP_HDR_SIZE + MP_MAX_CPUS * 20 + \
		     8 * (2 /* buses */ + 1 /* IOAPIC */ + MP_ISA_IRQS + MP_PCI_IRQS + 2 /* LINTs */))

static uint8_t mp_checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += p[i];
	return (uint8_t)-sum;
}

/* An I/O interrupt entry: source bus IRQ on bus `bus` -> IOAPIC pin `pin`. */
static uint8_t *mp_ioint(uint8_t *ent, uint8_t flags, uint8_t bus, uint8_t bus_irq, uint8_t pin)
{
	uint8_t e[8] = { MP_IOINT, MP_INT, flags, 0, bus, bus_irq, MP_IOAPIC_ID, pin };

	memcpy(ent, e, 8);
	return ent + 8;
}

int mptable_build(struct vm *vm, struct err *e)
{
	uint8_t *base = gpa_range(&vm->mem, EBDA_START, MP_MAX_SIZE);
	uint8_t *fp = base, *cfg = base + MP_FP_SIZE, *ent;
	uint32_t lapic = LAPIC_ADDR, ioapic = IOAPIC_ADDR, cfg_addr = EBDA_START + MP_FP_SIZE;
	bool pci = vm->machine.pci;
	uint8_t isa_bus = pci ? MP_PCI_BUS + 1 : 0;
	uint16_t count = 0, len;

	if (!base)
		return err_set(e, -ENOMEM, "guest RAM too small for the MP table");
	if (vm->ncpus > MP_MAX_CPUS)
		return err_set(e, -EINVAL, "the MP table holds at most %d vCPUs", MP_MAX_CPUS);
	memset(base, 0, MP_MAX_SIZE);
	ent = cfg + MP_HDR_SIZE;
	for (int i = 0; i < vm->ncpus; i++, count++, ent += 20) {
		ent[0] = MP_CPU;
		ent[1] = i;                              /* local APIC ID */
		ent[2] = MP_APIC_VERSION;
		ent[3] = 1 | (i == 0 ? 2 : 0);           /* enabled, boot processor */
		memcpy(ent + 4, &(uint32_t){ 0x600 }, 4); /* family 6 signature */
		memcpy(ent + 8, &(uint32_t){ 0x201 }, 4); /* FPU, APIC */
	}
	if (pci) {
		memcpy(ent, "\x01\x00PCI   ", 8);
		ent += 8, count++;
	}
	memcpy(ent, "\x01\x00ISA   ", 8);
	ent[1] = isa_bus;
	ent += 8, count++;
	ent[0] = MP_IOAPIC, ent[1] = MP_IOAPIC_ID, ent[2] = MP_IOAPIC_VERSION, ent[3] = 1;
	memcpy(ent + 4, &ioapic, 4);
	ent += 8, count++;
	/* ISA: conforming polarity and trigger (edge, active high), each IRQ on the same pin. */
	for (int irq = 0; irq < MP_ISA_IRQS; irq++, count++)
		ent = mp_ioint(ent, MP_FLAGS_CONFORMING, isa_bus, irq, irq);
	/* PCI: level-triggered, active low (what the ACPI _PRT's GSI entries mean to Linux; KVM's
	 * IOAPIC takes mica's line level as asserted either way). Source IRQ: slot << 2 | pin. */
	for (int slot = 1; pci && slot < PCI_MAX_SLOTS; slot++)
		for (int pin = 0; pin < 4; pin++, count++)
			ent = mp_ioint(ent, MP_FLAGS_ACTIVE_LOW_LEVEL, MP_PCI_BUS, slot << 2 | pin,
				       pci_intx_gsi(slot, pin));
	/* LINT0 (ExtINT) and LINT1 (NMI) of every CPU. */
	ent[0] = MP_LINT, ent[1] = MP_EXTINT, ent[4] = isa_bus, ent[6] = 0xff, ent[7] = 0;
	ent += 8, count++;
	ent[0] = MP_LINT, ent[1] = MP_NMI, ent[4] = isa_bus, ent[6] = 0xff, ent[7] = 1;
	ent += 8, count++;
	len = ent - cfg;

	memcpy(cfg, "PCMP", 4);
	memcpy(cfg + 4, &len, 2);
	cfg[6] = 4;                                   /* spec revision 1.4 */
	memcpy(cfg + 8, "MICA    ", 8);
	memcpy(cfg + 16, "MICA VM     ", 12);
	memcpy(cfg + 34, &count, 2);
	memcpy(cfg + 36, &lapic, 4);
	cfg[7] = mp_checksum(cfg, len);

	memcpy(fp, "_MP_", 4);
	memcpy(fp + 4, &cfg_addr, 4);
	fp[8] = 1;                                    /* length in 16-byte units */
	fp[9] = 4;
	fp[10] = mp_checksum(fp, 16);
	return 0;
}

/* The Intel MultiProcessor table, for Linux kernels booted with --acpi off (and built with
 * X86_MPPARSE): every vCPU, the ISA bus, the IOAPIC with ISA IRQs 0-15 on the same pins, and
 * LINT0 = ExtINT, LINT1 = NMI. It sits at the start of the EBDA, where Linux looks for it. */
#include <errno.h>
#include <string.h>

#include "boot/boot.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define MP_MAX_SIZE (HIGH_MEM_START - EBDA_START - 0x400) /* below the ACPI area's start */
#define MP_APIC_VERSION 0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_IOAPIC_ID 0 /* as in the MADT; numbered apart from the local APICs */

static uint8_t mp_checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += p[i];
	return (uint8_t)-sum;
}

int mptable_build(struct vm *vm, struct err *e)
{
	uint8_t *base = gpa_range(&vm->mem, EBDA_START, 1024 + 64 * 20 + 256);
	uint8_t *fp = base, *cfg = base + 16, *ent;
	uint32_t lapic = LAPIC_ADDR, ioapic = IOAPIC_ADDR, cfg_addr = EBDA_START + 16;
	uint16_t count = 0, len;

	if (!base)
		return err_set(e, -ENOMEM, "guest RAM too small for the MP table");
	memset(base, 0, 16 + 44 + 64 * 20 + 8 + 8 + 16 * 8 + 2 * 8);
	ent = cfg + 44;
	for (int i = 0; i < vm->ncpus; i++, count++, ent += 20) {
		ent[0] = 0;                              /* processor */
		ent[1] = i;                              /* local APIC ID */
		ent[2] = MP_APIC_VERSION;
		ent[3] = 1 | (i == 0 ? 2 : 0);           /* enabled, boot processor */
		memcpy(ent + 4, &(uint32_t){ 0x600 }, 4); /* family 6 signature */
		memcpy(ent + 8, &(uint32_t){ 0x201 }, 4); /* FPU, APIC */
	}
	memcpy(ent, "\x01\x00ISA   ", 8);              /* bus 0: ISA */
	ent += 8, count++;
	ent[0] = 2, ent[1] = MP_IOAPIC_ID, ent[2] = MP_IOAPIC_VERSION, ent[3] = 1;
	memcpy(ent + 4, &ioapic, 4);
	ent += 8, count++;
	for (int irq = 0; irq < 16; irq++, count++, ent += 8) {
		/* I/O interrupt: INT, conforming polarity and trigger, ISA bus IRQ -> same pin. */
		ent[0] = 3, ent[1] = 0, ent[4] = 0, ent[5] = irq, ent[6] = MP_IOAPIC_ID, ent[7] = irq;
	}
	ent[0] = 4, ent[1] = 3 /* ExtINT */, ent[6] = 0xff, ent[7] = 0; /* LINT0 of every CPU */
	ent += 8, count++;
	ent[0] = 4, ent[1] = 1 /* NMI */, ent[6] = 0xff, ent[7] = 1;    /* LINT1 */
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

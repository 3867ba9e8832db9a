/* The MP table (boot/mptable.c) as Linux parses it with --acpi off: the floating pointer and
 * the configuration table with valid checksums, entries in type order, the vCPUs, the PCI bus as
 * bus 0 (Linux looks PCI interrupts up by the PCI bus number) and the ISA bus, and an I/O
 * interrupt entry for each INTx pin of each PCI slot leading to the IOAPIC pin the PCI bus
 * actually drives for the devices plugged in (devices/pci.c, through the fake machine). */
#include <linux/pci_regs.h>

#include "boot/boot.h"
#include "devices/pci.h"
#include "tests/unit/fake_machine.h"
#include "tests/unit/test.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

#define RAM   (16 * 1024 * 1024ULL)
#define NDEVS 6

struct mp_ioint {
	uint8_t type, irqtype;
	uint16_t flags;
	uint8_t bus, bus_irq, ioapic, pin;
};

/* What a parse of the table found. */
struct mp {
	int ncpus, bsp;
	uint8_t cpu_ids[64];
	int pci_bus, isa_bus;            /* -1: none */
	int nioapics;
	struct mp_ioint ints[256];
	int nints, nlints;
	bool sorted;                     /* entries in ascending type order */
};

static struct fake_machine fm;
static struct vm v;

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

/* Parses the table Linux would find at the start of the EBDA; false (and failed checks) when it
 * is malformed. */
static bool mp_parse(struct mp *mp)
{
	const uint8_t *fp = gpa_range(&v.mem, EBDA_START, 16), *cfg, *ent;
	uint32_t cfg_addr;
	uint16_t len, count;
	int last_type = 0;

	memset(mp, 0, sizeof(*mp));
	mp->pci_bus = mp->isa_bus = -1;
	mp->sorted = true;
	CHECK(fp && !memcmp(fp, "_MP_", 4));
	if (!fp || memcmp(fp, "_MP_", 4))
		return false;
	CHECK_EQ(sum(fp, 16), 0);
	CHECK_EQ(fp[8], 1);
	CHECK_EQ(fp[9], 4);
	memcpy(&cfg_addr, fp + 4, 4);
	cfg = gpa_range(&v.mem, cfg_addr, 44);
	CHECK(cfg && !memcmp(cfg, "PCMP", 4));
	if (!cfg || memcmp(cfg, "PCMP", 4))
		return false;
	memcpy(&len, cfg + 4, 2);
	memcpy(&count, cfg + 34, 2);
	cfg = gpa_range(&v.mem, cfg_addr, len);
	CHECK(cfg != NULL);
	if (!cfg)
		return false;
	CHECK_EQ(sum(cfg, len), 0);
	ent = cfg + 44;
	for (int i = 0; i < count; i++) {
		size_t size = ent[0] == 0 ? 20 : 8;

		CHECK(ent + size <= cfg + len);
		if (ent + size > cfg + len)
			return false;
		if (ent[0] < last_type)
			mp->sorted = false;
		last_type = ent[0];
		switch (ent[0]) {
		case 0:
			mp->cpu_ids[mp->ncpus++] = ent[1];
			if (ent[3] & 2)
				mp->bsp++;
			break;
		case 1:
			if (!memcmp(ent + 2, "PCI   ", 6))
				mp->pci_bus = ent[1];
			else if (!memcmp(ent + 2, "ISA   ", 6))
				mp->isa_bus = ent[1];
			break;
		case 2:
			mp->nioapics++;
			CHECK_EQ(ent[1], 0);
			CHECK_EQ(ent[3] & 1, 1);
			CHECK(!memcmp(ent + 4, &(uint32_t){ IOAPIC_ADDR }, 4));
			break;
		case 3: {
			struct mp_ioint *in = &mp->ints[mp->nints++];

			memcpy(in, ent, 8);
			break;
		}
		case 4:
			mp->nlints++;
			break;
		default:
			CHECK(!"an entry of an unknown type");
			return false;
		}
		ent += size;
	}
	CHECK(ent == cfg + len);
	return true;
}

/* The I/O interrupt entry for (bus, bus IRQ), or NULL; fails a check on a duplicate. */
static const struct mp_ioint *mp_find(const struct mp *mp, int bus, int bus_irq)
{
	const struct mp_ioint *found = NULL;

	for (int i = 0; i < mp->nints; i++) {
		if (mp->ints[i].bus != bus || mp->ints[i].bus_irq != bus_irq)
			continue;
		CHECK(found == NULL);
		found = &mp->ints[i];
	}
	return found;
}

static void setup(int ncpus, bool pci)
{
	fm_init(&fm, RAM);
	memset(&v, 0, sizeof(v));
	v.mem = fm.mem; /* shared; fm_destroy frees it */
	v.ncpus = ncpus;
	v.machine.pci = pci;
}

static void test_header_cpus_buses(void)
{
	struct err e = { "" };
	struct mp mp;

	setup(3, true);
	CHECK_EQ(mptable_build(&v, &e), 0);
	if (mp_parse(&mp)) {
		CHECK(mp.sorted);
		CHECK_EQ(mp.ncpus, 3);
		for (int i = 0; i < mp.ncpus; i++)
			CHECK_EQ(mp.cpu_ids[i], i);
		CHECK_EQ(mp.bsp, 1);
		CHECK_EQ(mp.pci_bus, 0);
		CHECK(mp.isa_bus > 0);
		CHECK_EQ(mp.nioapics, 1);
		CHECK_EQ(mp.nlints, 2);
		/* ISA IRQs 0-15 on the same pins, conforming polarity and trigger. */
		for (int irq = 0; irq < 16; irq++) {
			const struct mp_ioint *in = mp_find(&mp, mp.isa_bus, irq);

			CHECK(in != NULL);
			if (in)
				CHECK(in->irqtype == 0 && in->flags == 0 && in->ioapic == 0 &&
				      in->pin == irq);
		}
	}
	fm_destroy(&fm);
}

/* Every device the PCI bus holds: its INTA entry leads to the pin the bus raises for it, level
 * triggered and active low; every other slot and pin has its entry too (as in the _PRT). */
static void test_pci_routing_matches_bus(void)
{
	static struct pci_dev devs[NDEVS];
	struct pci_bus *bus;
	struct err e = { "" };
	struct mp mp;

	setup(1, false);
	CHECK_EQ(pci_bus_create(&fm.m, &bus), 0);
	for (int i = 0; i < NDEVS; i++) {
		pci_dev_init(&devs[i], bus, 0x1af4, 0x1040 + i, 0xff0000, 1, 0x1af4, 1, NULL, NULL);
		CHECK_EQ(pci_register(&devs[i]), 0);
	}
	v.machine.pci = fm.m.pci; /* what pci_bus_create told the board */
	CHECK_EQ(mptable_build(&v, &e), 0);
	if (!mp_parse(&mp)) {
		fm_destroy(&fm);
		return;
	}
	CHECK_EQ(mp.pci_bus, 0);
	for (int i = 0; i < NDEVS; i++) {
		struct pci_dev *p = &devs[i];
		uint8_t pin = p->cfg[PCI_INTERRUPT_PIN]; /* 1 = INTA */
		const struct mp_ioint *in = mp_find(&mp, mp.pci_bus, p->slot << 2 | (pin - 1));

		CHECK_EQ(pin, 1);
		CHECK(in != NULL);
		if (!in)
			continue;
		CHECK_EQ(in->irqtype, 0);            /* INT */
		CHECK_EQ(in->flags, 0xf);            /* level triggered, active low */
		CHECK_EQ(in->ioapic, 0);
		/* The device raises its INTx: the line the table names is the one that rises. */
		pci_set_intx(p, 1);
		CHECK_EQ(fm.irq_level[in->pin], 1);
		pci_set_intx(p, 0);
		CHECK_EQ(fm.irq_level[in->pin], 0);
		CHECK_EQ(in->pin, p->intx_gsi);
		CHECK_EQ(p->cfg[PCI_INTERRUPT_LINE], in->pin);
	}
	for (int slot = 1; slot < PCI_MAX_SLOTS; slot++)
		for (int pin = 0; pin < 4; pin++) {
			const struct mp_ioint *in = mp_find(&mp, mp.pci_bus, slot << 2 | pin);

			CHECK(in != NULL);
			if (in)
				CHECK(in->pin >= PCI_INTX_GSI_BASE && in->pin < PCI_INTX_GSI_BASE + 4);
		}
	CHECK_EQ(mp.nints, 16 + (PCI_MAX_SLOTS - 1) * 4);
	fm_destroy(&fm);
}

/* No PCI bus on the board: no PCI bus entry and no PCI interrupt entries. */
static void test_without_pci(void)
{
	struct err e = { "" };
	struct mp mp;

	setup(2, false);
	CHECK_EQ(mptable_build(&v, &e), 0);
	if (mp_parse(&mp)) {
		CHECK_EQ(mp.pci_bus, -1);
		CHECK(mp.isa_bus >= 0);
		CHECK_EQ(mp.nints, 16);
		CHECK_EQ(mp.ncpus, 2);
	}
	fm_destroy(&fm);
}

/* The largest machine fits, and one too large for the table is refused. */
static void test_cpu_limits(void)
{
	struct err e = { "" };
	struct mp mp;

	setup(64, true);
	CHECK_EQ(mptable_build(&v, &e), 0);
	if (mp_parse(&mp)) {
		CHECK_EQ(mp.ncpus, 64);
		CHECK_EQ(mp.cpu_ids[63], 63);
	}
	v.ncpus = 65;
	CHECK_EQ(mptable_build(&v, &e), -EINVAL);
	fm_destroy(&fm);
}

TEST_MAIN("mptable",
	  { "header_cpus_buses", test_header_cpus_buses },
	  { "pci_routing_matches_bus", test_pci_routing_matches_bus },
	  { "without_pci", test_without_pci },
	  { "cpu_limits", test_cpu_limits })

/* PCI (devices/pci.c) and MSI-X (devices/msix.c) as a guest sees them: config space through
 * ECAM and ports 0xcf8/0xcfc, BAR sizing and moves (what the bus decodes), INTx, the 0xcf9
 * reset, and an MSI-X table and PBA. The device is the test's own: a 32-bit memory BAR, an I/O
 * BAR, a 64-bit BAR holding the MSI-X structures and a large 64-bit BAR. */
#include <linux/pci_regs.h>

#include "devices/msix.h"
#include "devices/pci.h"
#include "tests/unit/fake_machine.h"
#include "tests/unit/test.h"
#include "vmm/layout.h"
#include "vmm/log.h"

#define RAM       (16 * 1024 * 1024ULL)
#define NVEC      4
#define PBA_OFF   0x800
#define BAR0_SIZE 0x1000ULL
#define BAR1_SIZE 0x20ULL
#define BAR2_SIZE 0x4000ULL
#define BAR4_SIZE (8ULL << 30)
#define PATTERN   0xa5

struct tdev {
	struct pci_dev pdev;
	struct msix msix;
	int nevents;
	struct { int bar; uint64_t addr; bool mapped; } ev[64]; /* bar_mapped calls */
	uint64_t writes;                                        /* to the plain BARs */
};

static struct fake_machine fm;
static struct pci_bus *bus;
static struct tdev td[2];

/* ---- the test device ---- */

static void plain_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque, (void)off;
	memset(data, PATTERN, len);
}

static void plain_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct tdev *t = opaque;

	(void)off, (void)data, (void)len;
	t->writes++;
}

static void msix_bar_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct tdev *t = opaque;

	if (off < PBA_OFF)
		msix_table_read(&t->msix, off, data, len);
	else
		msix_pba_read(&t->msix, off - PBA_OFF, data, len);
}

static void msix_bar_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct tdev *t = opaque;

	if (off < PBA_OFF)
		msix_table_write(&t->msix, off, data, len);
}

static const struct bus_ops plain_ops = { .read = plain_read, .write = plain_write };
static const struct bus_ops msix_bar_ops = { .read = msix_bar_read, .write = msix_bar_write };

static void tdev_cfg_written(struct pci_dev *p, uint32_t off, uint32_t len, uint32_t val)
{
	struct tdev *t = p->priv;

	(void)val;
	msix_cfg_written(&t->msix, off, len);
}

static void tdev_bar_mapped(struct pci_dev *p, int bar, uint64_t addr, bool mapped)
{
	struct tdev *t = p->priv;

	if (t->nevents < 64) {
		t->ev[t->nevents].bar = bar;
		t->ev[t->nevents].addr = addr;
		t->ev[t->nevents++].mapped = mapped;
	}
}

static const struct pci_dev_ops tdev_ops = {
	.cfg_written = tdev_cfg_written,
	.bar_mapped = tdev_bar_mapped,
};

static void tdev_add(struct tdev *t)
{
	memset(t, 0, sizeof(*t));
	pci_dev_init(&t->pdev, bus, 0x1234, 0x5678, 0xff0000, 2, 0x1234, 0x0001, &tdev_ops, t);
	pci_add_bar(&t->pdev, 0, BAR0_SIZE, false, false, &plain_ops, t);
	pci_add_bar(&t->pdev, 1, BAR1_SIZE, true, false, &plain_ops, t);
	pci_add_bar(&t->pdev, 2, BAR2_SIZE, false, true, &msix_bar_ops, t);
	pci_add_bar(&t->pdev, 4, BAR4_SIZE, false, true, &plain_ops, t);
	CHECK_EQ(msix_init(&t->msix, &t->pdev, &fm.m, NVEC, 2, 0, PBA_OFF), 0);
	CHECK_EQ(pci_register(&t->pdev), 0);
}

static void setup(int ndevs)
{
	log_set_level(LOG_ERROR);
	fm_init(&fm, RAM);
	CHECK_EQ(pci_bus_create(&fm.m, &bus), 0);
	for (int i = 0; i < ndevs; i++)
		tdev_add(&td[i]);
}

static void teardown(int ndevs)
{
	for (int i = 0; i < ndevs; i++)
		msix_destroy(&td[i].msix);
	fm_destroy(&fm);
}

/* ---- config space ---- */

static uint64_t ecam(int bus_nr, int slot, int fn, uint32_t off)
{
	return PCI_ECAM_BASE + ((uint64_t)bus_nr << 20) + ((uint64_t)slot << 15) +
	       ((uint64_t)fn << 12) + off;
}

static uint64_t cfg_rd_at(int slot, uint32_t off, uint32_t len)
{
	uint64_t v = 0;

	bus_read(&fm.mmio, ecam(0, slot, 0, off), &v, len);
	return v;
}

static uint32_t cfg_rd(uint32_t off, uint32_t len)
{
	return (uint32_t)cfg_rd_at(1, off, len);
}

static void cfg_wr_at(int slot, uint32_t off, uint32_t v, uint32_t len)
{
	bus_write(&fm.mmio, ecam(0, slot, 0, off), &v, len);
}

static void cfg_wr(uint32_t off, uint32_t v, uint32_t len)
{
	cfg_wr_at(1, off, v, len);
}

/* Mechanism #1: the address register, then the data port (plus the byte offset). */
static uint32_t cf8_addr(int bus_nr, int slot, int fn, uint32_t off)
{
	return 0x80000000u | bus_nr << 16 | slot << 11 | fn << 8 | (off & 0xfc);
}

static uint32_t cfc_rd(uint32_t addr, uint32_t off, uint32_t len)
{
	uint32_t v = 0;

	bus_write(&fm.pio, 0xcf8, &addr, 4);
	bus_read(&fm.pio, 0xcfc + (off & 3), &v, len);
	return v;
}

static void cfc_wr(uint32_t addr, uint32_t off, uint32_t v, uint32_t len)
{
	bus_write(&fm.pio, 0xcf8, &addr, 4);
	bus_write(&fm.pio, 0xcfc + (off & 3), &v, len);
}

static uint64_t mem_rd(uint64_t addr, uint32_t len)
{
	uint64_t v = 0;

	bus_read(&fm.mmio, addr, &v, len);
	return v;
}

static bool claimed(struct bus *b, uint64_t addr)
{
	uint8_t v;

	return bus_read(b, addr, &v, 1);
}

static uint64_t bar64(int slot, int bar)
{
	return (cfg_rd_at(slot, PCI_BASE_ADDRESS_0 + 4 * bar, 4) & ~0xfULL) |
	       cfg_rd_at(slot, PCI_BASE_ADDRESS_0 + 4 * bar + 4, 4) << 32;
}

static void set_bar64(int slot, int bar, uint64_t addr)
{
	cfg_wr_at(slot, PCI_BASE_ADDRESS_0 + 4 * bar, (uint32_t)addr, 4);
	cfg_wr_at(slot, PCI_BASE_ADDRESS_0 + 4 * bar + 4, (uint32_t)(addr >> 32), 4);
}

static void decode(int slot, bool on)
{
	uint32_t cmd = cfg_rd_at(slot, PCI_COMMAND, 2);

	cmd = on ? cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_IO
		 : cmd & ~(PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	cfg_wr_at(slot, PCI_COMMAND, cmd, 2);
}

/* ---- tests: config space ---- */

static void host_bridge_and_absent_functions(void)
{
	setup(1);
	CHECK_EQ(cfg_rd_at(0, PCI_VENDOR_ID, 2), 0x1b36);
	CHECK_EQ(cfg_rd_at(0, PCI_DEVICE_ID, 2), 0x0008);
	CHECK_EQ(cfg_rd_at(0, PCI_CLASS_REVISION, 4) >> 8, 0x060000);
	CHECK_EQ(cfg_rd_at(1, PCI_VENDOR_ID, 4), 0x56781234);
	/* Absent slots, functions 1-7, other buses: all-ones at every width; writes vanish. */
	for (int slot = 2; slot < 32; slot++) {
		CHECK_EQ(cfg_rd_at(slot, 0, 4), 0xffffffff);
		CHECK_EQ(cfg_rd_at(slot, PCI_COMMAND, 2), 0xffff);
		CHECK_EQ(cfg_rd_at(slot, PCI_HEADER_TYPE, 1), 0xff);
		CHECK_EQ(cfc_rd(cf8_addr(0, slot, 0, 0), 0, 4), 0xffffffff);
	}
	for (int fn = 1; fn < 8; fn++) {
		uint64_t v = 0;

		bus_read(&fm.mmio, ecam(0, 1, fn, 0), &v, 4);
		CHECK_EQ(v, 0xffffffff);
		CHECK_EQ(cfc_rd(cf8_addr(0, 1, fn, 0), 0, 2), 0xffff);
	}
	CHECK_EQ(cfc_rd(cf8_addr(1, 1, 0, 0), 0, 4), 0xffffffff);
	CHECK(!claimed(&fm.mmio, ecam(1, 1, 0, 0)));     /* ECAM covers bus 0 only */
	cfg_wr_at(5, PCI_COMMAND, 0xffff, 2);
	CHECK_EQ(cfg_rd_at(5, PCI_COMMAND, 2), 0xffff);
	teardown(1);
}

static void config_mechanism_one(void)
{
	uint32_t a = cf8_addr(0, 1, 0, 0), v;

	setup(1);
	/* The address register reads back as written (32-bit accesses only). */
	bus_write(&fm.pio, 0xcf8, &a, 4);
	v = 0;
	bus_read(&fm.pio, 0xcf8, &v, 4);
	CHECK_EQ(v, a);
	CHECK_EQ(cfc_rd(a, 0, 4), 0x56781234);
	CHECK_EQ(cfc_rd(a, 2, 2), 0x5678);
	CHECK_EQ(cfc_rd(a, 3, 1), 0x56);
	CHECK_EQ(cfc_rd(cf8_addr(0, 1, 0, PCI_CLASS_REVISION), 0, 4) >> 8, 0xff0000);
	/* Misaligned through 0xcfc: all-ones. */
	CHECK_EQ(cfc_rd(a, 1, 2), 0xffff);
	CHECK_EQ(cfc_rd(a, 3, 2) & 0xffff, 0xffff);
	/* Without the enable bit: all-ones, writes dropped. */
	CHECK_EQ(cfc_rd(a & 0x7fffffff, 0, 4), 0xffffffff);
	cfc_wr(cf8_addr(0, 1, 0, PCI_INTERRUPT_LINE) & 0x7fffffff, 0, 0x33, 1);
	CHECK_EQ(cfg_rd(PCI_INTERRUPT_LINE, 1), 17);
	cfc_wr(cf8_addr(0, 1, 0, PCI_INTERRUPT_LINE), 0, 0x33, 1);
	CHECK_EQ(cfg_rd(PCI_INTERRUPT_LINE, 1), 0x33);
	/* A narrower access to 0xcf8 is not the address register. */
	v = 0x12;
	bus_write(&fm.pio, 0xcf8, &v, 1);
	v = 0;
	bus_read(&fm.pio, 0xcf8, &v, 4);
	CHECK_EQ(v, cf8_addr(0, 1, 0, PCI_INTERRUPT_LINE));
	teardown(1);
}

static void misaligned_and_wide_ecam_accesses(void)
{
	uint64_t v;

	setup(1);
	CHECK_EQ(cfg_rd(1, 2), 0xffff);
	CHECK_EQ(cfg_rd(2, 4), 0xffffffff);
	CHECK_EQ(cfg_rd(PCI_COMMAND + 1, 2), 0xffff);
	CHECK_EQ(cfg_rd(0xffe, 2), cfg_rd(0xffe, 2)); /* the last aligned word is fine */
	cfg_wr(PCI_COMMAND + 1, 0, 2);                /* misaligned: dropped */
	CHECK(cfg_rd(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	/* 8 bytes at once is not a config access ECAM takes: all-ones, nothing written (and
	 * nothing copied beyond the bytes handled). */
	v = 0;
	bus_read(&fm.mmio, ecam(0, 1, 0, 0), &v, 8);
	CHECK_EQ(v, ~0ULL);
	v = 0;
	bus_write(&fm.mmio, ecam(0, 1, 0, PCI_COMMAND), &v, 8);
	CHECK(cfg_rd(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	teardown(1);
}

/* Only the command register's IO/MEM/MASTER/INTx-disable bits and the interrupt line are
 * writable in the header; capabilities only where they say (MSI-X: enable, function mask). */
static void header_is_read_only(void)
{
	uint8_t before[256], after[256];

	setup(1);
	for (int i = 0; i < 256; i++)
		before[i] = cfg_rd(i, 1);
	for (uint32_t off = 0; off < 256; off += 4) {
		if (off >= PCI_BASE_ADDRESS_0 && off <= PCI_BASE_ADDRESS_5)
			continue;
		cfg_wr(off, 0xffffffff, 4);
	}
	for (int i = 0; i < 256; i++)
		after[i] = cfg_rd(i, 1);
	for (int i = 0; i < 256; i++) {
		uint8_t m = 0;

		if (i == PCI_COMMAND)
			m = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
		else if (i == PCI_COMMAND + 1)
			m = PCI_COMMAND_INTX_DISABLE >> 8;
		else if (i == PCI_INTERRUPT_LINE)
			m = 0xff;
		else if (i == td[0].msix.cap + PCI_MSIX_FLAGS + 1)
			m = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
		if ((before[i] & ~m) != (after[i] & ~m) || (after[i] & m) != m)
			printf("#   config byte 0x%02x: 0x%02x -> 0x%02x\n", i, before[i], after[i]);
		CHECK_EQ(after[i] & ~m, before[i] & ~m);
		CHECK_EQ(after[i] & m, m);
	}
	CHECK_EQ(cfg_rd(PCI_INTERRUPT_PIN, 1), 1);
	CHECK_EQ(cfg_rd(PCI_HEADER_TYPE, 1), 0);
	teardown(1);
}

/* ---- tests: BARs ---- */

static void bar_sizing(void)
{
	static const struct { int reg; uint32_t want; } sz[] = {
		{ 0, (uint32_t)~(BAR0_SIZE - 1) },
		/* I/O BARs decode 16 bits: the upper half reads 0 (which Linux allows for). */
		{ 1, (uint32_t)(~(BAR1_SIZE - 1) & 0xffff) | PCI_BASE_ADDRESS_SPACE_IO },
		{ 2, (uint32_t)~(BAR2_SIZE - 1) | PCI_BASE_ADDRESS_MEM_TYPE_64 },
		{ 3, 0xffffffff },
		{ 4, PCI_BASE_ADDRESS_MEM_TYPE_64 },     /* 8 GiB: no address bits in the low half */
		{ 5, (uint32_t)~((BAR4_SIZE >> 32) - 1) },
	};
	uint32_t orig[6];

	setup(1);
	CHECK_EQ(cfg_rd(PCI_BASE_ADDRESS_0, 4), PCI_MMIO32_START);
	CHECK_EQ(cfg_rd(PCI_BASE_ADDRESS_1, 4), PCI_IO_START | PCI_BASE_ADDRESS_SPACE_IO);
	CHECK_EQ(bar64(1, 2), MMIO_HOLE_END);   /* the 64-bit window, above RAM */
	CHECK_EQ(bar64(1, 4), 2 * MMIO_HOLE_END);
	decode(1, false);
	for (int i = 0; i < 6; i++) {
		orig[i] = cfg_rd(PCI_BASE_ADDRESS_0 + 4 * i, 4);
		cfg_wr(PCI_BASE_ADDRESS_0 + 4 * i, 0xffffffff, 4);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(sz); i++)
		CHECK_EQ(cfg_rd(PCI_BASE_ADDRESS_0 + 4 * sz[i].reg, 4), sz[i].want);
	/* Unused BAR registers stay 0 (none here: the test device uses all six). */
	for (int i = 0; i < 6; i++)
		cfg_wr(PCI_BASE_ADDRESS_0 + 4 * i, orig[i], 4);
	decode(1, true);
	CHECK_EQ(mem_rd(PCI_MMIO32_START, 4), 0xa5a5a5a5);
	CHECK_EQ(mem_rd(MMIO_HOLE_END, 8), 0); /* the MSI-X table: an address of 0 */
	CHECK(claimed(&fm.mmio, 2 * MMIO_HOLE_END + BAR4_SIZE - 1));
	CHECK(claimed(&fm.pio, PCI_IO_START + BAR1_SIZE - 1));
	/* Sub-dword writes to a BAR merge into it. */
	decode(1, false);
	cfg_wr(PCI_BASE_ADDRESS_0 + 2, 0xc123, 2);
	CHECK_EQ(cfg_rd(PCI_BASE_ADDRESS_0, 4), 0xc1230000);
	cfg_wr(PCI_BASE_ADDRESS_0 + 1, 0x45, 1);
	CHECK_EQ(cfg_rd(PCI_BASE_ADDRESS_0, 4), 0xc1234000);
	teardown(1);
}

static void bar_move_and_decode(void)
{
	struct tdev *t = &td[0];

	setup(1);
	CHECK(claimed(&fm.mmio, PCI_MMIO32_START));
	CHECK(claimed(&fm.pio, PCI_IO_START));
	/* A 32-bit BAR moved while decoding: gone from the old address, there at the new. */
	t->nevents = 0;
	cfg_wr(PCI_BASE_ADDRESS_0, 0xc1000000, 4);
	CHECK(!claimed(&fm.mmio, PCI_MMIO32_START));
	CHECK_EQ(mem_rd(0xc1000000, 4), 0xa5a5a5a5);
	CHECK(!claimed(&fm.mmio, 0xc1000000 + BAR0_SIZE));
	CHECK_EQ(t->nevents, 2);
	CHECK(t->ev[0].bar == 0 && !t->ev[0].mapped && t->ev[0].addr == PCI_MMIO32_START);
	CHECK(t->ev[1].bar == 0 && t->ev[1].mapped && t->ev[1].addr == 0xc1000000);
	/* Memory decoding off: every memory BAR goes, I/O stays. */
	cfg_wr(PCI_COMMAND, PCI_COMMAND_IO, 2);
	CHECK(!claimed(&fm.mmio, 0xc1000000));
	CHECK(!claimed(&fm.mmio, MMIO_HOLE_END));
	CHECK(!claimed(&fm.mmio, 2 * MMIO_HOLE_END));
	CHECK(claimed(&fm.pio, PCI_IO_START));
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	CHECK(claimed(&fm.mmio, 0xc1000000));
	CHECK(claimed(&fm.mmio, MMIO_HOLE_END));
	CHECK(!claimed(&fm.pio, PCI_IO_START));
	/* An I/O BAR keeps 16 bits; moved while off, it appears where it was put. */
	cfg_wr(PCI_BASE_ADDRESS_1, 0x1234e001, 4);
	CHECK_EQ(cfg_rd(PCI_BASE_ADDRESS_1, 4), 0xe001);
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 2);
	CHECK(claimed(&fm.pio, 0xe000));
	CHECK(!claimed(&fm.pio, PCI_IO_START));
	/* A 64-bit BAR, high half then low half. */
	set_bar64(1, 2, 0x500000000ULL);
	CHECK_EQ(bar64(1, 2), 0x500000000ULL);
	CHECK(claimed(&fm.mmio, 0x500000000ULL));
	CHECK(!claimed(&fm.mmio, MMIO_HOLE_END));
	cfg_wr(PCI_BASE_ADDRESS_3, 0x6, 4);
	CHECK(claimed(&fm.mmio, 0x600000000ULL));
	CHECK(!claimed(&fm.mmio, 0x500000000ULL));
	/* Address 0: not mapped (a BAR being programmed). */
	cfg_wr(PCI_BASE_ADDRESS_0, 0, 4);
	CHECK(!claimed(&fm.mmio, 0xc1000000));
	CHECK(!claimed(&fm.mmio, 0));
	/* A BAR over another device's range (ECAM) stays off the bus, and ECAM keeps working. */
	cfg_wr(PCI_BASE_ADDRESS_0, PCI_ECAM_BASE, 4);
	CHECK_EQ(cfg_rd(PCI_BASE_ADDRESS_0, 4), PCI_ECAM_BASE);
	CHECK_EQ(cfg_rd(PCI_VENDOR_ID, 2), 0x1234);
	teardown(1);
}

/* The BAR check must not wrap: a 64-bit BAR at the last size-aligned address below 2^64 (or
 * anywhere past the 52-bit physical address space) is not mapped. */
static void bar_at_top_of_address_space(void)
{
	const uint64_t top2 = 0ULL - BAR2_SIZE, top4 = 0ULL - BAR4_SIZE;
	const uint64_t limit = 1ULL << 52;
	struct tdev *t = &td[0];

	setup(1);
	/* Programmed with decoding off (as Linux does), then turned on. */
	decode(1, false);
	set_bar64(1, 2, top2);
	set_bar64(1, 4, top4);
	t->nevents = 0;
	decode(1, true);
	CHECK_EQ(bar64(1, 2), top2);
	CHECK_EQ(bar64(1, 4), top4);
	CHECK(!claimed(&fm.mmio, top2));
	CHECK(!claimed(&fm.mmio, top4));
	CHECK(!claimed(&fm.mmio, ~0ULL));
	CHECK(!claimed(&fm.mmio, MMIO_HOLE_END));
	CHECK(claimed(&fm.mmio, PCI_MMIO32_START)); /* the others are back */
	for (int i = 0; i < t->nevents; i++)
		CHECK(t->ev[i].bar != 2 && t->ev[i].bar != 4);
	/* Moved there while decoding: the same. */
	set_bar64(1, 2, MMIO_HOLE_END);
	CHECK(claimed(&fm.mmio, MMIO_HOLE_END));
	set_bar64(1, 2, top2);
	CHECK(!claimed(&fm.mmio, top2));
	CHECK(!claimed(&fm.mmio, MMIO_HOLE_END));
	/* The last place below the limit is fine; at the limit it is not. */
	set_bar64(1, 2, limit - BAR2_SIZE);
	CHECK(claimed(&fm.mmio, limit - 1));
	set_bar64(1, 2, limit);
	CHECK(!claimed(&fm.mmio, limit));
	CHECK(!claimed(&fm.mmio, limit - 1));
	/* The last I/O port range is fine too. */
	cfg_wr(PCI_BASE_ADDRESS_1, 0x10000 - BAR1_SIZE, 4);
	CHECK(claimed(&fm.pio, 0xffff));
	teardown(1);
}

/* Two BARs put on the same address: the one there first keeps it; once it moves away, the
 * other one is decoded where the guest put it. */
static void overlapping_bars_resolve(void)
{
	setup(2);
	CHECK_EQ(cfg_rd_at(2, PCI_BASE_ADDRESS_0, 4), PCI_MMIO32_START + BAR0_SIZE);
	cfg_wr_at(2, PCI_BASE_ADDRESS_0, PCI_MMIO32_START, 4);     /* onto device 1's */
	td[0].writes = td[1].writes = 0;
	bus_write(&fm.mmio, PCI_MMIO32_START, &(uint32_t){ 0 }, 4);
	CHECK_EQ(td[0].writes, 1);
	CHECK_EQ(td[1].writes, 0);
	cfg_wr_at(1, PCI_BASE_ADDRESS_0, 0xc8000000, 4);           /* device 1 moves away */
	bus_write(&fm.mmio, PCI_MMIO32_START, &(uint32_t){ 0 }, 4);
	bus_write(&fm.mmio, 0xc8000000, &(uint32_t){ 0 }, 4);
	CHECK_EQ(td[0].writes, 1 + 1);
	CHECK_EQ(td[1].writes, 1);
	/* The same with an I/O BAR, and with decoding toggled instead of a move. */
	cfg_wr_at(2, PCI_BASE_ADDRESS_1, PCI_IO_START, 4);
	CHECK(claimed(&fm.pio, PCI_IO_START));
	decode(1, false);
	CHECK(claimed(&fm.pio, PCI_IO_START));
	CHECK(claimed(&fm.mmio, PCI_MMIO32_START));
	td[1].writes = 0;
	bus_write(&fm.pio, PCI_IO_START, &(uint8_t){ 0 }, 1);
	CHECK_EQ(td[1].writes, 1);
	teardown(2);
}

/* ---- tests: INTx, reset ---- */

static void intx_and_status_bit(void)
{
	struct pci_dev *p;

	setup(2);
	p = &td[0].pdev;
	CHECK_EQ(cfg_rd(PCI_INTERRUPT_PIN, 1), 1);
	CHECK_EQ(cfg_rd(PCI_INTERRUPT_LINE, 1), 17);
	CHECK_EQ(cfg_rd_at(2, PCI_INTERRUPT_LINE, 1), 18);  /* the swizzle */
	pci_set_intx(p, 1);
	CHECK_EQ(fm_line(&fm, 17), 1);
	CHECK_EQ(fm_line(&fm, 18), 0);
	CHECK(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	CHECK(cfg_rd(PCI_STATUS, 1) & PCI_STATUS_INTERRUPT);
	CHECK(cfg_rd(PCI_COMMAND, 4) & PCI_STATUS_INTERRUPT << 16);
	/* INTx-disable: the line drops, the status bit still tells. */
	cfg_wr(PCI_COMMAND, cfg_rd(PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE, 2);
	CHECK_EQ(fm_line(&fm, 17), 0);
	CHECK(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	pci_set_intx(p, 0);
	CHECK_EQ(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	pci_set_intx(p, 1);
	CHECK_EQ(fm_line(&fm, 17), 0);
	/* Enabled again with the device still asking: the line comes up (1-byte write). */
	cfg_wr(PCI_COMMAND + 1, 0, 1);
	CHECK_EQ(fm_line(&fm, 17), 1);
	/* The status register is read-only to the guest. */
	cfg_wr(PCI_STATUS, 0, 2);
	CHECK(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	pci_set_intx(p, 0);
	CHECK_EQ(fm_line(&fm, 17), 0);
	CHECK_EQ(fm.irq_raises[17], 2);
	teardown(2);
}

static void reset_port(void)
{
	uint8_t v;

	setup(0);
	v = 0;
	bus_read(&fm.pio, 0xcf9, &v, 1);
	CHECK_EQ(v, 0);
	v = 0x02;
	bus_write(&fm.pio, 0xcf9, &v, 1);
	CHECK(fm.exit_reason == NULL);
	v = 0x06;
	bus_write(&fm.pio, 0xcf9, &v, 1);
	CHECK(fm.exit_reason && !strcmp(fm.exit_reason, "reset"));
	CHECK_EQ(fm.exit_status, 0);
	teardown(0);
}

/* ---- tests: MSI-X ---- */

static uint64_t table_rd(uint32_t off, uint32_t len)
{
	return mem_rd(MMIO_HOLE_END + off, len);
}

static void table_wr(uint32_t off, uint64_t v, uint32_t len)
{
	bus_write(&fm.mmio, MMIO_HOLE_END + off, &v, len);
}

static uint64_t pba_rd(uint32_t off, uint32_t len)
{
	return mem_rd(MMIO_HOLE_END + PBA_OFF + off, len);
}

static void msix_ctrl(uint16_t flags)
{
	cfg_wr(td[0].msix.cap + PCI_MSIX_FLAGS, flags, 2);
}

static uint32_t gsi_of(int v)
{
	return (uint32_t)td[0].msix.gsi[v];
}

static void msix_capability(void)
{
	uint8_t cap;

	setup(1);
	cap = td[0].msix.cap;
	CHECK_EQ(cfg_rd(cap, 1), PCI_CAP_ID_MSIX);
	CHECK_EQ(cfg_rd(PCI_CAPABILITY_LIST, 1), cap);
	CHECK_EQ(cfg_rd(cap + PCI_MSIX_FLAGS, 2), NVEC - 1);
	CHECK_EQ(cfg_rd(cap + PCI_MSIX_TABLE, 4), 0 | 2);
	CHECK_EQ(cfg_rd(cap + PCI_MSIX_PBA, 4), PBA_OFF | 2);
	/* Only enable and the function mask are the guest's; the table size is not. */
	cfg_wr(cap + PCI_MSIX_FLAGS, 0xffff, 2);
	CHECK_EQ(cfg_rd(cap + PCI_MSIX_FLAGS, 2),
		 PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | (NVEC - 1));
	CHECK(msix_enabled(&td[0].msix));
	cfg_wr(cap + PCI_MSIX_FLAGS + 1, 0, 1);
	CHECK(!msix_enabled(&td[0].msix));
	/* One GSI and irqfd per vector. */
	for (int v = 0; v < NVEC; v++)
		CHECK_EQ(gsi_of(v), 24 + v);
	CHECK_EQ(fm.nirqfds, NVEC);
	teardown(1);
}

static void msix_table_accesses(void)
{
	setup(1);
	/* At reset: every entry masked, address and data 0. */
	for (int v = 0; v < NVEC; v++) {
		CHECK_EQ(table_rd(16 * v, 8), 0);
		CHECK_EQ(table_rd(16 * v + PCI_MSIX_ENTRY_DATA, 4), 0);
		CHECK_EQ(table_rd(16 * v + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 1);
	}
	/* 32-bit fields. */
	table_wr(16 + PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee01000, 4);
	table_wr(16 + PCI_MSIX_ENTRY_UPPER_ADDR, 0x1, 4);
	table_wr(16 + PCI_MSIX_ENTRY_DATA, 0x4031, 4);
	CHECK_EQ(table_rd(16 + PCI_MSIX_ENTRY_LOWER_ADDR, 4), 0xfee01000);
	CHECK_EQ(table_rd(16 + PCI_MSIX_ENTRY_UPPER_ADDR, 4), 0x1);
	CHECK_EQ(table_rd(16 + PCI_MSIX_ENTRY_DATA, 4), 0x4031);
	/* 64-bit: the address as one, data and control as one. */
	CHECK_EQ(table_rd(16, 8), 0x1fee01000ULL);
	CHECK_EQ(table_rd(16 + 8, 8), 0x4031 | 1ULL << 32);
	table_wr(32, 0x2fee02000ULL, 8);
	table_wr(32 + 8, 0x4032, 8);  /* data, and control 0: unmasked */
	CHECK_EQ(table_rd(32, 4), 0xfee02000);
	CHECK_EQ(table_rd(32 + 4, 4), 2);
	CHECK_EQ(table_rd(32 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 0);
	/* Reserved control bits read 0. */
	table_wr(16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0xfffffffe, 4);
	CHECK_EQ(table_rd(16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 0);
	table_wr(16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0xffffffff, 4);
	CHECK_EQ(table_rd(16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 1);
	/* Other widths and misaligned accesses: read 0, written nowhere. */
	CHECK_EQ(table_rd(16, 1), 0);
	CHECK_EQ(table_rd(16, 2), 0);
	CHECK_EQ(table_rd(16 + 2, 4), 0);
	CHECK_EQ(table_rd(16 + 4, 8), 0);
	table_wr(16, 0xff, 1);
	table_wr(16, 0xffff, 2);
	table_wr(16 + 2, 0xffffffff, 4);
	table_wr(16 + 4, ~0ULL, 8);
	CHECK_EQ(table_rd(16, 8), 0x1fee01000ULL);
	CHECK_EQ(table_rd(16 + 8, 8), 0x4031 | 1ULL << 32);
	/* Past the last entry (the BAR goes on): 0, and nothing written. */
	CHECK_EQ(table_rd(16 * NVEC, 4), 0);
	table_wr(16 * NVEC, 0x12345678, 4);
	CHECK_EQ(table_rd(16 * NVEC, 4), 0);
	CHECK_EQ(table_rd(PBA_OFF - 4, 4), 0);
	teardown(1);
}

static void msix_masking_and_pending(void)
{
	struct msix *m;

	setup(1);
	m = &td[0].msix;
	for (int v = 0; v < NVEC; v++) {
		table_wr(16 * v, 0xfee00000 + 0x1000 * v, 8);
		table_wr(16 * v + 8, 0x40 + v, 4);
	}
	/* MSI-X disabled or every entry masked (reset): nothing fires. */
	msix_notify(m, 0);
	CHECK_EQ(fm_irqfd_count(&fm, gsi_of(0)), 0);
	msix_ctrl(PCI_MSIX_FLAGS_ENABLE);
	CHECK_EQ(pba_rd(0, 8), 1);
	CHECK_EQ(fm_irqfd_count(&fm, gsi_of(0)), 0);
	msix_notify(m, 1);
	CHECK_EQ(pba_rd(0, 8), 3);
	CHECK_EQ(pba_rd(0, 1), 3);
	CHECK_EQ(pba_rd(4, 4), 0);
	CHECK_EQ(pba_rd(8, 4), 0);       /* past the PBA */
	/* Unmasking entry 1 delivers it, through a route to its address and data. */
	table_wr(16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
	CHECK_EQ(pba_rd(0, 8), 1);
	CHECK_EQ(fm_irqfd_count(&fm, gsi_of(1)), 1);
	CHECK_EQ(fm_irqfd_count(&fm, gsi_of(0)), 0);
	CHECK(fm.msi[gsi_of(1)].set);
	CHECK_EQ(fm.msi[gsi_of(1)].addr, 0xfee01000);
	CHECK_EQ(fm.msi[gsi_of(1)].data, 0x41);
	/* Unmasked, a notify fires at once. */
	msix_notify(m, 1);
	CHECK_EQ(fm_irqfd_count(&fm, gsi_of(1)), 1);
	CHECK_EQ(pba_rd(0, 8), 1);
	/* New data: the next one goes through the new route. */
	table_wr(16 + PCI_MSIX_ENTRY_DATA, 0x51, 4);
	msix_notify(m, 1);
	CHECK_EQ(fm_irqfd_count(&fm, gsi_of(1)), 1);
	CHECK_EQ(fm.msi[gsi_of(1)].data, 0x51);
	/* The function mask holds every vector; clearing it delivers what is pending. */
	msix_ctrl(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	msix_notify(m, 1);
	CHECK_EQ(fm_irqfd_count(&fm, gsi_of(1)), 0);
	CHECK_EQ(pba_rd(0, 8), 3);
	table_wr(PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4); /* entry 0 unmasked, still function-masked */
	CHECK_EQ(fm_irqfd_count(&fm, gsi_of(0)), 0);
	msix_ctrl(PCI_MSIX_FLAGS_ENABLE);
	CHECK_EQ(pba_rd(0, 8), 0);
	CHECK_EQ(fm_irqfd_count(&fm, gsi_of(0)), 1);
	CHECK_EQ(fm_irqfd_count(&fm, gsi_of(1)), 1);
	CHECK_EQ(fm.msi[gsi_of(0)].addr, 0xfee00000);
	/* Out-of-range vectors are ignored. */
	msix_notify(m, NVEC);
	msix_notify(m, 63);
	msix_notify(m, 64);
	msix_notify(m, 0xffff);
	CHECK_EQ(pba_rd(0, 8), 0);
	for (int v = 0; v < NVEC; v++)
		CHECK_EQ(fm_irqfd_count(&fm, gsi_of(v)), 0);
	/* The PBA is read-only. */
	msix_notify(m, 2);
	bus_write(&fm.mmio, MMIO_HOLE_END + PBA_OFF, &(uint64_t){ 0 }, 8);
	CHECK_EQ(pba_rd(0, 8), 4);
	teardown(1);
}

TEST_MAIN("pci", T(host_bridge_and_absent_functions), T(config_mechanism_one),
	  T(misaligned_and_wide_ecam_accesses), T(header_is_read_only), T(bar_sizing),
	  T(bar_move_and_decode), T(bar_at_top_of_address_space), T(overlapping_bars_resolve),
	  T(intx_and_status_bit), T(reset_port), T(msix_capability), T(msix_table_accesses),
	  T(msix_masking_and_pending))

/* libFuzzer target: the PCI bus (devices/pci.c) and MSI-X (devices/msix.c) driven by a
 * byte-coded program of config-space accesses through ECAM and 0xcf8/0xcfc, accesses to the
 * BARs wherever the guest put them (MSI-X table and PBA included), BAR programming anywhere in
 * the 64-bit space, command-register writes, vectors and INTx raised by a device. On the bus:
 * a test device of the harness's own (a 32-bit memory BAR, an I/O BAR, a 64-bit BAR holding
 * its MSI-X table and PBA, a 64-bit 8 GiB BAR) and a transitional virtio-pci device (an I/O
 * BAR, a 64-bit BAR, MSI-X, the PCI_CFG window). Runs on the fake machine of the unit tests.
 *
 * Checks beyond the sanitizers, after every operation:
 *   - the ranges registered on the buses are exactly the BARs that config space describes
 *     with decoding on (each once, at the address it says, with its size), apart from the
 *     bus's own (ECAM, 0xcf8, 0xcfc); nothing registered wraps or overlaps; a decoded BAR at
 *     a valid address is unmapped only if something else holds part of its range;
 *   - read-only config bits (everything wmask does not allow, BARs aside) never change; BAR
 *     registers read back the size-aligned address and their type bits; unused BARs read 0;
 *   - MSI-X: config space's enable/function-mask bits are the table's; reserved control bits
 *     read 0; no pending bit past the table size, none for an unmasked vector (unmasking
 *     delivers); routes only for the devices' vectors;
 *   - INTx: the line is the device's level unless INTx-disable; the virtio device's level is
 *     (ISR != 0) while MSI-X is off, 0 while on; its notify ioeventfds are where its BARs are
 *     mapped; an exit only after a reset request at 0xcf9. */
#include <linux/pci_regs.h>
#include <linux/virtio_pci.h>

#include "devices/msix.h"
#include "devices/pci.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/unit/fake_machine.h"
#include "vmm/layout.h"
#include "vmm/log.h"

#define MAX_OPS   256
#define RAM_SIZE  0x1000ULL
#define T_NVEC    4
#define T_PBA     0x800
#define NDEVS     2           /* slot 1: the test device, slot 2: virtio-pci */

struct tdev {
	struct pci_dev pdev;
	struct msix msix;
};

static struct fake_machine fm;
static struct guest_mem mem;
static uint8_t *ram;
static struct tdev td;
static struct virtio_dev *vdev;
static struct virtio_pci *vp;
static struct pci_dev *devs[NDEVS];
static uint8_t init_cfg[NDEVS][PCI_CFG_SIZE];
static bool reset_requested;

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=32";
}

/* ---- the test device ---- */

static void plain_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque, (void)off;
	memset(data, 0xa5, len);
}

static void plain_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	(void)opaque, (void)off, (void)data, (void)len;
}

static void msix_bar_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct tdev *t = opaque;

	if (off < T_PBA)
		msix_table_read(&t->msix, off, data, len);
	else
		msix_pba_read(&t->msix, off - T_PBA, data, len);
}

static void msix_bar_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct tdev *t = opaque;

	if (off < T_PBA)
		msix_table_write(&t->msix, off, data, len);
}

static const struct bus_ops plain_ops = { .read = plain_read, .write = plain_write };
static const struct bus_ops msix_bar_ops = { .read = msix_bar_read, .write = msix_bar_write };

static void tdev_cfg_written(struct pci_dev *p, uint32_t off, uint32_t len, uint32_t val)
{
	(void)val;
	msix_cfg_written(&((struct tdev *)p->priv)->msix, off, len);
}

static const struct pci_dev_ops tdev_ops = { .cfg_written = tdev_cfg_written };

/* ---- the guest's accesses ---- */

static uint64_t ecam(int slot, int fn, uint32_t off)
{
	return PCI_ECAM_BASE + ((uint64_t)slot << 15) + ((uint64_t)fn << 12) + off;
}

static void cfg_wr(int slot, uint32_t off, uint32_t v, uint32_t len)
{
	bus_write(&fm.mmio, ecam(slot, 0, off), &v, len);
}

/* A BAR's address as config space tells it. */
static uint64_t bar_addr(const struct pci_dev *p, int bar)
{
	uint32_t lo = pci_cfg_read32(p, PCI_BASE_ADDRESS_0 + 4 * bar);

	if (lo & PCI_BASE_ADDRESS_SPACE_IO)
		return lo & ~3u;
	if ((lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64 && bar < 5)
		return (lo & ~0xfu) | (uint64_t)pci_cfg_read32(p, PCI_BASE_ADDRESS_0 + 4 * bar + 4) << 32;
	return lo & ~0xfu;
}

static uint32_t width(uint8_t spec)
{
	return 1u << (spec & 3);
}

static void ecam_access(const uint8_t **data, size_t *size, bool write)
{
	uint8_t spec = (uint8_t)fuzz_take(data, size, 1), who = (uint8_t)fuzz_take(data, size, 1);
	uint32_t len = width(spec), off = (uint32_t)fuzz_take(data, size, 2) % PCI_CFG_SIZE;
	int slot = who % 4, fn = who & 0x20 ? (who >> 2) & 7 : 0;
	uint64_t v = write ? fuzz_take(data, size, len) : 0;

	if (write) {
		bus_write(&fm.mmio, ecam(slot, fn, off), &v, len);
		return;
	}
	bus_read(&fm.mmio, ecam(slot, fn, off), &v, len);
	if (slot == 3 || fn || len == 8 || (off & (len - 1)) || off + len > PCI_CFG_SIZE)
		FUZZ_ASSERT(v == (len == 8 ? ~0ULL : (1ULL << (8 * len)) - 1));
	else if (off == 0 && len >= 2)
		FUZZ_ASSERT((v & 0xffff) == (slot == 0 ? 0x1b36 : slot == 1 ? 0x1234 : 0x1af4));
}

static void cfc_access(const uint8_t **data, size_t *size, bool write)
{
	uint8_t spec = (uint8_t)fuzz_take(data, size, 1);
	uint32_t len = width(spec) > 4 ? 4 : width(spec), off = (spec >> 2) & 3;
	uint32_t v = write ? (uint32_t)fuzz_take(data, size, len) : 0;

	if (off + len > 4)
		off = 0;
	if (write)
		bus_write(&fm.pio, 0xcfc + off, &v, len);
	else
		bus_read(&fm.pio, 0xcfc + off, &v, len);
}

/* An access to a BAR, where config space says it is. */
static void bar_access(const uint8_t **data, size_t *size)
{
	uint8_t spec = (uint8_t)fuzz_take(data, size, 1);
	struct pci_dev *p = devs[spec & 1];
	int bar = (spec >> 1) % PCI_NUM_BARS;
	bool write = spec & 0x10;
	uint32_t len = 1u << ((spec >> 5) & 3);
	uint64_t off = fuzz_take(data, size, 2), v = write ? fuzz_take(data, size, len) : 0;
	bool io = p->bars[bar].io;
	struct bus *b = io ? &fm.pio : &fm.mmio;

	if (io && len == 8)
		len = 4;
	if (write)
		bus_write(b, bar_addr(p, bar) + off, &v, len);
	else
		bus_read(b, bar_addr(p, bar) + off, &v, len);
}

/* Anywhere in the address spaces (the top of the 64-bit one included). */
static void raw_access(const uint8_t **data, size_t *size)
{
	uint8_t spec = (uint8_t)fuzz_take(data, size, 1);
	uint32_t len = width(spec);
	uint64_t addr = fuzz_take(data, size, 8), v = spec & 8 ? fuzz_take(data, size, len) : 0;
	struct bus *b = spec & 4 ? &fm.pio : &fm.mmio;

	if (spec & 8)
		bus_write(b, addr, &v, len);
	else
		bus_read(b, addr, &v, len);
}

/* Programs a BAR in one go (low register, then high), as a guest reassigning it would. */
static void program_bar(const uint8_t **data, size_t *size)
{
	uint8_t spec = (uint8_t)fuzz_take(data, size, 1);
	int slot = 1 + (spec & 1), bar = (spec >> 1) % PCI_NUM_BARS;
	uint64_t addr = fuzz_take(data, size, 8);

	if (spec & 0x10)
		addr = 0 - (addr & 0xffffffff);   /* near the top of the address space */
	cfg_wr(slot, PCI_BASE_ADDRESS_0 + 4 * bar, (uint32_t)addr, 4);
	if (bar < 5 && !(spec & 0x20))
		cfg_wr(slot, PCI_BASE_ADDRESS_0 + 4 * bar + 4, (uint32_t)(addr >> 32), 4);
}

static void run_op(const uint8_t **data, size_t *size)
{
	uint8_t b;

	switch (fuzz_take(data, size, 1) % 12) {
	case 0: ecam_access(data, size, false); break;
	case 1: ecam_access(data, size, true); break;
	case 2: {
		uint32_t a = (uint32_t)fuzz_take(data, size, 4);

		bus_write(&fm.pio, 0xcf8, &a, 4);
		break;
	}
	case 3: cfc_access(data, size, false); break;
	case 4: cfc_access(data, size, true); break;
	case 5: bar_access(data, size); break;
	case 6: msix_notify(&td.msix, (uint16_t)fuzz_take(data, size, 1)); break;
	case 7: pci_set_intx(&td.pdev, (int)(fuzz_take(data, size, 1) & 1)); break;
	case 8: raw_access(data, size); break;
	case 9: program_bar(data, size); break;
	case 10:
		b = (uint8_t)fuzz_take(data, size, 1);
		cfg_wr(1 + (b & 1), PCI_COMMAND, (uint32_t)fuzz_take(data, size, 2), 2);
		break;
	case 11:
		b = (uint8_t)fuzz_take(data, size, 1);
		reset_requested |= b & 4;
		bus_write(&fm.pio, 0xcf9, &b, 1);
		break;
	}
}

/* ---- invariants ---- */

static bool decoded(const struct pci_dev *p, const struct pci_bar *b)
{
	uint16_t cmd = pci_cfg_read16(p, PCI_COMMAND);

	return b->io ? (cmd & PCI_COMMAND_IO) : (cmd & PCI_COMMAND_MEMORY);
}

static bool overlaps_registered(const struct bus *bus, uint64_t base, uint64_t len)
{
	for (size_t i = 0; i < bus->n; i++) {
		const struct bus_range *r = &bus->ranges[i];

		if (base <= r->base + (r->len - 1) && r->base <= base + (len - 1))
			return true;
	}
	return false;
}

/* The bus's ranges: sorted, disjoint, none wrapping; each the bus's own or a mapped BAR. */
static unsigned check_ranges(const struct bus *bus, bool pio)
{
	unsigned bars = 0;

	for (size_t i = 0; i < bus->n; i++) {
		const struct bus_range *r = &bus->ranges[i];
		bool found = false;

		FUZZ_ASSERT(r->len && r->base + (r->len - 1) >= r->base);
		if (i + 1 < bus->n)
			FUZZ_ASSERT(r->base + (r->len - 1) < bus->ranges[i + 1].base);
		if ((!pio && r->base == PCI_ECAM_BASE) || (pio && (r->base == 0xcf8 || r->base == 0xcfc)))
			continue;
		for (int d = 0; d < NDEVS && !found; d++) {
			for (int k = 0; k < PCI_NUM_BARS && !found; k++) {
				const struct pci_bar *b = &devs[d]->bars[k];

				if (!b->size || !b->mapped || b->io != pio || b->mapped_addr != r->base)
					continue;
				FUZZ_ASSERT(r->len == b->size && r->opaque == b->opaque);
				FUZZ_ASSERT(r->ops == b->ops);
				FUZZ_ASSERT(b->addr == b->mapped_addr && bar_addr(devs[d], k) == b->addr);
				FUZZ_ASSERT(decoded(devs[d], b));
				found = true;
			}
		}
		FUZZ_ASSERT(found);   /* nothing on the bus the config space does not describe */
		bars++;
	}
	return bars;
}

static void check_bars(void)
{
	unsigned mapped = 0;

	for (int d = 0; d < NDEVS; d++) {
		const struct pci_dev *p = devs[d];

		for (int k = 0; k < PCI_NUM_BARS; k++) {
			const struct pci_bar *b = &p->bars[k];
			uint64_t limit = b->io ? 0x10000 : 1ULL << 52;
			uint32_t lo = pci_cfg_read32(p, PCI_BASE_ADDRESS_0 + 4 * k);
			uint32_t type = b->io ? PCI_BASE_ADDRESS_SPACE_IO
					      : b->is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0;
			struct bus *on = b->io ? &fm.pio : &fm.mmio;
			bool valid;

			if (!b->size) {
				/* Unused, or the high half of the 64-bit BAR below it. */
				if (!(k > 0 && p->bars[k - 1].is64))
					FUZZ_ASSERT(lo == 0);
				continue;
			}
			/* Config space says the size-aligned address and the type. */
			FUZZ_ASSERT(!(b->addr & (b->size - 1)));
			FUZZ_ASSERT(bar_addr(p, k) == b->addr);
			FUZZ_ASSERT((lo & (b->io ? 3 : 0xf)) == type);
			FUZZ_ASSERT(b->io ? b->addr <= 0xffff : b->is64 || b->addr <= 0xffffffffULL);
			valid = decoded(p, b) && b->addr && b->size <= limit && b->addr <= limit - b->size;
			if (!valid) {
				FUZZ_ASSERT(!b->mapped);
				continue;
			}
			if (b->mapped) {
				FUZZ_ASSERT(b->mapped_addr == b->addr);
				mapped++;
			} else {
				/* Only where something else already decodes part of it. */
				FUZZ_ASSERT(overlaps_registered(on, b->addr, b->size));
			}
		}
	}
	FUZZ_ASSERT(check_ranges(&fm.mmio, false) + check_ranges(&fm.pio, true) == mapped);
}

/* A plain loop over both config spaces after every operation, out of the sanitizers' and the
 * coverage counters' sight (they would make it the target's main cost). */
__attribute__((no_sanitize("address", "undefined", "coverage")))
static bool read_only_bits_kept(const struct pci_dev *p, const uint8_t *init)
{
	for (uint32_t i = 0; i < PCI_CFG_SIZE; i += 8) {
		uint64_t now, was, m;

		if (i >= PCI_BASE_ADDRESS_0 && i < PCI_BASE_ADDRESS_5 + 4)
			continue; /* the BARs: check_bars() */
		memcpy(&now, p->cfg + i, 8);
		memcpy(&was, init + i, 8);
		memcpy(&m, p->wmask + i, 8);
		if ((now ^ was) & ~m)
			return false;
	}
	return true;
}

static void check_config(void)
{
	for (int d = 0; d < NDEVS; d++)
		FUZZ_ASSERT(read_only_bits_kept(devs[d], init_cfg[d]));
}

static void check_msix(const struct msix *m, const struct pci_dev *p)
{
	uint16_t flags = pci_cfg_read16(p, m->cap + PCI_MSIX_FLAGS);

	FUZZ_ASSERT(m->enabled == !!(flags & PCI_MSIX_FLAGS_ENABLE));
	FUZZ_ASSERT(m->fmask == !!(flags & PCI_MSIX_FLAGS_MASKALL));
	FUZZ_ASSERT((flags & PCI_MSIX_FLAGS_QSIZE) == m->nvec - 1);
	FUZZ_ASSERT(!(m->pba >> m->nvec));
	for (int v = 0; v < m->nvec; v++) {
		bool masked = !m->enabled || m->fmask || (m->table[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);

		FUZZ_ASSERT(!(m->table[v].ctrl & ~PCI_MSIX_ENTRY_CTRL_MASKBIT));
		FUZZ_ASSERT(!(m->pba & (1ULL << v)) || masked);
	}
}

static bool msi_gsi_of(int g)
{
	for (int v = 0; v < td.msix.nvec; v++)
		if (g == td.msix.gsi[v])
			return true;
	for (int v = 0; v < vp->msix.nvec; v++)
		if (g == vp->msix.gsi[v])
			return true;
	return false;
}

static void check_interrupts(void)
{
	uint8_t isr;
	bool msix;

	for (int d = 0; d < NDEVS; d++) {
		const struct pci_dev *p = devs[d];
		bool disabled = pci_cfg_read16(p, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;

		FUZZ_ASSERT(p->intx_line == (p->intx_level && !disabled));
		FUZZ_ASSERT(fm.irq_level[p->intx_gsi] == p->intx_line);
	}
	pthread_mutex_lock(&vdev->lock);
	isr = vdev->isr;
	msix = msix_enabled(&vp->msix);
	pthread_mutex_unlock(&vdev->lock);
	FUZZ_ASSERT(vp->pdev.intx_level == (!msix && isr != 0));
	{
		const struct pci_bar *b4 = &vp->pdev.bars[4], *b0 = &vp->pdev.bars[0];
		int live = 0;

		for (int i = 0; i < fm.nioeventfds; i++)
			live += fm.ioeventfds[i].live;
		FUZZ_ASSERT(live == b4->mapped + b0->mapped);
		FUZZ_ASSERT(!b4->mapped || fm_ioeventfd_at(&fm, b4->mapped_addr + VPCI_NOTIFY, false));
		FUZZ_ASSERT(!b0->mapped || fm_ioeventfd_at(&fm, b0->mapped_addr + VIRTIO_PCI_QUEUE_NOTIFY,
							   true));
	}
	for (int g = 0; g < FM_GSIS; g++)
		FUZZ_ASSERT(!fm.msi[g].set || msi_gsi_of(g));
	FUZZ_ASSERT(!fm.exit_reason || reset_requested);
}

/* ---- one input ---- */

static void machine_up(void)
{
	struct pci_bus *bus;

	if (!ram) {
		log_set_level(LOG_ERROR);
		ram = calloc(1, RAM_SIZE);
		FUZZ_ASSERT(ram);
		mem = (struct guest_mem){ .ram_size = RAM_SIZE, .nregions = 1,
					  .regions = { { 0, RAM_SIZE, ram } } };
	}
	fm_init(&fm, 0);
	fm.mem = mem;
	FUZZ_ASSERT(pci_bus_create(&fm.m, &bus) == 0);
	memset(&td, 0, sizeof(td));
	pci_dev_init(&td.pdev, bus, 0x1234, 0x5678, 0xff0000, 2, 0x1234, 1, &tdev_ops, &td);
	pci_add_bar(&td.pdev, 0, 0x1000, false, false, &plain_ops, &td);
	pci_add_bar(&td.pdev, 1, 0x20, true, false, &plain_ops, &td);
	pci_add_bar(&td.pdev, 2, 0x4000, false, true, &msix_bar_ops, &td);
	pci_add_bar(&td.pdev, 4, 8ULL << 30, false, true, &plain_ops, &td);
	FUZZ_ASSERT(msix_init(&td.msix, &td.pdev, &fm.m, T_NVEC, 2, 0, T_PBA) == 0);
	FUZZ_ASSERT(pci_register(&td.pdev) == 0);
	FUZZ_ASSERT(virtio_rng_create(&(struct virtio_env){ &fm.mem, &fm.loop }, &vdev) == 0);
	FUZZ_ASSERT(virtio_pci_attach(bus, &fm.m, vdev, true) == 0);
	FUZZ_ASSERT(machine_own(&fm.m, vdev, virtio_dev_free) == 0);
	vp = vdev->transport_priv;
	devs[0] = &td.pdev;
	devs[1] = &vp->pdev;
	for (int d = 0; d < NDEVS; d++)
		memcpy(init_cfg[d], devs[d]->cfg, PCI_CFG_SIZE);
	reset_requested = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	machine_up();
	check_bars();
	for (int n = 0; n < MAX_OPS && size; n++) {
		run_op(&data, &size);
		check_bars();
		check_config();
		check_msix(&td.msix, &td.pdev);
		check_msix(&vp->msix, &vp->pdev);
		check_interrupts();
	}
	fm_destroy(&fm);
	msix_destroy(&td.msix);
	return 0;
}

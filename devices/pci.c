#include "devices/pci.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot.h"
#include "vmm/err.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/util.h"
#include "vmm/machine.h"
#include "vmm/memory.h"

#define PCI_CF8 0xcf8
#define PCI_CFC 0xcfc
#define PCI_RESET_PORT 0xcf9 /* reset control register: bit 2 resets the machine */
#define PCI_MMIO64_ALIGN GiB
#define PCI_MMIO64_SIZE (32 * GiB)

struct pci_bus {
	struct machine *machine;
	/* Config space of every device, the BAR mappings (and the bar_mapped hooks' state),
	 * the 0xcf8 address register. Taken before any device lock. */
	pthread_mutex_t lock;
	/* INTx: each device's level, INTx-disable and line; a leaf lock (taken with a device's
	 * lock held when it raises an interrupt, and with the bus lock held on command writes). */
	pthread_mutex_t intx_lock;
	uint32_t cf8;
	struct pci_dev host_bridge;
	struct pci_dev *slots[PCI_MAX_SLOTS];
	uint64_t mmio32_next, mmio64_next, io_next;
};

/* ---- BARs ---- */

static uint32_t bar_flags(const struct pci_bar *b)
{
	if (b->io)
		return PCI_BASE_ADDRESS_SPACE_IO;
	return b->is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0;
}

static void bar_unmap(struct pci_dev *p, int i)
{
	struct pci_bar *b = &p->bars[i];

	if (!b->mapped)
		return;
	bus_unregister(b->io ? p->bus->machine->pio : p->bus->machine->mmio, b->mapped_addr,
		       b->opaque);
	b->mapped = false;
	if (p->ops && p->ops->bar_mapped)
		p->ops->bar_mapped(p, i, b->mapped_addr, false);
}

static bool bar_decoded(const struct pci_dev *p, const struct pci_bar *b)
{
	uint16_t cmd = pci_cfg_read16(p, PCI_COMMAND);

	return b->io ? (cmd & PCI_COMMAND_IO) : (cmd & PCI_COMMAND_MEMORY);
}

/* Unmaps the device's BARs whose mapping no longer matches their address and decode bit. */
static void bars_unmap_stale(struct pci_dev *p)
{
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &p->bars[i];

		if (b->mapped && (!bar_decoded(p, b) || b->mapped_addr != b->addr))
			bar_unmap(p, i);
	}
}

/* Maps the device's decoded BARs that are not mapped yet, where nothing else is. */
static void bars_map(struct pci_dev *p)
{
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &p->bars[i];
		uint64_t limit = b->io ? 0x10000 : (1ULL << 52);

		/* An address of 0, or a half-programmed one past the address space, stays unmapped
		 * (sizing writes all-ones to a BAR). Written so that it cannot wrap: a 64-bit BAR
		 * may be programmed to the last size-aligned address below 2^64. */
		if (!b->size || b->mapped || !bar_decoded(p, b) || !b->addr || b->size > limit ||
		    b->addr > limit - b->size)
			continue;
		if (bus_register(b->io ? p->bus->machine->pio : p->bus->machine->mmio, b->addr, b->size,
				 b->ops, b->opaque, "pci-bar") < 0) {
			pr_debug("pci %02x: BAR %d at 0x%llx overlaps another device: not mapped", p->slot,
				 i, (unsigned long long)b->addr);
			continue;
		}
		b->mapped = true;
		b->mapped_addr = b->addr;
		if (p->ops && p->ops->bar_mapped)
			p->ops->bar_mapped(p, i, b->addr, true);
	}
}

/* Makes the buses match every BAR and decode bit of the bus (bus lock held): first every
 * stale mapping goes, then every BAR that can be is mapped. So a BAR the guest put over another
 * one (not mapped: the first keeps the range) is mapped as soon as the other moves away, in
 * whichever device and order the guest reprograms them. */
static void bars_update(struct pci_bus *pb)
{
	for (int s = 0; s < PCI_MAX_SLOTS; s++)
		if (pb->slots[s])
			bars_unmap_stale(pb->slots[s]);
	for (int s = 0; s < PCI_MAX_SLOTS; s++)
		if (pb->slots[s])
			bars_map(pb->slots[s]);
}

static void bar_store(struct pci_dev *p, int i)
{
	struct pci_bar *b = &p->bars[i];
	uint32_t lo = (uint32_t)(b->addr & ~(b->size - 1)) | bar_flags(b);

	memcpy(&p->cfg[PCI_BASE_ADDRESS_0 + 4 * i], &lo, 4);
	if (b->is64) {
		uint32_t hi = (uint32_t)((b->addr & ~(b->size - 1)) >> 32);

		memcpy(&p->cfg[PCI_BASE_ADDRESS_0 + 4 * (i + 1)], &hi, 4);
	}
}

/* A write to BAR register `reg` (0-5): keep the address bits the size allows. */
static void bar_write(struct pci_dev *p, int reg, uint32_t val)
{
	int i = reg;
	bool high = false;

	if (!p->bars[i].size && i > 0 && p->bars[i - 1].is64) {
		i--;
		high = true;
	}
	if (!p->bars[i].size)
		return;
	if (high)
		p->bars[i].addr = (p->bars[i].addr & 0xffffffffULL) | ((uint64_t)val << 32);
	else
		p->bars[i].addr = (p->bars[i].addr & ~0xffffffffULL) | (val & ~0xfu);
	p->bars[i].addr &= ~(p->bars[i].size - 1);
	if (!p->bars[i].is64)
		p->bars[i].addr &= 0xffffffffULL;
	if (p->bars[i].io)
		p->bars[i].addr &= 0xffff;
	bar_store(p, i);
	bars_update(p->bus);
}

/* ---- config space ---- */

static uint32_t cfg_read(struct pci_dev *p, uint32_t off, uint32_t len)
{
	uint32_t v = 0;

	if (p->ops && p->ops->cfg_read && p->ops->cfg_read(p, off, len, &v))
		return v;
	memcpy(&v, &p->cfg[off], len);
	/* The status register's interrupt bit is INTx's, which has its own lock. */
	if (off <= PCI_STATUS && off + len > PCI_STATUS) {
		uint32_t bit = PCI_STATUS_INTERRUPT << (8 * (PCI_STATUS - off));

		pthread_mutex_lock(&p->bus->intx_lock);
		v = p->intx_level ? v | bit : v & ~bit;
		pthread_mutex_unlock(&p->bus->intx_lock);
	}
	return v;
}

/* Drives the line from the level and INTx-disable; with intx_lock held. */
static void intx_update(struct pci_dev *p)
{
	int line = p->intx_level && !p->intx_disabled;

	if (line != p->intx_line) {
		p->intx_line = line;
		machine_set_irq_line(p->bus->machine, p->intx_gsi, line);
	}
}

static void cfg_write(struct pci_dev *p, uint32_t off, uint32_t len, uint32_t val)
{
	uint32_t reg = off & ~3u;

	if (reg >= PCI_BASE_ADDRESS_0 && reg <= PCI_BASE_ADDRESS_5) {
		uint32_t cur = pci_cfg_read32(p, reg), shift = (off & 3) * 8;
		uint32_t mask = len == 4 ? 0xffffffffu : ((1u << (len * 8)) - 1) << shift;

		bar_write(p, (reg - PCI_BASE_ADDRESS_0) / 4, (cur & ~mask) | ((val << shift) & mask));
		return;
	}
	for (uint32_t i = 0; i < len; i++) {
		uint8_t m = p->wmask[off + i], b = (uint8_t)(val >> (8 * i));

		p->cfg[off + i] = (p->cfg[off + i] & ~m) | (b & m);
	}
	if (off <= PCI_COMMAND + 1 && off + len > PCI_COMMAND) {
		bars_update(p->bus);
		pthread_mutex_lock(&p->bus->intx_lock);
		p->intx_disabled = pci_cfg_read16(p, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
		intx_update(p);
		pthread_mutex_unlock(&p->bus->intx_lock);
	}
	if (p->ops && p->ops->cfg_written)
		p->ops->cfg_written(p, off, len, val);
}

static struct pci_dev *lookup(struct pci_bus *pb, uint32_t bus, uint32_t slot, uint32_t fn)
{
	if (bus != 0 || fn != 0 || slot >= PCI_MAX_SLOTS)
		return NULL;
	return pb->slots[slot];
}

/* One config access from either path (bus lock held); absent functions read as all-ones, and
 * so do accesses config space does not take: misaligned, or wider than a dword (an 8-byte ECAM
 * access). */
static void cfg_access_locked(struct pci_bus *pb, uint32_t bus, uint32_t slot, uint32_t fn,
			      uint32_t off, void *data, uint32_t len, bool write)
{
	struct pci_dev *p;
	uint32_t v = 0;

	p = lookup(pb, bus, slot, fn);
	if (!p || len > 4 || (off & (len - 1)) || off + len > PCI_CFG_SIZE) {
		if (!write)
			memset(data, 0xff, len);
	} else if (write) {
		memcpy(&v, data, len);
		cfg_write(p, off, len, v);
	} else {
		v = cfg_read(p, off, len);
		memcpy(data, &v, len);
	}
}

static void cfg_access(struct pci_bus *pb, uint32_t bus, uint32_t slot, uint32_t fn, uint32_t off,
		       void *data, uint32_t len, bool write)
{
	pthread_mutex_lock(&pb->lock);
	cfg_access_locked(pb, bus, slot, fn, off, data, len, write);
	pthread_mutex_unlock(&pb->lock);
}

static void cf8_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct pci_bus *pb = opaque;

	if (off == 0 && len == 4) {
		pthread_mutex_lock(&pb->lock);
		memcpy(data, &pb->cf8, 4);
		pthread_mutex_unlock(&pb->lock);
		return;
	}
	memset(data, 0, len); /* 0xcf9 reads as 0 */
}

static void cf8_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct pci_bus *pb = opaque;
	uint8_t v;

	if (off == 0 && len == 4) {
		pthread_mutex_lock(&pb->lock);
		memcpy(&pb->cf8, data, 4);
		pthread_mutex_unlock(&pb->lock);
		return;
	}
	/* The reset control register at 0xcf9 (byte access): "reboot=pci". */
	v = *(const uint8_t *)data;
	if (off == PCI_RESET_PORT - PCI_CF8 && len == 1 && (v & 0x04)) {
		pr_info("guest reset through port 0xcf9");
		machine_request_exit(pb->machine, 0, "reset");
	}
}

/* The address register is read under the same hold of the bus lock as the access it selects:
 * another vCPU writing 0xcf8 meanwhile cannot change the target half-way. */
static void cfc_access(struct pci_bus *pb, uint64_t off, void *data, uint32_t len, bool write)
{
	uint32_t a;

	pthread_mutex_lock(&pb->lock);
	a = pb->cf8;
	if (a & 0x80000000u)
		cfg_access_locked(pb, (a >> 16) & 0xff, (a >> 11) & 0x1f, (a >> 8) & 7,
				  (a & 0xfc) + off, data, len, write);
	else if (!write)
		memset(data, 0xff, len);
	pthread_mutex_unlock(&pb->lock);
}

static void cfc_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	cfc_access(opaque, off, data, len, false);
}

static void cfc_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	cfc_access(opaque, off, (void *)data, len, true);
}

static void ecam_access(struct pci_bus *pb, uint64_t off, void *data, uint32_t len, bool write)
{
	cfg_access(pb, off >> 20, (off >> 15) & 0x1f, (off >> 12) & 7, off & 0xfff, data, len, write);
}

static void ecam_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	ecam_access(opaque, off, data, len, false);
}

static void ecam_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	ecam_access(opaque, off, (void *)data, len, true);
}

static const struct bus_ops cf8_ops = { .read = cf8_read, .write = cf8_write };
static const struct bus_ops cfc_ops = { .read = cfc_read, .write = cfc_write };
static const struct bus_ops ecam_ops = { .read = ecam_read, .write = ecam_write };

/* ---- devices ---- */

void pci_dev_init(struct pci_dev *p, struct pci_bus *bus, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id,
		  const struct pci_dev_ops *ops, void *priv)
{
	memset(p, 0, sizeof(*p));
	p->bus = bus;
	p->ops = ops;
	p->priv = priv;
	memcpy(&p->cfg[PCI_VENDOR_ID], &vendor, 2);
	memcpy(&p->cfg[PCI_DEVICE_ID], &device, 2);
	p->cfg[PCI_REVISION_ID] = revision;
	p->cfg[PCI_CLASS_PROG] = class_code & 0xff;
	p->cfg[PCI_CLASS_DEVICE] = (class_code >> 8) & 0xff;
	p->cfg[PCI_CLASS_DEVICE + 1] = (class_code >> 16) & 0xff;
	memcpy(&p->cfg[PCI_SUBSYSTEM_VENDOR_ID], &subsys_vendor, 2);
	memcpy(&p->cfg[PCI_SUBSYSTEM_ID], &subsys_id, 2);
	/* The guest may toggle I/O and memory decoding, bus mastering and INTx-disable, and write
	 * the interrupt line; everything else in the header is read-only. */
	p->wmask[PCI_COMMAND] = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	p->wmask[PCI_COMMAND + 1] = PCI_COMMAND_INTX_DISABLE >> 8;
	p->wmask[PCI_INTERRUPT_LINE] = 0xff;
	p->cap_end = 0x40;
}

void pci_add_bar(struct pci_dev *p, int bar, uint64_t size, bool io, bool is64,
		 const struct bus_ops *ops, void *opaque)
{
	p->bars[bar] = (struct pci_bar){ .size = size, .io = io, .is64 = is64 && !io, .ops = ops,
					 .opaque = opaque };
}

uint8_t pci_add_cap(struct pci_dev *p, uint8_t id, uint8_t len)
{
	uint8_t off = ALIGN_UP(p->cap_end, 4);

	if ((unsigned)off + len > 0x100)
		return 0;
	p->cfg[off] = id;
	p->cfg[off + 1] = 0;
	if (p->last_cap)
		p->cfg[p->last_cap + 1] = off;
	else
		p->cfg[PCI_CAPABILITY_LIST] = off;
	p->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	p->last_cap = off;
	p->cap_end = off + len;
	return off;
}

static uint64_t assign(uint64_t *next, uint64_t size)
{
	uint64_t a = ALIGN_UP(*next, size);

	*next = a + size;
	return a;
}

int pci_register(struct pci_dev *p)
{
	struct pci_bus *pb = p->bus;
	int slot = -1;

	for (int s = 1; s < PCI_MAX_SLOTS && slot < 0; s++)
		if (!pb->slots[s])
			slot = s;
	if (slot < 0)
		return -ENOSPC;
	p->slot = slot;
	p->cfg[PCI_INTERRUPT_PIN] = 1; /* INTA */
	p->intx_gsi = pci_intx_gsi(slot, p->cfg[PCI_INTERRUPT_PIN] - 1);
	p->cfg[PCI_INTERRUPT_LINE] = p->intx_gsi;
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &p->bars[i];

		if (!b->size)
			continue;
		if (b->io)
			b->addr = assign(&pb->io_next, b->size);
		else if (b->is64)
			b->addr = assign(&pb->mmio64_next, b->size);
		else
			b->addr = assign(&pb->mmio32_next, b->size);
		if (!b->io && !b->is64 && b->addr + b->size > PCI_MMIO32_START + PCI_MMIO32_SIZE)
			return -ENOSPC;
		bar_store(p, i);
	}
	p->cfg[PCI_COMMAND] |= PCI_COMMAND_IO | PCI_COMMAND_MEMORY;
	pthread_mutex_lock(&pb->lock);
	pb->slots[slot] = p;
	bars_update(pb);
	pthread_mutex_unlock(&pb->lock);
	return 0;
}

void pci_mmio64_window(const struct machine *m, uint64_t *start, uint64_t *end)
{
	const struct guest_mem *mem = m->mem;
	uint64_t ram_top = mem->nregions > 1 ? mem->regions[1].gpa + mem->regions[1].size
					     : MMIO_HOLE_END;

	*start = ALIGN_UP(ram_top, PCI_MMIO64_ALIGN);
	*end = *start + PCI_MMIO64_SIZE;
}

void pci_set_intx(struct pci_dev *p, int level)
{
	pthread_mutex_lock(&p->bus->intx_lock);
	p->intx_level = level;
	intx_update(p);
	pthread_mutex_unlock(&p->bus->intx_lock);
}

/* ---- snapshots ---- */

static int writable_bytes(const struct pci_dev *p)
{
	int n = 0;

	for (int i = 0; i < PCI_CFG_SIZE; i++)
		n += p->wmask[i] != 0;
	return n;
}

static uint8_t bars_present(const struct pci_dev *p)
{
	uint8_t mask = 0;

	for (int i = 0; i < PCI_NUM_BARS; i++)
		if (p->bars[i].size)
			mask |= 1u << i;
	return mask;
}

/* Bus lock held. */
static void dev_save_locked(struct pci_dev *p, struct snap_writer *w)
{
	snap_put_u16(w, writable_bytes(p));
	for (int i = 0; i < PCI_CFG_SIZE; i++)
		if (p->wmask[i])
			snap_put_u8(w, p->cfg[i]);
	snap_put_u8(w, bars_present(p));
	for (int i = 0; i < PCI_NUM_BARS; i++)
		if (p->bars[i].size)
			snap_put_u64(w, p->bars[i].addr);
}

void pci_dev_save(struct pci_dev *p, struct snap_writer *w)
{
	pthread_mutex_lock(&p->bus->lock);
	dev_save_locked(p, w);
	pthread_mutex_unlock(&p->bus->lock);
}

/* Whether addr is a value bar_write() can leave in BAR b. */
static bool bar_addr_ok(const struct pci_bar *b, uint64_t addr)
{
	if (addr & (b->size - 1))
		return false;
	if (b->io)
		return addr <= 0xffff;
	return b->is64 || addr <= 0xffffffffULL;
}

/* Bus lock held. Checks everything before it changes anything. */
static int dev_restore_locked(struct pci_dev *p, struct snap_cursor *c, const char *who,
			      struct err *e)
{
	uint8_t bytes[PCI_CFG_SIZE];
	uint64_t addr[PCI_NUM_BARS] = { 0 };
	int n = snap_get_u16(c), k = 0;

	if (c->err)
		return err_set(e, -EBADMSG, "snapshot: %s: PCI section truncated", who);
	if (n != writable_bytes(p))
		return err_set(e, -EINVAL, "snapshot: %s: PCI config space of another layout", who);
	snap_get(c, bytes, n);
	if (!c->err && snap_get_u8(c) != bars_present(p))
		return err_set(e, -EINVAL, "snapshot: %s: PCI BARs of another layout", who);
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		if (!p->bars[i].size)
			continue;
		addr[i] = snap_get_u64(c);
		if (!c->err && !bar_addr_ok(&p->bars[i], addr[i]))
			return err_set(e, -EINVAL, "snapshot: %s: BAR %d at 0x%llx: not a place the "
				       "guest can put it", who, i, (unsigned long long)addr[i]);
	}
	if (c->err)
		return err_set(e, -EBADMSG, "snapshot: %s: PCI section truncated", who);

	for (int i = 0; i < PCI_CFG_SIZE; i++) {
		if (!p->wmask[i])
			continue;
		p->cfg[i] = (p->cfg[i] & ~p->wmask[i]) | (bytes[k++] & p->wmask[i]);
	}
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		if (p->bars[i].size) {
			p->bars[i].addr = addr[i];
			bar_store(p, i);
		}
	}
	/* As a guest's BAR and command writes: stale mappings (and their ioeventfds) go, the
	 * new ones come, through the device's bar_mapped hook. */
	bars_update(p->bus);
	pthread_mutex_lock(&p->bus->intx_lock);
	p->intx_disabled = pci_cfg_read16(p, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
	intx_update(p);
	pthread_mutex_unlock(&p->bus->intx_lock);
	return 0;
}

int pci_dev_restore(struct pci_dev *p, struct snap_cursor *c, const char *who, struct err *e)
{
	int err;

	pthread_mutex_lock(&p->bus->lock);
	err = dev_restore_locked(p, c, who, e);
	pthread_mutex_unlock(&p->bus->lock);
	return err;
}

/* The bus's own state: the 0xcf8 address register and the host bridge's config space. Each
 * device's function is saved by its owner (virtio-pci), with the rest of that device. */
static int bus_save(void *opaque, struct snap_writer *w, struct err *e)
{
	struct pci_bus *pb = opaque;

	(void)e;
	pthread_mutex_lock(&pb->lock);
	snap_put_u32(w, pb->cf8);
	dev_save_locked(&pb->host_bridge, w);
	pthread_mutex_unlock(&pb->lock);
	return 0;
}

static int bus_restore(void *opaque, struct snap_cursor *c, struct err *e)
{
	struct pci_bus *pb = opaque;
	int err;

	pthread_mutex_lock(&pb->lock);
	/* Any address the guest can write: the data port decodes it on each access. */
	pb->cf8 = snap_get_u32(c);
	err = dev_restore_locked(&pb->host_bridge, c, "pci host bridge", e);
	pthread_mutex_unlock(&pb->lock);
	if (!err && snap_cursor_end(c))
		err = err_set(e, -EBADMSG, "snapshot: pci: section of another length");
	return err;
}

static const struct snap_ops pci_bus_snap_ops = {
	.name = "pci", .version = 1, .save = bus_save, .restore = bus_restore,
};

static void pci_bus_destroy(void *opaque)
{
	struct pci_bus *pb = opaque;

	pthread_mutex_destroy(&pb->lock);
	pthread_mutex_destroy(&pb->intx_lock);
	free(pb);
}

int pci_bus_create(struct machine *m, struct pci_bus **out)
{
	struct pci_bus *pb = calloc(1, sizeof(*pb));
	uint64_t end;
	int err;

	if (!pb)
		return -ENOMEM;
	pb->machine = m;
	pthread_mutex_init(&pb->lock, NULL);
	pthread_mutex_init(&pb->intx_lock, NULL);
	pb->mmio32_next = PCI_MMIO32_START;
	pci_mmio64_window(m, &pb->mmio64_next, &end);
	pb->io_next = PCI_IO_START;
	err = machine_own(m, pb, pci_bus_destroy);
	if (err) {
		pci_bus_destroy(pb);
		return err;
	}
	/* The host bridge, slot 0: "Red Hat, Inc. QEMU PCIe Host bridge", class 0x0600. */
	pci_dev_init(&pb->host_bridge, pb, 0x1b36, 0x0008, 0x060000, 0, 0x1af4, 0x1100, NULL, NULL);
	pb->slots[0] = &pb->host_bridge;
	/* 0xcf8-0xcfb: the address register (32-bit) and, at 0xcf9, reset control (8-bit). */
	err = bus_register(m->pio, PCI_CF8, 4, &cf8_ops, pb, "pci-cf8");
	if (!err)
		err = bus_register(m->pio, PCI_CFC, 4, &cfc_ops, pb, "pci-cfc");
	if (!err)
		err = bus_register(m->mmio, PCI_ECAM_BASE, PCI_ECAM_BUS_SIZE, &ecam_ops, pb, "pci-ecam");
	if (!err)
		err = machine_add_state(m, pb, &pci_bus_snap_ops);
	if (!err) {
		m->pci = true;
		*out = pb;
	}
	return err;
}

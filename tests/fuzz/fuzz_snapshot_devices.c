/* libFuzzer target: restoring the virtio transports, the PCI bus and MSI-X from crafted
 * snapshot sections (as hostile as guest writes: a file whose checksums are valid).
 *
 * At start-up a machine of the unit tests' fake kind (PCI bus; virtio-rng on virtio-mmio,
 * legacy virtio-mmio, modern and transitional virtio-pci) is driven into a running state
 * (queues live, requests served and pending, MSI-X on and routed, a BAR moved, INTx pending)
 * and every owner's section is saved. Each input then picks one section and mutates it:
 *
 *   [0] which section (modulo their number)
 *   [1] bits 0-1: keep the length, cut it by [2] bytes, or add [2] bytes (the input's tail)
 *   then (u16 offset, u8 xor) triples applied to the section's bytes (offsets modulo length)
 *
 * A fresh, identical machine gets the saved guest RAM and every section in order, the mutated
 * one in its place, as a restore would. When every owner accepts, the machine must be in a
 * state the devices allow (checked below) and keep working: each queue is kicked and the event
 * loop run, the ISR read. Beyond the sanitizers:
 *   - every ready queue's size is a power of two within the maximum, its rings in guest RAM;
 *   - with FEATURES_OK or DRIVER_OK, only features the device offers;
 *   - virtio-pci: vectors within the MSI-X table or NO_VECTOR, BAR addresses aligned to their
 *     size, the notify ioeventfds exactly where BAR 4 is mapped (and nowhere when it is not),
 *     MSI routes only for the machine's MSI GSIs. */
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <unistd.h>

#include "devices/pci.h"
#include "devices/virtio/attach.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/virtio.h"
#include "snapshot/snapshot.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/unit/fake_machine.h"
#include "tests/unit/vring_driver.h"
#include "vmm/err.h"
#include "vmm/layout.h"
#include "vmm/log.h"

#define RAM_SIZE   0x100000ULL
#define NDEVS      4
#define MAX_SECTIONS 16
#define QSIZE      16
#define BUF        0x80000ULL
#define MSI_GSI0   24
#define NEWBAR4    0x2000000000ULL
#define MMIO0      VIRTIO_MMIO_BASE
#define MMIO1      (VIRTIO_MMIO_BASE + VIRTIO_MMIO_SLOT_SIZE)
#define S_RUN      (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
		    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK)

struct rig {
	struct fake_machine fm;
	struct pci_bus *pci;
	struct virtio_dev *dev[NDEVS];  /* mmio, mmio legacy, pci, pci transitional */
};

static struct rig rig;
static uint8_t *ram, *saved_ram;
static struct guest_mem mem;
static struct { char name[SNAP_NAME_MAX]; uint8_t *data; size_t len; } sections[MAX_SECTIONS];
static int nsections;
static uint64_t legacy_io;   /* BAR 0 of the transitional device, as assigned */

static void rig_up(void)
{
	static const enum virtio_transport_kind kinds[NDEVS] = {
		TRANSPORT_MMIO, TRANSPORT_MMIO_LEGACY, TRANSPORT_PCI, TRANSPORT_PCI_TRANSITIONAL,
	};
	struct virtio_env env;

	fm_init(&rig.fm, 0);
	rig.fm.mem = mem;
	env = (struct virtio_env){ &rig.fm.mem, &rig.fm.loop };
	FUZZ_ASSERT(pci_bus_create(&rig.fm.m, &rig.pci) == 0);
	for (int i = 0; i < NDEVS; i++) {
		FUZZ_ASSERT(virtio_rng_create(&env, &rig.dev[i]) == 0);
		FUZZ_ASSERT(virtio_attach(&rig.fm.m, rig.pci, rig.dev[i], kinds[i]) == 0);
	}
}

static void section_name(int i, char *name)
{
	int n = 0;

	for (int j = 0; j < i; j++)
		n += !strcmp(rig.fm.states[j].ops->name, rig.fm.states[i].ops->name);
	snprintf(name, SNAP_NAME_MAX, "%s.%d", rig.fm.states[i].ops->name, n);
}

/* ---- the state every input starts from ---- */

static void w32(uint64_t addr, uint32_t v, bool pio, uint32_t len)
{
	fm_write(&rig.fm, pio, addr, v, len);
}

static void post(struct drv *d, uint16_t i)
{
	drv_desc(d, i, BUF + 64 * i, 64, VRING_DESC_F_WRITE, 0);
	drv_post(d, i);
}

static void drive(void)
{
	uint64_t bar4 = fm_bar_addr(&rig.fm, 1, 4), c = NEWBAR4;
	uint8_t msix = fm_find_cap(&rig.fm, 1, PCI_CAP_ID_MSIX, -1);
	uint32_t q = 0;
	struct drv d;

	/* virtio-mmio: every ring feature, one request served, one pending. */
	drv_init(&d, &rig.fm.mem, QSIZE, 0x10000, 0x11000, 0x12000);
	w32(MMIO0 + VIRTIO_MMIO_STATUS, 3, false, 4);
	w32(MMIO0 + VIRTIO_MMIO_DRIVER_FEATURES, (1u << VIRTIO_RING_F_EVENT_IDX) |
	    (1u << VIRTIO_RING_F_INDIRECT_DESC), false, 4);
	w32(MMIO0 + VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1, false, 4);
	w32(MMIO0 + VIRTIO_MMIO_DRIVER_FEATURES, 1, false, 4);
	w32(MMIO0 + VIRTIO_MMIO_STATUS, 11, false, 4);
	w32(MMIO0 + VIRTIO_MMIO_QUEUE_NUM, QSIZE, false, 4);
	w32(MMIO0 + VIRTIO_MMIO_QUEUE_DESC_LOW, 0x10000, false, 4);
	w32(MMIO0 + VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x11000, false, 4);
	w32(MMIO0 + VIRTIO_MMIO_QUEUE_USED_LOW, 0x12000, false, 4);
	w32(MMIO0 + VIRTIO_MMIO_QUEUE_READY, 1, false, 4);
	w32(MMIO0 + VIRTIO_MMIO_STATUS, S_RUN, false, 4);
	post(&d, 0);
	fm_guest_write(&rig.fm, false, MMIO0 + VIRTIO_MMIO_QUEUE_NOTIFY, &q, 4);
	fm_run_ready(&rig.fm, 4);
	post(&d, 1);

	/* legacy virtio-mmio: rings at a PFN. */
	drv_init(&d, &rig.fm.mem, QSIZE, 0x20000, 0x20100, 0x21000);
	w32(MMIO1 + VIRTIO_MMIO_STATUS, 3, false, 4);
	w32(MMIO1 + VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096, false, 4);
	w32(MMIO1 + VIRTIO_MMIO_QUEUE_NUM, QSIZE, false, 4);
	w32(MMIO1 + VIRTIO_MMIO_QUEUE_ALIGN, 4096, false, 4);
	w32(MMIO1 + VIRTIO_MMIO_QUEUE_PFN, 0x20, false, 4);
	w32(MMIO1 + VIRTIO_MMIO_STATUS, 7, false, 4);
	post(&d, 0);

	/* modern virtio-pci: BAR 4 moved, MSI-X on, a request served on vector 1. */
	fm_cfg_write(&rig.fm, 1, PCI_BASE_ADDRESS_4, (uint32_t)c | PCI_BASE_ADDRESS_MEM_TYPE_64, 4);
	fm_cfg_write(&rig.fm, 1, PCI_BASE_ADDRESS_5, (uint32_t)(c >> 32), 4);
	FUZZ_ASSERT(fm_bar_addr(&rig.fm, 1, 4) == NEWBAR4 && bar4 != NEWBAR4);
	bar4 = NEWBAR4;
	for (int v = 0; v < 2; v++) {
		w32(bar4 + 0x4000 + 16 * v, 0xfee00000 + 0x1000 * v, false, 4);
		w32(bar4 + 0x4000 + 16 * v + 8, 0x40 + v, false, 4);
		w32(bar4 + 0x4000 + 16 * v + 12, v, false, 4); /* vector 1 masked */
	}
	fm_cfg_write(&rig.fm, 1, msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	drv_init(&d, &rig.fm.mem, QSIZE, 0x30000, 0x31000, 0x32000);
#define CO(f) (bar4 + offsetof(struct virtio_pci_common_cfg, f))
	w32(CO(device_status), 3, false, 1);
	w32(CO(guest_feature_select), 1, false, 4);
	w32(CO(guest_feature), 1, false, 4);
	w32(CO(device_status), 11, false, 1);
	w32(CO(msix_config), 0, false, 2);
	w32(CO(queue_size), QSIZE, false, 2);
	w32(CO(queue_msix_vector), 1, false, 2);
	w32(CO(queue_desc_lo), 0x30000, false, 4);
	w32(CO(queue_avail_lo), 0x31000, false, 4);
	w32(CO(queue_used_lo), 0x32000, false, 4);
	w32(CO(queue_enable), 1, false, 2);
	w32(CO(device_status), S_RUN, false, 1);
#undef CO
	post(&d, 0);
	fm_guest_write(&rig.fm, false, bar4 + 0x3000, &q, 2);
	fm_run_ready(&rig.fm, 4);   /* pending in the PBA: vector 1 is masked */

	/* transitional virtio-pci through its legacy BAR: INTx left pending. */
	legacy_io = fm_bar_addr(&rig.fm, 2, 0);
	drv_init(&d, &rig.fm.mem, 256, 0x60000, 0x61000, 0x62000);
	w32(legacy_io + VIRTIO_PCI_STATUS, 3, true, 1);
	w32(legacy_io + VIRTIO_PCI_QUEUE_PFN, 0x60, true, 4);
	w32(legacy_io + VIRTIO_PCI_STATUS, 7, true, 1);
	post(&d, 0);
	fm_guest_write(&rig.fm, true, legacy_io + VIRTIO_PCI_QUEUE_NOTIFY, &q, 2);
	fm_run_ready(&rig.fm, 4);
}

static void save_sections(void)
{
	char dir[] = "/tmp/mica-fuzz-snapdev.XXXXXX", path[64];
	struct snap_writer *w;
	struct snap_file *f;
	struct err e;

	FUZZ_ASSERT(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/snap", dir);
	FUZZ_ASSERT(snap_writer_create(path, "fuzz", &w, &e) == 0);
	FUZZ_ASSERT(rig.fm.nstates <= MAX_SECTIONS);
	for (int i = 0; i < rig.fm.nstates; i++) {
		section_name(i, sections[i].name);
		snap_begin(w, sections[i].name, rig.fm.states[i].ops->version);
		FUZZ_ASSERT(rig.fm.states[i].ops->save(rig.fm.states[i].obj, w, &e) == 0);
		FUZZ_ASSERT(snap_end(w) == 0);
	}
	FUZZ_ASSERT(snap_writer_finish(w, &e) == 0);
	FUZZ_ASSERT(snap_open(path, &f, &e) == 0);
	for (int i = 0; i < rig.fm.nstates; i++) {
		struct snap_cursor c;

		FUZZ_ASSERT(snap_section(f, sections[i].name, &c) == 0);
		sections[i].data = malloc(c.size + 256);
		memcpy(sections[i].data, c.data, c.size);
		sections[i].len = c.size;
	}
	nsections = rig.fm.nstates;
	snap_close(f);
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	log_set_level(LOG_ERROR);
	ram = calloc(1, RAM_SIZE);
	saved_ram = malloc(RAM_SIZE);
	FUZZ_ASSERT(ram && saved_ram);
	mem = (struct guest_mem){ .ram_size = RAM_SIZE, .nregions = 1,
				  .regions = { { 0, RAM_SIZE, ram } } };
	rig_up();
	drive();
	save_sections();
	memcpy(saved_ram, ram, RAM_SIZE);
	fm_destroy(&rig.fm);
	return 0;
}

/* ---- the checks on a restored machine ---- */

static void check_dev(struct virtio_dev *dev)
{
	uint64_t offered = dev->ops->features | (1ULL << VIRTIO_F_VERSION_1) |
			   (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);

	pthread_mutex_lock(&dev->lock);
	if (dev->status & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK))
		FUZZ_ASSERT(!(dev->driver_features & ~offered));
	for (int q = 0; q < dev->ops->num_queues; q++) {
		const struct virtq *vq = &dev->vqs[q];
		uint16_t s = dev->queue_size[q];

		FUZZ_ASSERT(s && s <= dev->ops->queue_max_size && !(s & (s - 1)));
		if (!vq->ready)
			continue;
		FUZZ_ASSERT(vq->size == s);
		FUZZ_ASSERT(gpa_range(&rig.fm.mem, vq->desc_gpa, 16ULL * s) == (void *)vq->desc);
		FUZZ_ASSERT(gpa_range(&rig.fm.mem, vq->used_gpa, 6 + 8ULL * s) == (void *)vq->used);
		FUZZ_ASSERT(gpa_range(&rig.fm.mem, vq->avail_gpa, 6 + 2ULL * s) == (void *)vq->avail);
	}
	pthread_mutex_unlock(&dev->lock);
}

static void check_pci(struct virtio_dev *dev)
{
	struct virtio_pci *vp = dev->transport_priv;
	const struct pci_bar *b4 = &vp->pdev.bars[4];

	FUZZ_ASSERT(vp->config_vector < vp->msix.nvec || vp->config_vector == VIRTIO_MSI_NO_VECTOR);
	for (int q = 0; q < dev->ops->num_queues; q++) {
		uint64_t at = b4->mapped_addr + 0x3000 + 4 * q;

		FUZZ_ASSERT(vp->queue_vector[q] < vp->msix.nvec ||
			    vp->queue_vector[q] == VIRTIO_MSI_NO_VECTOR);
		FUZZ_ASSERT(vp->notify[q].mmio_addr == (b4->mapped ? at : 0));
		if (b4->mapped)
			FUZZ_ASSERT(fm_ioeventfd_at(&rig.fm, at, false));
	}
	for (int i = 0; i < PCI_NUM_BARS; i++)
		FUZZ_ASSERT(!vp->pdev.bars[i].size ||
			    !(vp->pdev.bars[i].addr & (vp->pdev.bars[i].size - 1)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[4096 + 256];
	int which, err = 0;
	size_t len;
	struct err e;

	if (size < 3)
		return 0;
	which = data[0] % nsections;
	len = sections[which].len;
	FUZZ_ASSERT(len <= 4096);
	memcpy(buf, sections[which].data, len);
	switch (data[1] & 3) {
	case 1:
		len -= data[2] < len ? data[2] : len;
		break;
	case 2:
		memset(buf + len, data[size - 1], data[2]);
		len += data[2];
		break;
	}
	for (size_t i = 3; i + 3 <= size && len; i += 3)
		buf[(data[i] | (size_t)data[i + 1] << 8) % len] ^= data[i + 2];

	memcpy(ram, saved_ram, RAM_SIZE);
	rig_up();
	FUZZ_ASSERT(rig.fm.nstates == nsections);
	for (int i = 0; i < nsections && !err; i++) {
		struct snap_cursor c = { .data = i == which ? buf : sections[i].data,
					 .size = i == which ? len : sections[i].len };

		e.msg[0] = 0;
		err = rig.fm.states[i].ops->restore(rig.fm.states[i].obj, &c, &e);
		FUZZ_ASSERT(err <= 0);
		/* A refusal says why, in the one format. */
		if (err)
			FUZZ_ASSERT(!strncmp(e.msg, "snapshot: ", 10));
	}
	if (!err) {
		for (int i = 0; i < NDEVS; i++) {
			check_dev(rig.dev[i]);
			if (i >= 2)
				check_pci(rig.dev[i]);
		}
		for (int msi = 0; msi < FM_GSIS; msi++)
			FUZZ_ASSERT(!rig.fm.msi[msi].set || (msi >= MSI_GSI0 && msi < rig.fm.next_msi));
		/* It keeps working: every queue served, every ISR read. */
		for (int i = 0; i < NDEVS; i++) {
			pthread_mutex_lock(&rig.dev[i]->lock);
			virtio_queue_kick(rig.dev[i], 0);
			pthread_mutex_unlock(&rig.dev[i]->lock);
		}
		fm_run_ready(&rig.fm, 8);
		fm_read(&rig.fm, false, MMIO0 + VIRTIO_MMIO_INTERRUPT_STATUS, 4);
		fm_read(&rig.fm, true, legacy_io + VIRTIO_PCI_ISR, 1);
		for (int i = 0; i < NDEVS; i++)
			check_dev(rig.dev[i]);
	}
	fm_destroy(&rig.fm);
	return 0;
}

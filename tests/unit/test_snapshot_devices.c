/* Snapshots of the machine-level devices, as a guest sees them: a machine (the fake one) with a
 * UART, the PCI bus, RTC, i8042, a virtio-rng on virtio-mmio, one on legacy virtio-mmio and one
 * on transitional virtio-pci is driven through its registers into a state, every owner of state
 * (fm.states) is saved into a snapshot file, guest RAM is copied (the VM's RAM section does
 * that), and a second machine built the same way is restored from the file. The restored one
 * must answer the guest as the first did: registers, FIFOs, interrupt lines, MSI-X routes,
 * BARs and their ioeventfds where the guest put them, queues that carry on where they stopped.
 * Crafted sections (as hostile as guest writes, with valid checksums) are refused. */
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <unistd.h>

#include "devices/legacy.h"
#include "devices/pci.h"
#include "devices/uart.h"
#include "devices/virtio/attach.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "snapshot/snapshot.h"
#include "tests/unit/fake_machine.h"
#include "tests/unit/snap_tmp.h"
#include "tests/unit/test.h"
#include "tests/unit/vring_driver.h"
#include "vmm/err.h"
#include "vmm/layout.h"
#include "vmm/log.h"

#define RAM       (16 * 1024 * 1024ULL)
#define QSIZE     16
#define BUF_LEN   64
#define PCI_SLOT  1                /* the virtio-pci device: the first slot after the bridge */
#define INTX_GSI  17               /* slot 1, INTA */
#define MSI_GSI0  24               /* the fake machine's first MSI GSI: vector 0's */
#define LEGACY_IO 0xc000           /* BAR 0 of the transitional device, as assigned */
#define MMIO0     VIRTIO_MMIO_BASE /* slot 0: the modern virtio-mmio rng */
#define MMIO1     (VIRTIO_MMIO_BASE + VIRTIO_MMIO_SLOT_SIZE) /* slot 1: the legacy one */

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK
#define S_RUN (S_ACK | S_DRV | S_FOK | S_DOK)

/* virtio-pci BAR 4 layout (devices/virtio/pci_transport.h) */
#define COMMON 0x0000
#define NOTIFY 0x3000
#define TABLE  0x4000

static const uint8_t mmio_gsi[] = VIRTIO_MMIO_GSIS;

struct rig {
	struct fake_machine fm;
	struct pci_bus *pci;
	struct uart *uart;
	struct virtio_dev *mmio_rng, *legacy_rng, *pci_rng;
};

static struct rig A, B;

/* The same machine each time, devices in the same order (as cmd/main.c builds one from the
 * same command line). */
static void rig_up(struct rig *r)
{
	struct virtio_env env;

	fm_init(&r->fm, RAM);
	env = (struct virtio_env){ &r->fm.mem, &r->fm.loop };
	if (uart_create(&r->fm.m, UART_COM1_PORT, UART_COM1_IRQ, NULL, &r->uart) ||
	    pci_bus_create(&r->fm.m, &r->pci) || rtc_create(&r->fm.m) || i8042_create(&r->fm.m) ||
	    acpi_pm_create(&r->fm.m) || debug_exit_create(&r->fm.m) ||
	    bench_devices_create(&r->fm.m) ||
	    virtio_rng_create(&env, &r->mmio_rng) ||
	    virtio_attach(&r->fm.m, r->pci, r->mmio_rng, TRANSPORT_MMIO) ||
	    virtio_rng_create(&env, &r->legacy_rng) ||
	    virtio_attach(&r->fm.m, r->pci, r->legacy_rng, TRANSPORT_MMIO_LEGACY) ||
	    virtio_rng_create(&env, &r->pci_rng) ||
	    virtio_attach(&r->fm.m, r->pci, r->pci_rng, TRANSPORT_PCI_TRANSITIONAL))
		abort();
}

static void rig_down(struct rig *r)
{
	fm_destroy(&r->fm);
}

/* ---- snapshots, as the VM takes them: every owner in order, "<name>.<n>" ---- */

static void section_name(struct fake_machine *f, int i, char *name)
{
	int n = 0;

	for (int j = 0; j < i; j++)
		n += !strcmp(f->states[j].ops->name, f->states[i].ops->name);
	snprintf(name, SNAP_NAME_MAX, "%s.%d", f->states[i].ops->name, n);
}

static int save_all(struct rig *r, struct err *e)
{
	struct snap_writer *w;
	int err = snap_writer_create(snap_tmp_path, "test", &w, e);

	for (int i = 0; i < r->fm.nstates && !err; i++) {
		char name[SNAP_NAME_MAX];

		section_name(&r->fm, i, name);
		snap_begin(w, name, r->fm.states[i].ops->version);
		err = r->fm.states[i].ops->save(r->fm.states[i].obj, w, e);
		if (!err)
			err = snap_end(w);
	}
	if (err) {
		snap_writer_abort(w);
		return err;
	}
	return snap_writer_finish(w, e);
}

/* Restores every owner of r from the file, after copying guest RAM from `from`. */
static int restore_all(struct rig *r, const struct rig *from, struct err *e)
{
	struct snap_file *f;
	int err = snap_open(snap_tmp_path, &f, e);

	if (err)
		return err;
	memcpy(r->fm.mem.map, from->fm.mem.map, r->fm.mem.map_size);
	for (int i = 0; i < r->fm.nstates && !err; i++) {
		char name[SNAP_NAME_MAX];
		struct snap_cursor c;

		section_name(&r->fm, i, name);
		err = snap_section(f, name, &c);
		if (!err)
			err = r->fm.states[i].ops->restore(r->fm.states[i].obj, &c, e);
	}
	if (!err && snap_unused_section(f))
		err = err_set(e, -EINVAL, "section %s left over", snap_unused_section(f));
	snap_close(f);
	return err;
}

/* Saves A, builds B and restores it from A's snapshot. */
static void snapshot_a_into_b(void)
{
	struct err e = { "" };

	CHECK_EQ(save_all(&A, &e), 0);
	rig_up(&B);
	CHECK_EQ(restore_all(&B, &A, &e), 0);
	if (e.msg[0])
		printf("#   %s\n", e.msg);
}

/* A copy of one saved section's bytes (len + 1 allocated, for a test that appends). */
static uint8_t *section_copy(const char *name, size_t *len)
{
	struct snap_file *f;
	struct snap_cursor c;
	struct err e;
	uint8_t *buf;

	if (snap_open(snap_tmp_path, &f, &e) || snap_section(f, name, &c))
		abort();
	buf = calloc(1, c.size + 1);
	memcpy(buf, c.data, c.size);
	*len = c.size;
	snap_close(f);
	return buf;
}

/* Restores r's owner of section name from buf (a crafted section). */
static int restore_one(struct rig *r, const char *name, const uint8_t *buf, size_t len,
		       struct err *e)
{
	for (int i = 0; i < r->fm.nstates; i++) {
		char n[SNAP_NAME_MAX];
		struct snap_cursor c = { .data = buf, .size = len };

		section_name(&r->fm, i, n);
		if (!strcmp(n, name))
			return r->fm.states[i].ops->restore(r->fm.states[i].obj, &c, e);
	}
	abort();
}

/* ---- the driver side ---- */

/* A driver's view of rings already laid out in r's RAM (after a restore: B's copy). */
static void drv_adopt(struct drv *d, struct rig *r, uint16_t size, uint64_t desc, uint64_t avail,
		      uint64_t used)
{
	memset(d, 0, sizeof(*d));
	d->mem = &r->fm.mem;
	d->size = size;
	d->desc_gpa = desc, d->avail_gpa = avail, d->used_gpa = used;
	d->desc = g2h(d->mem, desc, 16ULL * size);
	d->avail = g2h(d->mem, avail, 6 + 2ULL * size);
	d->used = g2h(d->mem, used, 6 + 8ULL * size);
	d->avail_idx = d->avail->idx;
}

/* Makes buffer i (zeroed, at buf + BUF_LEN * i) available; no kick. */
static void post(struct drv *d, uint64_t buf, uint16_t i)
{
	memset(g2h(d->mem, buf + BUF_LEN * i, BUF_LEN), 0, BUF_LEN);
	drv_desc(d, i, buf + BUF_LEN * i, BUF_LEN, VRING_DESC_F_WRITE, 0);
	drv_post(d, i);
}

static bool filled(struct drv *d, uint64_t buf, uint16_t i)
{
	return !guest_bytes_all(d->mem, buf + BUF_LEN * i, BUF_LEN, 0);
}

/* ---- virtio-mmio ---- */

static uint32_t mrd(struct rig *r, uint64_t base, uint32_t off)
{
	return (uint32_t)fm_read(&r->fm, false, base + off, 4);
}

static void mwr(struct rig *r, uint64_t base, uint32_t off, uint32_t v)
{
	fm_write(&r->fm, false, base + off, v, 4);
}

static void mmio_kick(struct rig *r, uint64_t base)
{
	uint32_t q = 0;

	CHECK(fm_guest_write(&r->fm, false, base + VIRTIO_MMIO_QUEUE_NOTIFY, &q, 4));
}

#define M_RING 0x10000ULL
#define M_BUF  0x40000ULL

/* A modern driver's bring-up of the slot-0 rng, queue 0 at M_RING. */
static void mmio_bring_up(struct rig *r, struct drv *d)
{
	drv_init(d, &r->fm.mem, QSIZE, M_RING, M_RING + 0x1000, M_RING + 0x2000);
	mwr(r, MMIO0, VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	mwr(r, MMIO0, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mwr(r, MMIO0, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	mwr(r, MMIO0, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	mwr(r, MMIO0, VIRTIO_MMIO_QUEUE_SEL, 0);
	mwr(r, MMIO0, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	mwr(r, MMIO0, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)d->desc_gpa);
	mwr(r, MMIO0, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)d->avail_gpa);
	mwr(r, MMIO0, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)d->used_gpa);
	mwr(r, MMIO0, VIRTIO_MMIO_QUEUE_READY, 1);
	mwr(r, MMIO0, VIRTIO_MMIO_STATUS, S_RUN);
	CHECK_EQ(mrd(r, MMIO0, VIRTIO_MMIO_STATUS), S_RUN);
}

/* The modern mmio rng: one request served before the snapshot, one made available (and kicked)
 * but not yet served when it was taken. After the restore the served one is not served again,
 * the pending one is, and a new one is served from where the ring left off. */
static void mmio_queue_carries_on(void)
{
	struct drv d;

	rig_up(&A);
	mmio_bring_up(&A, &d);
	post(&d, M_BUF, 0);
	mmio_kick(&A, MMIO0);
	CHECK(fm_run_ready(&A.fm, 4) >= 1);
	CHECK_EQ(d.used->idx, 1);
	CHECK_EQ(fm_irqfd_count(&A.fm, mmio_gsi[0]), 1);
	/* Pending at the snapshot: available and kicked, the loop has not run. */
	post(&d, M_BUF, 1);
	mmio_kick(&A, MMIO0);
	/* Non-default selectors and an unacknowledged interrupt. */
	mwr(&A, MMIO0, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	snapshot_a_into_b();

	CHECK_EQ(mrd(&B, MMIO0, VIRTIO_MMIO_STATUS), S_RUN);
	CHECK_EQ(mrd(&B, MMIO0, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_QUEUE);
	CHECK_EQ(mrd(&B, MMIO0, VIRTIO_MMIO_DEVICE_FEATURES), 1); /* the high word: VERSION_1 */
	CHECK_EQ(mrd(&B, MMIO0, VIRTIO_MMIO_QUEUE_READY), 1);
	drv_adopt(&d, &B, QSIZE, M_RING, M_RING + 0x1000, M_RING + 0x2000);
	CHECK_EQ(d.used->idx, 1);
	/* The pending request is served once, the served one not again. */
	CHECK(fm_run_ready(&B.fm, 4) >= 1);
	CHECK_EQ(d.used->idx, 2);
	CHECK_EQ(d.used->ring[1].id, 1);
	CHECK(filled(&d, M_BUF, 1));
	CHECK_EQ(fm_irqfd_count(&B.fm, mmio_gsi[0]), 1);
	/* A new request, through the notify ioeventfd of the new machine. */
	post(&d, M_BUF, 2);
	mmio_kick(&B, MMIO0);
	CHECK(fm_run_ready(&B.fm, 4) >= 1);
	CHECK_EQ(d.used->idx, 3);
	CHECK_EQ(d.used->ring[2].id, 2);
	CHECK(filled(&d, M_BUF, 2));
	CHECK_EQ(fm_run_ready(&B.fm, 4), 0); /* nothing served twice, nothing left */
	CHECK_EQ(d.used->idx, 3);
	rig_down(&B);
	rig_down(&A);
}

#define L_PFN  0x20ULL   /* legacy rings at 0x20000 */
#define L_BUF  0x48000ULL

/* The legacy mmio rng: QueuePFN, page size and alignment come back, and its queue (rings
 * derived from the PFN) carries on. */
static void mmio_legacy_queue_carries_on(void)
{
	uint64_t base = L_PFN << 12, avail = base + 16 * QSIZE;
	uint64_t used = (avail + 6 + 2 * QSIZE + 4095) & ~4095ULL;
	struct drv d;

	rig_up(&A);
	drv_init(&d, &A.fm.mem, QSIZE, base, avail, used);
	mwr(&A, MMIO1, VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	mwr(&A, MMIO1, VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
	mwr(&A, MMIO1, VIRTIO_MMIO_QUEUE_SEL, 0);
	mwr(&A, MMIO1, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	mwr(&A, MMIO1, VIRTIO_MMIO_QUEUE_ALIGN, 4096);
	mwr(&A, MMIO1, VIRTIO_MMIO_QUEUE_PFN, L_PFN);
	mwr(&A, MMIO1, VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_DOK);
	post(&d, L_BUF, 0);
	mmio_kick(&A, MMIO1);
	CHECK(fm_run_ready(&A.fm, 4) >= 1);
	CHECK_EQ(d.used->idx, 1);
	snapshot_a_into_b();

	CHECK_EQ(mrd(&B, MMIO1, VIRTIO_MMIO_VERSION), 1);
	CHECK_EQ(mrd(&B, MMIO1, VIRTIO_MMIO_QUEUE_PFN), L_PFN);
	CHECK_EQ(mrd(&B, MMIO1, VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_DOK);
	drv_adopt(&d, &B, QSIZE, base, avail, used);
	fm_run_ready(&B.fm, 4);
	CHECK_EQ(d.used->idx, 1);
	post(&d, L_BUF, 1);
	mmio_kick(&B, MMIO1);
	CHECK(fm_run_ready(&B.fm, 4) >= 1);
	CHECK_EQ(d.used->idx, 2);
	CHECK_EQ(d.used->ring[1].id, 1);
	rig_down(&B);
	rig_down(&A);
}

/* ---- virtio-pci ---- */

static uint32_t cfg_rd(struct rig *r, uint32_t off, uint32_t len)
{
	return fm_cfg_read(&r->fm, PCI_SLOT, off, len);
}

static void cfg_wr(struct rig *r, uint32_t off, uint32_t v, uint32_t len)
{
	fm_cfg_write(&r->fm, PCI_SLOT, off, v, len);
}

#define C(field) (COMMON + offsetof(struct virtio_pci_common_cfg, field))
#define CSIZE(field) sizeof(((struct virtio_pci_common_cfg *)0)->field)

static uint64_t crd_at(struct rig *r, uint64_t bar4, uint32_t off, uint32_t len)
{
	return fm_read(&r->fm, false, bar4 + off, len);
}

static void cwr_at(struct rig *r, uint64_t bar4, uint32_t off, uint64_t v, uint32_t len)
{
	fm_write(&r->fm, false, bar4 + off, v, len);
}

#define crd(r, bar, field) crd_at(r, bar, C(field), CSIZE(field))
#define cwr(r, bar, field, v) cwr_at(r, bar, C(field), (v), CSIZE(field))

#define P_RING 0x30000ULL
#define P_BUF  0x50000ULL
#define NEWBAR4 0x2000000000ULL   /* where the guest moves BAR 4 (64-bit, 32 KiB aligned) */

static void pci_kick(struct rig *r, uint64_t bar4)
{
	uint16_t q = 0;

	CHECK(fm_guest_write(&r->fm, false, bar4 + NOTIFY, &q, 2));
}

/* The modern interface of the transitional rng: MSI-X on with both vectors routed, BAR 4 moved
 * by the guest, a request served. The restored device has BAR 4 (and its notify ioeventfd)
 * where the guest put it, its MSI-X table and routes, its common config, and serves the next
 * request through the moved notify address with an interrupt on the queue's vector. */
static void pci_msix_and_moved_bar(void)
{
	uint64_t bar4, oldbar4;
	uint8_t msix_cap;
	struct drv d;

	rig_up(&A);
	bar4 = oldbar4 = fm_bar_addr(&A.fm, PCI_SLOT, 4);
	CHECK(oldbar4 != NEWBAR4);
	/* The guest moves BAR 4 (decoding off while it does, as Linux does). */
	cfg_wr(&A, PCI_COMMAND, PCI_COMMAND_IO, 2);
	cfg_wr(&A, PCI_BASE_ADDRESS_4, (uint32_t)NEWBAR4 | PCI_BASE_ADDRESS_MEM_TYPE_64, 4);
	cfg_wr(&A, PCI_BASE_ADDRESS_5, (uint32_t)(NEWBAR4 >> 32), 4);
	cfg_wr(&A, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	CHECK_EQ(fm_bar_addr(&A.fm, PCI_SLOT, 4), NEWBAR4);
	CHECK(fm_ioeventfd_at(&A.fm, NEWBAR4 + NOTIFY, false) != NULL);
	CHECK(fm_ioeventfd_at(&A.fm, bar4 + NOTIFY, false) == NULL);
	bar4 = NEWBAR4;
	msix_cap = fm_find_cap(&A.fm, PCI_SLOT, PCI_CAP_ID_MSIX, -1);
	for (int v = 0; v < 2; v++) {
		cwr_at(&A, bar4, TABLE + 16 * v + PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee00000 + 0x1000 * v, 4);
		cwr_at(&A, bar4, TABLE + 16 * v + PCI_MSIX_ENTRY_UPPER_ADDR, 0, 4);
		cwr_at(&A, bar4, TABLE + 16 * v + PCI_MSIX_ENTRY_DATA, 0x40 + v, 4);
		cwr_at(&A, bar4, TABLE + 16 * v + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
	}
	cfg_wr(&A, msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	drv_init(&d, &A.fm.mem, QSIZE, P_RING, P_RING + 0x1000, P_RING + 0x2000);
	cwr(&A, bar4, device_status, S_ACK | S_DRV);
	cwr(&A, bar4, guest_feature_select, 1);
	cwr(&A, bar4, guest_feature, 1); /* VERSION_1 */
	cwr(&A, bar4, device_status, S_ACK | S_DRV | S_FOK);
	cwr(&A, bar4, msix_config, 0);
	cwr(&A, bar4, queue_select, 0);
	cwr(&A, bar4, queue_size, QSIZE);
	cwr(&A, bar4, queue_msix_vector, 1);
	cwr_at(&A, bar4, C(queue_desc_lo), d.desc_gpa, 8);
	cwr_at(&A, bar4, C(queue_avail_lo), d.avail_gpa, 8);
	cwr_at(&A, bar4, C(queue_used_lo), d.used_gpa, 8);
	cwr(&A, bar4, queue_enable, 1);
	cwr(&A, bar4, device_status, S_RUN);
	post(&d, P_BUF, 0);
	pci_kick(&A, bar4);
	CHECK(fm_run_ready(&A.fm, 4) >= 1);
	CHECK_EQ(d.used->idx, 1);
	CHECK_EQ(fm_irqfd_count(&A.fm, MSI_GSI0 + 1), 1);
	cwr(&A, bar4, guest_feature_select, 1);
	snapshot_a_into_b();

	/* BAR 4 and its notify ioeventfd where the guest put them, not where a new device has
	 * them. */
	CHECK_EQ(fm_bar_addr(&B.fm, PCI_SLOT, 4), NEWBAR4);
	CHECK(fm_ioeventfd_at(&B.fm, NEWBAR4 + NOTIFY, false) != NULL);
	CHECK(fm_ioeventfd_at(&B.fm, oldbar4 + NOTIFY, false) == NULL);
	CHECK_EQ(fm_read(&B.fm, false, oldbar4 + C(device_status), 1), 0xff); /* unmapped now */
	CHECK_EQ(cfg_rd(&B, PCI_COMMAND, 2) & PCI_COMMAND_MASTER, PCI_COMMAND_MASTER);
	CHECK_EQ(cfg_rd(&B, msix_cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE,
		 PCI_MSIX_FLAGS_ENABLE);
	/* The common config and the MSI-X table read back as saved. */
	CHECK_EQ(crd(&B, bar4, device_status), S_RUN);
	CHECK_EQ(crd(&B, bar4, msix_config), 0);
	CHECK_EQ(crd(&B, bar4, queue_msix_vector), 1);
	CHECK_EQ(crd(&B, bar4, queue_size), QSIZE);
	CHECK_EQ(crd(&B, bar4, queue_enable), 1);
	CHECK_EQ(crd_at(&B, bar4, C(queue_desc_lo), 8), P_RING);
	CHECK_EQ(crd_at(&B, bar4, C(queue_used_lo), 8), P_RING + 0x2000);
	CHECK_EQ(crd(&B, bar4, guest_feature_select), 1);
	CHECK_EQ(crd(&B, bar4, guest_feature), 1);
	CHECK_EQ(crd_at(&B, bar4, TABLE + 16 + PCI_MSIX_ENTRY_DATA, 4), 0x41);
	/* Each unmasked vector's GSI routed to its entry in the new machine. */
	CHECK(B.fm.msi[MSI_GSI0].set && B.fm.msi[MSI_GSI0 + 1].set);
	CHECK_EQ(B.fm.msi[MSI_GSI0 + 1].addr, 0xfee01000);
	CHECK_EQ(B.fm.msi[MSI_GSI0 + 1].data, 0x41);
	/* The next request: through the moved notify address, delivered on vector 1, no INTx. */
	drv_adopt(&d, &B, QSIZE, P_RING, P_RING + 0x1000, P_RING + 0x2000);
	fm_run_ready(&B.fm, 4);
	CHECK_EQ(d.used->idx, 1);
	post(&d, P_BUF, 1);
	pci_kick(&B, bar4);
	CHECK(fm_run_ready(&B.fm, 4) >= 1);
	CHECK_EQ(d.used->idx, 2);
	CHECK_EQ(d.used->ring[1].id, 1);
	CHECK(filled(&d, P_BUF, 1));
	CHECK_EQ(fm_irqfd_count(&B.fm, MSI_GSI0 + 1), 1);
	CHECK_EQ(fm_line(&B.fm, INTX_GSI), 0);
	rig_down(&B);
	rig_down(&A);
}

static uint32_t lrd(struct rig *r, uint32_t off, uint32_t len)
{
	return (uint32_t)fm_read(&r->fm, true, LEGACY_IO + off, len);
}

static void lwr(struct rig *r, uint32_t off, uint32_t v, uint32_t len)
{
	fm_write(&r->fm, true, LEGACY_IO + off, v, len);
}

#define LP_PFN 0x60ULL   /* legacy virtio-pci rings at 0x60000 (4096-aligned, queue max size) */
#define LP_BUF 0x70000ULL

/* The legacy interface of the transitional rng, MSI-X off: an interrupt raised and not yet
 * acknowledged when the snapshot is taken leaves INTx asserted in the restored machine until
 * the driver reads the ISR; the queue (rings from the PFN) carries on. */
static void pci_legacy_intx_pending(void)
{
	uint16_t qmax, q = 0;
	uint64_t base = LP_PFN << 12, avail, used;
	struct drv d;

	rig_up(&A);
	lwr(&A, VIRTIO_PCI_STATUS, S_ACK | S_DRV, 1);
	lwr(&A, VIRTIO_PCI_QUEUE_SEL, 0, 2);
	qmax = lrd(&A, VIRTIO_PCI_QUEUE_NUM, 2);
	avail = base + 16ULL * qmax;
	used = (avail + 6 + 2ULL * qmax + 4095) & ~4095ULL;
	drv_init(&d, &A.fm.mem, qmax, base, avail, used);
	lwr(&A, VIRTIO_PCI_QUEUE_PFN, LP_PFN, 4);
	lwr(&A, VIRTIO_PCI_STATUS, S_ACK | S_DRV | S_DOK, 1);
	post(&d, LP_BUF, 0);
	CHECK(fm_guest_write(&A.fm, true, LEGACY_IO + VIRTIO_PCI_QUEUE_NOTIFY, &q, 2));
	CHECK(fm_run_ready(&A.fm, 4) >= 1);
	CHECK_EQ(d.used->idx, 1);
	CHECK_EQ(fm_line(&A.fm, INTX_GSI), 1);
	snapshot_a_into_b();

	CHECK_EQ(fm_line(&B.fm, INTX_GSI), 1);
	CHECK_EQ(lrd(&B, VIRTIO_PCI_QUEUE_PFN, 4), LP_PFN);
	CHECK_EQ(lrd(&B, VIRTIO_PCI_STATUS, 1), S_ACK | S_DRV | S_DOK);
	CHECK_EQ(lrd(&B, VIRTIO_PCI_ISR, 1), VIRTIO_ISR_QUEUE);
	CHECK_EQ(fm_line(&B.fm, INTX_GSI), 0);
	drv_adopt(&d, &B, qmax, base, avail, used);
	fm_run_ready(&B.fm, 4);
	CHECK_EQ(d.used->idx, 1);
	post(&d, LP_BUF, 1);
	CHECK(fm_guest_write(&B.fm, true, LEGACY_IO + VIRTIO_PCI_QUEUE_NOTIFY, &q, 2));
	CHECK(fm_run_ready(&B.fm, 4) >= 1);
	CHECK_EQ(d.used->idx, 2);
	CHECK_EQ(fm_line(&B.fm, INTX_GSI), 1);
	rig_down(&B);
	rig_down(&A);
}

/* ---- the legacy devices ---- */

static uint8_t pin(struct rig *r, uint16_t port)
{
	return (uint8_t)fm_read(&r->fm, true, port, 1);
}

static void pout(struct rig *r, uint16_t port, uint8_t v)
{
	fm_write(&r->fm, true, port, v, 1);
}

#define COM1 UART_COM1_PORT

/* Every UART register, the bytes still in the receive FIFO in order, the pending interrupts
 * and the IRQ line. */
static void uart_registers_and_fifo(void)
{
	struct console_sink sink;

	rig_up(&A);
	pout(&A, COM1 + 3, 0x80);           /* DLAB */
	pout(&A, COM1 + 0, 0x01);           /* 115200 baud */
	pout(&A, COM1 + 1, 0x00);
	pout(&A, COM1 + 3, 0x1b);           /* 8E1 */
	pout(&A, COM1 + 1, 0x03);           /* RDA and THRE interrupts: THRE pending at once */
	pout(&A, COM1 + 2, 0x01);           /* FIFO on */
	pout(&A, COM1 + 4, 0x0b);           /* DTR, RTS, OUT2 */
	pout(&A, COM1 + 7, 0x5a);
	sink = uart_console_sink(A.uart);
	CHECK_EQ(sink.receive(sink.dev, (const uint8_t *)"xyz", 3), 3);
	CHECK_EQ(pin(&A, COM1 + 0), 'x');
	CHECK_EQ(fm_line(&A.fm, UART_COM1_IRQ), 1);
	snapshot_a_into_b();

	CHECK_EQ(fm_line(&B.fm, UART_COM1_IRQ), 1);
	CHECK_EQ(pin(&B, COM1 + 3), 0x1b);
	CHECK_EQ(pin(&B, COM1 + 4), 0x0b);
	CHECK_EQ(pin(&B, COM1 + 7), 0x5a);
	CHECK_EQ(pin(&B, COM1 + 1), 0x03);
	CHECK_EQ(pin(&B, COM1 + 5) & 0x01, 0x01);   /* data ready */
	CHECK_EQ(pin(&B, COM1 + 2), 0xc4);          /* FIFO on, RDA first */
	CHECK_EQ(pin(&B, COM1 + 0), 'y');
	CHECK_EQ(pin(&B, COM1 + 0), 'z');
	CHECK_EQ(pin(&B, COM1 + 5) & 0x01, 0);
	CHECK_EQ(pin(&B, COM1 + 2), 0xc2);          /* then the THRE still pending */
	CHECK_EQ(pin(&B, COM1 + 2), 0xc1);          /* acknowledged by that read */
	CHECK_EQ(fm_line(&B.fm, UART_COM1_IRQ), 0);
	pout(&B, COM1 + 3, 0x9b);
	CHECK_EQ(pin(&B, COM1 + 0), 0x01);          /* the divisor */
	CHECK_EQ(pin(&B, COM1 + 1), 0x00);
	rig_down(&B);
	rig_down(&A);
}

static void rtc_cmos_and_index(void)
{
	rig_up(&A);
	pout(&A, RTC_PORT, 0x21);
	pout(&A, RTC_PORT + 1, 0xa5);
	pout(&A, RTC_PORT, 0x0b);
	pout(&A, RTC_PORT + 1, 0x06);        /* status B: binary, 24-hour */
	pout(&A, RTC_PORT, 0x20);
	pout(&A, RTC_PORT + 1, 0x5a);        /* the index stays at 0x20 */
	snapshot_a_into_b();

	CHECK_EQ(pin(&B, RTC_PORT + 1), 0x5a);
	pout(&B, RTC_PORT, 0x21);
	CHECK_EQ(pin(&B, RTC_PORT + 1), 0xa5);
	pout(&B, RTC_PORT, 0x0b);
	CHECK_EQ(pin(&B, RTC_PORT + 1), 0x06);
	pout(&B, RTC_PORT, 0x0d);
	CHECK_EQ(pin(&B, RTC_PORT + 1), 0x80); /* status D: not from the file */
	rig_down(&B);
	rig_down(&A);
}

/* The output buffer's byte, a command waiting for its data byte, the IRQ line. */
static void i8042_buffer_and_pending_command(void)
{
	rig_up(&A);
	pout(&A, I8042_CMD_PORT, 0x20);      /* read the command byte: 0x45 queued */
	pout(&A, I8042_CMD_PORT, 0x60);      /* write the command byte: waits for data */
	CHECK_EQ(fm_line(&A.fm, 1), 1);
	snapshot_a_into_b();

	CHECK_EQ(fm_line(&B.fm, 1), 1);
	CHECK_EQ(pin(&B, I8042_CMD_PORT) & 0x09, 0x09); /* output full, last write a command */
	CHECK_EQ(pin(&B, I8042_DATA_PORT), 0x45);
	CHECK_EQ(fm_line(&B.fm, 1), 0);
	pout(&B, I8042_DATA_PORT, 0x44);     /* the data byte of the pending 0x60 */
	pout(&B, I8042_CMD_PORT, 0x20);
	CHECK_EQ(pin(&B, I8042_DATA_PORT), 0x44);
	rig_down(&B);
	rig_down(&A);
}

/* The bench probes' scratch word (--bench-devices), read back by the guest. */
static void bench_scratch(void)
{
	rig_up(&A);
	fm_write(&A.fm, true, BENCH_PIO_PORT, 0xc0ffee, 4);
	snapshot_a_into_b();
	CHECK_EQ(fm_read(&B.fm, true, BENCH_PIO_PORT, 4), 0xc0ffee);
	CHECK_EQ(fm_read(&B.fm, false, BENCH_MMIO_ADDR, 4), 0xc0ffee);
	rig_down(&B);
	rig_down(&A);
}

/* ---- crafted sections ---- */

/* Offsets in a modern virtio-mmio rng's section (mmio.c, then virtio.c's core part). */
#define MO_DEVICE_ID 25
#define MO_STATUS    29
#define MO_FEATURES  31
#define MO_Q_SIZE    53
#define MO_Q_DESC    56

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Restores a fresh B's mmio rng from A's section, mutated by fn; returns the error. */
static int try_mmio(const uint8_t *orig, size_t len, void (*fn)(uint8_t *buf, size_t *len),
		    struct err *e)
{
	uint8_t *buf = calloc(1, len + 1);
	size_t n = len;
	int err;

	memcpy(buf, orig, len);
	if (fn)
		fn(buf, &n);
	rig_up(&B);
	memcpy(B.fm.mem.map, A.fm.mem.map, B.fm.mem.map_size);
	e->msg[0] = 0;
	err = restore_one(&B, "virtio-mmio.0", buf, n, e);
	rig_down(&B);
	free(buf);
	return err;
}

static void other_device(uint8_t *b, size_t *n) { (void)n; b[MO_DEVICE_ID] = VIRTIO_ID_NET; }
static void odd_size(uint8_t *b, size_t *n) { (void)n; put16(b + MO_Q_SIZE, 3); }
static void big_size(uint8_t *b, size_t *n) { (void)n; put16(b + MO_Q_SIZE, 512); }
static void ring_outside(uint8_t *b, size_t *n) { (void)n; put64(b + MO_Q_DESC, RAM); }
static void unknown_status(uint8_t *b, size_t *n) { (void)n; b[MO_STATUS] |= 0x20; }
static void unoffered(uint8_t *b, size_t *n) { (void)n; b[MO_FEATURES + 7] |= 0x80; }
static void truncated(uint8_t *b, size_t *n) { (void)b; (*n)--; }
static void longer(uint8_t *b, size_t *n) { (void)b; (*n)++; }

static void crafted_virtio_sections_refused(void)
{
	static const struct { const char *what; void (*fn)(uint8_t *, size_t *); } bad[] = {
		{ "another device", other_device }, { "queue size 3", odd_size },
		{ "queue size 512", big_size }, { "ring outside RAM", ring_outside },
		{ "unknown status bit", unknown_status }, { "feature not offered", unoffered },
		{ "truncated", truncated }, { "trailing byte", longer },
	};
	struct err e;
	uint8_t *sec;
	size_t len;
	struct drv d;

	rig_up(&A);
	mmio_bring_up(&A, &d);
	post(&d, M_BUF, 0);
	mmio_kick(&A, MMIO0);
	fm_run_ready(&A.fm, 4);
	CHECK_EQ(save_all(&A, &e), 0);
	sec = section_copy("virtio-mmio.0", &len);
	/* The layout this test assumes: the device ID and queue 0's size where expected. */
	CHECK_EQ(sec[MO_DEVICE_ID], VIRTIO_ID_RNG);
	CHECK_EQ(sec[MO_Q_SIZE], QSIZE);
	/* Unchanged, the section restores: the refusals below are for the change alone. */
	CHECK_EQ(try_mmio(sec, len, NULL, &e), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int err = try_mmio(sec, len, bad[i].fn, &e);

		if (err >= 0 || strncmp(e.msg, "snapshot: ", 10))
			printf("#   %s: %d, '%s'\n", bad[i].what, err, e.msg);
		CHECK(err == -EINVAL || err == -EBADMSG);
		CHECK(!strncmp(e.msg, "snapshot: ", 10));
	}
	free(sec);
	rig_down(&A);
}

/* Offsets in the virtio-pci section: the PCI function (u16 count, the writable bytes, u8 BAR
 * mask, u64 per BAR), then MSI-X (u16 nvec, 16 bytes a vector, u64 PBA), then the register
 * file (u8 transitional, u8 legacy, u32 dfselect, u32 gfselect, u16 queue_sel, u16
 * config_vector, ...). */
struct pci_offsets { size_t bar4, pba, config_vector; };

static struct pci_offsets pci_layout(const uint8_t *s)
{
	uint16_t n, nvec;
	struct pci_offsets o;
	size_t msix;

	memcpy(&n, s, 2);
	/* BARs 0 (I/O) and 4 (64-bit) of a transitional device, in that order. */
	CHECK_EQ(s[2 + n], (1 << 0) | (1 << 4));
	o.bar4 = 3 + n + 8;
	msix = 3 + n + 16;
	memcpy(&nvec, s + msix, 2);
	CHECK_EQ(nvec, 2);
	o.pba = msix + 2 + 16 * nvec;
	o.config_vector = o.pba + 8 + 1 + 1 + 4 + 4 + 2;
	return o;
}

static void crafted_pci_sections_refused(void)
{
	struct pci_offsets o;
	struct err e;
	uint8_t *sec, *buf;
	size_t len;
	uint64_t bar4;
	uint16_t vec;
	int err;

	rig_up(&A);
	CHECK_EQ(save_all(&A, &e), 0);
	sec = section_copy("virtio-pci.0", &len);
	o = pci_layout(sec);
	memcpy(&bar4, sec + o.bar4, 8);
	CHECK_EQ(bar4, fm_bar_addr(&A.fm, PCI_SLOT, 4));
	memcpy(&vec, sec + o.config_vector, 2);
	CHECK_EQ(vec, VIRTIO_MSI_NO_VECTOR);
	buf = malloc(len);
	for (int i = 0; i < 4; i++) {
		memcpy(buf, sec, len);
		if (i == 1)
			put16(buf + o.config_vector, 2);        /* the table has vectors 0 and 1 */
		else if (i == 2)
			put64(buf + o.bar4, bar4 + 0x10);       /* not aligned to its 32 KiB */
		else if (i == 3)
			buf[o.pba] = 0x04;                      /* vector 2 pending */
		rig_up(&B);
		e.msg[0] = 0;
		err = restore_one(&B, "virtio-pci.0", buf, len, &e);
		if (i == 0) {
			CHECK_EQ(err, 0);
		} else {
			if (err != -EINVAL)
				printf("#   case %d: %d '%s'\n", i, err, e.msg);
			CHECK_EQ(err, -EINVAL);
			CHECK(!strncmp(e.msg, "snapshot: virtio-pci virtio-rng: ", 33));
		}
		rig_down(&B);
	}
	free(buf);
	free(sec);
	rig_down(&A);
}

static void crafted_legacy_sections_refused(void)
{
	struct err e;
	uint8_t *sec, *buf;
	size_t len;

	rig_up(&A);
	CHECK_EQ(save_all(&A, &e), 0);
	/* UART: IER with bits the register cannot hold; a FIFO count beyond 16. */
	sec = section_copy("uart.0", &len);
	buf = malloc(len + 32);
	for (int i = 0; i < 3; i++) {
		size_t n = len;

		memcpy(buf, sec, len);
		if (i == 1)
			buf[0] = 0xff;
		if (i == 2) {
			buf[10] = 17;
			memset(buf + len, 'a', 17);
			n = len + 17;
		}
		rig_up(&B);
		e.msg[0] = 0;
		CHECK_EQ(restore_one(&B, "uart.0", buf, n, &e), i ? -EINVAL : 0);
		CHECK(!i || !strncmp(e.msg, "snapshot: uart: ", 16));
		rig_down(&B);
	}
	free(buf);
	free(sec);
	/* i8042: a pending command that is not one; RTC: an index beyond the 128 bytes. */
	sec = section_copy("i8042.0", &len);
	sec[2] = 0xaa;
	rig_up(&B);
	CHECK_EQ(restore_one(&B, "i8042.0", sec, len, &e), -EINVAL);
	rig_down(&B);
	free(sec);
	sec = section_copy("rtc.0", &len);
	sec[0] = 0x80;
	rig_up(&B);
	CHECK_EQ(restore_one(&B, "rtc.0", sec, len, &e), -EINVAL);
	CHECK_EQ(restore_one(&B, "rtc.0", sec, len - 1, &e), -EBADMSG);
	rig_down(&B);
	free(sec);
	rig_down(&A);
}

/* The owners a machine registers, in order, and their section names. */
static void owners_in_order(void)
{
	static const char *const names[] = {
		"uart.0", "pci.0", "rtc.0", "i8042.0", "bench.0", "virtio-mmio.0", "virtio-mmio.1",
		"virtio-pci.0",
	};

	rig_up(&A);
	CHECK_EQ(A.fm.nstates, ARRAY_SIZE(names));
	for (int i = 0; i < A.fm.nstates && i < (int)ARRAY_SIZE(names); i++) {
		char n[SNAP_NAME_MAX];

		section_name(&A.fm, i, n);
		CHECK(!strcmp(n, names[i]));
	}
	rig_down(&A);
}

/* Device warnings about the crafted sections are expected: kept off the test's output. */
static void setup(void)
{
	log_set_level(LOG_ERROR);
	snap_tmp_setup();
}

TEST_MAIN("snapshot_devices",
	  T(setup), T(owners_in_order), T(mmio_queue_carries_on),
	  T(mmio_legacy_queue_carries_on), T(pci_msix_and_moved_bar), T(pci_legacy_intx_pending),
	  T(uart_registers_and_fifo), T(rtc_cmos_and_index), T(i8042_buffer_and_pending_command),
	  T(bench_scratch),
	  T(crafted_virtio_sections_refused), T(crafted_pci_sections_refused),
	  T(crafted_legacy_sections_refused), T(snap_tmp_cleanup))

/* Races between vCPUs (and the event loop) on the virtio transports, MSI-X and the PCI bus:
 * threads hammer selectors, enables, vectors, BARs and the ISR for a fixed number of accesses,
 * as a guest's vCPUs can, while others read what those selectors select. Each read must return
 * something the register can hold (a selector's two values are never mixed), and at the end
 * the device must be in a state the accesses explain (queue 0 untouched by out-of-range
 * selects, INTx high exactly while the ISR is non-zero). Run under ThreadSanitizer
 * (make SAN=thread) they also check that every access is properly locked.
 *
 * Threads never CHECK (the harness is single-threaded): they count what they saw in atomics,
 * and the test checks the counts after joining them. */
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <stdatomic.h>

#include "devices/pci.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"
#include "tests/unit/fake_machine.h"
#include "tests/unit/test.h"
#include "tests/unit/vring_driver.h"
#include "vmm/layout.h"
#include "vmm/log.h"

#define RAM      (16 * 1024 * 1024ULL)
#define ITERS    200000     /* accesses per thread in the hammering tests */
#define ROUNDS   20000      /* rounds of the lock-step ISR tests */
#define QMAX     256
#define QSIZE    16
#define RING     0x10000ULL /* desc; avail at + 0x1000, used at + 0x2000 */
#define BUF      0x40000ULL
#define BUF_LEN  64
#define GUARD    0x1000     /* bytes checked untouched on either side of the buffers */
#define MMIO     VIRTIO_MMIO_BASE
#define SLOT     1
#define INTX_GSI 17
#define MSI_GSI0 24
#define NO_VEC   VIRTIO_MSI_NO_VECTOR
#define LEGACY   0xc000
#define F_V1     (1ULL << VIRTIO_F_VERSION_1)
#define F_RING   ((1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_RING_F_EVENT_IDX))

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK

static struct fake_machine fm;
static struct pci_bus *bus;
static struct virtio_dev *dev;
static uint64_t bar4;
static uint8_t msix_cap, cfg_cap;
static struct drv drv;

/* What the threads saw that they must not have. */
static atomic_ulong bad, bad_value;

static void saw_bad(uint64_t v)
{
	if (atomic_fetch_add(&bad, 1) == 0)
		atomic_store(&bad_value, v);
}

#define EXPECT_CLEAN() do { \
	CHECK_EQ(atomic_load(&bad), 0); \
	if (atomic_load(&bad)) \
		printf("#   first bad value: 0x%lx\n", atomic_load(&bad_value)); \
} while (0)

/* ---- threads ---- */

typedef void (*racer_fn)(int id);

static pthread_barrier_t start;

struct racer {
	racer_fn fn;
	int id;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(&start);
	r->fn(r->id);
	return NULL;
}

/* Runs fns[i](i) on n threads, started together; returns when all are done. */
static void race(int n, const racer_fn *fns)
{
	pthread_t t[8];
	struct racer r[8];

	atomic_store(&bad, 0);
	pthread_barrier_init(&start, NULL, n);
	for (int i = 0; i < n; i++) {
		r[i] = (struct racer){ fns[i], i };
		if (pthread_create(&t[i], NULL, racer_main, &r[i]))
			abort();
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
}

/* The event loop on a thread of its own, as in mica. */
static pthread_t loop_thread;

static void *loop_main(void *arg)
{
	(void)arg;
	evloop_run(&fm.loop);
	return NULL;
}

static void loop_start(void)
{
	if (pthread_create(&loop_thread, NULL, loop_main, NULL))
		abort();
}

static void loop_stop(void)
{
	evloop_stop(&fm.loop);
	pthread_join(loop_thread, NULL);
}

/* ---- the buses ---- */

static uint32_t m32(uint64_t off)
{
	uint32_t v = 0;

	bus_read(&fm.mmio, MMIO + off, &v, 4);
	return v;
}

static void mw32(uint64_t off, uint32_t v)
{
	bus_write(&fm.mmio, MMIO + off, &v, 4);
}

static uint64_t rd(uint64_t off, uint32_t len)
{
	return fm_read(&fm, false, bar4 + off, len);
}

static void wr(uint64_t off, uint64_t v, uint32_t len)
{
	fm_write(&fm, false, bar4 + off, v, len);
}

#define C(field) offsetof(struct virtio_pci_common_cfg, field)
#define CSIZE(field) sizeof(((struct virtio_pci_common_cfg *)0)->field)
#define crd(field) rd(C(field), CSIZE(field))
#define cwr(field, v) wr(C(field), (v), CSIZE(field))

static uint32_t lrd(uint32_t off, uint32_t len)
{
	return (uint32_t)fm_read(&fm, true, LEGACY + off, len);
}

static void lwr(uint32_t off, uint32_t v, uint32_t len)
{
	fm_write(&fm, true, LEGACY + off, v, len);
}

static uint32_t cfg_rd(uint32_t off, uint32_t len)
{
	return fm_cfg_read(&fm, SLOT, off, len);
}

static void cfg_wr(uint32_t off, uint32_t v, uint32_t len)
{
	fm_cfg_write(&fm, SLOT, off, v, len);
}

static uint8_t dev_isr(void)
{
	return drv_isr(dev);
}

/* ---- set-up ---- */

static void machine_up(void)
{
	log_set_level(LOG_ERROR);
	fm_init(&fm, RAM);
}

static void setup_mmio(bool legacy)
{
	machine_up();
	if (virtio_rng_create(&(struct virtio_env){ &fm.mem, &fm.loop }, &dev) ||
	    virtio_mmio_attach(&fm.m, dev, legacy) || machine_own(&fm.m, dev, virtio_dev_free))
		abort();
}

static void setup_pci(bool transitional)
{
	machine_up();
	if (pci_bus_create(&fm.m, &bus) ||
	    virtio_rng_create(&(struct virtio_env){ &fm.mem, &fm.loop }, &dev) ||
	    virtio_pci_attach(bus, &fm.m, dev, transitional) ||
	    machine_own(&fm.m, dev, virtio_dev_free))
		abort();
	bar4 = (cfg_rd(PCI_BASE_ADDRESS_4, 4) & ~0xfULL) | (uint64_t)cfg_rd(PCI_BASE_ADDRESS_5, 4) << 32;
	msix_cap = fm_find_cap(&fm, SLOT, PCI_CAP_ID_MSIX, -1);
	cfg_cap = fm_find_cap(&fm, SLOT, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);
}

static void msix_on(void)
{
	for (int v = 0; v < 2; v++) {
		wr(0x4000 + 16 * v, 0xfee00000 + 0x1000 * v, 8);
		wr(0x4000 + 16 * v + 8, 0x40 + v, 8); /* data, and control 0: unmasked */
	}
	cfg_wr(msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
}

/* Queue 0's rings at RING and QSIZE buffers posted, each BUF_LEN bytes at BUF, with GUARD
 * bytes of 0xee around them (the device must never touch those). */
static void rings_with_buffers(void)
{
	drv_init(&drv, &fm.mem, QSIZE, RING, RING + 0x1000, RING + 0x2000);
	memset(g2h(&fm.mem, BUF - GUARD, QSIZE * BUF_LEN + 2 * GUARD), 0xee,
	       QSIZE * BUF_LEN + 2 * GUARD);
	for (uint16_t i = 0; i < QSIZE; i++) {
		drv_desc(&drv, i, BUF + BUF_LEN * i, BUF_LEN, VRING_DESC_F_WRITE, 0);
		drv_post(&drv, i);
	}
}

/* What the device may have done with those: written the buffers and the used ring only, each
 * used entry one of the buffers, whole. */
static void check_rings_and_buffers(void)
{
	uint16_t n = __atomic_load_n(&drv.used->idx, __ATOMIC_ACQUIRE);

	CHECK(guest_bytes_all(&fm.mem, BUF - GUARD, GUARD, 0xee));
	CHECK(guest_bytes_all(&fm.mem, BUF + QSIZE * BUF_LEN, GUARD, 0xee));
	CHECK(n <= QSIZE);
	for (uint16_t i = 0; i < n && i < QSIZE; i++) {
		CHECK(drv.used->ring[i].id < QSIZE);
		CHECK_EQ(drv.used->ring[i].len, BUF_LEN);
	}
	CHECK_EQ(drv_get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

static void mmio_bring_up(void)
{
	rings_with_buffers();
	mw32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	mw32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mw32(VIRTIO_MMIO_DRIVER_FEATURES, F_V1 >> 32);
	mw32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	mw32(VIRTIO_MMIO_QUEUE_SEL, 0);
	mw32(VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	mw32(VIRTIO_MMIO_QUEUE_DESC_LOW, RING);
	mw32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, RING + 0x1000);
	mw32(VIRTIO_MMIO_QUEUE_USED_LOW, RING + 0x2000);
	mw32(VIRTIO_MMIO_QUEUE_READY, 1);
	mw32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
}

/* The modern driver's bring-up through BAR 4 (from any thread: each access is one register). */
static void pci_bring_up(uint16_t vector)
{
	cwr(device_status, S_ACK | S_DRV);
	cwr(guest_feature_select, 1);
	cwr(guest_feature, F_V1 >> 32);
	cwr(device_status, S_ACK | S_DRV | S_FOK);
	cwr(queue_select, 0);
	cwr(queue_size, QSIZE);
	cwr(queue_msix_vector, vector);
	wr(C(queue_desc_lo), RING, 8);
	wr(C(queue_avail_lo), RING + 0x1000, 8);
	wr(C(queue_used_lo), RING + 0x2000, 8);
	cwr(queue_enable, 1);
	cwr(device_status, S_ACK | S_DRV | S_FOK | S_DOK);
}

/* An interrupt raised as the event loop does: under the device lock, a used buffer pushed,
 * then virtio_notify_used. Returns whether the queue was live. */
static bool raise_used(void)
{
	bool live;

	pthread_mutex_lock(&dev->lock);
	live = virtio_queue_live(dev, 0);
	if (live) {
		virtio_push(dev, 0, 0, 0);
		virtio_notify_used(dev, 0);
	}
	pthread_mutex_unlock(&dev->lock);
	return live;
}

/* ---- virtio-mmio ---- */

static const uint32_t bad_sels[] = { 1, 7, 8, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff };

static void mmio_select_writer(int id)
{
	for (int i = 0; i < ITERS; i++)
		mw32(VIRTIO_MMIO_QUEUE_SEL, (i + id) & 1 ? bad_sels[(i / 2) % 8] : 0);
}

/* Reads of the selected queue's registers: QueuePFN 0 or the one written, QueueNumMax 0 or the
 * maximum. */
static void mmio_legacy_reader(int id)
{
	(void)id;
	for (int i = 0; i < ITERS; i++) {
		uint32_t pfn = m32(VIRTIO_MMIO_QUEUE_PFN), max = m32(VIRTIO_MMIO_QUEUE_NUM_MAX);

		if (pfn != 0 && pfn != RING >> 12)
			saw_bad(pfn);
		if (max != 0 && max != QMAX)
			saw_bad(max);
	}
}

/* Writes to the selected queue that queue 0 (live) must ignore, as must any other. */
static void mmio_legacy_writer(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 4; i++) {
		mw32(VIRTIO_MMIO_QUEUE_NUM, 32);
		mw32(VIRTIO_MMIO_QUEUE_ALIGN, 64);
		mw32(VIRTIO_MMIO_QUEUE_PFN, 0x20);
		mw32(VIRTIO_MMIO_QUEUE_READY, 0);
	}
}

static void mmio_legacy_queue_sel(void)
{
	static const racer_fn fns[] = { mmio_select_writer, mmio_select_writer, mmio_legacy_reader,
					mmio_legacy_writer };

	setup_mmio(true);
	mw32(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
	mw32(VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	mw32(VIRTIO_MMIO_QUEUE_PFN, RING >> 12);
	race(4, fns);
	EXPECT_CLEAN();
	mw32(VIRTIO_MMIO_QUEUE_SEL, 0);
	CHECK_EQ(m32(VIRTIO_MMIO_QUEUE_PFN), RING >> 12);
	CHECK(drv_vq(dev, 0).ready);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, RING);
	CHECK_EQ(drv_vq(dev, 0).size, QSIZE);
	fm_destroy(&fm);
}

static void mmio_feature_select_writer(int id)
{
	static const uint32_t sels[] = { 0, 1, 2, 0xffffffff };

	for (int i = 0; i < ITERS; i++)
		mw32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, sels[(i + id) % 4]);
}

/* DeviceFeatures is one of the two words or 0; QueueReady 0/1; QueueNumMax 0 or the max. */
static void mmio_v2_reader(int id)
{
	(void)id;
	for (int i = 0; i < ITERS; i++) {
		uint32_t f = m32(VIRTIO_MMIO_DEVICE_FEATURES), r = m32(VIRTIO_MMIO_QUEUE_READY);
		uint32_t max = m32(VIRTIO_MMIO_QUEUE_NUM_MAX);

		if (f != (uint32_t)F_RING && f != (uint32_t)(F_V1 >> 32) && f != 0)
			saw_bad(f);
		if (r > 1)
			saw_bad(r);
		if (max != 0 && max != QMAX)
			saw_bad(max);
	}
}

static void mmio_v2_selectors(void)
{
	static const racer_fn fns[] = { mmio_select_writer, mmio_feature_select_writer,
					mmio_v2_reader, mmio_v2_reader };

	setup_mmio(false);
	mmio_bring_up();
	race(4, fns);
	EXPECT_CLEAN();
	CHECK(drv_vq(dev, 0).ready);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, RING);
	fm_destroy(&fm);
}

/* Queue enable/disable against notifications from vCPUs and kicks served by the event loop. */
static void mmio_ready_toggler(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 20; i++) {
		mw32(VIRTIO_MMIO_QUEUE_READY, 0);
		mw32(VIRTIO_MMIO_QUEUE_READY, 1);
	}
}

static void mmio_notifier(int id)
{
	uint32_t q = 0;

	for (int i = 0; i < ITERS / 4; i++) {
		if (id & 1)
			fm_guest_write(&fm, false, MMIO + VIRTIO_MMIO_QUEUE_NOTIFY, &q, 4);
		else
			mw32(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	}
}

static void mmio_enable_vs_notify(void)
{
	static const racer_fn fns[] = { mmio_ready_toggler, mmio_notifier, mmio_notifier };

	setup_mmio(false);
	mmio_bring_up();
	loop_start();
	race(3, fns);
	loop_stop();
	mw32(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	check_rings_and_buffers();
	CHECK_EQ(drv.used->idx, QSIZE);
	CHECK(atomic_load(&dev->stats.notifies) > 0);
	fm_destroy(&fm);
}

/* ---- virtio-pci ---- */

static void pci_select_writer(int id)
{
	static const uint16_t sels[] = { 1, 2, 8, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff };

	for (int i = 0; i < ITERS; i++)
		cwr(queue_select, (i + id) & 1 ? sels[(i / 2) % 8] : 0);
}

static void pci_feature_select_writer(int id)
{
	static const uint32_t sels[] = { 0, 1, 2, 0xffffffff };

	for (int i = 0; i < ITERS; i++)
		cwr(device_feature_select, sels[(i + id) % 4]);
}

/* queue_size 0 or queue 0's, vector NO_VECTOR or queue 0's (1), enable 0 or 1, the
 * descriptor address 0 or queue 0's; device_feature one of the words or 0. */
static void pci_queue_reader(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 2; i++) {
		uint64_t size = crd(queue_size), vec = crd(queue_msix_vector);
		uint64_t en = crd(queue_enable), desc = rd(C(queue_desc_lo), 8);
		uint64_t f = crd(device_feature);

		if (size != 0 && size != QSIZE)
			saw_bad(size);
		if (vec != NO_VEC && vec != 1)
			saw_bad(vec);
		if (en > 1)
			saw_bad(en);
		if (desc != 0 && desc != RING)
			saw_bad(desc);
		if (f != (uint32_t)F_RING && f != (uint32_t)(F_V1 >> 32) && f != 0)
			saw_bad(f);
	}
}

/* Writes queue 0 (live) must ignore, and one it takes unchanged (its vector). */
static void pci_queue_writer(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 4; i++) {
		cwr(queue_size, 64);
		cwr(queue_msix_vector, 1);
		cwr(queue_desc_lo, 0x20000);
		cwr(queue_enable, 1);
	}
}

static void pci_queue_select(void)
{
	static const racer_fn fns[] = { pci_select_writer, pci_select_writer, pci_queue_reader,
					pci_queue_writer, pci_feature_select_writer };

	setup_pci(false);
	rings_with_buffers();
	pci_bring_up(1);
	race(5, fns);
	EXPECT_CLEAN();
	cwr(queue_select, 0);
	CHECK_EQ(crd(queue_size), QSIZE);
	CHECK_EQ(crd(queue_msix_vector), 1);
	CHECK_EQ(rd(C(queue_desc_lo), 8), RING);
	CHECK(drv_vq(dev, 0).ready);
	fm_destroy(&fm);
}

/* The legacy BAR of a transitional device: its queue select against its PFN, size and vector
 * reads. */
static void legacy_select_writer(int id)
{
	static const uint16_t sels[] = { 1, 2, 8, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff };

	for (int i = 0; i < ITERS; i++)
		lwr(VIRTIO_PCI_QUEUE_SEL, (i + id) & 1 ? sels[(i / 2) % 8] : 0, 2);
}

static void legacy_reader(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 2; i++) {
		uint32_t pfn = lrd(VIRTIO_PCI_QUEUE_PFN, 4), num = lrd(VIRTIO_PCI_QUEUE_NUM, 2);
		uint32_t vec = lrd(VIRTIO_MSI_QUEUE_VECTOR, 2);

		if (pfn != 0 && pfn != RING >> 12)
			saw_bad(pfn);
		if (num != 0 && num != QMAX)
			saw_bad(num);
		if (vec != NO_VEC && vec != 1)
			saw_bad(vec);
	}
}

static void legacy_writer(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 2; i++) {
		lwr(VIRTIO_PCI_QUEUE_PFN, 0x20, 4);
		lwr(VIRTIO_MSI_QUEUE_VECTOR, 1, 2);
	}
}

static void pci_legacy_queue_select(void)
{
	static const racer_fn fns[] = { legacy_select_writer, legacy_select_writer, legacy_reader,
					legacy_writer };

	setup_pci(true);
	msix_on();
	lwr(VIRTIO_PCI_STATUS, S_ACK | S_DRV, 1);
	lwr(VIRTIO_PCI_QUEUE_PFN, RING >> 12, 4);
	lwr(VIRTIO_MSI_QUEUE_VECTOR, 1, 2);
	race(4, fns);
	EXPECT_CLEAN();
	lwr(VIRTIO_PCI_QUEUE_SEL, 0, 2);
	CHECK_EQ(lrd(VIRTIO_PCI_QUEUE_PFN, 4), RING >> 12);
	CHECK_EQ(lrd(VIRTIO_MSI_QUEUE_VECTOR, 2), 1);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, RING);
	fm_destroy(&fm);
}

/* Resets and bring-ups against notifications (BAR 4's notify area, and kicks through the
 * ioeventfd served by the event loop). */
static void pci_resetter(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 100; i++) {
		cwr(device_status, 0);
		pci_bring_up(NO_VEC);
	}
}

static void pci_notifier(int id)
{
	uint16_t q = 0;

	for (int i = 0; i < ITERS / 4; i++) {
		if (id & 1)
			fm_guest_write(&fm, false, bar4 + 0x3000, &q, 2);
		else
			wr(0x3000, 0, 2);
		if (!(i % 64))
			rd(0x1000, 1); /* the ISR: keeps INTx moving too */
	}
}

static void pci_enable_vs_notify(void)
{
	static const racer_fn fns[] = { pci_resetter, pci_notifier, pci_notifier };

	setup_pci(false);
	rings_with_buffers();
	pci_bring_up(NO_VEC);
	loop_start();
	race(3, fns);
	loop_stop();
	wr(0x3000, 0, 2);
	check_rings_and_buffers();
	CHECK_EQ(drv.used->idx, QSIZE);
	CHECK_EQ(fm_line(&fm, INTX_GSI), dev_isr() != 0);
	fm_destroy(&fm);
}

/* MSI-X vector writes against interrupts: only vectors the table has fire, never INTx. */
static atomic_ulong raised;

static void vector_writer(int id)
{
	static const uint16_t vecs[] = { 0, 1, 2, 0x8000, NO_VEC, 1 };

	(void)id;
	for (int i = 0; i < ITERS / 2; i++) {
		cwr(queue_msix_vector, vecs[i % 6]);
		cwr(msix_config, vecs[(i + 3) % 6]);
	}
}

static void mask_toggler(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 4; i++)
		wr(0x4000 + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, i & 1, 4);
}

static void raiser(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 4; i++) {
		if (i % 16) {
			atomic_fetch_add(&raised, raise_used());
		} else {
			pthread_mutex_lock(&dev->lock);
			virtio_config_changed(dev);
			pthread_mutex_unlock(&dev->lock);
			atomic_fetch_add(&raised, 1);
		}
	}
}

static void msix_vectors_vs_interrupts(void)
{
	static const racer_fn fns[] = { vector_writer, mask_toggler, raiser };
	uint64_t delivered;

	setup_pci(false);
	msix_on();
	rings_with_buffers();
	pci_bring_up(0);
	atomic_store(&raised, 0);
	race(3, fns);
	wr(0x4000 + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4); /* delivers what is pending */
	delivered = fm_irqfd_count(&fm, MSI_GSI0) + fm_irqfd_count(&fm, MSI_GSI0 + 1);
	CHECK(delivered > 0);
	CHECK(delivered <= atomic_load(&raised));
	CHECK_EQ(rd(0x5000, 8), 0);
	CHECK_EQ(fm.irq_raises[INTX_GSI], 0);
	for (int g = 0; g < FM_GSIS; g++)
		CHECK(!fm.msi[g].set || g == MSI_GSI0 || g == MSI_GSI0 + 1);
	fm_destroy(&fm);
}

/* ---- the ISR against interrupts (INTx): lock-step rounds ---- */

static pthread_barrier_t round_start, round_end;
static atomic_ulong seen_isr[ROUNDS];

/* Reads the ISR one of three ways: BAR 4, the legacy BAR, the PCI_CFG window. */
static uint8_t isr_read(int way)
{
	switch (way) {
	case 0: return (uint8_t)rd(0x1000, 1);
	case 1: return (uint8_t)lrd(VIRTIO_PCI_ISR, 1);
	default: return (uint8_t)cfg_rd(cfg_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data), 1);
	}
}

static void isr_round_thread(int id)
{
	for (int r = 0; r < ROUNDS; r++) {
		pthread_barrier_wait(&round_start);
		if (id == 0)
			raise_used();
		else
			atomic_store(&seen_isr[r], isr_read(r % 3));
		pthread_barrier_wait(&round_end);
		if (id == 0) {
			/* One raise this round: the reader saw it, or it is still pending, with the
			 * line up. Then the slate is wiped for the next round. */
			uint8_t isr = dev_isr();
			int line = fm_line(&fm, INTX_GSI);

			if ((isr != 0) != (line != 0))
				saw_bad(0x100000000ULL | (uint64_t)r << 8 | isr << 1 | line);
			if ((atomic_load(&seen_isr[r]) != 0) + (isr != 0) != 1)
				saw_bad(0x200000000ULL | (uint64_t)r << 8 | isr);
			if (isr)
				rd(0x1000, 1);
		}
		pthread_barrier_wait(&round_start);
	}
}

static void isr_vs_interrupts(void)
{
	static const racer_fn fns[] = { isr_round_thread, isr_round_thread };

	setup_pci(true);
	rings_with_buffers();
	pci_bring_up(NO_VEC);
	/* The PCI_CFG window on the ISR, one byte. */
	cfg_wr(cfg_cap + VIRTIO_PCI_CAP_BAR, 4, 1);
	cfg_wr(cfg_cap + VIRTIO_PCI_CAP_OFFSET, 0x1000, 4);
	cfg_wr(cfg_cap + VIRTIO_PCI_CAP_LENGTH, 1, 4);
	pthread_barrier_init(&round_start, NULL, 2);
	pthread_barrier_init(&round_end, NULL, 2);
	race(2, fns);
	pthread_barrier_destroy(&round_start);
	pthread_barrier_destroy(&round_end);
	EXPECT_CLEAN();
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	CHECK_EQ(dev_isr(), 0);
	fm_destroy(&fm);
}

/* Free-running: raises, ISR reads and INTx-disable toggles; at the end the line is exactly
 * "ISR non-zero and INTx not disabled". */
static void isr_hammer(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 2; i++)
		rd(0x1000, 1);
}

static void intx_disable_toggler(int id)
{
	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;

	(void)id;
	for (int i = 0; i < ITERS / 20; i++)
		cfg_wr(PCI_COMMAND, i & 1 ? cmd | PCI_COMMAND_INTX_DISABLE : cmd, 2);
	cfg_wr(PCI_COMMAND, cmd, 2);
}

static void intx_vs_disable(void)
{
	static const racer_fn fns[] = { raiser, isr_hammer, intx_disable_toggler };

	setup_pci(false);
	rings_with_buffers();
	pci_bring_up(NO_VEC);
	race(3, fns);
	CHECK_EQ(cfg_rd(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE, 0);
	CHECK_EQ(fm_line(&fm, INTX_GSI), dev_isr() != 0);
	CHECK_EQ(!!(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT), dev_isr() != 0);
	raise_used();
	CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
	rd(0x1000, 1);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	fm_destroy(&fm);
}

/* ---- the PCI bus ---- */

/* Two vCPUs using configuration mechanism #1 at once: each gets one function's ID or the
 * other's (the guest's problem), never anything else. */
static void cf8_user(int id)
{
	uint32_t addr = 0x80000000u | (id ? SLOT << 11 : 0);

	for (int i = 0; i < ITERS / 2; i++) {
		uint32_t v = 0;

		bus_write(&fm.pio, 0xcf8, &addr, 4);
		bus_read(&fm.pio, 0xcfc, &v, 4);
		if (v != 0x00081b36 && v != 0x10441af4)
			saw_bad(v);
	}
}

static void cf8_vs_cf8(void)
{
	static const racer_fn fns[] = { cf8_user, cf8_user };

	setup_pci(false);
	race(2, fns);
	EXPECT_CLEAN();
	fm_destroy(&fm);
}

/* BAR 4 moved between two places and decoding toggled, against accesses at both places: each
 * reads the device or nothing (all-ones); the notify ioeventfd ends up where BAR 4 is. */
#define BAR_A 0x100000000ULL
#define BAR_B 0x200000000ULL

static void bar_mover(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 20; i++) {
		cfg_wr(PCI_BASE_ADDRESS_5, i & 1 ? BAR_B >> 32 : BAR_A >> 32, 4);
		if (!(i % 7))
			cfg_wr(PCI_COMMAND, PCI_COMMAND_IO | (i & 8 ? 0 : PCI_COMMAND_MEMORY), 2);
	}
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_IO, 2);
}

static void bar_user(int id)
{
	for (int i = 0; i < ITERS / 2; i++) {
		uint64_t at = (i + id) & 1 ? BAR_A : BAR_B, v = 0;
		uint16_t q = 0;

		bus_read(&fm.mmio, at + C(num_queues), &v, 2);
		if (v != 1 && v != 0xffff)
			saw_bad(v);
		if (!(i % 16))
			fm_guest_write(&fm, false, at + 0x3000, &q, 2);
	}
}

static void bar_move_vs_access(void)
{
	static const racer_fn fns[] = { bar_mover, bar_user, bar_user };
	uint64_t at;

	setup_pci(false);
	CHECK_EQ(bar4, BAR_A);
	rings_with_buffers();
	pci_bring_up(NO_VEC);
	loop_start();
	race(3, fns);
	loop_stop();
	EXPECT_CLEAN();
	at = (uint64_t)cfg_rd(PCI_BASE_ADDRESS_5, 4) << 32;
	CHECK(fm_ioeventfd_at(&fm, at + 0x3000, false) != NULL);
	CHECK(fm_ioeventfd_at(&fm, (at == BAR_A ? BAR_B : BAR_A) + 0x3000, false) == NULL);
	bar4 = at;
	CHECK_EQ(crd(num_queues), 1);
	check_rings_and_buffers();
	fm_destroy(&fm);
}

/* MSI-X table writes, masks and the function mask against vectors firing: afterwards, with
 * everything unmasked, nothing is pending and each vector fires through its entry's route. */
static void table_writer(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 4; i++) {
		int v = i % 2;

		wr(0x4000 + 16 * v + PCI_MSIX_ENTRY_DATA, 0x40 + (i & 0xf), 4);
		wr(0x4000 + 16 * v + PCI_MSIX_ENTRY_VECTOR_CTRL, (i >> 1) & 1, 4);
	}
}

static void fmask_toggler(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 20; i++)
		cfg_wr(msix_cap + PCI_MSIX_FLAGS,
		       PCI_MSIX_FLAGS_ENABLE | (i & 1 ? PCI_MSIX_FLAGS_MASKALL : 0), 2);
}

static void config_raiser(int id)
{
	(void)id;
	for (int i = 0; i < ITERS / 4; i++) {
		pthread_mutex_lock(&dev->lock);
		if (i & 1)
			virtio_config_changed(dev);
		else if (virtio_queue_live(dev, 0))
			virtio_notify_used(dev, 0);
		pthread_mutex_unlock(&dev->lock);
	}
}

static void msix_table_vs_fire(void)
{
	static const racer_fn fns[] = { table_writer, fmask_toggler, config_raiser };

	setup_pci(false);
	msix_on();
	rings_with_buffers();
	pci_bring_up(0);
	cwr(msix_config, 1);
	race(3, fns);
	cfg_wr(msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	for (int v = 0; v < 2; v++) {
		wr(0x4000 + 16 * v + PCI_MSIX_ENTRY_DATA, 0x77 + v, 4);
		wr(0x4000 + 16 * v + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
	}
	CHECK_EQ(rd(0x5000, 8), 0);
	fm_irqfd_count(&fm, MSI_GSI0);
	fm_irqfd_count(&fm, MSI_GSI0 + 1);
	raise_used();
	pthread_mutex_lock(&dev->lock);
	virtio_config_changed(dev);
	pthread_mutex_unlock(&dev->lock);
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0), 1);
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0 + 1), 1);
	CHECK_EQ(fm.msi[MSI_GSI0].data, 0x77);
	CHECK_EQ(fm.msi[MSI_GSI0 + 1].data, 0x78);
	CHECK_EQ(fm.irq_raises[INTX_GSI], 0);
	fm_destroy(&fm);
}

TEST_MAIN("races", T(mmio_legacy_queue_sel), T(mmio_v2_selectors), T(mmio_enable_vs_notify),
	  T(pci_queue_select), T(pci_legacy_queue_select), T(pci_enable_vs_notify),
	  T(msix_vectors_vs_interrupts), T(isr_vs_interrupts), T(intx_vs_disable),
	  T(cf8_vs_cf8), T(bar_move_vs_access), T(msix_table_vs_fire))

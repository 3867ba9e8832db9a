/* The virtio-pci transport (modern and transitional) as a guest driver sees it: config space
 * through ECAM, the capabilities, BAR 4's common config, ISR, device config, notify area and
 * MSI-X, the VIRTIO_PCI_CAP_PCI_CFG window, and a transitional device's legacy I/O BAR. Every
 * access goes through the fake machine's buses (or, for notifications, the ioeventfd KVM would
 * match), with a real virtio-rng (or virtio-console, for the config space) behind it. */
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <unistd.h>

#include "devices/pci.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"
#include "tests/unit/fake_machine.h"
#include "tests/unit/test.h"
#include "tests/unit/vring_driver.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/outq.h"

#define RAM      (16 * 1024 * 1024ULL)
#define SLOT     1
#define INTX_GSI 17               /* slot 1, INTA: 16 + (1 + 1 - 1) % 4 */
#define MSI_GSI0 24               /* the fake machine's first MSI GSI: vector 0's */
#define NVEC     2                /* rng: one queue and the config vector */
#define QMAX     256
#define NO_VEC   VIRTIO_MSI_NO_VECTOR
#define F_V1     (1ULL << VIRTIO_F_VERSION_1)
#define F_RING   ((1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_RING_F_EVENT_IDX))

#define COMMON   0x0000
#define ISR      0x1000
#define DEVCFG   0x2000
#define NOTIFY   0x3000
#define TABLE    0x4000
#define PBA      0x5000

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK

static struct fake_machine fm;
static struct pci_bus *bus;
static struct virtio_dev *dev;
static uint64_t bar4;             /* as config space says */
static uint8_t msix_cap, cfg_cap; /* capability offsets */

/* ---- config space, as the guest reaches it ---- */

static uint32_t cfg_rd(uint32_t off, uint32_t len)
{
	return fm_cfg_read(&fm, SLOT, off, len);
}

static void cfg_wr(uint32_t off, uint32_t v, uint32_t len)
{
	fm_cfg_write(&fm, SLOT, off, v, len);
}

/* ---- BAR 4 ---- */

static uint64_t rd(uint64_t off, uint32_t len)
{
	return fm_read(&fm, false, bar4 + off, len);
}

static void wr(uint64_t off, uint64_t v, uint32_t len)
{
	fm_write(&fm, false, bar4 + off, v, len);
}

#define C(field) (COMMON + offsetof(struct virtio_pci_common_cfg, field))
#define CSIZE(field) sizeof(((struct virtio_pci_common_cfg *)0)->field)
#define crd(field) rd(C(field), CSIZE(field))
#define cwr(field, v) wr(C(field), (v), CSIZE(field))

/* ---- the legacy I/O BAR ---- */

#define LEGACY 0xc000

static uint32_t lrd(uint32_t off, uint32_t len)
{
	return (uint32_t)fm_read(&fm, true, LEGACY + off, len);
}

static void lwr(uint32_t off, uint32_t v, uint32_t len)
{
	fm_write(&fm, true, LEGACY + off, v, len);
}

/* ---- set-up ---- */

static void attach(struct virtio_dev *d, bool transitional)
{
	dev = d;
	CHECK_EQ(virtio_pci_attach(bus, &fm.m, dev, transitional), 0);
	CHECK_EQ(machine_own(&fm.m, dev, virtio_dev_free), 0);
	bar4 = fm_bar_addr(&fm, SLOT, 4);
	msix_cap = fm_find_cap(&fm, SLOT, PCI_CAP_ID_MSIX, -1);
	cfg_cap = fm_find_cap(&fm, SLOT, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);
}

static void machine_up(bool no_length_ioeventfds)
{
	log_set_level(LOG_ERROR); /* the guest errors provoked here are expected */
	fm_init(&fm, RAM);
	fm.m.ioeventfd_no_length = no_length_ioeventfds;
	CHECK_EQ(pci_bus_create(&fm.m, &bus), 0);
}

static void setup(bool transitional)
{
	struct virtio_dev *d;

	machine_up(true);
	if (virtio_rng_create(&(struct virtio_env){ &fm.mem, &fm.loop }, &d))
		abort();
	attach(d, transitional);
}

static int console_out = -1;
static struct outq *console_q;

static void setup_console(bool transitional)
{
	struct virtio_dev *d;

	machine_up(true);
	console_out = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (console_out < 0 || outq_create(&fm.loop, console_out, 4096, &console_q) ||
	    virtio_console_create(&(struct virtio_env){ &fm.mem, &fm.loop }, console_q, &d))
		abort();
	attach(d, transitional);
}

static void teardown(void)
{
	fm_destroy(&fm);
	if (console_q)
		outq_destroy(console_q);
	console_q = NULL;
	if (console_out >= 0)
		close(console_out);
	console_out = -1;
}

/* MSI-X on, every vector unmasked and pointed at a distinct address/data. */
static void msix_on(void)
{
	for (int v = 0; v < NVEC; v++) {
		wr(TABLE + 16 * v + PCI_MSIX_ENTRY_LOWER_ADDR, 0xfee00000 + 0x1000 * v, 4);
		wr(TABLE + 16 * v + PCI_MSIX_ENTRY_UPPER_ADDR, 0, 4);
		wr(TABLE + 16 * v + PCI_MSIX_ENTRY_DATA, 0x40 + v, 4);
		wr(TABLE + 16 * v + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
	}
	cfg_wr(msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
}

/* ---- a request ---- */

#define QSIZE   16
#define RING    0x10000ULL
#define BUF     0x40000ULL
#define BUF_LEN 64

static struct drv drv;

/* The modern driver's bring-up, queue 0 at RING; vector for the queue. */
static void bring_up(uint16_t vector)
{
	drv_init(&drv, &fm.mem, QSIZE, RING, RING + 0x1000, RING + 0x2000);
	cwr(device_status, S_ACK);
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
	CHECK_EQ(crd(device_status), S_ACK | S_DRV | S_FOK | S_DOK);
	CHECK_EQ(crd(queue_enable), 1);
}

/* Posts buffer i and kicks queue 0 through its notify ioeventfd; runs the event loop. */
static void request(uint16_t i)
{
	uint16_t q = 0;

	memset(g2h(&fm.mem, BUF + BUF_LEN * i, BUF_LEN), 0, BUF_LEN);
	drv_desc(&drv, i, BUF + BUF_LEN * i, BUF_LEN, VRING_DESC_F_WRITE, 0);
	drv_post(&drv, i);
	CHECK(fm_guest_write(&fm, false, bar4 + NOTIFY, &q, 2));
	CHECK(fm_run_ready(&fm, 4) >= 1);
	CHECK_EQ(drv.used->ring[(drv.used->idx - 1) % QSIZE].id, i);
}

/* ---- tests ---- */

static void identity_and_capabilities(void)
{
	for (int transitional = 0; transitional < 2; transitional++) {
		uint8_t c;

		setup(transitional);
		CHECK_EQ(cfg_rd(PCI_VENDOR_ID, 2), 0x1af4);
		CHECK_EQ(cfg_rd(PCI_DEVICE_ID, 2), transitional ? 0x1003 : 0x1044);
		CHECK_EQ(cfg_rd(PCI_REVISION_ID, 1), transitional ? 0 : 1);
		CHECK_EQ(cfg_rd(PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
		CHECK_EQ(cfg_rd(PCI_SUBSYSTEM_ID, 2), transitional ? 4 : 0x1100);
		CHECK_EQ(cfg_rd(PCI_CLASS_REVISION, 4) >> 8, 0x00ff00);
		CHECK_EQ(cfg_rd(PCI_INTERRUPT_PIN, 1), 1);
		CHECK_EQ(cfg_rd(PCI_INTERRUPT_LINE, 1), INTX_GSI);
		CHECK(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
		CHECK_EQ(cfg_rd(PCI_COMMAND, 2) & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY),
			 PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
		/* BAR 4: 64-bit memory, 32 KiB, above RAM; BAR 0: legacy I/O, 256 bytes. */
		CHECK_EQ(cfg_rd(PCI_BASE_ADDRESS_4, 4) & 0xf, PCI_BASE_ADDRESS_MEM_TYPE_64);
		CHECK(bar4 >= MMIO_HOLE_END && !(bar4 & 0x7fff));
		CHECK_EQ(cfg_rd(PCI_BASE_ADDRESS_0, 4), transitional ? LEGACY | 1 : 0);
		/* MSI-X: two vectors, table and PBA in BAR 4. */
		CHECK(msix_cap != 0);
		CHECK_EQ(cfg_rd(msix_cap + PCI_MSIX_FLAGS, 2), NVEC - 1);
		CHECK_EQ(cfg_rd(msix_cap + PCI_MSIX_TABLE, 4), TABLE | 4);
		CHECK_EQ(cfg_rd(msix_cap + PCI_MSIX_PBA, 4), PBA | 4);
		/* The virtio structures. */
		c = fm_find_cap(&fm, SLOT, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG);
		CHECK(c && cfg_rd(c + VIRTIO_PCI_CAP_BAR, 1) == 4);
		CHECK_EQ(cfg_rd(c + VIRTIO_PCI_CAP_OFFSET, 4), COMMON);
		CHECK_EQ(cfg_rd(c + VIRTIO_PCI_CAP_LENGTH, 4), sizeof(struct virtio_pci_common_cfg));
		c = fm_find_cap(&fm, SLOT, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_ISR_CFG);
		CHECK(c && cfg_rd(c + VIRTIO_PCI_CAP_OFFSET, 4) == ISR);
		c = fm_find_cap(&fm, SLOT, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_DEVICE_CFG);
		CHECK(c && cfg_rd(c + VIRTIO_PCI_CAP_OFFSET, 4) == DEVCFG);
		c = fm_find_cap(&fm, SLOT, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG);
		CHECK(c && cfg_rd(c + VIRTIO_PCI_CAP_OFFSET, 4) == NOTIFY);
		CHECK_EQ(cfg_rd(c + VIRTIO_PCI_NOTIFY_CAP_MULT, 4), 4);
		CHECK(cfg_cap != 0);
		/* The capabilities are read-only, but for the PCI_CFG window's bar/offset/length. */
		c = fm_find_cap(&fm, SLOT, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG);
		cfg_wr(c + VIRTIO_PCI_CAP_OFFSET, 0x1234, 4);
		cfg_wr(c + VIRTIO_PCI_CAP_NEXT, 0, 1);
		CHECK_EQ(cfg_rd(c + VIRTIO_PCI_CAP_OFFSET, 4), COMMON);
		CHECK(cfg_rd(c + VIRTIO_PCI_CAP_NEXT, 1) != 0);
		teardown();
	}
}

/* The common configuration of a fresh device, every field at its width and at others. */
static void common_config_fields(void)
{
	setup(false);
	CHECK_EQ(crd(device_feature_select), 0);
	CHECK_EQ(crd(device_feature), (uint32_t)F_RING);
	CHECK_EQ(crd(guest_feature_select), 0);
	CHECK_EQ(crd(guest_feature), 0);
	CHECK_EQ(crd(msix_config), NO_VEC);
	CHECK_EQ(crd(num_queues), 1);
	CHECK_EQ(crd(device_status), 0);
	CHECK_EQ(crd(config_generation), 0);
	CHECK_EQ(crd(queue_select), 0);
	CHECK_EQ(crd(queue_size), QMAX);
	CHECK_EQ(crd(queue_msix_vector), NO_VEC);
	CHECK_EQ(crd(queue_enable), 0);
	CHECK_EQ(crd(queue_notify_off), 0);
	CHECK_EQ(rd(C(queue_desc_lo), 8), 0);
	CHECK_EQ(rd(C(queue_avail_lo), 8), 0);
	CHECK_EQ(rd(C(queue_used_lo), 8), 0);
	/* Reads of other widths copy the bytes asked for; past the structure, 0. */
	CHECK_EQ(rd(C(device_feature_select), 8), (uint64_t)(uint32_t)F_RING << 32);
	CHECK_EQ(rd(C(num_queues), 1), 1);
	CHECK_EQ(rd(C(msix_config), 4), NO_VEC | 1u << 16);
	CHECK_EQ(rd(C(queue_size) + 1, 1), QMAX >> 8);
	CHECK_EQ(rd(sizeof(struct virtio_pci_common_cfg), 4), 0);
	CHECK_EQ(rd(sizeof(struct virtio_pci_common_cfg) - 2, 4), 0);
	CHECK_EQ(rd(0xffc, 4), 0);

	/* Feature selects: 4-byte writes only; past 1 reads 0. */
	cwr(device_feature_select, 1);
	CHECK_EQ(crd(device_feature), (uint32_t)(F_V1 >> 32));
	wr(C(device_feature_select), 0, 2);
	CHECK_EQ(crd(device_feature_select), 1);
	cwr(device_feature_select, 2);
	CHECK_EQ(crd(device_feature), 0);
	cwr(device_feature_select, 0xffffffff);
	CHECK_EQ(crd(device_feature), 0);
	cwr(guest_feature_select, 1);
	cwr(guest_feature, F_V1 >> 32);
	CHECK_EQ(crd(guest_feature), F_V1 >> 32);
	cwr(guest_feature_select, 7);
	cwr(guest_feature, 0xffffffff);
	CHECK_EQ(crd(guest_feature), 0);
	cwr(guest_feature_select, 0);
	wr(C(guest_feature), 0xff, 1);
	CHECK_EQ(crd(guest_feature), 0);

	/* Read-only fields drop writes. */
	cwr(device_feature, 0x12345678);
	cwr(num_queues, 7);
	cwr(config_generation, 9);
	cwr(queue_notify_off, 3);
	cwr(device_feature_select, 0);
	CHECK_EQ(crd(device_feature), (uint32_t)F_RING);
	CHECK_EQ(crd(num_queues), 1);
	CHECK_EQ(crd(config_generation), 0);
	CHECK_EQ(crd(queue_notify_off), 0);

	/* device_status: one byte; a 2-byte write there is dropped. */
	wr(C(device_status), S_ACK | S_DRV << 8, 2);
	CHECK_EQ(crd(device_status), 0);
	cwr(device_status, S_ACK);
	CHECK_EQ(crd(device_status), S_ACK);

	/* queue_size: powers of two up to the maximum, 2-byte writes. */
	cwr(queue_size, 16);
	CHECK_EQ(crd(queue_size), 16);
	cwr(queue_size, 24);
	cwr(queue_size, 0);
	cwr(queue_size, 512);
	wr(C(queue_size), 8, 4);
	wr(C(queue_size), 8, 1);
	CHECK_EQ(crd(queue_size), 16);

	/* Ring addresses: 32-bit halves, or a 64-bit access to a whole address. */
	cwr(queue_desc_lo, 0x10000);
	cwr(queue_desc_hi, 0);
	wr(C(queue_avail_lo), 0x11000, 8);
	cwr(queue_used_lo, 0x12000);
	cwr(queue_used_hi, 0);
	CHECK_EQ(rd(C(queue_desc_lo), 8), 0x10000);
	CHECK_EQ(rd(C(queue_avail_lo), 8), 0x11000);
	CHECK_EQ(rd(C(queue_used_lo), 8), 0x12000);
	/* Any other access to an address is not the driver's to make, and is dropped. */
	wr(C(queue_desc_lo), 0xff, 1);
	wr(C(queue_desc_lo), 0xffff, 2);
	wr(C(queue_desc_hi), 0x0000000500000007ULL, 8); /* would straddle desc_hi and avail_lo */
	CHECK_EQ(rd(C(queue_desc_lo), 8), 0x10000);
	CHECK_EQ(rd(C(queue_avail_lo), 8), 0x11000);
	/* queue_enable: 1 enables (writes of 0 are not the driver's to make, and dropped). */
	wr(C(queue_enable), 1, 1);
	CHECK_EQ(crd(queue_enable), 0);
	cwr(queue_enable, 1);
	CHECK_EQ(crd(queue_enable), 1);
	CHECK(drv_vq(dev, 0).ready);
	cwr(queue_enable, 0);
	CHECK_EQ(crd(queue_enable), 1);
	/* A live queue neither resizes nor moves. */
	cwr(queue_size, 32);
	cwr(queue_desc_lo, 0x20000);
	wr(C(queue_used_lo), 0x30000, 8);
	CHECK_EQ(crd(queue_size), 16);
	CHECK_EQ(rd(C(queue_desc_lo), 8), 0x10000);
	CHECK_EQ(rd(C(queue_used_lo), 8), 0x12000);
	/* A reset clears all of it. */
	cwr(device_feature_select, 1);
	cwr(queue_select, 5);
	cwr(device_status, 0);
	CHECK_EQ(crd(device_status), 0);
	CHECK_EQ(crd(device_feature_select), 0);
	CHECK_EQ(crd(queue_select), 0);
	CHECK_EQ(crd(queue_enable), 0);
	CHECK_EQ(crd(queue_size), QMAX);
	teardown();
}

static void queue_select_out_of_range(void)
{
	static const uint16_t sels[] = { 1, 7, 8, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff };

	setup(false);
	cwr(queue_size, 32);
	cwr(queue_msix_vector, 0);
	for (unsigned i = 0; i < ARRAY_SIZE(sels); i++) {
		cwr(queue_select, sels[i]);
		CHECK_EQ(crd(queue_select), sels[i]);
		CHECK_EQ(crd(queue_size), 0);
		CHECK_EQ(crd(queue_msix_vector), NO_VEC);
		CHECK_EQ(crd(queue_enable), 0);
		CHECK_EQ(crd(queue_notify_off), 0);
		CHECK_EQ(rd(C(queue_desc_lo), 8), 0);
		cwr(queue_size, 16);
		cwr(queue_msix_vector, 1);
		wr(C(queue_desc_lo), 0x10000, 8);
		wr(C(queue_avail_lo), 0x11000, 8);
		wr(C(queue_used_lo), 0x12000, 8);
		cwr(queue_enable, 1);
		CHECK_EQ(crd(queue_size), 0);
		CHECK_EQ(crd(queue_msix_vector), NO_VEC);
		CHECK_EQ(crd(queue_enable), 0);
	}
	/* queue_select is 16 bits: a 4-byte write there is dropped. */
	wr(C(queue_select), 0, 4);
	CHECK_EQ(crd(queue_select), 0xffff);
	cwr(queue_select, 0);
	CHECK_EQ(crd(queue_size), 32);
	CHECK_EQ(crd(queue_msix_vector), 0);
	CHECK_EQ(crd(queue_enable), 0);
	CHECK_EQ(rd(C(queue_desc_lo), 8), 0);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, 0);
	CHECK(!drv_vq(dev, 0).ready);
	teardown();
}

/* A vector must exist in the MSI-X table; anything else reads back as NO_VECTOR. */
static void msix_vector_validation(void)
{
	static const struct { uint16_t write, want; } v[] = {
		{ 0, 0 }, { 1, 1 }, { 2, NO_VEC }, { 63, NO_VEC }, { 64, NO_VEC }, { 0x8000, NO_VEC },
		{ 0xfffe, NO_VEC }, { NO_VEC, NO_VEC }, { 1, 1 },
	};

	setup(false);
	for (unsigned i = 0; i < ARRAY_SIZE(v); i++) {
		cwr(msix_config, v[i].write);
		CHECK_EQ(crd(msix_config), v[i].want);
		cwr(queue_msix_vector, v[i].write);
		CHECK_EQ(crd(queue_msix_vector), v[i].want);
	}
	/* 2 bytes only. */
	wr(C(msix_config), 0, 4);
	wr(C(queue_msix_vector), 0, 1);
	CHECK_EQ(crd(msix_config), 1);
	CHECK_EQ(crd(queue_msix_vector), 1);
	teardown();
}

/* INTx: raised with the ISR, lowered by the ISR read that clears it. */
static void isr_read_clears_and_lowers_intx(void)
{
	setup(false);
	bring_up(NO_VEC);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	CHECK_EQ(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	request(0);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
	CHECK(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	CHECK(cfg_rd(PCI_COMMAND, 4) & (PCI_STATUS_INTERRUPT << 16));
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0), 0);
	/* A read of the byte after the ISR is not an ISR read. */
	CHECK_EQ(rd(ISR + 1, 1), 0);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
	CHECK_EQ(rd(ISR, 1), VIRTIO_ISR_QUEUE);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	CHECK_EQ(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	CHECK_EQ(rd(ISR, 1), 0);
	/* Any width at the ISR reads and clears it. */
	request(1);
	CHECK_EQ(rd(ISR, 4), VIRTIO_ISR_QUEUE);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	/* INTx-disable holds the line low, not the status bit; clearing it lets the line up. */
	cfg_wr(PCI_COMMAND, cfg_rd(PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE, 2);
	request(2);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	CHECK(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	cfg_wr(PCI_COMMAND, cfg_rd(PCI_COMMAND, 2) & ~PCI_COMMAND_INTX_DISABLE, 2);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
	/* A config interrupt too; a reset lowers the line with the ISR it clears. */
	pthread_mutex_lock(&dev->lock);
	virtio_dev_fail(dev, "test");
	pthread_mutex_unlock(&dev->lock);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
	cwr(device_status, 0);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	CHECK_EQ(rd(ISR, 1), 0);
	teardown();
}

/* With MSI-X on, interrupts go to the vector's irqfd through its route, never INTx; a masked
 * vector keeps a pending bit and fires on unmask; NO_VECTOR sends nothing. */
static void msix_delivery(void)
{
	setup(false);
	msix_on();
	bring_up(0);
	cwr(msix_config, 1);
	request(0);
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0), 1);
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0 + 1), 0);
	CHECK(fm.msi[MSI_GSI0].set);
	CHECK_EQ(fm.msi[MSI_GSI0].addr, 0xfee00000);
	CHECK_EQ(fm.msi[MSI_GSI0].data, 0x40);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	/* A masked config vector: pending, then delivered when unmasked. */
	wr(TABLE + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, PCI_MSIX_ENTRY_CTRL_MASKBIT, 4);
	pthread_mutex_lock(&dev->lock);
	virtio_dev_fail(dev, "test");
	pthread_mutex_unlock(&dev->lock);
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0 + 1), 0);
	CHECK_EQ(rd(PBA, 8), 2);
	wr(TABLE + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4);
	CHECK_EQ(rd(PBA, 8), 0);
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0 + 1), 1);
	CHECK_EQ(fm.msi[MSI_GSI0 + 1].addr, 0xfee01000);
	CHECK_EQ(fm.msi[MSI_GSI0 + 1].data, 0x41);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	/* The function mask likewise. */
	cwr(device_status, 0);
	msix_on();
	bring_up(0);
	cfg_wr(msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	request(0);
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0), 0);
	CHECK_EQ(rd(PBA, 8), 1);
	cfg_wr(msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0), 1);
	CHECK_EQ(rd(PBA, 8), 0);
	/* NO_VECTOR: nothing at all. */
	cwr(queue_msix_vector, NO_VEC);
	CHECK_EQ(crd(queue_msix_vector), NO_VEC);
	request(1);
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0), 0);
	CHECK_EQ(fm_irqfd_count(&fm, MSI_GSI0 + 1), 0);
	CHECK_EQ(rd(PBA, 8), 0);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	teardown();
}

/* INTx follows the ISR whenever MSI-X is off: turning MSI-X on drops a raised line (the
 * function may not use INTx meanwhile), turning it off raises the line for an ISR still
 * pending (a driver falling back from MSI-X to INTx must not lose it). */
static void msix_toggle_and_intx(void)
{
	setup(false);
	bring_up(NO_VEC);
	request(0);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
	msix_on();
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	CHECK_EQ(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	/* Raised with MSI-X on but no vector: ISR only. */
	request(1);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	cfg_wr(msix_cap + PCI_MSIX_FLAGS, 0, 2);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
	CHECK(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	CHECK_EQ(rd(ISR, 1), VIRTIO_ISR_QUEUE);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	/* Nothing pending: toggling leaves the line alone. */
	msix_on();
	cfg_wr(msix_cap + PCI_MSIX_FLAGS, 0, 2);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	CHECK_EQ(fm.irq_raises[INTX_GSI], 2);
	teardown();
}

/* VIRTIO_PCI_CAP_PCI_CFG: config-space access to BAR 4 through a window the driver points. */
static void pci_cfg_window(void)
{
	uint32_t bar = cfg_cap + VIRTIO_PCI_CAP_BAR, off = cfg_cap + VIRTIO_PCI_CAP_OFFSET;
	uint32_t len = cfg_cap + VIRTIO_PCI_CAP_LENGTH;
	uint32_t data = cfg_cap + offsetof(struct virtio_pci_cfg_cap, pci_cfg_data);

	setup(false);
	CHECK_EQ(cfg_rd(cfg_cap + VIRTIO_PCI_CAP_LEN, 1), sizeof(struct virtio_pci_cfg_cap));
	/* device_status, one byte. */
	cfg_wr(bar, 4, 1);
	cfg_wr(off, C(device_status), 4);
	cfg_wr(len, 1, 4);
	CHECK_EQ(cfg_rd(bar, 1), 4);
	CHECK_EQ(cfg_rd(off, 4), C(device_status));
	cfg_wr(data, S_ACK, 1);
	CHECK_EQ(crd(device_status), S_ACK);
	CHECK_EQ(cfg_rd(data, 1), S_ACK);
	CHECK_EQ(cfg_rd(data, 4), S_ACK); /* an access wider than the window: the window's bytes */
	/* queue_size, two bytes; device_feature, four. */
	cfg_wr(off, C(queue_size), 4);
	cfg_wr(len, 2, 4);
	CHECK_EQ(cfg_rd(data, 2), QMAX);
	cfg_wr(data, 64, 2);
	CHECK_EQ(crd(queue_size), 64);
	cfg_wr(off, C(device_feature), 4);
	cfg_wr(len, 4, 4);
	CHECK_EQ(cfg_rd(data, 4), (uint32_t)F_RING);
	/* The ISR through the window: read and cleared. */
	pthread_mutex_lock(&dev->lock);
	virtio_dev_fail(dev, "test");
	pthread_mutex_unlock(&dev->lock);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
	cfg_wr(off, ISR, 4);
	cfg_wr(len, 1, 4);
	CHECK_EQ(cfg_rd(data, 1), VIRTIO_PCI_ISR_CONFIG);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	CHECK_EQ(rd(ISR, 1), 0);
	cwr(device_status, 0);
	/* Windows that are not: another BAR, a length not 1/2/4, misaligned, past the BAR, or
	 * an access narrower than the window. Reads give 0, writes are dropped. */
	cfg_wr(off, C(device_status), 4);
	cfg_wr(len, 1, 4);
	cfg_wr(bar, 0, 1);
	CHECK_EQ(cfg_rd(data, 1), 0);
	cfg_wr(data, S_ACK, 1);
	cfg_wr(bar, 4, 1);
	cfg_wr(len, 3, 4);
	cfg_wr(data, S_ACK, 4);
	CHECK_EQ(cfg_rd(data, 4), 0);
	cfg_wr(len, 2, 4);
	cfg_wr(off, C(device_status), 4);       /* 20: 2-byte aligned: device_status and gen */
	cfg_wr(off, C(device_status) + 1, 4);   /* 21: not */
	cfg_wr(data, S_ACK, 2);
	CHECK_EQ(cfg_rd(data, 2), 0);
	cfg_wr(len, 4, 4);
	cfg_wr(off, 0x8000, 4);
	CHECK_EQ(cfg_rd(data, 4), 0);
	cfg_wr(off, 0xfffffffc, 4);
	CHECK_EQ(cfg_rd(data, 4), 0);
	cfg_wr(off, C(device_status), 4);
	cfg_wr(len, 4, 4);
	cfg_wr(data, S_ACK, 1);
	CHECK_EQ(crd(device_status), 0);
	teardown();
}

/* A transitional device's legacy I/O BAR (virtio 0.9.5). */
static void legacy_io_bar(void)
{
	const struct machine_ioeventfd *io;
	uint16_t q = 0;

	setup(true);
	CHECK_EQ(lrd(VIRTIO_PCI_HOST_FEATURES, 4), (uint32_t)F_RING);
	lwr(VIRTIO_PCI_GUEST_FEATURES, 1u << VIRTIO_RING_F_EVENT_IDX, 4);
	CHECK_EQ(lrd(VIRTIO_PCI_GUEST_FEATURES, 4), 1u << VIRTIO_RING_F_EVENT_IDX);
	lwr(VIRTIO_PCI_GUEST_FEATURES, 0, 4);
	/* The queue size is the device's: read-only. */
	CHECK_EQ(lrd(VIRTIO_PCI_QUEUE_NUM, 2), QMAX);
	lwr(VIRTIO_PCI_QUEUE_NUM, 16, 2);
	CHECK_EQ(lrd(VIRTIO_PCI_QUEUE_NUM, 2), QMAX);
	lwr(VIRTIO_PCI_QUEUE_SEL, 3, 2);
	CHECK_EQ(lrd(VIRTIO_PCI_QUEUE_SEL, 2), 3);
	CHECK_EQ(lrd(VIRTIO_PCI_QUEUE_NUM, 2), 0);
	lwr(VIRTIO_PCI_QUEUE_PFN, 0x10, 4);
	CHECK_EQ(lrd(VIRTIO_PCI_QUEUE_PFN, 4), 0);
	lwr(VIRTIO_PCI_QUEUE_SEL, 0, 2);
	/* The rings at PFN << 12, used ring aligned to 4 KiB. */
	lwr(VIRTIO_PCI_STATUS, S_ACK | S_DRV, 1);
	lwr(VIRTIO_PCI_QUEUE_PFN, RING >> 12, 4);
	CHECK_EQ(lrd(VIRTIO_PCI_QUEUE_PFN, 4), RING >> 12);
	CHECK(drv_vq(dev, 0).ready);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, RING);
	CHECK_EQ(drv_vq(dev, 0).avail_gpa, RING + 16 * QMAX);
	CHECK_EQ(drv_vq(dev, 0).used_gpa, RING + 0x2000); /* RING + 4096 + 4 + 512 + 2, up to 4 KiB */
	lwr(VIRTIO_PCI_QUEUE_PFN, 0x99, 4);      /* live: ignored */
	CHECK_EQ(lrd(VIRTIO_PCI_QUEUE_PFN, 4), RING >> 12);
	lwr(VIRTIO_PCI_STATUS, S_ACK | S_DRV | S_DOK, 1);
	CHECK_EQ(lrd(VIRTIO_PCI_STATUS, 1), S_ACK | S_DRV | S_DOK);
	/* A request: the notify ioeventfd is the I/O port, 2 bytes, data 0. */
	io = fm_ioeventfd_at(&fm, LEGACY + VIRTIO_PCI_QUEUE_NOTIFY, true);
	CHECK(io && io->len == 2 && io->datamatch && io->data == 0);
	drv_init(&drv, &fm.mem, QMAX, RING, RING + 16 * QMAX, RING + 0x2000);
	drv_desc(&drv, 0, BUF, BUF_LEN, VRING_DESC_F_WRITE, 0);
	drv_post(&drv, 0);
	CHECK(fm_guest_write(&fm, true, LEGACY + VIRTIO_PCI_QUEUE_NOTIFY, &q, 2));
	CHECK(fm_run_ready(&fm, 4) >= 1);
	CHECK_EQ(drv.used->idx, 1);
	CHECK_EQ(drv.used->ring[0].len, BUF_LEN);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
	CHECK_EQ(lrd(VIRTIO_PCI_ISR, 1), VIRTIO_ISR_QUEUE);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	CHECK_EQ(lrd(VIRTIO_PCI_ISR, 1), 0);
	/* A notification written to the port (no ioeventfd took it) is served too. */
	drv_desc(&drv, 1, BUF, BUF_LEN, VRING_DESC_F_WRITE, 0);
	drv_post(&drv, 1);
	lwr(VIRTIO_PCI_QUEUE_NOTIFY, 0, 2);
	CHECK_EQ(drv.used->idx, 2);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
	/* Reset: status 0 clears the PFN and the ISR, and lowers INTx. */
	lwr(VIRTIO_PCI_STATUS, 0, 1);
	CHECK_EQ(fm_line(&fm, INTX_GSI), 0);
	CHECK_EQ(lrd(VIRTIO_PCI_QUEUE_PFN, 4), 0);
	CHECK(!drv_vq(dev, 0).ready);
	/* Past the registers and the (empty) device config: 0. */
	CHECK_EQ(lrd(0x40, 4), 0);
	CHECK_EQ(lrd(0xfc, 4), 0);
	teardown();
}

/* A transitional device brought up by a legacy driver (no FEATURES_OK): the features it
 * runs with are the offered ones it acked, fixed from DRIVER_OK on, through either interface. */
static void legacy_driver_features_fixed(void)
{
	setup(true);
	lwr(VIRTIO_PCI_STATUS, S_ACK | S_DRV, 1);
	lwr(VIRTIO_PCI_GUEST_FEATURES, 0xffffffff, 4);
	lwr(VIRTIO_PCI_STATUS, S_ACK | S_DRV | S_DOK, 1);
	CHECK_EQ(lrd(VIRTIO_PCI_GUEST_FEATURES, 4), (uint32_t)F_RING);
	lwr(VIRTIO_PCI_GUEST_FEATURES, 0, 4);
	CHECK_EQ(lrd(VIRTIO_PCI_GUEST_FEATURES, 4), (uint32_t)F_RING);
	/* The modern interface cannot change them under the running device either. */
	cwr(guest_feature_select, 1);
	cwr(guest_feature, 0xffffffff);
	cwr(guest_feature_select, 0);
	cwr(guest_feature, 0);
	pthread_mutex_lock(&dev->lock);
	CHECK_EQ(dev->driver_features, (uint32_t)F_RING);
	pthread_mutex_unlock(&dev->lock);
	teardown();
}

/* The legacy config space moves from 20 to 24 when MSI-X is enabled, and the vector registers
 * appear at 20 and 22. */
static void legacy_msix_registers(void)
{
	setup_console(true);
	CHECK_EQ(lrd(20, 2), 80);
	CHECK_EQ(lrd(22, 2), 25);
	lwr(VIRTIO_MSI_CONFIG_VECTOR, 0, 2); /* config space, read-only: dropped */
	CHECK_EQ(lrd(20, 2), 80);
	msix_on();
	CHECK_EQ(lrd(24, 2), 80);
	CHECK_EQ(lrd(26, 2), 25);
	CHECK_EQ(lrd(VIRTIO_MSI_CONFIG_VECTOR, 2), NO_VEC);
	CHECK_EQ(lrd(VIRTIO_MSI_QUEUE_VECTOR, 2), NO_VEC);
	lwr(VIRTIO_MSI_CONFIG_VECTOR, 1, 2);
	lwr(VIRTIO_MSI_QUEUE_VECTOR, 0, 2);
	CHECK_EQ(lrd(VIRTIO_MSI_CONFIG_VECTOR, 2), 1);
	CHECK_EQ(lrd(VIRTIO_MSI_QUEUE_VECTOR, 2), 0);
	lwr(VIRTIO_MSI_CONFIG_VECTOR, 3, 2);  /* the console has 3 vectors: 0-2 */
	CHECK_EQ(lrd(VIRTIO_MSI_CONFIG_VECTOR, 2), NO_VEC);
	lwr(VIRTIO_PCI_QUEUE_SEL, 2, 2);       /* no such queue */
	CHECK_EQ(lrd(VIRTIO_MSI_QUEUE_VECTOR, 2), NO_VEC);
	lwr(VIRTIO_MSI_QUEUE_VECTOR, 1, 2);
	lwr(VIRTIO_PCI_QUEUE_SEL, 1, 2);
	CHECK_EQ(lrd(VIRTIO_MSI_QUEUE_VECTOR, 2), NO_VEC);
	teardown();
}

/* The notify ioeventfds follow BAR 4 (and BAR 0) wherever the guest maps them, and go away
 * while decoding is off. */
static void notify_follows_bar_move(void)
{
	for (int no_length = 0; no_length < 2; no_length++) {
		const uint64_t moved = 0x200000000ULL, io_moved = 0xd000;
		const struct machine_ioeventfd *io;
		struct virtio_dev *d;
		uint16_t cmd;

		machine_up(no_length);
		if (virtio_rng_create(&(struct virtio_env){ &fm.mem, &fm.loop }, &d))
			abort();
		attach(d, true);
		io = fm_ioeventfd_at(&fm, bar4 + NOTIFY, false);
		CHECK(io != NULL);
		if (!io)
			return;
		/* Zero-length (any write) where KVM has it, else 2 bytes with the queue index. */
		CHECK_EQ(io->len, no_length ? 0 : 2);
		CHECK_EQ(io->datamatch, !no_length);
		CHECK_EQ(io->fd, virtio_kick_fd(dev, 0));
		CHECK(fm_ioeventfd_at(&fm, LEGACY + VIRTIO_PCI_QUEUE_NOTIFY, true) != NULL);

		cmd = cfg_rd(PCI_COMMAND, 2);
		cfg_wr(PCI_COMMAND, cmd & ~(PCI_COMMAND_MEMORY | PCI_COMMAND_IO), 2);
		CHECK(fm_ioeventfd_at(&fm, bar4 + NOTIFY, false) == NULL);
		CHECK(fm_ioeventfd_at(&fm, LEGACY + VIRTIO_PCI_QUEUE_NOTIFY, true) == NULL);
		CHECK_EQ(rd(C(num_queues), 2), 0xffff); /* nobody there */
		cfg_wr(PCI_BASE_ADDRESS_4, (uint32_t)moved, 4);
		cfg_wr(PCI_BASE_ADDRESS_5, (uint32_t)(moved >> 32), 4);
		cfg_wr(PCI_BASE_ADDRESS_0, io_moved, 4);
		CHECK_EQ(fm_bar_addr(&fm, SLOT, 4), moved);
		CHECK_EQ(fm_bar_addr(&fm, SLOT, 0), io_moved);
		cfg_wr(PCI_COMMAND, cmd, 2);
		CHECK(fm_ioeventfd_at(&fm, bar4 + NOTIFY, false) == NULL);
		CHECK(fm_ioeventfd_at(&fm, moved + NOTIFY, false) != NULL);
		CHECK(fm_ioeventfd_at(&fm, LEGACY + VIRTIO_PCI_QUEUE_NOTIFY, true) == NULL);
		CHECK(fm_ioeventfd_at(&fm, io_moved + VIRTIO_PCI_QUEUE_NOTIFY, true) != NULL);
		CHECK_EQ(rd(C(num_queues), 2), 0xffff);
		bar4 = moved;
		CHECK_EQ(rd(C(num_queues), 2), 1);
		CHECK_EQ(lrd(VIRTIO_PCI_QUEUE_NUM, 2), 0xffff);
		/* Moved while decoding: the same. */
		cfg_wr(PCI_BASE_ADDRESS_5, 3, 4);
		CHECK(fm_ioeventfd_at(&fm, moved + NOTIFY, false) == NULL);
		CHECK(fm_ioeventfd_at(&fm, 0x300000000ULL + NOTIFY, false) != NULL);
		bar4 = 0x300000000ULL;
		bring_up(NO_VEC);
		request(0);
		CHECK_EQ(fm_line(&fm, INTX_GSI), 1);
		teardown();
	}
}

/* The device's config space at BAR 4 + 0x2000 (virtio-console: cols, rows, ...). */
static void device_config(void)
{
	setup_console(false);
	CHECK_EQ(rd(DEVCFG, 2), 80);
	CHECK_EQ(rd(DEVCFG + 2, 2), 25);
	CHECK_EQ(rd(DEVCFG, 4), 80 | 25 << 16);
	CHECK_EQ(rd(DEVCFG, 8), 80 | 25 << 16);
	CHECK_EQ(rd(DEVCFG + 8, 4), 0);
	CHECK_EQ(rd(DEVCFG + 10, 4), 0);  /* straddles the end */
	CHECK_EQ(rd(DEVCFG + 12, 4), 0);
	CHECK_EQ(rd(DEVCFG + 0xffc, 8), 0); /* straddles the region */
	wr(DEVCFG, 0x12345678, 4);
	CHECK_EQ(rd(DEVCFG, 4), 80 | 25 << 16);
	/* Nothing else in the BAR: reads 0, writes go nowhere. */
	CHECK_EQ(rd(0x6000, 4), 0);
	CHECK_EQ(rd(0x7ff8, 8), 0);
	wr(0x6000, ~0ULL, 8);
	CHECK_EQ(rd(0x6000, 8), 0);
	CHECK_EQ(rd(0x8000, 4), 0xffffffff); /* past the BAR: nobody's */
	teardown();
}

TEST_MAIN("vpci", T(identity_and_capabilities), T(common_config_fields),
	  T(queue_select_out_of_range), T(msix_vector_validation),
	  T(isr_read_clears_and_lowers_intx), T(msix_delivery), T(msix_toggle_and_intx),
	  T(pci_cfg_window), T(legacy_io_bar), T(legacy_driver_features_fixed),
	  T(legacy_msix_registers), T(notify_follows_bar_move), T(device_config))

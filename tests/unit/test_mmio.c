/* The virtio-mmio transport (version 2 and legacy) through its register block, as a guest
 * driver sees it: every access goes through the fake machine's MMIO bus (or, for queue
 * notifications, the ioeventfd KVM would match), with a real virtio-rng (or virtio-console,
 * for the config space) behind it. */
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <unistd.h>

#include "devices/virtio/devices.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "tests/unit/fake_machine.h"
#include "tests/unit/test.h"
#include "tests/unit/vring_driver.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/outq.h"

#define RAM    (16 * 1024 * 1024ULL)
#define BASE   VIRTIO_MMIO_BASE
#define GSI    5                  /* slot 0's */
#define MAGIC  0x74726976
#define VENDOR 0x6163696d
#define QMAX   256
#define F_V1   (1ULL << VIRTIO_F_VERSION_1)
#define F_RING ((1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_RING_F_EVENT_IDX))

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK

static struct fake_machine fm;
static struct virtio_dev *dev;

static struct virtio_dev *setup_dev(struct virtio_dev *d, bool legacy)
{
	dev = d;
	CHECK_EQ(virtio_mmio_attach(&fm.m, dev, legacy), 0);
	CHECK_EQ(machine_own(&fm.m, dev, virtio_dev_free), 0);
	return dev;
}

static void setup(bool legacy)
{
	struct virtio_dev *d;

	log_set_level(LOG_ERROR); /* the guest errors provoked here are expected */
	fm_init(&fm, RAM);
	if (virtio_rng_create(&(struct virtio_env){ &fm.mem, &fm.loop }, &d))
		abort();
	setup_dev(d, legacy);
}

static uint64_t rd(uint64_t off, uint32_t len)
{
	uint64_t v = 0;

	bus_read(&fm.mmio, BASE + off, &v, len);
	return v;
}

static uint32_t r32(uint64_t off)
{
	return (uint32_t)rd(off, 4);
}

static void wr(uint64_t off, uint64_t v, uint32_t len)
{
	bus_write(&fm.mmio, BASE + off, &v, len);
}

static void w32(uint64_t off, uint32_t v)
{
	wr(off, v, 4);
}

/* Device state a test looks at directly (the registers are write-only), under its lock. */

static uint16_t qsize0(void)
{
	uint16_t n;

	pthread_mutex_lock(&dev->lock);
	n = dev->queue_size[0];
	pthread_mutex_unlock(&dev->lock);
	return n;
}

/* Every 32-bit register as read now, in the register block (0 - 0xfc). */
static void snapshot(uint32_t regs[64])
{
	for (int i = 0; i < 64; i++)
		regs[i] = r32(4 * i);
}

/* ---- identity and the shape of the register block ---- */

static void identity_registers(void)
{
	for (int legacy = 0; legacy < 2; legacy++) {
		setup(legacy);
		CHECK_EQ(r32(VIRTIO_MMIO_MAGIC_VALUE), MAGIC);
		CHECK_EQ(r32(VIRTIO_MMIO_VERSION), legacy ? 1 : 2);
		CHECK_EQ(r32(VIRTIO_MMIO_DEVICE_ID), 4);
		CHECK_EQ(r32(VIRTIO_MMIO_VENDOR_ID), VENDOR);
		CHECK_EQ(fm.m.nplatform_devs, 1);
		CHECK(!strcmp(fm.m.platform_devs[0].compatible, "virtio,mmio"));
		CHECK_EQ(fm.m.platform_devs[0].base, BASE);
		CHECK_EQ(fm.m.platform_devs[0].size, VIRTIO_MMIO_SLOT_SIZE);
		CHECK_EQ(fm.m.platform_devs[0].gsi, GSI);
		fm_destroy(&fm);
	}
}

/* A second device takes the next slot and GSI. */
static void second_slot(void)
{
	struct virtio_dev *d;

	setup(false);
	if (virtio_rng_create(&(struct virtio_env){ &fm.mem, &fm.loop }, &d))
		abort();
	setup_dev(d, false);
	CHECK_EQ(fm.m.platform_devs[1].base, BASE + VIRTIO_MMIO_SLOT_SIZE);
	CHECK_EQ(fm.m.platform_devs[1].gsi, 6);
	CHECK_EQ(r32(VIRTIO_MMIO_SLOT_SIZE + VIRTIO_MMIO_MAGIC_VALUE), MAGIC);
	fm_destroy(&fm);
}

/* Of a fresh device, every aligned word of the block: the read-only registers hold their
 * values, write-only and unknown ones read 0, and (version 2) the shared memory region's
 * length and base -1: there is none. */
static void fresh_register_block(void)
{
	for (int legacy = 0; legacy < 2; legacy++) {
		uint32_t regs[64];

		setup(legacy);
		snapshot(regs);
		for (int i = 0; i < 64; i++) {
			uint32_t want = 0;

			switch (4 * i) {
			case VIRTIO_MMIO_MAGIC_VALUE: want = MAGIC; break;
			case VIRTIO_MMIO_VERSION: want = legacy ? 1 : 2; break;
			case VIRTIO_MMIO_DEVICE_ID: want = 4; break;
			case VIRTIO_MMIO_VENDOR_ID: want = VENDOR; break;
			case VIRTIO_MMIO_DEVICE_FEATURES: want = (uint32_t)F_RING; break;
			case VIRTIO_MMIO_QUEUE_NUM_MAX: want = QMAX; break;
			case VIRTIO_MMIO_SHM_LEN_LOW:
			case VIRTIO_MMIO_SHM_LEN_HIGH:
			case VIRTIO_MMIO_SHM_BASE_LOW:
			case VIRTIO_MMIO_SHM_BASE_HIGH: want = legacy ? 0 : 0xffffffff; break;
			}
			if (regs[i] != want)
				printf("#   %s register 0x%02x\n", legacy ? "legacy" : "v2", 4 * i);
			CHECK_EQ(regs[i], want);
		}
		fm_destroy(&fm);
	}
}

/* Registers are 32-bit: a read of any other width, or a misaligned one, returns 0 (all of the
 * bytes asked for), and such writes change nothing. */
static void non_word_accesses(void)
{
	static const uint32_t lens[] = { 1, 2, 8 };

	for (int legacy = 0; legacy < 2; legacy++) {
		uint32_t before[64], after[64];
		int bad = 0;

		setup(legacy);
		for (uint64_t off = 0; off < VIRTIO_MMIO_CONFIG; off++) {
			for (uint32_t len = 1; len <= 8; len *= 2) {
				uint64_t v = 0x5a5a5a5a5a5a5a5aULL;
				uint64_t mask = len == 8 ? ~0ULL : (1ULL << (8 * len)) - 1;

				if ((len == 4 && !(off & 3)) || off + len > VIRTIO_MMIO_CONFIG)
					continue;
				bus_read(&fm.mmio, BASE + off, &v, len);
				if ((v & mask) != 0 && bad++ < 4)
					printf("#   %s: %u-byte read at 0x%02llx: 0x%llx\n",
					       legacy ? "legacy" : "v2", len,
					       (unsigned long long)off, (unsigned long long)v);
				/* Nothing past the bytes asked for is touched. */
				if ((v & ~mask) != (0x5a5a5a5a5a5a5a5aULL & ~mask))
					bad++;
			}
		}
		CHECK_EQ(bad, 0);
		/* Bring the queue and the status somewhere non-trivial, then write every offset
		 * with every wrong width: nothing moves. */
		w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
		w32(VIRTIO_MMIO_QUEUE_NUM, 16);
		snapshot(before);
		for (uint64_t off = 0; off < VIRTIO_MMIO_CONFIG; off++) {
			for (unsigned k = 0; k < 3; k++)
				if (off + lens[k] <= VIRTIO_MMIO_CONFIG)
					wr(off, 0xffffffffffffffffULL, lens[k]);
			if (off & 3)
				wr(off, 0xffffffff, 4);
		}
		snapshot(after);
		for (int i = 0; i < 64; i++)
			CHECK_EQ(after[i], before[i]);
		CHECK_EQ(qsize0(), 16);
		CHECK(!drv_vq(dev, 0).ready);
		CHECK_EQ(drv_isr(dev), 0);
		fm_destroy(&fm);
	}
}

/* ---- features ---- */

static void feature_selects(void)
{
	for (int legacy = 0; legacy < 2; legacy++) {
		setup(legacy);
		CHECK_EQ(r32(VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)F_RING);
		w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
		/* A legacy interface has 32 feature bits: no VERSION_1. */
		CHECK_EQ(r32(VIRTIO_MMIO_DEVICE_FEATURES), legacy ? 0 : (uint32_t)(F_V1 >> 32));
		w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
		CHECK_EQ(r32(VIRTIO_MMIO_DEVICE_FEATURES), 0);
		w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0xffffffff);
		CHECK_EQ(r32(VIRTIO_MMIO_DEVICE_FEATURES), 0);
		w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0x80000000);
		CHECK_EQ(r32(VIRTIO_MMIO_DEVICE_FEATURES), 0);
		w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
		CHECK_EQ(r32(VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)F_RING);
		fm_destroy(&fm);
	}

	/* The driver's words land at their select; a select past 1 drops the write (had it
	 * landed, FEATURES_OK would be refused for features not offered). */
	setup(false);
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0xffffffff);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(F_V1 >> 32));
	w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_RING_F_EVENT_IDX);
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK);
	pthread_mutex_lock(&dev->lock);
	CHECK_EQ(dev->driver_features, F_V1 | (1ULL << VIRTIO_RING_F_EVENT_IDX));
	pthread_mutex_unlock(&dev->lock);
	/* Fixed once accepted. */
	w32(VIRTIO_MMIO_DRIVER_FEATURES, 0);
	pthread_mutex_lock(&dev->lock);
	CHECK_EQ(dev->driver_features, F_V1 | (1ULL << VIRTIO_RING_F_EVENT_IDX));
	pthread_mutex_unlock(&dev->lock);
	fm_destroy(&fm);

	/* Without VERSION_1 a modern device refuses FEATURES_OK; one not offered likewise. */
	setup(false);
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
	w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(F_V1 >> 32) | 2);
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
	fm_destroy(&fm);
}

/* ---- queues ---- */

static void queue_sel_out_of_range(void)
{
	static const uint32_t sels[] = { 1, 7, 8, 9, 0xffff, 0x10000, 0x80000000, 0xffffffff };

	for (int legacy = 0; legacy < 2; legacy++) {
		setup(legacy);
		w32(VIRTIO_MMIO_QUEUE_NUM, 32);
		for (unsigned i = 0; i < ARRAY_SIZE(sels); i++) {
			w32(VIRTIO_MMIO_QUEUE_SEL, sels[i]);
			CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
			CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_READY), 0);
			CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_PFN), 0);
			w32(VIRTIO_MMIO_QUEUE_NUM, 16);
			w32(VIRTIO_MMIO_QUEUE_ALIGN, 64);
			w32(VIRTIO_MMIO_QUEUE_PFN, 0x10);
			w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x10000);
			w32(VIRTIO_MMIO_QUEUE_DESC_HIGH, 1);
			w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x11000);
			w32(VIRTIO_MMIO_QUEUE_USED_LOW, 0x12000);
			w32(VIRTIO_MMIO_QUEUE_READY, 1);
			CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_READY), 0);
			CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_PFN), 0);
		}
		/* Queue 0 saw none of it. */
		w32(VIRTIO_MMIO_QUEUE_SEL, 0);
		CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
		CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_READY), 0);
		CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_PFN), 0);
		CHECK_EQ(qsize0(), 32);
		CHECK(!drv_vq(dev, 0).ready);
		CHECK_EQ(drv_vq(dev, 0).desc_gpa, 0);
		CHECK_EQ(drv_vq(dev, 0).avail_gpa, 0);
		CHECK_EQ(drv_vq(dev, 0).used_gpa, 0);
		pthread_mutex_lock(&dev->lock);
		CHECK_EQ(dev->status & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
		pthread_mutex_unlock(&dev->lock);
		fm_destroy(&fm);
	}
}

/* QueueNum: a power of two from 1 to QueueNumMax, and only while the queue is not ready. */
static void queue_size_rules(void)
{
	static const struct { uint32_t write, want; } steps[] = {
		{ 16, 16 }, { 0, 16 }, { 3, 16 }, { 24, 16 }, { 257, 16 }, { 512, 16 },
		{ 0x10010, 16 }, { 0xffffffff, 16 }, { 1, 1 }, { 256, 256 }, { 8, 8 },
	};

	setup(false);
	CHECK_EQ(qsize0(), QMAX);
	for (unsigned i = 0; i < ARRAY_SIZE(steps); i++) {
		w32(VIRTIO_MMIO_QUEUE_NUM, steps[i].write);
		CHECK_EQ(qsize0(), steps[i].want);
	}
	w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x10000);
	w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x11000);
	w32(VIRTIO_MMIO_QUEUE_USED_LOW, 0x12000);
	w32(VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_READY), 1);
	w32(VIRTIO_MMIO_QUEUE_NUM, 32);
	CHECK_EQ(qsize0(), 8);
	CHECK_EQ(drv_vq(dev, 0).size, 8);
	w32(VIRTIO_MMIO_QUEUE_READY, 0);
	w32(VIRTIO_MMIO_QUEUE_NUM, 32);
	CHECK_EQ(qsize0(), 32);
	fm_destroy(&fm);
}

/* v2 ring addresses: 64-bit in two halves; writes are ignored while the queue is ready. */
static void ring_addresses(void)
{
	setup(false);
	w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x12345000);
	w32(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x1);
	w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x22345000);
	w32(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0x2);
	w32(VIRTIO_MMIO_QUEUE_USED_LOW, 0x32345000);
	w32(VIRTIO_MMIO_QUEUE_USED_HIGH, 0x3);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, 0x112345000ULL);
	CHECK_EQ(drv_vq(dev, 0).avail_gpa, 0x222345000ULL);
	CHECK_EQ(drv_vq(dev, 0).used_gpa, 0x332345000ULL);
	/* The rings are outside RAM: enabling fails, the device wants a reset. */
	w32(VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_READY), 0);
	CHECK(r32(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	w32(VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(r32(VIRTIO_MMIO_STATUS), 0);

	w32(VIRTIO_MMIO_QUEUE_NUM, 16);
	w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x10000);
	w32(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x11000);
	w32(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	w32(VIRTIO_MMIO_QUEUE_USED_LOW, 0x12000);
	w32(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	w32(VIRTIO_MMIO_QUEUE_READY, 1);
	CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_READY), 1);
	w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x20000);
	w32(VIRTIO_MMIO_QUEUE_DESC_HIGH, 5);
	w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x21000);
	w32(VIRTIO_MMIO_QUEUE_USED_LOW, 0x22000);
	w32(VIRTIO_MMIO_QUEUE_USED_HIGH, 5);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, 0x10000);
	CHECK_EQ(drv_vq(dev, 0).avail_gpa, 0x11000);
	CHECK_EQ(drv_vq(dev, 0).used_gpa, 0x12000);
	/* Disabled, the queue keeps its addresses and takes new ones. */
	w32(VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_READY), 0);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, 0x10000);
	w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x20000);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, 0x20000);
	/* QueueReady is bit 0 only. */
	w32(VIRTIO_MMIO_QUEUE_READY, 2);
	CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_READY), 0);
	fm_destroy(&fm);
}

/* Legacy: the rings in one block at QueuePFN * GuestPageSize, the used ring at QueueAlign. */
static void legacy_queue_pfn_layout(void)
{
	setup(true);
	w32(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
	w32(VIRTIO_MMIO_QUEUE_NUM, 16);
	w32(VIRTIO_MMIO_QUEUE_ALIGN, 4096);
	w32(VIRTIO_MMIO_QUEUE_PFN, 0x10);
	CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_PFN), 0x10);
	CHECK(drv_vq(dev, 0).ready);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, 0x10000);
	CHECK_EQ(drv_vq(dev, 0).avail_gpa, 0x10000 + 16 * 16);
	CHECK_EQ(drv_vq(dev, 0).used_gpa, 0x11000);
	CHECK_EQ(drv_vq(dev, 0).size, 16);
	/* Not while ready: the PFN stays, the queue does not move. */
	w32(VIRTIO_MMIO_QUEUE_PFN, 0x20);
	CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_PFN), 0x10);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, 0x10000);
	/* PFN 0 disables it. */
	w32(VIRTIO_MMIO_QUEUE_PFN, 0);
	CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_PFN), 0);
	CHECK(!drv_vq(dev, 0).ready);
	/* Another page size and alignment. */
	w32(VIRTIO_MMIO_GUEST_PAGE_SIZE, 0x2000);
	w32(VIRTIO_MMIO_QUEUE_ALIGN, 64);
	w32(VIRTIO_MMIO_QUEUE_PFN, 0x10);
	CHECK_EQ(drv_vq(dev, 0).desc_gpa, 0x20000);
	CHECK_EQ(drv_vq(dev, 0).avail_gpa, 0x20100);
	CHECK_EQ(drv_vq(dev, 0).used_gpa, 0x20140); /* 0x20100 + 4 + 2 * 16 + 2, up to 64 */
	/* The v2 registers do not exist in a legacy block. */
	CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_READY), 0);
	w32(VIRTIO_MMIO_QUEUE_READY, 0);
	CHECK(drv_vq(dev, 0).ready);
	fm_destroy(&fm);

	/* And QueuePFN does not exist in a v2 block. */
	setup(false);
	w32(VIRTIO_MMIO_QUEUE_NUM, 16);
	w32(VIRTIO_MMIO_QUEUE_PFN, 0x10);
	CHECK(!drv_vq(dev, 0).ready);
	CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_PFN), 0);
	fm_destroy(&fm);
}

/* ---- status, reset, interrupts ---- */

static void status_and_reset(void)
{
	for (int legacy = 0; legacy < 2; legacy++) {
		setup(legacy);
		w32(VIRTIO_MMIO_STATUS, S_ACK);
		CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK);
		/* The driver cannot set NEEDS_RESET. */
		w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | VIRTIO_CONFIG_S_NEEDS_RESET);
		CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
		/* Only the low byte is status. */
		w32(VIRTIO_MMIO_STATUS, 0x100 | S_ACK | S_DRV);
		CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK | S_DRV);
		w32(VIRTIO_MMIO_QUEUE_SEL, 3);
		w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
		w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 5);
		if (legacy) {
			w32(VIRTIO_MMIO_QUEUE_SEL, 0);
			w32(VIRTIO_MMIO_QUEUE_NUM, 16);
			w32(VIRTIO_MMIO_QUEUE_PFN, 0x10);
			CHECK(drv_vq(dev, 0).ready);
			w32(VIRTIO_MMIO_QUEUE_SEL, 3);
		}
		CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
		w32(VIRTIO_MMIO_STATUS, 0);
		CHECK_EQ(r32(VIRTIO_MMIO_STATUS), 0);
		/* The selectors are back at 0, the PFN cleared with its queue. */
		CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
		CHECK_EQ(r32(VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)F_RING);
		CHECK_EQ(r32(VIRTIO_MMIO_QUEUE_PFN), 0);
		CHECK(!drv_vq(dev, 0).ready);
		CHECK_EQ(qsize0(), QMAX);
		/* A driver word now lands at select 0. */
		w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
		w32(VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_RING_F_EVENT_IDX);
		pthread_mutex_lock(&dev->lock);
		CHECK_EQ(dev->driver_features, 1ULL << VIRTIO_RING_F_EVENT_IDX);
		pthread_mutex_unlock(&dev->lock);
		fm_destroy(&fm);
	}
}

/* The driver cannot take back FEATURES_OK or DRIVER_OK short of a reset: the features the
 * device accepted stay fixed, and a running device stays running. */
static void status_bits_stay_until_reset(void)
{
	setup(false);
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(F_V1 >> 32));
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK);
	/* Cleared FEATURES_OK, then features the device does not offer. */
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_DOK);
	CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	pthread_mutex_lock(&dev->lock);
	CHECK_EQ(dev->driver_features, F_V1);
	pthread_mutex_unlock(&dev->lock);
	/* Cleared DRIVER_OK. */
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK);
	/* The other bits are the driver's to write (FAILED, say); only a reset clears it all. */
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK | S_DOK | VIRTIO_CONFIG_S_FAILED);
	CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_FOK | S_DOK | VIRTIO_CONFIG_S_FAILED);
	w32(VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(r32(VIRTIO_MMIO_STATUS), 0);
	fm_destroy(&fm);
}

/* A legacy driver has no FEATURES_OK: at DRIVER_OK the device drops what it did not offer
 * (here: everything but the ring features; a legacy block has no VERSION_1), and from then on
 * the features are fixed. */
static void legacy_features_at_driver_ok(void)
{
	setup(true);
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_DOK);
	CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | S_DOK);
	pthread_mutex_lock(&dev->lock);
	CHECK_EQ(dev->driver_features, (uint32_t)F_RING);
	pthread_mutex_unlock(&dev->lock);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, 0);
	pthread_mutex_lock(&dev->lock);
	CHECK_EQ(dev->driver_features, (uint32_t)F_RING);
	pthread_mutex_unlock(&dev->lock);
	/* After a reset they are the driver's to write again. */
	w32(VIRTIO_MMIO_STATUS, 0);
	w32(VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_RING_F_EVENT_IDX);
	pthread_mutex_lock(&dev->lock);
	CHECK_EQ(dev->driver_features, 1ULL << VIRTIO_RING_F_EVENT_IDX);
	pthread_mutex_unlock(&dev->lock);
	fm_destroy(&fm);
}

static void interrupt_status_and_ack(void)
{
	setup(false);
	CHECK_EQ(r32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	pthread_mutex_lock(&dev->lock);
	virtio_dev_fail(dev, "test"); /* a config interrupt */
	pthread_mutex_unlock(&dev->lock);
	CHECK_EQ(r32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	CHECK_EQ(fm_irqfd_count(&fm, GSI), 1);
	/* Reading does not acknowledge; ACK clears the bits written, and only those. */
	CHECK_EQ(r32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	w32(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	CHECK_EQ(r32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	wr(VIRTIO_MMIO_INTERRUPT_ACK, 0xff, 1); /* not 32-bit: ignored */
	CHECK_EQ(r32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	w32(VIRTIO_MMIO_INTERRUPT_ACK, 0xffffffff);
	CHECK_EQ(r32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* A reset clears it too. */
	w32(VIRTIO_MMIO_STATUS, 0);
	pthread_mutex_lock(&dev->lock);
	virtio_dev_fail(dev, "test");
	pthread_mutex_unlock(&dev->lock);
	CHECK_EQ(r32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	w32(VIRTIO_MMIO_STATUS, 0);
	CHECK_EQ(r32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	fm_destroy(&fm);
}

/* ---- config space ---- */

static void config_space_bounds(void)
{
	struct console_sink sink;
	struct virtio_dev *d;
	struct outq *out;
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	log_set_level(LOG_ERROR);
	fm_init(&fm, RAM);
	if (null < 0 || outq_create(&fm.loop, null, 4096, &out) ||
	    virtio_console_create(&(struct virtio_env){ &fm.mem, &fm.loop }, out, &d))
		abort();
	setup_dev(d, false);
	/* struct virtio_console_config: cols 80, rows 25, max_nr_ports 0, emerg_wr 0: 12 bytes. */
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG, 2), 80);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG + 2, 2), 25);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG, 4), 80 | 25 << 16);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG, 8), 80 | 25 << 16);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG + 1, 1), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG + 2, 1), 25);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG + 8, 4), 0);
	/* Past the end (or straddling it): 0. */
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG + 10, 4), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG + 8, 8), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG + 12, 4), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_SLOT_SIZE - 8, 8), 0);
	CHECK_EQ(rd(VIRTIO_MMIO_SLOT_SIZE - 1, 1), 0);
	/* The console's config is the device's: writes are dropped. */
	wr(VIRTIO_MMIO_CONFIG, 0x12345678, 4);
	wr(VIRTIO_MMIO_CONFIG + 8, ~0ULL, 8);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG, 4), 80 | 25 << 16);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG + 8, 4), 0);
	/* The slot ends where it ends: an access straddling it is nobody's. */
	CHECK_EQ(rd(VIRTIO_MMIO_SLOT_SIZE - 2, 4), 0xffffffff);
	/* A config change: the generation moves (v2 register). */
	CHECK_EQ(r32(VIRTIO_MMIO_CONFIG_GENERATION), 0);
	sink = virtio_console_sink(d);
	sink.resize(sink.dev, 100, 40);
	CHECK_EQ(r32(VIRTIO_MMIO_CONFIG_GENERATION), 1);
	CHECK_EQ(rd(VIRTIO_MMIO_CONFIG, 4), 100 | 40 << 16);
	fm_destroy(&fm);
	outq_destroy(out);
	close(null);
}

/* ---- a request, end to end ---- */

#define QSIZE   16
#define RING    0x10000ULL
#define BUF     0x40000ULL
#define BUF_LEN 64

/* The driver's bring-up through the registers, queue 0 at RING. */
static void bring_up(struct drv *d, bool legacy)
{
	uint64_t desc = RING, avail = RING + 16 * QSIZE, used = RING + 0x1000;

	drv_init(d, &fm.mem, QSIZE, desc, avail, used);
	w32(VIRTIO_MMIO_STATUS, S_ACK);
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV);
	if (!legacy) {
		w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
		w32(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(F_V1 >> 32));
		w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | S_FOK);
	}
	w32(VIRTIO_MMIO_QUEUE_SEL, 0);
	w32(VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	if (legacy) {
		w32(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
		w32(VIRTIO_MMIO_QUEUE_ALIGN, 4096);
		w32(VIRTIO_MMIO_QUEUE_PFN, RING >> 12);
	} else {
		w32(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
		w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
		w32(VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
		w32(VIRTIO_MMIO_QUEUE_READY, 1);
	}
	w32(VIRTIO_MMIO_STATUS, S_ACK | S_DRV | (legacy ? 0 : S_FOK) | S_DOK);
	CHECK_EQ(r32(VIRTIO_MMIO_STATUS), S_ACK | S_DRV | (legacy ? 0 : S_FOK) | S_DOK);
	CHECK(drv_vq(dev, 0).ready);
	CHECK_EQ(drv_vq(dev, 0).used_gpa, used);
}

static void post_buffer(struct drv *d, uint16_t i)
{
	memset(g2h(&fm.mem, BUF + BUF_LEN * i, BUF_LEN), 0, BUF_LEN);
	drv_desc(d, i, BUF + BUF_LEN * i, BUF_LEN, VRING_DESC_F_WRITE, 0);
	drv_post(d, i);
}

static void request_through_queue(void)
{
	for (int legacy = 0; legacy < 2; legacy++) {
		const struct machine_ioeventfd *io;
		uint32_t kick = 0;
		struct drv d;

		setup(legacy);
		/* The irqfd on the slot's GSI, and the notify ioeventfd: 4 bytes, queue 0. */
		CHECK_EQ(fm.nirqfds, 1);
		CHECK_EQ(fm.irqfds[0].gsi, GSI);
		io = fm_ioeventfd_at(&fm, BASE + VIRTIO_MMIO_QUEUE_NOTIFY, false);
		CHECK(io != NULL);
		if (!io)
			return;
		CHECK_EQ(io->fd, virtio_kick_fd(dev, 0));
		CHECK_EQ(io->len, 4);
		CHECK(io->datamatch);
		CHECK_EQ(io->data, 0);

		bring_up(&d, legacy);
		post_buffer(&d, 0);
		/* The kick goes to the ioeventfd, the event loop serves it. */
		CHECK(fm_guest_write(&fm, false, BASE + VIRTIO_MMIO_QUEUE_NOTIFY, &kick, 4));
		CHECK(fm_run_ready(&fm, 4) >= 1);
		CHECK_EQ(d.used->idx, 1);
		CHECK_EQ(d.used->ring[0].id, 0);
		CHECK_EQ(d.used->ring[0].len, BUF_LEN);
		CHECK(!guest_bytes_all(&fm.mem, BUF, BUF_LEN, 0));
		CHECK_EQ(r32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
		CHECK_EQ(fm_irqfd_count(&fm, GSI), 1);
		w32(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
		CHECK_EQ(r32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);

		/* A notification that exits to mica (no ioeventfd took it) is served too. */
		post_buffer(&d, 1);
		w32(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		CHECK_EQ(d.used->idx, 2);
		CHECK_EQ(d.used->ring[1].id, 1);
		CHECK_EQ(fm_irqfd_count(&fm, GSI), 1);
		CHECK_EQ(atomic_load(&dev->stats.notifies_userspace), 1);
		/* Another queue's index matches no ioeventfd and is ignored. */
		post_buffer(&d, 2);
		kick = 1;
		CHECK(!fm_guest_write(&fm, false, BASE + VIRTIO_MMIO_QUEUE_NOTIFY, &kick, 4));
		w32(VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
		CHECK_EQ(fm_run_ready(&fm, 4), 0);
		CHECK_EQ(d.used->idx, 2);
		CHECK_EQ(fm_irqfd_count(&fm, GSI), 0);
		CHECK_EQ(atomic_load(&dev->stats.notifies_ignored), 2);
		fm_destroy(&fm);
	}
}

TEST_MAIN("mmio", T(identity_registers), T(second_slot), T(fresh_register_block),
	  T(non_word_accesses), T(feature_selects), T(queue_sel_out_of_range), T(queue_size_rules),
	  T(ring_addresses), T(legacy_queue_pfn_layout), T(status_and_reset),
	  T(status_bits_stay_until_reset), T(legacy_features_at_driver_ok),
	  T(interrupt_status_and_ack), T(config_space_bounds), T(request_through_queue))

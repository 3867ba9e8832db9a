/* libFuzzer target: the virtio transports (virtio-mmio v2 and legacy, virtio-pci modern and
 * transitional) driven by a byte-coded program of register accesses of every width at any
 * offset (past the ends too, both BARs, config space through ECAM and 0xcf8/0xcfc, the
 * PCI_CFG window), interleaved with queue activity: a real virtio-rng behind the transport,
 * rings and buffers in a small guest RAM, kicks through the notify ioeventfds served by the
 * event loop (run by hand), interrupts raised as the event loop raises them. Runs on the fake
 * machine of the unit tests (tests/unit/fake_machine.h). Build and run with `make fuzz`.
 *
 * Input: [0] header: bits 0-1 the transport (mmio, mmio legacy, pci, pci transitional), bit 2
 * zero-length MMIO ioeventfds (else 2-byte datamatch ones); then operations (see run_op).
 *
 * Checks beyond the sanitizers, after every operation:
 *   - every read returns what the register can hold: non-32-bit and unknown virtio-mmio
 *     registers 0, QueueNumMax/queue_size 0 or allowed sizes, QueuePFN 0 or a value the
 *     program wrote, feature words one of the device's or 0, ISR/InterruptStatus within its
 *     two bits, vectors 0, 1 or NO_VECTOR, nothing past a structure but 0 (or all-ones off the
 *     device), status bits only ones the program wrote (or NEEDS_RESET);
 *   - the device's state is one the spec allows: DRIVER_OK (modern) only with FEATURES_OK,
 *     FEATURES_OK or DRIVER_OK only with features the device offers;
 *   - virtio-pci: INTx level == (ISR != 0) while MSI-X is off, 0 while it is on; the line is
 *     the level unless INTx-disable; the notify ioeventfds are exactly where the BARs are
 *     mapped; MSI routes only for the device's vectors;
 *   - the device writes guest RAM only inside writable buffers it popped and the used ring
 *     (virtq_pop/virtq_push/virtq_enable_kicks are wrapped at link time to see them), and
 *     pushes only the chain it popped, with no more than its writable length. */
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>

#include "devices/pci.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/unit/fake_machine.h"
#include "tests/unit/vring_driver.h"
#include "vmm/layout.h"
#include "vmm/log.h"

#define RAM_SIZE  0x10000ULL
#define MAX_OPS   256
#define MMIO_BASE VIRTIO_MMIO_BASE
#define INTX_GSI  17
#define QMAX      256
#define NVEC      2
#define DESC      0x1000ULL   /* the harness's rings: legacy layout from here */
#define F_V1      (1ULL << VIRTIO_F_VERSION_1)
#define F_RING    ((1ULL << VIRTIO_RING_F_INDIRECT_DESC) | (1ULL << VIRTIO_RING_F_EVENT_IDX))
#define MAX_ALLOWED 8192

enum transport { T_MMIO, T_MMIO_LEGACY, T_PCI, T_PCI_TRANSITIONAL };

static struct fake_machine fm;
static struct guest_mem mem;
static uint8_t *ram;
static uint8_t shadow[RAM_SIZE];
static enum transport kind;
static struct virtio_dev *dev;
static struct virtio_pci *vp;    /* the PCI transport's state, for the checks */
static struct drv drv;
static uint16_t qsize;

/* What the program wrote: every 32-bit value, each once (QueuePFN reads must be among them;
 * when there are too many to keep, any value is), and every byte (status bits must be among
 * them). */
static uint32_t words[2 * MAX_OPS + 64];
static unsigned nwords;
static bool words_full;
static uint8_t written_bits;

/* What the device may write in the current operation. */
static struct { const uint8_t *p; uint64_t len; } allowed[MAX_ALLOWED];
static unsigned nallowed;
static bool device_ran, allowed_overflow;
static struct { bool valid; uint16_t head; uint64_t write_len; } last_pop[VIRTIO_MAX_QUEUES];

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=32";
}

/* ---- watching the device (linked with -Wl,--wrap) ---- */

/* [p, p + len) lies in guest RAM. */
static bool fuzz_ram_has(const uint8_t *p, uint64_t len)
{
	return p >= ram && len <= RAM_SIZE && (uint64_t)(p - ram) <= RAM_SIZE - len;
}

int __real_virtq_pop(struct virtq *vq, struct virtq_req *req, enum virtq_dir dir, const char **why);
void __real_virtq_push(struct virtq *vq, uint16_t head, uint32_t written);
bool __real_virtq_enable_kicks(struct virtq *vq);
int __wrap_virtq_pop(struct virtq *vq, struct virtq_req *req, enum virtq_dir dir, const char **why);
void __wrap_virtq_push(struct virtq *vq, uint16_t head, uint32_t written);
bool __wrap_virtq_enable_kicks(struct virtq *vq);

static void allow(const void *p, uint64_t len)
{
	device_ran = true;
	if (nallowed == MAX_ALLOWED) {
		allowed_overflow = true;
		return;
	}
	allowed[nallowed].p = p;
	allowed[nallowed++].len = len;
}

static void allow_used_ring(const struct virtq *vq)
{
	if (vq->used)
		allow(vq->used, 6 + 8ULL * vq->size);
}

int __wrap_virtq_pop(struct virtq *vq, struct virtq_req *req, enum virtq_dir dir, const char **why)
{
	int q = (int)(vq - dev->vqs), err = __real_virtq_pop(vq, req, dir, why);

	device_ran = true;
	FUZZ_ASSERT(q >= 0 && q < dev->ops->num_queues);
	last_pop[q].valid = err == 0;
	if (err)
		return err;
	last_pop[q].head = req->head;
	last_pop[q].write_len = req->write_len;
	for (int i = 0; i < req->nsegs; i++) {
		const uint8_t *p = req->segs[i].hva;

		FUZZ_ASSERT(fuzz_ram_has(p, req->segs[i].len));
		if (req->segs[i].write)
			allow(p, req->segs[i].len);
	}
	return 0;
}

void __wrap_virtq_push(struct virtq *vq, uint16_t head, uint32_t written)
{
	int q = (int)(vq - dev->vqs);

	/* rng pushes each chain right after popping it: the one popped last. */
	FUZZ_ASSERT(q >= 0 && q < dev->ops->num_queues && last_pop[q].valid);
	FUZZ_ASSERT(head == last_pop[q].head && written <= last_pop[q].write_len);
	last_pop[q].valid = false;
	allow_used_ring(vq);
	__real_virtq_push(vq, head, written);
}

bool __wrap_virtq_enable_kicks(struct virtq *vq)
{
	allow_used_ring(vq);
	return __real_virtq_enable_kicks(vq);
}

static bool is_allowed(uint64_t off)
{
	const uint8_t *p = ram + off;

	for (unsigned i = 0; i < nallowed; i++)
		if (p >= allowed[i].p && p < allowed[i].p + allowed[i].len)
			return true;
	return false;
}

/* Every byte the device changed in this operation is in a buffer it was given or a used ring. */
static void check_ram_writes(void)
{
	if (device_ran && !allowed_overflow) {
		for (uint64_t o = 0; o < RAM_SIZE; o += 64) {
			if (!memcmp(ram + o, shadow + o, 64))
				continue;
			for (uint64_t b = o; b < o + 64; b++)
				FUZZ_ASSERT(ram[b] == shadow[b] || is_allowed(b));
		}
	}
	if (device_ran)
		memcpy(shadow, ram, RAM_SIZE);
	device_ran = allowed_overflow = false;
	nallowed = 0;
}

/* The harness (the driver) wrote RAM. */
static void driver_wrote(const void *p, uint64_t len)
{
	memcpy(shadow + ((const uint8_t *)p - ram), p, len);
}

/* ---- the guest's accesses ---- */

static bool is_pci(void)
{
	return kind == T_PCI || kind == T_PCI_TRANSITIONAL;
}

static uint64_t bar_addr(int bar)
{
	uint32_t lo = pci_cfg_read32(&vp->pdev, PCI_BASE_ADDRESS_0 + 4 * bar);

	if (lo & PCI_BASE_ADDRESS_SPACE_IO)
		return lo & ~3u;
	if (bar != 4)
		return lo & ~0xfu;
	return (lo & ~0xfu) | (uint64_t)pci_cfg_read32(&vp->pdev, PCI_BASE_ADDRESS_5) << 32;
}

static bool written_word(uint32_t v)
{
	for (unsigned i = 0; i < nwords; i++)
		if (words[i] == v)
			return true;
	return words_full;
}

static void note_word(uint32_t w)
{
	if (written_word(w))
		return;
	if (nwords == ARRAY_SIZE(words))
		words_full = true;
	else
		words[nwords++] = w;
}

static void note_write(uint64_t v, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		written_bits |= (uint8_t)(v >> (8 * i));
	/* Any width: the legacy BAR takes a 2-byte write to its 32-bit PFN, say. */
	note_word((uint32_t)v);
	if (len == 8)
		note_word((uint32_t)(v >> 32));
}

static void mmio_wr(uint64_t off, uint32_t v)
{
	note_write(v, 4);
	bus_write(&fm.mmio, MMIO_BASE + off, &v, 4);
}

static void bar4_wr(uint64_t off, uint64_t v, uint32_t len)
{
	note_write(v, len);
	bus_write(&fm.mmio, bar_addr(4) + off, &v, len);
}

static void bar0_wr(uint64_t off, uint32_t v, uint32_t len)
{
	note_write(v, len);
	bus_write(&fm.pio, bar_addr(0) + off, &v, len);
}

static void cfg_wr(uint32_t off, uint32_t v, uint32_t len)
{
	note_write(v, len);
	bus_write(&fm.mmio, PCI_ECAM_BASE + (1 << 15) + off, &v, len);
}

#define C(field) offsetof(struct virtio_pci_common_cfg, field)
#define CSIZE(field) sizeof(((struct virtio_pci_common_cfg *)0)->field)

/* ---- what a read may return ---- */

static bool feature_word(uint32_t v, bool legacy)
{
	return v == 0 || v == (uint32_t)F_RING || (!legacy && v == (uint32_t)(F_V1 >> 32));
}

static bool status_ok(uint32_t v)
{
	return !(v & ~(uint32_t)(written_bits | VIRTIO_CONFIG_S_NEEDS_RESET));
}

static void check_mmio_read(uint64_t off, uint32_t len, uint64_t v, bool claimed)
{
	bool legacy = kind == T_MMIO_LEGACY;

	if (!claimed) {
		FUZZ_ASSERT(off + len > VIRTIO_MMIO_SLOT_SIZE);
		return;
	}
	if (off >= VIRTIO_MMIO_CONFIG) {
		FUZZ_ASSERT(v == 0); /* rng has no config space */
		return;
	}
	if (len != 4 || (off & 3)) {
		FUZZ_ASSERT(v == 0);
		return;
	}
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE: FUZZ_ASSERT(v == 0x74726976); return;
	case VIRTIO_MMIO_VERSION: FUZZ_ASSERT(v == (legacy ? 1u : 2u)); return;
	case VIRTIO_MMIO_DEVICE_ID: FUZZ_ASSERT(v == 4); return;
	case VIRTIO_MMIO_VENDOR_ID: FUZZ_ASSERT(v == 0x6163696d); return;
	case VIRTIO_MMIO_DEVICE_FEATURES: FUZZ_ASSERT(feature_word(v, legacy)); return;
	case VIRTIO_MMIO_QUEUE_NUM_MAX: FUZZ_ASSERT(v == 0 || v == QMAX); return;
	case VIRTIO_MMIO_INTERRUPT_STATUS: FUZZ_ASSERT(v <= 3); return;
	case VIRTIO_MMIO_STATUS: FUZZ_ASSERT(status_ok(v)); return;
	case VIRTIO_MMIO_QUEUE_PFN:
		FUZZ_ASSERT(v == 0 || (legacy && written_word(v)));
		return;
	case VIRTIO_MMIO_QUEUE_READY: FUZZ_ASSERT(v <= 1 && (!legacy || !v)); return;
	case VIRTIO_MMIO_CONFIG_GENERATION: return;
	case VIRTIO_MMIO_SHM_LEN_LOW:   /* no shared memory region: length (and base) -1 */
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH: FUZZ_ASSERT(v == (legacy ? 0 : 0xffffffff)); return;
	}
	FUZZ_ASSERT(v == 0); /* write-only or nothing there */
}

static bool vector_ok(uint64_t v)
{
	return v < NVEC || v == VIRTIO_MSI_NO_VECTOR;
}

static bool qsize_ok(uint64_t v)
{
	return v <= QMAX && !(v & (v - 1));
}

/* A read inside BAR 4, mapped: fields read at their width and offset are checked. */
static void check_bar4_read(uint64_t off, uint32_t len, uint64_t v)
{
	if (off >= VPCI_ISR && off < VPCI_ISR + VPCI_REGION) {
		FUZZ_ASSERT(off == VPCI_ISR ? v <= 3 : v == 0);
		return;
	}
	if ((off >= VPCI_DEVCFG && off < VPCI_NOTIFY + VPCI_REGION) || off >= VPCI_MSIX_PBA + VPCI_REGION) {
		FUZZ_ASSERT(v == 0); /* no device config (rng), notify reads 0, nothing after PBA */
		return;
	}
	if (off >= VPCI_MSIX_PBA) {
		FUZZ_ASSERT(off == VPCI_MSIX_PBA ? v < (1u << NVEC) : v == 0);
		return;
	}
	if (off >= VPCI_MSIX_TABLE) {
		uint64_t t = off - VPCI_MSIX_TABLE;

		if (t >= NVEC * MSIX_ENTRY_SIZE || (len != 4 && len != 8) || (t % len))
			FUZZ_ASSERT(v == 0);
		else if (t % 16 == PCI_MSIX_ENTRY_VECTOR_CTRL)
			FUZZ_ASSERT(v <= 1);
		else if (len == 8 && t % 16 == 8)
			FUZZ_ASSERT((v >> 32) <= 1);
		return;
	}
	if (off >= sizeof(struct virtio_pci_common_cfg)) {
		FUZZ_ASSERT(v == 0);
		return;
	}
#define FIELD(f) (off == C(f) && len == CSIZE(f))
	if (FIELD(device_feature))
		FUZZ_ASSERT(feature_word(v, false));
	else if (FIELD(msix_config) || FIELD(queue_msix_vector))
		FUZZ_ASSERT(vector_ok(v));
	else if (FIELD(num_queues))
		FUZZ_ASSERT(v == 1);
	else if (FIELD(device_status))
		FUZZ_ASSERT(status_ok(v));
	else if (FIELD(queue_size))
		FUZZ_ASSERT(qsize_ok(v));
	else if (FIELD(queue_enable))
		FUZZ_ASSERT(v <= 1);
	else if (FIELD(queue_notify_off))
		FUZZ_ASSERT(v == 0);
	else if (FIELD(guest_feature_select) || FIELD(device_feature_select))
		FUZZ_ASSERT(written_word(v) || v == 0);
#undef FIELD
}

/* A read inside the legacy BAR, mapped: registers read at their width are checked. */
static void check_bar0_read(uint64_t off, uint32_t len, uint64_t v)
{
	uint32_t cfg = msix_enabled(&vp->msix) ? 24 : 20;

	if (off >= cfg) {
		FUZZ_ASSERT(v == 0); /* rng has no config space */
		return;
	}
	switch (off) {
	case VIRTIO_PCI_HOST_FEATURES: FUZZ_ASSERT(len != 4 || feature_word(v, true)); break;
	case VIRTIO_PCI_QUEUE_PFN: FUZZ_ASSERT(len != 4 || v == 0 || written_word(v)); break;
	case VIRTIO_PCI_QUEUE_NUM: FUZZ_ASSERT(len != 2 || v == 0 || v == QMAX); break;
	case VIRTIO_PCI_STATUS: FUZZ_ASSERT(len != 1 || status_ok(v)); break;
	case VIRTIO_PCI_ISR: FUZZ_ASSERT(v <= 3); break;
	case VIRTIO_MSI_CONFIG_VECTOR: case VIRTIO_MSI_QUEUE_VECTOR:
		FUZZ_ASSERT(len != 2 || vector_ok(v));
		break;
	case VIRTIO_PCI_GUEST_FEATURES: case VIRTIO_PCI_QUEUE_SEL: break;
	default: FUZZ_ASSERT(v == 0);
	}
}

/* ---- operations ---- */

/* The BAR is decoded at base (a read there reached the device, not whatever else the guest
 * put it over). */
static bool mapped_at(int bar, uint64_t base)
{
	return vp->pdev.bars[bar].mapped && vp->pdev.bars[bar].mapped_addr == base;
}

static void do_access(const uint8_t **data, size_t *size, bool write)
{
	uint8_t spec = (uint8_t)fuzz_take(data, size, 1);
	uint32_t len = 1u << (spec & 3);
	unsigned region = (spec >> 2) & 7;
	uint64_t off = fuzz_take(data, size, 2), v = write ? fuzz_take(data, size, len) : 0;
	struct bus *b = &fm.mmio;
	uint64_t base;
	bool claimed;

	if (!is_pci()) {
		off %= VIRTIO_MMIO_SLOT_SIZE + 0x100;
		base = MMIO_BASE;
	} else if (region < 4) {
		off %= VPCI_BAR_SIZE + 0x100;
		base = bar_addr(4);
	} else if (region == 4) {
		off %= VPCI_LEGACY_BAR_SIZE + 0x10;
		base = bar_addr(0);
		b = &fm.pio;
		if (len == 8)
			len = 4;
	} else if (region == 5) {
		base = PCI_ECAM_BASE + (1 << 15); /* the device's config space */
		off %= PCI_CFG_SIZE;
	} else if (region == 6) {
		base = PCI_ECAM_BASE;             /* anyone's */
	} else {
		base = 0xcf8;
		off %= 8;
		b = &fm.pio;
		if (len == 8)
			len = 4;
	}
	if (write) {
		note_write(v, len);
		bus_write(b, base + off, &v, len);
		return;
	}
	claimed = bus_read(b, base + off, &v, len);
	if (!claimed)
		FUZZ_ASSERT(v == (len == 8 ? ~0ULL : (1ULL << (8 * len)) - 1));
	if (!is_pci())
		check_mmio_read(off, len, v, claimed);
	else if (region < 4 && claimed && mapped_at(4, base) && off + len <= VPCI_BAR_SIZE)
		check_bar4_read(off, len, v);
	else if (region == 4 && claimed && mapped_at(0, base) && off + len <= VPCI_LEGACY_BAR_SIZE)
		check_bar0_read(off, len, v);
	else if (region == 5 && off == 0 && (len == 2 || len == 4))
		FUZZ_ASSERT((v & 0xffff) == 0x1af4);
}

/* A driver's bring-up through the registers, rings at DESC (legacy layout), arg: the queue
 * size, MSI-X (pci), the legacy interface (transitional). */
static void bring_up(uint8_t arg)
{
	uint64_t avail, used;
	bool legacy_drv = kind == T_MMIO_LEGACY || (kind == T_PCI_TRANSITIONAL && (arg & 0x20));

	qsize = legacy_drv && is_pci() ? QMAX : 1u << (arg % 9);
	avail = DESC + 16ULL * qsize;
	used = ALIGN_UP(avail + 6 + 2ULL * qsize, 4096);
	drv_init(&drv, &mem, qsize, DESC, avail, used);
	memcpy(shadow, ram, RAM_SIZE);
	if (!is_pci()) {
		mmio_wr(VIRTIO_MMIO_STATUS, 0);
		mmio_wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
		if (!legacy_drv) {
			mmio_wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
			mmio_wr(VIRTIO_MMIO_DRIVER_FEATURES, F_V1 >> 32);
			mmio_wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
			mmio_wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(arg & 0x40 ? F_RING : 0));
			mmio_wr(VIRTIO_MMIO_STATUS, 0xb); /* ACKNOWLEDGE | DRIVER | FEATURES_OK */
		}
		mmio_wr(VIRTIO_MMIO_QUEUE_SEL, 0);
		mmio_wr(VIRTIO_MMIO_QUEUE_NUM, qsize);
		if (legacy_drv) {
			mmio_wr(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4096);
			mmio_wr(VIRTIO_MMIO_QUEUE_ALIGN, 4096);
			mmio_wr(VIRTIO_MMIO_QUEUE_PFN, DESC >> 12);
		} else {
			mmio_wr(VIRTIO_MMIO_QUEUE_DESC_LOW, DESC);
			mmio_wr(VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail);
			mmio_wr(VIRTIO_MMIO_QUEUE_USED_LOW, used);
			mmio_wr(VIRTIO_MMIO_QUEUE_READY, 1);
		}
		mmio_wr(VIRTIO_MMIO_STATUS, legacy_drv ? 0x7 : 0xf);
		return;
	}
	if (arg & 0x10) {
		uint16_t flags = PCI_MSIX_FLAGS_ENABLE;

		for (int v = 0; v < NVEC; v++) {
			bar4_wr(VPCI_MSIX_TABLE + 16 * v, 0xfee00000 + 0x1000 * v, 8);
			bar4_wr(VPCI_MSIX_TABLE + 16 * v + 8, 0x40 + v, 8);
		}
		cfg_wr(vp->msix.cap + PCI_MSIX_FLAGS, flags, 2);
	}
	if (legacy_drv) {
		bar0_wr(VIRTIO_PCI_STATUS, 0, 1);
		bar0_wr(VIRTIO_PCI_STATUS, 0x3, 1);
		bar0_wr(VIRTIO_PCI_GUEST_FEATURES, arg & 0x40 ? (uint32_t)F_RING : 0, 4);
		bar0_wr(VIRTIO_PCI_QUEUE_SEL, 0, 2);
		if (arg & 0x10) {
			bar0_wr(VIRTIO_MSI_CONFIG_VECTOR, 1, 2);
			bar0_wr(VIRTIO_MSI_QUEUE_VECTOR, 0, 2);
		}
		bar0_wr(VIRTIO_PCI_QUEUE_PFN, DESC >> 12, 4);
		bar0_wr(VIRTIO_PCI_STATUS, 0x7, 1);
		return;
	}
	bar4_wr(C(device_status), 0, 1);
	bar4_wr(C(device_status), 0x3, 1);
	bar4_wr(C(guest_feature_select), 1, 4);
	bar4_wr(C(guest_feature), F_V1 >> 32, 4);
	bar4_wr(C(guest_feature_select), 0, 4);
	bar4_wr(C(guest_feature), arg & 0x40 ? (uint32_t)F_RING : 0, 4);
	bar4_wr(C(device_status), 0xb, 1);
	bar4_wr(C(msix_config), 1, 2);
	bar4_wr(C(queue_select), 0, 2);
	bar4_wr(C(queue_size), qsize, 2);
	bar4_wr(C(queue_msix_vector), 0, 2);
	bar4_wr(C(queue_desc_lo), DESC, 8);
	bar4_wr(C(queue_avail_lo), avail, 8);
	bar4_wr(C(queue_used_lo), used, 8);
	bar4_wr(C(queue_enable), 1, 2);
	bar4_wr(C(device_status), 0xf, 1);
}

/* A chain of one descriptor at the harness's ring, posted. */
static void post(const uint8_t **data, size_t *size)
{
	uint16_t i = (uint16_t)fuzz_take(data, size, 1), flags;
	uint64_t addr = fuzz_take(data, size, 2);
	uint32_t len = (uint32_t)fuzz_take(data, size, 2);
	uint16_t next = (uint16_t)fuzz_take(data, size, 1);

	flags = (uint16_t)fuzz_take(data, size, 1) & 7;
	if (!drv.size)
		return;
	i %= drv.size;
	drv_desc(&drv, i, addr, len, flags, next % drv.size);
	drv_post(&drv, i);
	driver_wrote(&drv.desc[i], sizeof(drv.desc[i]));
	driver_wrote(drv.avail, 6 + 2ULL * drv.size);
}

/* A kick through the notify address, as KVM's ioeventfd (or the exit, if none matches) would
 * take it; then the event loop runs. */
static void kick(uint8_t arg)
{
	uint32_t q = arg & 1; /* queue 0, or 1 that does not exist */

	if (!is_pci())
		fm_guest_write(&fm, false, MMIO_BASE + VIRTIO_MMIO_QUEUE_NOTIFY, &q, 4);
	else if (kind == T_PCI_TRANSITIONAL && (arg & 2))
		fm_guest_write(&fm, true, bar_addr(0) + VIRTIO_PCI_QUEUE_NOTIFY, &q, 2);
	else
		fm_guest_write(&fm, false, bar_addr(4) + VPCI_NOTIFY + 4 * q, &q, 2);
	fm_run_ready(&fm, 8);
}

/* An interrupt raised as the event loop raises it. */
static void raise_irq(uint8_t arg)
{
	pthread_mutex_lock(&dev->lock);
	if (!(arg & 1) && virtio_queue_live(dev, 0))
		virtio_notify_used(dev, 0);
	else if ((arg & 1) && (dev->status & VIRTIO_CONFIG_S_DRIVER_OK))
		virtio_config_changed(dev);
	pthread_mutex_unlock(&dev->lock);
}

static void raw_ram(const uint8_t **data, size_t *size)
{
	uint64_t off = fuzz_take(data, size, 2) % RAM_SIZE;
	uint64_t n = fuzz_take(data, size, 1) % 33;

	n = MIN(n, RAM_SIZE - off);
	for (uint64_t i = 0; i < n; i++)
		ram[off + i] = (uint8_t)fuzz_take(data, size, 1);
	driver_wrote(ram + off, n);
}

static void run_op(const uint8_t **data, size_t *size)
{
	switch (fuzz_take(data, size, 1) % 8) {
	case 0: do_access(data, size, false); break;
	case 1: do_access(data, size, true); break;
	case 2: bring_up((uint8_t)fuzz_take(data, size, 1)); break;
	case 3: post(data, size); break;
	case 4: kick((uint8_t)fuzz_take(data, size, 1)); break;
	case 5: raise_irq((uint8_t)fuzz_take(data, size, 1)); break;
	case 6: raw_ram(data, size); break;
	case 7: fm_run_ready(&fm, 8); break;
	}
}

/* ---- invariants after each operation ---- */

static void check_state(void)
{
	uint8_t isr, status;
	uint64_t acked;
	bool msix;

	pthread_mutex_lock(&dev->lock);
	isr = dev->isr;
	status = dev->status;
	acked = dev->driver_features;
	msix = is_pci() && msix_enabled(&vp->msix);
	pthread_mutex_unlock(&dev->lock);
	FUZZ_ASSERT(isr <= 3);
	FUZZ_ASSERT(status_ok(status));
	/* (A transitional device driven through both interfaces at once is left alone.) */
	if ((kind == T_MMIO || kind == T_PCI) && (status & VIRTIO_CONFIG_S_DRIVER_OK))
		FUZZ_ASSERT(status & VIRTIO_CONFIG_S_FEATURES_OK);
	/* A running device runs with features it offers (a legacy one: 32 bits, no VERSION_1). */
	if (status & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK))
		FUZZ_ASSERT(!(acked & ~(kind == T_MMIO_LEGACY ? F_RING : F_RING | F_V1)));
	if (!is_pci())
		return;
	/* INTx: the ISR's while MSI-X is off, silent while it is on; the line obeys INTx-disable. */
	{
		bool disabled = pci_cfg_read16(&vp->pdev, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
		int level = vp->pdev.intx_level;

		FUZZ_ASSERT(level == (!msix && isr != 0));
		FUZZ_ASSERT(fm.irq_level[INTX_GSI] == (level && !disabled));
		FUZZ_ASSERT(vp->pdev.intx_line == fm.irq_level[INTX_GSI]);
	}
	/* Notify ioeventfds: exactly at the mapped BARs' notify addresses. */
	{
		const struct pci_bar *b4 = &vp->pdev.bars[4], *b0 = &vp->pdev.bars[0];
		int live = 0;

		for (int i = 0; i < fm.nioeventfds; i++)
			live += fm.ioeventfds[i].live;
		FUZZ_ASSERT(live == b4->mapped + (kind == T_PCI_TRANSITIONAL && b0->mapped));
		FUZZ_ASSERT(!b4->mapped || fm_ioeventfd_at(&fm, b4->mapped_addr + VPCI_NOTIFY, false));
		FUZZ_ASSERT(kind != T_PCI_TRANSITIONAL || !b0->mapped ||
			    fm_ioeventfd_at(&fm, b0->mapped_addr + VIRTIO_PCI_QUEUE_NOTIFY, true));
	}
	for (int g = 0; g < FM_GSIS; g++)
		FUZZ_ASSERT(!fm.msi[g].set || g == vp->msix.gsi[0] || g == vp->msix.gsi[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr = (uint8_t)fuzz_take(&data, &size, 1);
	struct pci_bus *bus = NULL;
	int err;

	if (!ram) {
		log_set_level(LOG_ERROR);
		ram = malloc(RAM_SIZE);
		FUZZ_ASSERT(ram);
		mem = (struct guest_mem){ .ram_size = RAM_SIZE, .nregions = 1,
					  .regions = { { 0, RAM_SIZE, ram } } };
	}
	memset(ram, 0, RAM_SIZE);
	memset(shadow, 0, RAM_SIZE);
	memset(&drv, 0, sizeof(drv));
	memset(last_pop, 0, sizeof(last_pop));
	nwords = nallowed = 0;
	words_full = false;
	written_bits = 0;
	device_ran = allowed_overflow = false;
	kind = hdr & 3;
	fm_init(&fm, 0);
	fm.mem = mem;
	fm.m.ioeventfd_no_length = hdr & 4;
	FUZZ_ASSERT(virtio_rng_create(&(struct virtio_env){ &fm.mem, &fm.loop }, &dev) == 0);
	if (is_pci()) {
		FUZZ_ASSERT(pci_bus_create(&fm.m, &bus) == 0);
		err = virtio_pci_attach(bus, &fm.m, dev, kind == T_PCI_TRANSITIONAL);
		vp = dev->transport_priv;
	} else {
		err = virtio_mmio_attach(&fm.m, dev, kind == T_MMIO_LEGACY);
	}
	FUZZ_ASSERT(err == 0 && machine_own(&fm.m, dev, virtio_dev_free) == 0);
	for (int n = 0; n < MAX_OPS && size; n++) {
		run_op(&data, &size);
		check_ram_writes();
		check_state();
	}
	fm_destroy(&fm);
	dev = NULL;
	vp = NULL;
	return 0;
}

/* The split virtqueue (devices/virtio/virtq.c) against simulated guest RAM: valid chains of
 * every shape, every malformed chain a hostile driver can build, index wrap-around and the
 * EVENT_IDX arithmetic. No KVM: the "guest" is this file writing rings into guest_mem. */
#include <errno.h>
#include <stdint.h>

#include "devices/virtio/virtq.h"
#include "tests/unit/test.h"
#include "tests/unit/vring_driver.h"
#include "vmm/util.h"

#define RAM      (16 * 1024 * 1024ULL)
#define DESC     0x10000ULL
#define AVAIL    0x20000ULL
#define USED     0x30000ULL
#define TABLE    0x40000ULL   /* indirect tables */
#define TABLE2   0x50000ULL
#define BUF      0x100000ULL  /* data buffers */

static struct guest_mem mem;
static struct drv d;
static struct virtq vq;
static struct virtq_req req;
static const char *why;

/* Guest RAM and a ready queue of `size` at the fixed ring addresses. */
static void setup(uint16_t size)
{
	if (!mem.map && test_guest_mem_init(&mem, RAM) < 0)
		abort();
	memset(mem.map, 0, 2 * 1024 * 1024);
	drv_init(&d, &mem, size, DESC, AVAIL, USED);
	virtq_reset(&vq, size);
	vq.desc_gpa = DESC;
	vq.avail_gpa = AVAIL;
	vq.used_gpa = USED;
	why = NULL;
	if (virtq_enable(&vq, &mem, &why) != 0)
		abort();
}

static bool seg_is(const struct virtq_seg *s, uint64_t gpa, uint32_t len, bool write)
{
	return s->hva == gpa_range(&mem, gpa, len) && s->len == len && s->write == write;
}

static int enable_with(uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	virtq_reset(&vq, size);
	vq.desc_gpa = desc;
	vq.avail_gpa = avail;
	vq.used_gpa = used;
	why = NULL;
	return virtq_enable(&vq, &mem, &why);
}

/* ---- virtq_enable ---- */

static void enable_refuses_bad_sizes(void)
{
	static const uint16_t bad[] = { 0, 3, 6, 100, 255, 257, 384, 512, 1024, 0x8000, 0xffff };

	setup(8);
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_EQ(enable_with(bad[i], DESC, AVAIL, USED), -EPROTO);
		CHECK(why && *why);
		CHECK(!vq.ready);
	}
	for (unsigned s = 1; s <= VIRTQ_MAX_SIZE; s <<= 1) {
		CHECK_EQ(enable_with(s, DESC, AVAIL, USED), 0);
		CHECK(vq.ready);
		CHECK_EQ(vq.last_avail, 0);
		CHECK_EQ(vq.used_idx, 0);
	}
}

static void enable_refuses_misaligned_rings(void)
{
	setup(8);
	CHECK_EQ(enable_with(8, DESC + 8, AVAIL, USED), -EPROTO);
	CHECK_EQ(enable_with(8, DESC + 1, AVAIL, USED), -EPROTO);
	CHECK_EQ(enable_with(8, DESC, AVAIL + 1, USED), -EPROTO);
	CHECK_EQ(enable_with(8, DESC, AVAIL, USED + 2), -EPROTO);
	CHECK_EQ(enable_with(8, DESC, AVAIL, USED + 1), -EPROTO);
	CHECK(!vq.ready);
	/* The minimum alignments are enough. */
	CHECK_EQ(enable_with(8, DESC + 16, AVAIL + 2, USED + 4), 0);
	CHECK(vq.ready);
}

static void enable_refuses_rings_outside_ram(void)
{
	setup(8);
	/* Each ring right at the end of RAM fits; one step further does not. */
	CHECK_EQ(enable_with(8, RAM - 16 * 8, AVAIL, USED), 0);
	CHECK_EQ(enable_with(8, RAM - 16 * 8 + 16, AVAIL, USED), -EPROTO);
	CHECK(why && *why);
	CHECK(!vq.ready && !vq.desc && !vq.avail && !vq.used);
	CHECK_EQ(enable_with(8, DESC, RAM - (6 + 2 * 8), USED), 0);
	CHECK_EQ(enable_with(8, DESC, RAM - (6 + 2 * 8) + 2, USED), -EPROTO);
	CHECK_EQ(enable_with(8, DESC, AVAIL, RAM - (6 + 8 * 8) - 2), 0); /* 4-aligned */
	CHECK_EQ(enable_with(8, DESC, AVAIL, RAM - (6 + 8 * 8) + 2), -EPROTO);
	CHECK_EQ(enable_with(8, RAM, AVAIL, USED), -EPROTO);
	CHECK_EQ(enable_with(8, 0xfffffffffffffff0ULL, AVAIL, USED), -EPROTO);
	CHECK_EQ(enable_with(8, DESC, 0xfffffffffffffffeULL, USED), -EPROTO);
	CHECK_EQ(enable_with(8, DESC, AVAIL, 0xfffffffffffffffcULL), -EPROTO);
	CHECK_EQ(enable_with(8, DESC, AVAIL, 1ULL << 40), -EPROTO);
	CHECK(!vq.ready);
}

/* ---- valid chains ---- */

static void empty_queue(void)
{
	setup(8);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_BOTH, &why), -ENOENT);
	virtq_reset(&vq, 8); /* not ready */
	drv_desc(&d, 0, BUF, 16, VRING_DESC_F_WRITE, 0);
	drv_post(&d, 0);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_BOTH, &why), -ENOENT);
	CHECK(!virtq_enable_kicks(&vq));
}

static void single_buffer(void)
{
	setup(8);
	drv_desc(&d, 5, BUF, 64, VRING_DESC_F_WRITE, 0);
	drv_post(&d, 5);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
	CHECK_EQ(req.head, 5);
	CHECK_EQ(req.nsegs, 1);
	CHECK(seg_is(&req.segs[0], BUF, 64, true));
	CHECK_EQ(req.write_len, 64);
	CHECK_EQ(req.read_len, 0);
	CHECK_EQ(vq.last_avail, 1);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), -ENOENT);

	CHECK_EQ(virtq_copy_to_writable(&req, "abc", 3), 3);
	CHECK(!memcmp(g2h(&mem, BUF, 3), "abc", 3));
	virtq_push(&vq, req.head, 3);
	CHECK_EQ(d.used->idx, 1);
	CHECK_EQ(d.used->ring[0].id, 5);
	CHECK_EQ(d.used->ring[0].len, 3);

	/* A readable one for a device that only reads. */
	drv_desc(&d, 2, BUF + 0x1000, 10, 0, 0);
	memcpy(g2h(&mem, BUF + 0x1000, 10), "0123456789", 10);
	drv_post(&d, 2);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_READS, &why), 0);
	CHECK_EQ(req.head, 2);
	CHECK(seg_is(&req.segs[0], BUF + 0x1000, 10, false));
	CHECK_EQ(req.read_len, 10);
	{
		char out[16] = { 0 };

		CHECK_EQ(virtq_copy_from_readable(&req, out, sizeof(out)), 10);
		CHECK(!memcmp(out, "0123456789", 10));
	}
}

static void readable_then_writable_chain(void)
{
	uint8_t out[32];

	setup(8);
	/* 0 -> 3 -> 1 -> 7: two readable, two writable, in an arbitrary descriptor order. */
	drv_desc(&d, 0, BUF, 4, VRING_DESC_F_NEXT, 3);
	drv_desc(&d, 3, BUF + 0x100, 6, VRING_DESC_F_NEXT, 1);
	drv_desc(&d, 1, BUF + 0x200, 5, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 7);
	drv_desc(&d, 7, BUF + 0x300, 100, VRING_DESC_F_WRITE, 0);
	memcpy(g2h(&mem, BUF, 4), "head", 4);
	memcpy(g2h(&mem, BUF + 0x100, 6), "er+tai", 6);
	drv_post(&d, 0);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_BOTH, &why), 0);
	CHECK_EQ(req.head, 0);
	CHECK_EQ(req.nsegs, 4);
	CHECK(seg_is(&req.segs[0], BUF, 4, false));
	CHECK(seg_is(&req.segs[1], BUF + 0x100, 6, false));
	CHECK(seg_is(&req.segs[2], BUF + 0x200, 5, true));
	CHECK(seg_is(&req.segs[3], BUF + 0x300, 100, true));
	CHECK_EQ(req.read_len, 10);
	CHECK_EQ(req.write_len, 105);

	memset(out, 0, sizeof(out));
	CHECK_EQ(virtq_copy_from_readable(&req, out, sizeof(out)), 10);
	CHECK(!memcmp(out, "header+tai", 10));
	CHECK_EQ(virtq_copy_from_readable(&req, out, 7), 7); /* stops at len */
	/* Writes go only to the writable segments, spilling from one into the next. */
	CHECK_EQ(virtq_copy_to_writable(&req, "0123456789", 10), 10);
	CHECK(!memcmp(g2h(&mem, BUF + 0x200, 5), "01234", 5));
	CHECK(!memcmp(g2h(&mem, BUF + 0x300, 5), "56789", 5));
	CHECK(!memcmp(g2h(&mem, BUF, 4), "head", 4));
	{
		static uint8_t big[200];

		CHECK_EQ(virtq_copy_to_writable(&req, big, sizeof(big)), 105); /* capacity */
	}
}

static void chain_of_queue_size(void)
{
	for (unsigned size = 1; size <= VIRTQ_MAX_SIZE; size <<= 1) {
		setup(size);
		for (unsigned i = 0; i < size; i++) /* reversed order: head is size - 1 */
			drv_desc(&d, i, BUF + 16 * i, 16, i ? VRING_DESC_F_NEXT : 0, i ? i - 1 : 0);
		drv_post(&d, size - 1);
		CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_READS, &why), 0);
		CHECK_EQ(req.head, size - 1);
		CHECK_EQ(req.nsegs, size);
		CHECK_EQ(req.read_len, 16 * size);
		CHECK(seg_is(&req.segs[size - 1], BUF, 16, false));
	}
}

static void indirect_table(void)
{
	setup(8);
	vq.indirect = true;
	drv_table_desc(&mem, TABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	drv_table_desc(&mem, TABLE, 1, BUF + 0x100, 8, VRING_DESC_F_NEXT, 2);
	drv_table_desc(&mem, TABLE, 2, BUF + 0x200, 8, 0, 0);
	drv_desc(&d, 4, TABLE, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	drv_post(&d, 4);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_READS, &why), 0);
	CHECK_EQ(req.head, 4);
	CHECK_EQ(req.nsegs, 3);
	CHECK(seg_is(&req.segs[0], BUF, 8, false));
	CHECK(seg_is(&req.segs[2], BUF + 0x200, 8, false));
	CHECK_EQ(req.read_len, 24);

	/* The chain may start anywhere in the table and leave entries unused. */
	drv_table_desc(&mem, TABLE2, 3, BUF + 0x300, 1, 0, 0);
	drv_desc(&d, 5, TABLE2, 8 * 16, VRING_DESC_F_INDIRECT, 0);
	drv_post(&d, 5);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_READS, &why), 0);
	CHECK_EQ(req.nsegs, 1); /* entry 0: addr 0, len 0, no NEXT: a 0-byte buffer at gpa 0 */
	CHECK(seg_is(&req.segs[0], 0, 0, false));
}

static void indirect_mixed_directions_and_maximum(void)
{
	uint64_t big = TABLE2;

	setup(8);
	vq.indirect = true;
	drv_table_desc(&mem, TABLE, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
	drv_table_desc(&mem, TABLE, 1, BUF + 0x100, 32, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	drv_table_desc(&mem, TABLE, 2, BUF + 0x200, 64, VRING_DESC_F_WRITE, 0);
	drv_desc(&d, 0, TABLE, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	drv_post(&d, 0);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_BOTH, &why), 0);
	CHECK_EQ(req.nsegs, 3);
	CHECK(seg_is(&req.segs[0], BUF, 16, false));
	CHECK(seg_is(&req.segs[1], BUF + 0x100, 32, true));
	CHECK(seg_is(&req.segs[2], BUF + 0x200, 64, true));
	CHECK_EQ(req.read_len, 16);
	CHECK_EQ(req.write_len, 96);

	/* A table of VIRTQ_MAX_SEGS entries, all used, in a queue of 8. */
	for (unsigned i = 0; i < VIRTQ_MAX_SEGS; i++)
		drv_table_desc(&mem, big, i, BUF + 8 * i, 8, VRING_DESC_F_WRITE |
			       (i + 1 < VIRTQ_MAX_SEGS ? VRING_DESC_F_NEXT : 0), i + 1);
	drv_desc(&d, 1, big, VIRTQ_MAX_SEGS * 16, VRING_DESC_F_INDIRECT, 0);
	drv_post(&d, 1);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
	CHECK_EQ(req.nsegs, VIRTQ_MAX_SEGS);
	CHECK_EQ(req.write_len, 8 * VIRTQ_MAX_SEGS);
}

static void out_of_order_completion(void)
{
	static const uint16_t done[] = { 2, 0, 3, 1 };

	setup(4);
	for (int i = 0; i < 4; i++) {
		drv_desc(&d, i, BUF + 0x100 * i, 0x100, VRING_DESC_F_WRITE, 0);
		drv_post(&d, i);
	}
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
		CHECK_EQ(req.head, i);
	}
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), -ENOENT);
	for (int i = 0; i < 4; i++)
		virtq_push(&vq, done[i], 10 + done[i]);
	CHECK_EQ(d.used->idx, 4);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(d.used->ring[i].id, done[i]);
		CHECK_EQ(d.used->ring[i].len, 10 + done[i]);
	}
	/* The freed descriptors go round again; the used ring wraps onto slot 0. */
	drv_post(&d, 1);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
	CHECK_EQ(req.head, 1);
	virtq_push(&vq, 1, 7);
	CHECK_EQ(d.used->idx, 5);
	CHECK_EQ(d.used->ring[0].id, 1);
	CHECK_EQ(d.used->ring[0].len, 7);
}

static void index_wrap_around(void)
{
	uint16_t start = 0xfff0, next_head = 0;
	unsigned total = 0;

	setup(16);
	/* A queue that has been running for a while: both sides near the 16-bit wrap. */
	drv_set_avail_idx(&d, start);
	vq.last_avail = vq.used_idx = start;
	d.used->idx = start;
	for (int round = 0; round < 40; round++) {
		uint16_t heads[16];
		int n = 1 + round % 9;

		for (int k = 0; k < n; k++) {
			heads[k] = next_head;
			drv_desc(&d, next_head, BUF + 0x10 * next_head, 0x10, VRING_DESC_F_WRITE, 0);
			drv_post(&d, next_head);
			next_head = (next_head + 5) % 16;
		}
		for (int k = 0; k < n; k++) {
			CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
			CHECK_EQ(req.head, heads[k]);
		}
		CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), -ENOENT);
		for (int k = n - 1; k >= 0; k--) /* completed last first */
			virtq_push(&vq, heads[k], k);
		for (int k = 0; k < n; k++) {
			uint16_t slot = (uint16_t)(start + total + k) & 15;

			CHECK_EQ(d.used->ring[slot].id, heads[n - 1 - k]);
			CHECK_EQ(d.used->ring[slot].len, n - 1 - k);
		}
		total += n;
		CHECK_EQ(d.used->idx, (uint16_t)(start + total));
		CHECK_EQ(vq.last_avail, (uint16_t)(start + total));
	}
	CHECK(total > 0x10 + 16); /* really went past 0xffff */
	CHECK(vq.last_avail < start);

	/* A full queue across the wrap: avail idx exactly size ahead is fine. */
	for (int k = 0; k < 16; k++) {
		drv_desc(&d, k, BUF, 1, VRING_DESC_F_WRITE, 0);
		drv_post(&d, k);
	}
	for (int k = 0; k < 16; k++)
		CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), -ENOENT);
}

static void buffers_at_the_edges_of_ram(void)
{
	setup(8);
	drv_desc(&d, 0, RAM - 16, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1); /* ends at RAM end */
	drv_desc(&d, 1, RAM - 1, 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);  /* 0 bytes, last byte */
	drv_desc(&d, 2, 0, 1, VRING_DESC_F_WRITE, 0);                            /* first byte */
	drv_post(&d, 0);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
	CHECK_EQ(req.nsegs, 3);
	CHECK_EQ(req.write_len, 17);
	CHECK(seg_is(&req.segs[0], RAM - 16, 16, true));
	/* Filling them touches nothing beyond (a guard page follows RAM). */
	{
		static uint8_t ones[64];

		memset(ones, 1, sizeof(ones));
		CHECK_EQ(virtq_copy_to_writable(&req, ones, sizeof(ones)), 17);
	}
	/* A whole-RAM buffer is fine, too. */
	drv_desc(&d, 3, 0, (uint32_t)RAM, VRING_DESC_F_WRITE, 0);
	drv_post(&d, 3);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
	CHECK_EQ(req.write_len, RAM);
}

/* Guest RAM in two regions, as around the MMIO hole: a buffer may not straddle the gap. */
static void two_ram_regions(void)
{
	struct guest_mem two;
	uint8_t *lo = mmap(NULL, 0x200000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *hi = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vring_desc *desc;
	struct vring_avail *avail;

	CHECK(lo != MAP_FAILED && hi != MAP_FAILED);
	if (lo == MAP_FAILED || hi == MAP_FAILED)
		return;
	memset(&two, 0, sizeof(two));
	two.regions[0] = (struct mem_region){ .gpa = 0, .size = 0x200000, .hva = lo };
	two.regions[1] = (struct mem_region){ .gpa = 0x100000000ULL, .size = 0x10000, .hva = hi };
	two.nregions = 2;
	virtq_reset(&vq, 4);
	vq.desc_gpa = 0x1000;
	vq.avail_gpa = 0x2000;
	vq.used_gpa = 0x100000000ULL; /* the used ring in the high region */
	CHECK_EQ(virtq_enable(&vq, &two, &why), 0);
	CHECK(vq.used == (void *)hi);
	desc = (void *)(lo + 0x1000);
	avail = (void *)(lo + 0x2000);
	desc[0] = (struct vring_desc){ .addr = 0x100000000ULL + 0x100, .len = 0x100,
				       .flags = VRING_DESC_F_WRITE };
	avail->ring[0] = 0;
	avail->idx = 1;
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
	CHECK(req.segs[0].hva == hi + 0x100);
	/* In the hole; straddling the end of the low region; past the high region's end. */
	static const uint64_t bad[][2] = {
		{ 0x200000, 1 }, { 0x1ffff0, 0x20 }, { 0xfffffff0ULL, 0x20 },
		{ 0x100000000ULL + 0xfff0, 0x20 }, { 0x100000000ULL - 1, 2 },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		desc[1] = (struct vring_desc){ .addr = bad[i][0], .len = (uint32_t)bad[i][1],
					       .flags = VRING_DESC_F_WRITE };
		avail->ring[vq.last_avail & 3] = 1;
		avail->idx = vq.last_avail + 1;
		CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), -EPROTO);
	}
	munmap(lo, 0x200000);
	munmap(hi, 0x10000);
}

/* ---- malformed chains ---- */

struct bad_case {
	const char *name;
	enum virtq_dir dir;
	bool indirect;           /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	const char *reason;      /* a word the reason must contain */
	void (*build)(void);     /* lays out the chain and posts it */
};

static void b_loop(void)
{
	drv_desc(&d, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	drv_desc(&d, 1, BUF, 8, VRING_DESC_F_NEXT, 0);
	drv_post(&d, 0);
}

static void b_self_loop(void)
{
	drv_desc(&d, 3, BUF, 8, VRING_DESC_F_NEXT, 3);
	drv_post(&d, 3);
}

static void b_longer_than_queue(void)
{
	/* 0 -> 1 -> ... -> 7 -> 2 -> ...: every index valid, the chain never ends. */
	for (int i = 0; i < 8; i++)
		drv_desc(&d, i, BUF + i, 1, VRING_DESC_F_NEXT, i == 7 ? 2 : i + 1);
	drv_post(&d, 0);
}

static void b_next_out_of_range(void)
{
	drv_desc(&d, 0, BUF, 8, VRING_DESC_F_NEXT, 8);
	drv_post(&d, 0);
}

static void b_next_way_out_of_range(void)
{
	drv_desc(&d, 0, BUF, 8, VRING_DESC_F_NEXT, 0xffff);
	drv_post(&d, 0);
}

static void b_addr_beyond_ram(void)
{
	drv_desc(&d, 0, RAM, 1, 0, 0);
	drv_post(&d, 0);
}

static void b_addr_far_beyond_ram(void)
{
	drv_desc(&d, 0, 1ULL << 52, 4096, 0, 0);
	drv_post(&d, 0);
}

static void b_zero_len_at_ram_end(void)
{
	drv_desc(&d, 0, RAM, 0, 0, 0);
	drv_post(&d, 0);
}

static void b_len_wraps(void)
{
	drv_desc(&d, 0, UINT64_MAX - 15, 32, 0, 0);
	drv_post(&d, 0);
}

static void b_len_wraps_to_ram(void)
{
	/* addr + len wraps to a small address inside RAM. */
	drv_desc(&d, 0, UINT64_MAX - 0xfff, 0x2000, 0, 0);
	drv_post(&d, 0);
}

static void b_straddles_ram_end(void)
{
	drv_desc(&d, 0, RAM - 8, 16, 0, 0);
	drv_post(&d, 0);
}

static void b_huge_len(void)
{
	drv_desc(&d, 0, BUF, 0xffffffff, 0, 0);
	drv_post(&d, 0);
}

static void b_bad_second_buffer(void)
{
	drv_desc(&d, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	drv_desc(&d, 1, RAM - 4, 8, 0, 0);
	drv_post(&d, 0);
}

static void b_indirect(uint64_t addr, uint32_t len, uint16_t flags)
{
	drv_desc(&d, 0, addr, len, VRING_DESC_F_INDIRECT | flags, 1);
	drv_desc(&d, 1, BUF, 8, 0, 0);
	drv_table_desc(&mem, TABLE, 0, BUF, 8, 0, 0);
	drv_post(&d, 0);
}

static void b_indirect_plain(void) { b_indirect(TABLE, 16, 0); }
static void b_indirect_with_next(void) { b_indirect(TABLE, 16, VRING_DESC_F_NEXT); }
static void b_indirect_len_zero(void) { b_indirect(TABLE, 0, 0); }
static void b_indirect_len_17(void) { b_indirect(TABLE, 17, 0); }
static void b_indirect_len_8(void) { b_indirect(TABLE, 8, 0); }
static void b_indirect_len_24(void) { b_indirect(TABLE, 24, 0); }
static void b_indirect_too_large(void) { b_indirect(TABLE, (VIRTQ_MAX_SEGS + 1) * 16, 0); }
static void b_indirect_huge(void) { b_indirect(TABLE, 0xfffffff0, 0); }
static void b_indirect_outside_ram(void) { b_indirect(RAM, 16, 0); }
static void b_indirect_straddles(void) { b_indirect(RAM - 16, 32, 0); }
static void b_indirect_wraps(void) { b_indirect(UINT64_MAX - 15, 32, 0); }

static void b_indirect_after_direct(void)
{
	drv_desc(&d, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	drv_desc(&d, 1, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	drv_table_desc(&mem, TABLE, 0, BUF, 8, 0, 0);
	drv_post(&d, 0);
}

static void b_indirect_in_indirect(void)
{
	drv_table_desc(&mem, TABLE, 0, TABLE2, 16, VRING_DESC_F_INDIRECT, 0);
	drv_table_desc(&mem, TABLE2, 0, BUF, 8, 0, 0);
	drv_desc(&d, 0, TABLE, 16, VRING_DESC_F_INDIRECT, 0);
	drv_post(&d, 0);
}

static void b_indirect_in_indirect_later(void)
{
	drv_table_desc(&mem, TABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	drv_table_desc(&mem, TABLE, 1, TABLE, 32, VRING_DESC_F_INDIRECT, 0); /* itself */
	drv_desc(&d, 0, TABLE, 32, VRING_DESC_F_INDIRECT, 0);
	drv_post(&d, 0);
}

static void b_indirect_loop(void)
{
	drv_table_desc(&mem, TABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	drv_table_desc(&mem, TABLE, 1, BUF, 8, VRING_DESC_F_NEXT, 0);
	drv_desc(&d, 0, TABLE, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	drv_post(&d, 0);
}

static void b_indirect_next_beyond_table(void)
{
	/* Index 2 is valid in the queue (size 8) but not in this 2-entry table. */
	drv_table_desc(&mem, TABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 2);
	drv_table_desc(&mem, TABLE, 2, BUF, 8, 0, 0);
	drv_desc(&d, 0, TABLE, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	drv_post(&d, 0);
}

static void b_indirect_buffer_outside_ram(void)
{
	drv_table_desc(&mem, TABLE, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	drv_table_desc(&mem, TABLE, 1, RAM - 1, 2, 0, 0);
	drv_desc(&d, 0, TABLE, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	drv_post(&d, 0);
}

static void b_indirect_read_after_write(void)
{
	drv_table_desc(&mem, TABLE, 0, BUF, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	drv_table_desc(&mem, TABLE, 1, BUF, 8, 0, 0);
	drv_desc(&d, 0, TABLE, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	drv_post(&d, 0);
}

static void b_readable_first(void)
{
	drv_desc(&d, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	drv_desc(&d, 1, BUF + 8, 8, VRING_DESC_F_WRITE, 0);
	drv_post(&d, 0);
}

static void b_readable_only(void)
{
	drv_desc(&d, 0, BUF, 8, 0, 0);
	drv_post(&d, 0);
}

static void b_writable_last(void)
{
	drv_desc(&d, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	drv_desc(&d, 1, BUF + 8, 8, VRING_DESC_F_WRITE, 0);
	drv_post(&d, 0);
}

static void b_writable_only(void)
{
	drv_desc(&d, 0, BUF, 8, VRING_DESC_F_WRITE, 0);
	drv_post(&d, 0);
}

static void b_readable_after_writable(void)
{
	drv_desc(&d, 0, BUF, 8, VRING_DESC_F_NEXT, 1);
	drv_desc(&d, 1, BUF + 8, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	drv_desc(&d, 2, BUF + 16, 8, 0, 0);
	drv_post(&d, 0);
}

static void b_avail_idx_jump(void)
{
	drv_desc(&d, 0, BUF, 8, 0, 0);
	drv_set_avail_idx(&d, 9); /* 9 > size 8 */
}

static void b_avail_idx_backwards(void)
{
	drv_desc(&d, 0, BUF, 8, 0, 0);
	drv_set_avail_idx(&d, 0xffff); /* "65535 ahead" */
}

static void b_avail_idx_half(void)
{
	drv_set_avail_idx(&d, 0x8000);
}

static void b_avail_entry_out_of_range(void)
{
	drv_desc(&d, 0, BUF, 8, 0, 0);
	drv_post(&d, 8);
}

static void b_avail_entry_ffff(void)
{
	drv_post(&d, 0xffff);
}

#define BAD(fn, dir, ind, why) { #fn, dir, ind, why, fn }

static const struct bad_case bad_cases[] = {
	BAD(b_loop, VIRTQ_DEV_READS, false, "loop"),
	BAD(b_self_loop, VIRTQ_DEV_READS, false, "loop"),
	BAD(b_longer_than_queue, VIRTQ_DEV_READS, false, "longer"),
	BAD(b_next_out_of_range, VIRTQ_DEV_READS, false, "beyond"),
	BAD(b_next_way_out_of_range, VIRTQ_DEV_READS, true, "beyond"),
	BAD(b_addr_beyond_ram, VIRTQ_DEV_READS, false, "outside"),
	BAD(b_addr_far_beyond_ram, VIRTQ_DEV_READS, false, "outside"),
	BAD(b_zero_len_at_ram_end, VIRTQ_DEV_READS, false, "outside"),
	BAD(b_len_wraps, VIRTQ_DEV_READS, false, "outside"),
	BAD(b_len_wraps_to_ram, VIRTQ_DEV_READS, false, "outside"),
	BAD(b_straddles_ram_end, VIRTQ_DEV_READS, false, "outside"),
	BAD(b_huge_len, VIRTQ_DEV_READS, false, "outside"),
	BAD(b_bad_second_buffer, VIRTQ_DEV_READS, false, "outside"),
	BAD(b_indirect_plain, VIRTQ_DEV_READS, false, "INDIRECT_DESC"),
	BAD(b_indirect_with_next, VIRTQ_DEV_READS, true, "NEXT"),
	BAD(b_indirect_len_zero, VIRTQ_DEV_READS, true, "length"),
	BAD(b_indirect_len_17, VIRTQ_DEV_READS, true, "length"),
	BAD(b_indirect_len_8, VIRTQ_DEV_READS, true, "length"),
	BAD(b_indirect_len_24, VIRTQ_DEV_READS, true, "length"),
	BAD(b_indirect_too_large, VIRTQ_DEV_READS, true, "length"),
	BAD(b_indirect_huge, VIRTQ_DEV_READS, true, "length"),
	BAD(b_indirect_outside_ram, VIRTQ_DEV_READS, true, "outside"),
	BAD(b_indirect_straddles, VIRTQ_DEV_READS, true, "outside"),
	BAD(b_indirect_wraps, VIRTQ_DEV_READS, true, "outside"),
	BAD(b_indirect_after_direct, VIRTQ_DEV_READS, true, "after direct"),
	BAD(b_indirect_in_indirect, VIRTQ_DEV_READS, true, "inside an indirect"),
	BAD(b_indirect_in_indirect_later, VIRTQ_DEV_READS, true, "inside an indirect"),
	BAD(b_indirect_loop, VIRTQ_DEV_READS, true, "loop"),
	BAD(b_indirect_next_beyond_table, VIRTQ_DEV_READS, true, "beyond the table"),
	BAD(b_indirect_buffer_outside_ram, VIRTQ_DEV_READS, true, "outside"),
	BAD(b_indirect_read_after_write, VIRTQ_DEV_BOTH, true, "after a device-writable"),
	BAD(b_readable_first, VIRTQ_DEV_WRITES, false, "must write"),
	BAD(b_readable_only, VIRTQ_DEV_WRITES, false, "must write"),
	BAD(b_writable_last, VIRTQ_DEV_READS, false, "only reads"),
	BAD(b_writable_only, VIRTQ_DEV_READS, false, "only reads"),
	BAD(b_readable_after_writable, VIRTQ_DEV_BOTH, false, "after a device-writable"),
	BAD(b_avail_idx_jump, VIRTQ_DEV_BOTH, false, "more than the queue size"),
	BAD(b_avail_idx_backwards, VIRTQ_DEV_BOTH, false, "more than the queue size"),
	BAD(b_avail_idx_half, VIRTQ_DEV_BOTH, false, "more than the queue size"),
	BAD(b_avail_entry_out_of_range, VIRTQ_DEV_BOTH, false, "beyond the queue size"),
	BAD(b_avail_entry_ffff, VIRTQ_DEV_BOTH, false, "beyond the queue size"),
};

static void malformed_chains(void)
{
	for (unsigned i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		uint8_t used_before[6 + 8 * 8];
		int err;

		setup(8);
		vq.indirect = c->indirect;
		c->build();
		memcpy(used_before, d.used, sizeof(used_before));
		err = virtq_pop(&vq, &req, c->dir, &why);
		if (err != -EPROTO || !why || !strstr(why, c->reason))
			printf("#   case %s: err %d, why \"%s\", want \"%s\"\n", c->name, err,
			       why ? why : "(null)", c->reason);
		CHECK_EQ(err, -EPROTO);
		CHECK(why && strstr(why, c->reason));
		CHECK_EQ(vq.last_avail, 0);  /* not consumed */
		CHECK(!memcmp(used_before, d.used, sizeof(used_before)));
		/* The same again (the core stops before this, but the queue stays safe). */
		CHECK_EQ(virtq_pop(&vq, &req, c->dir, &why), -EPROTO);
	}
}

/* The same rules hold for a queue that has been running (nonzero indices). */
static void malformed_after_progress(void)
{
	setup(8);
	vq.indirect = true;
	vq.last_avail = vq.used_idx = 0xfffe;
	drv_set_avail_idx(&d, 0xfffe);
	drv_desc(&d, 0, BUF, 8, 0, 0);
	drv_post(&d, 0);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_READS, &why), 0);
	drv_set_avail_idx(&d, (uint16_t)(0xffff + 9)); /* 9 ahead of last_avail, across the wrap */
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_READS, &why), -EPROTO);
	drv_set_avail_idx(&d, (uint16_t)(0xffff + 8)); /* exactly 8 ahead is fine */
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_READS, &why), 0);
}

/* ---- interrupts and kicks ---- */

static void push_n(int n)
{
	for (int i = 0; i < n; i++)
		virtq_push(&vq, 0, 0);
}

static void event_idx_interrupts(void)
{
	setup(8);
	vq.event_idx = true;
	*drv_used_event(&d) = 100;         /* far ahead */
	push_n(1);
	CHECK(virtq_should_interrupt(&vq));  /* the first is always signalled */
	CHECK(vq.signalled_valid);
	push_n(3);
	CHECK(!virtq_should_interrupt(&vq)); /* 1 -> 4, event 100 */
	CHECK_EQ(vq.signalled_used, 4);

	/* used_event 5: interrupt when the entry at index 5 is written (idx goes 5 -> 6). */
	*drv_used_event(&d) = 5;
	push_n(1);
	CHECK(!virtq_should_interrupt(&vq)); /* 4 -> 5 */
	push_n(1);
	CHECK(virtq_should_interrupt(&vq));  /* 5 -> 6 crosses it */
	push_n(2);
	CHECK(!virtq_should_interrupt(&vq)); /* 6 -> 8: already passed */

	/* Boundaries of a batch old -> new: event == old and event == new - 1 fire, new does not. */
	*drv_used_event(&d) = 8;
	push_n(3);
	CHECK(virtq_should_interrupt(&vq));  /* 8 -> 11, event == old */
	*drv_used_event(&d) = 13;
	push_n(3);
	CHECK(virtq_should_interrupt(&vq));  /* 11 -> 14, event == new - 1 */
	*drv_used_event(&d) = 17;
	push_n(3);
	CHECK(!virtq_should_interrupt(&vq)); /* 14 -> 17, event == new */
	push_n(1);
	CHECK(virtq_should_interrupt(&vq));  /* 17 -> 18 */

	/* A batch with no pushes never interrupts. */
	CHECK(!virtq_should_interrupt(&vq));
	/* NO_INTERRUPT is ignored under EVENT_IDX. */
	d.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	*drv_used_event(&d) = 18;
	push_n(1);
	CHECK(virtq_should_interrupt(&vq));
}

static void event_idx_wrap_around(void)
{
	setup(8);
	vq.event_idx = true;
	vq.used_idx = 0xfffa;
	d.used->idx = 0xfffa;
	vq.signalled_used = 0xfffa;
	vq.signalled_valid = true;
	*drv_used_event(&d) = 0x0002;
	push_n(6);
	CHECK_EQ(vq.used_idx, 0);
	CHECK_EQ(d.used->idx, 0);
	CHECK(!virtq_should_interrupt(&vq)); /* 0xfffa -> 0 */
	push_n(2);
	CHECK(!virtq_should_interrupt(&vq)); /* 0 -> 2 */
	push_n(1);
	CHECK(virtq_should_interrupt(&vq));  /* 2 -> 3 crosses 2 */

	/* An event just before the wrap, crossed by a batch that wraps. */
	vq.used_idx = vq.signalled_used = 0xfff0;
	*drv_used_event(&d) = 0xffff;
	push_n(4);
	CHECK(!virtq_should_interrupt(&vq)); /* 0xfff0 -> 0xfff4 */
	push_n(14);
	CHECK(virtq_should_interrupt(&vq));  /* 0xfff4 -> 0x0002 crosses 0xffff */

	/* used_event behind (the driver is slow to update it): no interrupt. */
	*drv_used_event(&d) = 0xfff0;
	push_n(3);
	CHECK(!virtq_should_interrupt(&vq));
}

static void first_interrupt_after_enable(void)
{
	setup(8);
	vq.event_idx = true;
	*drv_used_event(&d) = 0x1234;
	CHECK(virtq_should_interrupt(&vq)); /* first call: no valid old value yet */
	CHECK(!virtq_should_interrupt(&vq));
	/* Re-enabling (after a reset) forgets the signalled state. */
	CHECK_EQ(enable_with(8, DESC, AVAIL, USED), 0);
	vq.event_idx = true;
	CHECK(!vq.signalled_valid);
	CHECK(virtq_should_interrupt(&vq));
}

static void no_interrupt_flag(void)
{
	setup(8);
	*drv_used_event(&d) = 0; /* ignored without EVENT_IDX */
	push_n(1);
	CHECK(virtq_should_interrupt(&vq));
	d.avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	push_n(1);
	CHECK(!virtq_should_interrupt(&vq));
	CHECK(!virtq_should_interrupt(&vq));
	d.avail->flags = 0;
	CHECK(virtq_should_interrupt(&vq));
	d.avail->flags = 0xfffe; /* other bits mean nothing */
	CHECK(virtq_should_interrupt(&vq));
}

static void enable_kicks(void)
{
	setup(8);
	vq.event_idx = true;
	*drv_avail_event(&d) = 0xdead;
	for (int i = 0; i < 3; i++) {
		drv_desc(&d, i, BUF, 8, VRING_DESC_F_WRITE, 0);
		drv_post(&d, i);
	}
	CHECK(virtq_enable_kicks(&vq));      /* three waiting */
	CHECK_EQ(*drv_avail_event(&d), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
	CHECK(!virtq_enable_kicks(&vq));
	CHECK_EQ(*drv_avail_event(&d), 3);
	drv_post(&d, 0);                     /* arrives after the device looked */
	CHECK(virtq_enable_kicks(&vq));
	CHECK_EQ(*drv_avail_event(&d), 3);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
	CHECK(!virtq_enable_kicks(&vq));
	CHECK_EQ(*drv_avail_event(&d), 4);

	/* Across the wrap. */
	vq.last_avail = 0xffff;
	drv_set_avail_idx(&d, 0xffff);
	CHECK(!virtq_enable_kicks(&vq));
	CHECK_EQ(*drv_avail_event(&d), 0xffff);
	drv_post(&d, 1);
	CHECK(virtq_enable_kicks(&vq));
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_WRITES, &why), 0);
	CHECK_EQ(vq.last_avail, 0);
	CHECK(!virtq_enable_kicks(&vq));
	CHECK_EQ(*drv_avail_event(&d), 0);

	/* Without EVENT_IDX the word after the used ring is left alone. */
	setup(8);
	*drv_avail_event(&d) = 0xdead;
	CHECK(!virtq_enable_kicks(&vq));
	drv_post(&d, 0);
	CHECK(virtq_enable_kicks(&vq));
	CHECK_EQ(*drv_avail_event(&d), 0xdead);
}

static void reset_forgets_everything(void)
{
	setup(8);
	vq.event_idx = vq.indirect = true;
	drv_desc(&d, 0, BUF, 8, 0, 0);
	drv_post(&d, 0);
	CHECK_EQ(virtq_pop(&vq, &req, VIRTQ_DEV_READS, &why), 0);
	virtq_reset(&vq, 16);
	CHECK(!vq.ready && !vq.event_idx && !vq.indirect);
	CHECK(!vq.desc && !vq.avail && !vq.used && !vq.mem);
	CHECK_EQ(vq.size, 16);
	CHECK_EQ(vq.last_avail, 0);
	CHECK_EQ(vq.desc_gpa, 0);
}

TEST_MAIN("virtq",
	  T(enable_refuses_bad_sizes), T(enable_refuses_misaligned_rings),
	  T(enable_refuses_rings_outside_ram), T(empty_queue), T(single_buffer),
	  T(readable_then_writable_chain), T(chain_of_queue_size), T(indirect_table),
	  T(indirect_mixed_directions_and_maximum), T(out_of_order_completion),
	  T(index_wrap_around), T(buffers_at_the_edges_of_ram), T(two_ram_regions),
	  T(malformed_chains), T(malformed_after_progress), T(event_idx_interrupts),
	  T(event_idx_wrap_around), T(first_interrupt_after_enable), T(no_interrupt_flag),
	  T(enable_kicks), T(reset_forgets_everything))

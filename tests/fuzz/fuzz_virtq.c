/* libFuzzer target: the split virtqueue (devices/virtio/virtq.c) against a hostile driver.
 *
 * The input is a 24-byte header followed by the contents of guest RAM: descriptor table,
 * avail ring and used ring are packed from gpa 0 (see fuzz_ring_layout), so the fuzzer
 * controls every descriptor, the avail index and ring entries, and descriptor
 * addresses/lengths pointing anywhere (its own data, the rest of RAM, the high region, the
 * gap, past the end, wrapping). In the "tail" layouts the data ends at the end of the low
 * region and the rings are packed backwards from there, one of them last, so that reading or
 * writing one ring entry too many runs into AddressSanitizer's redzone. Build and run with
 * `make fuzz` (tests/fuzz/fuzz.mk).
 *
 * Header (24 bytes):
 *   [0]      bits 0-3: queue size 1 << (n % 9); bit 4 INDIRECT_DESC; bit 5 EVENT_IDX;
 *            bits 6-7: layout: 0 packed from gpa 0, 1/2/3 tail with the descriptor table /
 *            used ring / avail ring last
 *   [1..2]   with [3] bit 7: the queue size is [1..2] & 0x1ff (maybe 0 or not a power of two)
 *   [3]      bit 7 "raw enable": also the 64-bit [16..23] is added to the address of ring
 *            [3] % 3, so that virtq_enable must refuse or accept it safely
 *   [4..5]   the device's starting last_avail/used_idx (a queue that ran a while)
 *   [6..7]   a value for VRING_AVAIL_F_NO_INTERRUPT games: XORed into avail->flags midway
 *   [8..15]  operations, cycled: bits 0-1 pop dir (3: push everything outstanding),
 *            bit 2 should_interrupt, bit 3 enable_kicks, bits 4-7 pops per operation - 1
 *
 * Beyond AddressSanitizer, it checks what virtq_pop promises: a chain's head is below the
 * queue size; every segment lies inside one RAM region; directions follow the requested
 * virtq_dir, readable before writable; read_len/write_len add up; -EPROTO comes with a
 * reason and consumes nothing. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtq.h"
#include "tests/fuzz/fuzz_common.h"

#define MAX_OPS 64
#define MAX_OUTSTANDING 1024

static struct virtq vq;
static struct virtq_req req;
static uint16_t outstanding[MAX_OUTSTANDING];
static uint32_t written_len[MAX_OUTSTANDING];
static unsigned noutstanding;

static void check_request(const struct virtq_req *r, enum virtq_dir dir)
{
	uint64_t rl = 0, wl = 0;
	bool seen_write = false;

	FUZZ_ASSERT(r->head < vq.size);
	FUZZ_ASSERT(r->nsegs >= 1 && r->nsegs <= VIRTQ_MAX_SEGS);
	for (int i = 0; i < r->nsegs; i++) {
		const struct virtq_seg *s = &r->segs[i];

		FUZZ_ASSERT(fuzz_in_ram(s->hva, s->len));
		if (s->write) {
			FUZZ_ASSERT(dir != VIRTQ_DEV_READS);
			seen_write = true;
			wl += s->len;
		} else {
			FUZZ_ASSERT(dir != VIRTQ_DEV_WRITES);
			FUZZ_ASSERT(!seen_write);
			rl += s->len;
		}
	}
	FUZZ_ASSERT(rl == r->read_len && wl == r->write_len);
}

/* Uses the buffers as a device would, so that ASan sees every byte range's both ends. */
static uint32_t touch(struct virtq_req *r, uint8_t pattern)
{
	static uint8_t scratch[512];
	volatile uint8_t sink = 0;
	uint64_t n;

	for (int i = 0; i < r->nsegs; i++) {
		volatile uint8_t *p = r->segs[i].hva;

		if (!r->segs[i].len)
			continue;
		sink ^= p[0];
		sink ^= p[r->segs[i].len - 1];
	}
	(void)sink;
	virtq_copy_from_readable(r, scratch, sizeof(scratch));
	memset(scratch, pattern, sizeof(scratch));
	n = virtq_copy_to_writable(r, scratch, sizeof(scratch));
	FUZZ_ASSERT(n <= r->write_len && n <= sizeof(scratch));
	for (int i = 0; i < r->nsegs; i++)
		if (r->segs[i].write && r->segs[i].len)
			((volatile uint8_t *)r->segs[i].hva)[r->segs[i].len - 1] = pattern;
	return (uint32_t)n;
}

static void push_all(void)
{
	/* Completed last first: out of order. */
	while (noutstanding) {
		noutstanding--;
		virtq_push(&vq, outstanding[noutstanding], written_len[noutstanding]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t h[24];
	uint64_t desc, avail, used;
	uint16_t qsize, start;
	const char *why;
	bool broken = false;

	if (size < sizeof(h))
		return 0;
	memcpy(h, data, sizeof(h));
	qsize = (h[3] & 0x80) ? (h[1] | h[2] << 8) & 0x1ff : 1u << ((h[0] & 15) % 9);
	if (h[0] >> 6) {
		/* Backwards from the end of the low region, the chosen ring last. */
		uint64_t end = FUZZ_LOW_SIZE, dsz = 16ULL * qsize, asz = 6 + 2ULL * qsize,
			 usz = 6 + 8ULL * qsize;

		fuzz_mem_load_tail(data + sizeof(h), size - sizeof(h));
		switch (h[0] >> 6) {
		case 1:
			desc = end - dsz;
			avail = (desc - asz) & ~1ULL;
			used = (avail - usz) & ~3ULL;
			break;
		case 2:
			used = end - usz; /* 4-aligned: usz is 6 + 8n, end is even... */
			used &= ~3ULL;    /* ...so this may leave 2 bytes spare */
			avail = (used - asz) & ~1ULL;
			desc = (avail - dsz) & ~15ULL;
			break;
		default:
			avail = end - asz;
			used = (avail - usz) & ~3ULL;
			desc = (used - dsz) & ~15ULL;
			break;
		}
	} else {
		fuzz_mem_load(data + sizeof(h), size - sizeof(h));
		fuzz_ring_layout(0, qsize, &desc, &avail, &used);
	}
	if (h[3] & 0x80) {
		uint64_t delta;

		memcpy(&delta, h + 16, sizeof(delta));
		*(h[3] % 3 == 0 ? &desc : h[3] % 3 == 1 ? &avail : &used) += delta;
	}
	virtq_reset(&vq, qsize);
	vq.desc_gpa = desc;
	vq.avail_gpa = avail;
	vq.used_gpa = used;
	why = NULL;
	if (virtq_enable(&vq, &fuzz_mem, &why) < 0) {
		FUZZ_ASSERT(why && *why && !vq.ready);
		FUZZ_ASSERT(virtq_pop(&vq, &req, VIRTQ_DEV_BOTH, &why) == -ENOENT);
		return 0;
	}
	FUZZ_ASSERT(fuzz_in_ram(vq.desc, 16ULL * qsize) && fuzz_in_ram(vq.avail, 6 + 2ULL * qsize) &&
		    fuzz_in_ram(vq.used, 6 + 8ULL * qsize));
	vq.indirect = h[0] & 0x10;
	vq.event_idx = h[0] & 0x20;
	start = (uint16_t)(h[4] | h[5] << 8);
	vq.last_avail = vq.used_idx = vq.signalled_used = start;
	noutstanding = 0;

	for (int op = 0; op < MAX_OPS && !broken; op++) {
		uint8_t o = h[8 + op % 8];
		int dir = o & 3, pops = 1 + (o >> 4);

		if (op == MAX_OPS / 2)
			vq.avail->flags ^= (uint16_t)(h[6] | h[7] << 8);
		if (dir == 3) {
			push_all();
		} else {
			for (int k = 0; k < pops; k++) {
				uint16_t before = vq.last_avail;
				int err;

				why = NULL;
				err = virtq_pop(&vq, &req, (enum virtq_dir)dir, &why);
				if (err == -ENOENT) {
					FUZZ_ASSERT(vq.last_avail == before);
					break;
				}
				if (err == -EPROTO) {
					FUZZ_ASSERT(why && *why);
					FUZZ_ASSERT(vq.last_avail == before);
					broken = true; /* the core would now need a reset */
					break;
				}
				FUZZ_ASSERT(err == 0);
				FUZZ_ASSERT(vq.last_avail == (uint16_t)(before + 1));
				check_request(&req, (enum virtq_dir)dir);
				if (noutstanding == MAX_OUTSTANDING)
					push_all();
				written_len[noutstanding] = touch(&req, (uint8_t)op);
				outstanding[noutstanding++] = req.head;
			}
		}
		if (o & 4)
			(void)virtq_should_interrupt(&vq);
		if (o & 8)
			(void)virtq_enable_kicks(&vq);
	}
	push_all();
	(void)virtq_should_interrupt(&vq);
	(void)virtq_enable_kicks(&vq);
	return 0;
}

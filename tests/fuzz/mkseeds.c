/* Writes seed inputs for the fuzz targets: well-formed queues with chains of each shape
 * (single, readable-then-writable, indirect), for each ring layout and a few queue sizes, so
 * that the fuzzer starts from deep states and mutates from there instead of having to
 * discover a valid ring by itself. Usage: mkseeds DIR (writes DIR/fuzz_virtq/ and
 * DIR/fuzz_virtio_dev/). Built and run by tests/fuzz/fuzz.mk. */
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

#define IMG 8192

static uint8_t img[IMG];   /* guest RAM [base, base + IMG) as the seed carries it */
static uint64_t base;
static const char *dir;
static int nseeds;

static void put(uint64_t gpa, const void *p, size_t n)
{
	if (gpa < base || gpa + n > base + IMG)
		abort();
	memcpy(img + (gpa - base), p, n);
}

static void put16(uint64_t gpa, uint16_t v) { put(gpa, &v, 2); }

static void desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	struct vring_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };

	put(table + 16ULL * i, &d, sizeof(d));
}

static void post(uint64_t avail, uint16_t size, uint16_t *idx, uint16_t head)
{
	put16(avail + 4 + 2ULL * (*idx % size), head);
	(*idx)++;
	put16(avail + 2, *idx);
}

static void emit(const char *target, const uint8_t *hdr, size_t hlen)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/seed-%03d", dir, target, nseeds++);
	f = fopen(path, "wb");
	if (!f || fwrite(hdr, 1, hlen, f) != hlen || fwrite(img, 1, IMG, f) != IMG || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* Chains of every shape that fit a queue of `size`, in a queue laid out at desc/avail. */
static void chains(uint64_t d, uint64_t a, uint16_t size, uint64_t data, bool indirect)
{
	uint16_t idx = 0;

	desc(d, 0, data, 16, VRING_DESC_F_WRITE, 0);
	post(a, size, &idx, 0);
	if (size >= 4) {
		desc(d, 1, data + 0x40, 8, VRING_DESC_F_NEXT, 2);
		desc(d, 2, data + 0x80, 32, VRING_DESC_F_WRITE, 0);
		post(a, size, &idx, 1);
		if (indirect) {
			uint64_t t = data + 0x100;

			desc(t, 0, data + 0x40, 8, VRING_DESC_F_NEXT, 1);
			desc(t, 1, data + 0x80, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
			desc(t, 2, data + 0xc0, 8, VRING_DESC_F_WRITE, 0);
			desc(d, 3, t, 48, VRING_DESC_F_INDIRECT, 0);
			post(a, size, &idx, 3);
		}
	} else if (size == 2) {
		desc(d, 1, data + 0x40, 8, VRING_DESC_F_NEXT, 0);
		post(a, size, &idx, 1);
	}
}

static void virtq_seeds(void)
{
	static const uint8_t exps[] = { 1, 3, 8 };

	for (int layout = 0; layout < 4; layout++) {
		for (unsigned e = 0; e < sizeof(exps); e++) {
			for (int feat = 0; feat < 4; feat++) {
				uint16_t size = 1u << exps[e];
				uint64_t dsz = 16ULL * size, asz = 6 + 2ULL * size, usz = 6 + 8ULL * size;
				uint64_t d = 0, a = 0, u = 0, end = FUZZ_LOW_SIZE;
				uint8_t h[24] = { 0 };

				memset(img, 0, sizeof(img));
				h[0] = (uint8_t)(exps[e] | (feat & 1 ? 0x10 : 0) | (feat & 2 ? 0x20 : 0) |
						 layout << 6);
				memcpy(h + 8, "\x22\x03\x2e\x0f\x12\x03\x06\x0b", 8);
				/* The same layouts as fuzz_virtq.c. */
				switch (layout) {
				case 0:
					fuzz_ring_layout(0, size, &d, &a, &u);
					break;
				case 1:
					d = end - dsz;
					a = (d - asz) & ~1ULL;
					u = (a - usz) & ~3ULL;
					break;
				case 2:
					u = (end - usz) & ~3ULL;
					a = (u - asz) & ~1ULL;
					d = (a - dsz) & ~15ULL;
					break;
				case 3:
					a = end - asz;
					u = (a - usz) & ~3ULL;
					d = (u - dsz) & ~15ULL;
					break;
				}
				base = layout ? end - IMG : 0;
				chains(d, a, size, layout ? base : 0x1c00, feat & 1);
				emit("fuzz_virtq", h, sizeof(h));
			}
		}
	}
	/* A full-size indirect table (VIRTQ_MAX_SEGS entries) in a queue of 8. */
	{
		uint8_t h[24] = { 0 };
		uint64_t d, a, u, t = 0x1000;
		uint16_t idx = 0;

		memset(img, 0, sizeof(img));
		base = 0;
		h[0] = 3 | 0x10;
		memcpy(h + 8, "\x02\x03\x02\x03\x02\x03\x02\x03", 8);
		fuzz_ring_layout(0, 8, &d, &a, &u);
		for (int i = 0; i < 256; i++)
			desc(t, (uint16_t)i, 0x800 + i, 1, VRING_DESC_F_WRITE | (i < 255 ? VRING_DESC_F_NEXT : 0),
			     (uint16_t)(i + 1));
		desc(d, 0, t, 256 * 16, VRING_DESC_F_INDIRECT, 0);
		post(a, 8, &idx, 0);
		emit("fuzz_virtq", h, sizeof(h));
	}
}

static void device_seeds(void)
{
	for (int tail = 0; tail < 2; tail++) {
		for (int console = 0; console < 2; console++) {
			for (int feat = 0; feat < 4; feat++) {
				uint8_t h[16] = { 0 };
				uint64_t d[2] = { 0 }, a[2] = { 0 }, u[2] = { 0 };
				uint64_t next = tail ? FUZZ_TAIL_BASE : 0, buf;
				uint16_t idx[2] = { 0, 0 };

				memset(img, 0, sizeof(img));
				base = next;
				/* Buffers after the rings, or ending right at the end of RAM. */
				buf = tail ? FUZZ_LOW_SIZE - 0x600 : 0x1000;
				h[0] = (uint8_t)(console | (feat & 1 ? 2 : 0) | (feat & 2 ? 4 : 0) | 3 << 4);
				h[2] = (uint8_t)tail;
				for (int q = 0; q < 1 + console; q++)
					next = fuzz_ring_layout((next + 15) & ~15ULL, 8, &d[q], &a[q], &u[q]);
				/* Queue 0: writable buffers (rng requests, console receive buffers). */
				desc(d[0], 0, buf, 16, VRING_DESC_F_WRITE, 0);
				desc(d[0], 1, buf + 0x100, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
				desc(d[0], 2, tail ? FUZZ_LOW_SIZE - 8 : buf + 0x200, 8, VRING_DESC_F_WRITE, 0);
				post(a[0], 8, &idx[0], 0);
				post(a[0], 8, &idx[0], 1);
				if (console) {
					/* Queue 1: transmit buffers, one of them a chain. */
					put(buf + 0x400, "hello, fuzz\n", 12);
					desc(d[1], 0, buf + 0x400, 7, 0, 0);
					desc(d[1], 1, buf + 0x407, 3, VRING_DESC_F_NEXT, 2);
					desc(d[1], 2, buf + 0x40a, 2, 0, 0);
					post(a[1], 8, &idx[1], 0);
					post(a[1], 8, &idx[1], 1);
					/* kick tx; receive 27 bytes; resize; kick rx; post; kick tx; config;
					 * reset; kick tx; receive; status 4; disable/enable tx */
					memcpy(h + 4, "\x08\x19\x2a\x00\x0f\x08\x36\x05\x08\x19\x04\x0b", 12);
				} else {
					/* kick; post; kick; disable/enable; kick; config; reset; kick; post;
					 * kick; status 12; kick */
					memcpy(h + 4, "\x00\x07\x00\x03\x00\x06\x05\x00\x07\x00\x0c\x00", 12);
				}
				emit("fuzz_virtio_dev", h, sizeof(h));
			}
		}
	}
}

int main(int argc, char **argv)
{
	char path[512];

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	mkdir(dir, 0777);
	snprintf(path, sizeof(path), "%s/fuzz_virtq", dir);
	mkdir(path, 0777);
	snprintf(path, sizeof(path), "%s/fuzz_virtio_dev", dir);
	mkdir(path, 0777);
	nseeds = 0;
	virtq_seeds();
	device_seeds();
	printf("mkseeds: %d seeds in %s\n", nseeds, dir);
	return 0;
}

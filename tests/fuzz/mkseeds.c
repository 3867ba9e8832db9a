/* Writes seed inputs for the fuzz targets: well-formed queues with chains of each shape
 * (single, readable-then-writable, indirect), for each ring layout and a few queue sizes, and
 * for the device target valid requests of each device model (every virtio-blk request type,
 * virtio-net frames both ways, balloon page lists and stats), so that the fuzzer starts from
 * deep states and mutates from there instead of having to discover a valid ring by itself.
 * The transport and PCI targets get programs: each transport brought up, requests, register
 * sweeps, the PCI_CFG window; BARs sized, moved and overlapped, MSI-X fired and masked.
 * The FUSE target gets sessions of well-formed requests over its scratch share (fuzz_fuse.c).
 * The TAP target gets guest output: TAP 13, KUnit KTAP, kselftest, a bail-out (fuzz_tap.c).
 * Usage: mkseeds DIR (writes DIR/fuzz_virtq/, DIR/fuzz_virtio_dev/, DIR/fuzz_transport/,
 * DIR/fuzz_pci/, DIR/fuzz_fuse/ and DIR/fuzz_tap/). Built and run by tests/fuzz/fuzz.mk. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz_common.h"
#include "snapshot/snapshot.h"

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
				h[0] = (uint8_t)((feat & 1 ? 2 : 0) | (feat & 2 ? 4 : 0) | 3 << 4);
				h[2] = (uint8_t)tail;
				h[3] = (uint8_t)console;
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

/* The rings of nq queues of size qsize for the device target, as it lays them out. */
static void dev_rings(int nq, uint16_t qsize, uint64_t *d, uint64_t *a, uint64_t *u)
{
	uint64_t next = base;

	for (int q = 0; q < nq; q++)
		next = fuzz_ring_layout((next + 15) & ~15ULL, qsize, &d[q], &a[q], &u[q]);
}

/* A device-target header: model, its options, ring features, queue size 1 << qexp. */
static void dev_header(uint8_t *h, int model, int opt, int feat, int qexp, int tail,
		       const char *ops)
{
	memset(h, 0, 16);
	h[0] = (uint8_t)((feat & 1 ? 2 : 0) | (feat & 2 ? 4 : 0) | qexp << 4);
	h[2] = (uint8_t)tail;
	h[3] = (uint8_t)(model | opt << 3);
	memcpy(h + 4, ops, 12);
}

/* virtio-blk: one request of each type on queue 0 (size 32), then kicks, a disable with
 * requests in flight, resets. */
static void blk_seeds(void)
{
	static const int opts[] = { 0, 1, 2, 4, 8, 16 };
	static const struct {
		uint32_t type;
		uint64_t sector;
		uint32_t len;
		bool w;
	} reqs[] = {
		{ 1, 1, 512, false },   /* OUT */
		{ 0, 1, 1024, true },   /* IN */
		{ 4, 0, 0, false },     /* FLUSH */
		{ 8, 0, 20, true },     /* GET_ID */
		{ 11, 0, 16, false },   /* DISCARD: one range */
		{ 13, 0, 16, false },   /* WRITE_ZEROES: one range */
		{ 1, 127, 1024, false },/* OUT of the last sector and one past it: refused */
	};

	for (int tail = 0; tail < 2; tail++) {
		for (unsigned o = 0; o < sizeof(opts) / sizeof(opts[0]); o++) {
			uint8_t h[16];
			uint64_t d[1], a[1], u[1];
			uint64_t hdrs, st;
			uint16_t idx = 0, n = 0;

			memset(img, 0, sizeof(img));
			base = tail ? FUZZ_TAIL_BASE : 0;
			hdrs = base + 0x400;
			st = base + 0x500;
			/* kick; disable q0 with requests in flight; kick; post one more; kick; reset;
			 * kick; kick then reset; reset; kick; config read; kick */
			dev_header(h, 2, opts[o], (int)o & 3, 5, tail,
				   "\x00\x11\x00\x07\x00\x05\x00\x02\x05\x00\x26\x00");
			dev_rings(1, 32, d, a, u);
			for (uint16_t r = 0; r < sizeof(reqs) / sizeof(reqs[0]); r++) {
				struct { uint32_t type, ioprio; uint64_t sector; } hdr = {
					reqs[r].type, 0, reqs[r].sector };
				uint16_t head = n;
				/* Data from 4 KiB on; in the tail layout, each buffer ends 1 KiB * r before
				 * the end of RAM. */
				uint64_t dgpa = tail ? FUZZ_LOW_SIZE - 0x400ULL * r - reqs[r].len
						     : 0x1000 + 0x400ULL * r;

				put(hdrs + 32ULL * r, &hdr, 16);
				if (reqs[r].type >= 11) { /* the range right after the header */
					uint64_t range[2] = { 2 + r, 8 }; /* sector, num_sectors, flags 0 */

					put(hdrs + 32ULL * r + 16, range, 16);
					desc(d[0], n, hdrs + 32ULL * r, 32, VRING_DESC_F_NEXT, (uint16_t)(n + 1));
					n++;
				} else {
					desc(d[0], n, hdrs + 32ULL * r, 16, VRING_DESC_F_NEXT, (uint16_t)(n + 1));
					n++;
					if (reqs[r].len) {
						desc(d[0], n, dgpa, reqs[r].len,
						     VRING_DESC_F_NEXT | (reqs[r].w ? VRING_DESC_F_WRITE : 0),
						     (uint16_t)(n + 1));
						n++;
					}
				}
				desc(d[0], n, st + r, 1, VRING_DESC_F_WRITE, 0);
				n++;
				post(a[0], 32, &idx, head);
			}
			emit("fuzz_virtio_dev", h, sizeof(h));
		}
	}
}

/* virtio-net: four receive buffers, two transmit chains (header and frame apart, and in one
 * buffer), frames of several sizes, answers, a drain of waiting frames, a reset. */
static void net_seeds(void)
{
	for (int tail = 0; tail < 2; tail++) {
		for (int opt = 0; opt < 4; opt++) {
			for (int feat = 0; feat < 2; feat++) {
				uint8_t h[16], frame[72] = { 0 };
				uint64_t d[2], a[2], u[2], tx;
				uint16_t idx[2] = { 0, 0 };

				memset(img, 0, sizeof(img));
				base = tail ? FUZZ_TAIL_BASE : 0;
				tx = base + 0x400;
				/* inject 1 frame; one of 1514 bytes; answer mode, kick tx; 4 frames (3
				 * wait); post one more; kick rx; sends fail; reset; kick tx; one of 4000
				 * bytes (several buffers, or dropped); one too big; disable/enable rx */
				dev_header(h, 3, opt, feat, 3, tail,
					   "\x01\x81\x32\x11\x07\x42\x0a\x05\x22\xa1\xe1\x03");
				dev_rings(2, 8, d, a, u);
				for (uint16_t i = 0; i < 4; i++) {
					uint64_t b = tail ? FUZZ_LOW_SIZE - 1600ULL * (i + 1)
							  : 0x1000 + 1600ULL * i;

					desc(d[0], i, b, 1600, VRING_DESC_F_WRITE, 0);
					post(a[0], 8, &idx[0], i);
				}
				for (int i = 0; i < 60; i++)
					frame[12 + i] = (uint8_t)(i < 12 ? 0xff : i);
				put(tx, frame, sizeof(frame));
				desc(d[1], 0, tx, 12, VRING_DESC_F_NEXT, 1);
				desc(d[1], 1, tx + 12, 60, 0, 0);
				desc(d[1], 2, tx, 72, 0, 0);
				post(a[1], 8, &idx[1], 0);
				post(a[1], 8, &idx[1], 2);
				emit("fuzz_virtio_dev", h, sizeof(h));
			}
		}
	}
}

/* virtio-console with named ports: the control handshake (DEVICE_READY, PORT_READY for each
 * port, the guest opening port 1), input written to port 1's pipe and its end, output on port
 * 2; kicks, a reset and the handshake again. */
static void console_ports_seeds(void)
{
	static const uint16_t msgs[5][3] = { /* id, event, value */
		{ 0xffff, 0, 1 }, { 0, 3, 1 }, { 1, 3, 1 }, { 2, 3, 1 }, { 1, 6, 1 },
	};

	for (int tail = 0; tail < 2; tail++) {
		for (int opt = 2; opt < 4; opt++) {
			uint8_t h[16];
			uint64_t d[8], a[8], u[8], buf;
			uint16_t idx[8] = { 0 };

			memset(img, 0, sizeof(img));
			base = tail ? FUZZ_TAIL_BASE : 0;
			buf = tail ? FUZZ_LOW_SIZE - 0x800 : 0x1000;
			/* kick control rx, control tx; 27 bytes of input; kick port 1 rx, port 2 tx,
			 * control rx; the input's end; kick control rx; reset; kick control tx,
			 * control rx; input again */
			dev_header(h, 1, opt, 0, 3, tail,
				   "\x10\x18\x19\x20\x38\x10\x09\x10\x05\x18\x10\x19");
			dev_rings(8, 8, d, a, u);
			for (uint16_t i = 0; i < 4; i++) { /* control receive buffers */
				desc(d[2], i, buf + 64ULL * i, 64, VRING_DESC_F_WRITE, 0);
				post(a[2], 8, &idx[2], i);
			}
			for (uint16_t i = 0; i < 5; i++) { /* the driver's messages */
				uint8_t m[8] = { (uint8_t)msgs[i][0], (uint8_t)(msgs[i][0] >> 8),
						 (uint8_t)(msgs[i][0] >> 8), (uint8_t)(msgs[i][0] >> 8),
						 (uint8_t)msgs[i][1], 0, (uint8_t)msgs[i][2], 0 };

				put(buf + 0x100 + 8ULL * i, m, sizeof(m));
				desc(d[3], i, buf + 0x100 + 8ULL * i, 8, 0, 0);
				post(a[3], 8, &idx[3], i);
			}
			for (uint16_t i = 0; i < 2; i++) { /* port 1's receive buffers */
				desc(d[4], i, buf + 0x200 + 32ULL * i, 32, VRING_DESC_F_WRITE, 0);
				post(a[4], 8, &idx[4], i);
			}
			put(buf + 0x300, "hello port\n", 11); /* port 2's output */
			desc(d[7], 0, buf + 0x300, 11, 0, 0);
			post(a[7], 8, &idx[7], 0);
			emit("fuzz_virtio_dev", h, sizeof(h));
		}
	}
}

/* virtio-balloon: an inflate list (in RAM, beyond it, in the high region), one split across
 * two buffers, a deflate list, a stats buffer; kicks, stats returned, a target set. */
static void balloon_seeds(void)
{
	static const uint32_t pfns[8] = { 10, 11, 12, 0x40, 0x100000, 0x100001, 0xffffffff, 13 };
	static const uint32_t split[4] = { 20, 21, 22, 0x10000f };
	static const uint8_t stats[20] = { 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 4, 0, 0, 0, 16 };

	for (int tail = 0; tail < 2; tail++) {
		for (int feat = 0; feat < 4; feat++) {
			uint8_t h[16];
			uint64_t d[3], a[3], u[3], lists;
			uint16_t idx[3] = { 0, 0, 0 };

			memset(img, 0, sizeof(img));
			base = tail ? FUZZ_TAIL_BASE : 0;
			lists = base + 0x600;
			/* kick inflate, deflate, stats; stats back; kick stats; target 0; post one
			 * more inflate; kick inflate; report; disable/enable inflate; reset; kick */
			dev_header(h, 4, 0, feat, 3, tail,
				   "\x00\x08\x10\x01\x10\x0a\x07\x00\x02\x03\x05\x00");
			dev_rings(3, 8, d, a, u);
			put(lists, pfns, sizeof(pfns));
			put(lists + 0x40, split, sizeof(split));
			put(lists + 0x80, pfns, 8);
			put(lists + 0xc0, stats, sizeof(stats));
			desc(d[0], 0, lists, sizeof(pfns), 0, 0);
			desc(d[0], 1, lists + 0x40, 6, VRING_DESC_F_NEXT, 2);
			desc(d[0], 2, lists + 0x46, 10, 0, 0);
			post(a[0], 8, &idx[0], 0);
			post(a[0], 8, &idx[0], 1);
			desc(d[1], 0, lists + 0x80, 8, 0, 0);
			post(a[1], 8, &idx[1], 0);
			desc(d[2], 0, lists + 0xc0, sizeof(stats), 0, 0);
			post(a[2], 8, &idx[2], 0);
			emit("fuzz_virtio_dev", h, sizeof(h));
		}
	}
}

/* ---- fuzz_transport and fuzz_pci: byte-coded programs (see their run_op) ---- */

static uint8_t prog[4096];
static size_t plen;

static void b1(unsigned v) { prog[plen++] = (uint8_t)v; }
static void b2(unsigned v) { b1(v & 0xff); b1(v >> 8); }
static void b4(uint32_t v) { b2(v & 0xffff); b2(v >> 16); }
static void b8(uint64_t v) { b4((uint32_t)v); b4((uint32_t)(v >> 32)); }

static void emit_prog(const char *target)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/seed-%03d", dir, target, nseeds++);
	f = fopen(path, "wb");
	if (!f || fwrite(prog, 1, plen, f) != plen || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* fuzz_transport: a read (op 0) or write (op 1) of len bytes in a region at off. */
static void t_access(bool write, unsigned len, unsigned region, unsigned off, uint64_t v)
{
	unsigned w = len == 1 ? 0 : len == 2 ? 1 : len == 4 ? 2 : 3;

	b1(write);
	b1(w | region << 2);
	b2(off);
	for (unsigned i = 0; write && i < len; i++)
		b1((unsigned)(v >> (8 * i)));
}

static void transport_seeds(void)
{
	/* The PCI_CFG window capability of a virtio-pci device (MSI-X at 0x40, then the five
	 * vendor capabilities) and its fields. */
	const unsigned cfg_cap = 0x90;

	for (unsigned kind = 0; kind < 4; kind++) {
		bool pci = kind >= 2;

		for (unsigned variant = 0; variant < 4; variant++) {
			unsigned arg = 4 | (variant & 1 ? 0x40 : 0) | (pci && (variant & 2) ? 0x10 : 0) |
				       (kind == 3 && variant >= 2 ? 0x20 : 0);

			plen = 0;
			b1(kind | (variant & 1 ? 4 : 0));
			b1(2);                          /* bring-up */
			b1(arg);
			for (unsigned i = 0; i < 4; i++) {
				b1(3);                  /* post a writable buffer */
				b1(i);
				b2(0x8000 + 0x200 * i);
				b2(0x200);
				b1(0);
				b1(2);
			}
			b1(4);                          /* kick */
			b1(variant & 2 ? 2 : 0);
			if (!pci) {
				for (unsigned off = 0; off < 0x100; off += 4)
					t_access(false, 4, 0, off, 0);
				t_access(true, 4, 0, 0x64, 1);  /* InterruptACK */
				t_access(false, 8, 0, 0x70, 0);
				t_access(true, 4, 0, 0x30, 1);  /* QueueSel out of range */
				t_access(false, 4, 0, 0x34, 0);
				t_access(false, 4, 0, 0x40, 0);
				t_access(true, 4, 0, 0x70, 0);  /* reset */
			} else {
				for (unsigned off = 0; off < 0x38; off += 2)
					t_access(false, 2, 0, off, 0);
				t_access(false, 1, 0, 0x1000, 0);       /* ISR */
				t_access(false, 8, 0, 0x4000, 0);       /* MSI-X table */
				t_access(false, 8, 0, 0x5000, 0);       /* PBA */
				t_access(true, 2, 0, 22, 1);            /* queue_select out of range */
				t_access(false, 2, 0, 24, 0);
				t_access(false, 2, 0, 26, 0);
				/* The PCI_CFG window onto the ISR, then device_status. */
				t_access(true, 1, 5, cfg_cap + 4, 4);
				t_access(true, 4, 5, cfg_cap + 8, 0x1000);
				t_access(true, 4, 5, cfg_cap + 12, 1);
				t_access(false, 1, 5, cfg_cap + 16, 0);
				t_access(true, 4, 5, cfg_cap + 8, 20);
				t_access(false, 1, 5, cfg_cap + 16, 0);
				/* MSI-X off and on again, INTx-disable, the legacy BAR. */
				t_access(true, 2, 5, 0x42, 0);
				t_access(true, 2, 5, 0x42, 0x8000);
				t_access(true, 2, 5, 4, 0x407);
				t_access(true, 2, 5, 4, 0x7);
				for (unsigned off = 0; off < 24; off += 2)
					t_access(false, 2, 4, off, 0);
				t_access(false, 1, 4, 19, 0);
				t_access(true, 1, 0, 20, 0);            /* reset */
			}
			b1(5);                          /* interrupts, as the event loop raises them */
			b1(0);
			b1(5);
			b1(1);
			emit_prog("fuzz_transport");
		}
	}
}

static void pci_seeds(void)
{
	for (unsigned variant = 0; variant < 3; variant++) {
		plen = 0;
		/* The header of both devices and the host bridge, through ECAM and 0xcf8/0xcfc. */
		for (unsigned slot = 0; slot < 3; slot++) {
			for (unsigned off = 0; off < 0x40; off += 4) {
				b1(0);
				b1(2);
				b1(slot);
				b2(off);
			}
			b1(2);
			b4(0x80000000u | slot << 11 | 0x10);
			b1(3);
			b1(2);
		}
		/* Size and move BARs; one near the top of the address space. */
		b1(1); b1(2); b1(1); b2(0x10); b4(0xffffffff);
		b1(0); b1(2); b1(1); b2(0x10);
		b1(9); b1(0 | 0 << 1); b8(0xc1000000);
		b1(9); b1(1 | 4 << 1); b8(0x300000000ULL);
		b1(9); b1(0 | 2 << 1 | (variant == 1 ? 0x10 : 0)); b8(0x4000);
		b1(9); b1(1 | 0 << 1); b8(variant == 2 ? 0xc000 : 0xd000);  /* onto the other's */
		b1(10); b1(0); b2(variant == 2 ? 0x1 : 0x407);
		b1(10); b1(0); b2(0x7);
		/* MSI-X of the test device: enable, program and unmask entry 1, fire, mask, fire. */
		b1(1); b1(1); b1(1); b2(0x42); b2(0x8000);
		b1(5); b1(0 | 2 << 1 | 0x10 | 2 << 5); b2(16); b4(0xfee01000);
		b1(5); b1(0 | 2 << 1 | 0x10 | 2 << 5); b2(24); b4(0x41);
		b1(5); b1(0 | 2 << 1 | 0x10 | 2 << 5); b2(28); b4(0);
		b1(6); b1(1);
		b1(6); b1(0);
		b1(5); b1(0 | 2 << 1 | 2 << 5); b2(0x800);
		b1(1); b1(1); b1(1); b2(0x42); b2(0xc000);
		b1(6); b1(1);
		b1(1); b1(1); b1(1); b2(0x42); b2(0x8000);
		/* INTx with INTx-disable toggled; a reset request that does not reset. */
		b1(7); b1(1);
		b1(10); b1(0); b2(0x407);
		b1(10); b1(0); b2(0x7);
		b1(7); b1(0);
		b1(11); b1(2);
		emit_prog("fuzz_pci");
	}
}


/* ---- fuzz_fuse: sessions of requests (the format is at the top of fuzz_fuse.c) ---- */

static uint8_t fz[16384];
static size_t fz_len;
static uint64_t fz_unique;

static void fz_begin(bool ro)
{
	fz_len = 0;
	fz[fz_len++] = ro;
}

/* One request: opcode on nodeid (2..9: the fuzzer's handed-out ids), fixed arguments, then up
 * to two NUL-terminated names; rpiece/wpiece segment sizes, wcap the reply area. */
static void fz_req(uint32_t op, uint64_t nodeid, const void *arg, size_t alen, const char *n1,
		   const char *n2, uint8_t rpiece, uint8_t wpiece, uint16_t wcap)
{
	struct fuse_in_header h = { .opcode = op, .unique = ++fz_unique, .nodeid = nodeid };
	size_t l1 = n1 ? strlen(n1) + 1 : 0, l2 = n2 ? strlen(n2) + 1 : 0;
	size_t n = sizeof(h) + alen + l1 + l2;

	if (fz_len + 6 + n > sizeof(fz))
		abort();
	h.len = (uint32_t)n;
	fz[fz_len++] = rpiece;
	fz[fz_len++] = wpiece;
	fz[fz_len++] = (uint8_t)wcap;
	fz[fz_len++] = (uint8_t)(wcap >> 8);
	fz[fz_len++] = (uint8_t)n;
	fz[fz_len++] = (uint8_t)(n >> 8);
	memcpy(fz + fz_len, &h, sizeof(h));
	fz_len += sizeof(h);
	memcpy(fz + fz_len, arg, alen);
	fz_len += alen;
	memcpy(fz + fz_len, n1, l1);
	fz_len += l1;
	memcpy(fz + fz_len, n2, l2);
	fz_len += l2;
}

static void fz_emit(void)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/fuzz_fuse/seed-%03d", dir, nseeds++);
	f = fopen(path, "wb");
	if (!f || fwrite(fz, 1, fz_len, f) != fz_len || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static void fuse_seeds(void)
{
	struct fuse_open_in rd = { .flags = O_RDONLY }, rw = { .flags = O_RDWR };
	struct fuse_read_in read = { .fh = 1, .size = 4096 };
	struct fuse_release_in rel = { .fh = 1 };
	struct fuse_forget_in fg = { .nlookup = 1 };
	struct fuse_getattr_in ga = { 0 };

	for (int ro = 0; ro < 2; ro++) {
		/* A file: looked up, opened, read (in pieces), released, forgotten. */
		fz_begin(ro);
		fz_req(FUSE_LOOKUP, 1, NULL, 0, "hello.txt", NULL, 0, 0, 4096);
		fz_req(FUSE_GETATTR, 2, &ga, sizeof(ga), NULL, NULL, 0, 0, 4096);
		fz_req(FUSE_OPEN, 2, &rd, sizeof(rd), NULL, NULL, 0, 0, 4096);
		fz_req(FUSE_READ, 2, &read, sizeof(read), NULL, NULL, 7, 5, 200);
		fz_req(FUSE_FLUSH, 2, &(struct fuse_flush_in){ .fh = 1 },
		       sizeof(struct fuse_flush_in), NULL, NULL, 0, 0, 64);
		fz_req(FUSE_RELEASE, 2, &rel, sizeof(rel), NULL, NULL, 0, 0, 64);
		fz_req(FUSE_FORGET, 2, &fg, sizeof(fg), NULL, NULL, 0, 0, 0);
		fz_emit();
		/* Directories: the root listed both ways, a subdirectory and its names. */
		fz_begin(ro);
		fz_req(FUSE_OPENDIR, 1, &rd, sizeof(rd), NULL, NULL, 0, 0, 4096);
		fz_req(FUSE_READDIRPLUS, 1, &read, sizeof(read), NULL, NULL, 0, 0, 4096 + 16);
		fz_req(FUSE_READDIR, 1, &read, sizeof(read), NULL, NULL, 0, 0, 200);
		fz_req(FUSE_RELEASEDIR, 1, &rel, sizeof(rel), NULL, NULL, 0, 0, 64);
		fz_req(FUSE_LOOKUP, 1, NULL, 0, "dir", NULL, 0, 0, 4096);
		fz_req(FUSE_LOOKUP, 2, NULL, 0, "a", NULL, 0, 0, 4096);
		fz_req(FUSE_LOOKUP, 1, NULL, 0, "link", NULL, 0, 0, 4096);
		fz_req(FUSE_READLINK, 4, NULL, 0, NULL, NULL, 0, 0, 4096);
		fz_req(FUSE_STATFS, 1, NULL, 0, NULL, NULL, 0, 0, 4096);
		fz_req(FUSE_ACCESS, 3, &(struct fuse_access_in){ .mask = 4 },
		       sizeof(struct fuse_access_in), NULL, NULL, 0, 0, 64);
		fz_req(FUSE_LISTXATTR, 3, &(struct fuse_getxattr_in){ .size = 0 },
		       sizeof(struct fuse_getxattr_in), NULL, NULL, 0, 0, 64);
		fz_req(FUSE_GETXATTR, 3, &(struct fuse_getxattr_in){ .size = 64 },
		       sizeof(struct fuse_getxattr_in), "user.x", NULL, 0, 0, 128);
		/* Two entries: nodes 2 and 3 (the harness's ids), one reference each. */
		fz_req(FUSE_BATCH_FORGET, 0, "\x02\0\0\0\0\0\0\0" "\x02\0\0\0\0\0\0\0"
		       "\x01\0\0\0\0\0\0\0" "\x03\0\0\0\0\0\0\0" "\x01\0\0\0\0\0\0\0",
		       40, NULL, NULL, 0, 0, 0);
		fz_req(FUSE_DESTROY, 0, NULL, 0, NULL, NULL, 0, 0, 64);
		fz_emit();
		/* Changes (EROFS on the read-only share). */
		fz_begin(ro);
		fz_req(FUSE_CREATE, 1, &(struct fuse_create_in){ .flags = O_RDWR | O_CREAT,
								  .mode = 0100644 },
		       sizeof(struct fuse_create_in), "new", NULL, 0, 0, 4096);
		fz_req(FUSE_WRITE, 2, &(struct fuse_write_in){ .fh = 1, .size = 11 },
		       sizeof(struct fuse_write_in), "hello fuzz", NULL, 3, 0, 64);
		fz_req(FUSE_SETATTR, 2, &(struct fuse_setattr_in){ .valid = FATTR_SIZE,
								    .fh = 1, .size = 5 },
		       sizeof(struct fuse_setattr_in), NULL, NULL, 0, 0, 4096);
		fz_req(FUSE_FSYNC, 2, &(struct fuse_fsync_in){ .fh = 1 },
		       sizeof(struct fuse_fsync_in), NULL, NULL, 0, 0, 64);
		fz_req(FUSE_FALLOCATE, 2, &(struct fuse_fallocate_in){ .fh = 1, .length = 4096 },
		       sizeof(struct fuse_fallocate_in), NULL, NULL, 0, 0, 64);
		fz_req(FUSE_LSEEK, 2, &(struct fuse_lseek_in){ .fh = 1, .whence = 3 },
		       sizeof(struct fuse_lseek_in), NULL, NULL, 0, 0, 64);
		fz_req(FUSE_RELEASE, 2, &rel, sizeof(rel), NULL, NULL, 0, 0, 64);
		fz_req(FUSE_OPEN, 2, &rw, sizeof(rw), NULL, NULL, 0, 0, 4096);
		fz_req(FUSE_RENAME2, 1, &(struct fuse_rename2_in){ .newdir = 1 },
		       sizeof(struct fuse_rename2_in), "new", "newer", 0, 0, 64);
		fz_req(FUSE_MKDIR, 1, &(struct fuse_mkdir_in){ .mode = 0755 },
		       sizeof(struct fuse_mkdir_in), "sub", NULL, 0, 0, 4096);
		fz_req(FUSE_SYMLINK, 3, NULL, 0, "sl", "../newer", 0, 0, 4096);
		fz_req(FUSE_LINK, 3, &(struct fuse_link_in){ .oldnodeid = 2 },
		       sizeof(struct fuse_link_in), "hard", NULL, 0, 0, 4096);
		fz_req(FUSE_MKNOD, 3, &(struct fuse_mknod_in){ .mode = 010600 },
		       sizeof(struct fuse_mknod_in), "fifo", NULL, 0, 0, 4096);
		fz_req(FUSE_RENAME, 3, &(struct fuse_rename_in){ .newdir = 1 },
		       sizeof(struct fuse_rename_in), "hard", "hard2", 0, 0, 64);
		fz_req(FUSE_UNLINK, 1, NULL, 0, "hard2", NULL, 0, 0, 64);
		fz_req(FUSE_UNLINK, 3, NULL, 0, "sl", NULL, 0, 0, 64);
		fz_req(FUSE_UNLINK, 3, NULL, 0, "fifo", NULL, 0, 0, 64);
		fz_req(FUSE_RMDIR, 1, NULL, 0, "sub", NULL, 0, 0, 64);
		fz_req(FUSE_UNLINK, 1, NULL, 0, "newer", NULL, 0, 0, 64);
		fz_emit();
	}
}

/* Guest output for fuzz_tap: a flags byte (bit 0: tap_end, bit 1: the run failed), then lines. */
static void tap_seeds(void)
{
	static const char *const outputs[] = {
		"TAP version 13\n# mica-testguest: 1 cpu(s)\n1..4\nok 1 - serial\n"
		"ok 2 - virtio_blk # SKIP no virtio-blk device\n# log line\n"
		"not ok 3 - virtio_reset # InterruptStatus 0x1\nok 4 - rng\n"
		"# mica-testguest: 2 passed, 1 failed (1 skipped)\n",
		"[    0.5] KTAP version 1\n[    0.5] 1..2\n[    0.5]     KTAP version 1\n"
		"[    0.5]     # Subtest: example\n[    0.5]     1..3\n[    0.5]     ok 1 a\n"
		"[    0.5]     # b: EXPECTATION FAILED\r\n[    0.5]     not ok 2 b\n"
		"[    0.5]         KTAP version 1\n[    0.5]         # Subtest: c\n"
		"[    0.5]         ok 1 c1 # SKIP x\n[    0.5]         not ok 2 c2\n"
		"[    0.5]     not ok 3 c\n[    0.5] not ok 1 example\n[    0.6]     KTAP version 1\n"
		"[    0.6]     # Subtest: cut\n[    0.6]     1..2\n[    0.6]     ok 1 d\n",
		"TAP version 13\n1..2\n# selftests: size: get_size\n# TAP version 13\n# 1..1\n"
		"# # Testing\n# ok 1 get runtime memory use\nok 1 selftests: size: get_size\n"
		"# TAP version 13\n# 1..3\n# ok 1 x # XFAIL y\n# Bail out! no\n"
		"not ok 2 selftests: b: c # TIMEOUT 45 seconds\n",
		"KTAP version 1\n1..1\n  KTAP version 1\n  1..2\n  not ok 1 t # TODO later\n"
		"  ok 2 u\nok 1 v\n1..0 # SKIP all\nBail out! stop\n",
	};

	for (size_t i = 0; i < sizeof(outputs) / sizeof(outputs[0]); i++) {
		for (int flags = 0; flags < 4; flags++) {
			char path[512];
			FILE *f;

			snprintf(path, sizeof(path), "%s/fuzz_tap/seed-%03d", dir, nseeds++);
			f = fopen(path, "wb");
			if (!f || fputc(flags, f) == EOF || fputs(outputs[i], f) == EOF || fclose(f)) {
				perror(path);
				exit(1);
			}
		}
	}
}

/* Snapshots from the real writer (snapshot/file.c, linked in): state sections of a few shapes
 * and one RAM page; flag byte 0 and 1 (fix checksums). Under -max_len (16 KiB). */
static void snapshot_seeds(void)
{
	static uint8_t page[SNAP_RAM_ALIGN];
	char tmp[512], path[512];

	for (int shape = 0; shape < 3; shape++) {
		struct snap_writer *w;
		struct err e;
		FILE *in, *out;
		int c;

		snprintf(tmp, sizeof(tmp), "%s/snapshot.tmp", dir);
		if (snap_writer_create(tmp, "cpu=seed mem=4K", &w, &e)) {
			fprintf(stderr, "mkseeds: %s\n", e.msg);
			exit(1);
		}
		for (int i = 0; i <= shape; i++) {
			char name[SNAP_NAME_MAX];

			snprintf(name, sizeof(name), "dev.%d", i);
			snap_begin(w, name, (uint32_t)i + 1);
			for (int k = 0; k < 4 * (i + 1); k++)
				snap_put_u32(w, 0x01020304u * (uint32_t)k);
			snap_end(w);
		}
		memset(page, shape + 1, 64);
		if (shape && snap_put_ram(w, "ram", page, sizeof(page))) {
			fprintf(stderr, "mkseeds: snapshot seed\n");
			exit(1);
		}
		if (snap_writer_finish(w, &e)) {
			fprintf(stderr, "mkseeds: %s\n", e.msg);
			exit(1);
		}
		for (int flags = 0; flags < 2; flags++) {
			snprintf(path, sizeof(path), "%s/fuzz_snapshot/seed-%03d", dir, nseeds++);
			in = fopen(tmp, "rb");
			out = fopen(path, "wb");
			if (!in || !out || fputc(flags, out) == EOF) {
				perror(path);
				exit(1);
			}
			while ((c = fgetc(in)) != EOF)
				fputc(c, out);
			fclose(in);
			if (fclose(out)) {
				perror(path);
				exit(1);
			}
		}
		unlink(tmp);
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
	snprintf(path, sizeof(path), "%s/fuzz_transport", dir);
	mkdir(path, 0777);
	snprintf(path, sizeof(path), "%s/fuzz_pci", dir);
	mkdir(path, 0777);
	snprintf(path, sizeof(path), "%s/fuzz_fuse", dir);
	mkdir(path, 0777);
	snprintf(path, sizeof(path), "%s/fuzz_tap", dir);
	mkdir(path, 0777);
	snprintf(path, sizeof(path), "%s/fuzz_snapshot", dir);
	mkdir(path, 0777);
	nseeds = 0;
	virtq_seeds();
	device_seeds();
	blk_seeds();
	net_seeds();
	console_ports_seeds();
	balloon_seeds();
	transport_seeds();
	pci_seeds();
	fuse_seeds();
	tap_seeds();
	snapshot_seeds();
	printf("mkseeds: %d seeds in %s\n", nseeds, dir);
	return 0;
}

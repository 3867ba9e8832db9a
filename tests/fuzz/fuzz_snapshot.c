/* libFuzzer target: the snapshot reader (snapshot/file.c) on a hostile file.
 *
 *   [0]    bit 0: make every checksum right first (header, table, sections), so that inputs
 *          reach the structural checks behind them rather than stopping at a CRC
 *   rest   the file
 *
 * On a file the reader accepts: every section is read through a cursor in pieces of the sizes
 * the input's first bytes give, RAM sections are copied out (snap_map_ram without a file), and
 * snap_verify runs. Checked beyond the sanitizers: an accepted file's sections lie inside it,
 * a cursor never yields more bytes than its section holds, and a refusal always says why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot.h"

#define FUZZ_ASSERT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_snapshot: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#define MAX_RAM (1 << 20)

/* Recomputes the checksums a well-behaved writer would have written, where the offsets allow. */
static void fix_checksums(uint8_t *buf, size_t len)
{
	struct snap_header *h = (void *)buf;
	struct snap_section_entry *t;
	uint64_t tsize;

	if (len < sizeof(*h))
		return;
	tsize = (uint64_t)h->nsections * sizeof(*t);
	if (h->nsections <= SNAP_MAX_SECTIONS && h->table_offset % 8 == 0 &&
	    h->table_offset <= len && tsize <= len - h->table_offset) {
		t = (void *)(buf + h->table_offset);
		for (uint32_t i = 0; i < h->nsections; i++)
			if (t[i].offset <= len && t[i].size <= len - t[i].offset &&
			    (t[i].offset + t[i].size <= h->table_offset ||
			     t[i].offset >= h->table_offset + tsize))
				t[i].crc = snap_crc32c(0, buf + t[i].offset, t[i].size);
		h->table_crc = snap_crc32c(0, t, tsize);
	}
	h->header_crc = snap_crc32c(0, h, offsetof(struct snap_header, header_crc));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_file *f;
	struct err e = { "" };
	uint8_t *buf;
	size_t len;

	if (size < 1)
		return 0;
	len = size - 1;
	/* 8-aligned, as a mapped file is. */
	buf = aligned_alloc(8, (len + 8) & ~(size_t)7);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, len);
	if (data[0] & 1)
		fix_checksums(buf, len);
	if (snap_parse(buf, len, &f, &e)) {
		FUZZ_ASSERT(e.msg[0]);
		free(buf);
		return 0;
	}
	const struct snap_header *h = (const void *)buf;
	const struct snap_section_entry *t = (const void *)(buf + h->table_offset);

	for (uint32_t i = 0; i < h->nsections; i++) {
		struct snap_cursor c;
		uint8_t piece[64];
		size_t got = 0;

		FUZZ_ASSERT(t[i].offset + t[i].size <= len);
		if (t[i].flags & SNAP_SECTION_RAM) {
			void *ram;

			if (t[i].size > MAX_RAM || !(ram = aligned_alloc(4096, t[i].size + 4096)))
				continue;
			FUZZ_ASSERT(snap_map_ram(f, t[i].name, ram, t[i].size, &e) == 0);
			FUZZ_ASSERT(!memcmp(ram, buf + t[i].offset, t[i].size));
			free(ram);
			continue;
		}
		FUZZ_ASSERT(snap_section(f, t[i].name, &c) == 0);
		for (size_t k = 0; k < 1000 && !c.err; k++) {
			size_t n = data[(i + k) % size] % sizeof(piece);

			snap_get(&c, piece, n);
			if (!c.err)
				got += n;
		}
		FUZZ_ASSERT(got <= t[i].size);
		FUZZ_ASSERT((snap_cursor_end(&c) == 0) == (got == t[i].size && !c.err));
	}
	snap_verify(f, &e);
	snap_close(f);
	free(buf);
	return 0;
}

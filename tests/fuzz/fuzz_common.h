/* Shared by the libFuzzer harnesses: a small guest RAM whose bytes come from the fuzz input.
 *
 * RAM is two heap allocations, not an mmap: AddressSanitizer then puts redzones around each
 * region, so a host pointer that strays past a region's end is caught on first use. Two
 * regions, as around the MMIO hole, so that a range straddling the gap is exercised too:
 *   low:  gpa [0, FUZZ_LOW_SIZE)
 *   high: gpa [FUZZ_HIGH_GPA, FUZZ_HIGH_GPA + FUZZ_HIGH_SIZE)
 * In addition every segment virtq_pop() hands out is checked explicitly (fuzz_in_ram), since
 * a wild pointer could jump over a redzone into another live allocation. */
#ifndef MICA_FUZZ_COMMON_H
#define MICA_FUZZ_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/memory.h"

#define FUZZ_LOW_SIZE  (256 * 1024)
#define FUZZ_HIGH_GPA  0x100000000ULL
#define FUZZ_HIGH_SIZE (64 * 1024)
#define FUZZ_TAIL_BASE (FUZZ_LOW_SIZE - 8192) /* where the device target's tail rings start */

/* Weak: one instance shared by every file of a harness that includes this header. */
__attribute__((weak)) struct guest_mem fuzz_mem;

#define FUZZ_ASSERT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* Allocates RAM once; zeroes it and copies data to gpa 0 (spilling into the high region). */
static inline void fuzz_mem_load(const uint8_t *data, size_t len)
{
	size_t n;

	if (!fuzz_mem.nregions) {
		uint8_t *lo = malloc(FUZZ_LOW_SIZE), *hi = malloc(FUZZ_HIGH_SIZE);

		if (!lo || !hi)
			abort();
		fuzz_mem.map = lo;
		fuzz_mem.map_size = FUZZ_LOW_SIZE;
		fuzz_mem.ram_size = FUZZ_LOW_SIZE + FUZZ_HIGH_SIZE;
		fuzz_mem.regions[0] = (struct mem_region){ 0, FUZZ_LOW_SIZE, lo };
		fuzz_mem.regions[1] = (struct mem_region){ FUZZ_HIGH_GPA, FUZZ_HIGH_SIZE, hi };
		fuzz_mem.nregions = 2;
	}
	memset(fuzz_mem.regions[0].hva, 0, FUZZ_LOW_SIZE);
	memset(fuzz_mem.regions[1].hva, 0, FUZZ_HIGH_SIZE);
	if (!len)
		return;
	n = len < FUZZ_LOW_SIZE ? len : FUZZ_LOW_SIZE;
	memcpy(fuzz_mem.regions[0].hva, data, n);
	data += n;
	len -= n;
	n = len < FUZZ_HIGH_SIZE ? len : FUZZ_HIGH_SIZE;
	if (n)
		memcpy(fuzz_mem.regions[1].hva, data, n);
}

/* The same, but the data ends at the end of the low region (the high region stays zero). */
static inline void fuzz_mem_load_tail(const uint8_t *data, size_t len)
{
	fuzz_mem_load(NULL, 0);
	if (len > FUZZ_LOW_SIZE) {
		data += len - FUZZ_LOW_SIZE;
		len = FUZZ_LOW_SIZE;
	}
	if (len)
		memcpy(fuzz_mem.regions[0].hva + FUZZ_LOW_SIZE - len, data, len);
}

/* [p, p + len) lies wholly inside one region (len 0: p itself is inside). */
static inline bool fuzz_in_ram(const void *p, uint64_t len)
{
	for (int i = 0; i < fuzz_mem.nregions; i++) {
		const struct mem_region *r = &fuzz_mem.regions[i];
		uintptr_t a = (uintptr_t)p, lo = (uintptr_t)r->hva;

		if (a >= lo && a < lo + r->size && (len ? len : 1) <= lo + r->size - a)
			return true;
	}
	return false;
}

/* Reads up to n bytes of the fuzz input as a little-endian number; 0 past the end. */
static inline uint64_t fuzz_take(const uint8_t **data, size_t *len, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n && *len; i++, (*data)++, (*len)--)
		v |= (uint64_t)**data << (8 * i);
	return v;
}

/* Split-ring layout packed from gpa `base` (as a legacy driver lays it out, alignment 4):
 * small inputs then reach every ring field. Returns the first gpa after the rings. */
static inline uint64_t fuzz_ring_layout(uint64_t base, uint16_t size, uint64_t *desc,
					uint64_t *avail, uint64_t *used)
{
	*desc = base;
	*avail = base + 16ULL * size;
	*used = (*avail + 6 + 2ULL * size + 3) & ~3ULL;
	return *used + 6 + 8ULL * size;
}

#endif

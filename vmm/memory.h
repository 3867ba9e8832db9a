/* Guest RAM: one anonymous host mapping, split around the MMIO hole below 4 GiB.
 *
 * gpa_range() is the one place where a guest-physical range becomes a host pointer: every
 * address a guest hands us goes through it, and it refuses anything not wholly inside RAM. */
#ifndef MICA_MEMORY_H
#define MICA_MEMORY_H

#include <stdint.h>
#include <stddef.h>

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	uint8_t *map;          /* the whole mapping, 2 MiB aligned */
	size_t map_size;
	uint64_t ram_size;
	int nregions;
	struct mem_region regions[2]; /* below the hole, above 4 GiB */
};

int guest_mem_init(struct guest_mem *mem, uint64_t ram_size);
void guest_mem_destroy(struct guest_mem *mem);

/* Host address of [gpa, gpa + len), or NULL unless the range lies inside one RAM region.
 * len 0 is checked as a 1-byte access at gpa. */
static inline void *gpa_range(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < mem->nregions; i++) {
		const struct mem_region *r = &mem->regions[i];
		uint64_t off = gpa - r->gpa;

		/* Unsigned: gpa below r->gpa wraps to a huge offset and fails the test. */
		if (off < r->size && (len ? len : 1) <= r->size - off)
			return r->hva + off;
	}
	return NULL;
}

/* End of RAM below the MMIO hole (the low region's size). */
static inline uint64_t guest_mem_low_end(const struct guest_mem *mem)
{
	return mem->regions[0].size;
}

#endif

#include "vmm/memory.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/layout.h"
#include "vmm/util.h"

int guest_mem_init(struct guest_mem *mem, uint64_t ram_size)
{
	uint64_t low = MIN(ram_size, MMIO_HOLE_START);
	size_t reserve = ram_size + 2 * MiB;
	uint8_t *raw, *aligned;

	memset(mem, 0, sizeof(*mem));
	/* Over-reserve by 2 MiB so the guest's RAM starts on a huge-page boundary, then give the
	 * slack back: guest 2 MiB pages then line up with host 2 MiB pages. */
	raw = mmap(NULL, reserve, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return -errno;
	aligned = (uint8_t *)ALIGN_UP((uintptr_t)raw, 2 * MiB);
	if (aligned > raw)
		munmap(raw, aligned - raw);
	if (raw + reserve > aligned + ram_size)
		munmap(aligned + ram_size, raw + reserve - (aligned + ram_size));
	madvise(aligned, ram_size, MADV_HUGEPAGE); /* a hint: fine if THP is off */
	madvise(aligned, ram_size, MADV_DONTDUMP);  /* guest RAM has no place in a core dump */

	mem->map = aligned;
	mem->map_size = ram_size;
	mem->ram_size = ram_size;
	mem->regions[0] = (struct mem_region){ .gpa = 0, .size = low, .hva = aligned };
	mem->nregions = 1;
	if (ram_size > low) {
		mem->regions[1] = (struct mem_region){
			.gpa = MMIO_HOLE_END, .size = ram_size - low, .hva = aligned + low };
		mem->nregions = 2;
	}
	return 0;
}

void guest_mem_destroy(struct guest_mem *mem)
{
	if (mem->map)
		munmap(mem->map, mem->map_size);
	mem->map = NULL;
	mem->nregions = 0;
}

/* The PVH entry (xen/include/public/arch-x86/hvm/start_info.h; what QEMU's -kernel uses for an
 * ELF with the note): 32-bit protected mode, paging off, flat segments, ebx = hvm_start_info,
 * which carries the command line, the memory map, the initrd as a module and the RSDP. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "boot/boot.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define PVH_MAGIC 0x336ec578
#define PVH_MODLIST_OFF 0x100
#define PVH_MEMMAP_OFF  0x200
#define PVH_MEMMAP_MAX  32

/* Xen's public ABI, version 1 (not a Linux UAPI header, so spelled out here). */
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

struct memmap {
	struct hvm_memmap_table_entry *e;
	uint32_t n;
};

static void add_range(void *ctx, uint64_t addr, uint64_t size, uint32_t type)
{
	struct memmap *m = ctx;

	if (m->n < PVH_MEMMAP_MAX)
		m->e[m->n++] = (struct hvm_memmap_table_entry){ addr, size, type, 0 };
}

int pvh_load(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
	     const struct boot_config *bc, struct boot_entry *entry, struct err *e)
{
	struct hvm_start_info *si = gpa_range(&vm->mem, ZERO_PAGE_ADDR, 0x1000);
	struct memmap map;
	uint64_t rsdp;
	int err = elf_load_segments(vm, kernel, &entry->image_end, e);

	if (err)
		return err;
	memset(si, 0, 0x1000);
	map.e = (void *)((uint8_t *)si + PVH_MEMMAP_OFF);
	map.n = 0;
	err = linux_write_cmdline(vm, bc, CMDLINE_MAX - 1, e);
	if (!err)
		err = linux_firmware_tables(vm, bc, &rsdp, e);
	if (err)
		return err;
	linux_memory_map(vm, add_range, &map);
	si->magic = PVH_MAGIC;
	si->version = 1;
	si->cmdline_paddr = CMDLINE_ADDR;
	si->rsdp_paddr = rsdp;
	si->memmap_paddr = ZERO_PAGE_ADDR + PVH_MEMMAP_OFF;
	si->memmap_entries = map.n;
	if (initrd && initrd->data) {
		struct hvm_modlist_entry *mod = (void *)((uint8_t *)si + PVH_MODLIST_OFF);
		uint64_t addr;

		err = linux_place_initrd(vm, initrd, entry->image_end, 0xffffffffULL, &addr, e);
		if (err)
			return err;
		*mod = (struct hvm_modlist_entry){ .paddr = addr, .size = initrd->size };
		si->nr_modules = 1;
		si->modlist_paddr = ZERO_PAGE_ADDR + PVH_MODLIST_OFF;
	}
	entry->kind = KERNEL_PVH;
	entry->rip = elf_pvh_entry(kernel);
	entry->rbx = ZERO_PAGE_ADDR;
	entry->protected32 = 1;
	entry->all_vcpus = 0;
	return 0;
}

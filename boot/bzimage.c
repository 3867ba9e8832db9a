/* Linux bzImage, per the x86 boot protocol (Documentation/arch/x86/boot.rst), entered at its
 * 64-bit entry point (protected-mode kernel + 0x200) with boot_params in rsi. */
#include <asm/bootparam.h>
#include <asm/e820.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acpi.h"
#include "boot.h"
#include "pci.h"
#include "layout.h"
#include "util.h"
#include "vm.h"

#define SETUP_HEADER_OFFSET 0x1f1
#define BZ_MAGIC_OFFSET     0x202  /* "HdrS" */
#define BZ_MIN_VERSION      0x020c /* 2.12: xloadflags and the 64-bit entry */
#define BZ_ENTRY64_OFFSET   0x200
#define BZ_LOADER_UNDEFINED 0xff
#define BZ_HEAP_END         0xfe00
#define KERNEL_LOAD_ADDR    HIGH_MEM_START

static const struct setup_header *bz_header(const struct boot_file *f)
{
	return (const void *)(f->data + SETUP_HEADER_OFFSET);
}

int bzimage_check(const struct boot_file *f, const char **why)
{
	const struct setup_header *h;
	uint64_t setup_size;

	if (f->size < 0x300 || memcmp(f->data + BZ_MAGIC_OFFSET, "HdrS", 4) != 0) {
		*why = "neither an ELF64 x86_64 kernel nor a Linux bzImage";
		return -ENOEXEC;
	}
	h = bz_header(f);
	if (h->boot_flag != 0xaa55) {
		*why = "a Linux boot header without the 0xAA55 boot flag: not a bzImage";
		return -ENOEXEC;
	}
	if (h->version < BZ_MIN_VERSION || !(h->xloadflags & XLF_KERNEL_64) ||
	    !(h->loadflags & LOADED_HIGH)) {
		*why = "a Linux kernel without a 64-bit entry point (boot protocol 2.12+, x86_64): "
		       "use a 64-bit bzImage";
		return -ENOEXEC;
	}
	setup_size = ((uint64_t)(h->setup_sects ? h->setup_sects : 4) + 1) * 512;
	if (setup_size >= f->size) {
		*why = "a truncated bzImage (no protected-mode kernel after the setup code)";
		return -ENOEXEC;
	}
	return 0;
}

static int add_e820(struct boot_params *bp, uint64_t addr, uint64_t size, uint32_t type)
{
	if (bp->e820_entries >= E820_MAX_ENTRIES_ZEROPAGE)
		return -ENOSPC;
	bp->e820_table[bp->e820_entries++] = (struct boot_e820_entry){ addr, size, type };
	return 0;
}

/* The e820 map: conventional memory, the BIOS area reserved, RAM from 1 MiB to the hole, and
 * RAM above 4 GiB. The MMIO hole is simply absent, which Linux takes as I/O space. */
static void fill_e820(struct vm *vm, struct boot_params *bp)
{
	add_e820(bp, 0, EBDA_START, E820_RAM);
	/* The BIOS area, where the ACPI tables are. */
	add_e820(bp, EBDA_START, HIGH_MEM_START - EBDA_START, E820_RESERVED);
	add_e820(bp, HIGH_MEM_START, guest_mem_low_end(&vm->mem) - HIGH_MEM_START, E820_RAM);
	/* The ECAM window: reserved, as firmware reports it, so Linux accepts the MCFG. */
	if (vm->pci)
		add_e820(bp, PCI_ECAM_BASE, PCI_ECAM_BUS_SIZE, E820_RESERVED);
	if (vm->mem.nregions > 1)
		add_e820(bp, vm->mem.regions[1].gpa, vm->mem.regions[1].size, E820_RAM);
}

/* The command line Linux gets: the user's, plus (without ACPI) a virtio_mmio.device= entry per
 * virtio-mmio device, for kernels built with VIRTIO_MMIO_CMDLINE_DEVICES. */
static char *linux_cmdline(struct vm *vm, const char *user)
{
	size_t len = strlen(user) + 1 + (size_t)vm->nplatform_devs * 64;
	char *s = malloc(len);
	size_t n;

	if (!s)
		return NULL;
	n = snprintf(s, len, "%s", user);
	for (int i = 0; i < vm->nplatform_devs && !vm->cfg.acpi; i++) {
		const struct vm_platform_dev *d = &vm->platform_devs[i];

		if (!strcmp(d->compatible, "virtio,mmio"))
			n += snprintf(s + n, len - n, " virtio_mmio.device=%lluK@0x%llx:%u",
				      (unsigned long long)d->size / 1024, (unsigned long long)d->base,
				      d->gsi);
	}
	return s;
}

int bzimage_load(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
		 const char *cmdline, struct boot_entry *entry, const char **why)
{
	const struct setup_header *h = bz_header(kernel);
	uint64_t setup_size = ((uint64_t)(h->setup_sects ? h->setup_sects : 4) + 1) * 512;
	uint64_t payload = kernel->size - setup_size;
	uint64_t low_end = guest_mem_low_end(&vm->mem);
	/* The kernel decompresses and relocates itself: it needs init_size bytes from its run
	 * address, which is at least pref_address (LOAD_PHYSICAL_ADDR, 16 MiB on x86_64). */
	uint64_t kernel_end = MAX(KERNEL_LOAD_ADDR + payload,
				  MAX(h->pref_address, KERNEL_LOAD_ADDR) + h->init_size);
	uint64_t hdr_len = BZ_MAGIC_OFFSET + kernel->data[0x201] - SETUP_HEADER_OFFSET;
	uint32_t cmdline_max = h->cmdline_size ? h->cmdline_size : 255;
	struct boot_params *bp = gpa_range(&vm->mem, ZERO_PAGE_ADDR, sizeof(*bp));
	char *full = linux_cmdline(vm, cmdline);
	size_t cmdline_len = full ? strlen(full) : 0;
	char *cmd_dst = gpa_range(&vm->mem, CMDLINE_ADDR, cmdline_len + 1);
	uint8_t *dst;
	int err = 0;

	if (!full) {
		*why = "out of memory";
		return -ENOMEM;
	}

	if (kernel_end > low_end || !(dst = gpa_range(&vm->mem, KERNEL_LOAD_ADDR, payload))) {
		*why = "the kernel needs more guest RAM than --mem gives it: give more --mem";
		err = -ENOMEM;
	} else if (cmdline_len > cmdline_max || cmdline_len >= CMDLINE_MAX || !cmd_dst) {
		*why = "the --cmdline string is longer than this kernel accepts";
		err = -E2BIG;
	} else {
		memcpy(dst, kernel->data + setup_size, payload);
		memcpy(cmd_dst, full, cmdline_len + 1);
	}
	free(full);
	if (err)
		return err;

	memset(bp, 0, sizeof(*bp));
	/* The setup header as the image has it, then the fields a boot loader fills in. */
	memcpy(&bp->hdr, h, MIN(hdr_len, sizeof(bp->hdr)));
	bp->hdr.type_of_loader = BZ_LOADER_UNDEFINED;
	bp->hdr.loadflags |= CAN_USE_HEAP;
	bp->hdr.loadflags &= ~QUIET_FLAG;
	bp->hdr.heap_end_ptr = BZ_HEAP_END - 0x200;
	bp->hdr.cmd_line_ptr = CMDLINE_ADDR;
	bp->ext_cmd_line_ptr = 0;
	bp->hdr.vid_mode = 0xffff; /* "normal" */
	bp->hdr.code32_start = KERNEL_LOAD_ADDR;

	if (initrd && initrd->data) {
		uint64_t limit = MIN((uint64_t)h->initrd_addr_max + 1, low_end);
		uint64_t addr;

		if (initrd->size > limit || (addr = ALIGN_DOWN(limit - initrd->size, 4096)) <
						    ALIGN_UP(kernel_end, 4096)) {
			*why = "the initrd does not fit in guest RAM beside the kernel: "
			       "give more --mem";
			return -ENOMEM;
		}
		memcpy(gpa_range(&vm->mem, addr, initrd->size), initrd->data, initrd->size);
		bp->hdr.ramdisk_image = (uint32_t)addr;
		bp->hdr.ramdisk_size = (uint32_t)initrd->size;
		bp->ext_ramdisk_image = addr >> 32;
		bp->ext_ramdisk_size = initrd->size >> 32;
	}
	fill_e820(vm, bp);
	if (!vm->cfg.acpi) {
		int err = mptable_build(vm, why);

		if (err)
			return err;
	} else {
		struct acpi_info info;
		uint64_t rsdp;
		int err;

		pci_mmio64_window(vm, &info.pci_mmio64_start, &info.pci_mmio64_end);
		err = acpi_build(vm, &info, &rsdp, why);
		if (err)
			return err;
		bp->acpi_rsdp_addr = rsdp;
	}

	entry->kind = KERNEL_BZIMAGE;
	entry->rip = KERNEL_LOAD_ADDR + BZ_ENTRY64_OFFSET;
	entry->rsi = ZERO_PAGE_ADDR;
	entry->all_vcpus = 0;
	entry->image_end = kernel_end;
	return 0;
}

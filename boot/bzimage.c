/* Linux bzImage, per the x86 boot protocol (Documentation/arch/x86/boot.rst), entered at its
 * 64-bit entry point (protected-mode kernel + 0x200) with boot_params in rsi. */
#include <asm/bootparam.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "boot/boot.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define SETUP_HEADER_OFFSET 0x1f1
#define BZ_MAGIC_OFFSET     0x202  /* "HdrS" */
#define BZ_MIN_VERSION      0x020c /* 2.12: xloadflags and the 64-bit entry */
#define BZ_ENTRY64_OFFSET   0x200
#define KERNEL_LOAD_ADDR    HIGH_MEM_START

static const struct setup_header *bz_header(const struct boot_file *f)
{
	return (const void *)(f->data + SETUP_HEADER_OFFSET);
}

int bzimage_check(const struct boot_file *f, struct err *e)
{
	const struct setup_header *h;
	uint64_t setup_size;

	if (f->size < 0x300 || memcmp(f->data + BZ_MAGIC_OFFSET, "HdrS", 4) != 0)
		return err_set(e, -ENOEXEC, "neither an ELF64 x86_64 kernel nor a Linux bzImage");
	h = bz_header(f);
	if (h->boot_flag != 0xaa55)
		return err_set(e, -ENOEXEC, "a Linux boot header without the 0xAA55 boot flag: not "
			       "a bzImage");
	if (h->version < BZ_MIN_VERSION || !(h->xloadflags & XLF_KERNEL_64) ||
	    !(h->loadflags & LOADED_HIGH))
		return err_set(e, -ENOEXEC, "a Linux kernel without a 64-bit entry point (boot "
			       "protocol 2.12+, x86_64): use a 64-bit bzImage");
	setup_size = ((uint64_t)(h->setup_sects ? h->setup_sects : 4) + 1) * 512;
	if (setup_size >= f->size)
		return err_set(e, -ENOEXEC, "a truncated bzImage (no protected-mode kernel after "
			       "the setup code)");
	return 0;
}

int bzimage_load(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
		 const struct boot_config *bc, struct boot_entry *entry, struct err *e)
{
	const struct setup_header *h = bz_header(kernel);
	uint64_t setup_size = ((uint64_t)(h->setup_sects ? h->setup_sects : 4) + 1) * 512;
	uint64_t payload = kernel->size - setup_size;
	/* The kernel decompresses and relocates itself: it needs init_size bytes from its run
	 * address, which is at least pref_address (LOAD_PHYSICAL_ADDR, 16 MiB on x86_64). */
	uint64_t kernel_end = MAX(KERNEL_LOAD_ADDR + payload,
				  MAX(h->pref_address, KERNEL_LOAD_ADDR) + h->init_size);
	uint64_t hdr_len = BZ_MAGIC_OFFSET + kernel->data[0x201] - SETUP_HEADER_OFFSET;
	uint8_t *dst;
	int err;

	if (kernel_end > guest_mem_low_end(&vm->mem) ||
	    !(dst = gpa_range(&vm->mem, KERNEL_LOAD_ADDR, payload)))
		return err_set(e, -ENOMEM, "the kernel needs more guest RAM than --mem gives it: "
			       "give more --mem");
	memcpy(dst, kernel->data + setup_size, payload);
	err = linux_boot_params(vm, h, hdr_len, initrd, bc, kernel_end, e);
	if (err)
		return err;
	entry->kind = KERNEL_BZIMAGE;
	entry->rip = KERNEL_LOAD_ADDR + BZ_ENTRY64_OFFSET;
	entry->rsi = ZERO_PAGE_ADDR;
	entry->all_vcpus = 0;
	entry->image_end = kernel_end;
	return 0;
}

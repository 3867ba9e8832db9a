/* What every way of booting Linux shares: the command line (with acpi=off when there is no
 * ACPI, and virtio-mmio devices then refused: Linux finds them only in ACPI tables), the e820
 * map, the initrd's place, and the firmware tables (ACPI, or an MP table with --acpi off).
 * boot_params for the 64-bit boot protocol (bzImage, vmlinux) is built here too; the PVH entry
 * (pvh.c) hands the same facts over in hvm_start_info. */
#include <asm/bootparam.h>
#include <asm/e820.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "boot/acpi.h"
#include "boot/boot.h"
#include "devices/pci.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define LOADER_UNDEFINED 0xff
#define HEAP_END         0xfe00
#define DEFAULT_CMDLINE_MAX 2047

/* Calls add(addr, size, e820 type) for each range of the guest's memory map, in order. */
void linux_memory_map(struct vm *vm, void (*add)(void *ctx, uint64_t addr, uint64_t size,
						  uint32_t type), void *ctx)
{
	add(ctx, 0, EBDA_START, E820_RAM);
	/* The BIOS area, where the ACPI tables are. */
	add(ctx, EBDA_START, HIGH_MEM_START - EBDA_START, E820_RESERVED);
	add(ctx, HIGH_MEM_START, guest_mem_low_end(&vm->mem) - HIGH_MEM_START, E820_RAM);
	/* The ECAM window: reserved, as firmware reports it, so Linux accepts the MCFG. */
	if (vm->machine.pci)
		add(ctx, PCI_ECAM_BASE, PCI_ECAM_BUS_SIZE, E820_RESERVED);
	if (vm->mem.nregions > 1)
		add(ctx, vm->mem.regions[1].gpa, vm->mem.regions[1].size, E820_RAM);
}

static void add_e820(void *ctx, uint64_t addr, uint64_t size, uint32_t type)
{
	struct boot_params *bp = ctx;

	if (bp->e820_entries < E820_MAX_ENTRIES_ZEROPAGE)
		bp->e820_table[bp->e820_entries++] = (struct boot_e820_entry){ addr, size, type };
}

/* Whether the command line already says acpi=...: a word of its own, the user's choice. */
static bool cmdline_has_acpi(const char *s)
{
	for (const char *p = strstr(s, "acpi="); p; p = strstr(p + 1, "acpi="))
		if (p == s || isspace((unsigned char)p[-1]))
			return true;
	return false;
}

/* Without ACPI tables, Linux has no way to find a virtio-mmio device: x86 kernels have no
 * device tree, and distributions build without VIRTIO_MMIO_CMDLINE_DEVICES (virtio_mmio.device=
 * is ignored by Debian's generic and cloud kernels). Refused, rather than booted without them. */
static int check_mmio_without_acpi(const struct vm *vm, const struct boot_config *bc,
				   struct err *e)
{
	for (int i = 0; i < vm->machine.nplatform_devs && !bc->acpi; i++)
		if (!strcmp(vm->machine.platform_devs[i].compatible, "virtio,mmio"))
			return err_set(e, -EINVAL, "--acpi off: Linux finds virtio-mmio devices "
				       "only through ACPI tables; use --transport pci or leave ACPI "
				       "on");
	return 0;
}

int linux_write_cmdline(struct vm *vm, const struct boot_config *bc, size_t max, struct err *e)
{
	const char *user = bc->cmdline ? bc->cmdline : "";
	/* No tables: acpi=off spares the kernel its search for them (and its "ACPI BIOS Error
	 * (bug): A valid RSDP was not found" on the console, even with quiet). */
	const char *extra = !bc->acpi && !cmdline_has_acpi(user) ? "acpi=off" : "";
	char *dst;
	size_t n;
	int err = check_mmio_without_acpi(vm, bc, e);

	if (err)
		return err;
	n = strlen(user) + (*user && *extra ? 1 : 0) + strlen(extra);
	dst = gpa_range(&vm->mem, CMDLINE_ADDR, n + 1);
	if (n > max || n >= CMDLINE_MAX || !dst)
		return err_set(e, -E2BIG, "the --cmdline string is longer than this kernel "
			       "accepts");
	snprintf(dst, n + 1, "%s%s%s", user, *user && *extra ? " " : "", extra);
	return 0;
}

int linux_place_initrd(struct vm *vm, const struct boot_file *initrd, uint64_t kernel_end,
		       uint64_t addr_max, uint64_t *addr, struct err *e)
{
	uint64_t limit = MIN(addr_max + 1, guest_mem_low_end(&vm->mem));

	if (initrd->size > limit || (*addr = ALIGN_DOWN(limit - initrd->size, 4096)) <
					    ALIGN_UP(kernel_end, 4096))
		return err_set(e, -ENOMEM, "the initrd does not fit in guest RAM beside the "
			       "kernel: give more --mem");
	memcpy(gpa_range(&vm->mem, *addr, initrd->size), initrd->data, initrd->size);
	return 0;
}

/* The BIOS reset vector (f000:fff0). With hardware-reduced ACPI and no EFI, Linux's default
 * reboot ends in machine_real_restart(), a jump there in real mode; firmware would reset the
 * machine, and so does this: out 0xcf9 <- 6, then hlt. */
static void write_reset_vector(struct vm *vm)
{
	static const uint8_t stub[] = {
		0xb0, 0x06,             /* mov al, 6 */
		0xba, 0xf9, 0x0c,       /* mov dx, 0xcf9 */
		0xee,                   /* out dx, al */
		0xf4,                   /* hlt */
		0xeb, 0xfd,             /* jmp back to hlt */
	};
	uint8_t *dst = gpa_range(&vm->mem, 0xffff0, sizeof(stub));

	if (dst)
		memcpy(dst, stub, sizeof(stub));
}

int linux_firmware_tables(struct vm *vm, const struct boot_config *bc, uint64_t *rsdp,
			  struct err *e)
{
	struct acpi_info info;

	*rsdp = 0;
	write_reset_vector(vm);
	if (!bc->acpi)
		return mptable_build(vm, e);
	pci_mmio64_window(&vm->machine, &info.pci_mmio64_start, &info.pci_mmio64_end);
	return acpi_build(vm, &info, rsdp, e);
}

int linux_boot_params(struct vm *vm, const struct setup_header *h, size_t hdr_len,
		      const struct boot_file *initrd, const struct boot_config *bc, uint64_t kernel_end,
		      struct err *e)
{
	struct boot_params *bp = gpa_range(&vm->mem, ZERO_PAGE_ADDR, sizeof(*bp));
	uint64_t rsdp;
	int err;

	err = linux_write_cmdline(vm, bc, h->cmdline_size ? h->cmdline_size : 255, e);
	if (err)
		return err;
	memset(bp, 0, sizeof(*bp));
	/* The setup header as the image has it, then the fields a boot loader fills in. */
	memcpy(&bp->hdr, h, MIN(hdr_len, sizeof(bp->hdr)));
	bp->hdr.type_of_loader = LOADER_UNDEFINED;
	bp->hdr.loadflags |= CAN_USE_HEAP;
	bp->hdr.loadflags &= ~QUIET_FLAG;
	bp->hdr.heap_end_ptr = HEAP_END - 0x200;
	bp->hdr.cmd_line_ptr = CMDLINE_ADDR;
	bp->ext_cmd_line_ptr = 0;
	bp->hdr.vid_mode = 0xffff; /* "normal" */
	bp->hdr.code32_start = HIGH_MEM_START;
	if (initrd && initrd->data) {
		uint64_t addr;

		err = linux_place_initrd(vm, initrd, kernel_end, h->initrd_addr_max, &addr, e);
		if (err)
			return err;
		bp->hdr.ramdisk_image = (uint32_t)addr;
		bp->hdr.ramdisk_size = (uint32_t)initrd->size;
		bp->ext_ramdisk_image = addr >> 32;
		bp->ext_ramdisk_size = initrd->size >> 32;
	}
	linux_memory_map(vm, add_e820, bp);
	err = linux_firmware_tables(vm, bc, &rsdp, e);
	if (err)
		return err;
	bp->acpi_rsdp_addr = rsdp;
	return 0;
}

/* An uncompressed vmlinux has no setup header: this is the one a boot loader would have read
 * from the matching bzImage, with the values that matter for a 64-bit entry. */
void linux_default_setup_header(struct setup_header *h)
{
	memset(h, 0, sizeof(*h));
	h->boot_flag = 0xaa55;
	memcpy(&h->header, "HdrS", 4);
	h->version = 0x020f;
	h->loadflags = LOADED_HIGH;
	h->kernel_alignment = 0x200000;
	h->initrd_addr_max = 0x7fffffff;
	h->cmdline_size = DEFAULT_CMDLINE_MAX;
	h->xloadflags = XLF_KERNEL_64;
}

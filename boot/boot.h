/* Loading a kernel into guest RAM and preparing the vCPUs to enter it. */
#ifndef MICA_BOOT_H
#define MICA_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/err.h"

struct vm;

enum kernel_kind {
	KERNEL_ELF,     /* an ELF64 kernel with mica's entry contract (the test guest): a MICA note */
	KERNEL_BZIMAGE, /* Linux, x86 boot protocol, 64-bit entry */
	KERNEL_PVH,     /* an ELF with a PVH entry note (Linux vmlinux built with CONFIG_PVH) */
	KERNEL_VMLINUX, /* any other x86_64 ELF executable: Linux's 64-bit boot protocol */
};

/* What the boot loaders and firmware tables are told beyond the machine itself. */
struct boot_config {
	const char *cmdline;        /* NULL: empty */
	bool acpi;                  /* ACPI tables (else an MP table, acpi=off, no virtio-mmio) */
	/* The exit-cost lab: the FDT's bench node lists the probes; the floor VM of `mica bench
	 * exits` also gives the guest bare notify addresses (0: none). */
	bool bench_probes;
	uint64_t bench_mmio_notify, bench_pci_notify;
};

/* Where and how the vCPUs enter the guest. */
struct boot_entry {
	enum kernel_kind kind;
	uint64_t rip;
	uint64_t rsi;     /* bzImage: boot_params */
	uint64_t rdi;     /* ELF: boot-info FDT */
	uint64_t rbx;     /* PVH: hvm_start_info */
	int protected32;  /* PVH: 32-bit protected mode, paging off */
	int all_vcpus;    /* ELF: every vCPU starts at rip; Linux: only the BSP */
	uint64_t image_end; /* first byte after the loaded image */
};

/* A kernel or initrd file, mapped read-only. */
struct boot_file {
	const char *path;
	const uint8_t *data;
	uint64_t size;
};

/* Maps a file. Returns 0, or -errno with e naming the problem for the user. */
int boot_file_open(struct boot_file *f, const char *path, struct err *e);
void boot_file_close(struct boot_file *f);

/* Detects the kernel's kind without loading it, so a wrong file is reported before any VM
 * exists. Returns 0, or -ENOEXEC with e saying why. */
int boot_detect(const struct boot_file *kernel, enum kernel_kind *kind, struct err *e);

/* Loads the kernel (and the initrd, command line and boot information) into guest RAM.
 * Returns 0, or -errno with e naming the problem for the user. */
int boot_load_kernel(struct vm *vm, const struct boot_config *bc, const struct boot_file *kernel,
		     const struct boot_file *initrd, struct boot_entry *entry, struct err *e);

/* Writes the GDT and identity page tables, and puts every vCPU in 64-bit mode at the entry. */
int boot_setup_vcpus(struct vm *vm, const struct boot_entry *entry);

/* Per-format loaders, used by boot_load_kernel. */
/* Checks an ELF64 x86_64 executable and tells which kind it is (by its notes). */
int elf_check(const struct boot_file *f, enum kernel_kind *kind, struct err *e);
/* Loads the PT_LOAD segments at their physical addresses; *end: the first byte after them. */
int elf_load_segments(struct vm *vm, const struct boot_file *f, uint64_t *end, struct err *e);
/* The PVH entry point from the ELF's Xen note (0 if none). */
uint64_t elf_pvh_entry(const struct boot_file *f);
int elf_load(struct vm *vm, const struct boot_file *f, struct boot_entry *entry, struct err *e);
int vmlinux_load(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
		 const struct boot_config *bc, struct boot_entry *entry, struct err *e);
int pvh_load(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
	     const struct boot_config *bc, struct boot_entry *entry, struct err *e);

/* Shared by the Linux loaders (linux.c). */
struct setup_header;
void linux_memory_map(struct vm *vm, void (*add)(void *ctx, uint64_t addr, uint64_t size,
						  uint32_t type), void *ctx);
/* Writes the command line (the user's, plus acpi=off without ACPI unless it says acpi=...);
 * refuses virtio-mmio devices without ACPI (-EINVAL, e says so). */
int linux_write_cmdline(struct vm *vm, const struct boot_config *bc, size_t max, struct err *e);
int linux_place_initrd(struct vm *vm, const struct boot_file *initrd, uint64_t kernel_end,
		       uint64_t addr_max, uint64_t *addr, struct err *e);
int linux_firmware_tables(struct vm *vm, const struct boot_config *bc, uint64_t *rsdp,
			  struct err *e);
int linux_boot_params(struct vm *vm, const struct setup_header *h, size_t hdr_len,
		      const struct boot_file *initrd, const struct boot_config *bc, uint64_t kernel_end,
		      struct err *e);
void linux_default_setup_header(struct setup_header *h);
int bzimage_check(const struct boot_file *f, struct err *e);
int bzimage_load(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
		 const struct boot_config *bc, struct boot_entry *entry, struct err *e);
/* Builds the MP table (for --acpi off) at the start of the EBDA: CPUs, buses, IOAPIC, ISA and
 * PCI interrupt routing. */
int mptable_build(struct vm *vm, struct err *e);
/* Builds the boot-info flattened device tree at BOOTINFO_ADDR. */
int fdt_build_bootinfo(struct vm *vm, const struct boot_config *bc, struct err *e);

#endif

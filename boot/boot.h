/* Loading a kernel into guest RAM and preparing the vCPUs to enter it. */
#ifndef MICA_BOOT_H
#define MICA_BOOT_H

#include <stdint.h>

struct vm;

enum kernel_kind {
	KERNEL_ELF,     /* an ELF64 kernel with mica's entry contract (the test guest) */
	KERNEL_BZIMAGE, /* Linux, x86 boot protocol, 64-bit entry */
};

/* Where and how the vCPUs enter the guest. */
struct boot_entry {
	enum kernel_kind kind;
	uint64_t rip;
	uint64_t rsi;     /* bzImage: boot_params */
	uint64_t rdi;     /* ELF: boot-info FDT */
	int all_vcpus;    /* ELF: every vCPU starts at rip; bzImage: only the BSP */
	uint64_t image_end; /* first byte after the loaded image */
};

/* A kernel or initrd file, mapped read-only. */
struct boot_file {
	const char *path;
	const uint8_t *data;
	uint64_t size;
};

/* Maps a file. Returns 0, or -errno with *why naming the problem for the user. */
int boot_file_open(struct boot_file *f, const char *path, const char **why);
void boot_file_close(struct boot_file *f);

/* Detects the kernel's kind without loading it, so a wrong file is reported before any VM
 * exists. Returns 0, or -ENOEXEC with *why. */
int boot_detect(const struct boot_file *kernel, enum kernel_kind *kind, const char **why);

/* Loads the kernel (and the initrd, command line and boot information) into guest RAM.
 * Returns 0, or -errno with *why naming the problem for the user. */
int boot_load_kernel(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
		     struct boot_entry *entry, const char **why);

/* Writes the GDT and identity page tables, and puts every vCPU in 64-bit mode at the entry. */
int boot_setup_vcpus(struct vm *vm, const struct boot_entry *entry);

/* Per-format loaders, used by boot_load_kernel. */
int elf_check(const struct boot_file *f, const char **why);
int elf_load(struct vm *vm, const struct boot_file *f, struct boot_entry *entry, const char **why);
int bzimage_check(const struct boot_file *f, const char **why);
int bzimage_load(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
		 const char *cmdline, struct boot_entry *entry, const char **why);
/* Builds the MP table (for --acpi off) at the start of the EBDA. */
int mptable_build(struct vm *vm, const char **why);
/* Builds the boot-info flattened device tree at BOOTINFO_ADDR. */
int fdt_build_bootinfo(struct vm *vm, const char *cmdline, const char **why);

#endif

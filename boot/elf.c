/* ELF64 kernels (the test guest): PT_LOAD segments copied to their physical addresses. */
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "boot.h"
#include "layout.h"
#include "util.h"
#include "vm.h"

#define ELF_MAX_PHDRS 64

int elf_check(const struct boot_file *f, const char **why)
{
	const Elf64_Ehdr *eh = (const void *)f->data;

	if (f->size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) {
		*why = "not an ELF file";
		return -ENOEXEC;
	}
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64) {
		*why = "an ELF file, but not ELF64 for x86_64";
		return -ENOEXEC;
	}
	if (eh->e_type != ET_EXEC) {
		*why = "an ELF file, but not an executable (ET_EXEC) kernel";
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phnum > ELF_MAX_PHDRS || eh->e_phoff > f->size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > f->size - eh->e_phoff) {
		*why = "a malformed ELF file (program headers)";
		return -ENOEXEC;
	}
	return 0;
}

int elf_load(struct vm *vm, const struct boot_file *f, struct boot_entry *entry, const char **why)
{
	const Elf64_Ehdr *eh = (const void *)f->data;
	const Elf64_Phdr *ph = (const void *)(f->data + eh->e_phoff);
	uint64_t low_end = guest_mem_low_end(&vm->mem);
	bool entry_loaded = false;
	int nload = 0;

	entry->image_end = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		uint8_t *dst;

		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > f->size ||
		    p->p_filesz > f->size - p->p_offset) {
			*why = "a malformed ELF file (a segment extends past the end of the file)";
			return -ENOEXEC;
		}
		if (!range_inside(p->p_paddr, p->p_memsz, HIGH_MEM_START, low_end) ||
		    !(dst = gpa_range(&vm->mem, p->p_paddr, p->p_memsz))) {
			*why = "a segment does not fit in guest RAM between 1 MiB and the end of low "
			       "memory: relink the kernel, or give more --mem";
			return -ERANGE;
		}
		memcpy(dst, f->data + p->p_offset, p->p_filesz);
		/* Fresh anonymous RAM is already zero; clear bss anyway, cheaply, in case the
		 * segment overlaps an earlier one. */
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
		if (eh->e_entry >= p->p_vaddr && eh->e_entry - p->p_vaddr < p->p_memsz)
			entry_loaded = true;
		entry->image_end = MAX(entry->image_end, p->p_paddr + p->p_memsz);
		nload++;
	}
	if (!nload || !entry_loaded) {
		*why = nload ? "the ELF entry point is not inside a loaded segment"
			     : "the ELF file has no loadable segments";
		return -ENOEXEC;
	}
	entry->kind = KERNEL_ELF;
	entry->rip = eh->e_entry;
	entry->rdi = BOOTINFO_ADDR;
	entry->all_vcpus = 1;
	return 0;
}

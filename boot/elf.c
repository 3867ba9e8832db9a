/* ELF64 kernels: PT_LOAD segments copied to their physical addresses. Which entry an ELF gets
 * is told by its notes: a "MICA" note means mica's own contract (the test guest, see
 * docs/boot-contract.md); a Xen PHYS32_ENTRY note means the PVH entry (a Linux vmlinux built
 * with CONFIG_PVH); anything else is taken as a vmlinux for the 64-bit boot protocol. */
#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "boot/boot.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define ELF_MAX_PHDRS 64
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define MICA_NOTE_ENTRY_CONTRACT 1

static const Elf64_Phdr *phdrs(const struct boot_file *f)
{
	return (const void *)(f->data + ((const Elf64_Ehdr *)f->data)->e_phoff);
}

/* Finds a note by owner and type in the PT_NOTE segments; returns its descriptor or NULL. */
static const uint8_t *find_note(const struct boot_file *f, const char *owner, uint32_t type,
				uint32_t *desc_len)
{
	const Elf64_Ehdr *eh = (const void *)f->data;
	size_t olen = strlen(owner) + 1;

	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &phdrs(f)[i];
		uint64_t off, end;

		if (p->p_type != PT_NOTE || p->p_offset > f->size || p->p_filesz > f->size - p->p_offset)
			continue;
		for (off = p->p_offset, end = p->p_offset + p->p_filesz; off + sizeof(Elf64_Nhdr) <= end;) {
			const Elf64_Nhdr *n = (const void *)(f->data + off);
			uint64_t name = off + sizeof(*n), desc = name + ALIGN_UP((uint64_t)n->n_namesz, 4);
			uint64_t next = desc + ALIGN_UP((uint64_t)n->n_descsz, 4);

			if (next > end || next <= off)
				break;
			if (n->n_type == type && n->n_namesz == olen && !memcmp(f->data + name, owner, olen)) {
				*desc_len = n->n_descsz;
				return f->data + desc;
			}
			off = next;
		}
	}
	return NULL;
}

uint64_t elf_pvh_entry(const struct boot_file *f)
{
	uint32_t len = 0;
	const uint8_t *d = find_note(f, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, &len);
	uint64_t entry = 0;

	if (d && (len == 4 || len == 8))
		memcpy(&entry, d, len);
	return entry;
}

int elf_check(const struct boot_file *f, enum kernel_kind *kind, struct err *e)
{
	const Elf64_Ehdr *eh = (const void *)f->data;
	uint32_t len;

	if (f->size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return err_set(e, -ENOEXEC, "not an ELF file");
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64)
		return err_set(e, -ENOEXEC, "an ELF file, but not ELF64 for x86_64");
	if (eh->e_type != ET_EXEC)
		return err_set(e, -ENOEXEC, "an ELF file, but not an executable (ET_EXEC) kernel");
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phnum > ELF_MAX_PHDRS || eh->e_phoff > f->size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > f->size - eh->e_phoff)
		return err_set(e, -ENOEXEC, "a malformed ELF file (program headers)");
	/* Checked again by elf_load_segments(); here so a cut file is refused before KVM. */
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &phdrs(f)[i];

		if (p->p_type == PT_LOAD && (p->p_offset > f->size ||
					     p->p_filesz > f->size - p->p_offset))
			return err_set(e, -ENOEXEC, "a truncated or corrupt ELF file (a segment "
				       "extends past the end of the file)");
	}
	if (find_note(f, "MICA", MICA_NOTE_ENTRY_CONTRACT, &len))
		*kind = KERNEL_ELF;
	else if (elf_pvh_entry(f))
		*kind = KERNEL_PVH;
	else
		*kind = KERNEL_VMLINUX;
	return 0;
}

int elf_load_segments(struct vm *vm, const struct boot_file *f, uint64_t *end, struct err *e)
{
	const Elf64_Ehdr *eh = (const void *)f->data;
	uint64_t low_end = guest_mem_low_end(&vm->mem);
	int nload = 0;

	*end = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &phdrs(f)[i];
		uint8_t *dst;

		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > f->size ||
		    p->p_filesz > f->size - p->p_offset)
			return err_set(e, -ENOEXEC, "a malformed ELF file (a segment extends past "
				       "the end of the file)");
		if (!range_inside(p->p_paddr, p->p_memsz, HIGH_MEM_START, low_end) ||
		    !(dst = gpa_range(&vm->mem, p->p_paddr, p->p_memsz)))
			return err_set(e, -ERANGE, "a segment does not fit in guest RAM between "
				       "1 MiB and the end of low memory: relink the kernel, or give "
				       "more --mem");
		memcpy(dst, f->data + p->p_offset, p->p_filesz);
		/* Fresh RAM is zero; clear bss anyway in case segments overlap. */
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
		*end = MAX(*end, p->p_paddr + p->p_memsz);
		nload++;
	}
	if (!nload)
		return err_set(e, -ENOEXEC, "the ELF file has no loadable segments");
	return 0;
}

/* Whether a physical address lies inside a loaded segment. */
static bool loaded(const struct boot_file *f, uint64_t paddr, bool virt)
{
	const Elf64_Ehdr *eh = (const void *)f->data;

	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &phdrs(f)[i];
		uint64_t base = virt ? p->p_vaddr : p->p_paddr;

		if (p->p_type == PT_LOAD && paddr >= base && paddr - base < p->p_memsz)
			return true;
	}
	return false;
}

int elf_load(struct vm *vm, const struct boot_file *f, struct boot_entry *entry, struct err *e)
{
	const Elf64_Ehdr *eh = (const void *)f->data;
	int err = elf_load_segments(vm, f, &entry->image_end, e);

	if (err)
		return err;
	/* Identity-mapped: the entry's virtual address is where the code lies. */
	if (!loaded(f, eh->e_entry, true))
		return err_set(e, -ENOEXEC, "the ELF entry point is not inside a loaded segment");
	entry->kind = KERNEL_ELF;
	entry->rip = eh->e_entry;
	entry->rdi = BOOTINFO_ADDR;
	entry->all_vcpus = 1;
	return 0;
}

/* A Linux vmlinux without a PVH note: its 64-bit entry (phys_startup_64, e_entry) with a
 * boot_params built as for a bzImage, from a default setup header. */
int vmlinux_load(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
		 const struct boot_config *bc, struct boot_entry *entry, struct err *e)
{
	const Elf64_Ehdr *eh = (const void *)kernel->data;
	struct setup_header h;
	int err = elf_load_segments(vm, kernel, &entry->image_end, e);

	if (err)
		return err;
	if (!loaded(kernel, eh->e_entry, false))
		return err_set(e, -ENOEXEC, "the vmlinux entry point is not inside a loaded "
			       "segment");
	linux_default_setup_header(&h);
	err = linux_boot_params(vm, &h, sizeof(h), initrd, bc, entry->image_end, e);
	if (err)
		return err;
	entry->kind = KERNEL_VMLINUX;
	entry->rip = eh->e_entry;
	entry->rsi = ZERO_PAGE_ADDR;
	entry->all_vcpus = 0;
	return 0;
}

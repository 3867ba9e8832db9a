/* minilaunch: the floor mica's start-up benchmark compares against. It does only what the test
 * guest needs under docs/boot-contract.md, with no error recovery, devices or event loop:
 * /dev/kvm, a VM with the in-kernel irqchip, guest RAM as one anonymous mapping, one vCPU with
 * KVM's supported CPUID, the ELF's PT_LOAD segments copied in, GDT + identity page tables for
 * long mode, a boot-info FDT (/chosen bootargs, /memory, /cpus), then KVM_RUN in a loop handling
 * COM1 output (bytes to stdout; LSR always "transmitter empty", IIR "FIFOs on, no interrupt")
 * and the debug-exit port 0x501 (exit with the byte written). Other port reads give 0xff,
 * MMIO reads all-ones, writes are dropped.
 *
 *   minilaunch KERNEL MEM_MIB CMDLINE
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libfdt.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GDT_ADDR 0x1000ULL
#define PML4_ADDR 0x9000ULL
#define PDPT_ADDR 0xa000ULL
#define PD_ADDR 0xb000ULL
#define FDT_ADDR 0x80000ULL
#define FDT_MAX 0x10000
#define HIGH_MEM 0x100000ULL
#define TSS_ADDR 0xfffbd000ULL
#define COM1 0x3f8
#define DEBUG_EXIT 0x501

static void die(const char *what)
{
	perror(what);
	exit(125);
}

static int xioctl(int fd, unsigned long req, void *arg, const char *what)
{
	int r = ioctl(fd, req, arg);

	if (r < 0)
		die(what);
	return r;
}

static uint64_t load_elf(uint8_t *ram, uint64_t mem, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	const uint8_t *f;
	const Elf64_Ehdr *eh;
	uint64_t entry;

	if (fd < 0 || fstat(fd, &st) < 0)
		die(path);
	f = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (f == MAP_FAILED)
		die(path);
	eh = (const void *)f;
	if ((size_t)st.st_size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > (uint64_t)st.st_size) {
		fprintf(stderr, "%s: not an x86_64 ELF64 file\n", path);
		exit(2);
	}
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const void *)(f + eh->e_phoff + i * sizeof(Elf64_Phdr));

		if (ph->p_type != PT_LOAD)
			continue;
		if (ph->p_paddr < HIGH_MEM || ph->p_memsz > mem || ph->p_paddr > mem - ph->p_memsz ||
		    ph->p_filesz > ph->p_memsz || ph->p_offset + ph->p_filesz > (uint64_t)st.st_size) {
			fprintf(stderr, "%s: segment %d does not fit\n", path, i);
			exit(2);
		}
		memcpy(ram + ph->p_paddr, f + ph->p_offset, ph->p_filesz);
		/* The rest of p_memsz stays zero: the RAM is fresh anonymous memory. */
	}
	entry = eh->e_entry;
	munmap((void *)f, st.st_size);
	close(fd);
	return entry;
}

static void write_tables(uint8_t *ram)
{
	uint64_t *gdt = (uint64_t *)(ram + GDT_ADDR), *pml4 = (uint64_t *)(ram + PML4_ADDR);
	uint64_t *pdpt = (uint64_t *)(ram + PDPT_ADDR), *pd = (uint64_t *)(ram + PD_ADDR);

	gdt[2] = 0x00af9b000000ffffULL; /* 0x10: 64-bit code */
	gdt[3] = 0x00cf93000000ffffULL; /* 0x18: data */
	gdt[4] = 0x00008b0000000067ULL; /* 0x20: busy TSS */
	pml4[0] = PDPT_ADDR | 3;
	for (int i = 0; i < 4; i++)
		pdpt[i] = (PD_ADDR + i * 4096) | 3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB */
}

static void write_fdt(uint8_t *ram, uint64_t mem, const char *cmdline)
{
	void *fdt = ram + FDT_ADDR;
	fdt64_t reg[2] = { cpu_to_fdt64(HIGH_MEM), cpu_to_fdt64(mem - HIGH_MEM) };
	int err = 0;

	err |= fdt_create(fdt, FDT_MAX);
	err |= fdt_finish_reservemap(fdt);
	err |= fdt_begin_node(fdt, "");
	err |= fdt_property_u32(fdt, "#address-cells", 2);
	err |= fdt_property_u32(fdt, "#size-cells", 2);
	err |= fdt_property_string(fdt, "compatible", "mica,x86");
	err |= fdt_begin_node(fdt, "chosen");
	err |= fdt_property_string(fdt, "bootargs", cmdline);
	err |= fdt_end_node(fdt);
	err |= fdt_begin_node(fdt, "memory@0");
	err |= fdt_property_string(fdt, "device_type", "memory");
	err |= fdt_property(fdt, "reg", reg, sizeof(reg));
	err |= fdt_end_node(fdt);
	err |= fdt_begin_node(fdt, "cpus");
	err |= fdt_property_u32(fdt, "#address-cells", 1);
	err |= fdt_property_u32(fdt, "#size-cells", 0);
	err |= fdt_begin_node(fdt, "cpu@0");
	err |= fdt_property_string(fdt, "device_type", "cpu");
	err |= fdt_property_u32(fdt, "reg", 0);
	err |= fdt_end_node(fdt);
	err |= fdt_end_node(fdt);
	err |= fdt_end_node(fdt);
	err |= fdt_finish(fdt);
	if (err) {
		fprintf(stderr, "cannot build the FDT (command line too long?)\n");
		exit(2);
	}
}

static void set_cpuid(int kvm, int vcpu)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 256 * sizeof(c->entries[0]));

	if (!c)
		die("calloc");
	c->nent = 256;
	xioctl(kvm, KVM_GET_SUPPORTED_CPUID, c, "KVM_GET_SUPPORTED_CPUID");
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 1)
			c->entries[i].ecx |= 1u << 31; /* hypervisor present */
	xioctl(vcpu, KVM_SET_CPUID2, c, "KVM_SET_CPUID2");
	free(c);
}

static void set_long_mode(int vcpu, uint64_t entry)
{
	struct kvm_sregs s;
	struct kvm_regs r = { .rflags = 2, .rip = entry, .rdi = FDT_ADDR };
	struct kvm_segment code = { .limit = 0xffffffff, .selector = 0x10, .type = 11,
				    .present = 1, .s = 1, .l = 1, .g = 1 };
	struct kvm_segment data = { .limit = 0xffffffff, .selector = 0x18, .type = 3,
				    .present = 1, .s = 1, .db = 1, .g = 1 };

	xioctl(vcpu, KVM_GET_SREGS, &s, "KVM_GET_SREGS");
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.tr = (struct kvm_segment){ .selector = 0x20, .limit = 0x67, .type = 11, .present = 1 };
	s.gdt.base = GDT_ADDR;
	s.gdt.limit = 5 * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr0 = 0x80000011; /* PE, ET, PG */
	s.cr3 = PML4_ADDR;
	s.cr4 = 0x20; /* PAE */
	s.efer = 0x500; /* LME, LMA */
	xioctl(vcpu, KVM_SET_SREGS, &s, "KVM_SET_SREGS");
	xioctl(vcpu, KVM_SET_REGS, &r, "KVM_SET_REGS");
}

int main(int argc, char **argv)
{
	uint64_t mem, entry;
	int kvm, vm, vcpu, run_size;
	struct kvm_run *run;
	uint8_t *ram;

	if (argc != 4 || (mem = strtoull(argv[2], NULL, 0) << 20) < 2 * HIGH_MEM ||
	    mem > 0xc0000000ULL) {
		fprintf(stderr, "usage: minilaunch KERNEL MEM_MIB(2..3072) CMDLINE\n");
		return 2;
	}
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	vm = xioctl(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
	ram = mmap(NULL, mem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	if (ram == MAP_FAILED)
		die("mmap guest RAM");
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = mem, .userspace_addr = (uintptr_t)ram
	};
	xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
	xioctl(vm, KVM_SET_TSS_ADDR, (void *)TSS_ADDR, "KVM_SET_TSS_ADDR"); /* Intel needs it */
	xioctl(vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
	vcpu = xioctl(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
	run_size = xioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
	run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");
	set_cpuid(kvm, vcpu);
	entry = load_elf(ram, mem, argv[1]);
	write_tables(ram);
	write_fdt(ram, mem, argv[3]);
	set_long_mode(vcpu, entry);

	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			die("KVM_RUN");
		}
		if (run->exit_reason == KVM_EXIT_IO) {
			uint8_t *data = (uint8_t *)run + run->io.data_offset;

			for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
				if (run->io.direction == KVM_EXIT_IO_OUT) {
					if (run->io.port == COM1 && write(1, data, 1) < 0)
						die("stdout");
					if (run->io.port == DEBUG_EXIT)
						exit(data[0]);
				} else {
					memset(data, 0xff, run->io.size);
					if (run->io.port == COM1 + 5)
						data[0] = 0x60; /* LSR: THR and transmitter empty */
					else if (run->io.port == COM1 + 2)
						data[0] = 0xc1; /* IIR: FIFOs enabled, nothing pending */
				}
			}
		} else if (run->exit_reason == KVM_EXIT_MMIO) {
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
		} else if (run->exit_reason != KVM_EXIT_INTR) {
			fprintf(stderr, "minilaunch: KVM exit reason %u\n", run->exit_reason);
			return 125;
		}
	}
}

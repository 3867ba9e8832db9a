/* 64-bit entry state: a GDT, identity-mapped page tables and the registers of each vCPU. */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "boot/boot.h"
#include "vmm/layout.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define PTE_P   (1ULL << 0)
#define PTE_RW  (1ULL << 1)
#define PTE_PS  (1ULL << 7)

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

/* GDT entries in the packed descriptor format. */
#define GDT_CODE64 0x00af9b000000ffffULL /* present, DPL 0, execute/read, L=1, G=1 */
#define GDT_DATA   0x00cf93000000ffffULL /* present, DPL 0, read/write, D/B=1, G=1 */
#define GDT_TSS    0x00008b0000000067ULL /* present, busy 64-bit TSS, limit 0x67 */
#define GDT_CODE32 0x00cf9b000000ffffULL /* present, DPL 0, execute/read, D=1, G=1 (PVH) */
#define TSS_SEL    0x20
#define BOOT_CS32  0x28
#define GDT_ENTRIES 6

static int write_tables(struct vm *vm)
{
	uint64_t *gdt = gpa_range(&vm->mem, GDT_ADDR, GDT_ENTRIES * 8);
	uint64_t *pml4 = gpa_range(&vm->mem, PML4_ADDR, 4096);
	uint64_t *pdpt = gpa_range(&vm->mem, PDPT_ADDR, 4096);
	uint64_t *pd = gpa_range(&vm->mem, PD_ADDR, 4 * 4096);

	if (!gdt || !pml4 || !pdpt || !pd)
		return -ENOMEM;
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[BOOT_CS / 8] = GDT_CODE64;
	gdt[BOOT_DS / 8] = GDT_DATA;
	gdt[TSS_SEL / 8] = GDT_TSS;
	gdt[BOOT_CS32 / 8] = GDT_CODE32;
	/* The first 4 GiB, RAM and MMIO hole alike, identity-mapped with 2 MiB pages. */
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = PDPT_ADDR | PTE_P | PTE_RW;
	for (int i = 0; i < 4; i++)
		pdpt[i] = (PD_ADDR + i * 4096) | PTE_P | PTE_RW;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS;
	return 0;
}

static struct kvm_segment segment(uint16_t sel, uint8_t type, uint8_t l, uint8_t db)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = db, .s = 1, .l = l, .g = 1,
	};
}

static int vcpu_enter_long_mode(struct vcpu *vcpu, const struct boot_entry *entry)
{
	struct kvm_sregs s;
	struct kvm_regs r = { 0 };
	struct kvm_segment data = segment(BOOT_DS, 3, 0, 1);

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	if (entry->protected32) {
		/* PVH: flat 32-bit protected mode, paging off; the kernel builds its own tables. */
		s.cs = segment(BOOT_CS32, 11, 0, 1);
		s.ds = s.es = s.fs = s.gs = s.ss = data;
		s.tr = (struct kvm_segment){ .selector = TSS_SEL, .limit = 0x67, .type = 11, .present = 1 };
		s.gdt.base = GDT_ADDR;
		s.gdt.limit = GDT_ENTRIES * 8 - 1;
		s.cr0 = CR0_PE | CR0_ET;
		s.cr3 = 0;
		s.cr4 = 0;
		s.efer = 0;
		if (ioctl(vcpu->fd, KVM_SET_SREGS, &s) < 0)
			return -errno;
		r.rflags = 2;
		r.rip = entry->rip;
		r.rbx = entry->rbx;
		return ioctl(vcpu->fd, KVM_SET_REGS, &r) < 0 ? -errno : 0;
	}
	s.cs = segment(BOOT_CS, 11, 1, 0);
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.tr = (struct kvm_segment){ .selector = TSS_SEL, .limit = 0x67, .type = 11, .present = 1 };
	s.gdt.base = GDT_ADDR;
	s.gdt.limit = GDT_ENTRIES * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr0 = CR0_PE | CR0_ET | CR0_PG;
	s.cr3 = PML4_ADDR;
	s.cr4 = CR4_PAE;
	s.efer = EFER_LME | EFER_LMA;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &s) < 0)
		return -errno;
	r.rflags = 2;
	r.rip = entry->rip;
	r.rsi = entry->kind == KERNEL_ELF ? (uint64_t)vcpu->index : entry->rsi;
	r.rdi = entry->rdi;
	return ioctl(vcpu->fd, KVM_SET_REGS, &r) < 0 ? -errno : 0;
}

int boot_setup_vcpus(struct vm *vm, const struct boot_entry *entry)
{
	int err = write_tables(vm);

	if (err)
		return err;
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (i == 0 || entry->all_vcpus) {
			struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };

			err = vcpu_enter_long_mode(v, entry);
			/* An AP otherwise waits for INIT/SIPI; ELF guests get all vCPUs at the entry. */
			if (!err && i > 0 && ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0)
				err = -errno;
			if (err)
				return err;
		}
	}
	return 0;
}
